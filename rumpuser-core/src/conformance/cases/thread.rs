//! Threads and curlwp (contract 3.11, 2.6).

use super::super::kthread::spawn;
use super::super::{CaseResult, Ctx};
use crate::Errno;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

/// A joinable thread runs, starts without curlwp, and join releases the CPU.
pub fn create_join(ctx: &Ctx) -> CaseResult {
    static RAN: AtomicU32 = AtomicU32::new(0);
    RAN.store(0, Ordering::Relaxed);
    let api = ctx.api;
    let t = spawn(api, c"kit-thread-with-a-very-long-name", true, move || {
        // Make the joiner wait, so that join has to block.
        // SAFETY: plain hypercall.
        unsafe { (api.clock_sleep)(crate::abi::RUMPUSER_CLOCK_RELWALL, 0, 5_000_000) };
        RAN.fetch_add(1, Ordering::Relaxed);
    })
    .map_err(|e| alloc::format!("thread_create: {e}"))?
    .ok_or("no join handle")?;
    let r0 = ctx.lwp().releases.load(Ordering::Relaxed);
    crate::ensure_eq!(t.join(), 0, "thread_join");
    crate::ensure_eq!(RAN.load(Ordering::Relaxed), 1, "thread body ran");
    crate::ensure!(
        ctx.lwp().releases.load(Ordering::Relaxed) > r0,
        "thread_join did not release the CPU"
    );
    crate::ensure!(
        !super::super::kthread::STARTED_WITH_CURLWP.load(Ordering::Relaxed),
        "a thread started with curlwp set"
    );
    Ok(())
}

/// Detached threads (NULL cookie) run; many create/join cycles work.
pub fn detached_and_many(ctx: &Ctx) -> CaseResult {
    static N: AtomicU32 = AtomicU32::new(0);
    N.store(0, Ordering::Relaxed);
    for _ in 0..50 {
        let h = spawn(ctx.api, c"kit-detached", false, || {
            N.fetch_add(1, Ordering::Relaxed);
        })
        .map_err(|e| alloc::format!("detached thread_create: {e}"))?;
        crate::ensure!(h.is_none(), "detached thread got a handle");
    }
    crate::ensure!(
        ctx.wait_for(5000, || N.load(Ordering::Relaxed) == 50),
        "only {} of 50 detached threads ran",
        N.load(Ordering::Relaxed)
    );
    let mut hs = Vec::new();
    for _ in 0..100 {
        hs.push(
            spawn(ctx.api, c"kit-many", true, || {})
                .map_err(|e| alloc::format!("thread_create: {e}"))?
                .ok_or("no handle")?,
        );
    }
    for h in hs {
        crate::ensure_eq!(h.join(), 0, "join");
    }
    Ok(())
}

/// Each thread sees its own lwp.
pub fn curlwp_is_per_thread(ctx: &Ctx) -> CaseResult {
    static SEEN: AtomicPtr<crate::abi::Lwp> = AtomicPtr::new(ptr::null_mut());
    let api = ctx.api;
    let me = ctx.lwp().as_lwp();
    // SAFETY: plain hypercall.
    crate::ensure_eq!(unsafe { (api.curlwp)() }, me, "curlwp of the case thread");
    let t = spawn(api, c"kit-curlwp", true, move || {
        // SAFETY: plain hypercall.
        SEEN.store(unsafe { (api.curlwp)() }, Ordering::Relaxed);
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    crate::ensure_eq!(t.join(), 0, "join");
    let seen = SEEN.load(Ordering::Relaxed);
    crate::ensure!(
        !seen.is_null() && seen != me,
        "thread saw curlwp {seen:p}, case thread is {me:p}"
    );
    // SAFETY: plain hypercall.
    crate::ensure_eq!(unsafe { (api.curlwp)() }, me, "curlwp after join");
    Ok(())
}

/// NULL function and NULL join cookie are `EINVAL`.
pub fn bad_input(ctx: &Ctx) -> CaseResult {
    let mut cookie = ptr::null_mut();
    // SAFETY: NULL function must be refused.
    let r = unsafe {
        (ctx.api.thread_create)(None, ptr::null_mut(), ptr::null(), 1, 0, -1, &mut cookie)
    };
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "thread_create(NULL)");
    // SAFETY: NULL cookie must be refused.
    let r = unsafe { (ctx.api.thread_join)(ptr::null_mut()) };
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "thread_join(NULL)");
    Ok(())
}
