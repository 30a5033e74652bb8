//! Kernel-style threads for the cases: created with
//! `rumpuser_thread_create` (through [`Hyp::spawn`]), given a model lwp the
//! way threads.c does (`CREATE` on the creator, `SET` on the new thread
//! before it takes a CPU), and run a closure while holding a virtual CPU.

use super::hyp::{Hyp, Thread};
use super::model::model;
use super::KitApi;
use crate::abi::{RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_CREATE, RUMPUSER_LWP_DESTROY, RUMPUSER_LWP_SET};
use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, Ordering};

/// A joinable kit thread.
pub struct KThread(Thread);

/// Set by a new thread whose curlwp was not NULL at start (a violation).
pub static STARTED_WITH_CURLWP: AtomicBool = AtomicBool::new(false);

/// Creates a thread running `f` in kernel context; joinable iff `join`.
/// Returns the hypercall's error number on failure.
pub fn spawn(
    api: KitApi,
    name: &core::ffi::CStr,
    join: bool,
    f: impl FnOnce() + Send + 'static,
) -> Result<Option<KThread>, c_int> {
    let hyp = Hyp::new(api);
    let m = model();
    let lwp = m.new_lwp(false);
    m.lwpop(RUMPUSER_LWP_CREATE, lwp);
    let r = hyp.spawn(name, join, move || {
        if !hyp.curlwp().is_null() {
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
    });
    match r {
        Ok(t) => Ok(t.map(KThread)),
        Err(e) => {
            m.lwpop(RUMPUSER_LWP_DESTROY, lwp);
            // SAFETY: never given to a thread (the closure was dropped unrun).
            unsafe { m.free_lwp(lwp) };
            Err(e)
        }
    }
}

impl KThread {
    /// `rumpuser_thread_join` (from a scheduled thread).
    pub fn join(self) -> c_int {
        self.0.join()
    }
}
