//! The host half ([`rumpuser_core::Host`]) both Linux flavours share:
//! [`PosixHost`], this crate's modules behind the trait, with the few
//! things a flavour does its own way supplied by its [`Flavour`] (starting
//! up, block I/O that has to wait, the syscall proxy, and the monotonic
//! clock, which green's deterministic mode makes virtual).

use crate::sys::{self, mem};
use crate::{clock, console, daemonize, dl, file, param, random, signal};
use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use rumpuser_core::abi::{CompLoadFn, IoVec, ModinitFn, SymloadFn};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, Host, HyperResult};

/// What a flavour adds to [`PosixHost`].
pub trait Flavour: Sync + 'static {
    /// The flavour's part of `rumpuser_init`, after the shared one (the
    /// fatal-error handler, timer slack, entropy).
    fn init(&self) -> HyperResult<()> {
        Ok(())
    }

    /// `rumpuser_bio` for a request [`Flavour::bio_try_now`] handed back:
    /// start it; it completes through its `BioDone`. Called with the
    /// virtual CPU released.
    fn bio(&self, req: BioRequest);

    /// A request the caller may complete at once, with its CPU held
    /// (default: a read from the page cache or the descriptor's mapping,
    /// [`crate::blockio::try_now`]).
    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        crate::blockio::try_now(req)
    }

    /// The syscall proxy server (`None`: `rumpuser_sp_init` fails with
    /// `EOPNOTSUPP`).
    fn sysproxy(&self) -> Option<&dyn SysProxy> {
        None
    }

    /// The monotonic clock (default: the host's).
    #[inline]
    fn clock_monotonic(&self) -> MonoNanos {
        clock::monotonic()
    }

    /// The monotonic clock as seconds and nanoseconds (default: the
    /// host's, already split, so no 64-bit division).
    #[inline]
    fn clock_monotonic_parts(&self) -> (i64, i64) {
        clock::monotonic_parts()
    }
}

/// The POSIX host half of a Linux flavour, over this crate's modules.
#[derive(Debug)]
pub struct PosixHost<F>(pub F);

impl<F: Flavour> Host for PosixHost<F> {
    fn init_host(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(signal::abort_now);
        // A kernel's sleeps end in the host's timers: 1 ns slack.
        clock::tight_timer_slack();
        random::init()?;
        self.0.init()
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        param::hostname(out)
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        param::env(name, out)
    }

    #[inline]
    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        mem::malloc(len, align)
    }

    #[inline]
    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded contract of `Host::free`.
        unsafe { mem::free(ptr, len) }
    }

    fn anonmmap(
        &self,
        hint: *mut c_void,
        size: usize,
        alignbit: u32,
        exec: bool,
    ) -> HyperResult<NonNull<u8>> {
        mem::anonmmap(hint, size, alignbit, exec)
    }

    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        // SAFETY: forwarded contract of `Host::unmap`.
        unsafe { mem::unmap(addr, len) }
    }

    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        file::open(name, flags)
    }

    fn close(&self, fd: c_int) -> HyperResult<()> {
        file::close(fd)
    }

    fn getfileinfo(&self, name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)> {
        file::getfileinfo(name, want_size)
    }

    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract of `Host::iovread`.
        unsafe { sys::fs::iovread(fd, iov, off) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract of `Host::iovwrite`.
        unsafe { sys::fs::iovwrite(fd, iov, off) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, start: u64, len: u64) -> HyperResult<()> {
        file::syncfd(fd, flags, start, len)
    }

    fn bio(&self, req: BioRequest) {
        self.0.bio(req)
    }

    #[inline]
    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        self.0.bio_try_now(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(clock::wall())
    }

    #[inline]
    fn clock_monotonic(&self) -> MonoNanos {
        self.0.clock_monotonic()
    }

    #[inline]
    fn clock_monotonic_parts(&self) -> (i64, i64) {
        self.0.clock_monotonic_parts()
    }

    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        random::fill(buf, flags)
    }

    fn putchar(&self, c: u8) {
        console::putchar(c)
    }

    fn console_write(&self, bytes: &[u8]) {
        console::write_stderr(bytes)
    }

    fn set_errno(&self, error: c_int) {
        // The application reads its host thread's errno right after the
        // call (on green too: an application thread is bound to its host
        // thread).
        sys::set_errno(error)
    }

    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()> {
        signal::kill(pid, sig)
    }

    fn exit(&self, how: ExitKind) -> ! {
        signal::exit(how)
    }

    fn dl_bootstrap(&self, modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
        dl::bootstrap(modinit, symload, compload)
    }

    fn daemonize_begin(&self) -> HyperResult<()> {
        daemonize::begin().map_err(Errno::from_raw)
    }

    fn daemonize_done(&self, error: c_int) -> HyperResult<()> {
        daemonize::done(error).map_err(Errno::from_raw)
    }

    fn sysproxy(&self) -> Option<&dyn SysProxy> {
        self.0.sysproxy()
    }
}
