//! `RawMutex`: the futex mutex behind `rumpuser_mutex_*`.
//!
//! The rumpuser mutex hypercalls need a bare lock/unlock primitive (no guard,
//! no poisoning, no owner tracking: the hypercall layer records the owning
//! lwp itself, and decides about spinning vs. sleeping flavours).  This is
//! Ulrich Drepper's three-state futex mutex ("Futexes Are Tricky", mutex 3):
//! the single `u32` word is
//!
//! * `0` unlocked,
//! * `1` locked, nobody is (known to be) sleeping,
//! * `2` locked, and there may be sleepers.
//!
//! The uncontended paths are one CAS (lock) and one swap (unlock); `unlock`
//! only issues a `FUTEX_WAKE` when the word was `2`.  A contended `lock` first
//! spins briefly ([`SPIN_LIMIT`] iterations of `spin_loop`, re-reading the
//! word) because rump kernel critical sections are usually short, then marks
//! the word `2` and parks on the futex.  A thread that acquires via the slow
//! path always stores `2`, conservatively, so a sleeper is never forgotten.

use super::primitive::{futex_wait, futex_wake, spin_loop, AtomicU32, Ordering, SPIN_LIMIT};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A non-recursive, owner-agnostic futex mutex.
///
/// Unlocking a mutex that is not locked, or that another thread locked, is a
/// logic error of the caller (it breaks mutual exclusion for whatever the
/// caller protects) but cannot cause undefined behaviour in this type; debug
/// builds assert against unlocking an unlocked mutex.
#[derive(Debug)]
pub struct RawMutex {
    state: AtomicU32,
}

impl RawMutex {
    /// Creates an unlocked mutex.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// Creates an unlocked mutex (not `const` under loom).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
        }
    }

    /// Acquires the mutex if it is unlocked, without blocking.  Returns
    /// whether it was acquired.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Acquires the mutex, spinning briefly and then sleeping until it is
    /// available.  Must not be called by the thread holding it.
    #[inline]
    pub fn lock(&self) {
        if !self.try_lock() {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut state = self.spin();

        // Unlocked after spinning: take it without announcing sleepers.
        if state == UNLOCKED {
            match self.state.compare_exchange(
                UNLOCKED,
                LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(s) => state = s,
            }
        }

        loop {
            // Announce a (potential) sleeper; if the previous value was
            // UNLOCKED we now own the lock (in state CONTENDED, because other
            // sleepers we cannot see may exist).
            if state != CONTENDED && self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            futex_wait(&self.state, CONTENDED, None);
            state = self.spin();
        }
    }

    /// Spins while the mutex is held without known sleepers, for at most
    /// `SPIN_LIMIT` iterations; returns the last observed state.
    fn spin(&self) -> u32 {
        let mut spins = SPIN_LIMIT;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if state != LOCKED || spins == 0 {
                return state;
            }
            spin_loop();
            spins -= 1;
        }
    }

    /// Releases the mutex, waking one sleeper if there may be any.
    #[inline]
    pub fn unlock(&self) {
        let prev = self.state.swap(UNLOCKED, Ordering::Release);
        debug_assert_ne!(prev, UNLOCKED, "RawMutex::unlock of an unlocked mutex");
        if prev == CONTENDED {
            futex_wake(&self.state, 1);
        }
    }

    /// Returns whether the mutex is currently held by anyone (a racy
    /// snapshot, useful for assertions).
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) != UNLOCKED
    }
}

impl Default for RawMutex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    static GLOBAL: RawMutex = RawMutex::new();

    #[test]
    fn basic() {
        let m = RawMutex::new();
        assert!(!m.is_locked());
        m.lock();
        assert!(m.is_locked());
        assert!(!m.try_lock());
        m.unlock();
        assert!(!m.is_locked());
        assert!(m.try_lock());
        assert!(m.is_locked());
        m.unlock();
        assert!(!m.is_locked());
    }

    #[test]
    fn const_static() {
        GLOBAL.lock();
        assert!(GLOBAL.is_locked());
        GLOBAL.unlock();
    }
}
