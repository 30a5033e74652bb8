//! The syscall proxy on a guest (bare metal, Xen): `rumpuser_sp_init`
//! listens on the guest kernel's own TCP/IP stack, as rumprun's remote
//! control did, so a program on another machine using NetBSD's
//! librumpclient (`RUMP_SERVER=tcp://GUEST:PORT`) makes system calls in
//! this kernel.
//!
//! The server is the one every flavour runs (`rumpuser_core::sp::server`)
//! with its [`Blocking`] runtime: green threads that block in the kernel's
//! own socket calls, made through the kernel's `hyp_syscall` upcall with
//! NetBSD's numbers and argument slots (`socket`, `bind`, `listen`,
//! `accept`, `recvfrom`, `sendto`, `shutdown`, `close`). Each call is one
//! kernel entry from a green thread without an lwp, so it runs as a
//! temporary lwp of the process `rump_init` made (pid 1, the
//! application's process, whose descriptor table holds the server's
//! sockets); a thread blocked in `accept` or `recvfrom` sleeps inside the
//! kernel with its CPU released while the others run. Locks are the green
//! core's ([`lock`]).
//!
//! The image needs the kernel's sysproxy component
//! (`librumpkern_sysproxy`, which also provides `rump_init_server`) and
//! its TCP/IP stack with an interface (see the README). `unix://` URLs
//! are refused (`EOPNOTSUPP`: nobody outside the guest could connect);
//! `tcp://A.B.C.D:PORT` listens exactly there (a wildcard `*`/`0.0.0.0`
//! on every interface, logged as exposing the kernel to the network: the
//! protocol has no authentication). Limits (`RUMPUSER_SP_MAXCLIENTS`,
//! `_MAXWORKERS`, `_IDLEWORKERS`, `_MAXQUEUE`, `_MAXPREFORKS`,
//! `_PREFORK_TIMEOUT`) come from the command line, with the host
//! flavours' defaults.

#[allow(unsafe_code)]
pub mod lock;

use alloc::boxed::Box;
use alloc::string::String;
use core::ffi::{c_int, c_long, c_void, CStr};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::sync::atomic::{AtomicBool, Ordering};
use lock::GreenLocks;
use rumpuser_core::diag;
use rumpuser_core::sp::kern;
use rumpuser_core::sp::server::blocking::{Blocking, Host};
use rumpuser_core::sp::server::{Config, Globals, LazyGlobals, Proxy, Transport};
use rumpuser_core::sp::url::SpUrl;
use rumpuser_core::Errno;
use rumpuser_green::sched_core;

// NetBSD system call numbers (sys/syscall.h) and constants.
const SYS_RECVFROM: c_int = 29;
const SYS_ACCEPT: c_int = 30;
const SYS_GETSOCKNAME: c_int = 32;
const SYS_CLOSE: c_int = 6;
const SYS_BIND: c_int = 104;
const SYS_SETSOCKOPT: c_int = 105;
const SYS_LISTEN: c_int = 106;
const SYS_SENDTO: c_int = 133;
const SYS_SHUTDOWN: c_int = 134;
const SYS_SOCKET: c_int = 394; // __socket30

const AF_INET: u8 = 2;
const AF_INET6: u8 = 24;
const SOCK_STREAM: u64 = 1;
const SOL_SOCKET: u64 = 0xffff;
const SO_REUSEADDR: u64 = 0x0004;
const IPPROTO_TCP: u64 = 6;
const TCP_NODELAY: u64 = 0x01;
const MSG_NOSIGNAL: u64 = 0x0400;
const SHUT_RDWR: u64 = 2;
const SOCKADDR_IN_LEN: usize = 16;
const SOCKADDR_IN6_LEN: usize = 28;

/// One system call in the guest kernel (a kernel entry of its own, as a
/// temporary lwp of process 1); arguments are register-sized slots.
/// Interrupted calls are made again.
fn sys(num: c_int, args: &[u64]) -> Result<c_long, Errno> {
    loop {
        let mut a = [0u64; 8];
        a[..args.len()].copy_from_slice(args);
        let mut rv: [c_long; 2] = [0, 0];
        match kern::syscall(num, a.as_mut_ptr().cast::<c_void>(), &mut rv) {
            0 => return Ok(rv[0]),
            e if e == Errno::EINTR.raw() => continue,
            e => return Err(Errno::from_raw(e)),
        }
    }
}

/// A pointer argument the kernel reads through.
fn ptr<T>(p: *const T) -> u64 {
    p as usize as u64
}

/// A pointer argument the kernel writes through.
fn ptr_mut<T>(p: *mut T) -> u64 {
    p as usize as u64
}

/// NetBSD's `sockaddr_in` or `sockaddr_in6` for `a`, and its length.
fn sockaddr(a: &SocketAddr) -> ([u8; SOCKADDR_IN6_LEN], usize) {
    let mut b = [0u8; SOCKADDR_IN6_LEN];
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    match a.ip() {
        IpAddr::V4(ip) => {
            b[0] = SOCKADDR_IN_LEN as u8;
            b[1] = AF_INET;
            b[4..8].copy_from_slice(&ip.octets());
            (b, SOCKADDR_IN_LEN)
        }
        IpAddr::V6(ip) => {
            b[0] = SOCKADDR_IN6_LEN as u8;
            b[1] = AF_INET6;
            b[8..24].copy_from_slice(&ip.octets());
            (b, SOCKADDR_IN6_LEN)
        }
    }
}

/// The address in a `sockaddr` the kernel filled in.
fn parse_sockaddr(b: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match *b.get(1)? {
        AF_INET => {
            let o: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv4Addr::from(o).into(), port))
        }
        AF_INET6 => {
            let o: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::new(Ipv6Addr::from(o).into(), port))
        }
        _ => None,
    }
}

/// A socket of the guest kernel: a descriptor of process 1, closed by
/// [`Transport::close`] (never on drop: the server closes it from one of
/// its own threads once nothing uses it).
pub struct KernelSock {
    fd: c_int,
    closed: AtomicBool,
}

impl KernelSock {
    fn new(fd: c_long) -> KernelSock {
        KernelSock {
            fd: fd as c_int,
            closed: AtomicBool::new(false),
        }
    }

    fn fd(&self) -> u64 {
        self.fd as u64
    }
}

/// A listening socket of the guest kernel.
pub struct KernelListener {
    sock: KernelSock,
    addr: SocketAddr,
}

/// The guest kernel's sockets, called through `hyp_syscall`: `accept`,
/// `recvfrom` and `sendto` block the calling green thread only.
pub struct KernelTransport;

impl KernelTransport {
    fn listen_tcp(addr: &SocketAddr, backlog: c_int) -> Result<KernelListener, Errno> {
        let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
        let s = KernelSock::new(sys(SYS_SOCKET, &[family as u64, SOCK_STREAM, 0])?);
        let r = (|| {
            let one: c_int = 1;
            sys(
                SYS_SETSOCKOPT,
                &[
                    s.fd(),
                    SOL_SOCKET,
                    SO_REUSEADDR,
                    ptr(&one),
                    core::mem::size_of::<c_int>() as u64,
                ],
            )?;
            let (sa, len) = sockaddr(addr);
            sys(SYS_BIND, &[s.fd(), ptr(sa.as_ptr()), len as u64])?;
            sys(SYS_LISTEN, &[s.fd(), backlog.max(1) as u64])?;
            let mut got = [0u8; SOCKADDR_IN6_LEN];
            let mut gl: u32 = got.len() as u32;
            let bound = sys(
                SYS_GETSOCKNAME,
                &[s.fd(), ptr_mut(got.as_mut_ptr()), ptr_mut(&mut gl)],
            )
            .ok()
            .and_then(|_| parse_sockaddr(&got[..(gl as usize).min(got.len())]));
            Ok(bound.unwrap_or(*addr))
        })();
        match r {
            Ok(addr) => Ok(KernelListener { sock: s, addr }),
            Err(e) => {
                Self::close(&s);
                Err(e)
            }
        }
    }
}

impl Transport for KernelTransport {
    type Listener = KernelListener;
    type Sock = KernelSock;

    fn listen(url: &SpUrl, _cfg: &Config, backlog: c_int) -> Result<KernelListener, Errno> {
        match url {
            SpUrl::Unix(_) => Err(Errno::EOPNOTSUPP),
            SpUrl::Tcp(a) => Self::listen_tcp(a, backlog),
        }
    }

    fn unix_path(_l: &KernelListener) -> Option<&CStr> {
        None
    }

    fn tcp_addr(l: &KernelListener) -> Option<SocketAddr> {
        Some(l.addr)
    }

    fn unlink(_path: &CStr) {}

    fn accept(l: &KernelListener) -> Result<Option<KernelSock>, Errno> {
        match sys(SYS_ACCEPT, &[l.sock.fd(), 0, 0]) {
            Ok(fd) => {
                let s = KernelSock::new(fd);
                let one: c_int = 1;
                // Frames are small and answered at once: no Nagle delay.
                let _ = sys(
                    SYS_SETSOCKOPT,
                    &[
                        s.fd(),
                        IPPROTO_TCP,
                        TCP_NODELAY,
                        ptr(&one),
                        core::mem::size_of::<c_int>() as u64,
                    ],
                );
                Ok(Some(s))
            }
            Err(Errno::ECONNABORTED) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(s: &KernelSock, buf: &[u8]) -> Result<usize, Errno> {
        match sys(
            SYS_SENDTO,
            &[
                s.fd(),
                ptr(buf.as_ptr()),
                buf.len() as u64,
                MSG_NOSIGNAL,
                0,
                0,
            ],
        ) {
            Ok(n) => Ok(n as usize),
            Err(Errno::EPIPE) => Err(Errno::ENOTCONN),
            Err(e) => Err(e),
        }
    }

    fn recv(s: &KernelSock, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        sys(
            SYS_RECVFROM,
            &[s.fd(), ptr_mut(buf.as_mut_ptr()), buf.len() as u64, 0, 0, 0],
        )
        .map(|n| Some(n as usize))
    }

    fn shutdown(s: &KernelSock) {
        if !s.closed.load(Ordering::Acquire) {
            let _ = sys(SYS_SHUTDOWN, &[s.fd(), SHUT_RDWR]);
        }
    }

    fn close(s: &KernelSock) {
        if !s.closed.swap(true, Ordering::AcqRel) {
            let _ = sys(SYS_CLOSE, &[s.fd()]);
        }
    }
}

/// Where the parameters are (the platform's boot command line).
static CMDLINE: spin::Once<fn() -> &'static str> = spin::Once::new();

/// Tells the server where the `RUMPUSER_SP_*` parameters are (called at
/// `rumpuser_init`).
pub fn set_cmdline(f: fn() -> &'static str) {
    CMDLINE.call_once(|| f);
}

static GLOBALS: LazyGlobals<Blocking<Guest>> = LazyGlobals::new();

/// The guest as the [`Blocking`] runtime's [`Host`]: green threads with
/// kernel-sized stacks, the green core's locks, the kernel's sockets,
/// RDRAND/RDSEED, the command line.
pub struct Guest;

impl Host for Guest {
    type Locks = GreenLocks;
    type Transport = KernelTransport;

    fn globals() -> &'static Globals<Blocking<Guest>> {
        GLOBALS.get()
    }

    fn config() -> Config {
        let cmdline = CMDLINE.get().map_or("", |f| f());
        Config::from_lookup(|name| crate::cmdline::param(cmdline, name).map(String::from))
    }

    fn random(buf: &mut [u8]) -> bool {
        rumpuser_core::sp::server::fill_random(buf, crate::random::fill)
    }

    fn spawn(f: Box<dyn FnOnce() + Send>, name: &'static str) -> Result<(), Errno> {
        // The threads enter the kernel: kernel-thread stacks.
        sched_core::spawn_closure(f, name, crate::host::stack_size(), false)
            .map(drop)
            .map_err(|e| {
                diag::log(format_args!("sysproxy: cannot start {name}: {e:?}"));
                Errno::EAGAIN
            })
    }
}

/// The `SysProxy` bare metal and Xen hand out.
pub static SYSPROXY: Proxy<Blocking<Guest>> = Proxy::new();
