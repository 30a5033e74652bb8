//! `Condvar`: the futex condition variable behind `rumpuser_cv_*`.
//!
//! The rumpuser contract requires that a cv wait releases the mutex
//! atomically with going to sleep, but the hypercall layer must be free to
//! choose *when* to take the mutex again relative to rescheduling the rump
//! CPU (depending on the mutex flavour it reacquires before or after
//! `rumpkern_sched`, to avoid lock-order deadlocks with the rump scheduler).
//! `std::sync::Condvar` always reacquires, so this module provides
//! [`Condvar::wait_unlocked`], which returns with the mutex released.
//!
//! # Design
//!
//! Two `u32` words:
//!
//! * `seq`, the futex word: bumped by every notify that has someone to wake.
//!   A waiter reads it *before* releasing the mutex and futex-waits for it to
//!   change, so any notify ordered after the mutex release (for example one
//!   made by a thread that took the mutex afterwards, whether or not it still
//!   holds it when notifying) either changes `seq` before the waiter sleeps,
//!   making the futex wait return at once, or finds the waiter asleep and
//!   wakes it: no lost wakeups.
//! * `waiters`: the number of threads inside `wait_unlocked`, incremented
//!   before the mutex is released.  Notifies that find it zero skip both the
//!   `seq` bump and the wake syscall, which makes notify on an idle cv (the
//!   common case in a rump kernel) two plain atomic operations.  A notify that
//!   is ordered after a waiter's mutex release always sees that waiter's
//!   increment.
//!
//! * `sleepers`: the waiters actually inside `futex_wait`. A waiter first
//!   watches `seq` for a while (a ping-pong partner, or the I/O completion
//!   a kernel thread waits for, usually answers within microseconds, and
//!   a futex sleep + wake costs tens of microseconds on a virtual machine):
//!   a few microseconds of pauses, then polls with a `sched_yield` in
//!   between, for at least 20 polls and 30 us, then it increments
//!   `sleepers` and sleeps. Yielding keeps the poll from holding a CPU
//!   that another runnable thread needs (often the one that will notify:
//!   two rump kernels talking TCP over shmif on two CPUs had their round
//!   trip halved by this, 211 -> 86-100 us, against the 34 us pause spin it
//!   replaces), and the 20 polls make a waiter whose CPU is contended
//!   usually see the notification before it sleeps, which also spares the
//!   notifier its wake system call. Notifies bump `seq` and make the wake
//!   system call only if `sleepers` is non-zero.
//!   Both sides touch `sleepers` with read-modify-write operations, which are
//!   totally ordered: if the notifier's read comes first, the sleeper's
//!   increment reads from it and so happens after the `seq` bump, and its
//!   futex wait sees the new `seq` and does not sleep; otherwise the notifier
//!   sees the sleeper and wakes it. (A plain load would need `SeqCst` store-
//!   load ordering, which loom does not model and which is easy to get wrong.)
//!
//! Spurious wakeups are possible (as with every condition variable); a timed
//! wait reports "timed out" only if the absolute `CLOCK_MONOTONIC` deadline
//! has really passed.

use super::futex::WAKE_ALL;
use super::mutex::RawMutex;
use super::primitive::{
    futex_wait, futex_wake, now_ns, spin_loop, yield_cpu, AtomicU32, Ordering, SPIN_LIMIT,
    WAIT_POLL_NS,
};

/// Pauses a waiter spends watching `seq` before it polls (about 3 us here;
/// 2 under loom).
const WAIT_SPINS: u32 = SPIN_LIMIT * 2;

/// Polls (each after a `sched_yield`) a waiter makes at least before it
/// sleeps, however quickly they come back.
const WAIT_MIN_YIELDS: u32 = 20;

/// A condition variable whose wait returns with the mutex released.
#[derive(Debug)]
pub struct Condvar {
    seq: AtomicU32,
    waiters: AtomicU32,
    sleepers: AtomicU32,
    /// Waits that went to sleep, for the stress tests.
    #[cfg(all(test, not(loom)))]
    sleeps: core::sync::atomic::AtomicU32,
}

impl Condvar {
    /// Creates a condition variable with no waiters.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            #[cfg(all(test, not(loom)))]
            sleeps: core::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Creates a condition variable with no waiters (not `const` under loom).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
        }
    }

    /// Atomically releases `m` and sleeps until notified, until `deadline`
    /// (absolute `CLOCK_MONOTONIC` nanoseconds, see
    /// [`monotonic_ns`](super::futex::monotonic_ns); `None` = no timeout), or
    /// spuriously.
    ///
    /// The caller must hold `m`.  **Returns with `m` not held**; the caller
    /// reacquires it when and in the order it needs to.
    ///
    /// Returns `true` iff the wait timed out, which is only reported when the
    /// monotonic clock is at or past `deadline`.  A `false` return does not
    /// guarantee a notify happened (spurious wakeup); re-check the condition.
    pub fn wait_unlocked(&self, m: &RawMutex, deadline: Option<u64>) -> bool {
        debug_assert!(m.is_locked(), "Condvar::wait_unlocked without the mutex");
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let seq = self.seq.load(Ordering::Relaxed);
        // The release in `unlock` orders the two operations above before any
        // notify by a thread that subsequently acquires `m`.
        m.unlock();
        if self.watch(seq, deadline) {
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        #[cfg(all(test, not(loom)))]
        self.sleeps.fetch_add(1, Ordering::Relaxed);
        self.sleepers.fetch_add(1, Ordering::AcqRel);
        let woken = futex_wait(&self.seq, seq, deadline);
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        !woken
    }

    /// Watches `seq` for a change before the caller sleeps: `WAIT_SPINS`
    /// pauses, then polls that offer the CPU (`sched_yield`) in between,
    /// until at least `WAIT_MIN_YIELDS` polls and `WAIT_POLL_NS` have
    /// passed, or the deadline. Returns whether `seq` changed.
    fn watch(&self, seq: u32, deadline: Option<u64>) -> bool {
        let changed = || self.seq.load(Ordering::Acquire) != seq;
        for _ in 0..WAIT_SPINS {
            if changed() {
                return true;
            }
            spin_loop();
        }
        if WAIT_POLL_NS == 0 {
            return false;
        }
        let start = now_ns();
        let mut polls = 0;
        loop {
            if changed() {
                return true;
            }
            let now = now_ns();
            if (polls >= WAIT_MIN_YIELDS && now.saturating_sub(start) >= WAIT_POLL_NS)
                || deadline.is_some_and(|d| now >= d)
            {
                return false;
            }
            yield_cpu();
            polls += 1;
        }
    }

    /// Wakes at least one waiter, if there are any.  The mutex need not be
    /// held.
    pub fn notify_one(&self) {
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.seq.fetch_add(1, Ordering::AcqRel);
            if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
                futex_wake(&self.seq, 1);
            }
        }
    }

    /// Wakes all waiters.  The mutex need not be held.
    pub fn notify_all(&self) {
        if self.waiters.load(Ordering::Relaxed) != 0 {
            self.seq.fetch_add(1, Ordering::AcqRel);
            if self.sleepers.fetch_add(0, Ordering::AcqRel) != 0 {
                futex_wake(&self.seq, WAKE_ALL);
            }
        }
    }

    /// How many waits went to sleep (tests only).
    #[cfg(all(test, not(loom)))]
    pub fn sleeps(&self) -> u32 {
        self.sleeps.load(Ordering::Relaxed)
    }

    /// Returns whether any thread is currently inside
    /// [`wait_unlocked`](Self::wait_unlocked) (racy snapshot; includes
    /// threads that have been woken but not yet returned).
    pub fn has_waiters(&self) -> bool {
        self.waiters.load(Ordering::Relaxed) != 0
    }
}

impl Default for Condvar {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::futex::monotonic_ns;
    use super::*;

    #[test]
    fn expired_deadline_times_out_and_releases() {
        let m = RawMutex::new();
        let cv = Condvar::new();
        m.lock();
        assert!(cv.wait_unlocked(&m, Some(0)));
        assert!(!m.is_locked());
        assert!(!cv.has_waiters());
    }

    #[test]
    fn timed_wait_not_early() {
        let m = RawMutex::new();
        let cv = Condvar::new();
        let deadline = monotonic_ns() + 3_000_000;
        m.lock();
        while !cv.wait_unlocked(&m, Some(deadline)) {
            m.lock();
        }
        assert!(monotonic_ns() >= deadline);
    }

    #[test]
    fn notify_without_waiters_is_noop() {
        let cv = Condvar::new();
        cv.notify_one();
        cv.notify_all();
        assert!(!cv.has_waiters());
    }
}
