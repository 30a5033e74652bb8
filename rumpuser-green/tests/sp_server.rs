//! The syscall proxy server of the green flavour against the project's
//! own protocol client and a model kernel: the same scenario as the posix
//! flavour's (`rumpuser_testkit::sp`).
//!
//! The test thread boots the model kernel and then sleeps in the green
//! scheduler (running the scenario's kernel jobs, such as
//! `rumpuser_sp_init`, in between), while the scenario and its clients run
//! on other host threads, which only speak the protocol over sockets. Its
//! direct calls of the scheduler core take the token first, as every
//! hypercall of the library does.

use rumpuser_green::rumpuser_exports::API;
use rumpuser_green::sched_core;
use rumpuser_testkit::sp::client::{Client, Target};
use rumpuser_testkit::sp::kernel;
use rumpuser_testkit::sp::scenario::{self, Hooks};
use rumpuser_testkit::Hyp;
use std::collections::VecDeque;
use std::ffi::CString;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

type Job = Box<dyn FnOnce() + Send>;

/// `sched_core::sleep_for` with the token held, as a hypercall would.
fn sleep_ns(ns: u64) {
    let _entered = rumpuser_green::host::token::enter();
    sched_core::sleep_for(ns)
}

/// Jobs for the green host thread.
static JOBS: Mutex<VecDeque<Job>> = Mutex::new(VecDeque::new());

fn on_green_host(job: Job) {
    JOBS.lock().unwrap().push_back(job);
}

#[test]
fn sysproxy_server_green() {
    kernel::boot(&API);
    let client = std::thread::Builder::new()
        .name("scenario".into())
        .spawn(|| {
            scenario::run(&Hooks {
                on_kernel: on_green_host,
                live_clients: rumpuser_green::sp::live_clients,
                tcp_address: rumpuser_green::sp::tcp_address,
            })
        })
        .unwrap();
    // The green host thread: run jobs, otherwise let the green threads
    // (server, readers, workers) run until the scenario is over.
    while !client.is_finished() {
        let job = JOBS.lock().unwrap().pop_front();
        match job {
            Some(job) => job(),
            None => sleep_ns(1_000_000),
        }
    }
    if let Err(e) = client.join() {
        std::panic::resume_unwind(e);
    }
    idle_server_sleeps();
}

/// Process CPU time (all threads) in microseconds.
fn cpu_us() -> i64 {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec * 1_000_000 + tv.tv_usec;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// With a server running and a client connected but silent, the green host
/// thread sleeps in `ppoll` (no busy polling of the sockets), and still
/// answers the client at once afterwards.
fn idle_server_sleeps() {
    let path = std::env::temp_dir().join(format!("rumpsp-idle-{}.sock", std::process::id()));
    let url = CString::new(format!("unix://{}", path.display())).unwrap();
    let hyp = Hyp::new(&API);
    assert_eq!(hyp.sp_init(&url, c"NetBSD", c"7.99.34", c"amd64"), 0);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let t = Target::Unix(path.clone());
    let client = std::thread::spawn(move || {
        let mut c = Client::connect(&t).unwrap();
        assert_eq!(c.guest("idle").unwrap(), 0);
        assert_eq!(c.syscall(kernel::SYS_PING, &[1]).unwrap(), (0, [2, 0]));
        ready_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        assert_eq!(c.syscall(kernel::SYS_PING, &[2]).unwrap(), (0, [3, 0]));
        c.close();
    });
    while ready_rx.try_recv().is_err() {
        sleep_ns(1_000_000);
    }
    let before = cpu_us();
    sleep_ns(500_000_000);
    let used = cpu_us() - before;
    println!("CPU time over 500 ms idle with a connected client: {used} us");
    assert!(
        used < 50_000,
        "the idle green server used {used} us of CPU in 500 ms"
    );
    go_tx.send(()).unwrap();
    while !client.is_finished() {
        sleep_ns(1_000_000);
    }
    client.join().unwrap();
    hyp.sp_fini_local();
    sleep_ns(Duration::from_millis(10).as_nanos() as u64);
    assert!(!path.exists());
}
