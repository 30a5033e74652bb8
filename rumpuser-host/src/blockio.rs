//! One block transfer on a host descriptor: `pread`/`pwrite` until done,
//! EOF or an error, then `fdatasync` for `BIO_SYNC` writes. Shared by the
//! posix worker pool and the green flavour's host workers.

use rumpuser_core::types::BioOp;
use rumpuser_core::Errno;

/// Performs one transfer synchronously on the calling thread.
pub fn transfer(fd: i32, op: BioOp, data: *mut u8, len: usize, off: u64) -> Result<usize, Errno> {
    let mut done = 0usize;
    while done < len {
        let p = data.wrapping_add(done);
        let o = (off + done as u64) as libc::off_t;
        let n = match op {
            BioOp::Read => crate::sys::retry_isize(|| {
                // SAFETY: the kernel's buffer is valid for `len` bytes until
                // completion and belongs to this request alone.
                unsafe { libc::pread(fd, p.cast(), len - done, o) }
            }),
            BioOp::Write { .. } => crate::sys::retry_isize(|| {
                // SAFETY: as above.
                unsafe { libc::pwrite(fd, p.cast(), len - done, o) }
            }),
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if let BioOp::Write { sync: true } = op {
        // SAFETY: plain fdatasync on the request's descriptor.
        crate::sys::retry_int(|| unsafe { libc::fdatasync(fd) })?;
    }
    Ok(done)
}
