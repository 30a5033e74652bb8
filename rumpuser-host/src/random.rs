//! Randomness (rumpuser_random.c) from the kernel's `getrandom(2)`: no
//! 32-byte cap, `NOWAIT` maps to `GRND_NONBLOCK`, `EINTR` is retried, and a
//! call never succeeds with zero bytes.

use rumpuser_core::types::RandomFlags;
use rumpuser_core::{Errno, HyperResult};

/// Checks at init that the host has the system call; the contract lets
/// init fail with the errno if the entropy source is unusable.
pub fn init() -> HyperResult<()> {
    let mut b = [0u8; 1];
    fill(
        &mut b,
        RandomFlags {
            hard: false,
            nowait: false,
        },
    )
    .map(|_| ())
}

/// Fills a prefix of `buf` with random bytes.
pub fn fill(buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
    let gflags = if flags.nowait { libc::GRND_NONBLOCK } else { 0 };
    loop {
        // SAFETY: writing at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), gflags) };
        if n > 0 {
            return Ok(n as usize);
        }
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        match crate::sys::host_errno() {
            libc::EINTR => continue,
            e => return Err(Errno::from_linux(e)),
        }
    }
}
