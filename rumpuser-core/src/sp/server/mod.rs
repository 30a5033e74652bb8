//! The syscall proxy server (rumpuser_sp.c) for every flavour, `no_std` +
//! `alloc`: configuration, the per-connection bookkeeping and output
//! buffer, handshakes, preforks, the execution of system calls and execs,
//! teardown, and the `SysProxy` hypercalls the kernel calls for remote
//! processes. The protocol rules themselves are the rest of
//! [`crate::sp`].
//!
//! A flavour supplies a [`Runtime`], which names
//!
//! * its [`Locks`]: a mutex and condition variable (host mutexes and
//!   condvars, parking green threads, or the green core's own mutex and
//!   condvar) and the clock their timed waits use;
//! * its [`Transport`]: sockets (the host's, non-blocking; or a guest
//!   kernel's own, entered through `hyp_syscall`, where a call blocks only
//!   the calling green thread);
//! * how it starts serving, how its I/O driver is told about pending
//!   output, and how work items reach a worker.
//!
//! Then [`Proxy<R>`] is its `SysProxy`. Two kinds of runtimes exist:
//!
//! * *Inline writers* ([`Runtime::INLINE_WRITES`]): any thread appending a
//!   frame also writes what the non-blocking socket takes at once, and the
//!   I/O driver writes the rest when the socket is writable (the POSIX
//!   flavours' poll loop or green readers on host sockets).
//! * *Writer threads* ([`blocking`]): only a connection's writer thread
//!   touches its socket for output, so that threads in a kernel call of
//!   their own (a kernel thread in `rumpuser_sp_copyin`, with a remote
//!   client's lwp) never make a socket call; [`blocking::Blocking`] is the
//!   whole runtime for such transports (an acceptor, a reader and a writer
//!   per client, a worker pool).
//!
//! **The protocol has no authentication.** Anyone who can connect can run
//! system calls in the rump kernel. Unix sockets are created owner-only
//! (`0600`) unless `RUMPUSER_SP_MODE` says otherwise; a TCP server listens
//! exactly where the URL says (`tcp://127.0.0.1:PORT` for the local
//! machine only; a wildcard or any other non-loopback address exposes the
//! kernel to the network and logs a warning).
//!
//! Configuration (read at `rumpuser_sp_init` through [`Runtime::config`]:
//! the environment on POSIX hosts, the command line on guests):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RUMPUSER_SP_MAXCLIENTS` | 255 | connected clients; more are accepted and closed at once |
//! | `RUMPUSER_SP_MAXWORKERS` | 128 | workers executing system calls |
//! | `RUMPUSER_SP_IDLEWORKERS` | 16 | idle workers kept alive |
//! | `RUMPUSER_SP_MAXQUEUE` | 1024 | queued system calls before `ERROR(TRYAGAIN)` |
//! | `RUMPUSER_SP_MODE` | `0600` | octal mode of a unix socket |
//! | `RUMPUSER_SP_MAXPREFORKS` | 64 | unclaimed preforks per client (`ENOMEM` beyond) |
//! | `RUMPUSER_SP_PREFORK_TIMEOUT` | 30 | seconds an unclaimed prefork outlives its parent |
//!
//! Teardown: when a client disconnects or dies mid-call, every server
//! request it had outstanding fails (`EFAULT` to the kernel), its other
//! kernel threads are told to exit (`hyp_lwpexit`), and when its last
//! in-flight system call returns its process is released. Preforks of a
//! dead client stay claimable for the timeout above (the child of a
//! `fork` usually connects after its parent exited), then are released —
//! the reference leaks them.

pub mod blocking;
mod conn;
mod serve;

pub use conn::{Conn, State, OUT_HARD_LIMIT, OUT_HIGH_WATER, WRITE_CHUNK};
pub use serve::{accept_pending, admit, read_available, run_work, ReadOutcome, Work, READ_CHUNK};

use crate::diag;
use crate::errno::Errno;
use crate::sp::conn::Expect;
use crate::sp::kern::{self, LwpPtr};
use crate::sp::url::{self, SpUrl};
use crate::sp::wire::{self, AUTH_LEN};
use crate::sysproxy::SysProxy;
use alloc::collections::BTreeMap;
use alloc::ffi::CString;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void, CStr};
use core::marker::PhantomData;
use core::net::SocketAddr;
use core::ops::DerefMut;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

// ---- what a flavour supplies ------------------------------------------------------

/// A mutex holding a `T` (the runtime's [`Locks::Mutex`]).
pub trait Lock<T>: Send + Sync {
    /// What [`lock`](Self::lock) returns; unlocks when dropped.
    type Guard<'a>: DerefMut<Target = T>
    where
        Self: 'a;
    /// An unlocked mutex holding `v`.
    fn new(v: T) -> Self;
    /// Locks, waiting while another thread holds the mutex.
    fn lock(&self) -> Self::Guard<'_>;
}

/// A guard of the mutex type of lock family `L` holding a `T`.
pub type Guard<'a, L, T> = <<L as Locks>::Mutex<T> as Lock<T>>::Guard<'a>;

/// The mutex and condition variable a runtime's threads wait with, and the
/// clock of its timed waits. No server lock is held across a wait for
/// another thread except through [`Locks::wait`]; spurious wake-ups are
/// allowed (every caller re-checks its condition).
pub trait Locks: Sized + 'static {
    /// The mutex.
    type Mutex<T: Send>: Lock<T>;
    /// The condition variable.
    type Cond: Default + Send + Sync;
    /// Releases `g` (a guard of `m`), waits for a notification, relocks `m`.
    fn wait<'a, T: Send>(
        cv: &Self::Cond,
        m: &'a Self::Mutex<T>,
        g: Guard<'a, Self, T>,
    ) -> Guard<'a, Self, T>;
    /// [`wait`](Self::wait), also returning once [`now_ns`](Self::now_ns)
    /// reaches `deadline`.
    fn wait_until<'a, T: Send>(
        cv: &Self::Cond,
        m: &'a Self::Mutex<T>,
        g: Guard<'a, Self, T>,
        deadline: u64,
    ) -> Guard<'a, Self, T>;
    /// Wakes one waiter.
    fn notify_one(cv: &Self::Cond);
    /// Wakes every waiter.
    fn notify_all(cv: &Self::Cond);
    /// The monotonic clock (ns) of deadlines: timed waits and prefork expiry.
    fn now_ns() -> u64;
}

/// The sockets a server listens and talks on.
///
/// For a runtime with [`Runtime::INLINE_WRITES`], `accept`, `send` and
/// `recv` never block (`Ok(None)` / `Ok(0)`: would block), and `send` may
/// be called from any thread. Otherwise they block the calling thread
/// (never `Ok(None)`), and only the server's own threads call them.
pub trait Transport: 'static {
    /// A listening socket.
    type Listener: Send + Sync + 'static;
    /// A connected socket.
    type Sock: Send + Sync + 'static;
    /// Creates, binds and listens on `url` (unix sockets with
    /// [`Config::unix_mode`]). Errors are NetBSD errnos.
    fn listen(url: &SpUrl, cfg: &Config, backlog: c_int) -> Result<Self::Listener, Errno>;
    /// The absolute path of a unix socket's file (removed at `sp_fini`).
    fn unix_path(l: &Self::Listener) -> Option<&CStr>;
    /// The bound address of a TCP listener (the real port if 0 was asked).
    fn tcp_addr(l: &Self::Listener) -> Option<SocketAddr>;
    /// Removes a unix socket's file; errors ignored.
    fn unlink(path: &CStr);
    /// Accepts one connection.
    fn accept(l: &Self::Listener) -> Result<Option<Self::Sock>, Errno>;
    /// Sends some of `buf`; never raises `SIGPIPE`.
    fn send(s: &Self::Sock, buf: &[u8]) -> Result<usize, Errno>;
    /// Receives: `Ok(Some(0))` is end of stream.
    fn recv(s: &Self::Sock, buf: &mut [u8]) -> Result<Option<usize>, Errno>;
    /// Shuts both directions down (the peer sees end of stream, a thread
    /// blocked in `recv` or `send` returns); errors ignored.
    fn shutdown(s: &Self::Sock);
    /// Releases the socket now, if the transport does not do it when the
    /// value is dropped; nothing may use it afterwards.
    fn close(s: &Self::Sock);
}

/// The connected socket type of runtime `R`.
pub type Sock<R> = <<R as Runtime>::Transport as Transport>::Sock;
/// The listening socket type of runtime `R`.
pub type Listener<R> = <<R as Runtime>::Transport as Transport>::Listener;
/// The mutex type of runtime `R` holding a `T`.
pub type Mutex<R, T> = <<R as Runtime>::Locks as Locks>::Mutex<T>;
type Cond<R> = <<R as Runtime>::Locks as Locks>::Cond;
type L<R> = <R as Runtime>::Locks;

/// What a flavour supplies to run the server (see the module docs). The
/// value is the flavour's per-server state ([`Server::rt`]).
pub trait Runtime: Sized + Send + Sync + 'static {
    /// Mutex, condition variable and clock.
    type Locks: Locks;
    /// The sockets.
    type Transport: Transport;
    /// Per-connection state of the flavour's I/O driver ([`Conn::ext`]).
    type ConnExt: Default + Send + Sync;
    /// Whether any thread sending a frame writes to the socket itself
    /// (see the module docs); else only [`Conn::write_out`] does.
    const INLINE_WRITES: bool;

    /// The flavour's process-wide server slot and connection registry.
    fn globals() -> &'static Globals<Self>;
    /// The limits and options, read at `rumpuser_sp_init`
    /// ([`Config::from_lookup`] over the flavour's parameters).
    fn config() -> Config;
    /// Fills `buf` with random bytes for prefork cookies; false if the
    /// platform has no randomness (the prefork is refused). See
    /// [`fill_random`].
    fn random(buf: &mut [u8]) -> bool;
    /// Per-server state for a server with configuration `cfg`.
    fn new(cfg: &Config) -> Result<Self, Errno>;
    /// Starts serving `listener` (returns once serving is under way).
    fn start(srv: Arc<Server<Self>>, listener: Listener<Self>) -> Result<(), Errno>;
    /// `conn` has output its socket did not take, or its output died: its
    /// I/O driver must look at it (poll for `POLLOUT`, write, or
    /// disconnect).
    fn kick(&self, conn: &Conn<Self>);
    /// Something the server thread waits for changed (stop, prefork
    /// expiry times, a client torn down).
    fn wake_server(&self);
    /// Queues a work item. `force` ignores the queue limit (exec must not
    /// be refused). Gives the item back if it cannot be queued.
    fn submit(&self, w: Work<Self>, force: bool) -> Result<(), Work<Self>>;
    /// Waits until `s` is writable or `timeout` passes; true if writable
    /// (inline writers only: [`Conn::flush_blocking`]).
    fn wait_writable(&self, s: &Sock<Self>, timeout: Duration) -> bool;
}

// ---- configuration ----------------------------------------------------------------

/// Server limits and options.
#[derive(Clone, Debug)]
pub struct Config {
    /// Connected clients at most.
    pub max_clients: usize,
    /// Workers at most.
    pub max_workers: usize,
    /// Idle workers kept.
    pub idle_workers: usize,
    /// Queued work items at most.
    pub max_queue: usize,
    /// Mode of a unix socket file.
    pub unix_mode: u32,
    /// Unclaimed preforks per client at most.
    pub max_preforks: usize,
    /// How long the preforks of a disconnected client stay claimable.
    pub prefork_grace: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_clients: 255,
            max_workers: 128,
            idle_workers: 16,
            max_queue: 1024,
            unix_mode: 0o600,
            max_preforks: 64,
            prefork_grace: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// Defaults overridden by the `RUMPUSER_SP_*` parameters `get` returns
    /// (the environment, or a guest's command line); values out of range
    /// are ignored with a log line.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Config {
        let num = |name: &str, lo: usize, hi: usize| -> Option<usize> {
            let v = get(name)?;
            match v.trim().parse::<usize>() {
                Ok(n) if (lo..=hi).contains(&n) => Some(n),
                _ => {
                    diag::log(format_args!(
                        "sysproxy: ignoring {name}={v} (expected {lo}..={hi})"
                    ));
                    None
                }
            }
        };
        let d = Config::default();
        let unix_mode = match get("RUMPUSER_SP_MODE") {
            Some(v) => match u32::from_str_radix(v.trim(), 8) {
                Ok(m) if m <= 0o777 => m,
                _ => {
                    diag::log(format_args!(
                        "sysproxy: ignoring RUMPUSER_SP_MODE={v} (expected octal, e.g. 0660)"
                    ));
                    d.unix_mode
                }
            },
            None => d.unix_mode,
        };
        Config {
            max_clients: num("RUMPUSER_SP_MAXCLIENTS", 1, 1 << 16).unwrap_or(d.max_clients),
            max_workers: num("RUMPUSER_SP_MAXWORKERS", 1, 4096).unwrap_or(d.max_workers),
            idle_workers: num("RUMPUSER_SP_IDLEWORKERS", 0, 4096).unwrap_or(d.idle_workers),
            max_queue: num("RUMPUSER_SP_MAXQUEUE", 1, 1 << 20).unwrap_or(d.max_queue),
            unix_mode,
            max_preforks: num("RUMPUSER_SP_MAXPREFORKS", 1, 1 << 16).unwrap_or(d.max_preforks),
            prefork_grace: num("RUMPUSER_SP_PREFORK_TIMEOUT", 0, 1 << 20)
                .map(|s| Duration::from_secs(s as u64))
                .unwrap_or(d.prefork_grace),
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    d.as_nanos().min(u64::MAX as u128) as u64
}

// ---- the server -------------------------------------------------------------------

/// A preforked process waiting for its child's FORK handshake.
struct Prefork {
    auth: [u8; AUTH_LEN],
    lwp: LwpPtr,
    parent: u64,
    /// Set when the parent is gone ([`Locks::now_ns`] time).
    expires: Option<u64>,
}

/// State shared by the I/O driver, the workers and the connections of one
/// server.
pub struct Server<R: Runtime> {
    /// Limits and options.
    pub cfg: Config,
    banner: Vec<u8>,
    /// `sp_fini` was called: stop, and make no more kernel calls in teardown.
    stopping: AtomicBool,
    /// Clients not yet torn down.
    live: AtomicUsize,
    preforks: Mutex<R, Vec<Prefork>>,
    unix_path: Option<CString>,
    /// The flavour's state.
    pub rt: R,
}

impl<R: Runtime> Server<R> {
    /// True once `sp_fini` was called: the I/O driver stops.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn take_prefork(&self, auth: &[u8; AUTH_LEN]) -> Option<Prefork> {
        let mut v = self.preforks.lock();
        // Compare every byte of every entry (no early exit on a mismatch).
        let i = v.iter().position(|p| {
            p.auth
                .iter()
                .zip(auth)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        })?;
        Some(v.swap_remove(i))
    }

    fn count_preforks(&self, parent: u64) -> usize {
        self.preforks
            .lock()
            .iter()
            .filter(|p| p.parent == parent && p.expires.is_none())
            .count()
    }

    /// The parent of these preforks is gone: they expire after the grace time.
    fn orphan_preforks(&self, parent: u64) {
        let t = L::<R>::now_ns().saturating_add(duration_ns(self.cfg.prefork_grace));
        let mut any = false;
        for p in self
            .preforks
            .lock()
            .iter_mut()
            .filter(|p| p.parent == parent)
        {
            p.expires.get_or_insert(t);
            any = true;
        }
        if any {
            self.rt.wake_server();
        }
    }

    /// When the next orphaned prefork expires ([`Locks::now_ns`] time), if any.
    pub fn next_prefork_expiry(&self) -> Option<u64> {
        self.preforks.lock().iter().filter_map(|p| p.expires).min()
    }

    /// Releases the processes of preforks expired at `now` (from a server
    /// thread, holding no virtual CPU).
    pub fn reap_preforks(&self, now: u64) {
        let expired: Vec<LwpPtr> = {
            let mut v = self.preforks.lock();
            let mut out = Vec::new();
            v.retain(|p| {
                if p.expires.is_some_and(|t| t <= now) {
                    out.push(p.lwp);
                    false
                } else {
                    true
                }
            });
            out
        };
        for l in expired {
            diag::log(format_args!("sysproxy: releasing an unclaimed prefork"));
            kern::switch(l);
            kern::release();
        }
    }

    /// Forgets every prefork without kernel calls (server shutdown: the
    /// kernel is halting).
    pub fn forget_preforks(&self) {
        self.preforks.lock().clear();
    }
}

/// A flavour's process-wide sysproxy state: the running server and every
/// connection by cookie. Declare one [`LazyGlobals`] `static` per flavour
/// and return it from [`Runtime::globals`].
pub struct Globals<R: Runtime> {
    server: Mutex<R, Option<Arc<Server<R>>>>,
    /// Cookies are never reused, so a stale cookie finds nothing (and the
    /// kernel gets `EFAULT`).
    registry: Mutex<R, BTreeMap<u64, Arc<Conn<R>>>>,
    next_id: AtomicU64,
    tcp_addr: Mutex<R, Option<SocketAddr>>,
}

impl<R: Runtime> Default for Globals<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime> Globals<R> {
    /// Empty: no server, no connections.
    pub fn new() -> Globals<R> {
        Globals {
            server: Lock::new(None),
            registry: Lock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            tcp_addr: Lock::new(None),
        }
    }

    fn lookup(&self, arg: *mut c_void) -> Option<Arc<Conn<R>>> {
        let id = arg as usize as u64;
        self.registry.lock().get(&id).cloned()
    }

    fn register(&self, conn: &Arc<Conn<R>>) {
        self.registry.lock().insert(conn.id, Arc::clone(conn));
    }

    fn unregister(&self, id: u64) {
        self.registry.lock().remove(&id);
    }

    /// Every registered connection of `srv` (for shutdown).
    pub fn connections_of(&self, srv: &Arc<Server<R>>) -> Vec<Arc<Conn<R>>> {
        self.registry
            .lock()
            .values()
            .filter(|c| Arc::ptr_eq(&c.srv, srv))
            .cloned()
            .collect()
    }

    /// Number of clients currently connected or being torn down.
    pub fn live_clients(&self) -> usize {
        self.server
            .lock()
            .as_ref()
            .map_or(0, |s| s.live.load(Ordering::Acquire))
    }

    /// The address a TCP server listens on (with the real port if 0 was
    /// asked), or `None`.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        *self.tcp_addr.lock()
    }
}

/// [`Globals`] in a `static`, made on first use.
pub struct LazyGlobals<R: Runtime>(spin::Once<Globals<R>>);

impl<R: Runtime> Default for LazyGlobals<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime> LazyGlobals<R> {
    /// Not made yet.
    pub const fn new() -> LazyGlobals<R> {
        LazyGlobals(spin::Once::new())
    }

    /// The globals.
    pub fn get(&self) -> &Globals<R> {
        self.0.call_once(Globals::new)
    }
}

fn start<R: Runtime>(url: &str, banner: Vec<u8>) -> Result<(), Errno> {
    let g = R::globals();
    let mut slot = g.server.lock();
    if slot.is_some() {
        return Err(Errno::EBUSY);
    }
    let cfg = R::config();
    let parsed = url::parse(url, true)?;
    let backlog = cfg.max_clients.min(4096) as c_int;
    let listener = R::Transport::listen(&parsed, &cfg, backlog).inspect_err(|e| {
        diag::log(format_args!(
            "sysproxy: cannot listen on {url}: {}",
            e.name()
        ))
    })?;
    if let SpUrl::Tcp(a) = parsed {
        if !a.ip().is_loopback() {
            diag::log(format_args!(
                "sysproxy: serving {url} to the network; the protocol has no authentication"
            ));
        }
    }
    let unix_path = R::Transport::unix_path(&listener).map(CString::from);
    let tcp_addr = R::Transport::tcp_addr(&listener);
    let cleanup = |e: Errno| {
        if let Some(p) = &unix_path {
            R::Transport::unlink(p);
        }
        e
    };
    let rt = R::new(&cfg).map_err(cleanup)?;
    let srv = Arc::new(Server {
        cfg,
        banner,
        stopping: AtomicBool::new(false),
        live: AtomicUsize::new(0),
        preforks: Lock::new(Vec::new()),
        unix_path: unix_path.clone(),
        rt,
    });
    R::start(Arc::clone(&srv), listener).map_err(cleanup)?;
    *g.tcp_addr.lock() = tcp_addr;
    *slot = Some(srv);
    Ok(())
}

/// The `SysProxy` of a flavour with runtime `R`.
pub struct Proxy<R>(PhantomData<fn() -> R>);

impl<R> Default for Proxy<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// [`Runtime::random`] over a platform's `rumpuser_getrandom` (`fill`,
/// which may fill a prefix): the whole of `buf`, or false on an error or
/// a call that makes no progress.
pub fn fill_random(
    buf: &mut [u8],
    mut fill: impl FnMut(&mut [u8], crate::types::RandomFlags) -> Result<usize, Errno>,
) -> bool {
    let flags = crate::types::RandomFlags {
        hard: false,
        nowait: false,
    };
    let mut off = 0;
    while off < buf.len() {
        match fill(&mut buf[off..], flags) {
            Ok(n) if n > 0 => off += n,
            _ => return false,
        }
    }
    true
}

impl<R> Proxy<R> {
    /// The (stateless) proxy; state lives in [`Runtime::globals`].
    pub const fn new() -> Proxy<R> {
        Proxy(PhantomData)
    }
}

impl<R: Runtime> SysProxy for Proxy<R> {
    fn init(
        &self,
        url: &CStr,
        ostype: &CStr,
        osrelease: &CStr,
        machine: &CStr,
    ) -> Result<(), Errno> {
        let url = url.to_str().map_err(|_| Errno::EINVAL)?;
        let banner = wire::banner(ostype.to_bytes(), osrelease.to_bytes(), machine.to_bytes());
        start::<R>(url, banner)
    }

    fn copyin(
        &self,
        arg: *mut c_void,
        raddr: *const c_void,
        laddr: &mut [u8],
    ) -> Result<(), Errno> {
        if laddr.is_empty() {
            return Ok(());
        }
        let c = R::globals().lookup(arg).ok_or(Errno::EFAULT)?;
        let len = laddr.len();
        let data = c
            .request(Expect::Copyin { len }, |o, r| {
                wire::put_copyin_req(o, r, false, raddr as usize, len)
            })
            .map_err(|_| Errno::EFAULT)?;
        if data.len() != len {
            return Err(Errno::EFAULT);
        }
        laddr.copy_from_slice(&data);
        Ok(())
    }

    fn copyinstr(
        &self,
        arg: *mut c_void,
        raddr: *const c_void,
        laddr: &mut [u8],
    ) -> Result<usize, Errno> {
        if laddr.is_empty() {
            return Ok(0);
        }
        let c = R::globals().lookup(arg).ok_or(Errno::EFAULT)?;
        let max = laddr.len();
        let data = c
            .request(Expect::Copyinstr { max }, |o, r| {
                wire::put_copyin_req(o, r, true, raddr as usize, max)
            })
            .map_err(|_| Errno::EFAULT)?;
        let n = data.len().min(max);
        laddr[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }

    fn copyout(&self, arg: *mut c_void, laddr: &[u8], raddr: *mut c_void) -> Result<(), Errno> {
        let c = R::globals().lookup(arg).ok_or(Errno::EFAULT)?;
        if laddr.is_empty() {
            return Ok(());
        }
        let r = c.next_reqno();
        c.send(true, |o| wire::put_copyout_req(o, r, raddr as usize, laddr))
            .map_err(|_| Errno::EFAULT)
    }

    fn anonmmap(&self, arg: *mut c_void, len: usize) -> Result<*mut c_void, Errno> {
        let c = R::globals().lookup(arg).ok_or(Errno::EFAULT)?;
        let data = c
            .request(Expect::Anonmmap, |o, r| wire::put_anonmmap_req(o, r, len))
            .map_err(|_| Errno::EFAULT)?;
        match wire::decode_usize(&data) {
            Some(0) => Err(Errno::ENOMEM),
            Some(a) => Ok(a as *mut c_void),
            None => Err(Errno::EFAULT),
        }
    }

    fn raise(&self, arg: *mut c_void, signo: c_int) -> Result<(), Errno> {
        let c = R::globals().lookup(arg).ok_or(Errno::EFAULT)?;
        let r = c.next_reqno();
        c.send(true, |o| wire::put_raise_req(o, r, signo))
            .map_err(|_| Errno::EFAULT)
    }

    fn fini(&self, arg: *mut c_void) {
        let g = R::globals();
        let srv = {
            // The address goes with the server, under the same lock as in
            // `start`: cleared later (after answering the client below), it
            // could erase the address of a server started meanwhile.
            let mut slot = g.server.lock();
            let srv = slot.take();
            if srv.is_some() {
                *g.tcp_addr.lock() = None;
            }
            srv
        };
        if let Some(p) = srv.as_ref().and_then(|s| s.unix_path.as_ref()) {
            R::Transport::unlink(p);
        }
        // The process that asked for the halt is about to exit: answer its
        // syscalls in flight now (error 0), as the reference does (it only
        // remembers the latest one).
        if let Some(c) = (!arg.is_null()).then(|| g.lookup(arg)).flatten() {
            let reqs = core::mem::take(&mut c.state().inflight);
            for r in reqs {
                let _ = c.send(false, |o| wire::put_syscall_resp(o, r, 0, [0, 0]));
            }
            if R::INLINE_WRITES {
                c.flush_blocking(Duration::from_secs(2));
            } else {
                // The kernel calls this holding a CPU (cpu_reboot), which
                // the writer thread's kernel call needs.
                crate::sched::klock_wrap(|| c.flush_blocking(Duration::from_secs(2)));
            }
        }
        if let Some(s) = srv {
            s.stopping.store(true, Ordering::Release);
            s.rt.wake_server();
        }
    }
}
