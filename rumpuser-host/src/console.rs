//! Console output (rumpuser.c): `putchar` goes through C stdio like the
//! reference, so kernel output interleaves correctly with the application's
//! own `printf`; `dprintf` writes straight to stderr, unbuffered, so it is
//! usable from any context including a dying process.

/// One byte of kernel console output on stdout.
pub fn putchar(c: u8) {
    // SAFETY: C stdio `putchar` is thread-safe and takes any int.
    unsafe { libc::putchar(c as libc::c_int) };
}

/// Debug output on stderr; short writes and EINTR are retried.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid buffer of the given length.
        let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
        } else if n < 0 && crate::sys::host_errno() == libc::EINTR {
            continue;
        } else {
            return;
        }
    }
}
