//! `impl Hypervisor for Green`: the hypercalls on the green scheduler.
//!
//! Scheduling-related hypercalls (locks, cvs, threads, sleeps, curlwp) come
//! from [`crate::glue`] (shared with the bare-metal platform); files,
//! memory, randomness, console, signals, dl and daemonize reuse the POSIX
//! flavour's modules unchanged; block I/O is
//! asynchronous through [`crate::host::bio`]. `_RUMPUSER_NCPU` is always 1:
//! there is one host thread.
//!
//! Deterministic mode: `RUMPUSER_GREEN_SEED=<u64>` picks the next runnable
//! thread with a seeded PRNG and switches to a virtual clock that only
//! advances when every thread is idle; block I/O becomes synchronous. Two
//! runs with one seed then schedule identically (`RUMPUSER_GREEN_TRACE=1`
//! prints the switch trace at exit so runs can be compared).

use crate::host::HOST;
use crate::sched_core::{self, Config};
use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use rumpuser_core::abi::{CompLoadFn, IoVec, ModinitFn, SymloadFn};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Hypervisor};
use rumpuser_host as px;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The green hypervisor.
pub struct Green;

/// The instance exported through the C ABI.
pub static GREEN: Green = Green;

/// Stack size of kernel threads (`RUMPUSER_GREEN_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

/// The guard of every hypercall that touches the green world: takes the
/// token for the calling host thread (see [`crate::host::token`]).
#[inline(always)]
pub(crate) fn on_green_host() -> crate::host::token::Entered {
    crate::host::token::enter()
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Stack size of kernel threads (and of the syscall proxy's green threads).
pub(crate) fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

impl Hypervisor for Green {
    crate::green_hypervisor_sched!(guard = on_green_host, stack_size = stack_size());

    const NAME: &'static str = "green";

    fn init(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(px::signal::abort_now);
        if sched_core::is_initialized() {
            return Ok(());
        }
        px::random::init()?;
        // Every green sleep ends in this host thread's ppoll: 1 ns slack.
        px::clock::tight_timer_slack();
        let seed = env_u64("RUMPUSER_GREEN_SEED");
        HOST.start(seed.is_some()).map_err(Errno::from_linux)?;
        if let Some(s) = env_u64("RUMPUSER_GREEN_STACK") {
            STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
        }
        let mut cfg = match seed {
            Some(s) => Config::seeded(s),
            None => Config::default(),
        };
        let trace = std::env::var_os("RUMPUSER_GREEN_TRACE").is_some();
        cfg.trace = trace;
        // Other host threads take part (and the runner keeps the kernel
        // going while the application is outside it), except in
        // deterministic mode, whose schedule must depend on the seed only.
        let hosts = seed.is_none() && !px::param::switched_off("RUMPUSER_GREEN_HOSTS");
        cfg.hosts = hosts;
        // Taking part needs membarrier(2) (Linux 4.14).
        let hosts = hosts && crate::host::token::supported();
        cfg.hosts = hosts;
        // SAFETY: this host thread becomes the primary host; from now on
        // every hypercall that touches the green world takes the token
        // (`on_green_host`), so one host thread at a time uses the
        // scheduler.
        unsafe { sched_core::init(&HOST, cfg) }.map_err(|_| Errno::EBUSY)?;
        if hosts {
            crate::host::token::start().map_err(|_| Errno::EAGAIN)?;
        } else {
            crate::host::token::start_single();
        }
        if trace {
            extern "C" fn dump() {
                let t = sched_core::take_trace();
                let mut s = String::new();
                for e in &t {
                    s.push_str(&format!("{}>{} ", e.from.as_raw(), e.to.as_raw()));
                }
                px::console::write_stderr(
                    format!("rumpuser-green trace ({} switches): {s}\n", t.len()).as_bytes(),
                );
            }
            // SAFETY: registering a plain function.
            unsafe { libc::atexit(dump) };
        }
        Ok(())
    }

    fn ncpu(&self) -> u32 {
        1
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        px::param::hostname(out)
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        px::param::env(name, out)
    }

    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        px::mem::malloc(len, align)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded contract.
        unsafe { px::mem::free(ptr, len) }
    }

    fn anonmmap(
        &self,
        hint: *mut c_void,
        size: usize,
        alignbit: u32,
        exec: bool,
    ) -> HyperResult<NonNull<u8>> {
        px::mem::anonmmap(hint, size, alignbit, exec)
    }

    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        // SAFETY: forwarded contract.
        unsafe { px::mem::unmap(addr, len) }
    }

    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        px::file::open(name, flags)
    }

    fn close(&self, fd: c_int) -> HyperResult<()> {
        px::file::close(fd)
    }

    fn getfileinfo(&self, name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)> {
        px::file::getfileinfo(name, want_size)
    }

    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract.
        unsafe { px::file::iovread(fd, iov, off) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract.
        unsafe { px::file::iovwrite(fd, iov, off) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, start: u64, len: u64) -> HyperResult<()> {
        px::file::syncfd(fd, flags, start, len)
    }

    fn bio(&self, req: BioRequest) {
        let _entered = on_green_host();
        crate::host::bio::submit(req)
    }

    fn component_block_begin(&self) {
        let entered = on_green_host();
        crate::host::excursion::component_block_begin(entered.outermost())
    }

    fn component_block_end(&self) {
        // On the excursion's helper: not the green host thread.
        crate::host::excursion::component_block_end()
    }

    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        let _entered = on_green_host();
        // Deterministic mode keeps every request on the path it always took
        // (the virtual clock's synchronous transfer).
        if HOST.is_virtual() {
            return Err(req);
        }
        px::blockio::try_now(req).or_else(|req| {
            if !crate::host::bio::inline_writes() {
                return Err(req);
            }
            // A flush inline only when no other green thread would run
            // while a worker did it, and no host thread waits to enter.
            px::blockio::try_write_inline(
                req,
                !sched_core::others_runnable() && !crate::host::token::hosts_waiting(),
            )
        })
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(px::clock::wall())
    }

    fn clock_monotonic(&self) -> MonoNanos {
        HOST.now()
    }

    fn clock_monotonic_parts(&self) -> (i64, i64) {
        if HOST.is_virtual() {
            let t = HOST.now();
            ((t / 1_000_000_000) as i64, (t % 1_000_000_000) as i64)
        } else {
            // Already split by the host: no 64-bit division.
            rumpuser_host::clock::monotonic_parts()
        }
    }

    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        px::random::fill(buf, flags)
    }

    fn putchar(&self, c: u8) {
        px::console::putchar(c)
    }

    fn console_write(&self, bytes: &[u8]) {
        px::console::write_stderr(bytes)
    }

    fn set_errno(&self, error: c_int) {
        // The application reads its host thread's errno right after the
        // call (an application thread is bound to its host thread).
        px::sys::set_errno(error);
    }

    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()> {
        px::signal::kill(pid, sig)
    }

    fn exit(&self, how: ExitKind) -> ! {
        px::signal::exit(how)
    }

    fn dl_bootstrap(&self, modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
        px::dl::bootstrap(modinit, symload, compload)
    }

    fn daemonize_begin(&self) -> HyperResult<()> {
        px::daemonize::begin().map_err(Errno::from_raw)
    }

    fn daemonize_done(&self, error: c_int) -> HyperResult<()> {
        px::daemonize::done(error).map_err(Errno::from_raw)
    }

    fn sysproxy(&self) -> Option<&dyn rumpuser_core::sysproxy::SysProxy> {
        Some(&crate::sp::SYSPROXY)
    }
}
