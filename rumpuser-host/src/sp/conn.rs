//! One client connection: protocol state shared by the I/O driver, the
//! workers and the kernel threads that call `rumpuser_sp_*`, and the
//! outbound buffer through which every frame is sent.
//!
//! Only the I/O driver (the posix poll loop, or the green connection's
//! reader thread) reads the socket. Every writer appends whole frames to
//! the connection's outbound buffer under one lock and writes what the
//! socket takes without blocking; the rest is written by the I/O driver
//! when the socket becomes writable ([`Runtime::kick`] tells it to watch
//! for that). So no thread ever blocks in `send`, frames never interleave,
//! and the driver never waits for a slow client. Workers and kernel
//! threads (never the driver) wait for the buffer to drain below
//! [`OUT_HIGH_WATER`] before adding more; driver-originated frames are
//! small and bounded per request.

use super::{lock, Cond, Runtime, Server};
use crate::sock;
use core::ffi::c_void;
use rumpuser_core::diag;
use rumpuser_core::sp::conn::{Delivery, Expect, Pending, Phase};
use rumpuser_core::sp::kern::{self, LwpPtr};
use rumpuser_core::sp::wire::MsgType;
use rumpuser_core::Errno;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Blocking senders wait while more than this many bytes are unsent.
pub const OUT_HIGH_WATER: usize = 1 << 20;
/// A client that lets this much driver-originated output pile up is closed.
pub const OUT_HARD_LIMIT: usize = 16 << 20;

/// The protocol state of a connection.
pub struct State {
    /// New, running or dying.
    pub phase: Phase,
    /// The client's main lwp (after the handshake).
    pub main: LwpPtr,
    /// The client's rump pid.
    pub pid: i32,
    /// An exec handshake is being completed.
    pub in_exec: bool,
    /// Work items (syscalls, exec) queued or running for this client.
    pub busy: usize,
    /// The server's outstanding requests.
    pub pending: Pending,
    /// Syscall requests being executed, for `sp_fini`.
    pub inflight: Vec<u64>,
    torn_down: bool,
}

struct Out {
    buf: Vec<u8>,
    off: usize,
    dead: bool,
}

impl Out {
    fn pending(&self) -> usize {
        self.buf.len() - self.off
    }
}

/// A connected client.
pub struct Conn<R: Runtime> {
    /// The cookie given to the kernel as the process's `priv` (never reused).
    pub id: u64,
    fd: OwnedFd,
    /// The server it belongs to.
    pub srv: Arc<Server<R>>,
    st: Mutex<State>,
    cv: R::Cond,
    out: Mutex<Out>,
    out_cv: R::Cond,
    /// The flavour's per-connection state.
    pub ext: R::ConnExt,
}

impl<R: Runtime> Conn<R> {
    pub(super) fn new(id: u64, fd: OwnedFd, srv: Arc<Server<R>>) -> Conn<R> {
        Conn {
            id,
            fd,
            srv,
            st: Mutex::new(State {
                phase: Phase::New,
                main: LwpPtr::NULL,
                pid: 0,
                in_exec: false,
                busy: 0,
                pending: Pending::new(),
                inflight: Vec::new(),
                torn_down: false,
            }),
            cv: R::Cond::default(),
            out: Mutex::new(Out {
                buf: Vec::new(),
                off: 0,
                dead: false,
            }),
            out_cv: R::Cond::default(),
            ext: R::ConnExt::default(),
        }
    }

    /// The socket.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The `priv` cookie handed to `hyp_lwproc_rfork`.
    pub fn cookie(&self) -> *mut c_void {
        self.id as usize as *mut c_void
    }

    /// The protocol state, locked (never hold it across a wait).
    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.st)
    }

    /// Logs a line about this client.
    pub fn log(&self, args: core::fmt::Arguments<'_>) {
        diag::log(format_args!("sysproxy: client {}: {}", self.id, args));
    }

    // ---- output -------------------------------------------------------------

    /// Appends one frame (built by `frame`) and writes what the socket
    /// takes. `may_block`: wait while the buffer is above the high-water
    /// mark (never from the I/O driver). `ENOTCONN` once the client is gone.
    pub fn send(&self, may_block: bool, frame: impl FnOnce(&mut Vec<u8>)) -> Result<(), Errno> {
        let mut o = lock(&self.out);
        if may_block {
            while !o.dead && o.pending() > OUT_HIGH_WATER {
                o = self.out_cv.wait(&self.out, o);
            }
        }
        if o.dead {
            return Err(Errno::ENOTCONN);
        }
        let was_empty = o.pending() == 0;
        frame(&mut o.buf);
        self.flush_locked(&mut o);
        if o.dead {
            return Err(Errno::ENOTCONN);
        }
        if !may_block && o.pending() > OUT_HARD_LIMIT {
            self.log(format_args!("does not read its responses; closing"));
            o.dead = true;
            self.out_cv.notify_all();
            drop(o);
            self.srv.rt.kick(self);
            return Err(Errno::ENOTCONN);
        }
        if was_empty && o.pending() > 0 {
            // The I/O driver must now wait for POLLOUT on this socket.
            drop(o);
            self.srv.rt.kick(self);
        }
        Ok(())
    }

    fn flush_locked(&self, o: &mut Out) {
        while o.pending() > 0 && !o.dead {
            match sock::send_nb(self.fd(), &o.buf[o.off..]) {
                Ok(0) => break,
                Ok(n) => o.off += n,
                Err(_) => {
                    o.dead = true;
                    self.out_cv.notify_all();
                    self.srv.rt.kick(self);
                }
            }
        }
        if o.pending() == 0 {
            o.buf.clear();
            o.off = 0;
        } else if o.off > (1 << 16) && o.off > o.buf.len() / 2 {
            o.buf.drain(..o.off);
            o.off = 0;
        }
    }

    /// Called by the I/O driver when the socket is writable.
    pub fn flush(&self) {
        let mut o = lock(&self.out);
        self.flush_locked(&mut o);
        if o.pending() <= OUT_HIGH_WATER {
            self.out_cv.notify_all();
        }
    }

    /// Writes the outbound buffer, waiting up to `timeout` for the socket.
    pub fn flush_blocking(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            let mut o = lock(&self.out);
            self.flush_locked(&mut o);
            if o.pending() == 0 || o.dead {
                return;
            }
            drop(o);
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.srv.rt.wait_writable(self.fd(), left) {
                return;
            }
        }
    }

    /// True if unsent output waits for the socket.
    pub fn wants_write(&self) -> bool {
        let o = lock(&self.out);
        !o.dead && o.pending() > 0
    }

    /// True if a send failed or the client was cut off for not reading.
    pub fn out_dead(&self) -> bool {
        lock(&self.out).dead
    }

    // ---- server-originated requests -----------------------------------------------

    /// A fresh request number for a request without response.
    pub fn next_reqno(&self) -> u64 {
        self.state().pending.next_reqno()
    }

    /// Sends a request expecting a response and waits for it (the caller
    /// has released its virtual CPU). `ENOTCONN` if the client goes away.
    pub fn request(
        &self,
        expect: Expect,
        encode: impl FnOnce(&mut Vec<u8>, u64),
    ) -> Result<Vec<u8>, Errno> {
        let reqno = {
            let mut st = self.state();
            if st.phase == Phase::Dying {
                return Err(Errno::ENOTCONN);
            }
            st.pending.register(expect)
        };
        if let Err(e) = self.send(true, |o| encode(o, reqno)) {
            self.state().pending.cancel(reqno);
            return Err(e);
        }
        let mut st = self.state();
        loop {
            if let Some(r) = st.pending.take(reqno) {
                return r;
            }
            st = self.cv.wait(&self.st, st);
        }
    }

    /// Hands a response to its waiter (I/O driver).
    pub fn deliver(&self, reqno: u64, typ: MsgType, body: Vec<u8>) -> Delivery {
        let d = self.state().pending.deliver(reqno, typ, body);
        if matches!(d, Delivery::Delivered | Delivery::Short) {
            self.cv.notify_all();
        }
        d
    }

    // ---- work accounting and teardown -------------------------------------------------

    /// A work item for this client was queued.
    pub fn begin_work(&self) {
        self.state().busy += 1;
    }

    /// A work item finished; the last one of a disconnected client tears
    /// it down.
    pub fn end_work(self: &Arc<Self>) {
        let teardown = {
            let mut st = self.state();
            st.busy -= 1;
            self.cv.notify_all();
            st.phase == Phase::Dying && st.busy == 0 && !std::mem::replace(&mut st.torn_down, true)
        };
        if teardown {
            self.teardown();
        }
    }

    /// Waits until this is the only work item of the client (exec).
    pub fn wait_alone(&self) -> MutexGuard<'_, State> {
        let mut st = self.state();
        while st.busy > 1 {
            st = self.cv.wait(&self.st, st);
        }
        st
    }

    /// True once the client is gone.
    pub fn is_dying(&self) -> bool {
        self.state().phase == Phase::Dying
    }

    /// The client is gone (end of stream, error, protocol violation or
    /// server shutdown): wake every waiter with `ENOTCONN`, stop output,
    /// tell the client's kernel threads to exit, and tear down now if no
    /// work is in flight (else the last work item does). I/O driver only.
    pub fn disconnect(self: &Arc<Self>) {
        if self.is_dying() {
            return;
        }
        // Output first, so nothing more reaches the client once its
        // waiters start failing.
        {
            let mut o = lock(&self.out);
            o.dead = true;
            self.out_cv.notify_all();
        }
        sock::shutdown(self.fd());
        let (main, lwpexit) = {
            let mut st = self.state();
            st.phase = Phase::Dying;
            st.pending.fail_all(Errno::ENOTCONN);
            self.cv.notify_all();
            // Hold a work reference while using the main lwp below, so a
            // worker finishing meanwhile cannot tear the client down.
            st.busy += 1;
            (st.main, !st.in_exec)
        };
        if lwpexit && !main.is_null() && !self.srv.is_stopping() {
            // Wake the client's sleeping kernel threads (they see EINTR).
            kern::switch(main);
            kern::lwpexit();
            kern::switch(LwpPtr::NULL);
        }
        self.end_work();
    }

    /// Final release: the client's process goes away with its main lwp.
    fn teardown(self: &Arc<Self>) {
        let main = std::mem::replace(&mut self.state().main, LwpPtr::NULL);
        if !main.is_null() && !self.srv.is_stopping() {
            kern::switch(main);
            kern::release();
        }
        self.srv.orphan_preforks(self.id);
        R::globals().unregister(self.id);
        self.srv
            .live
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.srv.rt.wake_server();
    }
}
