//! `rumpuser_getparam` (contract 3.2).

use super::super::{CaseResult, Ctx};
use crate::Errno;
use core::ffi::{c_char, c_int, c_void};

fn get(ctx: &Ctx, name: &core::ffi::CStr, buf: &mut [u8]) -> c_int {
    // SAFETY: valid name and buffer.
    unsafe {
        (ctx.api.getparam)(
            name.as_ptr() as *const c_char,
            buf.as_mut_ptr() as *mut c_void,
            buf.len(),
        )
    }
}

fn value(buf: &[u8]) -> &str {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    core::str::from_utf8(&buf[..end]).unwrap_or("<non-utf8>")
}

/// The two mandatory parameters exist and are well-formed.
pub fn mandatory(ctx: &Ctx) -> CaseResult {
    let mut b = [0xffu8; 256];
    crate::ensure_eq!(get(ctx, c"_RUMPUSER_NCPU", &mut b), 0, "_RUMPUSER_NCPU");
    let n: i64 = value(&b)
        .parse()
        .map_err(|_| alloc::format!("NCPU {:?} is not a number", value(&b)))?;
    crate::ensure!((1..=256).contains(&n), "NCPU {n} out of 1..=256");
    let mut b = [0xffu8; 256];
    crate::ensure_eq!(
        get(ctx, c"_RUMPUSER_HOSTNAME", &mut b),
        0,
        "_RUMPUSER_HOSTNAME"
    );
    crate::ensure!(
        !value(&b).is_empty() && b.contains(&0),
        "hostname must be a non-empty C string"
    );
    Ok(())
}

/// Unknown names, reserved names and small buffers.
pub fn errors(ctx: &Ctx) -> CaseResult {
    let mut b = [0u8; 64];
    let r = get(ctx, c"RUMPUSER_KIT_SURELY_UNSET_42", &mut b);
    crate::ensure_eq!(r, Errno::ENOENT.raw(), "unset parameter");
    let r = get(ctx, c"_RUMPUSER_NO_SUCH", &mut b);
    crate::ensure_eq!(r, Errno::EINVAL.raw(), "unknown reserved name");
    let mut big = [0u8; 256];
    get(ctx, c"_RUMPUSER_HOSTNAME", &mut big);
    let hlen = value(&big).len();
    if hlen >= 1 {
        let mut small = [0xffu8; 1];
        let r = get(ctx, c"_RUMPUSER_HOSTNAME", &mut small[..hlen.min(1)]);
        crate::ensure_eq!(r, Errno::ERANGE.raw(), "hostname into a 1-byte buffer");
    }
    // SAFETY: NULL buffer with a length: the implementation must refuse it.
    let r = unsafe { (ctx.api.getparam)(c"_RUMPUSER_NCPU".as_ptr(), core::ptr::null_mut(), 16) };
    crate::ensure!(r != 0, "NULL buffer must be an error");
    // SAFETY: as above, zero-length buffer.
    let r = unsafe { (ctx.api.getparam)(c"_RUMPUSER_NCPU".as_ptr(), b.as_mut_ptr().cast(), 0) };
    crate::ensure!(r != 0, "zero-length buffer must be an error");
    Ok(())
}
