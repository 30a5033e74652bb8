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
//! * Wait queues: intrusive FIFO lists through the TCBs ([`WaitQueue`](crate::WaitQueue)).
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
//! [`SplitMix64`](crate::SplitMix64). Wait queues stay FIFO (that is semantics, not policy)
//! and equal deadlines expire in insertion order. Same seed + same
//! program + a platform whose clock and events are deterministic ⇒ the
//! same switch sequence, which [`set_tracing`](crate::set_tracing)/[`take_trace`](crate::take_trace) record.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch;
use crate::config::{Config, SpawnError, Stats, SwitchEvent, SwitchHook, MIN_STACK_SIZE};
use crate::excursion::ExcursionPtr;
use crate::fatal;
use crate::global::GlobalCell;
use crate::hosts::{self, HostCell};
use crate::platform::{Platform, Stack};
use crate::queue::{self, WaitQueue};
use crate::rng::SplitMix64;
use crate::switch::{excursion_trampoline, thread_start, Switch, HANDOFF, TRAMPOLINE_STACK};
use crate::thread::{BlockKind, Entry, State, Thread, ThreadId, ThreadName, Wakeup, NIL};
use crate::timer::TimerQueue;

/// Timer key: `(slot, block_seq)`.
pub(crate) type TimerKey = (u32, u64);

pub(crate) struct Sched {
    pub(crate) platform: &'static dyn Platform,
    pub(crate) cfg: Config,
    // Boxed on purpose: a suspended thread's `sp` field is written by the
    // context switch through a raw pointer, so TCBs must not move when the
    // table grows.
    #[allow(clippy::vec_box)]
    pub(crate) threads: Vec<Box<Thread>>,
    pub(crate) free_slots: Vec<u32>,
    pub(crate) cur: u32,
    pub(crate) init_slot: u32,
    pub(crate) runq: VecDeque<u32>,
    pub(crate) timers: TimerQueue<TimerKey>,
    pub(crate) rng: Option<SplitMix64>,
    pub(crate) trace: Option<Vec<SwitchEvent>>,
    pub(crate) hook: Option<SwitchHook>,
    /// `trace.is_some() || hook.is_some()`, one flag for the fast path.
    pub(crate) observed: bool,
    pub(crate) live: usize,
    /// Exited threads whose stacks are not released yet.
    pub(crate) dead: Vec<u32>,
    pub(crate) since_poll: u32,
    pub(crate) stack_cache: Vec<Stack>,
    pub(crate) stats: Stats,
    /// The host holding the token (whose running thread is `cur`).
    pub(crate) here: &'static HostCell,
    /// `here`'s bound thread (`NIL`: none).
    pub(crate) here_bound: u32,
    /// The excursion whose thread is switching into the trampoline.
    pub(crate) excursion: Option<ExcursionPtr>,
    /// The trampoline's stack (allocated at the first excursion).
    pub(crate) trampoline: Option<Stack>,
}

pub(crate) static SCHED: GlobalCell<Sched> = GlobalCell::new();

/// The running thread's raw id (`u64::MAX` without a scheduler), mirrored
/// out of [`Sched`] whenever it changes (a switch, [`init`](crate::init),
/// [`shutdown`](crate::shutdown)): lock owner tags are among the hottest reads of a kernel,
/// and the mirror makes each a single load instead of a borrow of the cell
/// and two dependent loads. Read and written by the token holder only
/// (atomic, `Relaxed`, because a static must be `Sync`). Its `curlwp` is
/// mirrored per host, in [`HostCell`](crate::HostCell).
pub(crate) static CUR_RAW: AtomicU64 = AtomicU64::new(u64::MAX);

fn timer_live(threads: &[Box<Thread>], key: &TimerKey) -> bool {
    let t = &threads[key.0 as usize];
    t.timed && t.block_seq == key.1 && matches!(t.state, State::Blocked(_))
}

impl Sched {
    pub(crate) fn id(&self, slot: u32) -> ThreadId {
        ThreadId::new(slot, self.threads[slot as usize].gen)
    }

    pub(crate) fn lookup(&self, tid: ThreadId) -> Option<u32> {
        let t = self.threads.get(tid.slot() as usize)?;
        (t.gen == tid.gen() && t.state != State::Free).then_some(tid.slot())
    }

    pub(crate) fn cur_thread(&mut self) -> &mut Thread {
        &mut self.threads[self.cur as usize]
    }

    pub(crate) fn alloc_slot(&mut self) -> Option<u32> {
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

    pub(crate) fn release_slot(&mut self, slot: u32) {
        let t = &mut self.threads[slot as usize];
        t.reset();
        t.gen = t.gen.wrapping_add(1).max(1);
        t.state = State::Free;
        self.free_slots.push(slot);
    }

    pub(crate) fn make_runnable(&mut self, slot: u32, why: Wakeup) {
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

    pub(crate) fn expire_timers(&mut self) {
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
            queue::unlink_recorded(&mut self.threads, slot);
            self.make_runnable(slot, Wakeup::TimedOut);
        }
    }

    pub(crate) fn wake_tid(&mut self, tid: ThreadId) -> bool {
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

    pub(crate) fn poll_events(&mut self) {
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
    pub(crate) fn poll_hosts(&mut self) {
        let platform = self.platform;
        platform.poll_hosts(&mut |ev| match ev {
            hosts::HostEvent::Arrive(h) => self.admit(h),
            hosts::HostEvent::Depart(h) => self.depart(h),
        });
    }

    /// The bound thread of `h`, created (away) if it has none yet.
    pub(crate) fn bound_of(&mut self, h: &'static HostCell) -> u32 {
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
    pub(crate) fn admit(&mut self, h: &'static HostCell) {
        let b = self.bound_of(h);
        let t = &mut self.threads[b as usize];
        if t.state == State::Away {
            t.state = State::Runnable;
            t.wakeup = Wakeup::Notified;
            self.runq.push_back(b);
        }
    }

    /// `h`'s host thread is gone: release its bound thread.
    pub(crate) fn depart(&mut self, h: &'static HostCell) {
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
    pub(crate) fn excursion_back(&mut self, ex: ExcursionPtr) {
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
    pub(crate) fn excursion_prepare(&mut self, ex: ExcursionPtr) -> Option<usize> {
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
    pub(crate) fn excursion_leave(&mut self) -> usize {
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

    pub(crate) fn pop_runnable(&mut self) -> Option<u32> {
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
    pub(crate) fn pick_next(&mut self) -> u32 {
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
    pub(crate) fn pick_next_slow(&mut self) -> u32 {
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
    pub(crate) fn switch_to(&mut self, next: u32) -> Switch {
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
        hosts::set_lwp_here(lwp);
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
    pub(crate) fn switch_remote(&mut self, prev: u32, next: u32, home: *const HostCell) -> Switch {
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

    pub(crate) fn threads_bound_of(&self, h: &HostCell) -> u32 {
        h.bound.load(Ordering::Relaxed)
    }

    /// The bookkeeping of making `next`, bound to host `to`, current there:
    /// the token is about to move to `to`, which is waiting, so its mirrors
    /// are set here.
    pub(crate) fn make_remote(&mut self, prev: u32, next: u32, to: &'static HostCell) {
        #[cfg(debug_assertions)]
        self.check_canary(prev);
        self.cur = next;
        self.here = to;
        self.here_bound = next;
        let t = &self.threads[next as usize];
        CUR_RAW.store(ThreadId::new(next, t.gen).as_raw(), Ordering::Relaxed);
        self.stats.switches += 1;
        if self.observed {
            self.record(prev, next);
        }
    }

    #[cold]
    pub(crate) fn record(&mut self, prev: u32, next: u32) {
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

    pub(crate) fn check_canary(&self, slot: u32) {
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
    pub(crate) fn reap_dead(&mut self) {
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

    pub(crate) fn release_stack(&mut self, stack: Stack) {
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

    pub(crate) fn take_stack(&mut self, want: usize) -> Option<Stack> {
        let hit = self
            .stack_cache
            .iter()
            .position(|s| s.size >= want && s.size / 2 <= want);
        match hit {
            Some(i) => Some(self.stack_cache.swap_remove(i)),
            None => self.platform.alloc_stack(want),
        }
    }

    pub(crate) fn spawn(
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
    pub(crate) fn block_current(
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

    pub(crate) fn exit_current(&mut self) -> Switch {
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
