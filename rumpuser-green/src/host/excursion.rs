//! Helper host threads for [excursions](crate::sched_core::excursion): a
//! kernel thread that blocks in a host call between
//! `rumpuser_component_unschedule` and `rumpuser_component_schedule` (the
//! shmif network driver's `read(2)` of its inotify descriptor, a tap
//! device's `poll`) runs that stretch on one of these threads, so every
//! other green thread keeps running on the green host thread.
//!
//! Every excursion gets a helper of its own (an idle one, or a new thread),
//! so one blocked forever never delays another. A helper keeps the record
//! of the excursion it runs in a thread-local, which is how
//! `rumpuser_component_schedule`, called on the helper, finds it.

use crate::host::HOST;
use crate::sched_core::{excursion, ExcursionPtr};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Helper threads' stacks: they only switch into the excursing thread's
/// own stack and post the record back.
const HELPER_STACK: usize = 128 * 1024;

struct Pool {
    tx: Sender<ExcursionPtr>,
    rx: Receiver<ExcursionPtr>,
    /// Helpers waiting on `rx` that no queued record has claimed yet.
    idle: AtomicUsize,
}

/// How long after an excursion starts the idle green host thread polls
/// for its return before it sleeps. Waking a sleeping host thread costs
/// the waker 20–55 µs on a VM (an IPI to a halted vCPU), and a bracketed
/// host call that does not block (a send, a read with data waiting) is back
/// within a few µs; polling avoids that wake-up. Measured (`kernel_tcp`
/// between two green kernels over shmif, 5 alternating rounds): round trip
/// 88–101 µs without, 30–54 µs with this poll; stream unchanged within
/// noise. 50 µs of polling was worse (74–84 µs: it takes CPU from the peer
/// kernel), as was a helper polling for its next excursion (140–163 µs).
pub const RETURN_POLL_NS: u64 = 25_000;
/// The first part of [`RETURN_POLL_NS`] polls with CPU pauses only; the
/// rest offers the CPU between polls (`sched_yield`): with more runnable
/// host threads than CPUs a pure spin kept the helper off the CPU it was
/// waiting for (the test's return count fell to zero under a CPU burner).
pub const RETURN_SPIN_NS: u64 = 10_000;

static POOL: OnceLock<Pool> = OnceLock::new();
/// Excursions handed to a helper and not yet taken back by the scheduler.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// When the latest excursion started (monotonic ns).
static LAST_START: AtomicU64 = AtomicU64::new(0);
/// Idle periods an event ended during [`poll_for_return`].
static POLLED_RETURNS: AtomicU64 = AtomicU64::new(0);
static RETURNED: Mutex<Vec<ExcursionPtr>> = Mutex::new(Vec::new());
static RETURNED_PENDING: AtomicBool = AtomicBool::new(false);
/// Whether excursions are allowed (`RUMPUSER_GREEN_EXCURSIONS=0` turns
/// them off; deterministic mode never uses them).
static ENABLED: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// The excursion this helper is running (null when idle).
    static RUNNING: Cell<*mut excursion::Excursion> = const { Cell::new(std::ptr::null_mut()) };
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let (tx, rx) = unbounded();
        Pool {
            tx,
            rx,
            idle: AtomicUsize::new(0),
        }
    })
}

/// Whether kernel threads may go on excursions here.
pub fn available() -> bool {
    *ENABLED.get_or_init(|| {
        !HOST.is_virtual() && !rumpuser_host::param::switched_off("RUMPUSER_GREEN_EXCURSIONS")
    })
}

/// `Platform::excursion_start`: an idle helper takes `ex`, or a new one.
pub fn start(ex: ExcursionPtr) -> bool {
    let p = pool();
    let claimed = p
        .idle
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok();
    if !claimed {
        let rx = p.rx.clone();
        let spawned = std::thread::Builder::new()
            .name("greenexcursion".into())
            .stack_size(HELPER_STACK)
            .spawn(move || helper(rx));
        if spawned.is_err() {
            return false;
        }
    }
    // Every queued record has a helper of its own: one that was idle and
    // is now counted out, or the one just started.
    IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    LAST_START.store(rumpuser_host::clock::monotonic(), Ordering::Relaxed);
    p.tx.send(ex).is_ok()
}

fn helper(rx: Receiver<ExcursionPtr>) {
    crate::host::token::mark_helper();
    loop {
        let Ok(ex) = rx.recv() else { return };
        RUNNING.with(|r| r.set(ex.0));
        // SAFETY: the record came from `start`, exactly once, and goes back
        // to the green host below without being touched again.
        unsafe { excursion::run(ex) };
        RUNNING.with(|r| r.set(std::ptr::null_mut()));
        RETURNED.lock().unwrap_or_else(|e| e.into_inner()).push(ex);
        RETURNED_PENDING.store(true, Ordering::Release);
        // Idle again before the green host can hand out the next record.
        pool().idle.fetch_add(1, Ordering::AcqRel);
        HOST.kick();
    }
}

/// `Platform::poll_excursions`.
pub fn take_returned(back: &mut dyn FnMut(ExcursionPtr)) {
    if !RETURNED_PENDING.load(Ordering::Relaxed) || !RETURNED_PENDING.swap(false, Ordering::AcqRel)
    {
        return;
    }
    let returned = std::mem::take(&mut *RETURNED.lock().unwrap_or_else(|e| e.into_inner()));
    for ex in returned {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
        back(ex);
    }
}

/// `Platform::idle`, before it sleeps: while an excursion is out and
/// started less than [`RETURN_POLL_NS`] ago, polls the host's `pending`
/// flag (set by the helper's return, or any other event) instead of
/// sleeping, up to `deadline`. Returns whether an event arrived.
pub fn poll_for_return(deadline: Option<u64>, pending: &AtomicBool) -> bool {
    if IN_FLIGHT.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let until = LAST_START.load(Ordering::Relaxed) + RETURN_POLL_NS;
    let until = deadline.map_or(until, |d| d.min(until));
    let spin_until = rumpuser_host::clock::monotonic() + RETURN_SPIN_NS;
    loop {
        if pending.load(Ordering::Acquire) {
            POLLED_RETURNS.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let now = rumpuser_host::clock::monotonic();
        if now >= until {
            return false;
        }
        if now < spin_until {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

/// How many idle periods an event ended while [`poll_for_return`] polled
/// (for tests).
pub fn polled_returns() -> u64 {
    POLLED_RETURNS.load(Ordering::Relaxed)
}

/// `rumpuser_component_unschedule`, after the CPU is released: continue on
/// a helper (or stay, if there is none).
pub fn component_block_begin(outermost: bool) {
    if outermost {
        // The application's own thread: it blocks on its own host thread;
        // the runner keeps the green world going meanwhile.
        crate::host::token::step_out();
        return;
    }
    if available() {
        // SAFETY: called by a kernel thread, holding the token (the
        // hypervisor took it), that has released its CPU; until
        // `component_block_end` it runs only the component's host code
        // (contract: an unscheduled component does not enter the kernel);
        // a hypercall that needs the scheduler from there is refused on
        // the helper (`token::mark_helper`) before it touches the core.
        unsafe { excursion::begin() };
    }
}

/// `rumpuser_component_schedule`, before the CPU is taken again: back to
/// the green host thread if this is an excursion's helper.
pub fn component_block_end() {
    let ex = RUNNING.with(|r| r.get());
    if !ex.is_null() {
        // SAFETY: this helper runs `ex`, whose thread is the caller (only
        // the excursing thread runs on a helper), and it ends once.
        unsafe { excursion::end(ExcursionPtr(ex)) };
    }
}
