//! Schedule exploration of the wakeup paths: the same scenarios run under
//! hundreds of seeded schedules (the seed picks which runnable thread runs
//! next, the virtual clock makes timeouts race with wakeups), checking on
//! each one that no wakeup is lost (everything finishes), that locks
//! exclude, and that timed waits never report a timeout before their
//! deadline. A cooperative scheduler has no preemption, so its
//! interleavings are exactly the choices of the run queue; sweeping seeds
//! explores them the way loom explores preemptions for the POSIX locks.

mod core_common;

use core_common::{sc, Session};
use sc::{Config, GreenCondvar, GreenMutex, GreenRwLock};
use std::cell::Cell;
use std::rc::Rc;

const SEEDS: u64 = 300;

/// Producers and consumers on one mutex and two condvars, with timed waits.
fn producer_consumer(seed: u64) {
    let s = Session::virtual_with(1_000, Config::seeded(seed));
    let m: &'static GreenMutex = Box::leak(Box::new(GreenMutex::new()));
    let not_empty: &'static GreenCondvar = Box::leak(Box::new(GreenCondvar::new()));
    let not_full: &'static GreenCondvar = Box::leak(Box::new(GreenCondvar::new()));
    let queue = Rc::new(Cell::new(0u32));
    let consumed = Rc::new(Cell::new(0u32));
    let early = Rc::new(Cell::new(0u32));
    const ITEMS: u32 = 40;
    let mut ts = Vec::new();
    for p in 0..2 {
        let q = queue.clone();
        ts.push(
            sc::spawn_closure(
                move || {
                    for _ in 0..ITEMS / 2 {
                        m.lock();
                        while q.get() >= 3 {
                            not_full.wait(m, None);
                        }
                        q.set(q.get() + 1);
                        if p == 0 {
                            not_empty.notify_one();
                        } else {
                            not_empty.notify_all();
                        }
                        m.unlock();
                        sc::yield_now();
                    }
                },
                "producer",
                0,
                true,
            )
            .unwrap(),
        );
    }
    for _ in 0..3 {
        let (q, c, e) = (queue.clone(), consumed.clone(), early.clone());
        ts.push(
            sc::spawn_closure(
                move || loop {
                    m.lock();
                    while q.get() == 0 && c.get() < ITEMS {
                        let deadline = sc::now_ns() + 5_000;
                        if not_empty.wait(m, Some(deadline)) && sc::now_ns() < deadline {
                            e.set(e.get() + 1);
                        }
                    }
                    if c.get() >= ITEMS {
                        not_empty.notify_all();
                        m.unlock();
                        return;
                    }
                    q.set(q.get() - 1);
                    c.set(c.get() + 1);
                    not_full.notify_one();
                    if c.get() == ITEMS {
                        not_empty.notify_all();
                    }
                    m.unlock();
                },
                "consumer",
                0,
                true,
            )
            .unwrap(),
        );
    }
    for t in ts {
        sc::join(t).unwrap();
    }
    assert_eq!(consumed.get(), ITEMS, "seed {seed}: items lost");
    assert_eq!(queue.get(), 0, "seed {seed}: items left");
    assert_eq!(early.get(), 0, "seed {seed}: a timed wait timed out early");
    let st = sc::stats().unwrap();
    assert!(
        st.switches > 50,
        "seed {seed}: only {} switches",
        st.switches
    );
    s.finish();
}

/// Readers, writers and a downgrader on one rwlock: a writer never
/// overlaps anyone, and a downgraded holder is never overlapped by a writer.
fn rw_exclusion(seed: u64) {
    let s = Session::virtual_with(1_000, Config::seeded(seed));
    let rw: &'static GreenRwLock = Box::leak(Box::new(GreenRwLock::new()));
    let readers = Rc::new(Cell::new(0i32));
    let writers = Rc::new(Cell::new(0i32));
    let bad = Rc::new(Cell::new(0u32));
    let mut ts = Vec::new();
    for i in 0..5 {
        let (r, w, b) = (readers.clone(), writers.clone(), bad.clone());
        ts.push(
            sc::spawn_closure(
                move || {
                    for j in 0..10 {
                        match (i + j) % 3 {
                            0 => {
                                rw.write();
                                if w.get() != 0 || r.get() != 0 {
                                    b.set(b.get() + 1);
                                }
                                w.set(1);
                                sc::yield_now();
                                w.set(0);
                                rw.unlock_write();
                            }
                            1 => {
                                rw.write();
                                w.set(1);
                                sc::yield_now();
                                w.set(0);
                                rw.downgrade();
                                r.set(r.get() + 1);
                                sc::yield_now();
                                if w.get() != 0 {
                                    b.set(b.get() + 1);
                                }
                                r.set(r.get() - 1);
                                rw.unlock_read();
                            }
                            _ => {
                                rw.read();
                                r.set(r.get() + 1);
                                sc::yield_now();
                                if w.get() != 0 {
                                    b.set(b.get() + 1);
                                }
                                if rw.try_upgrade() {
                                    if r.get() != 1 {
                                        b.set(b.get() + 1);
                                    }
                                    r.set(r.get() - 1);
                                    w.set(1);
                                    sc::yield_now();
                                    w.set(0);
                                    rw.unlock_write();
                                } else {
                                    r.set(r.get() - 1);
                                    rw.unlock_read();
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
    for t in ts {
        sc::join(t).unwrap();
    }
    assert_eq!(bad.get(), 0, "seed {seed}: exclusion violated");
    s.finish();
}

#[test]
fn wakeup_paths_under_many_schedules() {
    for seed in 0..SEEDS {
        producer_consumer(seed);
        rw_exclusion(seed);
    }
}
