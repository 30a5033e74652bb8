//! Shared helpers of the integration tests: where the built distribution
//! is, and compiling and running small C programs against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/dist`, built by `cargo xtask dist` (which `cargo xtask test`
/// runs first). When run by a bare `cargo test`, builds it once with xtask
/// in a separate target directory so the outer cargo's lock is not needed.
pub fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        if let Some(d) = std::env::var_os("RUMPUSER_DIST") {
            return PathBuf::from(d);
        }
        let tdir = root().join("target/suite-dist");
        let st = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "-p", "xtask", "--", "dist", "--no-demo"])
            .env("CARGO_TARGET_DIR", &tdir)
            .current_dir(root())
            .status()
            .expect("cannot run cargo xtask dist");
        assert!(st.success(), "cargo xtask dist failed");
        tdir.join("dist")
    })
}

/// Flavours present in the distribution.
pub fn flavours() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dist().join("compat"))
        .expect("dist has no compat/ directory")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no flavour in dist");
    v
}

/// Compiles `src` (C) with `args` into a temporary executable; panics with
/// the compiler output on failure.
pub fn cc(name: &str, src: &str, args: &[&str]) -> PathBuf {
    let dir = root().join("target/suite-c");
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let exe = dir.join(name);
    let out = Command::new("cc")
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-D_DEFAULT_SOURCE",
        ])
        .arg("-I")
        .arg(dist().join("include"))
        .arg(&c)
        .args(args)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cannot run cc");
    assert!(
        out.status.success(),
        "cc {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// A command for a test program linked against the distribution. Without
/// cargo's `LD_LIBRARY_PATH` (which lists `target/debug/deps`, where a
/// `cargo build` leaves its own, possibly stale, `librumpuser_*.so`): the
/// program must load the library its RUNPATH names, the one under test.
pub fn command(exe: &Path) -> Command {
    let mut c = Command::new(exe);
    c.env_remove("LD_LIBRARY_PATH");
    c
}

/// Runs an executable, asserting success; returns stdout.
pub fn run(exe: &Path, env: &[(&str, &str)]) -> String {
    let out = command(exe)
        .envs(env.iter().copied())
        .output()
        .expect("cannot run test program");
    assert!(
        out.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        exe.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
