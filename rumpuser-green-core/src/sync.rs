//! Cooperative mutex, reader/writer lock and condition variable.
//!
//! All three are plain state plus [`WaitQueue`](crate::WaitQueue)s; there are no atomics
//! because every green thread runs on one host thread and a thread is only
//! ever preempted at a blocking call. Ownership is *handed off*: when a
//! lock is released while threads wait, the releaser grants it directly to
//! the woken waiter(s) (FIFO), so a woken thread never finds the lock taken
//! again, waiters cannot starve, and no retry loop is needed.
//!
//! Invariants checked by the tests (and where every earlier green
//! implementation went wrong, see prior-art §4):
//!
//! * `GreenRwLock`: a writer is granted only when there are no readers
//!   *and* no writer; readers are granted only when there is no writer.
//!   The state is one writer tag plus one reader count, so `downgrade`
//!   (writer → one reader, plus every waiting reader) cannot leave a
//!   stale count behind.
//! * New readers queue behind waiting writers (writer preference, as in
//!   NetBSD `rw_enter`); releasing a write lock grants all waiting readers
//!   first, then writers (phase-fair, so neither side starves). As in
//!   NetBSD, a thread must not re-acquire a read lock it already holds
//!   while a writer may be waiting.
//! * `GreenCondvar::wait_unlocked` releases the mutex and queues the caller
//!   with no switch in between, so a notify issued after the caller
//!   released the mutex always finds it queued (no lost wake-up). A
//!   timeout is reported only when `now_ns() >= deadline`.
//!
//! The types are not `Sync` (they use `Cell`); the C-ABI glue keeps them
//! behind raw pointers, which is sound under the single-host-thread
//! contract of [`init`](crate::init). A lock used before `init` works for
//! uncontended `try_*` calls; blocking on it then halts (nobody could
//! release it).

use core::cell::Cell;

use crate::api::{current_raw, fatal};
use crate::queue::WaitQueue;
use crate::thread::{ThreadId, Wakeup};

/// Owner tag meaning "unlocked" (thread ids are never 0).
const NONE: u64 = 0;

/// A lock call that would block forever because the caller already holds
/// the lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LockError {
    /// The caller is the current owner (mutex, or rwlock writer).
    WouldDeadlock,
}

impl core::fmt::Display for LockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("lock already held by the calling green thread")
    }
}

/// Non-recursive green mutex with FIFO hand-off.
#[derive(Debug, Default)]
pub struct GreenMutex {
    owner: Cell<u64>,
    waiters: WaitQueue,
}

impl GreenMutex {
    /// An unlocked mutex.
    pub const fn new() -> Self {
        Self {
            owner: Cell::new(NONE),
            waiters: WaitQueue::new(),
        }
    }

    /// Take the mutex if it is free.
    #[inline]
    pub fn try_lock(&self) -> bool {
        if self.owner.get() != NONE {
            return false;
        }
        self.owner.set(current_raw());
        true
    }

    /// Take the mutex, blocking while another thread holds it. A
    /// self-deadlock (the caller already holds it) is reported on the
    /// console and halts; use [`lock_checked`](Self::lock_checked) to get
    /// an error instead.
    pub fn lock(&self) {
        if self.lock_checked().is_err() {
            fatal("rumpuser-green: mutex self-deadlock (lock by its owner)");
        }
    }

    /// [`lock`](Self::lock), returning an error instead of halting on
    /// self-deadlock.
    pub fn lock_checked(&self) -> Result<(), LockError> {
        if self.try_lock() {
            return Ok(());
        }
        let me = current_raw();
        if self.owner.get() == me {
            return Err(LockError::WouldDeadlock);
        }
        loop {
            self.waiters.park(None);
            // Hand-off: the unlocker made us the owner before waking us.
            if self.owner.get() == me || self.try_lock() {
                return Ok(());
            }
        }
    }

    /// Release the mutex; the longest waiter (if any) becomes the owner
    /// and runnable. Releasing an unlocked mutex does nothing.
    #[inline]
    pub fn unlock(&self) {
        if self.owner.get() == NONE {
            return;
        }
        match self.waiters.wake_one() {
            Some(next) => self.owner.set(next.as_raw()),
            None => self.owner.set(NONE),
        }
    }

    /// [`unlock`](Self::unlock) when nobody waits (or nobody holds it);
    /// returns `false`, changing nothing, when a waiter would have to be
    /// woken.
    #[inline]
    pub fn unlock_if_uncontended(&self) -> bool {
        if self.owner.get() != NONE && !self.waiters.is_empty() {
            return false;
        }
        self.owner.set(NONE);
        true
    }

    /// Whether some thread holds the mutex.
    pub fn is_locked(&self) -> bool {
        self.owner.get() != NONE
    }

    /// The holder, if any (and if it was taken after [`init`](crate::init)).
    pub fn owner(&self) -> Option<ThreadId> {
        ThreadId::from_raw(self.owner.get())
    }

    /// Number of threads blocked in [`lock`](Self::lock).
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }
}

/// Green reader/writer lock (writer-preferring entry, phase-fair release).
#[derive(Debug, Default)]
pub struct GreenRwLock {
    writer: Cell<u64>,
    readers: Cell<usize>,
    read_waiters: WaitQueue,
    write_waiters: WaitQueue,
}

impl GreenRwLock {
    /// An unlocked lock.
    pub const fn new() -> Self {
        Self {
            writer: Cell::new(NONE),
            readers: Cell::new(0),
            read_waiters: WaitQueue::new(),
            write_waiters: WaitQueue::new(),
        }
    }

    /// Take a read hold if there is no writer and no writer is waiting.
    pub fn try_read(&self) -> bool {
        if self.writer.get() != NONE || !self.write_waiters.is_empty() {
            return false;
        }
        self.readers.set(self.readers.get() + 1);
        true
    }

    /// Take a read hold, blocking while a writer holds or waits for the
    /// lock. Halts if the caller holds the write lock (use
    /// [`read_checked`](Self::read_checked) for an error instead).
    pub fn read(&self) {
        if self.read_checked().is_err() {
            fatal("rumpuser-green: rwlock self-deadlock (read by the writer)");
        }
    }

    /// [`read`](Self::read), returning an error on self-deadlock.
    pub fn read_checked(&self) -> Result<(), LockError> {
        if self.try_read() {
            return Ok(());
        }
        if self.writer.get() == current_raw() {
            return Err(LockError::WouldDeadlock);
        }
        // Waking a reader always grants it a hold (hand-off), so one park
        // suffices; `park` without a deadline only returns when woken.
        while self.read_waiters.park(None) != Wakeup::Notified {}
        Ok(())
    }

    /// Take the write lock if there are no readers and no writer.
    pub fn try_write(&self) -> bool {
        if self.writer.get() != NONE || self.readers.get() != 0 {
            return false;
        }
        self.writer.set(current_raw());
        true
    }

    /// Take the write lock, blocking while readers or a writer hold it.
    /// Halts if the caller already holds it as writer (use
    /// [`write_checked`](Self::write_checked) for an error instead).
    pub fn write(&self) {
        if self.write_checked().is_err() {
            fatal("rumpuser-green: rwlock self-deadlock (write by the writer)");
        }
    }

    /// [`write`](Self::write), returning an error on self-deadlock.
    pub fn write_checked(&self) -> Result<(), LockError> {
        if self.try_write() {
            return Ok(());
        }
        let me = current_raw();
        if self.writer.get() == me {
            return Err(LockError::WouldDeadlock);
        }
        loop {
            self.write_waiters.park(None);
            if self.writer.get() == me || self.try_write() {
                return Ok(());
            }
        }
    }

    /// Grant the lock to the next waiter(s) after it became free.
    fn grant_writer_if_free(&self) {
        if self.writer.get() == NONE && self.readers.get() == 0 {
            if let Some(w) = self.write_waiters.wake_one() {
                self.writer.set(w.as_raw());
            }
        }
    }

    /// [`unlock_read`](Self::unlock_read) unless the last reader must
    /// hand the lock to a waiting writer: `Some(true)` released, `None`
    /// (nothing changed) the hand-over is due, `Some(false)` no read hold.
    #[inline]
    pub fn unlock_read_if_uncontended(&self) -> Option<bool> {
        let n = self.readers.get();
        if n == 0 {
            return Some(false);
        }
        if n == 1 && self.writer.get() == NONE && !self.write_waiters.is_empty() {
            return None;
        }
        self.readers.set(n - 1);
        Some(true)
    }

    /// [`unlock_write`](Self::unlock_write) when nobody waits; returns
    /// `false`, changing nothing, when waiters are to be granted.
    #[inline]
    pub fn unlock_write_if_uncontended(&self) -> bool {
        if !self.read_waiters.is_empty() || !self.write_waiters.is_empty() {
            return false;
        }
        self.writer.set(NONE);
        true
    }

    /// Release a read hold. The last reader hands the lock to the first
    /// waiting writer.
    pub fn unlock_read(&self) {
        let n = self.readers.get();
        if n == 0 {
            return;
        }
        self.readers.set(n - 1);
        self.grant_writer_if_free();
    }

    /// Release the write lock: every waiting reader is granted a hold; if
    /// there were none, the first waiting writer gets the lock.
    pub fn unlock_write(&self) {
        if self.writer.get() == NONE {
            return;
        }
        self.writer.set(NONE);
        let woken = self.read_waiters.wake_all();
        self.readers.set(self.readers.get() + woken);
        self.grant_writer_if_free();
    }

    /// Turn the caller's write hold into a read hold and grant every
    /// waiting reader. No writer can get in between (the lock never
    /// becomes free). Does nothing if the lock is not write-held.
    pub fn downgrade(&self) {
        if self.writer.get() == NONE {
            return;
        }
        self.writer.set(NONE);
        let woken = self.read_waiters.wake_all();
        self.readers.set(self.readers.get() + 1 + woken);
    }

    /// Turn the caller's read hold into the write lock; succeeds iff the
    /// caller is the only reader (waiting writers keep waiting).
    pub fn try_upgrade(&self) -> bool {
        if self.writer.get() != NONE || self.readers.get() != 1 {
            return false;
        }
        self.readers.set(0);
        self.writer.set(current_raw());
        true
    }

    /// Whether a writer holds the lock.
    pub fn is_write_locked(&self) -> bool {
        self.writer.get() != NONE
    }

    /// Whether at least one reader holds the lock.
    pub fn has_readers(&self) -> bool {
        self.readers.get() != 0
    }

    /// Number of read holds.
    pub fn readers(&self) -> usize {
        self.readers.get()
    }

    /// The writer, if any (and if it was taken after
    /// [`init`](crate::init)).
    pub fn writer(&self) -> Option<ThreadId> {
        ThreadId::from_raw(self.writer.get())
    }
}

/// Green condition variable.
#[derive(Debug, Default)]
pub struct GreenCondvar {
    waiters: WaitQueue,
}

impl GreenCondvar {
    /// A condvar without waiters.
    pub const fn new() -> Self {
        Self {
            waiters: WaitQueue::new(),
        }
    }

    /// Atomically (with respect to other green threads) release `m` and
    /// wait for a notify or for `deadline` (absolute `now_ns`). Returns
    /// `true` iff it timed out (only ever when `now_ns() >= deadline`; a
    /// deadline in the past yields once and times out). Returns **without
    /// `m` held**; the caller re-locks in whatever order its CPU/interlock
    /// protocol requires.
    ///
    /// Precondition: the caller holds `m`.
    pub fn wait_unlocked(&self, m: &GreenMutex, deadline: Option<u64>) -> bool {
        m.unlock();
        self.waiters.park(deadline) == Wakeup::TimedOut
    }

    /// [`wait_unlocked`](Self::wait_unlocked) followed by `m.lock()`.
    pub fn wait(&self, m: &GreenMutex, deadline: Option<u64>) -> bool {
        let timed_out = self.wait_unlocked(m, deadline);
        m.lock();
        timed_out
    }

    /// Wake the longest waiter, if any.
    pub fn notify_one(&self) {
        self.waiters.wake_one();
    }

    /// Wake every waiter.
    pub fn notify_all(&self) {
        self.waiters.wake_all();
    }

    /// Number of waiting threads.
    pub fn waiters(&self) -> usize {
        self.waiters.len()
    }
}
