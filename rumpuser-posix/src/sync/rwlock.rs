//! `RawRwLock`: the futex reader/writer lock behind `rumpuser_rw_*`.
//!
//! The rumpuser rwlock hypercalls need raw (guard-less) read and write
//! acquisition, `tryenter`, `tryupgrade`, `downgrade`, and the `held`
//! queries; `std::sync::RwLock` offers neither upgrade nor raw unlock.
//!
//! # Design
//!
//! Two `u32` words (the layout of the Rust standard library's futex rwlock):
//!
//! * `state`:
//!   - bits 0..30: `0` unlocked, `1..=MAX_READERS` that many read holds,
//!     `MASK` (all 30 bits set) write-locked.  Because a read hold only ever
//!     CASes `n -> n + 1` from `n < MAX_READERS` and a write hold only CASes
//!     from `0`, a writer can never acquire while any reader holds the lock
//!     and vice versa: both are decided by a single atomic word.
//!   - bit 30 `READERS_WAITING`: readers sleep (futex-wait) on `state`.
//!   - bit 31 `WRITERS_WAITING`: writers sleep on `writer_notify`.
//! * `writer_notify`: a sequence number bumped before each writer wake, so a
//!   writer that read it before re-checking `state` cannot miss a wake.
//!
//! **Writer preference.** A new reader does not join existing readers when
//! `WRITERS_WAITING` (or `READERS_WAITING`) is set, so a stream of readers
//! cannot starve a writer.  On release, a waiting writer is woken in
//! preference to readers; readers are woken (all at once) only when no writer
//! could be woken.  (A thread that read-locks recursively while a writer
//! waits would deadlock; NetBSD never does that with a rumpuser rwlock.)
//! The one exception: readers that slept and were woken by a
//! [`downgrade`](RawRwLock::downgrade) may join the downgrader even if
//! writers wait, which is the point of downgrading.
//!
//! **Downgrade** is a single `fetch_add` turning the write hold into exactly
//! one read hold (`MASK -> 1`), so there is no instant at which the lock is
//! free for a writer; it then clears `READERS_WAITING` and wakes all sleeping
//! readers.  It never blocks.
//!
//! **Upgrade** ([`try_upgrade`](RawRwLock::try_upgrade)) CASes `1 -> MASK`
//! (keeping the waiting bits), i.e. it succeeds exactly when the caller is the
//! only reader; it retries the CAS while that stays true so it never fails
//! spuriously because a waiting bit changed concurrently.
//!
//! Both contended paths spin briefly ([`SPIN_LIMIT`] iterations) before
//! setting their waiting bit and parking.

use super::futex::WAKE_ALL;
use super::primitive::{futex_wait, futex_wake, spin_loop, AtomicU32, Ordering, SPIN_LIMIT};

const READ_LOCKED: u32 = 1;
const MASK: u32 = (1 << 30) - 1;
const WRITE_LOCKED: u32 = MASK;
const MAX_READERS: u32 = MASK - 1;
const READERS_WAITING: u32 = 1 << 30;
const WRITERS_WAITING: u32 = 1 << 31;
/// Added to a write-locked state, turns it into a single read hold.
const DOWNGRADE: u32 = READ_LOCKED.wrapping_sub(WRITE_LOCKED);

#[inline]
fn is_unlocked(state: u32) -> bool {
    state & MASK == 0
}

#[inline]
fn is_write_locked(state: u32) -> bool {
    state & MASK == WRITE_LOCKED
}

#[inline]
fn has_readers_waiting(state: u32) -> bool {
    state & READERS_WAITING != 0
}

#[inline]
fn has_writers_waiting(state: u32) -> bool {
    state & WRITERS_WAITING != 0
}

/// A new reader may join: not write-locked, not full, nobody waiting.
#[inline]
fn is_read_lockable(state: u32) -> bool {
    state & MASK < MAX_READERS && !has_readers_waiting(state) && !has_writers_waiting(state)
}

/// A reader woken from sleep may join a read-locked lock even if writers wait
/// (it was most likely woken by `downgrade`, which wants readers in).
#[inline]
fn is_read_lockable_after_wakeup(state: u32) -> bool {
    state & MASK < MAX_READERS
        && !has_readers_waiting(state)
        && !is_write_locked(state)
        && !is_unlocked(state)
}

#[inline]
fn has_reached_max_readers(state: u32) -> bool {
    state & MASK == MAX_READERS
}

/// A writer-preferring futex reader/writer lock.
///
/// Like [`RawMutex`](super::RawMutex) it tracks no owners: releasing a hold
/// the caller does not have is a logic error of the caller (debug builds
/// assert against the obvious cases).
#[derive(Debug)]
pub struct RawRwLock {
    state: AtomicU32,
    writer_notify: AtomicU32,
}

impl RawRwLock {
    /// Creates an unlocked rwlock.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
        }
    }

    /// Creates an unlocked rwlock (not `const` under loom).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            writer_notify: AtomicU32::new(0),
        }
    }

    /// Takes a read hold if that is possible without blocking: fails when a
    /// writer holds the lock *or is waiting for it*.
    #[inline]
    pub fn try_read(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| {
                // Not `then_some`: the addition must only be evaluated when
                // it cannot overflow.
                if is_read_lockable(s) {
                    Some(s + READ_LOCKED)
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Takes a read hold, blocking while a writer holds or waits for the lock.
    #[inline]
    pub fn read(&self) {
        let state = self.state.load(Ordering::Relaxed);
        if !is_read_lockable(state)
            || self
                .state
                .compare_exchange_weak(
                    state,
                    state + READ_LOCKED,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            self.read_contended();
        }
    }

    #[cold]
    fn read_contended(&self) {
        let mut has_slept = false;
        let mut state = self.spin_read();
        loop {
            if is_read_lockable(state) || (has_slept && is_read_lockable_after_wakeup(state)) {
                match self.state.compare_exchange_weak(
                    state,
                    state + READ_LOCKED,
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

            assert!(
                !has_reached_max_readers(state),
                "too many read holds on RawRwLock"
            );

            // Announce ourselves before sleeping on `state`.
            if !has_readers_waiting(state) {
                if let Err(s) = self.state.compare_exchange(
                    state,
                    state | READERS_WAITING,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = s;
                    continue;
                }
            }

            // Whoever clears READERS_WAITING (changing `state`) wakes us.
            futex_wait(&self.state, state | READERS_WAITING, None);
            has_slept = true;
            state = self.spin_read();
        }
    }

    /// Takes the write hold if the lock is completely free.
    #[inline]
    pub fn try_write(&self) -> bool {
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| {
                if is_unlocked(s) {
                    Some(s + WRITE_LOCKED)
                } else {
                    None
                }
            })
            .is_ok()
    }

    /// Takes the write hold, blocking while anyone holds the lock.
    #[inline]
    pub fn write(&self) {
        if self
            .state
            .compare_exchange_weak(0, WRITE_LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.write_contended();
        }
    }

    #[cold]
    fn write_contended(&self) {
        let mut state = self.spin_write();
        // Once we have slept we no longer know whether other writers sleep
        // too (the waker cleared the bit), so we keep the bit set when we
        // acquire: at worst one unnecessary wake on release.
        let mut other_writers_waiting = 0;
        loop {
            if is_unlocked(state) {
                match self.state.compare_exchange_weak(
                    state,
                    state | WRITE_LOCKED | other_writers_waiting,
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

            if !has_writers_waiting(state) {
                if let Err(s) = self.state.compare_exchange(
                    state,
                    state | WRITERS_WAITING,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    state = s;
                    continue;
                }
            }
            other_writers_waiting = WRITERS_WAITING;

            // Read the notification counter *before* re-checking `state`:
            // a release that happens after this re-check bumps the counter
            // and so cannot be missed by the futex wait.
            let seq = self.writer_notify.load(Ordering::Acquire);
            state = self.state.load(Ordering::Relaxed);
            if is_unlocked(state) || !has_writers_waiting(state) {
                continue;
            }
            futex_wait(&self.writer_notify, seq, None);
            state = self.spin_write();
        }
    }

    /// Releases a read hold.
    #[inline]
    pub fn unlock_read(&self) {
        let released = self.try_unlock_read();
        debug_assert!(released, "RawRwLock::unlock_read without a read hold");
    }

    /// Releases a read hold if the lock has one, and says whether it had:
    /// `false` when it was free or write-held, which only a caller's bug
    /// brings about (the release is undone at once, but another thread may
    /// have seen the state in between; the caller is expected to abort).
    /// The check tests the value the release returns, so it costs what
    /// [`unlock_read`](Self::unlock_read) costs.
    #[inline]
    pub fn try_unlock_read(&self) -> bool {
        let prev = self.state.fetch_sub(READ_LOCKED, Ordering::Release);
        if is_unlocked(prev) || is_write_locked(prev) {
            self.state.fetch_add(READ_LOCKED, Ordering::Relaxed);
            return false;
        }
        let state = prev - READ_LOCKED;
        if is_unlocked(state) && (has_writers_waiting(state) || has_readers_waiting(state)) {
            self.wake_writer_or_readers(state);
        }
        true
    }

    /// Releases the write hold.
    #[inline]
    pub fn unlock_write(&self) {
        let prev = self.state.fetch_sub(WRITE_LOCKED, Ordering::Release);
        debug_assert!(
            is_write_locked(prev),
            "RawRwLock::unlock_write without the write hold"
        );
        let state = prev - WRITE_LOCKED;
        if has_writers_waiting(state) || has_readers_waiting(state) {
            self.wake_writer_or_readers(state);
        }
    }

    /// Atomically turns the caller's write hold into a single read hold and
    /// wakes sleeping readers so they can join.  No writer can acquire in
    /// between; never blocks.
    #[inline]
    pub fn downgrade(&self) {
        let prev = self.state.fetch_add(DOWNGRADE, Ordering::Release);
        debug_assert!(
            is_write_locked(prev),
            "RawRwLock::downgrade without the write hold"
        );
        if has_readers_waiting(prev) {
            // We hold the lock and the bit is set: nobody else can clear it.
            self.state.fetch_sub(READERS_WAITING, Ordering::Relaxed);
            futex_wake(&self.state, WAKE_ALL);
        }
    }

    /// Tries to turn the caller's read hold into the write hold.  Succeeds
    /// (and upgrades) iff the caller is the only holder; on failure the
    /// caller still has its read hold.  Never blocks.
    #[inline]
    pub fn try_upgrade(&self) -> bool {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(
                !is_unlocked(state) && !is_write_locked(state),
                "RawRwLock::try_upgrade without a read hold"
            );
            if state & MASK != READ_LOCKED {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                state - READ_LOCKED + WRITE_LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(s) => state = s,
            }
        }
    }

    /// Returns whether a writer holds the lock (racy snapshot).
    #[inline]
    pub fn is_write_locked(&self) -> bool {
        is_write_locked(self.state.load(Ordering::Relaxed))
    }

    /// Returns whether at least one reader holds the lock (racy snapshot).
    #[inline]
    pub fn has_readers(&self) -> bool {
        let state = self.state.load(Ordering::Relaxed);
        !is_unlocked(state) && !is_write_locked(state)
    }

    /// Called when the lock just became free while someone waits: wakes one
    /// writer if any, else all readers.
    #[cold]
    fn wake_writer_or_readers(&self, mut state: u32) {
        debug_assert!(is_unlocked(state));

        // Only writers wait: clear the bit and wake one.  (A writer that
        // then loses the race re-sets the bit; a woken writer acquires with
        // the bit set, see `write_contended`.)
        if state == WRITERS_WAITING {
            match self
                .state
                .compare_exchange(state, 0, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.wake_writer();
                    return;
                }
                // Maybe readers started waiting too: fall through.
                Err(s) => state = s,
            }
        }

        // Both wait: prefer a writer.  If the CAS fails the lock was taken
        // (by a writer: readers cannot while READERS_WAITING is set), and
        // that holder's release will do the waking.
        if state == READERS_WAITING + WRITERS_WAITING {
            if self
                .state
                .compare_exchange(state, READERS_WAITING, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
            {
                return;
            }
            if self.wake_writer() {
                return;
            }
            // No writer was actually asleep (it is about to re-check and
            // will see the cleared bit); do not leave the readers sleeping.
            state = READERS_WAITING;
        }

        // Only readers wait: wake them all.
        if state == READERS_WAITING
            && self
                .state
                .compare_exchange(state, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            futex_wake(&self.state, WAKE_ALL);
        }
    }

    /// Wakes one writer; returns whether one was actually asleep.
    fn wake_writer(&self) -> bool {
        self.writer_notify.fetch_add(1, Ordering::Release);
        futex_wake(&self.writer_notify, 1) > 0
    }

    /// Spins while a writer holds the lock and nobody waits.
    fn spin_read(&self) -> u32 {
        self.spin_until(|state| {
            !is_write_locked(state) || has_readers_waiting(state) || has_writers_waiting(state)
        })
    }

    /// Spins while the lock is held and no other writer waits.
    fn spin_write(&self) -> u32 {
        self.spin_until(|state| is_unlocked(state) || has_writers_waiting(state))
    }

    fn spin_until(&self, done: impl Fn(u32) -> bool) -> u32 {
        let mut spins = SPIN_LIMIT;
        loop {
            let state = self.state.load(Ordering::Relaxed);
            if done(state) || spins == 0 {
                return state;
            }
            spin_loop();
            spins -= 1;
        }
    }
}

impl Default for RawRwLock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn basic_read_write() {
        let l = RawRwLock::new();
        assert!(!l.is_write_locked() && !l.has_readers());
        l.read();
        assert!(l.has_readers() && !l.is_write_locked());
        assert!(l.try_read());
        assert!(!l.try_write());
        l.unlock_read();
        l.unlock_read();
        assert!(!l.has_readers());
        l.write();
        assert!(l.is_write_locked() && !l.has_readers());
        assert!(!l.try_read());
        assert!(!l.try_write());
        l.unlock_write();
        assert!(l.try_write());
        l.unlock_write();
        assert!(!l.is_write_locked() && !l.has_readers());
    }

    #[test]
    fn try_unlock_read_refuses_a_lock_without_a_read_hold() {
        let l = RawRwLock::new();
        assert!(!l.try_unlock_read(), "free lock");
        assert_eq!(l.state.load(Ordering::Relaxed), 0, "the refusal is undone");
        assert!(l.try_write());
        assert!(!l.try_unlock_read(), "write-held lock");
        assert!(l.is_write_locked() && !l.has_readers());
        l.unlock_write();
        l.read();
        assert!(l.try_unlock_read(), "read-held lock");
        assert!(!l.has_readers() && l.try_write());
        l.unlock_write();
    }

    #[test]
    fn downgrade_keeps_one_read_hold() {
        let l = RawRwLock::new();
        l.write();
        l.downgrade();
        assert!(l.has_readers() && !l.is_write_locked());
        assert!(!l.try_write());
        assert!(l.try_read());
        l.unlock_read();
        l.unlock_read();
        assert!(l.try_write());
        l.unlock_write();
    }

    #[test]
    fn try_upgrade_sole_and_shared() {
        let l = RawRwLock::new();
        l.read();
        assert!(l.try_upgrade());
        assert!(l.is_write_locked());
        l.unlock_write();

        l.read();
        l.read();
        assert!(!l.try_upgrade());
        assert!(l.has_readers());
        l.unlock_read();
        assert!(l.try_upgrade());
        l.downgrade();
        l.unlock_read();
        assert!(!l.has_readers() && !l.is_write_locked());
    }

    #[test]
    fn downgrade_arithmetic_preserves_bits() {
        for bits in [
            0,
            READERS_WAITING,
            WRITERS_WAITING,
            READERS_WAITING | WRITERS_WAITING,
        ] {
            assert_eq!(
                (bits | WRITE_LOCKED).wrapping_add(DOWNGRADE),
                bits | READ_LOCKED
            );
        }
    }
}
