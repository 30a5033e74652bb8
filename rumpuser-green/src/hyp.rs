//! `impl Hypervisor for Green`: the hypercalls on the green scheduler.
//!
//! Scheduling-related hypercalls (locks, cvs, threads, sleeps, curlwp) go
//! to [`sched_core`]; files, memory, randomness, console, signals, dl and
//! daemonize reuse the POSIX flavour's modules unchanged; block I/O is
//! asynchronous through [`crate::host::bio`]. `_RUMPUSER_NCPU` is always 1:
//! there is one host thread.
//!
//! Deterministic mode: `RUMPUSER_GREEN_SEED=<u64>` picks the next runnable
//! thread with a seeded PRNG and switches to a virtual clock that only
//! advances when every thread is idle; block I/O becomes synchronous. Two
//! runs with one seed then schedule identically (`RUMPUSER_GREEN_TRACE=1`
//! prints the switch trace at exit so runs can be compared).

use crate::host::HOST;
use crate::sched_core::{self, Config, GreenCondvar, GreenMutex, GreenRwLock, ThreadId};
use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use rumpuser_core::abi::{CompLoadFn, IoVec, Lwp, ModinitFn, SymloadFn, ThreadFn};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Hypervisor, SendPtr};
use rumpuser_host as px;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// The green hypervisor.
pub struct Green;

/// The instance exported through the C ABI.
pub static GREEN: Green = Green;

/// `pthread_self()` of the host thread that called `rumpuser_init`.
static HOST_THREAD: AtomicUsize = AtomicUsize::new(0);
/// Stack size of kernel threads (`RUMPUSER_GREEN_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);
/// curlwpop(SET) calls seen, and whether `rumpuser_curlwp` was ever called:
/// a kernel built with `RUMP_CURLWP=__thread` sets lwps but never asks.
static SETS: AtomicU32 = AtomicU32::new(0);
static ASKED: AtomicBool = AtomicBool::new(false);

/// Aborts with an explanation if called from a foreign host thread.
#[inline]
fn on_green_host() {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let host = HOST_THREAD.load(Ordering::Relaxed);
    if host != me {
        rumpuser_core::diag::fatal(format_args!(
            "rumpuser-green: hypercall from host thread {me:#x}, but every kernel thread must run on \
             the host thread that called rumpuser_init ({host:#x}); enter the kernel only from that thread"
        ));
    }
}

/// A green lock used through the C ABI.
///
/// The green primitives are deliberately not `Sync`; these wrappers are,
/// because every use is checked to happen on the one green host thread.
pub struct Shared<T>(T);
// SAFETY: only touched from the single green host thread (`on_green_host`).
unsafe impl<T> Sync for Shared<T> {}
// SAFETY: as above; moving the object between green threads is what they are for.
unsafe impl<T> Send for Shared<T> {}

/// Join handle: the green thread id.
pub struct Joinable(ThreadId);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

impl Hypervisor for Green {
    type Mutex = Shared<GreenMutex>;
    type RwLock = Shared<GreenRwLock>;
    type Cond = Shared<GreenCondvar>;
    type Thread = Joinable;

    const NAME: &'static str = "green";

    fn init(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(px::signal::abort_now);
        if sched_core::is_initialized() {
            return Ok(());
        }
        px::random::init()?;
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
        // SAFETY: pthread_self has no preconditions.
        HOST_THREAD.store(unsafe { libc::pthread_self() } as usize, Ordering::Relaxed);
        // SAFETY: this host thread becomes the green host thread; every
        // later hypercall is checked to come from it.
        unsafe { sched_core::init(&HOST, cfg) }.map_err(|_| Errno::EBUSY)?;
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
        on_green_host();
        crate::host::bio::submit(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(px::clock::wall())
    }

    fn clock_monotonic(&self) -> MonoNanos {
        HOST.now()
    }

    fn sleep_until(&self, deadline: MonoNanos) {
        on_green_host();
        sched_core::sleep_until(deadline)
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
        // The application reads the host errno right after the call, before
        // any switch; the green slot keeps it per thread as well.
        px::sys::set_errno(error);
        if sched_core::is_initialized() {
            sched_core::set_errno(error);
        }
    }

    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()> {
        px::signal::kill(pid, sig)
    }

    fn exit(&self, how: ExitKind) -> ! {
        px::signal::exit(how)
    }

    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Joinable>> {
        on_green_host();
        let mut name = [0u8; 32];
        let n = spec.name.map(|n| n.to_bytes()).unwrap_or(b"");
        let l = n.len().min(31);
        name[..l].copy_from_slice(&n[..l]);
        let name = core::str::from_utf8(&name[..l]).unwrap_or("kthread");
        let body = move || {
            let a = arg;
            // SAFETY: the kernel's thread function with its own argument; it
            // ends in `rumpuser_thread_exit` (or returns, which also exits).
            unsafe { entry(a.0) };
        };
        match sched_core::spawn_closure(
            body,
            name,
            STACK_SIZE.load(Ordering::Relaxed),
            spec.joinable,
        ) {
            Ok(t) => Ok(spec.joinable.then_some(Joinable(t))),
            Err(sched_core::SpawnError::OutOfMemory) => Err(Errno::ENOMEM),
            Err(_) => Err(Errno::EAGAIN),
        }
    }

    fn thread_exit(&self) -> ! {
        on_green_host();
        sched_core::exit()
    }

    fn thread_join(&self, t: Joinable) -> HyperResult<()> {
        on_green_host();
        sched_core::join(t.0).map_err(|e| match e {
            sched_core::JoinError::Deadlock => Errno::EDEADLK,
            sched_core::JoinError::NoSuchThread => Errno::ESRCH,
            _ => Errno::EINVAL,
        })
    }

    #[inline]
    fn curlwp(&self) -> *mut Lwp {
        if !ASKED.load(Ordering::Relaxed) {
            ASKED.store(true, Ordering::Relaxed);
        }
        sched_core::curlwp() as *mut Lwp
    }

    fn set_curlwp(&self, l: *mut Lwp) {
        on_green_host();
        if !l.is_null()
            && SETS.fetch_add(1, Ordering::Relaxed) == 256
            && !ASKED.load(Ordering::Relaxed)
        {
            rumpuser_core::diag::report(format_args!(
                "rumpuser-green: the kernel sets lwps but never calls rumpuser_curlwp(); \
                 it was probably built with RUMP_CURLWP=__thread, which green threads cannot support"
            ));
        }
        sched_core::set_curlwp(l.cast())
    }

    fn mutex_new(&self, _flags: MutexFlags) -> Self::Mutex {
        Shared(GreenMutex::new())
    }
    fn mutex_try_lock(&self, m: &Self::Mutex) -> bool {
        on_green_host();
        m.0.try_lock()
    }
    fn mutex_lock(&self, m: &Self::Mutex) {
        on_green_host();
        m.0.lock()
    }
    fn mutex_unlock(&self, m: &Self::Mutex) {
        on_green_host();
        m.0.unlock()
    }

    fn rw_new(&self) -> Self::RwLock {
        Shared(GreenRwLock::new())
    }
    fn rw_try_read(&self, rw: &Self::RwLock) -> bool {
        on_green_host();
        rw.0.try_read()
    }
    fn rw_read(&self, rw: &Self::RwLock) {
        on_green_host();
        rw.0.read()
    }
    fn rw_try_write(&self, rw: &Self::RwLock) -> bool {
        on_green_host();
        rw.0.try_write()
    }
    fn rw_write(&self, rw: &Self::RwLock) {
        on_green_host();
        rw.0.write()
    }
    fn rw_unlock_read(&self, rw: &Self::RwLock) {
        on_green_host();
        rw.0.unlock_read()
    }
    fn rw_unlock_write(&self, rw: &Self::RwLock) {
        on_green_host();
        rw.0.unlock_write()
    }
    fn rw_downgrade(&self, rw: &Self::RwLock) {
        on_green_host();
        rw.0.downgrade()
    }
    fn rw_try_upgrade(&self, rw: &Self::RwLock) -> bool {
        on_green_host();
        rw.0.try_upgrade()
    }
    fn rw_is_write_locked(&self, rw: &Self::RwLock) -> bool {
        rw.0.is_write_locked()
    }
    fn rw_has_readers(&self, rw: &Self::RwLock) -> bool {
        rw.0.has_readers()
    }

    fn cond_new(&self) -> Self::Cond {
        Shared(GreenCondvar::new())
    }
    fn cond_wait(
        &self,
        c: &Self::Cond,
        m: &Self::Mutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome {
        on_green_host();
        if c.0.wait_unlocked(&m.0, deadline) {
            WaitOutcome::TimedOut
        } else {
            WaitOutcome::Woken
        }
    }
    fn cond_signal(&self, c: &Self::Cond) {
        on_green_host();
        c.0.notify_one()
    }
    fn cond_broadcast(&self, c: &Self::Cond) {
        on_green_host();
        c.0.notify_all()
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
}
