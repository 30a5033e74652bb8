//! Green-thread stacks for every PVH platform's
//! [`rumpuser_green::sched_core::Platform`]: heap memory with an unmapped
//! guard page below ([`crate::arch::paging::set_guard`]), so an overflow
//! faults (and is reported as a stack overflow) instead of overwriting
//! the block below.

use crate::arch::paging;
use rumpuser_green::sched_core::Stack;

const PAGE: usize = 4096;

/// A stack of at least `size` bytes (rounded up to pages) above a guard page.
pub fn alloc(size: usize) -> Option<Stack> {
    let size = size.next_multiple_of(PAGE);
    let total = size + PAGE;
    let p = crate::heap::alloc(total, PAGE)?;
    let guard = p.as_ptr() as u64;
    paging::set_guard(guard, true);
    Some(Stack {
        // SAFETY: `PAGE` < `total`: inside the block just allocated.
        base: unsafe { p.as_ptr().add(PAGE) },
        size,
        cookie: guard as usize,
    })
}

/// Frees a stack from [`alloc()`].
///
/// # Safety
/// `stack` came from [`alloc()`] and no thread runs on it any more (the
/// contract of `Platform::free_stack`).
pub unsafe fn free(stack: Stack) {
    paging::set_guard(stack.cookie as u64, false);
    if let Some(p) = core::ptr::NonNull::new(stack.cookie as *mut u8) {
        // SAFETY: the block `alloc` allocated (cookie = its start,
        // size + guard page), no longer in use (the caller's contract),
        // and its guard page is mapped again before the heap reuses it.
        unsafe { crate::heap::free(p, stack.size + PAGE) };
    }
}
