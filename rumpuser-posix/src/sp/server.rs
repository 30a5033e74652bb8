//! The poll loop (`spserver` of rumpuser_sp.c): accepts clients, reads and
//! assembles frames (acting on them through `rumpuser_host::sp`), writes
//! pending output, and expires orphaned preforks. Handshakes and preforks
//! run inline; system calls and execs go to the worker pool.

use super::Threads;
use rumpuser_core::diag;
use rumpuser_core::sp::frame::Assembler;
use rumpuser_host::sock::{self, Listener};
use rumpuser_host::sp::{accept_pending, read_available, Conn, Server, READ_CHUNK};
use std::os::fd::AsRawFd;
use std::sync::Arc;

struct Slot {
    conn: Arc<Conn<Threads>>,
    asm: Assembler,
}

fn pfd(fd: i32, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Runs until `sp_fini`.
pub(crate) fn run(srv: Arc<Server<Threads>>, listener: Listener) {
    let lfd = listener.fd.as_raw_fd();
    let mut slots: Vec<Slot> = Vec::new();
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        pfds.clear();
        pfds.push(pfd(srv.rt.waker.fd(), libc::POLLIN));
        pfds.push(pfd(lfd, libc::POLLIN));
        for s in &slots {
            let ev = if s.conn.wants_write() {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            };
            pfds.push(pfd(s.conn.sock().as_raw_fd(), ev));
        }
        let timeout = match srv.next_prefork_expiry() {
            Some(t) => {
                (t.saturating_sub(rumpuser_host::sp::now_ns()) / 1_000_000).clamp(1, 60_000) as i32
            }
            None => -1,
        };
        if let Err(e) = sock::poll(&mut pfds, timeout) {
            diag::log(format_args!("sysproxy: poll failed: {e:?}; server stops"));
            break;
        }
        if pfds[0].revents != 0 {
            srv.rt.waker.drain();
        }
        if srv.is_stopping() {
            break;
        }
        let polled = slots.len();
        for (i, s) in slots.iter_mut().enumerate().take(polled) {
            let re = pfds[i + 2].revents;
            if re & libc::POLLOUT != 0 {
                s.conn.flush();
            }
            if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                // `More` is fine: the next poll reports the socket again.
                let _ = read_available(&s.conn, &mut s.asm, &mut buf);
            }
            if s.conn.out_dead() {
                s.conn.disconnect();
            }
        }
        slots.retain(|s| !s.conn.is_dying());
        if pfds[1].revents != 0 {
            accept_pending(&srv, &listener, |conn| {
                slots.push(Slot {
                    conn,
                    asm: Assembler::new(),
                })
            });
        }
        srv.reap_preforks(rumpuser_host::sp::now_ns());
    }
    // Shutdown: no kernel calls any more (the kernel is halting).
    for s in &slots {
        s.conn.disconnect();
    }
    srv.forget_preforks();
    srv.rt.pool.close();
    drop(listener);
}
