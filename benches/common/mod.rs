//! Shared machinery of the criterion benches: every rumpuser implementation
//! is loaded with `dlopen(RTLD_NOW | RTLD_LOCAL)`, its symbols resolved per
//! handle into a [`rumpuser_core::api::Api`], and initialised with a minimal
//! upcall table written here, so each one is driven exactly as a kernel
//! would drive it, side by side in one process.
//!
//! * Our libraries come from `$RUMPUSER_DIST` (default `target/dist`); if
//!   they are missing, `cargo xtask dist --no-demo` is run with
//!   `CARGO_TARGET_DIR=target/bench-dist` and that copy is used.
//! * NetBSD's pthread `librumpuser` is used if `$RUMPUSER_REFERENCE_LIB`
//!   names it or [`DEFAULT_REFERENCE`] exists; NetBSD's fiber
//!   `librumpuser` likewise with `$RUMPUSER_FIBER_LIB` /
//!   [`DEFAULT_FIBER`]. Set either variable to `none` to skip it.
//!
//! The green implementations (ours and rumpfiber) run every kernel thread
//! on the host thread that called `rumpuser_init`: the bench's main thread,
//! which is also the thread criterion runs every benchmark on.

#![allow(dead_code)]

use rumpuser_core::abi::*;
use rumpuser_core::api::Api;
use std::ffi::{c_char, c_int, c_long, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// NetBSD's pthread `librumpuser`, built locally (never committed).
pub const DEFAULT_REFERENCE: &str = "/work/rumpbuild/rump-pthread/lib/librumpuser.so.0";
/// NetBSD's fiber `librumpuser` (rumpfiber), built locally.
pub const DEFAULT_FIBER: &str = "/work/rumpbuild/rump-hypercall/lib/librumpuser.so.0";

/// At most this many libraries are loaded (one upcall table each).
pub const MAX_LIBS: usize = 4;

/// How an implementation maps kernel threads onto the host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// One host thread per kernel thread (posix, NetBSD pthread).
    Threads,
    /// Cooperative green threads on the host thread that called
    /// `rumpuser_init` (ours green, NetBSD rumpfiber).
    Green,
}

/// One loaded implementation.
pub struct Lib {
    /// Name in the criterion report.
    pub name: &'static str,
    /// Its C ABI.
    pub api: Api,
    /// Threading model.
    pub kind: Kind,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Index of its upcall table and counters.
    pub idx: usize,
    /// Thread functions must end in `rumpuser_thread_exit` (rumpfiber ends
    /// the process when a thread function returns).
    pub must_exit: bool,
}

/// A `struct rumpuser_mtx *`.
#[derive(Clone, Copy)]
pub struct Mtx(*mut c_void);
/// A `struct rumpuser_rw *`.
#[derive(Clone, Copy)]
pub struct Rw(*mut c_void);
/// A `struct rumpuser_cv *`.
#[derive(Clone, Copy)]
pub struct Cv(*mut c_void);
/// A joinable thread's cookie.
#[derive(Clone, Copy)]
pub struct Joinable(*mut c_void);

// SAFETY: the objects are made to be shared between the threads of one
// implementation; every use goes through that implementation's functions.
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

/// Signature of a thread body given to [`Lib::spawn`].
pub type ThreadBody = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

impl Lib {
    /// A KMUTEX (not SPIN), as the kernel's adaptive mutexes use.
    pub fn mutex_new(&self) -> Mtx {
        let mut m = ptr::null_mut();
        // SAFETY: valid out-pointer; KMUTEX is a valid flag set.
        unsafe { (self.api.mutex_init)(&mut m, RUMPUSER_MTX_KMUTEX) };
        assert!(!m.is_null(), "{}: mutex_init returned NULL", self.name);
        Mtx(m)
    }
    /// `rumpuser_mutex_enter`.
    #[inline]
    pub fn mutex_enter(&self, m: Mtx) {
        // SAFETY: `m` came from this library's `mutex_init`.
        unsafe { (self.api.mutex_enter)(m.0) }
    }
    /// `rumpuser_mutex_exit`.
    #[inline]
    pub fn mutex_exit(&self, m: Mtx) {
        // SAFETY: `m` came from this library and is held by the caller.
        unsafe { (self.api.mutex_exit)(m.0) }
    }
    /// `rumpuser_mutex_destroy`.
    pub fn mutex_destroy(&self, m: Mtx) {
        // SAFETY: `m` came from this library, is unheld and unused from now on.
        unsafe { (self.api.mutex_destroy)(m.0) }
    }
    /// `rumpuser_rw_init`.
    pub fn rw_new(&self) -> Rw {
        let mut rw = ptr::null_mut();
        // SAFETY: valid out-pointer.
        unsafe { (self.api.rw_init)(&mut rw) };
        assert!(!rw.is_null(), "{}: rw_init returned NULL", self.name);
        Rw(rw)
    }
    /// `rumpuser_rw_enter(RUMPUSER_RW_READER)`.
    #[inline]
    pub fn rw_enter_read(&self, rw: Rw) {
        // SAFETY: `rw` came from this library's `rw_init`.
        unsafe { (self.api.rw_enter)(RUMPUSER_RW_READER, rw.0) }
    }
    /// `rumpuser_rw_exit`.
    #[inline]
    pub fn rw_exit(&self, rw: Rw) {
        // SAFETY: `rw` came from this library and is held by the caller.
        unsafe { (self.api.rw_exit)(rw.0) }
    }
    /// `rumpuser_rw_destroy`.
    pub fn rw_destroy(&self, rw: Rw) {
        // SAFETY: unheld and unused from now on.
        unsafe { (self.api.rw_destroy)(rw.0) }
    }
    /// `rumpuser_cv_init`.
    pub fn cv_new(&self) -> Cv {
        let mut cv = ptr::null_mut();
        // SAFETY: valid out-pointer.
        unsafe { (self.api.cv_init)(&mut cv) };
        assert!(!cv.is_null(), "{}: cv_init returned NULL", self.name);
        Cv(cv)
    }
    /// `rumpuser_cv_wait` (the caller holds `m`).
    #[inline]
    pub fn cv_wait(&self, cv: Cv, m: Mtx) {
        // SAFETY: both objects came from this library; `m` is held.
        unsafe { (self.api.cv_wait)(cv.0, m.0) }
    }
    /// `rumpuser_cv_signal`.
    #[inline]
    pub fn cv_signal(&self, cv: Cv) {
        // SAFETY: `cv` came from this library.
        unsafe { (self.api.cv_signal)(cv.0) }
    }
    /// `rumpuser_cv_destroy`.
    pub fn cv_destroy(&self, cv: Cv) {
        // SAFETY: no waiters, unused from now on.
        unsafe { (self.api.cv_destroy)(cv.0) }
    }
    /// `rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, sec, nsec)`.
    #[inline]
    pub fn sleep_rel(&self, sec: i64, nsec: c_long) {
        // SAFETY: plain values.
        let e = unsafe { (self.api.clock_sleep)(RUMPUSER_CLOCK_RELWALL, sec, nsec) };
        debug_assert_eq!(e, 0);
    }

    /// Starts a joinable thread through `rumpuser_thread_create`.
    pub fn spawn(&self, body: ThreadBody, arg: *mut c_void) -> Joinable {
        let mut cookie = ptr::null_mut();
        // SAFETY: `body` is a valid thread function; `arg` stays valid until
        // the caller joins; the name is a C string; `cookie` is an out-pointer.
        let e = unsafe {
            (self.api.thread_create)(
                Some(body),
                arg,
                c"benchthr".as_ptr(),
                1,
                -1,
                -1,
                &mut cookie,
            )
        };
        assert_eq!(e, 0, "{}: thread_create failed: {e}", self.name);
        Joinable(cookie)
    }

    /// `rumpuser_thread_join`.
    pub fn join(&self, t: Joinable) {
        // SAFETY: a joinable cookie from `spawn`, joined once.
        let e = unsafe { (self.api.thread_join)(t.0) };
        assert_eq!(e, 0, "{}: thread_join failed: {e}", self.name);
    }

    /// How a thread body of this library ends: return for the pthread
    /// flavours and ours, `rumpuser_thread_exit` for rumpfiber. Call it
    /// with nothing that has a destructor alive.
    #[inline]
    pub fn thread_end(&self) -> *mut c_void {
        if self.must_exit {
            // SAFETY: called by a thread created with `rumpuser_thread_create`
            // of this library, with no destructors pending.
            unsafe { (self.api.thread_exit)() }
        }
        ptr::null_mut()
    }

    /// Gives the calling thread a fresh lwp (CREATE + SET) until the guard
    /// is dropped (CLEAR + DESTROY).
    pub fn bind_lwp(&self) -> LwpGuard<'_> {
        let l = new_lwp();
        // SAFETY: a fresh, unique lwp token; the calling thread has none set.
        unsafe {
            (self.api.curlwpop)(RUMPUSER_LWP_CREATE, l);
            (self.api.curlwpop)(RUMPUSER_LWP_SET, l);
        }
        LwpGuard { lib: self, l }
    }

    /// The counters of this library's upcalls.
    pub fn counts(&self) -> [u64; 4] {
        let c = &UPCALLS[self.idx];
        [
            c.schedule.load(Ordering::Relaxed),
            c.unschedule.load(Ordering::Relaxed),
            c.backend_unschedule.load(Ordering::Relaxed),
            c.backend_schedule.load(Ordering::Relaxed),
        ]
    }
}

/// A bound lwp; see [`Lib::bind_lwp`].
pub struct LwpGuard<'a> {
    lib: &'a Lib,
    l: *mut Lwp,
}

impl Drop for LwpGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `l` is the lwp bound to this thread by `bind_lwp`.
        unsafe {
            (self.lib.api.curlwpop)(RUMPUSER_LWP_CLEAR, self.l);
            (self.lib.api.curlwpop)(RUMPUSER_LWP_DESTROY, self.l);
        }
        free_lwp(self.l);
    }
}

/// A fresh lwp token: the kernel's `struct lwp` is opaque to the
/// hypervisor, so any unique address will do.
fn new_lwp() -> *mut Lwp {
    Box::into_raw(Box::new(0u64)).cast()
}

fn free_lwp(l: *mut Lwp) {
    // SAFETY: every lwp the benches hand out comes from `new_lwp`.
    drop(unsafe { Box::from_raw(l.cast::<u64>()) });
}

// ---- the upcall table --------------------------------------------------------

/// Counts of the scheduling upcalls per library (approximate, see [`bump`]).
pub struct Counters {
    schedule: AtomicU64,
    unschedule: AtomicU64,
    backend_unschedule: AtomicU64,
    backend_schedule: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: Counters = Counters {
    schedule: AtomicU64::new(0),
    unschedule: AtomicU64::new(0),
    backend_unschedule: AtomicU64::new(0),
    backend_schedule: AtomicU64::new(0),
};
static UPCALLS: [Counters; MAX_LIBS] = [ZERO, ZERO, ZERO, ZERO];
static APIS: [OnceLock<Api>; MAX_LIBS] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

fn api(i: usize) -> &'static Api {
    APIS[i]
        .get()
        .expect("upcall before the library was installed")
}

/// Counts an upcall. A plain load and store rather than a locked
/// read-modify-write: the count is informational (concurrent upcalls may
/// lose an increment) and must not add an atomic RMW to the paths measured.
#[inline]
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

extern "C" fn up_schedule<const I: usize>() {
    bump(&UPCALLS[I].schedule);
}
extern "C" fn up_unschedule<const I: usize>() {
    bump(&UPCALLS[I].unschedule);
}
extern "C" fn up_backend_unschedule<const I: usize>(
    _nlocks: c_int,
    countp: *mut c_int,
    _interlock: *mut c_void,
) {
    bump(&UPCALLS[I].backend_unschedule);
    if !countp.is_null() {
        // SAFETY: the hypervisor passes a pointer to its local count.
        unsafe { *countp = 0 };
    }
}
extern "C" fn up_backend_schedule<const I: usize>(_nlocks: c_int, _interlock: *mut c_void) {
    bump(&UPCALLS[I].backend_schedule);
}
/// `rump_lwproc_switch(l)`: unbind the current lwp, bind `l`.
extern "C" fn up_lwproc_switch<const I: usize>(l: *mut Lwp) {
    let a = api(I);
    // SAFETY: the library's own curlwp calls, in the order the kernel uses.
    unsafe {
        let cur = (a.curlwp)();
        if !cur.is_null() {
            (a.curlwpop)(RUMPUSER_LWP_CLEAR, cur);
        }
        if !l.is_null() {
            (a.curlwpop)(RUMPUSER_LWP_SET, l);
        }
    }
}
/// `rump_lwproc_releaselwp()`: unbind and destroy the current lwp.
extern "C" fn up_lwproc_release<const I: usize>() {
    let a = api(I);
    // SAFETY: as above; the lwp was made by `up_lwproc_newlwp`.
    unsafe {
        let cur = (a.curlwp)();
        if !cur.is_null() {
            (a.curlwpop)(RUMPUSER_LWP_CLEAR, cur);
            (a.curlwpop)(RUMPUSER_LWP_DESTROY, cur);
            free_lwp(cur);
        }
    }
}
extern "C" fn up_lwproc_rfork(_p: *mut c_void, _flags: c_int, _comm: *const c_char) -> c_int {
    6 // ENXIO: no sysproxy in this "kernel"
}
/// `rump_lwproc_newlwp(pid)`: a fresh lwp bound to the calling thread.
extern "C" fn up_lwproc_newlwp<const I: usize>(_pid: i32) -> c_int {
    let a = api(I);
    let l = new_lwp();
    // SAFETY: as in `up_lwproc_switch`, with a fresh lwp.
    unsafe {
        (a.curlwpop)(RUMPUSER_LWP_CREATE, l);
        let cur = (a.curlwp)();
        if !cur.is_null() {
            (a.curlwpop)(RUMPUSER_LWP_CLEAR, cur);
        }
        (a.curlwpop)(RUMPUSER_LWP_SET, l);
    }
    0
}
extern "C" fn up_lwproc_curlwp<const I: usize>() -> *mut Lwp {
    // SAFETY: the library's own curlwp.
    unsafe { (api(I).curlwp)() }
}
extern "C" fn up_syscall(_num: c_int, _args: *mut c_void, _retval: *mut c_long) -> c_int {
    78 // ENOSYS
}
extern "C" fn up_lwpexit() {}
extern "C" fn up_execnotify(_comm: *const c_char) {}
extern "C" fn up_getpid() -> i32 {
    0
}

fn table<const I: usize>() -> Hyperup {
    Hyperup {
        hyp_schedule: Some(up_schedule::<I>),
        hyp_unschedule: Some(up_unschedule::<I>),
        hyp_backend_unschedule: Some(up_backend_unschedule::<I>),
        hyp_backend_schedule: Some(up_backend_schedule::<I>),
        hyp_lwproc_switch: Some(up_lwproc_switch::<I>),
        hyp_lwproc_release: Some(up_lwproc_release::<I>),
        hyp_lwproc_rfork: Some(up_lwproc_rfork),
        hyp_lwproc_newlwp: Some(up_lwproc_newlwp::<I>),
        hyp_lwproc_curlwp: Some(up_lwproc_curlwp::<I>),
        hyp_syscall: Some(up_syscall),
        hyp_lwpexit: Some(up_lwpexit),
        hyp_execnotify: Some(up_execnotify),
        hyp_getpid: Some(up_getpid),
        hyp_extra: [ptr::null_mut(); 8],
    }
}

fn table_for(i: usize) -> Hyperup {
    match i {
        0 => table::<0>(),
        1 => table::<1>(),
        2 => table::<2>(),
        3 => table::<3>(),
        _ => unreachable!("at most {MAX_LIBS} libraries"),
    }
}

// ---- loading -------------------------------------------------------------------

/// Every implementation found, in report order.
pub struct Libs {
    /// Loaded libraries.
    pub libs: Vec<Lib>,
}

impl Libs {
    /// Loads and initialises every implementation (once per process).
    pub fn get() -> &'static Libs {
        static LIBS: OnceLock<Libs> = OnceLock::new();
        LIBS.get_or_init(Libs::load)
    }

    fn load() -> Libs {
        let dist = dist_dir();
        let mut found: Vec<(&'static str, PathBuf, Kind, bool)> = vec![
            (
                "ours-posix",
                dist.join("lib/librumpuser_posix.so"),
                Kind::Threads,
                false,
            ),
            (
                "ours-green",
                dist.join("lib/librumpuser_green.so"),
                Kind::Green,
                false,
            ),
        ];
        if let Some(p) = optional_lib("RUMPUSER_REFERENCE_LIB", DEFAULT_REFERENCE) {
            found.push(("netbsd-pthread", p, Kind::Threads, false));
        } else {
            eprintln!(
                "bench: NetBSD reference librumpuser not found (set RUMPUSER_REFERENCE_LIB); comparing ours only"
            );
        }
        if let Some(p) = optional_lib("RUMPUSER_FIBER_LIB", DEFAULT_FIBER) {
            found.push(("netbsd-fiber", p, Kind::Green, true));
        }
        let libs = found
            .into_iter()
            .enumerate()
            .map(|(idx, (name, path, kind, must_exit))| {
                let api = open(&path);
                APIS[idx]
                    .set(api)
                    .unwrap_or_else(|_| unreachable!("library index reused"));
                let hyp: &'static Hyperup = Box::leak(Box::new(table_for(idx)));
                // SAFETY: version 17 and a complete upcall table that lives forever.
                let e = unsafe { (api.init)(RUMPUSER_VERSION, hyp) };
                assert_eq!(e, 0, "{name}: rumpuser_init failed: {e}");
                let lib = Lib {
                    name,
                    api,
                    kind,
                    path,
                    idx,
                    must_exit,
                };
                // The bench thread is a kernel thread of every library for
                // the whole run.
                std::mem::forget(lib.bind_lwp());
                lib
            })
            .collect();
        let me = Libs { libs };
        for l in &me.libs {
            eprintln!("bench: {} = {}", l.name, l.path.display());
        }
        me
    }

    /// Libraries with one host thread per kernel thread.
    pub fn threaded(&self) -> impl Iterator<Item = &Lib> {
        self.libs.iter().filter(|l| l.kind == Kind::Threads)
    }

    /// Green-threaded libraries.
    pub fn green(&self) -> impl Iterator<Item = &Lib> {
        self.libs.iter().filter(|l| l.kind == Kind::Green)
    }
}

fn optional_lib(var: &str, default: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if v == "none" || v.is_empty() => None,
        Some(v) => {
            let p = PathBuf::from(v);
            assert!(p.exists(), "{var}={} does not exist", p.display());
            Some(p)
        }
        None => Some(PathBuf::from(default)).filter(|p| p.exists()),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Our distribution: `$RUMPUSER_DIST`, else `target/dist`, else built into
/// `target/bench-dist/dist`.
pub fn dist_dir() -> PathBuf {
    let has_libs = |d: &Path| {
        d.join("lib/librumpuser_posix.so").exists() && d.join("lib/librumpuser_green.so").exists()
    };
    if let Some(d) = std::env::var_os("RUMPUSER_DIST") {
        let d = PathBuf::from(d);
        assert!(
            has_libs(&d),
            "RUMPUSER_DIST={} has no lib/librumpuser_{{posix,green}}.so; run `cargo xtask dist`",
            d.display()
        );
        return d;
    }
    let d = root().join("target/dist");
    if has_libs(&d) {
        return d;
    }
    let tdir = root().join("target/bench-dist");
    let d = tdir.join("dist");
    if !has_libs(&d) {
        eprintln!("bench: building the libraries: cargo xtask dist --no-demo (CARGO_TARGET_DIR=target/bench-dist)");
        let st = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "-p", "xtask", "--", "dist", "--no-demo"])
            .env("CARGO_TARGET_DIR", &tdir)
            .current_dir(root())
            .status()
            .expect("cannot run cargo xtask dist");
        assert!(
            st.success() && has_libs(&d),
            "`cargo xtask dist --no-demo` failed; build the libraries with `cargo xtask dist` \
             or point RUMPUSER_DIST at a distribution"
        );
    }
    d
}

/// `dlopen`s one library and resolves its whole C ABI.
fn open(path: &Path) -> Api {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("path with NUL");
    // SAFETY: a valid C string; the handle is never closed.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if h.is_null() {
        // SAFETY: dlerror returns NULL or a C string valid until the next dl call.
        let msg = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "unknown error".into()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        panic!("cannot dlopen {}: {msg}", path.display());
    }
    // SAFETY: every rumpuser_* symbol of a v17 librumpuser has the v17
    // signature; `h` stays open for the life of the process.
    unsafe { Api::resolve(|name| libc::dlsym(h, name.as_ptr())) }
        .unwrap_or_else(|missing| panic!("{}: missing symbol {missing}", path.display()))
}
