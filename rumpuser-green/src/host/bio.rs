//! Asynchronous block I/O for green threads.
//!
//! `rumpuser_bio` hands the request to a pool of host worker threads and
//! returns at once, so other green threads run while the disk works. A
//! worker performs the transfer with the POSIX flavour's code (pread/pwrite,
//! `fdatasync` for `BIO_SYNC`), queues the completion and posts the token of
//! the `biodone` green thread, which the idle loop wakes. That green thread
//! owns a kernel lwp and calls the kernel's `biodone` holding a virtual CPU,
//! as contract 3.5 asks. Host threads never touch the scheduler or the
//! kernel. Transfers the page cache can serve without blocking
//! (`RWF_NOWAIT`) complete inline on the calling green thread, before its
//! CPU is released (`bio_try_now`); so do buffered writes on hosts that
//! refuse `RWF_NOWAIT` writes (ext4), with a plain `pwrite`, and `BIO_SYNC`
//! writes when no other green thread is ready to run (`pwrite` +
//! `fdatasync`: the scheduler would only idle through the flush), unless
//! one was slow lately (`rumpuser_host::blockio::try_write_inline`). In
//! deterministic mode transfers are synchronous, so a run depends only on
//! its seed.

use crate::host::HOST;
use crate::sched_core;
use crossbeam_channel::{unbounded, Sender};
use rumpuser_core::bio::{BioDone, BioRequest};
use rumpuser_core::Errno;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

type Completion = (BioDone, Result<usize, Errno>);

static COMPLETIONS: Mutex<Vec<Completion>> = Mutex::new(Vec::new());
static WORKERS: OnceLock<Sender<BioRequest>> = OnceLock::new();
/// Raw id of the green thread that delivers completions (0 = not started).
static BIODONE_THREAD: AtomicU64 = AtomicU64::new(0);

/// Host worker threads (`RUMPUSER_BIO_WORKERS`, default 8).
fn workers() -> &'static Sender<BioRequest> {
    WORKERS.get_or_init(|| {
        let n = std::env::var("RUMPUSER_BIO_WORKERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| (1..=256).contains(&n))
            .unwrap_or(8);
        let (tx, rx) = unbounded::<BioRequest>();
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("greenbio{i}"))
                .spawn(move || {
                    for req in rx {
                        let completion = rumpuser_host::blockio::perform(req);
                        COMPLETIONS
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(completion);
                        HOST.post(BIODONE_THREAD.load(Ordering::Acquire));
                    }
                })
                .expect("cannot start a bio worker thread");
        }
        tx
    })
}

/// The green thread that delivers completions.
fn biodone_thread() {
    let e = rumpuser_core::sched::adopt_helper_thread();
    if e != 0 {
        rumpuser_core::diag::report(format_args!("green biodone thread: newlwp failed: {e}"));
    }
    loop {
        let batch = std::mem::take(&mut *COMPLETIONS.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            sched_core::park(None);
            continue;
        }
        for (done, r) in batch {
            done.complete(r);
        }
    }
}

fn ensure_biodone_thread() {
    if BIODONE_THREAD.load(Ordering::Acquire) != 0 {
        return;
    }
    match sched_core::spawn_closure(biodone_thread, "biodone", 0, false) {
        Ok(t) => BIODONE_THREAD.store(t.as_raw(), Ordering::Release),
        Err(e) => {
            rumpuser_core::diag::fatal(format_args!("cannot start the biodone thread: {e:?}"))
        }
    }
}

/// Whether buffered writes the host cannot take with `RWF_NOWAIT` may be
/// written inline (`rumpuser_host::blockio::try_write_inline`); on unless
/// `RUMPUSER_GREEN_INLINE_WRITES=0`.
pub fn inline_writes() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !rumpuser_host::param::switched_off("RUMPUSER_GREEN_INLINE_WRITES"))
}

/// Starts a request (called on a green thread with its virtual CPU
/// released, after `bio_try_now` found it would block).
pub fn submit(req: BioRequest) {
    if HOST.is_virtual() {
        let (done, r) = rumpuser_host::blockio::perform(req);
        done.complete(r);
        return;
    }
    ensure_biodone_thread();
    if let Err(e) = workers().send(req) {
        e.into_inner().done.complete(Err(Errno::EIO));
    }
}
