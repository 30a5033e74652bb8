//! `rumpuser-posix`: the rumpuser v17 hypercall layer for Linux userspace,
//! on host threads.
//!
//! Threads, curlwp, locks and the block I/O pool live here ([`thread`],
//! [`curlwp`], [`sync`], [`bio`]); files, memory, clocks, randomness,
//! console, signals, parameters, dl and daemonize come from
//! `rumpuser-host`, which the green flavour shares. This file only joins
//! them into the [`Hypervisor`] implementation and exports the C ABI.

pub mod bio;
pub mod curlwp;
pub mod sp;
pub mod sync;
pub mod thread;

use rumpuser_host::{clock, console, daemonize, dl, file, mem, param, random, signal, sys};

use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;
use rumpuser_core::abi::{CompLoadFn, IoVec, Lwp, ModinitFn, SymloadFn, ThreadFn};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::types::*;
use rumpuser_core::{Errno, HyperResult, Hypervisor, SendPtr};

/// The POSIX hypervisor. Stateless: all state lives in the modules.
pub struct Posix;

/// The instance exported through the C ABI.
pub static POSIX: Posix = Posix;

rumpuser_core::export_rumpuser!(&crate::POSIX);

/// The C allocator, with small cache-line-aligned blocks (the lock objects)
/// from a slab instead of `posix_memalign` (see `rumpuser_host::alloc`).
#[global_allocator]
static ALLOCATOR: rumpuser_host::alloc::Allocator = rumpuser_host::alloc::Allocator;

impl Hypervisor for Posix {
    type Mutex = sync::RawMutex;
    type RwLock = sync::RawRwLock;
    type Cond = sync::Condvar;
    type Thread = thread::JoinHandle;

    const NAME: &'static str = "posix";

    fn init(&self) -> HyperResult<()> {
        rumpuser_core::diag::set_fatal(signal::abort_now);
        clock::tight_timer_slack();
        random::init()
    }

    fn ncpu(&self) -> u32 {
        param::ncpu()
    }

    fn hostname(&self, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        param::hostname(out)
    }

    fn param(&self, name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
        param::env(name, out)
    }

    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        mem::malloc(len, align)
    }

    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: forwarded contract of `Hypervisor::free`.
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
        // SAFETY: forwarded contract of `Hypervisor::unmap`.
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
        // SAFETY: forwarded contract of `Hypervisor::iovread`.
        unsafe { file::iovread(fd, iov, off) }
    }

    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: forwarded contract of `Hypervisor::iovwrite`.
        unsafe { file::iovwrite(fd, iov, off) }
    }

    fn syncfd(&self, fd: c_int, flags: SyncFlags, start: u64, len: u64) -> HyperResult<()> {
        file::syncfd(fd, flags, start, len)
    }

    fn bio(&self, req: BioRequest) {
        bio::submit(req)
    }

    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        rumpuser_host::blockio::try_now(req)
    }

    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        Ok(clock::wall())
    }

    fn clock_monotonic(&self) -> MonoNanos {
        clock::monotonic()
    }

    #[inline]
    fn clock_monotonic_parts(&self) -> (i64, i64) {
        clock::monotonic_parts()
    }

    fn sleep_until(&self, deadline: MonoNanos) {
        clock::sleep_until(deadline)
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
        sys::set_errno(error)
    }

    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()> {
        signal::kill(pid, sig)
    }

    fn exit(&self, how: ExitKind) -> ! {
        signal::exit(how)
    }

    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Self::Thread>> {
        thread::create(entry, arg, spec)
    }

    fn thread_exit(&self) -> ! {
        thread::exit()
    }

    fn thread_join(&self, t: Self::Thread) -> HyperResult<()> {
        thread::join(t)
    }

    #[inline]
    fn curlwp(&self) -> *mut Lwp {
        curlwp::get()
    }

    #[inline]
    fn set_curlwp(&self, l: *mut Lwp) {
        curlwp::set(l)
    }

    fn describe_thread(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        thread::describe_current(out)
    }

    fn mutex_new(&self, _flags: MutexFlags) -> sync::RawMutex {
        sync::RawMutex::new()
    }
    #[inline]
    fn mutex_try_lock(&self, m: &sync::RawMutex) -> bool {
        m.try_lock()
    }
    #[inline]
    fn mutex_lock(&self, m: &sync::RawMutex) {
        m.lock()
    }
    #[inline]
    fn mutex_unlock(&self, m: &sync::RawMutex) {
        m.unlock()
    }
    fn mutex_is_locked(&self, m: &sync::RawMutex) -> bool {
        m.is_locked()
    }

    fn rw_new(&self) -> sync::RawRwLock {
        sync::RawRwLock::new()
    }
    #[inline]
    fn rw_try_read(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_read()
    }
    #[inline]
    fn rw_read(&self, rw: &sync::RawRwLock) {
        rw.read()
    }
    #[inline]
    fn rw_try_write(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_write()
    }
    #[inline]
    fn rw_write(&self, rw: &sync::RawRwLock) {
        rw.write()
    }
    #[inline]
    fn rw_unlock_read(&self, rw: &sync::RawRwLock) {
        rw.unlock_read()
    }
    #[inline]
    fn rw_try_unlock_read(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_unlock_read()
    }
    #[inline]
    fn rw_unlock_write(&self, rw: &sync::RawRwLock) {
        rw.unlock_write()
    }
    fn rw_downgrade(&self, rw: &sync::RawRwLock) {
        rw.downgrade()
    }
    fn rw_try_upgrade(&self, rw: &sync::RawRwLock) -> bool {
        rw.try_upgrade()
    }
    #[inline]
    fn rw_is_write_locked(&self, rw: &sync::RawRwLock) -> bool {
        rw.is_write_locked()
    }
    #[inline]
    fn rw_has_readers(&self, rw: &sync::RawRwLock) -> bool {
        rw.has_readers()
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

    fn sysproxy(&self) -> Option<&dyn rumpuser_core::sysproxy::SysProxy> {
        Some(&sp::SYSPROXY)
    }

    fn cond_new(&self) -> sync::Condvar {
        sync::Condvar::new()
    }
    fn cond_wait(
        &self,
        c: &sync::Condvar,
        m: &sync::RawMutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome {
        if c.wait_unlocked(m, deadline) {
            WaitOutcome::TimedOut
        } else {
            WaitOutcome::Woken
        }
    }
    #[inline]
    fn cond_signal(&self, c: &sync::Condvar) {
        c.notify_one()
    }
    #[inline]
    fn cond_broadcast(&self, c: &sync::Condvar) {
        c.notify_all()
    }
}
