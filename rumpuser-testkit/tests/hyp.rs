//! The typed client against the POSIX flavour with the model kernel:
//! every handle method reaches its hypercall and reports what it returned
//! (owners, holds, waiters, timeouts, thread results), and a cv refuses a
//! mutex of another table. One test function: `rumpuser_init` runs once
//! per process.

use rumpuser_core::abi::*;
use rumpuser_posix::rumpuser_exports::API;
use rumpuser_testkit::conformance::{kthread, model};
use rumpuser_testkit::Hyp;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// NetBSD's `ETIMEDOUT`.
const ETIMEDOUT: i32 = 60;

/// Polls `cond` (sleeping through the library, which releases the CPU)
/// for up to five seconds.
fn eventually(hyp: Hyp, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        hyp.sleep_ns(1_000_000);
    }
    cond()
}

#[test]
fn typed_client_drives_every_object() {
    let hyp = Hyp::new(&API);
    assert_ne!(
        hyp.init_version::<model::ModelKernel>(RUMPUSER_VERSION + 1),
        0,
        "a wrong version is refused"
    );
    assert_eq!(hyp.init::<model::ModelKernel>(), 0);
    let m = model::install(&API, 2);
    m.enter();
    let me = m.current().expect("the test thread has a model lwp");

    // Mutex: owner, try_enter against another holder.
    let mtx = hyp.mutex(RUMPUSER_MTX_KMUTEX);
    assert!(mtx.owner().is_null(), "a free mutex has no owner");
    mtx.enter();
    assert_eq!(mtx.owner(), me.as_lwp(), "the holder is the owner");
    mtx.exit();
    assert!(mtx.try_enter(), "a free mutex is taken by try_enter");
    mtx.exit();
    let (held, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (h2, r2) = (held.clone(), release.clone());
    let t = kthread::spawn(&API, c"holder", true, move || {
        mtx.enter();
        h2.store(true, Ordering::Release);
        while !r2.load(Ordering::Acquire) {
            hyp.sleep_ns(1_000_000);
        }
        mtx.exit();
    })
    .expect("thread_create")
    .expect("joinable");
    assert!(eventually(hyp, || held.load(Ordering::Acquire)));
    assert!(!mtx.try_enter(), "try_enter took a mutex another lwp holds");
    assert!(!mtx.owner().is_null() && mtx.owner() != me.as_lwp());
    release.store(true, Ordering::Release);
    assert_eq!(t.join(), 0);

    // Rwlock: holds as rw_held reports them, upgrade and downgrade.
    let rw = hyp.rwlock();
    assert!(!rw.held(RUMPUSER_RW_READER) && !rw.held(RUMPUSER_RW_WRITER));
    rw.enter(RUMPUSER_RW_READER);
    assert!(rw.held(RUMPUSER_RW_READER) && !rw.held(RUMPUSER_RW_WRITER));
    assert!(rw.try_upgrade(), "a sole reader upgrades");
    assert!(rw.held(RUMPUSER_RW_WRITER) && !rw.held(RUMPUSER_RW_READER));
    rw.downgrade();
    assert!(rw.held(RUMPUSER_RW_READER) && !rw.held(RUMPUSER_RW_WRITER));
    rw.exit();
    assert!(rw.try_enter(RUMPUSER_RW_WRITER));
    assert!(rw.held(RUMPUSER_RW_WRITER));
    rw.exit();
    assert!(!rw.held(RUMPUSER_RW_READER) && !rw.held(RUMPUSER_RW_WRITER));

    // Cv: a timed wait times out no earlier than asked; waiters are seen
    // and woken.
    let cv = hyp.cv();
    assert!(!cv.has_waiters());
    mtx.enter();
    let t0 = hyp.now_ns();
    assert_eq!(cv.timedwait(mtx, 0, 2_000_000), ETIMEDOUT);
    assert!(hyp.now_ns() - t0 >= 2_000_000, "the timed wait ended early");
    mtx.exit();
    let woken = Arc::new(AtomicBool::new(false));
    let w2 = woken.clone();
    let t = kthread::spawn(&API, c"waiter", true, move || {
        mtx.enter();
        while !w2.load(Ordering::Acquire) {
            cv.wait(mtx);
        }
        mtx.exit();
    })
    .expect("thread_create")
    .expect("joinable");
    assert!(
        eventually(hyp, || cv.has_waiters()),
        "the waiter is not seen"
    );
    mtx.enter();
    woken.store(true, Ordering::Release);
    cv.signal();
    mtx.exit();
    assert_eq!(t.join(), 0);
    assert!(!cv.has_waiters());

    // A cv of another table refuses this mutex before any call.
    let other = Hyp::new(Box::leak(Box::new(API)));
    let cv2 = other.cv();
    let r = std::panic::catch_unwind(|| cv2.wait(mtx));
    assert!(r.is_err(), "a cv waited with a mutex of another table");

    // Plain threads: the closure runs, joinable or not.
    let ran = Arc::new(AtomicU32::new(0));
    let r1 = ran.clone();
    let t = hyp
        .spawn(c"plain", true, move || {
            r1.fetch_add(1, Ordering::AcqRel);
        })
        .expect("thread_create")
        .expect("joinable");
    assert_eq!(t.join(), 0);
    assert_eq!(ran.load(Ordering::Acquire), 1);
    let r1 = ran.clone();
    let none = hyp
        .spawn(c"detached", false, move || {
            r1.fetch_add(1, Ordering::AcqRel);
        })
        .expect("thread_create");
    assert!(none.is_none(), "a detached thread has no handle");
    assert!(eventually(hyp, || ran.load(Ordering::Acquire) == 2));

    // SAFETY: all unheld, without waiters, and not used again.
    unsafe {
        cv2.destroy();
        cv.destroy();
        rw.destroy();
        mtx.destroy();
    }
    m.leave();
    assert!(
        m.violations_since(0).is_empty(),
        "{:?}",
        m.violations_since(0)
    );
}
