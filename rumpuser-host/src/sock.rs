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
use rustix::fs::Mode;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, Shutdown, SocketAddrUnix, SocketFlags, SocketType,
};
use std::ffi::CString;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::{errno, with_fd};

/// A listening socket.
pub struct Listener {
    /// The socket (non-blocking, close-on-exec).
    pub fd: OwnedFd,
    /// For unix sockets: the absolute path of the socket file.
    pub unix_path: Option<CString>,
    /// For TCP: the bound address (with the real port if 0 was asked).
    pub tcp_addr: Option<SocketAddr>,
}

fn socket(domain: AddressFamily) -> Result<OwnedFd, Errno> {
    rustix::net::socket_with(
        domain,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .map_err(errno)
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

fn sockaddr_un(path: &str) -> Result<SocketAddrUnix, Errno> {
    // `sun_path` holds the path and its NUL.
    const SUN_PATH_LEN: usize = 108;
    let b = path.as_bytes();
    if b.len() >= SUN_PATH_LEN || b.contains(&0) {
        return Err(Errno::ENAMETOOLONG);
    }
    SocketAddrUnix::new(path).map_err(errno)
}

/// Creates, binds and listens on `url`. Unix sockets get `unix_mode`; a
/// relative path is made absolute first. TCP listeners set `SO_REUSEADDR`.
pub fn listen(url: &SpUrl, unix_mode: u32, backlog: c_int) -> Result<Listener, Errno> {
    match url {
        SpUrl::Unix(path) => {
            let path = absolute_unix_path(path)?;
            let sun = sockaddr_un(&path)?;
            let fd = socket(AddressFamily::UNIX)?;
            let cpath = CString::new(path).map_err(|_| Errno::EINVAL)?;
            let mode = Mode::from_raw_mode(unix_mode as _);
            // Mode of the inode before bind = mode of the created file.
            let _ = rustix::fs::fchmod(&fd, mode);
            rustix::net::bind(&fd, &sun).map_err(errno)?;
            if let Err(e) = rustix::fs::chmod(cpath.as_c_str(), mode) {
                // Remove what we created.
                let _ = rustix::fs::unlink(cpath.as_c_str());
                return Err(errno(e));
            }
            if let Err(e) = rustix::net::listen(&fd, backlog) {
                let _ = rustix::fs::unlink(cpath.as_c_str());
                return Err(errno(e));
            }
            Ok(Listener {
                fd,
                unix_path: Some(cpath),
                tcp_addr: None,
            })
        }
        SpUrl::Tcp(addr) => {
            let domain = if addr.is_ipv4() {
                AddressFamily::INET
            } else {
                AddressFamily::INET6
            };
            let fd = socket(domain)?;
            let _ = rustix::net::sockopt::set_socket_reuseaddr(&fd, true);
            rustix::net::bind(&fd, addr).map_err(errno)?;
            rustix::net::listen(&fd, backlog).map_err(errno)?;
            let tcp_addr = match rustix::net::getsockname(&fd) {
                Ok(got) => SocketAddr::try_from(got).ok(),
                Err(_) => Some(*addr),
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
        let r = with_fd(listener, |l| {
            rustix::net::acceptfrom_with(l, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
        });
        match r {
            Ok((fd, from)) => {
                let family = from.map(|a| a.address_family());
                if matches!(family, Some(AddressFamily::INET | AddressFamily::INET6)) {
                    let _ = rustix::net::sockopt::set_tcp_nodelay(&fd, true);
                }
                return Ok(Some(fd));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(
                rustix::io::Errno::AGAIN
                | rustix::io::Errno::CONNABORTED
                | rustix::io::Errno::PROTO,
            ) => return Ok(None),
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Sends without blocking and without `SIGPIPE`; `Ok(0)` if the socket
/// buffer is full. `EPIPE` is reported as `ENOTCONN`, like sp_common.c.
pub fn send_nb(fd: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    loop {
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        match with_fd(fd, |fd| rustix::net::send(fd, buf, flags)) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(rustix::io::Errno::PIPE) => return Err(Errno::ENOTCONN),
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Receives without blocking: `Ok(Some(0))` is end of stream, `Ok(None)`
/// means nothing to read now.
pub fn recv_nb(fd: RawFd, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    loop {
        match with_fd(fd, |fd| {
            rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT)
        }) {
            Ok((n, _)) => return Ok(Some(n)),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(e) => return Err(errno(e)),
        }
    }
}

/// `shutdown(fd, SHUT_RDWR)`: the peer sees end of stream; errors ignored.
pub fn shutdown(fd: RawFd) {
    let _ = with_fd(fd, |fd| rustix::net::shutdown(fd, Shutdown::Both));
}

/// Removes a socket file; errors ignored.
pub fn unlink(path: &std::ffi::CStr) {
    let _ = rustix::fs::unlink(path);
}

/// `poll(2)`, retrying `EINTR`; returns the number of ready descriptors.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> Result<usize, Errno> {
    crate::sys::retry_int(|| crate::sys::net::poll(fds, timeout_ms)).map(|n| n as usize)
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
        use rustix::event::EventfdFlags;
        let fd = rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
            .map_err(errno)?;
        Ok(Waker { fd })
    }

    /// The descriptor to poll for `POLLIN`.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Makes the descriptor readable.
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
    }

    /// Consumes pending wakeups.
    pub fn drain(&self) {
        let mut v = [0u8; 8];
        let _ = rustix::io::read(&self.fd, &mut v);
    }
}
