//! Grant tables (version 1): letting a back end map pages of ours.
//!
//! The table's frames are mapped over pages of our `.bss` with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` ([`FRAMES`] frames of
//! 512 `grant_entry_v1` each). Entries 0–7 are reserved; the rest are
//! handed out from a free list. Granting writes `frame` and `domid`, then
//! (after a write barrier) `flags = GTF_permit_access [| GTF_readonly]`;
//! ending a grant clears `flags` with a compare-exchange that fails while
//! the back end still has the page mapped (`GTF_reading`/`GTF_writing`),
//! in which case the caller retries later.

use crate::{abi, hypercall};
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicBool, AtomicU16, AtomicU32, Ordering};

/// Grant-table frames mapped (2048 entries).
pub const FRAMES: usize = 4;
const ENTRIES_PER_FRAME: usize = 4096 / 8;
const RESERVED: u32 = 8;

/// `GTF_permit_access`.
const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`.
const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading | GTF_writing`: the back end has the page mapped.
const GTF_IN_USE: u16 = (1 << 3) | (1 << 4);

/// `GNTTABOP_query_size`.
const GNTTABOP_QUERY_SIZE: usize = 6;

#[repr(C)]
struct QuerySize {
    dom: u16,
    _pad: u16,
    nr_frames: u32,
    max_nr_frames: u32,
    status: i16,
    _pad2: u16,
}

/// `grant_entry_v1`.
#[repr(C)]
struct Entry {
    flags: AtomicU16,
    domid: AtomicU16,
    frame: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<Entry>() == 8);
const _: () = assert!(core::mem::size_of::<QuerySize>() == 16);

#[repr(C, align(4096))]
struct Frames(UnsafeCell<[u8; 4096 * FRAMES]>);
// SAFETY: after `init` the pages are Xen's grant table, accessed only
// through the atomics of `Entry`.
unsafe impl Sync for Frames {}

static TABLE: Frames = Frames(UnsafeCell::new([0; 4096 * FRAMES]));
static READY: AtomicBool = AtomicBool::new(false);
static FREE: spin::Mutex<Vec<u32>> = spin::Mutex::new(Vec::new());

/// Maps the grant table. Returns `(frames Xen had, max frames)`.
pub fn init() -> Result<(u32, u32), i64> {
    let mut q = QuerySize {
        dom: abi::DOMID_SELF,
        _pad: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        _pad2: 0,
    };
    // SAFETY: a valid gnttab_query_size, count 1.
    let rc = unsafe {
        hypercall::call3(
            abi::HYPERVISOR_GRANT_TABLE_OP,
            GNTTABOP_QUERY_SIZE,
            &mut q as *mut _ as usize,
            1,
        )
    };
    if rc != 0 || q.status != 0 {
        return Err(if rc != 0 { rc } else { q.status as i64 });
    }
    let frames = FRAMES.min(q.max_nr_frames as usize);
    for i in 0..frames {
        let mut a = abi::AddToPhysmap {
            domid: abi::DOMID_SELF,
            size: 0,
            space: abi::XENMAPSPACE_GRANT_TABLE,
            idx: i as u64,
            gpfn: (TABLE.0.get() as u64 >> 12) + i as u64,
        };
        // SAFETY: a valid xen_add_to_physmap over our own page.
        let rc = unsafe { hypercall::memory_op(abi::XENMEM_ADD_TO_PHYSMAP, &mut a) };
        if rc != 0 {
            return Err(rc);
        }
    }
    let mut free = FREE.lock();
    free.extend((RESERVED..(frames * ENTRIES_PER_FRAME) as u32).rev());
    READY.store(true, Ordering::Release);
    Ok((q.nr_frames, q.max_nr_frames))
}

fn entry(r: u32) -> &'static Entry {
    debug_assert!((r as usize) < FRAMES * ENTRIES_PER_FRAME);
    // SAFETY: `r` indexes the mapped table (checked by callers through
    // the free list, which holds only valid references).
    unsafe { &*(TABLE.0.get() as *const Entry).add(r as usize) }
}

/// Grants domain `domid` access to the page at physical address `pa`.
/// `None` when the table is full (or not mapped).
pub fn grant(domid: u16, pa: u64, readonly: bool) -> Option<u32> {
    if !READY.load(Ordering::Acquire) {
        return None;
    }
    let r = FREE.lock().pop()?;
    let e = entry(r);
    e.frame.store((pa >> 12) as u32, Ordering::Relaxed);
    e.domid.store(domid, Ordering::Relaxed);
    fence(Ordering::Release);
    let ro = if readonly { GTF_READONLY } else { 0 };
    e.flags.store(GTF_PERMIT_ACCESS | ro, Ordering::Release);
    Some(r)
}

/// Ends grant `r`; `false` (and the grant stays) while the back end
/// still has the page mapped.
pub fn end(r: u32) -> bool {
    let e = entry(r);
    let mut f = e.flags.load(Ordering::Acquire);
    loop {
        if f & GTF_IN_USE != 0 {
            return false;
        }
        match e
            .flags
            .compare_exchange(f, 0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break,
            Err(now) => f = now,
        }
    }
    FREE.lock().push(r);
    true
}

/// Free entries left.
pub fn free_entries() -> usize {
    FREE.lock().len()
}
