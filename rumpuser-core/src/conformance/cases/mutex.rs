//! Mutexes (contract 3.13, 2.7, 2.4): owner tracking for KMUTEX, uncontended
//! entry never touches the CPU, contended KMUTEX entry releases it, SPIN
//! entry never does, a SPIN mutex works for a thread without an lwp, and
//! mutual exclusion holds under load.

use super::super::kthread::spawn;
use super::super::{CaseResult, Ctx};
use super::{mutex, Obj};
use crate::abi::{Lwp, RUMPUSER_MTX_KMUTEX, RUMPUSER_MTX_SPIN};
use crate::Errno;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

fn owner(ctx: &Ctx, m: Obj) -> *mut Lwp {
    let mut o = ptr::null_mut();
    // SAFETY: live KMUTEX and valid out-pointer.
    unsafe { (ctx.api.mutex_owner)(m.p(), &mut o) };
    o
}

/// enter/tryenter/exit/owner on an uncontended KMUTEX.
pub fn uncontended_keeps_cpu_and_owner(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let me = ctx.lwp().as_lwp();
    let r0 = ctx.lwp().releases.load(Ordering::Relaxed);
    // SAFETY: live mutex, used as the contract says.
    unsafe { (api.mutex_enter)(m.p()) };
    crate::ensure_eq!(owner(ctx, m), me, "owner after enter");
    // SAFETY: as above.
    let r = unsafe { (api.mutex_tryenter)(m.p()) };
    crate::ensure_eq!(r, Errno::EBUSY.raw(), "tryenter while held");
    // SAFETY: as above.
    unsafe { (api.mutex_exit)(m.p()) };
    crate::ensure!(owner(ctx, m).is_null(), "owner after exit");
    // SAFETY: as above.
    let r = unsafe { (api.mutex_tryenter)(m.p()) };
    crate::ensure_eq!(r, 0, "tryenter when free");
    crate::ensure_eq!(owner(ctx, m), me, "owner after tryenter");
    // SAFETY: as above.
    unsafe { (api.mutex_exit)(m.p()) };
    // SAFETY: as above (nowrap on a SPIN|KMUTEX is what locks.c does).
    let s = mutex(api, RUMPUSER_MTX_SPIN | RUMPUSER_MTX_KMUTEX);
    // SAFETY: as above.
    unsafe { (api.mutex_enter_nowrap)(s.p()) };
    crate::ensure_eq!(owner(ctx, s), me, "owner after enter_nowrap");
    // SAFETY: as above.
    unsafe { (api.mutex_exit)(s.p()) };
    crate::ensure_eq!(
        ctx.lwp().releases.load(Ordering::Relaxed),
        r0,
        "uncontended locking released the CPU"
    );
    // SAFETY: not held, no waiters.
    unsafe {
        (api.mutex_destroy)(m.p());
        (api.mutex_destroy)(s.p());
    }
    Ok(())
}

/// Another thread holds the mutex for a while; returns how many CPU
/// releases the contending `mutex_enter` made and the owner it saw.
fn contend(ctx: &Ctx, flags: i32) -> Result<(u32, bool), alloc::string::String> {
    static DELTA: AtomicU32 = AtomicU32::new(u32::MAX);
    static OWNER_OK: AtomicI32 = AtomicI32::new(-1);
    static ARRIVED: AtomicBool = AtomicBool::new(false);
    DELTA.store(u32::MAX, Ordering::Relaxed);
    OWNER_OK.store(-1, Ordering::Relaxed);
    ARRIVED.store(false, Ordering::Relaxed);
    let api = ctx.api;
    let m = mutex(api, flags);
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter)(m.p()) };
    let t = spawn(api, c"kit-contender", true, move || {
        let l = super::super::model::model()
            .current()
            .expect("kit thread has an lwp");
        let r0 = l.releases.load(Ordering::Relaxed);
        ARRIVED.store(true, Ordering::Release);
        // SAFETY: live mutex.
        unsafe { (api.mutex_enter)(m.p()) };
        DELTA.store(l.releases.load(Ordering::Relaxed) - r0, Ordering::Relaxed);
        if flags & RUMPUSER_MTX_KMUTEX != 0 {
            let mut o = ptr::null_mut();
            // SAFETY: live KMUTEX.
            unsafe { (api.mutex_owner)(m.p(), &mut o) };
            OWNER_OK.store((o == l.as_lwp()) as i32, Ordering::Relaxed);
        }
        // SAFETY: held by us.
        unsafe { (api.mutex_exit)(m.p()) };
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    // Let the contender block on the mutex (a loaded host may start the
    // thread late: wait for it to arrive first).
    crate::ensure!(
        ctx.wait_for(10_000, || ARRIVED.load(Ordering::Acquire)),
        "contender never started"
    );
    ctx.sleep_ns(20_000_000);
    crate::ensure_eq!(
        DELTA.load(Ordering::Relaxed),
        u32::MAX,
        "contender got a held mutex"
    );
    // SAFETY: held by us.
    unsafe { (api.mutex_exit)(m.p()) };
    crate::ensure_eq!(t.join(), 0, "join");
    // SAFETY: no longer used.
    unsafe { (api.mutex_destroy)(m.p()) };
    Ok((
        DELTA.load(Ordering::Relaxed),
        OWNER_OK.load(Ordering::Relaxed) != 0,
    ))
}

/// A contended adaptive mutex gives up the CPU while it waits.
pub fn contended_kmutex_releases_cpu(ctx: &Ctx) -> CaseResult {
    let (delta, owner_ok) = contend(ctx, RUMPUSER_MTX_KMUTEX)?;
    crate::ensure!(delta >= 1, "contended KMUTEX enter did not release the CPU");
    crate::ensure!(
        owner_ok,
        "owner after a contended enter is not the contender"
    );
    Ok(())
}

/// A contended SPIN mutex never gives up the CPU.
pub fn contended_spin_keeps_cpu(ctx: &Ctx) -> CaseResult {
    let (delta, _) = contend(ctx, RUMPUSER_MTX_SPIN)?;
    crate::ensure_eq!(delta, 0, "contended SPIN enter released the CPU");
    let (delta, owner_ok) = contend(ctx, RUMPUSER_MTX_SPIN | RUMPUSER_MTX_KMUTEX)?;
    crate::ensure_eq!(delta, 0, "contended SPIN|KMUTEX enter released the CPU");
    crate::ensure!(owner_ok, "owner of a SPIN|KMUTEX after a contended enter");
    Ok(())
}

/// A SPIN mutex taken by a thread without an lwp, as scheduler.c's
/// `lwp0busy` and threads.c's `threadbouncer` take theirs: enter, a
/// refused tryenter (`EBUSY`, not a misuse report), exit, and again after
/// the lwp is back; none of it is taken for lock misuse.
pub fn spin_without_lwp(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_SPIN);
    let l = ctx.lwp();
    let model = ctx.model();
    model.lwpop(crate::abi::RUMPUSER_LWP_CLEAR, l);
    // SAFETY: live mutex, nowrap use as in scheduler.c.
    let (held, none) = unsafe {
        (api.mutex_enter_nowrap)(m.p());
        let held = (api.mutex_tryenter)(m.p());
        let none = (api.curlwp)().is_null();
        (api.mutex_exit)(m.p());
        (held, none)
    };
    model.lwpop(crate::abi::RUMPUSER_LWP_SET, l);
    crate::ensure!(none, "curlwp still set after CLEAR");
    crate::ensure_eq!(held, Errno::EBUSY.raw(), "tryenter of a held SPIN mutex");
    // SAFETY: as above, now with the lwp bound.
    let again = unsafe {
        (api.mutex_enter_nowrap)(m.p());
        let r = (api.mutex_tryenter)(m.p());
        (api.mutex_exit)(m.p());
        (api.mutex_destroy)(m.p());
        r
    };
    crate::ensure_eq!(again, Errno::EBUSY.raw(), "tryenter by the holder");
    Ok(())
}

/// Lost updates are impossible under the mutex.
pub fn exclusion_stress(ctx: &Ctx) -> CaseResult {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static OWNER: AtomicPtr<Lwp> = AtomicPtr::new(ptr::null_mut());
    static BAD: AtomicU32 = AtomicU32::new(0);
    COUNTER.store(0, Ordering::Relaxed);
    BAD.store(0, Ordering::Relaxed);
    const THREADS: u64 = 4;
    const ITERS: u64 = 5000;
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let mut hs = Vec::new();
    for _ in 0..THREADS {
        hs.push(
            spawn(api, c"kit-stress", true, move || {
                // SAFETY: plain hypercall.
                let me = unsafe { (api.curlwp)() };
                for i in 0..ITERS {
                    // SAFETY: live mutex.
                    unsafe { (api.mutex_enter)(m.p()) };
                    if !OWNER.swap(me, Ordering::Relaxed).is_null() {
                        BAD.fetch_add(1, Ordering::Relaxed);
                    }
                    // A deliberately non-atomic read-modify-write.
                    let v = COUNTER.load(Ordering::Relaxed);
                    if i % 64 == 0 {
                        core::hint::spin_loop();
                    }
                    COUNTER.store(v + 1, Ordering::Relaxed);
                    OWNER.store(ptr::null_mut(), Ordering::Relaxed);
                    // SAFETY: held by us.
                    unsafe { (api.mutex_exit)(m.p()) };
                }
            })
            .map_err(|e| alloc::format!("{e}"))?
            .ok_or("no handle")?,
        );
    }
    for h in hs {
        crate::ensure_eq!(h.join(), 0, "join");
    }
    crate::ensure_eq!(BAD.load(Ordering::Relaxed), 0, "two owners at once");
    crate::ensure_eq!(
        COUNTER.load(Ordering::Relaxed),
        THREADS * ITERS,
        "lost updates under the mutex"
    );
    // SAFETY: no longer used.
    unsafe { (api.mutex_destroy)(m.p()) };
    Ok(())
}
