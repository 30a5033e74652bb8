//! A PVH domU under Debian's Linux as a PV dom0 with the real toolstack
//! ("Mode B"): dom0's initramfs (busybox, xenstored, xenconsoled, xl,
//! blkback with loop-attached disks, netback with a routed vif: dom0 is
//! [`DOM0_IP`] on its end) is built here around the guest image from the
//! harness's packages; its scripts are the files next to this one
//! (`dom0-init.sh`, `myblock.sh`, `myvif.sh`, the xl config `domu.cfg`).
//! The guest's lines arrive as `(d1) ...` in Xen's log.

use super::harness::{domu_harness, Domu};
use crate::qemu::{self, Run};
use crate::util::{sh, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Host libraries the toolstack needs besides its own (the host is
/// Debian 12 like the packages).
const HOST_LIBS: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "liblzma.so.5",
    "libuuid.so.1",
    "libz.so.1",
    "libzstd.so.1",
    "libgcc_s.so.1",
    "ld-linux-x86-64.so.2",
];

/// Kernel modules dom0 loads (paths under `kernel/`).
const DOM0_MODULES: &[&str] = &[
    "drivers/xen/xen-evtchn",
    "drivers/xen/xen-gntdev",
    "drivers/xen/xen-gntalloc",
    "drivers/xen/xen-privcmd",
    "drivers/xen/xenfs/xenfs",
    "drivers/block/loop",
    "drivers/block/xen-blkback/xen-blkback",
    "drivers/net/xen-netback/xen-netback",
];

/// dom0's address on its end of the guest's vif (`myvif.sh`).
pub(super) const DOM0_IP: &str = "10.0.5.1";
/// The address the tests give the guest on the vif.
pub(super) const GUEST_IP: &str = "10.0.5.2";
/// The vif's MAC address (`domu.cfg`).
pub(super) const GUEST_MAC: &str = "00:16:3e:72:75:6d";

/// Size of the domU's disk (a file in dom0's initramfs, loop-attached).
pub(super) const DOMU_DISK_BYTES: usize = 4 << 20;
/// The bytes the host writes at the start of the domU's disk.
const DOMU_DISK_MARK: &str = "RUMPDISK-HOST-SECTOR0";

/// dom0's `/init`: modules, xenfs, xenstored, xenconsoled, `xl create`,
/// wait for the guest to go, report, power off.
const DOM0_INIT: &str = include_str!("dom0-init.sh");

/// A minimal hotplug script (Debian's `block` needs bash): loop-attach
/// the file (serialised) and tell blkback the device.
const MYBLOCK: &str = include_str!("myblock.sh");

/// The vif's hotplug script (Debian's `vif-bridge` needs bash and a
/// bridge): dom0's end gets [`DOM0_IP`], a routed link.
const MYVIF: &str = include_str!("myvif.sh");

/// The xl configuration of the guest, with `{memory}` and `{params}` to
/// fill in.
const DOMU_CFG: &str = include_str!("domu.cfg");

/// What the domU gets: its command line, its disk (`None`: a zeroed
/// disk with the host's marker) and memory; and what dom0 runs against
/// it, if anything.
pub(super) struct DomuSpec<'a> {
    pub params: &'a str,
    pub disk: Option<&'a Path>,
    pub memory_mb: u32,
    pub peer: Option<Peer>,
}

/// dom0's side of a network test: `script` runs (as `/peer.sh DOMID`)
/// once the guest exists, with this xtask's own executable as `/peer`
/// (its `xen-net-peer` and `xen-sp-peer` commands talk TCP to the
/// guest) and `files` (host path, path in dom0's root) copied in too;
/// dom0's watchdog waits `watchdog_s` instead of 200 s.
#[derive(Clone)]
pub(super) struct Peer {
    pub script: String,
    pub files: Vec<(PathBuf, String)>,
    pub watchdog_s: u32,
}

/// The xl configuration for `spec`.
fn domu_cfg(spec: &DomuSpec<'_>) -> String {
    DOMU_CFG
        .replace("{memory}", &spec.memory_mb.to_string())
        .replace("{params}", spec.params)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(d) = to.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    fs::copy(from, to)
        .map(|_| ())
        .map_err(|e| format!("copy {} -> {}: {e}", from.display(), to.display()))
}

fn write_exec(p: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())
}

/// Builds dom0's initramfs around `image` (the domU kernel), for `spec`.
fn domu_initrd(h: &Domu, image: &Path, spec: &DomuSpec<'_>) -> Result<PathBuf> {
    let root = h.dir.join("root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "mod",
        "var/lib/xen",
        "var/log/xen",
        "var/lib/xenstored",
        "etc/xen/scripts",
    ] {
        fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
    }
    copy(&h.x.join("bin/busybox"), &root.join("bin/busybox"))?;
    let libdir = h.x.join("usr/lib/x86_64-linux-gnu");
    for e in fs::read_dir(&libdir).map_err(|e| format!("{}: {e}", libdir.display()))? {
        let p = e.map_err(|e| e.to_string())?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.contains(".so") && p.is_file() {
            copy(&p, &root.join("lib/x86_64-linux-gnu").join(&name))?;
        }
    }
    for l in HOST_LIBS {
        copy(
            &Path::new("/lib/x86_64-linux-gnu").join(l),
            &root.join("lib/x86_64-linux-gnu").join(l),
        )?;
    }
    copy(
        Path::new("/lib64/ld-linux-x86-64.so.2"),
        &root.join("lib64/ld-linux-x86-64.so.2"),
    )?;
    for b in ["xl", "xenstored", "xenconsoled", "xen-init-dom0"] {
        let p = Path::new("usr/lib/xen-4.17/bin").join(b);
        copy(&h.x.join(&p), &root.join(&p))?;
    }
    copy(
        &h.x.join("usr/bin/xenstore"),
        &root.join("usr/bin/xenstore"),
    )?;
    for t in ["read", "write", "list", "ls", "rm", "exists"] {
        std::os::unix::fs::symlink("xenstore", root.join(format!("usr/bin/xenstore-{t}")))
            .map_err(|e| e.to_string())?;
    }
    let kdir = h.x.join("lib/modules").join(&h.release).join("kernel");
    for m in DOM0_MODULES {
        let name = Path::new(m)
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        copy(
            &kdir.join(format!("{m}.ko")),
            &root.join("mod").join(format!("{name}.ko")),
        )?;
    }
    write_exec(&root.join("init"), DOM0_INIT)?;
    write_exec(&root.join("etc/xen/scripts/myblock"), MYBLOCK)?;
    write_exec(&root.join("etc/xen/scripts/myvif"), MYVIF)?;
    if let Some(p) = &spec.peer {
        let exe = std::env::current_exe().map_err(|e| format!("the xtask executable: {e}"))?;
        copy(&exe, &root.join("peer"))?;
        write_exec(&root.join("peer.sh"), &p.script)?;
        for (from, to) in &p.files {
            copy(from, &root.join(to))?;
        }
        fs::write(root.join("watchdog"), p.watchdog_s.to_string()).map_err(|e| e.to_string())?;
    }
    fs::write(root.join("domu.cfg"), domu_cfg(spec)).map_err(|e| e.to_string())?;
    copy(image, &root.join("guest-kernel"))?;
    // The second disk (`xvdb`), detached while in use by the detach test.
    fs::write(root.join("disk2.img"), vec![0u8; 1 << 20]).map_err(|e| e.to_string())?;
    match spec.disk {
        Some(d) => copy(d, &root.join("disk.img"))?,
        None => {
            let mut disk = vec![0u8; DOMU_DISK_BYTES];
            disk[..DOMU_DISK_MARK.len()].copy_from_slice(DOMU_DISK_MARK.as_bytes());
            fs::write(root.join("disk.img"), &disk).map_err(|e| e.to_string())?;
        }
    }
    let initrd = h.dir.join("initrd.gz");
    sh(Command::new("sh").arg("-c").arg(format!(
        "cd '{}' && find . | ./bin/busybox cpio -o -H newc 2>/dev/null | gzip -1 > '{}'",
        root.display(),
        initrd.display()
    )))?;
    Ok(initrd)
}

/// Boots Linux as dom0 with the toolstack, which starts `image` as a PVH
/// domU with command line `params`.
pub(super) fn run_domu(xen: &Path, image: &Path, spec: &DomuSpec<'_>, label: &str) -> Result<Run> {
    let h = domu_harness()?;
    let initrd = domu_initrd(&h, image, spec)?;
    let vmlinuz = h.x.join("boot").join(format!("vmlinuz-{}", h.release));
    // QEMU TCG's SMAP emulation breaks Xen 4.17's PV exception delivery
    // to a Linux dom0 (a #PF in create_bounce_frame on the guest stack),
    // hence `-smap`. With dom0 on both CPUs, its userland failed in
    // impossible ways (xl's monitoring child segfaulting, so the guest was
    // never reaped; `malloc(): corrupted top size`; an assertion in
    // libxl_fork.c; ld.so not finding a library that is there) and the
    // guest triple-faulted at a Xen address (rip = cr2 in Xen, cs e008:
    // not a place our guest's code can be) in 6 of 30 boots, the same
    // with single-threaded TCG; with `dom0_max_vcpus=1`, in none of 66:
    // something in dom0's cross-CPU TLB maintenance under emulation.
    let mut args = qemu::base_args("max,-smap", "1G");
    args.extend(["-smp".to_string(), "2".to_string(), "-initrd".to_string()]);
    args.push(format!(
        "{} console=hvc0 earlyprintk=xen rdinit=/init loglevel=4,{}",
        vmlinuz.display(),
        initrd.display()
    ));
    qemu::run(
        xen,
        &args,
        "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M dom0_max_vcpus=1 loglvl=all guest_loglvl=all",
        label,
        // Above dom0's watchdog (200 s, then 60 s more at most), so that a
        // stuck run is reported by the harness rather than by a timeout.
        Duration::from_secs(220 + spec.peer.as_ref().map_or(200, |p| p.watchdog_s) as u64),
    )
}

/// The domU's lines (`(d1) ...` in Xen's log), without the prefix.
pub(super) fn domu_lines(run: &Run) -> Vec<String> {
    run.output
        .lines()
        .filter_map(domu_line)
        .map(String::from)
        .collect()
}

/// The domU's part of one line of Xen's console: what follows `(dN) `,
/// wherever it starts. Xen writes each guest line whole, but dom0's own
/// console output shares the serial line and may precede it without a
/// newline yet (`harness: ... 12.19 s(d1) platform blk::... ok`).
fn domu_line(l: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(i) = l[from..].find("(d") {
        let at = from + i + 2;
        let digits = l[at..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            if let Some(rest) = l[at + digits..].strip_prefix(") ") {
                return Some(rest);
            }
        }
        from = at;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domu_line_found_after_dom0_output() {
        assert_eq!(
            domu_line("(d1) platform a ... ok"),
            Some("platform a ... ok")
        );
        assert_eq!(
            domu_line("harness: rk state r----- at 12.19 s(d1) platform b ... ok"),
            Some("platform b ... ok")
        );
        assert_eq!(domu_line("(dx) (d12) kit"), Some("kit"));
        assert_eq!(domu_line("harness: done"), None);
        assert_eq!(domu_line("(XEN) (d"), None);
    }

    #[test]
    fn xl_config_is_filled_in() {
        let cfg = domu_cfg(&DomuSpec {
            params: "suite=kit -- a {memory}",
            disk: None,
            memory_mb: 32,
            peer: None,
        });
        assert!(cfg.contains("\nmemory = 32\n"), "{cfg}");
        assert!(
            cfg.contains("\ncmdline = \"suite=kit -- a {memory}\"\n"),
            "{cfg}"
        );
        assert!(cfg.starts_with("type = \"pvh\"\n") && cfg.contains("target=/disk2.img"));
        assert!(cfg.contains(&format!(
            "vif = [ 'mac={GUEST_MAC}, script=/etc/xen/scripts/myvif' ]"
        )));
    }

    #[test]
    fn dom0_is_where_the_tests_look() {
        assert!(MYVIF.contains(&format!("ip addr add {DOM0_IP}/24 dev \"$vif\"")));
        let net = |ip: &str| ip.rsplit_once('.').map(|(n, _)| n.to_string());
        assert_eq!(net(DOM0_IP), net(GUEST_IP));
        assert!(DOM0_INIT.contains("xen-netback"));
    }
}
