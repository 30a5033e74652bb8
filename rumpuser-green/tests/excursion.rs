//! A kernel thread that blocks in a host call between
//! `rumpuser_component_unschedule` and `rumpuser_component_schedule` (as
//! the shmif driver's `read(2)` does) runs that stretch on a helper host
//! thread: the other green threads keep running, and the blocked thread
//! comes back to the green host thread afterwards.

use rumpuser_core::abi::RUMPUSER_CLOCK_RELWALL;
use rumpuser_core::conformance::{kthread, model};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Api = &'static rumpuser_core::api::Api;

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: a two-element out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn write_byte(fd: i32, b: u8) {
    // SAFETY: one byte from a local to our pipe.
    assert_eq!(unsafe { libc::write(fd, (&b as *const u8).cast(), 1) }, 1);
}

/// In a kernel thread: read one byte from `fd`, blocking in the host with
/// the CPU released, as a component does.
fn component_read(api: Api, fd: i32) -> u8 {
    // SAFETY: plain hypercalls; the byte is a local.
    unsafe {
        let cookie = (api.component_unschedule)();
        let mut b = 0u8;
        let n = libc::read(fd, (&mut b as *mut u8).cast(), 1);
        (api.component_schedule)(cookie);
        assert_eq!(n, 1);
        b
    }
}

fn sleep_ms(api: Api, ms: i64) {
    // SAFETY: plain hypercall.
    unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, ms * 1_000_000) };
}

#[test]
fn a_thread_blocked_in_a_component_does_not_stop_the_others() {
    let api: Api = &rumpuser_green::rumpuser_exports::API;
    assert_eq!(
        rumpuser_core::conformance::hyp::Hyp::new(api).init::<model::ModelKernel>(),
        0
    );
    let m = model::install(api, 1);
    m.enter();

    // One blocker: only this (main) green thread's write can release it,
    // so the write happening at all shows the main thread kept running.
    // A watchdog writes 'W' after 10 s so that a broken build fails
    // instead of hanging.
    let (r, w) = pipe();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(10));
        write_byte(w, b'W');
    });
    let got = Arc::new(AtomicU8::new(0));
    let g = got.clone();
    let t = kthread::spawn(api, c"blocker", true, move || {
        g.store(component_read(api, r), Ordering::SeqCst);
    })
    .expect("thread_create")
    .expect("joinable");
    let start = Instant::now();
    sleep_ms(api, 20);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "the main thread was stopped"
    );
    assert_eq!(got.load(Ordering::SeqCst), 0, "the blocker did not block");
    write_byte(w, b'M');
    assert_eq!(t.join(), 0);
    assert_eq!(got.load(Ordering::SeqCst), b'M', "released by the watchdog");

    // Eight blockers at once, released in reverse order; each gets its own
    // helper, and each comes back with its own byte.
    let pipes: Vec<(i32, i32)> = (0..8).map(|_| pipe()).collect();
    let results: Arc<Vec<AtomicU8>> = Arc::new((0..8).map(|_| AtomicU8::new(0)).collect());
    let threads: Vec<_> = pipes
        .iter()
        .enumerate()
        .map(|(i, &(r, _))| {
            let res = results.clone();
            kthread::spawn(api, c"blocker8", true, move || {
                res[i].store(component_read(api, r), Ordering::SeqCst);
            })
            .unwrap()
            .unwrap()
        })
        .collect();
    sleep_ms(api, 20);
    for (i, &(_, w)) in pipes.iter().enumerate().rev() {
        assert!(results[i].load(Ordering::SeqCst) == 0);
        write_byte(w, b'a' + i as u8);
        // Each returns alone: the ones not yet written stay blocked.
        let deadline = Instant::now() + Duration::from_secs(5);
        while results[i].load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            sleep_ms(api, 1);
        }
        assert_eq!(results[i].load(Ordering::SeqCst), b'a' + i as u8);
        assert!(results[..i].iter().all(|x| x.load(Ordering::SeqCst) == 0));
    }
    for t in threads {
        assert_eq!(t.join(), 0);
    }

    // Many short excursions (the byte is already there): each hand-over
    // and return, including a return that arrives before the green host
    // has found another thread to run.
    let (r, w) = pipe();
    let n = 2000u32;
    for _ in 0..n {
        write_byte(w, b'x');
    }
    let polled_before = rumpuser_green::host::excursion::polled_returns();
    let done = Arc::new(AtomicU32::new(0));
    let d = done.clone();
    let t = kthread::spawn(api, c"short", true, move || {
        for _ in 0..n {
            assert_eq!(component_read(api, r), b'x');
            d.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap()
    .unwrap();
    assert_eq!(t.join(), 0);
    assert_eq!(done.load(Ordering::SeqCst), n);
    // Nothing else was runnable: the green host idled during each one, and
    // polled for the return instead of sleeping (it is back in a few µs).
    // (Not under an emulator, `RUMPUSER_TEST_RUNNER`: there a return can
    // take longer than the whole 25 µs poll every time; seen once under
    // qemu-aarch64.)
    let polled = rumpuser_green::host::excursion::polled_returns() - polled_before;
    let emulated = std::env::var_os("RUMPUSER_TEST_RUNNER").is_some_and(|v| !v.is_empty());
    assert!(
        polled > 0 || emulated,
        "no return was caught by the idle poll"
    );

    // Four threads making short excursions at once while this thread
    // keeps yielding the CPU: returns arrive in any order and while the
    // green host is busy, idle or inside the trampoline.
    let counts: Arc<Vec<AtomicU32>> = Arc::new((0..4).map(|_| AtomicU32::new(0)).collect());
    let per = 500u32;
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let (r, w) = pipe();
            for _ in 0..per {
                write_byte(w, b'0' + i as u8);
            }
            let c = counts.clone();
            kthread::spawn(api, c"short4", true, move || {
                for _ in 0..per {
                    assert_eq!(component_read(api, r), b'0' + i as u8);
                    c[i].fetch_add(1, Ordering::SeqCst);
                }
            })
            .unwrap()
            .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.iter().any(|c| c.load(Ordering::SeqCst) < per) && Instant::now() < deadline {
        sleep_ms(api, 0);
    }
    for t in threads {
        assert_eq!(t.join(), 0);
    }
    assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == per));
    assert_eq!(m.violation_count(), 0, "model violations");
    m.leave();
}
