//! `poll`/`ppoll` over `pollfd` arrays of descriptors passed by number
//! (the syscall proxy's connections, a green thread's watched sockets).

use core::ffi::c_int;

/// `poll(2)` on `fds`; the raw result (-1 with errno set on failure).
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> c_int {
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}

/// `ppoll(2)` on `fds` with no signal mask change, waiting up to `timeout`
/// (`None`: no limit); the raw result (-1 with errno set on failure).
pub fn ppoll(fds: &mut [libc::pollfd], timeout: Option<&libc::timespec>) -> c_int {
    let tsp = timeout.map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds; the timespec is
    // NULL or borrowed for the call.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            tsp,
            core::ptr::null(),
        )
    }
}
