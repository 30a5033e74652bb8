//! The child-process harness of the kit's lock misuse cases
//! (`rumpuser_core::conformance::misuse`), run by the flavours'
//! `tests/lock_misuse.rs`.
//!
//! The test function calls [`run`]. In the test process it re-runs its own
//! test binary once per case, with `RUMPUSER_MISUSE_CASE` naming the case,
//! and checks each child: killed by `SIGABRT`, within [`TIMEOUT`] (a case
//! that hangs was not detected), with every string the case announced on
//! stdout (`expect: ...` lines, printed before the misuse) found in its
//! stderr, which is where the library's console writes, plus the flavour's
//! description of the calling thread. In a child the same call runs the
//! one case and, should the library let it pass, exits with status 3.

use rumpuser_core::api::Api;
use rumpuser_core::conformance::{misuse, Config};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Names the case a child process runs.
const CASE_VAR: &str = "RUMPUSER_MISUSE_CASE";
/// A child that has not ended by then is taken to hang.
pub const TIMEOUT: Duration = Duration::from_secs(30);
/// Linux's `SIGABRT`.
const SIGABRT: i32 = 6;

/// What a flavour's test passes in.
pub struct Flavour {
    /// The library's C ABI.
    pub api: &'static Api,
    /// Kit configuration (green: cooperative).
    pub cfg: Config,
    /// The test function's name, to run exactly it in a child.
    pub test_name: &'static str,
    /// How the library names the calling thread, e.g. `"on host thread "`.
    pub thread: &'static str,
}

/// Runs every misuse case in a child process and asserts each was
/// stopped with its message (see the module docs); in a child, runs its
/// one case instead.
pub fn run(f: &Flavour) {
    if let Ok(name) = std::env::var(CASE_VAR) {
        child(f, &name);
    }
    let filter = std::env::var("RUMPUSER_KIT_FILTER").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for (name, _) in misuse::ALL {
        if filter.as_deref().is_some_and(|flt| !name.contains(flt)) {
            continue;
        }
        ran += 1;
        match parent(f, name) {
            Ok(()) => println!("misuse {name} ... aborted with its message"),
            Err(e) => {
                println!("misuse {name} ... FAILED: {e}");
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(filter.is_some() || ran >= 15, "only {ran} cases ran");
}

fn child(f: &Flavour, name: &str) -> ! {
    let mut out = std::io::stdout();
    let what = misuse::run_one(f.api, &f.cfg, name, &mut |s| {
        let _ = writeln!(out, "expect: {s}");
        let _ = out.flush();
    });
    let _ = writeln!(out, "not stopped: {what}");
    let _ = out.flush();
    std::process::exit(3)
}

fn parent(f: &Flavour, name: &str) -> Result<(), String> {
    // (Through `RUMPUSER_TEST_RUNNER` when the tests run under an emulator.)
    let mut child = rumpuser_host::testing::current_exe_command()
        .args([f.test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let end = Instant::now() + TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(st) => break Some(st),
            None if Instant::now() >= end => break None,
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    let show = || format!("\n--- stdout\n{out}--- stderr\n{err}---");
    let Some(status) = status else {
        return Err(format!(
            "still running after {TIMEOUT:?}: the misuse hangs{}",
            show()
        ));
    };
    if status.signal() != Some(SIGABRT) {
        return Err(format!("ended with {status}, not SIGABRT{}", show()));
    }
    let expected: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("expect: "))
        .collect();
    if expected.is_empty() {
        return Err(format!("aborted before the misuse{}", show()));
    }
    let line = err
        .lines()
        .find(|l| l.contains("lock misuse"))
        .ok_or_else(|| format!("no lock misuse report on stderr{}", show()))?;
    for want in expected.iter().copied().chain([f.thread]) {
        if !line.contains(want) {
            return Err(format!("the report lacks {want:?}{}", show()));
        }
    }
    Ok(())
}
