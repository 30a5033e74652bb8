//! The Xen host of the green scheduler core
//! ([`rumpuser_green::sched_core::Platform`]).
//!
//! * `now_ns`: Xen system time ([`crate::time`]).
//! * `idle(deadline)`: with interrupts masked, return at once if an event
//!   is pending; otherwise arm the single-shot timer for the deadline (or
//!   stop it), then `sti; hlt` until the upcall vector fires (Xen's
//!   `SCHEDOP_block`; see [`crate::events`] for why no wake-up is lost),
//!   or, with `RUMPUSER_XEN_IDLE=poll`, block with `SCHEDOP_poll` on the
//!   timer port and every port a thread waits on
//!   ([`crate::events::poll_block`]). No periodic tick, no busy wait.
//!   With no deadline and no waiter on any port, the program is
//!   deadlocked: reported, and the domain ends with the panic status.
//! * `poll_events`: [`crate::events::poll`] (reads shared_info; no
//!   hypercall, no interrupt window needed).
//! * stacks: [`rumpuser_pvh::stack`] (heap memory with an unmapped guard
//!   page below); console: [`crate::console`]; halt: panic exit.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_green::sched_core::{Platform, Stack};
use rumpuser_pvh::arch::cpu;

/// The platform instance handed to the scheduler.
pub struct XenPlatform;

/// The one instance.
pub static XEN: XenPlatform = XenPlatform;

static IDLES: AtomicU64 = AtomicU64::new(0);
static HLT_IDLE: AtomicBool = AtomicBool::new(false);

/// Idles with `sti; hlt` and the upcall vector (the default; set at boot
/// when Xen accepted the vector) instead of `SCHEDOP_poll`.
pub fn use_hlt_idle() {
    HLT_IDLE.store(true, Ordering::Relaxed);
}

/// Whether idle uses `sti; hlt`.
pub fn hlt_idle() -> bool {
    HLT_IDLE.load(Ordering::Relaxed)
}
static IDLE_NS: AtomicU64 = AtomicU64::new(0);
static EMPTY_WAKES: AtomicU64 = AtomicU64::new(0);

/// Idles that ended with no event pending before their deadline.
pub fn empty_wakes() -> u64 {
    EMPTY_WAKES.load(Ordering::Relaxed)
}

impl Platform for XenPlatform {
    #[inline]
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn idle(&self, deadline: Option<u64>) {
        if crate::events::upcall_pending() {
            return;
        }
        let t0 = crate::time::now_ns();
        match deadline {
            Some(d) if d <= t0 => return,
            Some(d) => crate::time::arm(d),
            None if !crate::events::any_waiter() => rumpuser_pvh::exit::fatal(
                "rumpuser-xen: deadlock: every green thread is blocked, \
                 no timer is pending and no event channel has a waiter",
            ),
            None => crate::time::disarm(),
        }
        if HLT_IDLE.load(Ordering::Relaxed) {
            cpu::wait_for_interrupt();
        } else {
            let rc = crate::events::poll_block(crate::time::timer_port(), 0);
            if rc != 0 {
                rumpuser_pvh::exit::fatal_fmt(format_args!(
                    "rumpuser-xen: SCHEDOP_poll failed ({rc}, {})",
                    crate::abi::errno_name(rc)
                ));
            }
        }
        IDLES.fetch_add(1, Ordering::Relaxed);
        let t1 = crate::time::now_ns();
        IDLE_NS.fetch_add(t1.saturating_sub(t0), Ordering::Relaxed);
        if !crate::events::upcall_pending() && deadline.is_none_or(|d| t1 < d) {
            // Woken with no event and before the deadline: an interrupt
            // without a cause (a re-delivered upcall vector, see
            // `cpu::window_resume`).
            EMPTY_WAKES.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn poll_events(&self, wake: &mut dyn FnMut(u64)) {
        crate::events::poll(wake);
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        rumpuser_pvh::stack::alloc(size)
    }

    unsafe fn free_stack(&self, stack: Stack) {
        // SAFETY: forwarded contract; the stack came from
        // `rumpuser_pvh::stack::alloc` (`alloc_stack` above).
        unsafe { rumpuser_pvh::stack::free(stack) }
    }

    fn console(&self, s: &str) {
        crate::console::write(s.as_bytes());
    }

    fn halt(&self) -> ! {
        rumpuser_pvh::exit::exit_status(rumpuser_pvh::status::PANIC)
    }

    fn irq_save(&self) -> usize {
        cpu::irq_save() as usize
    }

    fn irq_restore(&self, flags: usize) {
        cpu::irq_restore(flags as u64)
    }
}

/// `(idle calls, ns spent halted)` since boot.
pub fn idle_stats() -> (u64, u64) {
    (
        IDLES.load(Ordering::Relaxed),
        IDLE_NS.load(Ordering::Relaxed),
    )
}
