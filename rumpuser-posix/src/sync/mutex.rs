//! `RawMutex`: the futex mutex behind `rumpuser_mutex_*`.
//!
//! The rumpuser mutex hypercalls need a bare lock/unlock primitive (no guard,
//! no poisoning, no owner tracking: the hypercall layer records the owning
//! lwp itself, and decides about spinning vs. sleeping flavours).  This is
//! Ulrich Drepper's futex mutex ("Futexes Are Tricky", mutex 3) with a
//! starvation bound in the manner of Go's `sync.Mutex`.  The `u32` word
//! holds three bits:
//!
//! * `LOCKED`: held;
//! * `PARKED`: there may be threads sleeping on the futex;
//! * `STARVING`: a waiter has waited longer than `STARVE_NS` (1 ms); until
//!   a starving waiter takes the lock nobody else may (no barging).
//!
//! The uncontended paths are one atomic read-modify-write each (a CAS
//! `0 → LOCKED`, and a subtraction of `LOCKED` that keeps the other bits);
//! `unlock` only issues a `FUTEX_WAKE` when `PARKED` or `STARVING` was set.
//! A contended `lock` first spins (`MUTEX_SPIN` pauses in all) because rump
//! kernel critical sections are usually short, only reading the word and
//! backing off exponentially between reads (1, 2, 4, … up to
//! `SPIN_MAX_DELAY` pauses): a waiter polling at full speed steals the
//! cache line from the holder on every read, so with two threads on two
//! CPUs every acquisition bounced the line (several transfers each); with
//! the backoff the holder mostly keeps it. Losing the CAS after seeing the
//! lock free goes back to spinning, not to sleep. When the budget is spent
//! the waiter sets `PARKED` and sleeps.  A thread that acquires after having
//! slept keeps `PARKED` set, conservatively, so a sleeper is never
//! forgotten (`unlock` clears `PARKED` and wakes one, who re-sets it if it
//! has to sleep again).
//!
//! Why the starvation bound: with two threads hammering one lock, the
//! holder re-takes it within nanoseconds of releasing it, so a waiter that
//! spins or has just been woken rarely catches it; when the host is loaded
//! (more runnable threads than CPUs) one thread could be shut out for
//! many milliseconds. A waiter that has slept and still waited `STARVE_NS`
//! reserves the lock by setting `STARVING` while it is held (one waiter at
//! a time holds the reservation; others that starve meanwhile wait their
//! turn). `unlock` keeps that bit, so the fast path `0 → LOCKED` fails for
//! everybody and non-starving lockers park, and wakes exactly the reserving
//! waiter, which sleeps on a second futex word, `handoff`, bumped by that
//! unlock; it takes the lock and clears the bit. The reserving waiter reads
//! `handoff` (acquire) before checking that the lock is still held, and the
//! unlock bumps it (release) after releasing, so either it sees the lock
//! free or its futex wait sees the new `handoff`: no lost wake-up.
//!
//! Invariant: at most one waiter holds the reservation, and only it is woken
//! through `handoff`; an unlock never wakes every sleeper on the lock word
//! (with dozens of lwps queueing for a kernel lock, most of them starving,
//! waking them all costs dozens of context switches per unlock).
//!
//! The constants live in [`super::primitive`] (loom: one pause, and a
//! waiter starves as soon as it has been woken, so the models explore the
//! reservation).

use super::primitive::{
    futex_wait, futex_wake, now_ns, spin_loop, AtomicU32, Ordering, MUTEX_SPIN, SPIN_MAX_DELAY,
    STARVE_NS,
};

/// The lock is held.
const LOCKED: u32 = 1;
/// Threads may be sleeping on the word.
const PARKED: u32 = 2;
/// Reserved: only the waiter that set it may take the lock.
const STARVING: u32 = 4;

/// A non-recursive, owner-agnostic futex mutex.
///
/// Unlocking a mutex that is not locked, or that another thread locked, is a
/// logic error of the caller (it breaks mutual exclusion for whatever the
/// caller protects) but cannot cause undefined behaviour in this type; debug
/// builds assert against unlocking an unlocked mutex.
#[derive(Debug)]
pub struct RawMutex {
    state: AtomicU32,
    /// Where the reserving (starving) waiter sleeps; bumped by the unlock
    /// that leaves the reserved lock to it.
    handoff: AtomicU32,
}

impl RawMutex {
    /// Creates an unlocked mutex.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            handoff: AtomicU32::new(0),
        }
    }

    /// Creates an unlocked mutex (not `const` under loom).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            handoff: AtomicU32::new(0),
        }
    }

    /// Acquires the mutex if it is unlocked (and no starving waiter has
    /// reserved it), without blocking.  Returns whether it was acquired.
    #[inline]
    pub fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
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
        // Whether this thread has slept (then it acquires with PARKED set:
        // the unlock that woke it cleared the bit, others may still sleep).
        let mut woken = false;
        // Whether this thread set STARVING (holds the reservation).
        let mut reserved = false;
        // When this thread first went to sleep.
        let mut since = 0u64;
        let mut spin = Backoff::new();
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 && (state & STARVING == 0 || reserved) {
                // (A reserving waiter has always slept: `woken` covers it.)
                let keep = if woken { PARKED } else { state & PARKED };
                // Taking it clears STARVING: the reservation was ours.
                match self.state.compare_exchange_weak(
                    state,
                    LOCKED | keep,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(s) => {
                        state = s;
                        continue;
                    }
                }
            }
            if reserved {
                // Held, and ours once released: the unlock bumps `handoff`
                // after releasing, so reading `handoff` first and then
                // seeing the lock still held means the bump is still to
                // come (see the module documentation).
                let seq = self.handoff.load(Ordering::Acquire);
                state = self.state.load(Ordering::Relaxed);
                if state & LOCKED != 0 {
                    futex_wait(&self.handoff, seq, None);
                    state = self.state.load(Ordering::Relaxed);
                }
                continue;
            }
            // Held: spin (only reading, backing off) unless it is reserved
            // for a starving waiter, then sleep.
            if state & STARVING == 0 && spin.pause() {
                state = self.state.load(Ordering::Relaxed);
                continue;
            }
            if woken
                && state & (STARVING | LOCKED) == LOCKED
                && now_ns().saturating_sub(since) >= STARVE_NS
            {
                // Starving, and nobody holds the reservation: take it.
                match self.state.compare_exchange_weak(
                    state,
                    state | STARVING,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        reserved = true;
                        state |= STARVING;
                        #[cfg(all(test, not(loom)))]
                        wake_stats::RESERVATIONS.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(s) => state = s,
                }
                continue;
            }
            let want = state | PARKED;
            if want != state {
                if let Err(s) = self.state.compare_exchange_weak(
                    state,
                    want,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = s;
                    continue;
                }
            }
            if !woken {
                since = now_ns();
            }
            futex_wait(&self.state, want, None);
            woken = true;
            spin = Backoff::new();
            state = self.state.load(Ordering::Relaxed);
        }
    }

    /// Releases the mutex, waking one sleeper if there may be any (the
    /// reserving waiter if the lock is reserved).
    #[inline]
    pub fn unlock(&self) {
        // Clears LOCKED and keeps the other bits (STARVING keeps the lock
        // reserved for the starving waiter).
        let prev = self.state.fetch_sub(LOCKED, Ordering::Release);
        debug_assert_ne!(prev & LOCKED, 0, "RawMutex::unlock of an unlocked mutex");
        if prev != LOCKED {
            self.unlock_contended(prev);
        }
    }

    #[cold]
    fn unlock_contended(&self, prev: u32) {
        if prev & STARVING != 0 {
            // Reserved: nobody else can take it, so wake exactly the
            // reserving waiter (it sleeps alone on `handoff`).
            self.handoff.fetch_add(1, Ordering::Release);
            let _woken = futex_wake(&self.handoff, 1);
            #[cfg(all(test, not(loom)))]
            wake_stats::record(_woken);
        } else if prev & PARKED != 0 {
            // Wake one, who sets PARKED again if it has to sleep again or
            // takes the lock with PARKED set. Clearing the bit may hit a
            // new holder's word; that is the same as Drepper's unlock
            // storing 0: the woken thread carries the duty on.
            self.state.fetch_and(!PARKED, Ordering::Relaxed);
            let _woken = futex_wake(&self.state, 1);
            #[cfg(all(test, not(loom)))]
            wake_stats::record(_woken);
        }
    }

    /// Returns whether the mutex is currently held by anyone (a racy
    /// snapshot, useful for assertions).
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }
}

/// What unlocks woke, for the stress tests (every mutex in the process).
#[cfg(all(test, not(loom)))]
pub(super) mod wake_stats {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// Most threads a single unlock woke.
    pub static MAX_WOKEN: AtomicU64 = AtomicU64::new(0);
    /// Reservations made by starving waiters.
    pub static RESERVATIONS: AtomicU64 = AtomicU64::new(0);

    pub fn record(woken: usize) {
        MAX_WOKEN.fetch_max(woken as u64, Relaxed);
    }
}

/// Exponential backoff of a contended locker: reads of the lock word
/// `1, 2, 4, …, SPIN_MAX_DELAY` pauses apart, [`MUTEX_SPIN`] pauses in all.
/// Reading rarely lets the holder keep the cache line (and re-take the
/// lock cheaply) instead of having every acquisition bounce it.
struct Backoff {
    delay: u32,
    left: u32,
}

impl Backoff {
    fn new() -> Self {
        Backoff {
            delay: 1,
            left: MUTEX_SPIN,
        }
    }

    /// Pauses once; `false` when the budget is spent.
    fn pause(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        let d = self.delay.min(self.left);
        for _ in 0..d {
            spin_loop();
        }
        self.left -= d;
        self.delay = (self.delay * 2).min(SPIN_MAX_DELAY);
        true
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
