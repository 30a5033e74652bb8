//! The Rust global allocator of the POSIX flavours: the C allocator, with
//! small cache-line-aligned blocks from a slab of their own.
//!
//! The lock objects behind `rumpuser_mutex_init`, `rw_init` and `cv_init`
//! (`rumpuser_core::objects`) are cache-line aligned, so that two locks
//! never share a line between CPUs. For an alignment above 16 the C
//! allocator has only `posix_memalign`, which in glibc costs about 650
//! instructions (a kernel creates and destroys such locks with every
//! vnode, about 27 000 of them for 1000 small files on ext2). Blocks of at
//! most [`SLOT_MAX`] bytes with an alignment of at most [`LINE`] come from
//! 64 KiB chunks carved into line-aligned slots instead, one free list per
//! size class under a spin lock: a few dozen instructions. Chunks are kept
//! (the free lists hold what was freed); everything else goes to the C
//! allocator as `std::alloc::System` would.

use core::ptr;
use std::alloc::{GlobalAlloc, Layout, System};

/// The cache line the slab aligns to.
pub const LINE: usize = 64;
/// Largest block the slab serves.
pub const SLOT_MAX: usize = 256;
/// Bytes carved at a time.
const CHUNK: usize = 64 * 1024;
/// Size classes: 64, 128, 192, 256.
const CLASSES: usize = SLOT_MAX / LINE;

/// One size class: a free list threaded through the free slots.
struct Class {
    free: *mut u8,
}

// SAFETY: the raw pointers are only used under the class's spin lock.
unsafe impl Send for Class {}

static SLAB: [spin::Mutex<Class>; CLASSES] = [const {
    spin::Mutex::new(Class {
        free: ptr::null_mut(),
    })
}; CLASSES];

/// The global allocator (see the module doc).
pub struct Allocator;

fn class_of(layout: Layout) -> Option<usize> {
    (layout.align() > 16 && layout.align() <= LINE && layout.size() <= SLOT_MAX)
        .then(|| layout.size().max(1).div_ceil(LINE) - 1)
}

impl Allocator {
    /// A slot of class `c` (`(c + 1) * LINE` bytes, line aligned), null if
    /// out of memory.
    fn slot(c: usize) -> *mut u8 {
        let mut class = SLAB[c].lock();
        if class.free.is_null() {
            // SAFETY: a valid layout; the chunk is ours from here on.
            let chunk = unsafe { System.alloc(Layout::from_size_align(CHUNK, LINE).unwrap()) };
            if chunk.is_null() {
                return ptr::null_mut();
            }
            let size = (c + 1) * LINE;
            let n = CHUNK / size;
            for i in (0..n).rev() {
                // SAFETY: slot `i` lies inside the chunk; its first word
                // (line aligned) holds the next free slot.
                unsafe {
                    let s = chunk.add(i * size);
                    s.cast::<*mut u8>().write(class.free);
                    class.free = s;
                }
            }
        }
        let s = class.free;
        // SAFETY: `s` is a free slot of this class; its first word is the
        // next one (written when it was freed or carved).
        class.free = unsafe { s.cast::<*mut u8>().read() };
        s
    }
}

// SAFETY: blocks of the slab are line aligned and at least as large as
// their class's layouts (a class holds sizes up to `(c + 1) * LINE`); a
// slot is handed out once until freed (free lists under a lock); all other
// requests are forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(c) => Self::slot(c),
            // SAFETY: forwarded contract.
            None => unsafe { System.alloc(layout) },
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match class_of(layout) {
            Some(c) => {
                let mut class = SLAB[c].lock();
                // SAFETY: `p` is a slot of this class (same layout as when
                // it was allocated), no longer used by its owner.
                unsafe { p.cast::<*mut u8>().write(class.free) };
                class.free = p;
            }
            // SAFETY: forwarded contract.
            None => unsafe { System.dealloc(p, layout) },
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match class_of(layout) {
            Some(c) => {
                let p = Self::slot(c);
                if !p.is_null() {
                    // SAFETY: the slot has at least `layout.size()` bytes.
                    unsafe { p.write_bytes(0, layout.size()) };
                }
                p
            }
            // SAFETY: forwarded contract.
            None => unsafe { System.alloc_zeroed(layout) },
        }
    }

    #[inline]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if class_of(layout).is_none() {
            if let Ok(new) = Layout::from_size_align(new_size, layout.align()) {
                if class_of(new).is_none() {
                    // SAFETY: forwarded contract.
                    return unsafe { System.realloc(p, layout, new_size) };
                }
            }
        }
        // SAFETY: the default's contract (allocate, copy the smaller size,
        // free), which is ours to uphold here.
        unsafe {
            let Ok(new) = Layout::from_size_align(new_size, layout.align()) else {
                return ptr::null_mut();
            };
            let q = self.alloc(new);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_aligned_blocks_come_from_distinct_slots() {
        let a = Allocator;
        let l = Layout::from_size_align(72, 64).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut ps = Vec::new();
        for _ in 0..5000 {
            // SAFETY: a valid layout; freed below with the same one.
            let p = unsafe { a.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 64, 0);
            assert!(seen.insert(p as usize), "a slot handed out twice");
            // SAFETY: the block has 72 bytes (class 128).
            unsafe { p.write_bytes(0xa5, 72) };
            ps.push(p);
        }
        for p in ps {
            // SAFETY: allocated above with `l`.
            unsafe { a.dealloc(p, l) };
        }
        // Reused after freeing.
        // SAFETY: as above.
        let p = unsafe { a.alloc(l) };
        assert!(seen.contains(&(p as usize)));
        // SAFETY: as above.
        unsafe { a.dealloc(p, l) };
    }

    #[test]
    fn other_layouts_go_to_the_c_allocator() {
        assert_eq!(class_of(Layout::from_size_align(64, 8).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(257, 64).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 128).unwrap()), None);
        assert_eq!(class_of(Layout::from_size_align(64, 64).unwrap()), Some(0));
        assert_eq!(class_of(Layout::from_size_align(65, 32).unwrap()), Some(1));
        assert_eq!(class_of(Layout::from_size_align(256, 64).unwrap()), Some(3));
    }

    #[test]
    fn realloc_moves_between_the_slab_and_the_c_allocator() {
        let a = Allocator;
        let l = Layout::from_size_align(100, 64).unwrap();
        // SAFETY: valid layouts throughout; each block freed once.
        unsafe {
            let p = a.alloc(l);
            p.write_bytes(7, 100);
            let q = a.realloc(p, l, 4000);
            assert_eq!(q as usize % 64, 0);
            assert!((0..100).all(|i| *q.add(i) == 7));
            let l2 = Layout::from_size_align(4000, 64).unwrap();
            let r = a.realloc(q, l2, 50);
            assert!((0..50).all(|i| *r.add(i) == 7));
            a.dealloc(r, Layout::from_size_align(50, 64).unwrap());
        }
    }
}
