//! Shared machinery of the criterion benches: every rumpuser implementation
//! is loaded with `dlopen(RTLD_NOW | RTLD_LOCAL)` and its symbols resolved
//! per handle into a [`rumpuser_core::api::Api`] (`rumpuser_testkit::dl`),
//! and initialised with the test kit's kernel of lwps only
//! (`rumpuser_testkit::kernels::LwpKernel`, which counts the scheduling
//! upcalls), so each one is driven exactly as a kernel would drive it, side
//! by side in one process.
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
use rumpuser_testkit::hyp::{Cv, Hyp, Mtx, Rw, Thread};
use rumpuser_testkit::kernels::{self, LwpGuard};
use std::ffi::{c_long, c_void};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::OnceLock;

/// NetBSD's pthread `librumpuser`, built locally (never committed).
pub const DEFAULT_REFERENCE: &str = "/work/rumpbuild/rump-pthread/lib/librumpuser.so.0";
/// NetBSD's fiber `librumpuser` (rumpfiber), built locally.
pub const DEFAULT_FIBER: &str = "/work/rumpbuild/rump-hypercall/lib/librumpuser.so.0";

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
    pub api: &'static Api,
    /// The typed client of it.
    pub hyp: Hyp,
    /// Threading model.
    pub kind: Kind,
    /// Where it was loaded from.
    pub path: PathBuf,
    /// Slot of its upcall table and counters (`rumpuser_testkit::kernels`).
    pub slot: usize,
    /// Thread functions must end in `rumpuser_thread_exit` (rumpfiber ends
    /// the process when a thread function returns).
    pub must_exit: bool,
}

/// Signature of a thread body given to [`Lib::spawn`].
pub type ThreadBody = unsafe extern "C" fn(*mut c_void) -> *mut c_void;

impl Lib {
    /// A KMUTEX (not SPIN), as the kernel's adaptive mutexes use.
    pub fn mutex_new(&self) -> Mtx {
        self.hyp.mutex(RUMPUSER_MTX_KMUTEX)
    }
    /// `rumpuser_rw_init`.
    pub fn rw_new(&self) -> Rw {
        self.hyp.rwlock()
    }
    /// `rumpuser_cv_init`.
    pub fn cv_new(&self) -> Cv {
        self.hyp.cv()
    }
    /// `rumpuser_clock_sleep(RUMPUSER_CLOCK_RELWALL, sec, nsec)`.
    #[inline]
    pub fn sleep_rel(&self, sec: i64, nsec: c_long) {
        let e = self.hyp.clock_sleep(RUMPUSER_CLOCK_RELWALL, sec, nsec);
        debug_assert_eq!(e, 0);
    }

    /// Starts a joinable thread through `rumpuser_thread_create`.
    ///
    /// # Safety
    /// `body(arg)` is sound to run on a new thread (`arg` stays valid
    /// until the caller joins) and ends with [`Lib::thread_end`].
    pub unsafe fn spawn(&self, body: ThreadBody, arg: *mut c_void) -> Thread {
        // SAFETY: the caller's promise.
        let t = unsafe { self.hyp.thread_create(body, arg, c"benchthr", true, -1, -1) };
        match t {
            Ok(Some(t)) => t,
            Ok(None) => unreachable!("a joinable thread has a cookie"),
            Err(e) => panic!("{}: thread_create failed: {e}", self.name),
        }
    }

    /// `rumpuser_thread_join`.
    pub fn join(&self, t: Thread) {
        let e = t.join();
        assert_eq!(e, 0, "{}: thread_join failed: {e}", self.name);
    }

    /// How a thread body of this library ends: return for the pthread
    /// flavours and ours, `rumpuser_thread_exit` for rumpfiber.
    ///
    /// # Safety
    /// Called at the end of a thread function started by [`Lib::spawn`],
    /// with nothing that has a destructor alive.
    #[inline]
    pub unsafe fn thread_end(&self) -> *mut c_void {
        if self.must_exit {
            // SAFETY: the caller's promise.
            unsafe { self.hyp.thread_exit() }
        }
        ptr::null_mut()
    }

    /// Gives the calling thread a fresh lwp (CREATE + SET) until the guard
    /// is dropped (CLEAR + DESTROY).
    pub fn bind_lwp(&self) -> LwpGuard {
        kernels::bind_lwp(self.hyp)
    }

    /// The counters of this library's upcalls.
    pub fn counts(&self) -> [u64; 4] {
        kernels::counts(self.slot)
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
            .map(|(name, path, kind, must_exit)| {
                let api = rumpuser_testkit::dl::open(&path);
                let hyp = Hyp::new(api);
                let slot = kernels::init_lwp_kernel(hyp)
                    .unwrap_or_else(|e| panic!("{name}: rumpuser_init failed: {e}"));
                let lib = Lib {
                    name,
                    api,
                    hyp,
                    kind,
                    path,
                    slot,
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
