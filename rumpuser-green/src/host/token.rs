//! The token of a green world that several host threads take part in
//! (the model is in [`crate::sched_core::hosts`]): which host thread may run green
//! code now, how a host thread gets it, and the runner that keeps the green
//! world going while the application's threads are outside it.
//!
//! # The fast path
//!
//! A bound thread (the application's own thread, on its host thread) takes
//! the token for every green hypercall it makes. The host holding the
//! token keeps it after the hypercall returns (it is then *away*, but the
//! owner), so the common case, one application thread calling the kernel
//! again and again, costs two plain stores and a few loads per hypercall:
//! [`enter`] makes the host's `seq` odd and reads its `slow` flag, the drop
//! of [`Entered`] makes `seq` even again and reads `slow`. A hypercall made
//! while `seq` is odd (a kernel thread running on this host while its bound
//! thread waits inside, or a nested call) does nothing at all.
//!
//! # Taking the token from an away owner
//!
//! Another host thread (or the runner) takes the token from an owner that
//! is away with an asymmetric Dekker handshake (`rumpuser_host::handshake`,
//! model-checked with loom): under `STEAL` it sets the
//! owner's `slow`, makes every thread of the process execute a full memory
//! barrier (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, a few µs), then
//! reads the owner's `seq`. Either it sees it even (the owner is outside
//! and will see `slow` at its next entry, where it waits for the token),
//! or the owner sees `slow` at its next entry or exit and goes through
//! `STEAL` itself. Without `membarrier` (Linux before 4.14) other host
//! threads cannot take part: the library keeps the kernel on the thread
//! that called `rumpuser_init`, as with `RUMPUSER_GREEN_HOSTS=0`.
//!
//! # Asking an owner that is inside
//!
//! A host that finds the owner inside queues an arrival and kicks the
//! eventfd; the owner admits it at its next event poll (every
//! `poll_interval` switches, and before and after every idle `ppoll`), or
//! hands the token over when its hypercall returns (`slow` is set); the
//! scheduler then switches to the arriving host's bound thread, which is a
//! hand-off of the token (the giver waits until it comes back).
//!
//! # The runner
//!
//! A host thread of the library's own. While another host owns the token
//! it samples the owner every [`SAMPLE_MIN`] to [`SAMPLE_MAX`]: an owner
//! that has been away, with no entry at all, for a whole period (the
//! application's thread blocks in `sem_wait`, `pause`, `poll` on its own
//! descriptors, …) loses the token to the runner, which then runs green
//! threads, and idles in `ppoll`, until a host asks for it back. So
//! `rump_server`, `RUMP_SERVER` clients and multi-threaded applications
//! work on green threads, while a single application thread that keeps
//! calling into the kernel never pays more than the fast path.

use crate::host::HOST;
use crate::sched_core::hosts::{self, HostCell, HostEvent, HostOps};
use rumpuser_host::handshake;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// An owner that others wait for keeps the token through its hypercalls'
/// exits for this long after it got it (it hands it over earlier only when
/// it blocks, or goes away for good): with one virtual CPU, handing it over
/// at every exit makes host threads trade it hypercall by hypercall, each
/// trade a host wake-up, for nothing (the receiver mostly waits for the
/// virtual CPU the giver holds).
pub const QUANTUM_NS: u64 = 500_000;
/// A host waiting for the token looks at the owner this often: an owner
/// outside the green world at two looks in a row, with no hypercall in
/// between, loses the token to the waiter (as to the runner, sooner).
pub const WAITER_LOOK: Duration = Duration::from_micros(100);

/// The runner's first look at an owner comes this long after the last.
pub const SAMPLE_MIN: Duration = Duration::from_millis(1);
/// The runner's sampling period doubles, up to this, while the owner keeps
/// entering (or stays inside).
pub const SAMPLE_MAX: Duration = Duration::from_millis(16);

/// Serialises every move of the token except the owner's fast path.
static STEAL: Mutex<()> = Mutex::new(());
/// The host holding the token (changed only under `STEAL`).
static OWNER: AtomicPtr<HostCell> = AtomicPtr::new(std::ptr::null_mut());
/// Arrivals and departures for the scheduler (pushed under `STEAL`).
static EVENTS: Mutex<Vec<HostEvent>> = Mutex::new(Vec::new());
static EVENTS_PENDING: AtomicBool = AtomicBool::new(false);
/// Whether other host threads may take part (set once by [`start`]).
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The runner's cell.
static RUNNER: HostCell = HostCell::new();
/// Ask the runner to take the token as soon as the owner is away.
static STEAL_NOW: AtomicBool = AtomicBool::new(false);
/// Retired cells of host threads that ended, for the next new one.
static SPARE: Mutex<Vec<&'static HostCell>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A green hypercall in progress on the calling host thread: taken by
/// [`enter`], released when dropped.
#[must_use]
pub struct Entered(Option<(&'static HostCell, u64)>);

impl Entered {
    /// Whether this call is a bound thread's outermost one (the
    /// application's own thread, not a kernel thread or a nested call).
    pub fn outermost(&self) -> bool {
        self.0.is_some()
    }
}

/// Take part in the green world for one hypercall: the guard of every
/// scheduling hypercall of the green flavour. Aborts with an explanation
/// when the calling host thread may not take part (deterministic mode, or
/// `RUMPUSER_GREEN_HOSTS=0`, with a thread other than the one that called
/// `rumpuser_init`).
#[inline(always)]
pub fn enter() -> Entered {
    let Some(h) = hosts::this_host() else {
        foreign();
    };
    match handshake::enter(&h.seq, &h.slow) {
        // Inside already: a free green thread on the token holder's host,
        // or a nested call.
        handshake::Entry::Nested => Entered(None),
        handshake::Entry::Marked { seq, slow } => {
            if slow {
                slow_enter(h);
            }
            Entered(Some((h, seq)))
        }
    }
}

impl Drop for Entered {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some((h, s)) = self.0 {
            if handshake::exit(&h.seq, s, &h.slow) {
                slow_exit(h);
            }
        }
    }
}

/// `f` inside a stretch, as [`enter`] + `f` + drop would run it, laid
/// out for a hot hypercall whose body makes no call (a lock's try or
/// release): every slow part (a taker at work on entry, someone waiting
/// at the exit, a foreign thread) is a tail call, so the fast path saves
/// no registers.
#[inline(always)]
pub fn stretch<A, R>(a: A, f: impl FnOnce(A) -> R) -> R {
    let Some(h) = hosts::this_host() else {
        foreign();
    };
    match handshake::enter(&h.seq, &h.slow) {
        handshake::Entry::Nested => f(a),
        handshake::Entry::Marked { seq, slow: false } => {
            let r = f(a);
            if handshake::exit(&h.seq, seq, &h.slow) {
                return exit_slow_with(h, r);
            }
            r
        }
        handshake::Entry::Marked { seq, slow: true } => marked_slow(h, seq, a, f),
    }
}

/// [`stretch`]'s exit that found `slow` set.
#[cold]
#[inline(never)]
fn exit_slow_with<R>(h: &'static HostCell, r: R) -> R {
    slow_exit(h);
    r
}

/// [`stretch`] after an entry that found `slow` set: as [`enter`] would.
#[cold]
#[inline(never)]
fn marked_slow<A, R>(h: &'static HostCell, seq: u64, a: A, f: impl FnOnce(A) -> R) -> R {
    slow_enter(h);
    let r = f(a);
    if handshake::exit(&h.seq, seq, &h.slow) {
        slow_exit(h);
    }
    r
}

#[cold]
fn foreign() -> ! {
    rumpuser_core::diag::fatal(format_args!(
        "rumpuser-green: hypercall from host thread {:#x}, but only the host thread that called \
         rumpuser_init may enter this kernel (deterministic mode, RUMPUSER_GREEN_HOSTS=0, or no membarrier(2) on this host)",
        tp()
    ))
}

fn tp() -> usize {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as usize }
}

fn owner() -> &'static HostCell {
    let o = OWNER.load(Ordering::Acquire);
    if o.is_null() {
        &hosts::PRIMARY
    } else {
        // SAFETY: OWNER only ever holds `&'static` cells (the primary, the
        // runner, or a leaked, recycled cell of a host thread).
        unsafe { &*o }
    }
}

fn set_owner(h: &'static HostCell) {
    OWNER.store(h as *const HostCell as *mut HostCell, Ordering::Release);
}

fn push_event(ev: HostEvent) {
    lock(&EVENTS).push(ev);
    EVENTS_PENDING.store(true, Ordering::Release);
}

/// Whether `o`, the owner, is outside the green world, by the handshake
/// (with `STEAL` held); returns the `seq` seen. The runner never is.
fn look(o: &HostCell) -> (bool, u64) {
    let s = handshake::look(&o.seq, &o.slow);
    (!o.runner.load(Ordering::Relaxed) && s & 1 == 0, s)
}

/// A bound thread's outermost entry found `slow` set: it may not hold the
/// token, or someone waits for it.
#[cold]
#[inline(never)]
fn slow_enter(h: &'static HostCell) {
    let g = lock(&STEAL);
    let o = owner();
    if std::ptr::eq(o, h) {
        // Ours: someone waits for it, or it just came back. The exit deals
        // with that.
        return;
    }
    if look(o).0 {
        set_owner(h);
        h.since.store(now(), Ordering::Relaxed);
        drop(g);
        hosts::take_over(o, h);
        return;
    }
    h.waiting.store(true, Ordering::Release);
    push_event(HostEvent::Arrive(h));
    ARRIVALS.fetch_add(1, Ordering::Relaxed);
    drop(g);
    HOST.kick();
    wait_as_arrival(h);
    // With the token: a queued copy of the arrival now admits nothing.
    h.waiting.store(false, Ordering::Release);
    ARRIVALS.fetch_sub(1, Ordering::Relaxed);
}

/// Waits for the token as an arrival (its bound thread away or admitted):
/// handed over, or taken from an owner that stays outside the green world
/// (see [`WAITER_LOOK`]).
fn wait_as_arrival(h: &'static HostCell) {
    let mut last: Option<(*const HostCell, u64)> = None;
    loop {
        std::thread::park_timeout(WAITER_LOOK);
        if h.given.swap(false, Ordering::Acquire) {
            return;
        }
        let o = owner();
        let seen = (o as *const HostCell, o.seq.load(Ordering::Acquire));
        let suspect = seen.1 & 1 == 0 && last == Some(seen) && !o.runner.load(Ordering::Relaxed);
        last = Some(seen);
        if !suspect {
            continue;
        }
        let g = lock(&STEAL);
        if h.given.swap(false, Ordering::Acquire) {
            return;
        }
        if !std::ptr::eq(owner(), o) {
            continue;
        }
        let (away, s) = look(o);
        if away && s == seen.1 {
            set_owner(h);
            h.since.store(now(), Ordering::Relaxed);
            drop(g);
            hosts::take_over(o, h);
            return;
        }
    }
}

/// Hosts waiting for the token as arrivals.
static ARRIVALS: AtomicUsize = AtomicUsize::new(0);

/// Whether a host thread waits to enter the green world (a green thread
/// about to block its host thread in a system call should not, then).
pub fn hosts_waiting() -> bool {
    ARRIVALS.load(Ordering::Relaxed) != 0
}

fn now() -> u64 {
    rumpuser_host::clock::monotonic()
}

/// A bound thread's outermost exit found `slow` set.
#[cold]
#[inline(never)]
fn slow_exit(h: &'static HostCell) {
    if now().saturating_sub(h.since.load(Ordering::Relaxed)) < QUANTUM_NS {
        // Keep it a while yet (`slow` stays set: the next exits look again).
        return;
    }
    let g = lock(&STEAL);
    if !std::ptr::eq(owner(), h) {
        return;
    }
    // Away now, but still the owner; nobody can take the token while STEAL
    // is held, so the scheduler may be used.
    if let Some(to) = hosts::yield_token(h) {
        hand(h, to, g);
        return;
    }
    if !EVENTS_PENDING.load(Ordering::Acquire) {
        h.slow.store(false, Ordering::Relaxed);
    }
}

/// Give the token from `from` to `to` (whose bound thread is current now).
fn hand(from: &'static HostCell, to: &'static HostCell, g: MutexGuard<'_, ()>) {
    set_owner(to);
    to.since.store(now(), Ordering::Relaxed);
    from.slow.store(true, Ordering::Relaxed);
    to.given.store(true, Ordering::Release);
    drop(g);
    unpark(to);
}

fn wait_for_token(h: &'static HostCell) {
    while !h.given.swap(false, Ordering::Acquire) {
        std::thread::park();
    }
}

/// Each cell's `platform` word: a leaked `Thread` handle of the host thread
/// using it.
fn set_thread(h: &HostCell) {
    let t = Box::into_raw(Box::new(std::thread::current()));
    let old = h.platform.swap(t as usize, Ordering::AcqRel);
    if old != 0 {
        // SAFETY: made by `Box::into_raw` above for an earlier user of the
        // cell, which has ended (cells are reused only after departure).
        drop(unsafe { Box::from_raw(old as *mut std::thread::Thread) });
    }
}

fn unpark(h: &HostCell) {
    let t = h.platform.load(Ordering::Acquire);
    if t != 0 {
        // SAFETY: set by `set_thread` for the thread using the cell; freed
        // only when the cell is given to another thread, after its user
        // ended and departed (so after every hand-off to it).
        unsafe { (*(t as *const std::thread::Thread)).unpark() };
    }
}

struct Ops;

impl HostOps for Ops {
    fn this_host(&self) -> Option<&'static HostCell> {
        if !ENABLED.load(Ordering::Relaxed) {
            return None;
        }
        if HELPER.with(Cell::get) {
            rumpuser_core::diag::fatal(format_args!(
                "rumpuser-green: a hypercall from an excursion's helper thread (a driver called \
                 into the kernel between rumpuser_component_unschedule and \
                 rumpuser_component_schedule)"
            ));
        }
        MINE.try_with(|m| match m.0.get() {
            Some(h) => h,
            None => {
                let h = new_cell();
                m.0.set(Some(h));
                h
            }
        })
        .ok()
    }

    fn give(&self, from: &'static HostCell, to: &'static HostCell) {
        let g = lock(&STEAL);
        hand(from, to, g);
    }

    fn wait(&self, me: &'static HostCell) {
        wait_for_token(me);
    }
}

static OPS: Ops = Ops;

/// A host thread's cell, given back when the thread ends.
struct Mine(Cell<Option<&'static HostCell>>);

impl Drop for Mine {
    fn drop(&mut self) {
        if let Some(h) = self.0.get() {
            depart(h);
        }
    }
}

/// The destructor of a POSIX key set on the primary's host thread: its end
/// retires the primary. A POSIX key rather than a thread-local, because
/// key destructors run when a thread ends but not in `exit(3)` (the
/// process's end must not hand the green world to the runner while
/// `atexit` handlers run).
extern "C" fn primary_gone(_: *mut libc::c_void) {
    depart(&hosts::PRIMARY);
}

fn watch_primary() {
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: a valid out-pointer and an `extern "C"` destructor that
    // ignores its argument; the value is any non-null pointer (only its
    // presence matters).
    unsafe {
        if libc::pthread_key_create(&mut key, Some(primary_gone)) == 0 {
            libc::pthread_setspecific(key, std::ptr::NonNull::<u8>::dangling().as_ptr().cast());
        }
    }
}

thread_local! {
    static MINE: Mine = const { Mine(Cell::new(None)) };
    /// This host thread serves excursions: it may not take part.
    static HELPER: Cell<bool> = const { Cell::new(false) };
}

/// Mark the calling host thread as an excursion helper (see `HELPER`).
pub fn mark_helper() {
    HELPER.with(|h| h.set(true));
}

/// A bound thread is about to block in the host outside the green world
/// (a component's blocking call): let the runner take the token as soon as
/// the thread has stepped out, so that green threads keep running.
pub fn step_out() {
    if enabled() {
        STEAL_NOW.store(true, Ordering::Release);
        unpark(&RUNNER);
    }
}

fn new_cell() -> &'static HostCell {
    let h = lock(&SPARE)
        .pop()
        .unwrap_or_else(|| Box::leak(Box::new(HostCell::new())));
    h.reset();
    set_thread(h);
    h
}

/// The calling host thread ends: its bound thread is released by the next
/// token holder, and its cell reused after that.
fn depart(h: &'static HostCell) {
    let g = lock(&STEAL);
    push_event(HostEvent::Depart(h));
    let o = owner();
    if std::ptr::eq(o, h) {
        // Away for good while holding the token: let the runner take it.
        drop(g);
        STEAL_NOW.store(true, Ordering::Release);
        unpark(&RUNNER);
    } else {
        o.slow.store(true, Ordering::Relaxed);
        drop(g);
    }
    HOST.kick();
}

/// The scheduler's side of `EVENTS` (called from `Platform::poll_hosts`).
pub fn poll(ev: &mut dyn FnMut(HostEvent)) {
    if !EVENTS_PENDING.load(Ordering::Relaxed) {
        return;
    }
    // A push racing with this leaves the flag set with nothing queued at
    // worst: one more look later. (No `STEAL` here: `slow_exit` polls while
    // holding it.)
    EVENTS_PENDING.store(false, Ordering::Relaxed);
    let batch = std::mem::take(&mut *lock(&EVENTS));
    for e in batch {
        ev(e);
        if let HostEvent::Depart(h) = e {
            if !std::ptr::eq(h, &hosts::PRIMARY) {
                lock(&SPARE).push(h);
            }
        }
    }
}

/// Whether other host threads take part (after [`start`]).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Whether the host lets other host threads take part (`membarrier(2)`
/// with `MEMBARRIER_CMD_PRIVATE_EXPEDITED`).
pub fn supported() -> bool {
    handshake::register()
}

/// Let other host threads take part and start the runner (called once, on
/// the primary, right after the scheduler's `init` with `Config::hosts`).
pub fn start() -> std::io::Result<()> {
    if !handshake::register() {
        return Err(std::io::Error::other("membarrier(2) is not available"));
    }
    hosts::set_ops(&OPS);
    set_thread(&hosts::PRIMARY);
    set_owner(&hosts::PRIMARY);
    hosts::PRIMARY.since.store(now(), Ordering::Relaxed);
    watch_primary();
    RUNNER.runner.store(true, Ordering::Relaxed);
    // Green threads the runner runs are inside already: their hypercalls
    // do nothing at the boundary.
    RUNNER.seq.store(1, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Release);
    std::thread::Builder::new()
        .name("rumpgreen".into())
        .spawn(runner)?;
    Ok(())
}

/// Install the token moves without a runner or other hosts (deterministic
/// mode): a foreign thread's hypercall is refused with a message.
pub fn start_single() {
    hosts::set_ops(&OPS);
}

/// How long the runner, asked to take over ([`step_out`]), waits for the
/// owner to leave its hypercall before it falls back to sampling.
const STEP_OUT_WAIT: Duration = Duration::from_micros(200);

/// Whether `o` leaves the green world within [`STEP_OUT_WAIT`].
fn stepped_out(o: &HostCell) -> bool {
    let until = std::time::Instant::now() + STEP_OUT_WAIT;
    while std::time::Instant::now() < until {
        if o.seq.load(Ordering::Acquire) & 1 == 0 {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

/// The runner's loop (see the module doc).
fn runner() {
    hosts::bind_here(&RUNNER);
    set_thread(&RUNNER);
    let me: &'static HostCell = &RUNNER;
    let mut period = SAMPLE_MIN;
    let mut last: Option<(*const HostCell, u64)> = None;
    loop {
        std::thread::park_timeout(period);
        let asked = STEAL_NOW.swap(false, Ordering::AcqRel);
        let o = owner();
        let e = o.seq.load(Ordering::Acquire);
        let outside = e & 1 == 0;
        let sample = (o as *const HostCell, e);
        let long = outside && last == Some(sample);
        last = Some(sample);
        if asked && !outside && stepped_out(o) {
            // Asked to take over as soon as the owner steps out: it did.
        } else if !(long || (asked && outside)) {
            period = if asked {
                SAMPLE_MIN
            } else {
                (period * 2).min(SAMPLE_MAX)
            };
            continue;
        }
        let g = lock(&STEAL);
        if !std::ptr::eq(owner(), o) {
            continue;
        }
        let (away, seen) = look(o);
        if !away || (!asked && seen != e) {
            // It came back: it will take one slow path (which clears the
            // flag) and keep the token.
            period = SAMPLE_MIN;
            continue;
        }
        set_owner(me);
        me.since.store(now(), Ordering::Relaxed);
        drop(g);
        hosts::take_over(o, me);
        hosts::serve();
        last = None;
        period = SAMPLE_MIN;
    }
}
