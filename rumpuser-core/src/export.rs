//! [`export_rumpuser!`](crate::export_rumpuser): the only place that defines `#[no_mangle]` symbols.
//!
//! One invocation in a platform crate emits every `rumpuser_*` symbol of
//! v17, the `rumpuser_component_*` helpers and the dprintf back end, each a
//! one-line forwarder into the generic code of [`crate::ffi`]. The symbols
//! are `extern "C"`, so a Rust panic can never unwind into kernel frames:
//! the language aborts at the boundary (and release builds use
//! `panic = "abort"` anyway).
//!
//! The list of names is checked against the C header by a test
//! (`tests/header.rs`) so that the two cannot drift apart.

/// Exports the rumpuser v17 C ABI for one platform.
///
/// `$h` is an expression of type `&'static P` where `P: Hypervisor`, e.g.
/// `export_rumpuser!(&crate::PLATFORM)`.
#[macro_export]
macro_rules! export_rumpuser {
    ($h:expr) => {
        /// The exported C ABI of this platform, and the same as an [`Api`] table.
        ///
        /// [`Api`]: $crate::api::Api
        #[allow(clippy::missing_safety_doc, missing_docs)]
        #[allow(unsafe_code)]
        pub mod rumpuser_exports {
            use super::*;
            use ::core::ffi::{c_char, c_int, c_long, c_void};
            use $crate::abi::{
                BiodoneFn, CompLoadFn, Hyperup, IoVec, Lwp, ModinitFn, SymloadFn, ThreadFn,
            };
            use $crate::ffi;

            #[inline(always)]
            fn h() -> &'static impl $crate::Hypervisor {
                $h
            }

            extern "C" {
                pub fn rumpuser_dprintf(fmt: *const c_char, ...);
            }

            /// Every entry point of this library as a table.
            pub static API: $crate::api::Api = $crate::__api_from_exports!();

            fn diag_sink(b: &[u8]) {
                $crate::Host::console_write(h(), b)
            }

            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_init(version: c_int, hyp: *const Hyperup) -> c_int {
                $crate::diag::set_sink(diag_sink);
                // SAFETY: forwarded C arguments; see `ffi::init`.
                unsafe { ffi::init(h(), version, hyp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_getparam(
                name: *const c_char,
                buf: *mut c_void,
                buflen: usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::getparam(h(), name, buf, buflen) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_malloc(
                len: usize,
                alignment: c_int,
                memp: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::malloc(h(), len, alignment, memp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_free(mem: *mut c_void, len: usize) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::free(h(), mem, len) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_anonmmap(
                prefaddr: *mut c_void,
                size: usize,
                alignbit: c_int,
                exec: c_int,
                memp: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::anonmmap(h(), prefaddr, size, alignbit, exec, memp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_unmap(addr: *mut c_void, len: usize) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::unmap(h(), addr, len) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_open(
                name: *const c_char,
                mode: c_int,
                fdp: *mut c_int,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::open(h(), name, mode, fdp) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_close(fd: c_int) -> c_int {
                ffi::close(h(), fd)
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_getfileinfo(
                name: *const c_char,
                sizep: *mut u64,
                typep: *mut c_int,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::getfileinfo(h(), name, sizep, typep) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_bio(
                fd: c_int,
                op: c_int,
                data: *mut c_void,
                dlen: usize,
                off: i64,
                biodone: Option<BiodoneFn>,
                donearg: *mut c_void,
            ) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::bio(h(), fd, op, data, dlen, off, biodone, donearg) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_iovread(
                fd: c_int,
                iov: *mut IoVec,
                iovlen: usize,
                off: i64,
                retv: *mut usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::iovread(h(), fd, iov, iovlen, off, retv) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_iovwrite(
                fd: c_int,
                iov: *const IoVec,
                iovlen: usize,
                off: i64,
                retv: *mut usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::iovwrite(h(), fd, iov, iovlen, off, retv) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_syncfd(
                fd: c_int,
                flags: c_int,
                start: u64,
                len: u64,
            ) -> c_int {
                ffi::syncfd(h(), fd, flags, start, len)
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_clock_gettime(
                clk: c_int,
                sec: *mut i64,
                nsec: *mut c_long,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::clock_gettime(h(), clk, sec, nsec) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_clock_sleep(clk: c_int, sec: i64, nsec: c_long) -> c_int {
                ffi::clock_sleep(h(), clk, sec, nsec)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_seterrno(error: c_int) {
                ffi::seterrno(h(), error)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_kill(pid: i64, sig: c_int) -> c_int {
                ffi::kill(h(), pid, sig)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_exit(value: c_int) -> ! {
                ffi::exit(h(), value)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_putchar(ch: c_int) {
                ffi::putchar(h(), ch)
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser__dprintf_write(buf: *const c_char, len: usize) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::dprintf_write(h(), buf, len) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_getrandom(
                buf: *mut c_void,
                buflen: usize,
                flags: c_int,
                retp: *mut usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::getrandom(h(), buf, buflen, flags, retp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_thread_create(
                fun: Option<ThreadFn>,
                arg: *mut c_void,
                name: *const c_char,
                mustjoin: c_int,
                priority: c_int,
                cpuidx: c_int,
                cookie: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe {
                    ffi::thread_create(h(), fun, arg, name, mustjoin, priority, cpuidx, cookie)
                }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_thread_exit() -> ! {
                $crate::Sched::thread_exit(h())
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_thread_join(cookie: *mut c_void) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::thread_join(h(), cookie) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_curlwpop(op: c_int, l: *mut Lwp) {
                ffi::curlwpop(h(), op, l)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_curlwp() -> *mut Lwp {
                $crate::Sched::kernel_curlwp(h())
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_init(mtxp: *mut *mut c_void, flags: c_int) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_init(h(), mtxp, flags) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_enter(m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_enter(h(), m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_enter_nowrap(m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_enter_nowrap(h(), m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_tryenter(m: *mut c_void) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_tryenter(h(), m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_exit(m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_exit(h(), m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_destroy(m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_destroy(h(), m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_mutex_owner(m: *mut c_void, ownerp: *mut *mut Lwp) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::mutex_owner(h(), m, ownerp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_init(rwp: *mut *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_init(h(), rwp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_enter(op: c_int, rw: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_enter(h(), op, rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_tryenter(op: c_int, rw: *mut c_void) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_tryenter(h(), op, rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_tryupgrade(rw: *mut c_void) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_tryupgrade(h(), rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_downgrade(rw: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_downgrade(h(), rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_exit(rw: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_exit(h(), rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_destroy(rw: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_destroy(h(), rw) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_rw_held(
                op: c_int,
                rw: *mut c_void,
                heldp: *mut c_int,
            ) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::rw_held(h(), op, rw, heldp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_init(cvp: *mut *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_init(h(), cvp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_destroy(cv: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_destroy(h(), cv) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_wait(cv: *mut c_void, m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_wait(h(), cv, m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_wait_nowrap(cv: *mut c_void, m: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_wait_nowrap(h(), cv, m) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_timedwait(
                cv: *mut c_void,
                m: *mut c_void,
                sec: i64,
                nsec: i64,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_timedwait(h(), cv, m, sec, nsec) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_signal(cv: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_signal(h(), cv) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_broadcast(cv: *mut c_void) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_broadcast(h(), cv) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_cv_has_waiters(
                cv: *mut c_void,
                nwaitersp: *mut c_int,
            ) {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::cv_has_waiters(h(), cv, nwaitersp) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_dl_bootstrap(
                modinit: Option<ModinitFn>,
                symload: Option<SymloadFn>,
                compload: Option<CompLoadFn>,
            ) {
                ffi::dl_bootstrap(h(), modinit, symload, compload)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_daemonize_begin() -> c_int {
                ffi::daemonize_begin(h())
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_daemonize_done(error: c_int) -> c_int {
                ffi::daemonize_done(h(), error)
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_init(
                url: *const c_char,
                ostype: *const c_char,
                osrelease: *const c_char,
                machine: *const c_char,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_init(h(), url, ostype, osrelease, machine) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_copyin(
                arg: *mut c_void,
                raddr: *const c_void,
                laddr: *mut c_void,
                len: usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_copyin(h(), arg, raddr, laddr, len) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_copyinstr(
                arg: *mut c_void,
                raddr: *const c_void,
                laddr: *mut c_void,
                lenp: *mut usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_copyinstr(h(), arg, raddr, laddr, lenp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_copyout(
                arg: *mut c_void,
                laddr: *const c_void,
                raddr: *mut c_void,
                len: usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_copyout(h(), arg, laddr, raddr, len) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_copyoutstr(
                arg: *mut c_void,
                laddr: *const c_void,
                raddr: *mut c_void,
                lenp: *mut usize,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_copyoutstr(h(), arg, laddr, raddr, lenp) }
            }
            #[no_mangle]
            pub unsafe extern "C" fn rumpuser_sp_anonmmap(
                arg: *mut c_void,
                len: usize,
                addrp: *mut *mut c_void,
            ) -> c_int {
                // SAFETY: forwarded C arguments.
                unsafe { ffi::sp_anonmmap(h(), arg, len, addrp) }
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_sp_raise(arg: *mut c_void, signo: c_int) -> c_int {
                ffi::sp_raise(h(), arg, signo)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_sp_fini(arg: *mut c_void) {
                ffi::sp_fini(h(), arg)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_unschedule() -> *mut c_void {
                ffi::component_unschedule(h())
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_schedule(cookie: *mut c_void) {
                ffi::component_schedule(h(), cookie)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_errtrans(hosterr: c_int) -> c_int {
                ffi::component_errtrans(hosterr)
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_kthread() {
                ffi::component_kthread()
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_kthread_release() {
                ffi::component_kthread_release()
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_curlwp() -> *mut Lwp {
                ffi::component_curlwp()
            }
            #[no_mangle]
            pub extern "C" fn rumpuser_component_switchlwp(l: *mut Lwp) {
                ffi::component_switchlwp(l)
            }
        }
    };
}

/// Every symbol [`export_rumpuser!`](crate::export_rumpuser) defines, in header order (checked by
/// tests against `include/rump/rumpuser.h` and `nm` of the built libraries).
pub const EXPORTED_SYMBOLS: &[&str] = &[
    "rumpuser_init",
    "rumpuser_getparam",
    "rumpuser_malloc",
    "rumpuser_free",
    "rumpuser_anonmmap",
    "rumpuser_unmap",
    "rumpuser_open",
    "rumpuser_close",
    "rumpuser_getfileinfo",
    "rumpuser_bio",
    "rumpuser_iovread",
    "rumpuser_iovwrite",
    "rumpuser_syncfd",
    "rumpuser_clock_gettime",
    "rumpuser_clock_sleep",
    "rumpuser_seterrno",
    "rumpuser_kill",
    "rumpuser_exit",
    "rumpuser_putchar",
    "rumpuser_dprintf",
    "rumpuser_getrandom",
    "rumpuser_thread_create",
    "rumpuser_thread_exit",
    "rumpuser_thread_join",
    "rumpuser_curlwpop",
    "rumpuser_curlwp",
    "rumpuser_mutex_init",
    "rumpuser_mutex_enter",
    "rumpuser_mutex_enter_nowrap",
    "rumpuser_mutex_tryenter",
    "rumpuser_mutex_exit",
    "rumpuser_mutex_destroy",
    "rumpuser_mutex_owner",
    "rumpuser_rw_init",
    "rumpuser_rw_enter",
    "rumpuser_rw_tryenter",
    "rumpuser_rw_tryupgrade",
    "rumpuser_rw_downgrade",
    "rumpuser_rw_exit",
    "rumpuser_rw_destroy",
    "rumpuser_rw_held",
    "rumpuser_cv_init",
    "rumpuser_cv_destroy",
    "rumpuser_cv_wait",
    "rumpuser_cv_wait_nowrap",
    "rumpuser_cv_timedwait",
    "rumpuser_cv_signal",
    "rumpuser_cv_broadcast",
    "rumpuser_cv_has_waiters",
    "rumpuser_dl_bootstrap",
    "rumpuser_daemonize_begin",
    "rumpuser_daemonize_done",
    "rumpuser_sp_init",
    "rumpuser_sp_copyin",
    "rumpuser_sp_copyinstr",
    "rumpuser_sp_copyout",
    "rumpuser_sp_copyoutstr",
    "rumpuser_sp_anonmmap",
    "rumpuser_sp_raise",
    "rumpuser_sp_fini",
    "rumpuser_component_unschedule",
    "rumpuser_component_schedule",
    "rumpuser_component_errtrans",
    "rumpuser_component_kthread",
    "rumpuser_component_curlwp",
    "rumpuser_component_switchlwp",
    "rumpuser_component_kthread_release",
];
