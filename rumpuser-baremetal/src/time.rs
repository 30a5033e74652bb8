//! Clocks and the wake-up timer.
//!
//! * Monotonic: the TSC, calibrated at boot against the PIT (the least
//!   disturbed of five 4 ms windows, [`arch::pit`](rumpuser_pvh::arch::pit));
//!   `now = (tsc - tsc0) * mult >> 32`,
//!   one multiply, no lock. (QEMU TCG's TSC follows the host's; under
//!   KVM the TSC is what the hypervisor gives, invariant when CPUID says so.)
//! * Wall: the CMOS RTC read once at boot ([`crate::rtc`]) plus the
//!   monotonic time since, like rumprun (no drift correction).
//! * Timer: [`arm`] programs one interrupt at an absolute monotonic
//!   deadline, with the LAPIC in TSC-deadline mode when the CPU has it
//!   (the deadline is converted to a TSC value rounded up) and otherwise
//!   as a one-shot count-down. It only wakes `hlt`; the scheduler core
//!   re-reads the clock and never expires a sleeper early.

use rumpuser_pvh::arch::{cpu, lapic, pit};
use rumpuser_pvh::clockmath::Scale;

/// How the wake-up timer is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerMode {
    /// LAPIC TSC-deadline mode.
    TscDeadline,
    /// LAPIC one-shot count-down.
    OneShot,
}

/// Calibrated clock parameters (set once at boot).
#[derive(Debug)]
pub struct Clock {
    tsc0: u64,
    tsc: Scale,
    lapic: Scale,
    /// The timer mode in use.
    pub mode: TimerMode,
    /// Unix time in ns at monotonic 0.
    epoch_ns: i128,
}

static CLOCK: spin::Once<Clock> = spin::Once::new();

/// Calibrates the TSC and LAPIC timer, reads the RTC, picks the timer mode.
pub fn init(features: &cpu::Features, force_oneshot: bool) -> &'static Clock {
    CLOCK.call_once(|| {
        // Five windows of 4 ms (4773 PIT ticks); a window can only be
        // stretched (the vCPU was descheduled inside it), never shortened,
        // so the smallest counts are the right ones.
        let mut c = pit::calibrate(4_773);
        for _ in 0..4 {
            let d = pit::calibrate(4_773);
            c.tsc_hz = c.tsc_hz.min(d.tsc_hz);
            c.lapic_hz = c.lapic_hz.min(d.lapic_hz);
        }
        let mode = if features.tsc_deadline && !force_oneshot {
            lapic::use_tsc_deadline();
            TimerMode::TscDeadline
        } else {
            TimerMode::OneShot
        };
        let tsc0 = cpu::rdtsc();
        let wall = crate::rtc::read_unix_seconds();
        Clock {
            tsc0,
            tsc: Scale::new(c.tsc_hz),
            lapic: Scale::new(c.lapic_hz),
            mode,
            epoch_ns: wall as i128 * 1_000_000_000,
        }
    })
}

fn clock() -> &'static Clock {
    match CLOCK.get() {
        Some(c) => c,
        None => rumpuser_pvh::exit::fatal("rumpuser-baremetal: clock used before calibration"),
    }
}

impl Clock {
    /// TSC frequency in Hz.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc.hz()
    }
    /// LAPIC timer frequency (divider 1) in Hz.
    pub fn lapic_hz(&self) -> u64 {
        self.lapic.hz()
    }
}

/// Monotonic nanoseconds since calibration.
#[inline]
pub fn now_ns() -> u64 {
    let c = clock();
    c.tsc.ns(cpu::rdtsc().wrapping_sub(c.tsc0))
}

/// Wall-clock time as `(seconds, nanoseconds)` since the Unix epoch.
pub fn wall() -> (i64, i64) {
    let t = clock().epoch_ns + now_ns() as i128;
    (
        t.div_euclid(1_000_000_000) as i64,
        t.rem_euclid(1_000_000_000) as i64,
    )
}

/// Longest delay programmed at once; a later deadline wakes the CPU once
/// an hour and the scheduler re-arms (idle may return early).
const MAX_ARM_NS: u64 = 3_600_000_000_000;

/// Programs the timer interrupt for monotonic time `deadline` (ns). The
/// interrupt comes at or after the deadline (or after an hour).
pub fn arm(deadline: u64) {
    let c = clock();
    let t_now = cpu::rdtsc();
    let now = c.tsc.ns(t_now.wrapping_sub(c.tsc0));
    // `now` is rounded down, so the remaining time is never underestimated.
    let rel = deadline.saturating_sub(now).clamp(1, MAX_ARM_NS);
    match c.mode {
        TimerMode::TscDeadline => {
            lapic::arm_tsc_deadline(t_now.wrapping_add(c.tsc.ticks_ceil(rel)).max(1));
        }
        TimerMode::OneShot => lapic::arm_oneshot(c.lapic.ticks_ceil(rel)),
    }
}

/// Cancels the timer.
pub fn disarm() {
    match clock().mode {
        TimerMode::TscDeadline => lapic::arm_tsc_deadline(0),
        TimerMode::OneShot => lapic::disarm_oneshot(),
    }
}

/// Timer interrupts taken since boot.
pub fn timer_interrupts() -> u64 {
    rumpuser_pvh::arch::trap::timer_interrupts()
}

/// The calibrated clock (after [`init`]).
pub fn info() -> &'static Clock {
    clock()
}
