//! `rumpuser-pvh`: the x86_64 PVH code every PVH platform of the family
//! shares — `rumpuser-baremetal` (QEMU's PVH loader on bare hardware) and
//! `rumpuser-xen` (a Xen PVH guest) — as a plain library.
//!
//! | module | what |
//! |---|---|
//! | `arch` | PVH note and 32→64-bit trampoline, identity map and guard pages, GDT/TSS/IDT and crash reports, CPU features, LAPIC, the legacy 8259/8254, port I/O |
//! | `bootinfo` | the one parser of the PVH start info (command line, memory map, modules) |
//! | `heap`, [`memmap`], `stack` | RAM regions → heaps (the `heap::Global` allocator, `rumpuser_malloc`), green stacks with guard pages |
//! | `serial`, [`cmdline`], `random`, [`clockmath`] | COM1 console (or a platform's sink), `NAME=value -- args`, RDSEED/RDRAND, TSC/LAPIC scale arithmetic |
//! | `exit`, [`status`] | the end of the machine (the platform's hook, else `isa-debug-exit`), fatal errors and crash-report helpers, the exit statuses |
//! | `host` | `host::PvhHost` over a `host::Machine`: the host half of a PVH rumpuser platform, `host::pvh_platform` joins it with the green scheduler |
//! | `app` | C constructors and the application's `main` |
//! | `sp`, `virtif` | the syscall proxy on the guest kernel's sockets; `if_virt`'s hypercalls over a `virtif::NetDevice` |
//! | `guest_tests` | (feature `guest-tests`) the in-guest test harness and the cases both test images share |
//!
//! # What the platform crate does
//!
//! This crate has no entry point, panic handler or global allocator: the
//! platform crate linked into the image owns them. It defines
//! `#[no_mangle] extern "C" fn rumpuser_pvh_kmain(start_info: u64) -> !`,
//! which the trampoline calls (its boot sequence, which parses the start
//! info with `bootinfo::parse` and ends by calling `app::run_main`), the
//! `#[panic_handler]` (usually `exit::panic`) and
//! `#[global_allocator] static A: heap::Global = heap::Global;`; it
//! registers how the machine ends (`exit::set_exit_hook`), where the
//! console goes (`serial::set_sink`) and who takes 8259 interrupts
//! (`arch::trap::set_pic_irq_handler`), and it exports
//! `host::pvh_platform` of its `host::Machine`. Leaf modules here never
//! call the boot sequence: they end the machine through `exit`.
//!
//! Images are linked with `link.ld` (this crate's; ET_EXEC at 1 MiB, the
//! PVH note in a PT_NOTE segment), `--no-pie` and `-z norelro`.
//!
//! On the host only the pure modules ([`cmdline`], [`memmap`],
//! [`clockmath`], [`status`]) are compiled, for their unit tests.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

extern crate alloc;

pub mod clockmath;
pub mod cmdline;
pub mod memmap;
pub mod status;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod app;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod arch;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod bootinfo;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(all(target_os = "none", feature = "guest-tests"))]
#[allow(unsafe_code)]
pub mod guest_tests;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod heap;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod host;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod random;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod serial;
#[cfg(target_os = "none")]
pub mod sp;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod stack;
#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod virtif;
