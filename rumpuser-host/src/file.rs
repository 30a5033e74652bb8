//! Files (rumpuser_file.c): host paths and host descriptors, device sizes
//! via `BLKGETSIZE64`, and `syncfd` that honours `SYNC` (the reference
//! tests the wrong variable). Positioned scatter/gather I/O into the
//! kernel's iovecs is `sys::fs::iovread`/`iovwrite` (`preadv`/`pwritev`,
//! atomic per call, unlike the reference's lseek + readv).

use core::ffi::{c_int, CStr};
use rumpuser_core::types::{AccessMode, FileType, OpenFlags, SyncFlags};
use rumpuser_core::{Errno, HyperResult};
use rustix::fs::{Mode, OFlags, SeekFrom};
use std::os::fd::IntoRawFd;

use crate::sys::{retry, with_fd};

/// Opens a host path; created files get mode 0644 like the reference.
pub fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
    let mut oflags = match flags.access {
        AccessMode::ReadOnly => OFlags::RDONLY,
        AccessMode::WriteOnly => OFlags::WRONLY,
        AccessMode::ReadWrite => OFlags::RDWR,
    };
    if flags.create {
        oflags |= OFlags::CREATE;
    }
    if flags.exclusive {
        oflags |= OFlags::EXCL;
    }
    let mode = Mode::from_raw_mode(0o644);
    // The kernel owns the descriptor from here on, by number.
    let fd = retry(|| rustix::fs::open(name, oflags, mode))?.into_raw_fd();
    if flags.bio {
        crate::mapped::adopt(fd);
    }
    Ok(fd)
}

/// Closes a host descriptor (components also close sockets with it).
pub fn close(fd: c_int) -> HyperResult<()> {
    // Before the number can be reused.
    crate::mapped::release(fd);
    crate::sys::fs::close(fd)
}

fn device_size(name: &CStr, block: bool) -> HyperResult<u64> {
    let fd = retry(|| rustix::fs::open(name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()))?;
    let r = if block {
        crate::sys::fs::block_device_size(std::os::fd::AsRawFd::as_raw_fd(&fd))
    } else {
        rustix::fs::seek(&fd, SeekFrom::End(0)).map_err(crate::sys::errno)
    };
    match r {
        Ok(0) => Err(Errno::EOPNOTSUPP),
        other => other,
    }
}

/// Type and (if wanted) size of a host path.
pub fn getfileinfo(name: &CStr, want_size: bool) -> HyperResult<(u64, FileType)> {
    let st = retry(|| rustix::fs::stat(name))?;
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

/// `rumpuser_syncfd`: READ alone needs nothing; WRITE flushes data
/// (`fdatasync`); `SYNC` flushes data and metadata (`fsync`). Linux has no
/// range sync that reaches stable storage, so the range is advisory.
pub fn syncfd(fd: c_int, flags: SyncFlags, _start: u64, _len: u64) -> HyperResult<()> {
    if !flags.write && !flags.sync {
        // Reads are always synchronised with writes on a POSIX host; still
        // report a bad descriptor.
        return retry(|| with_fd(fd, |fd| rustix::io::fcntl_getfd(fd))).map(|_| ());
    }
    if flags.sync {
        retry(|| with_fd(fd, |fd| rustix::fs::fsync(fd)))
    } else {
        retry(|| with_fd(fd, |fd| rustix::fs::fdatasync(fd)))
    }
}
