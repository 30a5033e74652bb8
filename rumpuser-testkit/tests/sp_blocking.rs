//! The syscall proxy server's blocking runtime (`sp::server::blocking`,
//! what bare metal and Xen run on their own kernel's sockets) against the
//! kit's in-memory transport and one-CPU model kernel
//! (`rumpuser_testkit::sp::onecpu`), on host threads, driven by the kit's
//! protocol client.
//!
//! One test function, because the upcall table is installed once per
//! process: handshake and system calls, copyin/copyout from a kernel
//! thread (the writer thread sends for it), output far above the high
//! water mark, pipelined and concurrent clients, clients that disconnect
//! mid-call and mid-copyin, the client and queue limits, frame limits and
//! protocol violations, prefork/fork and prefork expiry, exec, `sp_fini`
//! from a client's system call (with the one CPU held) and what follows.

use core::ffi::c_long;
use rumpuser_core::sp::wire::*;
use rumpuser_core::Errno;
use rumpuser_testkit::sp::client::{Client, CopyinMode};
use rumpuser_testkit::sp::onecpu::{
    boot, comm_of, eventually, live, nlwps_by_pid, no_violations, pattern, pids, sleeping, sp_init,
    CALLS, EFAULT, ENOSYS, FINI_MAGIC, GLOBALS, LAST_COPYIN, OPEN, PARAMS, SYS_BIGOUT, SYS_COPY,
    SYS_FINI, SYS_GETPID, SYS_PING, SYS_SLEEP, WOKEN,
};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

// ---- the kit's protocol client over the in-memory transport --------------------------

/// Connects and reads the banner; `None` if there is no listener or the
/// server closes first.
fn connect(port: u16) -> Option<Client> {
    let c = Client::over(Box::new(rumpuser_testkit::sp::onecpu::connect(port)?)).ok()?;
    assert!(c.banner.starts_with(b"RUMPSP-0.4-NetBSD"), "{:?}", c.banner);
    Some(c)
}

fn guest(port: u16, name: &str) -> Client {
    let mut c = connect(port).expect("connect");
    assert_eq!(c.guest(name).ok(), Some(0));
    c
}

// ---- the scenario ---------------------------------------------------------------------

fn step(name: &str) {
    println!("--- {name}");
}

/// Every client gone: processes released, sockets closed.
fn all_gone(what: &str) {
    assert!(
        eventually(10, || live() == 0
            && pids().is_empty()
            && OPEN.load(Ordering::SeqCst) == 0),
        "{what}: live {} pids {:?} open sockets {}",
        live(),
        pids(),
        OPEN.load(Ordering::SeqCst)
    );
}

#[test]
fn blocking_server_on_an_in_memory_transport() {
    boot();
    *PARAMS.lock().unwrap() = vec![
        ("RUMPUSER_SP_MAXCLIENTS", "4"),
        ("RUMPUSER_SP_MAXWORKERS", "3"),
        ("RUMPUSER_SP_IDLEWORKERS", "1"),
        ("RUMPUSER_SP_MAXQUEUE", "2"),
        ("RUMPUSER_SP_PREFORK_TIMEOUT", "1"),
    ];

    step("sp_init: a guest kernel's transport has no unix sockets; TCP; a second server");
    assert_eq!(sp_init("unix:///tmp/x.sock"), Err(Errno::EOPNOTSUPP));
    assert_eq!(sp_init("tcp://1.2.3.4:99999"), Err(Errno::ERANGE));
    assert_eq!(sp_init("tcp://10.0.2.15:5555"), Ok(()));
    assert_eq!(sp_init("tcp://10.0.2.15:5556"), Err(Errno::EBUSY));
    assert_eq!(
        GLOBALS.get().tcp_address(),
        Some("10.0.2.15:5555".parse().unwrap())
    );
    let port = 5555;

    step("handshake, system calls, an unknown one, the process name");
    let mut c = guest(port, "first");
    assert_eq!(c.syscall(SYS_PING, &[41]).unwrap(), (0, [42, 0]));
    assert_eq!(c.syscall(9999, &[]).unwrap().0, ENOSYS);
    let (e, [pid, _]) = c.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(e, 0);
    assert!(pid > 1);
    assert_eq!(comm_of(pid as i32).as_deref(), Some("first"));
    assert_eq!(live(), 1);

    step("copyin and copyout from a kernel thread (the writer thread sends for it)");
    let src = c.mem.alloc(b"hello, guest kernel");
    let dst = c.mem.alloc(&[0u8; 19]);
    assert_eq!(c.syscall(SYS_COPY, &[src, 19, dst]).unwrap(), (0, [19, 0]));
    assert_eq!(c.mem.read(dst, 19), b"HELLO, GUEST KERNEL");

    step("3 MiB of copyout through 64 KiB pipes: senders wait at the high-water mark");
    let len = 3 << 20;
    let big = c.mem.alloc(&vec![0u8; len]);
    assert_eq!(
        c.syscall(SYS_BIGOUT, &[big, len as u64]).unwrap(),
        (0, [len as c_long, 0])
    );
    let out = c.mem.read(big, len);
    assert!(
        out.len() == len && out.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "copied out as sent"
    );

    step("200 pipelined system calls");
    let reqs: Vec<u64> = (0..200)
        .map(|i| c.send_syscall(SYS_PING, &[i]).unwrap())
        .collect();
    for (i, r) in reqs.into_iter().enumerate() {
        // The queue holds 2: some are refused with TRYAGAIN, the rest answered.
        match c.syscall_outcome(r).expect("answer") {
            Ok(res) => assert_eq!(res, (0, [i as c_long + 1, 0])),
            Err(code) => assert_eq!(code, ErrorCode::TryAgain as u32),
        }
    }

    step("concurrent clients");
    let ts: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = guest(port, "conc");
                for i in 0..100u64 {
                    let mut tries = 0;
                    loop {
                        let r = c.send_syscall(SYS_PING, &[i * 10 + t]).unwrap();
                        match c.syscall_outcome(r).expect("answer") {
                            Ok(res) => {
                                assert_eq!(res, (0, [(i * 10 + t) as c_long + 1, 0]));
                                break;
                            }
                            Err(_) => {
                                tries += 1;
                                assert!(tries < 1000, "always TRYAGAIN");
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                }
                c.close();
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    c.close();
    all_gone("after the first clients");
    no_violations();

    step("a client that disconnects mid-call: its sleeping lwp is told to exit");
    let woken = WOKEN.load(Ordering::SeqCst);
    let mut c = guest(port, "sleeper");
    let _ = c.send_syscall(SYS_SLEEP, &[]).unwrap();
    assert!(eventually(5, || sleeping() == 1));
    c.close();
    assert!(eventually(5, || WOKEN.load(Ordering::SeqCst) == woken + 1));
    all_gone("after a disconnect mid-call");

    step("a client that disconnects instead of answering a copyin");
    let mut c = guest(port, "dropper");
    let src = c.mem.alloc(b"never read");
    let dst = c.mem.alloc(&[0u8; 10]);
    c.copyin = CopyinMode::Disconnect;
    let r = c.send_syscall(SYS_COPY, &[src, 10, dst]).unwrap();
    assert!(c.syscall_outcome(r).ok().is_none());
    assert!(eventually(5, || *LAST_COPYIN.lock().unwrap() == Some(EFAULT)));
    all_gone("after a disconnect mid-copyin");

    step("the client limit: the fifth is closed without a banner");
    let cs: Vec<Client> = (0..4).map(|_| guest(port, "many")).collect();
    assert_eq!(live(), 4);
    assert!(connect(port).is_none(), "a fifth client is refused");
    for c in &cs {
        c.close();
    }
    drop(cs);
    all_gone("after the client limit");
    assert!(connect(port).is_some(), "room again");
    all_gone("after the probe");

    step("the queue limit: 3 workers asleep, 2 queued, the rest refused with TRYAGAIN");
    // One at a time: three at once could find the queue full.
    let mut sleepers: Vec<Client> = (0..3).map(|_| guest(port, "busy")).collect();
    for (i, s) in sleepers.iter_mut().enumerate() {
        let _ = s.send_syscall(SYS_SLEEP, &[]).unwrap();
        assert!(eventually(5, || sleeping() == i + 1));
    }
    assert!(
        eventually(5, || sleeping() == 3),
        "three calls asleep: {:?}",
        nlwps_by_pid()
    );
    let mut c = guest(port, "queued");
    let reqs: Vec<u64> = (0..6)
        .map(|i| c.send_syscall(SYS_PING, &[i]).unwrap())
        .collect();
    // The queued two are answered only once a worker is free: the four
    // refusals come first.
    let mut refused = HashSet::new();
    for _ in 0..4 {
        let f = c.read_frame().unwrap().expect("a frame");
        assert_eq!(f.hdr.class(), Some(Class::Error));
        assert_eq!(f.hdr.arg, ErrorCode::TryAgain as u32);
        assert!(reqs.contains(&f.hdr.reqno));
        refused.insert(f.hdr.reqno);
    }
    assert_eq!(refused.len(), 4);
    for s in &sleepers {
        s.close();
    }
    for (i, r) in reqs.iter().enumerate() {
        if !refused.contains(r) {
            assert_eq!(
                c.syscall_outcome(*r).ok(),
                Some(Ok((0, [i as c_long + 1, 0])))
            );
        }
    }
    c.close();
    drop(sleepers);
    all_gone("after the queue limit");

    step("frame limits and protocol violations close the connection");
    // A body over 4 KiB is refused from its header.
    let long = Header {
        len: (HDRSZ + 4097) as u64,
        reqno: 1,
        class: Class::Req as u16,
        typ: MsgType::Syscall as u16,
        arg: 0,
    }
    .encode();
    let mut c = guest(port, "long");
    assert!(c.send_raw(&long).is_ok());
    assert!(c.drain_to_eof().unwrap().is_empty());
    let mut c = connect(port).unwrap();
    let mut b = Vec::new();
    put_syscall_req(&mut b, 1, SYS_PING, &[0; 8]);
    assert!(c.send_raw(&b).is_ok());
    assert_eq!(
        c.drain_to_eof().unwrap(),
        vec![ErrorCode::Auth as u32],
        "no handshake"
    );
    let mut c = guest(port, "badclass");
    let bad = Header {
        len: HDRSZ as u64,
        reqno: 7,
        class: 9,
        typ: 0,
        arg: 0,
    }
    .encode();
    assert!(c.send_raw(&bad).is_ok());
    let _ = c.drain_to_eof().unwrap();
    all_gone("after violations");
    no_violations();

    step("prefork and fork; an unclaimed prefork expires after its parent left");
    let mut parent = guest(port, "parent");
    // `prefork` checks the answer is a RESP carrying a cookie.
    let auth = parent.prefork().unwrap();
    let mut child = connect(port).unwrap();
    assert_eq!(child.fork(&auth).ok(), Some(0));
    let (_, [ppid, _]) = parent.syscall(SYS_GETPID, &[]).unwrap();
    let (_, [cpid, _]) = child.syscall(SYS_GETPID, &[]).unwrap();
    assert_ne!(ppid, cpid);
    assert!(parent.prefork().is_ok());
    assert_eq!(pids().len(), 3, "parent, child, unclaimed prefork");
    parent.close();
    child.close();
    let gone = Instant::now();
    assert!(eventually(5, || live() == 0), "parent and child gone");
    // The unclaimed prefork stays for the timeout (1 s), then the reaper
    // releases it.
    assert_eq!(
        pids().len(),
        1,
        "the unclaimed prefork is kept: {:?}",
        pids()
    );
    all_gone("after the prefork expired");
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "kept for the timeout"
    );

    step("exec");
    let mut c = guest(port, "before");
    let (_, [pid, _]) = c.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(c.exec("after").ok(), Some(0));
    assert_eq!(comm_of(pid as i32).as_deref(), Some("after"));
    assert_eq!(c.syscall(SYS_GETPID, &[]).unwrap().1[0], pid);
    c.close();
    all_gone("after exec");

    step("sp_fini from a client's system call, with the CPU held");
    let mut c = guest(port, "halter");
    let mut other = guest(port, "bystander");
    let calls = CALLS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let r = c.send_syscall(SYS_FINI, &[FINI_MAGIC]).unwrap();
    assert_eq!(
        c.syscall_outcome(r).ok(),
        Some(Ok((0, [0, 0]))),
        "sp_fini answers the call in flight"
    );
    // At once: the writer's kernel call gets the CPU sp_fini's caller held
    // (else the answer would wait for sp_fini's 2 s timeout).
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(CALLS.load(Ordering::Relaxed) > calls);
    assert_eq!(GLOBALS.get().tcp_address(), None);
    // The call returns from the kernel after sp_fini stopped the server.
    assert!(eventually(5, || sleeping() == 0));
    // Nothing is served any more.
    let r = other.send_syscall(SYS_PING, &[1]).unwrap();
    assert!(
        other.syscall_outcome(r).ok().is_none(),
        "no answer after sp_fini"
    );
    assert!(connect(port).is_none(), "no banner after sp_fini");
    no_violations();
}
