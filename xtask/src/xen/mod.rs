//! `cargo xtask xen-test`: the Xen platform (`rumpuser-xen`) booted as a
//! PVH dom0 of the real Xen 4.17 hypervisor nested in QEMU TCG, and as a
//! PVH domU under a Linux dom0 with the real toolstack; `xen-dist`.
//!
//! QEMU's own Xen emulation needs KVM with Xen support, which these
//! machines lack, but TCG emulates AMD SVM with nested paging, so Debian's
//! Xen boots inside it and runs our kernel as its (PVH) dom0 in about a
//! second ("Mode A" of `shared/spec/test-platforms.md`).
//!
//! * The harness: `target/xen-harness/xen-4.17` is assembled once from
//!   Debian's `xen-hypervisor-4.17-amd64` package (`apt-get download`,
//!   `dpkg -x`, `zcat` of `boot/xen-4.17-amd64.gz`; a multiboot ELF that
//!   QEMU's `-kernel` loads) and cached. `XEN_HYPERVISOR=<path>` uses
//!   another build (ELF or `.gz`) instead.
//! * A run: `-kernel xen -append "<Xen options>" -initrd "<our image>
//!   <params>"`. Xen builds dom0 from the first module; the rest of the
//!   module string becomes dom0's command line (commas doubled for QEMU).
//!   A PVH dom0 needs an IOMMU (`-device intel-iommu`). Xen owns COM1, so
//!   our output reaches the serial log through `console_io`, interleaved
//!   with `(XEN)` lines; dom0 may write QEMU's `isa-debug-exit` port, so
//!   QEMU's exit status is the guest's (`rumpuser_baremetal::status`).
//!   Timeout and kill-on-drop come from [`crate::qemu`].
//!
//! Steps: clippy on the freestanding build, then (each its own boot)
//! 1. **kit + platform**: the conformance kit (file and bio cases skip:
//!    no scratch directory) and the Xen platform tests (timers, halting,
//!    wall clock, random, event channels, benchmarks; the xenstore and
//!    disk cases skip: dom0 has neither);
//! 2. **crashes and exits**: a panic, `rumpuser_exit(42)`, a NULL write
//!    (the shared bare-metal exception report, printed through Xen) and a
//!    deadlock must each print their report and end with the right status;
//! 3. **C link**: `tests/baremetal/c_image.c` linked with `ld -T link.ld`
//!    against `librumpuser_xen.a` and booted as dom0;
//! 4. **domU** ("Mode B", about 15 s each): Debian's Linux as a PV dom0 with
//!    the real toolstack (`xenstored`, `xenconsoled`, `xl`, blkback with a
//!    loop-attached 4 MiB disk) in an initramfs built here from Debian's
//!    packages (cached in `target/xen-harness/domu/`), which starts the
//!    test image as a PVH domU; the kit and the platform tests must pass
//!    there too (the guest's lines arrive as `(d1) ...` in Xen's log),
//!    including the xenstore client and blkfront against the real blkback
//!    (dom0 then finds the guest's marker in the backing file);
//! 5. **the real kernel** (only with `RUMP_KERNEL_DIR`, built with
//!    `RUMP_CURLWP=hypercall`): NetBSD's kernel layer as a domU, ext2 on
//!    `xvda` written, synced, remounted and verified;
//! 6. **the real kernel's TCP/IP** (with `RUMP_KERNEL_DIR` and the
//!    `if_virt` archive of `RUMP_PCI_DIR`): a TCP server on `virt0` over
//!    netfront and dom0's netback, the session run from dom0 and checked
//!    byte for byte, then the vif detached under it ([`mod@net`]);
//! 7. **the syscall proxy** (with those and `librumpclient.so`): bare
//!    metal's `tests/baremetal/kernel_sp.c` as a domU, ext2 from `xvda`
//!    served on `virt0`, and bare metal's host side run in dom0 with
//!    `tests/baremetal/sp_client.c` on librumpclient: list, read, write
//!    and read back, clients killed mid-call, the limits, the reboot, and
//!    the written file found in the disk's backing file ([`mod@sp`]).
//!
//! One module per concern: [`harness`] (Debian's packages), [`dom0`] and
//! [`mod@domu`] (the two ways to boot), [`checks`] (the test steps and
//! what their logs must show), [`mod@net`] (the TCP step, dom0's peer,
//! `bench-xen-net`), [`mod@sp`] (the syscall proxy step and its dom0
//! side), [`mod@dist`] (`xen-dist`) and [`app`] (`xen-run`).

mod app;
mod checks;
mod dist;
mod dom0;
mod domu;
mod harness;
mod net;
mod sp;

pub use app::xen_run;
pub use dist::dist;
pub use harness::{harness_cached, PACKAGE};
pub use net::{bench as bench_net, peer as net_peer};
pub use sp::peer as sp_peer;

use crate::qemu::{self, expect, Outcome};
use crate::util::Result;
use checks::{c_link, crashes, domu, kernel_ext2, kit_and_platform};
use dom0::{build_image, run_dom0};
use harness::hypervisor;
use std::time::Duration;

/// All Xen tests (what `cargo xtask test` runs).
pub fn test_all() -> Result<()> {
    crate::baremetal::require_tools()?;
    qemu::clippy("rumpuser-xen")?;
    let xen = hypervisor()?;
    let image = build_image()?;
    kit_and_platform(&xen, &image)?;
    crashes(&xen, &image)?;
    c_link(&xen)?;
    domu(&xen, &image)?;
    kernel_ext2(&xen)?;
    net::kernel_net(&xen)?;
    sp::kernel_sp(&xen)?;
    eprintln!("xen: all nested-Xen tests passed");
    Ok(())
}

/// `cargo xtask xen-test [--only kit|crash|c|domu|kernel|net|sp|harness] [-- PARAMS...]`:
/// `harness` only assembles Xen; `-- PARAMS` boots the test image once
/// with that dom0 command line (e.g. `-- suite=platform test=evtchn`) and
/// reports its status.
pub fn run(args: &[String]) -> Result<()> {
    if let Some(i) = args.iter().position(|a| a == "--") {
        crate::baremetal::require_tools()?;
        let xen = hypervisor()?;
        let image = build_image()?;
        let params = args[i + 1..].join(" ");
        let run = run_dom0(&xen, &image, &params, "xen", Duration::from_secs(600))?;
        eprintln!(
            "xen: guest ended with {:?} after {} ms",
            run.outcome,
            run.elapsed.as_millis()
        );
        return expect(&run, Outcome::Exited(0), "xen-test run");
    }
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    match only {
        None => test_all(),
        Some("harness") => {
            let xen = hypervisor()?;
            eprintln!("xen: harness ready: {}", xen.display());
            Ok(())
        }
        Some(step) => {
            crate::baremetal::require_tools()?;
            let xen = hypervisor()?;
            let image = build_image()?;
            match step {
                "kit" => kit_and_platform(&xen, &image),
                "crash" => crashes(&xen, &image),
                "domu" => domu(&xen, &image),
                "c" => c_link(&xen),
                "kernel" => kernel_ext2(&xen),
                "net" => net::kernel_net(&xen),
                "sp" => sp::kernel_sp(&xen),
                other => Err(format!(
                    "unknown step {other:?} (kit, crash, c, domu, kernel, net, sp, harness)"
                )),
            }
        }
    }
}
