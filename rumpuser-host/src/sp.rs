//! The POSIX host's half of the syscall proxy server both Linux flavours
//! run: the server itself is `rumpuser_core::sp::server` (re-exported
//! here), generic over a flavour's runtime; this module supplies what a
//! POSIX host has for it: [`HostTransport`] (the non-blocking host sockets
//! of [`crate::sock`]), [`StdMutex`] (a `std` mutex as the server's
//! [`Lock`]), the configuration from the environment ([`config`]), the
//! monotonic clock ([`now_ns`]) and randomness ([`random`]).
//!
//! A flavour then implements [`Runtime`] with inline writes: its
//! condition variable (a host condvar, or parking green threads, through
//! [`Locks`]), how it starts serving (a poll loop thread, or green threads
//! on non-blocking sockets), how to make its I/O driver look at a
//! connection with pending output, and how work items reach a worker (a
//! host thread pool, or green worker threads). [`Proxy<R>`] is its
//! `SysProxy`.
//!
//! **The protocol has no authentication.** Anyone who can connect can run
//! system calls in the rump kernel. Unix sockets are therefore created
//! owner-only (`0600`) unless `RUMPUSER_SP_MODE` says otherwise; a TCP
//! server listens exactly where the URL says (`tcp://127.0.0.1:PORT` for
//! the local machine only; `tcp://*:PORT` exposes the kernel to the
//! network). The `RUMPUSER_SP_*` limits are in the server's docs.

pub use rumpuser_core::sp::server::{
    accept_pending, read_available, run_work, Config, Conn, Globals, Guard, LazyGlobals, Lock,
    Locks, Proxy, ReadOutcome, Runtime, Server, State, Transport, Work, OUT_HARD_LIMIT,
    OUT_HIGH_WATER, READ_CHUNK,
};

use crate::sock::{self, Listener};
use core::ffi::{c_int, CStr};
use rumpuser_core::sp::url::SpUrl;
use rumpuser_core::Errno;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

/// The server's limits and options from the `RUMPUSER_SP_*` environment
/// variables.
pub fn config() -> Config {
    Config::from_lookup(|name| std::env::var(name).ok())
}

/// The host's monotonic clock in nanoseconds (`CLOCK_MONOTONIC`, as
/// `std::time::Instant`).
pub fn now_ns() -> u64 {
    crate::clock::monotonic()
}

/// Fills `buf` from the host's randomness; false if it fails.
pub fn random(buf: &mut [u8]) -> bool {
    rumpuser_core::sp::server::fill_random(buf, crate::random::fill)
}

/// A `std::sync::Mutex` as the server's [`Lock`] (poisoning ignored: the
/// server never panics holding one, and a release build aborts).
#[derive(Debug, Default)]
pub struct StdMutex<T>(std::sync::Mutex<T>);

impl<T> StdMutex<T> {
    /// The `std` mutex, for a condition variable's wait.
    pub fn inner(&self) -> &std::sync::Mutex<T> {
        &self.0
    }
}

impl<T: Send> Lock<T> for StdMutex<T> {
    type Guard<'a>
        = std::sync::MutexGuard<'a, T>
    where
        T: 'a;

    fn new(v: T) -> Self {
        StdMutex(std::sync::Mutex::new(v))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The host's sockets: non-blocking, close-on-exec, no `SIGPIPE`
/// ([`crate::sock`]); a connection's descriptor closes when the connection
/// is dropped.
pub struct HostTransport;

impl Transport for HostTransport {
    type Listener = Listener;
    type Sock = OwnedFd;

    fn listen(url: &SpUrl, cfg: &Config, backlog: c_int) -> Result<Listener, Errno> {
        sock::listen(url, cfg.unix_mode, backlog)
    }

    fn unix_path(l: &Listener) -> Option<&CStr> {
        l.unix_path.as_deref()
    }

    fn tcp_addr(l: &Listener) -> Option<SocketAddr> {
        l.tcp_addr
    }

    fn unlink(path: &CStr) {
        sock::unlink(path)
    }

    fn accept(l: &Listener) -> Result<Option<OwnedFd>, Errno> {
        sock::accept(l.fd.as_raw_fd())
    }

    fn send(s: &OwnedFd, buf: &[u8]) -> Result<usize, Errno> {
        sock::send_nb(s.as_raw_fd(), buf)
    }

    fn recv(s: &OwnedFd, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        sock::recv_nb(s.as_raw_fd(), buf)
    }

    fn shutdown(s: &OwnedFd) {
        sock::shutdown(s.as_raw_fd())
    }

    fn close(_s: &OwnedFd) {
        // Closed when dropped: a late inline write from another thread
        // must never reach a reused descriptor number.
    }
}
