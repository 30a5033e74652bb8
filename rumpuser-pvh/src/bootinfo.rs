//! The PVH `hvm_start_info` (Xen's `arch-x86/hvm/start_info.h`): command
//! line, memory map and boot modules, copied into statics at boot because
//! the structure lives in low memory the platform later unmaps. The one
//! parser of every PVH platform: bare metal needs the memory map (QEMU's
//! loader gives one), Xen takes its map from `XENMEM_memory_map` and uses
//! this one only when that fails (a PVH dom0's start info has none).

use crate::memmap::{Range, E820_RAM};

const MAGIC: u32 = 0x336e_c578;
/// Longest command line kept.
pub const CMDLINE_MAX: usize = 4096;
/// Memory-map entries kept.
pub const MEMMAP_MAX: usize = 128;
/// Boot modules kept.
pub const MODULES_MAX: usize = 8;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

#[repr(C)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// What the platform keeps from the start info.
pub struct BootInfo {
    /// `hvm_start_info.version` (0: no memory map field).
    pub version: u32,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    /// RAM ranges (type 1 entries).
    pub ram: [Range; MEMMAP_MAX],
    /// Number of valid entries in `ram`.
    pub nram: usize,
    /// Boot modules (`-initrd`), to keep out of the heap.
    pub modules: [Range; MODULES_MAX],
    /// Number of valid entries in `modules`.
    pub nmodules: usize,
    /// ACPI RSDP address (0 if none).
    pub rsdp: u64,
    /// Highest RAM address + 1.
    pub ram_top: u64,
}

// The layouts of `arch-x86/hvm/start_info.h`.
const _: () = {
    assert!(core::mem::size_of::<StartInfo>() == 56);
    assert!(core::mem::size_of::<MemmapEntry>() == 24);
    assert!(core::mem::size_of::<ModlistEntry>() == 32);
};

static INFO: spin::Once<BootInfo> = spin::Once::new();

/// Parses the start info at physical address `pa` (once: later calls
/// return the first result). The RAM list is empty when the start info
/// has no memory map (version 0, or none given).
///
/// # Safety
/// `pa` is the `%ebx` the PVH loader passed; everything it points to is
/// identity mapped and not yet reused.
pub unsafe fn parse(pa: u64) -> Result<&'static BootInfo, &'static str> {
    if pa == 0 {
        return Err("no PVH start info (boot with qemu -kernel or a PVH loader)");
    }
    // SAFETY: caller's contract.
    let si = unsafe { &*(pa as *const StartInfo) };
    if si.magic != MAGIC {
        return Err("bad hvm_start_info magic");
    }
    let mut b = BootInfo {
        version: si.version,
        cmdline: [0; CMDLINE_MAX],
        cmdline_len: 0,
        ram: [Range::default(); MEMMAP_MAX],
        nram: 0,
        modules: [Range::default(); MODULES_MAX],
        nmodules: 0,
        rsdp: si.rsdp_paddr,
        ram_top: 0,
    };
    if si.cmdline_paddr != 0 {
        let p = si.cmdline_paddr as *const u8;
        let mut n = 0;
        // SAFETY: a NUL-terminated string from the loader (caller's
        // contract); at most CMDLINE_MAX - 1 bytes are read.
        while n < CMDLINE_MAX - 1 && unsafe { *p.add(n) } != 0 {
            // SAFETY: as above.
            b.cmdline[n] = unsafe { *p.add(n) };
            n += 1;
        }
        b.cmdline_len = n;
    }
    let nmap = if si.version >= 1 && si.memmap_paddr != 0 {
        si.memmap_entries as usize
    } else {
        0
    };
    for i in 0..nmap {
        // SAFETY: `memmap_entries` entries at `memmap_paddr` (caller's contract).
        let e = unsafe { &*(si.memmap_paddr as *const MemmapEntry).add(i) };
        if e.kind == E820_RAM && b.nram < MEMMAP_MAX && e.size > 0 {
            let r = Range {
                start: e.addr,
                end: e.addr.saturating_add(e.size),
            };
            b.ram[b.nram] = r;
            b.nram += 1;
            b.ram_top = b.ram_top.max(r.end);
        }
    }
    if si.modlist_paddr != 0 {
        for i in 0..(si.nr_modules as usize).min(MODULES_MAX) {
            // SAFETY: `nr_modules` entries at `modlist_paddr` (caller's contract).
            let m = unsafe { &*(si.modlist_paddr as *const ModlistEntry).add(i) };
            b.modules[b.nmodules] = Range {
                start: m.paddr,
                end: m.paddr.saturating_add(m.size),
            };
            b.nmodules += 1;
        }
    }
    Ok(INFO.call_once(|| b))
}

impl BootInfo {
    /// The command line (lossy: invalid UTF-8 ends it).
    pub fn cmdline(&self) -> &str {
        let b = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(b) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
        }
    }
    /// RAM ranges.
    pub fn ram(&self) -> &[Range] {
        &self.ram[..self.nram]
    }
}

/// The parsed start info (after boot).
pub fn get() -> Option<&'static BootInfo> {
    INFO.get()
}

/// The command line, or `""` before boot.
pub fn cmdline() -> &'static str {
    get().map_or("", BootInfo::cmdline)
}
