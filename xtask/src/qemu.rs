//! Running a bare-metal image under QEMU and collecting its serial output,
//! and the steps the bare-metal and Xen tests share (`baremetal.rs`,
//! `xen/`): building the freestanding test image, archive and clippy
//! run, counting the guest's test lines, checking exit statuses, linking
//! the C image and the real kernel layer against a platform archive.
//!
//! The guest's console is `-serial stdio`; its exit status comes from the
//! `isa-debug-exit` device (`rumpuser_baremetal::status`: guest value `v`
//! becomes QEMU status `2v + 1`). QEMU runs with TCG (fast to start here;
//! KVM adds seconds of firmware time), is killed when the timeout passes
//! or when the [`Qemu`] guard is dropped (so a failing test never leaves a
//! VM behind), and every line it prints is echoed as it arrives.

use crate::util::{output, require, root, sh, target, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

use rumpuser_pvh::status::decode;
/// What the guest's exit status means: the guest crates' own table.
pub use rumpuser_pvh::status::Outcome;

/// One finished run.
pub struct Run {
    /// Decoded exit status.
    pub outcome: Outcome,
    /// Serial output, `\r` removed.
    pub output: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Whether the run hit the timeout and was killed.
    pub timed_out: bool,
}

/// Kills QEMU when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The common machine: q35, TCG, `-cpu max` (RDRAND), no display, no
/// reboot, serial on stdio, the debug-exit device.
pub fn base_args(cpu: &str, mem: &str) -> Vec<String> {
    [
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        cpu,
        "-m",
        mem,
        "-display",
        "none",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Boots `image` with `args` (after [`base_args`]) and the kernel command
/// line `append`; echoes output lines prefixed with `label`.
pub fn run(
    image: &Path,
    args: &[String],
    append: &str,
    label: &str,
    timeout: Duration,
) -> Result<Run> {
    let mut cmd = Command::new(QEMU);
    cmd.args(args)
        .arg("-kernel")
        .arg(image)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!(
        "+ {QEMU} {} -kernel {} -append {append:?}",
        args.join(" "),
        image.display()
    );
    let start = Instant::now();
    let mut child = Qemu(
        cmd.spawn()
            .map_err(|e| format!("cannot start {QEMU}: {e}"))?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.0.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    let label = label.to_string();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            eprintln!("[{label}] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.0.kill();
                break child.0.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {QEMU}: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    let output: Vec<String> = rx.try_iter().collect();
    if !qemu_err.trim().is_empty() {
        eprintln!("[qemu] stderr: {}", qemu_err.trim());
    }
    Ok(Run {
        outcome: decode(status.and_then(|s| s.code())),
        output: output.join("\n"),
        elapsed,
        timed_out,
    })
}

/// Whether QEMU is installed.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(QEMU).is_file()))
        .unwrap_or(false)
}

// ---- steps shared by the bare-metal and Xen tests ---------------------

/// The freestanding target both platforms are built for.
pub const TARGET: &str = "x86_64-unknown-none";

/// `cargo <sub> --release -p <package> --target x86_64-unknown-none <args>`
/// in the workspace, without the release profile's LTO: the test images
/// define stand-ins for symbols the platform references weakly (if_virt's
/// delivery function), which one LTO module cannot hold both of.
fn cargo_freestanding(sub: &str, package: &str, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    sh(Command::new(cargo)
        .args([sub, "--release", "-p", package, "--target", TARGET])
        .args(args)
        .env("CARGO_PROFILE_RELEASE_LTO", "false")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
        .current_dir(root()))
}

/// The release output directory of the freestanding build.
fn release_dir() -> PathBuf {
    target().join(TARGET).join("release")
}

/// Builds `package`'s test image `bin` (feature `test-image`, release)
/// and returns its path.
pub fn build_test_image(package: &str, bin: &str) -> Result<PathBuf> {
    cargo_freestanding(
        "build",
        package,
        &["--features", "test-image", "--bin", bin],
    )?;
    Ok(release_dir().join(bin))
}

/// Builds `package`'s library as a static archive (release) and returns
/// the path of `lib<package>.a`.
pub fn build_archive(package: &str) -> Result<PathBuf> {
    cargo_freestanding("rustc", package, &["--lib", "--crate-type", "staticlib"])?;
    Ok(release_dir().join(format!("lib{}.a", package.replace('-', "_"))))
}

/// Clippy for `package`'s freestanding build with its test image (the
/// workspace's clippy run only sees the host build, where the platform
/// is compiled out).
pub fn clippy(package: &str) -> Result<()> {
    cargo_freestanding(
        "clippy",
        package,
        &["--features", "test-image", "--", "-D", "warnings"],
    )
}

/// Clippy for rumpuser-pvh's freestanding build, with its test harness
/// (`guest-tests`): a package's clippy run does not lint its dependencies.
pub fn clippy_pvh() -> Result<()> {
    cargo_freestanding(
        "clippy",
        "rumpuser-pvh",
        &["--features", "guest-tests", "--", "-D", "warnings"],
    )
}

/// Counts the guest's `<suite> <case> ... ok|FAILED|skipped` lines (Xen's
/// own `(XEN)` lines aside) and checks the `<suite>: ...` summary; `who`
/// prefixes what is printed.
pub fn check_cases(run: &Run, suite: &str, min_passed: usize, who: &str) -> Result<usize> {
    let guest = || run.output.lines().filter(|l| !l.starts_with("(XEN)"));
    let prefix = format!("{suite} ");
    let mut passed = 0;
    let mut failed = Vec::new();
    for l in guest().filter(|l| l.starts_with(&prefix)) {
        if l.ends_with(" ... ok") {
            passed += 1;
        } else if l.contains(" ... FAILED") {
            failed.push(l.to_string());
        }
    }
    let summary = guest()
        .find(|l| l.starts_with(&format!("{suite}: ")))
        .ok_or_else(|| format!("{who}: no `{suite}:` summary line in the console output"))?;
    if !failed.is_empty() {
        return Err(format!(
            "{who}: {} {suite} case(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ));
    }
    if passed < min_passed {
        return Err(format!(
            "{who}: only {passed} {suite} cases passed (want at least {min_passed}); {summary}"
        ));
    }
    eprintln!("{who}: {summary}");
    Ok(passed)
}

/// Fails unless the run ended (in time) with `want`; shows the last lines.
pub fn expect(run: &Run, want: Outcome, what: &str) -> Result<()> {
    if run.timed_out {
        return Err(format!("{what}: QEMU timed out after {:?}", run.elapsed));
    }
    if run.outcome != want {
        let tail: Vec<&str> = run.output.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{what}: the guest ended with {:?}, expected {want:?}; last lines:\n  {}",
            run.outcome,
            tail.join("\n  ")
        ));
    }
    Ok(())
}

/// `cc -c -O2 -ffreestanding <extra> -I <include> <src> -o <obj>`.
fn cc(src: &Path, include: &Path, extra: &[&str], obj: &Path) -> Result<()> {
    cc_multi(src, &[include], extra, obj)
}

/// Compiles `src` for a PVH image (no C library, `-ffreestanding`) with
/// every directory of `includes`.
pub fn cc_multi(src: &Path, includes: &[&Path], extra: &[&str], obj: &Path) -> Result<()> {
    let mut cc = Command::new("cc");
    cc.args(["-c", "-O2", "-ffreestanding"]).args(extra);
    for i in includes {
        cc.arg("-I").arg(i);
    }
    sh(cc.arg(src).arg("-o").arg(obj))
}

fn ld(elf: &Path, obj: &Path, whole: &[PathBuf], archive: &Path, gc_sections: bool) -> Result<()> {
    link_image(elf, &[obj.to_path_buf()], whole, archive, gc_sections)
}

/// Links a PVH image with `rumpuser-pvh/link.ld` the documented way:
/// the `objs`, the kernel archives `whole` (whole), the platform `archive`.
pub fn link_image(
    elf: &Path,
    objs: &[PathBuf],
    whole: &[PathBuf],
    archive: &Path,
    gc_sections: bool,
) -> Result<()> {
    let mut ld = Command::new("ld");
    ld.args(["-static", "-nostdlib"]);
    if gc_sections {
        ld.arg("--gc-sections");
    }
    ld.arg("-T")
        .arg(root().join("rumpuser-pvh/link.ld"))
        .args(["-u", "pvh_start32", "-o"])
        .arg(elf)
        .args(objs);
    if !whole.is_empty() {
        ld.arg("--whole-archive")
            .args(whole)
            .arg("--no-whole-archive");
    }
    sh(ld.arg(archive))
}

/// `tests/baremetal/c_image.c` compiled like a kernel layer and linked
/// against the platform `archive` into `dir/c_image.elf`.
pub fn link_c_image(dir: &Path, archive: &Path) -> Result<PathBuf> {
    for t in ["cc", "ld"] {
        require(t, "install Debian's build-essential and binutils")?;
    }
    let obj = dir.join("c_image.o");
    let elf = dir.join("c_image.elf");
    cc(
        &root().join("tests/baremetal/c_image.c"),
        &root().join("rumpuser-core/include"),
        &["-fstack-protector-strong"],
        &obj,
    )?;
    ld(&elf, &obj, &[], archive, true)?;
    Ok(elf)
}

/// What a run of the C image (booted with `-- hello`) must print, and
/// its status 7.
pub fn check_c_image(run: &Run, what: &str) -> Result<()> {
    expect(run, Outcome::Exited(7), what)?;
    for n in [
        "c-image: ctor 42 linkset 42 data 5 bss 0 argc 2 argv1 hello",
        "c-image: init 0",
        "c-image: args 1 -2 three 4 5 6 7 8 0x9 ten 00011|xy  |",
        "c-image: double 4.50 4.500000e+03",
        "c-image: malloc 0 aligned 1",
        "c-image: wall 0 1",
        "c-image: random 0 16",
        "c-image: sleep 0 stack 2208",
    ] {
        if !run.output.lines().any(|l| l == n) {
            return Err(format!("{what}: missing line {n:?}"));
        }
    }
    Ok(())
}

/// The kernel libraries `tests/baremetal/kernel_ext2.c` links.
pub const KERNEL_LIBS: &[&str] = &[
    "rumpfs_ext2fs",
    "rumpfs_ffs",
    "rumpdev_disk",
    "rumpdev",
    "rumpvfs",
    "rump",
];

/// `$RUMP_KERNEL_DIR` when it holds a kernel layer the ext2 step can
/// link (built with `RUMP_CURLWP=hypercall`) and `mke2fs` exists;
/// otherwise says why `<who> kernel-ext2` is skipped and returns `None`.
pub fn kernel_layer(who: &str) -> Result<Option<PathBuf>> {
    let skip = |why: String| {
        eprintln!("{who} kernel-ext2: SKIPPED ({why})");
        Ok(None)
    };
    let Some(k) = std::env::var_os("RUMP_KERNEL_DIR").map(PathBuf::from) else {
        return skip(
            "set RUMP_KERNEL_DIR to a rump kernel layer built with RUMP_CURLWP=hypercall \
             to boot it"
                .into(),
        );
    };
    let lib = k.join("lib");
    let missing: Vec<_> = KERNEL_LIBS
        .iter()
        .filter(|l| !lib.join(format!("lib{l}.a")).is_file())
        .collect();
    if !missing.is_empty() {
        return skip(format!("the kernel layer lacks {missing:?}"));
    }
    let syms = output(Command::new("nm").arg(lib.join("librump.a")))?;
    if syms.contains(" B rumpns_curlwp_storage") {
        return skip(format!(
            "{} was built with RUMP_CURLWP=__thread; this step needs RUMP_CURLWP=hypercall",
            k.display()
        ));
    }
    if require("mke2fs", "apt-get install e2fsprogs").is_err() {
        return skip("mke2fs is missing: apt-get install e2fsprogs".into());
    }
    Ok(Some(k))
}

/// The C program `src` compiled against the kernel layer `k` and linked
/// with its [`KERNEL_LIBS`] and the platform `archive` into `elf`.
pub fn link_kernel_image(k: &Path, src: &Path, archive: &Path, elf: &Path) -> Result<()> {
    let obj = elf.with_extension("o");
    cc(src, &k.join("include"), &[], &obj)?;
    let libs: Vec<PathBuf> = KERNEL_LIBS
        .iter()
        .map(|l| k.join("lib").join(format!("lib{l}.a")))
        .collect();
    ld(elf, &obj, &libs, archive, false)
}

/// A fresh 16 MiB ext2 file system (1 KiB blocks) in `img`.
pub fn make_ext2(img: &Path) -> Result<()> {
    let _ = std::fs::remove_file(img);
    sh(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext2", "-b", "1024"])
        .arg(img)
        .arg("16384"))
}
