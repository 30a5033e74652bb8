//! Property-style tests of the sleep queue (`TimerQueue`) and the seeded
//! PRNG, with an in-test PRNG instead of a proptest dependency.

mod core_common;

use std::collections::HashSet;

use core_common::{sc, Rng};
use sc::{SplitMix64, TimerQueue};

/// Random deadlines pop in (deadline, insertion) order, each live entry
/// exactly once, only when expired, with random cancellations mixed in.
#[test]
fn random_deadlines_pop_in_order_with_cancellation() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut q: TimerQueue<u64> = TimerQueue::new();
        let mut live: HashSet<u64> = HashSet::new();
        let mut deadline_of = Vec::new();
        let n = 1 + rng.below(500);
        // Small deadline range forces many ties.
        let range = 1 + rng.below(1000);
        for key in 0..n {
            let d = rng.below(range);
            deadline_of.push(d);
            q.push(d, key);
            live.insert(key);
        }
        // Cancel a random subset (their owners were woken early).
        for key in 0..n {
            if rng.below(3) == 0 {
                live.remove(&key);
                q.cancelled(|k| live.contains(k));
            }
        }
        assert!(q.live_len() >= live.len());
        let mut now = 0;
        let mut last: Option<(u64, u64)> = None;
        let mut popped = HashSet::new();
        while now <= range {
            // Peeking never reports a stale entry's deadline.
            let min_pending = live
                .iter()
                .filter(|k| !popped.contains(*k))
                .map(|k| deadline_of[*k as usize])
                .min();
            assert_eq!(q.next_deadline(|k| live.contains(k)), min_pending);
            while let Some((d, key)) = q.pop_expired(now, |k| live.contains(k)) {
                assert!(d <= now, "popped before its deadline");
                assert_eq!(d, deadline_of[key as usize]);
                assert!(live.contains(&key), "stale entry popped");
                assert!(popped.insert(key), "popped twice");
                if let Some(prev) = last {
                    assert!(
                        prev < (d, key),
                        "out of order: {prev:?} then {:?}",
                        (d, key)
                    );
                }
                last = Some((d, key));
            }
            now += 1 + rng.below(range / 10 + 1);
        }
        while let Some((_, key)) = q.pop_expired(u64::MAX, |k| live.contains(k)) {
            assert!(popped.insert(key));
        }
        assert_eq!(popped, live, "seed {seed}");
        assert_eq!(q.next_deadline(|k| live.contains(k)), None);
    }
}

/// Equal deadlines pop in insertion order (determinism).
#[test]
fn ties_are_fifo() {
    let mut q = TimerQueue::new();
    for key in 0..100u32 {
        q.push(7, key);
    }
    let out: Vec<u32> = std::iter::from_fn(|| q.pop_expired(7, |_| true).map(|e| e.1)).collect();
    assert_eq!(out, (0..100).collect::<Vec<_>>());
}

/// Nothing expires early, and a 1 ns deadline expires at the first check.
#[test]
fn expiry_boundaries() {
    let mut q = TimerQueue::new();
    q.push(1, 'a');
    q.push(u64::MAX, 'z');
    assert_eq!(q.pop_expired(0, |_| true), None);
    assert_eq!(q.pop_expired(1, |_| true), Some((1, 'a')));
    assert_eq!(q.pop_expired(u64::MAX - 1, |_| true), None);
    assert_eq!(q.pop_expired(u64::MAX, |_| true), Some((u64::MAX, 'z')));
    assert!(q.is_empty());
}

/// Many early cancellations keep the heap O(live).
#[test]
fn compaction_bounds_memory() {
    let mut q = TimerQueue::new();
    let mut live = HashSet::new();
    for key in 0..100_000u64 {
        q.push(1_000_000 + key, key);
        live.insert(key);
        if key >= 10 {
            // Everything but the last 10 gets cancelled.
            live.remove(&(key - 10));
            q.cancelled(|k| live.contains(k));
        }
        assert!(q.len() <= 10 + 2 * 64 + 2, "len {} at {key}", q.len());
    }
    let mut n = 0;
    while q.pop_expired(u64::MAX, |k| live.contains(k)).is_some() {
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn splitmix_is_deterministic_and_in_range() {
    let mut a = SplitMix64::new(42);
    let mut b = SplitMix64::new(42);
    let mut c = SplitMix64::new(43);
    let va: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
    let vb: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
    let vc: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
    assert_eq!(va, vb);
    assert_ne!(va, vc);
    let mut counts = [0u32; 7];
    for _ in 0..70_000 {
        counts[a.below(7)] += 1;
    }
    assert!(
        counts.iter().all(|&n| (9_000..11_000).contains(&n)),
        "{counts:?}"
    );
}
