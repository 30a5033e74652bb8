//! `cargo xtask dist`: builds every platform library and lays out
//! `target/dist/`:
//!
//! ```text
//! target/dist/include/rump/rumpuser.h, rumpuser_component.h
//! target/dist/lib/librumpuser_<flavour>.a   (only rumpuser_* symbols global)
//! target/dist/lib/librumpuser_<flavour>.so (linked from the archive)
//! target/dist/lib/pkgconfig/rumpuser-<flavour>.pc
//! target/dist/compat/<flavour>/librumpuser.so.0, librumpuser.so, librumpuser.a
//! target/dist/bin/demo-<flavour>
//! ```
//!
//! Static archives are post-processed: all objects are merged with `ld -r`
//! and every global symbol except `rumpuser_*` is made local, so the
//! archive can be linked with `--whole-archive` next to other Rust
//! staticlibs without duplicate symbols (contract 7.2), and `nm` shows only
//! the hypercall names. Embedded LLVM bitcode is dropped (binutils' `ar`
//! plugin cannot read it).

use crate::util::{output, require, root, sh, target, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The platform libraries that build on this host.
pub const FLAVOURS: &[&str] = &["posix", "green"];

/// Flavours whose crate is only an `rlib` in its manifest, because `no_std`
/// platforms depend on it (Cargo builds every crate type of a dependency,
/// and a `no_std` staticlib cannot be built without a panic handler and an
/// allocator); their archive is built with `cargo rustc --crate-type staticlib`.
pub const RLIB_ONLY: &[&str] = &["green"];

/// Extra libraries a static link needs.
pub const LIBS_PRIVATE: &str = "-lpthread -ldl -lm -lgcc_s";

/// Where `dist` puts things.
pub fn dist_dir() -> PathBuf {
    target().join("dist")
}

/// Flavours whose crate exports the C ABI (an empty placeholder does not).
pub fn built_flavours() -> Vec<&'static str> {
    FLAVOURS
        .iter()
        .copied()
        .filter(|f| {
            fs::read_to_string(root().join(format!("rumpuser-{f}/src/lib.rs")))
                .map(|s| s.contains("export_rumpuser!"))
                .unwrap_or(false)
        })
        .collect()
}

/// `cargo xtask dist [--no-demo]`.
pub fn run(args: &[String]) -> Result<()> {
    build()?;
    if !args.iter().any(|a| a == "--no-demo") {
        demo()?;
    }
    Ok(())
}

/// Builds and lays out every library.
pub fn build() -> Result<()> {
    for t in ["cc", "ld", "objcopy", "ar", "nm"] {
        require(t, "install Debian's build-essential and binutils")?;
    }
    let flavours = built_flavours();
    let pkgs: Vec<String> = flavours
        .iter()
        .filter(|f| !RLIB_ONLY.contains(f))
        .map(|f| format!("rumpuser-{f}"))
        .collect();
    if !pkgs.is_empty() {
        let mut args = vec!["build", "--release"];
        for p in &pkgs {
            args.extend(["-p", p.as_str()]);
        }
        crate::util::cargo(&args)?;
    }
    for f in flavours.iter().filter(|f| RLIB_ONLY.contains(f)) {
        let pkg = format!("rumpuser-{f}");
        crate::util::cargo(&[
            "rustc",
            "--release",
            "-p",
            &pkg,
            "--lib",
            "--crate-type",
            "staticlib",
        ])?;
    }
    let dist = dist_dir();
    let _ = fs::remove_dir_all(&dist);
    let inc = dist.join("include/rump");
    let lib = dist.join("lib");
    let pc = lib.join("pkgconfig");
    for d in [&inc, &pc] {
        fs::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    for h in ["rumpuser.h", "rumpuser_component.h"] {
        copy(
            &root().join("rumpuser-core/include/rump").join(h),
            &inc.join(h),
        )?;
    }
    let rel = target().join("release");
    for f in &flavours {
        let name = format!("rumpuser_{f}");
        let a = lib.join(format!("lib{name}.a"));
        localize(&rel.join(format!("lib{name}.a")), &a)?;
        let so = lib.join(format!("lib{name}.so"));
        shared(&a, &so, &format!("lib{name}.so"))?;
        fs::write(pc.join(format!("rumpuser-{f}.pc")), pkgconfig(f)).map_err(|e| e.to_string())?;
        let compat = dist.join("compat").join(f);
        fs::create_dir_all(&compat).map_err(|e| e.to_string())?;
        shared(&a, &compat.join("librumpuser.so.0"), "librumpuser.so.0")?;
        copy(
            &compat.join("librumpuser.so.0"),
            &compat.join("librumpuser.so"),
        )?;
        copy(&a, &compat.join("librumpuser.a"))?;
    }
    eprintln!("dist: {} ({})", dist.display(), flavours.join(", "));
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

/// Merges the archive into one object whose only globals are `rumpuser_*`.
fn localize(input: &Path, out: &Path) -> Result<()> {
    let work = out.with_extension("o");
    sh(Command::new("ld")
        .args(["-r", "--whole-archive"])
        .arg(input)
        .arg("-o")
        .arg(&work))?;
    sh(Command::new("objcopy")
        .args(["--wildcard", "--keep-global-symbol=rumpuser_*"])
        .args(["--remove-section=.llvmbc", "--remove-section=.llvmcmd"])
        .arg(&work))?;
    let _ = fs::remove_file(out);
    sh(Command::new("ar").arg("rcs").arg(out).arg(&work))?;
    fs::remove_file(&work).map_err(|e| e.to_string())?;
    Ok(())
}

/// Links a shared library from the localized archive: every global of the
/// archive (only `rumpuser_*`) is exported, nothing else.
fn shared(archive: &Path, out: &Path, soname: &str) -> Result<()> {
    sh(Command::new("cc")
        .arg("-shared")
        .arg(format!("-Wl,-soname,{soname}"))
        .args(["-Wl,--whole-archive"])
        .arg(archive)
        .args(["-Wl,--no-whole-archive", "-Wl,-z,defs"])
        .args(LIBS_PRIVATE.split(' '))
        .arg("-o")
        .arg(out))
}

fn pkgconfig(flavour: &str) -> String {
    format!(
        "prefix=${{pcfiledir}}/../..\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n\
         Name: rumpuser-{flavour}\n\
         Description: rumpuser v17 hypercall layer for NetBSD rump kernels ({flavour} flavour)\n\
         Version: {}\n\
         Libs: -L${{libdir}} -lrumpuser_{flavour}\n\
         Libs.private: {LIBS_PRIVATE}\n\
         Cflags: -I${{includedir}}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Compiles `examples/demo/demo.c` against each static library and runs it.
pub fn demo() -> Result<()> {
    let dist = dist_dir();
    let bin = dist.join("bin");
    fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    for f in built_flavours() {
        let exe = bin.join(format!("demo-{f}"));
        let mut cc = Command::new("cc");
        cc.args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O2",
            "-D_DEFAULT_SOURCE",
        ])
        .arg("-I")
        .arg(dist.join("include"))
        .arg(root().join("examples/demo/demo.c"))
        .arg(dist.join(format!("lib/librumpuser_{f}.a")))
        .args(LIBS_PRIVATE.split(' '))
        .arg("-o")
        .arg(&exe);
        sh(&mut cc)?;
        eprintln!("--- demo ({f}) ---");
        let out = output(&mut Command::new(&exe))?;
        print!("{out}");
    }
    Ok(())
}
