//! The conformance kit: the v17 contract as executable checks, run against
//! any implementation through its C ABI.
//!
//! A porter runs it with one call:
//!
//! ```ignore
//! let cfg = rumpuser_core::conformance::Config::default().scratch_dir("/tmp/x");
//! let summary = rumpuser_core::conformance::run(&my_platform::rumpuser_exports::API, &cfg,
//!                                               &mut rumpuser_core::conformance::NoReport);
//! assert_eq!(summary.failed, 0);
//! ```
//!
//! The kit is `no_std` + `alloc` and uses nothing but the [`Api`] table: it
//! creates its threads with `rumpuser_thread_create`, sleeps with
//! `rumpuser_clock_sleep`, and builds the [`model`] kernel's virtual CPUs
//! from the implementation's own locks, so the same cases run on a POSIX
//! host, in green threads, or inside a VM. Each case checks return values
//! and NetBSD errno numbers, bad input, timing (never early), and what the
//! call did with its virtual CPU according to the model kernel.
//!
//! [`misuse`] holds the lock misuse cases, which must each end the process
//! with an abort and a message, so a harness runs each in a child process
//! (see that module).
//!
//! The pieces the kit is made of serve any test that drives a library
//! through its C ABI (the host-side test kit, `rumpuser-testkit`, builds on
//! them): [`hyp`], a safe typed client of an [`Api`]; [`upcalls`], the one
//! configurable upcall table (a model kernel is a type implementing
//! [`upcalls::Kernel`]); and [`ensure!`]/[`ensure_eq!`], which fail a case
//! with a message.

pub mod cases;
pub mod hyp;
pub mod kthread;
pub mod misuse;
pub mod model;
pub mod upcalls;

use crate::api::Api;
use alloc::string::String;
use alloc::vec::Vec;

/// The implementation under test.
pub type KitApi = &'static Api;

/// What the kit may use besides the C ABI.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// A writable directory for file and bio cases (host path syntax of the
    /// platform); file cases are skipped when `None`.
    pub scratch_dir: Option<String>,
    /// Run only cases whose name contains this string.
    pub filter: Option<String>,
    /// Virtual CPUs of the model kernel (default 2).
    pub ncpu: Option<u32>,
    /// The platform runs every thread on one host thread (green threads):
    /// cases that need true parallelism are adapted.
    pub cooperative: bool,
}

impl Config {
    /// Sets [`Config::scratch_dir`].
    pub fn scratch_dir(mut self, dir: &str) -> Config {
        self.scratch_dir = Some(dir.into());
        self
    }
    /// Sets [`Config::filter`].
    pub fn filter(mut self, f: &str) -> Config {
        self.filter = Some(f.into());
        self
    }
    /// Sets [`Config::cooperative`].
    pub fn cooperative(mut self, yes: bool) -> Config {
        self.cooperative = yes;
        self
    }
}

/// Receives results as they happen.
pub trait Report {
    /// One case finished.
    fn case(&mut self, name: &str, result: &Result<(), String>);
}

/// A [`Report`] that prints nothing.
pub struct NoReport;

impl Report for NoReport {
    fn case(&mut self, _name: &str, _result: &Result<(), String>) {}
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Cases that passed.
    pub passed: usize,
    /// Cases that failed.
    pub failed: usize,
    /// Cases skipped by configuration.
    pub skipped: usize,
    /// `(case, message)` of each failure.
    pub failures: Vec<(String, String)>,
}

/// Result of one case.
pub type CaseResult = Result<(), String>;

#[doc(hidden)]
pub use alloc::format as __format;

/// Returns `Err` with a formatted message and the place (`file:line`)
/// from the enclosing function unless `cond` holds: the failure of a case
/// (any function returning `Result<_, String>`).
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::conformance::__format!(
                "{} ({}:{})",
                $crate::conformance::__format!($($fmt)+),
                file!(),
                line!()
            ));
        }
    };
}
pub use ensure;

/// Like [`ensure!`] for `a == b`, showing both values.
#[macro_export]
macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($fmt:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err($crate::conformance::__format!(
                "{}: left {:?} != right {:?} ({}:{})",
                $crate::conformance::__format!($($fmt)+),
                a,
                b,
                file!(),
                line!()
            ));
        }
    }};
}
pub use ensure_eq;

/// Context passed to every case.
pub struct Ctx {
    /// The implementation.
    pub api: KitApi,
    /// Configuration.
    pub cfg: Config,
}

impl Ctx {
    /// The model kernel.
    pub fn model(&self) -> &'static model::Model {
        model::model()
    }

    /// The typed client of the implementation.
    pub fn hyp(&self) -> hyp::Hyp {
        hyp::Hyp::new(self.api)
    }

    /// Monotonic nanoseconds through `rumpuser_clock_gettime`.
    pub fn now(&self) -> u64 {
        self.hyp().now_ns()
    }

    /// Sleeps `ns` nanoseconds through `rumpuser_clock_sleep` (releases the CPU).
    pub fn sleep_ns(&self, ns: u64) {
        self.hyp().sleep_ns(ns);
    }

    /// Polls `cond` every millisecond until it holds or `timeout_ms` passed.
    pub fn wait_for(&self, timeout_ms: u64, mut cond: impl FnMut() -> bool) -> bool {
        let end = self.now() + timeout_ms * 1_000_000;
        loop {
            if cond() {
                return true;
            }
            if self.now() > end {
                return cond();
            }
            self.sleep_ns(1_000_000);
        }
    }

    /// The calling thread's model lwp.
    pub fn lwp(&self) -> &'static model::ModelLwp {
        self.model().current().expect("case runs without curlwp")
    }
}

/// Runs every case against `api` and returns the totals.
///
/// Calls `rumpuser_init` with the model kernel's upcall table (first, after
/// checking that a wrong version is refused), so it must be the first user
/// of the library in the process.
pub fn run(api: KitApi, cfg: &Config, report: &mut dyn Report) -> Summary {
    let mut summary = Summary::default();
    let mut record = |name: &str, r: CaseResult, s: &mut Summary| {
        report.case(name, &r);
        match r {
            Ok(()) => s.passed += 1,
            Err(e) => {
                s.failed += 1;
                s.failures.push((name.into(), e));
            }
        }
    };
    // Init is special: it runs before the model exists.
    let r = cases::init::version_and_init(api);
    let ok = r.is_ok();
    record("init::version_and_init", r, &mut summary);
    if !ok {
        return summary;
    }
    let m = model::install(api, cfg.ncpu.unwrap_or(2));
    let ctx = Ctx {
        api,
        cfg: cfg.clone(),
    };
    for (name, case) in cases::ALL {
        if let Some(f) = &cfg.filter {
            if !name.contains(f.as_str()) {
                summary.skipped += 1;
                continue;
            }
        }
        let before = m.violation_count();
        m.enter();
        let mut r = case(&ctx);
        m.leave();
        if let Err(e) = &mut r {
            if e == cases::SKIP {
                summary.skipped += 1;
                continue;
            }
        }
        let v = m.violations_since(before);
        if r.is_ok() && !v.is_empty() {
            r = Err(alloc::format!("scheduling contract violated: {v:?}"));
        }
        record(name, r, &mut summary);
    }
    summary
}
