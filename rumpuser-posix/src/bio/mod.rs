//! Block I/O (rumpuser_bio.c), asynchronous and parallel, with two
//! back ends chosen at the first request:
//!
//! * [`uring`] (default where the host allows it): requests go straight to
//!   an io_uring from the calling thread; one completion thread owns a
//!   kernel lwp and delivers `biodone`. No copy, no thread hop on submit,
//!   and the host kernel runs the transfers in parallel.
//! * [`pool`]: a crossbeam channel feeding worker threads that `pread`/
//!   `pwrite` (the fallback, or forced with `RUMPUSER_BIO=threads`).
//!
//! Both retry short transfers until EOF or an error, make `BIO_SYNC` writes
//! durable before completion, and deliver every completion exactly once
//! with a virtual CPU held. With `RUMP_THREADS=0` I/O is synchronous, as in
//! the reference (which has one worker and a 128-slot ring).

pub mod pool;
#[allow(unsafe_code)]
pub mod uring;

use rumpuser_core::bio::BioRequest;
use rumpuser_core::types::BioOp;
use std::sync::OnceLock;

/// The back end in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// io_uring with a completion thread.
    Uring,
    /// Worker threads.
    Threads,
    /// In the calling thread (`RUMP_THREADS=0`).
    Synchronous,
}

static BACKEND: OnceLock<Backend> = OnceLock::new();

/// Which back end serves requests (decided once).
pub fn backend() -> Backend {
    *BACKEND.get_or_init(|| {
        if rumpuser_host::param::switched_off("RUMP_THREADS") {
            return Backend::Synchronous;
        }
        match std::env::var("RUMPUSER_BIO").as_deref() {
            Ok("threads") => Backend::Threads,
            _ if uring::available() => Backend::Uring,
            _ => Backend::Threads,
        }
    })
}

/// Whether `BIO_SYNC` writes are made on the calling thread (default;
/// `RUMPUSER_BIO_SYNC_INLINE=0` sends them to the back end like the rest).
fn sync_inline() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !rumpuser_host::param::switched_off("RUMPUSER_BIO_SYNC_INLINE"))
}

/// Starts a request; called with the virtual CPU released.
///
/// A `BIO_SYNC` write is one the kernel waits for right away (rumpblk
/// marks the writes of a `bwrite`, not those of a `bawrite`), so it is
/// made here, on the waiting thread, in one `pwritev2(RWF_DSYNC)`: the
/// thread would block anyway, and this saves the two hand-offs to a
/// worker and back (on a tmpfs image, the small-file workload's create
/// phase is dominated by them).
pub fn submit(req: BioRequest) {
    if let BioOp::Write { sync: true } = req.op {
        if sync_inline() {
            let mut req = req;
            let (fd, off) = (req.fd, req.off);
            let r = rumpuser_host::blockio::transfer_sync_write(fd, req.buffer(), off);
            req.done.complete(r);
            return;
        }
    }
    match backend() {
        Backend::Uring => uring::submit(req),
        Backend::Threads => pool::submit(req),
        Backend::Synchronous => {
            let (done, r) = rumpuser_host::blockio::perform(req);
            done.complete(r);
        }
    }
}
