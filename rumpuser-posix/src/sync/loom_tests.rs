//! Loom model tests of the lock algorithms (compiled only with `--cfg loom`).
//!
//! With `cfg(loom)` the primitives run on loom's atomics and an emulated futex
//! (see [`super::primitive`]), so loom explores all interleavings (up to the
//! preemption bound) and weak-memory behaviours of the real algorithm code.
//! Protected data lives in `loom::cell::UnsafeCell`, so an access that is not
//! ordered by the lock (mutual exclusion or acquire/release bug) is reported,
//! and a missing futex wake shows up as a loom deadlock.
//!
//! Run (from the workspace root):
//!
//! ```text
//! LOOM_MAX_PREEMPTIONS=3 RUSTFLAGS="--cfg loom" \
//!     cargo test --release -p rumpuser-posix --lib sync
//! ```
//!
//! Without `LOOM_MAX_PREEMPTIONS` the tests default to a bound of 3.
//! Measured runtime (release, 2-core machine): bound 3, 12 tests, about 35 s
//! of test time in total (45-70 s wall with the default two test threads on
//! a loaded box); the slowest, `rwlock_downgrade_racing_writer`, takes about
//! 16 s alone, `rwlock_two_writers_and_reader` 12 s, the rest at most 6 s.
//! Bound 2 runs the whole suite in about 3 s.

use super::{Condvar, RawMutex, RawRwLock};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

/// `loom::model` with a default preemption bound of 3 when
/// `LOOM_MAX_PREEMPTIONS` is not set.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// A mutex and the data it protects.
struct MutexData {
    m: RawMutex,
    data: UnsafeCell<u32>,
}

impl MutexData {
    /// Reads the data; call only after all other threads have been joined.
    fn value(&self) -> u32 {
        self.data.with(|p| {
            // SAFETY: no other thread is running any more.
            unsafe { *p }
        })
    }
}

fn mutex_increment(s: &MutexData) {
    s.m.lock();
    // Read-modify-write split in two accesses so a lost update is possible
    // if exclusion fails; loom also flags the unordered access itself.
    let v = s.data.with(|p| {
        // SAFETY: `m` is held.
        unsafe { *p }
    });
    s.data.with_mut(|p| {
        // SAFETY: `m` is held.
        unsafe { *p = v + 1 }
    });
    s.m.unlock();
}

#[test]
fn mutex_two_threads() {
    model(|| {
        let s = Arc::new(MutexData {
            m: RawMutex::new(),
            data: UnsafeCell::new(0),
        });
        let s2 = Arc::clone(&s);
        let t = thread::spawn(move || mutex_increment(&s2));
        mutex_increment(&s);
        t.join().unwrap();
        assert!(!s.m.is_locked());
        assert_eq!(s.value(), 2);
    });
}

/// Three contenders: exercises the CONTENDED state and the wake-one on unlock
/// (a waiter that is never woken is reported as a deadlock).
#[test]
fn mutex_three_threads_no_lost_wakeup() {
    model(|| {
        let s = Arc::new(MutexData {
            m: RawMutex::new(),
            data: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || mutex_increment(&s))
            })
            .collect();
        mutex_increment(&s);
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(s.value(), 3);
    });
}

/// A holder that re-takes the lock at once makes a woken waiter fail and
/// starve (under loom a waiter starves once woken): the reservation must let
/// only it in, and the unlock must wake it even with another thread asleep
/// (a wake-one there can pick the wrong sleeper: reported as a deadlock).
#[test]
fn mutex_starving_waiter_and_sleeper() {
    model(|| {
        let s = Arc::new(MutexData {
            m: RawMutex::new(),
            data: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || mutex_increment(&s))
            })
            .collect();
        mutex_increment(&s);
        mutex_increment(&s);
        for t in ts {
            t.join().unwrap();
        }
        assert!(!s.m.is_locked());
        assert_eq!(s.value(), 4);
    });
}

/// An rwlock and the data it protects.
struct RwData {
    l: RawRwLock,
    data: UnsafeCell<u32>,
}

impl RwData {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            l: RawRwLock::new(),
            data: UnsafeCell::new(0),
        })
    }

    fn read_value(&self) -> u32 {
        self.data.with(|p| {
            // SAFETY: callers hold a read or the write hold.
            unsafe { *p }
        })
    }

    fn write_value(&self, v: u32) {
        self.data.with_mut(|p| {
            // SAFETY: callers hold the write hold.
            unsafe { *p = v }
        })
    }

    fn reader(&self) -> u32 {
        self.l.read();
        assert!(!self.l.is_write_locked());
        let v = self.read_value();
        self.l.unlock_read();
        v
    }

    fn writer(&self, v: u32) {
        self.l.write();
        assert!(self.l.is_write_locked() && !self.l.has_readers());
        self.write_value(v);
        self.l.unlock_write();
    }
}

/// One writer against two readers: no reader ever overlaps the writer (loom
/// reports the conflicting cell accesses), and all blocked parties are woken.
#[test]
fn rwlock_writer_vs_readers() {
    model(|| {
        let s = RwData::new();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || {
                    let v = s.reader();
                    assert!(v == 0 || v == 7);
                })
            })
            .collect();
        s.writer(7);
        for t in ts {
            t.join().unwrap();
        }
        assert!(!s.l.is_write_locked() && !s.l.has_readers());
    });
}

/// Two writers and a reader: writer-writer exclusion and writer wake-up
/// through `writer_notify`.
#[test]
fn rwlock_two_writers_and_reader() {
    model(|| {
        let s = RwData::new();
        let s1 = Arc::clone(&s);
        let w = thread::spawn(move || s1.writer(1));
        let s2 = Arc::clone(&s);
        let r = thread::spawn(move || {
            s2.reader();
        });
        s.writer(2);
        w.join().unwrap();
        r.join().unwrap();
        let v = s.reader();
        assert!(v == 1 || v == 2);
    });
}

/// Downgrade with a racing writer and reader: after downgrading, the value
/// written under the write hold is still there (no writer got in), and
/// nobody is left asleep.
#[test]
fn rwlock_downgrade_racing_writer() {
    model(|| {
        let s = RwData::new();
        let s1 = Arc::clone(&s);
        let w = thread::spawn(move || s1.writer(2));
        let s2 = Arc::clone(&s);
        let r = thread::spawn(move || {
            let v = s2.reader();
            assert!(v <= 2);
        });

        s.l.write();
        s.write_value(1);
        s.l.downgrade();
        assert!(!s.l.is_write_locked() && s.l.has_readers());
        assert_eq!(s.read_value(), 1, "a writer got in during downgrade");
        s.l.unlock_read();

        w.join().unwrap();
        r.join().unwrap();
        assert!(!s.l.is_write_locked() && !s.l.has_readers());
    });
}

/// A reader racing a writer is always the sole reader, so `try_upgrade` must
/// succeed whatever waiting bits the writer has set.
#[test]
fn rwlock_try_upgrade_vs_writer() {
    model(|| {
        let s = RwData::new();
        let s1 = Arc::clone(&s);
        let w = thread::spawn(move || s1.writer(2));

        s.l.read();
        assert!(s.l.try_upgrade(), "sole reader failed to upgrade");
        assert!(s.l.is_write_locked());
        s.write_value(1);
        s.l.unlock_write();

        w.join().unwrap();
        assert!(!s.l.is_write_locked() && !s.l.has_readers());
    });
}

/// Two readers that both try to upgrade: at most one can succeed at a time
/// and a successful upgrader has exclusive access.
#[test]
fn rwlock_try_upgrade_two_readers() {
    model(|| {
        let s = RwData::new();
        let upgrade = |s: &RwData, v: u32| {
            s.l.read();
            let _ = s.read_value();
            if s.l.try_upgrade() {
                s.write_value(v);
                s.l.unlock_write();
            } else {
                s.l.unlock_read();
            }
        };
        let s1 = Arc::clone(&s);
        let t = thread::spawn(move || upgrade(&s1, 1));
        upgrade(&s, 2);
        t.join().unwrap();
        assert!(!s.l.is_write_locked() && !s.l.has_readers());
    });
}

/// A mutex, a condition variable and the predicate they protect.
struct CvData {
    m: RawMutex,
    cv: Condvar,
    flag: UnsafeCell<bool>,
}

impl CvData {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            m: RawMutex::new(),
            cv: Condvar::new(),
            flag: UnsafeCell::new(false),
        })
    }

    fn flag(&self) -> bool {
        self.flag.with(|p| {
            // SAFETY: callers hold `m`.
            unsafe { *p }
        })
    }

    /// Waits for the flag; a lost wakeup is a loom deadlock.
    fn wait_for_flag(&self) {
        self.m.lock();
        while !self.flag() {
            assert!(!self.cv.wait_unlocked(&self.m, None));
            self.m.lock();
        }
        self.m.unlock();
    }

    fn set_flag(&self, notify_all: bool, notify_under_mutex: bool) {
        self.m.lock();
        self.flag.with_mut(|p| {
            // SAFETY: `m` is held.
            unsafe { *p = true }
        });
        if notify_under_mutex {
            self.notify(notify_all);
            self.m.unlock();
        } else {
            self.m.unlock();
            self.notify(notify_all);
        }
    }

    fn notify(&self, all: bool) {
        if all {
            self.cv.notify_all();
        } else {
            self.cv.notify_one();
        }
    }
}

/// notify_one issued after releasing the mutex must wake the waiter.
#[test]
fn condvar_notify_one_without_mutex() {
    model(|| {
        let s = CvData::new();
        let s1 = Arc::clone(&s);
        let t = thread::spawn(move || s1.wait_for_flag());
        s.set_flag(false, false);
        t.join().unwrap();
        assert!(!s.cv.has_waiters());
    });
}

/// notify_one issued while holding the mutex must wake the waiter.
#[test]
fn condvar_notify_one_under_mutex() {
    model(|| {
        let s = CvData::new();
        let s1 = Arc::clone(&s);
        let t = thread::spawn(move || s1.wait_for_flag());
        s.set_flag(false, true);
        t.join().unwrap();
    });
}

/// notify_all must wake every waiter.
#[test]
fn condvar_notify_all_two_waiters() {
    model(|| {
        let s = CvData::new();
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || s.wait_for_flag())
            })
            .collect();
        s.set_flag(true, false);
        for t in ts {
            t.join().unwrap();
        }
        assert!(!s.cv.has_waiters());
    });
}

/// An expired deadline reports a timeout, and the mutex is released.
#[test]
fn condvar_expired_deadline() {
    model(|| {
        let s = CvData::new();
        s.m.lock();
        assert!(s.cv.wait_unlocked(&s.m, Some(0)));
        assert!(!s.m.is_locked());
        assert!(!s.cv.has_waiters());
    });
}

/// Two consumers, two `notify_one`s issued outside the mutex: each item must
/// wake somebody even while an already-woken waiter is still counted in
/// `waiters` (the notify-skipping fast path must not lose the second wake).
#[test]
fn condvar_notify_one_two_items_two_waiters() {
    struct Queue {
        m: RawMutex,
        cv: Condvar,
        items: UnsafeCell<u32>,
    }
    model(|| {
        let q = Arc::new(Queue {
            m: RawMutex::new(),
            cv: Condvar::new(),
            items: UnsafeCell::new(0),
        });
        let ts: Vec<_> = (0..2)
            .map(|_| {
                let q = Arc::clone(&q);
                thread::spawn(move || {
                    q.m.lock();
                    loop {
                        // SAFETY: `m` is held.
                        let n = q.items.with(|p| unsafe { *p });
                        if n > 0 {
                            // SAFETY: `m` is held.
                            q.items.with_mut(|p| unsafe { *p = n - 1 });
                            break;
                        }
                        assert!(!q.cv.wait_unlocked(&q.m, None));
                        q.m.lock();
                    }
                    q.m.unlock();
                })
            })
            .collect();
        for _ in 0..2 {
            q.m.lock();
            // SAFETY: `m` is held.
            q.items.with_mut(|p| unsafe { *p += 1 });
            q.m.unlock();
            q.cv.notify_one();
        }
        for t in ts {
            t.join().unwrap();
        }
        assert!(!q.cv.has_waiters());
    });
}
