//! Randomness (rumpuser_random.c).
//!
//! * `RUMPUSER_RANDOM_HARD` (what the kernel's entropy feeder asks for, with
//!   `NOWAIT`, at boot): bytes straight from the kernel's `getrandom(2)`;
//!   `NOWAIT` maps to `GRND_NONBLOCK`, `EINTR` is retried.
//! * Everything else: a per-thread ChaCha20 generator (`rand_chacha`) keyed
//!   from `getrandom(2)` and rekeyed every 1 MiB of output and in a forked
//!   child, like `arc4random(3)` (which the reference itself uses on NetBSD).
//!   That makes ordinary requests a few tens of nanoseconds instead of a
//!   system call, with no 32-byte cap.
//!
//! A call never succeeds with zero bytes.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use rumpuser_core::types::RandomFlags;
use rumpuser_core::{Errno, HyperResult};
use rustix::rand::GetRandomFlags;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Output after which a thread's generator takes a fresh key.
const RESEED_BYTES: usize = 1 << 20;

/// Bumped in every forked child so generators inherited through `fork`
/// rekey instead of repeating the parent's stream.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

struct Stream {
    rng: ChaCha20Rng,
    generation: u64,
    left: usize,
}

std::thread_local! {
    static STREAM: RefCell<Option<Stream>> = const { RefCell::new(None) };
}

/// Checks at init that the host has the system call; the contract lets
/// init fail with the errno if the entropy source is unusable.
pub fn init() -> HyperResult<()> {
    ATFORK.call_once(|| {
        crate::sys::proc::after_fork_in_child(after_fork_in_child);
    });
    let mut b = [0u8; 1];
    kernel_bytes(&mut b, false).map(|_| ())
}

/// Fills a prefix of `buf` with random bytes.
pub fn fill(buf: &mut [u8], flags: RandomFlags) -> HyperResult<usize> {
    if flags.hard || buf.is_empty() {
        return kernel_bytes(buf, flags.nowait);
    }
    STREAM.with(|s| {
        let mut s = s.borrow_mut();
        let generation = FORK_GENERATION.load(Ordering::Relaxed);
        let stale = match &*s {
            Some(st) => st.generation != generation || st.left < buf.len(),
            None => true,
        };
        if stale {
            let mut key = [0u8; 32];
            let mut got = 0;
            while got < key.len() {
                got += kernel_bytes(&mut key[got..], flags.nowait)?;
            }
            *s = Some(Stream {
                rng: ChaCha20Rng::from_seed(key),
                generation,
                left: RESEED_BYTES,
            });
        }
        let st = s.as_mut().expect("stream was just set");
        st.rng.fill_bytes(buf);
        st.left = st.left.saturating_sub(buf.len());
        Ok(buf.len())
    })
}

/// Bytes from the kernel's `getrandom(2)`.
fn kernel_bytes(buf: &mut [u8], nowait: bool) -> HyperResult<usize> {
    let gflags = if nowait {
        GetRandomFlags::NONBLOCK
    } else {
        GetRandomFlags::empty()
    };
    match crate::sys::retry(|| rustix::rand::getrandom(&mut *buf, gflags))? {
        0 if !buf.is_empty() => Err(Errno::EAGAIN),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOFT: RandomFlags = RandomFlags {
        hard: false,
        nowait: false,
    };
    const HARD: RandomFlags = RandomFlags {
        hard: true,
        nowait: true,
    };

    #[test]
    fn both_paths_fill_whole_buffers_with_distinct_bytes() {
        init().unwrap();
        for flags in [SOFT, HARD] {
            let mut a = [0u8; 4096];
            let mut b = [0u8; 4096];
            let mut n = 0;
            while n < a.len() {
                n += fill(&mut a[n..], flags).unwrap();
            }
            let mut n = 0;
            while n < b.len() {
                n += fill(&mut b[n..], flags).unwrap();
            }
            assert_ne!(a, b);
            let ones: u32 = a.iter().map(|x| x.count_ones()).sum();
            assert!((15_000..17_800).contains(&ones), "{ones} one-bits");
        }
    }

    #[test]
    fn the_stream_rekeys_after_a_fork_generation_change() {
        init().unwrap();
        let mut a = [0u8; 32];
        fill(&mut a, SOFT).unwrap();
        let before = STREAM.with(|s| s.borrow().as_ref().map(|s| s.generation));
        after_fork_in_child();
        let mut b = [0u8; 32];
        fill(&mut b, SOFT).unwrap();
        let after = STREAM.with(|s| s.borrow().as_ref().map(|s| s.generation));
        assert_ne!(before, after, "no rekey after a fork");
        assert_ne!(a, b);
    }

    #[test]
    fn threads_get_independent_streams() {
        init().unwrap();
        let t = std::thread::spawn(|| {
            let mut x = [0u8; 64];
            fill(&mut x, SOFT).unwrap();
            x
        });
        let mut y = [0u8; 64];
        fill(&mut y, SOFT).unwrap();
        assert_ne!(t.join().unwrap(), y);
    }
}
