//! The syscall proxy server (rumpuser_sp.c) on host threads: one poll
//! loop thread (`server`) and a bounded pool of worker threads
//! (`pool`). Everything that does not depend on host threads — the
//! connection bookkeeping, handshakes, preforks, work execution, teardown,
//! configuration and the `SysProxy` hypercalls — is the server every
//! flavour shares (`rumpuser_core::sp::server`, with the host sockets of
//! `rumpuser_host::sp`); the protocol rules live in `rumpuser_core::sp`.
//!
//! **The protocol has no authentication.** Anyone who can connect can run
//! system calls in the rump kernel; see `rumpuser_host::sp` for the safe
//! defaults and the `RUMPUSER_SP_*` limits.

mod pool;
mod server;

use pool::Pool;
use rumpuser_core::Errno;
use rumpuser_host::sock::{self, Listener, Waker};
use rumpuser_host::sp::{
    Config, Conn, Globals, Guard, HostTransport, LazyGlobals, Locks, Proxy, Runtime, Server,
    StdMutex, Work,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar};
use std::time::Duration;

/// The host-thread runtime of the shared server: the poll loop's eventfd
/// and the worker pool.
pub struct Threads {
    waker: Waker,
    pool: Arc<Pool>,
}

/// A host condition variable that skips the wake-up system call when
/// nobody waits (`std`'s condvar always makes one). Waiters register
/// while holding the mutex, and every notifier changes the waited-for
/// state under that mutex before notifying, so a notifier that sees no
/// waiter knows that any later waiter will see the new state first.
#[derive(Default)]
pub struct HostCond {
    cv: Condvar,
    waiters: AtomicUsize,
}

/// The server's locks on host threads: `std` mutexes and [`HostCond`].
pub struct HostLocks;

impl Locks for HostLocks {
    type Mutex<T: Send> = StdMutex<T>;
    type Cond = HostCond;

    fn wait<'a, T: Send>(
        cv: &HostCond,
        _m: &'a StdMutex<T>,
        g: Guard<'a, Self, T>,
    ) -> Guard<'a, Self, T> {
        cv.waiters.fetch_add(1, Ordering::SeqCst);
        let g = cv.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        cv.waiters.fetch_sub(1, Ordering::SeqCst);
        g
    }

    fn wait_until<'a, T: Send>(
        cv: &HostCond,
        _m: &'a StdMutex<T>,
        g: Guard<'a, Self, T>,
        deadline: u64,
    ) -> Guard<'a, Self, T> {
        let left = Duration::from_nanos(deadline.saturating_sub(Self::now_ns()));
        cv.waiters.fetch_add(1, Ordering::SeqCst);
        let (g, _) = cv
            .cv
            .wait_timeout(g, left)
            .unwrap_or_else(|e| e.into_inner());
        cv.waiters.fetch_sub(1, Ordering::SeqCst);
        g
    }

    fn notify_one(cv: &HostCond) {
        if cv.waiters.load(Ordering::SeqCst) != 0 {
            cv.cv.notify_one()
        }
    }

    fn notify_all(cv: &HostCond) {
        if cv.waiters.load(Ordering::SeqCst) != 0 {
            cv.cv.notify_all()
        }
    }

    fn now_ns() -> u64 {
        rumpuser_host::sp::now_ns()
    }
}

static GLOBALS: LazyGlobals<Threads> = LazyGlobals::new();

impl Runtime for Threads {
    type Locks = HostLocks;
    type Transport = HostTransport;
    type ConnExt = ();
    const INLINE_WRITES: bool = true;

    fn globals() -> &'static Globals<Threads> {
        GLOBALS.get()
    }

    fn config() -> Config {
        rumpuser_host::sp::config()
    }

    fn random(buf: &mut [u8]) -> bool {
        rumpuser_host::sp::random(buf)
    }

    fn new(cfg: &Config) -> Result<Threads, Errno> {
        Ok(Threads {
            waker: Waker::new()?,
            pool: Arc::new(Pool::new(cfg.max_workers, cfg.idle_workers, cfg.max_queue)),
        })
    }

    fn start(srv: Arc<Server<Threads>>, listener: Listener) -> Result<(), Errno> {
        std::thread::Builder::new()
            .name("rumpsp".into())
            .spawn(move || server::run(srv, listener))
            .map(drop)
            .map_err(|e| {
                e.raw_os_error()
                    .map(Errno::from_linux)
                    .unwrap_or(Errno::EAGAIN)
            })
    }

    fn kick(&self, _conn: &Conn<Threads>) {
        self.waker.wake();
    }

    fn wake_server(&self) {
        self.waker.wake();
    }

    fn submit(&self, w: Work<Threads>, force: bool) -> Result<(), Work<Threads>> {
        self.pool.submit(w, force)
    }

    fn wait_writable(&self, s: &OwnedFd, timeout: Duration) -> bool {
        sock::wait_writable(
            s.as_raw_fd(),
            timeout.as_millis().clamp(1, i32::MAX as u128) as i32,
        )
    }
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

/// The instance the posix hypervisor hands out.
pub static SYSPROXY: Proxy<Threads> = Proxy::new();
