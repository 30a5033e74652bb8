//! Wait queues: FIFO lists of blocked green threads, the building block of
//! every sync object. This module is the list itself (linking and
//! unlinking TCBs); blocking on a queue and waking it are the scheduler's
//! (`WaitQueue::park`, `wake_one`, `wake_all`, in `api`).
//!
//! The list is intrusive: the queue holds head/tail slot indices and the
//! links live in the waiting threads' TCBs, so parking, waking and removing
//! a timed-out waiter are all O(1) and allocation-free.
//!
//! Only blocked threads are ever linked: a waiter whose deadline passes is
//! unlinked by the scheduler *before* it becomes runnable, so `wake_one`
//! always wakes a thread that is really waiting (no lost wake-up on a
//! thread that already timed out) and [`WaitQueue::len`] is exact.
//!
//! Lifetime argument for the one raw pointer: a thread is linked only
//! while it is blocked inside [`WaitQueue::park`], whose `&self` borrow
//! keeps the queue alive and unmoved until the thread returns from `park`.
//! The scheduler records `*const WaitQueue` in the TCB and dereferences it
//! only to unlink a timed-out waiter, i.e. while that borrow is still held.

use alloc::boxed::Box;
use core::cell::Cell;
use core::fmt;
use core::ptr;

use crate::thread::{Thread, NIL};

/// A FIFO queue of parked green threads. Not `Sync`: all green threads
/// live on one host thread.
pub struct WaitQueue {
    head: Cell<u32>,
    tail: Cell<u32>,
    len: Cell<u32>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitQueue")
            .field("len", &self.len.get())
            .finish()
    }
}

impl WaitQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            head: Cell::new(NIL),
            tail: Cell::new(NIL),
            len: Cell::new(0),
        }
    }

    /// Number of parked threads (exact: timed-out waiters are removed).
    pub fn len(&self) -> usize {
        self.len.get() as usize
    }

    /// Whether no thread is parked here.
    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Link `slot` at the tail and record the queue in its TCB.
    pub(crate) fn link_back(&self, threads: &mut [Box<Thread>], slot: u32) {
        let tail = self.tail.get();
        {
            let t = &mut threads[slot as usize];
            t.wq = (self as *const WaitQueue).cast();
            t.wq_prev = tail;
            t.wq_next = NIL;
        }
        if tail == NIL {
            self.head.set(slot);
        } else {
            threads[tail as usize].wq_next = slot;
        }
        self.tail.set(slot);
        self.len.set(self.len.get() + 1);
    }

    /// Unlink `slot`, which must be linked on this queue.
    pub(crate) fn unlink(&self, threads: &mut [Box<Thread>], slot: u32) {
        let (prev, next) = {
            let t = &mut threads[slot as usize];
            debug_assert!(ptr::eq(t.wq, (self as *const WaitQueue).cast()));
            let links = (t.wq_prev, t.wq_next);
            t.wq = ptr::null();
            t.wq_prev = NIL;
            t.wq_next = NIL;
            links
        };
        if prev == NIL {
            self.head.set(next);
        } else {
            threads[prev as usize].wq_next = next;
        }
        if next == NIL {
            self.tail.set(prev);
        } else {
            threads[next as usize].wq_prev = prev;
        }
        self.len.set(self.len.get() - 1);
    }

    /// Unlink and return the head.
    pub(crate) fn unlink_front(&self, threads: &mut [Box<Thread>]) -> Option<u32> {
        let head = self.head.get();
        if head == NIL {
            return None;
        }
        self.unlink(threads, head);
        Some(head)
    }
}

/// Unlink `slot` from the queue recorded in its TCB (timeout path).
pub(crate) fn unlink_recorded(threads: &mut [Box<Thread>], slot: u32) {
    let q = threads[slot as usize].wq.cast::<WaitQueue>();
    if q.is_null() {
        return;
    }
    // SAFETY: `wq` is set only while the thread is blocked inside
    // `WaitQueue::park(&self)` on that queue (it is cleared by `unlink`),
    // and that call's shared borrow keeps the queue alive and unmoved
    // until the thread resumes. The thread is still blocked here (we are
    // about to make it runnable), so the pointer is valid. Only `Cell`s
    // are touched through the shared reference.
    let q = unsafe { &*q };
    q.unlink(threads, slot);
}
