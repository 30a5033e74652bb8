//! `cargo xtask dist`: builds every platform library and lays out
//! `target/dist/`:
//!
//! ```text
//! target/dist/include/rump/rumpuser.h, rumpuser_component.h
//! target/dist/lib/librumpuser_<flavour>.a   (only rumpuser_* symbols global; no debug info)
//! target/dist/lib/librumpuser_<flavour>.so (linked from the archive; stripped)
//! target/dist/lib/pkgconfig/rumpuser-<flavour>.pc
//! target/dist/lib/debug/librumpuser_<flavour>.a      the archive with its debug info
//! target/dist/lib/debug/.build-id/xx/yyyy….debug     each .so's debug info, by build-id
//! target/dist/lib/.debug/librumpuser_<flavour>.so.debug   (its `.gnu_debuglink` name)
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
//!
//! Debug info is shipped apart from the libraries. A shared library is
//! linked with a build-id, its debug info (and full symbol table) copied
//! out with `objcopy --only-keep-debug` to `lib/debug/.build-id/`, where
//! gdb finds it with `set debug-file-directory <dist>/lib/debug`, and the
//! library stripped to its dynamic symbols with a `.gnu_debuglink` to a
//! `.debug/` name next to it (a link to the same file), which gdb follows
//! without any setting. A static archive's debug info cannot live apart
//! from its object (the linker places and relocates it), so the archive
//! in `lib/` has it removed (`objcopy --strip-debug`, symbols kept) and
//! the complete archive is `lib/debug/`'s: link that one for line numbers.
use crate::util::{output, require, root, sh, target, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The platform libraries that build on this host.
pub const FLAVOURS: &[&str] = &["posix", "green"];

/// Flavours whose crate is only an `rlib` in its manifest (every flavour:
/// `no_std` platforms depend on green, and Cargo builds every crate type of
/// a dependency, while a `no_std` staticlib cannot be built without a panic
/// handler and an allocator; and rustc runs the release profile's LTO only
/// for a crate that is not also an rlib); their archive is built with
/// `cargo rustc --crate-type staticlib`.
pub const RLIB_ONLY: &[&str] = &["posix", "green"];

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
    crate::setup::ensure(&crate::setup::DIST)?;
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
    let debug = lib.join("debug");
    for f in &flavours {
        let name = format!("rumpuser_{f}");
        let full = debug.join(format!("lib{name}.a"));
        localize(&rel.join(format!("lib{name}.a")), &full)?;
        let a = lib.join(format!("lib{name}.a"));
        strip_archive(&full, &a)?;
        let so = lib.join(format!("lib{name}.so"));
        shared(&full, &so, &format!("lib{name}.so"))?;
        split_debug(&so, &debug)?;
        fs::write(pc.join(format!("rumpuser-{f}.pc")), pkgconfig(f)).map_err(|e| e.to_string())?;
        let compat = dist.join("compat").join(f);
        fs::create_dir_all(&compat).map_err(|e| e.to_string())?;
        let so0 = compat.join("librumpuser.so.0");
        shared(&full, &so0, "librumpuser.so.0")?;
        split_debug(&so0, &debug)?;
        copy(&so0, &compat.join("librumpuser.so"))?;
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
    if let Some(d) = out.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let work = out.with_extension("o");
    sh(Command::new("ld")
        .args(["-r", "--whole-archive"])
        .arg(input)
        .arg("-o")
        .arg(&work))?;
    sh(Command::new("objcopy")
        .args(["--wildcard", "--keep-global-symbol=rumpuser_*"])
        .args(["--remove-section=.llvmbc", "--remove-section=.llvmcmd"])
        .arg("--compress-debug-sections=zlib")
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
        .arg("-Wl,--build-id=sha1")
        .args(["-Wl,--whole-archive"])
        .arg(archive)
        .args(["-Wl,--no-whole-archive", "-Wl,-z,defs"])
        .args(LIBS_PRIVATE.split(' '))
        .arg("-o")
        .arg(out))
}

/// Writes `full` (an archive with debug info) to `out` without it.
/// Symbols stay, so a backtrace through a static link still names our
/// functions.
pub fn strip_archive(full: &Path, out: &Path) -> Result<()> {
    if let Some(d) = out.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    sh(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(full)
        .arg(out))
}

/// The build-id (lowercase hex) in a `readelf -n` answer.
pub fn parse_build_id(readelf_n: &str) -> Option<String> {
    readelf_n
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .map(|id| id.trim().to_ascii_lowercase())
        .filter(|id| id.len() >= 4 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where a build-id's debug file lives under a debug directory
/// (`.build-id/xx/rest.debug`, as gdb looks it up).
pub fn build_id_path(debug_dir: &Path, id: &str) -> PathBuf {
    debug_dir
        .join(".build-id")
        .join(&id[..2])
        .join(format!("{}.debug", &id[2..]))
}

/// `to` as seen from directory `from` (both absolute).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let f: Vec<_> = from.components().collect();
    let t: Vec<_> = to.components().collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..f.len() {
        p.push("..");
    }
    for c in &t[common..] {
        p.push(c);
    }
    p
}

/// Moves a shared library's debug info into `debug_dir` by build-id and
/// strips the library, leaving a `.gnu_debuglink` to
/// `<its dir>/.debug/<its name>.debug`, a link to that file.
fn split_debug(so: &Path, debug_dir: &Path) -> Result<()> {
    let id = parse_build_id(&output(Command::new("readelf").arg("-n").arg(so))?)
        .ok_or_else(|| format!("{} has no build-id", so.display()))?;
    let dbg = build_id_path(debug_dir, &id);
    let dir = dbg.parent().unwrap();
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    sh(Command::new("objcopy")
        .args(["--only-keep-debug", "--compress-debug-sections=zlib"])
        .arg(so)
        .arg(&dbg))?;
    let so_dir = so.parent().unwrap();
    let link_dir = so_dir.join(".debug");
    fs::create_dir_all(&link_dir).map_err(|e| format!("{}: {e}", link_dir.display()))?;
    let name = so.file_name().unwrap().to_string_lossy();
    let link = link_dir.join(format!("{name}.debug"));
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(relative(&link_dir, &dbg), &link)
        .map_err(|e| format!("symlink {}: {e}", link.display()))?;
    sh(Command::new("objcopy")
        .arg("--strip-unneeded")
        .arg(format!("--add-gnu-debuglink={}", link.display()))
        .arg(so))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_from_readelf() {
        let n = "\nDisplaying notes found in: .note.gnu.build-id\n  Owner                Data size \tDescription\n  \
                 GNU                  0x00000014\tNT_GNU_BUILD_ID (unique build ID bitstring)\n    \
                 Build ID: DE6d2a60e6472b370f12e301e675330b249f19c4\n";
        let id = parse_build_id(n).unwrap();
        assert_eq!(id, "de6d2a60e6472b370f12e301e675330b249f19c4");
        assert_eq!(
            build_id_path(Path::new("/d"), &id),
            Path::new("/d/.build-id/de/6d2a60e6472b370f12e301e675330b249f19c4.debug")
        );
        assert_eq!(
            parse_build_id("Displaying notes found in: .note.ABI-tag\n"),
            None
        );
        assert_eq!(parse_build_id("    Build ID: xyz\n"), None);
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(
                Path::new("/t/dist/lib/.debug"),
                Path::new("/t/dist/lib/debug/.build-id/ab/c.debug")
            ),
            Path::new("../debug/.build-id/ab/c.debug")
        );
        assert_eq!(
            relative(
                Path::new("/t/dist/compat/posix/.debug"),
                Path::new("/t/dist/lib/debug/x")
            ),
            Path::new("../../../lib/debug/x")
        );
    }
}
