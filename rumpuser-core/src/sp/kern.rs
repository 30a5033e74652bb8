//! The kernel entries a syscall proxy server makes, each one complete
//! kernel entry (`hyp_schedule; upcall; hyp_unschedule`) from a thread
//! holding no virtual CPU, as rumpuser_sp.c does. Between entries the
//! calling thread keeps whatever curlwp the last one left (contract 2.2).
//!
//! Every flavour's server (host threads or green threads) makes exactly
//! these calls; the scheduling rules live in [`crate::sched`].

use crate::abi::Lwp;
use crate::sched::{self, entered};
use core::ffi::{c_char, c_int, c_long, c_void};

/// A kernel lwp pointer: an opaque token that is only handed back to the
/// kernel, never dereferenced by the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwpPtr(pub *mut Lwp);

// SAFETY: the pointer is an opaque kernel token; the hypervisor never
// dereferences it, and the kernel allows switching to an lwp from any
// thread (one at a time, which the server's ownership rules ensure).
unsafe impl Send for LwpPtr {}

impl LwpPtr {
    /// No lwp.
    pub const NULL: LwpPtr = LwpPtr(core::ptr::null_mut());

    /// True for [`LwpPtr::NULL`].
    pub fn is_null(self) -> bool {
        self.0.is_null()
    }
}

/// Makes `l` the calling thread's lwp (NULL: none after this entry).
pub fn switch(l: LwpPtr) {
    entered(|| sched::lwproc_switch(l.0))
}

/// Releases the current lwp (freed when this entry ends).
pub fn release() {
    entered(sched::lwproc_release)
}

/// Tells the other lwps of the current process to exit.
pub fn lwpexit() {
    entered(sched::lwpexit)
}

/// The current lwp.
pub fn curlwp() -> LwpPtr {
    LwpPtr(entered(sched::lwproc_curlwp))
}

/// The current process's pid.
pub fn getpid() -> i32 {
    entered(sched::getpid)
}

/// Forks a remote process with sysproxy cookie `cookie` and switches to it.
pub fn rfork(cookie: *mut c_void, flags: c_int, comm: *const c_char) -> c_int {
    entered(|| sched::lwproc_rfork(cookie, flags, comm))
}

/// A new lwp in process `pid`, made current.
pub fn newlwp(pid: i32) -> c_int {
    entered(|| sched::lwproc_newlwp(pid))
}

/// Completes an exec of the current process.
pub fn execnotify(comm: *const c_char) {
    entered(|| sched::execnotify(comm))
}

/// Runs a system call as the current lwp.
pub fn syscall(num: c_int, args: *mut c_void, rv: &mut [c_long; 2]) -> c_int {
    entered(|| sched::syscall(num, args, rv))
}
