//! The syscall proxy server (rumpuser_sp.c) on host threads: one poll
//! loop thread, a bounded pool of worker threads, and the `SysProxy`
//! hypercalls the kernel calls for remote processes. The protocol rules
//! live in `rumpuser_core::sp`; sockets in `rumpuser_host::sock`.
//!
//! **The protocol has no authentication.** Anyone who can connect can run
//! system calls in the rump kernel. Unix sockets are therefore created
//! owner-only (`0600`) unless `RUMPUSER_SP_MODE` says otherwise; a TCP
//! server listens exactly where the URL says (`tcp://127.0.0.1:PORT` for
//! the local machine only; `tcp://*:PORT` exposes the kernel to the network).
//!
//! Configuration (read at `rumpuser_sp_init`):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RUMPUSER_SP_MAXCLIENTS` | 255 | connected clients; more are accepted and closed at once |
//! | `RUMPUSER_SP_MAXWORKERS` | 128 | worker threads executing system calls |
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
mod kern;
mod pool;
mod server;

use conn::{Conn, LwpPtr};
use core::ffi::{c_int, c_void, CStr};
use pool::Pool;
use rumpuser_core::diag;
use rumpuser_core::sp::conn::Expect;
use rumpuser_core::sp::url::{self, SpUrl};
use rumpuser_core::sp::wire::{self, AUTH_LEN};
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::Errno;
use rumpuser_host::sock::{self, Waker};
use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Server limits and options.
#[derive(Clone, Debug)]
pub struct Config {
    /// Connected clients at most.
    pub max_clients: usize,
    /// Worker threads at most.
    pub max_workers: usize,
    /// Idle worker threads kept.
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

/// A preforked process waiting for its child's FORK handshake.
pub(crate) struct Prefork {
    auth: [u8; AUTH_LEN],
    lwp: LwpPtr,
    parent: u64,
    /// Set when the parent is gone.
    expires: Option<Instant>,
}

/// State shared by the loop, the workers and the connections of one server.
pub(crate) struct Shared {
    cfg: Config,
    banner: Vec<u8>,
    waker: Waker,
    /// `sp_fini` was called: stop, and make no more kernel calls in teardown.
    stopping: AtomicBool,
    /// Clients not yet torn down.
    live: AtomicUsize,
    pool: Arc<Pool>,
    preforks: Mutex<Vec<Prefork>>,
    unix_path: Option<CString>,
}

impl Shared {
    fn preforks(&self) -> std::sync::MutexGuard<'_, Vec<Prefork>> {
        self.preforks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_prefork(&self, auth: &[u8; AUTH_LEN]) -> Option<Prefork> {
        let mut v = self.preforks();
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
        self.preforks()
            .iter()
            .filter(|p| p.parent == parent && p.expires.is_none())
            .count()
    }

    /// The parent of these preforks is gone: they expire after the grace time.
    fn orphan_preforks(&self, parent: u64) {
        let t = Instant::now() + self.cfg.prefork_grace;
        for p in self.preforks().iter_mut().filter(|p| p.parent == parent) {
            p.expires.get_or_insert(t);
        }
    }

    fn has_expiring_preforks(&self) -> bool {
        self.preforks().iter().any(|p| p.expires.is_some())
    }

    /// Releases the processes of expired preforks (poll loop only).
    fn reap_preforks(&self, now: Instant) {
        let expired: Vec<LwpPtr> = {
            let mut v = self.preforks();
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
}

/// Every connection by cookie, for the `rumpuser_sp_*` calls. Cookies are
/// never reused, so a stale cookie finds nothing (and gets `EFAULT`).
pub(crate) static REGISTRY: LazyLock<RwLock<HashMap<u64, Arc<Conn>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));
pub(crate) static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// The running server, between `sp_init` and `sp_fini`.
static SERVER: Mutex<Option<Arc<Shared>>> = Mutex::new(None);

fn lookup(arg: *mut c_void) -> Option<Arc<Conn>> {
    let id = arg as usize as u64;
    REGISTRY
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
}

/// Number of clients currently connected or being torn down (tests).
pub fn live_clients() -> usize {
    SERVER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |s| s.live.load(Ordering::Acquire))
}

/// The address a TCP server listens on (with the real port if 0 was
/// asked), or `None`. Set by [`SysProxyServer::init`].
pub fn tcp_address() -> Option<std::net::SocketAddr> {
    *TCP_ADDR.lock().unwrap_or_else(|e| e.into_inner())
}
static TCP_ADDR: Mutex<Option<std::net::SocketAddr>> = Mutex::new(None);

/// The POSIX implementation of [`SysProxy`].
pub struct SysProxyServer;

/// The instance the posix hypervisor hands out.
pub static SYSPROXY: SysProxyServer = SysProxyServer;

fn start(url: &str, banner: Vec<u8>) -> Result<(), Errno> {
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
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
    *TCP_ADDR.lock().unwrap_or_else(|e| e.into_inner()) = listener.tcp_addr;
    let shared = Arc::new(Shared {
        pool: Arc::new(Pool::new(cfg.max_workers, cfg.idle_workers, cfg.max_queue)),
        cfg,
        banner,
        waker: Waker::new()?,
        stopping: AtomicBool::new(false),
        live: AtomicUsize::new(0),
        preforks: Mutex::new(Vec::new()),
        unix_path: listener.unix_path.clone(),
    });
    let srv = Arc::clone(&shared);
    let spawned = std::thread::Builder::new()
        .name("rumpsp".into())
        .spawn(move || server::run(srv, listener));
    if let Err(e) = spawned {
        if let Some(p) = &shared.unix_path {
            sock::unlink(p);
        }
        return Err(e
            .raw_os_error()
            .map(Errno::from_linux)
            .unwrap_or(Errno::EAGAIN));
    }
    *slot = Some(shared);
    Ok(())
}

impl SysProxy for SysProxyServer {
    fn init(
        &self,
        url: &CStr,
        ostype: &CStr,
        osrelease: &CStr,
        machine: &CStr,
    ) -> Result<(), Errno> {
        let url = url.to_str().map_err(|_| Errno::EINVAL)?;
        let banner = wire::banner(ostype.to_bytes(), osrelease.to_bytes(), machine.to_bytes());
        start(url, banner)
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
        let c = lookup(arg).ok_or(Errno::EFAULT)?;
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
        let c = lookup(arg).ok_or(Errno::EFAULT)?;
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
        let c = lookup(arg).ok_or(Errno::EFAULT)?;
        if laddr.is_empty() {
            return Ok(());
        }
        let r = c.next_reqno();
        c.send(true, |o| wire::put_copyout_req(o, r, raddr as usize, laddr))
            .map_err(|_| Errno::EFAULT)
    }

    fn anonmmap(&self, arg: *mut c_void, len: usize) -> Result<*mut c_void, Errno> {
        let c = lookup(arg).ok_or(Errno::EFAULT)?;
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
        let c = lookup(arg).ok_or(Errno::EFAULT)?;
        let r = c.next_reqno();
        c.send(true, |o| wire::put_raise_req(o, r, signo))
            .map_err(|_| Errno::EFAULT)
    }

    fn fini(&self, arg: *mut c_void) {
        let srv = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(p) = srv.as_ref().and_then(|s| s.unix_path.as_ref()) {
            sock::unlink(p);
        }
        // The process that asked for the halt is about to exit: answer its
        // syscalls in flight now (error 0), as the reference does (it only
        // remembers the latest one).
        if let Some(c) = (!arg.is_null()).then(|| lookup(arg)).flatten() {
            let reqs = std::mem::take(&mut c.state().inflight);
            for r in reqs {
                let _ = c.send(false, |o| wire::put_syscall_resp(o, r, 0, [0, 0]));
            }
            c.flush_blocking(Duration::from_secs(2));
        }
        if let Some(s) = srv {
            s.stopping.store(true, Ordering::Release);
            s.waker.wake();
        }
        *TCP_ADDR.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
