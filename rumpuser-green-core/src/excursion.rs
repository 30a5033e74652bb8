//! Excursions: a green thread's stretch on another host thread, so that a
//! host call that blocks (a driver's `read(2)` between
//! `rumpuser_component_unschedule` and `_schedule`) stops only that thread.
//!
//! Every other green thread keeps running on the green host thread (the one
//! that called [`init`](crate::init)); only the excursing thread moves, and
//! only while it holds no virtual CPU and runs host code.
//!
//! # Life of an excursion
//!
//! 1. [`begin`] (green host, thread G): G is marked blocked and switches to a
//!    small *trampoline* context of the scheduler, saving its own context in
//!    the [`Excursion`] record.
//! 2. The trampoline, on the green host with G's context now complete,
//!    hands the record to the platform ([`Platform::excursion_start`]),
//!    which gives it to a helper host thread, and then picks the next green
//!    thread (idling on its own stack if there is none).
//! 3. The helper calls [`run`], which switches into G: G returns from
//!    [`begin`] on the helper and makes its blocking call.
//! 4. [`end`] (helper, G) switches back to the helper's context; the helper
//!    tells the platform the record is back, which wakes the green host.
//! 5. The scheduler's event poll ([`Platform::poll_excursions`]) takes G's
//!    context from the record and makes G runnable; G resumes inside [`end`]
//!    on the green host and frees the record.
//!
//! Each hand-over publishes a context only after the switch that saved it
//! has completed (the trampoline and the helper run on their own stacks),
//! and through the platform's own synchronisation (a channel, a mutex), so
//! no host thread ever runs on a stack another one is still using. Between
//! [`begin`] and [`end`] G must not call into the scheduler: it is not on
//! the green host thread.
//!
//! [`Platform::excursion_start`]: crate::Platform::excursion_start
//! [`Platform::poll_excursions`]: crate::Platform::poll_excursions

use core::cell::UnsafeCell;

use crate::api as sched;
use crate::thread::ThreadId;

/// One excursion: where the green thread's and the helper's contexts are
/// kept while the other runs. Owned by the excursing thread, which frees it
/// when it is back on the green host thread.
pub struct Excursion {
    /// The excursing thread.
    pub(super) tid: ThreadId,
    /// The thread's saved context while it is not running on the helper.
    pub(super) sp: UnsafeCell<usize>,
    /// The helper's saved context while the thread runs on it.
    helper_sp: UnsafeCell<usize>,
    /// Set by the trampoline when a helper took the record; read by the
    /// thread when it resumes (on the helper, or on the green host if not).
    pub(super) started: UnsafeCell<bool>,
}

/// A pointer to an [`Excursion`], as handed between host threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExcursionPtr(pub *mut Excursion);

// SAFETY: the record is touched by one host thread at a time: the hand-over
// protocol in the module doc passes it on only through the platform's
// synchronised queues, after the switch that wrote it.
unsafe impl Send for ExcursionPtr {}

/// Runs the rest of the calling green thread, until [`end`], on a helper
/// host thread, if the platform has one (see the module doc). Returns
/// `true` on the helper, or `false` on the green host thread when the
/// platform has no helper (then nothing changed, and [`end`] must not be
/// called).
///
/// # Safety
///
/// Called on the green host thread by a green thread. When it returns
/// `true`, the thread runs on another host thread: until it calls [`end`]
/// it must not call any function of this scheduler core (they are not
/// thread-safe), nor rely on host thread-locals set before the call.
pub unsafe fn begin() -> bool {
    let ex = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(Excursion {
        tid: sched::current(),
        sp: UnsafeCell::new(0),
        helper_sp: UnsafeCell::new(0),
        started: UnsafeCell::new(false),
    }));
    let Some(to) = crate::switch::excursion_prepare(ExcursionPtr(ex)) else {
        // SAFETY: never handed out.
        drop(unsafe { alloc::boxed::Box::from_raw(ex) });
        return false;
    };
    // SAFETY: `sp` is the record's slot, alive until this thread frees it;
    // `to` is the trampoline's fresh frame (see `excursion_prepare`).
    unsafe { crate::arch::switch((*ex).sp.get(), to) };
    // Resumed: on a helper if the platform started the excursion, else
    // back on the green host thread. Either way the hand-over ordered the
    // trampoline's write before this read.
    // SAFETY: the record is still ours.
    let started = unsafe { *(*ex).started.get() };
    if !started {
        // SAFETY: no helper ever saw it.
        drop(unsafe { alloc::boxed::Box::from_raw(ex) });
    }
    started
}

/// Helper host thread: runs `ex`'s thread until it calls [`end`].
///
/// # Safety
///
/// `ex` was handed to this helper by
/// [`Platform::excursion_start`](crate::Platform::excursion_start) and not
/// run before; after this returns
/// the helper must pass it to the green host (through its
/// [`Platform::poll_excursions`](crate::Platform::poll_excursions)) and not
/// touch it again.
pub unsafe fn run(ex: ExcursionPtr) {
    let ex = ex.0;
    // SAFETY: the thread's context was completed by its switch into the
    // trampoline before the record was handed out (module doc); the helper
    // slot is ours to write until the thread switches back.
    unsafe { crate::arch::switch((*ex).helper_sp.get(), *(*ex).sp.get()) };
}

/// The excursing thread, on its helper: switches back to the helper, and
/// returns once the green host thread has resumed this thread.
///
/// # Safety
///
/// Called by the thread that [`begin`] returned `true` to, exactly once per
/// excursion, with `ex` the record of that excursion (the helper knows it).
pub unsafe fn end(ex: ExcursionPtr) {
    let ex = ex.0;
    // SAFETY: the helper's context was saved by `run`'s switch into this
    // thread; this thread's slot is the record's, alive until freed below.
    unsafe { crate::arch::switch((*ex).sp.get(), *(*ex).helper_sp.get()) };
    // Resumed by the scheduler on the green host thread, which has read
    // this thread's context out of the record: it is no longer needed.
    // SAFETY: the helper let go of it before handing it back (see `run`).
    drop(unsafe { alloc::boxed::Box::from_raw(ex) });
}
