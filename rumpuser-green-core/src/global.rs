//! The single global scheduler instance and its access discipline.
//!
//! [`GlobalCell`] is an `UnsafeCell<Option<T>>` plus a "borrowed" flag.
//! All access goes through [`GlobalCell::try_with`], which hands out a
//! `&mut T` for the duration of a closure and refuses (panics on) nested
//! use, so two `&mut` to the scheduler can never coexist on one host
//! thread.
//!
//! # Invariants (the contract of [`init`](crate::init), an `unsafe fn`)
//!
//! * Only the host thread that called `init` ever touches the cell. There is
//!   no cross-host-thread synchronisation at all: external wake-ups arrive
//!   through `Platform::poll_events`, which the core calls itself.
//! * A context switch never happens inside `try_with`: the scheduler
//!   computes the switch inside the closure and performs it after the
//!   closure has returned, so a borrow never spans two green threads.
//! * Platform callbacks invoked inside the closure never call back into
//!   the scheduler (a violation is caught by the flag and panics).

use core::cell::UnsafeCell;

/// A lazily installed global value with checked exclusive access.
pub(super) struct GlobalCell<T> {
    busy: UnsafeCell<bool>,
    value: UnsafeCell<Option<T>>,
}

// SAFETY: the cell is only ever accessed from the one host thread that
// initialised the scheduler; that is the documented safety contract of the
// `unsafe fn init`, the only way to install a value. Under that contract
// there is never concurrent access, so sharing the static is sound.
unsafe impl<T> Sync for GlobalCell<T> {}

/// Resets the busy flag when the borrow ends (also on unwinding in tests).
struct Guard<'a>(&'a UnsafeCell<bool>);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: single host thread (module invariant); the flag is a
        // plain bool only touched by `enter` and this drop.
        unsafe { *self.0.get() = false }
    }
}

impl<T> GlobalCell<T> {
    /// An empty cell.
    pub(super) const fn new() -> Self {
        Self {
            busy: UnsafeCell::new(false),
            value: UnsafeCell::new(None),
        }
    }

    fn enter(&self) -> Guard<'_> {
        // SAFETY: single host thread (module invariant); this is the only
        // reference to the flag while it lives (the guard's `drop` runs
        // after this function has returned).
        let busy = unsafe { &mut *self.busy.get() };
        if *busy {
            panic!(
                "rumpuser-green: scheduler re-entered (from a platform callback or switch hook?)"
            );
        }
        *busy = true;
        Guard(&self.busy)
    }

    /// Run `f` with exclusive access to the value; `None` if the cell is
    /// empty. Panics when called from inside another `try_with`.
    #[inline]
    pub(super) fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let _guard = self.enter();
        // SAFETY: the busy flag guarantees no other reference to the value
        // exists on this host thread, and the module invariant guarantees
        // no other host thread touches it; the reference does not escape
        // the closure call.
        let value = unsafe { &mut *self.value.get() };
        value.as_mut().map(f)
    }

    /// Like [`try_with`](Self::try_with), but returns `None` instead of
    /// panicking when the value is already borrowed (for crash reports
    /// written from an exception handler that may have interrupted the
    /// scheduler itself).
    pub(super) fn try_with_if_free<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        // SAFETY: single host thread (module invariant); a plain read of the flag.
        if unsafe { *self.busy.get() } {
            return None;
        }
        self.try_with(f)
    }

    /// Install a value; gives it back if the cell is already occupied.
    pub(super) fn install(&self, v: T) -> Result<(), T> {
        let _guard = self.enter();
        // SAFETY: exclusive as in `try_with`.
        let value = unsafe { &mut *self.value.get() };
        if value.is_some() {
            return Err(v);
        }
        *value = Some(v);
        Ok(())
    }

    /// Remove and return the value.
    pub(super) fn take(&self) -> Option<T> {
        let _guard = self.enter();
        // SAFETY: exclusive as in `try_with`.
        let value = unsafe { &mut *self.value.get() };
        value.take()
    }
}
