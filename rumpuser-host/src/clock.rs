//! Clocks (rumpuser.c): wall time, the monotonic clock every deadline uses,
//! and absolute monotonic sleeps that never return early.

use rumpuser_core::types::{MonoNanos, NANOS_PER_SEC};

use crate::sys::proc::clock_gettime as now;
use rustix::thread::ClockId;
use rustix::time::Timespec;

/// Wall-clock `(sec, nsec)` since the epoch.
#[inline]
pub fn wall() -> (i64, i64) {
    let ts = now(libc::CLOCK_REALTIME);
    (ts.tv_sec, ts.tv_nsec)
}

/// Monotonic `(sec, nsec)` (vDSO, no syscall, no division).
#[inline]
pub fn monotonic_parts() -> (i64, i64) {
    let ts = now(libc::CLOCK_MONOTONIC);
    (ts.tv_sec, ts.tv_nsec)
}

/// Monotonic nanoseconds (vDSO, no syscall).
#[inline]
pub fn monotonic() -> MonoNanos {
    let ts = now(libc::CLOCK_MONOTONIC);
    ts.tv_sec as u64 * NANOS_PER_SEC + ts.tv_nsec as u64
}

/// Sleeps until `deadline` on the monotonic clock, restarting after signals;
/// an absolute deadline means an interrupted sleep never shortens or
/// lengthens the total.
pub fn sleep_until(deadline: MonoNanos) {
    let ts = Timespec {
        tv_sec: (deadline / NANOS_PER_SEC).min(i64::MAX as u64) as i64,
        tv_nsec: (deadline % NANOS_PER_SEC) as _,
    };
    loop {
        let r = rustix::thread::clock_nanosleep_absolute(ClockId::Monotonic, &ts);
        if r != Err(rustix::io::Errno::INTR) && monotonic() >= deadline {
            return;
        }
    }
}

/// Asks for 1 ns timer slack on the calling thread (Linux defaults to
/// 50 µs, which every sleep and timed wait then overshoots by). Threads
/// created afterwards by this thread inherit it.
pub fn tight_timer_slack() {
    crate::sys::proc::set_tight_timer_slack();
}
