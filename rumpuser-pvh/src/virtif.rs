//! NetBSD's `if_virt` hypercalls (`VIFHYPER_*` of
//! `sys/rump/net/lib/libvirtif/virtif_user.h`, revision 20140313, with
//! `VIRTIF_BASE=virt`): `rumpcomp_virt_create`, `_dying`, `_destroy` and
//! `_send`, delivering received frames through
//! `rump_virtif_virt_deliverpkt`, over any [`NetDevice`].
//!
//! This module knows nothing about the hardware: a platform registers its
//! network devices with [`register`] (bare metal: the virtio-net
//! functions, `rumpuser_baremetal::net`; Xen: `rumpuser-xen`'s netfront), and
//! interface `virtN` (the kernel's `ifconfig virtN create`,
//! or `rump_pub_netconfig_ifcreate("virtN")`) takes device `N`.
//!
//! # Receive
//!
//! Each interface has a green thread ("virtN") with an lwp of its own.
//! It sleeps until the device's interrupt wakes it ([`NetDevice::bind`]),
//! acknowledges it, takes up to [`BATCH`] frames off the device with
//! receive notifications off, then takes a virtual CPU once and hands
//! each frame to `rump_virtif_virt_deliverpkt` as an iovec over the
//! device's own receive buffers (one, or one per piece of a frame the
//! device received in several; the kernel copies them into an mbuf: the
//! only copy), gives the buffers back, and repeats until the device is
//! empty; then it turns notifications on, looks once more (a frame that
//! arrived in between is not left waiting), and sleeps. There is no
//! polling loop and no timer.
//!
//! # Transmit
//!
//! `rumpcomp_virt_send` is called holding a CPU with the frame as the
//! mbuf chain's iovec, which `if_virt` frees as soon as the call returns;
//! the device copies it into a transmit buffer of its own (one copy) and
//! the call returns without waiting for the device. When every transmit
//! buffer is in flight the caller releases its CPU and waits for the
//! device to finish one (the interface's thread wakes it); a device that
//! makes no progress for [`TX_STALL_NS`] has the frame dropped and
//! counted, so nothing hangs.
//!
//! # Detach
//!
//! `rumpcomp_virt_dying` tells the thread to stop; `rumpcomp_virt_destroy`
//! waits for it (with the CPU released), turns the device's interrupts
//! off and returns it to the registry, so `virtN` can be created again.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void, CStr};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_core::abi::IoVec;
use rumpuser_core::Errno;
use rumpuser_green::sched_core::{self, ThreadId};

/// Frames taken off the device per CPU acquisition.
pub const BATCH: usize = 64;
/// How long a sender waits for a transmit buffer before dropping.
pub const TX_STALL_NS: u64 = 1_000_000_000;

/// A received frame still in the device's buffer: valid until it is given
/// back with [`NetDevice::rx_recycle`].
#[derive(Debug)]
pub struct RxFrame {
    /// The Ethernet frame (no device header).
    pub data: *const u8,
    /// Its length.
    pub len: usize,
    /// The device's handle for the buffer.
    pub id: u32,
    /// The frame goes on in the next `RxFrame`: a device that received
    /// it in several buffers (Xen's netfront with scatter-gather) hands
    /// out one piece per buffer, and the pieces reach the kernel together
    /// as one iovec (no copy to join them).
    pub more: bool,
}

// SAFETY: the buffer belongs to the device and is not reused before the
// frame is recycled; the frame only moves between green threads of one CPU.
unsafe impl Send for RxFrame {}

/// Why a transmit did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Every transmit buffer is in flight: try again after room frees.
    Full,
    /// The frame does not fit a transmit buffer (dropped).
    TooLong,
    /// The device is gone (detached, broken): dropped.
    Gone,
}

/// A network device under `if_virt`. Every method is called from green
/// threads of the one CPU, never from an interrupt handler, and with the
/// interface's lock held (no method blocks).
pub trait NetDevice: Send {
    /// The device's Ethernet address (the interface takes it).
    fn mac(&self) -> [u8; 6];
    /// Routes the device's notifications (received frames; transmit room
    /// while [`tx_notify`](Self::tx_notify) asks for it) to thread `t`.
    fn bind(&mut self, t: ThreadId) -> Result<(), Errno>;
    /// Turns the device's notifications off and stops waking the thread.
    fn unbind(&mut self);
    /// Acknowledges the device's interrupt (called by the bound thread
    /// each time it wakes).
    fn ack(&mut self);
    /// The next received frame, if any, in the device's own buffer (the
    /// kernel copies it into an mbuf while delivering it). A frame in
    /// several buffers comes as several pieces, all but the last with
    /// [`RxFrame::more`]; once the first is returned, the others are
    /// returned by the next calls (never `None` in between).
    fn rx_pop(&mut self) -> Option<RxFrame>;
    /// Gives the buffers of `frames` back to the device (emptying it).
    fn rx_recycle(&mut self, frames: &mut Vec<RxFrame>);
    /// Receive notifications on or off. Turning them on returns whether
    /// frames are already waiting (look again before sleeping).
    fn rx_notify(&mut self, on: bool) -> bool;
    /// Queues one frame given as `segs`, the mbuf chain's pieces: they are
    /// only valid during the call (`if_virt` frees the chain when
    /// `rumpcomp_virt_send` returns), so the device copies them into a
    /// buffer of its own — at most once — rather than handing them to the
    /// hardware, which would have to finish with them before the call
    /// returned.
    fn transmit(&mut self, segs: &[&[u8]]) -> Result<(), TxError>;
    /// Collects finished transmissions; returns whether a transmit buffer
    /// is free.
    fn tx_reclaim(&mut self) -> bool;
    /// Transmit-room notifications on or off (on while a sender waits).
    fn tx_notify(&mut self, on: bool);
    /// Ring occupancy and interrupt count, for tests.
    fn state(&self) -> DeviceState;
    /// A line for `RUMPUSER_VERBOSE` boot output and tests.
    fn describe(&self) -> String;
}

/// What [`NetDevice::state`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// Receive buffers the device holds.
    pub rx_posted: usize,
    /// Receive buffers there are.
    pub rx_capacity: usize,
    /// Transmit buffers in flight.
    pub tx_in_flight: usize,
    /// Interrupts the device raised (acknowledged with work in them).
    pub interrupts: u64,
}

/// Per-interface counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the kernel.
    pub rx_frames: u64,
    /// Times the receive thread woke.
    pub rx_wakeups: u64,
    /// Times it took a CPU to deliver a batch.
    pub rx_batches: u64,
    /// Frames the device accepted for transmission.
    pub tx_frames: u64,
    /// Sends that had to wait for a transmit buffer.
    pub tx_waits: u64,
    /// Frames dropped (too long, device gone, stalled).
    pub tx_drops: u64,
}

#[derive(Default)]
struct Counters {
    rx_frames: AtomicU64,
    rx_wakeups: AtomicU64,
    rx_batches: AtomicU64,
    tx_frames: AtomicU64,
    tx_waits: AtomicU64,
    tx_drops: AtomicU64,
}

impl Counters {
    fn get(&self) -> Stats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            rx_frames: l(&self.rx_frames),
            rx_wakeups: l(&self.rx_wakeups),
            rx_batches: l(&self.rx_batches),
            tx_frames: l(&self.tx_frames),
            tx_waits: l(&self.tx_waits),
            tx_drops: l(&self.tx_drops),
        }
    }
}

struct Slot {
    dev: Option<Box<dyn NetDevice>>,
    stats: &'static Counters,
}

static DEVICES: spin::Mutex<Vec<Slot>> = spin::Mutex::new(Vec::new());

/// Adds a device; returns its number (`virtN`).
pub fn register(dev: Box<dyn NetDevice>) -> usize {
    let mut d = DEVICES.lock();
    d.push(Slot {
        dev: Some(dev),
        stats: Box::leak(Box::default()),
    });
    d.len() - 1
}

/// Devices registered.
pub fn count() -> usize {
    DEVICES.lock().len()
}

/// Counters of device `n` (interfaces made on it so far, together).
pub fn stats(n: usize) -> Option<Stats> {
    DEVICES.lock().get(n).map(|s| s.stats.get())
}

/// Interfaces that exist, by device number.
static ACTIVE: spin::Mutex<Vec<(usize, &'static Viu)>> = spin::Mutex::new(Vec::new());

fn with_device<T>(n: usize, f: impl FnOnce(&dyn NetDevice) -> T) -> Option<T> {
    {
        let d = DEVICES.lock();
        if let Some(dev) = d.get(n)?.dev.as_deref() {
            return Some(f(dev));
        }
    }
    let v = ACTIVE
        .lock()
        .iter()
        .find(|(i, _)| *i == n)
        .map(|(_, v)| *v)?;
    let g = v.dev.lock();
    g.as_deref().map(f)
}

/// What device `n` says about itself.
pub fn describe(n: usize) -> Option<String> {
    with_device(n, |d| d.describe())
}

/// Device `n`'s rings and interrupts.
pub fn device_state(n: usize) -> Option<DeviceState> {
    with_device(n, |d| d.state())
}

/// Whether an interface (`virtN`) currently uses device `n`.
pub fn in_use(n: usize) -> bool {
    ACTIVE.lock().iter().any(|(i, _)| *i == n)
}

/// `struct virtif_user`: one interface.
pub struct Viu {
    index: usize,
    sc: *mut c_void,
    dev: spin::Mutex<Option<Box<dyn NetDevice>>>,
    dying: AtomicBool,
    thread: spin::Mutex<Option<ThreadId>>,
    tx_waiters: spin::Mutex<Vec<ThreadId>>,
    stats: &'static Counters,
}

// SAFETY: `sc` is the kernel's softc pointer, only passed back to the
// kernel; everything else is behind locks or atomics, on one CPU.
unsafe impl Send for Viu {}
// SAFETY: as above.
unsafe impl Sync for Viu {}

type DeliverFn = unsafe extern "C" fn(*mut c_void, *mut IoVec, usize);

// A weak reference to if_virt's delivery function: only images that link
// `librumpnet_virtif` have it, and only they call `rumpcomp_virt_create`.
core::arch::global_asm!(
    ".pushsection .data.rumpuser_bm_virtif, \"aw\"",
    ".p2align 3",
    ".weak rump_virtif_virt_deliverpkt",
    ".globl __rumpuser_bm_virtif_deliver",
    "__rumpuser_bm_virtif_deliver: .quad rump_virtif_virt_deliverpkt",
    ".popsection",
);

extern "C" {
    static __rumpuser_bm_virtif_deliver: Option<DeliverFn>;
}

fn deliver_fn() -> Option<DeliverFn> {
    // SAFETY: a word of `.data` the linker filled (0 when the symbol is
    // absent), never written.
    unsafe { core::ptr::addr_of!(__rumpuser_bm_virtif_deliver).read() }
}

fn parse_unit(s: &str) -> Option<usize> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn create(devstr: &CStr, sc: *mut c_void, enaddr: &mut [u8; 6]) -> Result<*mut Viu, Errno> {
    let n = devstr
        .to_str()
        .ok()
        .and_then(parse_unit)
        .ok_or(Errno::ENXIO)?;
    let deliver_present = deliver_fn().is_some();
    let (dev, stats) = {
        let mut d = DEVICES.lock();
        let slot = d.get_mut(n).ok_or(Errno::ENXIO)?;
        (slot.dev.take().ok_or(Errno::EBUSY)?, slot.stats)
    };
    let give_back = |dev: Box<dyn NetDevice>| {
        DEVICES.lock()[n].dev = Some(dev);
    };
    if !deliver_present {
        give_back(dev);
        return Err(Errno::ENXIO);
    }
    *enaddr = dev.mac();
    let viu: &'static Viu = Box::leak(Box::new(Viu {
        index: n,
        sc,
        dev: spin::Mutex::new(Some(dev)),
        dying: AtomicBool::new(false),
        thread: spin::Mutex::new(None),
        tx_waiters: spin::Mutex::new(Vec::new()),
        stats,
    }));
    let name = alloc::format!("virt{n}");
    let t = match sched_core::spawn_closure(move || rx_thread(viu), &name, 0, true) {
        Ok(t) => t,
        Err(_) => {
            let dev = viu.dev.lock().take();
            // SAFETY: `viu` was leaked above and nothing else refers to it.
            drop(unsafe { Box::from_raw(viu as *const Viu as *mut Viu) });
            if let Some(d) = dev {
                give_back(d);
            }
            return Err(Errno::ENOMEM);
        }
    };
    *viu.thread.lock() = Some(t);
    ACTIVE.lock().push((n, viu));
    let bound = match viu.dev.lock().as_mut() {
        Some(d) => d.bind(t),
        None => Err(Errno::ENXIO),
    };
    if let Err(e) = bound {
        ACTIVE.lock().retain(|(i, _)| *i != n);
        viu.dying.store(true, Ordering::Release);
        sched_core::wake(t);
        let _ = rumpuser_core::sched::klock_wrap(|| sched_core::join(t));
        if let Some(d) = viu.dev.lock().take() {
            give_back(d);
        }
        // SAFETY: the thread has exited; nothing else refers to `viu`.
        drop(unsafe { Box::from_raw(viu as *const Viu as *mut Viu) });
        return Err(e);
    }
    Ok(viu as *const Viu as *mut Viu)
}

/// The interface's green thread.
fn rx_thread(v: &'static Viu) {
    // Delivery runs kernel code: an lwp of its own.
    let e = rumpuser_core::sched::adopt_helper_thread();
    if e != 0 {
        rumpuser_core::diag::report(format_args!("virt{}: newlwp failed: {e}", v.index));
    }
    let Some(deliver) = deliver_fn() else {
        return;
    };
    let mut batch: Vec<RxFrame> = Vec::with_capacity(BATCH);
    let mut iov: Vec<IoVec> = Vec::with_capacity(BATCH);
    loop {
        if v.dying.load(Ordering::Acquire) {
            break;
        }
        let sleep = {
            let mut g = v.dev.lock();
            let Some(d) = g.as_mut() else { break };
            d.ack();
            if d.tx_reclaim() {
                let w: Vec<ThreadId> = core::mem::take(&mut *v.tx_waiters.lock());
                if !w.is_empty() {
                    d.tx_notify(false);
                    for t in w {
                        sched_core::wake(t);
                    }
                }
            }
            d.rx_notify(false);
            // A batch ends after a frame's last piece.
            while batch.len() < BATCH || batch.last().is_some_and(|f| f.more) {
                match d.rx_pop() {
                    Some(f) => batch.push(f),
                    None => break,
                }
            }
            batch.is_empty() && !d.rx_notify(true)
        };
        if sleep {
            sched_core::park(None);
            v.stats.rx_wakeups.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if batch.is_empty() {
            continue;
        }
        iov.clear();
        iov.extend(batch.iter().map(|f| IoVec {
            iov_base: f.data as *mut c_void,
            iov_len: f.len,
        }));
        v.stats.rx_batches.fetch_add(1, Ordering::Relaxed);
        let mut frames = 0u64;
        rumpuser_core::sched::reacquire_cpu(0, core::ptr::null_mut());
        let mut start = 0;
        for (i, f) in batch.iter().enumerate() {
            if f.more {
                continue;
            }
            // SAFETY: if_virt's delivery with its softc and the iovec of
            // one frame's pieces (`iov[start..=i]`), over receive buffers
            // that stay valid (not recycled) until after the call; this
            // thread has an lwp and holds a CPU.
            unsafe { deliver(v.sc, iov[start..].as_mut_ptr(), i + 1 - start) };
            frames += 1;
            start = i + 1;
        }
        let _ = rumpuser_core::sched::release_cpu(core::ptr::null_mut());
        // Pieces of a frame whose end never came (a device breaking its
        // promise) are dropped with the rest of the batch.
        v.stats.rx_frames.fetch_add(frames, Ordering::Relaxed);
        if let Some(d) = v.dev.lock().as_mut() {
            d.rx_recycle(&mut batch);
        }
        batch.clear();
    }
    // Anything still held goes back to the device before it is unbound.
    if !batch.is_empty() {
        if let Some(d) = v.dev.lock().as_mut() {
            d.rx_recycle(&mut batch);
        }
    }
    if e == 0 {
        rumpuser_core::sched::release_helper_thread();
    }
}

fn send(v: &Viu, segs: &[&[u8]]) {
    let first = match v.dev.lock().as_mut() {
        Some(d) => d.transmit(segs),
        None => Err(TxError::Gone),
    };
    match first {
        Ok(()) => {
            v.stats.tx_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(TxError::Full) => {}
        Err(_) => {
            v.stats.tx_drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    v.stats.tx_waits.fetch_add(1, Ordering::Relaxed);
    let me = sched_core::current();
    let deadline = sched_core::now_ns() + TX_STALL_NS;
    // The frame stays valid: if_virt frees it only after we return.
    let sent = rumpuser_core::sched::klock_wrap(|| loop {
        {
            let mut g = v.dev.lock();
            let Some(d) = g.as_mut() else {
                break false;
            };
            if d.tx_reclaim() {
                match d.transmit(segs) {
                    Ok(()) => break true,
                    Err(TxError::Full) => {}
                    Err(_) => break false,
                }
            }
            if v.dying.load(Ordering::Acquire) || sched_core::now_ns() >= deadline {
                break false;
            }
            let mut w = v.tx_waiters.lock();
            if !w.contains(&me) {
                w.push(me);
            }
            d.tx_notify(true);
        }
        sched_core::park(Some(deadline));
    });
    v.tx_waiters.lock().retain(|&t| t != me);
    let c = if sent {
        &v.stats.tx_frames
    } else {
        &v.stats.tx_drops
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// `VIFHYPER_CREATE`: interface `virtN` on device `N` (the unit number as
/// a string); `enaddr` gets the device's address. `ENXIO` for no such
/// device (or an image without `if_virt`), `EBUSY` if an interface has it.
///
/// # Safety
/// C ABI: `devstr` is a C string, `enaddr` 6 writable bytes, `viup` a
/// writable pointer.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_virt_create(
    devstr: *const c_char,
    sc: *mut c_void,
    enaddr: *mut u8,
    viup: *mut *mut Viu,
) -> c_int {
    if devstr.is_null() || enaddr.is_null() || viup.is_null() {
        return Errno::EINVAL.raw();
    }
    // SAFETY: a C string from if_virt (the unit number).
    let s = unsafe { CStr::from_ptr(devstr) };
    // SAFETY: if_virt passes its 6-byte enaddr array (checked non-NULL).
    let mac = unsafe { &mut *enaddr.cast::<[u8; 6]>() };
    match create(s, sc, mac) {
        Ok(v) => {
            // SAFETY: checked non-NULL; if_virt's out-pointer.
            unsafe { viup.write(v) };
            0
        }
        Err(e) => e.raw(),
    }
}

/// `VIFHYPER_DYING`: the interface goes away; its thread stops.
///
/// # Safety
/// `viu` came from [`rumpcomp_virt_create`] and was not destroyed.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_virt_dying(viu: *mut Viu) -> c_int {
    // SAFETY: the caller's contract.
    let Some(v) = (unsafe { viu.as_ref() }) else {
        return Errno::EINVAL.raw();
    };
    v.dying.store(true, Ordering::Release);
    if let Some(t) = *v.thread.lock() {
        sched_core::wake(t);
    }
    for t in v.tx_waiters.lock().iter() {
        sched_core::wake(*t);
    }
    0
}

/// `VIFHYPER_DESTROY`: waits for the thread (CPU released), unbinds the
/// device and returns it to the registry.
///
/// # Safety
/// As [`rumpcomp_virt_dying`], which was called first; `viu` is not
/// used afterwards.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_virt_destroy(viu: *mut Viu) {
    if viu.is_null() {
        return;
    }
    // SAFETY: the caller's contract.
    let v = unsafe { &*viu };
    v.dying.store(true, Ordering::Release);
    if let Some(t) = v.thread.lock().take() {
        sched_core::wake(t);
        let _ = rumpuser_core::sched::klock_wrap(|| sched_core::join(t));
    }
    ACTIVE.lock().retain(|(i, _)| *i != v.index);
    if let Some(mut d) = v.dev.lock().take() {
        d.unbind();
        DEVICES.lock()[v.index].dev = Some(d);
    }
    // SAFETY: leaked by `create`; the thread is gone and the kernel does
    // not use `viu` after destroy.
    drop(unsafe { Box::from_raw(viu) });
}

/// `VIFHYPER_SEND`: transmits the frame in `iov` (see the module notes).
///
/// # Safety
/// `viu` is live; `iov` holds `iovlen` readable iovecs.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_virt_send(viu: *mut Viu, iov: *const IoVec, iovlen: usize) {
    // SAFETY: the caller's contract.
    let Some(v) = (unsafe { viu.as_ref() }) else {
        return;
    };
    if iov.is_null() && iovlen != 0 {
        return;
    }
    // SAFETY: `iovlen` iovecs from if_virt (the mbuf chain, <= 32).
    let iovs = unsafe { core::slice::from_raw_parts(iov, iovlen) };
    let mut segs: [&[u8]; 32] = [&[]; 32];
    let mut n = 0;
    for io in iovs.iter().filter(|io| io.iov_len > 0) {
        if n == segs.len() {
            v.stats.tx_drops.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // SAFETY: each iovec describes mbuf data valid for the call.
        segs[n] = unsafe { core::slice::from_raw_parts(io.iov_base as *const u8, io.iov_len) };
        n += 1;
    }
    send(v, &segs[..n]);
}
