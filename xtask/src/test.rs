//! `cargo xtask test`: the whole suite, in the order that fails fastest.
//!
//! 1. prerequisites ([`crate::setup::TEST`]): missing Debian packages are
//!    installed when running as root (otherwise the command to run is
//!    named), missing Rust targets and components added with rustup;
//! 2. `cargo fmt --check`, `cargo clippy -D warnings`;
//! 3. `dist` (release libraries, headers, pkg-config) and the C demo;
//! 4. `cargo test --workspace` (unit tests, the conformance kit against
//!    every platform, C-ABI tests of the built libraries in `tests/`);
//! 5. loom model checks of the lock and scheduler state machines, then
//!    the Linux-host crates built for AArch64 and tested under
//!    `qemu-aarch64` (the green core's AArch64 context switch);
//! 6. `cargo doc` with warnings denied;
//! 7. the bare-metal platform booted in QEMU (`baremetal-test`), then the
//!    Xen platform as a PVH dom0 of Xen 4.17 nested in QEMU (`xen-test`;
//!    the hypervisor comes from Debian's package via `apt-get download`);
//! 8. the real-kernel tests if `RUMP_KERNEL_DIR` is set (skipped with a
//!    message otherwise).

use crate::util::{cargo, require, root, sh, target, Result};
use std::process::Command;

/// `cargo xtask test [--quick]` (`--quick` skips clippy, loom and doc).
pub fn run_all(quick: bool) -> Result<()> {
    crate::setup::ensure(&crate::setup::TEST)?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    if !quick {
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])?;
    }
    crate::dist::build()?;
    crate::dist::demo()?;
    let dist = crate::dist::dist_dir();
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    sh(Command::new(&cargo_bin)
        .args(["test", "--workspace"])
        .env("RUMPUSER_DIST", &dist)
        .current_dir(root()))?;
    if !quick {
        loom()?;
        aarch64()?;
        sh(Command::new(&cargo_bin)
            .args(["doc", "--workspace", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings")
            .current_dir(root()))?;
    }
    // The bare-metal platform in QEMU (fails with an install hint if
    // qemu-system-x86_64 or the x86_64-unknown-none target is missing).
    crate::baremetal::test_all()?;
    crate::xen::test_all()?;
    match std::env::var_os("RUMP_KERNEL_DIR") {
        Some(_) => {
            for f in crate::dist::built_flavours() {
                crate::kernel_test::run_flavour(f)?;
            }
        }
        None => eprintln!(
            "kernel-test: SKIPPED (set RUMP_KERNEL_DIR to a NetBSD rump kernel layer with lib/ and include/ to run the C programs in tests/kernel/ against it)"
        ),
    }
    eprintln!("xtask test: all steps passed");
    Ok(())
}

/// `(package, test filter)` of every loom model suite.
const LOOM_SUITES: &[(&str, &str)] = &[("rumpuser-posix", "loom"), ("rumpuser-host", "loom")];

/// Model checks under `--cfg loom`, in their own target directory so the
/// normal build cache is not invalidated. Preemptions are bounded to keep
/// the run to a few minutes on two cores.
pub fn loom() -> Result<()> {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for &(pkg, filter) in LOOM_SUITES {
        sh(Command::new(&cargo_bin)
            .args(["test", "--release", "-p", pkg, "--lib", "--", filter])
            .env("RUSTFLAGS", "--cfg loom")
            .env("LOOM_MAX_PREEMPTIONS", "2")
            .env("CARGO_TARGET_DIR", target().join("loom"))
            .current_dir(root()))?;
    }
    Ok(())
}

/// The crates that run on a Linux host, for AArch64: clippy, then their
/// tests under `qemu-aarch64` (user mode), which exercises the green
/// core's AArch64 context switch, the conformance kit on both flavours,
/// the futex locks, both bio back ends and the syscall proxy.
/// `RUMPUSER_TEST_RUNNER`/`RUMPUSER_TEST_CC` let tests that start a copy
/// of themselves or build a C object do so for the emulated target.
pub fn aarch64() -> Result<()> {
    const TRIPLE: &str = "aarch64-unknown-linux-gnu";
    const SYSROOT: &str = "/usr/aarch64-linux-gnu";
    for (t, hint) in [
        (
            "aarch64-linux-gnu-gcc",
            "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
        ),
        ("qemu-aarch64", "apt-get install qemu-user"),
    ] {
        require(t, hint)?;
    }
    let installed =
        crate::util::output(Command::new("rustup").args(["target", "list", "--installed"]))
            .unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == TRIPLE) {
        return Err(format!(
            "the {TRIPLE} target is missing: rustup target add {TRIPLE}"
        ));
    }
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let runner = format!("qemu-aarch64 -L {SYSROOT}");
    let pkgs = [
        "-p",
        "rumpuser-core",
        "-p",
        "rumpuser-host",
        "-p",
        "rumpuser-posix",
        "-p",
        "rumpuser-green",
    ];
    let with_env = |c: &mut Command| {
        c.env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            "aarch64-linux-gnu-gcc",
        )
        .env("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", &runner)
        .env("RUMPUSER_TEST_RUNNER", &runner)
        .env("RUMPUSER_TEST_CC", "aarch64-linux-gnu-gcc")
        .current_dir(root());
    };
    let mut clippy = Command::new(&cargo_bin);
    clippy
        .args(["clippy", "--all-targets", "--target", TRIPLE])
        .args(pkgs)
        .args(["--", "-D", "warnings"]);
    with_env(&mut clippy);
    sh(&mut clippy)?;
    let mut test = Command::new(&cargo_bin);
    test.args(["test", "--target", TRIPLE]).args(pkgs);
    with_env(&mut test);
    sh(&mut test)?;
    eprintln!("aarch64: tests passed under qemu-aarch64");
    Ok(())
}

/// Entry point.
pub fn run(args: &[String]) -> Result<()> {
    run_all(args.iter().any(|a| a == "--quick"))
}
