//! Device interrupts → green-thread wake-ups.
//!
//! A driver registers its PCI INTx line with the token (green thread id)
//! of the thread that services it. The handler masks the line at the PIC,
//! acknowledges the PIC, counts the interrupt and sets a pending bit —
//! nothing else (no device register access, no scheduler call, no
//! allocation). The scheduler's `poll_events` ([`poll`]) turns pending
//! bits into wake-ups; the woken thread acknowledges the device, collects
//! completions and unmasks the line with [`rearm`]. A level-triggered line
//! that is still asserted then interrupts again, so nothing is lost.

use crate::arch::pic;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

static PENDING: AtomicU32 = AtomicU32::new(0);
static TOKENS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static COUNTS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// Routes `irq` (0..16) to the green thread with raw id `token` and
/// unmasks it (level-triggered).
pub fn register(irq: u8, token: u64) {
    let i = irq as usize & 15;
    TOKENS[i].store(token, Ordering::Release);
    pic::set_level_triggered(irq);
    pic::unmask(irq);
}

/// Whether any line is routed to a thread (something can wake the CPU).
pub fn any_registered() -> bool {
    TOKENS.iter().any(|t| t.load(Ordering::Relaxed) != 0)
}

/// Interrupt handler for PIC line `irq`.
pub fn on_pic_irq(irq: u8) {
    if pic::is_spurious(irq) {
        return;
    }
    pic::mask(irq);
    pic::eoi(irq);
    COUNTS[irq as usize & 15].fetch_add(1, Ordering::Relaxed);
    PENDING.fetch_or(1 << irq, Ordering::Release);
}

/// Whether an interrupt is waiting to be turned into a wake-up.
pub fn any_pending() -> bool {
    PENDING.load(Ordering::Acquire) != 0
}

/// Hands the token of every line that interrupted to `wake`.
pub fn poll(wake: &mut dyn FnMut(u64)) {
    let mut p = PENDING.swap(0, Ordering::AcqRel);
    while p != 0 {
        let irq = p.trailing_zeros() as usize;
        p &= p - 1;
        let t = TOKENS[irq].load(Ordering::Acquire);
        if t != 0 {
            wake(t);
        }
    }
}

/// Unmasks `irq` after its thread has serviced the device.
pub fn rearm(irq: u8) {
    pic::unmask(irq);
}

/// Interrupts taken on `irq` since boot.
pub fn count(irq: u8) -> u64 {
    COUNTS[irq as usize & 15].load(Ordering::Relaxed)
}
