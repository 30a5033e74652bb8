//! What the server does with its sockets and frames, whoever drives it:
//! accepting clients ([`accept_pending`], [`admit`]), reading and assembling frames
//! and acting on them ([`read_available`]: handshakes and preforks inline,
//! system calls and execs queued as [`Work`]), and executing work items
//! on a worker ([`run_work`], `serv_workbouncer` of rumpuser_sp.c).
//!
//! The I/O driver never runs a system call itself: a syscall may issue
//! copyin requests whose responses only the driver can read.

use super::{Conn, Listener, Lock, Prefork, Runtime, Server, Sock, Transport};
use crate::diag;
use crate::errno::Errno;
use crate::sp::conn::{
    body_limit, classify, kernel_sysnum, Comm, Delivery, Event, Phase, Request, SyscallArgs,
};
use crate::sp::frame::Assembler;
use crate::sp::kern::{self, LwpPtr};
use crate::sp::wire::*;
use crate::sp::{RUMP_RFFD_CLEAR, RUMP_RFFD_COPY, RUMP_RFFD_SHARE};
use alloc::sync::Arc;
use core::ffi::c_long;
use core::sync::atomic::Ordering;

/// Bytes read per `recv` (a good size for the buffer [`read_available`] takes).
pub const READ_CHUNK: usize = 64 * 1024;
/// Full reads per client per call of [`read_available`] (fairness).
const READS_PER_TURN: usize = 4;

/// Accepts every waiting client of the non-blocking listening socket
/// `l` and [`admit`]s it, handing each admitted connection to `adopt`
/// (the I/O driver).
pub fn accept_pending<R: Runtime>(
    srv: &Arc<Server<R>>,
    l: &Listener<R>,
    mut adopt: impl FnMut(Arc<Conn<R>>),
) {
    loop {
        let sock = match R::Transport::accept(l) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                diag::log(format_args!("sysproxy: accept failed: {e:?}"));
                return;
            }
        };
        if let Some(conn) = admit(srv, sock) {
            adopt(conn);
        }
    }
}

/// A client was accepted: refuses it (closed without a banner) if the
/// server is full, else sends the banner and registers the connection.
pub fn admit<R: Runtime>(srv: &Arc<Server<R>>, sock: Sock<R>) -> Option<Arc<Conn<R>>> {
    if srv.live.load(Ordering::Acquire) >= srv.cfg.max_clients {
        // Full: close without a banner, as the reference does.
        diag::log(format_args!(
            "sysproxy: {} clients connected, refusing another",
            srv.cfg.max_clients
        ));
        R::Transport::close(&sock);
        return None;
    }
    match R::Transport::send(&sock, &srv.banner) {
        Ok(n) if n == srv.banner.len() => {}
        _ => {
            R::Transport::close(&sock);
            return None;
        }
    }
    let g = R::globals();
    let id = g.next_id.fetch_add(1, Ordering::Relaxed);
    let conn = Arc::new(Conn::new(id, sock, Arc::clone(srv)));
    srv.live.fetch_add(1, Ordering::AcqRel);
    g.register(&conn);
    Some(conn)
}

/// What [`read_available`] left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Nothing more to read now: wait for the socket.
    WouldBlock,
    /// The read budget is used up and more may be waiting: let other
    /// clients have a turn, then call again.
    More,
    /// The client is gone (the connection was disconnected).
    Closed,
}

/// Reads what the client sent (a bounded amount), assembles frames in
/// `asm` and acts on each one. `buf` is scratch space (see [`READ_CHUNK`]).
pub fn read_available<R: Runtime>(
    conn: &Arc<Conn<R>>,
    asm: &mut Assembler,
    buf: &mut [u8],
) -> ReadOutcome {
    for _ in 0..READS_PER_TURN {
        let n = match R::Transport::recv(conn.sock(), buf) {
            Ok(Some(0)) => {
                conn.disconnect();
                return ReadOutcome::Closed;
            }
            // A server stopped while a blocking receive waited acts on
            // nothing more.
            Ok(Some(_)) if conn.srv.is_stopping() => {
                conn.disconnect();
                return ReadOutcome::Closed;
            }
            Ok(Some(n)) => n,
            Ok(None) => return ReadOutcome::WouldBlock,
            Err(e) => {
                if e != Errno::ECONNRESET {
                    conn.log(format_args!("read error {}", e.name()));
                }
                conn.disconnect();
                return ReadOutcome::Closed;
            }
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let r = asm.push(rest, |h| body_limit(&conn.state().pending, h));
            match r {
                Ok((used, frame)) => {
                    rest = &rest[used..];
                    if let Some(f) = frame {
                        let (phase, in_exec) = {
                            let st = conn.state();
                            (st.phase, st.in_exec)
                        };
                        match classify(phase, in_exec, f) {
                            Ok(ev) => handle(conn, ev),
                            Err(v) => {
                                conn.log(format_args!("{}; closing", v.why));
                                if let Some(code) = v.reply {
                                    let _ = conn.send(false, |o| put_error(o, v.reqno, code));
                                }
                                conn.disconnect();
                            }
                        }
                        if conn.is_dying() {
                            return ReadOutcome::Closed;
                        }
                    }
                }
                Err(e) => {
                    conn.log(format_args!("{e}; closing"));
                    conn.disconnect();
                    return ReadOutcome::Closed;
                }
            }
        }
        if n < buf.len() {
            return ReadOutcome::WouldBlock;
        }
    }
    ReadOutcome::More
}

fn fail<R: Runtime>(
    conn: &Arc<Conn<R>>,
    reqno: u64,
    code: ErrorCode,
    why: core::fmt::Arguments<'_>,
) {
    conn.log(format_args!("{why}; closing"));
    let _ = conn.send(false, |o| put_error(o, reqno, code));
    conn.disconnect();
}

fn handle<R: Runtime>(conn: &Arc<Conn<R>>, ev: Event) {
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
            Request::Fork { auth, cancel } => fork(conn, reqno, auth, cancel),
            Request::Prefork => prefork(conn, reqno),
            Request::Exec { comm } => exec(conn, reqno, comm),
            Request::Syscall { sysnum, args } => {
                conn.begin_work();
                let w = Work::Syscall {
                    conn: Arc::clone(conn),
                    reqno,
                    sysnum,
                    args,
                };
                if conn.srv.rt.submit(w, false).is_err() {
                    let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::TryAgain));
                    conn.end_work();
                }
            }
        },
    }
}

/// Common end of the GUEST and FORK handshakes: the calling thread's
/// curlwp is the client's new main lwp.
fn handshake_done<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64) {
    let main = kern::curlwp();
    let pid = kern::getpid();
    kern::switch(LwpPtr::NULL);
    {
        let mut st = conn.state();
        st.main = main;
        st.pid = pid;
        st.phase = Phase::Running;
    }
    let _ = conn.send(false, |o| put_handshake_resp(o, reqno, 0));
}

fn guest<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64, comm: Comm) {
    let e = kern::rfork(conn.cookie(), RUMP_RFFD_CLEAR, comm.as_ptr());
    if e != 0 {
        // Reference: shut down without a response.
        conn.log(format_args!("rfork failed: {e}; closing"));
        conn.disconnect();
        return;
    }
    handshake_done(conn, reqno);
}

fn fork<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64, auth: [u8; AUTH_LEN], cancel: bool) {
    let Some(pf) = conn.srv.take_prefork(&auth) else {
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

fn prefork<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64) {
    let srv = &conn.srv;
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
    if !R::random(&mut auth) {
        kern::release();
        let _ = conn.send(false, |o| put_error(o, reqno, ErrorCode::NoMem));
        return;
    }
    kern::switch(LwpPtr::NULL);
    srv.preforks.lock().push(Prefork {
        auth,
        lwp,
        parent: conn.id,
        expires: None,
    });
    let _ = conn.send(false, |o| put_prefork_resp(o, reqno, &auth));
}

fn exec<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64, comm: Comm) {
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
    if conn.srv.rt.submit(w, true).is_err() {
        conn.state().in_exec = false;
        conn.end_work();
        fail(
            conn,
            reqno,
            ErrorCode::TryAgain,
            format_args!("no worker for exec"),
        );
    }
}

/// A unit of work for a client, executed by [`run_work`] on a worker.
pub enum Work<R: Runtime> {
    /// A system call.
    Syscall {
        /// The client.
        conn: Arc<Conn<R>>,
        /// Request number to answer.
        reqno: u64,
        /// Wire syscall number.
        sysnum: u32,
        /// Argument structure.
        args: SyscallArgs,
    },
    /// The second half of an exec handshake.
    Exec {
        /// The client.
        conn: Arc<Conn<R>>,
        /// Request number to answer.
        reqno: u64,
        /// New program name.
        comm: Comm,
    },
}

/// Executes a work item (on a worker holding no virtual CPU).
pub fn run_work<R: Runtime>(w: Work<R>) {
    match w {
        Work::Syscall {
            conn,
            reqno,
            sysnum,
            args,
        } => run_syscall(&conn, reqno, sysnum, args),
        Work::Exec { conn, reqno, comm } => run_exec(&conn, reqno, comm),
    }
}

/// `serv_handlesyscall`: a fresh lwp in the client's process, the
/// syscall, release, reply.
fn run_syscall<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64, sysnum: u32, mut args: SyscallArgs) {
    let (pid, dying) = {
        let st = conn.state();
        (st.pid, st.phase == Phase::Dying)
    };
    if dying {
        conn.end_work();
        return;
    }
    let (err, rv): (i32, [c_long; 2]) = match kernel_sysnum(sysnum) {
        None => (Errno::ENOSYS.raw(), [0, 0]),
        Some(num) => {
            let e = kern::newlwp(pid);
            if e != 0 {
                (e, [-1, 0])
            } else {
                conn.state().inflight.push(reqno);
                let mut rv: [c_long; 2] = [0, 0];
                let err = kern::syscall(num, args.as_mut_ptr(), &mut rv);
                let answered = {
                    let mut st = conn.state();
                    match st.inflight.iter().position(|&r| r == reqno) {
                        Some(i) => {
                            st.inflight.swap_remove(i);
                            false
                        }
                        // sp_fini already answered it.
                        None => true,
                    }
                };
                kern::release();
                if answered {
                    conn.end_work();
                    return;
                }
                (err, rv)
            }
        }
    };
    let _ = conn.send(true, |o| put_syscall_resp(o, reqno, err, rv));
    conn.end_work();
}

/// `serv_handleexec`: wait until the client's other work has drained (its
/// lwps were told to exit), then complete the exec and answer.
fn run_exec<R: Runtime>(conn: &Arc<Conn<R>>, reqno: u64, comm: Comm) {
    let (main, dying) = {
        let st = conn.wait_alone();
        (st.main, st.phase == Phase::Dying)
    };
    if !dying && !conn.srv.is_stopping() {
        kern::switch(main);
        kern::execnotify(comm.as_ptr());
        kern::switch(LwpPtr::NULL);
    }
    conn.state().in_exec = false;
    if !dying {
        let _ = conn.send(true, |o| put_handshake_resp(o, reqno, 0));
    }
    conn.end_work();
}
