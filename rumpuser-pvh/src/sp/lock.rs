//! The green core's mutex and condition variable as the syscall proxy
//! server's [`Locks`]: a thread that waits parks and the others run.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use rumpuser_core::sp::server::{Lock, Locks};
use rumpuser_green::sched_core::{self, GreenCondvar, GreenMutex};

/// A [`GreenMutex`] holding a `T`.
pub struct GMutex<T> {
    raw: GreenMutex,
    data: UnsafeCell<T>,
}

// SAFETY: every green thread runs on the one CPU and switches only at a
// blocking call, and interrupt handlers never touch these objects, so the
// `Cell`s inside the green mutex are never accessed concurrently; the
// mutex itself serializes access to `data` between green threads.
unsafe impl<T: Send> Send for GMutex<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for GMutex<T> {}

/// The guard of a [`GMutex`]; unlocks when dropped.
pub struct GGuard<'a, T> {
    m: &'a GMutex<T>,
}

impl<T> Deref for GGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex, so no other reference to the
        // data exists.
        unsafe { &*self.m.data.get() }
    }
}

impl<T> DerefMut for GGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the guard is borrowed mutably.
        unsafe { &mut *self.m.data.get() }
    }
}

impl<T> Drop for GGuard<'_, T> {
    fn drop(&mut self) {
        self.m.raw.unlock();
    }
}

impl<T: Send> Lock<T> for GMutex<T> {
    type Guard<'a>
        = GGuard<'a, T>
    where
        T: 'a;

    fn new(v: T) -> Self {
        GMutex {
            raw: GreenMutex::new(),
            data: UnsafeCell::new(v),
        }
    }

    fn lock(&self) -> GGuard<'_, T> {
        self.raw.lock();
        GGuard { m: self }
    }
}

/// A [`GreenCondvar`].
#[derive(Default)]
pub struct GCond(GreenCondvar);

// SAFETY: as for `GMutex`: one CPU, switches only at blocking calls.
unsafe impl Send for GCond {}
// SAFETY: as above.
unsafe impl Sync for GCond {}

/// The server's locks on green threads.
pub struct GreenLocks;

impl GreenLocks {
    fn park<'a, T: Send>(
        cv: &GCond,
        m: &'a GMutex<T>,
        g: GGuard<'a, T>,
        deadline: Option<u64>,
    ) -> GGuard<'a, T> {
        // The condvar releases the mutex with no switch before the wait
        // begins, so a notification after the release is not lost.
        core::mem::forget(g);
        cv.0.wait_unlocked(&m.raw, deadline);
        m.lock()
    }
}

impl Locks for GreenLocks {
    type Mutex<T: Send> = GMutex<T>;
    type Cond = GCond;

    fn wait<'a, T: Send>(cv: &GCond, m: &'a GMutex<T>, g: GGuard<'a, T>) -> GGuard<'a, T> {
        Self::park(cv, m, g, None)
    }

    fn wait_until<'a, T: Send>(
        cv: &GCond,
        m: &'a GMutex<T>,
        g: GGuard<'a, T>,
        deadline: u64,
    ) -> GGuard<'a, T> {
        Self::park(cv, m, g, Some(deadline))
    }

    fn notify_one(cv: &GCond) {
        cv.0.notify_one()
    }

    fn notify_all(cv: &GCond) {
        cv.0.notify_all()
    }

    fn now_ns() -> u64 {
        sched_core::now_ns()
    }
}
