//! Sync-object host tests: mutex hand-off and self-deadlock, rwlock
//! exclusion (writer vs readers), downgrade/try_upgrade bookkeeping,
//! condvar wake-ups and timeouts, raw wait queues.

mod core_common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use core_common::{sc, Rng, Session};
use sc::{GreenCondvar, GreenMutex, GreenRwLock, LockError, WaitQueue, Wakeup};

#[test]
fn mutex_exclusion_fifo_handoff_and_self_deadlock() {
    let s = Session::real();
    let m = Rc::new(GreenMutex::new());
    assert!(!m.is_locked());
    assert!(m.try_lock());
    assert!(!m.try_lock());
    assert_eq!(m.owner(), Some(sc::current()));
    assert_eq!(m.lock_checked(), Err(LockError::WouldDeadlock));
    let order = Rc::new(RefCell::new(Vec::new()));
    let inside = Rc::new(Cell::new(false));
    let mut ids = Vec::new();
    for i in 0..5 {
        let (m, order, inside) = (m.clone(), order.clone(), inside.clone());
        ids.push(
            sc::spawn_closure(
                move || {
                    m.lock();
                    assert!(!inside.replace(true), "two holders");
                    assert_eq!(m.owner(), Some(sc::current()));
                    order.borrow_mut().push(i);
                    sc::yield_now(); // hold it across a switch
                    sc::sleep_for(10_000);
                    inside.set(false);
                    m.unlock();
                },
                "locker",
                0,
                true,
            )
            .unwrap(),
        );
    }
    sc::yield_now(); // all five queue up behind main
    assert_eq!(m.waiters(), 5);
    m.unlock(); // hand-off to the first waiter
    assert!(m.is_locked());
    assert!(!m.try_lock(), "hand-off: nobody can barge in");
    for id in ids {
        sc::join(id).unwrap();
    }
    assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4], "FIFO hand-off");
    assert!(!m.is_locked());
    m.unlock(); // unlocking an unlocked mutex is ignored
    assert!(!m.is_locked());
    s.finish();
}

/// Shared state that the critical sections check.
#[derive(Default)]
struct RwCheck {
    readers: Cell<usize>,
    writer: Cell<bool>,
    max_readers: Cell<usize>,
    writes: Cell<usize>,
}

impl RwCheck {
    fn enter_read(&self) {
        assert!(!self.writer.get(), "reader admitted while a writer holds");
        self.readers.set(self.readers.get() + 1);
        self.max_readers
            .set(self.max_readers.get().max(self.readers.get()));
    }
    fn exit_read(&self) {
        self.readers.set(self.readers.get() - 1);
    }
    fn enter_write(&self) {
        assert_eq!(self.readers.get(), 0, "writer admitted while readers hold");
        assert!(!self.writer.replace(true), "two writers");
        self.writes.set(self.writes.get() + 1);
    }
    fn exit_write(&self) {
        self.writer.set(false);
    }
}

#[test]
fn rwlock_writer_never_coexists_with_readers() {
    let s = Session::real();
    let rw = Rc::new(GreenRwLock::new());
    let chk = Rc::new(RwCheck::default());

    // The exact prior-art bug: readers hold the lock and block; a writer
    // must not get in until the last reader leaves.
    rw.read();
    rw.read();
    assert!(!rw.try_write());
    let (rw2, chk2) = (rw.clone(), chk.clone());
    let w = sc::spawn_closure(
        move || {
            rw2.write();
            chk2.enter_write();
            sc::yield_now();
            chk2.exit_write();
            rw2.unlock_write();
        },
        "writer",
        0,
        true,
    )
    .unwrap();
    chk.enter_read();
    chk.enter_read();
    sc::sleep_for(100_000); // readers block while holding
    assert_eq!(chk.writes.get(), 0);
    assert!(!rw.is_write_locked());
    // A new reader queues behind the waiting writer (writer preference).
    assert!(!rw.try_read());
    chk.exit_read();
    rw.unlock_read();
    sc::sleep_for(100_000);
    assert_eq!(chk.writes.get(), 0, "writer in with one reader left");
    chk.exit_read();
    rw.unlock_read(); // last reader: hand-off to the writer
    assert!(rw.is_write_locked());
    assert!(!rw.has_readers());
    sc::join(w).unwrap();
    assert_eq!(chk.writes.get(), 1);
    assert!(!rw.is_write_locked());

    // Randomised stress: readers and writers that block (yield/sleep)
    // while holding, plus downgrades and upgrades.
    let mut ids = Vec::new();
    for t in 0..24u64 {
        let (rw, chk) = (rw.clone(), chk.clone());
        ids.push(
            sc::spawn_closure(
                move || {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                    for _ in 0..200 {
                        match rng.below(6) {
                            0..=2 => {
                                rw.read();
                                chk.enter_read();
                                if rng.below(3) == 0 {
                                    sc::sleep_for(rng.below(2_000));
                                } else {
                                    sc::yield_now();
                                }
                                if rng.below(4) == 0 && rw.try_upgrade() {
                                    chk.exit_read();
                                    chk.enter_write();
                                    sc::yield_now();
                                    chk.exit_write();
                                    rw.unlock_write();
                                } else {
                                    chk.exit_read();
                                    rw.unlock_read();
                                }
                            }
                            3 | 4 => {
                                rw.write();
                                chk.enter_write();
                                sc::yield_now();
                                if rng.below(2) == 0 {
                                    chk.exit_write();
                                    rw.downgrade();
                                    chk.enter_read();
                                    sc::yield_now();
                                    chk.exit_read();
                                    rw.unlock_read();
                                } else {
                                    chk.exit_write();
                                    rw.unlock_write();
                                }
                            }
                            _ => {
                                if rw.try_read() {
                                    chk.enter_read();
                                    sc::yield_now();
                                    chk.exit_read();
                                    rw.unlock_read();
                                } else if rw.try_write() {
                                    chk.enter_write();
                                    sc::yield_now();
                                    chk.exit_write();
                                    rw.unlock_write();
                                }
                            }
                        }
                    }
                },
                "rw",
                0,
                true,
            )
            .unwrap(),
        );
    }
    for id in ids {
        sc::join(id).unwrap();
    }
    assert!(chk.max_readers.get() > 1, "readers never overlapped");
    assert!(chk.writes.get() > 100);
    assert!(!rw.is_write_locked());
    assert!(!rw.has_readers(), "reader count leaked");
    assert!(rw.try_write());
    rw.unlock_write();
    s.finish();
}

#[test]
fn rwlock_downgrade_and_try_upgrade_bookkeeping() {
    let s = Session::real();
    let rw = Rc::new(GreenRwLock::new());
    let log = Rc::new(RefCell::new(Vec::new()));
    rw.write();
    assert_eq!(rw.read_checked(), Err(LockError::WouldDeadlock));
    assert_eq!(rw.write_checked(), Err(LockError::WouldDeadlock));
    let spawn = |name: &'static str, write: bool| {
        let (rw, log) = (rw.clone(), log.clone());
        sc::spawn_closure(
            move || {
                if write {
                    rw.write();
                    log.borrow_mut().push(format!("{name}+"));
                    assert!(!rw.has_readers());
                    rw.unlock_write();
                } else {
                    rw.read();
                    log.borrow_mut().push(format!("{name}+"));
                    assert!(!rw.is_write_locked());
                    sc::yield_now();
                    log.borrow_mut().push(format!("{name}-"));
                    rw.unlock_read();
                }
            },
            name,
            0,
            true,
        )
        .unwrap()
    };
    let r1 = spawn("r1", false);
    let w1 = spawn("w1", true);
    let r2 = spawn("r2", false);
    sc::yield_now(); // all three block: r1 (writer held), w1, r2 (writer held)
    assert!(log.borrow().is_empty());
    rw.downgrade(); // main keeps a read hold, both readers are granted
    assert!(!rw.is_write_locked());
    assert_eq!(rw.readers(), 3);
    assert!(!rw.try_upgrade(), "not the sole reader");
    sc::yield_now();
    sc::yield_now();
    assert!(!log.borrow().contains(&"w1+".to_string()), "writer got in");
    assert_eq!(rw.readers(), 1, "only main's read hold is left");
    assert!(
        rw.try_upgrade(),
        "sole reader upgrades (writer still waiting)"
    );
    assert!(rw.is_write_locked());
    assert_eq!(rw.readers(), 0);
    rw.unlock_write(); // no readers waiting: hand-off to w1
    for id in [r1, w1, r2] {
        sc::join(id).unwrap();
    }
    let l = log.borrow().join(" ");
    assert_eq!(l, "r1+ r2+ r1- r2- w1+");
    assert!(!rw.has_readers() && !rw.is_write_locked());
    // Downgrade then unlock_read leaves a clean lock (prior art left -1).
    rw.write();
    rw.downgrade();
    assert!(rw.has_readers());
    rw.unlock_read();
    assert!(!rw.has_readers() && !rw.is_write_locked());
    assert!(rw.try_write());
    rw.unlock_write();
    s.finish();
}

#[test]
fn condvar_no_lost_wakeup_and_timeouts() {
    let s = Session::real();
    let m = Rc::new(GreenMutex::new());
    let cv = Rc::new(GreenCondvar::new());
    let queue = Rc::new(RefCell::new(Vec::<u32>::new()));
    // Producer/consumer: every item is consumed, no wake-up is lost.
    let (m2, cv2, q2) = (m.clone(), cv.clone(), queue.clone());
    let consumer = sc::spawn_closure(
        move || {
            let mut got = 0;
            m2.lock();
            while got < 1000 {
                while q2.borrow().is_empty() {
                    let timed_out = cv2.wait_unlocked(&m2, None);
                    assert!(!timed_out);
                    assert!(!m2.is_locked() || m2.owner() != Some(sc::current()));
                    m2.lock();
                }
                got += q2.borrow_mut().drain(..).count();
            }
            m2.unlock();
        },
        "consumer",
        0,
        true,
    )
    .unwrap();
    for i in 0..1000 {
        m.lock();
        queue.borrow_mut().push(i);
        cv.notify_one();
        m.unlock();
        if i % 7 == 0 {
            sc::yield_now();
        }
    }
    sc::join(consumer).unwrap();

    // Timed waits: never early; sub-tick, zero and past deadlines expire.
    for d in [0u64, 1, 500, 20_000, 1_500_000] {
        m.lock();
        let deadline = sc::now_ns() + d;
        assert!(
            cv.wait_unlocked(&m, Some(deadline)),
            "no notify: must time out"
        );
        assert!(sc::now_ns() >= deadline, "timed out early ({d} ns)");
        assert!(!m.is_locked(), "returns without the mutex");
    }
    m.lock();
    assert!(cv.wait_unlocked(&m, Some(0)), "past deadline times out");

    // Notified before the deadline: not a timeout.
    let cv3 = cv.clone();
    let notifier = sc::spawn_closure(
        move || {
            sc::sleep_for(200_000);
            assert_eq!(cv3.waiters(), 1);
            cv3.notify_one();
        },
        "notifier",
        0,
        true,
    )
    .unwrap();
    m.lock();
    assert!(!cv.wait(&m, Some(sc::now_ns() + 5_000_000_000)));
    assert_eq!(m.owner(), Some(sc::current()), "wait() relocks");
    m.unlock();
    sc::join(notifier).unwrap();

    // A waiter that timed out is removed: waiters() is exact and
    // notify_one reaches the live waiter, not the stale one.
    let woke = Rc::new(Cell::new(0));
    let short = {
        let (m, cv) = (m.clone(), cv.clone());
        sc::spawn_closure(
            move || {
                m.lock();
                // Long enough that both waiters are still queued when the
                // main thread looks, even under an emulator (qemu-aarch64
                // once took more than 100 us to get there).
                assert!(cv.wait_unlocked(&m, Some(sc::now_ns() + 200_000_000)));
            },
            "short",
            0,
            true,
        )
        .unwrap()
    };
    let long = {
        let (m, cv, woke) = (m.clone(), cv.clone(), woke.clone());
        sc::spawn_closure(
            move || {
                m.lock();
                assert!(!cv.wait_unlocked(&m, None));
                woke.set(woke.get() + 1);
            },
            "long",
            0,
            true,
        )
        .unwrap()
    };
    sc::yield_now();
    assert_eq!(cv.waiters(), 2);
    sc::join(short).unwrap();
    assert_eq!(cv.waiters(), 1);
    cv.notify_one();
    assert_eq!(cv.waiters(), 0);
    sc::join(long).unwrap();
    assert_eq!(woke.get(), 1);
    assert_eq!(cv.waiters(), 0);
    cv.notify_one(); // no waiter: nothing happens, nothing is remembered
    cv.notify_all();

    // notify_all wakes everyone.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (m, cv) = (m.clone(), cv.clone());
        ids.push(
            sc::spawn_closure(
                move || {
                    m.lock();
                    assert!(!cv.wait_unlocked(&m, Some(u64::MAX)));
                },
                "all",
                0,
                true,
            )
            .unwrap(),
        );
    }
    sc::yield_now();
    assert_eq!(cv.waiters(), 10);
    cv.notify_all();
    assert_eq!(cv.waiters(), 0);
    for id in ids {
        sc::join(id).unwrap();
    }
    s.finish();
}

#[test]
fn stale_timers_are_compacted() {
    let s = Session::real();
    let m = Rc::new(GreenMutex::new());
    let cv = Rc::new(GreenCondvar::new());
    let (m2, cv2) = (m.clone(), cv.clone());
    let notifier = sc::spawn_closure(
        move || {
            for _ in 0..20_000 {
                while cv2.waiters() == 0 {
                    sc::yield_now();
                }
                m2.lock();
                cv2.notify_one();
                m2.unlock();
            }
        },
        "notifier",
        0,
        true,
    )
    .unwrap();
    let mut max_timers = 0;
    for _ in 0..20_000 {
        m.lock();
        // Long timeout, always satisfied early: its heap entry goes stale.
        assert!(!cv.wait_unlocked(&m, Some(sc::now_ns() + 60_000_000_000)));
        max_timers = max_timers.max(sc::stats().unwrap().timers);
    }
    sc::join(notifier).unwrap();
    assert!(
        max_timers < 200,
        "stale timer entries piled up: {max_timers}"
    );
    s.finish();
}

#[test]
fn wait_queue_fifo_and_timeouts() {
    let s = Session::real();
    let q = Rc::new(WaitQueue::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut ids = Vec::new();
    for i in 0..6u64 {
        let (q, order) = (q.clone(), order.clone());
        ids.push(
            sc::spawn_closure(
                move || {
                    // Odd ones have a short deadline and time out.
                    let dl = (i % 2 == 1).then(|| sc::now_ns() + 300_000);
                    let w = q.park(dl);
                    if let Some(d) = dl {
                        assert_eq!(w, Wakeup::TimedOut);
                        assert!(sc::now_ns() >= d);
                    } else {
                        assert_eq!(w, Wakeup::Notified);
                    }
                    order.borrow_mut().push(i);
                },
                "wq",
                0,
                true,
            )
            .unwrap(),
        );
    }
    sc::yield_now();
    assert_eq!(q.len(), 6);
    sc::sleep_for(1_000_000);
    assert_eq!(q.len(), 3, "timed-out waiters removed");
    assert_eq!(*order.borrow(), vec![1, 3, 5]);
    let first = q.wake_one();
    assert_eq!(first, Some(ids[0]));
    assert_eq!(q.wake_all(), 2);
    assert!(q.is_empty());
    for id in ids {
        sc::join(id).unwrap();
    }
    assert_eq!(*order.borrow(), vec![1, 3, 5, 0, 2, 4]);
    s.finish();
}
