//! Memory (contract 3.3): alignment honoured, bad alignment an error,
//! anonymous mappings zeroed and aligned; none of it touches the CPU.

use super::super::kthread::spawn;
use super::super::{CaseResult, Ctx};
use crate::Errno;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::c_void;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Every power-of-two alignment up to 64 KiB.
pub fn malloc_alignment(ctx: &Ctx) -> CaseResult {
    let rel = ctx.lwp().releases.load(Ordering::Relaxed);
    for (len, align) in [
        (1usize, 0i32),
        (64, 8),
        (100, 64),
        (4096, 4096),
        (3, 1 << 16),
        (1 << 20, 4096),
        (0, 0),
    ] {
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let r = unsafe { (ctx.api.malloc)(len, align, &mut p) };
        crate::ensure_eq!(r, 0, "malloc({len}, {align})");
        crate::ensure!(!p.is_null(), "malloc({len}, {align}) returned NULL");
        let a = if align == 0 {
            core::mem::size_of::<usize>()
        } else {
            align as usize
        };
        crate::ensure!(
            (p as usize).is_multiple_of(a),
            "malloc({len}, {align}) = {p:p} misaligned"
        );
        if len > 0 {
            // SAFETY: we own `len` bytes at `p`.
            unsafe { core::ptr::write_bytes(p as *mut u8, 0xa5, len) };
        }
        // SAFETY: freeing what we allocated with its length.
        unsafe { (ctx.api.free)(p, len) };
    }
    crate::ensure_eq!(
        ctx.lwp().releases.load(Ordering::Relaxed),
        rel,
        "malloc must not release the CPU"
    );
    Ok(())
}

/// Page-sized allocations (the kernel's page cache: `malloc(4096, 4096)`,
/// freed with the same length) made and freed on two threads at once are
/// aligned, never handed out twice while held, and keep their contents:
/// for implementations that pool pages per thread.
pub fn pages_across_threads(ctx: &Ctx) -> CaseResult {
    const PAGE: usize = 4096;
    const N: usize = 1000;
    let page = || -> Result<usize, alloc::string::String> {
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let r = unsafe { (ctx.api.malloc)(PAGE, PAGE as i32, &mut p) };
        crate::ensure_eq!(r, 0, "malloc(4096, 4096)");
        crate::ensure!((p as usize).is_multiple_of(PAGE), "{p:p} misaligned");
        Ok(p as usize)
    };
    let stamp = |p: usize, v: u8| {
        // SAFETY: a whole page we hold.
        unsafe { core::ptr::write_bytes(p as *mut u8, v, PAGE) }
    };
    let intact = |p: usize, v: u8| {
        // SAFETY: a whole page we hold.
        let s = unsafe { core::slice::from_raw_parts(p as *const u8, PAGE) };
        s.iter().all(|&b| b == v)
    };
    let mut mine = Vec::with_capacity(N);
    for _ in 0..N {
        let p = page()?;
        stamp(p, 0x11);
        mine.push(p);
    }
    // The other thread frees half of ours and allocates its own meanwhile.
    let theirs: Arc<Vec<AtomicUsize>> = Arc::new((0..N / 2).map(|_| AtomicUsize::new(0)).collect());
    let given: Vec<usize> = mine.split_off(N / 2);
    let (api, out) = (ctx.api, theirs.clone());
    let t = spawn(api, c"kit-pages", true, move || {
        for (i, p) in given.into_iter().enumerate() {
            // SAFETY: a page from `malloc(4096, 4096)`, freed once.
            unsafe { (api.free)(p as *mut c_void, PAGE) };
            let mut q: *mut c_void = core::ptr::null_mut();
            // SAFETY: valid out-pointer.
            if unsafe { (api.malloc)(PAGE, PAGE as i32, &mut q) } == 0 {
                // SAFETY: a whole page we hold.
                unsafe { core::ptr::write_bytes(q as *mut u8, 0x22, PAGE) };
                out[i].store(q as usize, Ordering::Release);
            }
        }
    })
    .map_err(|e| alloc::format!("thread_create: {e}"))?
    .ok_or("no joinable thread")?;
    for _ in 0..N / 2 {
        let p = page()?;
        stamp(p, 0x11);
        mine.push(p);
    }
    crate::ensure_eq!(t.join(), 0, "join");
    let theirs: Vec<usize> = theirs.iter().map(|a| a.load(Ordering::Acquire)).collect();
    crate::ensure!(
        theirs.iter().all(|&p| p != 0),
        "the other thread's allocations failed"
    );
    let mut all: Vec<usize> = mine.iter().chain(&theirs).copied().collect();
    all.sort_unstable();
    crate::ensure!(
        all.windows(2).all(|w| w[1] - w[0] >= PAGE),
        "a page was handed out twice, or pages overlap"
    );
    crate::ensure!(
        mine.iter().all(|&p| intact(p, 0x11)),
        "a page of ours was overwritten"
    );
    crate::ensure!(
        theirs.iter().all(|&p| intact(p, 0x22)),
        "a page of the other thread's was overwritten"
    );
    for p in all {
        // SAFETY: pages from `malloc(4096, 4096)`, each freed once.
        unsafe { (ctx.api.free)(p as *mut c_void, PAGE) };
    }
    Ok(())
}

/// Non-power-of-two and negative alignments are `EINVAL`, not a crash.
pub fn malloc_bad_alignment(ctx: &Ctx) -> CaseResult {
    for align in [3, 12, -8, 1000] {
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let r = unsafe { (ctx.api.malloc)(16, align, &mut p) };
        crate::ensure_eq!(r, Errno::EINVAL.raw(), "malloc alignment {align}");
    }
    Ok(())
}

/// Aligned, zeroed, writable mappings.
pub fn anonmmap(ctx: &Ctx) -> CaseResult {
    for (size, bit) in [(4096usize, 0), (65536, 16), (12288, 21)] {
        let mut p: *mut c_void = core::ptr::null_mut();
        // SAFETY: valid out-pointer.
        let r = unsafe { (ctx.api.anonmmap)(core::ptr::null_mut(), size, bit, 0, &mut p) };
        crate::ensure_eq!(r, 0, "anonmmap({size}, alignbit {bit})");
        crate::ensure!(
            (p as usize).is_multiple_of(1usize << bit),
            "anonmmap alignbit {bit}: {p:p}"
        );
        // SAFETY: we own `size` bytes at `p`.
        let s = unsafe { core::slice::from_raw_parts_mut(p as *mut u8, size) };
        crate::ensure!(s.iter().all(|&b| b == 0), "anonmmap memory not zeroed");
        s.fill(1);
        // SAFETY: unmapping our own mapping.
        unsafe { (ctx.api.unmap)(p, size) };
    }
    let mut p: *mut c_void = core::ptr::null_mut();
    // SAFETY: valid out-pointer.
    let r = unsafe { (ctx.api.anonmmap)(core::ptr::null_mut(), 0, 0, 0, &mut p) };
    crate::ensure!(r != 0, "anonmmap of 0 bytes must fail");
    Ok(())
}
