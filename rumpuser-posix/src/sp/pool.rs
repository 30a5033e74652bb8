//! The bounded worker pool that executes system calls and finishes execs
//! (`serv_workbouncer` of rumpuser_sp.c). The poll loop never runs a
//! system call itself: a syscall may issue copyin requests whose responses
//! only the loop can read.
//!
//! Workers are host threads created on demand up to `max_workers`; a
//! worker that finds nothing to do while `idle_workers` others are already
//! idle exits. At most `max_queue` items wait for a worker; beyond that a
//! syscall is refused with `ERROR(TRYAGAIN)` (librumpclient resends it).

use super::conn::Conn;
use super::kern;
use core::ffi::c_long;
use rumpuser_core::sp::conn::{kernel_sysnum, Comm, SyscallArgs};
use rumpuser_core::sp::wire::{put_handshake_resp, put_syscall_resp};
use rumpuser_core::Errno;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};

/// A unit of work for a client.
pub(crate) enum Work {
    Syscall {
        conn: Arc<Conn>,
        reqno: u64,
        sysnum: u32,
        args: SyscallArgs,
    },
    Exec {
        conn: Arc<Conn>,
        reqno: u64,
        comm: Comm,
    },
}

struct PoolState {
    queue: VecDeque<Work>,
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
    pub fn submit(self: &Arc<Self>, w: Work, force: bool) -> Result<(), Work> {
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
        self.cv.notify_one();
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
            match w {
                Work::Syscall {
                    conn,
                    reqno,
                    sysnum,
                    args,
                } => run_syscall(&conn, reqno, sysnum, args),
                Work::Exec { conn, reqno, comm } => run_exec(&conn, reqno, comm),
            }
        }
    }
}

/// `serv_handlesyscall`: a fresh lwp in the client's process, the
/// syscall, release, reply.
fn run_syscall(conn: &Arc<Conn>, reqno: u64, sysnum: u32, mut args: SyscallArgs) {
    let (pid, dying) = {
        let st = conn.state();
        (st.pid, st.phase == rumpuser_core::sp::conn::Phase::Dying)
    };
    if dying {
        conn.end_work();
        return;
    }
    let (err, rv): (i32, [c_long; 2]) = match kernel_sysnum(sysnum) {
        None => (Errno::ENOSYS.raw(), [0, 0]),
        Some(num) => {
            let e = kern::newlwp(pid);
            if e != 0 {
                (e, [-1, 0])
            } else {
                conn.state().inflight.push(reqno);
                let mut rv: [c_long; 2] = [0, 0];
                let err = kern::syscall(num, args.as_mut_ptr(), &mut rv);
                let answered = {
                    let mut st = conn.state();
                    match st.inflight.iter().position(|&r| r == reqno) {
                        Some(i) => {
                            st.inflight.swap_remove(i);
                            false
                        }
                        // sp_fini already answered it.
                        None => true,
                    }
                };
                kern::release();
                if answered {
                    conn.end_work();
                    return;
                }
                (err, rv)
            }
        }
    };
    let _ = conn.send(true, |o| put_syscall_resp(o, reqno, err, rv));
    conn.end_work();
}

/// `serv_handleexec`: wait until the client's other work has drained (its
/// lwps were told to exit), then complete the exec and answer.
fn run_exec(conn: &Arc<Conn>, reqno: u64, comm: Comm) {
    let (main, dying) = {
        let st = conn.wait_alone();
        (st.main, st.phase == rumpuser_core::sp::conn::Phase::Dying)
    };
    let stopping = conn.srv.stopping.load(Ordering::Acquire);
    if !dying && !stopping {
        kern::switch(main);
        kern::execnotify(comm.as_ptr());
        kern::switch(super::conn::LwpPtr::NULL);
    }
    conn.state().in_exec = false;
    if !dying {
        let _ = conn.send(true, |o| put_handshake_resp(o, reqno, 0));
    }
    conn.end_work();
}
