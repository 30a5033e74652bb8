//! Xen system time from a `vcpu_time_info` snapshot (pure arithmetic,
//! tested on the host).
//!
//! Xen publishes, per vcpu, the system time (ns since Xen booted) at a TSC
//! value and a scale; the guest extrapolates with its own `rdtsc`:
//!
//! ```text
//! delta = tsc - tsc_timestamp
//! delta = tsc_shift >= 0 ? delta << tsc_shift : delta >> -tsc_shift
//! now   = system_time + (delta * tsc_to_system_mul) >> 32
//! ```
//!
//! Xen rewrites the record (under an odd `version`) when it recalibrates,
//! and extrapolations from two records can disagree by a little, so the
//! platform keeps the largest value returned ([`Monotonic`]): the clock
//! never goes backwards.

use core::sync::atomic::{AtomicU64, Ordering};

/// One consistent copy of the scale fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// TSC at `system_time`.
    pub tsc_timestamp: u64,
    /// Xen system time (ns) at `tsc_timestamp`.
    pub system_time: u64,
    /// 32.32 fixed-point ns per (shifted) tick.
    pub mul: u32,
    /// Pre-shift of the TSC delta.
    pub shift: i8,
}

impl Snapshot {
    /// Xen system time at TSC value `tsc` (a TSC before the snapshot
    /// counts as the snapshot itself).
    ///
    /// The difference wraps: an HVM guest's TSC starts near 0 when the
    /// domain is built, so a record stamped earlier holds a "negative"
    /// `tsc_timestamp` (seen under Xen 4.17: 2^64 - 8e7).
    #[inline]
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let mut d = tsc.wrapping_sub(self.tsc_timestamp);
        if (d as i64) < 0 {
            d = 0;
        }
        if self.shift >= 0 {
            d = d.checked_shl(self.shift as u32).unwrap_or(u64::MAX);
        } else {
            d = d.checked_shr(self.shift.unsigned_abs() as u32).unwrap_or(0);
        }
        self.system_time
            .wrapping_add(((d as u128 * self.mul as u128) >> 32) as u64)
    }

    /// The TSC frequency this scale implies, in Hz (for reports).
    pub fn tsc_hz(&self) -> u64 {
        if self.mul == 0 {
            return 0;
        }
        let hz = (1_000_000_000u128 << 32) / self.mul as u128;
        let hz = if self.shift >= 0 {
            hz >> self.shift as u32
        } else {
            hz << self.shift.unsigned_abs() as u32
        };
        hz as u64
    }
}

/// Makes a clock monotonic by never returning less than before.
#[derive(Debug, Default)]
pub struct Monotonic(AtomicU64);

impl Monotonic {
    /// A clock that has returned nothing yet.
    pub const fn new() -> Monotonic {
        Monotonic(AtomicU64::new(0))
    }

    /// `max(t, every value returned before)`.
    #[inline]
    pub fn clamp(&self, t: u64) -> u64 {
        let prev = self.0.fetch_max(t, Ordering::Relaxed);
        prev.max(t)
    }
}

/// Wall-clock `(seconds, nanoseconds)` since the epoch at system time
/// `now_ns`, given Xen's wall clock at system time 0.
pub fn wall_at(wc_sec: u64, wc_nsec: u32, now_ns: u64) -> (i64, i64) {
    let t = wc_sec as i128 * 1_000_000_000 + wc_nsec as i128 + now_ns as i128;
    (
        t.div_euclid(1_000_000_000) as i64,
        t.rem_euclid(1_000_000_000) as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolates() {
        // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        let s = Snapshot {
            tsc_timestamp: 1000,
            system_time: 5_000,
            mul: 1 << 31,
            shift: 0,
        };
        assert_eq!(s.ns_at(1000), 5_000);
        assert_eq!(s.ns_at(3000), 6_000);
        assert_eq!(s.ns_at(500), 5_000, "a TSC before the snapshot");
        // A stamp before the guest's TSC 0 (wrapped).
        let w = Snapshot {
            tsc_timestamp: 0u64.wrapping_sub(2000),
            ..s
        };
        assert_eq!(w.ns_at(2000), 7_000);
        assert_eq!(s.tsc_hz(), 2_000_000_000);
        // The same rate as shift -1 with mul 2^32 - 1 (just under 1 ns).
        let t = Snapshot {
            shift: -1,
            mul: u32::MAX,
            ..s
        };
        assert!((t.ns_at(3000) as i64 - 6_000).abs() <= 1);
        let u = Snapshot {
            shift: 1,
            mul: 1 << 30,
            ..s
        };
        assert_eq!(u.ns_at(3000), 6_000);
        assert_eq!(u.tsc_hz(), 2_000_000_000);
    }

    #[test]
    fn large_deltas_do_not_overflow() {
        let s = Snapshot {
            tsc_timestamp: 0,
            system_time: 0,
            mul: u32::MAX,
            shift: 3,
        };
        // An hour at 4 GHz.
        let hour = 3600u64 * 4_000_000_000;
        assert!(s.ns_at(hour) > 0);
    }

    #[test]
    fn monotonic_clamp() {
        let m = Monotonic::new();
        assert_eq!(m.clamp(10), 10);
        assert_eq!(m.clamp(7), 10);
        assert_eq!(m.clamp(12), 12);
    }

    #[test]
    fn wall() {
        assert_eq!(wall_at(1_700_000_000, 999_999_999, 2), (1_700_000_001, 1));
        assert_eq!(wall_at(0, 0, 1_500_000_000), (1, 500_000_000));
    }
}
