//! Futex wait/wake and the monotonic clock used for every lock deadline.
//!
//! All rumpuser timed waits are expressed as an *absolute* `CLOCK_MONOTONIC`
//! deadline in nanoseconds, so sleeping can never end early because a relative
//! timeout was rounded, recomputed after a signal, or measured against a clock
//! that jumped.  On Linux, [`wait`] uses `FUTEX_WAIT_BITSET` (which takes an
//! absolute `CLOCK_MONOTONIC` timeout) with `FUTEX_PRIVATE_FLAG` (all lock
//! words live in this process), retries on `EINTR`, and only reports a timeout
//! after re-reading the monotonic clock and finding it really past the
//! deadline.
//!
//! Other POSIX hosts have no `futex(2)`; there [`wait`] and [`wake`] fall
//! back to a portable polling implementation (short `nanosleep` naps), which
//! is correct because futex waits are allowed to return spuriously, only
//! slower.  A native backend (FreeBSD `_umtx_op`, OpenBSD `futex`, macOS
//! `__ulock_wait`) can replace it behind the same two functions.

use core::sync::atomic::AtomicU32;
#[cfg(any(target_os = "linux", target_os = "android"))]
use rustix::io::Errno;
#[cfg(any(target_os = "linux", target_os = "android"))]
use rustix::thread::futex;
use rustix::time::Timespec;

/// Pass as `n` to [`wake`] to wake every waiter.
pub const WAKE_ALL: i32 = i32::MAX;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Returns the current `CLOCK_MONOTONIC` time in nanoseconds.
///
/// This is the clock all `deadline` arguments in [`super`] refer to.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // The monotonic clock is never negative.
    (ts.tv_sec as u64) * NANOS_PER_SEC + ts.tv_nsec as u64
}

/// Converts an absolute nanosecond time into a `timespec`, saturating if the
/// host's `time_t` cannot represent it.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
fn ns_to_timespec(ns: u64) -> Timespec {
    match i64::try_from(ns / NANOS_PER_SEC) {
        Ok(tv_sec) => Timespec {
            tv_sec,
            // Always < 1e9.
            tv_nsec: (ns % NANOS_PER_SEC) as _,
        },
        Err(_) => Timespec {
            tv_sec: i64::MAX,
            tv_nsec: (NANOS_PER_SEC - 1) as _,
        },
    }
}

/// Sleeps while `futex` holds `expected`, until woken by [`wake`] or until
/// `deadline` (absolute `CLOCK_MONOTONIC` nanoseconds; `None` = forever).
///
/// Returns `false` only if the deadline has really passed (checked against
/// [`monotonic_ns`]); returns `true` when woken, when the word did not hold
/// `expected`, or spuriously.  Callers must re-check their condition either
/// way.  Signals (`EINTR`) never cause an early return.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn wait(futex: &AtomicU32, expected: u32, deadline: Option<u64>) -> bool {
    let ts = deadline.map(ns_to_timespec);
    loop {
        // FUTEX_BITSET_MATCH_ANY: every waiter's bit set matches.
        let r = futex::wait_bitset(
            futex,
            futex::Flags::PRIVATE,
            expected,
            ts.as_ref(),
            MATCH_ANY,
        );
        match r {
            Ok(()) => return true,
            // Interrupted by a signal: the kernel re-checks the word, retry.
            Err(Errno::INTR) => continue,
            // The word no longer held `expected`.
            Err(Errno::AGAIN) => return true,
            Err(Errno::TIMEDOUT) => match deadline {
                Some(deadline) if monotonic_ns() >= deadline => return false,
                // Never report a timeout the monotonic clock disagrees with.
                _ => continue,
            },
            Err(other) => panic!("futex(FUTEX_WAIT_BITSET) failed: {other:?}"),
        }
    }
}

/// `FUTEX_BITSET_MATCH_ANY`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MATCH_ANY: core::num::NonZeroU32 = core::num::NonZeroU32::MAX;

/// Wakes at most `n` threads sleeping in [`wait`] on `futex` (use
/// [`WAKE_ALL`] for all of them) and returns how many were woken.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn wake(futex: &AtomicU32, n: i32) -> usize {
    // FUTEX_WAKE cannot fail for a valid private futex; treat errors as
    // "woke nobody" (waiters will still re-check their words).
    futex::wake(futex, futex::Flags::PRIVATE, n as u32).unwrap_or(0)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub use self::poll::{wait, wake};

/// Portable fallback for hosts without `futex(2)`: waiters poll the word in
/// short naps.  Compiled on Linux only for its tests.
#[cfg(any(
    all(test, not(loom)),
    not(any(target_os = "linux", target_os = "android"))
))]
mod poll {
    use super::{monotonic_ns, AtomicU32};
    use core::sync::atomic::Ordering;

    /// Longest nap between two polls of the futex word.
    const POLL_NS: u64 = 50_000;

    /// Same contract as the Linux `wait`: returns `false` only if `deadline`
    /// has really passed, otherwise `true` after at most one short nap.
    pub fn wait(futex: &AtomicU32, expected: u32, deadline: Option<u64>) -> bool {
        if futex.load(Ordering::Acquire) != expected {
            return true;
        }
        let now = monotonic_ns();
        let nap = match deadline {
            Some(deadline) if now >= deadline => return false,
            Some(deadline) => POLL_NS.min(deadline - now),
            None => POLL_NS,
        };
        let ts = rustix::time::Timespec {
            tv_sec: 0,
            // nap < 1 s.
            tv_nsec: nap as _,
        };
        // An early return (EINTR) is just a spurious wakeup.
        let _ = rustix::thread::nanosleep(&ts);
        match deadline {
            Some(deadline) => {
                futex.load(Ordering::Acquire) != expected || monotonic_ns() < deadline
            }
            None => true,
        }
    }

    /// Waiters poll, so there is nobody to wake explicitly.
    pub fn wake(_futex: &AtomicU32, _n: i32) -> usize {
        0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    #[test]
    fn monotonic_advances() {
        let a = monotonic_ns();
        thread::sleep(Duration::from_millis(2));
        let b = monotonic_ns();
        assert!(b >= a + 2 * MS, "{a} -> {b}");
    }

    #[test]
    fn timespec_conversion() {
        let ts = ns_to_timespec(3 * NANOS_PER_SEC + 7);
        assert_eq!((ts.tv_sec, ts.tv_nsec), (3, 7));
        let ts = ns_to_timespec(u64::MAX);
        assert!(ts.tv_sec > 0);
        assert!(ts.tv_nsec < NANOS_PER_SEC as libc::c_long);
    }

    #[test]
    fn wait_value_mismatch_returns_immediately() {
        let f = AtomicU32::new(1);
        assert!(wait(&f, 0, None));
        assert!(wait(&f, 0, Some(0)));
        assert!(poll::wait(&f, 0, None));
        assert_eq!(poll::wake(&f, WAKE_ALL), 0);
    }

    #[test]
    fn expired_deadline_times_out() {
        let f = AtomicU32::new(0);
        assert!(!wait(&f, 0, Some(0)));
        assert!(!wait(&f, 0, Some(monotonic_ns())));
        assert!(!poll::wait(&f, 0, Some(0)));
    }

    #[test]
    fn timed_wait_never_early() {
        let f = AtomicU32::new(0);
        for &ms in &[1u64, 5, 13] {
            let deadline = monotonic_ns() + ms * MS + 123_457;
            assert!(!wait(&f, 0, Some(deadline)));
            assert!(monotonic_ns() >= deadline);

            let deadline = monotonic_ns() + ms * MS + 123_457;
            while poll::wait(&f, 0, Some(deadline)) {}
            assert!(monotonic_ns() >= deadline);
        }
    }

    #[test]
    fn wake_wakes_waiter() {
        let f = Arc::new(AtomicU32::new(0));
        let f2 = Arc::clone(&f);
        let t = thread::spawn(move || {
            while f2.load(Ordering::Acquire) == 0 {
                // 10 s is only a hang guard.
                assert!(wait(&f2, 0, Some(monotonic_ns() + 10_000 * MS)));
            }
        });
        thread::sleep(Duration::from_millis(20));
        f.store(1, Ordering::Release);
        wake(&f, WAKE_ALL);
        t.join().unwrap();
        // Nobody waiting now.
        assert_eq!(wake(&f, 1), 0);
    }
}
