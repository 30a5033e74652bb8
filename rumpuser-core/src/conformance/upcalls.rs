//! The kernel side of `struct rumpuser_hyperup` as a trait: one
//! configurable upcall table for every model kernel the tests and benches
//! hand to `rumpuser_init`.
//!
//! A model kernel is a type implementing [`Kernel`]; each method is one
//! upcall, and a method left out keeps the default of a kernel that has no
//! processes and holds nothing (see each method). [`Kernel::TABLE`] (or
//! [`table`] in a `static`) is the C table, whose entries are trampolines
//! that turn the raw arguments into the safe ones the methods take:
//!
//! ```ignore
//! struct Quiet;
//! impl Kernel for Quiet {
//!     fn getpid() -> i32 { 2 }
//! }
//! let e = Hyp::new(api).init::<Quiet>();
//! ```
//!
//! Upcalls are associated functions, not methods: the hypervisor calls
//! them with no context, so a kernel keeps its state in statics (one type
//! per instance, e.g. a const generic index, where several libraries are
//! loaded side by side). The upcalls that receive a pointer the kernel
//! will use (an interlock mutex, an lwp, a syscall proxy cookie or
//! argument block) are `unsafe fn`: only the hypervisor, which passes what
//! the contract says, calls them.

use crate::abi::{Hyperup, Lwp};
use crate::Errno;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use core::ptr;

/// A model kernel: the upcalls a hypervisor makes (contract 4).
pub trait Kernel: Sized + 'static {
    /// `hyp_schedule` (`rump_schedule`): the calling thread takes a
    /// virtual CPU. Default: nothing.
    fn schedule() {}

    /// `hyp_unschedule` (`rump_unschedule`): the calling thread gives its
    /// CPU back. Default: nothing.
    fn unschedule() {}

    /// `hyp_backend_unschedule(nlocks, &count, interlock)`: the hypervisor
    /// is about to block; the kernel releases the CPU and stores how many
    /// biglock holds it dropped in `count` (`None`: the hypervisor passed
    /// NULL). Default: stores 0.
    ///
    /// # Safety
    /// `interlock` is NULL or a live mutex of the library that calls.
    unsafe fn backend_unschedule(nlocks: c_int, count: Option<&mut c_int>, interlock: *mut c_void) {
        let _ = (nlocks, interlock);
        if let Some(c) = count {
            *c = 0;
        }
    }

    /// `hyp_backend_schedule(nlocks, interlock)`: the hypervisor retakes
    /// the CPU after blocking. Default: nothing.
    ///
    /// # Safety
    /// As for [`Kernel::backend_unschedule`].
    unsafe fn backend_schedule(nlocks: c_int, interlock: *mut c_void) {
        let _ = (nlocks, interlock);
    }

    /// `hyp_lwproc_switch(l)`. Default: nothing.
    ///
    /// # Safety
    /// `l` is NULL or an lwp this kernel made (the hypervisor only passes
    /// back lwps it got from the kernel).
    unsafe fn lwproc_switch(l: *mut Lwp) {
        let _ = l;
    }

    /// `hyp_lwproc_release()`. Default: nothing.
    fn lwproc_release() {}

    /// `hyp_lwproc_rfork(cookie, flags, comm)` (syscall proxy: a new
    /// process for a client; `comm` is `None` for NULL). Default: `ENXIO`.
    ///
    /// # Safety
    /// `cookie` is the syscall proxy's cookie for the client, valid for
    /// `rumpuser_sp_*` calls until the process is gone.
    unsafe fn lwproc_rfork(cookie: *mut c_void, flags: c_int, comm: Option<&CStr>) -> c_int {
        let _ = (cookie, flags, comm);
        Errno::ENXIO.raw()
    }

    /// `hyp_lwproc_newlwp(pid)`. Default: `ENXIO` (no processes).
    fn lwproc_newlwp(pid: i32) -> c_int {
        let _ = pid;
        Errno::ENXIO.raw()
    }

    /// `hyp_lwproc_curlwp()`. Default: NULL.
    fn lwproc_curlwp() -> *mut Lwp {
        ptr::null_mut()
    }

    /// `hyp_syscall(num, args, retval)` (syscall proxy): `args` points to
    /// the argument slots the server passes. Default: `ENOSYS`.
    ///
    /// # Safety
    /// `args` points to the system call's argument block as the syscall
    /// proxy server passes it.
    unsafe fn syscall(num: c_int, args: *mut c_void, retval: &mut [c_long; 2]) -> c_int {
        let _ = (num, args, retval);
        Errno::ENOSYS.raw()
    }

    /// `hyp_lwpexit()` (syscall proxy). Default: nothing.
    fn lwpexit() {}

    /// `hyp_execnotify(comm)` (syscall proxy; `None` for NULL). Default:
    /// nothing.
    fn execnotify(comm: Option<&CStr>) {
        let _ = comm;
    }

    /// `hyp_getpid()` (syscall proxy). Default: 0.
    fn getpid() -> i32 {
        0
    }

    /// This kernel's upcall table, for `rumpuser_init`.
    const TABLE: Hyperup = table::<Self>();
}

/// The C upcall table of `K` (usable in a `static`).
pub const fn table<K: Kernel>() -> Hyperup {
    Hyperup {
        hyp_schedule: Some(schedule::<K>),
        hyp_unschedule: Some(unschedule::<K>),
        hyp_backend_unschedule: Some(backend_unschedule::<K>),
        hyp_backend_schedule: Some(backend_schedule::<K>),
        hyp_lwproc_switch: Some(lwproc_switch::<K>),
        hyp_lwproc_release: Some(lwproc_release::<K>),
        hyp_lwproc_rfork: Some(lwproc_rfork::<K>),
        hyp_lwproc_newlwp: Some(lwproc_newlwp::<K>),
        hyp_lwproc_curlwp: Some(lwproc_curlwp::<K>),
        hyp_syscall: Some(syscall::<K>),
        hyp_lwpexit: Some(lwpexit::<K>),
        hyp_execnotify: Some(execnotify::<K>),
        hyp_getpid: Some(getpid::<K>),
        hyp_extra: [ptr::null_mut(); 8],
    }
}

/// A C string argument, `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives the upcall.
unsafe fn c_str<'a>(p: *const c_char) -> Option<&'a CStr> {
    // SAFETY: the caller's promise.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) })
}

extern "C" fn schedule<K: Kernel>() {
    K::schedule()
}

extern "C" fn unschedule<K: Kernel>() {
    K::unschedule()
}

extern "C" fn backend_unschedule<K: Kernel>(
    nlocks: c_int,
    countp: *mut c_int,
    interlock: *mut c_void,
) {
    // SAFETY: the hypervisor passes NULL or a pointer to its local count,
    // live for the call, and NULL or one of its mutexes as the interlock.
    unsafe { K::backend_unschedule(nlocks, countp.as_mut(), interlock) }
}

extern "C" fn backend_schedule<K: Kernel>(nlocks: c_int, interlock: *mut c_void) {
    // SAFETY: the hypervisor passes NULL or one of its mutexes.
    unsafe { K::backend_schedule(nlocks, interlock) }
}

extern "C" fn lwproc_switch<K: Kernel>(l: *mut Lwp) {
    // SAFETY: the hypervisor passes NULL or an lwp it got from the kernel.
    unsafe { K::lwproc_switch(l) }
}

extern "C" fn lwproc_release<K: Kernel>() {
    K::lwproc_release()
}

extern "C" fn lwproc_rfork<K: Kernel>(
    cookie: *mut c_void,
    flags: c_int,
    comm: *const c_char,
) -> c_int {
    // SAFETY: the syscall proxy passes its cookie for the client and NULL
    // or the client's name as a C string.
    unsafe { K::lwproc_rfork(cookie, flags, c_str(comm)) }
}

extern "C" fn lwproc_newlwp<K: Kernel>(pid: i32) -> c_int {
    K::lwproc_newlwp(pid)
}

extern "C" fn lwproc_curlwp<K: Kernel>() -> *mut Lwp {
    K::lwproc_curlwp()
}

extern "C" fn syscall<K: Kernel>(num: c_int, args: *mut c_void, retval: *mut c_long) -> c_int {
    // SAFETY: the syscall proxy passes `register_t retval[2]`, writable for
    // the call, and the argument block.
    unsafe {
        match retval.cast::<[c_long; 2]>().as_mut() {
            Some(rv) => K::syscall(num, args, rv),
            None => K::syscall(num, args, &mut [0; 2]),
        }
    }
}

extern "C" fn lwpexit<K: Kernel>() {
    K::lwpexit()
}

extern "C" fn execnotify<K: Kernel>(comm: *const c_char) {
    // SAFETY: the syscall proxy passes NULL or the new program's name.
    K::execnotify(unsafe { c_str(comm) })
}

extern "C" fn getpid<K: Kernel>() -> i32 {
    K::getpid()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Defaults;
    impl Kernel for Defaults {}

    struct Custom;
    impl Kernel for Custom {
        fn getpid() -> i32 {
            7
        }
        unsafe fn syscall(num: c_int, _args: *mut c_void, rv: &mut [c_long; 2]) -> c_int {
            rv[0] = num as c_long + 1;
            0
        }
        unsafe fn lwproc_rfork(_c: *mut c_void, flags: c_int, comm: Option<&CStr>) -> c_int {
            flags + comm.map_or(100, |c| c.to_bytes().len() as c_int)
        }
    }

    #[test]
    fn defaults_are_a_kernel_without_processes() {
        let t = Defaults::TABLE;
        let mut count = 5;
        // SAFETY: the trampolines take exactly these arguments.
        unsafe {
            (t.hyp_backend_unschedule.unwrap())(3, &mut count, ptr::null_mut());
            (t.hyp_backend_unschedule.unwrap())(3, ptr::null_mut(), ptr::null_mut());
            assert_eq!(count, 0);
            assert_eq!((t.hyp_lwproc_newlwp.unwrap())(1), Errno::ENXIO.raw());
            assert_eq!(
                (t.hyp_lwproc_rfork.unwrap())(ptr::null_mut(), 0, ptr::null()),
                Errno::ENXIO.raw()
            );
            let mut rv = [0 as c_long; 2];
            assert_eq!(
                (t.hyp_syscall.unwrap())(20, ptr::null_mut(), rv.as_mut_ptr()),
                Errno::ENOSYS.raw()
            );
            assert!((t.hyp_lwproc_curlwp.unwrap())().is_null());
            assert_eq!((t.hyp_getpid.unwrap())(), 0);
        }
        assert!(t.hyp_extra.iter().all(|p| p.is_null()));
    }

    #[test]
    fn overrides_get_the_converted_arguments() {
        static T: Hyperup = table::<Custom>();
        let mut rv = [0 as c_long; 2];
        // SAFETY: the trampolines take exactly these arguments.
        unsafe {
            assert_eq!((T.hyp_getpid.unwrap())(), 7);
            assert_eq!(
                (T.hyp_syscall.unwrap())(41, ptr::null_mut(), rv.as_mut_ptr()),
                0
            );
            assert_eq!(rv[0], 42);
            // A NULL retval reaches the kernel as a scratch array.
            assert_eq!(
                (T.hyp_syscall.unwrap())(1, ptr::null_mut(), ptr::null_mut()),
                0
            );
            assert_eq!(
                (T.hyp_lwproc_rfork.unwrap())(ptr::null_mut(), 1, c"abc".as_ptr()),
                4
            );
            assert_eq!(
                (T.hyp_lwproc_rfork.unwrap())(ptr::null_mut(), 1, ptr::null()),
                101
            );
        }
    }
}
