//! x86 I/O port access.
//!
//! The functions are `unsafe`: a port write can reprogram any legacy
//! device, so each caller argues why its port and value are right.

use x86_64::instructions::port::Port;

/// Reads a byte from `port`.
///
/// # Safety
/// Reading `port` has no side effect the caller did not intend.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u8>::new(port).read() }
}

/// Writes a byte to `port`.
///
/// # Safety
/// The write is what the device at `port` expects.
#[inline]
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u8>::new(port).write(v) }
}

/// Reads a double word from `port`.
///
/// # Safety
/// As [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).read() }
}

/// Writes a double word to `port`.
///
/// # Safety
/// As [`outb`].
#[inline]
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: forwarded to the caller.
    unsafe { Port::<u32>::new(port).write(v) }
}

/// Writes `v` to QEMU's `isa-debug-exit` device at port 0xf4, which ends
/// QEMU with status `(v << 1) | 1` (see [`crate::status`]); without the
/// device the write is ignored.
pub fn isa_debug_exit(v: u32) {
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device (when present it
    // ends QEMU); no other device of a PVH machine decodes it.
    unsafe { outl(0xf4, v) }
}

/// Pulses the reset line through the keyboard controller (QEMU with
/// `-no-reboot` then exits with status 0).
pub fn reset_8042() {
    // SAFETY: the 8042 "pulse reset line" command; it only resets.
    unsafe { outb(0x64, 0xfe) }
}
