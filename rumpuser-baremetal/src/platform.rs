//! The bare-metal host of the green scheduler core
//! ([`rumpuser_green::sched_core::Platform`]).
//!
//! * `now_ns`: the calibrated TSC ([`crate::time`]).
//! * `idle(deadline)`: with interrupts masked, return at once if an IRQ is
//!   pending; otherwise program the one-shot timer for the deadline (or
//!   cancel it), then `sti; hlt; cli`. No periodic tick, no busy wait: the
//!   CPU sleeps until the deadline or a device interrupt. With no deadline
//!   and no device that could interrupt, the program is deadlocked: that
//!   is reported and the VM ends with the panic status.
//! * `poll_events`: open a one-instruction interrupt window (interrupts
//!   are otherwise masked while threads run, see [`crate::arch::trap`]),
//!   then turn pending device IRQs into wake-ups ([`crate::irq`]).
//! * stacks: heap memory with an unmapped guard page below
//!   ([`crate::arch::paging::set_guard`]).
//! * console: the serial port; halt: exit QEMU with the panic status.

use crate::arch::{cpu, paging};
use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_green::sched_core::{Platform, Stack};

/// The platform instance handed to the scheduler.
pub struct Metal;

/// The one instance.
pub static METAL: Metal = Metal;

static IDLES: AtomicU64 = AtomicU64::new(0);
static IDLE_NS: AtomicU64 = AtomicU64::new(0);

const PAGE: usize = 4096;

impl Platform for Metal {
    #[inline]
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn idle(&self, deadline: Option<u64>) {
        if crate::irq::any_pending() {
            return;
        }
        let t0 = crate::time::now_ns();
        match deadline {
            Some(d) if d <= t0 => return,
            Some(d) => crate::time::arm(d),
            None if !crate::irq::any_registered() => {
                // Nothing can ever wake a thread: report instead of
                // halting forever.
                crate::start::fatal(
                    "rumpuser-baremetal: deadlock: every green thread is blocked, \
                     no timer is pending and no device can interrupt",
                )
            }
            None => crate::time::disarm(),
        }
        cpu::wait_for_interrupt();
        IDLES.fetch_add(1, Ordering::Relaxed);
        IDLE_NS.fetch_add(crate::time::now_ns().saturating_sub(t0), Ordering::Relaxed);
    }

    fn poll_events(&self, wake: &mut dyn FnMut(u64)) {
        cpu::interrupt_window();
        crate::irq::poll(wake);
    }

    fn alloc_stack(&self, size: usize) -> Option<Stack> {
        let size = size.next_multiple_of(PAGE);
        let total = size + PAGE;
        let p = crate::heap::alloc(total, PAGE)?;
        let guard = p.as_ptr() as u64;
        paging::set_guard(guard, true);
        Some(Stack {
            // SAFETY: `PAGE` < `total`: inside the block just allocated.
            base: unsafe { p.as_ptr().add(PAGE) },
            size,
            cookie: guard as usize,
        })
    }

    unsafe fn free_stack(&self, stack: Stack) {
        paging::set_guard(stack.cookie as u64, false);
        if let Some(p) = core::ptr::NonNull::new(stack.cookie as *mut u8) {
            // SAFETY: the block `alloc_stack` allocated (cookie = its start,
            // size + guard page), no longer in use (the core's contract),
            // and its guard page is mapped again before the heap reuses it.
            unsafe { crate::heap::free(p, stack.size + PAGE) };
        }
    }

    fn console(&self, s: &str) {
        crate::serial::write_bytes(s.as_bytes());
    }

    fn halt(&self) -> ! {
        crate::start::exit_status(crate::status::PANIC)
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
