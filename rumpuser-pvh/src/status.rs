//! How the guest's exit reaches the host: QEMU's `isa-debug-exit` device.
//!
//! Writing `v` to I/O port `0xf4` (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`)
//! ends QEMU with host exit status `(v << 1) | 1`, so a status is always odd
//! and only 7 bits of `v` survive:
//!
//! | guest | `v` | QEMU exit status |
//! |---|---|---|
//! | `main` returns `n` / `rumpuser_exit(n)`, `0 <= n <= 124` | `n` | `2n + 1` (0 → 1) |
//! | any other exit value (negative except `RUMPUSER_PANIC`, > 124) | 125 | 251 |
//! | CPU exception (report on the serial console) | 126 | 253 |
//! | Rust panic, `rumpuser_exit(RUMPUSER_PANIC)`, fatal platform error | 127 | 255 |
//!
//! QEMU without the device: the guest resets the machine through the
//! keyboard controller, so with `-no-reboot` QEMU exits with status 0
//! (which therefore means "no status").

/// `v` for an exit value outside 0..=124.
pub const OUT_OF_RANGE: u32 = 125;
/// `v` after a CPU exception.
pub const EXCEPTION: u32 = 126;
/// `v` after a panic or `rumpuser_exit(RUMPUSER_PANIC)`.
pub const PANIC: u32 = 127;

/// The `isa-debug-exit` value for a C exit value.
pub fn from_exit_value(value: i32) -> u32 {
    match value {
        0..=124 => value as u32,
        -1 => PANIC,
        _ => OUT_OF_RANGE,
    }
}

/// What a QEMU exit status says about the guest (the host side of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The guest exited with this value.
    Exited(u32),
    /// An exit value the device cannot carry.
    OutOfRange,
    /// A CPU exception.
    Exception,
    /// A panic.
    Panic,
    /// QEMU ended without a status from the guest (reset, no device; `None`:
    /// killed by a signal, as at a timeout): QEMU's own status.
    NoStatus(Option<i32>),
}

/// Decodes a QEMU exit status (`None`: QEMU was killed by a signal).
pub fn decode(qemu_status: Option<i32>) -> Outcome {
    let q = match qemu_status {
        Some(q) if q > 0 && q & 1 == 1 && q <= 255 => q,
        other => return Outcome::NoStatus(other),
    };
    match (q as u32) >> 1 {
        OUT_OF_RANGE => Outcome::OutOfRange,
        EXCEPTION => Outcome::Exception,
        PANIC => Outcome::Panic,
        v => Outcome::Exited(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [0, 1, 42, 124] {
            let q = Some(((from_exit_value(v) << 1) | 1) as i32);
            assert_eq!(decode(q), Outcome::Exited(v as u32));
        }
        assert_eq!(
            decode(Some(((from_exit_value(-1) << 1) | 1) as i32)),
            Outcome::Panic
        );
        assert_eq!(
            decode(Some(((from_exit_value(300) << 1) | 1) as i32)),
            Outcome::OutOfRange
        );
        assert_eq!(decode(Some(253)), Outcome::Exception);
        assert_eq!(decode(Some(1)), Outcome::Exited(0));
        assert_eq!(decode(Some(3)), Outcome::Exited(1));
        assert_eq!(decode(Some(251)), Outcome::OutOfRange);
        assert_eq!(decode(Some(255)), Outcome::Panic);
        assert_eq!(decode(Some(0)), Outcome::NoStatus(Some(0)));
        assert_eq!(decode(Some(2)), Outcome::NoStatus(Some(2)));
        assert_eq!(decode(None), Outcome::NoStatus(None));
    }
}
