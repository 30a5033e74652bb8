//! Block reads served from a shared read-only mapping of the descriptor.
//!
//! A page-cache hit costs one `preadv2` otherwise, and on these hosts the
//! system call itself is most of it (a 4 KiB `pread` from the page cache
//! ~600 ns, a `mincore` of one page ~400 ns, a `memcpy` of the same bytes
//! out of a mapping ~200 ns). So a descriptor opened with
//! `RUMPUSER_OPEN_BIO` on a regular file or block device is mapped
//! `MAP_SHARED`/`PROT_READ` once, at [`adopt`], and [`try_read`] copies a
//! read out of the mapping on the calling thread, which holds a virtual CPU.
//! Linux has one page cache, so the mapping sees every write made through
//! the descriptor at once.
//!
//! What a copy can do that a `preadv2(RWF_NOWAIT)` cannot, and the answers:
//!
//! * **Block on the disk** (a page not in the page cache: a major fault).
//!   A copy that takes longer than [`SLOW_COPY`] asks the host whether the
//!   thread took a major fault; if it did, the mapping rests and reads go
//!   the non-blocking way meanwhile ([`rest`]: 1 ms at first, doubling to
//!   ~1 s while copies keep waiting, as in a cold-cache workload; the
//!   first touch of a never-read block of a fresh image is such a fault
//!   too). So about one read per second may wait for the disk with the CPU
//!   held (as every rumpfiber read does); the others stay asynchronous.
//! * **Fault with `SIGBUS`** (the file was truncated by someone else, or
//!   the disk failed the page in): the `guard` module catches exactly
//!   that, puts a zero page where the fault was so the copy can finish,
//!   and the read falls back to the system call, which reports what
//!   really happened. The mapping is not used again.
//! * **Be unmapped under the copy**: [`release`] (from `rumpuser_close`)
//!   takes the mapping out of use and waits for copies in progress before
//!   `munmap`.
//!
//! `RUMPUSER_BIO_MMAP=0` turns the mapping off. Descriptors at or above
//! [`MAX_FD`], files larger than the address space allows, and descriptors
//! the host refuses to map (write-only, special files) keep the system-call
//! path. Pages copied from are mapped into the process: they are the
//! host's page cache, but count in its RSS (as file pages, which the OOM
//! killer's score includes) and cost page tables (1/512 of them). The
//! mapping lives from `rumpuser_open` to `rumpuser_close`, so a descriptor
//! given to `rumpuser_bio` must be closed with `rumpuser_close` (the
//! kernel's are): one closed behind the library's back keeps its mapping
//! until its number is opened again through `rumpuser_open`, and a read of
//! that number meanwhile would come from the old file.

mod guard;
pub mod lease;
mod os;
pub mod rest;

use lease::Lease;
use rest::Rest;

use core::ffi::c_int;
use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;

use rumpuser_core::types::MonoNanos;

/// Descriptors below this can be mapped (a fixed table: no allocation or
/// lock on the read path).
pub const MAX_FD: usize = 4096;
/// A copy slower than this may have waited for the disk; the host is asked.
pub const SLOW_COPY: MonoNanos = 10_000;

/// One descriptor's mapping. Slots are never freed, so a reader may touch
/// a slot whatever its state; the [`Lease`] keeps the mapping in place
/// while a copy uses it.
struct Slot {
    lease: Lease,
    base: AtomicPtr<u8>,
    len: AtomicUsize,
    /// After a copy waited for the disk, the mapping is not used for a
    /// while.
    rest: Rest,
    /// Reads served since [`adopt`].
    served: AtomicU64,
}

impl Slot {
    const fn new() -> Self {
        Self {
            lease: Lease::new(),
            base: AtomicPtr::new(core::ptr::null_mut()),
            len: AtomicUsize::new(0),
            rest: Rest::new(),
            served: AtomicU64::new(0),
        }
    }
}

static SLOTS: [Slot; MAX_FD] = [const { Slot::new() }; MAX_FD];

fn slot(fd: c_int) -> Option<&'static Slot> {
    SLOTS.get(usize::try_from(fd).ok()?)
}

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !crate::param::switched_off("RUMPUSER_BIO_MMAP"))
}

/// Maps `fd` (just opened with `RUMPUSER_OPEN_BIO`) for [`try_read`], if it
/// is a regular file or block device the host lets us map. Failing to map
/// is not an error: reads then take the system-call path.
pub fn adopt(fd: c_int) {
    let Some(s) = slot(fd) else { return };
    // A stale mapping: the number was closed without `rumpuser_close`.
    release(fd);
    if !enabled() {
        return;
    }
    let Some(len) = os::mappable_size(fd) else {
        return;
    };
    let Some(base) = os::map_shared_readonly(fd, len) else {
        return;
    };
    if !guard::install() {
        os::unmap(base, len);
        return;
    }
    s.base.store(base, Ordering::Relaxed);
    s.len.store(len, Ordering::Relaxed);
    s.rest.reset();
    s.served.store(0, Ordering::Relaxed);
    s.lease.open();
}

/// Takes `fd`'s mapping out of use, waits for copies in progress and
/// unmaps it; called before the descriptor is closed. Cheap when `fd` has
/// no mapping (components close sockets through the same call).
pub fn release(fd: c_int) {
    let Some(s) = slot(fd) else { return };
    if s.lease.is_empty() || !s.lease.close() {
        return;
    }
    os::unmap(
        s.base.swap(core::ptr::null_mut(), Ordering::Relaxed),
        s.len.swap(0, Ordering::Relaxed),
    );
    s.lease.finish();
}

/// Whether `fd` has a mapping in use (for tests and diagnostics).
pub fn is_mapped(fd: c_int) -> bool {
    slot(fd).is_some_and(|s| s.lease.is_open())
}

/// Rests `fd`'s mapping has taken since [`adopt`] (copies that waited for
/// the disk).
pub fn rests(fd: c_int) -> u64 {
    slot(fd).map_or(0, |s| s.rest.count())
}

/// Reads `fd` has had served from its mapping since [`adopt`].
pub fn served(fd: c_int) -> u64 {
    slot(fd).map_or(0, |s| s.served.load(Ordering::Relaxed))
}

/// Copies `data.len()` bytes at `off` of `fd` into `data` out of the
/// mapping, on the calling thread. `true`: all of them were copied.
/// `false`: nothing is known (no mapping, resting, beyond the mapped size,
/// or the copy faulted): the caller reads with a system call, whose result
/// stands (`data` may have been partly written).
pub fn try_read(fd: c_int, data: &mut [u8], off: u64) -> bool {
    let len = data.len();
    let Some(s) = slot(fd) else { return false };
    if !s.lease.looks_open() {
        return false;
    }
    let Some(_hold) = s.lease.enter() else {
        return false;
    };
    let size = s.len.load(Ordering::Relaxed);
    let Some(end) = usize::try_from(off).ok().and_then(|o| o.checked_add(len)) else {
        return false;
    };
    if end > size {
        return false;
    }
    if MAJOR_FAULTS.get() == u64::MAX {
        MAJOR_FAULTS.set(os::thread_major_faults());
    }
    let start = crate::clock::monotonic();
    if s.rest.resting(start) {
        return false;
    }
    let base = s.base.load(Ordering::Relaxed);
    // SAFETY: `[off, off + len)` lies inside the mapping `base..+size`,
    // which `_hold` keeps mapped; `data` is a slice of ours, so it is not
    // in the read-only mapping; a `SIGBUS` inside the mapping is absorbed
    // by the guard, which is told its range.
    let clean = unsafe { guard::copy(data.as_mut_ptr(), base.add(off as usize), len, base, size) };
    if !clean {
        s.lease.break_off();
        return false;
    }
    let end_time = crate::clock::monotonic();
    if end_time.saturating_sub(start) > SLOW_COPY && took_major_fault() {
        s.rest.waited(end_time);
    }
    s.served.fetch_add(1, Ordering::Relaxed);
    true
}

thread_local! {
    /// This thread's major-fault count when last asked (`u64::MAX`: not yet).
    static MAJOR_FAULTS: Cell<u64> = const { Cell::new(u64::MAX) };
}

/// Whether this thread took a major fault (waited for a disk read) since
/// it last asked (its count is taken before its first copy).
fn took_major_fault() -> bool {
    let now = os::thread_major_faults();
    now > MAJOR_FAULTS.replace(now)
}
