//! Block I/O (contract 3.5): completion exactly once, with a CPU and an lwp
//! held by the completing thread, NetBSD errno values, short reads, and
//! thousands of requests in flight.

use super::super::model::model;
use super::super::{CaseResult, Ctx, KitApi};
use super::file::{iov, open, path};
use crate::abi::*;
use crate::Errno;
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};

/// Completion record of one request: what its `biodone` reported, and
/// whether the completing thread held a CPU and an lwp. Public so that a
/// porter's own block I/O tests (and this workspace's) record completions
/// the way the kit does.
#[derive(Default)]
pub struct Done {
    calls: AtomicU32,
    bytes: AtomicUsize,
    error: AtomicI32,
    bad_context: AtomicU32,
}

unsafe extern "C" fn biodone(arg: *mut c_void, bytes: usize, error: c_int) {
    // SAFETY: `arg` is a `Done` kept alive by its owner until completion
    // (the contract of `Done::start`).
    let d = unsafe { &*(arg as *const Done) };
    match model().current() {
        Some(l) if l.holds_cpu.load(Ordering::Acquire) => {}
        _ => {
            d.bad_context.fetch_add(1, Ordering::Relaxed);
        }
    }
    d.bytes.store(bytes, Ordering::Relaxed);
    d.error.store(error, Ordering::Relaxed);
    d.calls.fetch_add(1, Ordering::Release);
}

impl Done {
    /// Starts `rumpuser_bio(fd, op, data, len, off)` with this record as
    /// its completion.
    ///
    /// # Safety
    ///
    /// `data` is valid for `len` bytes, and both it and `self` stay alive
    /// and in place until [`calls`](Self::calls) is nonzero.
    pub unsafe fn start(
        &self,
        api: KitApi,
        fd: c_int,
        op: c_int,
        data: *mut u8,
        len: usize,
        off: i64,
    ) {
        // SAFETY: the caller keeps `data` and `self` alive (see above).
        unsafe {
            (api.bio)(
                fd,
                op,
                data.cast(),
                len,
                off,
                Some(biodone),
                self as *const Done as *mut c_void,
            )
        };
    }

    /// How many times `biodone` was called (the contract: exactly once).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Acquire)
    }

    /// `(bytes, error)` of the last `biodone`.
    pub fn result(&self) -> (usize, i32) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.error.load(Ordering::Relaxed),
        )
    }

    /// How many `biodone` calls came from a thread without a CPU or lwp.
    pub fn without_cpu(&self) -> u32 {
        self.bad_context.load(Ordering::Relaxed)
    }
}

fn bio(ctx: &Ctx, fd: c_int, op: c_int, buf: &mut [u8], off: i64, d: &Done) {
    // SAFETY: the buffer and `d` outlive the request (the case waits).
    unsafe { d.start(ctx.api, fd, op, buf.as_mut_ptr(), buf.len(), off) };
}

fn wait(ctx: &Ctx, d: &Done) -> Result<(usize, i32), alloc::string::String> {
    crate::ensure!(
        ctx.wait_for(10_000, || d.calls() > 0),
        "biodone never called"
    );
    ctx.sleep_ns(1_000_000);
    crate::ensure_eq!(d.calls(), 1, "biodone calls");
    crate::ensure_eq!(d.without_cpu(), 0, "biodone called without a CPU or lwp");
    Ok(d.result())
}

/// Writes all of `b` at `off` with `rumpuser_iovwrite`.
fn iovwrite_all(ctx: &Ctx, fd: c_int, b: &[u8], off: usize) -> CaseResult {
    let v = [iov(b)];
    let mut n = 0;
    // SAFETY: one iovec over a live buffer the hypercall only reads.
    let r = unsafe { (ctx.api.iovwrite)(fd, v.as_ptr(), 1, off as i64, &mut n) };
    crate::ensure_eq!(
        (r, n),
        (0, b.len()),
        "iovwrite of {} bytes at {off}",
        b.len()
    );
    Ok(())
}

/// An image of `blocks` blocks of `BS` bytes, block `i` filled with `i`.
fn block_image(blocks: usize, bs: usize) -> Vec<u8> {
    (0..blocks * bs).map(|i| (i / bs) as u8).collect()
}

/// A SYNC write, read back; a read past the end is short, not an error.
pub fn write_read_back(ctx: &Ctx) -> CaseResult {
    let p = path(ctx, &alloc::format!("bio-{}", ctx.now()))?;
    let fd = open(
        ctx,
        &p,
        RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_BIO,
    )
    .map_err(|e| alloc::format!("open: {e}"))?;
    let mut w: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
    let d = Done::default();
    bio(
        ctx,
        fd,
        RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
        &mut w,
        4096,
        &d,
    );
    crate::ensure!(
        ctx.lwp().holds_cpu.load(Ordering::Relaxed),
        "bio returned without the CPU"
    );
    crate::ensure_eq!(wait(ctx, &d)?, (65536, 0), "write completion");
    let mut r = vec![0u8; 65536];
    let d = Done::default();
    bio(ctx, fd, RUMPUSER_BIO_READ, &mut r, 4096, &d);
    crate::ensure_eq!(wait(ctx, &d)?, (65536, 0), "read completion");
    crate::ensure!(r == w, "data read back differs");
    let mut tail = vec![0u8; 8192];
    let d = Done::default();
    bio(ctx, fd, RUMPUSER_BIO_READ, &mut tail, 65536, &d);
    crate::ensure_eq!(wait(ctx, &d)?, (4096, 0), "read across the end of the file");
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    Ok(())
}

/// On an image that exists before it is opened (as a disk image does), a
/// read sees at once what was written through the same descriptor, by
/// `rumpuser_bio` (with and without `SYNC`) and by `rumpuser_iovwrite`: an
/// implementation that serves reads from a cache or a mapping must keep
/// it coherent.
pub fn reads_see_writes_at_once(ctx: &Ctx) -> CaseResult {
    const BS: usize = 4096;
    let p = path(ctx, &alloc::format!("bio-image-{}", ctx.now()))?;
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE)
        .map_err(|e| alloc::format!("create: {e}"))?;
    iovwrite_all(ctx, fd, &block_image(16, BS), 0)?;
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO)
        .map_err(|e| alloc::format!("open: {e}"))?;
    let read = |block: usize| -> Result<Vec<u8>, alloc::string::String> {
        let mut b = vec![0xeeu8; BS];
        let d = Done::default();
        bio(ctx, fd, RUMPUSER_BIO_READ, &mut b, (block * BS) as i64, &d);
        crate::ensure_eq!(wait(ctx, &d)?, (BS, 0), "read of block {block}");
        Ok(b)
    };
    for block in [0, 7, 15] {
        crate::ensure!(
            read(block)?.iter().all(|&x| x == block as u8),
            "block {block} of the image reads wrong"
        );
    }
    for (block, op, fill) in [
        (3, RUMPUSER_BIO_WRITE, 0xa3u8),
        (5, RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC, 0xa5),
    ] {
        // Read first, so a cache or mapping holds the old contents.
        crate::ensure!(read(block)?[0] == block as u8, "block {block} before");
        let mut w = vec![fill; BS];
        let d = Done::default();
        bio(ctx, fd, op, &mut w, (block * BS) as i64, &d);
        crate::ensure_eq!(wait(ctx, &d)?, (BS, 0), "write of block {block}");
        crate::ensure!(
            read(block)?.iter().all(|&x| x == fill),
            "block {block} read back stale after a bio write (op {op:#x})"
        );
    }
    crate::ensure!(read(9)?[0] == 9, "block 9 before");
    iovwrite_all(ctx, fd, &[0xa9u8; BS], 9 * BS)?;
    crate::ensure!(
        read(9)?.iter().all(|&x| x == 0xa9),
        "block 9 read back stale after an iovwrite"
    );
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    Ok(())
}

/// Bad fds, bad ops and bad offsets complete with NetBSD errno values.
pub fn errors_reach_biodone(ctx: &Ctx) -> CaseResult {
    if ctx.cfg.scratch_dir.is_none() {
        return Err(super::SKIP.into());
    }
    let mut buf = vec![0u8; 512];
    let d = Done::default();
    bio(ctx, 1_000_000, RUMPUSER_BIO_READ, &mut buf, 0, &d);
    crate::ensure_eq!(
        wait(ctx, &d)?,
        (0, Errno::EBADF.raw()),
        "read from a bad fd"
    );
    let d = Done::default();
    bio(
        ctx,
        0,
        RUMPUSER_BIO_READ | RUMPUSER_BIO_WRITE,
        &mut buf,
        0,
        &d,
    );
    crate::ensure_eq!(wait(ctx, &d)?, (0, Errno::EINVAL.raw()), "READ|WRITE op");
    let p = path(ctx, &alloc::format!("bio-ro-{}", ctx.now()))?;
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE)
        .map_err(|e| alloc::format!("open: {e}"))?;
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    let fd = open(ctx, &p, RUMPUSER_OPEN_RDONLY).map_err(|e| alloc::format!("open: {e}"))?;
    let d = Done::default();
    bio(ctx, fd, RUMPUSER_BIO_WRITE, &mut buf, 0, &d);
    crate::ensure_eq!(
        wait(ctx, &d)?,
        (0, Errno::EBADF.raw()),
        "write to a read-only fd"
    );
    let d = Done::default();
    bio(ctx, fd, RUMPUSER_BIO_READ, &mut buf, -512, &d);
    crate::ensure_eq!(wait(ctx, &d)?, (0, Errno::EINVAL.raw()), "negative offset");
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    Ok(())
}

/// 2000 concurrent 4 KiB reads each complete exactly once with the right data.
pub fn many_in_flight_exactly_once(ctx: &Ctx) -> CaseResult {
    const N: usize = 2000;
    const BS: usize = 4096;
    let p = path(ctx, &alloc::format!("bio-many-{}", ctx.now()))?;
    let fd = open(
        ctx,
        &p,
        RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_BIO,
    )
    .map_err(|e| alloc::format!("open: {e}"))?;
    let blocks = 256usize;
    iovwrite_all(ctx, fd, &block_image(blocks, BS), 0)?;
    let dones: Box<[Done]> = (0..N).map(|_| Done::default()).collect();
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|_| vec![0xeeu8; BS]).collect();
    for i in 0..N {
        let off = ((i * 37) % blocks * BS) as i64;
        bio(ctx, fd, RUMPUSER_BIO_READ, &mut bufs[i], off, &dones[i]);
    }
    let all = || dones.iter().all(|d| d.calls() > 0);
    crate::ensure!(ctx.wait_for(30_000, all), "not every request completed");
    ctx.sleep_ns(2_000_000);
    for i in 0..N {
        let d = &dones[i];
        crate::ensure_eq!(d.calls(), 1, "request {i} completions");
        crate::ensure_eq!(d.result(), (BS, 0), "request {i} result");
        crate::ensure_eq!(d.without_cpu(), 0, "request {i} completed without a CPU");
        let want = ((i * 37) % blocks) as u8;
        crate::ensure!(
            bufs[i].iter().all(|&b| b == want),
            "request {i} read wrong data"
        );
    }
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
    Ok(())
}
