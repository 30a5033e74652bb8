//! Clocks (contract 3.6): sane values, sleeps that are never early and that
//! release the virtual CPU, and errors for bad arguments.

use super::super::{CaseResult, Ctx};
use crate::abi::{RUMPUSER_CLOCK_ABSMONO, RUMPUSER_CLOCK_RELWALL};
use crate::Errno;
use core::ffi::c_long;
use core::sync::atomic::Ordering;

/// Wall clock after 2020, nsec in range, monotonic clock non-decreasing.
pub fn gettime(ctx: &Ctx) -> CaseResult {
    let (mut s, mut n): (i64, c_long) = (0, 0);
    // SAFETY: valid out-pointers.
    let r = unsafe { (ctx.api.clock_gettime)(RUMPUSER_CLOCK_RELWALL, &mut s, &mut n) };
    crate::ensure_eq!(r, 0, "RELWALL");
    crate::ensure!(s > 1_577_836_800, "wall clock {s} is before 2020");
    crate::ensure!((0..1_000_000_000).contains(&n), "nsec {n} out of range");
    let mut last = ctx.now();
    for _ in 0..10_000 {
        let t = ctx.now();
        crate::ensure!(t >= last, "monotonic clock went back: {last} -> {t}");
        last = t;
    }
    let rel = ctx.lwp().releases.load(Ordering::Relaxed);
    crate::ensure_eq!(
        rel,
        ctx.lwp().releases.load(Ordering::Relaxed),
        "gettime released the CPU"
    );
    Ok(())
}

/// RELWALL sleeps last at least as long as asked, sub-millisecond included.
pub fn sleep_relative_never_early(ctx: &Ctx) -> CaseResult {
    for ns in [1u64, 50_000, 300_000, 1_500_000, 10_000_000] {
        let t0 = ctx.now();
        // SAFETY: plain hypercall.
        let r = unsafe { (ctx.api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, ns as c_long) };
        let dt = ctx.now() - t0;
        crate::ensure_eq!(r, 0, "sleep {ns} ns");
        crate::ensure!(dt >= ns, "sleep of {ns} ns returned after {dt} ns");
    }
    Ok(())
}

/// ABSMONO sleeps end at or after the deadline; a past deadline returns.
pub fn sleep_absolute_never_early(ctx: &Ctx) -> CaseResult {
    for ns in [100_000u64, 2_000_000, 7_000_000] {
        let deadline = ctx.now() + ns;
        // SAFETY: plain hypercall.
        let r = unsafe {
            (ctx.api.clock_sleep)(
                RUMPUSER_CLOCK_ABSMONO,
                (deadline / 1_000_000_000) as i64,
                (deadline % 1_000_000_000) as c_long,
            )
        };
        let now = ctx.now();
        crate::ensure_eq!(r, 0, "absolute sleep");
        crate::ensure!(
            now >= deadline,
            "absolute sleep woke {} ns early",
            deadline - now
        );
    }
    // SAFETY: plain hypercall; a deadline in the past.
    let r = unsafe { (ctx.api.clock_sleep)(RUMPUSER_CLOCK_ABSMONO, 0, 1) };
    crate::ensure_eq!(r, 0, "sleep until a past deadline");
    Ok(())
}

/// The CPU is released for the sleep and retaken afterwards.
pub fn sleep_releases_cpu(ctx: &Ctx) -> CaseResult {
    let l = ctx.lwp();
    let (r0, a0) = (
        l.releases.load(Ordering::Relaxed),
        l.reacquires.load(Ordering::Relaxed),
    );
    ctx.sleep_ns(1_000_000);
    crate::ensure_eq!(
        l.releases.load(Ordering::Relaxed),
        r0 + 1,
        "releases during clock_sleep"
    );
    crate::ensure_eq!(
        l.reacquires.load(Ordering::Relaxed),
        a0 + 1,
        "reacquires during clock_sleep"
    );
    crate::ensure!(
        l.holds_cpu.load(Ordering::Relaxed),
        "returned without a CPU"
    );
    Ok(())
}

/// Unknown clocks and out-of-range nanoseconds are `EINVAL`.
pub fn bad_input(ctx: &Ctx) -> CaseResult {
    let (mut s, mut n): (i64, c_long) = (0, 0);
    // SAFETY: valid out-pointers.
    let r = unsafe { (ctx.api.clock_gettime)(7, &mut s, &mut n) };
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "gettime on clock 7");
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.clock_sleep)(7, 0, 1) };
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "sleep on clock 7");
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 1_000_000_000) };
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "sleep with nsec = 1e9");
    Ok(())
}
