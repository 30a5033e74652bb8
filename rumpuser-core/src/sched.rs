//! The kernel's upcalls and the scheduling discipline, in one place.
//!
//! The upcall table handed to `rumpuser_init` is stored here; every other
//! module reaches the kernel only through these functions. The rules they
//! encode (contract section 2):
//!
//! * [`release_cpu`]/[`reacquire_cpu`] are `hyp_backend_unschedule` and
//!   `hyp_backend_schedule`: the `KLOCK_WRAP` halves used *inside* a
//!   hypercall right before the thread may block. [`klock_wrap`] pairs them.
//! * Callers try without blocking first and only release the CPU when they
//!   are about to wait, because `rump_init` takes locks before any virtual
//!   CPU exists.
//! * `_nowrap` paths never come here.
//! * Before `rumpuser_init` stored a table (or if the kernel passed NULL
//!   entries) the wrappers do nothing, which is what a CPU-less caller needs.

use crate::abi::{Hyperup, Lwp};
use core::ffi::{c_char, c_int, c_long, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// The stored upcall table (a copy, like the reference's `rumpuser__hyp`).
static HYPERUP: spin::Once<Hyperup> = spin::Once::new();

type BackendUnschedule = unsafe extern "C" fn(c_int, *mut c_int, *mut c_void);
type BackendSchedule = unsafe extern "C" fn(c_int, *mut c_void);

/// `hyp_backend_unschedule` and `hyp_backend_schedule` (the two upcalls of
/// every blocking hypercall) mirrored out of [`HYPERUP`] as plain function
/// pointers that start as no-ops: one load and a call, like the reference's
/// `rumpuser__hyp.hyp_backend_unschedule(...)`, instead of checking that
/// the table is installed and the entry is there on every call. Loads are
/// `Relaxed`: only the pointer itself is published (the kernel's code and
/// data were ready before it called `rumpuser_init`, and its threads that
/// make these calls are created after).
static BACKEND_UNSCHEDULE: AtomicPtr<()> = AtomicPtr::new(no_unschedule as *mut ());
static BACKEND_SCHEDULE: AtomicPtr<()> = AtomicPtr::new(no_schedule as *mut ());

unsafe extern "C" fn no_unschedule(_: c_int, _: *mut c_int, _: *mut c_void) {}
unsafe extern "C" fn no_schedule(_: c_int, _: *mut c_void) {}

/// Stores the kernel's upcall table. Later calls keep the first table: the
/// kernel calls `rumpuser_init` once, and a second table would leave
/// threads already inside a hypercall pointing at the old one.
pub fn install(table: &Hyperup) {
    let t = HYPERUP.call_once(|| *table);
    if let Some(f) = t.hyp_backend_unschedule {
        BACKEND_UNSCHEDULE.store(f as *mut (), Ordering::Release);
    }
    if let Some(f) = t.hyp_backend_schedule {
        BACKEND_SCHEDULE.store(f as *mut (), Ordering::Release);
    }
}

/// The upcall table, if `rumpuser_init` has run.
#[inline]
pub fn table() -> Option<&'static Hyperup> {
    HYPERUP.get()
}

/// `hyp_backend_unschedule(0, &n, interlock)`: release this thread's virtual
/// CPU (and all biglock holds) before blocking; returns the count to hand
/// back to [`reacquire_cpu`].
// The pointer is an opaque token handed to the kernel, never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline]
pub fn release_cpu(interlock: *mut c_void) -> c_int {
    // Two words, not one `c_int`: in a small frame rustc would otherwise
    // keep the count in the slot a `push` made and free it with a `pop`,
    // an 8-byte load over the upcall's 4-byte store, which the CPU cannot
    // forward (a ~1 ns stall per call, measured on `component_bracket`).
    let mut n: [c_int; 4] = [0; 4];
    // SAFETY: the pointer is `no_unschedule` or the kernel's
    // `hyp_backend_unschedule`, both of this type (see `install`).
    let f: BackendUnschedule =
        unsafe { core::mem::transmute(BACKEND_UNSCHEDULE.load(Ordering::Relaxed)) };
    // SAFETY: the kernel's upcall, called as the contract describes: from a
    // thread inside a hypercall that holds a CPU, with a valid out-pointer
    // to a local.
    unsafe { f(0, &mut n[0], interlock) };
    n[0]
}

/// `hyp_backend_schedule(n, interlock)`: retake a CPU and `n` biglock holds.
// The pointer is an opaque token handed to the kernel, never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
#[inline]
pub fn reacquire_cpu(nlocks: c_int, interlock: *mut c_void) {
    // SAFETY: the pointer is `no_schedule` or the kernel's
    // `hyp_backend_schedule`, both of this type (see `install`).
    let f: BackendSchedule =
        unsafe { core::mem::transmute(BACKEND_SCHEDULE.load(Ordering::Relaxed)) };
    // SAFETY: balanced with the `release_cpu` of the same hypercall, on the
    // same thread, passing back its count unchanged.
    unsafe { f(nlocks, interlock) };
}

/// Runs a blocking host operation with the virtual CPU released
/// (`KLOCK_WRAP` in `rumpuser_int.h`).
#[inline]
pub fn klock_wrap<T>(blocking: impl FnOnce() -> T) -> T {
    let n = release_cpu(ptr::null_mut());
    let r = blocking();
    reacquire_cpu(n, ptr::null_mut());
    r
}

/// `hyp_schedule()`: full kernel entry for a thread holding no CPU.
pub fn schedule() {
    if let Some(f) = table().and_then(|t| t.hyp_schedule) {
        // SAFETY: called from a thread that holds no CPU, after init.
        unsafe { f() };
    }
}

/// `hyp_unschedule()`: leave the kernel after [`schedule`].
pub fn unschedule() {
    if let Some(f) = table().and_then(|t| t.hyp_unschedule) {
        // SAFETY: balanced with a preceding `schedule` on this thread.
        unsafe { f() };
    }
}

/// `hyp_lwproc_newlwp(pid)`: needs a CPU; switches to a new lwp in `pid`.
pub fn lwproc_newlwp(pid: i32) -> c_int {
    match table().and_then(|t| t.hyp_lwproc_newlwp) {
        // SAFETY: the caller holds a CPU (between `schedule`/`unschedule`).
        Some(f) => unsafe { f(pid) },
        None => crate::Errno::ENOSYS.raw(),
    }
}

/// `hyp_lwproc_release()`: needs a CPU; drops curlwp's reference.
pub fn lwproc_release() {
    if let Some(f) = table().and_then(|t| t.hyp_lwproc_release) {
        // SAFETY: the caller holds a CPU and has a curlwp.
        unsafe { f() };
    }
}

/// `hyp_lwproc_switch(l)`: needs a CPU.
// The pointer is an opaque token handed to the kernel, never dereferenced here.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn lwproc_switch(l: *mut Lwp) {
    if let Some(f) = table().and_then(|t| t.hyp_lwproc_switch) {
        // SAFETY: the caller holds a CPU; `l` is an lwp the kernel gave us or NULL.
        unsafe { f(l) };
    }
}

/// `hyp_lwproc_curlwp()`: needs a CPU.
pub fn lwproc_curlwp() -> *mut Lwp {
    match table().and_then(|t| t.hyp_lwproc_curlwp) {
        // SAFETY: the caller holds a CPU.
        Some(f) => unsafe { f() },
        None => ptr::null_mut(),
    }
}

/// `hyp_lwproc_rfork(priv, flags, comm)`: needs a CPU; creates a remote
/// process whose sysproxy cookie is `priv` and switches to its lwp. `ENXIO`
/// if the kernel has no sysproxy component.
// The pointers are handed to the kernel; `comm` is NULL or a C string.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn lwproc_rfork(priv_: *mut c_void, flags: c_int, comm: *const c_char) -> c_int {
    match table().and_then(|t| t.hyp_lwproc_rfork) {
        // SAFETY: the caller holds a CPU; `comm` is NULL or NUL-terminated.
        Some(f) => unsafe { f(priv_, flags, comm) },
        None => crate::Errno::ENXIO.raw(),
    }
}

/// `hyp_syscall(num, args, retval)`: needs a CPU and a curlwp in the
/// calling process; returns a NetBSD errno.
// `args` must be valid for the syscall's argument structure; the caller
// guarantees it (see `sp::conn::SyscallArgs`).
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn syscall(num: c_int, args: *mut c_void, retval: &mut [c_long; 2]) -> c_int {
    match table().and_then(|t| t.hyp_syscall) {
        // SAFETY: the caller holds a CPU; `args` is valid per the caller,
        // `retval` is two writable longs.
        Some(f) => unsafe { f(num, args, retval.as_mut_ptr()) },
        None => crate::Errno::ENOSYS.raw(),
    }
}

/// `hyp_lwpexit()`: needs a CPU; tells every other lwp of the current
/// process to exit.
pub fn lwpexit() {
    if let Some(f) = table().and_then(|t| t.hyp_lwpexit) {
        // SAFETY: the caller holds a CPU and has a curlwp.
        unsafe { f() };
    }
}

/// `hyp_execnotify(comm)`: needs a CPU; finishes an exec of the current process.
// `comm` is a NUL-terminated string owned by the caller.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn execnotify(comm: *const c_char) {
    if let Some(f) = table().and_then(|t| t.hyp_execnotify) {
        // SAFETY: the caller holds a CPU; `comm` is a C string.
        unsafe { f(comm) };
    }
}

/// `hyp_getpid()`: needs a CPU; the pid of the current process (-1 if
/// the kernel has no sysproxy component).
pub fn getpid() -> i32 {
    match table().and_then(|t| t.hyp_getpid) {
        // SAFETY: the caller holds a CPU and has a curlwp.
        Some(f) => unsafe { f() },
        None => -1,
    }
}

/// Runs `f` as one full kernel entry: `hyp_schedule; f; hyp_unschedule`,
/// for a thread that holds no CPU (the bracket the sysproxy server puts
/// around each of the upcalls above).
pub fn entered<T>(f: impl FnOnce() -> T) -> T {
    schedule();
    let r = f();
    unschedule();
    r
}

/// Gives the calling host thread (a hypervisor helper such as a bio worker)
/// a persistent lwp in proc0: `hyp_schedule; hyp_lwproc_newlwp(0); hyp_unschedule`.
pub fn adopt_helper_thread() -> c_int {
    schedule();
    let e = lwproc_newlwp(0);
    unschedule();
    e
}

/// Releases the lwp that [`adopt_helper_thread`] gave this thread.
pub fn release_helper_thread() {
    schedule();
    lwproc_release();
    unschedule();
}

/// Runs `f` holding a virtual CPU, for a helper thread that already has an
/// lwp (rule 3 of contract 2.2: `hyp_backend_schedule(0, NULL)` … unschedule).
pub fn with_cpu<T>(f: impl FnOnce() -> T) -> T {
    reacquire_cpu(0, ptr::null_mut());
    let r = f();
    let _ = release_cpu(ptr::null_mut());
    r
}
