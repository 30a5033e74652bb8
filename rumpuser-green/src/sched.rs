//! [`GreenSched`]: the scheduling half ([`rumpuser_core::Sched`]) of
//! every platform built on [`crate::sched_core`] (the POSIX green flavour,
//! bare metal, Xen). `no_std`.
//!
//! Locks, condition variables, threads, sleeps and curlwp are the same on
//! every green host: they are green-thread operations. What differs is
//! said by the platform's [`Hooks`]: how a host thread enters the green
//! world ([`Hooks::enter`], kept until the hypercall returns: the POSIX
//! flavour takes the token there, see `host::token`; a one-CPU platform
//! has nothing to do), the kernel threads' stack size, starting the
//! scheduler, and what a component does around a blocking host call.
//!
//! ```ignore
//! static MINE: Platform<GreenSched<MyHooks>, MyHost> =
//!     Platform::new(GreenSched(MyHooks), MyHost);
//! rumpuser_core::export_rumpuser!(&MINE);
//! ```
//!
//! The wrappers [`Shared`] and [`Joinable`] make the (deliberately
//! `!Sync`) green primitives usable as the trait's `Send + Sync` types.
//! That is sound only because one host thread at a time runs green code,
//! which the platform guarantees (the token taken in `enter`, or there is
//! only one CPU).

use crate::sched_core::{self, GreenCondvar, ThreadId};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use rumpuser_core::abi::{Lwp, ThreadFn};
use rumpuser_core::types::{MonoNanos, MutexFlags, ThreadSpec, WaitOutcome};
use rumpuser_core::{Errno, HyperResult, Sched, SendPtr};

/// A green object used through the C ABI (see the module docs).
pub struct Shared<T>(pub T);
// SAFETY: on every green platform one host thread at a time runs green
// code (the holder of the token taken by its `guard`, or the one CPU), and
// a token hand-off orders one holder's accesses before the next one's, so
// the object is never touched by two host threads at once.
unsafe impl<T> Sync for Shared<T> {}
// SAFETY: as above; moving an object between green threads is what it is for.
unsafe impl<T> Send for Shared<T> {}

/// Join handle of a joinable kernel thread: its green thread id.
pub struct Joinable(pub ThreadId);

/// What a platform says about running the green scheduler on its host.
pub trait Hooks: Sync + 'static {
    /// What [`enter`](Hooks::enter) returns; dropping it leaves.
    type Entered;

    /// Called first in every hypercall that touches the scheduler, the
    /// result kept until it returns: makes the calling host thread the
    /// one that runs green code (the POSIX flavour's token).
    fn enter(&self) -> Self::Entered;

    /// `f(a)` inside [`enter`](Hooks::enter) and its drop, for hot
    /// hypercalls whose body makes no call (a platform may lay out its
    /// entry so that their fast path saves no registers). Default: just
    /// that.
    #[inline(always)]
    fn stretch<A, R>(&self, a: A, f: impl FnOnce(A) -> R) -> R {
        let _entered = self.enter();
        f(a)
    }

    /// Stack size of kernel threads, in bytes.
    fn stack_size(&self) -> usize;

    /// `rumpuser_init`'s scheduling half (after the host half): start the
    /// scheduler if the platform did not at boot. Default: nothing.
    fn init(&self) -> HyperResult<()> {
        Ok(())
    }

    /// See [`Sched::component_block_begin`]. Default: nothing (one CPU:
    /// a component blocking in a host call blocks everything anyway).
    fn component_block_begin(&self) {}

    /// See [`Sched::component_block_end`]. Default: nothing.
    fn component_block_end(&self) {}
}

/// The scheduling half of a green platform, over [`crate::sched_core`],
/// with the platform's [`Hooks`].
#[derive(Debug)]
pub struct GreenSched<H>(pub H);

/// `rumpuser_thread_create` on a green thread: copies the (possibly
/// stack-allocated) name, spawns, maps errors (`ENOMEM`, `EAGAIN`).
pub fn thread_create(
    entry: ThreadFn,
    arg: SendPtr,
    spec: ThreadSpec<'_>,
    stack_size: usize,
) -> HyperResult<Option<Joinable>> {
    let mut name = [0u8; 32];
    let n = spec.name.map(|n| n.to_bytes()).unwrap_or(b"");
    let l = n.len().min(31);
    name[..l].copy_from_slice(&n[..l]);
    let name = core::str::from_utf8(&name[..l]).unwrap_or("kthread");
    let body = move || {
        let a = arg;
        // SAFETY: the kernel's thread function with its own argument; it
        // ends in `rumpuser_thread_exit` (or returns, which also exits).
        unsafe { entry(a.0) };
    };
    match sched_core::spawn_closure(body, name, stack_size, spec.joinable) {
        Ok(t) => Ok(spec.joinable.then_some(Joinable(t))),
        Err(sched_core::SpawnError::OutOfMemory) => Err(Errno::ENOMEM),
        Err(_) => Err(Errno::EAGAIN),
    }
}

/// `rumpuser_thread_join`.
pub fn thread_join(t: Joinable) -> HyperResult<()> {
    sched_core::join(t.0).map_err(|e| match e {
        sched_core::JoinError::Deadlock => Errno::EDEADLK,
        sched_core::JoinError::NoSuchThread => Errno::ESRCH,
        _ => Errno::EINVAL,
    })
}

/// Condition wait with the mutex released atomically; see
/// [`rumpuser_core::Sched::cond_wait`].
pub fn cond_wait(
    c: &GreenCondvar,
    m: &crate::sched_core::GreenMutex,
    deadline: Option<u64>,
) -> WaitOutcome {
    if c.wait_unlocked(m, deadline) {
        WaitOutcome::TimedOut
    } else {
        WaitOutcome::Woken
    }
}

/// curlwpop(SET) calls seen, and whether `rumpuser_curlwp` was ever called:
/// a kernel built with `RUMP_CURLWP=__thread` sets lwps but never asks.
static SETS: AtomicU32 = AtomicU32::new(0);
static ASKED: AtomicBool = AtomicBool::new(false);

/// The green thread's lwp.
#[inline]
pub fn curlwp() -> *mut Lwp {
    sched_core::curlwp() as *mut Lwp
}

/// `rumpuser_curlwp`: the green thread's lwp, noting that the kernel asks.
#[inline]
pub fn kernel_curlwp() -> *mut Lwp {
    // A plain store (the line stays in this CPU's cache while one host
    // runs the kernel): one instruction, where a test first costs three.
    ASKED.store(true, Ordering::Relaxed);
    curlwp()
}

/// Binds `l` to the green thread; warns once if the kernel evidently keeps
/// curlwp in host TLS (`RUMP_CURLWP=__thread`), which green threads share.
pub fn set_curlwp(l: *mut Lwp) {
    // Counted only until the kernel asks: no read-modify-write on the
    // lwp switches of a kernel that does.
    if !l.is_null() && !ASKED.load(Ordering::Relaxed) && SETS.fetch_add(1, Ordering::Relaxed) == 256
    {
        rumpuser_core::diag::report(format_args!(
            "rumpuser-green: the kernel sets lwps but never calls rumpuser_curlwp(); \
             it was probably built with RUMP_CURLWP=__thread, which green threads cannot support"
        ));
    }
    sched_core::set_curlwp(l.cast())
}

/// Names the running green thread for a diagnostic (lock misuse):
/// `green thread ThreadId(3#1) "name"`.
pub fn describe_thread(out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    match sched_core::current_for_report() {
        Some((id, name)) => write!(out, "green thread {:?} {:?}", id, name.as_str()),
        None => out.write_str("the green host thread outside any green thread"),
    }
}

impl<H: Hooks> GreenSched<H> {
    /// `mutex_unlock` with waiters: the first becomes the owner.
    #[cold]
    #[inline(never)]
    fn mutex_unlock_contended(&self, m: &Shared<sched_core::GreenMutex>) {
        let _entered = self.0.enter();
        m.0.unlock()
    }

    /// The last read hold's release with a writer waiting: it gets the
    /// lock. Returns `true` (a hold was released).
    #[cold]
    #[inline(never)]
    fn rw_unlock_read_contended(&self, rw: &Shared<sched_core::GreenRwLock>) -> bool {
        let _entered = self.0.enter();
        rw.0.unlock_read();
        true
    }

    /// `rw_unlock_write` with waiters: they are granted the lock.
    #[cold]
    #[inline(never)]
    fn rw_unlock_write_contended(&self, rw: &Shared<sched_core::GreenRwLock>) {
        let _entered = self.0.enter();
        rw.0.unlock_write()
    }
}

impl<H: Hooks> Sched for GreenSched<H> {
    type Mutex = Shared<sched_core::GreenMutex>;
    type RwLock = Shared<sched_core::GreenRwLock>;
    type Cond = Shared<GreenCondvar>;
    type Thread = Joinable;

    fn init_sched(&self) -> HyperResult<()> {
        self.0.init()
    }

    /// One virtual CPU: green threads take turns on one host thread at a time.
    fn ncpu(&self) -> u32 {
        1
    }

    fn sleep_until(&self, deadline: MonoNanos) {
        let _entered = self.0.enter();
        sched_core::sleep_until(deadline)
    }

    fn thread_create(
        &self,
        entry: ThreadFn,
        arg: SendPtr,
        spec: ThreadSpec<'_>,
    ) -> HyperResult<Option<Joinable>> {
        let _entered = self.0.enter();
        thread_create(entry, arg, spec, self.0.stack_size())
    }

    fn thread_exit(&self) -> ! {
        let _entered = self.0.enter();
        sched_core::exit()
    }

    fn thread_join(&self, t: Joinable) -> HyperResult<()> {
        let _entered = self.0.enter();
        thread_join(t)
    }

    #[inline]
    fn curlwp(&self) -> *mut Lwp {
        curlwp()
    }

    #[inline]
    fn kernel_curlwp(&self) -> *mut Lwp {
        kernel_curlwp()
    }

    fn set_curlwp(&self, l: *mut Lwp) {
        let _entered = self.0.enter();
        set_curlwp(l)
    }

    fn describe_thread(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let _entered = self.0.enter();
        describe_thread(out)
    }

    fn mutex_new(&self, _flags: MutexFlags) -> Self::Mutex {
        Shared(sched_core::GreenMutex::new())
    }
    #[inline]
    fn mutex_try_lock(&self, m: &Self::Mutex) -> bool {
        self.0.stretch(m, |m| m.0.try_lock())
    }
    fn mutex_lock(&self, m: &Self::Mutex) {
        let _entered = self.0.enter();
        m.0.lock()
    }
    #[inline]
    fn mutex_unlock(&self, m: &Self::Mutex) {
        if !self.0.stretch(m, |m| m.0.unlock_if_uncontended()) {
            self.mutex_unlock_contended(m);
        }
    }
    fn mutex_is_locked(&self, m: &Self::Mutex) -> bool {
        m.0.is_locked()
    }

    fn rw_new(&self) -> Self::RwLock {
        Shared(sched_core::GreenRwLock::new())
    }
    #[inline]
    fn rw_try_read(&self, rw: &Self::RwLock) -> bool {
        self.0.stretch(rw, |rw| rw.0.try_read())
    }
    fn rw_read(&self, rw: &Self::RwLock) {
        let _entered = self.0.enter();
        rw.0.read()
    }
    #[inline]
    fn rw_try_write(&self, rw: &Self::RwLock) -> bool {
        self.0.stretch(rw, |rw| rw.0.try_write())
    }
    fn rw_write(&self, rw: &Self::RwLock) {
        let _entered = self.0.enter();
        rw.0.write()
    }
    #[inline]
    fn rw_unlock_read(&self, rw: &Self::RwLock) {
        self.rw_try_unlock_read(rw);
    }
    #[inline]
    fn rw_try_unlock_read(&self, rw: &Self::RwLock) -> bool {
        match self.0.stretch(rw, |rw| rw.0.unlock_read_if_uncontended()) {
            Some(held) => held,
            None => self.rw_unlock_read_contended(rw),
        }
    }
    #[inline]
    fn rw_unlock_write(&self, rw: &Self::RwLock) {
        if !self.0.stretch(rw, |rw| rw.0.unlock_write_if_uncontended()) {
            self.rw_unlock_write_contended(rw);
        }
    }
    fn rw_downgrade(&self, rw: &Self::RwLock) {
        let _entered = self.0.enter();
        rw.0.downgrade()
    }
    fn rw_try_upgrade(&self, rw: &Self::RwLock) -> bool {
        let _entered = self.0.enter();
        rw.0.try_upgrade()
    }
    fn rw_is_write_locked(&self, rw: &Self::RwLock) -> bool {
        rw.0.is_write_locked()
    }
    fn rw_has_readers(&self, rw: &Self::RwLock) -> bool {
        rw.0.has_readers()
    }

    fn cond_new(&self) -> Self::Cond {
        Shared(GreenCondvar::new())
    }
    fn cond_wait(
        &self,
        c: &Self::Cond,
        m: &Self::Mutex,
        deadline: Option<MonoNanos>,
    ) -> WaitOutcome {
        let _entered = self.0.enter();
        cond_wait(&c.0, &m.0, deadline)
    }
    #[inline]
    fn cond_signal(&self, c: &Self::Cond) {
        let _entered = self.0.enter();
        c.0.notify_one()
    }
    #[inline]
    fn cond_broadcast(&self, c: &Self::Cond) {
        let _entered = self.0.enter();
        c.0.notify_all()
    }

    fn component_block_begin(&self) {
        self.0.component_block_begin()
    }

    fn component_block_end(&self) {
        self.0.component_block_end()
    }
}

/// [`Hooks`] for a platform with one CPU and nothing to enter (bare metal,
/// Xen): the scheduler was started at boot; `stack_size` reads the
/// platform's setting.
#[derive(Debug)]
pub struct OneCpu {
    /// Stack size of kernel threads, read when one is created.
    pub stack_size: fn() -> usize,
}

impl Hooks for OneCpu {
    type Entered = ();
    #[inline(always)]
    fn enter(&self) {}
    fn stack_size(&self) -> usize {
        (self.stack_size)()
    }
}
