//! The cases, one module per hypercall group. Each is a plain function
//! `fn(&Ctx) -> CaseResult` that runs holding a virtual CPU of the model
//! kernel (like kernel code calling a hypercall).

pub mod bio;
pub mod clock;
pub mod cv;
pub mod file;
pub mod init;
pub mod mem;
pub mod misc;
pub mod mutex;
pub mod param;
pub mod random;
pub mod rw;
pub mod thread;

use super::{CaseResult, Ctx, KitApi};
use core::ffi::c_void;

/// Returned as the error of a case that does not apply to this configuration.
pub const SKIP: &str = "\u{0}skip";

/// A case.
pub type Case = fn(&Ctx) -> CaseResult;

/// Every case, in run order.
pub const ALL: &[(&str, Case)] = &[
    ("param::mandatory", param::mandatory),
    ("param::errors", param::errors),
    ("mem::malloc_alignment", mem::malloc_alignment),
    ("mem::malloc_bad_alignment", mem::malloc_bad_alignment),
    ("mem::pages_across_threads", mem::pages_across_threads),
    ("mem::anonmmap", mem::anonmmap),
    ("clock::gettime", clock::gettime),
    (
        "clock::sleep_relative_never_early",
        clock::sleep_relative_never_early,
    ),
    (
        "clock::sleep_absolute_never_early",
        clock::sleep_absolute_never_early,
    ),
    ("clock::sleep_releases_cpu", clock::sleep_releases_cpu),
    ("clock::bad_input", clock::bad_input),
    ("random::getrandom", random::getrandom),
    ("random::bad_input", random::bad_input),
    (
        "misc::seterrno_kill_putchar_dprintf",
        misc::seterrno_kill_putchar_dprintf,
    ),
    ("misc::component_helpers", misc::component_helpers),
    ("misc::dl_and_daemonize", misc::dl_and_daemonize),
    ("thread::create_join", thread::create_join),
    ("thread::detached_and_many", thread::detached_and_many),
    ("thread::curlwp_is_per_thread", thread::curlwp_is_per_thread),
    ("thread::bad_input", thread::bad_input),
    (
        "mutex::uncontended_keeps_cpu_and_owner",
        mutex::uncontended_keeps_cpu_and_owner,
    ),
    (
        "mutex::contended_kmutex_releases_cpu",
        mutex::contended_kmutex_releases_cpu,
    ),
    (
        "mutex::contended_spin_keeps_cpu",
        mutex::contended_spin_keeps_cpu,
    ),
    ("mutex::spin_without_lwp", mutex::spin_without_lwp),
    ("mutex::exclusion_stress", mutex::exclusion_stress),
    (
        "rw::readers_share_writers_exclude",
        rw::readers_share_writers_exclude,
    ),
    ("rw::held_semantics", rw::held_semantics),
    ("rw::tryupgrade", rw::tryupgrade),
    (
        "rw::downgrade_keeps_writers_out",
        rw::downgrade_keeps_writers_out,
    ),
    (
        "rw::contended_enter_releases_cpu",
        rw::contended_enter_releases_cpu,
    ),
    ("rw::exclusion_stress", rw::exclusion_stress),
    ("cv::signal_and_broadcast", cv::signal_and_broadcast),
    ("cv::timedwait_never_early", cv::timedwait_never_early),
    ("cv::timedwait_woken", cv::timedwait_woken),
    (
        "cv::reacquire_order_spin_kmutex",
        cv::reacquire_order_spin_kmutex,
    ),
    (
        "cv::reacquire_order_spin_only",
        cv::reacquire_order_spin_only,
    ),
    (
        "cv::scheduler_mutex_interlock",
        cv::scheduler_mutex_interlock,
    ),
    ("cv::nowrap_never_touches_cpu", cv::nowrap_never_touches_cpu),
    ("file::open_errors", file::open_errors),
    ("file::iov_read_write", file::iov_read_write),
    ("file::getfileinfo", file::getfileinfo),
    ("file::syncfd_and_close", file::syncfd_and_close),
    ("bio::write_read_back", bio::write_read_back),
    (
        "bio::reads_see_writes_at_once",
        bio::reads_see_writes_at_once,
    ),
    ("bio::errors_reach_biodone", bio::errors_reach_biodone),
    (
        "bio::many_in_flight_exactly_once",
        bio::many_in_flight_exactly_once,
    ),
];

/// A hypervisor object pointer that cases share between their threads.
#[derive(Clone, Copy)]
pub struct Obj(pub *mut c_void);
impl Obj {
    /// The raw pointer (a method, so closures capture the whole `Obj`).
    #[inline]
    pub fn p(self) -> *mut c_void {
        self.0
    }
}

// SAFETY: rumpuser lock objects are designed to be used from many threads.
unsafe impl Send for Obj {}
// SAFETY: see `Send`.
unsafe impl Sync for Obj {}

/// Creates a mutex with `flags`.
pub fn mutex(api: KitApi, flags: i32) -> Obj {
    let mut m = core::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api.mutex_init)(&mut m, flags) };
    Obj(m)
}

/// Creates an rwlock.
pub fn rwlock(api: KitApi) -> Obj {
    let mut m = core::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api.rw_init)(&mut m) };
    Obj(m)
}

/// Creates a cv.
pub fn cv(api: KitApi) -> Obj {
    let mut m = core::ptr::null_mut();
    // SAFETY: valid out-pointer.
    unsafe { (api.cv_init)(&mut m) };
    Obj(m)
}
