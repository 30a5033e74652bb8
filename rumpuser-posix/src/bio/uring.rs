//! The io_uring back end.
//!
//! Submission happens on the thread that called `rumpuser_bio` (its CPU is
//! already released): the request is boxed, its address becomes the SQE's
//! `user_data`, and the SQE is pushed and submitted under a mutex (the
//! submission ring is single-producer). Page-cached transfers usually
//! complete inside that `io_uring_enter`.
//!
//! One completion thread, which owns a kernel lwp, waits for CQEs with
//! `io_uring_enter(GETEVENTS)` (never touching the submission ring), turns
//! each back into its request, resubmits the rest of a short transfer, and
//! delivers `biodone` with a virtual CPU held. `BIO_SYNC` writes carry
//! `RWF_DSYNC`, so the data is durable when the CQE arrives.
//!
//! Fast path (before this module): `Host::bio_try_now` tries a read
//! (or a write without `BIO_SYNC`) on the calling thread, still holding its
//! virtual CPU, with `preadv2`/`pwritev2(RWF_NOWAIT)`, which succeeds only
//! when the page cache can satisfy it without blocking; then `biodone`
//! runs right there (the synchronous model of contract 3.5), with no CPU
//! release and no hop to the completion thread. Anything else, or a
//! partial transfer, comes here and goes to the ring.
//!
//! The fault injector of `rumpuser_host::blockio` applies here too, at
//! completion time, so tests can check exactly-once delivery under errors
//! and short transfers on this path as well.

use io_uring::{opcode, types, IoUring};
use rumpuser_core::bio::{BioDone, BioRequest};
use rumpuser_core::types::BioOp;
use rumpuser_core::{sched, Errno};
use rumpuser_host::blockio::{next_fault, Fault};
use std::sync::{Mutex, OnceLock};

/// `IORING_ENTER_GETEVENTS` from the kernel ABI (`linux/io_uring.h`).
const IORING_ENTER_GETEVENTS: u32 = 1;

/// Submission queue entries (completion queue is 4x, and the kernel keeps
/// overflowing completions with `IORING_FEAT_NODROP`).
const ENTRIES: u32 = 1024;

struct Ring {
    ring: IoUring,
    /// Serialises producers of the single-producer submission ring.
    sq: Mutex<()>,
}

// SAFETY: the submission side is only used under `sq`, the completion side
// only by the one completion thread, and `Submitter::enter` with
// `to_submit = 0` reads neither ring.
unsafe impl Sync for Ring {}
// SAFETY: as above.
unsafe impl Send for Ring {}

/// One request in flight; owned by the ring between submit and completion.
struct Op {
    fd: i32,
    op: BioOp,
    data: *mut u8,
    len: usize,
    off: u64,
    done_bytes: usize,
    /// An injected error to report at completion instead of the result.
    injected: Option<Errno>,
    done: BioDone,
}

static RING: OnceLock<Option<&'static Ring>> = OnceLock::new();

fn ring() -> Option<&'static Ring> {
    *RING.get_or_init(|| {
        let ring = IoUring::builder()
            .setup_cqsize(ENTRIES * 4)
            .build(ENTRIES)
            .ok()?;
        let r: &'static Ring = Box::leak(Box::new(Ring {
            ring,
            sq: Mutex::new(()),
        }));
        std::thread::Builder::new()
            .name("rumpbio-uring".into())
            .spawn(move || completions(r))
            .ok()?;
        Some(r)
    })
}

/// Whether an io_uring can be set up here (seccomp and sysctls may forbid it).
pub fn available() -> bool {
    ring().is_some()
}

fn entry(o: &Op) -> io_uring::squeue::Entry {
    let fd = types::Fd(o.fd);
    // SAFETY: `done_bytes <= len`; the pointer stays inside the request's buffer.
    let buf = unsafe { o.data.add(o.done_bytes) };
    let len = (o.len - o.done_bytes).min(u32::MAX as usize) as u32;
    let off = o.off + o.done_bytes as u64;
    match o.op {
        BioOp::Read => opcode::Read::new(fd, buf, len).offset(off).build(),
        BioOp::Write { sync } => opcode::Write::new(fd, buf, len)
            .offset(off)
            .rw_flags(if sync { libc::RWF_DSYNC } else { 0 })
            .build(),
    }
}

fn push(r: &Ring, o: Box<Op>) {
    let e = entry(&o).user_data(Box::into_raw(o) as u64);
    let _g = r.sq.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // SAFETY: the only submission queue handle alive: we hold `sq`.
        let pushed = unsafe { r.ring.submission_shared().push(&e) }.is_ok();
        if pushed {
            break;
        }
        // Full: hand what is queued to the kernel, then retry.
        flush(r);
    }
    flush(r);
}

fn flush(r: &Ring) {
    loop {
        match r.ring.submit() {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            // Completion queue backlog: give the completion thread a moment.
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    || e.raw_os_error() == Some(libc::EAGAIN) =>
            {
                std::thread::yield_now()
            }
            Err(e) => {
                rumpuser_core::diag::log(format_args!("io_uring submit: {e}"));
                std::thread::yield_now()
            }
        }
    }
}

/// Starts a request.
fn submit_request(r: &Ring, req: BioRequest) {
    let BioRequest {
        fd,
        op,
        data,
        len,
        off,
        done,
    } = req;
    let mut o = Box::new(Op {
        fd,
        op,
        data,
        len,
        off,
        done_bytes: 0,
        injected: None,
        done,
    });
    match next_fault(op, len) {
        Some(Fault::Error(e)) => o.injected = Some(e),
        Some(Fault::Short(n)) => o.len = n,
        None => {}
    }
    if o.len == 0 || o.injected.is_some() {
        let Op { done, injected, .. } = *o;
        return done.complete(injected.map_or(Ok(0), Err));
    }
    // (Page-cache hits never get here: `bio_try_now` completed them with
    // the CPU held.)
    push(r, o);
}

/// Starts a request on the ring (set up by [`available`]).
pub fn submit(req: BioRequest) {
    match ring() {
        Some(r) => submit_request(r, req),
        None => super::pool::submit(req),
    }
}

fn completions(r: &'static Ring) {
    let e = sched::adopt_helper_thread();
    if e != 0 {
        rumpuser_core::diag::report(format_args!(
            "io_uring completion thread: newlwp failed: {e}"
        ));
    }
    let mut batch: Vec<(u64, i32)> = Vec::with_capacity(256);
    loop {
        // SAFETY: waits for one completion; submits nothing, so it never
        // reads the submission ring that producers are filling.
        let w = unsafe {
            r.ring
                .submitter()
                .enter::<libc::sigset_t>(0, 1, IORING_ENTER_GETEVENTS, None)
        };
        if let Err(e) = w {
            if e.raw_os_error() != Some(libc::EINTR) {
                rumpuser_core::diag::log(format_args!("io_uring wait: {e}"));
            }
        }
        // SAFETY: this thread is the only user of the completion queue.
        for cqe in unsafe { r.ring.completion_shared() } {
            batch.push((cqe.user_data(), cqe.result()));
        }
        for (ud, res) in batch.drain(..) {
            // SAFETY: `ud` is the `Box<Op>` leaked by `push` for this CQE;
            // each CQE is seen exactly once.
            let mut o = unsafe { Box::from_raw(ud as *mut Op) };
            if res > 0 {
                o.done_bytes += res as usize;
                if o.done_bytes < o.len {
                    // Short transfer: ask for the rest.
                    push(r, o);
                    continue;
                }
            }
            let Op {
                done_bytes,
                injected,
                done,
                ..
            } = *o;
            let result = match (injected, res) {
                (Some(e), _) => Err(e),
                (None, r) if r < 0 && done_bytes == 0 => Err(Errno::from_linux(-r)),
                _ => Ok(done_bytes),
            };
            done.complete(result);
        }
    }
}
