//! Host threads of a green world.
//!
//! A platform with one CPU and no host threads (bare metal, Xen) runs every
//! green thread on the one thread that called [`init`](crate::init), and
//! nothing here costs it more than a static. A POSIX host may let several
//! host threads take part (`Config::hosts`): the thread that called
//! `init` (the *primary*), a thread of the library's own (the *runner*,
//! which keeps the green world going while the application's threads are
//! outside it), and any other host thread that makes a hypercall.
//!
//! # The model
//!
//! * Exactly one host thread at a time runs green code: the holder of the
//!   *token*. Who holds it, and how it moves, is the platform's protocol
//!   (see the POSIX host's `token` module); the scheduler only needs to know
//!   which host holds it now ([`HostCell`] `here`) and how to hand it on.
//! * A green thread is either *free* (a kernel thread with a stack of its
//!   own, run by whichever host holds the token) or *bound* to a host (that
//!   host thread's own execution, on its native stack, which only it can
//!   run). Every host has exactly one bound thread.
//! * Switching to a free thread, or to the holder's own bound thread, is a
//!   register switch as always. Switching to another host's bound thread
//!   hands the token to that host and parks this one. The switch that
//!   saves the outgoing context completes first: a free thread switches to
//!   its host's bound thread (blocked inside a hypercall, so its context is
//!   saved), which then hands the token on and waits (a *parking spot*);
//!   a bound thread waits in place.
//! * A bound thread whose host thread is running outside the green world
//!   (application code, or kernel code between two hypercalls) while
//!   another host holds the token is *away*; it rejoins by asking for the
//!   token ([`admit`]).
//!
//! Each host thread keeps the curlwp of the green thread running on it in
//! a TLS word of its own, written only by itself (at switches, when it
//! sets an lwp, and when the token comes back to it), so `curlwp` is one
//! TLS load without the token.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::thread::NIL;

/// One host thread taking part in the green world. The scheduler's fields
/// are private; the public atomics belong to the platform's token protocol.
#[derive(Debug)]
pub struct HostCell {
    /// Odd while this host's bound thread is inside a green hypercall (or,
    /// for the runner, while it runs the scheduler); raised by one at
    /// every entry and every exit, so an observer can tell "outside the
    /// whole time" from "outside at both looks". Written by this host
    /// thread only. A host on which nobody may enter keeps it odd.
    pub seq: AtomicU64,
    /// This host must take the slow path at its next entry or exit: it
    /// does not hold the token, or someone is waiting for it. Set by
    /// anyone; cleared only by the host itself.
    pub slow: AtomicBool,
    /// The token was handed to this host (set by the giver, consumed by the
    /// host when it wakes).
    pub given: AtomicBool,
    /// When this host last got the token (the platform's clock, ns).
    pub since: AtomicU64,
    /// This host waits for the token as an arrival: set before its
    /// [`HostEvent::Arrive`] is queued, cleared once it has the token (by
    /// hand-off or by taking it), so that the event, if still queued then,
    /// admits nothing (its thread may be away again by the time it is
    /// read).
    pub waiting: AtomicBool,
    /// The platform's own word (e.g. how to wake this host thread).
    pub platform: AtomicUsize,
    /// The runner: after handing the token on it returns to its loop
    /// instead of waiting for the token to come back.
    pub runner: AtomicBool,
    /// `curlwp` of the green thread executing on this host, without the
    /// `hosts` feature (with it, a TLS word of the host thread).
    pub(super) cur_lwp: AtomicPtr<c_void>,
    /// Slot of the bound thread (`NIL` until admitted). Token holder only.
    pub(super) bound: AtomicU32,
}

impl HostCell {
    /// A host that has not taken part yet.
    pub const fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            slow: AtomicBool::new(true),
            given: AtomicBool::new(false),
            since: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            platform: AtomicUsize::new(0),
            runner: AtomicBool::new(false),
            cur_lwp: AtomicPtr::new(core::ptr::null_mut()),
            bound: AtomicU32::new(NIL),
        }
    }

    /// Whether the host has a bound thread in the scheduler.
    pub fn admitted(&self) -> bool {
        self.bound.load(Ordering::Relaxed) != NIL
    }

    /// Make a retired host reusable for another host thread (the platform
    /// calls it after [`depart`] returned the cell).
    pub fn reset(&self) {
        self.seq.store(0, Ordering::Relaxed);
        self.slow.store(true, Ordering::Relaxed);
        self.given.store(false, Ordering::Relaxed);
        self.waiting.store(false, Ordering::Relaxed);
        self.cur_lwp.store(core::ptr::null_mut(), Ordering::Relaxed);
        self.bound.store(NIL, Ordering::Relaxed);
    }
}

impl Default for HostCell {
    fn default() -> Self {
        Self::new()
    }
}

/// The thread that called [`init`](crate::init). Its cell is also the only
/// one on platforms without host threads.
pub static PRIMARY: HostCell = HostCell::new();

/// The moves of the token the scheduler makes, implemented by a platform
/// that lets several host threads take part (see the module doc).
pub trait HostOps: Sync {
    /// The calling host thread's cell, when it is not the primary (`None`:
    /// this thread may not take part; the caller reports it).
    fn this_host(&self) -> Option<&'static HostCell>;
    /// Hand the token from `from` (which holds it and is about to wait or,
    /// for the runner, to leave) to `to`, and wake `to`. The scheduler has
    /// already made `to`'s bound thread the current thread.
    fn give(&self, from: &'static HostCell, to: &'static HostCell);
    /// Block the calling host thread (`me`) until the token is given to it.
    fn wait(&self, me: &'static HostCell);
}

struct NoOps;
impl HostOps for NoOps {
    fn this_host(&self) -> Option<&'static HostCell> {
        None
    }
    fn give(&self, _: &'static HostCell, _: &'static HostCell) {
        crate::fatal("rumpuser-green: a token hand-off without host threads");
    }
    fn wait(&self, _: &'static HostCell) {
        crate::fatal("rumpuser-green: a token wait without host threads");
    }
}

/// The platform's [`HostOps`] (none until [`set_ops`]).
static OPS: spin::Once<&'static dyn HostOps> = spin::Once::new();
/// Whether [`init`] has run (before it, every caller is the primary-to-be).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Install the platform's token moves (once; later calls are ignored).
pub fn set_ops(ops: &'static dyn HostOps) {
    OPS.call_once(|| ops);
}

pub(super) fn ops() -> &'static dyn HostOps {
    OPS.get().copied().unwrap_or(&NoOps)
}

/// Make the calling host thread `h`'s (the primary at `init`, the
/// platform's own threads when they start): from now on [`this_host`]
/// finds it without asking the platform.
pub fn bind_here(h: &'static HostCell) {
    #[cfg(feature = "hosts")]
    crate::arch::tls::set_host(h);
    #[cfg(not(feature = "hosts"))]
    let _ = h;
}

/// The calling thread is the primary (called by `init`).
pub(super) fn set_primary_here() {
    bind_here(&PRIMARY);
    set_lwp_here(core::ptr::null_mut());
    STARTED.store(true, Ordering::Relaxed);
}

/// The calling host thread's cell: the one bound to it, else the
/// platform's answer, which is then bound (`None`: a host thread that may
/// not take part). Without the `hosts` feature there is only the primary.
#[inline(always)]
pub fn this_host() -> Option<&'static HostCell> {
    #[cfg(feature = "hosts")]
    {
        match crate::arch::tls::host() {
            Some(h) => Some(h),
            None => other_host(),
        }
    }
    #[cfg(not(feature = "hosts"))]
    Some(&PRIMARY)
}

#[cfg(feature = "hosts")]
#[cold]
#[inline(never)]
fn other_host() -> Option<&'static HostCell> {
    if !STARTED.load(Ordering::Relaxed) {
        // Before `init`: the calling thread will be the primary.
        return Some(&PRIMARY);
    }
    let h = ops().this_host()?;
    bind_here(h);
    Some(h)
}

/// `curlwp` of the green thread running on the calling host thread (null
/// on a host thread that has none). One TLS load with `hosts`, one static
/// load without.
#[inline(always)]
pub fn curlwp() -> *mut c_void {
    #[cfg(feature = "hosts")]
    {
        crate::arch::tls::curlwp() as *mut c_void
    }
    #[cfg(not(feature = "hosts"))]
    PRIMARY.cur_lwp.load(Ordering::Relaxed)
}

/// Sets what [`curlwp`] returns on the calling host thread (the scheduler,
/// whenever the green thread running on this host changes or sets its
/// lwp).
#[inline(always)]
pub(crate) fn set_lwp_here(l: *mut c_void) {
    #[cfg(feature = "hosts")]
    crate::arch::tls::set_curlwp(l as usize);
    #[cfg(not(feature = "hosts"))]
    PRIMARY.cur_lwp.store(l, Ordering::Relaxed);
}

/// What a platform reports from [`Platform::poll_hosts`](crate::Platform::poll_hosts).
#[derive(Clone, Copy, Debug)]
pub enum HostEvent {
    /// The host asks for the token: its bound thread becomes runnable
    /// (created on the host's first arrival).
    Arrive(&'static HostCell),
    /// The host thread has ended: its bound thread (away) is released;
    /// afterwards the cell may be [`reset`](HostCell::reset) and reused.
    Depart(&'static HostCell),
}

pub use crate::api::{admit, depart, serve, take_over, yield_token};
