//! Memory: every usable RAM region of the PVH memory map becomes one
//! `linked_list_allocator` heap; together they are the global allocator
//! and the back end of `rumpuser_malloc`, `rumpuser_anonmmap`, green
//! stacks, page tables and virtio DMA buffers.
//!
//! Alignment is honoured by the allocator itself (it splits off the
//! padding as a free hole), so `rumpuser_malloc(len, 64 KiB)` costs no
//! more than the padding. `rumpuser_free` gets the length back from the
//! kernel; the allocator only needs the size to free (its alignment
//! argument is not used when freeing), so the two agree without a header.
//!
//! Interrupt handlers never allocate, so a spin lock with interrupts
//! masked (they always are outside idle) is enough.

use crate::memmap::Range;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;

/// At most this many separate RAM regions are used.
pub const MAX_REGIONS: usize = 8;

/// Minimum alignment of every block (a green stack, SSE data).
const MIN_ALIGN: usize = 16;

struct Heaps {
    heaps: [Heap; MAX_REGIONS],
    n: usize,
}

/// All regions behind one lock.
struct MultiHeap(spin::Mutex<Heaps>);

static HEAP: MultiHeap = MultiHeap(spin::Mutex::new(Heaps {
    heaps: [const { Heap::empty() }; MAX_REGIONS],
    n: 0,
}));

/// Adds `[start, end)` (identity mapped, unused RAM) to the heap.
///
/// # Safety
/// The range is RAM that nothing else uses, now or later.
pub unsafe fn add_region(r: Range) -> bool {
    let mut h = HEAP.0.lock();
    if h.n == MAX_REGIONS || r.len() < 64 * 1024 {
        return false;
    }
    let i = h.n;
    // SAFETY: the caller hands over the range for exclusive use.
    unsafe { h.heaps[i].init(r.start as *mut u8, r.len() as usize) };
    h.n += 1;
    true
}

fn layout(size: usize, align: usize) -> Option<Layout> {
    Layout::from_size_align(size.max(1), align.max(MIN_ALIGN)).ok()
}

impl Heaps {
    fn alloc(&mut self, l: Layout) -> Option<NonNull<u8>> {
        let n = self.n;
        self.heaps[..n]
            .iter_mut()
            .find_map(|h| h.allocate_first_fit(l).ok())
    }

    /// # Safety
    /// `p` came from `alloc` with a layout of the same size.
    unsafe fn free(&mut self, p: NonNull<u8>, l: Layout) {
        let a = p.as_ptr() as usize;
        let n = self.n;
        if let Some(h) = self.heaps[..n]
            .iter_mut()
            .find(|h| (h.bottom() as usize..h.top() as usize).contains(&a))
        {
            // SAFETY: forwarded contract; `h` is the heap that owns `p`.
            unsafe { h.deallocate(p, l) };
        }
    }
}

/// The global allocator over all regions. The platform crate linked into
/// the image declares it: `#[global_allocator] static A: Global = Global;`.
#[derive(Debug)]
pub struct Global;

// SAFETY: blocks come from disjoint RAM regions owned by one `Heap` each,
// handed out once until freed; the mutex serialises all access.
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        match layout(l.size(), l.align()) {
            Some(l) => HEAP
                .0
                .lock()
                .alloc(l)
                .map_or(core::ptr::null_mut(), |p| p.as_ptr()),
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if let (Some(p), Some(l)) = (NonNull::new(p), layout(l.size(), l.align())) {
            // SAFETY: `GlobalAlloc` contract: `p` was allocated with `l`.
            unsafe { HEAP.0.lock().free(p, l) }
        }
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two).
pub fn alloc(size: usize, align: usize) -> Option<NonNull<u8>> {
    HEAP.0.lock().alloc(layout(size, align)?)
}

/// Like [`alloc()`], zero-filled.
pub fn alloc_zeroed(size: usize, align: usize) -> Option<NonNull<u8>> {
    let p = alloc(size, align)?;
    // SAFETY: `size` bytes at `p` were just allocated for us.
    unsafe { p.as_ptr().write_bytes(0, size) };
    Some(p)
}

/// Frees a block from [`alloc()`]/[`alloc_zeroed`].
///
/// # Safety
/// `p` came from `alloc` with this `size` and is not used any more.
pub unsafe fn free(p: NonNull<u8>, size: usize) {
    if let Some(l) = layout(size, MIN_ALIGN) {
        // SAFETY: forwarded contract; freeing needs only the size.
        unsafe { HEAP.0.lock().free(p, l) }
    }
}

/// `(total, used)` bytes over all regions.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    h.heaps[..h.n]
        .iter()
        .fold((0, 0), |(t, u), x| (t + x.size(), u + x.used()))
}
