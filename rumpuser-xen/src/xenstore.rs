//! A xenstore client over the shared ring (`io/xs_wire.h`): read, write,
//! directory, watch — what a front-end driver needs to find and connect
//! to its back end.
//!
//! A domU's toolstack provides the ring page (`HVM_PARAM_STORE_PFN`, a
//! special page below 4 GiB, inside the boot identity map) and an event
//! channel (`HVM_PARAM_STORE_EVTCHN`); dom0 has neither (it would run
//! xenstored itself), so [`init`] reports `None` there.
//!
//! Requests are serialised: one green thread at a time writes a request
//! (`xsd_sockmsg` header + payload) into the request ring, notifies the
//! port, and reads messages from the response ring until its reply
//! (matched by `req_id`); `XS_WATCH_EVENT` messages that arrive meanwhile
//! are queued for [`wait_watch`]. Waiting parks the green thread on the
//! event channel ([`crate::events::wait`]), never spins. A port has one
//! waiter, and a request and watchers (e.g. blkfront's back-end watch)
//! may wait at once, so one of them waits on the port and the others on
//! `PARKED`, which the port's waiter wakes whenever it returns
//! (`wait_ring`); everyone then looks at the ring again. Every request
//! has a deadline (10 s), so a dead xenstored is an error, not a hang.

use crate::{abi, events, hypercall};
use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering};
use rumpuser_green::sched_core;

const RING: usize = 1024;
const HEADER: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: usize = 4096;
const TIMEOUT_NS: u64 = 10_000_000_000;

/// `xenstore_domain_interface`.
#[repr(C)]
struct Ring {
    req: [u8; RING],
    rsp: [u8; RING],
    req_cons: AtomicU32,
    req_prod: AtomicU32,
    rsp_cons: AtomicU32,
    rsp_prod: AtomicU32,
    server_features: AtomicU32,
    connection: AtomicU32,
    error: AtomicU32,
}

const _: () = assert!(core::mem::size_of::<Ring>() == 2048 + 28);

/// Message types (`enum xsd_sockmsg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
#[allow(missing_docs)]
pub enum Op {
    Directory = 1,
    Read = 2,
    Watch = 4,
    Unwatch = 5,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    WatchEvent = 15,
    Error = 16,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum XsError {
    /// xenstored answered `XS_ERROR` with this name (`ENOENT`, `EACCES`, …).
    Store(String),
    /// No reply within the deadline.
    Timeout,
    /// No xenstore (dom0, or `init` not called).
    Unavailable,
    /// A payload larger than `XENSTORE_PAYLOAD_MAX`, or a malformed reply.
    Invalid,
}

struct Store {
    ring: usize,
    port: u32,
}

static STORE: spin::Once<Store> = spin::Once::new();
static BUSY: AtomicBool = AtomicBool::new(false);
static REQ_ID: AtomicU32 = AtomicU32::new(1);
static WATCH_EVENTS: spin::Mutex<VecDeque<(String, String)>> = spin::Mutex::new(VecDeque::new());

/// Finds the ring from the HVM parameters. `None` without a xenstore.
pub fn init() -> Option<(u64, u32)> {
    let pfn = hypercall::hvm_get_param(abi::HVM_PARAM_STORE_PFN).ok()?;
    let port = hypercall::hvm_get_param(abi::HVM_PARAM_STORE_EVTCHN).ok()?;
    if pfn == 0 || port == 0 || pfn >= 1 << 20 {
        // dom0, or a ring outside the 4 GiB boot identity map.
        return None;
    }
    STORE.call_once(|| Store {
        ring: (pfn << 12) as usize,
        port: port as u32,
    });
    Some((pfn, port as u32))
}

/// Whether a xenstore is connected.
pub fn available() -> bool {
    STORE.get().is_some()
}

fn ring(s: &Store) -> &'static Ring {
    // SAFETY: the page Xen named in HVM_PARAM_STORE_PFN, identity mapped
    // by the boot page tables, holds the xenstore_domain_interface for
    // the whole life of the domain; the indexes xenstored updates are
    // atomics and the data areas are only read between index loads.
    unsafe { &*(s.ring as *const Ring) }
}

/// Whether a green thread waits on the xenstore port (see [`wait_ring`]).
static PORT_WAITER: AtomicBool = AtomicBool::new(false);
/// Threads waiting for ring activity while another waits on the port.
static PARKED: spin::Mutex<Vec<sched_core::ThreadId>> = spin::Mutex::new(Vec::new());

/// Waits until the ring may have changed (an event on the port) or
/// `until` ([`FOREVER`]: no deadline, no timer); returns false only when
/// `until` has passed. The caller looks at the ring again either way.
fn wait_ring(s: &Store, until: u64) -> bool {
    let deadline = (until != FOREVER).then_some(until);
    if PORT_WAITER.swap(true, Ordering::Acquire) {
        // Another thread waits on the port; it wakes us when it returns.
        // (One CPU, cooperative: nothing runs between the push and the
        // park.)
        let me = sched_core::current();
        PARKED.lock().push(me);
        sched_core::park(deadline);
        PARKED.lock().retain(|&t| t != me);
        return until == FOREVER || sched_core::now_ns() < until;
    }
    let fired = events::wait(s.port, deadline);
    PORT_WAITER.store(false, Ordering::Release);
    let parked = core::mem::take(&mut *PARKED.lock());
    for t in parked {
        sched_core::wake(t);
    }
    fired
}

fn deadline() -> u64 {
    sched_core::now_ns() + TIMEOUT_NS
}

/// Writes all of `bytes` into the request ring.
fn put(s: &Store, mut bytes: &[u8], until: u64) -> Result<(), XsError> {
    let r = ring(s);
    while !bytes.is_empty() {
        let cons = r.req_cons.load(Ordering::Acquire);
        let prod = r.req_prod.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons) as usize;
        if used >= RING {
            events::send(s.port);
            if !wait_ring(s, until) {
                return Err(XsError::Timeout);
            }
            continue;
        }
        let at = prod as usize % RING;
        let n = bytes.len().min(RING - used).min(RING - at);
        let dst = r.req.as_ptr() as *mut u8;
        // SAFETY: `at + n <= RING` and the ring has `n` free bytes there,
        // which the server does not read before `req_prod` moves.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.add(at), n) };
        fence(Ordering::Release);
        r.req_prod
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        bytes = &bytes[n..];
    }
    events::send(s.port);
    Ok(())
}

/// Reads exactly `out.len()` bytes from the response ring.
fn get(s: &Store, out: &mut [u8], until: u64) -> Result<(), XsError> {
    let r = ring(s);
    let mut done = 0;
    while done < out.len() {
        let prod = r.rsp_prod.load(Ordering::Acquire);
        let cons = r.rsp_cons.load(Ordering::Relaxed);
        let avail = prod.wrapping_sub(cons) as usize;
        if avail == 0 {
            if !wait_ring(s, until) {
                return Err(XsError::Timeout);
            }
            continue;
        }
        let at = cons as usize % RING;
        let n = (out.len() - done).min(avail).min(RING - at);
        // SAFETY: `at + n <= RING`; the server wrote these bytes before
        // publishing `rsp_prod` (acquire above).
        unsafe {
            core::ptr::copy_nonoverlapping(r.rsp.as_ptr().add(at), out[done..].as_mut_ptr(), n)
        };
        fence(Ordering::Release);
        r.rsp_cons
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        events::send(s.port);
        done += n;
    }
    Ok(())
}

/// Reads one message: `(type, req_id, body)`.
fn get_msg(s: &Store, until: u64) -> Result<(u32, u32, Vec<u8>), XsError> {
    let mut h = [0u8; HEADER];
    get(s, &mut h, until)?;
    let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
    let (ty, id, len) = (word(0), word(4), word(12) as usize);
    if len > PAYLOAD_MAX {
        return Err(XsError::Invalid);
    }
    let mut body = alloc::vec![0u8; len];
    get(s, &mut body, until)?;
    Ok((ty, id, body))
}

fn queue_watch_event(body: &[u8]) {
    let mut parts = body.split(|&b| b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let token = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    WATCH_EVENTS.lock().push_back((path, token));
}

/// Serialises ring users (cooperative: yield while another green thread
/// is inside a request).
struct Busy;

impl Busy {
    fn take() -> Busy {
        while BUSY.swap(true, Ordering::Acquire) {
            sched_core::yield_now();
        }
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.store(false, Ordering::Release);
    }
}

/// One request; returns the reply body.
pub fn request(op: Op, payload: &[&[u8]]) -> Result<Vec<u8>, XsError> {
    let s = STORE.get().ok_or(XsError::Unavailable)?;
    let len: usize = payload.iter().map(|p| p.len()).sum();
    if len > PAYLOAD_MAX {
        return Err(XsError::Invalid);
    }
    let _busy = Busy::take();
    let id = REQ_ID.fetch_add(1, Ordering::Relaxed);
    let mut msg = Vec::with_capacity(HEADER + len);
    for w in [op as u32, id, 0, len as u32] {
        msg.extend_from_slice(&w.to_le_bytes());
    }
    for p in payload {
        msg.extend_from_slice(p);
    }
    let until = deadline();
    put(s, &msg, until)?;
    loop {
        let (ty, rid, body) = get_msg(s, until)?;
        if ty == Op::WatchEvent as u32 {
            queue_watch_event(&body);
            continue;
        }
        if rid != id {
            continue;
        }
        if ty == Op::Error as u32 {
            let name = body.split(|&b| b == 0).next().unwrap_or_default();
            return Err(XsError::Store(String::from_utf8_lossy(name).into_owned()));
        }
        return Ok(body);
    }
}

fn text(body: Vec<u8>) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

fn path0(path: &str) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p
}

/// `XS_READ`.
pub fn read(path: &str) -> Result<String, XsError> {
    request(Op::Read, &[&path0(path)]).map(text)
}

/// `XS_WRITE`.
pub fn write(path: &str, value: &str) -> Result<(), XsError> {
    request(Op::Write, &[&path0(path), value.as_bytes()]).map(|_| ())
}

/// `XS_RM`.
pub fn remove(path: &str) -> Result<(), XsError> {
    request(Op::Rm, &[&path0(path)]).map(|_| ())
}

/// `XS_DIRECTORY`: the names under `path`.
pub fn directory(path: &str) -> Result<Vec<String>, XsError> {
    let body = request(Op::Directory, &[&path0(path)])?;
    Ok(body
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

/// `XS_WATCH`: events for `path` (and below) arrive with `token`
/// (xenstored sends one at once).
pub fn watch(path: &str, token: &str) -> Result<(), XsError> {
    request(Op::Watch, &[&path0(path), &path0(token)]).map(|_| ())
}

/// `XS_UNWATCH`.
pub fn unwatch(path: &str, token: &str) -> Result<(), XsError> {
    request(Op::Unwatch, &[&path0(path), &path0(token)]).map(|_| ())
}

/// A deadline that never passes (waits without a timer).
pub const FOREVER: u64 = u64::MAX;

/// Waits for the next watch event with `token` until `until` (absolute
/// monotonic ns, or [`FOREVER`]); returns the path that changed.
pub fn wait_watch(token: &str, until: u64) -> Result<String, XsError> {
    let s = STORE.get().ok_or(XsError::Unavailable)?;
    loop {
        // Look at the queue only with the ring ours: a request that held
        // it may have queued our event meanwhile.
        let _busy = Busy::take();
        {
            let mut q = WATCH_EVENTS.lock();
            if let Some(i) = q.iter().position(|(_, t)| t == token) {
                if let Some((path, _)) = q.remove(i) {
                    return Ok(path);
                }
            }
        }
        let r = ring(s);
        if r.rsp_prod.load(Ordering::Acquire) == r.rsp_cons.load(Ordering::Relaxed) {
            if until != FOREVER && sched_core::now_ns() >= until {
                return Err(XsError::Timeout);
            }
            drop(_busy);
            wait_ring(s, until);
            continue;
        }
        let (ty, _, body) = get_msg(s, until)?;
        if ty == Op::WatchEvent as u32 {
            queue_watch_event(&body);
        }
    }
}

/// This domain's id (`domid`).
pub fn domid() -> Result<u32, XsError> {
    read("domid")?.trim().parse().map_err(|_| XsError::Invalid)
}

impl core::fmt::Display for XsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XsError::Store(s) => write!(f, "xenstore error {s}"),
            XsError::Timeout => f.write_str("xenstore timed out"),
            XsError::Unavailable => f.write_str("no xenstore"),
            XsError::Invalid => f.write_str("invalid xenstore message"),
        }
    }
}

impl XsError {
    /// The NetBSD errno closest to this error.
    pub fn errno(&self) -> rumpuser_core::Errno {
        use rumpuser_core::Errno;
        match self {
            XsError::Store(s) if s == "ENOENT" => Errno::ENOENT,
            XsError::Store(s) if s == "EACCES" => Errno::EACCES,
            XsError::Store(s) if s == "EEXIST" => Errno::EEXIST,
            XsError::Store(s) if s == "EINVAL" => Errno::EINVAL,
            XsError::Timeout => Errno::ETIMEDOUT,
            XsError::Unavailable => Errno::ENXIO,
            _ => Errno::EIO,
        }
    }
}

/// A value read, or its error, for messages.
pub fn describe(r: &Result<String, XsError>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => alloc::format!("<{e}>"),
    }
}
