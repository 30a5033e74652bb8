//! Boot sequence and the call of the application's `main`.
//!
//! [`rumpuser_pvh_kmain`] (reached from `rumpuser-pvh`'s PVH trampoline)
//! sets up, in order: the
//! serial console, FPU/SSE, GDT/TSS/IDT, the start info, the heap, the
//! refined page tables, clocks and timer, the PIC, the green scheduler
//! (the boot stack becomes the green thread "main"), the virtio disks,
//! then runs the C constructors (`.init_array`) and calls
//! `int main(int argc, char **argv)` — defined by the application (C, or
//! Rust with `#[no_mangle] extern "C" fn main`). Its return value ends the
//! VM with the status table of [`rumpuser_pvh::status`]; exits before
//! that are `rumpuser_pvh::exit`'s (`isa-debug-exit`, no hook).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_pvh::arch::{boot, cpu, lapic, paging, pic, trap};
use rumpuser_pvh::exit::{exit_status, fatal};
use rumpuser_pvh::{bootinfo, cmdline, heap, kprintln, memmap, status};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Whether `RUMPUSER_VERBOSE=1` was given.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// The Rust entry point, called by the trampoline with the start-info address.
#[no_mangle]
pub extern "C" fn rumpuser_pvh_kmain(start_info: u64) -> ! {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
    rumpuser_pvh::exit::set_who(<crate::hyp::BaremetalMachine as rumpuser_pvh::host::Machine>::WHO);
    rumpuser_pvh::serial::init();
    cpu::enable_fpu_sse();
    trap::init();
    // SAFETY: `start_info` is what the PVH loader passed in %ebx; nothing
    // has been allocated over low memory yet.
    let info = match unsafe { bootinfo::parse(start_info) } {
        Ok(i) => i,
        Err(e) => fatal(e),
    };
    if info.nram == 0 {
        fatal("the PVH start info has no memory map (version 0 loader)");
    }
    let cmd = info.cmdline();
    VERBOSE.store(
        cmdline::param(cmd, "RUMPUSER_VERBOSE") == Some("1"),
        Ordering::Relaxed,
    );

    // Memory: regions below 4 GiB first (page tables for anything above
    // come from them), then the rest once it is mapped.
    let mut exclude = [memmap::Range::default(); 1 + bootinfo::MODULES_MAX];
    exclude[0] = boot::image_range();
    exclude[1..1 + info.nmodules].copy_from_slice(&info.modules[..info.nmodules]);
    let (regions, n) =
        memmap::usable::<{ heap::MAX_REGIONS }>(info.ram(), &exclude[..1 + info.nmodules]);
    let low = |r: &memmap::Range| r.end <= 1 << 32;
    for r in regions[..n].iter().filter(|r| low(r)) {
        // SAFETY: RAM from the memory map minus the image and modules.
        unsafe { heap::add_region(*r) };
    }
    paging::init(info.ram());
    for r in regions[..n].iter().filter(|r| !low(r)) {
        // SAFETY: as above; mapped by `paging::init`.
        unsafe { heap::add_region(*r) };
    }
    // The boot stack gets a guard page too (its lowest page).
    paging::set_guard(boot::boot_stack_bottom(), true);

    let features = cpu::features();
    lapic::init();
    trap::set_pic_irq_handler(crate::irq::on_pic_irq);
    pic::init();
    let force_oneshot = cmdline::param(cmd, "RUMPUSER_TIMER") == Some("oneshot");
    let clock = crate::time::init(&features, force_oneshot);
    rumpuser_pvh::random::init(&features);
    let mut canary = [0u8; 8];
    let flags = rumpuser_core::types::RandomFlags {
        hard: false,
        nowait: true,
    };
    // The stack-protector canary (not a secret that matters much here:
    // without RDRAND it is derived from the TSC).
    let canary = match rumpuser_pvh::random::available()
        .then(|| rumpuser_pvh::random::fill(&mut canary, flags))
    {
        Some(Ok(8)) => u64::from_ne_bytes(canary),
        _ => cpu::rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15),
    } & !0xff; // a zero low byte stops string overflows, as glibc does
    cpu::install_fs_block(canary);
    // SAFETY: this is the only CPU and the boot context becomes the green
    // thread "main"; nothing else uses the scheduler.
    if unsafe { rumpuser_green::sched_core::init(&crate::platform::METAL, Default::default()) }
        .is_err()
    {
        fatal("rumpuser-baremetal: scheduler already initialised");
    }
    crate::disk::probe();
    crate::net::probe();

    let (total, used) = heap::usage();
    let boot_us = clock.tsc_hz().checked_div(1_000_000).map_or(0, |mhz| {
        (cpu::rdtsc() - BOOT_TSC.load(Ordering::Relaxed)) / mhz.max(1)
    });
    kprintln!(
        "rumpuser-baremetal: {} MiB heap ({} KiB used), TSC {}.{:03} MHz{}, timer {:?} (LAPIC {} MHz), random {}, {} disk(s), {} network device(s), boot {} us",
        total >> 20,
        used >> 10,
        clock.tsc_hz() / 1_000_000,
        (clock.tsc_hz() / 1_000) % 1_000,
        if features.invariant_tsc { " invariant" } else { "" },
        clock.mode,
        clock.lapic_hz() / 1_000_000,
        rumpuser_pvh::random::describe(),
        crate::disk::count(),
        rumpuser_pvh::virtif::count(),
        boot_us,
    );
    if cmdline::param(cmd, "RUMP_NCPU").is_some_and(|v| v != "1") {
        kprintln!("rumpuser-baremetal: RUMP_NCPU ignored: bare metal runs one virtual CPU");
    }

    let rc = rumpuser_pvh::app::run_main("rumpuser-baremetal", cmd);
    kprintln!("rumpuser-baremetal: main returned {rc}");
    exit_status(status::from_exit_value(rc))
}
