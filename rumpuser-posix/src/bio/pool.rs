//! The thread-pool back end: requests go to worker threads over an
//! unbounded crossbeam channel, so `rumpuser_bio` never waits and nothing is
//! dropped however many requests are in flight. Each worker owns a kernel
//! lwp (adopted once) and completes requests with a virtual CPU held, as
//! contract 3.5 requires. The pool size is `RUMPUSER_BIO_WORKERS`
//! (default 16).

use crossbeam_channel::{unbounded, Receiver, Sender};
use rumpuser_core::bio::BioRequest;
use rumpuser_core::{sched, Errno};
use std::sync::OnceLock;

/// Default number of worker threads.
pub const DEFAULT_WORKERS: usize = 16;

struct Pool {
    tx: Sender<BioRequest>,
}

static POOL: OnceLock<Pool> = OnceLock::new();
fn workers() -> usize {
    std::env::var("RUMPUSER_BIO_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=1024).contains(&n))
        .unwrap_or(DEFAULT_WORKERS)
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| {
        let (tx, rx) = unbounded::<BioRequest>();
        for i in 0..workers() {
            let rx: Receiver<BioRequest> = rx.clone();
            std::thread::Builder::new()
                .name(format!("rumpbio{i}"))
                .spawn(move || worker(rx))
                .expect("cannot start a bio worker thread");
        }
        Pool { tx }
    })
}

fn worker(rx: Receiver<BioRequest>) {
    // A persistent lwp in proc0, as the reference's worker does.
    let e = sched::adopt_helper_thread();
    if e != 0 {
        rumpuser_core::diag::report(format_args!("bio worker: newlwp failed: {e}"));
    }
    for req in rx {
        let (done, r) = rumpuser_host::blockio::perform(req);
        done.complete(r);
    }
}

/// Queues a request for the workers.
pub fn submit(req: BioRequest) {
    if let Err(e) = pool().tx.send(req) {
        // Only possible if every worker died; complete it here rather than lose it.
        e.into_inner().done.complete(Err(Errno::EIO));
    }
}
