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
