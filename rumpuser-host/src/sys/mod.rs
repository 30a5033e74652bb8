//! Small wrappers over libc calls shared by the modules: errno access and
//! host-to-NetBSD error conversion. The only place that touches `errno`.

use core::ffi::c_int;
use rumpuser_core::Errno;

/// The calling thread's host errno.
#[inline]
pub fn host_errno() -> c_int {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// The calling thread's host errno, in NetBSD numbering.
#[inline]
pub fn last_error() -> Errno {
    Errno::from_linux(host_errno())
}

/// Sets the calling thread's errno (`rumpuser_seterrno` stores NetBSD values untranslated).
#[inline]
pub fn set_errno(e: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

/// Retries a libc call returning a negative value on `EINTR`; other errors
/// become NetBSD errnos.
#[inline]
pub fn retry_isize(mut f: impl FnMut() -> isize) -> Result<usize, Errno> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        if host_errno() != libc::EINTR {
            return Err(last_error());
        }
    }
}

/// [`retry_isize`] for calls returning `int`.
#[inline]
pub fn retry_int(mut f: impl FnMut() -> c_int) -> Result<c_int, Errno> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r);
        }
        if host_errno() != libc::EINTR {
            return Err(last_error());
        }
    }
}
