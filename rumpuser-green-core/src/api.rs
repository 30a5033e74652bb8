//! The scheduler's public functions: start and stop, spawn, block and
//! wake, join and exit, per-thread slots, observation, and the moves of
//! the token between hosts. Each borrows the one scheduler for a moment
//! ([`SCHED`](crate::sched::SCHED)) and performs the resulting switch
//! after the borrow has ended.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::Ordering;

use crate::config::{
    Config, InitError, JoinError, ShutdownError, SpawnError, Stats, SwitchEvent, SwitchHook,
    MIN_STACK_SIZE,
};
use crate::hosts::{self, HostCell};
use crate::platform::Platform;
use crate::queue::WaitQueue;
use crate::rng::SplitMix64;
use crate::sched::{Sched, CUR_RAW, SCHED};
use crate::switch::{perform, run_switch};
use crate::thread::{BlockKind, Entry, State, Thread, ThreadId, ThreadName, Wakeup, NIL};
use crate::timer::TimerQueue;

/// Turn the calling context (the host thread's own stack) into the first
/// green thread, named "main", and start the scheduler. Returns its id.
///
/// # Safety
///
/// From now until [`shutdown`](crate::shutdown), every function of this module, and every
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

/// Tear the scheduler down so that [`init`](crate::init) may be called again (tests,
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

/// Whether [`init`](crate::init) has been called (and not undone by [`shutdown`](crate::shutdown)).
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
/// exiting until [`join`](crate::join)ed; others are reaped automatically.
pub fn spawn(
    entry: extern "C" fn(*mut c_void),
    arg: *mut c_void,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    spawn_entry(Entry::C(entry, arg), name, stack_size, joinable)
}

/// [`spawn`](crate::spawn) with a Rust function and a word-sized argument.
pub fn spawn_fn(
    entry: fn(usize),
    arg: usize,
    name: &str,
    stack_size: usize,
    joinable: bool,
) -> Result<ThreadId, SpawnError> {
    spawn_entry(Entry::Rust(entry, arg), name, stack_size, joinable)
}

/// [`spawn`](crate::spawn) with a closure (boxed). A panic that unwinds out of the
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

/// The running green thread, `None` before [`init`](crate::init).
pub fn try_current() -> Option<ThreadId> {
    ThreadId::from_raw(current_raw())
}

/// Raw id of the caller, or `u64::MAX` when there is no scheduler (used
/// by the sync objects as an owner tag).
#[inline]
pub(crate) fn current_raw() -> u64 {
    CUR_RAW.load(Ordering::Relaxed)
}

/// The platform's monotonic clock (ns); 0 before [`init`](crate::init).
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

/// Block until [`wake`](crate::wake) is called for this thread or `deadline` passes.
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

/// Wake a thread blocked in [`park`](crate::park) (or leave it a permit if it is not
/// parked). Threads sleeping, joining or waiting on a [`WaitQueue`](crate::WaitQueue) are
/// not disturbed. Returns `false` for unknown or exited threads.
pub fn wake(tid: ThreadId) -> bool {
    SCHED.try_with(|s| s.wake_tid(tid)).unwrap_or(false)
}

/// Block on a wait queue (see [`WaitQueue::park`]).
pub(crate) fn park_on_queue(q: &WaitQueue, deadline: Option<u64>) -> Wakeup {
    match SCHED.try_with(|s| s.block_current(BlockKind::Queue, deadline, Some(q))) {
        None => fatal("rumpuser-green: blocking on a wait queue without a scheduler"),
        Some(Err(w)) => w,
        Some(Ok(sw)) => run_switch(sw),
    }
}

/// Wake up to `max` waiters of `q`; returns the last woken id and stores
/// the count in `count`.
pub(crate) fn wake_queue(q: &WaitQueue, max: usize, count: Option<&mut usize>) -> Option<ThreadId> {
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
/// until [`join`](crate::join). When the last thread exits the platform is halted.
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
/// thread (null before [`init`](crate::init)). Needs no token: each host mirrors its
/// running thread's slot.
#[inline]
pub fn curlwp() -> *mut c_void {
    hosts::curlwp()
}

/// Set the current thread's `curlwp` slot (token holder only).
pub fn set_curlwp(l: *mut c_void) {
    SCHED.try_with(|s| {
        s.cur_thread().curlwp = l;
        hosts::set_lwp_here(l);
    });
}

/// The current thread's errno slot (0 before [`init`](crate::init)).
pub fn errno() -> i32 {
    SCHED
        .try_with(|s| s.threads[s.cur as usize].errno)
        .unwrap_or(0)
}

/// Set the current thread's errno slot.
pub fn set_errno(e: i32) {
    SCHED.try_with(|s| s.cur_thread().errno = e);
}

/// The current thread's user data word (0 before [`init`](crate::init)).
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
/// [`init`](crate::init) or when called while the scheduler itself is executing (from
/// an exception handler that interrupted it). Never panics.
pub fn current_for_report() -> Option<(ThreadId, ThreadName)> {
    SCHED.try_with_if_free(|s| (s.id(s.cur), s.threads[s.cur as usize].name))
}

/// Rename a thread (truncated to [`NAME_MAX`](crate::NAME_MAX) bytes).
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
/// before [`init`](crate::init)). A caller about to block its host thread briefly uses
/// it to do so only when nobody would have run meanwhile.
pub fn others_runnable() -> bool {
    SCHED.try_with(|s| !s.runq.is_empty()).unwrap_or(false)
}

/// Counters (`None` before [`init`](crate::init)).
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
        // The caller is `to`'s host thread: its own curlwp word.
        hosts::set_lwp_here(s.threads[tb as usize].curlwp);
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

impl WaitQueue {
    /// Block the calling green thread on this queue until a
    /// [`wake_one`](Self::wake_one)/[`wake_all`](Self::wake_all) picks it
    /// (`Notified`) or `deadline` (absolute `now_ns`) passes (`TimedOut`;
    /// never before the deadline). A deadline already in the past returns
    /// `TimedOut` after yielding once. [`wake`](crate::wake) does not
    /// affect queue waiters, so `Notified` always means "picked by a waker".
    ///
    /// Halts via [`fatal`](crate::fatal) if the scheduler is not initialised
    /// (nobody could ever wake the caller).
    pub fn park(&self, deadline: Option<u64>) -> Wakeup {
        park_on_queue(self, deadline)
    }

    /// Wake the longest-waiting thread, if any, and return its id.
    pub fn wake_one(&self) -> Option<ThreadId> {
        if self.is_empty() {
            return None;
        }
        wake_queue(self, 1, None)
    }

    /// Wake every waiting thread; returns how many were woken.
    pub fn wake_all(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut n = 0;
        wake_queue(self, usize::MAX, Some(&mut n));
        n
    }
}
