//! Boot sequence on Xen, the call of the application's `main`, and the
//! exit hook.
//!
//! `rumpuser-pvh`'s trampoline (its ELF note, 32→64-bit switch, boot page
//! tables and stack) calls [`rumpuser_pvh_kmain`], which sets up, in
//! order: Xen detection by CPUID and the hypercall page, the console
//! (`console_io` for dom0, port 0xE9 otherwise) and the exit hook, FPU/SSE
//! and the shared GDT/TSS/IDT, the start info (`rumpuser_pvh::bootinfo`:
//! command line, modules), the memory map (`XENMEM_memory_map`,
//! which a PVH dom0 needs: its start info has none), the heap and the
//! refined identity map (shared code), `shared_info`, the clocks, the
//! `VIRQ_TIMER` port and the upcall vector, RDRAND/RDSEED and the
//! stack-protector block, the green scheduler (the boot stack becomes the
//! thread "main"), the network front ends, then the C constructors and
//! `int main(int argc, char **argv)`.
//!
//! Exit: the status is printed, then — for dom0, which owns the machine —
//! written to QEMU's `isa-debug-exit` port (so the harness's QEMU exit
//! status carries it, see `rumpuser_pvh::status`), then the domain
//! shuts down with `SCHEDOP_shutdown` (`poweroff` for status 0, `crash`
//! otherwise).

use crate::{abi, console, events, hypercall, time, xprintln};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_pvh::arch::{boot, cpu, paging, port, trap};
use rumpuser_pvh::exit::{fatal, fatal_fmt};
use rumpuser_pvh::memmap::{self, Range, E820_RAM};
use rumpuser_pvh::{bootinfo, cmdline, heap, status};

const MEMMAP_MAX: usize = 128;

/// What boot learned about the machine.
#[derive(Debug)]
pub struct BootInfo {
    /// Xen's version (`major << 16 | minor`).
    pub xen_version: u32,
    /// Whether this is dom0 (`XENFEAT_dom0`).
    pub dom0: bool,
    /// `hvm_start_info.version`.
    pub start_info_version: u32,
    /// Where the memory map came from.
    pub memmap_source: &'static str,
    /// RAM ranges.
    pub ram: [Range; MEMMAP_MAX],
    /// Valid entries of `ram`.
    pub nram: usize,
    /// The `VIRQ_TIMER` port.
    pub timer_port: u32,
    /// TSC frequency implied by Xen's scale.
    pub tsc_hz: u64,
}

struct E820Buf(UnsafeCell<[abi::E820Entry; MEMMAP_MAX]>);
// SAFETY: used once at boot (Xen writes it during one hypercall).
unsafe impl Sync for E820Buf {}
static E820: E820Buf = E820Buf(UnsafeCell::new(
    [abi::E820Entry {
        addr: 0,
        size: 0,
        kind: 0,
    }; MEMMAP_MAX],
));

static INFO: spin::Once<BootInfo> = spin::Once::new();
static BOOT_NS: AtomicU64 = AtomicU64::new(0);
static DOM0: AtomicBool = AtomicBool::new(false);
static EXITING: AtomicBool = AtomicBool::new(false);

/// The command line (parameters before `--`, arguments after), or `""`.
pub fn cmdline() -> &'static str {
    bootinfo::cmdline()
}

/// The boot information (after boot).
pub fn info() -> Option<&'static BootInfo> {
    INFO.get()
}

/// Whether this is the hardware domain.
pub fn is_dom0() -> bool {
    DOM0.load(Ordering::Relaxed)
}

/// Ends the domain with `isa-debug-exit` value `v` (see the module docs).
pub fn exit_status(v: u32) -> ! {
    console::flush();
    if !EXITING.swap(true, Ordering::SeqCst) && is_dom0() {
        // dom0 owns the machine's I/O ports: 0xf4 is QEMU's
        // isa-debug-exit device under the test harness (it ends QEMU).
        port::isa_debug_exit(v);
    }
    if hypercall::ready() {
        let reason = if v == 0 {
            abi::SHUTDOWN_POWEROFF
        } else {
            abi::SHUTDOWN_CRASH
        };
        // Returns only on failure; the toolstack would then wait on a
        // domain that never says it is done, so say why here.
        let rc = hypercall::shutdown(reason);
        xprintln!("rumpuser-xen: SCHEDOP_shutdown({reason}) failed: {rc}; halting");
        console::flush();
    }
    cpu::halt_forever()
}

/// `XENMEM_memory_map`: this domain's E820 map (RAM entries).
fn xen_memory_map(ram: &mut [Range; MEMMAP_MAX]) -> Result<usize, i64> {
    let buf = E820.0.get();
    let mut m = abi::MemoryMap {
        nr_entries: MEMMAP_MAX as u32,
        _pad: 0,
        buffer: buf as u64,
    };
    // SAFETY: a valid xen_memory_map whose buffer holds MEMMAP_MAX packed
    // e820 entries, used by nothing else.
    let rc = unsafe { hypercall::memory_op(abi::XENMEM_MEMORY_MAP, &mut m) };
    if rc != 0 {
        return Err(rc);
    }
    let mut n = 0;
    // SAFETY: Xen wrote `nr_entries` entries; boot, single thread.
    let entries = unsafe { &*buf };
    for e in entries.iter().take((m.nr_entries as usize).min(MEMMAP_MAX)) {
        let (addr, size, kind) = (e.addr, e.size, e.kind);
        if kind == E820_RAM && size > 0 && n < MEMMAP_MAX {
            ram[n] = Range {
                start: addr,
                end: addr.saturating_add(size),
            };
            n += 1;
        }
    }
    Ok(n)
}

fn console_sink(b: &[u8]) {
    console::write(b);
}

/// The Rust entry point, called by the shared PVH trampoline with the
/// start-info address.
#[no_mangle]
pub extern "C" fn rumpuser_pvh_kmain(start_info: u64) -> ! {
    let tsc0 = cpu::rdtsc();
    rumpuser_pvh::exit::set_who(<crate::hyp::XenMachine as rumpuser_pvh::host::Machine>::WHO);
    let Some(base) = hypercall::detect() else {
        // Not on Xen (plain QEMU?): say so on COM1 and leave.
        rumpuser_pvh::serial::init();
        rumpuser_pvh::kprintln!(
            "rumpuser-xen: not running on Xen (no XenVMMXenVMM CPUID leaf); boot this image \
             as a Xen PVH guest (cargo xtask xen-test)"
        );
        rumpuser_pvh::exit::exit_status(status::PANIC)
    };
    let id = hypercall::init(base);
    rumpuser_pvh::serial::set_sink(console_sink);
    rumpuser_pvh::exit::set_exit_hook(exit_status);
    let f0 = hypercall::features(0);
    let dom0 = f0 & (1 << abi::XENFEAT_DOM0) != 0;
    DOM0.store(dom0, Ordering::Relaxed);
    if dom0 {
        console::use_console_io();
    }
    let version = hypercall::xen_version();
    xprintln!(
        "rumpuser-xen: Xen {}.{} ({}), CPUID base {:#x}, hypercall MSR {:#x}, console {}",
        version >> 16,
        version & 0xffff,
        if dom0 { "dom0" } else { "domU" },
        id.base,
        id.msr,
        if console::uses_console_io() {
            "console_io"
        } else {
            "port 0xE9"
        }
    );
    cpu::enable_fpu_sse();
    trap::init();

    // SAFETY: `start_info` is what the PVH loader passed in %ebx; nothing
    // has been allocated over it yet.
    let si = match unsafe { bootinfo::parse(start_info) } {
        Ok(i) => i,
        Err(e) => fatal(e),
    };
    let (si_version, nmod) = (si.version, si.nmodules);
    let mut ram = [Range::default(); MEMMAP_MAX];
    let mut nram = si.nram.min(MEMMAP_MAX);
    ram[..nram].copy_from_slice(&si.ram[..nram]);
    let memmap_source = match xen_memory_map(&mut ram) {
        Ok(n) if n > 0 => {
            nram = n;
            "XENMEM_memory_map"
        }
        Ok(_) | Err(_) if nram > 0 => "hvm_start_info",
        Ok(_) => {
            fatal("rumpuser-xen: XENMEM_memory_map returned no RAM and the start info has no map")
        }
        Err(rc) => fatal_fmt(format_args!(
            "rumpuser-xen: XENMEM_memory_map failed ({rc}, {}) and the start info has no map",
            abi::errno_name(rc)
        )),
    };
    let verbose = cmdline::param(cmdline(), "RUMPUSER_VERBOSE") == Some("1");
    if verbose {
        xprintln!(
            "rumpuser-xen: start info v{si_version}, {nmod} module(s), RAM from {memmap_source}:"
        );
        for r in &ram[..nram] {
            xprintln!("  {:#012x}-{:#012x}", r.start, r.end);
        }
    }

    // Memory (shared with bare metal): regions below 4 GiB first, then the
    // identity map refinements, then RAM above 4 GiB.
    let mut exclude = [Range::default(); 1 + bootinfo::MODULES_MAX];
    exclude[0] = boot::image_range();
    exclude[1..1 + nmod].copy_from_slice(&si.modules[..nmod]);
    let (regions, n) = memmap::usable::<{ heap::MAX_REGIONS }>(&ram[..nram], &exclude[..1 + nmod]);
    let low = |r: &Range| r.end <= 1 << 32;
    for r in regions[..n].iter().filter(|r| low(r)) {
        // SAFETY: RAM from the memory map minus the image and modules.
        unsafe { heap::add_region(*r) };
    }
    paging::init(&ram[..nram]);
    for r in regions[..n].iter().filter(|r| !low(r)) {
        // SAFETY: as above; mapped by `paging::init`.
        unsafe { heap::add_region(*r) };
    }
    paging::set_guard(boot::boot_stack_bottom(), true);

    // shared_info, clocks, events.
    let rc = events::map_shared_info();
    if rc != 0 {
        fatal_fmt(format_args!(
            "rumpuser-xen: XENMEM_add_to_physmap(shared_info) failed ({rc}, {})",
            abi::errno_name(rc)
        ));
    }
    let timer_port = match time::init() {
        Ok(p) => p,
        Err(rc) => fatal_fmt(format_args!(
            "rumpuser-xen: EVTCHNOP_bind_virq(VIRQ_TIMER) failed ({rc}, {})",
            abi::errno_name(rc)
        )),
    };
    // Idle: the upcall vector with `sti; hlt` unless `RUMPUSER_XEN_IDLE=poll`
    // asks for `SCHEDOP_poll` (or Xen cannot deliver to a vector).
    let idle_param = cmdline::param(cmdline(), "RUMPUSER_XEN_IDLE");
    let hlt_idle = match idle_param {
        Some("poll") => false,
        None | Some("hlt") => {
            if f0 & (1 << abi::XENFEAT_HVM_CALLBACK_VECTOR) == 0 {
                xprintln!(
                    "rumpuser-xen: Xen does not offer XENFEAT_hvm_callback_vector; idling with SCHEDOP_poll"
                );
                false
            } else {
                let rc = events::enable_upcall_vector();
                if rc != 0 {
                    xprintln!(
                        "rumpuser-xen: HVMOP_set_evtchn_upcall_vector failed ({rc}, {}); idling with SCHEDOP_poll",
                        abi::errno_name(rc)
                    );
                }
                rc == 0
            }
        }
        Some(other) => fatal_fmt(format_args!(
            "rumpuser-xen: RUMPUSER_XEN_IDLE={other}: expected hlt (the default) or poll"
        )),
    };
    if hlt_idle {
        crate::platform::use_hlt_idle();
    }
    BOOT_NS.store(time::now_ns(), Ordering::Relaxed);
    let store = if dom0 { None } else { crate::xenstore::init() };
    let gnt = crate::gnttab::init();
    if verbose {
        match gnt {
            Ok((n, max)) => xprintln!(
                "rumpuser-xen: grant table mapped ({} frames; Xen had {n} of at most {max})",
                crate::gnttab::FRAMES
            ),
            Err(rc) => xprintln!(
                "rumpuser-xen: grant table unavailable ({rc}, {})",
                abi::errno_name(rc)
            ),
        }
    }
    let cons_ring = if dom0 { None } else { console::init_ring() };
    if let (Some((spfn, sport)), true) = (store, verbose) {
        xprintln!("rumpuser-xen: xenstore ring pfn {spfn:#x} port {sport}");
    }
    if let (Some((cpfn, cport)), true) = (cons_ring, verbose) {
        xprintln!("rumpuser-xen: PV console ring pfn {cpfn:#x} port {cport}");
    }

    let features = cpu::features();
    rumpuser_pvh::random::init(&features);
    let mut canary = [0u8; 8];
    let flags = rumpuser_core::types::RandomFlags {
        hard: false,
        nowait: true,
    };
    let canary = match rumpuser_pvh::random::available()
        .then(|| rumpuser_pvh::random::fill(&mut canary, flags))
    {
        Some(Ok(8)) => u64::from_ne_bytes(canary),
        _ => cpu::rdtsc().wrapping_mul(0x9e37_79b9_7f4a_7c15),
    } & !0xff;
    cpu::install_fs_block(canary);
    // SAFETY: this is the only CPU and the boot context becomes the green
    // thread "main"; nothing else uses the scheduler.
    if unsafe { rumpuser_green::sched_core::init(&crate::platform::XEN, Default::default()) }
        .is_err()
    {
        fatal("rumpuser-xen: scheduler already initialised");
    }
    let tsc_hz = time::snapshot().tsc_hz();
    let (total, used) = heap::usage();
    let boot_us = (cpu::rdtsc() - tsc0) / (tsc_hz / 1_000_000).max(1);
    xprintln!(
        "rumpuser-xen: {} MiB heap ({} KiB used, RAM map from {memmap_source}), TSC {} MHz{}, \
         timer VIRQ_TIMER port {timer_port}, idle {}, random {}, boot {} us",
        total >> 20,
        used >> 10,
        tsc_hz / 1_000_000,
        if crate::hypercall::tsc_emulated() {
            " (emulated by Xen: every clock read traps)"
        } else {
            ""
        },
        if hlt_idle {
            "sti;hlt + upcall vector 0x30"
        } else {
            "SCHEDOP_poll"
        },
        rumpuser_pvh::random::describe(),
        boot_us,
    );
    INFO.call_once(|| BootInfo {
        xen_version: version,
        dom0,
        start_info_version: si_version,
        memmap_source,
        ram,
        nram,
        timer_port,
        tsc_hz,
    });
    if cmdline::param(cmdline(), "RUMP_NCPU").is_some_and(|v| v != "1") {
        xprintln!("rumpuser-xen: RUMP_NCPU ignored: the platform runs one virtual CPU");
    }
    // The vifs (xenstore requests park: after the scheduler is up).
    crate::netfront::probe();

    let rc = rumpuser_pvh::app::run_main("rumpuser-xen", cmdline());
    xprintln!("rumpuser-xen: main returned {rc}");
    exit_status(status::from_exit_value(rc))
}

/// Monotonic time at the end of boot.
pub fn boot_ns() -> u64 {
    BOOT_NS.load(Ordering::Relaxed)
}
