//! [`Api`]: the whole rumpuser C ABI as a table of function pointers.
//!
//! The conformance kit and the benchmarks drive an implementation only
//! through this table, exactly as the kernel would through the linker. A
//! table comes either from the symbols a crate exported with
//! [`crate::export_rumpuser!`] (`rumpuser_exports::API`) or from a shared
//! library loaded at run time ([`Api::resolve`]), which lets one process
//! compare several implementations.

use crate::abi::{BiodoneFn, CompLoadFn, Hyperup, IoVec, Lwp, ModinitFn, SymloadFn, ThreadFn};
use core::ffi::{c_char, c_int, c_long, c_void, CStr};

/// Every `rumpuser_*` entry point, without the prefix.
#[allow(missing_docs)]
#[derive(Clone, Copy)]
pub struct Api {
    pub init: unsafe extern "C" fn(c_int, *const Hyperup) -> c_int,
    pub getparam: unsafe extern "C" fn(*const c_char, *mut c_void, usize) -> c_int,
    pub malloc: unsafe extern "C" fn(usize, c_int, *mut *mut c_void) -> c_int,
    pub free: unsafe extern "C" fn(*mut c_void, usize),
    pub anonmmap: unsafe extern "C" fn(*mut c_void, usize, c_int, c_int, *mut *mut c_void) -> c_int,
    pub unmap: unsafe extern "C" fn(*mut c_void, usize),
    pub open: unsafe extern "C" fn(*const c_char, c_int, *mut c_int) -> c_int,
    pub close: unsafe extern "C" fn(c_int) -> c_int,
    pub getfileinfo: unsafe extern "C" fn(*const c_char, *mut u64, *mut c_int) -> c_int,
    pub bio:
        unsafe extern "C" fn(c_int, c_int, *mut c_void, usize, i64, Option<BiodoneFn>, *mut c_void),
    pub iovread: unsafe extern "C" fn(c_int, *mut IoVec, usize, i64, *mut usize) -> c_int,
    pub iovwrite: unsafe extern "C" fn(c_int, *const IoVec, usize, i64, *mut usize) -> c_int,
    pub syncfd: unsafe extern "C" fn(c_int, c_int, u64, u64) -> c_int,
    pub clock_gettime: unsafe extern "C" fn(c_int, *mut i64, *mut c_long) -> c_int,
    pub clock_sleep: unsafe extern "C" fn(c_int, i64, c_long) -> c_int,
    pub seterrno: unsafe extern "C" fn(c_int),
    pub kill: unsafe extern "C" fn(i64, c_int) -> c_int,
    pub exit: unsafe extern "C" fn(c_int) -> !,
    pub putchar: unsafe extern "C" fn(c_int),
    pub getrandom: unsafe extern "C" fn(*mut c_void, usize, c_int, *mut usize) -> c_int,
    pub thread_create: unsafe extern "C" fn(
        Option<ThreadFn>,
        *mut c_void,
        *const c_char,
        c_int,
        c_int,
        c_int,
        *mut *mut c_void,
    ) -> c_int,
    pub thread_exit: unsafe extern "C" fn() -> !,
    pub thread_join: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub curlwpop: unsafe extern "C" fn(c_int, *mut Lwp),
    pub curlwp: unsafe extern "C" fn() -> *mut Lwp,
    pub mutex_init: unsafe extern "C" fn(*mut *mut c_void, c_int),
    pub mutex_enter: unsafe extern "C" fn(*mut c_void),
    pub mutex_enter_nowrap: unsafe extern "C" fn(*mut c_void),
    pub mutex_tryenter: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub mutex_exit: unsafe extern "C" fn(*mut c_void),
    pub mutex_destroy: unsafe extern "C" fn(*mut c_void),
    pub mutex_owner: unsafe extern "C" fn(*mut c_void, *mut *mut Lwp),
    pub rw_init: unsafe extern "C" fn(*mut *mut c_void),
    pub rw_enter: unsafe extern "C" fn(c_int, *mut c_void),
    pub rw_tryenter: unsafe extern "C" fn(c_int, *mut c_void) -> c_int,
    pub rw_tryupgrade: unsafe extern "C" fn(*mut c_void) -> c_int,
    pub rw_downgrade: unsafe extern "C" fn(*mut c_void),
    pub rw_exit: unsafe extern "C" fn(*mut c_void),
    pub rw_destroy: unsafe extern "C" fn(*mut c_void),
    pub rw_held: unsafe extern "C" fn(c_int, *mut c_void, *mut c_int),
    pub cv_init: unsafe extern "C" fn(*mut *mut c_void),
    pub cv_destroy: unsafe extern "C" fn(*mut c_void),
    pub cv_wait: unsafe extern "C" fn(*mut c_void, *mut c_void),
    pub cv_wait_nowrap: unsafe extern "C" fn(*mut c_void, *mut c_void),
    pub cv_timedwait: unsafe extern "C" fn(*mut c_void, *mut c_void, i64, i64) -> c_int,
    pub cv_signal: unsafe extern "C" fn(*mut c_void),
    pub cv_broadcast: unsafe extern "C" fn(*mut c_void),
    pub cv_has_waiters: unsafe extern "C" fn(*mut c_void, *mut c_int),
    pub dl_bootstrap:
        unsafe extern "C" fn(Option<ModinitFn>, Option<SymloadFn>, Option<CompLoadFn>),
    pub daemonize_begin: unsafe extern "C" fn() -> c_int,
    pub daemonize_done: unsafe extern "C" fn(c_int) -> c_int,
    pub sp_init:
        unsafe extern "C" fn(*const c_char, *const c_char, *const c_char, *const c_char) -> c_int,
    pub sp_copyin: unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void, usize) -> c_int,
    pub sp_copyinstr:
        unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void, *mut usize) -> c_int,
    pub sp_copyout: unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void, usize) -> c_int,
    pub sp_copyoutstr:
        unsafe extern "C" fn(*mut c_void, *const c_void, *mut c_void, *mut usize) -> c_int,
    pub sp_anonmmap: unsafe extern "C" fn(*mut c_void, usize, *mut *mut c_void) -> c_int,
    pub sp_raise: unsafe extern "C" fn(*mut c_void, c_int) -> c_int,
    pub sp_fini: unsafe extern "C" fn(*mut c_void),
    pub component_unschedule: unsafe extern "C" fn() -> *mut c_void,
    pub component_schedule: unsafe extern "C" fn(*mut c_void),
    pub component_errtrans: unsafe extern "C" fn(c_int) -> c_int,
    pub component_kthread: unsafe extern "C" fn(),
    pub component_kthread_release: unsafe extern "C" fn(),
    pub component_curlwp: unsafe extern "C" fn() -> *mut Lwp,
    pub component_switchlwp: unsafe extern "C" fn(*mut Lwp),
    pub dprintf: unsafe extern "C" fn(*const c_char, ...),
}

impl Api {
    /// Builds a table by looking up every symbol with `lookup` (e.g. `dlsym`).
    /// Returns the first missing name on failure.
    ///
    /// # Safety
    /// Every non-NULL address `lookup` returns must be the function of that
    /// name with the v17 C signature.
    // The field types are inferred from the struct; spelling each of the 67
    // signatures again at the transmute would only add a way to get one wrong.
    #[allow(clippy::missing_transmute_annotations)]
    pub unsafe fn resolve(
        mut lookup: impl FnMut(&CStr) -> *mut c_void,
    ) -> Result<Api, &'static str> {
        macro_rules! sym {
            ($name:literal) => {{
                let name = match CStr::from_bytes_with_nul(concat!($name, "\0").as_bytes()) {
                    Ok(n) => n,
                    Err(_) => return Err($name),
                };
                let p = lookup(name);
                if p.is_null() {
                    return Err($name);
                }
                // SAFETY: the caller promises the symbol has this signature.
                unsafe { core::mem::transmute::<*mut c_void, _>(p) }
            }};
        }
        Ok(Api {
            init: sym!("rumpuser_init"),
            getparam: sym!("rumpuser_getparam"),
            malloc: sym!("rumpuser_malloc"),
            free: sym!("rumpuser_free"),
            anonmmap: sym!("rumpuser_anonmmap"),
            unmap: sym!("rumpuser_unmap"),
            open: sym!("rumpuser_open"),
            close: sym!("rumpuser_close"),
            getfileinfo: sym!("rumpuser_getfileinfo"),
            bio: sym!("rumpuser_bio"),
            iovread: sym!("rumpuser_iovread"),
            iovwrite: sym!("rumpuser_iovwrite"),
            syncfd: sym!("rumpuser_syncfd"),
            clock_gettime: sym!("rumpuser_clock_gettime"),
            clock_sleep: sym!("rumpuser_clock_sleep"),
            seterrno: sym!("rumpuser_seterrno"),
            kill: sym!("rumpuser_kill"),
            exit: sym!("rumpuser_exit"),
            putchar: sym!("rumpuser_putchar"),
            getrandom: sym!("rumpuser_getrandom"),
            thread_create: sym!("rumpuser_thread_create"),
            thread_exit: sym!("rumpuser_thread_exit"),
            thread_join: sym!("rumpuser_thread_join"),
            curlwpop: sym!("rumpuser_curlwpop"),
            curlwp: sym!("rumpuser_curlwp"),
            mutex_init: sym!("rumpuser_mutex_init"),
            mutex_enter: sym!("rumpuser_mutex_enter"),
            mutex_enter_nowrap: sym!("rumpuser_mutex_enter_nowrap"),
            mutex_tryenter: sym!("rumpuser_mutex_tryenter"),
            mutex_exit: sym!("rumpuser_mutex_exit"),
            mutex_destroy: sym!("rumpuser_mutex_destroy"),
            mutex_owner: sym!("rumpuser_mutex_owner"),
            rw_init: sym!("rumpuser_rw_init"),
            rw_enter: sym!("rumpuser_rw_enter"),
            rw_tryenter: sym!("rumpuser_rw_tryenter"),
            rw_tryupgrade: sym!("rumpuser_rw_tryupgrade"),
            rw_downgrade: sym!("rumpuser_rw_downgrade"),
            rw_exit: sym!("rumpuser_rw_exit"),
            rw_destroy: sym!("rumpuser_rw_destroy"),
            rw_held: sym!("rumpuser_rw_held"),
            cv_init: sym!("rumpuser_cv_init"),
            cv_destroy: sym!("rumpuser_cv_destroy"),
            cv_wait: sym!("rumpuser_cv_wait"),
            cv_wait_nowrap: sym!("rumpuser_cv_wait_nowrap"),
            cv_timedwait: sym!("rumpuser_cv_timedwait"),
            cv_signal: sym!("rumpuser_cv_signal"),
            cv_broadcast: sym!("rumpuser_cv_broadcast"),
            cv_has_waiters: sym!("rumpuser_cv_has_waiters"),
            dl_bootstrap: sym!("rumpuser_dl_bootstrap"),
            daemonize_begin: sym!("rumpuser_daemonize_begin"),
            daemonize_done: sym!("rumpuser_daemonize_done"),
            sp_init: sym!("rumpuser_sp_init"),
            sp_copyin: sym!("rumpuser_sp_copyin"),
            sp_copyinstr: sym!("rumpuser_sp_copyinstr"),
            sp_copyout: sym!("rumpuser_sp_copyout"),
            sp_copyoutstr: sym!("rumpuser_sp_copyoutstr"),
            sp_anonmmap: sym!("rumpuser_sp_anonmmap"),
            sp_raise: sym!("rumpuser_sp_raise"),
            sp_fini: sym!("rumpuser_sp_fini"),
            component_unschedule: sym!("rumpuser_component_unschedule"),
            component_schedule: sym!("rumpuser_component_schedule"),
            component_errtrans: sym!("rumpuser_component_errtrans"),
            component_kthread: sym!("rumpuser_component_kthread"),
            component_kthread_release: sym!("rumpuser_component_kthread_release"),
            component_curlwp: sym!("rumpuser_component_curlwp"),
            component_switchlwp: sym!("rumpuser_component_switchlwp"),
            dprintf: sym!("rumpuser_dprintf"),
        })
    }
}

/// Builds an [`Api`] from symbols defined in the current link (used by
/// [`crate::export_rumpuser!`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __api_from_exports {
    () => {
        $crate::api::Api {
            init: rumpuser_init,
            getparam: rumpuser_getparam,
            malloc: rumpuser_malloc,
            free: rumpuser_free,
            anonmmap: rumpuser_anonmmap,
            unmap: rumpuser_unmap,
            open: rumpuser_open,
            close: rumpuser_close,
            getfileinfo: rumpuser_getfileinfo,
            bio: rumpuser_bio,
            iovread: rumpuser_iovread,
            iovwrite: rumpuser_iovwrite,
            syncfd: rumpuser_syncfd,
            clock_gettime: rumpuser_clock_gettime,
            clock_sleep: rumpuser_clock_sleep,
            seterrno: rumpuser_seterrno,
            kill: rumpuser_kill,
            exit: rumpuser_exit,
            putchar: rumpuser_putchar,
            getrandom: rumpuser_getrandom,
            thread_create: rumpuser_thread_create,
            thread_exit: rumpuser_thread_exit,
            thread_join: rumpuser_thread_join,
            curlwpop: rumpuser_curlwpop,
            curlwp: rumpuser_curlwp,
            mutex_init: rumpuser_mutex_init,
            mutex_enter: rumpuser_mutex_enter,
            mutex_enter_nowrap: rumpuser_mutex_enter_nowrap,
            mutex_tryenter: rumpuser_mutex_tryenter,
            mutex_exit: rumpuser_mutex_exit,
            mutex_destroy: rumpuser_mutex_destroy,
            mutex_owner: rumpuser_mutex_owner,
            rw_init: rumpuser_rw_init,
            rw_enter: rumpuser_rw_enter,
            rw_tryenter: rumpuser_rw_tryenter,
            rw_tryupgrade: rumpuser_rw_tryupgrade,
            rw_downgrade: rumpuser_rw_downgrade,
            rw_exit: rumpuser_rw_exit,
            rw_destroy: rumpuser_rw_destroy,
            rw_held: rumpuser_rw_held,
            cv_init: rumpuser_cv_init,
            cv_destroy: rumpuser_cv_destroy,
            cv_wait: rumpuser_cv_wait,
            cv_wait_nowrap: rumpuser_cv_wait_nowrap,
            cv_timedwait: rumpuser_cv_timedwait,
            cv_signal: rumpuser_cv_signal,
            cv_broadcast: rumpuser_cv_broadcast,
            cv_has_waiters: rumpuser_cv_has_waiters,
            dl_bootstrap: rumpuser_dl_bootstrap,
            daemonize_begin: rumpuser_daemonize_begin,
            daemonize_done: rumpuser_daemonize_done,
            sp_init: rumpuser_sp_init,
            sp_copyin: rumpuser_sp_copyin,
            sp_copyinstr: rumpuser_sp_copyinstr,
            sp_copyout: rumpuser_sp_copyout,
            sp_copyoutstr: rumpuser_sp_copyoutstr,
            sp_anonmmap: rumpuser_sp_anonmmap,
            sp_raise: rumpuser_sp_raise,
            sp_fini: rumpuser_sp_fini,
            component_unschedule: rumpuser_component_unschedule,
            component_schedule: rumpuser_component_schedule,
            component_errtrans: rumpuser_component_errtrans,
            component_kthread: rumpuser_component_kthread,
            component_kthread_release: rumpuser_component_kthread_release,
            component_curlwp: rumpuser_component_curlwp,
            component_switchlwp: rumpuser_component_switchlwp,
            dprintf: rumpuser_dprintf,
        }
    };
}
