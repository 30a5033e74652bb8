//! The C-ABI side of every `rumpuser_*` hypercall, generic over a
//! [`Hypervisor`].
//!
//! [`crate::export_rumpuser!`] turns these into `#[no_mangle] extern "C"`
//! symbols for one platform. Each function converts raw arguments into
//! typed ones (bad input becomes a NetBSD errno, or a diagnostic for `void`
//! hypercalls), applies the scheduling discipline of [`crate::sched`], calls
//! the platform, and maps the result back to the C convention.
//!
//! # Safety
//!
//! Every function here is `unsafe` because it trusts the C caller's
//! pointers exactly as far as the contract says it may: out-pointers are
//! checked for NULL and then written; object pointers (`rumpuser_mtx` …)
//! must come from the matching `*_init` of this library.

use crate::abi::*;
use crate::bio::{BioDone, BioRequest};
use crate::diag;
use crate::errno::Errno;
use crate::hypervisor::{HyperResult, Hypervisor, SendPtr};
use crate::lockcheck::{self, Holder, Lock};
use crate::objects::{CvObj, MutexObj, RwObj};
use crate::param::{ParamName, ParamWriter};
use crate::sched;
use crate::types::*;
use alloc::boxed::Box;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use core::ptr::{self, NonNull};
use core::sync::atomic::Ordering;

/// Maps a unit result to the C return convention.
#[inline]
fn rc(r: HyperResult<()>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.raw(),
    }
}

/// Borrows a C string, or `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for the call.
#[inline]
unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a CStr> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        Some(unsafe { CStr::from_ptr(p) })
    }
}

// ---- init and parameters ---------------------------------------------------

/// `rumpuser_init`.
///
/// # Safety
/// `hyp` is NULL or points to the kernel's upcall table, valid forever.
pub unsafe fn init<H: Hypervisor>(h: &H, version: c_int, hyp: *const Hyperup) -> c_int {
    if version != RUMPUSER_VERSION {
        diag::log(format_args!(
            "unsupported hypercall version requested: {version} (this is version {RUMPUSER_VERSION})"
        ));
        return Errno::EINVAL.raw();
    }
    if hyp.is_null() {
        return Errno::EINVAL.raw();
    }
    // SAFETY: non-NULL; the kernel's table is a static object.
    sched::install(unsafe { &*hyp });
    rc(h.init_host().and_then(|()| h.init_sched()))
}

/// `rumpuser_getparam`.
///
/// # Safety
/// `name` is a C string; `buf` is valid for `buflen` bytes.
pub unsafe fn getparam<H: Hypervisor>(
    h: &H,
    name: *const c_char,
    buf: *mut c_void,
    buflen: usize,
) -> c_int {
    // SAFETY: caller's contract.
    let Some(name) = (unsafe { cstr(name) }) else {
        return Errno::EINVAL.raw();
    };
    let Ok(name) = name.to_str() else {
        return Errno::EINVAL.raw();
    };
    if buf.is_null() || buflen == 0 {
        return Errno::EINVAL.raw();
    }
    // SAFETY: non-NULL, `buflen` bytes writable per the caller's contract.
    let out = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, buflen) };
    let mut w = ParamWriter::new(out);
    let r = match ParamName::classify(name) {
        ParamName::Ncpu => {
            let n = h.ncpu().clamp(1, MAXCPUS);
            let _ = core::fmt::write(&mut w, format_args!("{n}"));
            Ok(())
        }
        ParamName::Hostname => h.hostname(&mut w),
        ParamName::Reserved => Err(Errno::EINVAL),
        ParamName::Other(n) => h.param(n, &mut w),
    };
    match r {
        Ok(()) => rc(w.finish().map(|_| ())),
        Err(e) => {
            out[0] = 0;
            e.raw()
        }
    }
}

// ---- memory ----------------------------------------------------------------

/// `rumpuser_malloc`.
///
/// # Safety
/// `memp` is a valid out-pointer or NULL.
pub unsafe fn malloc<H: Hypervisor>(
    h: &H,
    len: usize,
    alignment: c_int,
    memp: *mut *mut c_void,
) -> c_int {
    if memp.is_null() {
        return Errno::EINVAL.raw();
    }
    let align = match alignment {
        0 => core::mem::size_of::<*mut c_void>(),
        a if a > 0 && (a as u32).is_power_of_two() => {
            (a as usize).max(core::mem::size_of::<*mut c_void>())
        }
        _ => return Errno::EINVAL.raw(),
    };
    match h.malloc(len, align) {
        Ok(p) => {
            // SAFETY: checked non-NULL above.
            unsafe { *memp = p.as_ptr() as *mut c_void };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_free`.
///
/// # Safety
/// `mem` came from `rumpuser_malloc` with this `len`.
pub unsafe fn free<H: Hypervisor>(h: &H, mem: *mut c_void, len: usize) {
    if let Some(p) = NonNull::new(mem as *mut u8) {
        // SAFETY: caller's contract.
        unsafe { h.free(p, len) };
    }
}

/// `rumpuser_anonmmap`.
///
/// # Safety
/// `memp` is a valid out-pointer or NULL.
pub unsafe fn anonmmap<H: Hypervisor>(
    h: &H,
    prefaddr: *mut c_void,
    size: usize,
    alignbit: c_int,
    exec: c_int,
    memp: *mut *mut c_void,
) -> c_int {
    if memp.is_null() || size == 0 {
        return Errno::EINVAL.raw();
    }
    if !(0..usize::BITS as c_int).contains(&alignbit) {
        return Errno::EINVAL.raw();
    }
    match h.anonmmap(prefaddr, size, alignbit as u32, exec != 0) {
        Ok(p) => {
            // SAFETY: checked non-NULL above.
            unsafe { *memp = p.as_ptr() as *mut c_void };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_unmap`.
///
/// # Safety
/// The range is a mapping the caller owns.
pub unsafe fn unmap<H: Hypervisor>(h: &H, addr: *mut c_void, len: usize) {
    if !addr.is_null() && len != 0 {
        // SAFETY: caller's contract.
        unsafe { h.unmap(addr, len) };
    }
}

// ---- files ---------------------------------------------------------------

/// `rumpuser_open`.
///
/// # Safety
/// `name` is a C string; `fdp` a valid out-pointer.
pub unsafe fn open<H: Hypervisor>(
    h: &H,
    name: *const c_char,
    mode: c_int,
    fdp: *mut c_int,
) -> c_int {
    // SAFETY: caller's contract.
    let Some(name) = (unsafe { cstr(name) }) else {
        return Errno::EINVAL.raw();
    };
    if fdp.is_null() {
        return Errno::EINVAL.raw();
    }
    let flags = match OpenFlags::from_raw(mode) {
        Ok(f) => f,
        Err(e) => return e.raw(),
    };
    match sched::klock_wrap(|| h.open(name, flags)) {
        Ok(fd) => {
            // SAFETY: checked non-NULL.
            unsafe { *fdp = fd };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_close`.
pub fn close<H: Hypervisor>(h: &H, fd: c_int) -> c_int {
    if fd < 0 {
        return Errno::EBADF.raw();
    }
    rc(sched::klock_wrap(|| h.close(fd)))
}

/// `rumpuser_getfileinfo`.
///
/// # Safety
/// `name` is a C string; `sizep`/`typep` are NULL or valid out-pointers.
pub unsafe fn getfileinfo<H: Hypervisor>(
    h: &H,
    name: *const c_char,
    sizep: *mut u64,
    typep: *mut c_int,
) -> c_int {
    // SAFETY: caller's contract.
    let Some(name) = (unsafe { cstr(name) }) else {
        return Errno::EINVAL.raw();
    };
    match sched::klock_wrap(|| h.getfileinfo(name, !sizep.is_null())) {
        Ok((size, ft)) => {
            if !sizep.is_null() {
                // SAFETY: non-NULL out-pointer.
                unsafe { *sizep = size };
            }
            if !typep.is_null() {
                // SAFETY: non-NULL out-pointer.
                unsafe { *typep = ft.raw() };
            }
            0
        }
        Err(e) => e.raw(),
    }
}

/// Validates an iovec array and offset shared by `iovread`/`iovwrite`.
///
/// # Safety
/// `iov` is valid for `iovlen` entries if non-NULL.
unsafe fn iov_args<'a>(
    iov: *const IoVec,
    iovlen: usize,
    off: i64,
) -> Result<(&'a [IoVec], Option<u64>), Errno> {
    // IOV_MAX on every supported host is 1024.
    if iovlen > 1024 || (iov.is_null() && iovlen != 0) {
        return Err(Errno::EINVAL);
    }
    let off = match off {
        RUMPUSER_IOV_NOSEEK => None,
        o if o >= 0 => Some(o as u64),
        _ => return Err(Errno::EINVAL),
    };
    let v = if iovlen == 0 {
        &[][..]
    } else {
        // SAFETY: non-NULL, `iovlen` entries per the caller's contract.
        unsafe { core::slice::from_raw_parts(iov, iovlen) }
    };
    Ok((v, off))
}

/// `rumpuser_iovread`.
///
/// # Safety
/// The iovecs describe writable memory; `retv` is a valid out-pointer.
pub unsafe fn iovread<H: Hypervisor>(
    h: &H,
    fd: c_int,
    iov: *mut IoVec,
    iovlen: usize,
    off: i64,
    retv: *mut usize,
) -> c_int {
    if retv.is_null() {
        return Errno::EINVAL.raw();
    }
    if fd < 0 {
        return Errno::EBADF.raw();
    }
    // SAFETY: caller's contract.
    let (v, off) = match unsafe { iov_args(iov, iovlen, off) } {
        Ok(x) => x,
        Err(e) => return e.raw(),
    };
    // SAFETY: the iovecs are writable per the caller's contract.
    match sched::klock_wrap(|| unsafe { h.iovread(fd, v, off) }) {
        Ok(n) => {
            // SAFETY: checked non-NULL.
            unsafe { *retv = n };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_iovwrite`.
///
/// # Safety
/// The iovecs describe readable memory; `retv` is a valid out-pointer.
pub unsafe fn iovwrite<H: Hypervisor>(
    h: &H,
    fd: c_int,
    iov: *const IoVec,
    iovlen: usize,
    off: i64,
    retv: *mut usize,
) -> c_int {
    if retv.is_null() {
        return Errno::EINVAL.raw();
    }
    if fd < 0 {
        return Errno::EBADF.raw();
    }
    // SAFETY: caller's contract.
    let (v, off) = match unsafe { iov_args(iov, iovlen, off) } {
        Ok(x) => x,
        Err(e) => return e.raw(),
    };
    // SAFETY: the iovecs are readable per the caller's contract.
    match sched::klock_wrap(|| unsafe { h.iovwrite(fd, v, off) }) {
        Ok(n) => {
            // SAFETY: checked non-NULL.
            unsafe { *retv = n };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_syncfd`.
pub fn syncfd<H: Hypervisor>(h: &H, fd: c_int, flags: c_int, start: u64, len: u64) -> c_int {
    let flags = match SyncFlags::from_raw(flags) {
        Ok(f) => f,
        Err(e) => return e.raw(),
    };
    if fd < 0 {
        return Errno::EBADF.raw();
    }
    rc(sched::klock_wrap(|| h.syncfd(fd, flags, start, len)))
}

/// `rumpuser_bio`.
///
/// # Safety
/// `data` is valid for `dlen` bytes until `biodone` runs.
#[allow(clippy::too_many_arguments)] // mirrors the C signature
pub unsafe fn bio<H: Hypervisor>(
    h: &H,
    fd: c_int,
    op: c_int,
    data: *mut c_void,
    dlen: usize,
    off: i64,
    biodone: Option<BiodoneFn>,
    donearg: *mut c_void,
) {
    let Some(biodone) = biodone else {
        diag::report(format_args!(
            "rumpuser_bio called without a biodone callback"
        ));
        return;
    };
    let done = BioDone::new(biodone, donearg);
    let op = match BioOp::from_raw(op) {
        Ok(op) => op,
        Err(e) => return done.complete_scheduled(Err(e)),
    };
    if off < 0 {
        return done.complete_scheduled(Err(Errno::EINVAL));
    }
    if fd < 0 {
        return done.complete_scheduled(Err(Errno::EBADF));
    }
    if data.is_null() && dlen != 0 {
        return done.complete_scheduled(Err(Errno::EFAULT));
    }
    let req = BioRequest {
        fd,
        op,
        data: data as *mut u8,
        len: dlen,
        off: off as u64,
        done,
    };
    // Try first with the CPU held (a cache hit completes here, as in a
    // synchronous implementation); release it only for what must wait.
    let req = match h.bio_try_now(req) {
        Ok(()) => return,
        Err(req) => req,
    };
    sched::klock_wrap(|| h.bio(req));
}

// ---- clocks ------------------------------------------------------------------

/// `rumpuser_clock_gettime`.
///
/// # Safety
/// `sec`/`nsec` are valid out-pointers.
pub unsafe fn clock_gettime<H: Hypervisor>(
    h: &H,
    clk: c_int,
    sec: *mut i64,
    nsec: *mut c_long,
) -> c_int {
    if sec.is_null() || nsec.is_null() {
        return Errno::EINVAL.raw();
    }
    let (s, n) = match clk {
        RUMPUSER_CLOCK_RELWALL => match h.clock_wall() {
            Ok(t) => t,
            Err(e) => return e.raw(),
        },
        RUMPUSER_CLOCK_ABSMONO => h.clock_monotonic_parts(),
        _ => return Errno::EINVAL.raw(),
    };
    // SAFETY: checked non-NULL.
    unsafe {
        *sec = s;
        *nsec = n as c_long;
    }
    0
}

/// `rumpuser_clock_sleep`.
pub fn clock_sleep<H: Hypervisor>(h: &H, clk: c_int, sec: i64, nsec: c_long) -> c_int {
    #[allow(clippy::useless_conversion)] // `c_long` is 32 bits on ILP32 hosts
    let nsec = i64::from(nsec);
    if !(0..NANOS_PER_SEC as i64).contains(&nsec) {
        return Errno::EINVAL.raw();
    }
    let deadline = match clk {
        RUMPUSER_CLOCK_RELWALL => deadline_after(h.clock_monotonic(), sec, nsec),
        RUMPUSER_CLOCK_ABSMONO => absolute_deadline(sec, nsec),
        _ => return Errno::EINVAL.raw(),
    };
    sched::klock_wrap(|| h.sleep_until(deadline));
    0
}

// ---- random, console, errno, signals, exit ---------------------------------

/// `rumpuser_getrandom`.
///
/// # Safety
/// `buf` is valid for `buflen` bytes; `retp` a valid out-pointer.
pub unsafe fn getrandom<H: Hypervisor>(
    h: &H,
    buf: *mut c_void,
    buflen: usize,
    flags: c_int,
    retp: *mut usize,
) -> c_int {
    if retp.is_null() || (buf.is_null() && buflen != 0) {
        return Errno::EINVAL.raw();
    }
    let flags = match RandomFlags::from_raw(flags) {
        Ok(f) => f,
        Err(e) => return e.raw(),
    };
    if buflen == 0 {
        // SAFETY: checked non-NULL.
        unsafe { *retp = 0 };
        return 0;
    }
    // SAFETY: non-NULL and `buflen` bytes writable per the caller's contract.
    let out = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, buflen) };
    match h.getrandom(out, flags) {
        // Zero bytes with success would hang the kernel's entropy loop.
        Ok(0) => Errno::EAGAIN.raw(),
        Ok(n) => {
            // SAFETY: checked non-NULL.
            unsafe { *retp = n.min(buflen) };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_putchar`.
pub fn putchar<H: Hypervisor>(h: &H, ch: c_int) {
    h.putchar(ch as u8);
}

/// Backend of the C `rumpuser_dprintf` shim: writes formatted bytes.
///
/// # Safety
/// `buf` is valid for `len` bytes.
pub unsafe fn dprintf_write<H: Hypervisor>(h: &H, buf: *const c_char, len: usize) {
    if !buf.is_null() && len != 0 {
        // SAFETY: caller's contract.
        h.console_write(unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), len) });
    }
}

/// `rumpuser_seterrno`.
pub fn seterrno<H: Hypervisor>(h: &H, error: c_int) {
    h.set_errno(error);
}

/// `rumpuser_kill`.
pub fn kill<H: Hypervisor>(h: &H, pid: i64, sig: c_int) -> c_int {
    if sig < 0 {
        return Errno::EINVAL.raw();
    }
    if sig == 0 {
        return 0;
    }
    rc(h.kill(pid, sig))
}

/// `rumpuser_exit`.
pub fn exit<H: Hypervisor>(h: &H, value: c_int) -> ! {
    h.exit(if value == RUMPUSER_PANIC {
        ExitKind::Panic
    } else {
        ExitKind::Status(value)
    })
}

// ---- threads and curlwp ------------------------------------------------------

/// `rumpuser_thread_create`.
///
/// # Safety
/// `name` is NULL or a C string; `cookie` is a valid out-pointer when `mustjoin`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn thread_create<H: Hypervisor>(
    h: &H,
    fun: Option<ThreadFn>,
    arg: *mut c_void,
    name: *const c_char,
    mustjoin: c_int,
    priority: c_int,
    cpuidx: c_int,
    cookie: *mut *mut c_void,
) -> c_int {
    let Some(fun) = fun else {
        return Errno::EINVAL.raw();
    };
    let joinable = mustjoin != 0;
    if joinable && cookie.is_null() {
        return Errno::EINVAL.raw();
    }
    let spec = ThreadSpec {
        // SAFETY: caller's contract.
        name: unsafe { cstr(name) },
        joinable,
        priority,
        cpuidx,
    };
    match h.thread_create(fun, SendPtr(arg), spec) {
        Ok(handle) => {
            if joinable {
                let Some(handle) = handle else {
                    diag::report(format_args!("platform returned no join handle"));
                    return Errno::EINVAL.raw();
                };
                // SAFETY: checked non-NULL above; written only for joinable threads.
                unsafe { *cookie = Box::into_raw(Box::new(handle)) as *mut c_void };
            }
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_thread_join`.
///
/// # Safety
/// `cookie` came from `rumpuser_thread_create` with `mustjoin` and is joined once.
pub unsafe fn thread_join<H: Hypervisor>(h: &H, cookie: *mut c_void) -> c_int {
    if cookie.is_null() {
        return Errno::EINVAL.raw();
    }
    // SAFETY: the cookie is a leaked `Box<H::Thread>` made by `thread_create`.
    let handle = unsafe { Box::from_raw(cookie as *mut H::Thread) };
    rc(sched::klock_wrap(move || h.thread_join(*handle)))
}

/// `rumpuser_curlwpop`: applies the transition, reporting ones the contract forbids.
pub fn curlwpop<H: Hypervisor>(h: &H, op: c_int, l: *mut Lwp) {
    match op {
        RUMPUSER_LWP_CREATE | RUMPUSER_LWP_DESTROY => {
            if l.is_null() {
                diag::report(format_args!("curlwpop({op}) with a NULL lwp"));
            }
        }
        RUMPUSER_LWP_SET => {
            let cur = h.curlwp();
            if !cur.is_null() {
                diag::report(format_args!("curlwpop(SET, {l:p}) while {cur:p} is set"));
            }
            h.set_curlwp(l);
        }
        RUMPUSER_LWP_CLEAR => {
            let cur = h.curlwp();
            if cur != l {
                diag::report(format_args!(
                    "curlwpop(CLEAR, {l:p}) but current is {cur:p}"
                ));
            }
            h.set_curlwp(ptr::null_mut());
        }
        _ => diag::report(format_args!("curlwpop: unknown op {op}")),
    }
}

// ---- mutexes ---------------------------------------------------------------
//
// Every acquisition records the caller's lwp as the owner and every
// release checks and clears it; a failed try checks for a self-deadlock
// before it waits. Why these checks and not others: `crate::lockcheck`.

/// Records the caller as the owner after an acquisition (every mutex: the
/// contract needs it for KMUTEX, the misuse checks for all).
#[inline]
fn set_owner<H: Hypervisor>(h: &H, m: &MutexObj<H>) {
    m.owner.store(h.curlwp(), Ordering::Relaxed);
}

/// The mutex as a misuse report names it.
fn mlock<H: Hypervisor>(m: &MutexObj<H>) -> Lock {
    Lock::Mutex(m as *const MutexObj<H> as *const c_void, m.flags)
}

/// A try failed: aborts if the caller itself holds the mutex (it would
/// wait for itself forever), else returns so that it can wait.
#[inline]
fn check_not_owner<H: Hypervisor>(h: &H, m: &MutexObj<H>, op: &str) {
    let me = h.curlwp();
    if !me.is_null() && m.owner.load(Ordering::Relaxed) == me {
        lockcheck::misuse(
            h,
            op,
            mlock(m),
            format_args!("is already held by the caller (self-deadlock)"),
        );
    }
}

/// Aborts unless the caller holds the mutex (`op` is about to release it).
#[inline]
fn check_owner<H: Hypervisor>(h: &H, m: &MutexObj<H>, op: &str) {
    let owner = m.owner.load(Ordering::Relaxed);
    if owner != h.curlwp() {
        not_owner(h, m, op, owner);
    }
}

#[cold]
#[inline(never)]
fn not_owner<H: Hypervisor>(h: &H, m: &MutexObj<H>, op: &str, owner: *mut Lwp) -> ! {
    if !owner.is_null() {
        lockcheck::misuse(
            h,
            op,
            mlock(m),
            format_args!("is held by {}, not by the caller", Holder(owner)),
        )
    } else if h.mutex_is_locked(&m.raw) {
        lockcheck::misuse(
            h,
            op,
            mlock(m),
            format_args!("is held by a thread without an lwp, not by the caller"),
        )
    } else {
        lockcheck::misuse(h, op, mlock(m), format_args!("is not held"))
    }
}

/// `rumpuser_mutex_init`.
///
/// # Safety
/// `mtxp` is a valid out-pointer.
pub unsafe fn mutex_init<H: Hypervisor>(h: &H, mtxp: *mut *mut c_void, flags: c_int) {
    if mtxp.is_null() {
        diag::fatal(format_args!("rumpuser_mutex_init with a NULL out-pointer"));
    }
    let flags = MutexFlags::from_raw(flags).unwrap_or_else(|| {
        diag::report(format_args!(
            "rumpuser_mutex_init: invalid flags {flags:#x}, using KMUTEX"
        ));
        MutexFlags {
            spin: false,
            kmutex: true,
        }
    });
    let m = Box::new(MutexObj::new(h, flags));
    // SAFETY: checked non-NULL.
    unsafe { *mtxp = Box::into_raw(m) as *mut c_void };
}

/// Turns a C mutex pointer into a reference.
///
/// # Safety
/// `m` came from `mutex_init` of this library and is not destroyed.
#[inline]
unsafe fn mtx<'a, H: Hypervisor>(m: *mut c_void) -> &'a MutexObj<H> {
    if m.is_null() {
        diag::fatal(format_args!("NULL rumpuser_mtx"));
    }
    // SAFETY: caller's contract.
    unsafe { &*(m as *const MutexObj<H>) }
}

/// `rumpuser_mutex_enter`: spin mutexes never release the CPU; others try
/// first and release it only to wait. Re-entry by the holder aborts.
///
/// # Safety
/// See `mtx`.
#[inline]
pub unsafe fn mutex_enter<H: Hypervisor>(h: &H, m: *mut c_void) {
    // SAFETY: caller's contract.
    let m = unsafe { mtx::<H>(m) };
    if !h.mutex_try_lock(&m.raw) {
        return mutex_enter_wait(h, m);
    }
    set_owner(h, m);
}

/// `mutex_enter` after a failed try, to the owner record: out of line and
/// reached by a tail call, so that the uncontended path saves no registers
/// for it.
#[cold]
#[inline(never)]
fn mutex_enter_wait<H: Hypervisor>(h: &H, m: &MutexObj<H>) {
    check_not_owner(h, m, "mutex_enter");
    if m.flags.spin {
        h.mutex_lock(&m.raw);
    } else {
        sched::klock_wrap(|| h.mutex_lock(&m.raw));
    }
    set_owner(h, m);
}

/// `rumpuser_mutex_enter_nowrap`: never touches the scheduler.
///
/// # Safety
/// See `mtx`.
#[inline]
pub unsafe fn mutex_enter_nowrap<H: Hypervisor>(h: &H, m: *mut c_void) {
    // SAFETY: caller's contract.
    let m = unsafe { mtx::<H>(m) };
    if !h.mutex_try_lock(&m.raw) {
        check_not_owner(h, m, "mutex_enter_nowrap");
        h.mutex_lock(&m.raw);
    }
    set_owner(h, m);
}

/// `rumpuser_mutex_tryenter`: 0 or `EBUSY` (also when the caller holds it).
///
/// # Safety
/// See `mtx`.
pub unsafe fn mutex_tryenter<H: Hypervisor>(h: &H, m: *mut c_void) -> c_int {
    // SAFETY: caller's contract.
    let m = unsafe { mtx::<H>(m) };
    if h.mutex_try_lock(&m.raw) {
        set_owner(h, m);
        0
    } else {
        Errno::EBUSY.raw()
    }
}

/// `rumpuser_mutex_exit`: aborts unless the caller holds the mutex.
///
/// # Safety
/// See `mtx`.
#[inline]
pub unsafe fn mutex_exit<H: Hypervisor>(h: &H, m: *mut c_void) {
    // SAFETY: caller's contract.
    let m = unsafe { mtx::<H>(m) };
    check_owner(h, m, "mutex_exit");
    m.owner.store(ptr::null_mut(), Ordering::Relaxed);
    h.mutex_unlock(&m.raw);
}

/// `rumpuser_mutex_destroy`: aborts if the mutex is held.
///
/// # Safety
/// See `mtx`; no waiters, not used again.
pub unsafe fn mutex_destroy<H: Hypervisor>(h: &H, m: *mut c_void) {
    if m.is_null() {
        return;
    }
    // SAFETY: caller's contract.
    let mo = unsafe { mtx::<H>(m) };
    if h.mutex_is_locked(&mo.raw) {
        let owner = mo.owner.load(Ordering::Relaxed);
        lockcheck::misuse(
            h,
            "mutex_destroy",
            mlock(mo),
            format_args!("is held (by {})", Holder(owner)),
        );
    }
    // SAFETY: made by `Box::into_raw` in `mutex_init`, destroyed once.
    drop(unsafe { Box::from_raw(m as *mut MutexObj<H>) });
}

/// `rumpuser_mutex_owner`: the owner of a KMUTEX, NULL otherwise.
///
/// # Safety
/// See `mtx`; `ownerp` is a valid out-pointer.
pub unsafe fn mutex_owner<H: Hypervisor>(_h: &H, m: *mut c_void, ownerp: *mut *mut Lwp) {
    // SAFETY: caller's contract.
    let m = unsafe { mtx::<H>(m) };
    if ownerp.is_null() {
        return;
    }
    if !m.flags.kmutex {
        // SAFETY: checked non-NULL.
        return unsafe { non_kmutex_owner(ownerp) };
    }
    // SAFETY: checked non-NULL.
    unsafe { *ownerp = m.owner.load(Ordering::Relaxed) };
}

/// `mutex_owner` of a mutex without `RUMPUSER_MTX_KMUTEX`: reported, NULL.
/// Out of line (a tail call), so that the hot path saves no registers.
///
/// # Safety
/// `ownerp` is a valid out-pointer.
#[cold]
#[inline(never)]
unsafe fn non_kmutex_owner(ownerp: *mut *mut Lwp) {
    diag::report(format_args!("rumpuser_mutex_owner on a non-KMUTEX mutex"));
    // SAFETY: caller's contract.
    unsafe { *ownerp = ptr::null_mut() };
}

// ---- rwlocks ---------------------------------------------------------------
//
// The writer lwp is recorded for every write hold; a failed try checks
// that the caller is not the writer, and every release and downgrade
// checks the hold (`crate::lockcheck`).

/// `rumpuser_rw_init`.
///
/// # Safety
/// `rwp` is a valid out-pointer.
pub unsafe fn rw_init<H: Hypervisor>(h: &H, rwp: *mut *mut c_void) {
    if rwp.is_null() {
        diag::fatal(format_args!("rumpuser_rw_init with a NULL out-pointer"));
    }
    // SAFETY: checked non-NULL.
    unsafe { *rwp = Box::into_raw(Box::new(RwObj::new(h))) as *mut c_void };
}

/// # Safety
/// `rw` came from `rw_init` of this library and is not destroyed.
#[inline]
unsafe fn rwl<'a, H: Hypervisor>(rw: *mut c_void) -> &'a RwObj<H> {
    if rw.is_null() {
        diag::fatal(format_args!("NULL rumpuser_rw"));
    }
    // SAFETY: caller's contract.
    unsafe { &*(rw as *const RwObj<H>) }
}

/// The rwlock as a misuse report names it.
fn rlock<H: Hypervisor>(rw: &RwObj<H>) -> Lock {
    Lock::Rw(rw as *const RwObj<H> as *const c_void)
}

/// Whether the caller (an lwp) is the writer.
#[inline]
fn is_writer<H: Hypervisor>(h: &H, rw: &RwObj<H>) -> bool {
    let me = h.curlwp();
    !me.is_null() && rw.writer.load(Ordering::Relaxed) == me
}

/// A try failed: aborts if the caller holds the lock for writing (it
/// would wait for itself forever).
#[inline]
fn check_not_writer<H: Hypervisor>(h: &H, rw: &RwObj<H>, op: &str) {
    if is_writer(h, rw) {
        lockcheck::misuse(
            h,
            op,
            rlock(rw),
            format_args!("is already held for writing by the caller (self-deadlock)"),
        );
    }
}

/// `rumpuser_rw_enter`: try first, release the CPU only to wait. Entering
/// a lock the caller holds for writing aborts.
///
/// # Safety
/// See `rwl`.
#[inline]
pub unsafe fn rw_enter<H: Hypervisor>(h: &H, op: c_int, rw: *mut c_void) {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    match RwMode::from_raw(op) {
        Some(RwMode::Reader) => {
            if !h.rw_try_read(&rw.raw) {
                rw_enter_wait(h, rw, RwMode::Reader);
            }
        }
        Some(RwMode::Writer) => {
            if !h.rw_try_write(&rw.raw) {
                return rw_enter_wait(h, rw, RwMode::Writer);
            }
            rw.writer.store(h.curlwp(), Ordering::Relaxed);
        }
        // Proceeding without the lock would silently break exclusion.
        None => diag::fatal(format_args!("rumpuser_rw_enter: invalid op {op}")),
    }
}

/// `rw_enter` after a failed try, to the writer record: out of line and
/// reached by a tail call, so that the uncontended path saves no registers
/// for it.
#[cold]
#[inline(never)]
fn rw_enter_wait<H: Hypervisor>(h: &H, rw: &RwObj<H>, mode: RwMode) {
    match mode {
        RwMode::Reader => {
            check_not_writer(h, rw, "rw_enter(READER)");
            sched::klock_wrap(|| h.rw_read(&rw.raw));
        }
        RwMode::Writer => {
            check_not_writer(h, rw, "rw_enter(WRITER)");
            sched::klock_wrap(|| h.rw_write(&rw.raw));
            rw.writer.store(h.curlwp(), Ordering::Relaxed);
        }
    }
}

/// `rumpuser_rw_tryenter`: 0, `EBUSY`, or `EINVAL` for a bad op.
///
/// # Safety
/// See `rwl`.
pub unsafe fn rw_tryenter<H: Hypervisor>(h: &H, op: c_int, rw: *mut c_void) -> c_int {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    let ok = match RwMode::from_raw(op) {
        Some(RwMode::Reader) => h.rw_try_read(&rw.raw),
        Some(RwMode::Writer) => {
            let ok = h.rw_try_write(&rw.raw);
            if ok {
                rw.writer.store(h.curlwp(), Ordering::Relaxed);
            }
            ok
        }
        None => return Errno::EINVAL.raw(),
    };
    if ok {
        0
    } else {
        Errno::EBUSY.raw()
    }
}

/// `rumpuser_rw_tryupgrade`: 0 (now the writer) or `EBUSY`.
///
/// # Safety
/// See `rwl`; the caller holds a read lock.
pub unsafe fn rw_tryupgrade<H: Hypervisor>(h: &H, rw: *mut c_void) -> c_int {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    if h.rw_try_upgrade(&rw.raw) {
        rw.writer.store(h.curlwp(), Ordering::Relaxed);
        0
    } else {
        Errno::EBUSY.raw()
    }
}

/// `rumpuser_rw_downgrade`: atomic in the platform, so it never blocks;
/// aborts unless the caller holds the lock for writing.
///
/// # Safety
/// See `rwl`.
pub unsafe fn rw_downgrade<H: Hypervisor>(h: &H, rw: *mut c_void) {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    if !h.rw_is_write_locked(&rw.raw) || rw.writer.load(Ordering::Relaxed) != h.curlwp() {
        rw_not_held(h, rw, "rw_downgrade", "for writing ");
    }
    rw.writer.store(ptr::null_mut(), Ordering::Relaxed);
    h.rw_downgrade(&rw.raw);
}

/// Reports a release or downgrade of a hold the caller does not have.
#[cold]
#[inline(never)]
fn rw_not_held<H: Hypervisor>(h: &H, rw: &RwObj<H>, op: &str, mode: &str) -> ! {
    if h.rw_is_write_locked(&rw.raw) {
        let writer = rw.writer.load(Ordering::Relaxed);
        lockcheck::misuse(
            h,
            op,
            rlock(rw),
            format_args!(
                "is held for writing by {}, not by the caller",
                Holder(writer)
            ),
        )
    } else if h.rw_has_readers(&rw.raw) {
        lockcheck::misuse(
            h,
            op,
            rlock(rw),
            format_args!("is not held {mode}by the caller (only read-held)"),
        )
    } else {
        lockcheck::misuse(h, op, rlock(rw), format_args!("is not held"))
    }
}

/// `rumpuser_rw_exit`: a write-held lock can only be held by the caller, so
/// the lock state tells which hold to release. Aborts if another lwp holds
/// it for writing, or if it is free (which the read release itself tells,
/// so the check costs no extra read of the lock).
///
/// # Safety
/// See `rwl`.
#[inline]
pub unsafe fn rw_exit<H: Hypervisor>(h: &H, rw: *mut c_void) {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    if h.rw_is_write_locked(&rw.raw) {
        if rw.writer.load(Ordering::Relaxed) != h.curlwp() {
            rw_not_held(h, rw, "rw_exit", "");
        }
        rw.writer.store(ptr::null_mut(), Ordering::Relaxed);
        h.rw_unlock_write(&rw.raw);
    } else if !h.rw_try_unlock_read(&rw.raw) {
        rw_not_held(h, rw, "rw_exit", "");
    }
}

/// `rumpuser_rw_destroy`: aborts if the lock is held.
///
/// # Safety
/// See `rwl`; not used again.
pub unsafe fn rw_destroy<H: Hypervisor>(h: &H, rw: *mut c_void) {
    if rw.is_null() {
        return;
    }
    // SAFETY: caller's contract.
    let ro = unsafe { rwl::<H>(rw) };
    if h.rw_is_write_locked(&ro.raw) {
        let writer = ro.writer.load(Ordering::Relaxed);
        lockcheck::misuse(
            h,
            "rw_destroy",
            rlock(ro),
            format_args!("is held for writing (by {})", Holder(writer)),
        );
    }
    if h.rw_has_readers(&ro.raw) {
        lockcheck::misuse(
            h,
            "rw_destroy",
            rlock(ro),
            format_args!("is held for reading"),
        );
    }
    // SAFETY: made by `Box::into_raw` in `rw_init`, destroyed once.
    drop(unsafe { Box::from_raw(rw as *mut RwObj<H>) });
}

/// `rumpuser_rw_held`: WRITER = the calling lwp is the writer; READER = any reader.
///
/// # Safety
/// See `rwl`; `heldp` is a valid out-pointer.
pub unsafe fn rw_held<H: Hypervisor>(h: &H, op: c_int, rw: *mut c_void, heldp: *mut c_int) {
    // SAFETY: caller's contract.
    let rw = unsafe { rwl::<H>(rw) };
    if heldp.is_null() {
        return;
    }
    let held = match RwMode::from_raw(op) {
        Some(RwMode::Writer) => {
            h.rw_is_write_locked(&rw.raw) && rw.writer.load(Ordering::Relaxed) == h.curlwp()
        }
        Some(RwMode::Reader) => h.rw_has_readers(&rw.raw),
        None => {
            diag::report(format_args!("rumpuser_rw_held: invalid op {op}"));
            false
        }
    };
    // SAFETY: checked non-NULL.
    unsafe { *heldp = held as c_int };
}

// ---- condition variables ---------------------------------------------------

/// `rumpuser_cv_init`.
///
/// # Safety
/// `cvp` is a valid out-pointer.
pub unsafe fn cv_init<H: Hypervisor>(h: &H, cvp: *mut *mut c_void) {
    if cvp.is_null() {
        diag::fatal(format_args!("rumpuser_cv_init with a NULL out-pointer"));
    }
    // SAFETY: checked non-NULL.
    unsafe { *cvp = Box::into_raw(Box::new(CvObj::new(h))) as *mut c_void };
}

/// # Safety
/// `cv` came from `cv_init` of this library and is not destroyed.
#[inline]
unsafe fn cvo<'a, H: Hypervisor>(cv: *mut c_void) -> &'a CvObj<H> {
    if cv.is_null() {
        diag::fatal(format_args!("NULL rumpuser_cv"));
    }
    // SAFETY: caller's contract.
    unsafe { &*(cv as *const CvObj<H>) }
}

/// `rumpuser_cv_destroy`.
///
/// # Safety
/// See `cvo`; no waiters, not used again.
pub unsafe fn cv_destroy<H: Hypervisor>(_h: &H, cv: *mut c_void) {
    if !cv.is_null() {
        // SAFETY: made by `Box::into_raw` in `cv_init`, destroyed once.
        drop(unsafe { Box::from_raw(cv as *mut CvObj<H>) });
    }
}

/// The interlocked wait of contract 2.5, shared by `cv_wait` and `cv_timedwait`.
fn cv_wait_wrapped<H: Hypervisor>(
    h: &H,
    cv: &CvObj<H>,
    m: &MutexObj<H>,
    mraw: *mut c_void,
    deadline: Option<MonoNanos>,
) -> WaitOutcome {
    // 2. Register as a waiter while still holding the mutex.
    cv.waiters.fetch_add(1, Ordering::Relaxed);
    // 3. Release the CPU, passing the mutex as interlock.
    let n = sched::release_cpu(mraw);
    // Only now must the caller hold the mutex: the kernel's scheduler
    // mutex is taken for it in step 3 (the contract 2.5 exception).
    check_owner(
        h,
        m,
        if deadline.is_some() {
            "cv_timedwait"
        } else {
            "cv_wait"
        },
    );
    // 4. The owner is cleared before sleeping.
    m.owner.store(ptr::null_mut(), Ordering::Relaxed);
    // 5. Atomically release the mutex and sleep.
    let outcome = h.cond_wait(&cv.raw, &m.raw, deadline);
    // 6. Reacquire in the mandated order.
    if m.flags.spin && m.flags.kmutex {
        // CPU first, then the mutex without giving the CPU up: a thread
        // holding a CPU may be host-blocked on this spin mutex.
        sched::reacquire_cpu(n, mraw);
        h.mutex_lock(&m.raw);
        set_owner(h, m);
    } else {
        // SPIN-only (mandatory: the scheduler-mutex interlock) and adaptive
        // KMUTEX (the reference's order): mutex first, then the CPU. The
        // owner is recorded before the CPU is retaken, because retaking it
        // releases the scheduler mutex (contract 2.5) and the record must
        // not outlive the hold.
        h.mutex_lock(&m.raw);
        set_owner(h, m);
        sched::reacquire_cpu(n, mraw);
    }
    // 7. Unregister.
    cv.waiters.fetch_sub(1, Ordering::Relaxed);
    outcome
}

/// `rumpuser_cv_wait`.
///
/// # Safety
/// See `cvo` and `mtx`.
pub unsafe fn cv_wait<H: Hypervisor>(h: &H, cv: *mut c_void, m: *mut c_void) {
    // SAFETY: caller's contract.
    let (c, mo) = unsafe { (cvo::<H>(cv), mtx::<H>(m)) };
    cv_wait_wrapped(h, c, mo, m, None);
}

/// `rumpuser_cv_wait_nowrap`: the same wait with no CPU interaction.
///
/// # Safety
/// See `cvo` and `mtx`.
pub unsafe fn cv_wait_nowrap<H: Hypervisor>(h: &H, cv: *mut c_void, m: *mut c_void) {
    // SAFETY: caller's contract.
    let (c, mo) = unsafe { (cvo::<H>(cv), mtx::<H>(m)) };
    check_owner(h, mo, "cv_wait_nowrap");
    c.waiters.fetch_add(1, Ordering::Relaxed);
    mo.owner.store(ptr::null_mut(), Ordering::Relaxed);
    h.cond_wait(&c.raw, &mo.raw, None);
    h.mutex_lock(&mo.raw);
    set_owner(h, mo);
    c.waiters.fetch_sub(1, Ordering::Relaxed);
}

/// `rumpuser_cv_timedwait`: relative timeout; 0 if woken, `ETIMEDOUT` after
/// the deadline (computed on the monotonic clock before the CPU is released,
/// so time spent waiting for the CPU afterwards is not added).
///
/// # Safety
/// See `cvo` and `mtx`.
pub unsafe fn cv_timedwait<H: Hypervisor>(
    h: &H,
    cv: *mut c_void,
    m: *mut c_void,
    sec: i64,
    nsec: i64,
) -> c_int {
    // SAFETY: caller's contract.
    let (c, mo) = unsafe { (cvo::<H>(cv), mtx::<H>(m)) };
    if sec < 0 || nsec < 0 || (sec == 0 && nsec == 0) {
        // Already expired: report the timeout without giving anything up.
        return Errno::ETIMEDOUT.raw();
    }
    let deadline = deadline_after(h.clock_monotonic(), sec, nsec);
    match cv_wait_wrapped(h, c, mo, m, Some(deadline)) {
        WaitOutcome::Woken => 0,
        WaitOutcome::TimedOut => Errno::ETIMEDOUT.raw(),
    }
}

/// `rumpuser_cv_signal`.
///
/// # Safety
/// See `cvo`.
pub unsafe fn cv_signal<H: Hypervisor>(h: &H, cv: *mut c_void) {
    // SAFETY: caller's contract.
    h.cond_signal(&unsafe { cvo::<H>(cv) }.raw);
}

/// `rumpuser_cv_broadcast`.
///
/// # Safety
/// See `cvo`.
pub unsafe fn cv_broadcast<H: Hypervisor>(h: &H, cv: *mut c_void) {
    // SAFETY: caller's contract.
    h.cond_broadcast(&unsafe { cvo::<H>(cv) }.raw);
}

/// `rumpuser_cv_has_waiters`.
///
/// # Safety
/// See `cvo`; `nwaitersp` is a valid out-pointer.
pub unsafe fn cv_has_waiters<H: Hypervisor>(_h: &H, cv: *mut c_void, nwaitersp: *mut c_int) {
    // SAFETY: caller's contract.
    let c = unsafe { cvo::<H>(cv) };
    if !nwaitersp.is_null() {
        // SAFETY: checked non-NULL.
        unsafe { *nwaitersp = c.waiters.load(Ordering::Relaxed) as c_int };
    }
}

// ---- dl, daemonize -----------------------------------------------------------

/// `rumpuser_dl_bootstrap`.
pub fn dl_bootstrap<H: Hypervisor>(
    h: &H,
    modinit: Option<ModinitFn>,
    symload: Option<SymloadFn>,
    compload: Option<CompLoadFn>,
) {
    match (modinit, symload, compload) {
        (Some(m), Some(s), Some(c)) => h.dl_bootstrap(m, s, c),
        _ => diag::report(format_args!("rumpuser_dl_bootstrap with a NULL callback")),
    }
}

/// `rumpuser_daemonize_begin`.
pub fn daemonize_begin<H: Hypervisor>(h: &H) -> c_int {
    rc(h.daemonize_begin())
}

/// `rumpuser_daemonize_done`.
pub fn daemonize_done<H: Hypervisor>(h: &H, error: c_int) -> c_int {
    rc(h.daemonize_done(error))
}

// ---- syscall proxy -----------------------------------------------------------

/// `rumpuser_sp_init`.
///
/// # Safety
/// Arguments are C strings (any may be NULL).
pub unsafe fn sp_init<H: Hypervisor>(
    h: &H,
    url: *const c_char,
    ostype: *const c_char,
    osrelease: *const c_char,
    machine: *const c_char,
) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EOPNOTSUPP.raw();
    };
    // SAFETY: caller's contract.
    let (Some(url), Some(o), Some(r), Some(m)) =
        (unsafe { (cstr(url), cstr(ostype), cstr(osrelease), cstr(machine)) })
    else {
        return Errno::EINVAL.raw();
    };
    rc(sp.init(url, o, r, m))
}

/// `rumpuser_sp_copyin`.
///
/// # Safety
/// `laddr` is valid for `len` bytes.
pub unsafe fn sp_copyin<H: Hypervisor>(
    h: &H,
    arg: *mut c_void,
    raddr: *const c_void,
    laddr: *mut c_void,
    len: usize,
) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EFAULT.raw();
    };
    if laddr.is_null() && len != 0 {
        return Errno::EFAULT.raw();
    }
    let buf = if len == 0 {
        &mut [][..]
    } else {
        // SAFETY: caller's contract.
        unsafe { core::slice::from_raw_parts_mut(laddr as *mut u8, len) }
    };
    rc(sched::klock_wrap(|| sp.copyin(arg, raddr, buf)))
}

/// `rumpuser_sp_copyinstr`.
///
/// # Safety
/// `laddr` is valid for `*lenp` bytes; `lenp` a valid in/out pointer.
pub unsafe fn sp_copyinstr<H: Hypervisor>(
    h: &H,
    arg: *mut c_void,
    raddr: *const c_void,
    laddr: *mut c_void,
    lenp: *mut usize,
) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EFAULT.raw();
    };
    if lenp.is_null() || laddr.is_null() {
        return Errno::EFAULT.raw();
    }
    // SAFETY: caller's contract.
    let len = unsafe { *lenp };
    // SAFETY: caller's contract.
    let buf = unsafe { core::slice::from_raw_parts_mut(laddr as *mut u8, len) };
    match sched::klock_wrap(|| sp.copyinstr(arg, raddr, buf)) {
        Ok(n) => {
            // SAFETY: checked non-NULL.
            unsafe { *lenp = n };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_sp_copyout`.
///
/// # Safety
/// `laddr` is valid for `len` bytes.
pub unsafe fn sp_copyout<H: Hypervisor>(
    h: &H,
    arg: *mut c_void,
    laddr: *const c_void,
    raddr: *mut c_void,
    len: usize,
) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EFAULT.raw();
    };
    if laddr.is_null() && len != 0 {
        return Errno::EFAULT.raw();
    }
    let buf = if len == 0 {
        &[][..]
    } else {
        // SAFETY: caller's contract.
        unsafe { core::slice::from_raw_parts(laddr as *const u8, len) }
    };
    rc(sched::klock_wrap(|| sp.copyout(arg, buf, raddr)))
}

/// `rumpuser_sp_copyoutstr`.
///
/// # Safety
/// `laddr` is valid for `*lenp` bytes; `lenp` a valid pointer.
pub unsafe fn sp_copyoutstr<H: Hypervisor>(
    h: &H,
    arg: *mut c_void,
    laddr: *const c_void,
    raddr: *mut c_void,
    lenp: *mut usize,
) -> c_int {
    if lenp.is_null() {
        return Errno::EFAULT.raw();
    }
    // SAFETY: checked non-NULL; the rest is the caller's contract.
    unsafe { sp_copyout(h, arg, laddr, raddr, *lenp) }
}

/// `rumpuser_sp_anonmmap`.
///
/// # Safety
/// `addrp` is a valid out-pointer.
pub unsafe fn sp_anonmmap<H: Hypervisor>(
    h: &H,
    arg: *mut c_void,
    len: usize,
    addrp: *mut *mut c_void,
) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EFAULT.raw();
    };
    if addrp.is_null() {
        return Errno::EFAULT.raw();
    }
    match sched::klock_wrap(|| sp.anonmmap(arg, len)) {
        Ok(p) => {
            // SAFETY: checked non-NULL.
            unsafe { *addrp = p };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `rumpuser_sp_raise`.
pub fn sp_raise<H: Hypervisor>(h: &H, arg: *mut c_void, signo: c_int) -> c_int {
    let Some(sp) = h.sysproxy() else {
        return Errno::EFAULT.raw();
    };
    rc(sched::klock_wrap(|| sp.raise(arg, signo)))
}

/// `rumpuser_sp_fini`.
pub fn sp_fini<H: Hypervisor>(h: &H, arg: *mut c_void) {
    if let Some(sp) = h.sysproxy() {
        sp.fini(arg);
    }
}

// ---- component helpers (rumpuser_component.c) ----------------------------------

/// `rumpuser_component_unschedule`: the cookie encodes the biglock count.
/// The component then blocks in the host, so the platform may move the
/// caller off a shared host thread ([`Sched::component_block_begin`](crate::Sched::component_block_begin)).
pub fn component_unschedule<H: Hypervisor>(h: &H) -> *mut c_void {
    let cookie = sched::release_cpu(ptr::null_mut()) as isize as *mut c_void;
    h.component_block_begin();
    cookie
}

/// `rumpuser_component_schedule`: NULL means zero biglocks.
pub fn component_schedule<H: Hypervisor>(h: &H, cookie: *mut c_void) {
    h.component_block_end();
    sched::reacquire_cpu(cookie as isize as c_int, ptr::null_mut());
}

/// `rumpuser_component_kthread`.
pub fn component_kthread() {
    let e = sched::adopt_helper_thread();
    if e != 0 {
        diag::report(format_args!(
            "rumpuser_component_kthread: newlwp failed: {e}"
        ));
    }
}

/// `rumpuser_component_kthread_release`.
pub fn component_kthread_release() {
    sched::release_helper_thread();
}

/// `rumpuser_component_curlwp`.
pub fn component_curlwp() -> *mut Lwp {
    sched::schedule();
    let l = sched::lwproc_curlwp();
    sched::unschedule();
    l
}

/// `rumpuser_component_switchlwp`.
pub fn component_switchlwp(l: *mut Lwp) {
    sched::schedule();
    sched::lwproc_switch(l);
    sched::unschedule();
}

/// `rumpuser_component_errtrans`: host errno to NetBSD errno.
pub fn component_errtrans(hosterr: c_int) -> c_int {
    crate::errno::linux_to_netbsd(hosterr)
}
