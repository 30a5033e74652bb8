//! Named model kernels for tests and benches that need a kernel to
//! initialise a library with but test something else.
//!
//! [`LwpKernel`] is a kernel of lwps only, counting its scheduling
//! upcalls: the CPU is never really taken or given (so it costs the
//! library's paths nothing), `rump_lwproc_*` are done with the library's
//! own curlwp calls on fresh lwp tokens, and it has no syscall proxy. Up
//! to [`MAX_SLOTS`] libraries of one process each get their own instance
//! ([`init_lwp_kernel`]), because the upcalls must call back into the
//! library that made them.

use crate::hyp::Hyp;
use crate::upcalls::Kernel;
use rumpuser_core::abi::{
    Lwp, RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_CREATE, RUMPUSER_LWP_DESTROY, RUMPUSER_LWP_SET,
};
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// At most this many libraries get an [`LwpKernel`] in one process.
pub const MAX_SLOTS: usize = 4;

/// Counts of the four scheduling upcalls of one kernel instance.
#[derive(Default)]
pub struct Counters {
    schedule: AtomicU64,
    unschedule: AtomicU64,
    backend_unschedule: AtomicU64,
    backend_schedule: AtomicU64,
}

impl Counters {
    /// `[schedule, unschedule, backend_unschedule, backend_schedule]`.
    pub fn get(&self) -> [u64; 4] {
        [
            self.schedule.load(Ordering::Relaxed),
            self.unschedule.load(Ordering::Relaxed),
            self.backend_unschedule.load(Ordering::Relaxed),
            self.backend_schedule.load(Ordering::Relaxed),
        ]
    }
}

/// Counts an upcall. A plain load and store rather than a locked
/// read-modify-write: the count is informational (concurrent upcalls may
/// lose an increment) and must not add an atomic RMW to the paths
/// measured.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

struct Slot {
    hyp: OnceLock<Hyp>,
    counters: Counters,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Slot = Slot {
    hyp: OnceLock::new(),
    counters: Counters {
        schedule: AtomicU64::new(0),
        unschedule: AtomicU64::new(0),
        backend_unschedule: AtomicU64::new(0),
        backend_schedule: AtomicU64::new(0),
    },
};
static SLOTS: [Slot; MAX_SLOTS] = [FREE; MAX_SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// The kernel of lwps only, for the library in slot `S` (see the module
/// docs).
pub struct LwpKernel<const S: usize>;

impl<const S: usize> LwpKernel<S> {
    fn hyp() -> Hyp {
        *SLOTS[S]
            .hyp
            .get()
            .expect("upcall before the library was installed")
    }
    fn counters() -> &'static Counters {
        &SLOTS[S].counters
    }
}

impl<const S: usize> Kernel for LwpKernel<S> {
    fn schedule() {
        bump(&Self::counters().schedule);
    }

    fn unschedule() {
        bump(&Self::counters().unschedule);
    }

    unsafe fn backend_unschedule(
        _nlocks: c_int,
        count: Option<&mut c_int>,
        _interlock: *mut c_void,
    ) {
        bump(&Self::counters().backend_unschedule);
        if let Some(c) = count {
            *c = 0;
        }
    }

    unsafe fn backend_schedule(_nlocks: c_int, _interlock: *mut c_void) {
        bump(&Self::counters().backend_schedule);
    }

    /// `rump_lwproc_switch(l)`: unbind the current lwp, bind `l`.
    unsafe fn lwproc_switch(l: *mut Lwp) {
        let h = Self::hyp();
        // SAFETY: the library's own curlwp calls, in the order the kernel
        // uses them; this kernel never dereferences an lwp.
        unsafe {
            let cur = h.curlwp();
            if !cur.is_null() {
                h.curlwpop(RUMPUSER_LWP_CLEAR, cur);
            }
            if !l.is_null() {
                h.curlwpop(RUMPUSER_LWP_SET, l);
            }
        }
    }

    /// `rump_lwproc_releaselwp()`: unbind and destroy the current lwp.
    fn lwproc_release() {
        let h = Self::hyp();
        let cur = h.curlwp();
        if !cur.is_null() {
            // SAFETY: as in `lwproc_switch`; the lwp is a token of
            // `new_lwp` (every lwp this kernel and `bind_lwp` bind is).
            unsafe {
                h.curlwpop(RUMPUSER_LWP_CLEAR, cur);
                h.curlwpop(RUMPUSER_LWP_DESTROY, cur);
                free_lwp(cur);
            }
        }
    }

    /// `rump_lwproc_newlwp(pid)`: a fresh lwp bound to the calling thread.
    fn lwproc_newlwp(_pid: i32) -> c_int {
        let h = Self::hyp();
        let l = new_lwp();
        // SAFETY: as in `lwproc_switch`, with a fresh lwp.
        unsafe {
            h.curlwpop(RUMPUSER_LWP_CREATE, l);
            let cur = h.curlwp();
            if !cur.is_null() {
                h.curlwpop(RUMPUSER_LWP_CLEAR, cur);
            }
            h.curlwpop(RUMPUSER_LWP_SET, l);
        }
        0
    }

    fn lwproc_curlwp() -> *mut Lwp {
        Self::hyp().curlwp()
    }
}

/// Initialises `hyp`'s library with an [`LwpKernel`] of its own: returns
/// the slot (for [`counts`]) or `rumpuser_init`'s error number. Panics
/// after [`MAX_SLOTS`] libraries.
pub fn init_lwp_kernel(hyp: Hyp) -> Result<usize, c_int> {
    let slot = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
    assert!(slot < MAX_SLOTS, "at most {MAX_SLOTS} libraries");
    if SLOTS[slot].hyp.set(hyp).is_err() {
        unreachable!("slot {slot} reused");
    }
    let e = match slot {
        0 => hyp.init::<LwpKernel<0>>(),
        1 => hyp.init::<LwpKernel<1>>(),
        2 => hyp.init::<LwpKernel<2>>(),
        3 => hyp.init::<LwpKernel<3>>(),
        _ => unreachable!("checked above"),
    };
    match e {
        0 => Ok(slot),
        e => Err(e),
    }
}

/// The upcall counts of the [`LwpKernel`] in `slot`.
pub fn counts(slot: usize) -> [u64; 4] {
    SLOTS[slot].counters.get()
}

/// A fresh lwp token: the kernel's `struct lwp` is opaque to the
/// hypervisor and [`LwpKernel`] never looks inside, so any unique address
/// will do.
fn new_lwp() -> *mut Lwp {
    Box::into_raw(Box::new(0u64)).cast()
}

/// Frees a token of [`new_lwp`].
///
/// # Safety
/// `l` came from [`new_lwp`] and is not used afterwards.
unsafe fn free_lwp(l: *mut Lwp) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(l.cast::<u64>()) });
}

/// An lwp bound to the calling thread (`CREATE` + `SET`) until dropped
/// (`CLEAR` + `DESTROY`), for a library running an [`LwpKernel`].
pub struct LwpGuard {
    hyp: Hyp,
    l: *mut Lwp,
}

/// Gives the calling thread (which has no lwp) a fresh one.
pub fn bind_lwp(hyp: Hyp) -> LwpGuard {
    let l = new_lwp();
    // SAFETY: a fresh, unique token; an `LwpKernel` never dereferences it.
    unsafe {
        hyp.curlwpop(RUMPUSER_LWP_CREATE, l);
        hyp.curlwpop(RUMPUSER_LWP_SET, l);
    }
    LwpGuard { hyp, l }
}

impl Drop for LwpGuard {
    fn drop(&mut self) {
        // SAFETY: the lwp bound to this thread by `bind_lwp`, freed once.
        unsafe {
            self.hyp.curlwpop(RUMPUSER_LWP_CLEAR, self.l);
            self.hyp.curlwpop(RUMPUSER_LWP_DESTROY, self.l);
            free_lwp(self.l);
        }
    }
}
