//! The PVH platform: the host half shared by bare metal and Xen, joined
//! with the green scheduling half.
//!
//! Scheduling (locks, cvs, threads, sleeps, curlwp) is the green core's:
//! [`rumpuser_green::sched::GreenSched`] with [`OneCpu`] hooks. The host
//! half is [`PvhHost`], over what a PVH [`Machine`] supplies (command
//! line, disks, clocks, console, exit): memory comes from [`crate::heap`],
//! randomness from [`crate::random`] and parameters from the command
//! line on every machine. `rumpuser-baremetal` and `rumpuser-xen` each
//! supply a [`Machine`] and export [`pvh_platform`] of it. Both serve the
//! syscall proxy on the guest kernel's own sockets ([`crate::sp`]).

use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use rumpuser_core::abi::IoVec;
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, Host, HyperResult, Platform};
use rumpuser_green::sched::{GreenSched, OneCpu};

/// A PVH platform: green threads on the one CPU over [`PvhHost`].
pub type PvhPlatform<M> = Platform<GreenSched<OneCpu>, PvhHost<M>>;

/// Joins `machine` with the green scheduling half (whose kernel threads
/// get [`stack_size`] bytes of stack).
pub const fn pvh_platform<M: Machine>(machine: M) -> PvhPlatform<M> {
    Platform::new(GreenSched(OneCpu { stack_size }), PvhHost(machine))
}

/// What a PVH machine supplies to [`PvhHost`]: functions of the type
/// (a machine is one per image, its state in its modules' statics).
pub trait Machine: Sync + 'static {
    /// The name messages start with, e.g. `rumpuser-baremetal`.
    const WHO: &'static str;
    /// `_RUMPUSER_HOSTNAME` when the command line names none.
    const DEFAULT_HOSTNAME: &'static str;
    /// The machine's virtual disks (the names `rumpuser_open` knows).
    type Disks: Disks;

    /// The boot command line (parameters, `RUMPUSER_STACK`, the host name).
    fn cmdline() -> &'static str;
    /// Wall-clock time as `(sec, nsec)` since the epoch.
    fn wall() -> (i64, i64);
    /// Monotonic nanoseconds since boot; cheap.
    fn now_ns() -> MonoNanos;
    /// Console output; any context.
    fn console_write(bytes: &[u8]);
    /// The end, with a [`crate::status`] value.
    fn exit(status: u32) -> !;
}

/// A machine's virtual disks, which are its only files: `rumpuser_open`
/// of a disk name gives a descriptor for [`Disks::iov`], [`Disks::bio`]
/// and the rest; every other name is `ENOENT`.
pub trait Disks {
    /// `rumpuser_getfileinfo`: a disk's size and `RUMPUSER_FT_BLK`.
    fn getfileinfo(name: &CStr) -> HyperResult<(u64, FileType)>;
    /// `rumpuser_open` of a disk.
    fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int>;
    /// `rumpuser_close`.
    fn close(fd: c_int) -> HyperResult<()>;
    /// `rumpuser_iovread` (`write == false`) or `rumpuser_iovwrite`.
    ///
    /// # Safety
    /// Every iovec describes memory valid for the call (writable to read into).
    unsafe fn iov(fd: c_int, iov: &[IoVec], off: Option<u64>, write: bool) -> HyperResult<usize>;
    /// `rumpuser_syncfd`: flush the device's write cache if `write`.
    fn sync(fd: c_int, write: bool) -> HyperResult<()>;
    /// `rumpuser_bio`: asynchronous, completed by the device's interrupt.
    fn bio(req: BioRequest);
}

/// The host half of a PVH platform over machine `M`.
#[derive(Debug)]
pub struct PvhHost<M>(pub M);

impl<M: Machine> Host for PvhHost<M> {
    fn init_host(&self) -> HyperResult<()> {
        // The scheduler, clocks and entropy were set up at boot.
        rumpuser_core::diag::set_fatal(fatal::<M>);
        set_stack_size(M::cmdline());
        crate::sp::set_cmdline(M::cmdline);
        Ok(())
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        hostname(M::cmdline(), M::DEFAULT_HOSTNAME, out)
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        param(M::cmdline(), name, out)
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
        anonmmap(size, alignbit)
    }

    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        // SAFETY: forwarded contract: a mapping from `anonmmap` of `len` bytes.
        unsafe { unmap(addr, len) }
    }

    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        M::Disks::open(name, flags)
    }

    fn close(&self, fd: c_int) -> HyperResult<()> {
        M::Disks::close(fd)
    }

    fn getfileinfo(&self, name: &CStr, _want_size: bool) -> HyperResult<(u64, FileType)> {
        M::Disks::getfileinfo(name)
    }

    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (writable iovecs).
        unsafe { M::Disks::iov(fd, iov, off, false) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract (readable iovecs).
        unsafe { M::Disks::iov(fd, iov, off, true) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, _start: u64, _len: u64) -> HyperResult<()> {
        M::Disks::sync(fd, flags.write)
    }

    fn bio(&self, req: BioRequest) {
        M::Disks::bio(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(M::wall())
    }

    #[inline]
    fn clock_monotonic(&self) -> MonoNanos {
        M::now_ns()
    }

    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        crate::random::fill(buf, flags)
    }

    fn putchar(&self, c: u8) {
        M::console_write(&[c]);
    }

    fn console_write(&self, bytes: &[u8]) {
        M::console_write(bytes);
    }

    fn set_errno(&self, error: c_int) {
        // No libc errno: the green thread keeps it (`rumpuser_*_errno`).
        rumpuser_green::sched_core::set_errno(error);
    }

    fn kill(&self, _pid: i64, _sig: c_int) -> HyperResult<()> {
        // There is no host process to signal: the advice is ignored, as
        // on rumprun (the kernel ignores the return value).
        Ok(())
    }

    fn exit(&self, how: ExitKind) -> ! {
        M::exit(exit_value(M::WHO, how))
    }

    fn sysproxy(&self) -> Option<&dyn rumpuser_core::sysproxy::SysProxy> {
        // On the guest kernel's own sockets, for every PVH machine.
        Some(&crate::sp::SYSPROXY)
    }
}

/// The fatal-error handler of `rumpuser_core::diag` on machine `M`: ends
/// with [`crate::status::PANIC`].
fn fatal<M: Machine>() -> ! {
    M::exit(crate::status::PANIC)
}

/// Stack size of kernel threads (`RUMPUSER_STACK`, default 256 KiB).
static STACK_SIZE: AtomicUsize = AtomicUsize::new(256 * 1024);

/// The stack size of kernel threads.
pub fn stack_size() -> usize {
    STACK_SIZE.load(Ordering::Relaxed)
}

/// Takes `RUMPUSER_STACK` (at least 16 KiB) from the command line.
pub fn set_stack_size(cmdline: &str) {
    if let Some(s) = crate::cmdline::param_u64(cmdline, "RUMPUSER_STACK") {
        STACK_SIZE.store((s as usize).max(16 * 1024), Ordering::Relaxed);
    }
}

/// `rumpuser_getparam("_RUMPUSER_HOSTNAME")`: `hostname=` or
/// `RUMP_HOSTNAME=` from the command line, else `default`.
pub fn hostname(cmdline: &str, default: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
    let h = crate::cmdline::param(cmdline, "hostname")
        .or_else(|| crate::cmdline::param(cmdline, "RUMP_HOSTNAME"))
        .filter(|h| !h.is_empty())
        .unwrap_or(default);
    out.push_str(h);
    Ok(())
}

/// `rumpuser_getparam`: the command line's `name=value`, else (for
/// `RUMP_MEMLIMIT`) half of the heap.
pub fn param(cmdline: &str, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
    if let Some(v) = crate::cmdline::param(cmdline, name) {
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

/// `rumpuser_anonmmap`: one identity-mapped address space, so "mapping"
/// is zeroed, page aligned heap memory (executable like all memory
/// here); the placement hint cannot be honoured and is not needed when
/// the kernel is linked statically.
pub fn anonmmap(size: usize, alignbit: u32) -> HyperResult<NonNull<u8>> {
    if size == 0 || alignbit >= 40 {
        return Err(Errno::EINVAL);
    }
    let align = (1usize << alignbit).max(4096);
    crate::heap::alloc_zeroed(size.next_multiple_of(4096), align).ok_or(Errno::ENOMEM)
}

/// `rumpuser_unmap` of an [`anonmmap`] mapping.
///
/// # Safety
/// `addr` is null or a mapping from [`anonmmap`] of `len` bytes, unused
/// afterwards.
pub unsafe fn unmap(addr: *mut c_void, len: usize) {
    if let Some(p) = NonNull::new(addr.cast::<u8>()) {
        // SAFETY: the caller's contract: a mapping from `anonmmap` of `len` bytes.
        unsafe { crate::heap::free(p, len.next_multiple_of(4096)) }
    }
}

/// Reports `rumpuser_exit` on the console (as `who`) and returns the
/// [`crate::status`] value to end with.
pub fn exit_value(who: &str, how: rumpuser_core::types::ExitKind) -> u32 {
    match how {
        rumpuser_core::types::ExitKind::Panic => {
            crate::kprintln!("{who}: rumpuser_exit(RUMPUSER_PANIC)");
            crate::status::PANIC
        }
        rumpuser_core::types::ExitKind::Status(s) => {
            crate::kprintln!("{who}: halted (exit status {s})");
            crate::status::from_exit_value(s)
        }
    }
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
