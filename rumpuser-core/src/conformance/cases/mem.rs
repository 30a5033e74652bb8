//! Memory (contract 3.3): alignment honoured, bad alignment an error,
//! anonymous mappings zeroed and aligned; none of it touches the CPU.

use super::super::{CaseResult, Ctx};
use crate::Errno;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

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
