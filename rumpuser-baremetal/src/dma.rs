//! DMA memory for NetBSD's drivers (`rumpcomp_pci_dmalloc`, `dmafree`,
//! `dmamem_map`, `virt_to_mach`; see [`crate::pcihyp`]).
//!
//! * **Allocation**: page-aligned, zeroed blocks from the heap, which is
//!   identity-mapped RAM; a block lies inside one RAM region, so it is
//!   physically contiguous and its physical address is its virtual one.
//!   Every live block is recorded, so that `dmafree` of something that is
//!   not a block (or with another size) is reported instead of corrupting
//!   the heap.
//! * **Mapping** a segment list: segments that follow each other
//!   physically are already contiguous in the identity map, and the map
//!   is the first segment's address. Otherwise the pages of every segment
//!   are mapped, in order, into a *window*: fresh virtual addresses above
//!   the identity map ([`WINDOW_BASE`]), so the driver sees one buffer.
//!   NetBSD's `bus_dmamem_unmap` makes no hypercall, so a window lives
//!   until the memory of one of its segments is freed.
//! * **`virt_to_mach`**: the identity outside the windows; inside one, the
//!   page table's translation.
//!
//! NetBSD's `bus_dmamap_load` (in `librumpdev_pci`) merges pages into
//! segments by *virtual* contiguity; a window over physically separate
//! segments, loaded that way, would therefore be described to the device
//! as one segment. Memory from `bus_dmamem_alloc` is one contiguous
//! segment here, so drivers only meet windows when they combine separate
//! allocations themselves.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;
use rumpuser_core::Errno;
use rumpuser_pvh::arch::paging;

const PAGE: u64 = 4096;
/// First virtual address of the window area (64 TiB, beyond any physical
/// address QEMU's CPU models have).
pub const WINDOW_BASE: u64 = 0x4000_0000_0000;
/// Size of the window area.
pub const WINDOW_SIZE: u64 = 1 << 40;

/// One segment handed to [`map`]: physical address, length, and the
/// virtual address [`alloc()`] gave for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    /// Physical address.
    pub pa: u64,
    /// Bytes.
    pub len: u64,
    /// Its address in the identity map (`_ds_vacookie`).
    pub va: u64,
}

struct Window {
    va: u64,
    pages: u64,
    /// Physical ranges mapped in it (for teardown when one is freed).
    segs: Vec<(u64, u64)>,
}

struct State {
    /// Live blocks: start → size.
    blocks: BTreeMap<u64, u64>,
    windows: Vec<Window>,
    window_bytes: u64,
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State {
    blocks: BTreeMap::new(),
    windows: Vec::new(),
    window_bytes: 0,
});

/// Counters for tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live blocks.
    pub blocks: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Live windows.
    pub windows: usize,
    /// Bytes of virtual address space the windows use.
    pub window_bytes: u64,
}

/// The current counters.
pub fn stats() -> Stats {
    let s = STATE.lock();
    Stats {
        blocks: s.blocks.len(),
        bytes: s.blocks.values().sum(),
        windows: s.windows.len(),
        window_bytes: s.window_bytes,
    }
}

/// A physically contiguous, zeroed block of `size` bytes (rounded up to
/// pages) aligned to `align` (at least a page); returns its address
/// (physical = virtual).
pub fn alloc(size: usize, align: usize) -> Result<u64, Errno> {
    if size == 0 || (align != 0 && !align.is_power_of_two()) {
        return Err(Errno::EINVAL);
    }
    let size = (size as u64)
        .checked_next_multiple_of(PAGE)
        .ok_or(Errno::ENOMEM)?;
    let align = align.max(PAGE as usize);
    let p = rumpuser_pvh::heap::alloc_zeroed(size as usize, align).ok_or(Errno::ENOMEM)?;
    let a = p.as_ptr() as u64;
    STATE.lock().blocks.insert(a, size);
    Ok(a)
}

/// Frees a block from [`alloc()`]; `size` is what was asked for (rounded
/// the same way). Windows over any part of it are unmapped first.
///
/// # Safety
/// Neither the device nor any code uses the block afterwards.
pub unsafe fn free(va: u64, size: usize) -> Result<(), Errno> {
    let size = (size as u64).next_multiple_of(PAGE);
    let mut s = STATE.lock();
    match s.blocks.get(&va) {
        Some(&have) if have == size => {}
        _ => return Err(Errno::EINVAL),
    }
    s.blocks.remove(&va);
    let end = va + size;
    let mut i = 0;
    while i < s.windows.len() {
        let hit = s.windows[i]
            .segs
            .iter()
            .any(|&(pa, len)| pa < end && va < pa + len);
        if hit {
            let w = s.windows.swap_remove(i);
            for k in 0..w.pages {
                paging::unmap_page(w.va + k * PAGE);
            }
            s.window_bytes -= w.pages * PAGE;
        } else {
            i += 1;
        }
    }
    drop(s);
    if let Some(p) = NonNull::new(va as *mut u8) {
        // SAFETY: a live block of `alloc` with this size (checked above),
        // no longer used (the caller's contract).
        unsafe { rumpuser_pvh::heap::free(p, size as usize) };
    }
    Ok(())
}

/// Whether `segs` follow each other physically (one contiguous range).
pub fn contiguous(segs: &[Seg]) -> bool {
    segs.windows(2)
        .all(|w| w[0].pa.checked_add(w[0].len) == Some(w[1].pa))
}

/// Maps `segs` as one virtually contiguous buffer of `total` bytes;
/// returns its address. `EINVAL` for an empty or inconsistent list, or
/// one that cannot be made contiguous (a segment other than the last
/// ending inside a page, one other than the first starting inside one);
/// `ENOMEM` when the window area is exhausted.
pub fn map(segs: &[Seg], total: u64) -> Result<u64, Errno> {
    let first = segs.first().ok_or(Errno::EINVAL)?;
    let mut sum = 0u64;
    for s in segs {
        if s.len == 0 || s.pa.checked_add(s.len).is_none() {
            return Err(Errno::EINVAL);
        }
        sum = sum.checked_add(s.len).ok_or(Errno::EINVAL)?;
    }
    if total == 0 || total > sum {
        return Err(Errno::EINVAL);
    }
    if contiguous(segs) {
        // The identity map already shows them as one range.
        return Ok(first.pa);
    }
    let last = segs.len() - 1;
    for (i, s) in segs.iter().enumerate() {
        if (i > 0 && s.pa % PAGE != 0) || (i < last && (s.pa + s.len) % PAGE != 0) {
            return Err(Errno::EINVAL);
        }
    }
    let offset = first.pa % PAGE;
    let pages: u64 = segs
        .iter()
        .map(|s| (s.pa % PAGE + s.len).div_ceil(PAGE))
        .sum();
    let mut st = STATE.lock();
    let va = find_window(&st.windows, pages).ok_or(Errno::ENOMEM)?;
    let mut k = 0;
    for s in segs {
        let start = s.pa & !(PAGE - 1);
        let n = (s.pa % PAGE + s.len).div_ceil(PAGE);
        for j in 0..n {
            paging::map_page(va + (k + j) * PAGE, start + j * PAGE);
        }
        k += n;
    }
    let w = Window {
        va,
        pages,
        segs: segs.iter().map(|s| (s.pa, s.len)).collect(),
    };
    let pos = st.windows.partition_point(|x| x.va < va);
    st.windows.insert(pos, w);
    st.window_bytes += pages * PAGE;
    Ok(va + offset)
}

/// First fit in the window area for `pages` pages (`windows` sorted by
/// address); a guard page stays unmapped after every window.
fn find_window(windows: &[Window], pages: u64) -> Option<u64> {
    let need = (pages + 1) * PAGE;
    let mut at = WINDOW_BASE;
    for w in windows {
        if w.va >= at + need {
            break;
        }
        at = at.max(w.va + (w.pages + 1) * PAGE);
    }
    (at + need <= WINDOW_BASE + WINDOW_SIZE).then_some(at)
}

/// The bus address of `va`: the identity, except inside a window.
pub fn virt_to_mach(va: u64) -> u64 {
    if (WINDOW_BASE..WINDOW_BASE + WINDOW_SIZE).contains(&va) {
        // An address in the area but in no window maps to nothing a
        // device may use: 0 (reported by the caller).
        return paging::translate(va).unwrap_or(0);
    }
    va
}
