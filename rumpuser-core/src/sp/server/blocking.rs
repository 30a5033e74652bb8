//! A whole [`Runtime`] for transports whose calls block only the calling
//! thread: the sockets of a guest's own rump kernel, entered through
//! `hyp_syscall` by green threads on one CPU (bare metal, Xen), where a
//! thread blocked in `accept` or `recv` sleeps inside the kernel while the
//! others run. A platform supplies a [`Host`] (its locks, its transport,
//! thread creation, randomness, parameters) and exports
//! `Proxy<Blocking<ItsHost>>`.
//!
//! Threads, none of which holds a virtual CPU between its kernel entries
//! (each socket call is one entry, as an lwp of its own in the process
//! that called `rump_init`, like any thread entering the kernel without
//! an lwp):
//!
//! * the *acceptor* blocks in `accept`, admits clients (limits, banner)
//!   and starts their two threads;
//! * a *reader* per client blocks in `recv`, assembles frames and acts on
//!   them ([`read_available`]: handshakes and preforks inline, system
//!   calls and execs to the pool, responses to waiting requests);
//! * a *writer* per client writes the connection's output
//!   ([`Conn::write_out`]), so threads that append frames — workers, and
//!   kernel threads in `rumpuser_sp_copyin` running as a remote client's
//!   lwp, whose kernel calls would act on the wrong process — never touch
//!   a socket;
//! * the *reaper* releases orphaned preforks when they expire;
//! * *workers* (created on demand up to `max_workers`, `idle_workers`
//!   kept) execute system calls and execs.
//!
//! A client that is gone (end of stream, an error, a protocol violation)
//! is disconnected by its reader, whose `shutdown` also ends a writer
//! blocked in `send`; a writer whose output died (a failed send, or a
//! client cut off for not reading) shuts the socket down, which ends the
//! reader's `recv`. The last of the two closes the socket. After
//! `sp_fini` the acceptor and the readers act on nothing more (the
//! kernel is halting; they may stay blocked in their kernel calls).

use super::{
    admit, read_available, run_work, Config, Conn, Globals, Lock, Locks, ReadOutcome, Runtime,
    Server, Sock, Transport, Work,
};
use crate::diag;
use crate::errno::Errno;
use crate::sp::frame::Assembler;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;

/// Bytes a reader asks for per `recv` (requests are small; a copyin
/// response is at most what the kernel asked for).
pub const READ_CHUNK: usize = 16 * 1024;

/// What a platform supplies to [`Blocking`].
pub trait Host: Sized + Send + Sync + 'static {
    /// Mutex, condition variable and clock of the platform's threads.
    type Locks: Locks;
    /// Sockets whose `accept`, `recv` and `send` block the calling thread.
    type Transport: Transport;
    /// The platform's process-wide server slot and registry
    /// (a [`super::LazyGlobals`] static).
    fn globals() -> &'static Globals<Blocking<Self>>;
    /// Limits and options ([`Config::from_lookup`] over the platform's
    /// parameters).
    fn config() -> Config;
    /// Random bytes for prefork cookies; false without randomness.
    fn random(buf: &mut [u8]) -> bool;
    /// Starts a thread (holding no virtual CPU, without an lwp) running
    /// `f`; `name` is for diagnostics.
    fn spawn(f: Box<dyn FnOnce() + Send>, name: &'static str) -> Result<(), Errno>;
}

/// The runtime over a [`Host`].
pub struct Blocking<H: Host> {
    pool: Arc<Pool<H>>,
    /// Bumped by `wake_server`; the reaper waits on `wake_cv`.
    wake: <H::Locks as Locks>::Mutex<u64>,
    wake_cv: <H::Locks as Locks>::Cond,
    _host: PhantomData<fn() -> H>,
}

/// Per connection: how many of its two threads (reader, writer) still
/// use the socket; the last one closes it.
#[derive(Default)]
pub struct Drivers(AtomicUsize);

impl<H: Host> Runtime for Blocking<H> {
    type Locks = H::Locks;
    type Transport = H::Transport;
    type ConnExt = Drivers;
    const INLINE_WRITES: bool = false;

    fn globals() -> &'static Globals<Self> {
        H::globals()
    }

    fn config() -> Config {
        H::config()
    }

    fn random(buf: &mut [u8]) -> bool {
        H::random(buf)
    }

    fn new(cfg: &Config) -> Result<Self, Errno> {
        Ok(Blocking {
            pool: Arc::new(Pool::new(cfg.max_workers, cfg.idle_workers, cfg.max_queue)),
            wake: Lock::new(0),
            wake_cv: Default::default(),
            _host: PhantomData,
        })
    }

    fn start(srv: Arc<Server<Self>>, listener: super::Listener<Self>) -> Result<(), Errno> {
        let s = Arc::clone(&srv);
        H::spawn(Box::new(move || reaper(s)), "rumpsp-reaper")?;
        let s = Arc::clone(&srv);
        if let Err(e) = H::spawn(Box::new(move || acceptor(s, listener)), "rumpsp") {
            // The reaper ends.
            srv.stopping.store(true, Ordering::Release);
            srv.rt.wake_server();
            return Err(e);
        }
        Ok(())
    }

    fn kick(&self, conn: &Conn<Self>) {
        conn.wake_output();
    }

    fn wake_server(&self) {
        *self.wake.lock() += 1;
        <H::Locks as Locks>::notify_all(&self.wake_cv);
    }

    fn submit(&self, w: Work<Self>, force: bool) -> Result<(), Work<Self>> {
        self.pool.submit(w, force)
    }

    fn wait_writable(&self, _s: &Sock<Self>, _timeout: Duration) -> bool {
        // Only inline writers flush from other threads.
        false
    }
}

/// The reaper thread: releases expired preforks until `sp_fini`, then
/// lets idle workers go.
fn reaper<H: Host>(srv: Arc<Server<Blocking<H>>>) {
    let rt = &srv.rt;
    let mut g = rt.wake.lock();
    while !srv.is_stopping() {
        drop(g);
        srv.reap_preforks(H::Locks::now_ns());
        g = rt.wake.lock();
        if srv.is_stopping() {
            break;
        }
        // Expiry times change only with a `wake_server` after them, which
        // needs this lock.
        g = match srv.next_prefork_expiry() {
            Some(t) => H::Locks::wait_until(&rt.wake_cv, &rt.wake, g, t),
            None => H::Locks::wait(&rt.wake_cv, &rt.wake, g),
        };
    }
    drop(g);
    srv.forget_preforks();
    rt.pool.close();
}

/// Sleeps on the server's wake-up condition for `ns` (or until a wake-up).
fn pause<H: Host>(srv: &Server<Blocking<H>>, ns: u64) {
    let rt = &srv.rt;
    let end = H::Locks::now_ns().saturating_add(ns);
    let g = rt.wake.lock();
    drop(H::Locks::wait_until(&rt.wake_cv, &rt.wake, g, end));
}

/// The acceptor thread: runs until `sp_fini` (or blocks in `accept` when
/// the kernel halts).
fn acceptor<H: Host>(srv: Arc<Server<Blocking<H>>>, listener: super::Listener<Blocking<H>>) {
    let mut failures: u32 = 0;
    while !srv.is_stopping() {
        match H::Transport::accept(&listener) {
            Ok(Some(s)) => {
                failures = 0;
                if srv.is_stopping() {
                    H::Transport::close(&s);
                    break;
                }
                if let Some(conn) = admit(&srv, s) {
                    start_conn(conn);
                }
            }
            Ok(None) => {}
            Err(e) => {
                // Out of descriptors or memory: back off (10 ms, doubling
                // to 1 s) instead of spinning.
                diag::log(format_args!("sysproxy: accept failed: {}", e.name()));
                failures = failures.saturating_add(1);
                let ms = 10u64 << failures.min(7).saturating_sub(1);
                pause(&srv, ms.min(1000) * 1_000_000);
            }
        }
    }
    drop(listener);
}

/// One of a connection's two threads is done with the socket.
fn done<H: Host>(conn: &Conn<Blocking<H>>) {
    if conn.ext.0.fetch_sub(1, Ordering::AcqRel) == 1 {
        H::Transport::close(conn.sock());
    }
}

/// Starts the reader and the writer of a new connection (from the
/// acceptor, which is its I/O driver until the reader runs).
fn start_conn<H: Host>(conn: Arc<Conn<Blocking<H>>>) {
    conn.ext.0.store(2, Ordering::Release);
    let c = Arc::clone(&conn);
    let writer = H::spawn(
        Box::new(move || {
            c.write_out();
            // Ends the reader's receive if the output died first.
            H::Transport::shutdown(c.sock());
            done(&c);
        }),
        "rumpsp-writer",
    );
    if let Err(e) = writer {
        conn.log(format_args!(
            "cannot start a writer thread ({}); closing",
            e.name()
        ));
        conn.disconnect();
        done(&conn);
        done(&conn);
        return;
    }
    let c = Arc::clone(&conn);
    let reader = H::spawn(
        Box::new(move || {
            let mut asm = Assembler::new();
            let mut buf = vec![0u8; READ_CHUNK];
            while read_available(&c, &mut asm, &mut buf) != ReadOutcome::Closed {}
            done(&c);
        }),
        "rumpsp-reader",
    );
    if let Err(e) = reader {
        conn.log(format_args!(
            "cannot start a reader thread ({}); closing",
            e.name()
        ));
        // The writer sees the output die and ends.
        conn.disconnect();
        done(&conn);
    }
}

// ---- workers ------------------------------------------------------------------------

struct PoolState<H: Host> {
    queue: VecDeque<Work<Blocking<H>>>,
    workers: usize,
    /// Waiting workers no submitter has claimed.
    idle: usize,
    /// Claims of waiting workers not yet taken up by one waking.
    claims: usize,
    /// The server stopped: idle workers exit.
    closed: bool,
}

/// The workers: created on demand up to `max_workers`; a worker finding
/// nothing to do while `idle_workers` others are idle exits. At most
/// `max_queue` items wait; beyond that a syscall is refused with
/// `ERROR(TRYAGAIN)` (librumpclient resends it).
struct Pool<H: Host> {
    st: <H::Locks as Locks>::Mutex<PoolState<H>>,
    cv: <H::Locks as Locks>::Cond,
    max_workers: usize,
    idle_workers: usize,
    max_queue: usize,
}

impl<H: Host> Pool<H> {
    fn new(max_workers: usize, idle_workers: usize, max_queue: usize) -> Pool<H> {
        Pool {
            st: Lock::new(PoolState {
                queue: VecDeque::new(),
                workers: 0,
                idle: 0,
                claims: 0,
                closed: false,
            }),
            cv: Default::default(),
            max_workers: max_workers.max(1),
            idle_workers,
            max_queue: max_queue.max(1),
        }
    }

    fn submit(
        self: &Arc<Self>,
        w: Work<Blocking<H>>,
        force: bool,
    ) -> Result<(), Work<Blocking<H>>> {
        let mut st = self.st.lock();
        if !force && st.queue.len() >= self.max_queue {
            return Err(w);
        }
        st.queue.push_back(w);
        // Each item claims a waiting worker (so that a second item does
        // not count on one a first item is already waking), or starts one.
        if st.idle > 0 {
            st.idle -= 1;
            st.claims += 1;
            H::Locks::notify_one(&self.cv);
        } else if st.workers < self.max_workers {
            st.workers += 1;
            let me = Arc::clone(self);
            if H::spawn(Box::new(move || me.worker()), "rumpsp-worker").is_err() {
                st.workers -= 1;
                if st.workers == 0 {
                    return Err(st.queue.pop_back().expect("just pushed"));
                }
            }
        }
        Ok(())
    }

    fn close(&self) {
        self.st.lock().closed = true;
        H::Locks::notify_all(&self.cv);
    }

    fn worker(self: Arc<Self>) {
        loop {
            let w = {
                let mut st = self.st.lock();
                loop {
                    if let Some(w) = st.queue.pop_front() {
                        break w;
                    }
                    if st.closed || st.idle >= self.idle_workers {
                        st.workers -= 1;
                        return;
                    }
                    st.idle += 1;
                    st = H::Locks::wait(&self.cv, &self.st, st);
                    // Taken up a claim, or (woken otherwise) no longer waiting.
                    if st.claims > 0 {
                        st.claims -= 1;
                    } else {
                        st.idle -= 1;
                    }
                }
            };
            run_work(w);
        }
    }
}
