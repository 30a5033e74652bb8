//! The green core's [`Platform`] for the POSIX host ([`Host`], described
//! in the parent module), with what needs `unsafe`: kernel-thread stacks
//! (`mmap` with a guard page, `munmap` in the core's `unsafe fn
//! free_stack`) and starting the scheduler on the calling host thread (the
//! core's `unsafe fn init`).

use super::{excursion, lock, timespec, token, Host, WATCH_POLL_NS};
use crate::sched_core::{self, Config, InitError, Platform, Stack, ThreadId};
use rumpuser_host::sys::with_fd;
use std::sync::atomic::Ordering;

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Starts the scheduler with `cfg` on the calling host thread, which
/// becomes the primary host.
///
/// Called once, by `rumpuser_init`; from then on every hypercall that
/// touches the green world takes the token first (`hyp::on_green_host`).
pub(crate) fn start_scheduler(cfg: Config) -> Result<ThreadId, InitError> {
    // SAFETY: this host thread becomes the primary host; from now on
    // every hypercall that touches the green world takes the token
    // (`on_green_host`), so one host thread at a time uses the
    // scheduler.
    unsafe { sched_core::init(&super::HOST, cfg) }
}

impl Platform for Host {
    fn now_ns(&self) -> u64 {
        self.now()
    }

    fn idle(&self, deadline: Option<u64>) {
        let watching = self.armed.load(Ordering::Relaxed) != 0;
        if self.is_virtual() {
            if let Some(d) = deadline {
                let now = self.virtual_now.load(Ordering::Relaxed);
                // With descriptors registered, wait for them as long (in
                // real time) as the virtual gap, so clients see sane timing.
                if watching && d > now && self.poll_watches_idle(Some(&timespec(d - now))) > 0 {
                    return;
                }
                // Nothing can run before the next deadline: jump to it.
                self.virtual_now.fetch_max(d, Ordering::Relaxed);
                return;
            }
        }
        // Before the sleep's timeout is computed, so the poll's time counts.
        if excursion::poll_for_return(deadline, &self.pending) {
            return;
        }
        let ts;
        let timeout = match deadline {
            None => None,
            Some(d) => {
                let now = rumpuser_host::clock::monotonic();
                if d <= now {
                    return;
                }
                ts = timespec(d - now);
                Some(&ts)
            }
        };
        if watching {
            self.poll_watches_idle(timeout);
            return;
        }
        let mut pfd = [libc::pollfd {
            fd: self.efd.load(Ordering::Acquire),
            events: libc::POLLIN,
            revents: 0,
        }];
        // EINTR and early returns are fine: the core re-checks.
        rumpuser_host::sys::net::ppoll(&mut pfd, timeout);
    }

    fn poll_events(&self, wake: &mut dyn FnMut(u64)) {
        if self.ready_pending.swap(false, Ordering::AcqRel) {
            let ready = std::mem::take(&mut *lock(&self.ready));
            for t in ready {
                wake(t);
            }
        }
        if self.armed.load(Ordering::Relaxed) != 0
            && rumpuser_host::clock::monotonic()
                .saturating_sub(self.last_poll.load(Ordering::Relaxed))
                >= WATCH_POLL_NS
        {
            self.poll_watches(false, Some(&timespec(0)), wake);
        }
        if !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        // Drain our non-blocking eventfd.
        let mut buf = [0u8; 8];
        let _ = with_fd(self.efd.load(Ordering::Acquire), |fd| {
            rustix::io::read(fd, &mut buf)
        });
        let tokens = std::mem::take(&mut *self.tokens.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tokens {
            wake(t);
        }
    }

    fn excursions(&self) -> bool {
        excursion::available()
    }

    fn excursion_start(&self, ex: sched_core::ExcursionPtr) -> bool {
        excursion::start(ex)
    }

    fn poll_excursions(&self, back: &mut dyn FnMut(sched_core::ExcursionPtr)) {
        excursion::take_returned(back)
    }

    fn poll_hosts(&self, ev: &mut dyn FnMut(sched_core::hosts::HostEvent)) {
        token::poll(ev)
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
