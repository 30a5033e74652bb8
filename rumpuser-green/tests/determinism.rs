//! Deterministic mode through the C ABI: the same seed gives the same
//! schedule, run after run. Each run is a fresh process (this test binary
//! re-executed) because a process can initialise the library once; the
//! workload is kernel-style threads contending on a mutex and cv with
//! timed sleeps, and the trace is printed by the library at exit
//! (`RUMPUSER_GREEN_TRACE=1`).

use rumpuser_core::conformance::{kthread, model};
use std::sync::atomic::{AtomicU64, Ordering};

const WORKLOAD_ENV: &str = "RUMPUSER_GREEN_DETERMINISM_WORKLOAD";

fn workload() {
    let api = &rumpuser_green::rumpuser_exports::API;
    assert_eq!(
        rumpuser_core::conformance::hyp::Hyp::new(api).init::<model::ModelKernel>(),
        0
    );
    let m = model::install(api, 1);
    m.enter();
    let mut mtx = std::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api.mutex_init)(&mut mtx, rumpuser_core::abi::RUMPUSER_MTX_KMUTEX) };
    let mtx = mtx as usize;
    static SUM: AtomicU64 = AtomicU64::new(0);
    let mut hs = Vec::new();
    for i in 0..6u64 {
        let h = kthread::spawn(api, c"det", true, move || {
            for j in 0..20u64 {
                // SAFETY: live mutex; sleeps release the CPU as the kernel would.
                unsafe {
                    (api.mutex_enter)(mtx as *mut _);
                    SUM.fetch_add(i * 100 + j, Ordering::Relaxed);
                    (api.mutex_exit)(mtx as *mut _);
                    (api.clock_sleep)(0, 0, ((i * 7 + j * 3) % 5 * 100_000) as i64);
                }
            }
        })
        .unwrap()
        .unwrap();
        hs.push(h);
    }
    for h in hs {
        assert_eq!(h.join(), 0);
    }
    m.leave();
    println!("sum={}", SUM.load(Ordering::Relaxed));
}

fn run(seed: Option<u64>) -> String {
    let mut cmd = rumpuser_host::testing::current_exe_command();
    cmd.args([
        "--exact",
        "determinism_workload",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(WORKLOAD_ENV, "1")
    .env("RUMPUSER_GREEN_TRACE", "1");
    match seed {
        Some(s) => cmd.env("RUMPUSER_GREEN_SEED", s.to_string()),
        None => cmd.env_remove("RUMPUSER_GREEN_SEED"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let trace = err
        .lines()
        .find(|l| l.starts_with("rumpuser-green trace"))
        .unwrap_or_else(|| panic!("no trace in: {err}"))
        .to_string();
    assert!(trace.len() > 200, "trace too short: {trace}");
    trace
}

/// Not a test on its own: the workload the real test runs in subprocesses.
#[test]
fn determinism_workload() {
    if std::env::var_os(WORKLOAD_ENV).is_some() {
        workload();
    }
}

#[test]
fn same_seed_same_schedule() {
    let a = run(Some(42));
    let b = run(Some(42));
    assert_eq!(a, b, "two runs with seed 42 scheduled differently");
    let c = run(Some(7));
    let d = run(Some(7));
    assert_eq!(c, d, "two runs with seed 7 scheduled differently");
    assert_ne!(
        a, c,
        "seeds 42 and 7 gave the same schedule; the seed is not used"
    );
}
