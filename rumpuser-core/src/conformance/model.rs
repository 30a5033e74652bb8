//! The model kernel: a minimal implementation of the kernel side of the
//! scheduling contract (rump.c, scheduler.c, lwproc.c) that records what a
//! hypervisor does with it.
//!
//! Virtual CPUs are built exactly like the real kernel builds them, from the
//! hypervisor's own SPIN mutex and cv with `_nowrap` calls, so the model
//! runs on any platform. Every lwp is a [`ModelLwp`] that counts how often
//! its thread released and reacquired a CPU and what state a cv interlock
//! was in when the CPU was retaken. Upcalls made in a state the contract
//! forbids (releasing a CPU one does not hold, nested schedule, ...) are
//! recorded as violations, which fail the test that caused them.

use super::hyp::{Cv, Hyp, Mtx};
use super::upcalls::{self, Kernel};
use super::KitApi;
use crate::abi::{
    Hyperup, Lwp, RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_CREATE, RUMPUSER_LWP_DESTROY, RUMPUSER_LWP_SET,
    RUMPUSER_MTX_SPIN,
};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, Ordering};

/// What a CPU reacquisition saw of its interlock mutex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterlockSeen {
    /// No interlock was passed.
    None = 0,
    /// The interlock was free (nobody held it).
    Free = 1,
    /// The interlock was held (by the caller, in a controlled test).
    Held = 2,
}

/// The kit's `struct lwp`.
pub struct ModelLwp {
    /// Unique id, for messages.
    pub id: u32,
    /// This lwp's thread holds a virtual CPU.
    pub holds_cpu: AtomicBool,
    /// `hyp_backend_unschedule` calls made by this lwp.
    pub releases: AtomicU32,
    /// `hyp_backend_schedule` calls made by this lwp.
    pub reacquires: AtomicU32,
    /// Biglock holds (the model only counts them).
    pub biglocks: AtomicI32,
    /// Interlock state at the last `hyp_backend_schedule`.
    pub interlock_seen: AtomicU8,
    /// Temporary lwp made by `hyp_schedule` (freed at unschedule).
    temp: bool,
    /// Released with `hyp_lwproc_release`.
    exiting: AtomicBool,
}

impl ModelLwp {
    fn new(id: u32, temp: bool) -> ModelLwp {
        ModelLwp {
            id,
            holds_cpu: AtomicBool::new(false),
            releases: AtomicU32::new(0),
            reacquires: AtomicU32::new(0),
            biglocks: AtomicI32::new(0),
            interlock_seen: AtomicU8::new(0),
            temp,
            exiting: AtomicBool::new(false),
        }
    }

    /// As the opaque kernel pointer.
    pub fn as_lwp(&self) -> *mut Lwp {
        self as *const ModelLwp as *mut Lwp
    }

    /// The interlock state seen at the last CPU reacquisition.
    pub fn last_interlock(&self) -> InterlockSeen {
        match self.interlock_seen.load(Ordering::Relaxed) {
            1 => InterlockSeen::Free,
            2 => InterlockSeen::Held,
            _ => InterlockSeen::None,
        }
    }
}

/// Global state of the model kernel.
pub struct Model {
    hyp: Hyp,
    cpu_mtx: Mtx,
    cpu_cv: Cv,
    free_cpus: AtomicU32,
    /// Number of virtual CPUs.
    pub ncpu: u32,
    /// The "scheduler mutex" that the kernel passes as a cv interlock without
    /// holding it (contract 2.5); `hyp_backend_unschedule` takes it and
    /// `hyp_backend_schedule` drops it, like scheduler.c.
    pub sched_mtx: *mut c_void,
    sched: Mtx,
    next_id: AtomicU32,
    violations: spin::Mutex<Vec<String>>,
    nviolations: AtomicU32,
}

// SAFETY: the raw pointers are hypervisor lock objects, which are made to be
// shared between threads; everything else is atomic or behind a lock.
unsafe impl Sync for Model {}
// SAFETY: see `Sync`.
unsafe impl Send for Model {}

static MODEL: spin::Once<Model> = spin::Once::new();

/// The model, once [`install`] ran.
pub fn model() -> &'static Model {
    MODEL.get().expect("conformance model kernel not installed")
}

/// The model kernel as a [`Kernel`]: its upcalls.
pub struct ModelKernel;

/// The upcall table handed to `rumpuser_init`.
pub static HYPERUP: Hyperup = upcalls::table::<ModelKernel>();

/// Creates the model's CPUs with the hypervisor's own primitives. Must run
/// after `rumpuser_init` succeeded.
pub fn install(api: KitApi, ncpu: u32) -> &'static Model {
    MODEL.call_once(|| {
        let hyp = Hyp::new(api);
        let cpu_mtx = hyp.mutex(RUMPUSER_MTX_SPIN);
        let cpu_cv = hyp.cv();
        let sched = hyp.mutex(RUMPUSER_MTX_SPIN);
        Model {
            hyp,
            cpu_mtx,
            cpu_cv,
            free_cpus: AtomicU32::new(ncpu),
            ncpu,
            sched_mtx: sched.raw(),
            sched,
            next_id: AtomicU32::new(1),
            violations: spin::Mutex::new(Vec::new()),
            nviolations: AtomicU32::new(0),
        }
    })
}

impl Model {
    /// Records a contract violation.
    pub fn violation(&self, msg: String) {
        self.nviolations.fetch_add(1, Ordering::Relaxed);
        let mut v = self.violations.lock();
        if v.len() < 64 {
            v.push(msg);
        }
    }

    /// Number of violations so far.
    pub fn violation_count(&self) -> u32 {
        self.nviolations.load(Ordering::Relaxed)
    }

    /// Violation messages recorded since index `from`.
    pub fn violations_since(&self, from: u32) -> Vec<String> {
        let v = self.violations.lock();
        v.iter().skip(from as usize).cloned().collect()
    }

    /// A new lwp (leaked; freed by [`Model::free_lwp`]).
    pub fn new_lwp(&self, temp: bool) -> &'static ModelLwp {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Box::leak(Box::new(ModelLwp::new(id, temp)))
    }

    /// Frees an lwp made by [`Model::new_lwp`].
    ///
    /// # Safety
    /// `l` is not used afterwards by anyone.
    pub unsafe fn free_lwp(&self, l: &'static ModelLwp) {
        // SAFETY: made by `Box::leak` in `new_lwp`; caller guarantees no use.
        drop(unsafe { Box::from_raw(l as *const ModelLwp as *mut ModelLwp) });
    }

    /// The calling thread's lwp.
    pub fn current(&self) -> Option<&'static ModelLwp> {
        let l = self.hyp.curlwp() as *const ModelLwp;
        // SAFETY: every lwp the kit SETs is a leaked `ModelLwp`.
        unsafe { l.as_ref() }
    }

    /// `curlwpop` through the hypervisor.
    pub fn lwpop(&self, op: c_int, l: &ModelLwp) {
        // SAFETY: a live model lwp, which is what the model's upcalls expect
        // to get back from curlwp.
        unsafe { self.hyp.curlwpop(op, l.as_lwp()) };
    }

    /// Takes a virtual CPU for `l` (scheduler.c, with nowrap primitives:
    /// the model-owned SPIN mutex and cv).
    pub fn take_cpu(&self, l: &ModelLwp) {
        self.cpu_mtx.enter_nowrap();
        while self.free_cpus.load(Ordering::Relaxed) == 0 {
            self.cpu_cv.wait_nowrap(self.cpu_mtx);
        }
        self.free_cpus.fetch_sub(1, Ordering::Relaxed);
        self.cpu_mtx.exit();
        l.holds_cpu.store(true, Ordering::Release);
    }

    /// Gives `l`'s virtual CPU back.
    pub fn release_cpu(&self, l: &ModelLwp) {
        l.holds_cpu.store(false, Ordering::Release);
        self.cpu_mtx.enter_nowrap();
        self.free_cpus.fetch_add(1, Ordering::Relaxed);
        self.cpu_cv.broadcast();
        self.cpu_mtx.exit();
    }

    /// `rump_schedule` for the calling (test) thread.
    pub fn enter(&self) {
        ModelKernel::schedule();
    }

    /// `rump_unschedule` for the calling (test) thread.
    pub fn leave(&self) {
        ModelKernel::unschedule();
    }

    fn drop_lwp_if_done(&self, l: &'static ModelLwp) {
        if l.temp || l.exiting.load(Ordering::Relaxed) {
            self.lwpop(RUMPUSER_LWP_CLEAR, l);
            self.lwpop(RUMPUSER_LWP_DESTROY, l);
            // SAFETY: cleared from the thread and destroyed; nobody else has it.
            unsafe { self.free_lwp(l) };
        }
    }
}

/// The upcalls (scheduler.c, lwproc.c). `rfork` answers `ENXIO` and
/// `syscall` `ENOSYS` ([`Kernel`]'s defaults): the model has no syscall
/// proxy.
impl Kernel for ModelKernel {
    fn schedule() {
        let m = model();
        let l = match m.current() {
            Some(l) => l,
            None => {
                let l = m.new_lwp(true);
                m.lwpop(RUMPUSER_LWP_CREATE, l);
                m.lwpop(RUMPUSER_LWP_SET, l);
                l
            }
        };
        if l.holds_cpu.load(Ordering::Acquire) {
            m.violation(alloc::format!("lwp {}: nested hyp_schedule", l.id));
            return;
        }
        m.take_cpu(l);
    }

    fn unschedule() {
        let m = model();
        let Some(l) = m.current() else {
            m.violation("hyp_unschedule without curlwp".into());
            return;
        };
        if !l.holds_cpu.load(Ordering::Acquire) {
            m.violation(alloc::format!("lwp {}: hyp_unschedule without a CPU", l.id));
            return;
        }
        m.release_cpu(l);
        m.drop_lwp_if_done(l);
    }

    unsafe fn backend_unschedule(
        _nlocks: c_int,
        count: Option<&mut c_int>,
        interlock: *mut c_void,
    ) {
        let m = model();
        let Some(l) = m.current() else {
            m.violation("hyp_backend_unschedule without curlwp".into());
            return;
        };
        if let Some(count) = count {
            *count = l.biglocks.swap(0, Ordering::Relaxed);
        } else {
            m.violation(alloc::format!(
                "lwp {}: hyp_backend_unschedule with NULL countp",
                l.id
            ));
        }
        if !l.holds_cpu.load(Ordering::Acquire) {
            m.violation(alloc::format!(
                "lwp {}: hyp_backend_unschedule without a CPU",
                l.id
            ));
            return;
        }
        l.releases.fetch_add(1, Ordering::Relaxed);
        if !interlock.is_null() && interlock == m.sched_mtx {
            // scheduler.c takes its CPU mutex here (contract 2.5).
            m.sched.enter_nowrap();
        }
        m.release_cpu(l);
    }

    unsafe fn backend_schedule(nlocks: c_int, interlock: *mut c_void) {
        let m = model();
        let Some(l) = m.current() else {
            m.violation("hyp_backend_schedule without curlwp".into());
            return;
        };
        if l.holds_cpu.load(Ordering::Acquire) {
            m.violation(alloc::format!(
                "lwp {}: hyp_backend_schedule while holding a CPU",
                l.id
            ));
            return;
        }
        let seen = if interlock.is_null() {
            InterlockSeen::None
        } else if interlock == m.sched_mtx {
            InterlockSeen::Held
        } else {
            // Probe whether the interlock is held right now. In the kit's tests
            // only the waiting thread uses it, so "busy" means "the caller holds it".
            // SAFETY: the interlock is a live mutex of this hypervisor (the
            // caller's promise).
            let il = unsafe { Mtx::from_raw(m.hyp, interlock) };
            if il.try_enter() {
                il.exit();
                InterlockSeen::Free
            } else {
                InterlockSeen::Held
            }
        };
        l.interlock_seen.store(seen as u8, Ordering::Relaxed);
        m.take_cpu(l);
        l.reacquires.fetch_add(1, Ordering::Relaxed);
        l.biglocks.store(nlocks, Ordering::Relaxed);
        if !interlock.is_null() && interlock == m.sched_mtx {
            // The kernel releases the scheduler mutex it took in
            // `backend_unschedule` (the hypervisor reacquired it for us).
            m.sched.exit();
        }
    }

    unsafe fn lwproc_switch(newl: *mut Lwp) {
        let m = model();
        let old = m.current();
        let cpu = old
            .map(|o| o.holds_cpu.swap(false, Ordering::AcqRel))
            .unwrap_or(false);
        if let Some(o) = old {
            m.lwpop(RUMPUSER_LWP_CLEAR, o);
        }
        // SAFETY: the hypervisor passes back lwps of the kit, which are
        // `ModelLwp`s (the caller's promise).
        if let Some(n) = unsafe { (newl as *const ModelLwp).as_ref() } {
            m.lwpop(RUMPUSER_LWP_SET, n);
            n.holds_cpu.store(cpu, Ordering::Release);
        }
        if let Some(o) = old {
            if o.temp || o.exiting.load(Ordering::Relaxed) {
                m.lwpop(RUMPUSER_LWP_DESTROY, o);
                // SAFETY: cleared and destroyed.
                unsafe { m.free_lwp(o) };
            }
        }
    }

    fn lwproc_release() {
        let m = model();
        match m.current() {
            Some(l) => l.exiting.store(true, Ordering::Relaxed),
            None => m.violation("hyp_lwproc_release without curlwp".into()),
        }
    }

    fn lwproc_newlwp(_pid: i32) -> c_int {
        let m = model();
        let Some(old) = m.current() else {
            m.violation("hyp_lwproc_newlwp without curlwp".into());
            return crate::Errno::EINVAL.raw();
        };
        if !old.holds_cpu.load(Ordering::Acquire) {
            m.violation(alloc::format!(
                "lwp {}: hyp_lwproc_newlwp without a CPU",
                old.id
            ));
        }
        let new = m.new_lwp(false);
        m.lwpop(RUMPUSER_LWP_CLEAR, old);
        m.lwpop(RUMPUSER_LWP_CREATE, new);
        m.lwpop(RUMPUSER_LWP_SET, new);
        new.holds_cpu.store(
            old.holds_cpu.swap(false, Ordering::AcqRel),
            Ordering::Release,
        );
        if old.temp {
            m.lwpop(RUMPUSER_LWP_DESTROY, old);
            // SAFETY: cleared and destroyed.
            unsafe { m.free_lwp(old) };
        }
        0
    }

    fn lwproc_curlwp() -> *mut Lwp {
        match model().current() {
            Some(l) if !l.exiting.load(Ordering::Relaxed) => l.as_lwp(),
            _ => core::ptr::null_mut(),
        }
    }

    fn getpid() -> i32 {
        1
    }
}
