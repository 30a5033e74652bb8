//! File calls that `rustix` cannot make safe: closing a descriptor the
//! kernel gives back by number, the block device size ioctl, and
//! scatter/gather I/O into the kernel's iovecs.

use core::ffi::c_int;
use rumpuser_core::abi::IoVec;
use rumpuser_core::HyperResult;

use super::{host_errno, last_error, retry_isize};

/// Closes descriptor number `fd`, which the kernel owned until now;
/// `EINTR` counts as closed (Linux releases the number anyway).
pub fn close(fd: c_int) -> HyperResult<()> {
    // SAFETY: closing a number cannot touch memory; the kernel gives the
    // descriptor up with this call (contract: `rumpuser_close`).
    if unsafe { libc::close(fd) } != 0 && host_errno() != libc::EINTR {
        return Err(last_error());
    }
    Ok(())
}

/// The size of the block device open on `fd` (`BLKGETSIZE64`).
pub fn block_device_size(fd: c_int) -> HyperResult<u64> {
    // BLKGETSIZE64 = _IOR(0x12, 114, size_t)
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: the ioctl writes one u64 into `size`.
    if unsafe { libc::ioctl(fd, BLKGETSIZE64 as _, &mut size as *mut u64) } == 0 {
        Ok(size)
    } else {
        Err(last_error())
    }
}

/// Scatter read into the kernel's iovecs; `None` offset uses and advances
/// the descriptor's position.
///
/// # Safety
/// Every iovec describes writable memory.
pub unsafe fn iovread(fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
    let v = iov.as_ptr() as *const libc::iovec;
    let n = iov.len() as c_int;
    match off {
        // SAFETY: `IoVec` has the layout of `struct iovec` (checked in the
        // core); the buffers are the caller's.
        Some(o) => retry_isize(|| unsafe { libc::preadv(fd, v, n, o as libc::off_t) }),
        // SAFETY: as above.
        None => retry_isize(|| unsafe { libc::readv(fd, v, n) }),
    }
}

/// Gather write from the kernel's iovecs; `None` offset uses and advances
/// the descriptor's position.
///
/// # Safety
/// Every iovec describes readable memory.
pub unsafe fn iovwrite(fd: c_int, iov: &[IoVec], off: Option<u64>) -> HyperResult<usize> {
    let v = iov.as_ptr() as *const libc::iovec;
    let n = iov.len() as c_int;
    match off {
        // SAFETY: see `iovread`.
        Some(o) => retry_isize(|| unsafe { libc::pwritev(fd, v, n, o as libc::off_t) }),
        // SAFETY: see `iovread`.
        None => retry_isize(|| unsafe { libc::writev(fd, v, n) }),
    }
}
