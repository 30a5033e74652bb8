//! Reader/writer locks (contract 3.14): readers share, writers exclude
//! everyone (the writer-vs-readers bug of every prior green implementation
//! is checked here), `rw_held` semantics, a real `tryupgrade`, a downgrade
//! that never lets a writer in, and contended entry releasing the CPU.

use super::super::kthread::spawn;
use super::super::{CaseResult, Ctx};
use super::{rwlock, Obj};
use crate::abi::{RUMPUSER_RW_READER as R, RUMPUSER_RW_WRITER as W};
use crate::Errno;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

fn enter(ctx: &Ctx, op: i32, rw: Obj) {
    // SAFETY: live rwlock.
    unsafe { (ctx.api.rw_enter)(op, rw.p()) }
}
fn tryenter(ctx: &Ctx, op: i32, rw: Obj) -> i32 {
    // SAFETY: live rwlock.
    unsafe { (ctx.api.rw_tryenter)(op, rw.p()) }
}
fn exit(ctx: &Ctx, rw: Obj) {
    // SAFETY: live rwlock held by the caller.
    unsafe { (ctx.api.rw_exit)(rw.p()) }
}
fn held(ctx: &Ctx, op: i32, rw: Obj) -> bool {
    let mut h = -1;
    // SAFETY: live rwlock, valid out-pointer.
    unsafe { (ctx.api.rw_held)(op, rw.p(), &mut h) };
    h != 0
}

/// Runs `f` on another kit thread and waits for it.
fn on_other_thread(ctx: &Ctx, f: impl FnOnce() + Send + 'static) -> CaseResult {
    let t = spawn(ctx.api, c"kit-rw", true, f)
        .map_err(|e| alloc::format!("{e}"))?
        .ok_or("no handle")?;
    crate::ensure_eq!(t.join(), 0, "join");
    Ok(())
}

/// A second reader gets in; a writer does not; nobody gets past a writer.
pub fn readers_share_writers_exclude(ctx: &Ctx) -> CaseResult {
    static RES: [AtomicI32; 4] = [
        AtomicI32::new(-1),
        AtomicI32::new(-1),
        AtomicI32::new(-1),
        AtomicI32::new(-1),
    ];
    let api = ctx.api;
    let rw = rwlock(api);
    enter(ctx, R, rw);
    on_other_thread(ctx, move || {
        // SAFETY: live rwlock.
        unsafe {
            let r = (api.rw_tryenter)(R, rw.p());
            RES[0].store(r, Ordering::Relaxed);
            if r == 0 {
                (api.rw_exit)(rw.p());
            }
            RES[1].store((api.rw_tryenter)(W, rw.p()), Ordering::Relaxed);
        }
    })?;
    exit(ctx, rw);
    crate::ensure_eq!(RES[0].load(Ordering::Relaxed), 0, "second reader refused");
    crate::ensure_eq!(
        RES[1].load(Ordering::Relaxed),
        Errno::EBUSY.raw(),
        "writer admitted while a reader holds the lock"
    );
    enter(ctx, W, rw);
    on_other_thread(ctx, move || {
        // SAFETY: live rwlock.
        unsafe {
            RES[2].store((api.rw_tryenter)(R, rw.p()), Ordering::Relaxed);
            RES[3].store((api.rw_tryenter)(W, rw.p()), Ordering::Relaxed);
        }
    })?;
    exit(ctx, rw);
    crate::ensure_eq!(
        RES[2].load(Ordering::Relaxed),
        Errno::EBUSY.raw(),
        "reader admitted while a writer holds the lock"
    );
    crate::ensure_eq!(
        RES[3].load(Ordering::Relaxed),
        Errno::EBUSY.raw(),
        "second writer admitted"
    );
    crate::ensure_eq!(
        tryenter(ctx, 7, rw),
        Errno::EINVAL.raw(),
        "tryenter with op 7"
    );
    crate::ensure_eq!(tryenter(ctx, W, rw), 0, "writer on a free lock");
    exit(ctx, rw);
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}

/// WRITER: the calling lwp is the writer; READER: some reader holds it.
pub fn held_semantics(ctx: &Ctx) -> CaseResult {
    static OTHER: AtomicI32 = AtomicI32::new(-1);
    let api = ctx.api;
    let rw = rwlock(api);
    crate::ensure!(
        !held(ctx, W, rw) && !held(ctx, R, rw),
        "free lock reported held"
    );
    enter(ctx, W, rw);
    crate::ensure!(held(ctx, W, rw), "writer does not see itself holding");
    crate::ensure!(!held(ctx, R, rw), "write-held lock reported read-held");
    on_other_thread(ctx, move || {
        let mut h = -1;
        // SAFETY: live rwlock.
        unsafe { (api.rw_held)(W, rw.p(), &mut h) };
        OTHER.store(h, Ordering::Relaxed);
    })?;
    crate::ensure_eq!(
        OTHER.load(Ordering::Relaxed),
        0,
        "another lwp is told it holds the write lock"
    );
    exit(ctx, rw);
    enter(ctx, R, rw);
    crate::ensure!(held(ctx, R, rw), "reader not reported");
    crate::ensure!(!held(ctx, W, rw), "reader reported as writer");
    exit(ctx, rw);
    crate::ensure!(!held(ctx, R, rw), "released lock reported read-held");
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}

/// A sole reader upgrades; with a second reader the upgrade is refused.
pub fn tryupgrade(ctx: &Ctx) -> CaseResult {
    static GO: AtomicBool = AtomicBool::new(false);
    static IN: AtomicBool = AtomicBool::new(false);
    let api = ctx.api;
    let rw = rwlock(api);
    enter(ctx, R, rw);
    // SAFETY: we hold a read lock.
    let r = unsafe { (api.rw_tryupgrade)(rw.p()) };
    crate::ensure_eq!(r, 0, "sole reader could not upgrade");
    crate::ensure!(held(ctx, W, rw), "upgraded lock not write-held by us");
    crate::ensure!(!held(ctx, R, rw), "upgraded lock still read-held");
    exit(ctx, rw);
    GO.store(false, Ordering::Relaxed);
    IN.store(false, Ordering::Relaxed);
    let t = spawn(api, c"kit-reader", true, move || {
        // SAFETY: live rwlock.
        unsafe { (api.rw_enter)(R, rw.p()) };
        IN.store(true, Ordering::Release);
        while !GO.load(Ordering::Acquire) {
            // SAFETY: plain hypercall.
            unsafe { (api.clock_sleep)(crate::abi::RUMPUSER_CLOCK_RELWALL, 0, 1_000_000) };
        }
        // SAFETY: held by us.
        unsafe { (api.rw_exit)(rw.p()) };
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    crate::ensure!(
        ctx.wait_for(5000, || IN.load(Ordering::Acquire)),
        "reader thread never got in"
    );
    enter(ctx, R, rw);
    // SAFETY: we hold a read lock.
    let r = unsafe { (api.rw_tryupgrade)(rw.p()) };
    GO.store(true, Ordering::Release);
    if r == 0 {
        exit(ctx, rw);
        t.join();
        return Err("upgrade succeeded with another reader inside".into());
    }
    crate::ensure_eq!(r, Errno::EBUSY.raw(), "refused upgrade");
    exit(ctx, rw);
    crate::ensure_eq!(t.join(), 0, "join");
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}

/// After `downgrade` the caller holds a read lock and a waiting writer
/// stays out until that read hold is released.
pub fn downgrade_keeps_writers_out(ctx: &Ctx) -> CaseResult {
    static READER_ACTIVE: AtomicBool = AtomicBool::new(false);
    static WRITER_IN: AtomicU32 = AtomicU32::new(0);
    static OVERLAP: AtomicU32 = AtomicU32::new(0);
    WRITER_IN.store(0, Ordering::Relaxed);
    OVERLAP.store(0, Ordering::Relaxed);
    let api = ctx.api;
    let rw = rwlock(api);
    enter(ctx, W, rw);
    let t = spawn(api, c"kit-writer", true, move || {
        // SAFETY: live rwlock.
        unsafe { (api.rw_enter)(W, rw.p()) };
        if READER_ACTIVE.load(Ordering::Acquire) {
            OVERLAP.fetch_add(1, Ordering::Relaxed);
        }
        WRITER_IN.fetch_add(1, Ordering::Release);
        // SAFETY: held by us.
        unsafe { (api.rw_exit)(rw.p()) };
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    ctx.sleep_ns(10_000_000);
    READER_ACTIVE.store(true, Ordering::Release);
    // SAFETY: we hold the write lock.
    unsafe { (api.rw_downgrade)(rw.p()) };
    crate::ensure!(held(ctx, R, rw), "downgraded lock not read-held");
    crate::ensure!(!held(ctx, W, rw), "downgraded lock still write-held");
    ctx.sleep_ns(20_000_000);
    let early = WRITER_IN.load(Ordering::Acquire);
    READER_ACTIVE.store(false, Ordering::Release);
    exit(ctx, rw);
    crate::ensure_eq!(t.join(), 0, "join");
    crate::ensure_eq!(
        early,
        0,
        "a writer got in while the downgraded read hold was active"
    );
    crate::ensure_eq!(
        OVERLAP.load(Ordering::Relaxed),
        0,
        "writer overlapped the reader"
    );
    crate::ensure_eq!(WRITER_IN.load(Ordering::Relaxed), 1, "writer never got in");
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}

/// A reader blocked behind a writer gives up its CPU.
pub fn contended_enter_releases_cpu(ctx: &Ctx) -> CaseResult {
    static DELTA: AtomicU32 = AtomicU32::new(u32::MAX);
    static ARRIVED: AtomicBool = AtomicBool::new(false);
    DELTA.store(u32::MAX, Ordering::Relaxed);
    ARRIVED.store(false, Ordering::Relaxed);
    let api = ctx.api;
    let rw = rwlock(api);
    enter(ctx, W, rw);
    let t = spawn(api, c"kit-blocked-reader", true, move || {
        let l = super::super::model::model().current().expect("lwp");
        let r0 = l.releases.load(Ordering::Relaxed);
        ARRIVED.store(true, Ordering::Release);
        // SAFETY: live rwlock.
        unsafe { (api.rw_enter)(R, rw.p()) };
        DELTA.store(l.releases.load(Ordering::Relaxed) - r0, Ordering::Relaxed);
        // SAFETY: held by us.
        unsafe { (api.rw_exit)(rw.p()) };
    })
    .map_err(|e| alloc::format!("{e}"))?
    .ok_or("no handle")?;
    // A loaded host may start the reader late: wait for it to arrive.
    crate::ensure!(
        ctx.wait_for(10_000, || ARRIVED.load(Ordering::Acquire)),
        "reader never started"
    );
    ctx.sleep_ns(15_000_000);
    exit(ctx, rw);
    crate::ensure_eq!(t.join(), 0, "join");
    crate::ensure!(
        DELTA.load(Ordering::Relaxed) >= 1,
        "blocked rw_enter did not release the CPU"
    );
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}

/// Readers and writers hammer one lock; a writer never sees a reader or
/// another writer inside.
pub fn exclusion_stress(ctx: &Ctx) -> CaseResult {
    static READERS: AtomicI32 = AtomicI32::new(0);
    static WRITERS: AtomicI32 = AtomicI32::new(0);
    static BAD: AtomicU32 = AtomicU32::new(0);
    BAD.store(0, Ordering::Relaxed);
    let api = ctx.api;
    let rw = rwlock(api);
    let mut hs = Vec::new();
    for i in 0..6u32 {
        hs.push(
            spawn(api, c"kit-rw-stress", true, move || {
                for j in 0..3000u32 {
                    let write = (i + j) % 4 == 0;
                    // SAFETY: live rwlock.
                    unsafe { (api.rw_enter)(if write { W } else { R }, rw.p()) };
                    if write {
                        if WRITERS.fetch_add(1, Ordering::AcqRel) != 0
                            || READERS.load(Ordering::Acquire) != 0
                        {
                            BAD.fetch_add(1, Ordering::Relaxed);
                        }
                        core::hint::spin_loop();
                        WRITERS.fetch_sub(1, Ordering::AcqRel);
                    } else {
                        READERS.fetch_add(1, Ordering::AcqRel);
                        if WRITERS.load(Ordering::Acquire) != 0 {
                            BAD.fetch_add(1, Ordering::Relaxed);
                        }
                        READERS.fetch_sub(1, Ordering::AcqRel);
                    }
                    // SAFETY: held by us.
                    unsafe { (api.rw_exit)(rw.p()) };
                }
            })
            .map_err(|e| alloc::format!("{e}"))?
            .ok_or("no handle")?,
        );
    }
    for h in hs {
        crate::ensure_eq!(h.join(), 0, "join");
    }
    crate::ensure_eq!(BAD.load(Ordering::Relaxed), 0, "exclusion violations");
    // SAFETY: free and unused.
    unsafe { (api.rw_destroy)(rw.p()) };
    Ok(())
}
