//! The cooperative scheduler: thread table, run queue, sleep queue, idle
//! loop, spawn/exit/join, and the public free functions.
//!
//! # Data structures (no O(n) scans)
//!
//! * Thread table: `Vec<Box<Thread>>` indexed by slot, plus a free-slot
//!   list; a [`ThreadId`] carries the slot's generation, so stale ids are
//!   rejected in O(1).
//! * Run queue: a `VecDeque` of slots. FIFO by default (`pop_front`); with a
//!   seed, the next thread is taken from a uniformly random position
//!   (`swap_remove_back`, still O(1)).
//! * Sleep queue: [`TimerQueue`], a binary heap of `(deadline_ns, seq)` with
//!   lazy cancellation.
//! * Wait queues: intrusive FIFO lists through the TCBs ([`WaitQueue`]).
//!
//! # Life of a switch
//!
//! All state changes happen inside one `SCHED.try_with` closure, which
//! ends by choosing the next thread and returning `(where to save my sp,
//! the next sp)`. The assembly switch runs *after* the closure, so no
//! borrow of the scheduler spans two threads. A resumed `yield_now` has
//! nothing left to do; a resumed blocking call reads its wake-up reason.
//!
//! An exiting thread cannot free the stack it is running on. It is put on
//! a `dead` list, and the list is reaped (stacks freed or cached, TCBs
//! turned into zombies or free slots) by scheduler code running on any
//! *other* thread: the next exit, spawn, join, slow-path pick (at least
//! every `poll_interval` switches and before idling) or shutdown. Only the
//! current thread's own entry is ever skipped, so at most one dead stack
//! is outstanding.
//!
//! # Timers, events, idle
//!
//! Timers are checked (one `now_ns` read) and `poll_events` is called
//! whenever the run queue is empty and otherwise every
//! [`Config::poll_interval`] switches, so busy yielders cannot starve a
//! sleeper or an I/O completion, and the switch fast path reads no clock.
//! With nothing runnable the core calls `Platform::idle(next_deadline)`:
//! no tick, no periodic wake-up, no busy loop.
//!
//! # Deterministic mode
//!
//! With [`Config::seed`] set, the only scheduling choice that is not fixed
//! by the program — which runnable thread runs next — is made by
//! [`SplitMix64`]. Wait queues stay FIFO (that is semantics, not policy)
//! and equal deadlines expire in insertion order. Same seed + same
//! program + a platform whose clock and events are deterministic ⇒ the
//! same switch sequence, which [`set_tracing`]/[`take_trace`] record.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use super::arch;
use super::excursion::ExcursionPtr;
use super::global::GlobalCell;
use super::hosts::{self, HostCell};
use super::platform::{Platform, Stack};
use super::rng::SplitMix64;
use super::thread::{BlockKind, Entry, State, Thread, ThreadId, ThreadName, Wakeup, NIL};
use super::timer::TimerQueue;
use super::waitq::{self, WaitQueue};

/// Stack size used when `spawn` is asked for 0 bytes.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;
/// Smallest accepted stack size.
pub const MIN_STACK_SIZE: usize = 4096;

/// Scheduler configuration for [`init`].
#[derive(Clone, Debug)]
pub struct Config {
    /// `Some(seed)`: pick the next runnable thread at a random run-queue
    /// position with a PRNG seeded by this value (reproducible schedules).
    /// `None`: plain FIFO round robin.
    pub seed: Option<u64>,
    /// Stack size for `stack_size == 0` requests.
    pub default_stack_size: usize,
    /// While threads are runnable, poll events and expire timers every
    /// this many switches (>= 1). Lower = fairer to sleepers and I/O,
    /// higher = cheaper switches.
    pub poll_interval: u32,
    /// How many released stacks to keep for reuse instead of returning
    /// them to the platform.
    pub stack_cache: usize,
    /// Start with switch tracing on (see [`take_trace`]).
    pub trace: bool,
    /// Other host threads take part through the platform's
    /// [`HostOps`](super::hosts::HostOps): the calling thread of [`init`]
    /// becomes the primary host, its first thread bound to it
    /// ([`hosts`](super::hosts)).
    pub hosts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: None,
            default_stack_size: DEFAULT_STACK_SIZE,
            poll_interval: 64,
            stack_cache: 16,
            trace: false,
            hosts: false,
        }
    }
}

impl Config {
    /// Default configuration with a seed (deterministic mode).
    pub fn seeded(seed: u64) -> Self {
        Self {
            seed: Some(seed),
            ..Self::default()
        }
    }
}

/// One context switch, as recorded by the trace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SwitchEvent {
    /// The thread that stopped running.
    pub from: ThreadId,
    /// The thread that runs next.
    pub to: ThreadId,
}

/// Called on every switch with the event and the next thread's user data
/// word (e.g. to install its TLS block). Runs inside the scheduler: it must
/// not call any scheduler function.
pub type SwitchHook = fn(event: SwitchEvent, to_user_data: usize);

/// [`init`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InitError {
    /// The scheduler is already running.
    AlreadyInitialized,
}

/// [`spawn`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpawnError {
    /// [`init`] has not been called.
    NotInitialized,
    /// Requested stack below [`MIN_STACK_SIZE`].
    StackTooSmall,
    /// The platform could not allocate a stack.
    OutOfMemory,
    /// The platform returned a stack smaller than asked or misaligned.
    BadStack,
    /// The thread table is full (2^32 - 1 slots).
    TooManyThreads,
}

/// [`join`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JoinError {
    /// [`init`] has not been called.
    NotInitialized,
    /// Unknown or already joined/reaped id.
    NoSuchThread,
    /// The thread was not created joinable.
    NotJoinable,
    /// A thread tried to join itself.
    Deadlock,
    /// Another thread is already joining it.
    AlreadyJoining,
}

/// [`shutdown`] failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownError {
    /// [`init`] has not been called.
    NotInitialized,
    /// Only the thread created by [`init`] may shut down.
    NotInitThread,
    /// This many other threads have not exited (zombies do not count).
    ThreadsAlive(usize),
}

macro_rules! impl_display {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
impl_display!(InitError, SpawnError, JoinError, ShutdownError);

/// Counters and sizes, for tests and diagnostics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Context switches performed.
    pub switches: u64,
    /// Threads spawned.
    pub spawned: u64,
    /// Threads that exited.
    pub exited: u64,
    /// `Platform::idle` calls.
    pub idles: u64,
    /// Threads that have not exited (running, runnable or blocked).
    pub live_threads: usize,
    /// Run-queue length (the caller not included).
    pub runnable: usize,
    /// Timer entries stored (stale ones included).
    pub timers: usize,
    /// Stacks held in the reuse cache.
    pub cached_stacks: usize,
}

/// What a scheduling decision leaves to do once the scheduler's borrow has
/// ended, in two words (so it comes back in registers on the switch path):
///
/// * `save` non-null: a register switch on this host: store the current
///   stack pointer at `save`, resume the context `to`;
/// * `save` null, `to` non-zero: the current thread is its host's bound
///   thread and the next one is bound to the host `to` (a `HostCell`
///   address): hand the token over and wait for it in place;
/// * both null: the current thread keeps running.
#[derive(Clone, Copy)]
struct Switch {
    save: *mut usize,
    to: usize,
}

impl Switch {
    const STAY: Switch = Switch {
        save: ptr::null_mut(),
        to: 0,
    };

    fn local(save: *mut usize, to: usize) -> Switch {
        Switch { save, to }
    }

    fn remote(to: &'static HostCell) -> Switch {
        Switch {
            save: ptr::null_mut(),
            to: to as *const HostCell as usize,
        }
    }
}

/// Timer key: `(slot, block_seq)`.
type TimerKey = (u32, u64);

struct Sched {
    platform: &'static dyn Platform,
    cfg: Config,
    // Boxed on purpose: a suspended thread's `sp` field is written by the
    // context switch through a raw pointer, so TCBs must not move when the
    // table grows.
    #[allow(clippy::vec_box)]
    threads: Vec<Box<Thread>>,
    free_slots: Vec<u32>,
    cur: u32,
    init_slot: u32,
    runq: VecDeque<u32>,
    timers: TimerQueue<TimerKey>,
    rng: Option<SplitMix64>,
    trace: Option<Vec<SwitchEvent>>,
    hook: Option<SwitchHook>,
    /// `trace.is_some() || hook.is_some()`, one flag for the fast path.
    observed: bool,
    live: usize,
    /// Exited threads whose stacks are not released yet.
    dead: Vec<u32>,
    since_poll: u32,
    stack_cache: Vec<Stack>,
    stats: Stats,
    /// The host holding the token (whose running thread is `cur`).
    here: &'static HostCell,
    /// `here`'s bound thread (`NIL`: none).
    here_bound: u32,
    /// The excursion whose thread is switching into the trampoline.
    excursion: Option<ExcursionPtr>,
    /// The trampoline's stack (allocated at the first excursion).
    trampoline: Option<Stack>,
}

static SCHED: GlobalCell<Sched> = GlobalCell::new();

/// The running thread's raw id (`u64::MAX` without a scheduler), mirrored
/// out of [`Sched`] whenever it changes (a switch, [`init`],
/// [`shutdown`]): lock owner tags are among the hottest reads of a kernel,
/// and the mirror makes each a single load instead of a borrow of the cell
/// and two dependent loads. Read and written by the token holder only
/// (atomic, `Relaxed`, because a static must be `Sync`). Its `curlwp` is
/// mirrored per host, in [`HostCell`].
static CUR_RAW: AtomicU64 = AtomicU64::new(u64::MAX);

fn timer_live(threads: &[Box<Thread>], key: &TimerKey) -> bool {
    let t = &threads[key.0 as usize];
    t.timed && t.block_seq == key.1 && matches!(t.state, State::Blocked(_))
}

impl Sched {
    fn id(&self, slot: u32) -> ThreadId {
        ThreadId::new(slot, self.threads[slot as usize].gen)
    }

    fn lookup(&self, tid: ThreadId) -> Option<u32> {
        let t = self.threads.get(tid.slot() as usize)?;
        (t.gen == tid.gen() && t.state != State::Free).then_some(tid.slot())
    }

    fn cur_thread(&mut self) -> &mut Thread {
        &mut self.threads[self.cur as usize]
    }

    fn alloc_slot(&mut self) -> Option<u32> {
        if let Some(slot) = self.free_slots.pop() {
            return Some(slot);
        }
        let n = self.threads.len();
        if n >= NIL as usize {
            return None;
        }
        self.threads.push(Box::new(Thread::new(1)));
        Some(n as u32)
    }

    fn release_slot(&mut self, slot: u32) {
        let t = &mut self.threads[slot as usize];
        t.reset();
        t.gen = t.gen.wrapping_add(1).max(1);
        t.state = State::Free;
        self.free_slots.push(slot);
    }

    fn make_runnable(&mut self, slot: u32, why: Wakeup) {
        let t = &mut self.threads[slot as usize];
        debug_assert!(matches!(t.state, State::Blocked(_)));
        if !t.home.is_null() && !ptr::eq(t.home, self.here) {
            // Another host waits for the token to run it: this host hands
            // the token over when its hypercall returns, if not before.
            self.here.slow.store(true, Ordering::Relaxed);
        }
        let had_timer = t.timed;
        t.timed = false;
        t.state = State::Runnable;
        t.wakeup = why;
        self.runq.push_back(slot);
        if had_timer {
            // Its heap entry is now stale (`timed` is false).
            let threads = &self.threads;
            self.timers.cancelled(|k| timer_live(threads, k));
        }
    }

    fn expire_timers(&mut self) {
        if self.timers.is_empty() {
            return;
        }
        let now = self.platform.now_ns();
        loop {
            let threads = &self.threads;
            let Some((_, (slot, _))) = self.timers.pop_expired(now, |k| timer_live(threads, k))
            else {
                break;
            };
            // The entry was popped, so it must not be reported stale.
            self.threads[slot as usize].timed = false;
            waitq::unlink_recorded(&mut self.threads, slot);
            self.make_runnable(slot, Wakeup::TimedOut);
        }
    }

    fn wake_tid(&mut self, tid: ThreadId) -> bool {
        let Some(slot) = self.lookup(tid) else {
            return false;
        };
        match self.threads[slot as usize].state {
            State::Blocked(BlockKind::Park) => self.make_runnable(slot, Wakeup::Notified),
            State::Running | State::Runnable | State::Blocked(_) | State::Away => {
                self.threads[slot as usize].permit = true;
            }
            State::Free | State::Dead | State::Zombie => return false,
        }
        true
    }

    fn poll_events(&mut self) {
        let platform = self.platform;
        platform.poll_events(&mut |token| {
            if let Some(tid) = ThreadId::from_raw(token) {
                self.wake_tid(tid);
            }
        });
        platform.poll_excursions(&mut |ex| self.excursion_back(ex));
        self.poll_hosts();
    }

    /// Host threads that asked for the token (their bound threads become
    /// runnable) or left for good (their slots are released).
    fn poll_hosts(&mut self) {
        let platform = self.platform;
        platform.poll_hosts(&mut |ev| match ev {
            hosts::HostEvent::Arrive(h) => self.admit(h),
            hosts::HostEvent::Depart(h) => self.depart(h),
        });
    }

    /// The bound thread of `h`, created (away) if it has none yet.
    fn bound_of(&mut self, h: &'static HostCell) -> u32 {
        let b = h.bound.load(Ordering::Relaxed);
        if b != NIL {
            return b;
        }
        let Some(slot) = self.alloc_slot() else {
            fatal("rumpuser-green: no thread slot for a host thread");
        };
        let t = &mut self.threads[slot as usize];
        t.state = State::Away;
        t.home = h;
        t.name = ThreadName::new("host");
        self.live += 1;
        h.bound.store(slot, Ordering::Relaxed);
        slot
    }

    /// `h` asks for the token: its bound thread becomes runnable (if it is
    /// away; one waiting for the token already is runnable or current).
    fn admit(&mut self, h: &'static HostCell) {
        let b = self.bound_of(h);
        let t = &mut self.threads[b as usize];
        if t.state == State::Away {
            t.state = State::Runnable;
            t.wakeup = Wakeup::Notified;
            self.runq.push_back(b);
        }
    }

    /// `h`'s host thread is gone: release its bound thread.
    fn depart(&mut self, h: &'static HostCell) {
        let b = h.bound.load(Ordering::Relaxed);
        if b == NIL {
            return;
        }
        if self.threads[b as usize].state != State::Away {
            fatal("rumpuser-green: a host thread left while its green thread was not away");
        }
        h.bound.store(NIL, Ordering::Relaxed);
        self.release_slot(b);
        self.live -= 1;
    }

    /// An excursing thread is back from its helper: runnable again, with
    /// the context the helper's switch saved.
    fn excursion_back(&mut self, ex: ExcursionPtr) {
        // SAFETY: the helper handed the record over after its switch out
        // of the thread completed and does not touch it again; the thread
        // itself frees it only after it is resumed below.
        let (tid, sp) = unsafe { ((*ex.0).tid, *(*ex.0).sp.get()) };
        let Some(slot) = self.lookup(tid) else {
            fatal("rumpuser-green: an excursion came back for an unknown thread");
        };
        if self.threads[slot as usize].state != State::Blocked(BlockKind::Excursion) {
            fatal("rumpuser-green: an excursion came back for a thread not on one");
        }
        self.threads[slot as usize].sp = sp;
        self.make_runnable(slot, Wakeup::Notified);
    }

    /// `excursion::begin`: blocks the current thread and returns the
    /// trampoline's fresh frame to switch to; `None` if the platform has no
    /// helpers or the trampoline stack cannot be had.
    fn excursion_prepare(&mut self, ex: ExcursionPtr) -> Option<usize> {
        if self.rng.is_some() || !self.platform.excursions() {
            return None;
        }
        if self.trampoline.is_none() {
            self.trampoline = self.platform.alloc_stack(TRAMPOLINE_STACK);
        }
        let t = self.trampoline.as_ref()?;
        // SAFETY: the trampoline stack is ours; no context is live on it
        // (the previous trampoline switched away for good, and this thread
        // is not running on it).
        let to = unsafe { arch::init_frame(t.base, t.size, excursion_trampoline, 0) };
        let slot = self.cur;
        let t = &mut self.threads[slot as usize];
        t.block_seq += 1;
        t.state = State::Blocked(BlockKind::Excursion);
        t.timed = false;
        t.wakeup = Wakeup::Notified;
        self.excursion = Some(ex);
        Some(to)
    }

    /// The trampoline's work: hand the excursion out (its thread's context
    /// is complete now) and choose the next thread; returns its context.
    fn excursion_leave(&mut self) -> usize {
        let Some(ex) = self.excursion.take() else {
            fatal("rumpuser-green: excursion trampoline without an excursion");
        };
        let prev = self.cur;
        // SAFETY: the record is the current thread's, not yet handed out.
        unsafe { *(*ex.0).started.get() = true };
        if !self.platform.excursion_start(ex) {
            // No helper after all: the thread resumes here, on this host.
            // SAFETY: as above; the platform did not keep it.
            unsafe { *(*ex.0).started.get() = false };
            // SAFETY: written by the thread's switch into the trampoline.
            self.threads[prev as usize].sp = unsafe { *(*ex.0).sp.get() };
            self.make_runnable(prev, Wakeup::Notified);
        }
        let next = self.pick_next();
        let sw = self.switch_to(next);
        if !sw.save.is_null() {
            // The trampoline's own context is abandoned; only where to go
            // matters (for a thread of another host: this host's bound
            // thread, which hands the token on).
            sw.to
        } else if sw.to == 0 {
            // `prev` itself (back already, or no helper): this context is
            // the trampoline's, so the thread's saved one is resumed.
            self.threads[next as usize].sp
        } else {
            fatal("rumpuser-green: the excursion trampoline ran as a bound thread")
        }
    }

    fn pop_runnable(&mut self) -> Option<u32> {
        if let Some(rng) = self.rng.as_mut() {
            let n = self.runq.len();
            if n > 1 {
                let i = rng.below(n);
                return self.runq.swap_remove_back(i);
            }
        }
        self.runq.pop_front()
    }

    /// Choose the next thread to run; idles the host while nothing is
    /// runnable. The current thread must already be queued, blocked or dead.
    #[inline(always)]
    fn pick_next(&mut self) -> u32 {
        self.since_poll += 1;
        if self.since_poll < self.cfg.poll_interval {
            if let Some(next) = self.pop_runnable() {
                return next;
            }
        }
        self.pick_next_slow()
    }

    /// Poll events and timers, then pick; idle while nothing is runnable.
    #[inline(never)]
    fn pick_next_slow(&mut self) -> u32 {
        self.since_poll = 0;
        self.reap_dead();
        self.poll_events();
        self.expire_timers();
        loop {
            if let Some(next) = self.pop_runnable() {
                return next;
            }
            if self.live == 0 {
                self.platform
                    .console("rumpuser-green: every green thread has exited\n");
                self.platform.halt();
            }
            let deadline = {
                let threads = &self.threads;
                self.timers.next_deadline(|k| timer_live(threads, k))
            };
            let platform = self.platform;
            let flags = platform.irq_save();
            self.poll_events();
            if self.runq.is_empty() {
                self.stats.idles += 1;
                platform.idle(deadline);
            }
            platform.irq_restore(flags);
            self.poll_events();
            self.expire_timers();
        }
    }

    #[inline(always)]
    fn switch_to(&mut self, next: u32) -> Switch {
        let prev = self.cur;
        let t = &mut *self.threads[next as usize];
        t.state = State::Running;
        if next == prev {
            return Switch::STAY;
        }
        let (home, to, gen, lwp) = (t.home, t.sp, t.gen, t.curlwp);
        if !home.is_null() && !ptr::eq(home, self.here) {
            return self.switch_remote(prev, next, home);
        }
        #[cfg(debug_assertions)]
        self.check_canary(prev);
        self.cur = next;
        CUR_RAW.store(ThreadId::new(next, gen).as_raw(), Ordering::Relaxed);
        self.here.cur_lwp.store(lwp, Ordering::Relaxed);
        self.stats.switches += 1;
        if self.observed {
            self.record(prev, next);
        }
        Switch::local(ptr::addr_of_mut!(self.threads[prev as usize].sp), to)
    }

    /// `next` is bound to another host (`home`): make it current there, and
    /// leave this host by the parking rule of the [`hosts`] module doc.
    #[cold]
    #[inline(never)]
    fn switch_remote(&mut self, prev: u32, next: u32, home: *const HostCell) -> Switch {
        // SAFETY: a thread's home is a host cell the platform keeps alive
        // until the thread's slot is released (`depart`), and this thread
        // is live.
        let to: &'static HostCell = unsafe { &*home };
        let from = self.here;
        self.make_remote(prev, next, to);
        if prev == self.threads_bound_of(from) {
            return Switch::remote(to);
        }
        // A free thread (or the trampoline): its context is saved by a switch
        // to the host's bound thread, blocked inside a hypercall, which then
        // hands the token on (`after_local_resume`).
        let bound = self.threads_bound_of(from);
        HANDOFF.store(home as *mut HostCell, Ordering::Relaxed);
        Switch::local(
            ptr::addr_of_mut!(self.threads[prev as usize].sp),
            self.threads[bound as usize].sp,
        )
    }

    fn threads_bound_of(&self, h: &HostCell) -> u32 {
        h.bound.load(Ordering::Relaxed)
    }

    /// The bookkeeping of making `next`, bound to host `to`, current there:
    /// the token is about to move to `to`, which is waiting, so its mirrors
    /// are set here.
    fn make_remote(&mut self, prev: u32, next: u32, to: &'static HostCell) {
        #[cfg(debug_assertions)]
        self.check_canary(prev);
        self.cur = next;
        self.here = to;
        self.here_bound = next;
        let t = &self.threads[next as usize];
        CUR_RAW.store(ThreadId::new(next, t.gen).as_raw(), Ordering::Relaxed);
        to.cur_lwp.store(t.curlwp, Ordering::Relaxed);
        self.stats.switches += 1;
        if self.observed {
            self.record(prev, next);
        }
    }

    #[cold]
    fn record(&mut self, prev: u32, next: u32) {
        let event = SwitchEvent {
            from: self.id(prev),
            to: self.id(next),
        };
        if let Some(trace) = self.trace.as_mut() {
            trace.push(event);
        }
        if let Some(hook) = self.hook {
            hook(event, self.threads[next as usize].user);
        }
    }

    fn check_canary(&self, slot: u32) {
        if let Some(stack) = &self.threads[slot as usize].stack {
            // SAFETY: the stack belongs to this (not yet reaped) thread, so
            // it is still allocated; `base` is 16-byte aligned.
            if !unsafe { arch::canary_intact(stack.base) } {
                self.platform
                    .console("rumpuser-green: stack overflow in thread ");
                self.platform
                    .console(self.threads[slot as usize].name.as_str());
                self.platform.console("\n");
                self.platform.halt();
            }
        }
    }

    /// Release every exited thread except the current one (whose stack we
    /// may be running on).
    fn reap_dead(&mut self) {
        if self.dead.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.dead.len() {
            let slot = self.dead[i];
            if slot == self.cur {
                i += 1;
                continue;
            }
            self.dead.swap_remove(i);
            self.check_canary(slot);
            if let Some(stack) = self.threads[slot as usize].stack.take() {
                self.release_stack(stack);
            }
            if self.threads[slot as usize].joinable {
                self.threads[slot as usize].state = State::Zombie;
            } else {
                self.release_slot(slot);
            }
        }
    }

    fn release_stack(&mut self, stack: Stack) {
        if self.stack_cache.len() < self.cfg.stack_cache {
            self.stack_cache.push(stack);
        } else {
            // SAFETY: the stack came from `alloc_stack` and was owned by a
            // thread that has exited and is not the current thread (see
            // `reap_dead`), or by a spawn that failed before the thread
            // existed, so no code runs on it; it was moved out of its
            // TCB/cache, so it is released only once.
            unsafe { self.platform.free_stack(stack) };
        }
    }

    fn take_stack(&mut self, want: usize) -> Option<Stack> {
        let hit = self
            .stack_cache
            .iter()
            .position(|s| s.size >= want && s.size / 2 <= want);
        match hit {
            Some(i) => Some(self.stack_cache.swap_remove(i)),
            None => self.platform.alloc_stack(want),
        }
    }

    fn spawn(
        &mut self,
        entry: Entry,
        name: &str,
        stack_size: usize,
        joinable: bool,
    ) -> Result<ThreadId, SpawnError> {
        let want = if stack_size == 0 {
            self.cfg.default_stack_size
        } else {
            stack_size
        };
        if want < MIN_STACK_SIZE {
            return Err(SpawnError::StackTooSmall);
        }
        self.reap_dead();
        let want = want.checked_add(15).ok_or(SpawnError::OutOfMemory)? & !15;
        let stack = self.take_stack(want).ok_or(SpawnError::OutOfMemory)?;
        if stack.size < want || stack.base as usize & 15 != 0 {
            // SAFETY: freshly allocated by this platform, never used.
            unsafe { self.platform.free_stack(stack) };
            return Err(SpawnError::BadStack);
        }
        let Some(slot) = self.alloc_slot() else {
            self.release_stack(stack);
            return Err(SpawnError::TooManyThreads);
        };
        // SAFETY: the stack is owned by nobody else (fresh from the
        // platform or the cache of exited threads' stacks), is at least
        // MIN_STACK_SIZE bytes of writable memory and 16-byte aligned
        // (checked above), so its lowest word is writable.
        unsafe { arch::write_canary(stack.base) };
        // SAFETY: as above; the frame goes at the top, away from the canary.
        let sp = unsafe { arch::init_frame(stack.base, stack.size, thread_start, 0) };
        let t = &mut self.threads[slot as usize];
        t.sp = sp;
        t.state = State::Runnable;
        t.stack = Some(stack);
        t.entry = Some(entry);
        t.joinable = joinable;
        t.name = ThreadName::new(name);
        self.runq.push_back(slot);
        self.live += 1;
        self.stats.spawned += 1;
        Ok(self.id(slot))
    }

    /// Block the current thread (or, with an expired deadline, yield once
    /// and report `TimedOut`). `Err` = return at once without switching.
    fn block_current(
        &mut self,
        kind: BlockKind,
        deadline: Option<u64>,
        queue: Option<&WaitQueue>,
    ) -> Result<Switch, Wakeup> {
        let slot = self.cur;
        if kind == BlockKind::Park && self.threads[slot as usize].permit {
            self.threads[slot as usize].permit = false;
            return Err(Wakeup::Notified);
        }
        if let Some(d) = deadline {
            if self.platform.now_ns() >= d {
                let t = self.cur_thread();
                t.wakeup = Wakeup::TimedOut;
                t.state = State::Runnable;
                self.runq.push_back(slot);
                let next = self.pick_next();
                return Ok(self.switch_to(next));
            }
        }
        let t = &mut self.threads[slot as usize];
        t.block_seq += 1;
        t.state = State::Blocked(kind);
        t.timed = deadline.is_some();
        t.wakeup = Wakeup::Notified;
        let seq = t.block_seq;
        if let Some(d) = deadline {
            self.timers.push(d, (slot, seq));
        }
        if let Some(q) = queue {
            q.link_back(&mut self.threads, slot);
        }
        let next = self.pick_next();
        Ok(self.switch_to(next))
    }

    fn exit_current(&mut self) -> Switch {
        let slot = self.cur;
        if !self.threads[slot as usize].home.is_null() && slot != self.init_slot {
            fatal("rumpuser-green: a host thread's own green thread called thread exit");
        }
        let t = &mut self.threads[slot as usize];
        t.state = State::Dead;
        t.entry = None;
        let joiner = core::mem::replace(&mut t.joiner, NIL);
        self.live -= 1;
        self.stats.exited += 1;
        if joiner != NIL && self.threads[joiner as usize].state == State::Blocked(BlockKind::Join) {
            self.make_runnable(joiner, Wakeup::Notified);
        }
        self.reap_dead();
        self.dead.push(slot);
        let next = self.pick_next();
        self.switch_to(next)
    }
}

/// Perform a switch computed by the scheduler and, once this thread is
/// resumed, return its wake-up reason.
#[inline(always)]
fn run_switch(sw: Switch) -> Wakeup {
    if !perform(sw) {
        fatal("rumpuser-green: the runner's thread blocked outside its loop");
    }
    SCHED
        .try_with(|s| s.threads[s.cur as usize].wakeup)
        .unwrap_or(Wakeup::Notified)
}

/// Perform a switch; `true` once this thread runs again with the token,
/// `false` when this is the runner's bound thread and it handed the token
/// on (it must not touch the scheduler then).
#[inline(always)]
fn perform(sw: Switch) -> bool {
    let Switch { save, to } = sw;
    if !save.is_null() {
        {
            // SAFETY: `save` points at the `sp` field of the current
            // thread's boxed TCB, which stays allocated while the scheduler
            // exists (TCBs are only reset, never freed, before `shutdown`,
            // which requires every other thread to have exited). `to` is
            // the saved stack pointer of a thread that may run on this
            // host: produced by `arch::switch` when it was suspended or by
            // `arch::init_frame` at spawn, on a stack that is freed only
            // after that thread exits.
            unsafe { arch::switch(save, to) };
            HANDOFF.load(Ordering::Relaxed).is_null() || after_local_resume()
        }
    } else if to == 0 {
        true
    } else {
        remote_switch(to)
    }
}

/// The bound thread's side of [`Switch::remote`].
#[cold]
#[inline(never)]
fn remote_switch(to: usize) -> bool {
    let Some(from) = hosts::this_host() else {
        fatal("rumpuser-green: a token hand-off on a host thread that does not take part");
    };
    // SAFETY: made by `Switch::remote` from a `&'static HostCell`.
    hand_on(from, unsafe { &*(to as *const HostCell) })
}

/// The host a free thread (or the trampoline) wants the token handed to
/// once its context is saved: set by `switch_remote` right before the
/// switch to its host's bound thread, taken by that thread when it
/// resumes. Only the token holder's host touches it, so a plain flag
/// shared by all hosts suffices.
static HANDOFF: AtomicPtr<HostCell> = AtomicPtr::new(ptr::null_mut());

/// A bound thread resumed by a register switch only to park its host: hand
/// the token on now (the free thread's context is saved) and wait for it.
/// `false`: the runner left.
#[cold]
#[inline(never)]
fn after_local_resume() -> bool {
    let to = HANDOFF.swap(ptr::null_mut(), Ordering::Relaxed);
    let Some(h) = hosts::this_host() else {
        fatal("rumpuser-green: a token hand-off on a host thread that does not take part");
    };
    // SAFETY: set by `switch_remote` from a live thread's home.
    hand_on(h, unsafe { &*to })
}

/// Give the token from `from` to `to` (whose bound thread the scheduler
/// made current) and wait until it comes back, or, for the runner, leave.
fn hand_on(from: &'static HostCell, to: &'static HostCell) -> bool {
    let ops = hosts::ops();
    ops.give(from, to);
    if from.runner.load(Ordering::Relaxed) {
        return false;
    }
    ops.wait(from);
    true
}

/// First code run by every spawned thread (via the arch trampoline).
extern "C" fn thread_start(_arg: usize) -> ! {
    let entry = SCHED.try_with(|s| s.cur_thread().entry.take()).flatten();
    match entry {
        Some(Entry::C(f, arg)) => f(arg),
        Some(Entry::Rust(f, arg)) => f(arg),
        Some(Entry::Closure(f)) => f(),
        None => {}
    }
    exit()
}

/// Stack of the excursion trampoline: it runs the scheduler, including the
/// platform's idle and event poll.
const TRAMPOLINE_STACK: usize = 64 * 1024;

/// Entered (on the trampoline stack) by a thread starting an excursion; see
/// `excursion_leave`. Never resumed: its next use builds a fresh frame.
extern "C" fn excursion_trampoline(_arg: usize) -> ! {
    let Some(to) = SCHED.try_with(|s| s.excursion_leave()) else {
        fatal("rumpuser-green: excursion trampoline without a scheduler");
    };
    let mut abandoned = 0usize;
    // SAFETY: `to` is the saved context of the thread chosen to run (its
    // own switch, or the helper's for a returned excursion); this context
    // is abandoned, so the save slot is a local that is never read.
    unsafe { arch::switch(&mut abandoned, to) };
    fatal("rumpuser-green: excursion trampoline resumed")
}

/// `excursion::begin`'s scheduler part.
pub(super) fn excursion_prepare(ex: ExcursionPtr) -> Option<usize> {
    SCHED.try_with(|s| s.excursion_prepare(ex)).flatten()
}

/// Turn the calling context (the host thread's own stack) into the first
/// green thread, named "main", and start the scheduler. Returns its id.
///
/// # Safety
///
/// From now until [`shutdown`], every function of this module, and every
/// sync object that blocks, must be used only from the host thread that
/// called `init` (the scheduler is a global without locking; other host
/// threads deliver events only through [`Platform::poll_events`]).
pub unsafe fn init(platform: &'static dyn Platform, config: Config) -> Result<ThreadId, InitError> {
    let mut cfg = config;
    cfg.poll_interval = cfg.poll_interval.max(1);
    if cfg.default_stack_size < MIN_STACK_SIZE {
        cfg.default_stack_size = MIN_STACK_SIZE;
    }
    let mut main = Box::new(Thread::new(1));
    main.state = State::Running;
    main.name = ThreadName::new("main");
    let primary = &hosts::PRIMARY;
    primary.reset();
    if cfg.hosts {
        main.home = primary;
        primary.bound.store(0, Ordering::Relaxed);
    } else {
        // Nobody enters or leaves: every thread is free.
        primary.seq.store(1, Ordering::Relaxed);
    }
    // The primary holds the token, with nothing pending.
    primary.slow.store(false, Ordering::Relaxed);
    let here_bound = if cfg.hosts { 0 } else { NIL };
    let sched = Sched {
        platform,
        rng: cfg.seed.map(SplitMix64::new),
        trace: cfg.trace.then(Vec::new),
        observed: cfg.trace,
        cfg,
        threads: alloc::vec![main],
        free_slots: Vec::new(),
        cur: 0,
        init_slot: 0,
        runq: VecDeque::new(),
        timers: TimerQueue::new(),
        hook: None,
        live: 1,
        dead: Vec::new(),
        since_poll: 0,
        stack_cache: Vec::new(),
        stats: Stats::default(),
        here: primary,
        here_bound,
        excursion: None,
        trampoline: None,
    };
    SCHED
        .install(sched)
        .map_err(|_| InitError::AlreadyInitialized)?;
    hosts::set_primary_here();
    let main = ThreadId::new(0, 1);
    CUR_RAW.store(main.as_raw(), Ordering::Relaxed);
    Ok(main)
}

/// Tear the scheduler down so that [`init`] may be called again (tests,
/// benchmarks). Only the thread created by `init` may call it, and only
/// when every other thread has exited (unjoined zombies are discarded).
/// Cached stacks are returned to the platform.
pub fn shutdown() -> Result<(), ShutdownError> {
    SCHED
        .try_with(|s| {
            if s.cur != s.init_slot {
                return Err(ShutdownError::NotInitThread);
            }
            let alive = s.live.saturating_sub(1);
            if alive > 0 {
                return Err(ShutdownError::ThreadsAlive(alive));
            }
            Ok(())
        })
        .ok_or(ShutdownError::NotInitialized)??;
    if let Some(mut s) = SCHED.take() {
        CUR_RAW.store(u64::MAX, Ordering::Relaxed);
        hosts::PRIMARY.reset();
        s.reap_dead();
        while let Some(stack) = s.stack_cache.pop() {
            // SAFETY: cached stacks belong to exited threads, nothing runs
            // on them, and popping moves each out exactly once.
            unsafe { s.platform.free_stack(stack) };
        }
        if let Some(stack) = s.trampoline.take() {
            // SAFETY: every thread but the caller has exited, so no
            // excursion is under way and nothing runs on the trampoline.
            unsafe { s.platform.free_stack(stack) };
        }
    }
    Ok(())
}

/// Whether [`init`] has been called (and not undone by [`shutdown`]).
pub fn is_initialized() -> bool {
    SCHED.try_with(|_| ()).is_some()
}

fn spawn_entry(
    entry: Entry,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    SCHED
        .try_with(|s| s.spawn(entry, name, stack_size, joinable))
        .unwrap_or(Err(SpawnError::NotInitialized))
}

/// Create a green thread running `entry(arg)`; it is queued at the run
/// queue tail and first runs when the caller blocks or yields. If `entry`
/// returns, the thread exits. `stack_size == 0` means
/// [`Config::default_stack_size`]. A joinable thread stays a zombie after
/// exiting until [`join`]ed; others are reaped automatically.
pub fn spawn(
    entry: extern "C" fn(*mut c_void),
    arg: *mut c_void,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    spawn_entry(Entry::C(entry, arg), name, stack_size, joinable)
}

/// [`spawn`] with a Rust function and a word-sized argument.
pub fn spawn_fn(
    entry: fn(usize),
    arg: usize,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    spawn_entry(Entry::Rust(entry, arg), name, stack_size, joinable)
}

/// [`spawn`] with a closure (boxed). A panic that unwinds out of the
/// closure aborts the process (it cannot cross the thread's entry frame).
pub fn spawn_closure<F: FnOnce() + 'static>(
    f: F,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    spawn_entry(Entry::Closure(Box::new(f)), name, stack_size, joinable)
}

/// The running green thread. Panics if the scheduler is not initialised.
pub fn current() -> ThreadId {
    try_current().expect("rumpuser-green: scheduler not initialised")
}

/// The running green thread, `None` before [`init`].
pub fn try_current() -> Option<ThreadId> {
    ThreadId::from_raw(current_raw())
}

/// Raw id of the caller, or `u64::MAX` when there is no scheduler (used
/// by the sync objects as an owner tag).
#[inline]
pub(super) fn current_raw() -> u64 {
    CUR_RAW.load(Ordering::Relaxed)
}

/// The platform's monotonic clock (ns); 0 before [`init`].
pub fn now_ns() -> u64 {
    SCHED.try_with(|s| s.platform.now_ns()).unwrap_or(0)
}

/// Let the other runnable threads run; returns at once if there are none
/// (it never idles: the caller stays runnable).
pub fn yield_now() {
    let sw = SCHED.try_with(|s| {
        let slot = s.cur;
        s.threads[slot as usize].state = State::Runnable;
        s.runq.push_back(slot);
        let next = s.pick_next();
        s.switch_to(next)
    });
    if let Some(sw) = sw {
        if !perform(sw) {
            fatal("rumpuser-green: the runner's thread yielded outside its loop");
        }
    }
}

/// Sleep until `now_ns() >= deadline`. Never returns early; a deadline in
/// the past yields once. Halts if the scheduler is not initialised.
pub fn sleep_until(deadline: u64) {
    loop {
        let w = match SCHED.try_with(|s| s.block_current(BlockKind::Sleep, Some(deadline), None)) {
            None => fatal("rumpuser-green: sleep without a scheduler"),
            Some(Err(w)) => w,
            Some(Ok(sw)) => run_switch(sw),
        };
        // `TimedOut` is only reported once `now >= deadline` was observed;
        // re-reading the clock makes "never early" independent of that.
        if w == Wakeup::TimedOut && now_ns() >= deadline {
            return;
        }
    }
}

/// Sleep for at least `ns` nanoseconds (saturating).
pub fn sleep_for(ns: u64) {
    sleep_until(now_ns().saturating_add(ns));
}

/// Block until [`wake`] is called for this thread or `deadline` passes.
/// Like `std::thread::park`, a `wake` that arrived while the thread was
/// not parked is remembered and makes the next `park` return at once.
/// This is how the POSIX backend waits for I/O completions: the token it
/// returns from `poll_events` is this thread's id.
pub fn park(deadline: Option<u64>) -> Wakeup {
    match SCHED.try_with(|s| s.block_current(BlockKind::Park, deadline, None)) {
        None => fatal("rumpuser-green: park without a scheduler"),
        Some(Err(w)) => w,
        Some(Ok(sw)) => run_switch(sw),
    }
}

/// Wake a thread blocked in [`park`] (or leave it a permit if it is not
/// parked). Threads sleeping, joining or waiting on a [`WaitQueue`] are
/// not disturbed. Returns `false` for unknown or exited threads.
pub fn wake(tid: ThreadId) -> bool {
    SCHED.try_with(|s| s.wake_tid(tid)).unwrap_or(false)
}

/// Block on a wait queue (see [`WaitQueue::park`]).
pub(super) fn park_on_queue(q: &WaitQueue, deadline: Option<u64>) -> Wakeup {
    match SCHED.try_with(|s| s.block_current(BlockKind::Queue, deadline, Some(q))) {
        None => fatal("rumpuser-green: blocking on a wait queue without a scheduler"),
        Some(Err(w)) => w,
        Some(Ok(sw)) => run_switch(sw),
    }
}

/// Wake up to `max` waiters of `q`; returns the last woken id and stores
/// the count in `count`.
pub(super) fn wake_queue(q: &WaitQueue, max: usize, count: Option<&mut usize>) -> Option<ThreadId> {
    SCHED
        .try_with(|s| {
            let mut last = None;
            let mut n = 0;
            while n < max {
                let Some(slot) = q.unlink_front(&mut s.threads) else {
                    break;
                };
                s.make_runnable(slot, Wakeup::Notified);
                last = Some(s.id(slot));
                n += 1;
            }
            if let Some(c) = count {
                *c = n;
            }
            last
        })
        .flatten()
}

/// Terminate the calling green thread. Its stack is released once another
/// thread runs scheduler code (see the module doc); a joinable thread's id stays valid (zombie)
/// until [`join`]. When the last thread exits the platform is halted.
pub fn exit() -> ! {
    if let Some(sw) = SCHED.try_with(|s| s.exit_current()) {
        run_switch(sw);
    }
    fatal("rumpuser-green: exit() without a scheduler, or a dead thread was resumed")
}

/// Wait for a joinable thread to exit and reap it.
pub fn join(tid: ThreadId) -> Result<(), JoinError> {
    loop {
        let step = SCHED
            .try_with(|s| {
                let slot = s.lookup(tid).ok_or(JoinError::NoSuchThread)?;
                if slot == s.cur {
                    return Err(JoinError::Deadlock);
                }
                if !s.threads[slot as usize].joinable {
                    return Err(JoinError::NotJoinable);
                }
                // An exited thread that is not the caller can be reaped now.
                s.reap_dead();
                let cur = s.cur;
                let t = &mut s.threads[slot as usize];
                if t.state == State::Zombie {
                    s.release_slot(slot);
                    return Ok(None);
                }
                if t.joiner != NIL && t.joiner != cur {
                    return Err(JoinError::AlreadyJoining);
                }
                t.joiner = cur;
                Ok(Some(s.block_current(BlockKind::Join, None, None)))
            })
            .ok_or(JoinError::NotInitialized)??;
        match step {
            None => return Ok(()),
            Some(Ok(sw)) => {
                run_switch(sw);
            }
            Some(Err(_)) => {}
        }
    }
}

/// The `curlwp` slot of the green thread running on the calling host
/// thread (null before [`init`]). Needs no token: each host mirrors its
/// running thread's slot.
#[inline]
pub fn curlwp() -> *mut c_void {
    hosts::curlwp()
}

/// Set the current thread's `curlwp` slot (token holder only).
pub fn set_curlwp(l: *mut c_void) {
    SCHED.try_with(|s| {
        s.cur_thread().curlwp = l;
        s.here.cur_lwp.store(l, Ordering::Relaxed);
    });
}

/// The current thread's errno slot (0 before [`init`]).
pub fn errno() -> i32 {
    SCHED
        .try_with(|s| s.threads[s.cur as usize].errno)
        .unwrap_or(0)
}

/// Set the current thread's errno slot.
pub fn set_errno(e: i32) {
    SCHED.try_with(|s| s.cur_thread().errno = e);
}

/// The current thread's user data word (0 before [`init`]).
pub fn user_data() -> usize {
    SCHED
        .try_with(|s| s.threads[s.cur as usize].user)
        .unwrap_or(0)
}

/// Set the current thread's user data word.
pub fn set_user_data(v: usize) {
    SCHED.try_with(|s| s.cur_thread().user = v);
}

/// Another thread's user data word (`None` if unknown or reaped).
pub fn user_data_of(tid: ThreadId) -> Option<usize> {
    SCHED
        .try_with(|s| s.lookup(tid).map(|slot| s.threads[slot as usize].user))
        .flatten()
}

/// A thread's name (`None` if unknown or reaped).
pub fn thread_name(tid: ThreadId) -> Option<ThreadName> {
    SCHED
        .try_with(|s| s.lookup(tid).map(|slot| s.threads[slot as usize].name))
        .flatten()
}

/// The running thread's id and name for a crash report: `None` before
/// [`init`] or when called while the scheduler itself is executing (from
/// an exception handler that interrupted it). Never panics.
pub fn current_for_report() -> Option<(ThreadId, ThreadName)> {
    SCHED.try_with_if_free(|s| (s.id(s.cur), s.threads[s.cur as usize].name))
}

/// Rename a thread (truncated to [`NAME_MAX`](super::NAME_MAX) bytes).
pub fn set_thread_name(tid: ThreadId, name: &str) -> bool {
    SCHED
        .try_with(|s| match s.lookup(tid) {
            Some(slot) => {
                s.threads[slot as usize].name = ThreadName::new(name);
                true
            }
            None => false,
        })
        .unwrap_or(false)
}

/// Whether a thread other than the caller is ready to run now (`false`
/// before [`init`]). A caller about to block its host thread briefly uses
/// it to do so only when nobody would have run meanwhile.
pub fn others_runnable() -> bool {
    SCHED.try_with(|s| !s.runq.is_empty()).unwrap_or(false)
}

/// Counters (`None` before [`init`]).
pub fn stats() -> Option<Stats> {
    SCHED.try_with(|s| Stats {
        live_threads: s.live,
        runnable: s.runq.len(),
        timers: s.timers.len(),
        cached_stacks: s.stack_cache.len(),
        ..s.stats
    })
}

/// Turn switch recording on (clearing any previous trace) or off.
pub fn set_tracing(on: bool) {
    SCHED.try_with(|s| {
        s.trace = on.then(Vec::new);
        s.observed = s.trace.is_some() || s.hook.is_some();
    });
}

/// Take the switches recorded since tracing was turned on or last taken.
pub fn take_trace() -> Vec<SwitchEvent> {
    SCHED
        .try_with(|s| s.trace.as_mut().map(core::mem::take).unwrap_or_default())
        .unwrap_or_default()
}

/// Install (or remove) the per-switch hook.
pub fn set_switch_hook(hook: Option<SwitchHook>) {
    SCHED.try_with(|s| {
        s.hook = hook;
        s.observed = s.trace.is_some() || s.hook.is_some();
    });
}

/// Micro-benchmark: ping-pong `iters` yield round trips (2 switches each)
/// between the caller and a fresh helper thread; returns the elapsed
/// platform-clock nanoseconds for the timed part. Meaningful only when no
/// other thread is runnable and no seed is set.
pub fn bench_yield_pingpong(iters: u64) -> Result<u64, SpawnError> {
    let partner = spawn_closure(
        move || {
            for _ in 0..=iters {
                yield_now();
            }
        },
        "bench-partner",
        0,
        true,
    )?;
    yield_now(); // warm up: let the partner start
    let t0 = now_ns();
    for _ in 0..iters {
        yield_now();
    }
    let elapsed = now_ns().saturating_sub(t0);
    let _ = join(partner);
    Ok(elapsed)
}

/// Token holder, just after a steal from `from`, whose host thread is
/// outside the green world: `from`'s bound thread becomes away and `to`'s
/// (created if need be) the running one.
pub fn take_over(from: &'static HostCell, to: &'static HostCell) {
    let done = SCHED.try_with(|s| {
        let fb = from.bound.load(Ordering::Relaxed);
        if fb != NIL && s.cur == fb {
            s.threads[fb as usize].state = State::Away;
        }
        let tb = s.bound_of(to);
        if s.threads[tb as usize].state == State::Runnable {
            s.runq.retain(|&x| x != tb);
        }
        let prev = s.cur;
        s.threads[tb as usize].state = State::Running;
        s.make_remote(prev, tb, to);
    });
    if done.is_none() {
        fatal("rumpuser-green: take_over without a scheduler");
    }
}

/// Token holder `me`, whose bound thread is leaving the green world: if a
/// thread bound to another host is runnable, make it current and return
/// that host, to which the caller gives the token (`me`'s thread becomes
/// away). `None`: `me` keeps the token while away.
pub fn yield_token(me: &'static HostCell) -> Option<&'static HostCell> {
    SCHED
        .try_with(|s| {
            if !ptr::eq(s.here, me) {
                fatal("rumpuser-green: yield_token by a host that does not hold the token");
            }
            s.poll_hosts();
            let pos = s.runq.iter().position(|&x| {
                let h = s.threads[x as usize].home;
                !h.is_null() && !ptr::eq(h, me)
            })?;
            let next = s.runq.remove(pos)?;
            let prev = s.cur;
            s.threads[prev as usize].state = State::Away;
            // SAFETY: a live thread's home (see `switch_remote`).
            let to: &'static HostCell = unsafe { &*s.threads[next as usize].home };
            s.threads[next as usize].state = State::Running;
            s.make_remote(prev, next, to);
            Some(to)
        })
        .flatten()
}

/// The runner, holding the token: run green threads until the token is
/// handed to another host, then return (without the token).
pub fn serve() {
    loop {
        let sw = SCHED.try_with(|s| {
            let slot = s.cur;
            let t = &mut s.threads[slot as usize];
            t.block_seq += 1;
            t.state = State::Blocked(BlockKind::Host);
            t.timed = false;
            let next = s.pick_next();
            s.switch_to(next)
        });
        match sw {
            None => fatal("rumpuser-green: serve without a scheduler"),
            Some(sw) => {
                if !perform(sw) {
                    return;
                }
            }
        }
    }
}

/// Token holder: `h` asks for the token (see [`HostEvent`](hosts::HostEvent)).
pub fn admit(h: &'static HostCell) {
    SCHED.try_with(|s| s.admit(h));
}

/// Token holder: `h`'s host thread has gone (see [`HostEvent`](hosts::HostEvent)).
pub fn depart(h: &'static HostCell) {
    SCHED.try_with(|s| s.depart(h));
}

/// Report a fatal error on the platform console and halt (panics if the
/// scheduler is not initialised).
pub fn fatal(msg: &str) -> ! {
    match SCHED.try_with(|s| s.platform) {
        Some(p) => {
            p.console(msg);
            p.console("\n");
            p.halt()
        }
        None => panic!("{}", msg),
    }
}
