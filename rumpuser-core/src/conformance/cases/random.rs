//! `rumpuser_getrandom` (contract 3.7): at least one byte or an error,
//! flags honoured, never the CPU released, bytes that look random.

use super::super::{CaseResult, Ctx};
use crate::abi::{RUMPUSER_RANDOM_HARD, RUMPUSER_RANDOM_NOWAIT};
use crate::Errno;
use core::sync::atomic::Ordering;

fn fill(ctx: &Ctx, buf: &mut [u8], flags: i32) -> Result<usize, i32> {
    let mut got = usize::MAX;
    // SAFETY: valid buffer and out-pointer.
    let r = unsafe { (ctx.api.getrandom)(buf.as_mut_ptr().cast(), buf.len(), flags, &mut got) };
    if r == 0 {
        Ok(got)
    } else {
        Err(r)
    }
}

/// Progress for every flag combination; large requests; bytes differ.
pub fn getrandom(ctx: &Ctx) -> CaseResult {
    let rel = ctx.lwp().releases.load(Ordering::Relaxed);
    for flags in [
        0,
        RUMPUSER_RANDOM_HARD,
        RUMPUSER_RANDOM_NOWAIT,
        RUMPUSER_RANDOM_HARD | RUMPUSER_RANDOM_NOWAIT,
    ] {
        let mut b = [0u8; 32];
        match fill(ctx, &mut b, flags) {
            Ok(n) => crate::ensure!((1..=32).contains(&n), "flags {flags}: {n} bytes"),
            // Only NOWAIT may fail, and only with EAGAIN.
            Err(e) => crate::ensure!(
                flags & RUMPUSER_RANDOM_NOWAIT != 0 && e == Errno::EAGAIN.raw(),
                "flags {flags}: error {e}"
            ),
        }
    }
    let mut a = [0u8; 4096];
    let mut total = 0;
    while total < a.len() {
        total +=
            fill(ctx, &mut a[total..], 0).map_err(|e| alloc::format!("4096-byte fill: {e}"))?;
    }
    let mut b = [0u8; 4096];
    let mut total = 0;
    while total < b.len() {
        total += fill(ctx, &mut b[total..], 0).map_err(|e| alloc::format!("second fill: {e}"))?;
    }
    crate::ensure!(a != b, "two 4 KiB random buffers are identical");
    let ones: u32 = a.iter().map(|x| x.count_ones()).sum();
    crate::ensure!(
        (14_000..=18_800).contains(&ones),
        "{ones} one-bits of 32768: not random"
    );
    crate::ensure_eq!(
        ctx.lwp().releases.load(Ordering::Relaxed),
        rel,
        "getrandom released the CPU"
    );
    let mut empty = [0u8; 0];
    crate::ensure_eq!(fill(ctx, &mut empty, 0), Ok(0), "empty buffer");
    Ok(())
}

/// Unknown flags and NULL out-pointers are errors.
pub fn bad_input(ctx: &Ctx) -> CaseResult {
    let mut b = [0u8; 8];
    crate::ensure_eq!(
        fill(ctx, &mut b, 0x10),
        Err(Errno::EINVAL.raw()),
        "unknown flag"
    );
    // SAFETY: NULL out-pointer must be refused, not written.
    let r = unsafe { (ctx.api.getrandom)(b.as_mut_ptr().cast(), 8, 0, core::ptr::null_mut()) };
    crate::ensure!(r != 0, "NULL retp must be an error");
    Ok(())
}
