//! `impl Hypervisor for Xen`: the hypercalls on a Xen PVH guest.
//!
//! Scheduling (locks, cvs, threads, sleeps, curlwp) is the green core's,
//! through [`rumpuser_green::glue`]; the host half: memory from the heap
//! shared with bare metal, clocks from [`crate::time`] (pvclock and
//! shared_info), RDRAND/RDSEED through bare metal's `random`, the console
//! of [`crate::console`], parameters from the PVH command line, and exit
//! through [`crate::start::exit_status`] (`SCHEDOP_shutdown`).
//!
//! Files are the domU's virtual disks ([`crate::blkfront`]: `xvda`, … or
//! the xenstore device id); dom0 has none, so every name is `ENOENT`
//! there. There are no host files: the kit's file cases skip.

use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use rumpuser_baremetal::{cmdline, heap, status};
use rumpuser_core::abi::IoVec;
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Hypervisor};

/// The Xen hypervisor layer.
pub struct Xen;

/// The instance exported through the C ABI.
pub static XEN: Xen = Xen;

/// Stack size of kernel threads (`RUMPUSER_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

fn params() -> &'static str {
    crate::start::cmdline()
}

fn exit_to_xen() -> ! {
    crate::start::exit_status(status::PANIC)
}

impl Hypervisor for Xen {
    rumpuser_green::green_hypervisor_sched!(
        guard = rumpuser_green::glue::no_guard,
        stack_size = stack_size()
    );

    const NAME: &'static str = "xen";

    fn init(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(exit_to_xen);
        if let Some(s) = cmdline::param_u64(params(), "RUMPUSER_STACK") {
            STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
        }
        // The scheduler, clocks, events and entropy were set up at boot.
        Ok(())
    }

    fn ncpu(&self) -> u32 {
        1
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        let c = params();
        let h = cmdline::param(c, "hostname")
            .or_else(|| cmdline::param(c, "RUMP_HOSTNAME"))
            .filter(|h| !h.is_empty())
            .unwrap_or("rump-xen");
        out.push_str(h);
        Ok(())
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        if let Some(v) = cmdline::param(params(), name) {
            out.push_str(v);
            return Ok(());
        }
        if name == "RUMP_MEMLIMIT" {
            // As rumprun: half of the memory.
            let mut buf = [0u8; 24];
            out.push_str(decimal(heap::usage().0 as u64 / 2, &mut buf));
            return Ok(());
        }
        Err(Errno::ENOENT)
    }

    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        heap::alloc(len, align).ok_or(Errno::ENOMEM)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded contract (`ptr` from `malloc` with this `len`).
        unsafe { heap::free(ptr, len) }
    }

    fn anonmmap(
        &self,
        _hint: *mut c_void,
        size: usize,
        alignbit: u32,
        _exec: bool,
    ) -> HyperResult<NonNull<u8>> {
        // One identity-mapped address space, as on bare metal: zeroed,
        // aligned heap memory; the placement hint is not needed.
        if size == 0 || alignbit >= 40 {
            return Err(Errno::EINVAL);
        }
        let align = (1usize << alignbit).max(4096);
        heap::alloc_zeroed(size.next_multiple_of(4096), align).ok_or(Errno::ENOMEM)
    }

    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        if let Some(p) = NonNull::new(addr.cast::<u8>()) {
            // SAFETY: forwarded contract: a mapping from `anonmmap` of `len` bytes.
            unsafe { heap::free(p, len.next_multiple_of(4096)) }
        }
    }

    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        crate::blkfront::open(name, flags)
    }

    fn close(&self, fd: c_int) -> HyperResult<()> {
        crate::blkfront::close(fd)
    }

    fn getfileinfo(&self, name: &CStr, _want_size: bool) -> HyperResult<(u64, FileType)> {
        crate::blkfront::getfileinfo(name)
    }

    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (writable iovecs).
        unsafe { crate::blkfront::iov(fd, iov, off, false) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (readable iovecs).
        unsafe { crate::blkfront::iov(fd, iov, off, true) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, _start: u64, _len: u64) -> HyperResult<()> {
        crate::blkfront::sync(fd, flags.write)
    }

    fn bio(&self, req: BioRequest) {
        crate::blkfront::bio(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(crate::time::wall())
    }

    #[inline]
    fn clock_monotonic(&self) -> MonoNanos {
        crate::time::now_ns()
    }

    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        rumpuser_baremetal::random::fill(buf, flags)
    }

    fn putchar(&self, c: u8) {
        crate::console::write(&[c]);
    }

    fn console_write(&self, bytes: &[u8]) {
        crate::console::write(bytes);
    }

    fn set_errno(&self, error: c_int) {
        rumpuser_green::sched_core::set_errno(error);
    }

    fn kill(&self, _pid: i64, _sig: c_int) -> HyperResult<()> {
        // No host process to signal: ignored, as on rumprun.
        Ok(())
    }

    fn exit(&self, how: ExitKind) -> ! {
        let v = match how {
            ExitKind::Panic => {
                crate::xprintln!("rumpuser-xen: rumpuser_exit(RUMPUSER_PANIC)");
                status::PANIC
            }
            ExitKind::Status(s) => {
                crate::xprintln!("rumpuser-xen: halted (exit status {s})");
                status::from_exit_value(s)
            }
        };
        crate::start::exit_status(v)
    }
}

/// The calling green thread's errno as last set by `rumpuser_seterrno`
/// (C programs without a libc read it with this function).
#[no_mangle]
pub extern "C" fn rumpuser_xen_errno() -> c_int {
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
