//! The console: the 16550 UART COM1 at I/O port 0x3f8 (`qemu -serial stdio`).
//!
//! Output only, polled, no interrupts; `\n` is sent as `\r\n`. Writers
//! never block on a lock: the platform has one CPU and no preemption, and
//! an exception report that interrupts a half-written line simply
//! continues on the same wire.

use crate::arch::port::{inb, outb};
use core::fmt;

const COM1: u16 = 0x3f8;

/// Programs 115200 baud, 8N1, FIFO on, interrupts off.
pub fn init() {
    // SAFETY: the standard 16550 initialisation at COM1's fixed ports.
    unsafe {
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x80);
        outb(COM1, 0x01);
        outb(COM1 + 1, 0x00);
        outb(COM1 + 3, 0x03);
        outb(COM1 + 2, 0xc7);
        outb(COM1 + 4, 0x03);
    }
}

fn put(b: u8) {
    // Wait (bounded) for the transmit holding register; an absent UART
    // reads 0xff, which also ends the wait.
    for _ in 0..100_000 {
        // SAFETY: reading the line status register has no side effect.
        if unsafe { inb(COM1 + 5) } & 0x20 != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    // SAFETY: writing the transmit holding register sends one byte.
    unsafe { outb(COM1, b) };
}

static SINK: spin::Once<fn(&[u8])> = spin::Once::new();

/// Sends all console output (`kprint!`, crash reports) to `f` instead of
/// the UART, for a platform embedding this crate whose COM1 belongs to
/// someone else (Xen). Set once; `f` gets the bytes unchanged.
pub fn set_sink(f: fn(&[u8])) {
    SINK.call_once(|| f);
}

/// Writes raw bytes (with `\n` → `\r\n`).
pub fn write_bytes(bytes: &[u8]) {
    if let Some(f) = SINK.get() {
        return f(bytes);
    }
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// A `fmt::Write` for the console.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// `print!` to the serial console.
#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::serial::Console, format_args!($($arg)*));
    }};
}

/// `println!` to the serial console.
#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => {{
        $crate::kprint!($($arg)*);
        $crate::kprint!("\n");
    }};
}
