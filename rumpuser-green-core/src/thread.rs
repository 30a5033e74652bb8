//! Thread identifiers, names and the thread control block (TCB).

use alloc::boxed::Box;
use core::ffi::c_void;
use core::fmt;
use core::ptr;

use crate::hosts::HostCell;
use crate::platform::Stack;

/// "No thread" in slot-index links.
pub(crate) const NIL: u32 = u32::MAX;

/// Identifies a green thread: a slot index plus a generation, so an id of
/// a thread that has been reaped never matches the slot's next occupant.
///
/// The raw value is never 0 and never `u64::MAX`; it is the token a
/// platform returns from [`Platform::poll_events`](crate::Platform::poll_events)
/// to wake a thread.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ThreadId(u64);

impl ThreadId {
    pub(crate) fn new(slot: u32, gen: u32) -> Self {
        Self((u64::from(gen) << 32) | u64::from(slot))
    }

    /// The raw value (a wake-up token for `poll_events`).
    pub const fn as_raw(self) -> u64 {
        self.0
    }

    /// Rebuild an id from [`as_raw`](Self::as_raw); `None` for values that
    /// can never be ids. Stale ids are accepted here and rejected by the
    /// scheduler.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        if raw == 0 || raw == u64::MAX || (raw >> 32) == 0 {
            None
        } else {
            Some(Self(raw))
        }
    }

    pub(crate) fn slot(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for ThreadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ThreadId({}#{})", self.slot(), self.gen())
    }
}

/// Maximum stored name length in bytes.
pub const NAME_MAX: usize = 32;

/// A thread name: a copy of at most [`NAME_MAX`] bytes, truncated at a
/// UTF-8 character boundary.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ThreadName {
    buf: [u8; NAME_MAX],
    len: u8,
}

impl ThreadName {
    /// Copy (and possibly truncate) `s`.
    pub fn new(s: &str) -> Self {
        let mut len = s.len().min(NAME_MAX);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut buf = [0u8; NAME_MAX];
        buf[..len].copy_from_slice(&s.as_bytes()[..len]);
        Self {
            buf,
            len: len as u8,
        }
    }

    /// The stored name.
    pub fn as_str(&self) -> &str {
        // The buffer always holds a prefix of a `&str` cut at a char
        // boundary, so this cannot fail; fall back to "" defensively.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for ThreadName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why a blocked thread was made runnable again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wakeup {
    /// Woken explicitly (wait-queue wake, [`wake`](crate::wake), join
    /// target exit).
    Notified,
    /// The deadline passed (`now_ns() >= deadline`).
    TimedOut,
}

/// What a blocked thread waits for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BlockKind {
    /// [`park`](crate::park): woken by [`wake`](crate::wake) or timeout.
    Park,
    /// [`sleep_until`](crate::sleep_until): only the deadline wakes it.
    Sleep,
    /// Linked on a [`WaitQueue`](crate::WaitQueue).
    Queue,
    /// Waiting in [`join`](crate::join) for a thread to exit.
    Join,
    /// Running on a helper host thread ([`excursion`](crate::excursion));
    /// only the excursion's return makes it runnable.
    Excursion,
    /// The runner's bound thread while it runs the scheduler for its host:
    /// never made runnable, only resumed to hand the token on
    /// ([`hosts`](crate::hosts)).
    Host,
}

/// Scheduler state of a slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    /// Unused slot (on the free list).
    Free,
    /// The thread executing now.
    Running,
    /// On the run queue.
    Runnable,
    /// Blocked.
    Blocked(BlockKind),
    /// Has called exit; its stack (and TCB, unless joinable) is released by
    /// scheduler code running on another thread (`reap_dead`).
    Dead,
    /// Exited joinable thread waiting for `join` (stack already freed).
    Zombie,
    /// A bound thread whose host thread runs outside the green world while
    /// another host holds the token ([`hosts`](crate::hosts)).
    Away,
}

/// A thread's entry point.
pub(crate) enum Entry {
    C(extern "C" fn(*mut c_void), *mut c_void),
    Rust(fn(usize), usize),
    Closure(Box<dyn FnOnce()>),
}

/// The thread control block. Boxed so its address (and that of `sp`, which
/// the context switch writes) stays put when the slot table grows.
pub(crate) struct Thread {
    /// Saved stack pointer while not running.
    pub(crate) sp: usize,
    pub(crate) state: State,
    pub(crate) gen: u32,
    /// Incremented each time the thread blocks; timer entries carry it so
    /// an entry of an earlier block is recognised as stale.
    pub(crate) block_seq: u64,
    /// Whether the current block has a timer entry.
    pub(crate) timed: bool,
    pub(crate) wakeup: Wakeup,
    /// A `wake` arrived while not parked: the next `park` returns at once.
    pub(crate) permit: bool,
    /// The queue this thread is linked on (only while `Blocked(Queue)`;
    /// a `*const WaitQueue`, which only the queue module dereferences).
    pub(crate) wq: *const (),
    pub(crate) wq_prev: u32,
    pub(crate) wq_next: u32,
    pub(crate) stack: Option<Stack>,
    pub(crate) entry: Option<Entry>,
    pub(crate) joinable: bool,
    pub(crate) joiner: u32,
    pub(crate) curlwp: *mut c_void,
    pub(crate) errno: i32,
    pub(crate) user: usize,
    pub(crate) name: ThreadName,
    /// The host whose native stack this thread runs on (null: a free thread
    /// with a stack of its own, run by whichever host holds the token).
    pub(crate) home: *const HostCell,
}

impl Thread {
    pub(crate) fn new(gen: u32) -> Self {
        Self {
            sp: 0,
            state: State::Free,
            gen,
            block_seq: 0,
            timed: false,
            wakeup: Wakeup::Notified,
            permit: false,
            wq: ptr::null(),
            wq_prev: NIL,
            wq_next: NIL,
            stack: None,
            entry: None,
            joinable: false,
            joiner: NIL,
            curlwp: ptr::null_mut(),
            errno: 0,
            user: 0,
            name: ThreadName::new(""),
            home: ptr::null(),
        }
    }

    /// Reset the per-thread slots for a new occupant. Keeps `gen` (bumped
    /// by the caller) and `block_seq`: the sequence must keep growing across
    /// occupants, or a stale timer entry of the previous occupant could
    /// match a later block of the new one and fire before its deadline.
    pub(crate) fn reset(&mut self) {
        let (gen, block_seq) = (self.gen, self.block_seq);
        *self = Self::new(gen);
        self.block_seq = block_seq;
    }
}
