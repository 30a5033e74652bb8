//! Per-host-thread curlwp (rumpuser_pth.c's pthread key, as a native TLS
//! slot so `rumpuser_curlwp` is one `mov` from `%fs`).

use core::cell::Cell;
use core::ptr;
use rumpuser_core::abi::Lwp;

std::thread_local! {
    static CURLWP: Cell<*mut Lwp> = const { Cell::new(ptr::null_mut()) };
}

/// The calling thread's lwp.
#[inline]
pub fn get() -> *mut Lwp {
    CURLWP.with(|c| c.get())
}

/// Binds `l` to the calling thread.
#[inline]
pub fn set(l: *mut Lwp) {
    CURLWP.with(|c| c.set(l))
}
