//! Performing what the scheduler decided, once its borrow has ended: the
//! register switch, the hand-off of the token to another host (the
//! parking rule of the [`hosts`](crate::hosts) module doc), a thread's
//! first entry and the excursion trampoline.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::arch;
use crate::excursion::ExcursionPtr;
use crate::hosts::{self, HostCell};
use crate::sched::SCHED;
use crate::thread::{Entry, Wakeup};
use crate::{exit, fatal};

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
pub(crate) struct Switch {
    pub(crate) save: *mut usize,
    pub(crate) to: usize,
}

impl Switch {
    pub(crate) const STAY: Switch = Switch {
        save: ptr::null_mut(),
        to: 0,
    };

    pub(crate) fn local(save: *mut usize, to: usize) -> Switch {
        Switch { save, to }
    }

    pub(crate) fn remote(to: &'static HostCell) -> Switch {
        Switch {
            save: ptr::null_mut(),
            to: to as *const HostCell as usize,
        }
    }
}

/// Perform a switch computed by the scheduler and, once this thread is
/// resumed, return its wake-up reason.
#[inline(always)]
pub(crate) fn run_switch(sw: Switch) -> Wakeup {
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
pub(crate) fn perform(sw: Switch) -> bool {
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
pub(crate) fn remote_switch(to: usize) -> bool {
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
pub(crate) static HANDOFF: AtomicPtr<HostCell> = AtomicPtr::new(ptr::null_mut());

/// A bound thread resumed by a register switch only to park its host: hand
/// the token on now (the free thread's context is saved) and wait for it.
/// `false`: the runner left.
#[cold]
#[inline(never)]
pub(crate) fn after_local_resume() -> bool {
    let to = HANDOFF.swap(ptr::null_mut(), Ordering::Relaxed);
    let Some(h) = hosts::this_host() else {
        fatal("rumpuser-green: a token hand-off on a host thread that does not take part");
    };
    // SAFETY: set by `switch_remote` from a live thread's home.
    hand_on(h, unsafe { &*to })
}

/// Give the token from `from` to `to` (whose bound thread the scheduler
/// made current) and wait until it comes back, or, for the runner, leave.
pub(crate) fn hand_on(from: &'static HostCell, to: &'static HostCell) -> bool {
    let ops = hosts::ops();
    ops.give(from, to);
    if from.runner.load(Ordering::Relaxed) {
        return false;
    }
    ops.wait(from);
    // Back with the token to run this host's bound thread, which the giver
    // made current: this host's curlwp word is its lwp again (a free thread
    // may have run here last).
    SCHED.try_with(|s| hosts::set_lwp_here(s.threads[s.cur as usize].curlwp));
    true
}

/// First code run by every spawned thread (via the arch trampoline).
pub(crate) extern "C" fn thread_start(_arg: usize) -> ! {
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
pub(crate) const TRAMPOLINE_STACK: usize = 64 * 1024;

/// Entered (on the trampoline stack) by a thread starting an excursion; see
/// `excursion_leave`. Never resumed: its next use builds a fresh frame.
pub(crate) extern "C" fn excursion_trampoline(_arg: usize) -> ! {
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
pub(crate) fn excursion_prepare(ex: ExcursionPtr) -> Option<usize> {
    SCHED.try_with(|s| s.excursion_prepare(ex)).flatten()
}
