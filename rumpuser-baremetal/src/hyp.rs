//! `impl Hypervisor for Baremetal`: the hypercalls on bare x86_64.
//!
//! Scheduling (locks, cvs, threads, sleeps, curlwp) is the green core's,
//! through [`rumpuser_green::glue`]; the host half is this crate's:
//! memory from [`crate::heap`], clocks from [`crate::time`], randomness
//! from [`crate::random`], the serial console, disks from [`crate::disk`],
//! and exit through `isa-debug-exit`.

use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use rumpuser_core::abi::IoVec;
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Hypervisor};

/// The bare-metal hypervisor.
pub struct Baremetal;

/// The instance exported through the C ABI.
pub static BAREMETAL: Baremetal = Baremetal;

/// Stack size of kernel threads (`RUMPUSER_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

fn cmdline() -> &'static str {
    crate::bootinfo::cmdline()
}

impl Hypervisor for Baremetal {
    rumpuser_green::green_hypervisor_sched!(
        guard = rumpuser_green::glue::no_guard,
        stack_size = stack_size()
    );

    const NAME: &'static str = "baremetal";

    fn init(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(|| crate::start::exit_status(crate::status::PANIC));
        if let Some(s) = crate::cmdline::param_u64(cmdline(), "RUMPUSER_STACK") {
            STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
        }
        // The scheduler, clocks and entropy were set up at boot.
        Ok(())
    }

    fn ncpu(&self) -> u32 {
        1
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        let c = cmdline();
        let h = crate::cmdline::param(c, "hostname")
            .or_else(|| crate::cmdline::param(c, "RUMP_HOSTNAME"))
            .filter(|h| !h.is_empty())
            .unwrap_or("rump-baremetal");
        out.push_str(h);
        Ok(())
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        if let Some(v) = crate::cmdline::param(cmdline(), name) {
            out.push_str(v);
            return Ok(());
        }
        if name == "RUMP_MEMLIMIT" {
            // As rumprun: half of the memory, so the kernel's page daemon
            // runs before the heap is exhausted.
            let mut buf = [0u8; 24];
            let s = decimal(crate::heap::usage().0 as u64 / 2, &mut buf);
            out.push_str(s);
            return Ok(());
        }
        Err(Errno::ENOENT)
    }

    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        crate::heap::alloc(len, align).ok_or(Errno::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded contract (`ptr` from `malloc` with this `len`).
        unsafe { crate::heap::free(ptr, len) }
    }

    fn anonmmap(
        &self,
        _hint: *mut c_void,
        size: usize,
        alignbit: u32,
        _exec: bool,
    ) -> HyperResult<NonNull<u8>> {
        // One identity-mapped address space: "mapping" is zeroed, page
        // aligned heap memory (executable like all memory here); the
        // placement hint cannot be honoured and is not needed when the
        // kernel is linked statically.
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let align = 1usize.checked_shl(alignbit).unwrap_or(0).max(4096);
        if align == 0 || alignbit >= 40 {
            return Err(Errno::EINVAL);
        }
        crate::heap::alloc_zeroed(size.next_multiple_of(4096), align).ok_or(Errno::ENOMEM)
    }

    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        if let Some(p) = NonNull::new(addr.cast::<u8>()) {
            // SAFETY: forwarded contract: a mapping from `anonmmap` of `len` bytes.
            unsafe { crate::heap::free(p, len.next_multiple_of(4096)) }
        }
    }

    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        crate::disk::open(name, flags)
    }

    fn close(&self, fd: c_int) -> HyperResult<()> {
        crate::disk::close(fd)
    }

    fn getfileinfo(&self, name: &CStr, _want_size: bool) -> HyperResult<(u64, FileType)> {
        crate::disk::getfileinfo(name)
    }

    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (writable iovecs).
        unsafe { crate::disk::iov(fd, iov, off, false) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (readable iovecs).
        unsafe { crate::disk::iov(fd, iov, off, true) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, _start: u64, _len: u64) -> HyperResult<()> {
        crate::disk::sync(fd, flags.write)
    }

    fn bio(&self, req: BioRequest) {
        crate::disk::bio(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(crate::time::wall())
    }

    #[inline]
    fn clock_monotonic(&self) -> MonoNanos {
        crate::time::now_ns()
    }

    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        crate::random::fill(buf, flags)
    }

    fn putchar(&self, c: u8) {
        crate::serial::write_bytes(&[c]);
    }

    fn console_write(&self, bytes: &[u8]) {
        crate::serial::write_bytes(bytes);
    }

    fn set_errno(&self, error: c_int) {
        rumpuser_green::sched_core::set_errno(error);
    }

    fn kill(&self, _pid: i64, _sig: c_int) -> HyperResult<()> {
        // There is no host process to signal: the advice is ignored, as
        // on rumprun (the kernel ignores the return value).
        Ok(())
    }

    fn exit(&self, how: ExitKind) -> ! {
        let v = match how {
            ExitKind::Panic => {
                crate::kprintln!("rumpuser-baremetal: rumpuser_exit(RUMPUSER_PANIC)");
                crate::status::PANIC
            }
            ExitKind::Status(s) => {
                crate::kprintln!("rumpuser-baremetal: halted (exit status {s})");
                crate::status::from_exit_value(s)
            }
        };
        crate::start::exit_status(v)
    }
}

/// The calling green thread's errno as last set by `rumpuser_seterrno`
/// (what `rump_sys_*` failures leave): bare-metal C programs have no libc
/// `errno`, so they read it with this function.
#[no_mangle]
pub extern "C" fn rumpuser_baremetal_errno() -> c_int {
    rumpuser_green::sched_core::errno()
}

/// Formats `v` in decimal into `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 24]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}
