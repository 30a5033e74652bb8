//! A network front end (`io/netif.h`) for the virtual interfaces the
//! toolstack gives a domU, behind NetBSD's `if_virt`: each `device/vif`
//! entry is a [`NetDevice`] of `rumpuser_pvh::virtif` (the
//! `VIFHYPER_*` hypercalls), so `virt0` is the first vif, `virt1` the
//! second, in the order of their xenstore device ids.
//!
//! * Connecting (at boot, [`probe`]): read `backend`, `backend-id` and
//!   `mac`, wait for the back end's `InitWait`, read its `feature-sg`
//!   and `feature-rx-copy` (required), grant it a transmit and a receive
//!   ring page (256 slots each) and the buffers below, allocate one event
//!   channel, fill the receive ring, write `tx-ring-ref`, `rx-ring-ref`,
//!   `event-channel`, `request-rx-copy = 1`, `feature-rx-notify = 1`,
//!   `feature-sg = 1` (we accept a packet spread over several receive
//!   slots) and `feature-no-csum-offload = 1` (`if_virt` has no checksum
//!   offload, so the back end must send complete checksums), say
//!   `Connected`, and wait (at most 10 s) for the back end to say so.
//! * Buffers are granted once, for as long as the device lives: 256
//!   receive pages (the back end copies a packet into one or more of
//!   them) and 128 transmit pages in 256 buffers of
//!   [`netif::TX_CHUNK`] bytes.
//! * Receive: the interface's thread (`if_virt`'s, bound to the event
//!   channel: an event wakes it, nothing polls) takes responses off the
//!   ring a packet at a time ([`netif::scan_rx`]) and hands the kernel
//!   its bytes where the back end put them, one piece per slot (the
//!   pieces of a multi-slot packet are delivered as one iovec); the pages
//!   go back on the ring when the kernel has copied them, with a
//!   notification only when the back end asked for one (`req_event`).
//!   Response notifications are off while the thread drains the ring
//!   (`rsp_event` far ahead) and on while it sleeps (at the response
//!   after the last one seen: the back end may publish the first slots
//!   of a packet before the rest, and the thread sleeps until a whole
//!   packet is there).
//! * Transmit: `if_virt` frees the frame's mbufs when the send returns,
//!   so the frame is copied once into free transmit buffers (one copy in
//!   every case): into one buffer, or, when the back end allows
//!   scatter-gather (`feature-sg`), into several consecutive slots for a
//!   frame longer than a buffer ([`netif::tx_slots`]); without it such a
//!   frame is dropped as too long. Finished buffers are collected on the
//!   next send; response notifications are on only while a sender waits
//!   for room.
//! * Detaching (`xl network-detach`): a green thread per vif watches the
//!   back end's `state`. When it goes to `Closing` (or disappears) the
//!   vif is gone: sends are dropped (`if_virt`'s send has no result to
//!   give), making the interface again fails with `ENXIO`, the front end
//!   says `Closing` and `Closed` (so the toolstack's detach completes
//!   without its forced path), waits (at most 10 s) for the back end to
//!   close, then ends its grants and frees the rings and buffers (a page
//!   whose grant the back end still holds, or that the kernel is copying
//!   from, is kept until it is safe, or for good).

use crate::abi::{self, NetifRxRequest, NetifRxResponse, NetifTxRequest, NetifTxResponse};
use crate::netif::{self, PAGE, TX_CHUNK};
use crate::{events, gnttab, xenstore as xs};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use rumpuser_core::Errno;
use rumpuser_green::sched_core::{self, ThreadId};
use rumpuser_pvh::heap;
use rumpuser_pvh::virtif::{self, DeviceState, NetDevice, RxFrame, TxError};

/// Slots per ring (both rings are one page).
const RING: usize = abi::NET_RX_RING_SIZE;
const _: () = assert!(abi::NET_TX_RING_SIZE == RING);
/// Receive pages: one per ring slot.
const RX_BUFS: usize = RING;
/// Transmit buffers: one per ring slot.
const TX_CHUNKS: usize = RING;
const CHUNKS_PER_PAGE: usize = PAGE / TX_CHUNK;
const TX_PAGES: usize = TX_CHUNKS / CHUNKS_PER_PAGE;
const TIMEOUT_NS: u64 = 10_000_000_000;

/// Where a receive page is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Buf {
    /// On the ring, for the back end to fill.
    Posted,
    /// Holding (a piece of) a packet not yet given back.
    Lent,
    /// Neither.
    Free,
}

struct RxBuf {
    page: usize,
    /// `None` once the grant has ended.
    gref: Option<u32>,
    state: Buf,
}

struct Page {
    addr: usize,
    gref: Option<u32>,
}

struct Inner {
    devid: u32,
    be: String,
    be_id: u16,
    mac: [u8; 6],
    /// The back end takes a frame over several transmit slots.
    sg: bool,
    port: u32,
    tx_ring: Page,
    rx_ring: Page,
    /// Private producer and consumer indexes.
    tx_prod: u32,
    tx_cons: u32,
    rx_prod: u32,
    rx_cons: u32,
    rx: Vec<RxBuf>,
    /// Receive ring index (mod `RING`) → the buffer posted there.
    rx_at: [u16; RING],
    rx_free: Vec<u16>,
    rx_posted: usize,
    /// Pieces of the packet being handed out.
    pending: VecDeque<RxFrame>,
    tx_pages: Vec<Page>,
    tx_free: Vec<u16>,
    tx_busy: [bool; TX_CHUNKS],
    /// The back end is gone and the grants have ended.
    torn: bool,
}

// SAFETY: `Inner` holds addresses (as integers and in `RxFrame`s) of
// memory only this platform's single CPU touches; the mutex around it
// serialises the green threads.
unsafe impl Send for Inner {}

/// One vif: its state behind a lock, shared by the [`NetDevice`] handle
/// (owned by `virtif`) and the back-end watcher thread.
struct Shared {
    inner: spin::Mutex<Inner>,
    fe: String,
    gone: AtomicBool,
    connected: AtomicBool,
    closed: AtomicBool,
    interrupts: AtomicU64,
    rx_multi: AtomicU64,
    tx_multi: AtomicU64,
    rx_errors: AtomicU64,
    tx_errors: AtomicU64,
}

static VIFS: spin::Mutex<Vec<&'static Shared>> = spin::Mutex::new(Vec::new());
static DETACHES: AtomicU32 = AtomicU32::new(0);

/// What [`stats`] reports about one vif.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// The back end said `Connected`.
    pub connected: bool,
    /// The back end went away.
    pub gone: bool,
    /// The front end has closed (grants ended).
    pub closed: bool,
    /// The back end allows scatter-gather on transmit.
    pub sg: bool,
    /// Event channel events acknowledged by the interface's thread.
    pub interrupts: u64,
    /// Packets received over several slots.
    pub rx_multi_slot: u64,
    /// Frames sent over several slots.
    pub tx_multi_slot: u64,
    /// Received packets dropped (an error slot, a bad offset).
    pub rx_errors: u64,
    /// Transmit slots the back end answered with an error.
    pub tx_errors: u64,
}

/// Vifs found at boot (`virt0` … in this order).
pub fn count() -> usize {
    VIFS.lock().len()
}

/// Counters and state of vif `n`.
pub fn stats(n: usize) -> Option<Stats> {
    let s = *VIFS.lock().get(n)?;
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Some(Stats {
        connected: s.connected.load(Ordering::Acquire),
        gone: s.gone.load(Ordering::Acquire),
        closed: s.closed.load(Ordering::Acquire),
        sg: s.inner.lock().sg,
        interrupts: l(&s.interrupts),
        rx_multi_slot: l(&s.rx_multi),
        tx_multi_slot: l(&s.tx_multi),
        rx_errors: l(&s.rx_errors),
        tx_errors: l(&s.tx_errors),
    })
}

/// Vifs closed because their back end went away.
pub fn detaches() -> u32 {
    DETACHES.load(Ordering::Relaxed)
}

// ---- the shared rings -------------------------------------------------

/// Header word `i` of a ring page: 0 `req_prod`, 1 `req_event`,
/// 2 `rsp_prod`, 3 `rsp_event`.
fn word(ring: usize, i: usize) -> &'static AtomicU32 {
    // SAFETY: `ring` is one of our page-aligned ring pages (header words
    // 0..4), shared with the back end, which updates them atomically;
    // callers use it only before the page is freed (`torn` checked).
    unsafe { &*((ring + i * 4) as *const AtomicU32) }
}

fn entry(ring: usize, idx: u32, size: usize) -> usize {
    ring + abi::SRING_HEADER + (idx as usize % RING) * size
}

fn read_rx_rsp(ring: usize, idx: u32) -> NetifRxResponse {
    // SAFETY: an entry of our receive ring page (8-byte entries from
    // offset 64), published by the back end before `rsp_prod`, which the
    // caller loaded with acquire.
    unsafe { (entry(ring, idx, abi::NETIF_RX_ENTRY) as *const NetifRxResponse).read_volatile() }
}

fn read_tx_rsp(ring: usize, idx: u32) -> NetifTxResponse {
    // SAFETY: as `read_rx_rsp`, for the transmit ring (12-byte entries).
    unsafe { (entry(ring, idx, abi::NETIF_TX_ENTRY) as *const NetifTxResponse).read_volatile() }
}

/// Publishes the requests up to `new` on `ring`; notifies the back end
/// if it asked (`req_event`).
fn push_requests(ring: usize, new: u32, port: u32) {
    let old = word(ring, 0).load(Ordering::Relaxed);
    fence(Ordering::Release);
    word(ring, 0).store(new, Ordering::Release);
    fence(Ordering::SeqCst);
    if netif::must_notify(old, new, word(ring, 1).load(Ordering::Acquire)) {
        events::send(port);
    }
}

fn free_page(addr: usize) {
    if let Some(p) = NonNull::new(addr as *mut u8) {
        // SAFETY: a page `alloc_page` returned, whose grant has ended (or
        // was never made) and which nothing refers to any more.
        unsafe { heap::free(p, PAGE) };
    }
}

fn alloc_page() -> Option<usize> {
    heap::alloc_zeroed(PAGE, PAGE).map(|p| p.as_ptr() as usize)
}

impl Inner {
    fn chunk(&self, id: u16) -> (usize, u32, u16) {
        let p = &self.tx_pages[id as usize / CHUNKS_PER_PAGE];
        let off = (id as usize % CHUNKS_PER_PAGE) * TX_CHUNK;
        (p.addr + off, p.gref.unwrap_or(0), off as u16)
    }

    /// Posts every free receive page.
    fn post_free(&mut self) {
        if self.rx_free.is_empty() || self.torn {
            return;
        }
        while let Some(b) = self.rx_free.pop() {
            let idx = self.rx_prod;
            let slot = idx as usize % RING;
            self.rx_at[slot] = b;
            let buf = &mut self.rx[b as usize];
            buf.state = Buf::Posted;
            let req = NetifRxRequest {
                id: slot as u16,
                _pad: 0,
                gref: buf.gref.unwrap_or(0),
            };
            // SAFETY: a request entry of our receive ring page that the
            // back end has answered (at most `RING` are posted: one per
            // buffer); it reads it only after `req_prod` moves.
            unsafe {
                (entry(self.rx_ring.addr, idx, abi::NETIF_RX_ENTRY) as *mut NetifRxRequest)
                    .write_volatile(req)
            };
            self.rx_prod = idx.wrapping_add(1);
            self.rx_posted += 1;
        }
        push_requests(self.rx_ring.addr, self.rx_prod, self.port);
    }

    /// Collects finished transmissions.
    fn reclaim(&mut self, s: &Shared) {
        if self.torn {
            return;
        }
        let prod = word(self.tx_ring.addr, 2).load(Ordering::Acquire);
        while self.tx_cons != prod {
            let r = read_tx_rsp(self.tx_ring.addr, self.tx_cons);
            self.tx_cons = self.tx_cons.wrapping_add(1);
            if r.status < 0 {
                s.tx_errors.fetch_add(1, Ordering::Relaxed);
            }
            let id = r.id as usize;
            if id < TX_CHUNKS && self.tx_busy[id] {
                self.tx_busy[id] = false;
                self.tx_free.push(id as u16);
            }
        }
    }

    /// Takes the next packet off the receive ring into `pending`; false
    /// when there is none (complete).
    fn take_packet(&mut self, s: &Shared) -> bool {
        let ring = self.rx_ring.addr;
        let prod = word(ring, 2).load(Ordering::Acquire);
        let Some(p) = netif::scan_rx(self.rx_cons, prod, |i| read_rx_rsp(ring, i)) else {
            return false;
        };
        let mut pieces = 0;
        for k in 0..p.slots {
            let idx = self.rx_cons.wrapping_add(k);
            let b = self.rx_at[idx as usize % RING];
            let r = read_rx_rsp(ring, idx);
            let buf = &mut self.rx[b as usize];
            if p.error.is_none() && p.is_data(k) && r.status > 0 {
                buf.state = Buf::Lent;
                self.pending.push_back(RxFrame {
                    data: (buf.page + r.offset as usize) as *const u8,
                    len: r.status as usize,
                    id: b as u32,
                    more: true,
                });
                pieces += 1;
            } else {
                buf.state = Buf::Free;
                self.rx_free.push(b);
            }
        }
        self.rx_cons = self.rx_cons.wrapping_add(p.slots);
        self.rx_posted -= p.slots as usize;
        if let Some(last) = self.pending.back_mut() {
            last.more = false;
        }
        if p.error.is_some() {
            s.rx_errors.fetch_add(1, Ordering::Relaxed);
        }
        if pieces > 1 {
            s.rx_multi.fetch_add(1, Ordering::Relaxed);
        }
        self.post_free();
        true
    }

    /// Ends every grant and frees what is safe to free (see the module
    /// docs); the event channel is closed.
    fn teardown(&mut self) {
        if self.torn {
            return;
        }
        self.torn = true;
        events::close(self.port);
        for p in core::iter::once(&mut self.tx_ring)
            .chain(core::iter::once(&mut self.rx_ring))
            .chain(self.tx_pages.iter_mut())
        {
            if let Some(g) = p.gref {
                if gnttab::end(g) {
                    p.gref = None;
                    free_page(p.addr);
                }
            }
        }
        // Pieces not yet handed out are not the kernel's.
        for f in self.pending.drain(..) {
            self.rx[f.id as usize].state = Buf::Free;
        }
        for b in &mut self.rx {
            if let Some(g) = b.gref {
                if gnttab::end(g) {
                    b.gref = None;
                    if b.state != Buf::Lent {
                        free_page(b.page);
                    }
                }
            }
        }
        self.rx_free.clear();
        self.tx_free.clear();
    }
}

// ---- the NetDevice ----------------------------------------------------

/// The handle `virtif` owns.
struct Netfront(&'static Shared);

impl NetDevice for Netfront {
    fn mac(&self) -> [u8; 6] {
        self.0.inner.lock().mac
    }

    fn bind(&mut self, t: ThreadId) -> Result<(), Errno> {
        let g = self.0.inner.lock();
        if g.torn || self.0.gone.load(Ordering::Acquire) {
            return Err(Errno::ENXIO);
        }
        events::bind_waiter(g.port, Some(t));
        Ok(())
    }

    fn unbind(&mut self) {
        let mut g = self.0.inner.lock();
        if g.torn {
            return;
        }
        events::bind_waiter(g.port, None);
        let (tx, rx) = (g.tx_ring.addr, g.rx_ring.addr);
        word(tx, 3).store(netif::quiet_event(g.tx_cons), Ordering::Release);
        word(rx, 3).store(netif::quiet_event(g.rx_cons), Ordering::Release);
        // Pieces taken off the ring and not handed out go back on it.
        while let Some(f) = g.pending.pop_front() {
            g.rx[f.id as usize].state = Buf::Free;
            g.rx_free.push(f.id as u16);
        }
        g.post_free();
    }

    fn ack(&mut self) {
        let port = self.0.inner.lock().port;
        if events::take_fired(port) {
            self.0.interrupts.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn rx_pop(&mut self) -> Option<RxFrame> {
        let mut g = self.0.inner.lock();
        if g.torn {
            return None;
        }
        loop {
            if let Some(f) = g.pending.pop_front() {
                return Some(f);
            }
            if !g.take_packet(self.0) {
                return None;
            }
        }
    }

    fn rx_recycle(&mut self, frames: &mut Vec<RxFrame>) {
        let mut g = self.0.inner.lock();
        for f in frames.drain(..) {
            let b = f.id as usize;
            if g.torn {
                let buf = &mut g.rx[b];
                buf.state = Buf::Free;
                if buf.gref.is_none() {
                    free_page(buf.page);
                }
                continue;
            }
            g.rx[b].state = Buf::Free;
            g.rx_free.push(b as u16);
        }
        g.post_free();
    }

    fn rx_notify(&mut self, on: bool) -> bool {
        let g = self.0.inner.lock();
        if g.torn {
            return false;
        }
        let ring = g.rx_ring.addr;
        if !on {
            word(ring, 3).store(netif::quiet_event(g.rx_cons), Ordering::Release);
            return false;
        }
        if !g.pending.is_empty() {
            return true;
        }
        // Ask for an event at the next response after those seen, then
        // look again. Only a whole packet counts: the back end may
        // publish a multi-slot packet's first slots before the others.
        let mut seen = word(ring, 2).load(Ordering::Acquire);
        loop {
            if netif::scan_rx(g.rx_cons, seen, |i| read_rx_rsp(ring, i)).is_some() {
                return true;
            }
            word(ring, 3).store(seen.wrapping_add(1), Ordering::Release);
            fence(Ordering::SeqCst);
            let now = word(ring, 2).load(Ordering::Acquire);
            if now == seen {
                return false;
            }
            seen = now;
        }
    }

    fn transmit(&mut self, segs: &[&[u8]]) -> Result<(), TxError> {
        if self.0.gone.load(Ordering::Acquire) {
            return Err(TxError::Gone);
        }
        let mut g = self.0.inner.lock();
        if g.torn {
            return Err(TxError::Gone);
        }
        let len: usize = segs.iter().map(|s| s.len()).sum();
        let n = netif::tx_slots(len, g.sg).map_err(|_| TxError::TooLong)?;
        if g.tx_free.len() < n {
            g.reclaim(self.0);
            if g.tx_free.len() < n {
                return Err(TxError::Full);
            }
        }
        let (mut si, mut so) = (0usize, 0usize);
        for k in 0..n {
            let Some(id) = g.tx_free.pop() else {
                return Err(TxError::Full);
            };
            g.tx_busy[id as usize] = true;
            let (size, flags, bytes) = netif::tx_slot(len, k, n);
            let (dst, gref, offset) = g.chunk(id);
            let mut done = 0;
            while done < bytes {
                while so >= segs[si].len() {
                    si += 1;
                    so = 0;
                }
                let take = (segs[si].len() - so).min(bytes - done);
                // SAFETY: `dst` is transmit buffer `id` (TX_CHUNK bytes,
                // `bytes <= TX_CHUNK`), not in flight; the source is the
                // caller's frame, valid for the call.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        segs[si].as_ptr().add(so),
                        (dst + done) as *mut u8,
                        take,
                    )
                };
                done += take;
                so += take;
            }
            let req = NetifTxRequest {
                gref,
                offset,
                flags,
                id,
                size,
            };
            let idx = g.tx_prod;
            // SAFETY: a request entry of our transmit ring page that the
            // back end has answered (a slot per buffer, `TX_CHUNKS` of
            // them); it reads it only after `req_prod` moves.
            unsafe {
                (entry(g.tx_ring.addr, idx, abi::NETIF_TX_ENTRY) as *mut NetifTxRequest)
                    .write_volatile(req)
            };
            g.tx_prod = idx.wrapping_add(1);
        }
        push_requests(g.tx_ring.addr, g.tx_prod, g.port);
        if n > 1 {
            self.0.tx_multi.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn tx_reclaim(&mut self) -> bool {
        let mut g = self.0.inner.lock();
        if g.torn || self.0.gone.load(Ordering::Acquire) {
            // A waiting sender tries again and is told the vif is gone.
            return true;
        }
        g.reclaim(self.0);
        !g.tx_free.is_empty()
    }

    fn tx_notify(&mut self, on: bool) {
        let g = self.0.inner.lock();
        if g.torn {
            return;
        }
        let ring = g.tx_ring.addr;
        if !on {
            word(ring, 3).store(netif::quiet_event(g.tx_cons), Ordering::Release);
            return;
        }
        word(ring, 3).store(g.tx_cons.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        if word(ring, 2).load(Ordering::Acquire) != g.tx_cons {
            // Answers that came before the event index moved raise no
            // event: wake the interface's thread to collect them.
            events::raise(g.port);
        }
    }

    fn state(&self) -> DeviceState {
        let g = self.0.inner.lock();
        DeviceState {
            rx_posted: g.rx_posted,
            rx_capacity: RX_BUFS,
            tx_in_flight: if g.torn {
                0
            } else {
                TX_CHUNKS - g.tx_free.len()
            },
            interrupts: self.0.interrupts.load(Ordering::Relaxed),
        }
    }

    fn describe(&self) -> String {
        let g = self.0.inner.lock();
        let m = g.mac;
        format!(
            "netfront vif {} (back end {} in domain {}, port {}) MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, \
             transmit {}",
            g.devid,
            g.be,
            g.be_id,
            g.port,
            m[0],
            m[1],
            m[2],
            m[3],
            m[4],
            m[5],
            if g.sg {
                "scatter-gather"
            } else {
                "one buffer a frame"
            }
        )
    }
}

// ---- connecting and detaching -----------------------------------------

fn read_num(path: &str) -> Option<u64> {
    xs::read(path).ok()?.trim().parse().ok()
}

/// Waits (at most 10 s) until the back end's state is at least `want`;
/// returns it (`None`: no state node).
fn wait_backend_state(be: &str, want: u32) -> Result<Option<u32>, Errno> {
    let until = sched_core::now_ns() + TIMEOUT_NS;
    loop {
        let s = read_num(&format!("{be}/state")).map(|v| v as u32);
        if s.is_none_or(|s| s >= want) {
            return Ok(s);
        }
        if sched_core::now_ns() >= until {
            return Err(Errno::ETIMEDOUT);
        }
        sched_core::sleep_for(2_000_000);
    }
}

/// A zeroed page granted to domain `be` (read-only for it if `ro`).
fn granted_page(be: u16, ro: bool) -> Result<Page, &'static str> {
    let addr = alloc_page().ok_or("out of memory")?;
    match gnttab::grant(be, addr as u64, ro) {
        Some(g) => Ok(Page {
            addr,
            gref: Some(g),
        }),
        None => {
            free_page(addr);
            Err("out of grant entries")
        }
    }
}

/// Allocates and grants the rings and buffers of `g` (the transmit
/// pages read-only); on failure the caller's `teardown` undoes what was
/// made.
fn allocate(g: &mut Inner) -> Result<(), &'static str> {
    g.tx_ring = granted_page(g.be_id, false)?;
    g.rx_ring = granted_page(g.be_id, false)?;
    for ring in [g.tx_ring.addr, g.rx_ring.addr] {
        word(ring, 1).store(1, Ordering::Relaxed); // req_event
        word(ring, 3).store(netif::quiet_event(0), Ordering::Relaxed); // rsp_event
    }
    for _ in 0..TX_PAGES {
        let p = granted_page(g.be_id, true)?;
        g.tx_pages.push(p);
    }
    g.tx_free = (0..TX_CHUNKS as u16).rev().collect();
    for b in 0..RX_BUFS {
        let p = granted_page(g.be_id, false)?;
        g.rx.push(RxBuf {
            page: p.addr,
            gref: p.gref,
            state: Buf::Free,
        });
        g.rx_free.push((RX_BUFS - 1 - b) as u16);
    }
    Ok(())
}

/// Connects to the back end of vif `devid` (see the module docs).
fn connect(devid: u32) -> Result<&'static Shared, String> {
    let fe = format!("device/vif/{devid}");
    let be = xs::read(&format!("{fe}/backend")).map_err(|e| format!("backend: {e}"))?;
    let be_id = read_num(&format!("{fe}/backend-id")).ok_or("no backend-id")? as u16;
    let mac = xs::read(&format!("{fe}/mac"))
        .ok()
        .and_then(|m| netif::parse_mac(&m))
        .ok_or("no MAC address")?;
    match wait_backend_state(&be, 2) {
        Ok(Some(2..=4)) => {}
        Ok(s) => return Err(format!("the back end is in state {s:?}")),
        Err(_) => return Err("the back end did not reach InitWait in 10 s".into()),
    }
    if read_num(&format!("{be}/feature-rx-copy")) != Some(1) {
        return Err("the back end cannot copy into our pages (no feature-rx-copy)".into());
    }
    let sg = read_num(&format!("{be}/feature-sg")) == Some(1);
    let port = events::alloc_unbound(be_id).map_err(|e| format!("event channel: {e}"))?;
    let mut g = Inner {
        devid,
        be: be.clone(),
        be_id,
        mac,
        sg,
        port,
        tx_ring: Page {
            addr: 0,
            gref: None,
        },
        rx_ring: Page {
            addr: 0,
            gref: None,
        },
        tx_prod: 0,
        tx_cons: 0,
        rx_prod: 0,
        rx_cons: 0,
        rx: Vec::with_capacity(RX_BUFS),
        rx_at: [0; RING],
        rx_free: Vec::with_capacity(RX_BUFS),
        rx_posted: 0,
        pending: VecDeque::new(),
        tx_pages: Vec::with_capacity(TX_PAGES),
        tx_free: Vec::new(),
        tx_busy: [false; TX_CHUNKS],
        torn: false,
    };
    if let Err(e) = allocate(&mut g) {
        g.teardown();
        return Err(e.into());
    }
    g.post_free();
    let keys = [
        ("tx-ring-ref", format!("{}", g.tx_ring.gref.unwrap_or(0))),
        ("rx-ring-ref", format!("{}", g.rx_ring.gref.unwrap_or(0))),
        ("event-channel", format!("{port}")),
        ("request-rx-copy", "1".into()),
        ("feature-rx-notify", "1".into()),
        ("feature-sg", "1".into()),
        ("feature-no-csum-offload", "1".into()),
        ("state", "4".into()),
    ];
    for (k, v) in keys {
        if let Err(e) = xs::write(&format!("{fe}/{k}"), &v) {
            g.teardown();
            return Err(format!("writing {fe}/{k}: {e}"));
        }
    }
    let s: &'static Shared = Box::leak(Box::new(Shared {
        inner: spin::Mutex::new(g),
        fe,
        gone: AtomicBool::new(false),
        connected: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        interrupts: AtomicU64::new(0),
        rx_multi: AtomicU64::new(0),
        tx_multi: AtomicU64::new(0),
        rx_errors: AtomicU64::new(0),
        tx_errors: AtomicU64::new(0),
    }));
    match wait_backend_state(&be, 4) {
        Ok(Some(4)) => s.connected.store(true, Ordering::Release),
        Ok(st) => {
            return Err(format!(
                "the back end went to state {st:?} instead of Connected"
            ))
        }
        Err(_) => rumpuser_core::diag::report(format_args!(
            "netfront: vif {devid}: the back end has not said Connected in 10 s; frames wait on the rings"
        )),
    }
    if sched_core::spawn_closure(move || watch_backend(s), "netfront-watch", 0, false).is_err() {
        rumpuser_core::diag::report(format_args!(
            "netfront: no thread to watch vif {devid}'s back end; a detach will not be noticed"
        ));
    }
    Ok(s)
}

/// Watches the back end's `state` (see the module docs): `Connected`
/// is noted; `Closing`, `Closed` or no state at all ends the vif.
fn watch_backend(s: &'static Shared) {
    let (be, devid, port) = {
        let g = s.inner.lock();
        (g.be.clone(), g.devid, g.port)
    };
    let path = format!("{be}/state");
    let token = format!("netfront-{devid}");
    if let Err(e) = xs::watch(&path, &token) {
        rumpuser_core::diag::report(format_args!(
            "netfront: cannot watch {path} ({e}); a detach of vif {devid} will not be noticed"
        ));
        return;
    }
    loop {
        // No deadline: an idle watcher keeps no timer pending.
        if xs::wait_watch(&token, xs::FOREVER).is_err() {
            return;
        }
        match read_num(&path) {
            Some(4) => s.connected.store(true, Ordering::Release),
            Some(st) if st < 5 => {}
            _ => break,
        }
    }
    s.gone.store(true, Ordering::Release);
    let _ = xs::unwatch(&path, &token);
    // The interface's thread (and any sender waiting for room) looks again.
    events::raise(port);
    // Our state node is written only while it exists: after a forced
    // detach the toolstack has removed the directory.
    let say = |state: &str| {
        let p = format!("{}/state", s.fe);
        if xs::read(&p).is_ok() {
            let _ = xs::write(&p, state);
        }
    };
    say("5");
    say("6");
    // The back end unmaps the rings and lets go of the buffers when it
    // closes.
    let until = sched_core::now_ns() + TIMEOUT_NS;
    while read_num(&path).is_some_and(|st| st < 6) && sched_core::now_ns() < until {
        sched_core::sleep_for(20_000_000);
    }
    s.inner.lock().teardown();
    s.closed.store(true, Ordering::Release);
    DETACHES.fetch_add(1, Ordering::Relaxed);
}

/// Connects every vif the toolstack gave this domain and registers it
/// with `virtif` (at boot, in the thread "main"; nothing without a
/// xenstore).
pub fn probe() {
    if !xs::available() {
        return;
    }
    let mut ids: Vec<u32> = xs::directory("device/vif")
        .unwrap_or_default()
        .iter()
        .filter_map(|d| d.parse().ok())
        .collect();
    ids.sort_unstable();
    let verbose =
        rumpuser_pvh::cmdline::param(crate::start::cmdline(), "RUMPUSER_VERBOSE") == Some("1");
    for id in ids {
        match connect(id) {
            Ok(s) => {
                let d = Netfront(s);
                let desc = d.describe();
                let n = virtif::register(Box::new(d));
                VIFS.lock().push(s);
                if verbose {
                    crate::xprintln!("rumpuser-xen: virt{n} = {desc}");
                }
            }
            Err(e) => crate::xprintln!("rumpuser-xen: vif {id}: {e} (skipped)"),
        }
    }
}
