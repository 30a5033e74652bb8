//! The poll loop (`spserver` of rumpuser_sp.c): accepts clients, reads and
//! assembles frames, handles handshakes and preforks inline, queues
//! syscalls and execs for the worker pool, delivers responses to waiting
//! server requests, writes pending output, and expires orphaned preforks.

use super::conn::{Conn, LwpPtr};
use super::pool::Work;
use super::{kern, Prefork, Shared, NEXT_ID, REGISTRY};
use rumpuser_core::diag;
use rumpuser_core::sp::conn::{body_limit, classify, Comm, Delivery, Event, Request};
use rumpuser_core::sp::frame::Assembler;
use rumpuser_core::sp::wire::*;
use rumpuser_core::sp::{RUMP_RFFD_CLEAR, RUMP_RFFD_COPY, RUMP_RFFD_SHARE};
use rumpuser_core::types::RandomFlags;
use rumpuser_host::sock::{self, Listener};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Bytes read per `recv`.
const READ_CHUNK: usize = 64 * 1024;
/// Reads per client per loop iteration (fairness between clients).
const READS_PER_TURN: usize = 4;

struct Slot {
    conn: Arc<Conn>,
    asm: Assembler,
}

fn pfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Runs until `sp_fini`.
pub(crate) fn run(srv: Arc<Shared>, listener: Listener) {
    let lfd = listener.fd.as_raw_fd();
    let mut slots: Vec<Slot> = Vec::new();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        pfds.clear();
        pfds.push(pfd(srv.waker.fd(), libc::POLLIN));
        pfds.push(pfd(lfd, libc::POLLIN));
        for s in &slots {
            let ev = if s.conn.wants_write() {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            };
            pfds.push(pfd(s.conn.fd(), ev));
        }
        let timeout = if srv.has_expiring_preforks() {
            1000
        } else {
            -1
        };
        if let Err(e) = sock::poll(&mut pfds, timeout) {
            diag::log(format_args!("sysproxy: poll failed: {e:?}; server stops"));
            break;
        }
        if pfds[0].revents != 0 {
            srv.waker.drain();
        }
        if srv.stopping.load(Ordering::Acquire) {
            break;
        }
        let polled = slots.len();
        for (i, s) in slots.iter_mut().enumerate().take(polled) {
            let re = pfds[i + 2].revents;
            if re & libc::POLLOUT != 0 {
                s.conn.flush();
            }
            if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                read_client(&srv, s, &mut buf);
            }
            if s.conn.out_dead() {
                s.conn.disconnect();
            }
        }
        slots.retain(|s| !s.conn.is_dying());
        if pfds[1].revents != 0 {
            accept_clients(&srv, lfd, &mut slots);
        }
        srv.reap_preforks(Instant::now());
    }
    // Shutdown: no kernel calls any more (the kernel is halting).
    for s in &slots {
        s.conn.disconnect();
    }
    srv.preforks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
    srv.pool.close();
    drop(listener);
}

fn accept_clients(srv: &Arc<Shared>, lfd: i32, slots: &mut Vec<Slot>) {
    loop {
        let fd = match sock::accept(lfd) {
            Ok(Some(fd)) => fd,
            Ok(None) => return,
            Err(e) => {
                diag::log(format_args!("sysproxy: accept failed: {e:?}"));
                return;
            }
        };
        if srv.live.load(Ordering::Acquire) >= srv.cfg.max_clients {
            // Full: close without a banner, as the reference does.
            diag::log(format_args!(
                "sysproxy: {} clients connected, refusing another",
                srv.cfg.max_clients
            ));
            continue;
        }
        match sock::send_nb(fd.as_raw_fd(), &srv.banner) {
            Ok(n) if n == srv.banner.len() => {}
            _ => continue,
        }
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, fd, Arc::clone(srv)));
        srv.live.fetch_add(1, Ordering::AcqRel);
        REGISTRY
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&conn));
        slots.push(Slot {
            conn,
            asm: Assembler::new(),
        });
    }
}

fn read_client(srv: &Arc<Shared>, s: &mut Slot, buf: &mut [u8]) {
    for _ in 0..READS_PER_TURN {
        let n = match sock::recv_nb(s.conn.fd(), buf) {
            Ok(Some(0)) => {
                s.conn.disconnect();
                return;
            }
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(e) => {
                if e != rumpuser_core::Errno::ECONNRESET {
                    s.conn.log(format_args!("read error {}", e.name()));
                }
                s.conn.disconnect();
                return;
            }
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let conn = &s.conn;
            let r = s.asm.push(rest, |h| body_limit(&conn.state().pending, h));
            match r {
                Ok((used, frame)) => {
                    rest = &rest[used..];
                    if let Some(f) = frame {
                        let (phase, in_exec) = {
                            let st = conn.state();
                            (st.phase, st.in_exec)
                        };
                        match classify(phase, in_exec, f) {
                            Ok(ev) => handle(srv, conn, ev),
                            Err(v) => {
                                conn.log(format_args!("{}; closing", v.why));
                                if let Some(code) = v.reply {
                                    let _ = conn.send(false, |o| put_error(o, v.reqno, code));
                                }
                                conn.disconnect();
                            }
                        }
                        if conn.is_dying() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    conn.log(format_args!("{e}; closing"));
                    conn.disconnect();
                    return;
                }
            }
        }
        if n < buf.len() {
            return;
        }
    }
}

fn fail(conn: &Arc<Conn>, reqno: u64, code: ErrorCode, why: core::fmt::Arguments<'_>) {
    conn.log(format_args!("{why}; closing"));
    let _ = conn.send(false, |o| put_error(o, reqno, code));
    conn.disconnect();
}

fn handle(srv: &Arc<Shared>, conn: &Arc<Conn>, ev: Event) {
    match ev {
        Event::Response { reqno, typ, body } => match conn.deliver(reqno, typ, body) {
            Delivery::Delivered => {}
            Delivery::Short => conn.log(format_args!(
                "response {reqno} has the wrong length; the copy fails with EFAULT"
            )),
            Delivery::Unmatched => conn.log(format_args!(
                "response {reqno} matches no request; discarded"
            )),
            Delivery::Violation(why) => fail(
                conn,
                reqno,
                ErrorCode::MalformedRequest,
                format_args!("{why}"),
            ),
        },
        Event::Request { reqno, req } => match req {
            Request::Guest { comm } => guest(conn, reqno, comm),
            Request::Fork { auth, cancel } => fork(srv, conn, reqno, auth, cancel),
            Request::Prefork => prefork(srv, conn, reqno),
            Request::Exec { comm } => exec(srv, conn, reqno, comm),
            Request::Syscall { sysnum, args } => {
                conn.begin_work();
                let w = Work::Syscall {
                    conn: Arc::clone(conn),
                    reqno,
                    sysnum,
                    args,
                };
                if srv.pool.submit(w, false).is_err() {
                    let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::TryAgain));
                    conn.end_work();
                }
            }
        },
    }
}

/// Common end of the GUEST and FORK handshakes: the calling thread's
/// curlwp is the client's new main lwp.
fn handshake_done(conn: &Arc<Conn>, reqno: u64) {
    let main = kern::curlwp();
    let pid = kern::getpid();
    kern::switch(LwpPtr::NULL);
    {
        let mut st = conn.state();
        st.main = main;
        st.pid = pid;
        st.phase = rumpuser_core::sp::conn::Phase::Running;
    }
    let _ = conn.send(false, |o| put_handshake_resp(o, reqno, 0));
}

fn guest(conn: &Arc<Conn>, reqno: u64, comm: Comm) {
    let e = kern::rfork(conn.cookie(), RUMP_RFFD_CLEAR, comm.as_ptr());
    if e != 0 {
        // Reference: shut down without a response.
        conn.log(format_args!("rfork failed: {e}; closing"));
        conn.disconnect();
        return;
    }
    handshake_done(conn, reqno);
}

fn fork(srv: &Arc<Shared>, conn: &Arc<Conn>, reqno: u64, auth: [u8; AUTH_LEN], cancel: bool) {
    let Some(pf) = srv.take_prefork(&auth) else {
        fail(
            conn,
            reqno,
            ErrorCode::InvalidPrefork,
            format_args!("unknown prefork cookie"),
        );
        return;
    };
    kern::switch(pf.lwp);
    if cancel {
        kern::release();
        conn.disconnect();
        return;
    }
    // Fork again so the process carries this connection's cookie.
    let e = kern::rfork(conn.cookie(), RUMP_RFFD_SHARE, core::ptr::null());
    if e != 0 {
        kern::release();
        fail(
            conn,
            reqno,
            ErrorCode::RforkFailed,
            format_args!("rfork failed: {e}"),
        );
        return;
    }
    let main = kern::curlwp();
    kern::switch(pf.lwp);
    kern::release();
    kern::switch(main);
    handshake_done(conn, reqno);
}

fn prefork(srv: &Arc<Shared>, conn: &Arc<Conn>, reqno: u64) {
    if srv.count_preforks(conn.id) >= srv.cfg.max_preforks {
        conn.log(format_args!(
            "{} unclaimed preforks; refusing another",
            srv.cfg.max_preforks
        ));
        let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::NoMem));
        return;
    }
    let main = conn.state().main;
    kern::switch(main);
    let e = kern::rfork(conn.cookie(), RUMP_RFFD_COPY, core::ptr::null());
    if e != 0 {
        kern::switch(LwpPtr::NULL);
        conn.log(format_args!("prefork: rfork failed: {e}"));
        let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::RforkFailed));
        return;
    }
    let lwp = kern::curlwp();
    let mut auth = [0u8; AUTH_LEN];
    if !fill_random(&mut auth) {
        kern::release();
        let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::NoMem));
        return;
    }
    kern::switch(LwpPtr::NULL);
    srv.preforks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Prefork {
            auth,
            lwp,
            parent: conn.id,
            expires: None,
        });
    let _ = conn.send(false, |o| put_prefork_resp(o, reqno, &auth));
}

fn fill_random(buf: &mut [u8]) -> bool {
    let mut off = 0;
    while off < buf.len() {
        match rumpuser_host::random::fill(
            &mut buf[off..],
            RandomFlags {
                hard: false,
                nowait: false,
            },
        ) {
            Ok(n) => off += n,
            Err(_) => return false,
        }
    }
    true
}

fn exec(srv: &Arc<Shared>, conn: &Arc<Conn>, reqno: u64, comm: Comm) {
    let main = {
        let mut st = conn.state();
        st.in_exec = true;
        st.main
    };
    kern::switch(main);
    kern::lwpexit();
    kern::switch(LwpPtr::NULL);
    conn.begin_work();
    let w = Work::Exec {
        conn: Arc::clone(conn),
        reqno,
        comm,
    };
    if srv.pool.submit(w, true).is_err() {
        conn.state().in_exec = false;
        conn.end_work();
        fail(
            conn,
            reqno,
            ErrorCode::TryAgain,
            format_args!("no worker thread for exec"),
        );
    }
}
