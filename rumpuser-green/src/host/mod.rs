//! The POSIX host of the green scheduler: what [`sched_core::Platform`]
//! needs, from Linux.
//!
//! * Time: `CLOCK_MONOTONIC`, or in deterministic mode a virtual clock that
//!   only moves when every green thread is idle (it jumps to the next
//!   deadline), so a run's schedule depends on nothing but the seed.
//! * Idle: `ppoll` on one eventfd until the next deadline: no busy waiting
//!   and no periodic tick. Host threads (block I/O workers) post a token and
//!   write the eventfd; [`Platform::poll_events`] hands the tokens to the
//!   scheduler, which wakes those green threads.
//! * Descriptors: a green thread that would block on a socket registers
//!   the descriptor with [`wait_fd`] and parks; the idle `ppoll` then also
//!   waits for the registered descriptors, and while any is registered
//!   `poll_events` checks them too (one zero-timeout `poll`, at most every
//!   [`WATCH_POLL_NS`]), so a green thread waiting for a client wakes soon
//!   even while others keep running. With nothing registered
//!   `poll_events` costs one atomic load, as before.
//! * Stacks: `mmap`ed with a `PROT_NONE` guard page below ([`platform`]).
//!
//! [`sched_core::Platform`]: crate::sched_core::Platform
//! [`Platform::poll_events`]: crate::sched_core::Platform::poll_events

pub mod bio;
#[allow(unsafe_code)]
pub mod excursion;
#[allow(unsafe_code)]
pub mod platform;
#[allow(unsafe_code)]
pub mod token;

use crate::sched_core;
use rumpuser_host::sys::with_fd;
use std::os::fd::{IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// A descriptor a parked green thread waits for.
struct Watch {
    fd: RawFd,
    events: i16,
    /// The green thread to wake.
    token: u64,
    /// What `poll` reported (0: not fired yet).
    revents: i16,
}

/// The POSIX host.
pub struct Host {
    efd: AtomicI32,
    pending: AtomicBool,
    tokens: Mutex<Vec<u64>>,
    virtual_clock: AtomicBool,
    virtual_now: AtomicU64,
    /// Registered descriptors (green host thread only).
    watches: Mutex<Vec<Watch>>,
    /// Watches that have not fired: `poll_events` polls only while nonzero.
    armed: AtomicUsize,
    /// Tokens of watches that fired in `idle`, for the next `poll_events`.
    ready: Mutex<Vec<u64>>,
    ready_pending: AtomicBool,
    /// When the watches were last polled (real monotonic ns).
    last_poll: AtomicU64,
    /// Scratch `pollfd` array for `idle` and `poll_events`.
    pfds: Mutex<Vec<libc::pollfd>>,
}

/// While green threads keep running, `poll_events` polls the registered
/// descriptors at most this often (it is also called every
/// `poll_interval` switches, and right around every idle `ppoll`, which
/// polls them anyway).
pub const WATCH_POLL_NS: u64 = 100_000;

/// The one host instance.
pub static HOST: Host = Host {
    efd: AtomicI32::new(-1),
    pending: AtomicBool::new(false),
    tokens: Mutex::new(Vec::new()),
    virtual_clock: AtomicBool::new(false),
    virtual_now: AtomicU64::new(0),
    watches: Mutex::new(Vec::new()),
    armed: AtomicUsize::new(0),
    ready: Mutex::new(Vec::new()),
    ready_pending: AtomicBool::new(false),
    last_poll: AtomicU64::new(0),
    pfds: Mutex::new(Vec::new()),
};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parks the calling green thread until `fd` is ready for `events`
/// (`POLLIN`/`POLLOUT`), `deadline` passes, or the thread is woken
/// otherwise (`sched_core::wake`); returns the events `poll` reported (0 if
/// it was not woken by the descriptor). Green host thread only; callers
/// re-check their condition, since wake-ups may be spurious.
pub fn wait_fd(fd: RawFd, events: i16, deadline: Option<u64>) -> i16 {
    let me = sched_core::current().as_raw();
    HOST.watch(fd, events, me);
    sched_core::park(deadline);
    HOST.unwatch(me)
}

/// `timespec` for `rel` nanoseconds.
pub(crate) fn timespec(rel: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (rel / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
        tv_nsec: (rel % 1_000_000_000) as libc::c_long,
    }
}

impl Host {
    /// Creates the eventfd; with `virtual_clock` time starts at 1 s and only
    /// advances when idle.
    pub fn start(&self, virtual_clock: bool) -> Result<(), i32> {
        if self.efd.load(Ordering::Acquire) < 0 {
            use rustix::event::EventfdFlags;
            let fd = rustix::event::eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC)
                .map_err(|e| e.raw_os_error())?;
            // Lives as long as the process, by number.
            self.efd.store(fd.into_raw_fd(), Ordering::Release);
        }
        self.virtual_clock.store(virtual_clock, Ordering::Relaxed);
        self.virtual_now.store(1_000_000_000, Ordering::Relaxed);
        Ok(())
    }

    /// Whether time is virtual (deterministic mode).
    pub fn is_virtual(&self) -> bool {
        self.virtual_clock.load(Ordering::Relaxed)
    }

    /// Called from any host thread: wake the green thread `token` soon.
    pub fn post(&self, token: u64) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token);
        self.kick();
    }

    /// Called from any host thread: make the green host thread's next
    /// `poll_events` (and `idle`) look at what was queued for it.
    pub fn kick(&self) {
        self.pending.store(true, Ordering::Release);
        let one = 1u64.to_ne_bytes();
        let _ = with_fd(self.efd.load(Ordering::Acquire), |fd| {
            rustix::io::write(fd, &one)
        });
    }

    /// Monotonic nanoseconds (real or virtual).
    pub fn now(&self) -> u64 {
        if self.is_virtual() {
            self.virtual_now.load(Ordering::Relaxed)
        } else {
            rumpuser_host::clock::monotonic()
        }
    }

    /// Green host thread only: wake green thread `token` once `fd` is
    /// ready for `events`. One watch per token (a new one replaces it).
    pub fn watch(&self, fd: RawFd, events: i16, token: u64) {
        let mut w = lock(&self.watches);
        match w.iter_mut().find(|x| x.token == token) {
            Some(x) => {
                if x.revents != 0 {
                    self.armed.fetch_add(1, Ordering::Relaxed);
                }
                *x = Watch {
                    fd,
                    events,
                    token,
                    revents: 0,
                };
            }
            None => {
                w.push(Watch {
                    fd,
                    events,
                    token,
                    revents: 0,
                });
                self.armed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Removes the watch of `token`; returns what it saw (0: not fired).
    pub fn unwatch(&self, token: u64) -> i16 {
        let mut w = lock(&self.watches);
        let Some(i) = w.iter().position(|x| x.token == token) else {
            return 0;
        };
        let x = w.swap_remove(i);
        if x.revents == 0 {
            self.armed.fetch_sub(1, Ordering::Relaxed);
        }
        x.revents
    }

    /// Polls the armed watches (plus the eventfd first if `efd`) for up to
    /// `timeout` (None: forever); fired watches hand their token to `fired`.
    /// Returns the number of watches that fired.
    pub(crate) fn poll_watches(
        &self,
        efd: bool,
        timeout: Option<&libc::timespec>,
        fired: &mut dyn FnMut(u64),
    ) -> usize {
        let mut pfds = lock(&self.pfds);
        let mut w = lock(&self.watches);
        pfds.clear();
        if efd {
            pfds.push(libc::pollfd {
                fd: self.efd.load(Ordering::Acquire),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let skip = pfds.len();
        for x in w.iter().filter(|x| x.revents == 0) {
            pfds.push(libc::pollfd {
                fd: x.fd,
                events: x.events,
                revents: 0,
            });
        }
        // EINTR just means "nothing fired".
        let r = rumpuser_host::sys::net::ppoll(&mut pfds, timeout);
        self.last_poll
            .store(rumpuser_host::clock::monotonic(), Ordering::Relaxed);
        if r <= 0 {
            return 0;
        }
        let mut n = 0;
        let armed = w.iter_mut().filter(|x| x.revents == 0);
        for (x, p) in armed.zip(&pfds[skip..]) {
            if p.revents != 0 {
                x.revents = p.revents;
                fired(x.token);
                n += 1;
            }
        }
        self.armed.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// `poll_watches` from `idle`: the tokens wait for `poll_events`.
    pub(crate) fn poll_watches_idle(&self, timeout: Option<&libc::timespec>) -> usize {
        let mut ready = lock(&self.ready);
        let n = self.poll_watches(true, timeout, &mut |t| ready.push(t));
        if n > 0 {
            self.ready_pending.store(true, Ordering::Release);
        }
        n
    }
}
