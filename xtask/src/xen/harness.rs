//! The harness of `xen-test`, assembled once from Debian's packages
//! (`apt-get download`, `dpkg -x`) and cached in `target/xen-harness/`:
//! the Xen 4.17 hypervisor binary (or `$XEN_HYPERVISOR`), and the domU
//! harness's package tree (Debian's Linux as dom0, the xl toolstack,
//! busybox).

use crate::util::{output, require, sh, target, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian package the hypervisor binary comes from.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// `target/xen-harness/`, created if need be.
pub(super) fn harness_dir() -> Result<PathBuf> {
    let d = target().join("xen-harness");
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Whether both harnesses (the hypervisor, the domU's packages) are in
/// `target/xen-harness/` already, so that no `apt-get download` is needed.
pub fn harness_cached() -> bool {
    let d = target().join("xen-harness");
    (std::env::var_os("XEN_HYPERVISOR").is_some() || is_elf(&d.join("xen-4.17")))
        && d.join("domu/ready").is_file()
}

fn is_elf(p: &Path) -> bool {
    fs::read(p)
        .map(|b| b.len() > 1 << 20 && b.starts_with(b"\x7fELF"))
        .unwrap_or(false)
}

fn gunzip(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("zcat")
        .arg(from)
        .output()
        .map_err(|e| format!("cannot run zcat: {e}"))?;
    if !out.status.success() {
        return Err(format!("zcat {} failed ({})", from.display(), out.status));
    }
    fs::write(to, &out.stdout).map_err(|e| format!("{}: {e}", to.display()))
}

/// The Xen hypervisor binary: `$XEN_HYPERVISOR`, the cached copy, or a
/// fresh one from Debian's package.
pub fn hypervisor() -> Result<PathBuf> {
    let dir = harness_dir()?;
    if let Some(p) = std::env::var_os("XEN_HYPERVISOR").map(PathBuf::from) {
        if p.extension().is_some_and(|e| e == "gz") {
            let out = dir.join("xen-custom");
            gunzip(&p, &out)?;
            return Ok(out);
        }
        return Ok(p);
    }
    let xen = dir.join("xen-4.17");
    if is_elf(&xen) {
        return Ok(xen);
    }
    for (t, hint) in [
        ("apt-get", "the Xen harness comes from Debian's packages"),
        ("dpkg", "the Xen harness comes from Debian's packages"),
        ("zcat", "apt-get install gzip"),
    ] {
        require(t, hint)?;
    }
    let dl = dir.join("dl");
    let _ = fs::remove_dir_all(&dl);
    fs::create_dir_all(&dl).map_err(|e| format!("{}: {e}", dl.display()))?;
    eprintln!(
        "xen: assembling the harness from {PACKAGE} (once; cached in {})",
        dir.display()
    );
    let st = Command::new("apt-get")
        .args(["download", PACKAGE])
        .current_dir(&dl)
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !st.success() {
        return Err(format!(
            "`apt-get download {PACKAGE}` failed ({st}): the Xen harness needs Debian 12's \
             package list (run `apt-get update`; .ci/run does), or set XEN_HYPERVISOR to a \
             Xen 4.17 binary"
        ));
    }
    let deb = fs::read_dir(&dl)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or("apt-get download left no .deb")?;
    let x = dl.join("x");
    sh(Command::new("dpkg").arg("-x").arg(&deb).arg(&x))?;
    let gz = fs::read_dir(x.join("boot"))
        .map_err(|e| format!("{}: {e}", x.join("boot").display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("xen-") && n.ends_with(".gz"))
        })
        .ok_or("the package holds no boot/xen-*.gz")?;
    let tmp = dir.join("xen-4.17.tmp");
    gunzip(&gz, &tmp)?;
    if !is_elf(&tmp) {
        return Err(format!("{} is not a Xen ELF image", gz.display()));
    }
    fs::rename(&tmp, &xen).map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&dl);
    Ok(xen)
}

/// Debian packages of the domU harness besides the dom0 kernel.
const DOMU_PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xen-utils-common",
    "libxenmisc4.17",
    "libxenstore4",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxentoollog1",
    "libxentoolcore1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libyajl2",
    "busybox-static",
    "xenstore-utils",
];

/// The domU harness: the extracted packages and the dom0 kernel.
pub(super) struct Domu {
    /// Root of the extracted packages.
    pub x: PathBuf,
    /// The dom0 kernel release (`6.1.0-NN-amd64`).
    pub release: String,
    /// Work directory.
    pub dir: PathBuf,
}

/// Downloads and extracts the domU harness once (about 75 MB, cached in
/// `target/xen-harness/domu/`).
pub(super) fn domu_harness() -> Result<Domu> {
    let dir = harness_dir()?.join("domu");
    let x = dir.join("x");
    let ready = dir.join("ready");
    if let Ok(release) = fs::read_to_string(&ready) {
        return Ok(Domu {
            x,
            release: release.trim().to_string(),
            dir,
        });
    }
    for (t, hint) in [
        ("apt-get", "the Xen harness comes from Debian's packages"),
        ("apt-cache", "the Xen harness comes from Debian's packages"),
        ("dpkg", "the Xen harness comes from Debian's packages"),
        ("gzip", "apt-get install gzip"),
    ] {
        require(t, hint)?;
    }
    let deps = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let kernel = deps
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .ok_or("apt-cache names no linux-image-*-amd64 for linux-image-amd64 (run apt-get update)")?
        .to_string();
    let release = kernel.trim_start_matches("linux-image-").to_string();
    let debs = dir.join("debs");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    eprintln!("xen: assembling the domU harness (dom0 {kernel} and the toolstack; once)");
    let st = Command::new("apt-get")
        .arg("download")
        .arg(&kernel)
        .args(DOMU_PACKAGES)
        .current_dir(&debs)
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !st.success() {
        return Err(format!(
            "`apt-get download` of the domU harness failed ({st}): run `apt-get update`"
        ));
    }
    for e in fs::read_dir(&debs).map_err(|e| e.to_string())? {
        let p = e.map_err(|e| e.to_string())?.path();
        if p.extension().is_some_and(|e| e == "deb") {
            sh(Command::new("dpkg").arg("-x").arg(&p).arg(&x))?;
        }
    }
    let _ = fs::remove_dir_all(&debs);
    fs::write(&ready, &release).map_err(|e| e.to_string())?;
    Ok(Domu { x, release, dir })
}
