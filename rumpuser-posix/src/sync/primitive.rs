//! Loom facade: the only place the lock primitives get atomics, spin hints and
//! futex wait/wake from.
//!
//! [`RawMutex`](super::RawMutex), [`RawRwLock`](super::RawRwLock) and
//! [`Condvar`](super::Condvar) import everything concurrency-related from
//! here, so the very same algorithm source can be run on the real machine or
//! under the [loom](https://docs.rs/loom) model checker:
//!
//! * `cfg(not(loom))`: [`AtomicU32`] and [`Ordering`] are
//!   `core::sync::atomic`'s, [`spin_loop`] is `core::hint::spin_loop`, and
//!   [`futex_wait`] / [`futex_wake`] are the real `futex(2)` calls from
//!   [`super::futex`].
//! * `cfg(loom)`: the atomics are loom's, [`spin_loop`] is a no-op (see its
//!   documentation), and the futex is emulated by a global wait table
//!   protected by a loom `Mutex` and woken through a loom `Condvar`.  A waiter checks the futex word and enqueues
//!   itself under the table lock (exactly like the kernel's hash-bucket lock),
//!   and [`futex_wake`] dequeues at most `n` waiters of that address, so a
//!   missing or too-narrow wake leaves a thread blocked forever, which loom
//!   reports as a deadlock.
//!
//! **Timed waits under loom:** loom has no notion of time.  The emulated
//! [`futex_wait`] reads the real monotonic clock once: if the deadline has
//! already passed (e.g. a deadline of `0`) it reports a timeout immediately,
//! otherwise it waits as if untimed.  Model tests must therefore use either
//! already-expired deadlines or waits that are guaranteed to be woken.
//!
//! [`SPIN_LIMIT`] is the bounded spin the rwlock and condvar do before
//! parking: about 100 iterations normally, but only 1 under loom, where
//! every extra load of the lock word multiplies the explored state space.
//! The mutex spends [`MUTEX_SPIN`] pauses instead, reading the word at
//! exponentially growing intervals up to [`SPIN_MAX_DELAY`] (1 of each
//! under loom). [`STARVE_NS`] and [`now_ns`] bound how long a mutex waiter may be
//! overtaken: 1 ms of the monotonic clock normally; under loom a waiter
//! counts as starving once it has been woken, so the reservation path is
//! always explored.

#[cfg(not(loom))]
pub use self::real::*;

#[cfg(loom)]
pub use self::model::*;

/// The real primitives (anything but loom builds).
#[cfg(not(loom))]
mod real {
    pub use super::super::futex::{wait as futex_wait, wake as futex_wake};
    pub use core::hint::spin_loop;
    pub use core::sync::atomic::{AtomicU32, Ordering};

    /// Number of `spin_loop` iterations a contended lock spins (checking the
    /// lock word each time) before it parks on the futex.
    pub const SPIN_LIMIT: u32 = 100;

    /// Longest pause, in `spin_loop`s, between two reads of a contended
    /// mutex word (the mutex backs off exponentially up to it).
    pub const SPIN_MAX_DELAY: u32 = 128;

    /// `spin_loop`s a contended mutex locker spends before it sleeps.
    pub const MUTEX_SPIN: u32 = 512;

    /// How long a mutex waiter sleeps and retries before it is starving and
    /// the lock is reserved for it (see [`super::super::RawMutex`]).
    pub const STARVE_NS: u64 = 1_000_000;

    /// The clock of [`STARVE_NS`]: `CLOCK_MONOTONIC` in nanoseconds.
    #[inline]
    pub fn now_ns() -> u64 {
        super::super::futex::monotonic_ns()
    }

    /// How long a condvar waiter keeps polling at least, offering its CPU
    /// (`sched_yield`) between polls, after its pause spin and before it
    /// sleeps (see [`super::super::Condvar`]).
    pub const WAIT_POLL_NS: u64 = 30_000;

    /// Lets any other runnable thread have this CPU, returning at once when
    /// there is none.
    #[inline]
    pub fn yield_cpu() {
        std::thread::yield_now();
    }
}

/// Model-checked primitives used when compiled with `--cfg loom`.
#[cfg(loom)]
mod model {
    pub use loom::sync::atomic::{AtomicU32, Ordering};

    use loom::sync::{Condvar, Mutex};

    /// Spin once so the spin path (an extra load of the lock word) is still
    /// modelled without blowing up the state space.
    pub const SPIN_LIMIT: u32 = 1;

    /// One pause per read under loom.
    pub const SPIN_MAX_DELAY: u32 = 1;

    /// One read before sleeping under loom.
    pub const MUTEX_SPIN: u32 = 1;

    /// A mutex waiter is starving as soon as it has been woken once, so the
    /// models explore the reservation path (loom has no time).
    pub const STARVE_NS: u64 = 0;

    /// No time under loom.
    #[inline]
    pub fn now_ns() -> u64 {
        0
    }

    /// No polling phase under loom (no time; the pause spin already models
    /// an early return).
    pub const WAIT_POLL_NS: u64 = 0;

    /// A no-op under loom, like [`spin_loop`] (a loom yield would hide the
    /// interleavings where the waiter parks while the notifier runs).
    #[inline]
    pub fn yield_cpu() {}

    /// A no-op under loom, deliberately *not* `loom::hint::spin_loop`: that
    /// is a `yield_now`, which makes loom stop scheduling the spinner while
    /// any other thread can run, so a contended locker would never be seen
    /// parking while the holder still runs, hiding exactly the lost-wakeup
    /// interleavings we want checked.  The spin loops are bounded by
    /// [`SPIN_LIMIT`], so no yield is needed for loom to terminate.
    #[inline]
    pub fn spin_loop() {}

    /// The emulated futex wait queue: `(futex address, ticket)` in FIFO order.
    struct Table {
        next_ticket: u64,
        queue: Vec<(usize, u64)>,
    }

    loom::lazy_static! {
        static ref TABLE: (Mutex<Table>, Condvar) = (
            Mutex::new(Table { next_ticket: 0, queue: Vec::new() }),
            Condvar::new(),
        );
    }

    fn addr(futex: &AtomicU32) -> usize {
        futex as *const AtomicU32 as usize
    }

    /// Emulated `FUTEX_WAIT`: returns `true` when woken or when the word no
    /// longer holds `expected`, `false` if `deadline` had already passed on
    /// entry (a deadline in the future is treated as no deadline).
    pub fn futex_wait(futex: &AtomicU32, expected: u32, deadline: Option<u64>) -> bool {
        let (lock, cv) = &*TABLE;
        let mut table = lock.lock().unwrap();
        // Under the table lock, like the kernel's check under the bucket
        // lock; the lock itself orders this load after any earlier wake.
        if futex.load(Ordering::Relaxed) != expected {
            return true;
        }
        if let Some(deadline) = deadline {
            if super::super::futex::monotonic_ns() >= deadline {
                return false;
            }
        }
        let ticket = table.next_ticket;
        table.next_ticket += 1;
        table.queue.push((addr(futex), ticket));
        while table.queue.iter().any(|&(_, t)| t == ticket) {
            table = cv.wait(table).unwrap();
        }
        true
    }

    /// Emulated `FUTEX_WAKE`: wakes at most `n` waiters queued on `futex`,
    /// returning how many were woken.
    pub fn futex_wake(futex: &AtomicU32, n: i32) -> usize {
        let (lock, cv) = &*TABLE;
        let mut table = lock.lock().unwrap();
        let addr = addr(futex);
        let limit = usize::try_from(n).unwrap_or(0);
        let mut woken = 0;
        table.queue.retain(|&(a, _)| {
            if a == addr && woken < limit {
                woken += 1;
                false
            } else {
                true
            }
        });
        if woken > 0 {
            cv.notify_all();
        }
        woken
    }
}
