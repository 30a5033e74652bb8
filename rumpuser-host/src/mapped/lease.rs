//! The hand-shake between copies out of a mapping and the `rumpuser_close`
//! that unmaps it: a state word and a reader count. A reader raises the
//! count, then reads the state; the closer sets the state, then waits for
//! the count to drop to zero. Each side writes its own variable, then a
//! `SeqCst` fence, then reads the other's (Dekker's pattern), so either the
//! closer waits for the reader or the reader sees the mapping closing and
//! backs off. (Fences rather than `SeqCst` accesses: loom models those as
//! acquire/release only, and the checked program should be the real one.) Model-checked with loom (`cargo test -p rumpuser-host --lib loom`
//! under `--cfg loom`).

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU8, AtomicUsize, Ordering};

const EMPTY: u8 = 0;
const OPEN: u8 = 1;
/// A copy faulted: kept mapped (until closed) but not used.
const BROKEN: u8 = 2;
const CLOSING: u8 = 3;

/// One mapping's lifetime: empty, open, broken, closing, empty again.
#[derive(Debug)]
pub struct Lease {
    state: AtomicU8,
    readers: AtomicUsize,
}

/// A reader's hold on an open mapping; the mapping stays mapped while it
/// lives.
#[derive(Debug)]
pub struct Hold<'a>(&'a Lease);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::Release);
    }
}

impl Default for Lease {
    fn default() -> Self {
        Self::new()
    }
}

impl Lease {
    /// An empty lease (nothing mapped).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            readers: AtomicUsize::new(0),
        }
    }

    /// An empty lease (nothing mapped).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            readers: AtomicUsize::new(0),
        }
    }

    /// Opens the lease once the mapping it guards is published (stores
    /// before this are seen by every reader that gets a [`Hold`]).
    pub fn open(&self) {
        self.state.store(OPEN, Ordering::Release);
    }

    /// A cheap first look: whether a mapping might be usable.
    pub fn looks_open(&self) -> bool {
        self.state.load(Ordering::Relaxed) == OPEN
    }

    /// Whether anything is mapped (open or broken), closing included.
    pub fn is_empty(&self) -> bool {
        self.state.load(Ordering::Relaxed) == EMPTY
    }

    /// Whether the mapping is open for copies.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// Holds the mapping for a copy, if it is open.
    pub fn enter(&self) -> Option<Hold<'_>> {
        self.readers.fetch_add(1, Ordering::Relaxed);
        let hold = Hold(self);
        fence(Ordering::SeqCst);
        (self.state.load(Ordering::Acquire) == OPEN).then_some(hold)
    }

    /// Marks an open mapping as not to be used again (it stays mapped).
    pub fn break_off(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, BROKEN, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// Starts closing: `true` if this call took an open or broken mapping
    /// out of use and every reader has left it, so the caller unmaps it and
    /// calls [`Lease::finish`]; `false` if there was nothing to close or
    /// another call is closing it.
    pub fn close(&self) -> bool {
        loop {
            let was = self.state.load(Ordering::Acquire);
            if was != OPEN && was != BROKEN {
                return false;
            }
            if self
                .state
                .compare_exchange(was, CLOSING, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                break;
            }
        }
        fence(Ordering::SeqCst);
        while self.readers.load(Ordering::Acquire) != 0 {
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            std::thread::yield_now();
        }
        true
    }

    /// Ends a [`Lease::close`] that returned `true`, after the unmap.
    pub fn finish(&self) {
        self.state.store(EMPTY, Ordering::Release);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::Lease;
    use loom::sync::atomic::{AtomicBool, Ordering};
    use loom::sync::Arc;
    use loom::thread;

    /// Stands for the mapping: a copy holding the lease must find it mapped.
    struct Mapped {
        lease: Lease,
        mapped: AtomicBool,
    }

    fn fresh() -> Arc<Mapped> {
        let m = Arc::new(Mapped {
            lease: Lease::new(),
            mapped: AtomicBool::new(true),
        });
        m.lease.open();
        m
    }

    fn copy(m: &Mapped) -> bool {
        match m.lease.enter() {
            Some(_hold) => {
                assert!(
                    m.mapped.load(Ordering::Relaxed),
                    "copy from an unmapped range"
                );
                true
            }
            None => false,
        }
    }

    fn close(m: &Mapped) -> bool {
        if m.lease.close() {
            m.mapped.store(false, Ordering::Relaxed);
            m.lease.finish();
            true
        } else {
            false
        }
    }

    #[test]
    fn loom_lease_a_copy_never_sees_the_mapping_gone() {
        loom::model(|| {
            let m = fresh();
            let r = {
                let m = m.clone();
                thread::spawn(move || copy(&m))
            };
            assert!(close(&m));
            r.join().unwrap();
            // After the close nobody gets in.
            assert!(!copy(&m));
        });
    }

    #[test]
    fn loom_lease_two_closers_unmap_once_and_a_broken_mapping_still_closes() {
        loom::model(|| {
            let m = fresh();
            let (r, c) = {
                let (m1, m2) = (m.clone(), m.clone());
                (
                    thread::spawn(move || {
                        if !copy(&m1) {
                            return;
                        }
                        m1.lease.break_off();
                        assert!(!copy(&m1), "a broken mapping was used again");
                    }),
                    thread::spawn(move || close(&m2)),
                )
            };
            let mine = close(&m);
            r.join().unwrap();
            let theirs = c.join().unwrap();
            assert!(mine ^ theirs, "closed {} times", mine as u8 + theirs as u8);
            assert!(m.lease.is_empty());
        });
    }
}
