//! NetBSD's TCP/IP in a Xen domU, over `if_virt` on our netfront and
//! Linux's netback in dom0 (`cargo xtask xen-test`, step `net`;
//! `bench-xen-net`).
//!
//! The guest is bare metal's `tests/baremetal/kernel_net.c` (`serve-detach
//! virt0`: ping dom0, serve the TCP session, then wait for the vif to be
//! detached under it and check that `virt0` cannot be made again),
//! linked with the kernel layer (`$RUMP_KERNEL_DIR`, built with
//! `RUMP_CURLWP=hypercall`) and the `if_virt` archive without NetBSD's tap
//! code (`$RUMP_PCI_DIR/lib` first). dom0's side is this xtask's own
//! executable, copied into dom0's initramfs: `/peer.sh` runs its
//! `xen-net-peer` command against the guest (the session bare metal's
//! host side runs: echo round trips, a stream each way, checked byte for
//! byte) and then asks dom0's harness to detach the vif.

use super::app::{boot_app, build_app, App, AppRun};
use super::checks::{detach_in_time, until_clean};
use super::domu::{Peer, DOM0_IP, GUEST_IP};
use super::harness::hypervisor;
use crate::baremetal_net::{self, Layer, Nic};
use crate::qemu;
use crate::util::{root, Result};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of each stream in the test (the bench takes `--stream`).
const TEST_STREAM: u64 = 16 << 20;
/// The guest's TCP port (`kernel_net.c`).
const PORT: u16 = 7777;

/// The kernel archives, or why the step is skipped.
pub(super) fn layer() -> Result<std::result::Result<Layer, String>> {
    if std::env::var_os("RUMP_KERNEL_DIR").is_none() {
        return Ok(Err(
            "set RUMP_KERNEL_DIR to a kernel layer built with RUMP_CURLWP=hypercall and \
             RUMP_PCI_DIR to the if_virt archive built without NetBSD's tap code"
                .into(),
        ));
    }
    let Some(kernel) = qemu::kernel_layer("xen")? else {
        return Ok(Err("the kernel layer cannot be used (see above)".into()));
    };
    let layer = Layer {
        kernel,
        pci: std::env::var_os("RUMP_PCI_DIR").map(PathBuf::from),
    };
    if let Some(l) = Nic::Virtif.libs().iter().find(|l| layer.lib(l).is_none()) {
        return Ok(Err(format!(
            "lib{l}.a not found in $RUMP_PCI_DIR/lib or $RUMP_KERNEL_DIR/lib"
        )));
    }
    if let Err(why) = baremetal_net::virtif_without_tap(&layer)? {
        return Ok(Err(why));
    }
    Ok(Ok(layer))
}

/// dom0's `/peer.sh`: the session, then the detach the guest waits for.
fn peer_script(stream: u64) -> String {
    format!(
        "#!/bin/sh\n\
         # dom0's side of the kernel's TCP test (xtask/src/xen/net.rs): the\n\
         # session against the guest's server, then the vif's detach.\n\
         /peer xen-net-peer {GUEST_IP}:{PORT} {stream} 240\n\
         echo \"harness: peer rc=$? at $(cut -d' ' -f1 /proc/uptime) s\"\n\
         xenstore-write /local/domain/$1/data/netdetach now\n"
    )
}

/// What one boot of the guest server gave.
struct NetRun {
    run: AppRun,
    /// The peer's figure lines (`harness: peer: ...`).
    peer: Vec<String>,
}

/// Builds the guest (once per `dir`) and boots it with dom0's peer.
fn boot(xen: &Path, layer: &Layer, stream: u64, label: &str) -> Result<NetRun> {
    let c = root().join("tests/baremetal/kernel_net.c");
    // Session, detach and reboot take about a minute under nested TCG;
    // a 64 MiB stream each way a few more.
    let watchdog_s = 300 + (stream >> 20) as u32 * 4;
    let app = App {
        sources: vec![c],
        kernel: Some(layer.kernel.clone()),
        pci: layer.pci.clone(),
        libs: Nic::Virtif.libs().iter().map(|l| l.to_string()).collect(),
        cflags: Vec::new(),
        disk: None,
        domu: true,
        memory_mb: 128,
        cmdline: format!("RUMP_VERBOSE=1 -- serve-detach virt0 {GUEST_IP} 255.255.255.0 {DOM0_IP}"),
        timeout: Duration::from_secs(600),
        peer: Some(Peer {
            script: peer_script(stream),
            files: Vec::new(),
            watchdog_s,
        }),
    };
    let elf = build_app(&app, "kernel_net")?;
    let run = boot_app(xen, &app, &elf, label)?;
    let peer = run
        .run
        .output
        .lines()
        .filter_map(|l| {
            l.find("harness: peer: ")
                .map(|i| own_part(&l[i..]).to_string())
        })
        .collect();
    Ok(NetRun { run, peer })
}

/// A dom0 line without the guest's line that may follow it on the
/// shared serial line (`...every byte(d1) kernel-net: ...`).
pub(super) fn own_part(l: &str) -> &str {
    let mut from = 0;
    while let Some(i) = l[from..].find("(d") {
        let at = from + i;
        let digits = l[at + 2..].bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && l[at + 2 + digits..].starts_with(") ") {
            return &l[..at];
        }
        from = at + 2;
    }
    l
}

/// What a boot of [`boot`] must show: the guest's server sessions, dom0's
/// peer checking every byte, the detach (in time) and the guest's
/// errors after it.
fn check(r: &NetRun) -> Result<()> {
    let lines = &r.run.guest;
    let has = |n: &str| lines.iter().any(|l| l.contains(n));
    let ifup = format!("kernel-net: virt0 up as {GUEST_IP}");
    let ping = format!("kernel-net: ping {DOM0_IP}: 10 of 10 answered");
    for n in [
        ifup.as_str(),
        ping.as_str(),
        "every byte as sent",
        "kernel-net: server done after 4 sessions",
        "the peer stopped answering",
        "kernel-net: virt0 down and destroyed in",
        "kernel-net: making virt0 again: error 6",
    ] {
        if !has(n) {
            return Err(format!(
                "xen kernel-net: missing {n:?} in the domU's output"
            ));
        }
    }
    if let Some(l) = lines.iter().find(|l| l.contains("kernel-net: FAIL")) {
        return Err(format!("xen kernel-net: {l}"));
    }
    if !r.peer.iter().any(|l| l == "harness: peer: done") {
        let why = r
            .peer
            .iter()
            .find(|l| l.contains("FAILED"))
            .cloned()
            .unwrap_or_else(|| "dom0's peer did not finish its session".into());
        return Err(format!("xen kernel-net: {why}"));
    }
    detach_in_time(&r.run.run, "network-detach 0")?;
    if r.run.status != Some(0) {
        return Err(format!("xen kernel-net: exit status {:?}", r.run.status));
    }
    Ok(())
}

/// The step of `xen-test`: one boot (booted again, at most twice, after
/// one of nested TCG's known dom0 failures).
pub(super) fn kernel_net(xen: &Path) -> Result<()> {
    let layer = match layer()? {
        Ok(l) => l,
        Err(why) => {
            eprintln!("xen kernel-net: skipped: {why}");
            return Ok(());
        }
    };
    let r = until_clean(
        "xen kernel-net",
        "kernel-net",
        || boot(xen, &layer, TEST_STREAM, "xen-kernel-net"),
        |r| &r.run.run,
        check,
    )?;
    for l in r.run.guest.iter().filter(|l| l.starts_with("kernel-net: ")) {
        eprintln!("xen kernel-net: guest: {l}");
    }
    for l in &r.peer {
        eprintln!("xen kernel-net: dom0: {l}");
    }
    eprintln!(
        "xen kernel-net: NetBSD's TCP/IP in a domU over netfront and netback: \
         echo and {} MiB each way checked, vif detached, ENXIO after ({} ms in all)",
        TEST_STREAM >> 20,
        r.run.run.elapsed.as_millis()
    );
    Ok(())
}

/// `xtask xen-net-peer ADDR:PORT STREAM_BYTES DEADLINE_S`, run in dom0 by
/// `/peer.sh`: the session against the guest's server at ADDR:PORT,
/// retried until DEADLINE_S seconds from now while the guest boots; its
/// figures as `harness: peer: ...` lines on dom0's console.
pub fn peer(args: &[String]) -> Result<()> {
    let [addr, stream, deadline] = args else {
        return Err("usage: xen-net-peer ADDR:PORT STREAM_BYTES DEADLINE_S".into());
    };
    let addr: SocketAddrV4 = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let stream: u64 = stream.parse().map_err(|e| format!("{stream}: {e}"))?;
    let secs: u64 = deadline.parse().map_err(|e| format!("{deadline}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    match baremetal_net::peer_session(addr, stream, deadline) {
        Ok(f) => {
            let mib = stream >> 20;
            println!(
                "harness: peer: 64-byte round trip {:.1} us; guest->dom0 {mib} MiB at {:.2} MiB/s, \
                 every byte as sent; dom0->guest {mib} MiB at {:.2} MiB/s, the guest checked every byte",
                f.rtt_us, f.rx_mib_s, f.tx_mib_s
            );
            println!("harness: peer: done");
            Ok(())
        }
        Err(e) => {
            println!("harness: peer: FAILED: {e}");
            Err(e)
        }
    }
}

/// The number after `prefix` in the first line that has it.
fn number_after(lines: &[String], prefix: &str) -> Option<f64> {
    lines.iter().find_map(|l| {
        let rest = &l[l.find(prefix)? + prefix.len()..];
        let n: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        n.parse().ok()
    })
}

/// `cargo xtask bench-xen-net [--rounds N] [--stream MiB]`: the TCP
/// figures between dom0 and NetBSD's kernel in a domU (timed by dom0's
/// peer, and for the streams by the guest's kernel clock too), and in the
/// same run, round by round, the posix flavour's TCP between two kernels
/// over shmif (with `RUMP_POSIX_KERNEL_DIR`). Prints medians.
pub fn bench(args: &[String]) -> Result<()> {
    let opt = |name: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == name) {
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse().ok())
                .ok_or(format!("bench-xen-net: {name} takes a number")),
            None => Ok(default),
        }
    };
    let rounds = opt("--rounds", 3)? as usize;
    let stream = opt("--stream", 64)? << 20;
    crate::baremetal::require_tools()?;
    let layer = match layer()? {
        Ok(l) => l,
        Err(why) => return Err(format!("bench-xen-net: {why}")),
    };
    let xen = hypervisor()?;
    let shmif = baremetal_net::posix_shmif()?;
    let mut rows = baremetal_net::Rows::default();
    let mib = stream >> 20;
    for round in 1..=rounds {
        eprintln!("bench-xen-net: round {round} of {rounds}");
        let r = boot(&xen, &layer, stream, "xen-bench-net")?;
        check(&r)?;
        let peer = &r.peer;
        let guest = &r.run.guest;
        if let Some(v) = number_after(peer, "64-byte round trip ") {
            rows.push("dom0<->domU virt0: 64-byte TCP round trip (dom0)", v, "us");
        }
        if let Some(v) = number_after(peer, &format!("guest->dom0 {mib} MiB at ")) {
            rows.push("dom0<->domU virt0: domU->dom0 stream (dom0)", v, "MiB/s");
        }
        if let Some(v) = number_after(peer, &format!("dom0->guest {mib} MiB at ")) {
            rows.push("dom0<->domU virt0: dom0->domU stream (dom0)", v, "MiB/s");
        }
        let ms = |prefix: &str| number_after(guest, prefix).map(|ms| mib as f64 / (ms / 1000.0));
        if let Some(v) = ms(&format!("kernel-net: sent {mib} MiB in ")) {
            rows.push("dom0<->domU virt0: domU->dom0 stream (domU)", v, "MiB/s");
        }
        if let Some(v) = ms(&format!("kernel-net: received {mib} MiB in ")) {
            rows.push("dom0<->domU virt0: dom0->domU stream (domU)", v, "MiB/s");
        }
        if let Some(s) = &shmif {
            baremetal_net::posix_shmif_round(s, &mut rows)?;
        }
    }
    rows.print("bench-xen-net", rounds);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_lines_end_where_the_guest_s_begin() {
        assert_eq!(
            own_part("harness: peer: x every byte(d1) kernel-net: server done"),
            "harness: peer: x every byte"
        );
        assert_eq!(own_part("harness: peer: done"), "harness: peer: done");
        assert_eq!(
            own_part("harness: peer: (dx) (d 1)"),
            "harness: peer: (dx) (d 1)"
        );
    }

    #[test]
    fn figures_from_lines() {
        let l = vec![
            "harness: peer: 64-byte round trip 4110.6 us; guest->dom0 16 MiB at 2.13 MiB/s"
                .to_string(),
        ];
        assert_eq!(number_after(&l, "64-byte round trip "), Some(4110.6));
        assert_eq!(number_after(&l, "guest->dom0 16 MiB at "), Some(2.13));
        assert_eq!(number_after(&l, "dom0->guest 16 MiB at "), None);
        assert!(peer_script(1 << 20)
            .contains(&format!("/peer xen-net-peer {GUEST_IP}:{PORT} 1048576 ")));
    }
}
