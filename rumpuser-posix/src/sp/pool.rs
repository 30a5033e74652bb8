//! The bounded worker pool that executes system calls and finishes execs
//! (`serv_workbouncer` of rumpuser_sp.c). The poll loop never runs a
//! system call itself: a syscall may issue copyin requests whose responses
//! only the loop can read.
//!
//! Workers are host threads created on demand up to `max_workers`; a
//! worker that finds nothing to do while `idle_workers` others are already
//! idle exits. At most `max_queue` items wait for a worker; beyond that a
//! syscall is refused with `ERROR(TRYAGAIN)` (librumpclient resends it).

use super::Threads;
use rumpuser_host::sp::{run_work, Work};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

struct PoolState {
    queue: VecDeque<Work<Threads>>,
    workers: usize,
    idle: usize,
    /// The server stopped: idle workers exit.
    closed: bool,
}

pub(crate) struct Pool {
    st: Mutex<PoolState>,
    cv: Condvar,
    max_workers: usize,
    idle_workers: usize,
    max_queue: usize,
}

impl Pool {
    pub fn new(max_workers: usize, idle_workers: usize, max_queue: usize) -> Pool {
        Pool {
            st: Mutex::new(PoolState {
                queue: VecDeque::new(),
                workers: 0,
                idle: 0,
                closed: false,
            }),
            cv: Condvar::new(),
            max_workers: max_workers.max(1),
            idle_workers,
            max_queue: max_queue.max(1),
        }
    }

    /// Queues `w`. `force` ignores the queue limit (exec must not be
    /// refused). Gives the item back if it cannot be queued.
    pub fn submit(self: &Arc<Self>, w: Work<Threads>, force: bool) -> Result<(), Work<Threads>> {
        let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
        if !force && st.queue.len() >= self.max_queue {
            return Err(w);
        }
        st.queue.push_back(w);
        if st.queue.len() > st.idle && st.workers < self.max_workers {
            st.workers += 1;
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("rumpsp-worker".into())
                .spawn(move || me.worker());
            if spawned.is_err() {
                st.workers -= 1;
                if st.workers == 0 {
                    return Err(st.queue.pop_back().expect("just pushed"));
                }
            }
        }
        // Idle workers count themselves under this lock before waiting.
        if st.idle > 0 {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// Lets idle workers exit once the queue is empty (server stopped).
    pub fn close(&self) {
        self.st.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.cv.notify_all();
    }

    fn worker(self: Arc<Self>) {
        loop {
            let w = {
                let mut st = self.st.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(w) = st.queue.pop_front() {
                        break w;
                    }
                    if st.closed || st.idle >= self.idle_workers {
                        st.workers -= 1;
                        return;
                    }
                    st.idle += 1;
                    st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                    st.idle -= 1;
                }
            };
            run_work(w);
        }
    }
}
