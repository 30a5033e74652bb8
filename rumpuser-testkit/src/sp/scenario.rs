//! The syscall proxy protocol scenario both flavours' tests run against
//! the project's own protocol client ([`super::client`]) and the model
//! kernel ([`super::kernel`], booted first): banner and handshakes, every
//! request type, pipelined and concurrent clients, prefork/fork/exec,
//! clients that disconnect mid-call, malformed and random frames,
//! `sp_fini`, TCP (IPv4 and IPv6), client limits, socket modes and
//! relative paths. Sequential steps, because a process can call
//! `rumpuser_init` only once.

use super::client::{Client, CopyinMode, Target};
use super::kernel::*;
use rumpuser_core::sp::wire::*;
use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// What the scenario needs from the flavour under test.
pub struct Hooks {
    /// Runs a job on the kernel's host thread and returns when it is done
    /// (posix: right here; green: on the green host thread, the only one
    /// allowed to make hypercalls).
    pub on_kernel: fn(Box<dyn FnOnce() + Send>),
    /// The server's live client count.
    pub live_clients: fn() -> usize,
    /// The address of a TCP server.
    pub tcp_address: fn() -> Option<std::net::SocketAddr>,
}

impl Hooks {
    fn kernel<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        (self.on_kernel)(Box::new(move || {
            let _ = tx.send(f());
        }));
        rx.recv().expect("kernel job ran")
    }

    fn sp_init(&self, url: &str) -> i32 {
        let u = CString::new(url).unwrap();
        self.kernel(move || hyp().sp_init(&u, c"NetBSD", c"7.99.34", c"amd64"))
    }

    fn sp_fini_local(&self) {
        // The halt came from a local process.
        self.kernel(|| hyp().sp_fini_local());
    }
}

fn step(name: &str) {
    println!("--- {name}");
}

fn guest(t: &Target, name: &str) -> Client {
    let mut c = Client::connect(t).expect("connect");
    assert_eq!(c.guest(name).expect("guest handshake"), 0);
    c
}

fn raw_header(len: u64, reqno: u64, class: u16, typ: u16, arg: u32) -> Vec<u8> {
    Header {
        len,
        reqno,
        class,
        typ,
        arg,
    }
    .encode()
    .to_vec()
}

/// Sends `bytes` on a fresh (optionally handshaken) connection and
/// expects the server to close it; returns the ERROR codes it sent.
fn expect_closed(t: &Target, handshake: bool, bytes: &[u8]) -> Vec<u32> {
    let mut c = if handshake {
        guest(t, "bad")
    } else {
        Client::connect(t).unwrap()
    };
    c.send_raw(bytes).unwrap();
    let start = Instant::now();
    let errs = c.drain_to_eof().expect("server closes the connection");
    assert!(start.elapsed() < Duration::from_secs(10));
    errs
}

fn no_violations() {
    let v = violations();
    assert!(v.is_empty(), "model kernel violations: {v:#?}");
}

/// The whole protocol scenario, on client threads; the model kernel must
/// be booted (on the kernel's host thread) and no server running. Sets
/// `RUMPUSER_SP_*` variables while it runs.
pub fn run(h: &Hooks) {
    // Preforks of dead clients expire fast in this test.
    std::env::set_var("RUMPUSER_SP_PREFORK_TIMEOUT", "1");
    let dir = std::env::temp_dir().join(format!("rumpsp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sp.sock");
    let t = Target::Unix(path.clone());

    step("sp_init: bad URLs, then a unix socket");
    assert_eq!(h.sp_init("bogus"), 22);
    assert_eq!(h.sp_init("foo://x"), 22);
    assert_eq!(h.sp_init("tcp://1.2.3.4:99999"), 34);
    assert_eq!(h.sp_init(&format!("unix://{}", path.display())), 0);
    assert_eq!(
        h.sp_init(&format!("unix://{}", path.display())),
        16,
        "second server"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket is owner-only");

    step("banner, guest handshake, getpid");
    let mut a = Client::connect(&t).unwrap();
    assert_eq!(a.banner, b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n");
    assert_eq!(a.guest("tclient").unwrap(), 0);
    let (e, rv) = a.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(e, 0);
    let apid = rv[0] as i32;
    assert!(apid >= 2);
    assert_eq!(rv[1], 1, "guest processes are children of process 1");
    assert_eq!(comm_of(apid).as_deref(), Some("tclient"));

    step("copyin + copyout");
    let src = a.mem.alloc(b"hello world");
    let dst = a.mem.alloc(&[0; 11]);
    assert_eq!(a.syscall(SYS_COPY, &[src, 11, dst]).unwrap(), (0, [11, 0]));
    assert_eq!(a.mem.read(dst, 11), b"HELLO WORLD");
    // A copyin the client cannot satisfy (short response) is EFAULT.
    assert_eq!(a.syscall(SYS_COPY, &[0x10, 8, dst]).unwrap().0, 14);
    assert_eq!(*LAST_COPYIN.lock().unwrap(), Some(14));
    // Zero-length copies need no round trip.
    assert_eq!(a.syscall(SYS_COPY, &[src, 0, dst]).unwrap(), (0, [0, 0]));

    step("copyinstr + copyoutstr");
    let s = a.mem.alloc(b"abc\0def");
    let d = a.mem.alloc(&[0xff; 16]);
    assert_eq!(a.syscall(SYS_STR, &[s, 16, d]).unwrap(), (0, [4, 0]));
    assert_eq!(a.mem.read(d, 5), b"abc\0\xff");
    assert_eq!(a.syscall(SYS_STR, &[s, 2, d]).unwrap().0, ENAMETOOLONG);

    step("anonmmap");
    let (e, rv) = a.syscall(SYS_MMAP, &[8192]).unwrap();
    assert_eq!(e, 0);
    assert!(a.mem.has_region(rv[0] as u64));
    a.mmap_fails = true;
    assert_eq!(
        a.syscall(SYS_MMAP, &[8192]).unwrap().0,
        12,
        "NULL -> ENOMEM"
    );
    a.mmap_fails = false;

    step("raise");
    assert_eq!(a.syscall(SYS_RAISE, &[30]).unwrap(), (0, [0, 0]));
    assert_eq!(a.signals, [30]);

    step("unknown syscalls");
    assert_eq!(a.syscall(9999, &[]).unwrap().0, ENOSYS);
    assert_eq!(a.syscall(0x8000_0000, &[]).unwrap(), (ENOSYS, [0, 0]));

    step("pipelined requests on one connection");
    let reqs: Vec<u64> = (0..50)
        .map(|i| a.send_syscall(SYS_PING, &[i]).unwrap())
        .collect();
    for (i, r) in reqs.into_iter().enumerate().rev() {
        assert_eq!(a.syscall_result(r).unwrap(), (0, [i as i64 + 1, 0]));
    }

    step("concurrent clients");
    let threads: Vec<_> = (0..12)
        .map(|n| {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut c = guest(&t, &format!("conc{n}"));
                for i in 0..100u64 {
                    assert_eq!(c.syscall(SYS_PING, &[i]).unwrap(), (0, [i as i64 + 1, 0]));
                    if i % 10 == 0 {
                        let s = c.mem.alloc(format!("client {n} call {i}").as_bytes());
                        let l = c.mem.read(s, 100).len() as u64;
                        let d = c.mem.alloc(&vec![0; l as usize]);
                        assert_eq!(c.syscall(SYS_COPY, &[s, l, d]).unwrap().0, 0);
                        assert_eq!(
                            c.mem.read(d, l as usize),
                            format!("CLIENT {n} CALL {i}").as_bytes()
                        );
                    }
                }
                c.close();
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
    assert!(
        eventually(5, || pids() == [apid]),
        "concurrent clients released: {:?}",
        pids()
    );

    step("prefork + fork handshake");
    assert_eq!(a.syscall(SYS_SETVAL, &[42]).unwrap().0, 0);
    let cookie = a.prefork().unwrap();
    let mut b = Client::connect(&t).unwrap();
    assert_eq!(b.fork(&cookie).unwrap(), 0);
    let (e, rv) = b.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(e, 0);
    let bpid = rv[0] as i32;
    assert!(bpid != apid);
    assert_eq!(
        b.syscall(SYS_GETVAL, &[]).unwrap(),
        (0, [42, 0]),
        "descriptors copied"
    );
    assert!(
        eventually(2, || pids() == [apid, bpid]),
        "prefork process released: {:?}",
        pids()
    );
    // The cookie is single-use.
    let mut c = Client::connect(&t).unwrap();
    assert_eq!(
        c.fork(&cookie).unwrap(),
        -(ErrorCode::InvalidPrefork as i32)
    );
    assert!(c.drain_to_eof().unwrap().is_empty());
    drop(c);

    step("fork cancel, bad fork body");
    let cookie = a.prefork().unwrap();
    let mut c = Client::connect(&t).unwrap();
    c.request(|o, r| put_fork_req(o, r, &cookie, true)).unwrap();
    assert!(
        c.drain_to_eof().unwrap().is_empty(),
        "cancel: closed without reply"
    );
    let mut bad = raw_header(24 + 19, 0, 0, 0, HandshakeKind::Fork as u32);
    bad.extend_from_slice(&[0; 19]);
    assert_eq!(
        expect_closed(&t, false, &bad),
        [ErrorCode::MalformedRequest as u32]
    );
    assert!(
        eventually(2, || pids() == [apid, bpid]),
        "cancelled prefork released: {:?}",
        pids()
    );

    step("exec while a kernel thread sleeps");
    let sleeper = b.send_syscall(SYS_SLEEP, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.exec("newprog").unwrap(), 0);
    assert_eq!(b.syscall_result(sleeper).unwrap().0, EINTR);
    let name = b.mem.alloc(&[0; 32]);
    assert_eq!(b.syscall(SYS_GETCOMM, &[name, 32]).unwrap(), (0, [8, 0]));
    assert_eq!(b.mem.read(name, 8), b"newprog\0");
    assert_eq!(
        b.syscall(SYS_GETPID, &[]).unwrap().1[0] as i32,
        bpid,
        "same process"
    );
    let mut c = Client::connect(&t).unwrap();
    c.request(|o, r| put_handshake_req(o, r, HandshakeKind::Exec, b"x"))
        .unwrap();
    assert_eq!(
        c.drain_to_eof().unwrap(),
        [ErrorCode::Auth as u32],
        "exec before guest"
    );
    drop(c);

    step("prefork of a client that then exits: still claimable, then expires");
    let mut p = guest(&t, "parent");
    let ppid = p.syscall(SYS_GETPID, &[]).unwrap().1[0] as i32;
    let c1 = p.prefork().unwrap();
    let _c2 = p.prefork().unwrap();
    p.close();
    drop(p);
    std::thread::sleep(Duration::from_millis(200));
    let mut child = Client::connect(&t).unwrap();
    assert_eq!(
        child.fork(&c1).unwrap(),
        0,
        "child connects after its parent exited"
    );
    let cpid = child.syscall(SYS_GETPID, &[]).unwrap().1[0] as i32;
    assert!(cpid > ppid);
    child.close();
    drop(child);
    assert!(
        eventually(5, || pids() == [apid, bpid]),
        "the unclaimed prefork expired: {:?}",
        pids()
    );

    step("client disconnects mid-call (sleeping in the kernel)");
    let woken = WOKEN.load(std::sync::atomic::Ordering::SeqCst);
    let mut c = guest(&t, "sleepy");
    let cp = c.syscall(SYS_GETPID, &[]).unwrap().1[0] as i32;
    c.send_syscall(SYS_SLEEP, &[]).unwrap();
    c.send_syscall(SYS_SLEEP, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(pids().contains(&cp));
    c.close();
    drop(c);
    assert!(
        eventually(5, || pids() == [apid, bpid]),
        "process released: {:?}",
        pids()
    );
    assert_eq!(WOKEN.load(std::sync::atomic::Ordering::SeqCst), woken + 2);

    step("client disconnects while the server waits for its copyin");
    let mut c = guest(&t, "quitter");
    c.copyin = CopyinMode::Disconnect;
    let s = c.mem.alloc(b"data");
    assert!(c.syscall(SYS_COPY, &[s, 4, s]).is_err());
    drop(c);
    assert!(
        eventually(5, || pids() == [apid, bpid]),
        "process released: {:?}",
        pids()
    );
    assert_eq!(
        *LAST_COPYIN.lock().unwrap(),
        Some(14),
        "copyin failed with EFAULT"
    );

    step("malformed frames");
    let malformed = ErrorCode::MalformedRequest as u32;
    // Header shorter than itself.
    assert!(expect_closed(&t, true, &raw_header(10, 0, 0, 1, 20)).is_empty());
    // Impossible length.
    assert!(expect_closed(&t, true, &raw_header(1 << 40, 0, 0, 1, 20)).is_empty());
    assert!(expect_closed(&t, true, &raw_header(u64::MAX, 0, 1, 2, 0)).is_empty());
    // A request body over the limit.
    let mut big = raw_header(24 + 5000, 0, 0, 1, 20);
    big.extend_from_slice(&[0; 5000]);
    assert!(expect_closed(&t, true, &big).is_empty());
    // Unknown class, unknown type, server-only type, ERROR from a client.
    assert_eq!(
        expect_closed(&t, true, &raw_header(24, 5, 7, 1, 0)),
        [malformed]
    );
    assert_eq!(
        expect_closed(&t, true, &raw_header(24, 5, 0, 99, 0)),
        [malformed]
    );
    assert_eq!(
        expect_closed(&t, true, &raw_header(24, 5, 0, 4, 0)),
        [malformed]
    );
    assert_eq!(
        expect_closed(&t, true, &raw_header(24, 5, 2, 0, 0)),
        [malformed]
    );
    assert_eq!(
        expect_closed(&t, true, &raw_header(24, 5, 1, 99, 0)),
        [malformed]
    );
    // Requests before the handshake, a second guest handshake.
    assert_eq!(
        expect_closed(&t, false, &raw_header(24, 0, 0, 1, 20)),
        [ErrorCode::Auth as u32]
    );
    let mut hs = Vec::new();
    put_handshake_req(&mut hs, 1, HandshakeKind::Guest, b"again");
    assert_eq!(expect_closed(&t, true, &hs), [malformed]);
    // Garbage.
    let garbage: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = expect_closed(&t, false, &garbage);
    // A truncated frame, then the client goes away.
    {
        let mut c = guest(&t, "trunc");
        c.send_raw(&raw_header(100, 0, 0, 1, 20)[..12]).unwrap();
        c.close();
    }
    // A response to nothing is discarded; the connection lives on.
    let mut c = guest(&t, "stray");
    let mut r = Vec::new();
    put_copyin_resp(&mut r, 12345, b"zzz");
    c.send_raw(&r).unwrap();
    assert_eq!(c.syscall(SYS_PING, &[1]).unwrap(), (0, [2, 0]));
    // A response of the wrong type to a pending copyin closes the client.
    c.copyin = CopyinMode::WrongType;
    let s = c.mem.alloc(b"data");
    let r = c.syscall(SYS_COPY, &[s, 4, s]);
    assert!(r.is_err(), "{r:?}");
    drop(c);
    // A short argument structure is zero-padded, not over-read.
    let mut c = guest(&t, "short");
    let r = c
        .request(|o, r| put_syscall_req(o, r, SYS_COPY, &[1, 2, 3]))
        .unwrap();
    assert_eq!(c.syscall_result(r).unwrap().0, 0);
    drop(c);
    assert!(
        eventually(5, || pids() == [apid, bpid]),
        "all released: {:?}",
        pids()
    );
    // The server still serves.
    assert_eq!(a.syscall(SYS_PING, &[7]).unwrap(), (0, [8, 0]));

    step("randomized frames against the live server");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..200 {
        let mut c = match Client::connect(&t) {
            Ok(c) => c,
            Err(e) => panic!("server stopped accepting: {e}"),
        };
        let mut v = Vec::new();
        if rnd() % 2 == 0 {
            put_handshake_req(&mut v, 0, HandshakeKind::Guest, b"fz");
        }
        for _ in 0..(rnd() % 4) {
            let mut f = Vec::new();
            match rnd() % 4 {
                0 => put_syscall_req(&mut f, rnd(), SYS_PING, &[0; 8]),
                1 => put_prefork_req(&mut f, rnd()),
                2 => put_copyin_resp(&mut f, rnd() % 4, b"abcd"),
                _ => put_anonmmap_resp(&mut f, rnd() % 4, 0),
            }
            for _ in 0..(rnd() % 3) {
                let i = (rnd() as usize) % f.len();
                f[i] = rnd() as u8;
            }
            v.extend_from_slice(&f);
        }
        v.truncate((rnd() as usize) % (v.len() + 1));
        let _ = c.send_raw(&v);
        c.close();
    }
    assert!(
        eventually(5, || pids() == [apid, bpid]),
        "fuzz clients released: {:?}",
        pids()
    );
    assert_eq!(a.syscall(SYS_PING, &[9]).unwrap(), (0, [10, 0]));
    assert!(
        eventually(5, || nlwps() == 2),
        "only the two main lwps are left: {}",
        nlwps()
    );
    no_violations();

    step("sp_fini from a remote process answers its syscall and stops the server");
    let r = b.send_syscall(SYS_FINI, &[FINI_MAGIC]).unwrap();
    assert_eq!(
        b.syscall_result(r).unwrap(),
        (0, [0, 0]),
        "answered by sp_fini, not by the syscall's own return"
    );
    assert!(b.drain_to_eof().is_ok());
    assert!(!path.exists(), "socket file removed");
    assert!(a.drain_to_eof().is_ok(), "other clients see end of stream");
    assert!(Client::connect(&t).is_err(), "no longer listening");
    assert!(eventually(5, || (h.live_clients)() == 0));

    step("tcp (IPv4) server, client limit");
    std::env::set_var("RUMPUSER_SP_MAXCLIENTS", "2");
    assert_eq!(h.sp_init("tcp://127.0.0.1:0"), 0);
    std::env::remove_var("RUMPUSER_SP_MAXCLIENTS");
    let addr = (h.tcp_address)().expect("bound address");
    let t4 = Target::Tcp(addr);
    let mut x = guest(&t4, "tcp1");
    let _y = guest(&t4, "tcp2");
    let xpid = x.syscall(SYS_GETPID, &[]).unwrap().1[0] as i32;
    assert!(xpid > 1);
    assert!(
        Client::connect(&t4).is_err(),
        "third client refused (no banner)"
    );
    x.close();
    drop(x);
    assert!(eventually(5, || Client::connect(&t4).is_ok()), "slot freed");
    h.sp_fini_local();
    assert!(eventually(5, || (h.live_clients)() == 0));

    step("tcp (IPv6) server");
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        assert_eq!(h.sp_init("tcp://[::1]:0"), 0);
        let t6 = Target::Tcp((h.tcp_address)().unwrap());
        let mut z = guest(&t6, "tcp6");
        assert_eq!(z.syscall(SYS_PING, &[1]).unwrap(), (0, [2, 0]));
        h.sp_fini_local();
        assert!(z.drain_to_eof().is_ok());
    } else {
        println!("IPv6 loopback unavailable; skipped");
    }

    step("unix socket with RUMPUSER_SP_MODE, relative path");
    std::env::set_var("RUMPUSER_SP_MODE", "0660");
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    assert_eq!(h.sp_init("unix://rel.sock"), 0);
    std::env::set_current_dir(cwd).unwrap();
    std::env::remove_var("RUMPUSER_SP_MODE");
    let rel = dir.join("rel.sock");
    let mode = std::fs::metadata(&rel).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut w = guest(&Target::Unix(rel.clone()), "rel");
    assert_eq!(w.syscall(SYS_PING, &[3]).unwrap(), (0, [4, 0]));
    h.sp_fini_local();
    assert!(!rel.exists(), "relative socket path removed after a chdir");
    assert!(w.drain_to_eof().is_ok());

    no_violations();
    let _ = std::fs::remove_dir_all(&dir);
}
