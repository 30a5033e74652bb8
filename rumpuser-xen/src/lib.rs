//! `rumpuser-xen`: the rumpuser v17 hypercalls for NetBSD rump kernels
//! running directly on Xen as PVH guests, as dom0 or as a domU with
//! virtual disks.
//!
//! Every rump-kernel thread is a green thread of
//! `rumpuser_green::sched_core` on the one vcpu. Boot and x86 code is
//! `rumpuser-pvh`'s, shared with `rumpuser-baremetal`; this crate is the
//! platform of its image (entry, exports, panic handler, allocator):
//!
//! | concern | how |
//! |---|---|
//! | boot | `rumpuser-pvh`'s PVH note and trampoline, which call `start::rumpuser_pvh_kmain`; its start-info parser, GDT/TSS/IDT, identity map, heap, stack guard pages and crash reports |
//! | Xen | CPUID signature, hypercall page through the MSR Xen names, our own hypercall asm (`rdi rsi rdx r10 r8`, not `xen-sys`'s wrappers) and bindings ([`abi`]; `xen-sys`'s event channel and sched op structures) |
//! | memory | `XENMEM_memory_map` (a PVH dom0's start info has no map) → heap |
//! | time | pvclock from vcpu 0's `vcpu_time_info` (monotonic, ns), wall clock from `shared_info` (`time`, [`pvclock`]) |
//! | idle, timer | `VCPUOP_set_singleshot_timer` → `VIRQ_TIMER` (re-armed only when the deadline changes); idle is `sti; hlt` = Xen's `SCHEDOP_block`, ended by the upcall vector (`RUMPUSER_XEN_IDLE=poll`: `SCHEDOP_poll` on the timer port and the ports threads wait on) (`platform`) |
//! | events | the per-vcpu upcall vector (a LAPIC interrupt) ends the idle halt; the 2-level pending bits are scanned from `shared_info` into green wake-ups after every idle and every few switches; an interrupt delivered on the `hlt` itself (nested TCG does that) is stepped over, so no wake-up is lost (`events`) |
//! | console | `console_io` for dom0; port 0xE9 plus the PV console ring (`xenconsoled`) for a domU (`console`) |
//! | xenstore | read, write, directory, watch over the shared ring (`xenstore`) |
//! | disks | grant tables v1 (`gnttab`) and a blkfront: `xvda`… or the device id, asynchronous `bio` over the blkif ring with bounce pages, a flush after `BIO_SYNC` writes, `ENXIO` and a clean `Closed` when the toolstack detaches a disk (`blkfront`) |
//! | network | a netfront per vif under NetBSD's `if_virt` (`virt0`, … through `rumpuser_pvh::virtif`): persistently granted rings and buffers, one event channel waking the interface's thread, multi-slot packets both ways (`feature-sg`), dropped sends, `ENXIO` and a clean `Closed` when the toolstack detaches a vif (`netfront`, the ring rules in `netif`) |
//! | random | RDSEED/RDRAND with `HARD`/`NOWAIT` semantics (`rumpuser_pvh::random`) |
//! | params, exit | the PVH command line; `SCHEDOP_shutdown` (and QEMU's `isa-debug-exit` for dom0 under the test harness) |
//!
//! # Building and running
//!
//! The host build is only the pure modules ([`abi`] layouts, [`pvclock`]
//! arithmetic) for their unit tests. For `x86_64-unknown-none` the crate
//! is the platform: a `#![no_std] #![no_main]` binary depends on it and
//! defines `#[no_mangle] extern "C" fn main`, linked with
//! `rumpuser-pvh/link.ld` (this crate's `build.rs` does that for its
//! own binaries). `cargo xtask xen-test` builds the test image
//! (`src/bin/rumpuser-xen-test.rs`), assembles Xen 4.17 from Debian's
//! packages and boots the image as a PVH dom0 in QEMU TCG:
//!
//! ```text
//! qemu-system-x86_64 -M q35 -accel tcg -cpu max -smp 1 -m 512M -device intel-iommu \
//!   -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel xen \
//!   -append "console=com1 com1=115200,8n1 dom0=pvh dom0_mem=64M ..." \
//!   -initrd "image PARAM=value -- args"
//! ```
//!
//! Parameters and `argv` come from the dom0 command line (the `-initrd`
//! module's string after the image name; commas must be doubled for
//! QEMU), or a domU's `cmdline`, with the syntax of
//! `rumpuser_pvh::cmdline`. `cargo xtask xen-test --only domu`
//! boots the same image as a domU under Debian's Linux as dom0 with the
//! real toolstack, blkback and netback.
//!
//! # What is missing
//!
//! Xenstore transactions; SMP; the syscall proxy; vifs attached after boot
//! (the netfront connects the vifs it finds at boot).
//!
//! # Outputs
//!
//! `cargo xtask xen-dist` writes `target/dist/xen/`: `librumpuser_xen.a`
//! (every `rumpuser_*` symbol, `if_virt`'s `rumpcomp_virt_*`, and the
//! boot object: link with `-u pvh_start32`) and `link.ld`. `cargo xtask
//! xen-run [--kernel DIR] [--pci DIR] [--disk IMG] [--domu] app.c… [--
//! CMDLINE]` builds a guest image from an application and a kernel layer
//! (default libraries: ext2, ffs, disk, vfs, rump; `--lib` names others,
//! looked for in `--pci DIR` first) and boots it under the nested Xen
//! harness, as dom0 or as a domU whose `xvda` is IMG and whose vif leads
//! to dom0; its exit status is the guest's. The Xen tests build their C
//! image and the kernel ext2 and TCP programs this way.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

extern crate alloc;

pub mod abi;
pub mod netif;
pub mod pvclock;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod blkfront;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod console;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod events;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod gnttab;
#[cfg(target_os = "none")]
pub mod hyp;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod hypercall;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod netfront;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod platform;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod start;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod time;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod xenstore;

#[cfg(target_os = "none")]
rumpuser_core::export_rumpuser!(&crate::hyp::XEN);

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    rumpuser_pvh::exit::panic("rumpuser-xen", info)
}

#[cfg(target_os = "none")]
#[global_allocator]
static ALLOCATOR: rumpuser_pvh::heap::Global = rumpuser_pvh::heap::Global;
