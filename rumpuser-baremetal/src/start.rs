//! Boot sequence, the call of the application's `main`, exit and panic.
//!
//! [`kmain`] (reached from the PVH trampoline) sets up, in order: the
//! serial console, FPU/SSE, GDT/TSS/IDT, the start info, the heap, the
//! refined page tables, clocks and timer, the PIC, the green scheduler
//! (the boot stack becomes the green thread "main"), the virtio disks,
//! then runs the C constructors (`.init_array`) and calls
//! `int main(int argc, char **argv)` — defined by the application (C, or
//! Rust with `#[no_mangle] extern "C" fn main`). Its return value ends the
//! VM with the status table of [`crate::status`].

use crate::arch::{boot, cpu, lapic, paging, pic, trap};
use crate::{bootinfo, cmdline, heap, kprintln, memmap, status};
use alloc::vec::Vec;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

extern "C" {
    /// The application's entry point.
    fn main(argc: c_int, argv: *const *const c_char) -> c_int;
    static __image_start: u8;
    static __image_end: u8;
    static __init_array_start: Option<unsafe extern "C" fn()>;
    static __init_array_end: Option<unsafe extern "C" fn()>;
}

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Whether `RUMPUSER_VERBOSE=1` was given.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

static EXIT_HOOK: spin::Once<fn(u32) -> !> = spin::Once::new();

/// Lets a platform embedding this crate (feature `platform` off) end the
/// machine its own way; [`exit_status`] calls `f(v)` first. Set once.
pub fn set_exit_hook(f: fn(u32) -> !) {
    EXIT_HOOK.call_once(|| f);
}

/// Ends the VM with `isa-debug-exit` value `v` (see [`crate::status`]).
pub fn exit_status(v: u32) -> ! {
    if let Some(f) = EXIT_HOOK.get() {
        f(v)
    }
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit device (when present it
    // ends QEMU); without it the write is ignored.
    unsafe { crate::arch::port::outl(0xf4, v) };
    // No debug-exit device: reset through the keyboard controller (QEMU
    // with -no-reboot then exits with status 0), else halt.
    // SAFETY: the 8042 "pulse reset line" command.
    unsafe { crate::arch::port::outb(0x64, 0xfe) };
    cpu::halt_forever()
}

/// Prints `msg` and ends the VM with the panic status.
pub fn fatal(msg: &str) -> ! {
    kprintln!("{msg}");
    exit_status(status::PANIC)
}

/// Prints the running green thread for a crash report.
pub fn report_thread() {
    match rumpuser_green::sched_core::current_for_report() {
        Some((id, name)) => kprintln!("    thread: {:?} (id {:#x})", name.as_str(), id.as_raw()),
        None if rumpuser_green::sched_core::is_initialized() => {
            kprintln!("    thread: (inside the scheduler)")
        }
        None => kprintln!("    thread: (boot, before the scheduler)"),
    }
}

#[cfg(feature = "platform")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kprintln!("\n*** rumpuser-baremetal: panic: {info}");
    report_thread();
    exit_status(status::PANIC)
}

fn image_range() -> memmap::Range {
    memmap::Range {
        start: core::ptr::addr_of!(__image_start) as u64,
        end: core::ptr::addr_of!(__image_end) as u64,
    }
}

/// The Rust entry point, called by the trampoline with the start-info address.
pub extern "C" fn kmain(start_info: u64) -> ! {
    BOOT_TSC.store(cpu::rdtsc(), Ordering::Relaxed);
    crate::serial::init();
    cpu::enable_fpu_sse();
    trap::init();
    // SAFETY: `start_info` is what the PVH loader passed in %ebx; nothing
    // has been allocated over low memory yet.
    let info = match unsafe { bootinfo::parse(start_info) } {
        Ok(i) => i,
        Err(e) => fatal(e),
    };
    let cmd = info.cmdline();
    VERBOSE.store(
        cmdline::param(cmd, "RUMPUSER_VERBOSE") == Some("1"),
        Ordering::Relaxed,
    );

    // Memory: regions below 4 GiB first (page tables for anything above
    // come from them), then the rest once it is mapped.
    let mut exclude = [memmap::Range::default(); 1 + bootinfo::MODULES_MAX];
    exclude[0] = image_range();
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
    pic::init();
    let force_oneshot = cmdline::param(cmd, "RUMPUSER_TIMER") == Some("oneshot");
    let clock = crate::time::init(&features, force_oneshot);
    crate::random::init(&features);
    let mut canary = [0u8; 8];
    let flags = rumpuser_core::types::RandomFlags {
        hard: false,
        nowait: true,
    };
    // The stack-protector canary (not a secret that matters much here:
    // without RDRAND it is derived from the TSC).
    let canary = match crate::random::available().then(|| crate::random::fill(&mut canary, flags)) {
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
        crate::random::describe(),
        crate::disk::count(),
        crate::virtif::count(),
        boot_us,
    );
    if cmdline::param(cmd, "RUMP_NCPU").is_some_and(|v| v != "1") {
        kprintln!("rumpuser-baremetal: RUMP_NCPU ignored: bare metal runs one virtual CPU");
    }

    let rc = run_main("rumpuser-baremetal", cmd);
    kprintln!("rumpuser-baremetal: main returned {rc}");
    exit_status(status::from_exit_value(rc))
}

/// Runs the image's C constructors (`.init_array`, which also registers
/// rump components under `RUMP_LDSCRIPT=ctor`), then the application's
/// `main` with `program` as `argv[0]` and the command line's arguments
/// after it; returns what `main` returned. Shared by every PVH platform.
pub fn run_main(program: &str, cmdline: &str) -> c_int {
    run_constructors();
    let mut args: Vec<Vec<u8>> = Vec::new();
    for a in core::iter::once(program).chain(cmdline::args(cmdline)) {
        let mut v = a.as_bytes().to_vec();
        v.push(0);
        args.push(v);
    }
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    argv.push(core::ptr::null());
    // SAFETY: `main` is the application's C entry point; argv is a
    // NULL-terminated array of NUL-terminated strings that outlive the call.
    unsafe { main((argv.len() - 1) as c_int, argv.as_ptr()) }
}

fn run_constructors() {
    // SAFETY: the linker script brackets `.init_array` with these symbols;
    // every slot holds a constructor (or NULL) compiled for this image.
    unsafe {
        let mut p = core::ptr::addr_of!(__init_array_start);
        let end = core::ptr::addr_of!(__init_array_end);
        while p < end {
            if let Some(f) = *p {
                f();
            }
            p = p.add(1);
        }
    }
}
