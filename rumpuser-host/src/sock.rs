//! Sockets for the syscall proxy server (the host half of sp_common.c):
//! listening on a parsed [`SpUrl`], non-blocking accept/send/recv, `poll`,
//! and an `eventfd` to wake a poll loop. Flavour-independent: the posix
//! server drives these from host threads, a green server could drive the
//! same calls from green threads.
//!
//! Unix sockets are created owner-only (mode `0600`) unless the caller asks
//! for another mode: the socket inode gets the mode *before* `bind`, which
//! on Linux is the mode the file is created with (masked by the umask), so
//! there is no window in which others can connect; `chmod` afterwards sets
//! the exact mode requested.

use core::ffi::c_int;
use rumpuser_core::sp::url::{SpUrl, SUN_PATH_MAX};
use rumpuser_core::Errno;
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::sys::{last_error, retry_int};

/// A listening socket.
pub struct Listener {
    /// The socket (non-blocking, close-on-exec).
    pub fd: OwnedFd,
    /// For unix sockets: the absolute path of the socket file.
    pub unix_path: Option<CString>,
    /// For TCP: the bound address (with the real port if 0 was asked).
    pub tcp_addr: Option<SocketAddr>,
}

fn socket(domain: c_int) -> Result<OwnedFd, Errno> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(last_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes a relative unix socket path absolute against the working directory.
pub fn absolute_unix_path(path: &str) -> Result<String, Errno> {
    let p = if path.starts_with('/') {
        path.to_string()
    } else {
        let cwd = std::env::current_dir().map_err(|e| {
            e.raw_os_error()
                .map(Errno::from_linux)
                .unwrap_or(Errno::EINVAL)
        })?;
        let cwd = cwd.to_str().ok_or(Errno::EINVAL)?.trim_end_matches('/');
        format!("{cwd}/{path}")
    };
    if p.len() >= SUN_PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(p)
}

fn sockaddr_un(path: &str) -> Result<libc::sockaddr_un, Errno> {
    // SAFETY: all-zero is a valid sockaddr_un.
    let mut sun: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_bytes();
    if b.len() >= sun.sun_path.len() || b.contains(&0) {
        return Err(Errno::ENAMETOOLONG);
    }
    for (d, s) in sun.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(sun)
}

/// A `sockaddr_storage` and its length for an IP socket address.
pub fn sockaddr_ip(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { core::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            core::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { core::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            core::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn sockaddr_to_ip(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as c_int {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// Creates, binds and listens on `url`. Unix sockets get `unix_mode`; a
/// relative path is made absolute first. TCP listeners set `SO_REUSEADDR`.
pub fn listen(url: &SpUrl, unix_mode: u32, backlog: c_int) -> Result<Listener, Errno> {
    match url {
        SpUrl::Unix(path) => {
            let path = absolute_unix_path(path)?;
            let sun = sockaddr_un(&path)?;
            let fd = socket(libc::AF_UNIX)?;
            let cpath = CString::new(path).map_err(|_| Errno::EINVAL)?;
            // Mode of the inode before bind = mode of the created file.
            // SAFETY: fchmod on our own descriptor.
            unsafe { libc::fchmod(fd.as_raw_fd(), unix_mode as libc::mode_t) };
            // SAFETY: `sun` is a valid, initialized sockaddr_un.
            let r = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &sun as *const _ as *const libc::sockaddr,
                    core::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
                )
            };
            if r != 0 {
                return Err(last_error());
            }
            // SAFETY: `cpath` is a valid C string naming the file just created.
            if unsafe { libc::chmod(cpath.as_ptr(), unix_mode as libc::mode_t) } != 0 {
                let e = last_error();
                // SAFETY: as above; remove what we created.
                unsafe { libc::unlink(cpath.as_ptr()) };
                return Err(e);
            }
            // SAFETY: listen(2) on our socket.
            if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
                let e = last_error();
                // SAFETY: as above.
                unsafe { libc::unlink(cpath.as_ptr()) };
                return Err(e);
            }
            Ok(Listener {
                fd,
                unix_path: Some(cpath),
                tcp_addr: None,
            })
        }
        SpUrl::Tcp(addr) => {
            let domain = if addr.is_ipv4() {
                libc::AF_INET
            } else {
                libc::AF_INET6
            };
            let fd = socket(domain)?;
            let one: c_int = 1;
            // SAFETY: setsockopt with a valid int option value.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_REUSEADDR,
                    &one as *const c_int as *const libc::c_void,
                    core::mem::size_of::<c_int>() as libc::socklen_t,
                )
            };
            let (ss, len) = sockaddr_ip(addr);
            // SAFETY: `ss` holds a valid address of `len` bytes.
            if unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    &ss as *const _ as *const libc::sockaddr,
                    len,
                )
            } != 0
            {
                return Err(last_error());
            }
            // SAFETY: listen(2) on our socket.
            if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
                return Err(last_error());
            }
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut got: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
            let mut gl = core::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            // SAFETY: getsockname into a storage of the given size.
            let r = unsafe {
                libc::getsockname(
                    fd.as_raw_fd(),
                    &mut got as *mut _ as *mut libc::sockaddr,
                    &mut gl,
                )
            };
            let tcp_addr = if r == 0 {
                sockaddr_to_ip(&got)
            } else {
                Some(*addr)
            };
            Ok(Listener {
                fd,
                unix_path: None,
                tcp_addr,
            })
        }
    }
}

/// Accepts one connection (non-blocking, close-on-exec; `TCP_NODELAY` on
/// IP sockets). `Ok(None)` when no connection is waiting.
pub fn accept(listener: RawFd) -> Result<Option<OwnedFd>, Errno> {
    loop {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut sl = core::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: accept4 into a storage of the given size.
        let fd = unsafe {
            libc::accept4(
                listener,
                &mut ss as *mut _ as *mut libc::sockaddr,
                &mut sl,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if matches!(ss.ss_family as c_int, libc::AF_INET | libc::AF_INET6) {
                let one: c_int = 1;
                // SAFETY: setsockopt with a valid int option value.
                unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::IPPROTO_TCP,
                        libc::TCP_NODELAY,
                        &one as *const c_int as *const libc::c_void,
                        core::mem::size_of::<c_int>() as libc::socklen_t,
                    )
                };
            }
            return Ok(Some(fd));
        }
        match crate::sys::host_errno() {
            libc::EINTR => continue,
            libc::EAGAIN | libc::ECONNABORTED | libc::EPROTO => return Ok(None),
            _ => return Err(last_error()),
        }
    }
}

/// Sends without blocking and without `SIGPIPE`; `Ok(0)` if the socket
/// buffer is full. `EPIPE` is reported as `ENOTCONN`, like sp_common.c.
pub fn send_nb(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: sending from a valid buffer of `buf.len()` bytes.
        let n = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        match crate::sys::host_errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(0),
            libc::EPIPE => return Err(Errno::ENOTCONN),
            _ => return Err(last_error()),
        }
    }
}

/// Receives without blocking: `Ok(Some(0))` is end of stream, `Ok(None)`
/// means nothing to read now.
pub fn recv_nb(fd: RawFd, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    loop {
        // SAFETY: receiving into a valid buffer of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        match crate::sys::host_errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(None),
            _ => return Err(last_error()),
        }
    }
}

/// `shutdown(fd, SHUT_RDWR)`: the peer sees end of stream; errors ignored.
pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor the caller owns.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Removes a socket file; errors ignored.
pub fn unlink(path: &std::ffi::CStr) {
    // SAFETY: `path` is a valid C string.
    unsafe { libc::unlink(path.as_ptr()) };
}

/// `poll(2)`, retrying `EINTR`; returns the number of ready descriptors.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> Result<usize, Errno> {
    retry_int(|| {
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
    })
    .map(|n| n as usize)
}

/// Waits until `fd` is writable or `timeout_ms` passes; true if writable.
pub fn wait_writable(fd: RawFd, timeout_ms: c_int) -> bool {
    let mut p = [libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    }];
    matches!(poll(&mut p, timeout_ms), Ok(1)) && p[0].revents & libc::POLLOUT != 0
}

/// A non-blocking `eventfd` used to wake a poll loop.
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// Creates the eventfd.
    pub fn new() -> Result<Waker, Errno> {
        // SAFETY: plain eventfd(2) call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(last_error());
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// The descriptor to poll for `POLLIN`.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the descriptor readable.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a valid u64 to our eventfd.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Consumes pending wakeups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reading 8 bytes into a valid u64 from our eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}
