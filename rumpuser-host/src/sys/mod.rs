//! The host calls of this crate that need `unsafe`, as small wrappers:
//! safe functions where the call cannot break memory safety whatever the
//! arguments, `unsafe fn`s where the caller has to promise something about
//! memory (a buffer the kernel handed over, a block to free). Calls that
//! `rustix` makes safe (descriptors it owns, byte slices) are made from the
//! modules themselves. The rest of the crate is safe code (see the
//! allow-list in `tests/tidy.rs`).
//!
//! * this module: `errno`, host-to-NetBSD errors, `EINTR` retries, and
//!   descriptors passed by number ([`with_fd`]);
//! * [`dl`]: the loaded objects and their symbol tables read in place,
//!   and the kernel's `rumpuser_dl_bootstrap` callbacks;
//! * [`fs`]: closing a descriptor by number, the block device size,
//!   `preadv`/`pwritev` into the kernel's iovecs;
//! * [`mem`]: the C allocator and anonymous mappings;
//! * [`net`]: `poll`/`ppoll` on descriptors passed by number;
//! * [`proc`]: process-wide calls: stdio, signals, exit, `fork`,
//!   `pthread_atfork`, timer slack, host parameters.

#[cfg(target_os = "linux")]
pub mod dl;
pub mod fs;
pub mod mem;
pub mod net;
pub mod proc;

use core::ffi::c_int;
use rumpuser_core::Errno;
use std::os::fd::{BorrowedFd, RawFd};

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

/// A `rustix` error in NetBSD numbering.
#[inline]
pub fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_linux(e.raw_os_error())
}

/// Runs a `rustix` call again while it fails with `EINTR`; other errors
/// become NetBSD errnos.
#[inline]
pub fn retry<R>(mut f: impl FnMut() -> rustix::io::Result<R>) -> Result<R, Errno> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(errno),
        }
    }
}

/// Calls `f` with descriptor number `fd` borrowed for the call: a
/// descriptor the kernel passed in (`rumpuser_iovread`, `rumpuser_close`,
/// …) or one this crate handed out by number. A negative number fails
/// with `EBADF` without a call; a number that is not open makes the call
/// fail with `EBADF`, as the C library's would.
#[inline]
pub fn with_fd<R>(
    fd: RawFd,
    f: impl FnOnce(BorrowedFd<'_>) -> rustix::io::Result<R>,
) -> rustix::io::Result<R> {
    if fd < 0 {
        return Err(rustix::io::Errno::BADF);
    }
    // SAFETY: not -1 (which `BorrowedFd` cannot hold); the borrow lasts
    // only for `f`, during which the caller keeps the number open (an
    // `OwnedFd` of ours) or the kernel does (its descriptors stay open
    // across the hypercall that names them). A stale number is the
    // caller's bug, with the C library's outcome: `EBADF` or the
    // descriptor that now has it.
    f(unsafe { BorrowedFd::borrow_raw(fd) })
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
