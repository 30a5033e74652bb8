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
//! The client is the test suite's protocol client
//! (`tests/sp_support/client.rs`) on its own host thread. Run with
//! `taskset -c 1 cargo bench --bench sysproxy`: pinned to one CPU the
//! figures are stable; unpinned on an idle VM every cross-CPU wake-up
//! (the socket baseline's too) costs tens of microseconds.

mod common;

#[allow(dead_code)]
#[path = "../tests/sp_support/client.rs"]
mod client;

use client::{Client, Target};
use criterion::Criterion;
use rumpuser_core::abi::*;
use rumpuser_core::api::Api;
use rumpuser_core::sp::wire::{put_handshake_resp, put_syscall_resp, Header, HDRSZ};
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

/// NetBSD's `getpid` number.
const SYS_GETPID: u32 = 20;

// ---- a null kernel -------------------------------------------------------------

extern "C" fn up_nop() {}
extern "C" fn up_backend_unschedule(_n: c_int, countp: *mut c_int, _il: *mut c_void) {
    if !countp.is_null() {
        // SAFETY: the hypervisor passes a pointer to its local count.
        unsafe { *countp = 0 };
    }
}
extern "C" fn up_backend_schedule(_n: c_int, _il: *mut c_void) {}
extern "C" fn up_lwproc_switch(_l: *mut Lwp) {}
extern "C" fn up_lwproc_rfork(_p: *mut c_void, _flags: c_int, _comm: *const c_char) -> c_int {
    0
}
extern "C" fn up_lwproc_newlwp(_pid: i32) -> c_int {
    0
}
/// The one lwp of the null kernel (the hypervisor never dereferences it).
static LWP: u64 = 0;
extern "C" fn up_lwproc_curlwp() -> *mut Lwp {
    &LWP as *const u64 as *mut Lwp
}
extern "C" fn up_syscall(num: c_int, _args: *mut c_void, rv: *mut c_long) -> c_int {
    if num as u32 != SYS_GETPID {
        return 78; // ENOSYS
    }
    // SAFETY: the hypervisor passes two writable longs.
    unsafe {
        *rv = 2;
        *rv.add(1) = 1;
    }
    0
}
extern "C" fn up_execnotify(_comm: *const c_char) {}
extern "C" fn up_getpid() -> i32 {
    2
}

static NULL_KERNEL: Hyperup = Hyperup {
    hyp_schedule: Some(up_nop),
    hyp_unschedule: Some(up_nop),
    hyp_backend_unschedule: Some(up_backend_unschedule),
    hyp_backend_schedule: Some(up_backend_schedule),
    hyp_lwproc_switch: Some(up_lwproc_switch),
    hyp_lwproc_release: Some(up_nop),
    hyp_lwproc_rfork: Some(up_lwproc_rfork),
    hyp_lwproc_newlwp: Some(up_lwproc_newlwp),
    hyp_lwproc_curlwp: Some(up_lwproc_curlwp),
    hyp_syscall: Some(up_syscall),
    hyp_lwpexit: Some(up_nop),
    hyp_execnotify: Some(up_execnotify),
    hyp_getpid: Some(up_getpid),
    hyp_extra: [std::ptr::null_mut(); 8],
};

// ---- libraries -------------------------------------------------------------------

/// `dlopen`s one library and resolves its C ABI.
fn open(path: &Path) -> Api {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path with NUL");
    // SAFETY: a valid C string; the handle is never closed.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns NULL or a C string valid until the next dl call.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        panic!("cannot dlopen {}: {msg}", path.display());
    }
    // SAFETY: every rumpuser_* symbol of a v17 librumpuser has the v17
    // signature; `h` stays open for the life of the process.
    unsafe { Api::resolve(|name| libc::dlsym(h, name.as_ptr())) }
        .unwrap_or_else(|missing| panic!("{}: missing symbol {missing}", path.display()))
}

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

/// Waits for the client thread. The green server only runs while this
/// (the green host) thread is in the scheduler, so it sleeps there.
fn wait<T>(api: &Api, green: bool, rx: &Receiver<T>) -> T {
    loop {
        match rx.try_recv() {
            Ok(v) => return v,
            Err(TryRecvError::Disconnected) => panic!("the client thread died"),
            Err(TryRecvError::Empty) if green => {
                // SAFETY: plain values; this thread called rumpuser_init.
                unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 1_000_000) };
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
    let api = open(path);
    // SAFETY: version 17 and a static upcall table.
    let e = unsafe { (api.init)(RUMPUSER_VERSION, &NULL_KERNEL) };
    assert_eq!(e, 0, "{name}: rumpuser_init failed: {e}");
    let sock =
        std::env::temp_dir().join(format!("rumpsp-bench-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock);
    let url = CString::new(format!("unix://{}", sock.display())).unwrap();
    // SAFETY: valid C strings.
    let e = unsafe {
        (api.sp_init)(
            url.as_ptr(),
            c"NetBSD".as_ptr(),
            c"7.99.34".as_ptr(),
            c"amd64".as_ptr(),
        )
    };
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
    wait(&api, green, &ready_rx);
    c.benchmark_group("sysproxy_getpid_roundtrip")
        .bench_function(name, |b| {
            b.iter_custom(|iters| {
                cmd_tx.send(iters).unwrap();
                wait(&api, green, &done_rx)
            })
        });
    drop(cmd_tx);
    client.join().unwrap();
    // SAFETY: NULL = a local halt; stops the server and removes the socket.
    unsafe { (api.sp_fini)(std::ptr::null_mut()) };
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
