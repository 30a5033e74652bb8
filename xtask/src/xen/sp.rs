//! The syscall proxy of a Xen domU, called from dom0 over netfront and
//! netback (`cargo xtask xen-test`, step `sp`).
//!
//! The guest is bare metal's `tests/baremetal/kernel_sp.c` (with
//! `TEST_DISK=xvda` on its command line), linked with the kernel
//! layer's sysproxy, ext2 and network archives and the `if_virt` archive
//! without NetBSD's tap code: it mounts ext2 from `xvda` (blkfront, an
//! image made here by mke2fs), writes two files, brings `virt0` up as
//! [`GUEST_IP`] and serves itself on `tcp://GUEST_IP:5555` to at most two
//! clients. dom0's side is bare metal's host side
//! ([`crate::baremetal_sp::host_side`]), run in dom0 by this xtask's own
//! executable (`/peer xen-sp-peer`) with the client program
//! `tests/baremetal/sp_client.c`, built here against
//! `$RUMP_KERNEL_DIR/lib/librumpclient.so` and copied into dom0's
//! initramfs with that library (dom0 has the host's C library): it lists
//! the guest's `/mnt`, reads a file the guest wrote, writes 256 KiB and
//! reads them back, kills two clients blocked in `accept(2)` and waits for
//! their ports to be free, sees a third client refused, sends an
//! oversized frame and a request before the handshake, and reboots the
//! guest, which unmounts its disk, answers and powers off with status 0;
//! dom0 then finds every block of the file it wrote in the file behind
//! `xvda`. If dom0's side fails, it destroys the guest, so the run ends
//! at once.

use super::app::{boot_app, build_app, App, AppRun};
use super::checks::until_clean;
use super::domu::{Peer, GUEST_IP};
use super::harness::harness_dir;
use super::net::{layer, own_part};
use crate::baremetal_net::{Layer, Nic};
use crate::baremetal_sp::{self as bsp, Client, GUEST_PORT};
use crate::qemu;
use crate::util::{root, Result};
use std::fs;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the client and its library go in dom0's root.
const CLIENT: &str = "sp_client";
const LIBRUMPCLIENT: &str = "lib/x86_64-linux-gnu/librumpclient.so.0";

/// dom0's `/peer.sh`: the host side against the guest, the guest
/// destroyed if it fails (it would otherwise wait for a reboot until
/// dom0's watchdog).
fn peer_script() -> String {
    format!(
        "#!/bin/sh\n\
         # dom0's side of the syscall proxy test (xtask/src/xen/sp.rs).\n\
         /peer xen-sp-peer /{CLIENT} {GUEST_IP}:{GUEST_PORT} /disk.img\n\
         rc=$?\n\
         echo \"harness: sp peer rc=$rc at $(cut -d' ' -f1 /proc/uptime) s\"\n\
         [ $rc = 0 ] || timeout 20 xl destroy rk\n"
    )
}

/// The kernel archives and librumpclient, or why the step is skipped.
fn sp_layer() -> Result<std::result::Result<Layer, String>> {
    let layer = match layer()? {
        Ok(l) => l,
        Err(why) => return Ok(Err(why)),
    };
    if !layer.kernel.join("lib/librumpclient.so").is_file() {
        return Ok(Err(format!(
            "no librumpclient.so in {}/lib",
            layer.kernel.display()
        )));
    }
    if let Some(l) = bsp::libs(Nic::Virtif)
        .iter()
        .find(|l| layer.lib(l).is_none())
    {
        return Ok(Err(format!(
            "lib{l}.a not found in $RUMP_PCI_DIR/lib or $RUMP_KERNEL_DIR/lib"
        )));
    }
    Ok(Ok(layer))
}

/// Builds the guest and the client, and boots them.
fn boot(xen: &Path, layer: &Layer, client: &Path) -> Result<AppRun> {
    let dir = harness_dir()?;
    let c = root().join("tests/baremetal/kernel_sp.c");
    let img = dir.join("sysproxy.img");
    qemu::make_ext2(&img)?;
    let lib = fs::canonicalize(layer.kernel.join("lib/librumpclient.so"))
        .map_err(|e| format!("librumpclient.so: {e}"))?;
    let app = App {
        sources: vec![c],
        kernel: Some(layer.kernel.clone()),
        pci: layer.pci.clone(),
        libs: bsp::libs(Nic::Virtif)
            .iter()
            .map(|l| l.to_string())
            .collect(),
        cflags: Vec::new(),
        disk: Some(img),
        domu: true,
        memory_mb: 128,
        cmdline: format!("TEST_DISK=xvda {}", bsp::guest_cmdline("virt0", GUEST_IP)),
        timeout: Duration::from_secs(600),
        peer: Some(Peer {
            script: peer_script(),
            files: vec![
                (client.to_path_buf(), CLIENT.into()),
                (lib, LIBRUMPCLIENT.into()),
            ],
            // The whole run takes about a minute under nested TCG.
            watchdog_s: 300,
        }),
    };
    let elf = build_app(&app, "kernel_sp")?;
    boot_app(xen, &app, &elf, "xen-sysproxy")
}

/// dom0's lines of the host side (`harness: sp: ...`).
fn dom0_lines(r: &AppRun) -> Vec<&str> {
    r.run
        .output
        .lines()
        .filter_map(|l| l.find("harness: sp: ").map(|i| own_part(&l[i..])))
        .collect()
}

/// What a boot must show: dom0's host side done, the guest's server
/// messages, and the guest's halt with status 0.
fn check(r: &AppRun) -> Result<()> {
    let dom0 = dom0_lines(r);
    if !dom0.contains(&"harness: sp: done") {
        let why = dom0
            .iter()
            .find(|l| l.contains("FAILED"))
            .map(|l| l.to_string())
            .unwrap_or_else(|| "dom0's client did not finish".into());
        return Err(format!("xen sysproxy: {why}"));
    }
    if let Some(l) = r.guest.iter().find(|l| l.contains("kernel-sp: FAIL")) {
        return Err(format!("xen sysproxy: {l}"));
    }
    for n in bsp::guest_needles("virt0", GUEST_IP) {
        if !r.guest.iter().any(|l| l.contains(&n)) {
            return Err(format!("xen sysproxy: missing {n:?} in the domU's output"));
        }
    }
    if r.status != Some(0) {
        return Err(format!("xen sysproxy: exit status {:?}", r.status));
    }
    Ok(())
}

/// The step of `xen-test`: one boot (booted again, at most twice, after
/// one of nested TCG's known dom0 failures).
pub(super) fn kernel_sp(xen: &Path) -> Result<()> {
    let layer = match sp_layer()? {
        Ok(l) => l,
        Err(why) => {
            eprintln!("xen sysproxy: skipped: {why}");
            return Ok(());
        }
    };
    let client = bsp::build_client(&layer.kernel, &harness_dir()?)?;
    let r = until_clean(
        "xen sysproxy",
        "sysproxy",
        || boot(xen, &layer, &client),
        |r| &r.run,
        check,
    )?;
    for l in dom0_lines(&r) {
        eprintln!("xen sysproxy: dom0: {l}");
    }
    eprintln!(
        "xen sysproxy: a librumpclient program in dom0 listed and read the domU's ext2 (xvda) \
         over TCP on netfront, wrote 256 KiB and read them back, was limited, killed mid-call \
         and refused as on bare metal, and rebooted the guest ({} ms in all)",
        r.run.elapsed.as_millis()
    );
    Ok(())
}

/// `xtask xen-sp-peer CLIENT ADDR:PORT DISK`, run in dom0 by `/peer.sh`:
/// bare metal's host side with the client program CLIENT against the
/// guest's server at ADDR:PORT, then (the guest has unmounted its disk
/// before it answered the reboot) `/fromhost.txt` looked for in DISK, the
/// file behind the guest's `xvda`; progress as `harness: sp: ...` lines
/// on dom0's console, `harness: sp: done` at the end.
pub fn peer(args: &[String]) -> Result<()> {
    let [exe, addr, disk] = args else {
        return Err("usage: xen-sp-peer CLIENT ADDR:PORT DISK".into());
    };
    let addr: SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let c = Client {
        exe: PathBuf::from(exe),
        server: format!("tcp://{addr}"),
    };
    let say = |l: &str| println!("harness: sp: {l}");
    let r = bsp::host_side(&c, addr, &say).and_then(|()| {
        let img = fs::read(disk).map_err(|e| format!("{disk}: {e}"))?;
        let missing = blocks_missing(&img, &bsp::fromhost_text());
        if missing > 0 {
            return Err(format!(
                "{missing} of the {} 1-KiB blocks of /fromhost.txt are not in {disk}",
                bsp::FROMHOST / BLOCK
            ));
        }
        say(&format!(
            "all {} KiB of /fromhost.txt are in {disk}, the guest's xvda",
            bsp::FROMHOST / 1024
        ));
        Ok(())
    });
    match r {
        Ok(()) => {
            say("done");
            Ok(())
        }
        Err(e) => {
            say(&format!("FAILED: {e}"));
            Err(e)
        }
    }
}

/// The file system's block size (`qemu::make_ext2`).
const BLOCK: usize = 1024;

/// How many [`BLOCK`]-sized pieces of `file` are at no block boundary of
/// `img` (ext2 keeps a file's data in whole blocks, in any order).
fn blocks_missing(img: &[u8], file: &[u8]) -> usize {
    let on_disk: std::collections::HashSet<&[u8]> = img.chunks_exact(BLOCK).collect();
    file.chunks(BLOCK)
        .filter(|b| {
            if b.len() == BLOCK {
                !on_disk.contains(b)
            } else {
                !on_disk.iter().any(|d| d.starts_with(b))
            }
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_runs_the_host_side_against_the_guest() {
        let s = peer_script();
        assert!(s.contains(&format!(
            "/peer xen-sp-peer /{CLIENT} {GUEST_IP}:{GUEST_PORT} /disk.img\n"
        )));
        assert!(s.contains("|| timeout 20 xl destroy rk"));
        assert!(bsp::guest_cmdline("virt0", GUEST_IP)
            .ends_with(&format!("-- virt0 {GUEST_IP} 255.255.255.0 {GUEST_PORT}")));
    }

    fn app_run(dom0: &[&str], guest: &[String], status: Option<u32>) -> AppRun {
        AppRun {
            run: crate::qemu::Run {
                outcome: crate::qemu::Outcome::Exited(0),
                output: dom0.join("\n"),
                elapsed: Duration::ZERO,
                timed_out: false,
            },
            guest: guest.to_vec(),
            status,
        }
    }

    #[test]
    fn a_run_passes_only_with_both_sides_done() {
        let guest = bsp::guest_needles("virt0", GUEST_IP);
        let done = [
            "harness: sp: client: reboot: 0",
            "harness: sp: done(d1) rump kernel",
        ];
        assert!(check(&app_run(&done, &guest, Some(0))).is_ok());
        let e = check(&app_run(&done, &guest, Some(1))).unwrap_err();
        assert!(e.contains("exit status"), "{e}");
        let e = check(&app_run(&done, &guest[1..], Some(0))).unwrap_err();
        assert!(e.contains("ext2 mounted"), "{e}");
        let failed = ["harness: sp: FAILED: a third client was not refused"];
        let e = check(&app_run(&failed, &guest, Some(0))).unwrap_err();
        assert!(e.contains("not refused"), "{e}");
        let e = check(&app_run(&[], &guest, Some(0))).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }

    #[test]
    fn a_file_is_found_block_by_block() {
        let file = bsp::fromhost_text();
        let n = file.len() / BLOCK;
        // The file's blocks scattered in reverse order after a metadata block.
        let mut img = vec![0u8; BLOCK];
        for i in (0..n).rev() {
            img.extend_from_slice(&file[i * BLOCK..(i + 1) * BLOCK]);
        }
        assert_eq!(blocks_missing(&img, &file), 0);
        // One block lost; then one not on a block boundary.
        img.truncate(img.len() - BLOCK);
        assert_eq!(blocks_missing(&img, &file), 1);
        img.insert(0, 0);
        assert_eq!(blocks_missing(&img, &file), n);
        // A partial last block is found as a block's start.
        assert_eq!(blocks_missing(&file, &file[..BLOCK + 10]), 0);
        assert_eq!(blocks_missing(&file[..BLOCK], &file[..BLOCK + 10]), 1);
    }
}
