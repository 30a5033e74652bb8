//! Console output (rumpuser.c): `putchar` goes through C stdio like the
//! reference, so kernel output interleaves correctly with the application's
//! own `printf`; `dprintf` writes straight to stderr, unbuffered, so it is
//! usable from any context including a dying process.

/// One byte of kernel console output on stdout.
pub fn putchar(c: u8) {
    crate::sys::proc::putchar(c);
}

/// Debug output on stderr; short writes and EINTR are retried.
pub fn write_stderr(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match crate::sys::with_fd(2, |fd| rustix::io::write(fd, bytes)) {
            Ok(n) if n > 0 => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => continue,
            _ => return,
        }
    }
}
