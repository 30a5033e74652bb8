//! Criterion bench of the syscall proxy: one null remote system call
//! (`getpid`) through the proxy over a unix socket, request to response,
//! as a client sees it. Every implementation is loaded with `dlopen` (see
//! `common/mod.rs` for where the libraries come from) and initialised with
//! a null kernel written here, whose `hyp_syscall` answers `getpid` at
//! once, so the figure is the proxy's own cost: socket I/O, frame
//! assembly, hand-off to a worker, the kernel entries around the call
//! (`hyp_schedule`/`newlwp`/`syscall`/`release`), and the response.
//!
//! | function | server |
//! |---|---|
//! | `ours-posix` | poll loop thread + worker thread pool |
//! | `ours-green` | green reader + green worker on the host thread that called `rumpuser_init` (this bench's main thread, which sleeps in `rumpuser_clock_sleep` while the client runs) |
//! | `netbsd-pthread` | NetBSD's rumpuser_sp.c, if the reference library is found |
//! | `baseline-socket` | no server: a thread echoing the same frame sizes (24-byte request, 48-byte response) over a unix socket pair, raw reads and writes on both ends |
//! | `baseline-protocol` | no kernel, no workers: one thread answering the same client's frames directly (the floor of a proxied call with this client) |
//!
//! The client is the test kit's protocol client
//! (`rumpuser_testkit::sp::client`) on its own host thread. Run with
//! `taskset -c 1 cargo bench --bench sysproxy`: pinned to one CPU the
//! figures are stable; unpinned on an idle VM every cross-CPU wake-up
//! (the socket baseline's too) costs tens of microseconds.

mod common;

use criterion::Criterion;
use rumpuser_core::abi::*;
use rumpuser_core::sp::wire::{put_handshake_resp, put_syscall_resp, Header, HDRSZ};
use rumpuser_testkit::sp::client::{Client, Target};
use rumpuser_testkit::{Hyp, Kernel};
use std::ffi::{c_int, c_long, c_void, CStr, CString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

/// NetBSD's `getpid` number.
const SYS_GETPID: u32 = 20;

// ---- a null kernel -------------------------------------------------------------

/// The null kernel: one lwp, no CPUs to take, and a `getpid` that answers
/// at once. The other upcalls are the kit's defaults (do nothing; `0` or
/// `ENOSYS`), but for `rfork` and `newlwp`, which succeed without making
/// anything.
struct NullKernel;

/// The one lwp of the null kernel (the hypervisor never dereferences it).
static LWP: u64 = 0;

impl Kernel for NullKernel {
    unsafe fn lwproc_rfork(_cookie: *mut c_void, _flags: c_int, _comm: Option<&CStr>) -> c_int {
        0
    }
    fn lwproc_newlwp(_pid: i32) -> c_int {
        0
    }
    fn lwproc_curlwp() -> *mut Lwp {
        &LWP as *const u64 as *mut Lwp
    }
    unsafe fn syscall(num: c_int, _args: *mut c_void, rv: &mut [c_long; 2]) -> c_int {
        if num as u32 != SYS_GETPID {
            return 78; // ENOSYS
        }
        *rv = [2, 1];
        0
    }
    fn getpid() -> i32 {
        2
    }
}

// ---- libraries -------------------------------------------------------------------

/// Every implementation with a syscall proxy: (name, library, green?).
fn implementations() -> Vec<(&'static str, PathBuf, bool)> {
    let dist = common::dist_dir();
    let mut v = vec![
        ("ours-posix", dist.join("lib/librumpuser_posix.so"), false),
        ("ours-green", dist.join("lib/librumpuser_green.so"), true),
    ];
    let reference = match std::env::var_os("RUMPUSER_REFERENCE_LIB") {
        Some(p) if p == "none" || p.is_empty() => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(PathBuf::from(common::DEFAULT_REFERENCE)).filter(|p| p.exists()),
    };
    match reference {
        Some(p) => v.push(("netbsd-pthread", p, false)),
        None => eprintln!("bench: NetBSD reference librumpuser not found; comparing ours only"),
    }
    v
}

// ---- the client thread -------------------------------------------------------------

/// Runs `iters` round trips per request on its own host thread and sends
/// back the time they took.
fn client_thread(mut c: Client, cmds: Receiver<u64>, done: Sender<Duration>) {
    for iters in cmds {
        let t = Instant::now();
        for _ in 0..iters {
            let (e, rv) = c.syscall(SYS_GETPID, &[]).expect("remote getpid");
            debug_assert_eq!((e, rv[0]), (0, 2));
        }
        done.send(t.elapsed()).unwrap();
    }
    c.close();
}

/// Same sizes as a getpid round trip, no server: 24 bytes out, 48 back.
fn baseline(c: &mut Criterion) {
    let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    std::thread::spawn(move || {
        let mut req = [0u8; 24];
        while b.read_exact(&mut req).is_ok() {
            if b.write_all(&[0u8; 48]).is_err() {
                break;
            }
        }
    });
    let mut resp = [0u8; 48];
    c.benchmark_group("sysproxy_getpid_roundtrip")
        .bench_function("baseline-socket", |bn| {
            bn.iter(|| {
                a.write_all(&[0u8; 24]).unwrap();
                a.read_exact(&mut resp).unwrap();
            })
        });
}

/// Waits for the client thread. On green this thread sleeps in the kernel,
/// so the server's green threads run on it (as in an application that
/// stays in the kernel) rather than on the library's `rumpgreen` thread.
fn wait<T>(hyp: Hyp, green: bool, rx: &Receiver<T>) -> T {
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(TryRecvError::Disconnected) => panic!("the client thread died"),
            Err(TryRecvError::Empty) if green => {
                // This thread called rumpuser_init.
                hyp.clock_sleep(RUMPUSER_CLOCK_RELWALL, 0, 1_000_000);
            }
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// The same client against a thread that answers every frame at once:
/// banner, handshake response, then a getpid response per request.
fn baseline_protocol(c: &mut Criterion) {
    let sock = std::env::temp_dir().join(format!("rumpsp-bench-{}-echo.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n").unwrap();
        let mut hdr = [0u8; HDRSZ];
        let mut body = vec![0u8; 4096];
        let mut out = Vec::new();
        let mut first = true;
        while s.read_exact(&mut hdr).is_ok() {
            let h = Header::decode(&hdr);
            let n = h.body_len().unwrap_or(0).min(body.len());
            if s.read_exact(&mut body[..n]).is_err() {
                break;
            }
            out.clear();
            if first {
                put_handshake_resp(&mut out, h.reqno, 0);
                first = false;
            } else {
                put_syscall_resp(&mut out, h.reqno, 0, [2, 1]);
            }
            if s.write_all(&out).is_err() {
                break;
            }
        }
    });
    let mut cl = Client::connect(&Target::Unix(sock.clone())).unwrap();
    assert_eq!(cl.guest("bench").unwrap(), 0);
    c.benchmark_group("sysproxy_getpid_roundtrip")
        .bench_function("baseline-protocol", |b| {
            b.iter(|| cl.syscall(SYS_GETPID, &[]).unwrap())
        });
    cl.close();
    let _ = std::fs::remove_file(&sock);
}

fn bench_one(c: &mut Criterion, name: &str, path: &Path, green: bool) {
    let hyp = Hyp::new(rumpuser_testkit::dl::open(path));
    let e = hyp.init::<NullKernel>();
    assert_eq!(e, 0, "{name}: rumpuser_init failed: {e}");
    let sock =
        std::env::temp_dir().join(format!("rumpsp-bench-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let url = CString::new(format!("unix://{}", sock.display())).unwrap();
    let e = hyp.sp_init(&url, c"NetBSD", c"7.99.34", c"amd64");
    assert_eq!(e, 0, "{name}: rumpuser_sp_init failed: {e}");

    let (ready_tx, ready_rx) = channel::<()>();
    let (cmd_tx, cmd_rx) = channel::<u64>();
    let (done_tx, done_rx) = channel::<Duration>();
    let target = Target::Unix(sock.clone());
    let client = std::thread::spawn(move || {
        let mut c = Client::connect(&target).expect("connect");
        assert_eq!(c.guest("bench").expect("guest handshake"), 0);
        ready_tx.send(()).unwrap();
        client_thread(c, cmd_rx, done_tx);
    });
    wait(hyp, green, &ready_rx);
    c.benchmark_group("sysproxy_getpid_roundtrip")
        .bench_function(name, |b| {
            b.iter_custom(|iters| {
                cmd_tx.send(iters).unwrap();
                wait(hyp, green, &done_rx)
            })
        });
    drop(cmd_tx);
    client.join().unwrap();
    // A local halt: stops the server and removes the socket.
    hyp.sp_fini_local();
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    baseline(&mut c);
    baseline_protocol(&mut c);
    for (name, path, green) in implementations() {
        bench_one(&mut c, name, &path, green);
    }
    c.final_summary();
}
