//! Memory (rumpuser_mem.c): aligned heap allocations from the C allocator
//! (single 4 KiB pages from [`crate::pages`]), anonymous mappings whose
//! alignment is honoured on every host (the reference only aligns where
//! `MAP_ALIGNED` exists), and the page pool's chunks.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use rumpuser_core::{Errno, HyperResult};

/// `len` bytes aligned to `align` (a power of two ≥ pointer size).
pub fn malloc(len: usize, align: usize) -> HyperResult<NonNull<u8>> {
    if len == crate::pages::PAGE && align <= crate::pages::PAGE && crate::pages::enabled() {
        return crate::pages::alloc().ok_or(Errno::ENOMEM);
    }
    // malloc(0) may return NULL; the kernel needs a unique pointer.
    let len = len.max(1);
    if align <= MALLOC_ALIGN {
        // The C allocator's own alignment covers it: skip posix_memalign's
        // extra bookkeeping on the kernel's hottest allocation path.
        // SAFETY: plain allocation; the result is checked.
        let p = unsafe { libc::malloc(len) };
        return NonNull::new(p.cast()).ok_or(Errno::ENOMEM);
    }
    let mut p: *mut c_void = ptr::null_mut();
    // SAFETY: valid out-pointer; `align` is a power of two multiple of
    // `sizeof(void *)` (validated by the core).
    let r = unsafe { libc::posix_memalign(&mut p, align, len) };
    if r != 0 {
        return Err(Errno::from_linux(r));
    }
    NonNull::new(p.cast()).ok_or(Errno::ENOMEM)
}

/// What `malloc(3)` guarantees on this host (glibc: `2 * sizeof(size_t)`).
const MALLOC_ALIGN: usize = 2 * core::mem::size_of::<usize>();

/// Frees a [`malloc`] result.
///
/// # Safety
/// `ptr` came from [`malloc`] with this `len` (as the contract promises)
/// and is not used again.
pub unsafe fn free(ptr: NonNull<u8>, len: usize) {
    // The length is the one asked for (contract 3.3): a page came from
    // the pool. (A 4 KiB block asked for with a larger alignment came from
    // the C allocator; it joins the pool here, which keeps it: held by one
    // owner at a time either way.)
    if len == crate::pages::PAGE && crate::pages::enabled() {
        // The caller's contract: a 4 KiB block of ours (from the pool, or
        // page-aligned by the C allocator), not used again.
        return crate::pages::free(ptr);
    }
    // SAFETY: caller's contract; malloc and posix_memalign memory is freed with free.
    unsafe { libc::free(ptr.as_ptr().cast()) };
}

fn page_size() -> usize {
    rustix::param::page_size()
}

/// Anonymous zero-filled mapping of `size` bytes aligned to `1 << alignbit`,
/// placed at `hint` if the host agrees (never `MAP_FIXED`).
pub fn anonmmap(
    hint: *mut c_void,
    size: usize,
    alignbit: u32,
    exec: bool,
) -> HyperResult<NonNull<u8>> {
    let prot = libc::PROT_READ | libc::PROT_WRITE | if exec { libc::PROT_EXEC } else { 0 };
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let align = 1usize
        .checked_shl(alignbit)
        .ok_or(Errno::EINVAL)?
        .max(page_size());
    let map = |addr: *mut c_void, len: usize| {
        // SAFETY: anonymous mapping without MAP_FIXED cannot clobber
        // existing mappings; the result is checked.
        let p = unsafe { libc::mmap(addr, len, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            Err(super::last_error())
        } else {
            Ok(p)
        }
    };
    let p = map(hint, size)?;
    if (p as usize).is_multiple_of(align) {
        return NonNull::new(p.cast()).ok_or(Errno::ENOMEM);
    }
    // Misaligned: map size + align and trim both ends.
    // SAFETY: unmapping the mapping just made.
    unsafe { libc::munmap(p, size) };
    let total = size.checked_add(align).ok_or(Errno::ENOMEM)?;
    let big = map(hint, total)?;
    let start = (big as usize + align - 1) & !(align - 1);
    let head = start - big as usize;
    let tail = total - head - size;
    // SAFETY: trimming unused, page-aligned parts of our own mapping.
    unsafe {
        if head > 0 {
            libc::munmap(big, head);
        }
        if tail > 0 {
            libc::munmap((start + size) as *mut c_void, tail);
        }
    }
    NonNull::new(start as *mut u8).ok_or(Errno::ENOMEM)
}

/// Unmaps a range (also ranges that component code mapped itself).
///
/// # Safety
/// The range is a mapping the caller owns and no longer uses.
pub unsafe fn unmap(addr: *mut c_void, len: usize) {
    // SAFETY: caller's contract.
    unsafe { libc::munmap(addr, len) };
}

/// A fresh private anonymous mapping of `len` bytes with its pages already
/// present and writable (`MAP_POPULATE`), for the page pool
/// ([`crate::pages`] says why); `None` when the host has no memory.
pub fn map_populated(len: usize) -> Option<NonNull<u8>> {
    // SAFETY: a fresh private anonymous mapping (no MAP_FIXED): it aliases
    // nothing; the result is checked.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}
