//! Lock misuse: the checks [`crate::ffi`] makes on mutexes and rwlocks,
//! and the abort that reports one.
//!
//! NetBSD's pthread `librumpuser` makes its mutexes
//! `PTHREAD_MUTEX_ERRORCHECK` and aborts on every failed pthread call, so
//! re-entering a held mutex, releasing one the thread does not hold and
//! destroying a held one end the process with a message, and NetBSD's
//! kernel tests expect exactly that (a `SIGABRT`) instead of a hang. This
//! library does the same on every platform, because the checks live here
//! and not in the platforms' locks: the process aborts (through
//! [`diag::fatal`], i.e. the platform's abort) after one console line
//! naming the operation, the lock (its `struct rumpuser_mtx *` or
//! `struct rumpuser_rw *` and, for a mutex, its flags), the calling lwp
//! and the calling host or green thread ([`Sched::describe_thread`](crate::Sched::describe_thread)):
//!
//! ```text
//! rumpuser: lock misuse: mutex_enter: mutex 0x5612a8c0 (KMUTEX) is already held by the caller (self-deadlock); caller: lwp 0x7ffc1000 on host thread 4242 "kthread"
//! ```
//!
//! # What is checked
//!
//! | misuse | where it is noticed |
//! |---|---|
//! | `mutex_enter`/`_nowrap` of a mutex the calling lwp holds | after the try failed, before blocking |
//! | `mutex_exit` of a mutex the calling lwp does not hold (free, or held by another lwp) | every exit |
//! | `mutex_destroy` of a held mutex | every destroy |
//! | `cv_wait`/`_timedwait`/`_nowrap` with a mutex the calling lwp does not hold | every wait, after the CPU was released |
//! | `rw_enter(WRITER)` or `rw_enter(READER)` of an rwlock the calling lwp holds for writing | after the try failed, before blocking |
//! | `rw_exit` of an rwlock that is free, or write-held by another lwp | every exit |
//! | `rw_downgrade` of an rwlock the calling lwp does not hold for writing | every downgrade |
//! | `rw_destroy` of a held rwlock | every destroy |
//!
//! `mutex_tryenter` and `rw_tryenter` of a lock the caller holds return
//! `EBUSY`, as the reference's do (klock.c relies on `tryenter` failing
//! quietly); nothing hangs there.
//!
//! # Identity: the lwp
//!
//! A holder is identified by its lwp (`rumpuser_curlwp()`), the identity
//! the kernel itself uses (`mutex_owned()` is `owner == curlwp`), recorded
//! in [`MutexObj::owner`](crate::objects::MutexObj) on every acquisition
//! of every mutex (the contract requires it for KMUTEX; recording it for
//! SPIN-only ones too costs the same store) and in
//! [`RwObj::writer`](crate::objects::RwObj) for a write hold. Only the
//! holder ever stores its own lwp there, and it clears it before it
//! releases, so a thread that reads its own lwp back holds the lock:
//! the self-deadlock checks need no atomics beyond the relaxed load, and
//! no false positive can come from a race with other threads.
//!
//! A thread without an lwp (curlwp NULL) is never taken for a holder:
//! SPIN-only mutexes are taken that way legitimately (scheduler.c's
//! `lwp0busy` and the CPU mutexes in `rump_schedule` before an lwp
//! exists, threads.c's `threadbouncer` before its `curlwpop(SET)`), so
//! such a thread's re-entry is not detected here (the green scheduler's
//! own mutex still halts with a message on it). Its enter and its exit
//! both see NULL, so its exit passes.
//!
//! # Decisions, from the kernel's code
//!
//! * **An exit by another lwp than the one that entered is misuse.** No
//!   path in sys/rump/librump/rumpkern does it: locks.c's `mutex_exit` is
//!   the caller's own; klock.c releases the giant lock only from the
//!   `giantowner` lwp (`_kernel_unlock`), and `rump_lwproc_switch` drops
//!   the old lwp's giant holds before `curlwpop(CLEAR)` and takes them
//!   for the new lwp after `SET`; tsleep's `rump_kernel_bigwrap` keeps
//!   the giant mutex held by the same thread across its cv wait;
//!   scheduler.c and threads.c enter and exit every SPIN-only mutex in
//!   one function with curlwp unchanged in between (`lwp0busy`,
//!   `lwp0rele`, `rump_schedule_cpu_interlock`, `threadbouncer`,
//!   `lwpbouncer`, `lwp_create`, `lwp_exit`); lwproc.c's
//!   `lwproc_makelwp` releases `p_lock` before it switches lwps. The
//!   reference agrees: an error-checking pthread mutex fails the unlock
//!   of a mutex another thread holds, and it aborts.
//! * **cv waits.** The wait clears the owner after the CPU is released
//!   (contract 2.5 step 4) and records it again when the mutex is
//!   retaken, so a holder's exit after the wait passes. The "held by the
//!   caller" check of a wait runs *after* the CPU was released, because
//!   of the one caller that does not hold its mutex: scheduler.c's
//!   `rump_schedlock_cv_wait(cv)` waits on its CPU's scheduler mutex
//!   without holding it, and `hyp_backend_unschedule` takes that mutex
//!   (through `rumpuser_mutex_enter_nowrap`, so with the owner recorded)
//!   before it releases the CPU; `hyp_backend_schedule` releases it with
//!   `rumpuser_mutex_exit` after the hypervisor retook it, again
//!   recorded. Both passes are by the waiting lwp, so nothing is flagged.
//! * **Mode changes.** `rw_tryupgrade` records the writer after it
//!   succeeded; `rw_downgrade` checks that the caller is the writer,
//!   clears the writer and converts. `rw_exit` tells the hold from the
//!   lock state (a write-held lock can only be held by the caller if the
//!   caller holds it at all), so a downgraded hold is released as a read
//!   hold and an upgraded one as the write hold.
//!
//! # Not detected
//!
//! Read holds are counted, not attributed, so these stay undetected (the
//! reference does not detect them either; NetBSD's own kernel tests
//! expect them to be caught only by LOCKDEBUG): `rw_enter(WRITER)` by an
//! lwp that holds a read hold (a deadlock: it waits for itself), a second
//! `rw_enter(READER)` while a writer waits, `rw_exit` of a read hold by an
//! lwp that has none while others read, and `rw_tryupgrade` without a
//! read hold. Neither is a mutex or rwlock destroyed twice (the object is
//! gone after the first).
//!
//! # Cost
//!
//! The self-deadlock checks run only when the try failed and the caller
//! is about to wait. A mutex or write release compares the recorded lwp,
//! on the line the release writes anyway, with the caller's (an
//! initial-exec TLS load on POSIX); a read release learns from the
//! release itself that there was no read hold
//! ([`Sched::rw_try_unlock_read`](crate::Sched::rw_try_unlock_read)). BENCHMARKS.md has the
//! uncontended instruction counts with and without the checks.

use crate::abi::Lwp;
use crate::diag;
use crate::types::MutexFlags;
use crate::Hypervisor;
use core::ffi::c_void;
use core::fmt;

/// The lock a misuse is about, as the kernel knows it.
#[derive(Clone, Copy)]
pub enum Lock {
    /// A `struct rumpuser_mtx *` with its flags.
    Mutex(*const c_void, MutexFlags),
    /// A `struct rumpuser_rw *`.
    Rw(*const c_void),
}

impl fmt::Display for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Lock::Mutex(p, flags) => write!(f, "mutex {p:p} ({flags})"),
            Lock::Rw(p) => write!(f, "rwlock {p:p}"),
        }
    }
}

/// The calling thread, as the platform describes it.
struct Caller<'a, H: Hypervisor>(&'a H);

impl<H: Hypervisor> fmt::Display for Caller<'_, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lwp {:p} on ", self.0.curlwp())?;
        self.0.describe_thread(f)
    }
}

/// Another lwp, for "held by lwp X"; a holder without an lwp is "a thread
/// without an lwp".
pub struct Holder(pub *mut Lwp);

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_null() {
            f.write_str("a thread without an lwp")
        } else {
            write!(f, "lwp {:p}", self.0)
        }
    }
}

/// Reports a lock misuse and aborts: `op` is the hypercall without its
/// `rumpuser_` prefix, `problem` what is wrong with `lock`.
#[cold]
#[inline(never)]
pub fn misuse<H: Hypervisor>(h: &H, op: &str, lock: Lock, problem: fmt::Arguments<'_>) -> ! {
    diag::fatal(format_args!(
        "lock misuse: {op}: {lock} {problem}; caller: {}",
        Caller(h)
    ))
}
