//! The kernel entries the server makes, each one complete kernel entry
//! (`hyp_schedule; upcall; hyp_unschedule`) from a thread holding no CPU,
//! as rumpuser_sp.c does. Between entries the host thread keeps whatever
//! curlwp the last one left (the kernel's rules, contract 2.2).

use super::conn::LwpPtr;
use core::ffi::{c_char, c_int, c_long, c_void};
use rumpuser_core::sched::{self, entered};

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
