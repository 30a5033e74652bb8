//! Files (contract 3.4): open flags and errors, positioned and NOSEEK
//! scatter/gather I/O, getfileinfo, syncfd flags, close. Skipped unless
//! the configuration names a scratch directory.

use super::super::{CaseResult, Ctx};
use super::SKIP;
use crate::abi::*;
use crate::Errno;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_int;
use core::sync::atomic::Ordering;

/// A NUL-terminated path below the scratch directory.
pub fn path(ctx: &Ctx, name: &str) -> Result<Vec<u8>, String> {
    let dir = ctx
        .cfg
        .scratch_dir
        .as_ref()
        .ok_or_else(|| String::from(SKIP))?;
    let mut p = alloc::format!("{dir}/{name}").into_bytes();
    p.push(0);
    Ok(p)
}

/// `rumpuser_open`, returning the fd or the errno.
pub fn open(ctx: &Ctx, p: &[u8], mode: c_int) -> Result<c_int, c_int> {
    let mut fd = -1;
    // SAFETY: NUL-terminated path and valid out-pointer.
    let r = unsafe { (ctx.api.open)(p.as_ptr().cast(), mode, &mut fd) };
    if r == 0 {
        Ok(fd)
    } else {
        Err(r)
    }
}

fn unique(ctx: &Ctx, stem: &str) -> Result<Vec<u8>, String> {
    path(ctx, &alloc::format!("{stem}-{}", ctx.now()))
}

/// Error numbers for missing files, existing files with EXCL, bad modes and fds.
pub fn open_errors(ctx: &Ctx) -> CaseResult {
    let missing = unique(ctx, "missing")?;
    crate::ensure_eq!(
        open(ctx, &missing, RUMPUSER_OPEN_RDONLY),
        Err(Errno::ENOENT.raw()),
        "open of a missing file"
    );
    let p = unique(ctx, "open")?;
    let fd = open(
        ctx,
        &p,
        RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL,
    )
    .map_err(|e| alloc::format!("create: {e}"))?;
    crate::ensure_eq!(
        open(
            ctx,
            &p,
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL
        ),
        Err(Errno::EEXIST.raw()),
        "CREATE|EXCL of an existing file"
    );
    crate::ensure_eq!(open(ctx, &p, 3), Err(Errno::EINVAL.raw()), "access mode 3");
    crate::ensure_eq!(
        open(ctx, &p, 0x100),
        Err(Errno::EINVAL.raw()),
        "unknown flag"
    );
    let fd2 = open(ctx, &p, RUMPUSER_OPEN_RDONLY | RUMPUSER_OPEN_BIO)
        .map_err(|e| alloc::format!("reopen: {e}"))?;
    // SAFETY: plain hypercalls.
    unsafe {
        crate::ensure_eq!((ctx.api.close)(fd2), 0, "close");
        crate::ensure_eq!((ctx.api.close)(fd), 0, "close");
        crate::ensure_eq!((ctx.api.close)(-1), Errno::EBADF.raw(), "close(-1)");
        let mut x = 0;
        crate::ensure!(
            (ctx.api.open)(core::ptr::null(), 0, &mut x) != 0,
            "open(NULL) must fail"
        );
    }
    Ok(())
}

/// One iovec over `b` (for `iovread` as well: the hypercall writes
/// through the pointer).
pub(super) fn iov(b: &[u8]) -> IoVec {
    IoVec {
        iov_base: b.as_ptr() as *mut _,
        iov_len: b.len(),
    }
}

/// Positioned writes and reads, NOSEEK, EOF, bad fds, and a CPU release.
pub fn iov_read_write(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let p = unique(ctx, "iov")?;
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE)
        .map_err(|e| alloc::format!("create: {e}"))?;
    let (a, b) = (b"hello ", b"world");
    let v = [iov(a), iov(b)];
    let mut n = 0usize;
    let r0 = ctx.lwp().releases.load(Ordering::Relaxed);
    // SAFETY: iovecs over live buffers.
    let r = unsafe { (api.iovwrite)(fd, v.as_ptr(), 2, 100, &mut n) };
    crate::ensure_eq!((r, n), (0, 11), "positioned iovwrite");
    crate::ensure!(
        ctx.lwp().releases.load(Ordering::Relaxed) > r0,
        "iovwrite did not release the CPU"
    );
    let mut out = [0u8; 11];
    let mut v = [IoVec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: 11,
    }];
    // SAFETY: iovec over a live buffer.
    let r = unsafe { (api.iovread)(fd, v.as_mut_ptr(), 1, 100, &mut n) };
    crate::ensure_eq!((r, n), (0, 11), "positioned iovread");
    crate::ensure_eq!(&out, b"hello world", "data read back");
    // NOSEEK uses and advances the position (still 0 on this fd).
    for chunk in [&b"ABC"[..], &b"DEF"[..]] {
        let v = [iov(chunk)];
        // SAFETY: iovec over a live buffer.
        let r = unsafe { (api.iovwrite)(fd, v.as_ptr(), 1, RUMPUSER_IOV_NOSEEK, &mut n) };
        crate::ensure_eq!((r, n), (0, 3), "NOSEEK write");
    }
    let mut six = [0u8; 6];
    let mut v = [IoVec {
        iov_base: six.as_mut_ptr().cast(),
        iov_len: 6,
    }];
    // SAFETY: iovec over a live buffer.
    let r = unsafe { (api.iovread)(fd, v.as_mut_ptr(), 1, 0, &mut n) };
    crate::ensure_eq!((r, n, &six), (0, 6, b"ABCDEF"), "NOSEEK writes read back");
    n = 77;
    // SAFETY: iovec over a live buffer; reading past EOF.
    let r = unsafe { (api.iovread)(fd, v.as_mut_ptr(), 1, 1 << 30, &mut n) };
    crate::ensure_eq!((r, n), (0, 0), "read past EOF");
    n = 77;
    // SAFETY: bad offset must be refused.
    let r = unsafe { (api.iovread)(fd, v.as_mut_ptr(), 1, -5, &mut n) };
    crate::ensure_eq!(
        (r, n),
        (Errno::EINVAL.raw(), 77),
        "negative offset (and *n untouched)"
    );
    // SAFETY: bad fds must be refused.
    let r = unsafe { (api.iovread)(-1, v.as_mut_ptr(), 1, 0, &mut n) };
    crate::ensure_eq!(r, Errno::EBADF.raw(), "iovread on fd -1");
    // SAFETY: as above.
    let r = unsafe { (api.iovread)(1_000_000, v.as_mut_ptr(), 1, 0, &mut n) };
    crate::ensure_eq!(r, Errno::EBADF.raw(), "iovread on a never-opened fd");
    // SAFETY: plain hypercall.
    unsafe { (api.close)(fd) };
    Ok(())
}

/// Types and sizes; missing files; NULL out-pointers.
pub fn getfileinfo(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let p = unique(ctx, "info")?;
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE)
        .map_err(|e| alloc::format!("create: {e}"))?;
    let data = [7u8; 1234];
    let v = [iov(&data)];
    let mut n = 0;
    // SAFETY: iovec over a live buffer.
    unsafe { (api.iovwrite)(fd, v.as_ptr(), 1, 0, &mut n) };
    let (mut size, mut ty) = (0u64, -1);
    // SAFETY: valid path and out-pointers.
    let r = unsafe { (api.getfileinfo)(p.as_ptr().cast(), &mut size, &mut ty) };
    crate::ensure_eq!((r, size, ty), (0, 1234, RUMPUSER_FT_REG), "regular file");
    let dir = path(ctx, ".")?;
    // SAFETY: valid path; NULL size pointer is allowed.
    let r = unsafe { (api.getfileinfo)(dir.as_ptr().cast(), core::ptr::null_mut(), &mut ty) };
    crate::ensure_eq!((r, ty), (0, RUMPUSER_FT_DIR), "directory");
    // SAFETY: valid path; both out-pointers NULL.
    let r = unsafe {
        (api.getfileinfo)(
            p.as_ptr().cast(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
        )
    };
    crate::ensure_eq!(r, 0, "NULL out-pointers");
    let missing = unique(ctx, "nope")?;
    // SAFETY: valid path.
    let r = unsafe { (api.getfileinfo)(missing.as_ptr().cast(), &mut size, &mut ty) };
    crate::ensure_eq!(r, Errno::ENOENT.raw(), "missing file");
    // SAFETY: plain hypercall.
    unsafe { (api.close)(fd) };
    Ok(())
}

/// syncfd flag validation and success paths; close of a bad fd.
pub fn syncfd_and_close(ctx: &Ctx) -> CaseResult {
    let api = ctx.api;
    let p = unique(ctx, "sync")?;
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE)
        .map_err(|e| alloc::format!("create: {e}"))?;
    // SAFETY: plain hypercalls.
    unsafe {
        crate::ensure_eq!(
            (api.syncfd)(fd, 0, 0, 0),
            Errno::EINVAL.raw(),
            "no READ/WRITE flag"
        );
        crate::ensure_eq!(
            (api.syncfd)(fd, RUMPUSER_SYNCFD_SYNC, 0, 0),
            Errno::EINVAL.raw(),
            "SYNC alone"
        );
        crate::ensure_eq!(
            (api.syncfd)(fd, 0x40 | RUMPUSER_SYNCFD_WRITE, 0, 0),
            Errno::EINVAL.raw(),
            "unknown flag"
        );
        crate::ensure_eq!((api.syncfd)(fd, RUMPUSER_SYNCFD_READ, 0, 0), 0, "READ");
        crate::ensure_eq!((api.syncfd)(fd, RUMPUSER_SYNCFD_WRITE, 0, 0), 0, "WRITE");
        crate::ensure_eq!(
            (api.syncfd)(
                fd,
                RUMPUSER_SYNCFD_BOTH | RUMPUSER_SYNCFD_BARRIER | RUMPUSER_SYNCFD_SYNC,
                0,
                4096
            ),
            0,
            "everything"
        );
        crate::ensure_eq!(
            (api.syncfd)(1_000_000, RUMPUSER_SYNCFD_WRITE, 0, 0),
            Errno::EBADF.raw(),
            "bad fd"
        );
        crate::ensure_eq!((api.close)(fd), 0, "close");
        crate::ensure_eq!(
            (api.close)(1_000_000),
            Errno::EBADF.raw(),
            "close of a never-opened fd"
        );
    }
    Ok(())
}
