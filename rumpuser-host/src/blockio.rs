//! One block transfer on a host descriptor: `pread`/`pwrite` until done,
//! EOF or an error, then `fdatasync` for `BIO_SYNC` writes. Shared by the
//! posix worker pool and the green flavour's host workers.
//!
//! Also the fault injector used to test that every completion is delivered
//! exactly once whatever the host does: `RUMPUSER_BIO_FAULTS=<permille>[:<seed>]`
//! makes that share of transfers fail with `EIO`, fail writes with `ENOSPC`,
//! or come back short, chosen by a seeded PRNG. It is off unless set.

use rumpuser_core::bio::{BioDone, BioRequest};
use rumpuser_core::types::{BioOp, MonoNanos};
use rumpuser_core::Errno;
use rustix::io::{Errno as HostErrno, ReadWriteFlags};
use std::io::{IoSlice, IoSliceMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::sys::{retry, with_fd};

/// A parsed `RUMPUSER_BIO_FAULTS` setting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Faulty transfers per thousand.
    pub permille: u32,
    /// PRNG seed.
    pub seed: u64,
}

/// An injected outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this errno and no bytes.
    Error(Errno),
    /// Transfer only this many bytes (less than asked).
    Short(usize),
}

impl Faults {
    /// Parses `<permille>[:<seed>]`.
    pub fn parse(s: &str) -> Option<Faults> {
        let mut it = s.trim().splitn(2, ':');
        let permille: u32 = it.next()?.parse().ok()?;
        let seed = match it.next() {
            Some(x) => x.parse().ok()?,
            None => 1,
        };
        (permille <= 1000).then_some(Faults { permille, seed })
    }

    /// Decides the fate of transfer number `n` of `len` bytes.
    pub fn decide(&self, n: u64, op: BioOp, len: usize) -> Option<Fault> {
        // splitmix64 of (seed, n): independent of thread timing.
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if (z % 1000) as u32 >= self.permille {
            return None;
        }
        Some(match (z >> 20) % 3 {
            0 => Fault::Error(Errno::EIO),
            1 if matches!(op, BioOp::Write { .. }) => Fault::Error(Errno::ENOSPC),
            _ if len > 512 => Fault::Short(len / 2 / 512 * 512),
            _ => Fault::Error(Errno::EIO),
        })
    }
}

static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The injector configured by the environment, if any.
pub fn faults() -> Option<Faults> {
    *FAULTS.get_or_init(|| {
        std::env::var("RUMPUSER_BIO_FAULTS")
            .ok()
            .and_then(|v| Faults::parse(&v))
    })
}

/// The injected outcome for the next transfer, if the injector is on.
pub fn next_fault(op: BioOp, len: usize) -> Option<Fault> {
    let f = faults()?;
    f.decide(COUNTER.fetch_add(1, Ordering::Relaxed), op, len)
}

/// Cleared if the host has no `preadv2`/`pwritev2`.
static NOWAIT_ANY: AtomicBool = AtomicBool::new(true);
/// Cleared if the host refuses `RWF_NOWAIT` for buffered writes.
static NOWAIT_WRITES: AtomicBool = AtomicBool::new(true);

/// Tries a read, or a write without `BIO_SYNC`, of `buf` on the calling
/// thread with `preadv2`/`pwritev2(RWF_NOWAIT)`, which succeeds only when
/// the page cache can serve it without blocking. `Some(Ok(n))`: `n` bytes
/// done (possibly short), `Some(Err)`: a real error, `None`: would block.
pub fn try_nowait(fd: i32, op: BioOp, buf: &mut [u8], off: u64) -> Option<Result<usize, Errno>> {
    if !NOWAIT_ANY.load(Ordering::Relaxed) {
        return None;
    }
    let write = match op {
        BioOp::Read => false,
        BioOp::Write { sync: false } if NOWAIT_WRITES.load(Ordering::Relaxed) => true,
        BioOp::Write { .. } => return None,
    };
    let r = with_fd(fd, |fd| {
        if write {
            rustix::io::pwritev2(fd, &[IoSlice::new(buf)], off, ReadWriteFlags::NOWAIT)
        } else {
            rustix::io::preadv2(fd, &mut [IoSliceMut::new(buf)], off, ReadWriteFlags::NOWAIT)
        }
    });
    match r {
        Ok(n) => Some(Ok(n)),
        Err(HostErrno::AGAIN | HostErrno::INTR) => None,
        Err(HostErrno::OPNOTSUPP | HostErrno::INVAL) if write => {
            NOWAIT_WRITES.store(false, Ordering::Relaxed);
            None
        }
        Err(HostErrno::OPNOTSUPP | HostErrno::INVAL) => None,
        // No preadv2/pwritev2 at all (a kernel before 4.6, an emulator):
        // never try again; the asynchronous path does the transfer, and
        // buffered writes count as refused (glibc's pwritev2 says
        // EOPNOTSUPP there), so a one-CPU scheduler may write them inline.
        Err(HostErrno::NOSYS) => {
            NOWAIT_ANY.store(false, Ordering::Relaxed);
            NOWAIT_WRITES.store(false, Ordering::Relaxed);
            None
        }
        Err(e) => Some(Err(crate::sys::errno(e))),
    }
}

/// `Host::bio_try_now` for POSIX hosts: completes `req` on the
/// calling thread, which holds a virtual CPU, when the page cache serves
/// all of it without blocking (a read copied out of the descriptor's
/// mapping, [`crate::mapped`], else [`try_nowait`]), or when the host reports
/// an error at once; hands it back otherwise (would block, a partial
/// transfer: the asynchronous path redoes the whole request). With the
/// fault injector on, every request takes the asynchronous path, where the
/// faults are applied.
pub fn try_now(mut req: BioRequest) -> Result<(), BioRequest> {
    if faults().is_some() || req.len == 0 {
        return Err(req);
    }
    let (fd, op, off) = (req.fd, req.op, req.off);
    // A read first from the descriptor's mapping (no system call).
    if op == BioOp::Read && crate::mapped::try_read(fd, req.buffer(), off) {
        let len = req.len;
        req.done.complete_scheduled(Ok(len));
        return Ok(());
    }
    match try_nowait(fd, op, req.buffer(), off) {
        Some(Ok(n)) if n == req.len || n == 0 => {
            req.done.complete_scheduled(Ok(n));
            Ok(())
        }
        Some(Err(e)) => {
            req.done.complete_scheduled(Err(e));
            Ok(())
        }
        _ => Err(req),
    }
}

/// Inline writes that take longer than this, [`INLINE_WRITE_SLOW_RUN`] in a
/// row, close the inline path for [`INLINE_WRITE_BACKOFF`]: the host is
/// throttling writeback, and every thread sharing the caller's host thread
/// would wait with it.
pub const INLINE_WRITE_SLOW: MonoNanos = 2_000_000;
/// How many slow inline writes in a row close the path: one alone is as
/// likely the host descheduling the thread mid-write (on a shared machine)
/// as a slow disk, and closing for it sent a whole small-file workload to
/// the workers (four times its time).
pub const INLINE_WRITE_SLOW_RUN: u32 = 2;
/// How long the inline path stays closed after slow writes.
pub const INLINE_WRITE_BACKOFF: MonoNanos = 1_000_000_000;
/// Opens and closes the inline write path by how long inline writes take.
#[derive(Debug, Default)]
pub struct InlineWriteGate {
    /// Monotonic time before which inline writes are not tried (0: open).
    closed_until: AtomicU64,
    /// Slow inline writes since the last fast one.
    slow_run: AtomicU32,
}

impl InlineWriteGate {
    /// A gate that is open.
    pub const fn new() -> Self {
        Self {
            closed_until: AtomicU64::new(0),
            slow_run: AtomicU32::new(0),
        }
    }

    /// Whether an inline write may start at `now`.
    pub fn is_open(&self, now: MonoNanos) -> bool {
        now >= self.closed_until.load(Ordering::Relaxed)
    }

    /// Records an inline write from `start` to `end`: the
    /// [`INLINE_WRITE_SLOW_RUN`]th slow one in a row closes the gate for
    /// [`INLINE_WRITE_BACKOFF`] from `end`; a fast one ends the run.
    pub fn note(&self, start: MonoNanos, end: MonoNanos) {
        if end.saturating_sub(start) > INLINE_WRITE_SLOW {
            if self.slow_run.fetch_add(1, Ordering::Relaxed) + 1 >= INLINE_WRITE_SLOW_RUN {
                self.slow_run.store(0, Ordering::Relaxed);
                self.closed_until
                    .fetch_max(end + INLINE_WRITE_BACKOFF, Ordering::Relaxed);
            }
        } else if self.slow_run.load(Ordering::Relaxed) != 0 {
            self.slow_run.store(0, Ordering::Relaxed);
        }
    }
}

static INLINE_WRITES: InlineWriteGate = InlineWriteGate::new();

/// For a single-host-thread scheduler (green threads): completes a write
/// on the calling thread, which holds a virtual CPU, as rumpfiber does for
/// every request, instead of two host thread hand-offs around it:
///
/// * a write without `BIO_SYNC` on a host that refuses `RWF_NOWAIT` for
///   buffered writes (ext4; elsewhere [`try_now`] decides): a plain
///   `pwrite`, usually a copy into the host's page cache;
/// * a `BIO_SYNC` write (`pwritev2(RWF_DSYNC)`, see
///   [`transfer_sync_write`]) only when the caller's
///   scheduler is `idle`, nothing else ready to run: it would idle through
///   the flush anyway, and only what becomes ready meanwhile (a timer, a
///   host event) waits for it.
///
/// A write that blocks stops every green thread, so
/// [`INLINE_WRITE_SLOW_RUN`] in a row that take longer than
/// [`INLINE_WRITE_SLOW`] send the following writes to the workers for
/// [`INLINE_WRITE_BACKOFF`]. Hands back reads, writes not allowed above,
/// empty requests, and everything while the path is closed or the fault
/// injector is on.
pub fn try_write_inline(mut req: BioRequest, idle: bool) -> Result<(), BioRequest> {
    let allowed = match req.op {
        BioOp::Write { sync: false } => !NOWAIT_WRITES.load(Ordering::Relaxed),
        BioOp::Write { sync: true } => idle,
        BioOp::Read => false,
    };
    if !allowed || faults().is_some() || req.len == 0 {
        return Err(req);
    }
    let start = crate::clock::monotonic();
    if !INLINE_WRITES.is_open(start) {
        return Err(req);
    }
    let (fd, op, off) = (req.fd, req.op, req.off);
    let r = match op {
        BioOp::Write { sync: true } => transfer_sync_write(fd, req.buffer(), off),
        op => transfer(fd, op, req.buffer(), off),
    };
    INLINE_WRITES.note(start, crate::clock::monotonic());
    req.done.complete_scheduled(r);
    Ok(())
}

/// Performs a whole request on the calling thread and hands back its
/// completion with the result, for the caller to deliver where it may.
pub fn perform(mut req: BioRequest) -> (BioDone, Result<usize, Errno>) {
    let (fd, op, off) = (req.fd, req.op, req.off);
    let r = match op {
        BioOp::Write { sync: true } => transfer_sync_write(fd, req.buffer(), off),
        op => transfer(fd, op, req.buffer(), off),
    };
    (req.done, r)
}

/// Performs one transfer of `buf` (read into it, or written from it)
/// synchronously on the calling thread.
pub fn transfer(fd: i32, op: BioOp, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    let len = match next_fault(op, buf.len()) {
        Some(Fault::Error(e)) => return Err(e),
        Some(Fault::Short(n)) => n,
        None => buf.len(),
    };
    let mut done = 0usize;
    while done < len {
        let o = off + done as u64;
        let part = &mut buf[done..len];
        let n = match op {
            BioOp::Read => retry(|| with_fd(fd, |fd| rustix::io::pread(fd, &mut *part, o))),
            BioOp::Write { .. } => retry(|| with_fd(fd, |fd| rustix::io::pwrite(fd, part, o))),
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    if let BioOp::Write { sync: true } = op {
        retry(|| with_fd(fd, |fd| rustix::fs::fdatasync(fd)))?;
    }
    Ok(done)
}

/// Whether `pwritev2(RWF_DSYNC)` was refused once (then sync writes use
/// `pwrite` + `fdatasync`).
static NO_RWF_DSYNC: AtomicBool = AtomicBool::new(false);

/// A `BIO_SYNC` write of `buf` on the calling thread in one system call
/// where the host allows: `pwritev2` with `RWF_DSYNC` makes just this range
/// durable (what `BIO_SYNC` asks) before it returns, instead of a `pwrite`
/// followed by an `fdatasync` of the whole file. Falls back to
/// [`transfer`] where the flag is refused, and with faults injected.
pub fn transfer_sync_write(fd: i32, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
    let op = BioOp::Write { sync: true };
    if faults().is_some() || NO_RWF_DSYNC.load(Ordering::Relaxed) {
        return transfer(fd, op, buf, off);
    }
    let len = buf.len();
    let mut done = 0usize;
    while done < len {
        let part = &buf[done..];
        let o = off + done as u64;
        let r = retry(|| {
            with_fd(fd, |fd| {
                rustix::io::pwritev2(fd, &[IoSlice::new(part)], o, ReadWriteFlags::DSYNC)
            })
        });
        match r {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e)
                if done == 0
                    && (e == Errno::EOPNOTSUPP || e == Errno::EINVAL || e == Errno::ENOSYS) =>
            {
                NO_RWF_DSYNC.store(true, Ordering::Relaxed);
                return transfer(fd, op, buf, off);
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_inline_writes_in_a_row_close_the_gate_for_the_backoff() {
        assert_eq!(INLINE_WRITE_SLOW_RUN, 2, "the cases below are for two");
        let g = InlineWriteGate::new();
        let t0 = 5_000_000_000;
        assert!(g.is_open(t0));
        // Fast writes, one exactly at the limit: still open.
        g.note(t0, t0 + 100_000);
        g.note(t0, t0 + INLINE_WRITE_SLOW);
        assert!(g.is_open(t0 + INLINE_WRITE_SLOW));
        // One slow write, then a fast one ends the run; one slow again:
        // still open (a thread descheduled mid-write now and then).
        let slow = INLINE_WRITE_SLOW + 1;
        g.note(t0, t0 + slow);
        assert!(g.is_open(t0 + slow));
        g.note(t0 + slow, t0 + slow + 100_000);
        g.note(t0 + 2 * slow, t0 + 3 * slow);
        assert!(g.is_open(t0 + 3 * slow));
        // A second slow one in a row: closed from its end for the
        // back-off, open after.
        let end = t0 + 5 * slow;
        g.note(end - slow, end);
        assert!(!g.is_open(end));
        assert!(!g.is_open(end + INLINE_WRITE_BACKOFF - 1));
        assert!(g.is_open(end + INLINE_WRITE_BACKOFF));
        // Slow writes recorded out of order (two host threads) keep the
        // later closing time.
        let end2 = end + 3 * INLINE_WRITE_SLOW;
        g.note(end2 - 2 * INLINE_WRITE_SLOW, end2);
        g.note(end2 - 2 * INLINE_WRITE_SLOW, end2);
        g.note(end - 2 * INLINE_WRITE_SLOW, end);
        g.note(end - 2 * INLINE_WRITE_SLOW, end);
        assert!(!g.is_open(end2 + INLINE_WRITE_BACKOFF - 1));
        assert!(g.is_open(end2 + INLINE_WRITE_BACKOFF));
    }

    #[test]
    fn fault_settings_parse_and_decide_reproducibly() {
        assert_eq!(
            Faults::parse("100:7"),
            Some(Faults {
                permille: 100,
                seed: 7
            })
        );
        assert_eq!(
            Faults::parse("5"),
            Some(Faults {
                permille: 5,
                seed: 1
            })
        );
        assert_eq!(Faults::parse("1001"), None);
        assert_eq!(Faults::parse("x"), None);
        let f = Faults {
            permille: 300,
            seed: 9,
        };
        let w = BioOp::Write { sync: false };
        let a: Vec<_> = (0..1000).map(|n| f.decide(n, w, 4096)).collect();
        let b: Vec<_> = (0..1000).map(|n| f.decide(n, w, 4096)).collect();
        assert_eq!(a, b);
        let hits = a.iter().filter(|x| x.is_some()).count();
        assert!((200..400).contains(&hits), "{hits} faults of 1000 at 30%");
        assert!(a.contains(&Some(Fault::Error(Errno::ENOSPC))));
        assert!(a.contains(&Some(Fault::Short(2048))));
        assert!(a.contains(&Some(Fault::Error(Errno::EIO))));
        let none = Faults {
            permille: 0,
            seed: 9,
        };
        assert!((0..1000).all(|n| none.decide(n, BioOp::Read, 4096).is_none()));
    }
}
