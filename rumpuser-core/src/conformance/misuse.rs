//! Lock misuse the library must stop with an abort and a message instead
//! of a hang or silent corruption: re-entering a held mutex, exiting one
//! the caller does not hold, destroying a held one, waiting on a cv with a
//! mutex the caller does not hold, entering an rwlock the caller holds for
//! writing, releasing or downgrading a hold the caller does not have, and
//! destroying a held rwlock (NetBSD's pthread `librumpuser` aborts on each;
//! see [`crate::lockcheck`] for what is checked and why).
//!
//! Every case ends the process when the library works, so each runs in a
//! process of its own, started by a host-side harness (the flavours'
//! `tests/lock_misuse.rs`, through `rumpuser_testkit::misuse`):
//!
//! 1. the child calls [`run_one`] with the case's name, which initialises
//!    the library with the model kernel, takes a virtual CPU with a model
//!    lwp, and hands the harness (through `expect`) each string the abort
//!    message must contain (`lock misuse`, the operation, the lock's
//!    address and flags, the calling lwp, and another holder's lwp where
//!    there is one) *before* it commits the misuse;
//! 2. the parent checks that the child died of `SIGABRT` and that its
//!    stderr (the library's console) holds every expected string.
//!
//! [`run_one`] returns only if the misuse was not stopped; it then says
//! what happened. A case that hangs (a self-deadlock nobody noticed) is
//! for the parent to time out. Like the rest of the kit this is `no_std`
//! and uses nothing but the C ABI, so it runs on any platform that can
//! start a process per case; the expected strings are the messages of
//! `rumpuser-core`'s checks, so they apply to every platform built on it.

use super::cases::{self, cv, mutex, rwlock, Obj};
use super::kthread::spawn;
use super::{model, Config, Ctx, KitApi};
use crate::abi::{
    Lwp, RUMPUSER_CLOCK_RELWALL, RUMPUSER_MTX_KMUTEX, RUMPUSER_MTX_SPIN, RUMPUSER_RW_READER,
    RUMPUSER_RW_WRITER,
};
use alloc::format;
use alloc::string::String;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

/// One misuse: it calls `expect` with each required string of the abort
/// message, then commits the misuse; returning means it was not stopped.
pub type MisuseFn = fn(&Ctx, &mut dyn FnMut(&str));

/// Every misuse case, by name.
pub const ALL: &[(&str, MisuseFn)] = &[
    ("mutex_enter_held_kmutex", mutex_enter_held_kmutex),
    ("mutex_enter_held_spin_kmutex", mutex_enter_held_spin_kmutex),
    ("mutex_enter_nowrap_held_spin", mutex_enter_nowrap_held_spin),
    ("mutex_exit_free", mutex_exit_free),
    ("mutex_exit_held_by_other", mutex_exit_held_by_other),
    (
        "mutex_exit_spin_held_by_other",
        mutex_exit_spin_held_by_other,
    ),
    ("mutex_destroy_held", mutex_destroy_held),
    ("cv_wait_mutex_not_held", cv_wait_mutex_not_held),
    ("rw_enter_write_held_write", rw_enter_write_held_write),
    ("rw_enter_read_held_write", rw_enter_read_held_write),
    ("rw_exit_free", rw_exit_free),
    ("rw_exit_write_held_by_other", rw_exit_write_held_by_other),
    ("rw_downgrade_read_held", rw_downgrade_read_held),
    ("rw_destroy_write_held", rw_destroy_write_held),
    ("rw_destroy_read_held", rw_destroy_read_held),
];

/// Runs the misuse `name` in this process: `rumpuser_init` with the model
/// kernel's upcalls (so it must be the library's first use in the
/// process), a virtual CPU and an lwp for the caller, then the case.
/// Returns only if the library let the misuse pass (or `name` is unknown),
/// with a description.
pub fn run_one(api: KitApi, cfg: &Config, name: &str, expect: &mut dyn FnMut(&str)) -> String {
    let Some((_, case)) = ALL.iter().find(|(n, _)| *n == name) else {
        return format!("no misuse case named {name:?}");
    };
    if let Err(e) = cases::init::version_and_init(api) {
        return format!("rumpuser_init failed: {e}");
    }
    let m = model::install(api, cfg.ncpu.unwrap_or(2));
    let ctx = Ctx {
        api,
        cfg: cfg.clone(),
    };
    m.enter();
    case(&ctx, expect);
    format!("the library let the misuse {name} pass")
}

fn me(ctx: &Ctx) -> *mut Lwp {
    ctx.lwp().as_lwp()
}

/// The strings every report has: the operation, the lock, the caller.
fn common(expect: &mut dyn FnMut(&str), op: &str, lock: &str, caller: *mut Lwp) {
    expect(&format!("lock misuse: {op}: {lock} "));
    expect(&format!("caller: lwp {caller:p} on "));
}

fn mutex_name(m: Obj, flags: &str) -> String {
    format!("mutex {:p} ({flags})", m.p())
}

fn rw_name(rw: Obj) -> String {
    format!("rwlock {:p}", rw.p())
}

/// Has another kit thread take a lock with `take` and keep it until the
/// process ends; returns that thread's lwp once it holds the lock.
fn held_elsewhere(ctx: &Ctx, take: fn(KitApi, Obj), lock: Obj) -> *mut Lwp {
    static HOLDER: AtomicPtr<Lwp> = AtomicPtr::new(ptr::null_mut());
    let api = ctx.api;
    let t = spawn(api, c"kit-holder", false, move || {
        take(api, lock);
        let l = model::model().current().expect("kit thread has an lwp");
        HOLDER.store(l.as_lwp(), Ordering::Release);
        loop {
            // SAFETY: plain hypercall; the process ends while this sleeps.
            unsafe { (api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, 0, 10_000_000) };
        }
    });
    if t.is_err() {
        return ptr::null_mut();
    }
    ctx.wait_for(10_000, || !HOLDER.load(Ordering::Acquire).is_null());
    HOLDER.load(Ordering::Acquire)
}

/// KMUTEX: `mutex_enter` twice by one lwp.
fn mutex_enter_held_kmutex(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter)(m.p()) };
    common(expect, "mutex_enter", &mutex_name(m, "KMUTEX"), me(ctx));
    expect("is already held by the caller (self-deadlock)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_enter)(m.p()) };
}

/// SPIN|KMUTEX (a kernel spin mutex): `mutex_enter` twice.
fn mutex_enter_held_spin_kmutex(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_SPIN | RUMPUSER_MTX_KMUTEX);
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter)(m.p()) };
    common(
        expect,
        "mutex_enter",
        &mutex_name(m, "SPIN|KMUTEX"),
        me(ctx),
    );
    expect("is already held by the caller (self-deadlock)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_enter)(m.p()) };
}

/// SPIN only (the scheduler's kind): `mutex_enter_nowrap` twice by an lwp.
fn mutex_enter_nowrap_held_spin(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_SPIN);
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter_nowrap)(m.p()) };
    common(
        expect,
        "mutex_enter_nowrap",
        &mutex_name(m, "SPIN"),
        me(ctx),
    );
    expect("is already held by the caller (self-deadlock)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_enter_nowrap)(m.p()) };
}

/// `mutex_exit` of a free mutex.
fn mutex_exit_free(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    common(expect, "mutex_exit", &mutex_name(m, "KMUTEX"), me(ctx));
    expect("is not held");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_exit)(m.p()) };
}

fn take_mutex(api: KitApi, m: Obj) {
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter)(m.p()) };
}

/// `mutex_exit` of a KMUTEX another lwp holds.
fn mutex_exit_held_by_other(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let other = held_elsewhere(ctx, take_mutex, m);
    common(expect, "mutex_exit", &mutex_name(m, "KMUTEX"), me(ctx));
    expect(&format!("is held by lwp {other:p}, not by the caller"));
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_exit)(m.p()) };
}

/// `mutex_exit` of a SPIN mutex another lwp holds.
fn mutex_exit_spin_held_by_other(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_SPIN);
    let other = held_elsewhere(ctx, take_mutex, m);
    common(expect, "mutex_exit", &mutex_name(m, "SPIN"), me(ctx));
    expect(&format!("is held by lwp {other:p}, not by the caller"));
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_exit)(m.p()) };
}

/// `mutex_destroy` of a mutex the caller holds.
fn mutex_destroy_held(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    // SAFETY: live mutex.
    unsafe { (api.mutex_enter)(m.p()) };
    common(expect, "mutex_destroy", &mutex_name(m, "KMUTEX"), me(ctx));
    expect(&format!("is held (by lwp {:p})", me(ctx)));
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.mutex_destroy)(m.p()) };
}

/// `cv_wait` with a mutex nobody holds.
fn cv_wait_mutex_not_held(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let m = mutex(api, RUMPUSER_MTX_KMUTEX);
    let c = cv(api);
    common(expect, "cv_wait", &mutex_name(m, "KMUTEX"), me(ctx));
    expect("is not held");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.cv_wait)(c.p(), m.p()) };
}

/// `rw_enter(WRITER)` by the writer.
fn rw_enter_write_held_write(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_WRITER, rw.p()) };
    common(expect, "rw_enter(WRITER)", &rw_name(rw), me(ctx));
    expect("is already held for writing by the caller (self-deadlock)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_enter)(RUMPUSER_RW_WRITER, rw.p()) };
}

/// `rw_enter(READER)` by the writer.
fn rw_enter_read_held_write(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_WRITER, rw.p()) };
    common(expect, "rw_enter(READER)", &rw_name(rw), me(ctx));
    expect("is already held for writing by the caller (self-deadlock)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_enter)(RUMPUSER_RW_READER, rw.p()) };
}

/// `rw_exit` of a free rwlock.
fn rw_exit_free(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    common(expect, "rw_exit", &rw_name(rw), me(ctx));
    expect("is not held");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_exit)(rw.p()) };
}

fn take_write(api: KitApi, rw: Obj) {
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_WRITER, rw.p()) };
}

/// `rw_exit` of an rwlock another lwp holds for writing.
fn rw_exit_write_held_by_other(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    let other = held_elsewhere(ctx, take_write, rw);
    common(expect, "rw_exit", &rw_name(rw), me(ctx));
    expect(&format!(
        "is held for writing by lwp {other:p}, not by the caller"
    ));
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_exit)(rw.p()) };
}

/// `rw_downgrade` of a read hold.
fn rw_downgrade_read_held(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_READER, rw.p()) };
    common(expect, "rw_downgrade", &rw_name(rw), me(ctx));
    expect("is not held for writing by the caller (only read-held)");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_downgrade)(rw.p()) };
}

/// `rw_destroy` of an rwlock the caller holds for writing.
fn rw_destroy_write_held(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_WRITER, rw.p()) };
    common(expect, "rw_destroy", &rw_name(rw), me(ctx));
    expect(&format!("is held for writing (by lwp {:p})", me(ctx)));
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_destroy)(rw.p()) };
}

/// `rw_destroy` of an rwlock the caller holds for reading.
fn rw_destroy_read_held(ctx: &Ctx, expect: &mut dyn FnMut(&str)) {
    let api = ctx.api;
    let rw = rwlock(api);
    // SAFETY: live rwlock.
    unsafe { (api.rw_enter)(RUMPUSER_RW_READER, rw.p()) };
    common(expect, "rw_destroy", &rw_name(rw), me(ctx));
    expect("is held for reading");
    // SAFETY: the misuse under test; the library aborts.
    unsafe { (api.rw_destroy)(rw.p()) };
}
