//! The local APIC (xAPIC MMIO): its timer wakes the idle CPU.
//!
//! Two one-shot modes, chosen at boot: **TSC-deadline** (CPUID.1:ECX.24;
//! the deadline is written as an absolute TSC value to MSR 0x6E0) and
//! otherwise the classic **one-shot count-down** at the calibrated APIC
//! timer frequency, with the divider picked per arming so that any delay
//! fits the 32-bit counter. There is no periodic tick.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::model_specific::Msr;

/// Vector of the timer interrupt.
pub const TIMER_VECTOR: u8 = 0x30;
/// Spurious-interrupt vector (no EOI).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// A vector for interrupts the CPU sends itself ([`self_ipi`]): counted
/// and acknowledged by the interrupt entry, nothing else (platform tests
/// use it to have interrupts pending at a chosen moment).
pub const SELF_TEST_VECTOR: u8 = 0x31;

const REG_ID: usize = 0x20;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_ICR_LOW: usize = 0x300;
const REG_IRR: usize = 0x200;
const REG_LVT_TIMER: usize = 0x320;
const REG_LVT_LINT0: usize = 0x350;
const REG_LVT_LINT1: usize = 0x360;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CUR: usize = 0x390;
const REG_TIMER_DIV: usize = 0x3e0;

const MSR_APIC_BASE: u32 = 0x1b;
const MSR_TSC_DEADLINE: u32 = 0x6e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;

static BASE: AtomicU64 = AtomicU64::new(0xfee0_0000);

fn reg(off: usize) -> *mut u32 {
    (BASE.load(Ordering::Relaxed) as usize + off) as *mut u32
}

fn read(off: usize) -> u32 {
    // SAFETY: `reg` is inside the LAPIC's 4 KiB MMIO page, identity mapped
    // uncached by `paging`; 32-bit aligned register.
    unsafe { reg(off).read_volatile() }
}

fn write(off: usize, v: u32) {
    // SAFETY: as in `read`.
    unsafe { reg(off).write_volatile(v) }
}

/// Enables the LAPIC (software enable, spurious vector), routes LINT0 as
/// ExtINT (the 8259 pair) and LINT1 as NMI, and masks the timer.
pub fn init() {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no
    // side effect, and setting the global-enable bit (11) keeps the base.
    let base = unsafe {
        let mut msr = Msr::new(MSR_APIC_BASE);
        let v = msr.read();
        if v & (1 << 11) == 0 {
            msr.write(v | (1 << 11));
        }
        v & 0x000f_ffff_ffff_f000
    };
    BASE.store(base, Ordering::Relaxed);
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_LVT_LINT0, 0x700);
    write(REG_LVT_LINT1, 0x400);
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
}

/// Physical address of the LAPIC page.
pub fn base() -> u64 {
    BASE.load(Ordering::Relaxed)
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    read(REG_ID) >> 24
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}

/// Sends `vector` to this CPU (fixed delivery, the "self" shorthand); with
/// interrupts masked it stays pending until they are let in.
pub fn self_ipi(vector: u8) {
    write(REG_ICR_LOW, (0b01 << 18) | vector as u32);
}

/// Whether the local APIC is software-enabled ([`init`] ran): it accepts
/// interrupts, self-IPIs included.
pub fn enabled() -> bool {
    read(REG_SVR) & 0x100 != 0
}

/// Whether `vector` is pending (requested, not yet delivered).
pub fn pending(vector: u8) -> bool {
    let v = vector as usize;
    read(REG_IRR + (v / 32) * 0x10) & (1 << (v % 32)) != 0
}

/// Starts a free-running count-down from `u32::MAX` at divider 1 (for calibration).
pub fn start_calibration_count() {
    write(REG_LVT_TIMER, LVT_MASKED | TIMER_VECTOR as u32);
    write(REG_TIMER_DIV, 0b1011);
    write(REG_TIMER_INIT, u32::MAX);
}

/// Current count of the count-down timer.
pub fn current_count() -> u32 {
    read(REG_TIMER_CUR)
}

/// Stops the count-down timer.
pub fn stop_count() {
    write(REG_TIMER_INIT, 0);
}

/// Switches the timer to TSC-deadline mode (masked until armed).
pub fn use_tsc_deadline() {
    write(REG_LVT_TIMER, LVT_TSC_DEADLINE | TIMER_VECTOR as u32);
}

/// Arms a TSC-deadline interrupt at absolute TSC value `tsc` (0 disarms).
pub fn arm_tsc_deadline(tsc: u64) {
    // SAFETY: IA32_TSC_DEADLINE exists (checked with CPUID before choosing
    // this mode); writing it only (re)arms the timer.
    unsafe { Msr::new(MSR_TSC_DEADLINE).write(tsc) };
}

/// Arms a one-shot count-down interrupt after `ticks` ticks of the APIC
/// timer at divider 1; larger delays use a larger divider (see
/// [`crate::clockmath::lapic_oneshot`]; never early).
pub fn arm_oneshot(ticks: u64) {
    let (div, count) = crate::clockmath::lapic_oneshot(ticks);
    write(REG_LVT_TIMER, TIMER_VECTOR as u32);
    write(REG_TIMER_DIV, div);
    write(REG_TIMER_INIT, count);
}

/// Cancels a pending one-shot count-down.
pub fn disarm_oneshot() {
    write(REG_TIMER_INIT, 0);
}
