//! Green worker threads for system calls and execs: created on demand up
//! to `max_workers`, parked while idle (at most `idle_workers` of them;
//! a worker finding nothing to do beyond that exits). At most `max_queue`
//! items wait; beyond that a syscall is refused with `ERROR(TRYAGAIN)`.

use super::{lock, wake_raw, GreenThreads};
use crate::hyp::stack_size;
use crate::sched_core;
use rumpuser_host::sp::{run_work, Work};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

struct PoolState {
    queue: VecDeque<Work<GreenThreads>>,
    workers: usize,
    /// Parked idle workers.
    idle: Vec<u64>,
    /// The server stopped: idle workers exit.
    closed: bool,
}

pub(crate) struct Pool {
    st: Mutex<PoolState>,
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
                idle: Vec::new(),
                closed: false,
            }),
            max_workers: max_workers.max(1),
            idle_workers,
            max_queue: max_queue.max(1),
        }
    }

    /// Queues `w` and wakes or starts a worker. `force` ignores the queue
    /// limit. Gives the item back if it cannot be queued.
    pub fn submit(
        self: &Arc<Self>,
        w: Work<GreenThreads>,
        force: bool,
    ) -> Result<(), Work<GreenThreads>> {
        let mut st = lock(&self.st);
        if !force && st.queue.len() >= self.max_queue {
            return Err(w);
        }
        st.queue.push_back(w);
        if let Some(t) = st.idle.pop() {
            wake_raw(t);
        } else if st.workers < self.max_workers {
            st.workers += 1;
            let me = Arc::clone(self);
            let spawned = sched_core::spawn_closure(
                move || me.worker(),
                "rumpsp-worker",
                stack_size(),
                false,
            );
            if spawned.is_err() {
                st.workers -= 1;
                if st.workers == 0 {
                    return Err(st.queue.pop_back().expect("just pushed"));
                }
            }
        }
        Ok(())
    }

    /// Lets idle workers exit once the queue is empty (server stopped).
    pub fn close(&self) {
        let idle = {
            let mut st = lock(&self.st);
            st.closed = true;
            std::mem::take(&mut st.idle)
        };
        for t in idle {
            wake_raw(t);
        }
    }

    fn worker(self: Arc<Self>) {
        let me = sched_core::current().as_raw();
        loop {
            let w = {
                let mut st = lock(&self.st);
                loop {
                    if let Some(w) = st.queue.pop_front() {
                        break w;
                    }
                    if st.closed || st.idle.len() >= self.idle_workers {
                        st.workers -= 1;
                        return;
                    }
                    st.idle.push(me);
                    drop(st);
                    sched_core::park(None);
                    st = lock(&self.st);
                    st.idle.retain(|&t| t != me);
                }
            };
            run_work(w);
        }
    }
}
