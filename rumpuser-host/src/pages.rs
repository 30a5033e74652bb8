//! Page-sized allocations from a pool of 2 MiB host mappings.
//!
//! A rump kernel asks for one 4 KiB page at a time for every page of its
//! page cache and its pools (`rump_hypermalloc(PAGE_SIZE, PAGE_SIZE)`,
//! vm.c). glibc's `posix_memalign(4096, 4096)` takes 8 KiB of heap per
//! page (a chunk header has to sit in front of each aligned page: 20 000
//! pages made a 156 MiB arena for 78 MiB) and ~50 ns. Here a page costs
//! 4 KiB and, usually, a pop from the calling thread's own list, and it is
//! already present and writable (`map_chunk` says why).
//!
//! A page is recognised at `rumpuser_free` by its length, which the
//! contract guarantees is the length asked for (3.3: "`len` is always
//! exactly the length requested from the matching malloc"; rumprun relies
//! on it too). Freed pages stay in the pool for the kernel to reuse, as
//! the C heap keeps its memory; the kernel bounds its own total
//! (`RUMP_MEMLIMIT`). `RUMPUSER_PAGE_POOL=0` sends pages to the C
//! allocator instead.

use core::ptr::NonNull;
use std::cell::RefCell;
use std::sync::{Mutex, OnceLock};

/// The allocation size the pool serves (any alignment up to it).
pub const PAGE: usize = 4096;
/// Host mapping the pool carves pages from.
const CHUNK: usize = 2 << 20;
/// Pages a thread keeps for itself before handing a batch back: small,
/// because a posix kernel has a host thread per lwp and free pages on one
/// thread's list are lost to the others (128 KiB per thread at most).
const LOCAL_MAX: usize = 32;
/// Pages moved between a thread's list and the shared one at a time.
const BATCH: usize = 16;

/// Pages no thread holds, and the rest of the chunk being carved.
struct Shared {
    free: Vec<usize>,
    next: usize,
    end: usize,
}

static SHARED: Mutex<Shared> = Mutex::new(Shared {
    free: Vec::new(),
    next: 0,
    end: 0,
});

/// A thread's own pages; given back to the shared list when it exits.
struct Local(Vec<usize>);

impl Drop for Local {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            shared().free.append(&mut self.0);
        }
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const { RefCell::new(Local(Vec::new())) };
}

fn shared() -> std::sync::MutexGuard<'static, Shared> {
    // A panic cannot leave the lists half-updated (pushes and pops only).
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether page-sized allocations come from the pool (decided once, so
/// that `free` agrees with `malloc` for the whole process).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !crate::param::switched_off("RUMPUSER_PAGE_POOL"))
}

/// Moves up to `n` pages from the shared list (carving a new chunk when it
/// runs dry) into `into`.
fn take(into: &mut Vec<usize>, n: usize) {
    let mut s = shared();
    let from_list = n.min(s.free.len());
    let at = s.free.len() - from_list;
    into.extend(s.free.drain(at..));
    for _ in from_list..n {
        if s.next == s.end {
            let Some(base) = map_chunk() else { return };
            s.next = base;
            s.end = base + CHUNK;
        }
        into.push(s.next);
        s.next += PAGE;
    }
}

/// Maps a chunk with its pages already present and writable
/// (`MAP_POPULATE`). Left to fault in on use, a page the kernel reads
/// before it writes is first mapped to the shared zero page, and the write
/// then replaces it with a TLB shootdown to every CPU running the process:
/// with 64 writing lwps that was 10 % of the time, in IPIs.
fn map_chunk() -> Option<usize> {
    crate::sys::mem::map_populated(CHUNK).map(|p| p.as_ptr() as usize)
}

/// One 4 KiB page aligned to 4 KiB, or `None` when the host has no memory.
pub fn alloc() -> Option<NonNull<u8>> {
    let page = LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            if l.0.is_empty() {
                take(&mut l.0, BATCH);
            }
            l.0.pop()
        })
        .unwrap_or_else(|_| {
            // This thread's list is gone (a TLS destructor allocating).
            let mut one = Vec::with_capacity(1);
            take(&mut one, 1);
            one.pop()
        })?;
    NonNull::new(page as *mut u8)
}

/// Gives back a page from [`alloc`], which its caller owned and does not
/// use again: the pool hands it out as such. (The pool never touches a
/// page's memory, so a page given back twice or while in use breaks no
/// promise of the pool's own, only that of exclusive pages to the users of
/// the memory: `rumpuser_free`'s caller promises it, see `Host::free`.)
pub fn free(page: NonNull<u8>) {
    let page = page.as_ptr() as usize;
    let kept = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        l.0.push(page);
        if l.0.len() > LOCAL_MAX {
            let at = l.0.len() - BATCH;
            shared().free.extend(l.0.drain(at..));
        }
    });
    if kept.is_err() {
        shared().free.push(page);
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The shared list is process-wide: one test at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    #[test]
    fn pages_are_aligned_distinct_reused_and_survive_their_thread() {
        let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let pages: Vec<_> = (0..3 * BATCH + 7).map(|_| alloc().unwrap()).collect();
        let addrs: HashSet<usize> = pages.iter().map(|p| p.as_ptr() as usize).collect();
        assert_eq!(addrs.len(), pages.len(), "a page was handed out twice");
        for p in &pages {
            assert_eq!(p.as_ptr() as usize % PAGE, 0);
            // SAFETY: a whole page of ours.
            unsafe { p.as_ptr().write_bytes(0xa5, PAGE) };
        }
        for p in pages {
            free(p);
        }
        // Freed pages come back before new ones are carved.
        let again = alloc().unwrap();
        assert!(addrs.contains(&(again.as_ptr() as usize)));
        free(again);
        // Pages freed on a thread that then exits go to the shared list.
        let t: Vec<usize> = std::thread::spawn(|| {
            let v: Vec<_> = (0..LOCAL_MAX / 2).map(|_| alloc().unwrap()).collect();
            let a = v.iter().map(|p| p.as_ptr() as usize).collect();
            v.into_iter().for_each(free);
            a
        })
        .join()
        .unwrap();
        let s = shared();
        let back: HashSet<usize> = s.free.iter().copied().collect();
        assert!(
            t.iter().all(|a| back.contains(a)),
            "an exited thread kept its pages"
        );
    }

    #[test]
    fn threads_allocating_and_freeing_at_once_never_share_a_page() {
        let _s = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..20_000usize {
                        if i % 3 != 2 {
                            let p = alloc().unwrap();
                            // SAFETY: a whole page of ours.
                            unsafe { p.as_ptr().write_bytes(t as u8, PAGE) };
                            held.push(p);
                        } else if let Some(p) = held.pop() {
                            // SAFETY: reading our own page.
                            let b = unsafe { p.as_ptr().add(PAGE - 1).read() };
                            assert_eq!(b, t as u8, "another thread wrote into our page");
                            free(p);
                        }
                    }
                    for p in &held {
                        // SAFETY: reading our own pages.
                        assert_eq!(unsafe { p.as_ptr().read() }, t as u8);
                    }
                    held.into_iter().for_each(free);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
