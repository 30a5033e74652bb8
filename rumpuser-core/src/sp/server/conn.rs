//! One client connection: protocol state shared by the I/O driver, the
//! workers and the kernel threads that call `rumpuser_sp_*`, and the
//! outbound buffer through which every frame is sent.
//!
//! Only the I/O driver (the posix poll loop, a green connection's reader
//! thread, a [`blocking`](super::blocking) reader) reads the socket. Every
//! writer appends whole frames to the connection's outbound buffer under
//! one lock, so frames never interleave. With
//! [`Runtime::INLINE_WRITES`] the appender also writes what the
//! non-blocking socket takes at once and the I/O driver writes the rest
//! when the socket becomes writable ([`Runtime::kick`] tells it to watch
//! for that); otherwise the connection's writer thread alone writes
//! ([`Conn::write_out`]), outside the lock. Either way no thread appending
//! a frame ever blocks in `send`, and the driver never waits for a slow
//! client. Workers and kernel threads (never the driver) wait for the
//! buffer to drain below [`OUT_HIGH_WATER`] before adding more;
//! driver-originated frames are small and bounded per request.

use super::{Cond, Lock, Locks, Mutex, Runtime, Server, Sock, Transport, L};
use crate::diag;
use crate::errno::Errno;
use crate::sp::conn::{Delivery, Expect, Pending, Phase};
use crate::sp::kern::{self, LwpPtr};
use crate::sp::wire::MsgType;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::time::Duration;

/// Blocking senders wait while more than this many bytes are unsent.
pub const OUT_HIGH_WATER: usize = 1 << 20;
/// A client that lets this much driver-originated output pile up is closed.
pub const OUT_HARD_LIMIT: usize = 16 << 20;
/// Most bytes a writer thread hands to one `send` ([`Conn::write_out`]).
pub const WRITE_CHUNK: usize = 64 * 1024;
/// How long a disconnect waits for a writer thread to write what was
/// buffered before it (the `ERROR` frame of a protocol violation).
const LINGER: Duration = Duration::from_secs(1);

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
    /// No more output: the client is gone, or a send failed.
    dead: bool,
    /// Being disconnected: no new frames; a writer thread writes what is
    /// buffered (an `ERROR` frame before the close) for [`LINGER`].
    closing: bool,
}

impl Out {
    fn pending(&self) -> usize {
        self.buf.len() - self.off
    }

    /// `n` more bytes were written.
    fn advance(&mut self, n: usize) {
        self.off += n;
        if self.pending() == 0 {
            self.buf.clear();
            self.off = 0;
        } else if self.off > (1 << 16) && self.off > self.buf.len() / 2 {
            self.buf.drain(..self.off);
            self.off = 0;
        }
    }
}

/// A connected client.
pub struct Conn<R: Runtime> {
    /// The cookie given to the kernel as the process's `priv` (never reused).
    pub id: u64,
    sock: Sock<R>,
    /// The server it belongs to.
    pub srv: Arc<Server<R>>,
    st: Mutex<R, State>,
    cv: Cond<R>,
    out: Mutex<R, Out>,
    out_cv: Cond<R>,
    /// The flavour's per-connection state.
    pub ext: R::ConnExt,
}

impl<R: Runtime> Conn<R> {
    pub(super) fn new(id: u64, sock: Sock<R>, srv: Arc<Server<R>>) -> Conn<R> {
        Conn {
            id,
            sock,
            srv,
            st: Lock::new(State {
                phase: Phase::New,
                main: LwpPtr::NULL,
                pid: 0,
                in_exec: false,
                busy: 0,
                pending: Pending::new(),
                inflight: Vec::new(),
                torn_down: false,
            }),
            cv: Default::default(),
            out: Lock::new(Out {
                buf: Vec::new(),
                off: 0,
                dead: false,
                closing: false,
            }),
            out_cv: Default::default(),
            ext: R::ConnExt::default(),
        }
    }

    /// The socket.
    pub fn sock(&self) -> &Sock<R> {
        &self.sock
    }

    /// The `priv` cookie handed to `hyp_lwproc_rfork`.
    pub fn cookie(&self) -> *mut c_void {
        self.id as usize as *mut c_void
    }

    /// The protocol state, locked (never hold it across a wait).
    pub fn state(&self) -> <Mutex<R, State> as Lock<State>>::Guard<'_> {
        self.st.lock()
    }

    /// Logs a line about this client.
    pub fn log(&self, args: core::fmt::Arguments<'_>) {
        diag::log(format_args!("sysproxy: client {}: {}", self.id, args));
    }

    // ---- output -------------------------------------------------------------

    /// Appends one frame (built by `frame`) and, with inline writes,
    /// writes what the socket takes. `may_block`: wait while the buffer is
    /// above the high-water mark (never from the I/O driver). `ENOTCONN`
    /// once the client is gone.
    pub fn send(&self, may_block: bool, frame: impl FnOnce(&mut Vec<u8>)) -> Result<(), Errno> {
        let mut o = self.out.lock();
        if may_block {
            while !o.dead && !o.closing && o.pending() > OUT_HIGH_WATER {
                o = L::<R>::wait(&self.out_cv, &self.out, o);
            }
        }
        if o.dead || o.closing {
            return Err(Errno::ENOTCONN);
        }
        let was_empty = o.pending() == 0;
        frame(&mut o.buf);
        if R::INLINE_WRITES {
            self.flush_locked(&mut o);
            if o.dead {
                return Err(Errno::ENOTCONN);
            }
        }
        if !may_block && o.pending() > OUT_HARD_LIMIT {
            self.log(format_args!("does not read its responses; closing"));
            o.dead = true;
            L::<R>::notify_all(&self.out_cv);
            drop(o);
            self.srv.rt.kick(self);
            return Err(Errno::ENOTCONN);
        }
        if was_empty && o.pending() > 0 {
            // The I/O driver must now wait for POLLOUT on this socket (or
            // the writer thread write).
            drop(o);
            self.srv.rt.kick(self);
        }
        Ok(())
    }

    fn flush_locked(&self, o: &mut Out) {
        while o.pending() > 0 && !o.dead {
            match R::Transport::send(&self.sock, &o.buf[o.off..]) {
                Ok(0) => break,
                Ok(n) => o.off += n,
                Err(_) => {
                    o.dead = true;
                    L::<R>::notify_all(&self.out_cv);
                    self.srv.rt.kick(self);
                }
            }
        }
        o.advance(0);
    }

    /// Called by the I/O driver of an inline writer when the socket is
    /// writable.
    pub fn flush(&self) {
        let mut o = self.out.lock();
        self.flush_locked(&mut o);
        if o.pending() <= OUT_HIGH_WATER {
            L::<R>::notify_all(&self.out_cv);
        }
    }

    /// The writer thread of a runtime without inline writes: waits for
    /// output and writes it (in pieces of at most [`WRITE_CHUNK`] bytes,
    /// copied out so that no lock is held while `send` blocks), until the
    /// output dies (client gone, a send failed, or cut off for not
    /// reading). Never returns while the connection can still send.
    pub fn write_out(&self) {
        let mut chunk = Vec::new();
        loop {
            {
                let mut o = self.out.lock();
                while !o.dead && o.pending() == 0 {
                    if o.closing {
                        return;
                    }
                    o = L::<R>::wait(&self.out_cv, &self.out, o);
                }
                if o.dead {
                    return;
                }
                let n = o.pending().min(WRITE_CHUNK);
                chunk.clear();
                chunk.extend_from_slice(&o.buf[o.off..o.off + n]);
            }
            let r = R::Transport::send(&self.sock, &chunk);
            let mut o = self.out.lock();
            match r {
                Ok(n) if n > 0 && !o.dead => {
                    o.advance(n);
                    if o.pending() <= OUT_HIGH_WATER {
                        L::<R>::notify_all(&self.out_cv);
                    }
                }
                _ => {
                    o.dead = true;
                    L::<R>::notify_all(&self.out_cv);
                    return;
                }
            }
        }
    }

    /// Writes the outbound buffer, waiting up to `timeout` for the socket
    /// (inline writers), or for the writer thread to write it.
    pub fn flush_blocking(&self, timeout: Duration) {
        let end = L::<R>::now_ns().saturating_add(super::duration_ns(timeout));
        if !R::INLINE_WRITES {
            self.srv.rt.kick(self);
            let mut o = self.out.lock();
            while !o.dead && o.pending() > 0 && L::<R>::now_ns() < end {
                o = L::<R>::wait_until(&self.out_cv, &self.out, o, end);
            }
            return;
        }
        loop {
            let mut o = self.out.lock();
            self.flush_locked(&mut o);
            if o.pending() == 0 || o.dead {
                return;
            }
            drop(o);
            let left = end.saturating_sub(L::<R>::now_ns());
            if left == 0
                || !self
                    .srv
                    .rt
                    .wait_writable(&self.sock, Duration::from_nanos(left))
            {
                return;
            }
        }
    }

    /// Wakes a writer thread waiting in [`write_out`](Self::write_out).
    pub(super) fn wake_output(&self) {
        L::<R>::notify_all(&self.out_cv);
    }

    /// True if unsent output waits for the socket.
    pub fn wants_write(&self) -> bool {
        let o = self.out.lock();
        !o.dead && o.pending() > 0
    }

    /// True if a send failed or the client was cut off for not reading.
    pub fn out_dead(&self) -> bool {
        self.out.lock().dead
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
            st = L::<R>::wait(&self.cv, &self.st, st);
        }
    }

    /// Hands a response to its waiter (I/O driver).
    pub fn deliver(&self, reqno: u64, typ: MsgType, body: Vec<u8>) -> Delivery {
        let d = self.state().pending.deliver(reqno, typ, body);
        if matches!(d, Delivery::Delivered | Delivery::Short) {
            L::<R>::notify_all(&self.cv);
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
            L::<R>::notify_all(&self.cv);
            st.phase == Phase::Dying && st.busy == 0 && !core::mem::replace(&mut st.torn_down, true)
        };
        if teardown {
            self.teardown();
        }
    }

    /// Waits until this is the only work item of the client (exec).
    pub fn wait_alone(&self) -> <Mutex<R, State> as Lock<State>>::Guard<'_> {
        let mut st = self.state();
        while st.busy > 1 {
            st = L::<R>::wait(&self.cv, &self.st, st);
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
        // waiters start failing. A writer thread first writes what was
        // buffered (an inline writer already wrote what the socket took).
        {
            let mut o = self.out.lock();
            o.closing = true;
            L::<R>::notify_all(&self.out_cv);
            if !R::INLINE_WRITES {
                let end = L::<R>::now_ns().saturating_add(super::duration_ns(LINGER));
                while !o.dead && o.pending() > 0 && L::<R>::now_ns() < end {
                    o = L::<R>::wait_until(&self.out_cv, &self.out, o, end);
                }
            }
            o.dead = true;
            L::<R>::notify_all(&self.out_cv);
        }
        R::Transport::shutdown(&self.sock);
        let (main, lwpexit) = {
            let mut st = self.state();
            st.phase = Phase::Dying;
            st.pending.fail_all(Errno::ENOTCONN);
            L::<R>::notify_all(&self.cv);
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
        let main = core::mem::replace(&mut self.state().main, LwpPtr::NULL);
        if !main.is_null() && !self.srv.is_stopping() {
            kern::switch(main);
            kern::release();
        }
        self.srv.orphan_preforks(self.id);
        R::globals().unregister(self.id);
        self.srv
            .live
            .fetch_sub(1, core::sync::atomic::Ordering::AcqRel);
        self.srv.rt.wake_server();
    }
}
