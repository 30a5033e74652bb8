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

/// The rumpuser v17 hypercall layer of one platform.
///
/// Implement it for a zero-sized (or static) type and export it with
/// [`crate::export_rumpuser!`]. See `ARCHITECTURE.md` for how a call flows.
pub trait Hypervisor: Sync + 'static {
    /// A mutex that can block the host thread (no owner tracking needed).
    type Mutex: Send + Sync;
    /// A reader/writer lock.
    type RwLock: Send + Sync;
    /// A condition variable usable with [`Hypervisor::Mutex`].
    type Cond: Send + Sync;
    /// Join handle of a joinable thread.
    type Thread: Send;

    /// Short platform name for diagnostics (`"posix"`, `"green"`, ...).
    const NAME: &'static str;

    // ---- init and parameters -------------------------------------------

    /// `rumpuser_init`: prepare the platform (entropy, TLS, clocks). The
    /// version has been checked and the upcall table stored already.
    /// Must not call upcalls.
    fn init(&self) -> HyperResult<()>;

    /// Number of virtual CPUs to report for `_RUMPUSER_NCPU` (≥ 1).
    fn ncpu(&self) -> u32;

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
    /// `ptr` came from [`Hypervisor::malloc`] with this `len`, not yet freed.
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

    /// Sleep until the monotonic clock reaches `deadline`; never earlier. # Blocking
    fn sleep_until(&self, deadline: MonoNanos);

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

    /// The calling thread's lwp, NULL if none. Hot path: lock-free, cheap.
    fn curlwp(&self) -> *mut Lwp;

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

    /// The syscall proxy, if this platform has one.
    fn sysproxy(&self) -> Option<&dyn crate::sysproxy::SysProxy> {
        None
    }
}

/// Forces the callback type names into the docs' link graph.
#[doc(hidden)]
pub type _BiodoneFn = BiodoneFn;
