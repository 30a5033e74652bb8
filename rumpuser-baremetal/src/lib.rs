//! `rumpuser-baremetal`: the rumpuser v17 hypercalls on bare x86_64, for
//! rump kernels booted by QEMU (or any PVH loader) without a host OS.
//!
//! Every rump-kernel thread is a green thread of
//! `rumpuser_green::sched_core` on the one CPU; the platform supplies
//! what the scheduler and the hypercalls need from the machine. The x86
//! PVH code (boot, paging, traps, heap, console, exit, the PVH host half)
//! is `rumpuser-pvh`'s, shared with `rumpuser-xen`; this crate is the
//! bare-metal machine on top of it and the platform of its image:
//!
//! | concern | how |
//! |---|---|
//! | boot | PVH ELF note + 32→64-bit trampoline (`rumpuser_pvh::arch::boot`), identity map of RAM and device memory (`arch::paging`), GDT/TSS/IDT with IST stacks for exceptions (`arch::trap`); the boot sequence is `start` |
//! | faults | CPU exceptions print vector, error code, RIP, CR2 (NULL page? stack guard page?), registers, the green thread and its stack, then end QEMU with status 253 |
//! | memory | the PVH memory map → `linked_list_allocator` heaps = global allocator, `rumpuser_malloc` (alignment honoured), `anonmmap`, stacks with guard pages, DMA |
//! | time | TSC calibrated against the PIT; LAPIC TSC-deadline or one-shot timer armed for the next deadline, `sti; hlt` while idle (no tick, no busy wait); CMOS RTC for the wall clock |
//! | interrupts | masked while threads run, taken while idle or in a one-instruction window of every scheduler event poll; a device IRQ wakes the green threads of the drivers on its line (`irq`) |
//! | disks | virtio-blk over PCI (`virtio-drivers`): `virtio0`, `virtio1`, … with asynchronous, interrupt-driven `rumpuser_bio` (see `disk`) |
//! | network | virtio-net under NetBSD's `if_virt`: `virt0`, `virt1`, … (`rumpuser_pvh::virtif` over `net`) |
//! | NetBSD's drivers | the `rumpcomp_pci_*` hypercalls (`pcihyp`, `dma`), so `librumpdev_pci` with `vioif`, `ld`, … run in the kernel layer; a virtio class goes either to them or to this crate (`pci`) |
//! | random | RDSEED/RDRAND with `HARD`/`NOWAIT` semantics; `ENOTSUP` without them |
//! | console, params, exit | COM1 serial; the PVH command line (`rumpuser_pvh::cmdline`); `isa-debug-exit` with the statuses of `rumpuser_pvh::status` |
//! | syscall proxy | `rump_init_server("tcp://…")` serves NetBSD's librumpclient on the kernel's own TCP/IP stack (`rumpuser_pvh::sp`: green threads in the kernel's socket calls) |
//!
//! # Building an image
//!
//! The crate is empty on the host (its pure code is `rumpuser-pvh`'s).
//! For `x86_64-unknown-none` it is the platform: it owns the entry point
//! (`rumpuser_pvh_kmain`, called by the PVH trampoline), the panic handler
//! and the global allocator, and it calls `int main(int argc, char **argv)`
//! after boot.
//!
//! * Rust: a `#![no_std] #![no_main]` binary that depends on this crate and
//!   defines `#[no_mangle] extern "C" fn main(...)`, built for
//!   `x86_64-unknown-none` and linked with `-T link.ld --no-pie -z norelro`
//!   (`rumpuser-pvh/link.ld`)
//!   (the target links static-PIE by default; the PVH note and trampoline
//!   need absolute addresses). This crate's `build.rs` passes those to its
//!   own binaries; `src/bin/rumpuser-baremetal-test/` is the example and
//!   `cargo xtask baremetal-test` builds and boots it.
//! * C (a rump kernel layer): `cargo xtask baremetal-dist` writes
//!   `librumpuser_baremetal.a` and `link.ld` to `target/dist/baremetal/`;
//!   link the kernel's archives, the application and the library:
//!
//!   ```text
//!   ld -static -nostdlib -T link.ld -u pvh_start32 -o app.elf app.o \
//!      --whole-archive librumpfs_tmpfs.a librumpvfs.a librump.a --no-whole-archive \
//!      librumpuser_baremetal.a
//!   qemu-system-x86_64 -M q35 -cpu max -accel tcg -m 256M -display none -no-reboot \
//!      -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel app.elf
//!   ```
//!
//!   The C code must not use TLS (build the kernel with
//!   `RUMP_CURLWP=hypercall`) or a C library; `-fstack-protector` works
//!   (`%fs:0x28` holds a canary, `__stack_chk_fail` reports). The boot
//!   object is inside the archive, so `-u pvh_start32` pulls it in.
//!
//! # What is missing
//!
//! SMP (one CPU, `NCPU` 1), per-thread TLS, run-time
//! module loading, PCI buses other than 0 for this crate's own drivers
//! (NetBSD's PCI code scans further through the hypercalls), MSI/MSI-X
//! (legacy INTx through the 8259), offloads on virtio-net (no checksum or
//! segmentation offload: `if_virt` has none), ACPI (power-off is QEMU's
//! `isa-debug-exit`), AVX state (only SSE is enabled), and the TSC-deadline
//! timer path is untested in CI (QEMU TCG does not offer it;
//! `RUMPUSER_TIMER=oneshot` forces the count-down timer). The heap is a
//! first-fit list (`O(holes)` per allocation).
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod blk;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod disk;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod dma;
#[cfg(target_os = "none")]
pub mod hyp;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod irq;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod net;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod pci;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod pcihyp;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod platform;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod rtc;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod start;
#[cfg(target_os = "none")]
pub mod time;

#[cfg(target_os = "none")]
rumpuser_core::export_rumpuser!(&crate::hyp::BAREMETAL);

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    rumpuser_pvh::exit::panic("rumpuser-baremetal", info)
}

#[cfg(target_os = "none")]
#[global_allocator]
static ALLOCATOR: rumpuser_pvh::heap::Global = rumpuser_pvh::heap::Global;
