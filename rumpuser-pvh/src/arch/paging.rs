//! The identity map, refined after boot.
//!
//! The trampoline maps the first 4 GiB with 2 MiB pages, write-back. Here:
//!
//! * 2 MiB pages that hold no RAM (the PCI hole: LAPIC, IOAPIC, BARs) become
//!   uncached (`PCD|PWT`);
//! * RAM above 4 GiB, and device memory a driver asks for, is mapped on
//!   demand (new tables come from the heap);
//! * page 0 is unmapped, so a NULL dereference faults and is reported;
//! * green-thread stacks get an unmapped **guard page** below them (the
//!   2 MiB page around it is split into 4 KiB pages once), so a stack
//!   overflow is a page fault naming the thread instead of silent heap
//!   corruption (rumprun's stacks had no guard).
//!
//! Virtual = physical everywhere, so DMA addresses are pointer values.
//! Unmapped entries keep a marker in the software bits so that a crash
//! report can say what an address was.

use crate::memmap::Range;
use x86_64::instructions::tlb;
use x86_64::VirtAddr;

const P: u64 = 1;
const RW: u64 = 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const PS: u64 = 1 << 7;
/// Software bit: a non-present guard page of a stack.
const MARK_GUARD: u64 = 1 << 9;
/// Software bit: the unmapped NULL page.
const MARK_NULL: u64 = 1 << 10;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const GIB: u64 = 1 << 30;
const MIB2: u64 = 2 << 20;

static LOCK: spin::Mutex<()> = spin::Mutex::new(());

fn table(phys: u64) -> *mut u64 {
    phys as *mut u64
}

fn read(t: *mut u64, i: usize) -> u64 {
    // SAFETY: `t` is a page table (identity mapped, 512 entries) reached
    // from CR3 through present entries; i < 512.
    unsafe { t.add(i).read_volatile() }
}

fn write(t: *mut u64, i: usize, v: u64) {
    // SAFETY: as in `read`; page tables are only written under `LOCK`
    // (or at boot before any thread exists).
    unsafe { t.add(i).write_volatile(v) }
}

fn pml4() -> *mut u64 {
    table(super::boot::pml4_addr())
}

fn new_table() -> u64 {
    match crate::heap::alloc_zeroed(4096, 4096) {
        Some(p) => p.as_ptr() as u64,
        None => crate::exit::fatal_fmt(format_args!(
            "{}: out of memory for page tables",
            crate::exit::who()
        )),
    }
}

/// The next-level table of entry `i` of `t`, created if absent.
fn next(t: *mut u64, i: usize) -> *mut u64 {
    let e = read(t, i);
    if e & P == 0 {
        let n = new_table();
        write(t, i, n | P | RW);
        table(n)
    } else {
        table(e & ADDR)
    }
}

/// Refines the boot map: uncached non-RAM, NULL page, RAM above 4 GiB.
/// Called once at boot with the heap already usable.
pub fn init(ram: &[Range]) {
    let _g = LOCK.lock();
    let pdpt = table(read(pml4(), 0) & ADDR);
    for gi in 0..4usize {
        let pd = table(read(pdpt, gi) & ADDR);
        for i in 0..512usize {
            let a = gi as u64 * GIB + i as u64 * MIB2;
            let page = Range {
                start: a,
                end: a + MIB2,
            };
            if !ram.iter().any(|r| r.overlaps(&page)) {
                write(pd, i, read(pd, i) | PCD | PWT);
            }
        }
    }
    // Unmap page 0.
    let pt = split(0);
    write(pt, 0, MARK_NULL);
    drop(_g);
    for r in ram {
        if r.end > 4 * GIB {
            map_identity(r.start.max(4 * GIB), r.end, false);
        }
    }
    tlb::flush_all();
}

/// Splits the 2 MiB page containing `addr` (below 512 GiB) into 4 KiB
/// pages if needed; returns its page table. Caller holds `LOCK`.
fn split(addr: u64) -> *mut u64 {
    let pdpt = next(pml4(), (addr >> 39) as usize & 511);
    let pd = next(pdpt, (addr >> 30) as usize & 511);
    let i = (addr >> 21) as usize & 511;
    let e = read(pd, i);
    if e & P != 0 && e & PS == 0 {
        return table(e & ADDR);
    }
    let pt = new_table();
    let base = addr & !(MIB2 - 1);
    let flags = if e & P != 0 { e & (RW | PWT | PCD) } else { RW };
    let present = if e & P != 0 { P } else { 0 };
    for k in 0..512u64 {
        write(table(pt), k as usize, (base + k * 4096) | flags | present);
    }
    write(pd, i, pt | P | RW);
    tlb::flush_all();
    table(pt)
}

/// Identity maps `[start, end)` (2 MiB granularity), uncached if asked.
/// Already-present pages are left as they are.
pub fn map_identity(start: u64, end: u64, uncached: bool) {
    let _g = LOCK.lock();
    let mut a = start & !(MIB2 - 1);
    while a < end {
        let pdpt = next(pml4(), (a >> 39) as usize & 511);
        let pd = next(pdpt, (a >> 30) as usize & 511);
        let i = (a >> 21) as usize & 511;
        if read(pd, i) & P == 0 {
            let cache = if uncached { PCD | PWT } else { 0 };
            write(pd, i, a | P | RW | PS | cache);
        }
        a += MIB2;
    }
    tlb::flush_all();
}

/// Makes the 4 KiB page at `addr` a guard page (unmapped) or maps it back.
pub fn set_guard(addr: u64, guard: bool) {
    let _g = LOCK.lock();
    let pt = split(addr);
    let i = (addr >> 12) as usize & 511;
    let page = addr & !0xfff;
    if guard {
        write(pt, i, page | MARK_GUARD);
    } else {
        write(pt, i, page | P | RW);
    }
    tlb::flush(VirtAddr::new(page));
}

/// The leaf entry mapping `addr` and its page size, if any level is present.
fn leaf(addr: u64) -> Option<(u64, u64)> {
    if addr >= 1 << 47 {
        return None;
    }
    let e4 = read(pml4(), (addr >> 39) as usize & 511);
    if e4 & P == 0 {
        return None;
    }
    let e3 = read(table(e4 & ADDR), (addr >> 30) as usize & 511);
    if e3 & P == 0 {
        return None;
    }
    if e3 & PS != 0 {
        return Some((e3, GIB));
    }
    let e2 = read(table(e3 & ADDR), (addr >> 21) as usize & 511);
    if e2 & P == 0 || e2 & PS != 0 {
        return Some((e2, MIB2));
    }
    Some((read(table(e2 & ADDR), (addr >> 12) as usize & 511), 4096))
}

/// Whether every byte of `[addr, addr + len)` is mapped.
pub fn is_mapped_range(addr: u64, len: u64) -> bool {
    let mut a = addr;
    let end = addr.saturating_add(len);
    while a < end {
        match leaf(a) {
            Some((e, size)) if e & P != 0 => a = (a & !(size - 1)) + size,
            _ => return false,
        }
    }
    true
}

/// What a faulting address is, for crash reports.
pub fn explain(addr: u64) -> &'static str {
    if addr < 4096 {
        return " (the unmapped NULL page: a NULL pointer dereference)";
    }
    match leaf(addr) {
        None => " (not mapped: a wild pointer)",
        Some((e, _)) if e & P == 0 && e & MARK_GUARD != 0 => {
            " (a stack guard page: the thread below overflowed its stack)"
        }
        Some((e, _)) if e & P == 0 => " (not mapped)",
        Some(_) => "",
    }
}

/// Maps the 4 KiB page at virtual `va` to physical `pa` (write-back),
/// for virtual windows outside the identity map (`crate::dma`). Both are
/// page aligned; `va` must not be inside the identity map.
pub fn map_page(va: u64, pa: u64) {
    let _g = LOCK.lock();
    let pt = split(va);
    write(pt, (va >> 12) as usize & 511, (pa & ADDR) | P | RW);
    tlb::flush(VirtAddr::new(va));
}

/// Removes a mapping made by [`map_page`].
pub fn unmap_page(va: u64) {
    let _g = LOCK.lock();
    let pt = split(va);
    write(pt, (va >> 12) as usize & 511, 0);
    tlb::flush(VirtAddr::new(va));
}

/// The physical address `va` is mapped to, if it is mapped.
pub fn translate(va: u64) -> Option<u64> {
    match leaf(va) {
        Some((e, size)) if e & P != 0 => Some((e & ADDR & !(size - 1)) | (va & (size - 1))),
        _ => None,
    }
}
