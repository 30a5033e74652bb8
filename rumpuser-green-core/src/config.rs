//! What a scheduler is configured with and reports: [`Config`](crate::Config), the
//! error types of the API, [`Stats`](crate::Stats), and the switch trace's [`SwitchEvent`](crate::SwitchEvent).

use core::fmt;

use crate::thread::ThreadId;

/// Stack size used when `spawn` is asked for 0 bytes.
pub const DEFAULT_STACK_SIZE: usize = 64 * 1024;
/// Smallest accepted stack size.
pub const MIN_STACK_SIZE: usize = 4096;

/// Scheduler configuration for [`init`](crate::init).
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
    /// Start with switch tracing on (see [`take_trace`](crate::take_trace)).
    pub trace: bool,
    /// Other host threads take part through the platform's
    /// [`HostOps`](crate::hosts::HostOps): the calling thread of [`init`](crate::init)
    /// becomes the primary host, its first thread bound to it
    /// ([`hosts`](crate::hosts)).
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

/// [`init`](crate::init) failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InitError {
    /// The scheduler is already running.
    AlreadyInitialized,
}

/// [`spawn`](crate::spawn) failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SpawnError {
    /// [`init`](crate::init) has not been called.
    NotInitialized,
    /// Requested stack below [`MIN_STACK_SIZE`](crate::MIN_STACK_SIZE).
    StackTooSmall,
    /// The platform could not allocate a stack.
    OutOfMemory,
    /// The platform returned a stack smaller than asked or misaligned.
    BadStack,
    /// The thread table is full (2^32 - 1 slots).
    TooManyThreads,
}

/// [`join`](crate::join) failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JoinError {
    /// [`init`](crate::init) has not been called.
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

/// [`shutdown`](crate::shutdown) failure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownError {
    /// [`init`](crate::init) has not been called.
    NotInitialized,
    /// Only the thread created by [`init`](crate::init) may shut down.
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
