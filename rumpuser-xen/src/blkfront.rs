//! A block front end (`io/blkif.h`) for the virtual disks the toolstack
//! gives a domU, behind `rumpuser_open`/`getfileinfo`/`bio`.
//!
//! * Names: `xvda` … `xvdp` (the Linux names of the xenstore device ids
//!   `202 << 8 | n << 4`, e.g. `xvda` = 51712) or the decimal device id
//!   itself (`51712`). Descriptors are [`FD_BASE`]` + index`.
//! * Connecting (on first use of a name): read `device/vbd/<id>/backend`
//!   and `backend-id`, wait for the back end's `InitWait`, grant it one
//!   ring page (32 slots of `blkif_request`), allocate an event channel,
//!   write `ring-ref`, `event-channel`, `protocol`, `state = Initialised`,
//!   wait for `Connected`, then read `sectors` (always 512-byte units),
//!   `info` (bit 2 = read-only), `feature-flush-cache` and
//!   `feature-barrier`, and say `Connected` ourselves.
//! * I/O: a transfer is split into requests of at most 11 pages; each
//!   uses page-aligned bounce pages (the kernel's buffers need not be
//!   page-aligned) granted to the back end (read-only for writes), so
//!   `rumpuser_bio` returns at once. A green thread per disk parks on the
//!   disk's event channel, collects responses, copies read data out, ends
//!   the grants and completes the request (with its own lwp, as the
//!   contract asks); a `BIO_SYNC` write is followed by a
//!   `BLKIF_OP_FLUSH_DISKCACHE` (or `WRITE_BARRIER`) request before it
//!   completes. Back-end errors become `EIO` (`EOPNOTSUPP` for an
//!   unsupported operation); out-of-range or misaligned requests fail
//!   with `EINVAL` before reaching the ring, writes to a read-only disk
//!   with `EROFS`. A back end that does not answer within 10 s fails the
//!   request with `EIO` instead of hanging it.
//! * Detaching (`xl block-detach`): a green thread per disk watches the
//!   back end's `state`. When it goes to `Closing` (or disappears) the
//!   disk is marked gone: new requests, opens and `getfileinfo` fail with
//!   `ENXIO`; the service thread says `Closing`, lets the back end answer
//!   what is in flight (at most 5 s), fails the rest with `ENXIO`, says
//!   `Closed` (so the toolstack's detach completes without its forced
//!   path) and ends. The ring page and the slots' bounce pages stay
//!   allocated (the back end may still map them; a few pages per
//!   detach). Attaching the device again connects afresh.

use crate::{events, gnttab, xenstore as xs};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_int, CStr};
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use rumpuser_core::bio::{BioDone, BioRequest};
use rumpuser_core::types::{AccessMode, BioOp, FileType, OpenFlags};
use rumpuser_core::{Errno, HyperResult};
use rumpuser_green::sched_core::{self, ThreadId};
use rumpuser_pvh::heap;

/// Descriptor of the first disk connected.
pub const FD_BASE: c_int = 64;
const RING_SLOTS: usize = 32;
const SEGS: usize = 11;
const PAGE: usize = 4096;
const SECTOR: u64 = 512;
const TIMEOUT_NS: u64 = 10_000_000_000;
/// How long a detaching disk waits for in-flight answers.
const CLOSE_GRACE_NS: u64 = 5_000_000_000;

const OP_READ: u8 = 0;
const OP_WRITE: u8 = 1;
const OP_WRITE_BARRIER: u8 = 2;
const OP_FLUSH: u8 = 3;

/// `blkif_request_segment`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Seg {
    gref: u32,
    first_sect: u8,
    last_sect: u8,
    _pad: u16,
}

/// `blkif_request` (x86_64 layout: `id` 8-byte aligned).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Req {
    operation: u8,
    nr_segments: u8,
    handle: u16,
    _pad: u32,
    id: u64,
    sector_number: u64,
    seg: [Seg; SEGS],
}

/// `blkif_response`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Rsp {
    id: u64,
    operation: u8,
    _pad: u8,
    status: i16,
    _pad2: u32,
}

const _: () = assert!(core::mem::size_of::<Req>() == 112);
const _: () = assert!(core::mem::size_of::<Rsp>() == 16);
/// The shared ring's header (`req_prod`, `req_event`, `rsp_prod`,
/// `rsp_event`, 48 bytes of padding); entries of 112 bytes follow.
const SRING_HEADER: usize = 64;
const _: () = assert!(SRING_HEADER + RING_SLOTS * 112 <= PAGE);

/// Who waits for a transfer.
enum Waiter {
    /// The kernel's `rumpuser_bio` callback.
    Kernel(BioDone),
    /// A green thread in `iovread`/`iovwrite`/`syncfd`.
    Thread(ThreadId, usize),
}

struct Transfer {
    data: usize,
    len: usize,
    parts_left: usize,
    error: Option<Errno>,
    flush_after: bool,
    waiter: Option<Waiter>,
}

struct Part {
    transfer: usize,
    op: u8,
    data_off: usize,
    len: usize,
    bounce: usize,
    grants: Vec<u32>,
    issued: u64,
}

struct Disk {
    vdev: u32,
    name: String,
    be_id: u16,
    sectors: u64,
    readonly: bool,
    flush_op: Option<u8>,
    ring: usize,
    ring_gref: u32,
    port: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
    slots: [Option<Part>; RING_SLOTS],
    transfers: Vec<Option<Transfer>>,
    opens: usize,
    service: Option<ThreadId>,
    /// The front and back end's xenstore directories.
    fe: String,
    be: String,
    /// The back end is going away (see the module docs).
    gone: bool,
}

// SAFETY: `Disk` holds addresses (as integers) of memory only this
// platform's single CPU touches; the mutex serialises green threads.
unsafe impl Send for Disk {}

static DISKS: spin::Mutex<Vec<Disk>> = spin::Mutex::new(Vec::new());
/// Results of synchronous transfers, by slot (`Waiter::Thread`).
#[allow(clippy::type_complexity)]
static SYNC_RESULTS: spin::Mutex<Vec<Option<Option<Result<usize, Errno>>>>> =
    spin::Mutex::new(Vec::new());
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static FLUSHES: AtomicU64 = AtomicU64::new(0);
static EVENTS: AtomicU64 = AtomicU64::new(0);
static CONNECTS: AtomicU32 = AtomicU32::new(0);
static DETACHES: AtomicU32 = AtomicU32::new(0);

/// Counters for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Ring requests issued (data and flush).
    pub requests: u64,
    /// Flush (or barrier) requests issued.
    pub flushes: u64,
    /// Service-thread wake-ups with responses.
    pub events: u64,
    /// Disks closed because their back end went away.
    pub detaches: u32,
}

/// The counters.
pub fn stats() -> Stats {
    Stats {
        requests: REQUESTS.load(Ordering::Relaxed),
        flushes: FLUSHES.load(Ordering::Relaxed),
        events: EVENTS.load(Ordering::Relaxed),
        detaches: DETACHES.load(Ordering::Relaxed),
    }
}

/// The xenstore device id a name means (`xvda`.. or a decimal id).
pub fn vdev_of(name: &str) -> Option<u32> {
    if let Some(l) = name.strip_prefix("xvd") {
        let b = l.as_bytes();
        if b.len() == 1 && (b'a'..=b'p').contains(&b[0]) {
            return Some(202 << 8 | ((b[0] - b'a') as u32) << 4);
        }
        return None;
    }
    if name.is_empty() || name.len() > 9 || !name.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn ring_req(ring: usize, idx: u32) -> *mut Req {
    (ring + SRING_HEADER + (idx as usize % RING_SLOTS) * 112) as *mut Req
}

fn sring_word(ring: usize, i: usize) -> &'static AtomicU32 {
    // SAFETY: `ring` is our page-aligned ring page (header words 0..4),
    // shared with the back end, which updates the words atomically.
    unsafe { &*((ring + i * 4) as *const AtomicU32) }
}

fn wait_backend_state(be: &str, want: u32) -> Result<u32, Errno> {
    let until = sched_core::now_ns() + TIMEOUT_NS;
    loop {
        let s: u32 = xs::read(&format!("{be}/state"))
            .map_err(|e| e.errno())?
            .trim()
            .parse()
            .unwrap_or(0);
        if s >= want {
            return Ok(s);
        }
        if sched_core::now_ns() >= until {
            return Err(Errno::ETIMEDOUT);
        }
        sched_core::sleep_for(2_000_000);
    }
}

/// Connects to the back end of device `vdev`; returns the disk index.
fn connect(vdev: u32, name: &str) -> Result<usize, Errno> {
    // A detached disk's entry stays (its descriptors fail with ENXIO); a
    // new attachment of the same device gets a new one. While the back
    // end is still closing, the state check below answers ENXIO.
    if let Some(i) = DISKS.lock().iter().position(|d| d.vdev == vdev && !d.gone) {
        return Ok(i);
    }
    if !xs::available() {
        return Err(Errno::ENOENT);
    }
    let fe = format!("device/vbd/{vdev}");
    let be = xs::read(&format!("{fe}/backend")).map_err(|_| Errno::ENOENT)?;
    let be_id: u16 = xs::read(&format!("{fe}/backend-id"))
        .map_err(|e| e.errno())?
        .trim()
        .parse()
        .map_err(|_| Errno::EIO)?;
    let s = wait_backend_state(&be, 2)?;
    if s > 4 {
        return Err(Errno::ENXIO);
    }
    let ring = heap::alloc_zeroed(PAGE, PAGE)
        .ok_or(Errno::ENOMEM)?
        .as_ptr() as usize;
    sring_word(ring, 1).store(1, Ordering::Relaxed); // req_event
    sring_word(ring, 3).store(1, Ordering::Relaxed); // rsp_event
    let ring_gref = gnttab::grant(be_id, ring as u64, false).ok_or(Errno::ENOMEM)?;
    let port = events::alloc_unbound(be_id).map_err(|_| Errno::EIO)?;
    for (k, v) in [
        ("ring-ref", format!("{ring_gref}")),
        ("event-channel", format!("{port}")),
        ("protocol", String::from("x86_64-abi")),
        ("state", String::from("3")),
    ] {
        xs::write(&format!("{fe}/{k}"), &v).map_err(|e| e.errno())?;
    }
    if wait_backend_state(&be, 4)? != 4 {
        return Err(Errno::ENXIO);
    }
    let num = |k: &str| -> Option<u64> { xs::read(&format!("{be}/{k}")).ok()?.trim().parse().ok() };
    let sectors = num("sectors").ok_or(Errno::EIO)?;
    let info = num("info").unwrap_or(0);
    let flush_op = if num("feature-flush-cache") == Some(1) {
        Some(OP_FLUSH)
    } else if num("feature-barrier") == Some(1) {
        Some(OP_WRITE_BARRIER)
    } else {
        None
    };
    xs::write(&format!("{fe}/state"), "4").map_err(|e| e.errno())?;
    let mut d = DISKS.lock();
    let i = d.len();
    d.push(Disk {
        vdev,
        name: String::from(name),
        be_id,
        sectors,
        readonly: info & 4 != 0,
        flush_op,
        ring,
        ring_gref,
        port,
        req_prod_pvt: 0,
        rsp_cons: 0,
        slots: Default::default(),
        transfers: Vec::new(),
        opens: 0,
        service: None,
        fe,
        be,
        gone: false,
    });
    drop(d);
    let t = sched_core::spawn_closure(move || service(i), "blkfront", 0, false)
        .map_err(|_| Errno::EAGAIN)?;
    DISKS.lock()[i].service = Some(t);
    if sched_core::spawn_closure(move || watch_backend(i), "blkfront-watch", 0, false).is_err() {
        rumpuser_core::diag::report(format_args!(
            "blkfront: no thread to watch {name}'s back end; a detach will only time out"
        ));
    }
    CONNECTS.fetch_add(1, Ordering::Relaxed);
    Ok(i)
}

/// A one-line description of each connected disk.
pub fn describe() -> Vec<String> {
    DISKS
        .lock()
        .iter()
        .map(|d| {
            format!(
                "{} (vbd {}, back end domain {}, ring-ref {}, port {}): {} sectors, {}, flush {}",
                d.name,
                d.vdev,
                d.be_id,
                d.ring_gref,
                d.port,
                d.sectors,
                if d.readonly {
                    "read-only"
                } else {
                    "read-write"
                },
                match d.flush_op {
                    Some(OP_FLUSH) => "FLUSH_DISKCACHE",
                    Some(_) => "WRITE_BARRIER",
                    None => "none",
                }
            )
        })
        .collect()
}

fn disk_by_name(name: &CStr) -> Result<usize, Errno> {
    let s = name.to_str().map_err(|_| Errno::ENOENT)?;
    let vdev = vdev_of(s).ok_or(Errno::ENOENT)?;
    connect(vdev, s)
}

fn disk_of(fd: c_int) -> Option<usize> {
    let i = usize::try_from(fd.checked_sub(FD_BASE)?).ok()?;
    let d = DISKS.lock();
    d.get(i).filter(|d| d.opens > 0).map(|_| i)
}

/// `rumpuser_getfileinfo`.
pub fn getfileinfo(name: &CStr) -> HyperResult<(u64, FileType)> {
    let i = disk_by_name(name)?;
    Ok((DISKS.lock()[i].sectors * SECTOR, FileType::Block))
}

/// `rumpuser_open`.
pub fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
    let i = disk_by_name(name)?;
    if flags.create && flags.exclusive {
        return Err(Errno::EEXIST);
    }
    let mut d = DISKS.lock();
    if flags.access != AccessMode::ReadOnly && d[i].readonly {
        return Err(Errno::EROFS);
    }
    d[i].opens += 1;
    Ok(FD_BASE + i as c_int)
}

/// `rumpuser_close` (flushes when the last user closes a writable disk).
pub fn close(fd: c_int) -> HyperResult<()> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    let last = {
        let mut d = DISKS.lock();
        d[i].opens -= 1;
        d[i].opens == 0 && !d[i].readonly
    };
    if last {
        let _ = flush(i);
    }
    Ok(())
}

/// Flushes disk `i`'s write cache (if the back end has one to flush).
fn flush(i: usize) -> Result<(), Errno> {
    if DISKS.lock()[i].flush_op.is_some() {
        transfer(i, true, true, 0, 0, 0)?;
    }
    Ok(())
}

fn check(i: usize, write: bool, off: u64, len: usize) -> Result<(), Errno> {
    let d = DISKS.lock();
    if d[i].gone {
        return Err(Errno::ENXIO);
    }
    if write && d[i].readonly {
        return Err(Errno::EROFS);
    }
    if !off.is_multiple_of(SECTOR) || !(len as u64).is_multiple_of(SECTOR) {
        return Err(Errno::EINVAL);
    }
    let end = off.checked_add(len as u64).ok_or(Errno::EINVAL)?;
    if end > d[i].sectors * SECTOR {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Starts a transfer; the waiter is told when it is done.
fn start(i: usize, write: bool, sync: bool, data: usize, len: usize, off: u64, waiter: Waiter) {
    let nparts = len.div_ceil(SEGS * PAGE).max(1);
    let t = {
        let mut d = DISKS.lock();
        let flush_after = write && sync && len > 0 && d[i].flush_op.is_some();
        let tr = Transfer {
            data,
            len,
            parts_left: if len == 0 { 1 } else { nparts },
            error: None,
            flush_after,
            waiter: Some(waiter),
        };
        match d[i].transfers.iter().position(Option::is_none) {
            Some(t) => {
                d[i].transfers[t] = Some(tr);
                t
            }
            None => {
                d[i].transfers.push(Some(tr));
                d[i].transfers.len() - 1
            }
        }
    };
    if len == 0 {
        // A pure flush (syncfd) or an empty transfer.
        let op = if write {
            DISKS.lock()[i].flush_op
        } else {
            None
        };
        let error = match op {
            Some(op) if submit(i, t, op, 0, 0, off) => return,
            Some(_) => Some(Errno::ENXIO),
            None => None,
        };
        if let Some((w, res)) = finish_part(i, t, error) {
            deliver(w, res);
        }
        return;
    }
    let mut done = 0;
    while done < len {
        let n = (len - done).min(SEGS * PAGE);
        let op = if write { OP_WRITE } else { OP_READ };
        if !submit(i, t, op, done, n, off + done as u64) {
            if let Some((w, res)) = finish_part(i, t, Some(Errno::ENXIO)) {
                deliver(w, res);
            }
        }
        done += n;
    }
}

/// Puts one request on the ring (waiting, cooperatively, for a free slot
/// and grant entries); false when the disk went away first (the caller
/// fails the part with `ENXIO`).
#[must_use]
fn submit(i: usize, t: usize, op: u8, data_off: usize, len: usize, off: u64) -> bool {
    let npages = len.div_ceil(PAGE);
    let bounce = if npages > 0 {
        loop {
            match heap::alloc(npages * PAGE, PAGE) {
                Some(p) => break p.as_ptr() as usize,
                None => sched_core::yield_now(),
            }
        }
    } else {
        0
    };
    if op == OP_WRITE {
        let src = DISKS.lock()[i].transfers[t]
            .as_ref()
            .map_or(0, |tr| tr.data)
            + data_off;
        // SAFETY: the kernel's buffer holds `len` bytes from `data_off`
        // until completion; the bounce block is ours and as large.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, bounce as *mut u8, len) };
    }
    loop {
        let mut d = DISKS.lock();
        if d[i].gone {
            drop(d);
            if let Some(p) = core::ptr::NonNull::new(bounce as *mut u8) {
                // SAFETY: allocated above with this size, never granted.
                unsafe { heap::free(p, npages * PAGE) };
            }
            return false;
        }
        let Some(slot) = d[i].slots.iter().position(Option::is_none) else {
            drop(d);
            sched_core::yield_now();
            continue;
        };
        if gnttab::free_entries() < npages {
            drop(d);
            sched_core::yield_now();
            continue;
        }
        let be_id = d[i].be_id;
        let mut req = Req {
            operation: op,
            nr_segments: npages as u8,
            handle: d[i].vdev as u16,
            id: slot as u64,
            sector_number: off / SECTOR,
            ..Default::default()
        };
        let mut grants = Vec::with_capacity(npages);
        for p in 0..npages {
            let bytes = (len - p * PAGE).min(PAGE);
            let Some(g) = gnttab::grant(be_id, (bounce + p * PAGE) as u64, op == OP_WRITE) else {
                break;
            };
            grants.push(g);
            req.seg[p] = Seg {
                gref: g,
                first_sect: 0,
                last_sect: (bytes as u64 / SECTOR - 1) as u8,
                _pad: 0,
            };
        }
        if grants.len() < npages {
            for g in grants {
                gnttab::end(g);
            }
            drop(d);
            sched_core::yield_now();
            continue;
        }
        let disk = &mut d[i];
        // SAFETY: the slot's entry in our ring page; the back end reads it
        // only after `req_prod` is published below.
        unsafe { ring_req(disk.ring, disk.req_prod_pvt).write_volatile(req) };
        disk.req_prod_pvt = disk.req_prod_pvt.wrapping_add(1);
        disk.slots[slot] = Some(Part {
            transfer: t,
            op,
            data_off,
            len,
            bounce,
            grants,
            issued: sched_core::now_ns(),
        });
        fence(Ordering::Release);
        sring_word(disk.ring, 0).store(disk.req_prod_pvt, Ordering::Release);
        let port = disk.port;
        drop(d);
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        if op == OP_FLUSH || op == OP_WRITE_BARRIER {
            FLUSHES.fetch_add(1, Ordering::Relaxed);
        }
        events::send(port);
        return true;
    }
}

/// One part of transfer `t` ended (with `error`); returns the finished
/// transfer's waiter and result when it was the last part.
fn finish_part(i: usize, t: usize, error: Option<Errno>) -> Option<(Waiter, Result<usize, Errno>)> {
    let mut d = DISKS.lock();
    let tr = d[i].transfers[t].as_mut()?;
    if tr.error.is_none() {
        tr.error = error;
    }
    tr.parts_left -= 1;
    if tr.parts_left > 0 {
        return None;
    }
    if tr.flush_after && tr.error.is_none() {
        tr.flush_after = false;
        tr.parts_left = 1;
        let op = d[i].flush_op.unwrap_or(OP_FLUSH);
        drop(d);
        if submit(i, t, op, 0, 0, 0) {
            return None;
        }
        return finish_part(i, t, Some(Errno::ENXIO));
    }
    let tr = d[i].transfers[t].take()?;
    let res = match tr.error {
        Some(e) => Err(e),
        None => Ok(tr.len),
    };
    Some((tr.waiter?, res))
}

/// The per-disk green thread: collects responses, completes transfers.
fn service(i: usize) {
    let mut has_lwp = false;
    let port = DISKS.lock()[i].port;
    let mut done: Vec<(Waiter, Result<usize, Errno>)> = Vec::new();
    let mut closing_since = None;
    loop {
        let mut finished_parts: Vec<(usize, Option<Errno>)> = Vec::new();
        {
            let mut d = DISKS.lock();
            let disk = &mut d[i];
            loop {
                let prod = sring_word(disk.ring, 2).load(Ordering::Acquire);
                while disk.rsp_cons != prod {
                    let at = disk.ring + SRING_HEADER + (disk.rsp_cons as usize % RING_SLOTS) * 112;
                    // SAFETY: a response slot of our ring page, published
                    // by the back end before `rsp_prod` (acquire above).
                    let rsp = unsafe { (at as *const Rsp).read_volatile() };
                    disk.rsp_cons = disk.rsp_cons.wrapping_add(1);
                    let Some(part) = disk.slots.get_mut(rsp.id as usize).and_then(Option::take)
                    else {
                        continue;
                    };
                    for &g in &part.grants {
                        // The back end unmaps before it responds.
                        while !gnttab::end(g) {
                            core::hint::spin_loop();
                        }
                    }
                    if part.issued == u64::MAX {
                        // Already failed by `expire`; its transfer (and
                        // buffer) may be gone: only the memory is freed.
                        if let Some(p) = core::ptr::NonNull::new(part.bounce as *mut u8) {
                            // SAFETY: allocated in `submit` with this size.
                            unsafe { heap::free(p, part.len.div_ceil(PAGE) * PAGE) };
                        }
                        continue;
                    }
                    let error = match rsp.status {
                        0 => None,
                        -2 => Some(Errno::EOPNOTSUPP),
                        _ => Some(Errno::EIO),
                    };
                    if part.op == OP_READ && error.is_none() {
                        if let Some(tr) = disk.transfers[part.transfer].as_ref() {
                            // SAFETY: the kernel's buffer holds the bytes
                            // of this part until completion; the bounce
                            // block holds what the back end read.
                            unsafe {
                                core::ptr::copy_nonoverlapping(
                                    part.bounce as *const u8,
                                    (tr.data + part.data_off) as *mut u8,
                                    part.len,
                                )
                            };
                        }
                    }
                    if let Some(p) = core::ptr::NonNull::new(part.bounce as *mut u8) {
                        // SAFETY: allocated in `submit` with this size.
                        unsafe { heap::free(p, part.len.div_ceil(PAGE) * PAGE) };
                    }
                    finished_parts.push((part.transfer, error));
                }
                // Ask for an event at the next response, then look again
                // (a response may have come in between).
                sring_word(disk.ring, 3).store(disk.rsp_cons.wrapping_add(1), Ordering::Release);
                fence(Ordering::SeqCst);
                if sring_word(disk.ring, 2).load(Ordering::Acquire) == disk.rsp_cons {
                    break;
                }
            }
        }
        if !finished_parts.is_empty() {
            EVENTS.fetch_add(1, Ordering::Relaxed);
        }
        for (t, e) in finished_parts {
            if let Some(w) = finish_part(i, t, e) {
                done.push(w);
            }
        }
        expire(i, &mut done);
        let closed = close_step(i, &mut closing_since, &mut done);
        for (w, res) in done.drain(..) {
            if matches!(w, Waiter::Kernel(_)) && !has_lwp {
                // Completions run kernel code: this thread needs an lwp
                // of its own, taken on first use.
                let e = rumpuser_core::sched::adopt_helper_thread();
                if e != 0 {
                    rumpuser_core::diag::report(format_args!(
                        "blkfront thread: newlwp failed: {e}"
                    ));
                }
                has_lwp = true;
            }
            deliver(w, res);
        }
        if closed {
            events::close(port);
            return;
        }
        let busy = DISKS.lock()[i].slots.iter().any(Option::is_some);
        let until = busy.then(|| sched_core::now_ns() + 100_000_000);
        events::wait(port, until);
    }
}

/// A detaching disk (see the module docs): says `Closing` once; when
/// nothing is in flight any more or the grace period is over, fails what
/// is left with `ENXIO` and says `Closed`. Returns whether it is closed.
fn close_step(
    i: usize,
    since: &mut Option<u64>,
    done: &mut Vec<(Waiter, Result<usize, Errno>)>,
) -> bool {
    let (gone, fe) = {
        let d = DISKS.lock();
        (d[i].gone, d[i].fe.clone())
    };
    if !gone {
        return false;
    }
    let now = sched_core::now_ns();
    // Our state node is written only while it exists: after a forced
    // detach the toolstack has removed the directory, and a write would
    // create it again.
    let say = |state: &str| {
        let path = format!("{fe}/state");
        if xs::read(&path).is_ok() {
            let _ = xs::write(&path, state);
        }
    };
    let t0 = *since.get_or_insert_with(|| {
        say("5");
        now
    });
    let left: Vec<usize> = {
        let mut d = DISKS.lock();
        let mut in_flight = d[i].slots.iter().flatten().filter(|p| p.issued != u64::MAX);
        if in_flight.next().is_some() && now < t0 + CLOSE_GRACE_NS {
            return false;
        }
        // The slots stay reserved: the back end may still hold the pages.
        d[i].slots
            .iter_mut()
            .flatten()
            .filter(|p| p.issued != u64::MAX)
            .map(|p| {
                p.issued = u64::MAX;
                p.transfer
            })
            .collect()
    };
    for t in left {
        if let Some(w) = finish_part(i, t, Some(Errno::ENXIO)) {
            done.push(w);
        }
    }
    say("6");
    DETACHES.fetch_add(1, Ordering::Relaxed);
    true
}

/// Watches disk `i`'s back-end `state`; marks the disk gone when the back
/// end starts closing (or its directory disappears) and wakes the service
/// thread.
fn watch_backend(i: usize) {
    let (be, port, name) = {
        let d = DISKS.lock();
        (d[i].be.clone(), d[i].port, d[i].name.clone())
    };
    let path = format!("{be}/state");
    let token = format!("blkfront-{i}");
    if let Err(e) = xs::watch(&path, &token) {
        rumpuser_core::diag::report(format_args!(
            "blkfront: cannot watch {path} ({e:?}); a detach of {name} will only time out"
        ));
        return;
    }
    loop {
        // No deadline: an idle watcher must not keep a timer pending (the
        // scheduler reads the clock while any is).
        if xs::wait_watch(&token, xs::FOREVER).is_err() {
            return;
        }
        let state = xs::read(&path)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        if state.is_none_or(|s| s >= 5) {
            break;
        }
    }
    DISKS.lock()[i].gone = true;
    let _ = xs::unwatch(&path, &token);
    events::raise(port);
}

/// Tells a transfer's waiter its result.
fn deliver(w: Waiter, res: Result<usize, Errno>) {
    match w {
        Waiter::Kernel(bd) => bd.complete(res),
        Waiter::Thread(tid, k) => {
            if let Some(s) = SYNC_RESULTS.lock().get_mut(k) {
                *s = Some(Some(res));
            }
            sched_core::wake(tid);
        }
    }
}

/// Fails requests the back end has not answered within the timeout
/// (their slots stay reserved: the back end may still write the pages).
fn expire(i: usize, done: &mut Vec<(Waiter, Result<usize, Errno>)>) {
    let now = sched_core::now_ns();
    let late: Vec<usize> = {
        let mut d = DISKS.lock();
        d[i].slots
            .iter_mut()
            .flatten()
            .filter(|p| p.issued != u64::MAX && now.saturating_sub(p.issued) > TIMEOUT_NS)
            .map(|p| {
                p.issued = u64::MAX;
                p.transfer
            })
            .collect()
    };
    for t in late {
        if let Some(w) = finish_part(i, t, Some(Errno::EIO)) {
            done.push(w);
        }
    }
}

/// `rumpuser_bio` (called with the virtual CPU released).
pub fn bio(req: BioRequest) {
    let BioRequest {
        fd,
        op,
        data,
        len,
        off,
        done,
    } = req;
    let Some(i) = disk_of(fd) else {
        done.complete(Err(Errno::EBADF));
        return;
    };
    let (write, sync) = match op {
        BioOp::Read => (false, false),
        BioOp::Write { sync } => (true, sync),
    };
    if let Err(e) = check(i, write, off, len) {
        done.complete(Err(e));
        return;
    }
    if len == 0 && !(write && sync) {
        done.complete(Ok(0));
        return;
    }
    start(
        i,
        write,
        sync,
        data as usize,
        len,
        off,
        Waiter::Kernel(done),
    );
}

/// A transfer that blocks the calling green thread.
fn transfer(
    i: usize,
    write: bool,
    sync: bool,
    data: usize,
    len: usize,
    off: u64,
) -> Result<usize, Errno> {
    // Slots: `None` free, `Some(None)` pending, `Some(Some(r))` done.
    let k = {
        let mut r = SYNC_RESULTS.lock();
        let k = match r.iter().position(Option::is_none) {
            Some(k) => k,
            None => {
                r.push(None);
                r.len() - 1
            }
        };
        r[k] = Some(None);
        k
    };
    start(
        i,
        write,
        sync,
        data,
        len,
        off,
        Waiter::Thread(sched_core::current(), k),
    );
    loop {
        {
            let mut r = SYNC_RESULTS.lock();
            if let Some(Some(res)) = r[k] {
                r[k] = None;
                return res;
            }
        }
        sched_core::park(None);
    }
}

/// `rumpuser_iovread`/`iovwrite` on a disk: each iovec in turn, blocking.
///
/// # Safety
/// Every iovec is valid for its length (writable for reads).
pub unsafe fn iov(
    fd: c_int,
    iov: &[rumpuser_core::abi::IoVec],
    off: Option<u64>,
    write: bool,
) -> HyperResult<usize> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    let mut off = off.ok_or(Errno::EINVAL)?;
    let mut total = 0;
    for v in iov {
        check(i, write, off, v.iov_len)?;
        total += transfer(i, write, false, v.iov_base as usize, v.iov_len, off)?;
        off += v.iov_len as u64;
    }
    Ok(total)
}

/// `rumpuser_syncfd`: a flush when writes are to be synced.
pub fn sync(fd: c_int, write: bool) -> HyperResult<()> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    if write {
        flush(i)?;
    }
    Ok(())
}

/// The domain's virtual block devices as the Xen machine's
/// [`Disks`](rumpuser_pvh::host::Disks).
#[derive(Debug)]
pub struct Blkfront;

impl rumpuser_pvh::host::Disks for Blkfront {
    fn getfileinfo(name: &CStr) -> HyperResult<(u64, FileType)> {
        getfileinfo(name)
    }
    fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        open(name, flags)
    }
    fn close(fd: c_int) -> HyperResult<()> {
        close(fd)
    }
    unsafe fn iov(
        fd: c_int,
        v: &[rumpuser_core::abi::IoVec],
        off: Option<u64>,
        write: bool,
    ) -> HyperResult<usize> {
        // SAFETY: forwarded contract (iovecs valid for the call).
        unsafe { iov(fd, v, off, write) }
    }
    fn sync(fd: c_int, write: bool) -> HyperResult<()> {
        sync(fd, write)
    }
    fn bio(req: BioRequest) {
        bio(req)
    }
}
