//! Clocks (rumpuser.c): wall time, the monotonic clock every deadline uses,
//! and absolute monotonic sleeps that never return early.

use rumpuser_core::types::{MonoNanos, NANOS_PER_SEC};

#[inline]
fn now(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer to a local.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

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
    let ts = libc::timespec {
        tv_sec: (deadline / NANOS_PER_SEC).min(i64::MAX as u64) as libc::time_t,
        tv_nsec: (deadline % NANOS_PER_SEC) as libc::c_long,
    };
    loop {
        // SAFETY: valid clock, flags and timespec; no remainder pointer needed
        // for absolute sleeps.
        let r = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                core::ptr::null_mut(),
            )
        };
        if r != libc::EINTR && monotonic() >= deadline {
            return;
        }
    }
}

/// Asks for 1 ns timer slack on the calling thread (Linux defaults to
/// 50 µs, which every sleep and timed wait then overshoots by). Threads
/// created afterwards by this thread inherit it.
pub fn tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the caller.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}
