//! The 8254 PIT, used once at boot as the reference clock that calibrates
//! the TSC and the LAPIC timer (channel 2, gated through port 0x61, polled;
//! no PIT interrupt is ever enabled).

use super::cpu::rdtsc;
use super::lapic;
use super::port::{inb, outb};

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Result of one calibration window.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// LAPIC timer ticks per second at divider 1.
    pub lapic_hz: u64,
}

/// Measures the TSC and the LAPIC timer over `pit_ticks` PIT ticks
/// (at most 65535, ~55 ms).
pub fn calibrate(pit_ticks: u16) -> Calibration {
    // SAFETY: programs PIT channel 2 (the speaker channel, never used
    // otherwise) in mode 0 with the speaker output disabled, and polls its
    // OUT2 bit in port 0x61; no other device state changes.
    let (t0, t1, a0, a1) = unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) & !0x01); // gate low, speaker off
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, pit_ticks as u8);
        outb(0x42, (pit_ticks >> 8) as u8);
        lapic::start_calibration_count();
        let g = inb(0x61) & !0x02;
        let a0 = lapic::current_count();
        let t0 = rdtsc();
        outb(0x61, g | 0x01); // gate high: counting starts
        while inb(0x61) & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let t1 = rdtsc();
        let a1 = lapic::current_count();
        outb(0x61, g & !0x01);
        lapic::stop_count();
        (t0, t1, a0, a1)
    };
    let ns = pit_ticks as u64 * 1_000_000_000 / PIT_HZ;
    let tsc_hz = ((t1 - t0) as u128 * 1_000_000_000 / ns as u128) as u64;
    let lapic_hz = (a0.wrapping_sub(a1) as u128 * 1_000_000_000 / ns as u128) as u64;
    Calibration { tsc_hz, lapic_hz }
}
