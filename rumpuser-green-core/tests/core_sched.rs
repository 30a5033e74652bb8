//! Scheduler-core host tests: spawn/yield/exit/join ordering, per-thread
//! slots, sleep accuracy, park/wake and external events, idle behaviour,
//! thousands of threads, shutdown rules.

mod core_common;

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use core_common::{sc, Session};
use sc::{JoinError, ShutdownError, SpawnError, Wakeup};

type Log = Rc<RefCell<Vec<String>>>;

fn log(l: &Log, s: impl Into<String>) {
    l.borrow_mut().push(s.into());
}

#[test]
fn spawn_yield_order_is_fifo_and_new_threads_wait_for_creator() {
    let s = Session::real();
    let l: Log = Rc::default();
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let l2 = l.clone();
        ids.push(
            sc::spawn_closure(
                move || {
                    for i in 0..3 {
                        log(&l2, format!("{name}{i}"));
                        sc::yield_now();
                    }
                },
                name,
                0,
                true,
            )
            .unwrap(),
        );
    }
    log(&l, "main-after-spawn"); // nobody ran yet
    assert_eq!(l.borrow().len(), 1);
    sc::yield_now();
    log(&l, "main1");
    for id in ids {
        sc::join(id).unwrap();
    }
    let got = l.borrow().join(" ");
    assert_eq!(
        got, "main-after-spawn a0 b0 c0 main1 a1 b1 c1 a2 b2 c2",
        "round robin order"
    );
    s.finish();
}

extern "C" fn c_entry(arg: *mut c_void) {
    // SAFETY: the test passes a pointer to a live Cell<u32>.
    let cell = unsafe { &*(arg as *const Cell<u32>) };
    cell.set(cell.get() + 1);
}

fn rust_entry(arg: usize) {
    // SAFETY: the test passes the address of a live Cell<u32>.
    let cell = unsafe { &*(arg as *const Cell<u32>) };
    cell.set(cell.get() + 10);
    sc::exit(); // explicit exit mid-function
}

#[test]
fn entries_exit_and_join_errors() {
    let s = Session::real();
    let hits = Box::leak(Box::new(Cell::new(0u32)));
    let a = sc::spawn(
        c_entry,
        hits as *const Cell<u32> as *mut c_void,
        "c",
        0,
        true,
    )
    .unwrap();
    let b = sc::spawn_fn(
        rust_entry,
        hits as *const Cell<u32> as usize,
        "rust",
        0,
        true,
    )
    .unwrap();
    let detached = sc::spawn_closure(|| {}, "detached", 0, false).unwrap();
    assert_eq!(sc::join(detached), Err(JoinError::NotJoinable));
    assert_eq!(sc::join(sc::current()), Err(JoinError::Deadlock));
    sc::join(a).unwrap();
    sc::join(b).unwrap();
    assert_eq!(hits.get(), 11);
    assert_eq!(sc::join(a), Err(JoinError::NoSuchThread));
    // Detached thread has run and been reaped by now.
    sc::yield_now();
    assert_eq!(sc::join(detached), Err(JoinError::NoSuchThread));
    assert_eq!(sc::thread_name(detached), None);

    // A joiner blocks until the target exits; a second joiner is refused.
    let t = sc::spawn_closure(|| sc::sleep_for(2_000_000), "sleeper", 0, true).unwrap();
    let joined = Rc::new(Cell::new(None));
    let j = joined.clone();
    let j2 = sc::spawn_closure(move || j.set(Some(sc::join(t))), "j2", 0, true).unwrap();
    sc::yield_now(); // FIFO: the sleeper blocks, then j2 blocks joining it
    assert_eq!(joined.get(), None);
    assert_eq!(sc::join(t), Err(JoinError::AlreadyJoining));
    sc::join(j2).unwrap();
    assert_eq!(joined.get(), Some(Ok(())));
    assert_eq!(
        sc::spawn_closure(|| {}, "tiny", 100, false),
        Err(SpawnError::StackTooSmall)
    );
    let st = sc::stats().unwrap();
    assert_eq!(st.live_threads, 1);
    s.finish();
}

#[test]
fn per_thread_slots_are_private() {
    let s = Session::real();
    sc::set_errno(7);
    sc::set_curlwp(0x1000 as *mut c_void);
    sc::set_user_data(42);
    let mut ids = Vec::new();
    for i in 0..4usize {
        ids.push(
            sc::spawn_closure(
                move || {
                    assert_eq!(sc::errno(), 0);
                    assert!(sc::curlwp().is_null());
                    sc::set_errno(i as i32 + 100);
                    sc::set_curlwp((0x2000 + i) as *mut c_void);
                    sc::set_user_data(i);
                    for _ in 0..5 {
                        sc::yield_now();
                        assert_eq!(sc::errno(), i as i32 + 100);
                        assert_eq!(sc::curlwp() as usize, 0x2000 + i);
                        assert_eq!(sc::user_data(), i);
                    }
                },
                &format!("slot-{i}"),
                0,
                true,
            )
            .unwrap(),
        );
    }
    sc::yield_now();
    assert_eq!(sc::user_data_of(ids[2]), Some(2));
    assert_eq!(sc::thread_name(ids[3]).unwrap().as_str(), "slot-3");
    for id in ids {
        sc::join(id).unwrap();
    }
    assert_eq!(sc::errno(), 7);
    assert_eq!(sc::curlwp() as usize, 0x1000);
    assert_eq!(sc::user_data(), 42);
    assert_eq!(sc::thread_name(sc::current()).unwrap().as_str(), "main");
    // Names are copied and truncated at a char boundary within 32 bytes.
    let long = "ééééééééééééééééé"; // 34 bytes
    assert!(sc::set_thread_name(sc::current(), long));
    let n = sc::thread_name(sc::current()).unwrap();
    assert_eq!(n.as_str().len(), 32);
    assert!(long.starts_with(n.as_str()));
    s.finish();
}

#[test]
fn sleeps_never_return_early_and_wake_in_deadline_order() {
    let s = Session::real();
    for d in [0u64, 1, 1_000, 50_000, 1_900_000, 3_000_000] {
        let start = sc::now_ns();
        let deadline = start + d;
        sc::sleep_until(deadline);
        assert!(sc::now_ns() >= deadline, "woke early for {d} ns");
    }
    // Several sleepers wake in deadline order, not spawn order.
    let order = Rc::new(RefCell::new(Vec::new()));
    let base = sc::now_ns() + 2_000_000;
    let mut ids = Vec::new();
    for (i, off) in [5u64, 1, 4, 2, 3].into_iter().enumerate() {
        let o = order.clone();
        ids.push(
            sc::spawn_closure(
                move || {
                    let d = base + off * 300_000;
                    sc::sleep_until(d);
                    assert!(sc::now_ns() >= d);
                    o.borrow_mut().push(i);
                },
                "sleeper",
                0,
                true,
            )
            .unwrap(),
        );
    }
    for id in ids {
        sc::join(id).unwrap();
    }
    assert_eq!(*order.borrow(), vec![1, 3, 4, 2, 0]);
    // Sleeping with nothing else runnable idles (few idle calls, no spin).
    let idles_before = s.platform.idle_calls.load(Ordering::Relaxed);
    sc::sleep_for(20_000_000);
    let idles = s.platform.idle_calls.load(Ordering::Relaxed) - idles_before;
    assert!((1..=3).contains(&idles), "{idles} idle calls for one sleep");
    s.finish();
}

#[test]
fn busy_yielders_do_not_starve_sleepers() {
    let s = Session::real();
    let flag = Rc::new(Cell::new(false));
    let f1 = flag.clone();
    let sleeper = sc::spawn_closure(
        move || {
            sc::sleep_for(1_000_000);
            f1.set(true);
        },
        "sleeper",
        0,
        true,
    )
    .unwrap();
    let f2 = flag.clone();
    let spinner = sc::spawn_closure(
        move || {
            while !f2.get() {
                sc::yield_now();
            }
        },
        "spinner",
        0,
        true,
    )
    .unwrap();
    while !flag.get() {
        sc::yield_now();
    }
    sc::join(sleeper).unwrap();
    sc::join(spinner).unwrap();
    s.finish();
}

#[test]
fn park_wake_permits_and_external_events() {
    let s = Session::real();
    // A permit left by wake() makes the next park return at once.
    let me = sc::current();
    assert!(sc::wake(me));
    assert_eq!(sc::park(None), Wakeup::Notified);
    // Timed park times out, never early.
    let d = sc::now_ns() + 500_000;
    assert_eq!(sc::park(Some(d)), Wakeup::TimedOut);
    assert!(sc::now_ns() >= d);
    // Park with an expired deadline: timed out immediately.
    assert_eq!(sc::park(Some(0)), Wakeup::TimedOut);

    // A green thread wakes the parked main thread.
    let t = sc::spawn_closure(move || assert!(sc::wake(me)), "waker", 0, true).unwrap();
    assert_eq!(sc::park(None), Wakeup::Notified);
    sc::join(t).unwrap();

    // wake() does not disturb a sleeper.
    let slept = sc::spawn_closure(
        || {
            let d = sc::now_ns() + 2_000_000;
            sc::sleep_until(d);
            assert!(sc::now_ns() >= d);
        },
        "sleeper",
        0,
        true,
    )
    .unwrap();
    sc::yield_now();
    assert!(sc::wake(slept));
    sc::join(slept).unwrap();

    // Another host thread completes "I/O" and posts this thread's token;
    // the scheduler idles until then and wakes us via poll_events.
    let events = s.platform.events.clone();
    let token = me.as_raw();
    let host = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        events.post(token);
    });
    let t0 = sc::now_ns();
    assert_eq!(sc::park(None), Wakeup::Notified);
    assert!(sc::now_ns() - t0 >= 15_000_000);
    host.join().unwrap();
    // Stale/unknown tokens are ignored.
    s.platform.events.post(u64::MAX);
    s.platform.events.post(12345 << 32);
    sc::yield_now();
    assert!(sc::wake(me)); // leave a permit...
    sc::park(None); // ...and consume it, so shutdown sees a clean state
    s.finish();
}

#[test]
fn thousands_of_threads_created_and_reaped() {
    let s = Session::real();
    let counter = Rc::new(Cell::new(0usize));
    for round in 0..5 {
        for i in 0..1000 {
            let c = counter.clone();
            sc::spawn_closure(
                move || {
                    for _ in 0..(i % 3) {
                        sc::yield_now();
                    }
                    c.set(c.get() + 1);
                },
                "detached",
                16 * 1024,
                false,
            )
            .unwrap();
        }
        while sc::stats().unwrap().live_threads > 1 {
            sc::yield_now();
        }
        assert_eq!(counter.get(), (round + 1) * 1000);
    }
    // Joinable ones, joined in reverse order.
    let ids: Vec<_> = (0..2000)
        .map(|_| sc::spawn_closure(sc::yield_now, "j", 0, true).unwrap())
        .collect();
    for id in ids.into_iter().rev() {
        sc::join(id).unwrap();
    }
    let st = sc::stats().unwrap();
    assert_eq!(st.live_threads, 1);
    assert_eq!(st.spawned, 7000);
    assert_eq!(st.exited, 7000);
    assert!(st.cached_stacks <= 16);
    assert_eq!(
        s.platform.stacks_live.load(Ordering::Relaxed),
        st.cached_stacks
    );
    s.finish();
}

#[test]
fn shutdown_rules() {
    let s = Session::real();
    let t = sc::spawn_closure(|| sc::sleep_for(1_000_000), "t", 0, true).unwrap();
    sc::yield_now();
    assert_eq!(sc::shutdown(), Err(ShutdownError::ThreadsAlive(1)));
    let r = Rc::new(Cell::new(None));
    let r2 = r.clone();
    let u = sc::spawn_closure(move || r2.set(Some(sc::shutdown())), "u", 0, true).unwrap();
    sc::join(u).unwrap();
    assert_eq!(r.get(), Some(Err(ShutdownError::NotInitThread)));
    sc::join(t).unwrap();
    // An unjoined zombie does not block shutdown.
    let _z = sc::spawn_closure(|| {}, "zombie", 0, true).unwrap();
    sc::yield_now();
    s.finish_then(|| {
        assert!(!sc::is_initialized());
        assert_eq!(sc::shutdown(), Err(ShutdownError::NotInitialized));
        assert_eq!(
            sc::spawn_closure(|| {}, "x", 0, false),
            Err(SpawnError::NotInitialized)
        );
        assert_eq!(sc::try_current(), None);
        assert!(sc::curlwp().is_null());
        sc::yield_now(); // no-op without a scheduler
    });
}

#[test]
fn switch_hook_and_trace() {
    use std::sync::atomic::AtomicUsize;
    static HOOK_CALLS: AtomicUsize = AtomicUsize::new(0);
    fn hook(_e: sc::SwitchEvent, to_user: usize) {
        if to_user == 77 {
            HOOK_CALLS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let s = Session::real();
    sc::set_tracing(true);
    sc::set_switch_hook(Some(hook));
    let main = sc::current();
    let t = sc::spawn_closure(
        || {
            sc::set_user_data(77);
            sc::yield_now();
        },
        "t",
        0,
        true,
    )
    .unwrap();
    sc::yield_now();
    sc::join(t).unwrap();
    sc::set_switch_hook(None);
    let trace = sc::take_trace();
    assert_eq!(trace.len(), 4, "{trace:?}");
    assert_eq!(trace[0].from, main);
    assert_eq!(trace[0].to, t);
    assert_eq!(trace[1].to, main);
    assert_eq!(trace[2].to, t);
    assert_eq!(trace[3].to, main);
    assert_eq!(HOOK_CALLS.load(Ordering::Relaxed), 1);
    s.finish();
}

#[test]
fn yield_round_trip_cost() {
    let s = Session::real();
    let iters = 1_000_000u64;
    let ns = sc::bench_yield_pingpong(iters).unwrap();
    let per_switch = ns as f64 / (2 * iters) as f64;
    eprintln!("yield ping-pong: {per_switch:.1} ns per switch ({iters} round trips)");
    assert!(per_switch < 2_000.0);
    s.finish();
}

#[test]
fn stale_timer_of_a_reaped_thread_never_fires_for_the_slot_reuser() {
    let s = Session::real();
    // A parks with a short deadline, is woken early (its timer entry goes
    // stale) and exits; B reuses the slot and parks with a long deadline.
    let a = sc::spawn_closure(
        || {
            assert_eq!(sc::park(Some(sc::now_ns() + 2_000_000)), Wakeup::Notified);
        },
        "a",
        0,
        true,
    )
    .unwrap();
    sc::yield_now();
    assert!(sc::wake(a));
    sc::join(a).unwrap();
    let result = Rc::new(Cell::new(None));
    let r = result.clone();
    let b = sc::spawn_closure(
        move || {
            let d = sc::now_ns() + 50_000_000;
            let w = sc::park(Some(d));
            r.set(Some((w, sc::now_ns() >= d)));
        },
        "b",
        0,
        true,
    )
    .unwrap();
    assert_eq!(a.as_raw() as u32, b.as_raw() as u32, "slot reused");
    sc::yield_now();
    sc::sleep_for(10_000_000); // well past A's stale deadline
    assert_eq!(result.get(), None, "B woke from A's stale timer");
    assert!(sc::wake(b));
    sc::join(b).unwrap();
    assert_eq!(result.get(), Some((Wakeup::Notified, false)));
    s.finish();
}
