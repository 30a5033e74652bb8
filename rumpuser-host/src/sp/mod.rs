//! The syscall proxy server (rumpuser_sp.c) as far as it does not depend
//! on how a flavour runs its threads: configuration, the per-connection
//! bookkeeping and output buffer, handshakes, preforks, the execution of
//! system calls and execs, teardown, and the `SysProxy` hypercalls the
//! kernel calls for remote processes. The protocol rules themselves live in
//! `rumpuser_core::sp`; sockets in [`crate::sock`].
//!
//! A flavour supplies a [`Runtime`]: its condition variable (a host
//! condvar, or parking green threads), how it starts serving (a poll loop
//! thread, or green threads on non-blocking sockets), how to make its I/O
//! driver look at a connection with pending output, and how work items
//! reach a worker (a host thread pool, or green worker threads). Then
//! [`Proxy<R>`] is its `SysProxy`.
//!
//! **The protocol has no authentication.** Anyone who can connect can run
//! system calls in the rump kernel. Unix sockets are therefore created
//! owner-only (`0600`) unless `RUMPUSER_SP_MODE` says otherwise; a TCP
//! server listens exactly where the URL says (`tcp://127.0.0.1:PORT` for
//! the local machine only; `tcp://*:PORT` exposes the kernel to the network).
//!
//! Configuration (read at `rumpuser_sp_init`, both flavours):
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

mod conn;
mod serve;

pub use conn::{Conn, State, OUT_HARD_LIMIT, OUT_HIGH_WATER};
pub use serve::{accept_pending, read_available, run_work, ReadOutcome, Work, READ_CHUNK};

use crate::sock::{self, Listener};
use core::ffi::{c_int, c_void, CStr};
use core::marker::PhantomData;
use rumpuser_core::diag;
use rumpuser_core::sp::conn::Expect;
use rumpuser_core::sp::kern::{self, LwpPtr};
use rumpuser_core::sp::url::{self, SpUrl};
use rumpuser_core::sp::wire::{self, AUTH_LEN};
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::Errno;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

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

fn env_num(name: &str, lo: usize, hi: usize) -> Option<usize> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Some(n),
        _ => {
            diag::log(format_args!(
                "sysproxy: ignoring {name}={v} (expected {lo}..={hi})"
            ));
            None
        }
    }
}

impl Config {
    /// Defaults overridden by the `RUMPUSER_SP_*` environment variables.
    pub fn from_env() -> Config {
        let d = Config::default();
        let unix_mode = match std::env::var("RUMPUSER_SP_MODE") {
            Ok(v) => match u32::from_str_radix(v.trim(), 8) {
                Ok(m) if m <= 0o777 => m,
                _ => {
                    diag::log(format_args!(
                        "sysproxy: ignoring RUMPUSER_SP_MODE={v} (expected octal, e.g. 0660)"
                    ));
                    d.unix_mode
                }
            },
            Err(_) => d.unix_mode,
        };
        Config {
            max_clients: env_num("RUMPUSER_SP_MAXCLIENTS", 1, 1 << 16).unwrap_or(d.max_clients),
            max_workers: env_num("RUMPUSER_SP_MAXWORKERS", 1, 4096).unwrap_or(d.max_workers),
            idle_workers: env_num("RUMPUSER_SP_IDLEWORKERS", 0, 4096).unwrap_or(d.idle_workers),
            max_queue: env_num("RUMPUSER_SP_MAXQUEUE", 1, 1 << 20).unwrap_or(d.max_queue),
            unix_mode,
            max_preforks: env_num("RUMPUSER_SP_MAXPREFORKS", 1, 1 << 16).unwrap_or(d.max_preforks),
            prefork_grace: env_num("RUMPUSER_SP_PREFORK_TIMEOUT", 0, 1 << 20)
                .map(|s| Duration::from_secs(s as u64))
                .unwrap_or(d.prefork_grace),
        }
    }
}

/// A condition variable paired with a `std::sync::Mutex`: a host condvar
/// for threads, parking for green threads. Spurious wake-ups are allowed
/// (every caller re-checks its condition).
pub trait Cond: Default + Send + Sync {
    /// Releases `g` (a guard of `m`), waits for a notification, relocks `m`.
    fn wait<'a, T>(&self, m: &'a Mutex<T>, g: MutexGuard<'a, T>) -> MutexGuard<'a, T>;
    /// Wakes every waiter.
    fn notify_all(&self);
}

/// What a flavour supplies to run the server (see the module docs). The
/// value is the flavour's per-server state ([`Server::rt`]).
pub trait Runtime: Sized + Send + Sync + 'static {
    /// Condition variable for connection state and output.
    type Cond: Cond;
    /// Per-connection state of the flavour's I/O driver ([`Conn::ext`]).
    type ConnExt: Default + Send + Sync;

    /// The flavour's process-wide server slot and connection registry.
    fn globals() -> &'static Globals<Self>;
    /// Per-server state for a server with configuration `cfg`.
    fn new(cfg: &Config) -> Result<Self, Errno>;
    /// Starts serving `listener` (returns once serving is under way).
    fn start(srv: Arc<Server<Self>>, listener: Listener) -> Result<(), Errno>;
    /// `conn` has output its socket did not take, or its output died: its
    /// I/O driver must look at it (poll for `POLLOUT`, or disconnect).
    fn kick(&self, conn: &Conn<Self>);
    /// Something the server thread waits for changed (stop, prefork
    /// expiry times, a client torn down).
    fn wake_server(&self);
    /// Queues a work item. `force` ignores the queue limit (exec must not
    /// be refused). Gives the item back if it cannot be queued.
    fn submit(&self, w: Work<Self>, force: bool) -> Result<(), Work<Self>>;
    /// Waits until `fd` is writable or `timeout` passes; true if writable.
    fn wait_writable(&self, fd: RawFd, timeout: Duration) -> bool;
}

/// A preforked process waiting for its child's FORK handshake.
struct Prefork {
    auth: [u8; AUTH_LEN],
    lwp: LwpPtr,
    parent: u64,
    /// Set when the parent is gone.
    expires: Option<Instant>,
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
    preforks: Mutex<Vec<Prefork>>,
    unix_path: Option<CString>,
    /// The flavour's state.
    pub rt: R,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R: Runtime> Server<R> {
    /// True once `sp_fini` was called: the I/O driver stops.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn take_prefork(&self, auth: &[u8; AUTH_LEN]) -> Option<Prefork> {
        let mut v = lock(&self.preforks);
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
        lock(&self.preforks)
            .iter()
            .filter(|p| p.parent == parent && p.expires.is_none())
            .count()
    }

    /// The parent of these preforks is gone: they expire after the grace time.
    fn orphan_preforks(&self, parent: u64) {
        let t = Instant::now() + self.cfg.prefork_grace;
        let mut any = false;
        for p in lock(&self.preforks)
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

    /// When the next orphaned prefork expires, if any.
    pub fn next_prefork_expiry(&self) -> Option<Instant> {
        lock(&self.preforks).iter().filter_map(|p| p.expires).min()
    }

    /// Releases the processes of expired preforks (from the server thread,
    /// holding no virtual CPU).
    pub fn reap_preforks(&self, now: Instant) {
        let expired: Vec<LwpPtr> = {
            let mut v = lock(&self.preforks);
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
        lock(&self.preforks).clear();
    }
}

/// A flavour's process-wide sysproxy state: the running server and every
/// connection by cookie. Declare one `static` per flavour with
/// [`Globals::new`] and return it from [`Runtime::globals`].
pub struct Globals<R: Runtime> {
    server: Mutex<Option<Arc<Server<R>>>>,
    /// Cookies are never reused, so a stale cookie finds nothing (and the
    /// kernel gets `EFAULT`).
    registry: RwLock<BTreeMap<u64, Arc<Conn<R>>>>,
    next_id: AtomicU64,
    tcp_addr: Mutex<Option<SocketAddr>>,
}

impl<R: Runtime> Default for Globals<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Runtime> Globals<R> {
    /// Empty: no server, no connections.
    pub const fn new() -> Globals<R> {
        Globals {
            server: Mutex::new(None),
            registry: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            tcp_addr: Mutex::new(None),
        }
    }

    fn lookup(&self, arg: *mut c_void) -> Option<Arc<Conn<R>>> {
        let id = arg as usize as u64;
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
    }

    fn register(&self, conn: &Arc<Conn<R>>) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(conn.id, Arc::clone(conn));
    }

    fn unregister(&self, id: u64) {
        self.registry
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Every registered connection of `srv` (for shutdown).
    pub fn connections_of(&self, srv: &Arc<Server<R>>) -> Vec<Arc<Conn<R>>> {
        self.registry
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| Arc::ptr_eq(&c.srv, srv))
            .cloned()
            .collect()
    }

    /// Number of clients currently connected or being torn down.
    pub fn live_clients(&self) -> usize {
        lock(&self.server)
            .as_ref()
            .map_or(0, |s| s.live.load(Ordering::Acquire))
    }

    /// The address a TCP server listens on (with the real port if 0 was
    /// asked), or `None`.
    pub fn tcp_address(&self) -> Option<SocketAddr> {
        *lock(&self.tcp_addr)
    }
}

fn start<R: Runtime>(url: &str, banner: Vec<u8>) -> Result<(), Errno> {
    let g = R::globals();
    let mut slot = lock(&g.server);
    if slot.is_some() {
        return Err(Errno::EBUSY);
    }
    let cfg = Config::from_env();
    let parsed = url::parse(url, true)?;
    let backlog = cfg.max_clients.min(4096) as c_int;
    let listener = sock::listen(&parsed, cfg.unix_mode, backlog).inspect_err(|e| {
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
    let unix_path = listener.unix_path.clone();
    let tcp_addr = listener.tcp_addr;
    let cleanup = |e: Errno| {
        if let Some(p) = &unix_path {
            sock::unlink(p);
        }
        e
    };
    let rt = R::new(&cfg).map_err(cleanup)?;
    let srv = Arc::new(Server {
        cfg,
        banner,
        stopping: AtomicBool::new(false),
        live: AtomicUsize::new(0),
        preforks: Mutex::new(Vec::new()),
        unix_path: unix_path.clone(),
        rt,
    });
    R::start(Arc::clone(&srv), listener).map_err(cleanup)?;
    *lock(&g.tcp_addr) = tcp_addr;
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
            let mut slot = lock(&g.server);
            let srv = slot.take();
            if srv.is_some() {
                *lock(&g.tcp_addr) = None;
            }
            srv
        };
        if let Some(p) = srv.as_ref().and_then(|s| s.unix_path.as_ref()) {
            sock::unlink(p);
        }
        // The process that asked for the halt is about to exit: answer its
        // syscalls in flight now (error 0), as the reference does (it only
        // remembers the latest one).
        if let Some(c) = (!arg.is_null()).then(|| g.lookup(arg)).flatten() {
            let reqs = std::mem::take(&mut c.state().inflight);
            for r in reqs {
                let _ = c.send(false, |o| wire::put_syscall_resp(o, r, 0, [0, 0]));
            }
            c.flush_blocking(Duration::from_secs(2));
        }
        if let Some(s) = srv {
            s.stopping.store(true, Ordering::Release);
            s.rt.wake_server();
        }
    }
}
