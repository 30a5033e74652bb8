//! The syscall proxy server on green threads: the shared server of
//! `rumpuser_core::sp::server` (handshakes, preforks, work execution,
//! teardown, the `rumpuser_sp_*` hypercalls) driven by green threads on
//! the non-blocking host sockets of `rumpuser_host::sp`, with no host
//! threads.
//!
//! * An *acceptor* green thread owns the listening socket: it accepts
//!   clients, starts a reader thread for each, and releases expired
//!   preforks.
//! * A *reader* green thread per client reads and assembles its frames,
//!   runs handshakes and preforks inline, queues system calls and execs,
//!   delivers responses to waiting server requests, and writes output the
//!   socket did not take at once.
//! * *Worker* green threads (`pool`) execute system calls and execs,
//!   entering the kernel through the upcalls like any kernel thread.
//! * Kernel threads calling `rumpuser_sp_copyin` and friends append their
//!   request to the client's output and park until the reader delivers the
//!   response.
//!
//! A green thread that would block on a socket registers it with the
//! host's idle loop ([`crate::host::wait_fd`]) and parks; the host thread
//! sleeps in `ppoll` on every registered socket when no green thread is
//! runnable. Limits and options are the posix flavour's (`RUMPUSER_SP_*`).

mod pool;

use crate::host::wait_fd;
use crate::hyp::{on_green_host, stack_size};
use crate::sched_core::{self, ThreadId};
use core::ffi::{c_int, c_void, CStr};
use pool::Pool;
use rumpuser_core::diag;
use rumpuser_core::sp::frame::Assembler;
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::Errno;
use rumpuser_host::sock::Listener;
use rumpuser_host::sp::{
    accept_pending, read_available, Config, Conn, Globals, Guard, HostTransport, LazyGlobals, Lock,
    Locks, Proxy, ReadOutcome, Runtime, Server, StdMutex, Work,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes a reader asks for per `recv` (requests are small; a copyin
/// response is at most what the kernel asked for).
const READ_CHUNK: usize = 16 * 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn wake_raw(t: u64) {
    if let Some(id) = ThreadId::from_raw(t) {
        sched_core::wake(id);
    }
}

/// The green-thread runtime of the shared server.
pub struct GreenThreads {
    /// The acceptor thread (0 once it has stopped).
    acceptor: AtomicU64,
    pool: Arc<Pool>,
}

/// Per connection: its reader thread.
#[derive(Default)]
pub struct Reader(AtomicU64);

/// A condition variable for green threads: waiters park, `notify_all`
/// wakes them. Used with `std::sync::Mutex`, which on the one green host
/// thread never contends (nobody holds it across a switch).
#[derive(Default)]
pub struct Notify(Mutex<Vec<u64>>);

/// The server's locks on green threads: `std` mutexes and [`Notify`].
pub struct GreenLocks;

impl Locks for GreenLocks {
    type Mutex<T: Send> = StdMutex<T>;
    type Cond = Notify;

    fn wait<'a, T: Send>(
        cv: &Notify,
        m: &'a StdMutex<T>,
        g: Guard<'a, Self, T>,
    ) -> Guard<'a, Self, T> {
        let me = sched_core::current().as_raw();
        lock(&cv.0).push(me);
        drop(g);
        sched_core::park(None);
        lock(&cv.0).retain(|&t| t != me);
        m.lock()
    }

    fn wait_until<'a, T: Send>(
        cv: &Notify,
        m: &'a StdMutex<T>,
        g: Guard<'a, Self, T>,
        deadline: u64,
    ) -> Guard<'a, Self, T> {
        let me = sched_core::current().as_raw();
        lock(&cv.0).push(me);
        drop(g);
        sched_core::park(Some(deadline_of(deadline)));
        lock(&cv.0).retain(|&t| t != me);
        m.lock()
    }

    fn notify_one(cv: &Notify) {
        let first = {
            let mut w = lock(&cv.0);
            (!w.is_empty()).then(|| w.remove(0))
        };
        if let Some(t) = first {
            wake_raw(t);
        }
    }

    fn notify_all(cv: &Notify) {
        let waiters = std::mem::take(&mut *lock(&cv.0));
        for t in waiters {
            wake_raw(t);
        }
    }

    fn now_ns() -> u64 {
        rumpuser_host::sp::now_ns()
    }
}

static GLOBALS: LazyGlobals<GreenThreads> = LazyGlobals::new();

/// The green `sched_core` deadline for host monotonic time `t`.
fn deadline_of(t: u64) -> u64 {
    let left = t.saturating_sub(rumpuser_host::sp::now_ns());
    sched_core::now_ns().saturating_add(left)
}

impl Runtime for GreenThreads {
    type Locks = GreenLocks;
    type Transport = HostTransport;
    type ConnExt = Reader;
    const INLINE_WRITES: bool = true;

    fn globals() -> &'static Globals<GreenThreads> {
        GLOBALS.get()
    }

    fn config() -> Config {
        rumpuser_host::sp::config()
    }

    fn random(buf: &mut [u8]) -> bool {
        rumpuser_host::sp::random(buf)
    }

    fn new(cfg: &Config) -> Result<GreenThreads, Errno> {
        Ok(GreenThreads {
            acceptor: AtomicU64::new(0),
            pool: Arc::new(Pool::new(cfg.max_workers, cfg.idle_workers, cfg.max_queue)),
        })
    }

    fn start(srv: Arc<Server<GreenThreads>>, listener: Listener) -> Result<(), Errno> {
        let s = Arc::clone(&srv);
        let t =
            sched_core::spawn_closure(move || acceptor(s, listener), "rumpsp", stack_size(), false)
                .map_err(|_| Errno::EAGAIN)?;
        srv.rt.acceptor.store(t.as_raw(), Ordering::Release);
        Ok(())
    }

    fn kick(&self, conn: &Conn<GreenThreads>) {
        let t = conn.ext.0.load(Ordering::Acquire);
        // The reader itself re-checks before it parks.
        if t != 0 && sched_core::try_current().map(ThreadId::as_raw) != Some(t) {
            wake_raw(t);
        }
    }

    fn wake_server(&self) {
        wake_raw(self.acceptor.load(Ordering::Acquire));
    }

    fn submit(&self, w: Work<GreenThreads>, force: bool) -> Result<(), Work<GreenThreads>> {
        self.pool.submit(w, force)
    }

    fn wait_writable(&self, s: &OwnedFd, timeout: Duration) -> bool {
        let fd = s.as_raw_fd();
        let deadline = sched_core::now_ns().saturating_add(timeout.as_nanos() as u64);
        loop {
            let r = wait_fd(fd, libc::POLLOUT, Some(deadline));
            if r & libc::POLLOUT != 0 {
                return true;
            }
            if r != 0 || sched_core::now_ns() >= deadline {
                return false;
            }
        }
    }
}

/// The acceptor green thread: runs until `sp_fini`.
fn acceptor(srv: Arc<Server<GreenThreads>>, listener: Listener) {
    let lfd = listener.fd.as_raw_fd();
    while !srv.is_stopping() {
        accept_pending(&srv, &listener, spawn_reader);
        srv.reap_preforks(rumpuser_host::sp::now_ns());
        if srv.is_stopping() {
            break;
        }
        let deadline = srv.next_prefork_expiry().map(deadline_of);
        wait_fd(lfd, libc::POLLIN, deadline);
    }
    // Shutdown: readers see `stopping` and disconnect without kernel calls.
    for c in GLOBALS.get().connections_of(&srv) {
        srv.rt.kick(&c);
    }
    srv.forget_preforks();
    srv.rt.pool.close();
    srv.rt.acceptor.store(0, Ordering::Release);
    drop(listener);
}

fn spawn_reader(conn: Arc<Conn<GreenThreads>>) {
    let c = Arc::clone(&conn);
    match sched_core::spawn_closure(move || reader(c), "rumpsp-conn", stack_size(), false) {
        Ok(t) => conn.ext.0.store(t.as_raw(), Ordering::Release),
        Err(e) => {
            conn.log(format_args!(
                "cannot start a reader thread ({e:?}); closing"
            ));
            conn.disconnect();
        }
    }
}

/// A client's reader green thread: runs until the client is gone.
fn reader(conn: Arc<Conn<GreenThreads>>) {
    let mut asm = Assembler::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        if conn.srv.is_stopping() || conn.out_dead() {
            conn.disconnect();
            break;
        }
        if conn.wants_write() {
            conn.flush();
        }
        match read_available(&conn, &mut asm, &mut buf) {
            ReadOutcome::Closed => break,
            ReadOutcome::More => {
                sched_core::yield_now();
                continue;
            }
            ReadOutcome::WouldBlock => {}
        }
        if conn.srv.is_stopping() || conn.out_dead() {
            continue;
        }
        let events = if conn.wants_write() {
            libc::POLLIN | libc::POLLOUT
        } else {
            libc::POLLIN
        };
        wait_fd(conn.sock().as_raw_fd(), events, None);
    }
    conn.ext.0.store(0, Ordering::Release);
}

/// Number of clients currently connected or being torn down (tests).
pub fn live_clients() -> usize {
    GLOBALS.get().live_clients()
}

/// The address a TCP server listens on (with the real port if 0 was
/// asked), or `None`.
pub fn tcp_address() -> Option<std::net::SocketAddr> {
    GLOBALS.get().tcp_address()
}

/// The green `SysProxy`: the shared one, checked to be called on the green
/// host thread.
pub struct GreenSysProxy;

/// The instance the green hypervisor hands out.
pub static SYSPROXY: GreenSysProxy = GreenSysProxy;

static INNER: Proxy<GreenThreads> = Proxy::new();

impl SysProxy for GreenSysProxy {
    fn init(
        &self,
        url: &CStr,
        ostype: &CStr,
        osrelease: &CStr,
        machine: &CStr,
    ) -> Result<(), Errno> {
        let _entered = on_green_host();
        if !sched_core::is_initialized() {
            diag::log(format_args!(
                "sysproxy: rumpuser_sp_init before rumpuser_init"
            ));
            return Err(Errno::EINVAL);
        }
        INNER.init(url, ostype, osrelease, machine)
    }

    fn copyin(
        &self,
        arg: *mut c_void,
        raddr: *const c_void,
        laddr: &mut [u8],
    ) -> Result<(), Errno> {
        let _entered = on_green_host();
        INNER.copyin(arg, raddr, laddr)
    }

    fn copyinstr(
        &self,
        arg: *mut c_void,
        raddr: *const c_void,
        laddr: &mut [u8],
    ) -> Result<usize, Errno> {
        let _entered = on_green_host();
        INNER.copyinstr(arg, raddr, laddr)
    }

    fn copyout(&self, arg: *mut c_void, laddr: &[u8], raddr: *mut c_void) -> Result<(), Errno> {
        let _entered = on_green_host();
        INNER.copyout(arg, laddr, raddr)
    }

    fn anonmmap(&self, arg: *mut c_void, len: usize) -> Result<*mut c_void, Errno> {
        let _entered = on_green_host();
        INNER.anonmmap(arg, len)
    }

    fn raise(&self, arg: *mut c_void, signo: c_int) -> Result<(), Errno> {
        let _entered = on_green_host();
        INNER.raise(arg, signo)
    }

    fn fini(&self, arg: *mut c_void) {
        let _entered = on_green_host();
        INNER.fini(arg)
    }
}
