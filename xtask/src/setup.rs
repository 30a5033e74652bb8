//! What the commands need from the host, and getting it: Debian packages
//! (installed with `apt-get` when running as root, otherwise named in one
//! command to run), Rust targets and components (added with `rustup`).
//!
//! The check is quick when everything is present: one `dpkg-query` for
//! the packages, one `rustup ... list --installed` each for targets and
//! components; `apt-get update` runs only when something is to be
//! installed, or when the Xen harness still has to be downloaded and the
//! package lists do not know it. `XTASK_NO_INSTALL=1` makes a root run
//! behave like a user's: report, never install.
//!
//! The decisions (what is missing given the tools' answers, what to do
//! about it, what to print) are pure functions, unit-tested below.

use crate::util::{output, Result};
use std::process::Command;

/// A Debian package a command needs, with the programs it provides (used
/// to check a host without `dpkg-query`) and why it is needed.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// The Debian package name.
    pub name: &'static str,
    /// Programs on `PATH` that show the package is there (may be empty).
    pub tools: &'static [&'static str],
    /// What it is for (one line, shown with the install hint).
    pub why: &'static str,
}

const BUILD_ESSENTIAL: Package = Package {
    name: "build-essential",
    tools: &["cc"],
    why: "the C compiler for the C-ABI tests and the demo",
};
const BINUTILS: Package = Package {
    name: "binutils",
    tools: &["ld", "objcopy", "ar", "nm", "readelf", "addr2line"],
    why: "merging, localising and stripping the archives",
};
const PKG_CONFIG: Package = Package {
    name: "pkg-config",
    tools: &["pkg-config"],
    why: "the .pc files",
};
const E2FSPROGS: Package = Package {
    name: "e2fsprogs",
    tools: &["mke2fs", "debugfs", "e2fsck"],
    why: "ext2 disk images for the real-kernel and bare-metal tests",
};
const CA_CERTIFICATES: Package = Package {
    name: "ca-certificates",
    tools: &[],
    why: "TLS for cargo and rustup downloads",
};
const QEMU_SYSTEM: Package = Package {
    name: "qemu-system-x86",
    tools: &["qemu-system-x86_64"],
    why: "booting the bare-metal and Xen platforms",
};
const GCC_AARCH64: Package = Package {
    name: "gcc-aarch64-linux-gnu",
    tools: &["aarch64-linux-gnu-gcc"],
    why: "linking the AArch64 tests",
};
const LIBC_ARM64: Package = Package {
    name: "libc6-dev-arm64-cross",
    tools: &[],
    why: "the AArch64 C library",
};
const QEMU_USER: Package = Package {
    name: "qemu-user",
    tools: &["qemu-aarch64"],
    why: "running the AArch64 tests",
};

/// What one command needs.
#[derive(Clone, Copy, Debug)]
pub struct Needs {
    /// Debian packages.
    pub packages: &'static [Package],
    /// Rust targets (`rustup target add`).
    pub targets: &'static [&'static str],
    /// Rust components (`rustup component add`).
    pub components: &'static [&'static str],
    /// Packages `apt-get download` fetches (the Xen harness), which the
    /// package lists must know; checked only when [`Needs::lists_needed`]
    /// says the harness is not cached yet.
    pub downloads: &'static [&'static str],
}

/// `cargo xtask dist`.
pub const DIST: Needs = Needs {
    packages: &[BUILD_ESSENTIAL, BINUTILS],
    targets: &[],
    components: &[],
    downloads: &[],
};

/// `cargo xtask test`: everything the suite uses.
pub const TEST: Needs = Needs {
    packages: &[
        BUILD_ESSENTIAL,
        BINUTILS,
        PKG_CONFIG,
        E2FSPROGS,
        CA_CERTIFICATES,
        QEMU_SYSTEM,
        GCC_AARCH64,
        LIBC_ARM64,
        QEMU_USER,
    ],
    targets: &["x86_64-unknown-none", "aarch64-unknown-linux-gnu"],
    components: &["rustfmt", "clippy"],
    downloads: &[crate::xen::PACKAGE, "linux-image-amd64"],
};

impl Needs {
    /// Whether the package lists must know [`Needs::downloads`] (the Xen
    /// harness is not cached yet).
    fn lists_needed(&self) -> bool {
        !self.downloads.is_empty() && !crate::xen::harness_cached()
    }
}

/// What to do about the Debian packages.
#[derive(Debug, PartialEq, Eq)]
pub enum AptPlan {
    /// Everything is there.
    Nothing,
    /// Run `apt-get update` (if `update`) and install `install` (maybe none).
    Run {
        /// Refresh the package lists first.
        update: bool,
        /// Packages to install.
        install: Vec<&'static str>,
    },
    /// Not allowed to install: the message names the command to run.
    Fail(String),
}

/// The packages of `wanted` that a `dpkg-query -W -f '${Package}\t${db:Status-Abbrev}\n'`
/// answer does not show as installed (`ii`). Packages dpkg has never
/// heard of are absent from the answer, and `rc` (removed, config left)
/// is not installed.
pub fn missing_packages(wanted: &[Package], dpkg: &str) -> Vec<&'static str> {
    wanted
        .iter()
        .map(|p| p.name)
        .filter(|name| {
            !dpkg.lines().any(|l| {
                let mut it = l.split('\t');
                let pkg = it.next().unwrap_or("");
                // `${Package}` has no architecture, but be lenient.
                let pkg = pkg.split(':').next().unwrap_or("");
                pkg == *name && it.next().is_some_and(|s| s.starts_with("ii"))
            })
        })
        .collect()
}

/// The packages of `wanted` one of whose programs `present` does not find
/// (for hosts without `dpkg-query`; packages without programs cannot be
/// checked this way and are assumed present).
pub fn missing_by_tools(wanted: &[Package], present: impl Fn(&str) -> bool) -> Vec<&'static str> {
    wanted
        .iter()
        .filter(|p| p.tools.iter().any(|t| !present(t)))
        .map(|p| p.name)
        .collect()
}

/// The names of `wanted` not in a `rustup target list --installed` or
/// `rustup component list --installed` answer (components are listed
/// with the host triple appended: `clippy-x86_64-unknown-linux-gnu`).
pub fn missing_rust(wanted: &[&'static str], installed: &str, host: &str) -> Vec<&'static str> {
    wanted
        .iter()
        .copied()
        .filter(|w| {
            let with_host = format!("{w}-{host}");
            !installed
                .lines()
                .map(str::trim)
                .any(|l| l == *w || l == with_host)
        })
        .collect()
}

/// The host triple from a `rustc -vV` answer.
pub fn host_triple(rustc_vv: &str) -> Option<&str> {
    rustc_vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::trim)
}

/// Whether an `apt-cache policy PKG...` answer has a candidate version
/// for every one of `pkgs` (unknown packages print nothing; known ones a
/// `Candidate:` line, `(none)` when no list offers them).
pub fn lists_know(pkgs: &[&str], policy: &str) -> bool {
    pkgs.iter().all(|p| {
        let mut lines = policy
            .lines()
            .skip_while(|l| l.trim_end() != format!("{p}:"));
        lines.next().is_some()
            && lines.take_while(|l| l.starts_with(' ')).any(|l| {
                l.trim()
                    .strip_prefix("Candidate:")
                    .is_some_and(|c| c.trim() != "(none)")
            })
    })
}

/// What to do, given the missing packages, whether the lists must be
/// refreshed for downloads, and whether this process may install.
pub fn apt_plan(
    missing: Vec<&'static str>,
    lists_stale: bool,
    may_install: bool,
    sudo: bool,
    why: impl Fn(&str) -> &'static str,
) -> AptPlan {
    if missing.is_empty() && !lists_stale {
        return AptPlan::Nothing;
    }
    if may_install {
        return AptPlan::Run {
            update: true,
            install: missing,
        };
    }
    let s = if sudo { "sudo " } else { "" };
    let update = format!("{s}apt-get update");
    let install = format!(
        "{s}apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    let (what, cmd) = match (missing.is_empty(), lists_stale) {
        (true, _) => (
            "the package lists do not offer the Xen harness's packages (`apt-get download` needs them)"
                .to_string(),
            update,
        ),
        (false, stale) => {
            let mut what = String::from("missing Debian packages:");
            for m in &missing {
                what.push_str(&format!("\n  {m:<24} {}", why(m)));
            }
            (what, if stale { format!("{update} && {install}") } else { install })
        }
    };
    let who = if sudo { "" } else { " as root" };
    AptPlan::Fail(format!("{what}\nrun{who}:\n  {cmd}"))
}

/// The one-line summary of a check.
pub fn summary(
    installed_pkgs: &[&str],
    added_rust: &[&str],
    updated: bool,
    checked: usize,
) -> String {
    let mut parts = Vec::new();
    if !installed_pkgs.is_empty() {
        parts.push(format!("installed {}", installed_pkgs.join(" ")));
    } else if updated {
        parts.push("refreshed the package lists".to_string());
    }
    if !added_rust.is_empty() {
        parts.push(format!("added Rust {}", added_rust.join(" ")));
    }
    if parts.is_empty() {
        format!("setup: all {checked} prerequisites present")
    } else {
        format!("setup: {}", parts.join("; "))
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("setup: {shown}");
    let out = cmd
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The Debian side: returns (installed packages, whether lists were updated).
fn ensure_packages(needs: &Needs) -> Result<(Vec<&'static str>, bool)> {
    let why = |name: &str| {
        needs
            .packages
            .iter()
            .find(|p| p.name == name)
            .map_or("", |p| p.why)
    };
    if !on_path("dpkg-query") {
        // Not Debian: name what is missing by its programs.
        let missing = missing_by_tools(needs.packages, on_path);
        if missing.is_empty() {
            return Ok((Vec::new(), false));
        }
        let mut msg = String::from("missing programs (Debian package, what for):");
        for p in needs.packages.iter().filter(|p| missing.contains(&p.name)) {
            let tools: Vec<&str> = p.tools.iter().copied().filter(|t| !on_path(t)).collect();
            msg.push_str(&format!(
                "\n  {:<28} ({}, {})",
                tools.join(" "),
                p.name,
                p.why
            ));
        }
        return Err(msg);
    }
    let names: Vec<&str> = needs.packages.iter().map(|p| p.name).collect();
    // dpkg-query exits 1 when it knows some name not at all; its stdout
    // still lists the others.
    let dpkg = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package}\t${db:Status-Abbrev}\n"])
        .args(&names)
        .output()
        .map_err(|e| format!("cannot run dpkg-query: {e}"))?;
    let missing = missing_packages(needs.packages, &String::from_utf8_lossy(&dpkg.stdout));
    let lists_stale = needs.lists_needed()
        && !lists_know(
            needs.downloads,
            &output(
                Command::new("apt-cache")
                    .arg("policy")
                    .args(needs.downloads),
            )
            .unwrap_or_default(),
        );
    let may_install = is_root() && std::env::var_os("XTASK_NO_INSTALL").is_none_or(|v| v == "0");
    match apt_plan(missing, lists_stale, may_install, on_path("sudo"), why) {
        AptPlan::Nothing => Ok((Vec::new(), false)),
        AptPlan::Fail(msg) => Err(msg),
        AptPlan::Run { update, install } => {
            if update {
                run_quiet(Command::new("apt-get").args(["update", "-qq"]))?;
            }
            if !install.is_empty() {
                run_quiet(
                    Command::new("apt-get")
                        .args(["install", "-y", "-qq", "--no-install-recommends"])
                        .args(["-o", "DPkg::Lock::Timeout=300"])
                        .args(&install),
                )?;
            }
            Ok((install, update))
        }
    }
}

/// The Rust side: returns what was added.
fn ensure_rust(needs: &Needs) -> Result<Vec<&'static str>> {
    if needs.targets.is_empty() && needs.components.is_empty() {
        return Ok(Vec::new());
    }
    if !on_path("rustup") {
        // A toolchain without rustup: check, and say what is missing.
        let mut missing = Vec::new();
        for t in needs.targets {
            let dir =
                output(Command::new("rustc").args(["--print", "target-libdir", "--target", t]))
                    .unwrap_or_default();
            if !std::path::Path::new(dir.trim()).is_dir() {
                missing.push(format!("target {t}"));
            }
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for (c, sub) in needs
            .components
            .iter()
            .map(|c| (c, if *c == "rustfmt" { "fmt" } else { *c }))
        {
            if output(Command::new(&cargo).args([sub, "--version"])).is_err() {
                missing.push(format!("component {c}"));
            }
        }
        return if missing.is_empty() {
            Ok(Vec::new())
        } else {
            Err(format!(
                "this Rust toolchain lacks {} (and there is no rustup to add them)",
                missing.join(", ")
            ))
        };
    }
    let host = output(Command::new("rustc").arg("-vV"))?;
    let host = host_triple(&host)
        .ok_or("rustc -vV names no host")?
        .to_string();
    let mut added = Vec::new();
    for (kind, wanted) in [("target", needs.targets), ("component", needs.components)] {
        if wanted.is_empty() {
            continue;
        }
        let list = output(Command::new("rustup").args([kind, "list", "--installed"]))?;
        let missing = missing_rust(wanted, &list, &host);
        if !missing.is_empty() {
            run_quiet(Command::new("rustup").args([kind, "add"]).args(&missing))?;
            added.extend(missing);
        }
    }
    Ok(added)
}

/// Checks (and where allowed installs) what a command needs, printing one
/// summary line.
pub fn ensure(needs: &Needs) -> Result<()> {
    let (pkgs, updated) = ensure_packages(needs)?;
    let rust = ensure_rust(needs)?;
    let checked = needs.packages.len() + needs.targets.len() + needs.components.len();
    eprintln!("{}", summary(&pkgs, &rust, updated, checked));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DPKG: &str = "build-essential\tii \nbinutils\tii \npkg-config\trc \nqemu-user\tiU \n";

    #[test]
    fn dpkg_answer_gives_the_missing_packages() {
        // e2fsprogs is absent from the answer (dpkg never heard of it),
        // pkg-config removed, qemu-user unpacked but not configured.
        let m = missing_packages(&TEST.packages[..4], DPKG);
        assert_eq!(m, ["pkg-config", "e2fsprogs"]);
        assert_eq!(missing_packages(TEST.packages, DPKG).len(), 7);
        assert!(missing_packages(DIST.packages, DPKG).is_empty());
        assert_eq!(
            missing_packages(DIST.packages, ""),
            ["build-essential", "binutils"]
        );
        // A longer name that starts with the wanted one is not it.
        assert_eq!(
            missing_packages(&[BINUTILS], "binutils-common\tii \n"),
            ["binutils"]
        );
    }

    #[test]
    fn tools_stand_in_for_dpkg() {
        let m = missing_by_tools(TEST.packages, |t| t != "objcopy" && t != "qemu-aarch64");
        assert_eq!(m, ["binutils", "qemu-user"]);
        assert!(missing_by_tools(TEST.packages, |_| true).is_empty());
    }

    #[test]
    fn rustup_lists_give_the_missing_targets_and_components() {
        const HOST: &str = "x86_64-unknown-linux-gnu";
        let targets = "aarch64-unknown-linux-gnu\nx86_64-unknown-linux-gnu\n";
        assert_eq!(
            missing_rust(TEST.targets, targets, HOST),
            ["x86_64-unknown-none"]
        );
        let comps = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                     rust-std-x86_64-unknown-linux-gnu\nrustc-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing_rust(TEST.components, comps, HOST), ["rustfmt"]);
        let comps = format!("{comps}rustfmt-x86_64-unknown-linux-gnu\nrust-src\n");
        assert!(missing_rust(TEST.components, &comps, HOST).is_empty());
        // No prefix matches: `rust` is not `rust-std-...` nor `rust-src`.
        assert_eq!(missing_rust(&["rust"], &comps, HOST), ["rust"]);
        assert!(missing_rust(&["rust-src"], &comps, HOST).is_empty());
        // Another host's component is not this one's.
        assert_eq!(
            missing_rust(&["clippy"], "clippy-aarch64-unknown-linux-gnu\n", HOST),
            ["clippy"]
        );
        let vv =
            "rustc 1.90.0 (1159e78c4 2025-09-14)\nbinary: rustc\nhost: x86_64-unknown-linux-gnu\n";
        assert_eq!(host_triple(vv), Some(HOST));
        assert_eq!(host_triple("rustc 1.0\n"), None);
    }

    #[test]
    fn policy_answer_says_whether_lists_offer_a_package() {
        let known = "xen-hypervisor-4.17-amd64:\n  Installed: (none)\n  Candidate: 4.17.5\n  \
                     Version table:\n     4.17.5 500\nlinux-image-amd64:\n  Installed: (none)\n  \
                     Candidate: 6.1.0\n";
        assert!(lists_know(
            &["xen-hypervisor-4.17-amd64", "linux-image-amd64"],
            known
        ));
        assert!(!lists_know(
            &["xen-hypervisor-4.17-amd64", "busybox"],
            known
        ));
        let none = "linux-image-amd64:\n  Installed: (none)\n  Candidate: (none)\n";
        assert!(!lists_know(&["linux-image-amd64"], none));
        // The Candidate line of the next package does not count.
        let split = "a:\n  Installed: (none)\nb:\n  Candidate: 1\n";
        assert!(!lists_know(&["a"], split));
        assert!(!lists_know(&["x"], ""));
    }

    #[test]
    fn the_plan_installs_as_root_and_names_one_command_otherwise() {
        let why = |_: &str| "because";
        assert_eq!(apt_plan(vec![], false, true, false, why), AptPlan::Nothing);
        assert_eq!(apt_plan(vec![], false, false, false, why), AptPlan::Nothing);
        assert_eq!(
            apt_plan(vec!["qemu-user"], false, true, false, why),
            AptPlan::Run {
                update: true,
                install: vec!["qemu-user"]
            }
        );
        assert_eq!(
            apt_plan(vec![], true, true, false, why),
            AptPlan::Run {
                update: true,
                install: vec![]
            }
        );
        let AptPlan::Fail(m) = apt_plan(vec!["qemu-user", "e2fsprogs"], false, false, true, why)
        else {
            panic!()
        };
        assert!(m.contains("qemu-user"), "{m}");
        let cmds: Vec<&str> = m.lines().filter(|l| l.contains("apt-get")).collect();
        assert_eq!(
            cmds,
            ["  sudo apt-get install -y --no-install-recommends qemu-user e2fsprogs"],
            "{m}"
        );
        let AptPlan::Fail(m) = apt_plan(vec!["qemu-user"], true, false, false, why) else {
            panic!()
        };
        assert!(m.contains("as root"), "{m}");
        assert!(
            m.ends_with(
                "\n  apt-get update && apt-get install -y --no-install-recommends qemu-user"
            ),
            "{m}"
        );
        let AptPlan::Fail(m) = apt_plan(vec![], true, false, true, why) else {
            panic!()
        };
        assert!(m.ends_with("\n  sudo apt-get update"), "{m}");
    }

    #[test]
    fn summary_is_one_line() {
        assert_eq!(
            summary(&[], &[], false, 13),
            "setup: all 13 prerequisites present"
        );
        let s = summary(
            &["qemu-user", "e2fsprogs"],
            &["x86_64-unknown-none"],
            true,
            13,
        );
        assert_eq!(
            s,
            "setup: installed qemu-user e2fsprogs; added Rust x86_64-unknown-none"
        );
        assert_eq!(
            summary(&[], &[], true, 13),
            "setup: refreshed the package lists"
        );
        assert!(!s.contains('\n'));
    }

    #[test]
    fn every_command_needs_the_dist_packages() {
        for p in DIST.packages {
            assert!(TEST.packages.iter().any(|q| q.name == p.name), "{}", p.name);
        }
    }
}
