//! Host threads other than the one that called `rumpuser_init` enter the
//! green kernel, and the green world keeps running while every host thread
//! is outside it (the runner takes the token).
//!
//! Every test here runs on a thread of the test harness, so they are host
//! threads of one green world at once; the first to call `rumpuser_init`
//! is the primary, and it ends when its test does (which retires it).
//! The model kernel (the conformance kit's) provides virtual CPUs and lwps
//! exactly as the real kernel builds them.

use rumpuser_core::abi::{RUMPUSER_CLOCK_RELWALL, RUMPUSER_MTX_KMUTEX, RUMPUSER_MTX_SPIN};
use rumpuser_core::api::Api;
use rumpuser_core::conformance::{kthread, model};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

fn api() -> &'static Api {
    &rumpuser_green::rumpuser_exports::API
}

/// Initialise once (one virtual CPU, as green always has) and return the model.
fn setup() -> &'static model::Model {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let rc = rumpuser_core::conformance::hyp::Hyp::new(api()).init::<model::ModelKernel>();
        assert_eq!(rc, 0);
        model::install(api(), 1);
    });
    model::model()
}

/// A hypervisor mutex shared between threads.
#[derive(Clone, Copy)]
struct Obj(*mut c_void);
// SAFETY: hypervisor lock objects are made to be shared between threads.
unsafe impl Send for Obj {}
// SAFETY: as above.
unsafe impl Sync for Obj {}

impl Obj {
    /// The object as the C ABI takes it (a method, so that closures
    /// capture the whole `Obj`, which is `Send`).
    fn get<T>(&self) -> *mut T {
        self.0.cast()
    }
}

fn mutex(flags: i32) -> Obj {
    let mut m = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api().mutex_init)(&mut m, flags) };
    Obj(m.cast())
}

fn cv() -> Obj {
    let mut c = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api().cv_init)(&mut c) };
    Obj(c.cast())
}

/// `rumpuser_clock_sleep` for `ms` (the caller holds a CPU).
fn sleep_ms(ms: u64) {
    // SAFETY: plain hypercall.
    unsafe { (api().clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, (ms * 1_000_000) as _) };
}

/// Kernel entry and exit around `f` for the calling host thread (a
/// temporary lwp and a CPU, as `rump_schedule` gives).
fn in_kernel<R>(f: impl FnOnce() -> R) -> R {
    let m = model::model();
    m.enter();
    let r = f();
    m.leave();
    r
}

#[test]
fn host_threads_share_a_kernel_mutex() {
    setup();
    const THREADS: usize = 4;
    const ROUNDS: u64 = 2000;
    let m = mutex(RUMPUSER_MTX_KMUTEX);
    // Read and written non-atomically (load + store) under the mutex: a
    // lost update shows mutual exclusion failing across host threads.
    let count = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..THREADS)
        .map(|_| {
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    in_kernel(|| {
                        // SAFETY: a KMUTEX made above; entered and left by
                        // this thread while it holds a CPU.
                        unsafe { (api().mutex_enter)(m.get()) };
                        let v = count.load(Ordering::Relaxed);
                        if i % 64 == 0 {
                            // Give the others a chance to find it taken.
                            std::thread::yield_now();
                        }
                        count.store(v + 1, Ordering::Relaxed);
                        // SAFETY: held by this thread.
                        unsafe { (api().mutex_exit)(m.get()) };
                    });
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), THREADS as u64 * ROUNDS);
}

const ALONE: &str = "RUMPUSER_GREEN_HOSTS_TEST_ALONE";

/// Runs the test `name` of this binary in a child process, alone (its
/// timing must not depend on the other tests' load).
fn alone(name: &str) {
    if std::env::var_os(ALONE).is_some() {
        return;
    }
    let out = rumpuser_host::testing::current_exe_command()
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(ALONE, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn green_threads_run_while_every_host_thread_is_outside() {
    if std::env::var_os(ALONE).is_none() {
        return alone("green_threads_run_while_every_host_thread_is_outside");
    }
    let m = setup();
    let ticks = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (ticks, stop) = (Arc::clone(&ticks), Arc::clone(&stop));
        in_kernel(|| {
            kthread::spawn(api(), c"ticker", true, move || {
                while !stop.load(Ordering::Relaxed) {
                    sleep_ms(1);
                    ticks.fetch_add(1, Ordering::Relaxed);
                }
            })
            .expect("thread_create")
            .expect("joinable")
        })
    };
    // Outside the kernel (a host sleep, as rump_server's sem_wait): the
    // ticker must keep going.
    let before = ticks.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200));
    let during = ticks.load(Ordering::Relaxed) - before;
    assert!(
        during >= 20,
        "only {during} ticks of 1 ms in 200 ms outside the kernel"
    );
    stop.store(true, Ordering::Relaxed);
    let r = in_kernel(|| t.join());
    assert_eq!(r, 0);
    assert_eq!(m.violations_since(0), Vec::<String>::new());
}

#[test]
fn cv_ping_pong_between_a_host_thread_and_a_green_thread() {
    setup();
    const ROUNDS: u64 = 500;
    let mx = mutex(RUMPUSER_MTX_KMUTEX);
    let c = cv();
    // 0: the host thread's turn, 1: the green thread's.
    let turn = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let green = {
        let (turn, done) = (Arc::clone(&turn), Arc::clone(&done));
        in_kernel(|| {
            kthread::spawn(api(), c"pong", true, move || {
                for _ in 0..ROUNDS {
                    // SAFETY: the KMUTEX and cv made above; this thread
                    // holds a CPU and the mutex around the waits.
                    unsafe {
                        (api().mutex_enter)(mx.get());
                        while turn.load(Ordering::Relaxed) != 1 {
                            (api().cv_wait)(c.get(), mx.get());
                        }
                        turn.store(0, Ordering::Relaxed);
                        done.fetch_add(1, Ordering::Relaxed);
                        (api().cv_broadcast)(c.get());
                        (api().mutex_exit)(mx.get());
                    }
                }
            })
            .expect("thread_create")
            .expect("joinable")
        })
    };
    let host = std::thread::spawn(move || {
        for _ in 0..ROUNDS {
            in_kernel(|| {
                // SAFETY: as above, for this host thread.
                unsafe {
                    (api().mutex_enter)(mx.get());
                    while turn.load(Ordering::Relaxed) != 0 {
                        (api().cv_wait)(c.get(), mx.get());
                    }
                    turn.store(1, Ordering::Relaxed);
                    (api().cv_broadcast)(c.get());
                    (api().mutex_exit)(mx.get());
                }
            });
        }
    });
    host.join().unwrap();
    assert_eq!(in_kernel(|| green.join()), 0);
    assert_eq!(done.load(Ordering::Relaxed), ROUNDS);
}

#[test]
fn many_short_lived_host_threads_each_see_their_own_curlwp() {
    setup();
    let spin = mutex(RUMPUSER_MTX_SPIN);
    let seen_wrong = Arc::new(AtomicU64::new(0));
    for wave in 0..25 {
        let hs: Vec<_> = (0..8)
            .map(|_| {
                let seen_wrong = Arc::clone(&seen_wrong);
                std::thread::spawn(move || {
                    in_kernel(|| {
                        let me = model::model().current().map(|l| l as *const _);
                        for _ in 0..20 {
                            // SAFETY: a SPIN mutex made above, taken
                            // without releasing the CPU.
                            unsafe {
                                (api().mutex_enter_nowrap)(spin.get());
                                (api().mutex_exit)(spin.get());
                            }
                            sleep_ms(0);
                            let now = model::model().current().map(|l| l as *const _);
                            if now != me || now.is_none() {
                                seen_wrong.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(seen_wrong.load(Ordering::Relaxed), 0, "wave {wave}");
    }
}

#[test]
fn a_host_thread_waits_with_a_timeout_while_the_others_are_outside() {
    setup();
    let mx = mutex(RUMPUSER_MTX_KMUTEX);
    let c = cv();
    let h = std::thread::spawn(move || {
        in_kernel(|| {
            let t0 = Instant::now();
            // SAFETY: the KMUTEX and cv made above; held around the wait.
            let r = unsafe {
                (api().mutex_enter)(mx.get());
                let r = (api().cv_timedwait)(c.get(), mx.get(), 0, 30_000_000);
                (api().mutex_exit)(mx.get());
                r
            };
            (r, t0.elapsed())
        })
    });
    let (r, waited) = h.join().unwrap();
    assert_ne!(r, 0, "nobody signalled, so the wait must time out");
    assert!(
        waited >= Duration::from_millis(30),
        "returned early: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "took {waited:?}");
}

/// Data only the token's holder may touch (checked by the sum below: a
/// lost update means two host threads ran green code at once).
struct TokenData(std::cell::UnsafeCell<u64>);
// SAFETY: touched only with the token held (the test's claim).
unsafe impl Sync for TokenData {}
static TOKEN_DATA: TokenData = TokenData(std::cell::UnsafeCell::new(0));

fn bump_with_token() {
    let _entered = rumpuser_green::host::token::enter();
    // SAFETY: the token is held, so no other host thread touches it.
    unsafe {
        let p = TOKEN_DATA.0.get();
        let v = std::ptr::read_volatile(p);
        std::hint::spin_loop();
        std::ptr::write_volatile(p, v + 1);
    }
}

#[test]
fn the_token_excludes_every_other_host_thread() {
    if std::env::var_os(ALONE).is_none() {
        return alone("the_token_excludes_every_other_host_thread");
    }
    setup();
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 20_000;
    // A green thread bumps too, run by whichever host holds the token.
    let stop = Arc::new(AtomicBool::new(false));
    let green_bumps = Arc::new(AtomicU64::new(0));
    let t = {
        let (stop, green_bumps) = (Arc::clone(&stop), Arc::clone(&green_bumps));
        in_kernel(|| {
            kthread::spawn(api(), c"bumper", true, move || {
                while !stop.load(Ordering::Relaxed) {
                    bump_with_token();
                    green_bumps.fetch_add(1, Ordering::Relaxed);
                    sleep_ms(0);
                }
            })
            .expect("thread_create")
            .expect("joinable")
        })
    };
    let hs: Vec<_> = (0..THREADS)
        .map(|i| {
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    bump_with_token();
                    if r % 1000 == i {
                        // Outside for a while, so the runner takes over.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert_eq!(in_kernel(|| t.join()), 0);
    let want = THREADS * ROUNDS + green_bumps.load(Ordering::Relaxed);
    let _entered = rumpuser_green::host::token::enter();
    // SAFETY: the token is held.
    let got = unsafe { std::ptr::read_volatile(TOKEN_DATA.0.get()) };
    assert_eq!(got, want, "lost updates under the token");
}

#[test]
fn arrivals_that_take_the_token_themselves_leave_no_stale_admission() {
    if std::env::var_os(ALONE).is_none() {
        return alone("arrivals_that_take_the_token_themselves_leave_no_stale_admission");
    }
    setup();
    // Many host threads enter briefly and step outside for a little longer
    // than a waiter's look, so that waiting hosts take the token from an
    // owner that is outside (their queued arrival then must admit nothing
    // when it is read later, or a host would be handed the token while it
    // runs outside, and two would run green code at once).
    const THREADS: u64 = 12;
    const ROUNDS: u64 = 3000;
    let m = mutex(RUMPUSER_MTX_SPIN);
    let hs: Vec<_> = (0..THREADS)
        .map(|i| {
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    in_kernel(|| {
                        // SAFETY: a SPIN mutex made above, taken without
                        // releasing the CPU, as scheduler.c takes its own.
                        unsafe {
                            (api().mutex_enter_nowrap)(m.get());
                            (api().mutex_exit)(m.get());
                        }
                    });
                    bump_with_token();
                    if (r + i) % 7 == 0 {
                        std::thread::sleep(Duration::from_micros(150));
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
}
