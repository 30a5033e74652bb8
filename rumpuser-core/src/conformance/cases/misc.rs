//! seterrno, kill, console, component helpers, dl_bootstrap, daemonize.

use super::super::{CaseResult, Ctx};
use crate::Errno;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicU32, Ordering};

/// Calls that cannot fail observably must at least not crash or block.
pub fn seterrno_kill_putchar_dprintf(ctx: &Ctx) -> CaseResult {
    // SAFETY: plain hypercalls with valid arguments.
    unsafe {
        (ctx.api.seterrno)(0);
        (ctx.api.seterrno)(Errno::ENOENT.raw());
        crate::ensure_eq!(
            (ctx.api.kill)(crate::abi::RUMPUSER_PID_SELF, 0),
            0,
            "kill(sig 0)"
        );
        crate::ensure!(
            (ctx.api.kill)(1, -3) != 0,
            "kill with a negative signal must fail"
        );
        (ctx.api.putchar)(b'\n' as c_int);
        (ctx.api.dprintf)(
            c"rumpuser conformance: dprintf %s %d %zu %p\n".as_ptr(),
            c"ok".as_ptr(),
            17 as c_int,
            42usize,
            ctx as *const Ctx,
        );
    }
    Ok(())
}

/// `component_unschedule`/`schedule` balance the CPU; `errtrans(0)` is 0.
pub fn component_helpers(ctx: &Ctx) -> CaseResult {
    let l = ctx.lwp();
    let r0 = l.releases.load(Ordering::Relaxed);
    // SAFETY: balanced pair from a scheduled thread.
    let cookie = unsafe { (ctx.api.component_unschedule)() };
    crate::ensure!(
        !l.holds_cpu.load(Ordering::Relaxed),
        "component_unschedule kept the CPU"
    );
    // SAFETY: the cookie from the matching unschedule.
    unsafe { (ctx.api.component_schedule)(cookie) };
    crate::ensure!(
        l.holds_cpu.load(Ordering::Relaxed),
        "component_schedule did not retake the CPU"
    );
    crate::ensure_eq!(
        l.releases.load(Ordering::Relaxed),
        r0 + 1,
        "component_unschedule count"
    );
    // SAFETY: pure function.
    crate::ensure_eq!(unsafe { (ctx.api.component_errtrans)(0) }, 0, "errtrans(0)");
    Ok(())
}

static DL_CALLS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" fn modinit(_mi: *const *const c_void, _n: usize) {
    DL_CALLS.fetch_add(1, Ordering::Relaxed);
}
unsafe extern "C" fn symload(_s: *mut c_void, _sb: u64, _t: *mut c_char, _tb: u64) -> c_int {
    DL_CALLS.fetch_add(1, Ordering::Relaxed);
    0
}
unsafe extern "C" fn compload(_rc: *const c_void) {
    DL_CALLS.fetch_add(1, Ordering::Relaxed);
}

/// `dl_bootstrap` runs its callbacks synchronously (if any) and returns;
/// `daemonize_done` without `begin` is an error.
pub fn dl_and_daemonize(ctx: &Ctx) -> CaseResult {
    // SAFETY: valid callbacks; this kit links no rump components.
    unsafe { (ctx.api.dl_bootstrap)(Some(modinit), Some(symload), Some(compload)) };
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.daemonize_done)(0) };
    crate::ensure!(r != 0, "daemonize_done without begin must fail");
    Ok(())
}
