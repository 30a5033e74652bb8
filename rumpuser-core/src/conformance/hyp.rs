//! [`Hyp`]: a safe typed client of one implementation's C ABI ([`Api`]),
//! so test code says `m.enter()` where it would write
//! `unsafe { (api.mutex_enter)(m) }`.
//!
//! Handles ([`Mtx`], [`Rw`], [`Cv`]) are the library's object pointers
//! together with the table they came from; they are `Copy`, `Send` and
//! `Sync`, as the objects are made to be shared by kernel threads.
//!
//! What is safe and what is not:
//!
//! * An [`Api`] is trusted to be a v17 implementation: the table of a
//!   crate's own exports, or one built with the `unsafe` [`Api::resolve`],
//!   whose caller vouched for every signature. On a live object every call
//!   is then memory-safe in any order; calling them in an order the
//!   contract forbids (exiting a mutex one does not hold, a cv wait
//!   without its mutex, a blocking call without a virtual CPU) is the
//!   library's to report, and ours aborts with a message.
//! * A handle is used only with the library that made it: every method
//!   calls through the handle's own table, and a cv wait checks that the
//!   mutex comes from the same table.
//! * Destruction is `unsafe`: copies of a handle may outlive it, so the
//!   caller promises none is used afterwards. So is making a handle from a
//!   raw pointer, `curlwpop` (the kernel side dereferences whatever lwp it
//!   is given back) and the raw thread and syscall-proxy calls.
//! * [`Hyp::spawn`] runs a boxed closure on a new thread, which then ends
//!   with `rumpuser_thread_exit` (what rumpfiber requires of a thread
//!   function, and valid everywhere).

use super::upcalls::Kernel;
use crate::abi::{Lwp, ThreadFn, RUMPUSER_CLOCK_ABSMONO, RUMPUSER_CLOCK_RELWALL, RUMPUSER_VERSION};
use crate::api::Api;
use alloc::boxed::Box;
use core::ffi::{c_int, c_long, c_void, CStr};
use core::ptr;

/// The C ABI of one implementation, with safe methods.
#[derive(Clone, Copy)]
pub struct Hyp {
    api: &'static Api,
}

impl Hyp {
    /// A client of `api`.
    pub const fn new(api: &'static Api) -> Hyp {
        Hyp { api }
    }

    /// The raw table, for calls this client does not wrap.
    pub fn api(self) -> &'static Api {
        self.api
    }

    /// `rumpuser_init(17, K::TABLE)`: the library's first call in the
    /// process. Returns its error number (0: initialised).
    pub fn init<K: Kernel>(self) -> c_int {
        self.init_version::<K>(RUMPUSER_VERSION)
    }

    /// `rumpuser_init(version, K::TABLE)` (a version other than 17 must be
    /// refused with an error).
    pub fn init_version<K: Kernel>(self, version: c_int) -> c_int {
        // SAFETY: `K::TABLE` lives forever and its trampolines take the v17
        // upcall arguments.
        unsafe { (self.api.init)(version, &K::TABLE) }
    }

    /// `rumpuser_mutex_init(flags)` (`RUMPUSER_MTX_*`).
    pub fn mutex(self, flags: c_int) -> Mtx {
        let mut m = ptr::null_mut();
        // SAFETY: a valid out-pointer; flags are checked by the library.
        unsafe { (self.api.mutex_init)(&mut m, flags) };
        assert!(!m.is_null(), "rumpuser_mutex_init gave NULL");
        Mtx {
            api: self.api,
            raw: m,
        }
    }

    /// `rumpuser_rw_init`.
    pub fn rwlock(self) -> Rw {
        let mut rw = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        unsafe { (self.api.rw_init)(&mut rw) };
        assert!(!rw.is_null(), "rumpuser_rw_init gave NULL");
        Rw {
            api: self.api,
            raw: rw,
        }
    }

    /// `rumpuser_cv_init`.
    pub fn cv(self) -> Cv {
        let mut cv = ptr::null_mut();
        // SAFETY: a valid out-pointer.
        unsafe { (self.api.cv_init)(&mut cv) };
        assert!(!cv.is_null(), "rumpuser_cv_init gave NULL");
        Cv {
            api: self.api,
            raw: cv,
        }
    }

    /// `rumpuser_curlwp()`: the calling thread's lwp (NULL if none).
    pub fn curlwp(self) -> *mut Lwp {
        // SAFETY: no arguments.
        unsafe { (self.api.curlwp)() }
    }

    /// `rumpuser_curlwpop(op, l)` (`RUMPUSER_LWP_*`).
    ///
    /// # Safety
    /// `l` is an lwp of the kernel whose upcalls this library calls (the
    /// kernel may dereference what [`Hyp::curlwp`] later returns), and the
    /// operations come in the order the contract gives them.
    pub unsafe fn curlwpop(self, op: c_int, l: *mut Lwp) {
        // SAFETY: the caller's promise.
        unsafe { (self.api.curlwpop)(op, l) }
    }

    /// `rumpuser_clock_gettime(clock)`: `(seconds, nanoseconds)` or the
    /// error number.
    pub fn clock_gettime(self, clock: c_int) -> Result<(i64, c_long), c_int> {
        let (mut s, mut n) = (0i64, 0 as c_long);
        // SAFETY: valid out-pointers.
        match unsafe { (self.api.clock_gettime)(clock, &mut s, &mut n) } {
            0 => Ok((s, n)),
            e => Err(e),
        }
    }

    /// The monotonic clock in nanoseconds (0 if the library fails to read
    /// it).
    pub fn now_ns(self) -> u64 {
        let (s, n) = self.clock_gettime(RUMPUSER_CLOCK_ABSMONO).unwrap_or((0, 0));
        s as u64 * 1_000_000_000 + n as u64
    }

    /// `rumpuser_clock_sleep(clock, sec, nsec)`: the error number.
    pub fn clock_sleep(self, clock: c_int, sec: i64, nsec: c_long) -> c_int {
        // SAFETY: plain values.
        unsafe { (self.api.clock_sleep)(clock, sec, nsec) }
    }

    /// A relative sleep of `ns` nanoseconds (releases the CPU).
    pub fn sleep_ns(self, ns: u64) -> c_int {
        self.clock_sleep(
            RUMPUSER_CLOCK_RELWALL,
            (ns / 1_000_000_000) as i64,
            (ns % 1_000_000_000) as c_long,
        )
    }

    /// Runs `f` on a new thread made by `rumpuser_thread_create` (priority
    /// 0, no CPU binding), which ends with `rumpuser_thread_exit` when `f`
    /// returns. The thread is joinable iff `joinable`; returns the create
    /// call's error number if it failed.
    pub fn spawn(
        self,
        name: &CStr,
        joinable: bool,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<Option<Thread>, c_int> {
        let start = Box::into_raw(Box::new(Start {
            api: self.api,
            f: Box::new(f),
        }));
        // SAFETY: `run_start` takes ownership of the start block and ends
        // as the library requires.
        let r = unsafe { self.thread_create(run_start, start.cast(), name, joinable, 0, -1) };
        if r.is_err() {
            // SAFETY: no thread was created, so the start block is still ours.
            drop(unsafe { Box::from_raw(start) });
        }
        r
    }

    /// `rumpuser_thread_create(f, arg, name, joinable, pri, cpuidx)`.
    ///
    /// # Safety
    /// Running `f(arg)` on a new thread is sound (`arg` stays valid as long
    /// as `f` uses it), and `f` ends the way the library requires.
    pub unsafe fn thread_create(
        self,
        f: ThreadFn,
        arg: *mut c_void,
        name: &CStr,
        joinable: bool,
        pri: c_int,
        cpuidx: c_int,
    ) -> Result<Option<Thread>, c_int> {
        let mut cookie = ptr::null_mut();
        // SAFETY: the caller's promise for `f` and `arg`; the name is a C
        // string; the cookie pointer is valid (NULL when not joinable).
        let r = unsafe {
            (self.api.thread_create)(
                Some(f),
                arg,
                name.as_ptr(),
                joinable as c_int,
                pri,
                cpuidx,
                if joinable {
                    &mut cookie
                } else {
                    ptr::null_mut()
                },
            )
        };
        match r {
            0 => Ok(joinable.then_some(Thread {
                api: self.api,
                cookie,
            })),
            e => Err(e),
        }
    }

    /// `rumpuser_thread_exit()`.
    ///
    /// # Safety
    /// The calling thread was made by this library's
    /// `rumpuser_thread_create`, and no value with a destructor is live on
    /// its stack.
    pub unsafe fn thread_exit(self) -> ! {
        // SAFETY: the caller's promise.
        unsafe { (self.api.thread_exit)() }
    }

    /// `rumpuser_sp_init(url, ostype, osrelease, machine)`: the error number.
    pub fn sp_init(self, url: &CStr, ostype: &CStr, osrelease: &CStr, machine: &CStr) -> c_int {
        // SAFETY: four C strings, read during the call.
        unsafe {
            (self.api.sp_init)(
                url.as_ptr(),
                ostype.as_ptr(),
                osrelease.as_ptr(),
                machine.as_ptr(),
            )
        }
    }

    /// `rumpuser_sp_fini(NULL)`: a halt of the local kernel stops the
    /// syscall proxy server.
    pub fn sp_fini_local(self) {
        // SAFETY: NULL is the cookie of a local halt.
        unsafe { (self.api.sp_fini)(ptr::null_mut()) }
    }
}

/// What [`Hyp::spawn`] hands its new thread.
struct Start {
    api: &'static Api,
    f: Box<dyn FnOnce() + Send>,
}

extern "C" fn run_start(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Box<Start>` leaked by `Hyp::spawn` for this thread.
    let start = unsafe { Box::from_raw(arg.cast::<Start>()) };
    let Start { api, f } = *start;
    f();
    // SAFETY: a thread of this library; `f` and its box are gone.
    unsafe { (api.thread_exit)() }
}

/// A `struct rumpuser_mtx *` of one library.
#[derive(Clone, Copy)]
pub struct Mtx {
    api: &'static Api,
    raw: *mut c_void,
}

/// A `struct rumpuser_rw *` of one library.
#[derive(Clone, Copy)]
pub struct Rw {
    api: &'static Api,
    raw: *mut c_void,
}

/// A `struct rumpuser_cv *` of one library.
#[derive(Clone, Copy)]
pub struct Cv {
    api: &'static Api,
    raw: *mut c_void,
}

// SAFETY: the library's lock objects are made to be used from any kernel
// thread; every use goes through the library that made them.
unsafe impl Send for Mtx {}
// SAFETY: as above.
unsafe impl Sync for Mtx {}
// SAFETY: as above.
unsafe impl Send for Rw {}
// SAFETY: as above.
unsafe impl Sync for Rw {}
// SAFETY: as above.
unsafe impl Send for Cv {}
// SAFETY: as above.
unsafe impl Sync for Cv {}

impl Mtx {
    /// A handle for an object `hyp`'s library made.
    ///
    /// # Safety
    /// `raw` is a live mutex of that library.
    pub unsafe fn from_raw(hyp: Hyp, raw: *mut c_void) -> Mtx {
        Mtx { api: hyp.api, raw }
    }

    /// The object pointer.
    pub fn raw(self) -> *mut c_void {
        self.raw
    }

    /// `rumpuser_mutex_enter` (may release the CPU to wait).
    #[inline]
    pub fn enter(self) {
        // SAFETY: a live mutex of this library (see the module docs).
        unsafe { (self.api.mutex_enter)(self.raw) }
    }

    /// `rumpuser_mutex_enter_nowrap` (never touches the CPU).
    #[inline]
    pub fn enter_nowrap(self) {
        // SAFETY: as in `enter`.
        unsafe { (self.api.mutex_enter_nowrap)(self.raw) }
    }

    /// `rumpuser_mutex_tryenter`: whether it was taken.
    #[inline]
    pub fn try_enter(self) -> bool {
        // SAFETY: as in `enter`.
        unsafe { (self.api.mutex_tryenter)(self.raw) == 0 }
    }

    /// `rumpuser_mutex_exit`.
    #[inline]
    pub fn exit(self) {
        // SAFETY: as in `enter`.
        unsafe { (self.api.mutex_exit)(self.raw) }
    }

    /// `rumpuser_mutex_owner`: the holder's lwp (NULL: free, or not a
    /// KMUTEX).
    pub fn owner(self) -> *mut Lwp {
        let mut l = ptr::null_mut();
        // SAFETY: as in `enter`, with a valid out-pointer.
        unsafe { (self.api.mutex_owner)(self.raw, &mut l) };
        l
    }

    /// `rumpuser_mutex_destroy`.
    ///
    /// # Safety
    /// No copy of this handle is used afterwards.
    pub unsafe fn destroy(self) {
        // SAFETY: the caller's promise.
        unsafe { (self.api.mutex_destroy)(self.raw) }
    }
}

impl Rw {
    /// A handle for an object `hyp`'s library made.
    ///
    /// # Safety
    /// `raw` is a live rwlock of that library.
    pub unsafe fn from_raw(hyp: Hyp, raw: *mut c_void) -> Rw {
        Rw { api: hyp.api, raw }
    }

    /// The object pointer.
    pub fn raw(self) -> *mut c_void {
        self.raw
    }

    /// `rumpuser_rw_enter(op)` (`RUMPUSER_RW_READER` or `_WRITER`).
    #[inline]
    pub fn enter(self, op: c_int) {
        // SAFETY: a live rwlock of this library (see the module docs).
        unsafe { (self.api.rw_enter)(op, self.raw) }
    }

    /// `rumpuser_rw_tryenter(op)`: whether it was taken.
    #[inline]
    pub fn try_enter(self, op: c_int) -> bool {
        // SAFETY: as in `enter`.
        unsafe { (self.api.rw_tryenter)(op, self.raw) == 0 }
    }

    /// `rumpuser_rw_tryupgrade`: whether the read hold became a write hold.
    pub fn try_upgrade(self) -> bool {
        // SAFETY: as in `enter`.
        unsafe { (self.api.rw_tryupgrade)(self.raw) == 0 }
    }

    /// `rumpuser_rw_downgrade`.
    pub fn downgrade(self) {
        // SAFETY: as in `enter`.
        unsafe { (self.api.rw_downgrade)(self.raw) }
    }

    /// `rumpuser_rw_exit`.
    #[inline]
    pub fn exit(self) {
        // SAFETY: as in `enter`.
        unsafe { (self.api.rw_exit)(self.raw) }
    }

    /// `rumpuser_rw_held(op)`.
    pub fn held(self, op: c_int) -> bool {
        let mut h = 0;
        // SAFETY: as in `enter`, with a valid out-pointer.
        unsafe { (self.api.rw_held)(op, self.raw, &mut h) };
        h != 0
    }

    /// `rumpuser_rw_destroy`.
    ///
    /// # Safety
    /// No copy of this handle is used afterwards.
    pub unsafe fn destroy(self) {
        // SAFETY: the caller's promise.
        unsafe { (self.api.rw_destroy)(self.raw) }
    }
}

impl Cv {
    /// A handle for an object `hyp`'s library made.
    ///
    /// # Safety
    /// `raw` is a live cv of that library.
    pub unsafe fn from_raw(hyp: Hyp, raw: *mut c_void) -> Cv {
        Cv { api: hyp.api, raw }
    }

    /// The object pointer.
    pub fn raw(self) -> *mut c_void {
        self.raw
    }

    fn same_library(self, m: Mtx) {
        assert!(
            ptr::eq(self.api, m.api),
            "a cv used with a mutex of another library"
        );
    }

    /// `rumpuser_cv_wait(cv, m)` (the caller holds `m`).
    #[inline]
    pub fn wait(self, m: Mtx) {
        self.same_library(m);
        // SAFETY: two live objects of this library (see the module docs).
        unsafe { (self.api.cv_wait)(self.raw, m.raw) }
    }

    /// `rumpuser_cv_wait_nowrap(cv, m)`.
    pub fn wait_nowrap(self, m: Mtx) {
        self.same_library(m);
        // SAFETY: as in `wait`.
        unsafe { (self.api.cv_wait_nowrap)(self.raw, m.raw) }
    }

    /// `rumpuser_cv_timedwait(cv, m, sec, nsec)`: 0 if woken, else the
    /// error number (`ETIMEDOUT`).
    pub fn timedwait(self, m: Mtx, sec: i64, nsec: i64) -> c_int {
        self.same_library(m);
        // SAFETY: as in `wait`.
        unsafe { (self.api.cv_timedwait)(self.raw, m.raw, sec, nsec) }
    }

    /// `rumpuser_cv_signal`.
    #[inline]
    pub fn signal(self) {
        // SAFETY: a live cv of this library.
        unsafe { (self.api.cv_signal)(self.raw) }
    }

    /// `rumpuser_cv_broadcast`.
    pub fn broadcast(self) {
        // SAFETY: as in `signal`.
        unsafe { (self.api.cv_broadcast)(self.raw) }
    }

    /// `rumpuser_cv_has_waiters`.
    pub fn has_waiters(self) -> bool {
        let mut n = 0;
        // SAFETY: as in `signal`, with a valid out-pointer.
        unsafe { (self.api.cv_has_waiters)(self.raw, &mut n) };
        n != 0
    }

    /// `rumpuser_cv_destroy`.
    ///
    /// # Safety
    /// No copy of this handle is used afterwards.
    pub unsafe fn destroy(self) {
        // SAFETY: the caller's promise.
        unsafe { (self.api.cv_destroy)(self.raw) }
    }
}

/// A joinable thread of one library.
pub struct Thread {
    api: &'static Api,
    cookie: *mut c_void,
}

// SAFETY: the cookie is an opaque value the library accepts from any thread.
unsafe impl Send for Thread {}

impl Thread {
    /// `rumpuser_thread_join`: the error number.
    pub fn join(self) -> c_int {
        // SAFETY: the cookie of a joinable create, joined once (`self` is
        // consumed).
        unsafe { (self.api.thread_join)(self.cookie) }
    }
}
