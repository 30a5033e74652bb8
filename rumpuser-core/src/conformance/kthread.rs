//! Kernel-style threads for the cases: created with
//! `rumpuser_thread_create`, given a model lwp the way threads.c does
//! (`CREATE` on the creator, `SET` on the new thread before it takes a
//! CPU), and run a closure while holding a virtual CPU.

use super::model::{model, ModelLwp};
use super::KitApi;
use crate::abi::{RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_CREATE, RUMPUSER_LWP_DESTROY, RUMPUSER_LWP_SET};
use alloc::boxed::Box;
use core::ffi::{c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

struct Start {
    api: KitApi,
    lwp: &'static ModelLwp,
    f: Box<dyn FnOnce() + Send>,
}

/// A joinable kit thread.
pub struct KThread {
    api: KitApi,
    cookie: *mut c_void,
}

/// Set by a new thread whose curlwp was not NULL at start (a violation).
pub static STARTED_WITH_CURLWP: AtomicBool = AtomicBool::new(false);

extern "C" fn trampoline(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Box<Start>` leaked by `spawn` for this thread.
    let start = unsafe { Box::from_raw(arg as *mut Start) };
    let Start { api, lwp, f } = *start;
    let m = model();
    // SAFETY: plain hypercall.
    if !unsafe { (api.curlwp)() }.is_null() {
        STARTED_WITH_CURLWP.store(true, Ordering::Relaxed);
        m.violation("a new thread started with a curlwp set".into());
    }
    m.lwpop(RUMPUSER_LWP_SET, lwp);
    m.take_cpu(lwp);
    f();
    m.release_cpu(lwp);
    m.lwpop(RUMPUSER_LWP_CLEAR, lwp);
    m.lwpop(RUMPUSER_LWP_DESTROY, lwp);
    // SAFETY: cleared and destroyed; nobody else holds it.
    unsafe { m.free_lwp(lwp) };
    // SAFETY: ends this thread; no Rust value with a destructor is live.
    unsafe { (api.thread_exit)() }
}

/// Creates a thread running `f` in kernel context; joinable iff `join`.
/// Returns the hypercall's error number on failure.
pub fn spawn(
    api: KitApi,
    name: &core::ffi::CStr,
    join: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<Option<KThread>, c_int> {
    let m = model();
    let lwp = m.new_lwp(false);
    m.lwpop(RUMPUSER_LWP_CREATE, lwp);
    let start = Box::into_raw(Box::new(Start {
        api,
        lwp,
        f: Box::new(f),
    }));
    let mut cookie: *mut c_void = ptr::null_mut();
    // SAFETY: valid trampoline, argument and out-pointer; the name is a C string.
    let r = unsafe {
        (api.thread_create)(
            Some(trampoline),
            start.cast(),
            name.as_ptr(),
            join as c_int,
            0,
            -1,
            if join { &mut cookie } else { ptr::null_mut() },
        )
    };
    if r != 0 {
        // SAFETY: the thread was not created, so the start block is still ours.
        drop(unsafe { Box::from_raw(start) });
        m.lwpop(RUMPUSER_LWP_DESTROY, lwp);
        // SAFETY: never given to a thread.
        unsafe { m.free_lwp(lwp) };
        return Err(r);
    }
    Ok(join.then_some(KThread { api, cookie }))
}

impl KThread {
    /// `rumpuser_thread_join` (from a scheduled thread).
    pub fn join(self) -> c_int {
        // SAFETY: a cookie from a joinable create, joined once.
        unsafe { (self.api.thread_join)(self.cookie) }
    }
}
