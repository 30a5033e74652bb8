//! How long a mapping rests after a copy out of it waited for the disk.
//!
//! One such copy may be a one-off (the first touch of a never-read block
//! of a fresh disk image counts as a major fault, ~10 µs), or the start of
//! a cold-cache workload where every copy would wait. So the first rest is
//! short, [`REST_MIN`], and each further wait during or right after a rest
//! doubles it up to [`REST_MAX`]; the level falls by one for every
//! [`DECAY`] without a wait. A cold random-read workload reaches the
//! longest rest after about a dozen waits and then waits about once a
//! second; a one-off costs a millisecond of system calls.

use rumpuser_core::types::MonoNanos;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The first rest.
pub const REST_MIN: MonoNanos = 1_000_000;
/// Rests double up to `REST_MIN << MAX_LEVEL` (~1 s).
pub const MAX_LEVEL: u32 = 10;
/// The longest rest.
pub const REST_MAX: MonoNanos = REST_MIN << MAX_LEVEL;
/// A quiet stretch this long lowers the level by one.
pub const DECAY: MonoNanos = 1_000_000_000;

/// One mapping's rest state (relaxed atomics: copies on several threads
/// may race on it; any of their outcomes is a reasonable rest).
#[derive(Debug)]
pub struct Rest {
    until: AtomicU64,
    level: AtomicU32,
    last_wait: AtomicU64,
    count: AtomicU64,
}

impl Default for Rest {
    fn default() -> Self {
        Self::new()
    }
}

impl Rest {
    /// Not resting, lowest level.
    pub const fn new() -> Self {
        Self {
            until: AtomicU64::new(0),
            level: AtomicU32::new(0),
            last_wait: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Back to the start (a new mapping in the slot).
    pub fn reset(&self) {
        self.until.store(0, Ordering::Relaxed);
        self.level.store(0, Ordering::Relaxed);
        self.last_wait.store(0, Ordering::Relaxed);
        self.count.store(0, Ordering::Relaxed);
    }

    /// Rests taken since the last [`Rest::reset`].
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the mapping rests at `now`.
    #[inline]
    pub fn resting(&self, now: MonoNanos) -> bool {
        now < self.until.load(Ordering::Relaxed)
    }

    /// A copy ending at `now` waited for the disk: rest. Returns the rest.
    pub fn waited(&self, now: MonoNanos) -> MonoNanos {
        self.count.fetch_add(1, Ordering::Relaxed);
        let last = self.last_wait.swap(now, Ordering::Relaxed);
        let quiet = now.saturating_sub(last) / DECAY;
        let level = self
            .level
            .load(Ordering::Relaxed)
            .saturating_sub(u32::try_from(quiet).unwrap_or(u32::MAX));
        self.level
            .store((level + 1).min(MAX_LEVEL), Ordering::Relaxed);
        let rest = REST_MIN << level;
        self.until.fetch_max(now + rest, Ordering::Relaxed);
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rests_start_short_double_to_a_second_and_decay_when_quiet() {
        let r = Rest::new();
        let mut t: MonoNanos = 50 * DECAY;
        assert!(!r.resting(t));
        // A one-off: one millisecond.
        assert_eq!(r.waited(t), REST_MIN);
        assert!(r.resting(t + REST_MIN - 1));
        assert!(!r.resting(t + REST_MIN));
        // Waits right after each rest: doubling, capped.
        let mut rests = Vec::new();
        for _ in 0..14 {
            t += REST_MIN << r.level.load(Ordering::Relaxed).saturating_sub(1);
            rests.push(r.waited(t));
        }
        assert_eq!(rests[0], 2 * REST_MIN);
        assert_eq!(rests[1], 4 * REST_MIN);
        assert!(rests.windows(2).all(|w| w[1] >= w[0]), "{rests:?}");
        assert_eq!(*rests.last().unwrap(), REST_MAX);
        const { assert!(REST_MAX >= 1_000_000_000 && REST_MAX < 2_000_000_000) };
        // Three quiet seconds: three levels down.
        t += 3 * DECAY;
        assert_eq!(r.waited(t), REST_MAX >> 3);
        // A long quiet stretch: back to the shortest rest.
        t += 60 * DECAY;
        assert_eq!(r.waited(t), REST_MIN);
        // A new mapping starts over.
        assert_eq!(r.count(), 17);
        r.reset();
        assert_eq!(r.count(), 0);
        assert!(!r.resting(t));
        assert_eq!(r.waited(t + 1), REST_MIN);
    }
}
