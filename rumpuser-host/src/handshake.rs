//! An asymmetric Dekker handshake between one *owner*, which marks itself
//! inside or outside a critical stretch with plain stores millions of
//! times a second, and rare *takers*, which want to know that the owner is
//! outside and will stay out of the stretch until it has checked with them.
//!
//! The owner writes its `seq` (odd while inside), then reads its `slow`
//! flag; a taker writes `slow`, then makes every thread of the process run
//! a full memory barrier ([`heavy_barrier`], `membarrier(2)`), then reads
//! `seq`. Either the taker sees the owner outside (and the owner sees
//! `slow` at its next entry, so it goes to the slow path instead of the
//! stretch), or the owner sees `slow` (at its entry or its exit) and goes
//! to the slow path itself. The owner pays two plain stores and two loads
//! per stretch; the taker a system call.
//!
//! `rumpuser-green`'s token (`host::token`) is built on it: the owner is
//! the host thread holding the token, the stretch a green hypercall.
//! Model-checked with loom (`cargo test -p rumpuser-host --lib loom` under
//! `--cfg loom`), where the owner's compiler fence becomes the full fence
//! `membarrier` puts on it.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU64, Ordering};

/// The owner's side of the asymmetric fence (see the module doc).
#[inline(always)]
fn owner_fence() {
    #[cfg(not(loom))]
    compiler_fence(Ordering::SeqCst);
    // Under loom, what membarrier does to the owner: a full fence.
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// How an owner's [`enter`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Inside already (a nested stretch): nothing was marked, nothing to
    /// undo.
    Nested,
    /// Marked inside; [`exit`] with this value ends the stretch. `slow`:
    /// a taker has been at work, the owner must check with it first.
    Marked {
        /// The even value `seq` had; `exit` stores the next even one.
        seq: u64,
        /// `slow` was set.
        slow: bool,
    },
}

/// Owner: begin a stretch.
#[inline(always)]
pub fn enter(seq: &AtomicU64, slow: &AtomicBool) -> Entry {
    let s = seq.load(Ordering::Relaxed);
    if s & 1 != 0 {
        return Entry::Nested;
    }
    seq.store(s | 1, Ordering::Relaxed);
    owner_fence();
    Entry::Marked {
        seq: s,
        slow: slow.load(Ordering::Relaxed),
    }
}

/// Owner: end the stretch begun with `Entry::Marked { seq: s, .. }`;
/// returns whether `slow` is set (someone waits for the owner).
#[inline(always)]
pub fn exit(seq: &AtomicU64, s: u64, slow: &AtomicBool) -> bool {
    seq.store(s.wrapping_add(2), Ordering::Release);
    owner_fence();
    slow.load(Ordering::Relaxed)
}

/// Taker: ask the owner to check with it, then look. Returns the owner's
/// `seq` as seen after the barrier: even means outside, and the owner will
/// not begin another stretch without taking its slow path. The caller
/// serialises takers (and the owner's slow path) with a lock.
pub fn look(seq: &AtomicU64, slow: &AtomicBool) -> u64 {
    slow.store(true, Ordering::Relaxed);
    heavy_barrier();
    seq.load(Ordering::Acquire)
}

/// Whether [`heavy_barrier`] works here; registers the process for it
/// (once, before any [`look`]). Linux 4.14 or later.
pub fn register() -> bool {
    #[cfg(loom)]
    {
        true
    }
    #[cfg(not(loom))]
    {
        use rustix::thread::{membarrier, membarrier_query, MembarrierCommand as Cmd};
        membarrier_query().contains_command(Cmd::PrivateExpedited)
            && membarrier(Cmd::RegisterPrivateExpedited).is_ok()
    }
}

/// A full memory barrier on every running thread of the process (after
/// [`register`]). Aborts if the system call fails: the owner's fast path
/// would be unsound without it.
pub fn heavy_barrier() {
    #[cfg(not(loom))]
    {
        let r = rustix::thread::membarrier(rustix::thread::MembarrierCommand::PrivateExpedited);
        if let Err(e) = r {
            rumpuser_core::diag::fatal(format_args!(
                "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration (errno {})",
                e.raw_os_error()
            ));
        }
    }
    fence(Ordering::SeqCst);
}

#[cfg(all(test, loom))]
#[allow(unsafe_code)]
mod loom_tests {
    //! The owner enters and leaves a stretch that touches unsynchronised
    //! state (loom reports any access concurrent with another), a taker
    //! looks and, if the owner is outside, takes over and touches the same
    //! state. The protocol around the handshake is `host::token`'s, in
    //! miniature: a lock serialises takers and slow paths, and an owner
    //! that finds `slow` set checks, under the lock, whether it still owns.

    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::{Arc, Mutex};

    const OWNER: usize = 0;
    const TAKER: usize = 1;

    struct World {
        seq: AtomicU64,
        slow: AtomicBool,
        /// Who holds the token (changed under `lock` only).
        holder: AtomicUsize,
        lock: Mutex<()>,
        /// What only the holder may touch.
        state: UnsafeCell<u32>,
    }

    impl World {
        fn new() -> Arc<World> {
            Arc::new(World {
                seq: AtomicU64::new(0),
                slow: AtomicBool::new(false),
                holder: AtomicUsize::new(OWNER),
                lock: Mutex::new(()),
                state: UnsafeCell::new(0),
            })
        }

        fn touch(&self) {
            self.state.with_mut(|p| {
                // SAFETY: loom checks that no other access is concurrent.
                unsafe { *p += 1 }
            });
        }

        /// One stretch of the owner; `false` if it found the token gone.
        fn owner_stretch(&self) -> bool {
            let Entry::Marked { seq: s, slow } = enter(&self.seq, &self.slow) else {
                unreachable!("the owner never nests here");
            };
            if slow {
                let _g = self.lock.lock().unwrap();
                if self.holder.load(Ordering::Relaxed) != OWNER {
                    // Taken while outside: do not touch the state.
                    self.seq.store(s.wrapping_add(2), Ordering::Release);
                    return false;
                }
                // Still ours: the taker backed off; go on.
            }
            self.touch();
            if exit(&self.seq, s, &self.slow) {
                // Someone waits: the token stays ours here (a real owner
                // would hand it over under the lock).
                let _g = self.lock.lock().unwrap();
            }
            true
        }

        /// The taker's attempt; `true` if it took the token.
        fn take(&self) -> bool {
            let _g = self.lock.lock().unwrap();
            let s = look(&self.seq, &self.slow);
            if s & 1 != 0 {
                return false;
            }
            self.holder.store(TAKER, Ordering::Relaxed);
            drop(_g);
            self.touch();
            true
        }
    }

    #[test]
    fn loom_handshake_never_lets_two_touch_at_once() {
        loom::model(|| {
            let w = World::new();
            let w2 = Arc::clone(&w);
            let owner = loom::thread::spawn(move || {
                let mut kept = 0;
                for _ in 0..2 {
                    if w2.owner_stretch() {
                        kept += 1;
                    } else {
                        break;
                    }
                }
                kept
            });
            let took = w.take();
            let kept = owner.join().unwrap();
            let total = w.state.with(|p| {
                // SAFETY: both threads are done.
                unsafe { *p }
            });
            assert_eq!(total, kept + u32::from(took));
        });
    }

    #[test]
    fn loom_a_nested_entry_marks_nothing() {
        loom::model(|| {
            let seq = AtomicU64::new(0);
            let slow = AtomicBool::new(false);
            let Entry::Marked { seq: s, .. } = enter(&seq, &slow) else {
                panic!("outermost entry not marked");
            };
            assert_eq!(enter(&seq, &slow), Entry::Nested);
            assert!(!exit(&seq, s, &slow));
            assert_eq!(seq.load(Ordering::Relaxed), 2);
        });
    }
}
