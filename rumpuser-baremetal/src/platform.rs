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
//!   are otherwise masked while threads run, see [`rumpuser_pvh::arch::trap`]),
//!   then turn pending device IRQs into wake-ups ([`crate::irq`]).
//! * stacks: heap memory with an unmapped guard page below
//!   ([`rumpuser_pvh::stack`]).
//! * console: the serial port; halt: exit QEMU with the panic status.

use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_green::sched_core::{Platform, Stack};
use rumpuser_pvh::arch::cpu;

/// The platform instance handed to the scheduler.
pub struct Metal;

/// The one instance.
pub static METAL: Metal = Metal;

static IDLES: AtomicU64 = AtomicU64::new(0);
static IDLE_NS: AtomicU64 = AtomicU64::new(0);

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
                rumpuser_pvh::exit::fatal(
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
        rumpuser_pvh::stack::alloc(size)
    }

    unsafe fn free_stack(&self, stack: Stack) {
        // SAFETY: forwarded contract; the stack came from
        // `rumpuser_pvh::stack::alloc` (`alloc_stack` above).
        unsafe { rumpuser_pvh::stack::free(stack) }
    }

    fn console(&self, s: &str) {
        rumpuser_pvh::serial::write_bytes(s.as_bytes());
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
