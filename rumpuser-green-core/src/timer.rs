//! The sleep queue: a min-heap of absolute nanosecond deadlines with lazy
//! cancellation.
//!
//! * `push` is O(log n); popping the earliest live entry is amortised
//!   O(log n). There is no scan of all threads and no tick: the scheduler
//!   asks for [`TimerQueue::next_deadline`] and lets the platform sleep
//!   exactly until then.
//! * A thread woken before its deadline does not search the heap; its entry
//!   just becomes *stale* (the caller's `live` predicate says so, e.g. by a
//!   per-block sequence number) and is dropped when it reaches the top.
//!   [`TimerQueue::cancelled`] counts stale entries and rebuilds the heap
//!   when they outnumber the live ones, so memory stays O(live timers) even
//!   for long timeouts that are always satisfied early.
//! * Entries with equal deadlines pop in insertion order (a sequence number
//!   breaks ties), which keeps seeded runs reproducible.
//!
//! Expiry rule: an entry is expired iff `now >= deadline`, so nothing ever
//! fires early, and any deadline (1 ns included) fires at the first check
//! after it passes.

use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// Rebuild only when at least this many entries are stale.
const COMPACT_MIN: usize = 64;

struct Entry<K> {
    deadline: u64,
    seq: u64,
    key: K,
}

impl<K> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.seq == other.seq
    }
}

impl<K> Eq for Entry<K> {}

impl<K> PartialOrd for Entry<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Entry<K> {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest
    /// `(deadline, seq)` first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.seq).cmp(&(self.deadline, self.seq))
    }
}

/// A deadline-ordered queue of keys with lazy cancellation (see the module
/// documentation).
pub struct TimerQueue<K> {
    heap: BinaryHeap<Entry<K>>,
    seq: u64,
    stale: usize,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> TimerQueue<K> {
    /// An empty queue.
    pub const fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
            stale: 0,
        }
    }

    /// Add `key` expiring at `deadline` (absolute ns).
    pub fn push(&mut self, deadline: u64, key: K) {
        let seq = self.seq;
        self.seq += 1;
        self.heap.push(Entry { deadline, seq, key });
    }

    /// Number of stored entries, stale ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no entries (live or stale) are stored.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Number of entries known to be live (stored minus reported stale).
    pub fn live_len(&self) -> usize {
        self.heap.len().saturating_sub(self.stale)
    }

    /// Drop stale entries from the top; afterwards the top (if any) is live.
    fn skip_stale(&mut self, live: &mut impl FnMut(&K) -> bool) {
        while let Some(top) = self.heap.peek() {
            if live(&top.key) {
                return;
            }
            self.heap.pop();
            self.stale = self.stale.saturating_sub(1);
        }
    }

    /// The earliest live deadline, discarding stale entries on the way.
    pub fn next_deadline(&mut self, mut live: impl FnMut(&K) -> bool) -> Option<u64> {
        self.skip_stale(&mut live);
        self.heap.peek().map(|e| e.deadline)
    }

    /// Remove and return the earliest live entry if `now >= deadline`.
    pub fn pop_expired(&mut self, now: u64, mut live: impl FnMut(&K) -> bool) -> Option<(u64, K)> {
        self.skip_stale(&mut live);
        if self.heap.peek()?.deadline > now {
            return None;
        }
        self.heap.pop().map(|e| (e.deadline, e.key))
    }

    /// Report that one stored entry has just become stale (its owner was
    /// woken before the deadline). Rebuilds the heap without stale entries
    /// once they are the majority; `live` must already return `false` for
    /// the reported entry.
    pub fn cancelled(&mut self, mut live: impl FnMut(&K) -> bool) {
        self.stale += 1;
        if self.stale >= COMPACT_MIN && self.stale * 2 > self.heap.len() {
            let entries: Vec<Entry<K>> = core::mem::take(&mut self.heap).into_vec();
            self.heap = entries.into_iter().filter(|e| live(&e.key)).collect();
            self.stale = 0;
        }
    }
}
