//! `cargo xtask`: every build, test and packaging command of the workspace.
//!
//! * `dist`  — build every library into `target/dist/` (lib, include/rump,
//!   lib/pkgconfig, lib/debug, compat drop-ins) and run the C demonstration.
//! * `test`  — the whole suite: prerequisites, fmt, clippy, unit,
//!   conformance and loom tests, dist, C-ABI checks against the built
//!   libraries, and the real-kernel tests when a kernel layer is given.
//! * `kernel-test [--flavor posix|green]` — C programs linked against a
//!   prebuilt NetBSD rump kernel layer (`RUMP_KERNEL_DIR=<dir with lib/ include/>`).
//! * `bench` — criterion benches.
//! * `bench-kernel [--rounds N] [--flavor posix|green]` — the real kernel
//!   layer (`RUMP_KERNEL_DIR`) reading a raw device through `rumpuser_bio`,
//!   on its own librumpuser and on our drop-in.
//! * `bench-c [--rounds N] [--only OP]` — the C-ABI micro-benchmark
//!   (`benches/c/microbench.c`) against our libraries and NetBSD's, with
//!   reference/ours ratios.
//! * `sizes` — the shipped libraries' sizes against NetBSD's librumpuser.
//! * `baremetal-test [--only kit|nordrand|crash|c|kernel|ld|net|vioif|virtif|twoguests|sysproxy]` — boot the bare-metal
//!   platform in QEMU (conformance kit, platform tests, crash reports, a C
//!   image); part of `test` (needs `qemu-system-x86_64`).
//! * `baremetal-dist` — `target/dist/baremetal/` (archive, linker script,
//!   `include/rumpcomp_userfeatures_pci.h`, README).
//! * `baremetal-run [--kernel DIR] [--pci DIR] [--lib NAME].. [--disk IMG]..
//!   [--net NETDEV[,mac=M]].. [--memory MiB] [--timeout S] [--qemu ARG]..
//!   FILE.c|.o.. [-- CMDLINE]` — build a bare-metal image from an
//!   application (and a kernel layer) and boot it under QEMU TCG with
//!   those virtio disks and network devices; exits with the guest's status.
//! * `bench-baremetal-net [--rounds N]` — bare-metal TCP figures (host↔guest
//!   over vioif and if_virt, guest↔guest) with `RUMP_KERNEL_DIR` and
//!   `RUMP_PCI_DIR`, and in the same run the posix flavour's TCP over shmif
//!   from the pthread layer in `RUMP_POSIX_KERNEL_DIR`.
//! * `xen-test [--only kit|crash|c|domu|kernel|net|sp|harness] [-- PARAMS]` — boot the Xen
//!   platform as a PVH dom0 of Xen 4.17 (from Debian's package) nested in
//!   QEMU TCG, and as a domU under a Linux dom0 with the real toolstack
//!   (blkback, netback); part of `test`.
//! * `bench-xen-net [--rounds N] [--stream MiB]` — TCP figures between
//!   dom0 and NetBSD's kernel in a domU (netfront, netback) with
//!   `RUMP_KERNEL_DIR` and `RUMP_PCI_DIR`, and in the same run the posix
//!   flavour's TCP over shmif from `RUMP_POSIX_KERNEL_DIR`.
//! * `xen-net-peer ADDR:PORT STREAM_BYTES DEADLINE_S` — dom0's side of
//!   those (run inside dom0 by the harness, not by hand).
//! * `xen-sp-peer CLIENT ADDR:PORT DISK` — dom0's side of `xen-test`'s
//!   syscall proxy step (run inside dom0 by the harness, not by hand).
//! * `aarch64-test` — the Linux-host crates for AArch64, clippy and tests
//!   under `qemu-aarch64` (part of `test`).
//! * `xen-dist` — `target/dist/xen/` (`librumpuser_xen.a`, linker script).
//! * `xen-run [--kernel DIR] [--pci DIR] [--lib NAME].. [--disk IMG] [--domu] FILE.c|.o..
//!   [-- CMDLINE]` — build a guest image from an application (and a kernel
//!   layer: `--kernel` or `RUMP_KERNEL_DIR`; extra archives such as
//!   `librumpnet_virtif.a`: `--pci` or `RUMP_PCI_DIR`) and boot it under
//!   the nested Xen harness (dom0, or a domU with `xvda` = IMG and a vif
//!   to dom0); the guest's exit status decides.
//!
//! `dist` and `test` first check what they need from the host
//! ([`setup`]). `bench-c`, `bench-kernel` and `sizes` take
//! `--markdown FILE` (write their table, stamped with commit, date and
//! machine) and `--update DOC` (replace its region in a document,
//! [`markdown`]).

mod baremetal;
mod baremetal_net;
mod baremetal_sp;
mod bench_c;
mod bench_kernel;
mod dist;
mod kernel_test;
mod markdown;
mod qemu;
mod setup;
mod sizes;
mod test;
mod util;
mod xen;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "dist" => dist::run(rest),
        "test" => test::run(rest),
        "kernel-test" => kernel_test::run(rest),
        "baremetal-test" => baremetal::run(rest),
        "baremetal-dist" => baremetal::dist(rest),
        "baremetal-run" => baremetal::run_app(rest),
        "bench-baremetal-net" => baremetal_net::bench(rest),
        "xen-test" => xen::run(rest),
        "xen-dist" => xen::dist(rest),
        "xen-run" => xen::xen_run(rest),
        "bench-xen-net" => xen::bench_net(rest),
        "xen-net-peer" => xen::net_peer(rest),
        "xen-sp-peer" => xen::sp_peer(rest),
        "bench-kernel" => bench_kernel::run(rest),
        "aarch64-test" => test::aarch64(),
        "bench" => util::cargo(&["bench", "-p", "rumpuser-suite"]).map(|_| ()),
        "bench-c" => bench_c::run(rest),
        "sizes" => sizes::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <dist|test|kernel-test [--flavor posix|green]|bench>\n\
                 \n  dist         build target/dist/ and run the C demo\
                 \n  test         run the whole test suite (what CI runs)\
                 \n  kernel-test  run C tests against a NetBSD rump kernel layer in $RUMP_KERNEL_DIR\
                 \n  bench        run the criterion benches\
                 \n  bench-c      run benches/c/microbench.c against every librumpuser (ratios vs NetBSD)\
                 \n  sizes        the shipped libraries' sizes against NetBSD's librumpuser\
                 \n               (bench-c, bench-kernel, sizes: --markdown FILE, --update DOC)\
                 \n  baremetal-test  boot the bare-metal platform's tests in QEMU\
                 \n  baremetal-dist  build target/dist/baremetal/ (librumpuser_baremetal.a, link.ld)\
                 \n  baremetal-run   build an application (+ kernel layer) into a bare-metal image and boot it\
                 \n  bench-baremetal-net  bare-metal TCP figures against the posix flavour over shmif\
                 \n  xen-test     boot the Xen platform's tests as a PVH dom0 of Xen 4.17 in QEMU\
                 \n  xen-dist     build target/dist/xen/ (librumpuser_xen.a, link.ld)\
                 \n  xen-run      build an application (+ kernel layer) into a Xen guest and boot it\
                 \n  bench-xen-net  TCP figures between dom0 and a domU kernel against the posix flavour over shmif\
                 \n  bench-kernel NetBSD's kernel layer reading a raw device, on NetBSD's librumpuser and ours\
                 \n  aarch64-test build the Linux-host crates for AArch64, test them under qemu-aarch64"
            );
            return if cmd == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: error: {e}");
            ExitCode::FAILURE
        }
    }
}
