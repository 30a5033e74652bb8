//! The one trait a platform implements: [`Hypervisor`].
//!
//! Methods are the host primitives only. Everything the contract asks on
//! top of them is done once, in [`crate::ffi`]: argument validation, errno
//! numbering, releasing and retaking the virtual CPU around blocking calls
//! (`KLOCK_WRAP`), the cv reacquire order, mutex owner and rwlock writer
//! tracking, curlwp transition checks, and the getparam namespace.
//!
//! Blocking methods are marked `# Blocking`: the core has already released
//! the caller's virtual CPU when it calls them, so they may block the host
//! (or green) thread for as long as they need. Methods not marked so must
//! not block on anything the kernel could be holding.

use crate::abi::{BiodoneFn, CompLoadFn, IoVec, Lwp, ModinitFn, SymloadFn, ThreadFn};
use crate::bio::BioRequest;
use crate::errno::Errno;
use crate::types::*;
use core::ffi::{c_int, c_void, CStr};
use core::ptr::NonNull;

/// Result of a hypercall: NetBSD errno on failure.
pub type HyperResult<T> = Result<T, Errno>;

/// A raw pointer that a platform may move to another host thread because
/// the contract hands ownership of what it points to across (thread
/// arguments, bio buffers).
#[derive(Clone, Copy, Debug)]
pub struct SendPtr(pub *mut c_void);

// SAFETY: `SendPtr` only carries addresses the kernel explicitly hands to
// another thread (thread start arguments, bio buffers and completion
// cookies); the kernel guarantees they stay valid until the consumer is done.
unsafe impl Send for SendPtr {}
// SAFETY: see `Send`; the pointer itself is never dereferenced through a shared `SendPtr`.
unsafe impl Sync for SendPtr {}

/// The scheduling half of a platform: threads, locks, condition
/// variables, curlwp, sleeping, and the component bracket.
///
/// Shared implementations: posix's host threads (`rumpuser-posix`), and
/// green threads (`rumpuser_green::GreenSched`, used by the POSIX green
/// flavour, bare metal and Xen).
pub trait Sched: Sync + 'static {
    /// `rumpuser_init`, after [`Host::init_host`]: start the scheduling
    /// half (a green scheduler takes over the calling thread). Must not
    /// call upcalls. Default: nothing.
    fn init_sched(&self) -> HyperResult<()> {
        Ok(())
    }

    /// A mutex that can block the host thread (no owner tracking needed).
    type Mutex: Send + Sync;
    /// A reader/writer lock.
    type RwLock: Send + Sync;
    /// A condition variable usable with [`Sched::Mutex`].
    type Cond: Send + Sync;
    /// Join handle of a joinable thread.
    type Thread: Send;

    /// Number of virtual CPUs to report for `_RUMPUSER_NCPU` (≥ 1).
    fn ncpu(&self) -> u32;

    /// Sleep until the monotonic clock reaches `deadline`; never earlier. # Blocking
    fn sleep_until(&self, deadline: MonoNanos);

    // ---- threads and curlwp --------------------------------------------

    /// `rumpuser_thread_create`: run `entry(arg)` on a new thread with no CPU
    /// and no curlwp. Returns a join handle iff `spec.joinable`.
    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Self::Thread>>;

    /// `rumpuser_thread_exit`: end the calling thread without unwinding.
    fn thread_exit(&self) -> !;

    /// `rumpuser_thread_join`. # Blocking
    fn thread_join(&self, thread: Self::Thread) -> HyperResult<()>;

    /// The calling thread's lwp, NULL if none. Hot path: lock-free, cheap
    /// (every lock operation reads it for the owner record).
    fn curlwp(&self) -> *mut Lwp;

    /// `rumpuser_curlwp` itself, the kernel asking: a platform may note
    /// that it does (green warns about kernels that never ask, built with
    /// `RUMP_CURLWP=__thread`). Default: [`curlwp`](Self::curlwp).
    fn kernel_curlwp(&self) -> *mut Lwp {
        self.curlwp()
    }

    /// Binds `l` (or NULL) to the calling thread.
    fn set_curlwp(&self, l: *mut Lwp);

    /// Names the calling host (or green) thread in a diagnostic, e.g.
    /// `host thread 4242 "kthread"`. Called only on the way to an abort
    /// (lock misuse, see [`crate::lockcheck`]), so it may be slow; it must
    /// not allocate or take locks. Default: nothing known.
    fn describe_thread(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        out.write_str("an unidentified thread")
    }

    // ---- locks ----------------------------------------------------------

    /// A new unlocked mutex (flags are informational for the platform).
    fn mutex_new(&self, flags: MutexFlags) -> Self::Mutex;
    /// Acquire without blocking.
    fn mutex_try_lock(&self, m: &Self::Mutex) -> bool;
    /// Acquire, blocking the host thread if needed; never calls upcalls.
    fn mutex_lock(&self, m: &Self::Mutex);
    /// Release.
    fn mutex_unlock(&self, m: &Self::Mutex);
    /// Someone holds it (a snapshot; `rumpuser_mutex_destroy` asks, to
    /// refuse destroying a held mutex). Default: a try and, if it
    /// succeeded, a release, which suits a platform whose try is cheap;
    /// override it with a plain read of the lock word where there is one.
    fn mutex_is_locked(&self, m: &Self::Mutex) -> bool {
        if self.mutex_try_lock(m) {
            self.mutex_unlock(m);
            false
        } else {
            true
        }
    }

    /// A new unlocked rwlock.
    fn rw_new(&self) -> Self::RwLock;
    /// Shared acquire without blocking.
    fn rw_try_read(&self, rw: &Self::RwLock) -> bool;
    /// Shared acquire, blocking the host thread if needed.
    fn rw_read(&self, rw: &Self::RwLock);
    /// Exclusive acquire without blocking.
    fn rw_try_write(&self, rw: &Self::RwLock) -> bool;
    /// Exclusive acquire, blocking the host thread if needed.
    fn rw_write(&self, rw: &Self::RwLock);
    /// Release a shared hold.
    fn rw_unlock_read(&self, rw: &Self::RwLock);
    /// Release a shared hold if the lock has one; `false` if it was free or
    /// write-held, with nothing released (`rumpuser_rw_exit` then aborts
    /// with a misuse report). Default: asks [`rw_has_readers`](Self::rw_has_readers)
    /// first; override it where the release itself tells (a counter's old
    /// value), so that the check costs nothing.
    fn rw_try_unlock_read(&self, rw: &Self::RwLock) -> bool {
        if self.rw_has_readers(rw) {
            self.rw_unlock_read(rw);
            true
        } else {
            false
        }
    }
    /// Release the exclusive hold.
    fn rw_unlock_write(&self, rw: &Self::RwLock);
    /// Exclusive → one shared hold, atomically: no writer can get in between. Never blocks.
    fn rw_downgrade(&self, rw: &Self::RwLock);
    /// Shared → exclusive iff the caller is the only holder. Never blocks.
    fn rw_try_upgrade(&self, rw: &Self::RwLock) -> bool;
    /// Someone holds it exclusively.
    fn rw_is_write_locked(&self, rw: &Self::RwLock) -> bool;
    /// At least one reader holds it.
    fn rw_has_readers(&self, rw: &Self::RwLock) -> bool;

    /// A new condition variable.
    fn cond_new(&self) -> Self::Cond;
    /// Atomically release `m` (held by the caller) and wait for a signal or
    /// the monotonic `deadline`. Returns **without** `m` held; the core
    /// reacquires it in the order the contract mandates.
    fn cond_wait(
        &self,
        c: &Self::Cond,
        m: &Self::Mutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome;
    /// Wake at least one waiter.
    fn cond_signal(&self, c: &Self::Cond);
    /// Wake every waiter.
    fn cond_broadcast(&self, c: &Self::Cond);

    /// `rumpuser_component_unschedule`, after the CPU is released: the
    /// component is about to block in a host call. A platform that runs
    /// every kernel thread on one host thread (green) moves the caller to a
    /// helper host thread here, so the others keep running. Default:
    /// nothing.
    fn component_block_begin(&self) {}

    /// `rumpuser_component_schedule`, before the CPU is taken again, on
    /// whatever host thread [`component_block_begin`](Self::component_block_begin)
    /// left the caller on. Default: nothing.
    fn component_block_end(&self) {}
}

/// The host half of a platform: parameters, memory, files and block I/O,
/// clocks, randomness, console, errno, signals, exit, components,
/// daemonizing and the syscall proxy.
///
/// Shared implementations: `rumpuser_host::PosixHost` (both Linux
/// flavours) and the PVH host of bare metal and Xen.
pub trait Host: Sync + 'static {
    // ---- init and parameters -------------------------------------------

    /// `rumpuser_init`, first: prepare the host half (entropy, TLS,
    /// clocks). The version has been checked and the upcall table stored
    /// already. Must not call upcalls.
    fn init_host(&self) -> HyperResult<()>;

    /// Writes the initial host name for `_RUMPUSER_HOSTNAME`.
    fn hostname(&self, out: &mut crate::param::ParamWriter<'_>) -> HyperResult<()>;

    /// Any other (non-`_`) parameter, e.g. `RUMP_VERBOSE`; `ENOENT` if unset.
    /// Write the value with `out`, which reports `ERANGE` if it does not fit.
    fn param(&self, name: &str, out: &mut crate::param::ParamWriter<'_>) -> HyperResult<()>;

    // ---- memory --------------------------------------------------------

    /// `rumpuser_malloc`: `align` is a power of two ≥ pointer size (validated).
    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>>;

    /// `rumpuser_free`.
    ///
    /// # Safety
    /// `ptr` came from [`Host::malloc`] with this `len`, not yet freed.
    unsafe fn free(&self, ptr: NonNull<u8>, len: usize);

    /// `rumpuser_anonmmap`: anonymous zeroed memory aligned to `1 << alignbit`.
    fn anonmmap(
        &self,
        hint: *mut c_void,
        size: usize,
        alignbit: u32,
        exec: bool,
    ) -> HyperResult<NonNull<u8>>;

    /// `rumpuser_unmap`.
    ///
    /// # Safety
    /// The range is a mapping the caller owns and no longer uses.
    unsafe fn unmap(&self, addr: *mut c_void, len: usize);

    // ---- files and block I/O -------------------------------------------

    /// `rumpuser_open`. # Blocking
    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int>;

    /// `rumpuser_close`. # Blocking
    fn close(&self, fd: c_int) -> HyperResult<()>;

    /// `rumpuser_getfileinfo`: size (only computed if `want_size`) and type. # Blocking
    fn getfileinfo(&self, name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)>;

    /// `rumpuser_iovread`: `off` is `None` for "current position". # Blocking
    ///
    /// # Safety
    /// Every iovec describes writable memory valid for the call.
    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize>;

    /// `rumpuser_iovwrite`. # Blocking
    ///
    /// # Safety
    /// Every iovec describes readable memory valid for the call.
    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize>;

    /// `rumpuser_syncfd`. # Blocking
    fn syncfd(&self, fd: c_int, flags: SyncFlags, start: u64, len: u64) -> HyperResult<()>;

    /// `rumpuser_bio`: start the transfer and arrange for `req.done` to be
    /// completed exactly once, from any thread that has a kernel lwp (see
    /// [`crate::bio`]). Completing inline is allowed. # Blocking (enqueue only)
    fn bio(&self, req: BioRequest);

    /// `rumpuser_bio`'s first attempt, made with the virtual CPU still held
    /// (the scheduling discipline: try first, release the CPU only to
    /// wait). Complete `req` here only if that needs no waiting (a
    /// page-cache hit), with [`BioDone::complete_scheduled`](crate::bio::BioDone::complete_scheduled),
    /// and return `Ok(())`; otherwise hand it back untouched for
    /// [`bio`](Self::bio), which runs with the CPU released. Default: hand
    /// every request back. # Non-blocking
    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        Err(req)
    }

    // ---- clocks, random, console, errno, signals, exit -----------------

    /// Wall-clock time since the epoch as `(sec, nsec)`; never blocks.
    fn clock_wall(&self) -> HyperResult<(i64, i64)>;

    /// Monotonic nanoseconds; never blocks, cheap (`delay()` polls it).
    fn clock_monotonic(&self) -> MonoNanos;

    /// The monotonic clock as `(sec, nsec)` for `rumpuser_clock_gettime`.
    /// Hosts whose clock is already split (POSIX `timespec`) override this
    /// to skip a 64-bit division on a path the kernel polls.
    fn clock_monotonic_parts(&self) -> (i64, i64) {
        let t = self.clock_monotonic();
        ((t / NANOS_PER_SEC) as i64, (t % NANOS_PER_SEC) as i64)
    }

    /// `rumpuser_getrandom`: fill a prefix of `buf`; return its length (≥ 1
    /// for a non-empty buffer) or an error (`EAGAIN` if `nowait` and no entropy).
    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize>;

    /// `rumpuser_putchar`: one console byte; any context.
    fn putchar(&self, c: u8);

    /// Writes formatted `rumpuser_dprintf` output; any context.
    fn console_write(&self, bytes: &[u8]);

    /// `rumpuser_seterrno`: the calling thread's errno (NetBSD value, untranslated).
    fn set_errno(&self, error: c_int);

    /// `rumpuser_kill`: deliver NetBSD signal `sig` (1..) to the hosting process.
    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()>;

    /// `rumpuser_exit`.
    fn exit(&self, how: ExitKind) -> !;

    // ---- optional: dynamic loading, daemonizing, syscall proxy ---------

    /// `rumpuser_dl_bootstrap`. Default: a statically linked kernel, nothing to do.
    fn dl_bootstrap(&self, modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
        let _ = (modinit, symload, compload);
    }

    /// `rumpuser_daemonize_begin`. Default: `EOPNOTSUPP`.
    fn daemonize_begin(&self) -> HyperResult<()> {
        Err(Errno::EOPNOTSUPP)
    }

    /// `rumpuser_daemonize_done`. Default: not daemonizing, `ENOENT`.
    fn daemonize_done(&self, error: c_int) -> HyperResult<()> {
        let _ = error;
        Err(Errno::ENOENT)
    }

    /// The syscall proxy, if this platform has one.
    fn sysproxy(&self) -> Option<&dyn crate::sysproxy::SysProxy> {
        None
    }
}

/// The rumpuser v17 hypercall layer of one platform: its scheduling half
/// and its host half, usually two types joined by [`Platform`] (one type
/// may also implement both).
///
/// Export it with [`crate::export_rumpuser!`]. See `ARCHITECTURE.md` for
/// how a call flows.
pub trait Hypervisor: Sched + Host {}

impl<T: Sched + Host> Hypervisor for T {}

/// A platform made of a scheduling half `S` and a host half `H`: every
/// method goes to its half (statically; nothing is boxed or dynamic).
#[derive(Debug)]
pub struct Platform<S, H> {
    /// The scheduling half.
    pub sched: S,
    /// The host half.
    pub host: H,
}

impl<S, H> Platform<S, H> {
    /// Joins the two halves.
    pub const fn new(sched: S, host: H) -> Self {
        Self { sched, host }
    }
}

impl<S: Sched, H: Sync + 'static> Sched for Platform<S, H> {
    type Mutex = S::Mutex;
    type RwLock = S::RwLock;
    type Cond = S::Cond;
    type Thread = S::Thread;
    #[inline(always)]
    fn init_sched(&self) -> HyperResult<()> {
        self.sched.init_sched()
    }
    #[inline(always)]
    fn ncpu(&self) -> u32 {
        self.sched.ncpu()
    }
    #[inline(always)]
    fn sleep_until(&self, deadline: MonoNanos) {
        self.sched.sleep_until(deadline)
    }
    #[inline(always)]
    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Self::Thread>> {
        self.sched.thread_create(entry, arg, spec)
    }
    #[inline(always)]
    fn thread_exit(&self) -> ! {
        self.sched.thread_exit()
    }
    #[inline(always)]
    fn thread_join(&self, thread: Self::Thread) -> HyperResult<()> {
        self.sched.thread_join(thread)
    }
    #[inline(always)]
    fn curlwp(&self) -> *mut Lwp {
        self.sched.curlwp()
    }
    #[inline(always)]
    fn kernel_curlwp(&self) -> *mut Lwp {
        self.sched.kernel_curlwp()
    }
    #[inline(always)]
    fn set_curlwp(&self, l: *mut Lwp) {
        self.sched.set_curlwp(l)
    }
    #[inline(always)]
    fn describe_thread(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        self.sched.describe_thread(out)
    }
    #[inline(always)]
    fn mutex_new(&self, flags: MutexFlags) -> Self::Mutex {
        self.sched.mutex_new(flags)
    }
    #[inline(always)]
    fn mutex_try_lock(&self, m: &Self::Mutex) -> bool {
        self.sched.mutex_try_lock(m)
    }
    #[inline(always)]
    fn mutex_lock(&self, m: &Self::Mutex) {
        self.sched.mutex_lock(m)
    }
    #[inline(always)]
    fn mutex_unlock(&self, m: &Self::Mutex) {
        self.sched.mutex_unlock(m)
    }
    #[inline(always)]
    fn mutex_is_locked(&self, m: &Self::Mutex) -> bool {
        self.sched.mutex_is_locked(m)
    }
    #[inline(always)]
    fn rw_new(&self) -> Self::RwLock {
        self.sched.rw_new()
    }
    #[inline(always)]
    fn rw_try_read(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_try_read(rw)
    }
    #[inline(always)]
    fn rw_read(&self, rw: &Self::RwLock) {
        self.sched.rw_read(rw)
    }
    #[inline(always)]
    fn rw_try_write(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_try_write(rw)
    }
    #[inline(always)]
    fn rw_write(&self, rw: &Self::RwLock) {
        self.sched.rw_write(rw)
    }
    #[inline(always)]
    fn rw_unlock_read(&self, rw: &Self::RwLock) {
        self.sched.rw_unlock_read(rw)
    }
    #[inline(always)]
    fn rw_try_unlock_read(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_try_unlock_read(rw)
    }
    #[inline(always)]
    fn rw_unlock_write(&self, rw: &Self::RwLock) {
        self.sched.rw_unlock_write(rw)
    }
    #[inline(always)]
    fn rw_downgrade(&self, rw: &Self::RwLock) {
        self.sched.rw_downgrade(rw)
    }
    #[inline(always)]
    fn rw_try_upgrade(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_try_upgrade(rw)
    }
    #[inline(always)]
    fn rw_is_write_locked(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_is_write_locked(rw)
    }
    #[inline(always)]
    fn rw_has_readers(&self, rw: &Self::RwLock) -> bool {
        self.sched.rw_has_readers(rw)
    }
    #[inline(always)]
    fn cond_new(&self) -> Self::Cond {
        self.sched.cond_new()
    }
    #[inline(always)]
    fn cond_wait(
        &self,
        c: &Self::Cond,
        m: &Self::Mutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome {
        self.sched.cond_wait(c, m, deadline)
    }
    #[inline(always)]
    fn cond_signal(&self, c: &Self::Cond) {
        self.sched.cond_signal(c)
    }
    #[inline(always)]
    fn cond_broadcast(&self, c: &Self::Cond) {
        self.sched.cond_broadcast(c)
    }
    #[inline(always)]
    fn component_block_begin(&self) {
        self.sched.component_block_begin()
    }
    #[inline(always)]
    fn component_block_end(&self) {
        self.sched.component_block_end()
    }
}

impl<S: Sync + 'static, H: Host> Host for Platform<S, H> {
    #[inline(always)]
    fn init_host(&self) -> HyperResult<()> {
        self.host.init_host()
    }
    #[inline(always)]
    fn hostname(&self, out: &mut crate::param::ParamWriter<'_>) -> HyperResult<()> {
        self.host.hostname(out)
    }
    #[inline(always)]
    fn param(&self, name: &str, out: &mut crate::param::ParamWriter<'_>) -> HyperResult<()> {
        self.host.param(name, out)
    }
    #[inline(always)]
    fn malloc(&self, len: usize, align: usize) -> HyperResult<NonNull<u8>> {
        self.host.malloc(len, align)
    }
    #[inline(always)]
    unsafe fn free(&self, ptr: NonNull<u8>, len: usize) {
        // SAFETY: the caller's contract of `Host::free`, passed on.
        unsafe { self.host.free(ptr, len) }
    }
    #[inline(always)]
    fn anonmmap(
        &self,
        hint: *mut c_void,
        size: usize,
        alignbit: u32,
        exec: bool,
    ) -> HyperResult<NonNull<u8>> {
        self.host.anonmmap(hint, size, alignbit, exec)
    }
    #[inline(always)]
    unsafe fn unmap(&self, addr: *mut c_void, len: usize) {
        // SAFETY: the caller's contract of `Host::unmap`, passed on.
        unsafe { self.host.unmap(addr, len) }
    }
    #[inline(always)]
    fn open(&self, name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        self.host.open(name, flags)
    }
    #[inline(always)]
    fn close(&self, fd: c_int) -> HyperResult<()> {
        self.host.close(fd)
    }
    #[inline(always)]
    fn getfileinfo(&self, name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)> {
        self.host.getfileinfo(name, want_size)
    }
    #[inline(always)]
    unsafe fn iovread(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: the caller's contract of `Host::iovread`, passed on.
        unsafe { self.host.iovread(fd, iov, off) }
    }
    #[inline(always)]
    unsafe fn iovwrite(&self, fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
        // SAFETY: the caller's contract of `Host::iovwrite`, passed on.
        unsafe { self.host.iovwrite(fd, iov, off) }
    }
    #[inline(always)]
    fn syncfd(&self, fd: c_int, flags: SyncFlags, start: u64, len: u64) -> HyperResult<()> {
        self.host.syncfd(fd, flags, start, len)
    }
    #[inline(always)]
    fn bio(&self, req: BioRequest) {
        self.host.bio(req)
    }
    #[inline(always)]
    fn bio_try_now(&self, req: BioRequest) -> Result<(), BioRequest> {
        self.host.bio_try_now(req)
    }
    #[inline(always)]
    fn clock_wall(&self) -> HyperResult<(i64, i64)> {
        self.host.clock_wall()
    }
    #[inline(always)]
    fn clock_monotonic(&self) -> MonoNanos {
        self.host.clock_monotonic()
    }
    #[inline(always)]
    fn clock_monotonic_parts(&self) -> (i64, i64) {
        self.host.clock_monotonic_parts()
    }
    #[inline(always)]
    fn getrandom(&self, buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
        self.host.getrandom(buf, flags)
    }
    #[inline(always)]
    fn putchar(&self, c: u8) {
        self.host.putchar(c)
    }
    #[inline(always)]
    fn console_write(&self, bytes: &[u8]) {
        self.host.console_write(bytes)
    }
    #[inline(always)]
    fn set_errno(&self, error: c_int) {
        self.host.set_errno(error)
    }
    #[inline(always)]
    fn kill(&self, pid: i64, sig: c_int) -> HyperResult<()> {
        self.host.kill(pid, sig)
    }
    #[inline(always)]
    fn exit(&self, how: ExitKind) -> ! {
        self.host.exit(how)
    }
    #[inline(always)]
    fn dl_bootstrap(&self, modinit: ModinitFn, symload: SymloadFn, compload: CompLoadFn) {
        self.host.dl_bootstrap(modinit, symload, compload)
    }
    #[inline(always)]
    fn daemonize_begin(&self) -> HyperResult<()> {
        self.host.daemonize_begin()
    }
    #[inline(always)]
    fn daemonize_done(&self, error: c_int) -> HyperResult<()> {
        self.host.daemonize_done(error)
    }
    #[inline(always)]
    fn sysproxy(&self) -> Option<&dyn crate::sysproxy::SysProxy> {
        self.host.sysproxy()
    }
}

/// Forces the callback type names into the docs' link graph.
#[doc(hidden)]
pub type _BiodoneFn = BiodoneFn;
