//! `rumpuser-green-core`: the `no_std` cooperative green-thread scheduler of
//! the green flavours (POSIX `rumpuser-green`, bare metal, Xen).
//!
//! Every rump-kernel thread is a green thread, switched cooperatively by
//! register switches, like NetBSD's rumpfiber but without its defects
//! (prior-art §3–5); one host thread at a time runs them (on bare metal and
//! Xen the one CPU; on a POSIX host whichever host thread holds the token,
//! see [`hosts`]):
//!
//! | prior art | here |
//! |---|---|
//! | millisecond timers, sub-ms sleeps truncated, 0 ms timedwait = forever | absolute `u64` ns monotonic deadlines; expiry iff `now >= deadline`; no tick |
//! | O(n) scan of all threads per schedule, O(n) sorted timer insert | O(1) run queue, O(log n) timer heap with lazy cancellation, O(1) intrusive wait queues |
//! | `swapcontext` + `rt_sigprocmask` per switch | hand-written switch of callee-saved registers + MXCSR/x87 CW |
//! | rwlock writer admitted while readers hold it; downgrade leaves count -1 | one writer tag + reader count, hand-off grants, tested |
//! | 1 s idle cap, nanosleep-only idle, synchronous I/O | `Platform::idle(deadline)` + `poll_events` for external completions |
//!
//! # Layout
//!
//! From the bottom up (each module uses only those above it, except that
//! the scheduler's state refers to the switch's entry points):
//!
//! * `thread`: the thread record (TCB), ids, names, states.
//! * `queue`: [`WaitQueue`], the intrusive FIFO list of blocked threads.
//! * [`timer`]: the deadline heap (public for property tests); `rng` the
//!   seeded choice of deterministic mode.
//! * `config`: [`Config`], the API's error types, [`Stats`].
//! * [`platform`](Platform): the host seam (clock, idle, stacks, events,
//!   console, halt, optional IRQ masking, excursions, host events);
//!   [`hosts`]: the host threads of a green world and the token's moves.
//! * `arch`: the context switch and first-entry frame (x86_64 SysV and
//!   AArch64 asm).
//! * `global`: the single global scheduler cell and its invariants.
//! * `sched`: the scheduler's state machine (run queue, timers, blocking,
//!   spawn, exit, reaping, excursions and hosts as state changes).
//! * `switch`: performing a decision once the borrow has ended (register
//!   switch, token hand-off, first entry, excursion trampoline).
//! * `api`: the public functions re-exported here, built on the above.
//! * `sync` ([`GreenMutex`], [`GreenRwLock`], [`GreenCondvar`]) and
//!   [`excursion`]: users of the API.
//!
//! The crate denies `unsafe_code` except in the modules allowed on their
//! `mod` lines (the list in the repository's `tests/tidy.rs` says why):
//! `arch` (asm, stack frames, canary, the TLS words), `global` (the cell),
//! and commented spots in `sched`, `switch`, `api`, `excursion` and
//! `queue` (performing the switch, freeing stacks, excursion records,
//! re-borrowing a wait queue to unlink a timed-out waiter, host cells of
//! threads); `platform` declares the one unsafe method of [`Platform`].
//! Every block carries a `// SAFETY:` argument.
//!
//! # Plugging in a host (e.g. the POSIX backend)
//!
//! * `now_ns`: `clock_gettime(CLOCK_MONOTONIC)`.
//! * `alloc_stack`/`free_stack`: `mmap` size + one page, `mprotect` the
//!   lowest page `PROT_NONE` as a guard, return `base` above it and the
//!   mapping start in `cookie`; `munmap` on free.
//! * External events: completion workers (bio threads, signal handlers…)
//!   push the waiting green thread's `ThreadId::as_raw()` on a locked
//!   queue, set an atomic "pending" flag and write an `eventfd`.
//!   `poll_events` returns at once if the flag is clear, else clears it,
//!   reads the eventfd and hands every queued token to `wake`.
//!   `idle(deadline)` is `ppoll` (or `epoll_pwait2`) on the eventfd (plus
//!   any fds the backend watches) with the timeout `deadline - now`
//!   rounded **up** to the next ns unit the call takes (`None` = no
//!   timeout; saturate huge deadlines); the eventfd stays readable until
//!   drained, so an event posted between `poll_events` and `idle` is not
//!   lost.
//! * A green thread that starts host I/O records its id, starts the
//!   operation, then loops on [`park`] until its completion flag is set
//!   (`park` keeps a permit, so a completion that arrives first is not
//!   lost).
//! * Bare metal: `idle` = program a one-shot (TSC-deadline) timer and
//!   `sti; hlt` with IRQs masked by `irq_save`; interrupt handlers only set
//!   pending bits that `poll_events` turns into tokens.
//!
//! # Usage
//!
//! ```text
//! // SAFETY: only this host thread uses the scheduler from now on.
//! unsafe { sched_core::init(&PLATFORM, sched_core::Config::default()) }?;
//! let t = sched_core::spawn_closure(|| { /* ... */ }, "worker", 0, true)?;
//! sched_core::join(t)?;
//! ```
//!
//! Threads are cooperative: a thread runs until it blocks, yields, sleeps
//! or exits. Never hold a green lock across a host call that blocks the
//! host thread for long: it stalls every green thread that host runs.

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod api;
#[allow(unsafe_code)]
mod arch;
mod config;
#[allow(unsafe_code)]
pub mod excursion;
#[allow(unsafe_code)]
mod global;
pub mod hosts;
#[allow(unsafe_code)]
mod platform;
#[allow(unsafe_code)]
mod queue;
mod rng;
#[allow(unsafe_code)]
mod sched;
#[allow(unsafe_code)]
mod switch;
mod sync;
mod thread;
pub mod timer;

pub use api::{
    bench_yield_pingpong, curlwp, current, current_for_report, errno, exit, fatal, init,
    is_initialized, join, now_ns, others_runnable, park, set_curlwp, set_errno, set_switch_hook,
    set_thread_name, set_tracing, set_user_data, shutdown, sleep_for, sleep_until, spawn,
    spawn_closure, spawn_fn, stats, take_trace, thread_name, try_current, user_data, user_data_of,
    wake, yield_now,
};
pub use config::{
    Config, InitError, JoinError, ShutdownError, SpawnError, Stats, SwitchEvent, SwitchHook,
    DEFAULT_STACK_SIZE, MIN_STACK_SIZE,
};
pub use excursion::{Excursion, ExcursionPtr};
pub use platform::{Platform, Stack};
pub use queue::WaitQueue;
pub use rng::SplitMix64;
pub use sync::{GreenCondvar, GreenMutex, GreenRwLock, LockError};
pub use thread::{ThreadId, ThreadName, Wakeup, NAME_MAX};
pub use timer::TimerQueue;
