//! Condition variables (contract 2.5, 3.15): signal and broadcast, waiter
//! counts, timed waits that never fire early, the mandated reacquire order
//! for SPIN|KMUTEX and SPIN-only interlocks, the scheduler-mutex interlock
//! that the kernel passes without holding it, and `_nowrap` waits that
//! never touch the CPU.

use super::super::kthread::spawn;
use super::super::model::{model, InterlockSeen};
use super::super::{CaseResult, Ctx};
use super::{cv, mutex, Obj};
use crate::abi::{Lwp, RUMPUSER_MTX_KMUTEX, RUMPUSER_MTX_SPIN};
use crate::Errno;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

fn has_waiters(ctx: &Ctx, c: Obj) -> i32 {
    let mut n = -1;
    // SAFETY: live cv and out-pointer.
    unsafe { (ctx.api.cv_has_waiters)(c.p(), &mut n) };
    n
}

/// One signal wakes one waiter's worth of work; broadcast wakes all.
pub fn signal_and_broadcast(ctx: &Ctx) -> CaseResult {
    static TOKENS: AtomicU32 = AtomicU32::new(0);
    static DONE: AtomicU32 = AtomicU32::new(0);
    static WAITING: AtomicU32 = AtomicU32::new(0);
    TOKENS.store(0, Ordering::Relaxed);
    DONE.store(0, Ordering::Relaxed);
    WAITING.store(0, Ordering::Relaxed);
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let c = cv(api);
    let mut hs = Vec::new();
    for _ in 0..3 {
        hs.push(
            spawn(api, c"kit-cv-waiter", true, move || {
                // SAFETY: live objects used per the contract.
                unsafe {
                    (api.mutex_enter)(m.p());
                    WAITING.fetch_add(1, Ordering::Relaxed);
                    while TOKENS.load(Ordering::Relaxed) == 0 {
                        (api.cv_wait)(c.p(), m.p());
                    }
                    TOKENS.fetch_sub(1, Ordering::Relaxed);
                    DONE.fetch_add(1, Ordering::Relaxed);
                    (api.mutex_exit)(m.p());
                }
            })
            .map_err(|e| alloc::format!("{e}"))?
            .ok_or("no handle")?,
        );
    }
    crate::ensure!(
        ctx.wait_for(5000, || has_waiters(ctx, c) == 3),
        "has_waiters = {} with 3 waiters",
        has_waiters(ctx, c)
    );
    // SAFETY: live objects.
    unsafe {
        (api.mutex_enter)(m.p());
        TOKENS.store(1, Ordering::Relaxed);
        (api.cv_signal)(c.p());
        (api.mutex_exit)(m.p());
    }
    crate::ensure!(
        ctx.wait_for(5000, || DONE.load(Ordering::Relaxed) == 1),
        "signal woke nobody"
    );
    ctx.sleep_ns(5_000_000);
    crate::ensure_eq!(DONE.load(Ordering::Relaxed), 1, "one token consumed twice");
    // Broadcast without holding the mutex (allowed by the contract).
    TOKENS.store(2, Ordering::Relaxed);
    // SAFETY: live cv.
    unsafe { (api.cv_broadcast)(c.p()) };
    crate::ensure!(
        ctx.wait_for(5000, || DONE.load(Ordering::Relaxed) == 3),
        "broadcast did not wake everyone: {}",
        DONE.load(Ordering::Relaxed)
    );
    for h in hs {
        crate::ensure_eq!(h.join(), 0, "join");
    }
    crate::ensure_eq!(has_waiters(ctx, c), 0, "has_waiters after all left");
    // SAFETY: no waiters, not held.
    unsafe {
        (api.cv_destroy)(c.p());
        (api.mutex_destroy)(m.p());
    }
    Ok(())
}

/// Timeouts expire, never early, even below a millisecond; owner restored.
pub fn timedwait_never_early(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let c = cv(api);
    let me = ctx.lwp().as_lwp();
    // SAFETY: live objects.
    unsafe { (api.mutex_enter)(m.p()) };
    for ns in [1i64, 100_000, 999_999, 2_000_000, 15_000_000] {
        let t0 = ctx.now();
        // SAFETY: we hold the mutex.
        let r = unsafe { (api.cv_timedwait)(c.p(), m.p(), 0, ns) };
        let dt = ctx.now() - t0;
        // Spurious 0 returns are legal, so only a timeout is checked for earliness.
        crate::ensure!(
            r == 0 || r == Errno::ETIMEDOUT.raw(),
            "timedwait returned {r}"
        );
        if r != 0 {
            crate::ensure!(dt >= ns as u64, "{ns} ns timedwait timed out after {dt} ns");
        }
        let mut o: *mut Lwp = ptr::null_mut();
        // SAFETY: live KMUTEX.
        unsafe { (api.mutex_owner)(m.p(), &mut o) };
        crate::ensure_eq!(o, me, "owner after timedwait");
    }
    // SAFETY: we hold the mutex.
    let r = unsafe { (api.cv_timedwait)(c.p(), m.p(), 0, 0) };
    crate::ensure_eq!(r, Errno::ETIMEDOUT.raw(), "zero timeout");
    // SAFETY: we hold the mutex.
    unsafe { (api.mutex_exit)(m.p()) };
    // SAFETY: unused now.
    unsafe {
        (api.cv_destroy)(c.p());
        (api.mutex_destroy)(m.p());
    }
    Ok(())
}

/// A signal before the deadline makes `timedwait` return 0, promptly.
pub fn timedwait_woken(ctx: &Ctx) -> CaseResult {
    static RESULT: AtomicI32 = AtomicI32::new(-1);
    static ELAPSED: AtomicU64 = AtomicU64::new(0);
    static FLAG: AtomicBool = AtomicBool::new(false);
    RESULT.store(-1, Ordering::Relaxed);
    FLAG.store(false, Ordering::Relaxed);
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let c = cv(api);
    let now = |api: super::super::KitApi| {
        let (mut s, mut n) = (0i64, 0 as core::ffi::c_long);
        // SAFETY: valid out-pointers.
        unsafe { (api.clock_gettime)(crate::abi::RUMPUSER_CLOCK_ABSMONO, &mut s, &mut n) };
        s as u64 * 1_000_000_000 + n as u64
    };
    let t = spawn(api, c"kit-timed-waiter", true, move || {
        let t0 = now(api);
        // SAFETY: live objects.
        unsafe {
            (api.mutex_enter)(m.p());
            let mut r = 0;
            while !FLAG.load(Ordering::Relaxed) {
                r = (api.cv_timedwait)(c.p(), m.p(), 5, 0);
                if r != 0 {
                    break;
                }
            }
            RESULT.store(r, Ordering::Relaxed);
            (api.mutex_exit)(m.p());
        }
        ELAPSED.store(now(api) - t0, Ordering::Relaxed);
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    ctx.sleep_ns(10_000_000);
    // SAFETY: live objects.
    unsafe {
        (api.mutex_enter)(m.p());
        FLAG.store(true, Ordering::Relaxed);
        (api.cv_signal)(c.p());
        (api.mutex_exit)(m.p());
    }
    crate::ensure_eq!(t.join(), 0, "join");
    crate::ensure_eq!(
        RESULT.load(Ordering::Relaxed),
        0,
        "signalled timedwait result"
    );
    crate::ensure!(
        ELAPSED.load(Ordering::Relaxed) < 2_000_000_000,
        "signalled waiter slept {} ns",
        ELAPSED.load(Ordering::Relaxed)
    );
    // SAFETY: unused now.
    unsafe {
        (api.cv_destroy)(c.p());
        (api.mutex_destroy)(m.p());
    }
    Ok(())
}

/// Waits on `flags` mutex (held) with a short timeout; returns what the
/// model saw at the CPU reacquisition and whether the CPU was released.
fn wait_and_observe(ctx: &Ctx, flags: i32) -> Result<(InterlockSeen, bool), alloc::string::String> {
    let api = ctx.api;
    let m = mutex(api, flags);
    let c = cv(api);
    let l = ctx.lwp();
    let r0 = l.releases.load(Ordering::Relaxed);
    // SAFETY: live objects; we hold the mutex around the wait.
    let r = unsafe {
        (api.mutex_enter)(m.p());
        let r = (api.cv_timedwait)(c.p(), m.p(), 0, 1_000_000);
        (api.mutex_exit)(m.p());
        (api.cv_destroy)(c.p());
        (api.mutex_destroy)(m.p());
        r
    };
    crate::ensure!(
        r == 0 || r == Errno::ETIMEDOUT.raw(),
        "timedwait returned {r}"
    );
    Ok((l.last_interlock(), l.releases.load(Ordering::Relaxed) > r0))
}

/// SPIN|KMUTEX: the CPU is retaken before the mutex (contract 2.5 step 6).
pub fn reacquire_order_spin_kmutex(ctx: &Ctx) -> CaseResult {
    let (seen, released) = wait_and_observe(ctx, RUMPUSER_MTX_SPIN | RUMPUSER_MTX_KMUTEX)?;
    crate::ensure!(released, "cv wait did not release the CPU");
    crate::ensure_eq!(
        seen,
        InterlockSeen::Free,
        "SPIN|KMUTEX: mutex must be free when the CPU is retaken"
    );
    Ok(())
}

/// SPIN only: the mutex is retaken before the CPU.
pub fn reacquire_order_spin_only(ctx: &Ctx) -> CaseResult {
    let (seen, released) = wait_and_observe(ctx, RUMPUSER_MTX_SPIN)?;
    crate::ensure!(released, "cv wait did not release the CPU");
    crate::ensure_eq!(
        seen,
        InterlockSeen::Held,
        "SPIN: mutex must be held when the CPU is retaken"
    );
    Ok(())
}

/// The kernel waits on its scheduler mutex without holding it; the
/// interlock protocol makes that work (scheduler.c `rump_schedlock_cv_wait`).
pub fn scheduler_mutex_interlock(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let sm = Obj(model().sched_mtx);
    let c = cv(api);
    // SAFETY: the model takes the scheduler mutex inside backend_unschedule.
    let r = unsafe { (api.cv_timedwait)(c.p(), sm.p(), 0, 2_000_000) };
    crate::ensure!(
        r == 0 || r == Errno::ETIMEDOUT.raw(),
        "timedwait returned {r}"
    );
    // SAFETY: probing a live mutex.
    let t = unsafe { (api.mutex_tryenter)(sm.p()) };
    crate::ensure_eq!(t, 0, "scheduler mutex left held after the wait");
    // SAFETY: we just took it.
    unsafe { (api.mutex_exit)(sm.p()) };
    // SAFETY: unused now.
    unsafe { (api.cv_destroy)(c.p()) };
    Ok(())
}

/// `cv_wait_nowrap` and `mutex_enter_nowrap` never release the CPU.
pub fn nowrap_never_touches_cpu(ctx: &Ctx) -> CaseResult {
    static FLAG: AtomicBool = AtomicBool::new(false);
    FLAG.store(false, Ordering::Relaxed);
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_SPIN);
    let c = cv(api);
    let t = spawn(api, c"kit-nowrap-signaller", true, move || {
        // SAFETY: live objects.
        unsafe {
            (api.clock_sleep)(crate::abi::RUMPUSER_CLOCK_RELWALL, 0, 5_000_000);
            (api.mutex_enter_nowrap)(m.p());
            FLAG.store(true, Ordering::Relaxed);
            (api.cv_signal)(c.p());
            (api.mutex_exit)(m.p());
        }
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    let l = ctx.lwp();
    let (r0, a0) = (
        l.releases.load(Ordering::Relaxed),
        l.reacquires.load(Ordering::Relaxed),
    );
    // SAFETY: live objects; nowrap use as in scheduler.c.
    unsafe {
        (api.mutex_enter_nowrap)(m.p());
        while !FLAG.load(Ordering::Relaxed) {
            (api.cv_wait_nowrap)(c.p(), m.p());
        }
        (api.mutex_exit)(m.p());
    }
    crate::ensure_eq!(
        l.releases.load(Ordering::Relaxed),
        r0,
        "nowrap wait released the CPU"
    );
    crate::ensure_eq!(
        l.reacquires.load(Ordering::Relaxed),
        a0,
        "nowrap wait reacquired a CPU"
    );
    crate::ensure_eq!(t.join(), 0, "join");
    // SAFETY: unused now.
    unsafe {
        (api.cv_destroy)(c.p());
        (api.mutex_destroy)(m.p());
    }
    Ok(())
}
