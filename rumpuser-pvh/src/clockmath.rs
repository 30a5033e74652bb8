//! Clock arithmetic (pure, tested on the host): TSC ticks ↔ nanoseconds
//! and CMOS calendar time → Unix seconds.

/// Converts ticks of a fixed-frequency counter to nanoseconds and back.
///
/// `ns = ticks * mult >> 32` with `mult = 1e9 * 2^32 / hz` (one 64×64→128
/// multiply on the hot path, no division); the inverse rounds **up**, so a
/// deadline converted to ticks is never reached early.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    hz: u64,
    mult: u64,
}

impl Scale {
    /// A scale for a counter of `hz` ticks per second (`hz` ≥ 1).
    pub const fn new(hz: u64) -> Scale {
        let hz = if hz == 0 { 1 } else { hz };
        let mult = ((1_000_000_000u128 << 32) / hz as u128) as u64;
        Scale { hz, mult }
    }

    /// Ticks per second.
    pub const fn hz(&self) -> u64 {
        self.hz
    }

    /// Nanoseconds in `ticks` (monotonic in `ticks`, never above the exact value).
    #[inline]
    pub fn ns(&self, ticks: u64) -> u64 {
        ((ticks as u128 * self.mult as u128) >> 32) as u64
    }

    /// Smallest tick count whose [`ns`](Self::ns) is at least `ns`
    /// (saturating at `u64::MAX` ticks).
    pub fn ticks_ceil(&self, ns: u64) -> u64 {
        let t = (ns as u128 * self.hz as u128).div_ceil(1_000_000_000);
        let Ok(mut t) = u64::try_from(t) else {
            return u64::MAX;
        };
        // `ns()` truncates through `mult`; step up until it reaches `ns`
        // (a few ticks at most).
        while self.ns(t) < ns && t < u64::MAX {
            t += 1;
        }
        t
    }
}

/// LAPIC one-shot programming for a delay of `ticks` timer ticks at
/// divider 1: `(divide configuration register value, initial count)`.
/// The smallest divider (1, 2, 4, …, 128) whose count fits 32 bits is
/// used and the count is rounded up, so the interrupt is never early;
/// delays beyond `128 * 2^32` ticks are capped (the scheduler re-arms).
pub fn lapic_oneshot(ticks: u64) -> (u32, u32) {
    let ticks = ticks.max(1);
    let mut log = 0u32;
    while log < 7 && ticks.div_ceil(1 << log) > u32::MAX as u64 {
        log += 1;
    }
    let count = ticks.div_ceil(1 << log).min(u32::MAX as u64) as u32;
    // Encoding (bits 3,1,0): 1 -> 0b1011; 2^n -> n-1 with its bit 2 in bit 3.
    let div = if log == 0 {
        0b1011
    } else {
        let n = log - 1;
        (n & 0b11) | ((n & 0b100) << 1)
    };
    (div, count)
}

/// Decodes a CMOS BCD byte.
pub const fn bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; Howard
/// Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a UTC calendar time.
pub fn unix_seconds(year: i64, month: u32, day: u32, h: u32, m: u32, s: u32) -> i64 {
    days_from_civil(year, month, day) * 86_400 + (h * 3600 + m * 60 + s) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_and_never_early() {
        for hz in [
            1_000_000_000u64,
            2_893_421_117,
            3_600_000_000,
            1_193_182,
            100_000_000,
        ] {
            let s = Scale::new(hz);
            assert!((999_999_999..=1_000_000_000).contains(&s.ns(hz)), "hz {hz}");
            for ns in [0u64, 1, 999, 1_000_000, 1_234_567_891, 86_400_000_000_000] {
                let t = s.ticks_ceil(ns);
                assert!(s.ns(t) >= ns, "hz {hz} ns {ns}");
                assert!(
                    t == 0 || s.ns(t - 1) < ns,
                    "hz {hz} ns {ns}: not the smallest"
                );
            }
        }
        assert_eq!(Scale::new(3_000_000_000).ticks_ceil(u64::MAX), u64::MAX);
        let s = Scale::new(3_000_000_000);
        let hundred_s = s.ns(300_000_000_000);
        assert!((99_999_999_900..=100_000_000_000).contains(&hundred_s));
    }

    #[test]
    fn lapic_dividers() {
        assert_eq!(lapic_oneshot(0), (0b1011, 1));
        assert_eq!(lapic_oneshot(1000), (0b1011, 1000));
        assert_eq!(lapic_oneshot(u32::MAX as u64), (0b1011, u32::MAX));
        // One more tick needs divider 2 (encoding 0b0000), rounded up.
        assert_eq!(lapic_oneshot(u32::MAX as u64 + 1), (0b0000, 1 << 31));
        assert_eq!(lapic_oneshot(u32::MAX as u64 + 2), (0b0000, (1 << 31) + 1));
        // 10 s at 1 GHz: divider 4 (0b0001).
        assert_eq!(lapic_oneshot(10_000_000_000), (0b0001, 2_500_000_000));
        // Divider 32 is 0b1000, 128 is 0b1010.
        assert_eq!(lapic_oneshot(20 * (u32::MAX as u64)).0, 0b1000);
        assert_eq!(lapic_oneshot(u64::MAX), (0b1010, u32::MAX));
        for t in [5u64, 1 << 33, 3 << 35, 100_000_000_000] {
            let (div, count) = lapic_oneshot(t);
            let d = match div {
                0b1011 => 1u64,
                e => 2u64 << ((e & 0b11) | ((e & 0b1000) >> 1)),
            };
            assert!(d * count as u64 >= t, "{t}: never early");
            assert!(d * (count as u64 - 1) < t, "{t}: the smallest count");
        }
    }

    #[test]
    fn calendar() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2024, 2, 29, 12, 34, 56), 1_709_210_096);
        assert_eq!(unix_seconds(2038, 1, 19, 3, 14, 8), 1 << 31);
        assert_eq!(bcd(0x59), 59);
        assert_eq!(bcd(0x07), 7);
    }
}
