//! `cargo xtask xen-run`: an application (C sources or objects, and
//! optionally a rump kernel layer) linked against `librumpuser_xen.a` and
//! booted as dom0, or as a domU with a disk and a vif; the test steps
//! build and boot their C images the same way.

use super::dist::build_archive;
use super::dom0::{guest_lines, run_dom0};
use super::domu::{domu_lines, run_domu, DomuSpec, Peer};
use super::harness::{harness_dir, hypervisor};
use crate::qemu::{self, Outcome, Run};
use crate::util::{require, root, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An application for `cargo xtask xen-run`: C sources (or objects),
/// optionally a rump kernel layer, linked against `librumpuser_xen.a`.
pub struct App {
    /// `.c` files (compiled here) and `.o` files.
    pub sources: Vec<PathBuf>,
    /// A kernel layer (`lib/`, `include/`) built with `RUMP_CURLWP=hypercall`.
    pub kernel: Option<PathBuf>,
    /// Extra kernel archives (`lib/`), looked for before the kernel
    /// layer's (the `if_virt` without NetBSD's tap code).
    pub pci: Option<PathBuf>,
    /// Its libraries to link whole (`rumpfs_ffs` …); default [`qemu::KERNEL_LIBS`].
    pub libs: Vec<String>,
    /// Extra compiler flags.
    pub cflags: Vec<String>,
    /// A disk image for `xvda` (implies a domU).
    pub disk: Option<PathBuf>,
    /// Boot as a domU under the Linux dom0 and toolstack (else as dom0).
    pub domu: bool,
    /// The domU's memory.
    pub memory_mb: u32,
    /// The guest's command line (parameters, then `--` and `main`'s arguments).
    pub cmdline: String,
    /// How long a dom0 run may take.
    pub timeout: Duration,
    /// What dom0 runs against a domU (the network tests).
    pub peer: Option<Peer>,
}

/// What booting an [`App`] gave: the whole log, the guest's lines, and
/// its exit status when it reported one.
pub struct AppRun {
    pub run: Run,
    pub guest: Vec<String>,
    pub status: Option<u32>,
}

/// Compiles and links `app` into `harness/apps/<name>.elf`.
pub fn build_app(app: &App, name: &str) -> Result<PathBuf> {
    for t in ["cc", "ld"] {
        require(t, "install Debian's build-essential and binutils")?;
    }
    if app.sources.is_empty() {
        return Err("xen-run: no application sources (.c or .o)".into());
    }
    let archive = build_archive()?;
    let dir = harness_dir()?.join("apps");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let core_inc = root().join("rumpuser-core/include");
    let kernel_inc = app.kernel.as_ref().map(|k| k.join("include"));
    let mut includes = vec![core_inc.as_path()];
    includes.extend(kernel_inc.as_deref());
    let cflags: Vec<&str> = app.cflags.iter().map(String::as_str).collect();
    let mut objs = Vec::new();
    for (n, src) in app.sources.iter().enumerate() {
        match src.extension().and_then(|e| e.to_str()) {
            Some("c") => {
                let stem = src.file_stem().unwrap_or_default().to_string_lossy();
                let obj = dir.join(format!("{name}-{n}-{stem}.o"));
                qemu::cc_multi(src, &includes, &cflags, &obj)?;
                objs.push(obj);
            }
            Some("o") => objs.push(src.clone()),
            _ => {
                return Err(format!(
                    "xen-run: {}: expected a .c or .o file",
                    src.display()
                ))
            }
        }
    }
    let whole: Vec<PathBuf> = match &app.kernel {
        None => Vec::new(),
        Some(k) => {
            let libs: Vec<String> = if app.libs.is_empty() {
                qemu::KERNEL_LIBS.iter().map(|l| l.to_string()).collect()
            } else {
                app.libs.clone()
            };
            let mut paths = Vec::new();
            for l in &libs {
                let file = format!("lib{l}.a");
                let p = app
                    .pci
                    .iter()
                    .chain(std::iter::once(k))
                    .map(|d| d.join("lib").join(&file))
                    .find(|p| p.is_file())
                    .ok_or_else(|| {
                        format!(
                            "xen-run: {file} is in neither {}/lib nor the PCI directory",
                            k.display()
                        )
                    })?;
                paths.push(p);
            }
            paths
        }
    };
    let elf = dir.join(format!("{name}.elf"));
    // Without a kernel, unused sections go; a kernel's link sets must stay.
    qemu::link_image(&elf, &objs, &whole, &archive, app.kernel.is_none())?;
    Ok(elf)
}

/// The exit status a guest line reports, if any.
fn status_of(line: &str) -> Option<u32> {
    let num = |rest: &str| rest.trim_end_matches(')').trim().parse().ok();
    if let Some(r) = line.strip_prefix("rumpuser-xen: main returned ") {
        return num(r);
    }
    if let Some(r) = line.strip_prefix("rumpuser-xen: halted (exit status ") {
        return num(r);
    }
    None
}

/// Boots `elf` as `app` says (dom0, or a domU with its disk).
pub fn boot_app(xen: &Path, app: &App, elf: &Path, label: &str) -> Result<AppRun> {
    if app.domu || app.disk.is_some() {
        let run = run_domu(
            xen,
            elf,
            &DomuSpec {
                params: &app.cmdline,
                disk: app.disk.as_deref(),
                memory_mb: app.memory_mb,
                peer: app.peer.clone(),
            },
            label,
        )?;
        let guest = domu_lines(&run);
        let status = guest.iter().rev().find_map(|l| status_of(l));
        return Ok(AppRun { run, guest, status });
    }
    let run = run_dom0(xen, elf, &app.cmdline, label, app.timeout)?;
    let guest = guest_lines(&run).map(String::from).collect();
    let status = match run.outcome {
        Outcome::Exited(n) => Some(n),
        _ => None,
    };
    Ok(AppRun { run, guest, status })
}

/// `cargo xtask xen-run [OPTIONS] FILE.c|FILE.o... [-- GUEST COMMAND LINE]`.
pub fn xen_run(args: &[String]) -> Result<()> {
    let (opts, cmdline) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].join(" ")),
        None => (args, String::new()),
    };
    let mut app = App {
        sources: Vec::new(),
        kernel: std::env::var_os("RUMP_KERNEL_DIR").map(PathBuf::from),
        pci: std::env::var_os("RUMP_PCI_DIR").map(PathBuf::from),
        libs: Vec::new(),
        cflags: Vec::new(),
        disk: None,
        domu: false,
        memory_mb: 128,
        cmdline,
        timeout: Duration::from_secs(600),
        peer: None,
    };
    let mut it = opts.iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("xen-run: {a} needs {what}"))
        };
        match a.as_str() {
            "--kernel" => app.kernel = Some(PathBuf::from(val("a directory")?)),
            "--no-kernel" => app.kernel = None,
            "--pci" => app.pci = Some(PathBuf::from(val("a directory")?)),
            "--lib" => app.libs.push(val("a library name (rumpfs_ffs)")?),
            "--cflag" => app.cflags.push(val("a compiler flag")?),
            "--disk" => app.disk = Some(PathBuf::from(val("an image file")?)),
            "--domu" => app.domu = true,
            "--memory" => {
                app.memory_mb = val("MiB")?
                    .parse()
                    .map_err(|_| "xen-run: --memory takes MiB".to_string())?
            }
            "--timeout" => {
                app.timeout = Duration::from_secs(
                    val("seconds")?
                        .parse()
                        .map_err(|_| "xen-run: --timeout takes seconds".to_string())?,
                )
            }
            s if s.starts_with("--") => return Err(format!("xen-run: unknown option {s}")),
            s => app.sources.push(PathBuf::from(s)),
        }
    }
    crate::baremetal::require_tools()?;
    let xen = hypervisor()?;
    let elf = build_app(&app, "app")?;
    eprintln!("xen-run: image {}", elf.display());
    let r = boot_app(&xen, &app, &elf, "guest")?;
    match r.status {
        Some(0) => Ok(()),
        Some(n) => Err(format!("xen-run: the guest exited with status {n}")),
        None => Err(format!(
            "xen-run: the guest reported no exit status ({:?}; see the log above)",
            r.run.outcome
        )),
    }
}
