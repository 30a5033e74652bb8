//! The POSIX host of the green scheduler: what [`sched_core::Platform`]
//! needs, from Linux.
//!
//! * Time: `CLOCK_MONOTONIC`, or in deterministic mode a virtual clock that
//!   only moves when every green thread is idle (it jumps to the next
//!   deadline), so a run's schedule depends on nothing but the seed.
//! * Idle: `ppoll` on one eventfd until the next deadline: no busy waiting
//!   and no periodic tick. Host threads (block I/O workers) post a token and
//!   write the eventfd; [`Host::poll_events`] hands the tokens to the
//!   scheduler, which wakes those green threads.
//! * Stacks: `mmap`ed with a `PROT_NONE` guard page below.
//!
//! [`sched_core::Platform`]: crate::sched_core::Platform

pub mod bio;

use crate::sched_core::{Platform, Stack};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;

/// The POSIX host.
pub struct Host {
    efd: AtomicI32,
    pending: AtomicBool,
    tokens: Mutex<Vec<u64>>,
    virtual_clock: AtomicBool,
    virtual_now: AtomicU64,
}

/// The one host instance.
pub static HOST: Host = Host {
    efd: AtomicI32::new(-1),
    pending: AtomicBool::new(false),
    tokens: Mutex::new(Vec::new()),
    virtual_clock: AtomicBool::new(false),
    virtual_now: AtomicU64::new(0),
};

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

impl Host {
    /// Creates the eventfd; with `virtual_clock` time starts at 1 s and only
    /// advances when idle.
    pub fn start(&self, virtual_clock: bool) -> Result<(), i32> {
        if self.efd.load(Ordering::Acquire) < 0 {
            // SAFETY: plain eventfd creation.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(rumpuser_host::sys::host_errno());
            }
            self.efd.store(fd, Ordering::Release);
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
        self.pending.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a local to our eventfd.
        unsafe {
            libc::write(
                self.efd.load(Ordering::Acquire),
                (&one as *const u64).cast(),
                8,
            )
        };
    }

    /// Monotonic nanoseconds (real or virtual).
    pub fn now(&self) -> u64 {
        if self.is_virtual() {
            self.virtual_now.load(Ordering::Relaxed)
        } else {
            rumpuser_host::clock::monotonic()
        }
    }
}

impl Platform for Host {
    fn now_ns(&self) -> u64 {
        self.now()
    }

    fn idle(&self, deadline: Option<u64>) {
        if self.is_virtual() {
            if let Some(d) = deadline {
                // Nothing can run before the next deadline: jump to it.
                self.virtual_now.fetch_max(d, Ordering::Relaxed);
                return;
            }
        }
        let mut pfd = libc::pollfd {
            fd: self.efd.load(Ordering::Acquire),
            events: libc::POLLIN,
            revents: 0,
        };
        let ts;
        let tsp = match deadline {
            None => core::ptr::null(),
            Some(d) => {
                let now = rumpuser_host::clock::monotonic();
                if d <= now {
                    return;
                }
                let rel = d - now;
                ts = libc::timespec {
                    tv_sec: (rel / 1_000_000_000).min(i64::MAX as u64) as libc::time_t,
                    tv_nsec: (rel % 1_000_000_000) as libc::c_long,
                };
                &ts as *const libc::timespec
            }
        };
        // SAFETY: one valid pollfd; timespec is NULL or a live local. EINTR
        // and early returns are fine: the core re-checks.
        unsafe { libc::ppoll(&mut pfd, 1, tsp, core::ptr::null()) };
    }

    fn poll_events(&self, wake: &mut dyn FnMut(u64)) {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut buf = 0u64;
        // SAFETY: draining our non-blocking eventfd into a local.
        unsafe {
            libc::read(
                self.efd.load(Ordering::Acquire),
                (&mut buf as *mut u64).cast(),
                8,
            )
        };
        let tokens = std::mem::take(&mut *self.tokens.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tokens {
            wake(t);
        }
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        let page = page_size();
        let size = size.div_ceil(page) * page;
        let total = size + page;
        // SAFETY: a fresh anonymous mapping; checked below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: the lowest page of our own mapping becomes the guard.
        unsafe { libc::mprotect(p, page, libc::PROT_NONE) };
        Some(Stack {
            // SAFETY: `page` < `total`, inside the mapping.
            base: unsafe { (p as *mut u8).add(page) },
            size,
            cookie: p as usize,
        })
    }

    unsafe fn free_stack(&self, stack: Stack) {
        // SAFETY: the mapping made by `alloc_stack` (cookie = start), unused now.
        unsafe { libc::munmap(stack.cookie as *mut libc::c_void, stack.size + page_size()) };
    }

    fn console(&self, s: &str) {
        rumpuser_host::console::write_stderr(s.as_bytes());
    }

    fn halt(&self) -> ! {
        rumpuser_host::signal::abort_now()
    }
}
