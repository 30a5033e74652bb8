//! Files (rumpuser_file.c): host paths and host descriptors, positioned
//! scatter/gather I/O with `preadv`/`pwritev` (atomic per call, unlike the
//! reference's lseek + readv), device sizes via `BLKGETSIZE64`, and
//! `syncfd` that honours `SYNC` (the reference tests the wrong variable).

use core::ffi::{c_int, CStr};
use rumpuser_core::abi::IoVec;
use rumpuser_core::types::{AccessMode, FileType, OpenFlags, SyncFlags};
use rumpuser_core::{Errno, HyperResult};

use crate::sys::{last_error, retry_int, retry_isize};

/// Opens a host path; created files get mode 0644 like the reference.
pub fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
    let mut oflags = match flags.access {
        AccessMode::ReadOnly => libc::O_RDONLY,
        AccessMode::WriteOnly => libc::O_WRONLY,
        AccessMode::ReadWrite => libc::O_RDWR,
    };
    if flags.create {
        oflags |= libc::O_CREAT;
    }
    if flags.exclusive {
        oflags |= libc::O_EXCL;
    }
    // SAFETY: `name` is a valid C string; mode is passed for O_CREAT.
    let fd = retry_int(|| unsafe { libc::open(name.as_ptr(), oflags, 0o644 as libc::c_uint) })?;
    if flags.bio {
        crate::mapped::adopt(fd);
    }
    Ok(fd)
}

/// Closes a host descriptor (components also close sockets with it).
pub fn close(fd: c_int) -> HyperResult<()> {
    // Before the number can be reused.
    crate::mapped::release(fd);
    // SAFETY: closing a descriptor; Linux releases it even on EINTR, so no retry.
    if unsafe { libc::close(fd) } != 0 && crate::sys::host_errno() != libc::EINTR {
        return Err(last_error());
    }
    Ok(())
}

/// The size of the block device open on `fd` (`BLKGETSIZE64`).
pub(crate) fn block_device_size(fd: c_int) -> HyperResult<u64> {
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

fn device_size(name: &CStr, block: bool) -> HyperResult<u64> {
    // SAFETY: valid C string.
    let fd = retry_int(|| unsafe { libc::open(name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    let r = if block {
        block_device_size(fd)
    } else {
        // SAFETY: plain lseek on our own descriptor.
        let off = unsafe { libc::lseek(fd, 0, libc::SEEK_END) };
        if off >= 0 {
            Ok(off as u64)
        } else {
            Err(last_error())
        }
    };
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    match r {
        Ok(0) => Err(Errno::EOPNOTSUPP),
        other => other,
    }
}

/// Type and (if wanted) size of a host path.
pub fn getfileinfo(name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)> {
    // SAFETY: zeroed `stat` is a valid out-buffer.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: valid C string and out-pointer.
    retry_int(|| unsafe { libc::stat(name.as_ptr(), &mut st) })?;
    let ft = match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Dir,
        libc::S_IFREG => FileType::Regular,
        libc::S_IFBLK => FileType::Block,
        libc::S_IFCHR => FileType::Char,
        _ => FileType::Other,
    };
    let size = if !want_size {
        0
    } else {
        match ft {
            FileType::Block => device_size(name, true)?,
            FileType::Char => device_size(name, false)?,
            _ => st.st_size as u64,
        }
    };
    Ok((size, ft))
}

/// Scatter read; `None` offset uses and advances the descriptor's position.
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

/// Gather write; `None` offset uses and advances the descriptor's position.
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

/// `rumpuser_syncfd`: READ alone needs nothing; WRITE flushes data
/// (`fdatasync`); `SYNC` flushes data and metadata (`fsync`). Linux has no
/// range sync that reaches stable storage, so the range is advisory.
pub fn syncfd(fd: c_int, flags: SyncFlags, _start: u64, _len: u64) -> HyperResult<()> {
    if !flags.write && !flags.sync {
        // Reads are always synchronised with writes on a POSIX host; still
        // report a bad descriptor.
        // SAFETY: F_GETFD has no memory-safety preconditions.
        return retry_int(|| unsafe { libc::fcntl(fd, libc::F_GETFD) }).map(|_| ());
    }
    if flags.sync {
        // SAFETY: plain fsync on a descriptor.
        retry_int(|| unsafe { libc::fsync(fd) })?;
    } else {
        // SAFETY: plain fdatasync on a descriptor.
        retry_int(|| unsafe { libc::fdatasync(fd) })?;
    }
    Ok(())
}
