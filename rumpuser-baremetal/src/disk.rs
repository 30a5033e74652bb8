//! Disks for `rumpuser_open`/`getfileinfo`/`bio`/`iovread`/`iovwrite`/
//! `syncfd`/`close`: the virtio-blk devices on PCI bus 0 (unless NetBSD's
//! `ld` driver is to have them, [`crate::pci::virtio_blk_driver`]).
//!
//! # Naming
//!
//! The devices are numbered in PCI order (device, function) as `virtio0`,
//! `virtio1`, …; `rumpuser_getfileinfo("virtio0")` reports a block device
//! of the disk's size and `rumpuser_open("virtio0", …)` returns the
//! descriptor `64 + 0` (the same one for every open). A kernel uses them
//! as usual, e.g. `rump_pub_etfs_register("/dev/ld0", "virtio0",
//! RUMP_ETFS_BLK)`. Any other name is `ENOENT`; `CREATE|EXCL` is `EEXIST`;
//! opening a read-only disk for writing is `EROFS`.
//!
//! # I/O
//!
//! `rumpuser_bio` validates the request (bad descriptor `EBADF`; offset or
//! length not a multiple of 512, or any part beyond the end of the disk,
//! `EINVAL`; writes to a read-only disk `EROFS`, each delivered through
//! `biodone`), queues it on the device and returns at once. The device
//! interrupts; the green thread "virtio-blk" (woken through [`crate::irq`])
//! acknowledges it, collects the completions, chains a FLUSH after every
//! successful `BIO_SYNC` write, and calls `biodone` holding a virtual CPU
//! with its own lwp (contract 3.5), in the order the device finished.
//! Requests beyond the ring's capacity wait in a FIFO. If an interrupt
//! were ever lost, the thread also looks every 100 ms while requests are
//! outstanding (counted in [`Stats::watchdog`]).
//!
//! `iovread`/`iovwrite` (sector-aligned offset and lengths) and `syncfd`
//! (a FLUSH) go through the same queue and block the calling green thread.

use crate::blk::{Blk, Op, Req, Status, SECTOR};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ffi::{c_int, CStr};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_core::abi::IoVec;
use rumpuser_core::bio::{BioDone, BioRequest};
use rumpuser_core::types::{AccessMode, BioOp, FileType, OpenFlags};
use rumpuser_core::{Errno, HyperResult};
use rumpuser_green::sched_core::{self, ThreadId};
use virtio_drivers::transport::pci::bus::PciRoot;
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::DeviceType;

/// Descriptor of `virtio0`; `virtioN` is `FD_BASE + N`.
pub const FD_BASE: c_int = 64;
/// Most disks used.
pub const MAX_DISKS: usize = 8;
/// Watchdog period while requests are outstanding.
const WATCHDOG_NS: u64 = 100_000_000;

/// A blocked green thread waiting for its own request.
struct Waiter {
    tid: ThreadId,
    result: spin::Mutex<Option<Result<usize, Errno>>>,
}

/// Who gets a completion.
enum Ctx {
    /// A kernel bio: bytes to report, whether a flush must follow.
    Bio {
        done: BioDone,
        bytes: usize,
        sync: bool,
    },
    /// A thread blocked in iovread/iovwrite/syncfd.
    Wait { w: Arc<Waiter>, bytes: usize },
}

struct Disk {
    blk: Blk<Ctx>,
    irq: u8,
    opens: u32,
    backlog: VecDeque<Box<Req<Ctx>>>,
}

/// Counters for tests and the boot line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Requests submitted to a device (flushes included).
    pub submitted: u64,
    /// Requests completed.
    pub completed: u64,
    /// Completions collected after an interrupt.
    pub by_interrupt: u64,
    /// Completions collected by the 100 ms watchdog instead.
    pub watchdog: u64,
    /// Device interrupts taken (all disks).
    pub interrupts: u64,
    /// FLUSH requests completed (after `BIO_SYNC` writes, `syncfd`, `close`).
    pub flushes: u64,
}

static DISKS: spin::Mutex<Vec<Disk>> = spin::Mutex::new(Vec::new());
static SERVICE: AtomicU64 = AtomicU64::new(0);
static SUBMITTED: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static BY_IRQ: AtomicU64 = AtomicU64::new(0);
static WATCHDOG: AtomicU64 = AtomicU64::new(0);
static FLUSHES: AtomicU64 = AtomicU64::new(0);
static WATCHDOG_WOKE: AtomicBool = AtomicBool::new(false);
static IRQ: crate::irq::IrqOwner = crate::irq::IrqOwner::new();

/// Finds and initialises the virtio-blk devices on PCI bus 0, unless
/// NetBSD's `ld` is to drive them ([`crate::pci::virtio_blk_driver`]).
pub fn probe() {
    if crate::pci::virtio_blk_driver() == crate::pci::Driver::NetBsd {
        if crate::start::verbose() {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: virtio-blk devices left to NetBSD's ld driver"
            );
        }
        return;
    }
    let mut root = PciRoot::new(crate::pci::PortCam);
    let mut found = Vec::new();
    for (df, info) in root.enumerate_bus(0) {
        if virtio_device_type(&info) == Some(DeviceType::Block) {
            found.push(df);
        }
    }
    let mut disks = DISKS.lock();
    for df in found {
        if disks.len() == MAX_DISKS {
            break;
        }
        let (line, pin) = crate::pci::interrupt_line(df);
        let transport = match PciTransport::new::<crate::pci::MetalHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                rumpuser_pvh::kprintln!("rumpuser-baremetal: virtio-blk {df}: {e:?} (skipped)");
                continue;
            }
        };
        let blk = match Blk::new(transport) {
            Ok(b) => b,
            Err(e) => {
                rumpuser_pvh::kprintln!("rumpuser-baremetal: virtio-blk {df}: {e:?} (skipped)");
                continue;
            }
        };
        crate::pci::claim(df);
        if pin == 0 || line >= 16 {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: virtio-blk {df}: no legacy interrupt line (pin {pin}, line {line}); skipped"
            );
            continue;
        }
        if crate::start::verbose() {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: virtio{} = PCI {df}, {} sectors{}, IRQ {line}",
                disks.len(),
                blk.capacity(),
                if blk.readonly() { ", read-only" } else { "" },
            );
        }
        disks.push(Disk {
            blk,
            irq: line,
            opens: 0,
            backlog: VecDeque::new(),
        });
    }
}

/// Number of disks found.
pub fn count() -> usize {
    DISKS.lock().len()
}

/// Counters since boot.
pub fn stats() -> Stats {
    let d = DISKS.lock();
    let mut irqs = 0;
    let mut seen = [false; 16];
    for disk in d.iter() {
        if !seen[disk.irq as usize] {
            seen[disk.irq as usize] = true;
            irqs += crate::irq::count(disk.irq);
        }
    }
    Stats {
        submitted: SUBMITTED.load(Ordering::Relaxed),
        completed: COMPLETED.load(Ordering::Relaxed),
        by_interrupt: BY_IRQ.load(Ordering::Relaxed),
        watchdog: WATCHDOG.load(Ordering::Relaxed),
        interrupts: irqs,
        flushes: FLUSHES.load(Ordering::Relaxed),
    }
}

fn index_of(name: &CStr) -> Option<usize> {
    let s = name.to_str().ok()?;
    let n = s.strip_prefix("virtio")?;
    if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
        return None;
    }
    let i: usize = n.parse().ok()?;
    (i < count()).then_some(i)
}

fn disk_of(fd: c_int) -> Option<usize> {
    let i = fd.checked_sub(FD_BASE)?;
    let i = usize::try_from(i).ok()?;
    let d = DISKS.lock();
    d.get(i).filter(|d| d.opens > 0).map(|_| i)
}

/// `rumpuser_getfileinfo`.
pub fn getfileinfo(name: &CStr) -> HyperResult<(u64, FileType)> {
    let i = index_of(name).ok_or(Errno::ENOENT)?;
    let size = DISKS.lock()[i].blk.capacity() * SECTOR;
    Ok((size, FileType::Block))
}

/// `rumpuser_open`.
pub fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
    let i = index_of(name).ok_or(Errno::ENOENT)?;
    if flags.create && flags.exclusive {
        return Err(Errno::EEXIST);
    }
    let mut d = DISKS.lock();
    if flags.access != AccessMode::ReadOnly && d[i].blk.readonly() {
        return Err(Errno::EROFS);
    }
    d[i].opens += 1;
    Ok(FD_BASE + i as c_int)
}

/// `rumpuser_close`: flushes the disk's cache when the last user closes it.
pub fn close(fd: c_int) -> HyperResult<()> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    let last = {
        let mut d = DISKS.lock();
        d[i].opens -= 1;
        d[i].opens == 0
    };
    if last {
        let _ = wait_for(i, Op::Flush, 0, core::ptr::null_mut(), 0);
    }
    Ok(())
}

/// `rumpuser_syncfd`: a FLUSH when writes are to be synced.
pub fn sync(fd: c_int, write: bool) -> HyperResult<()> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    if write {
        wait_for(i, Op::Flush, 0, core::ptr::null_mut(), 0)?;
    }
    Ok(())
}

/// Checks a transfer against the disk; returns the start sector.
fn check(i: usize, write: bool, off: u64, len: usize) -> Result<u64, Errno> {
    let d = DISKS.lock();
    let blk = &d[i].blk;
    if write && blk.readonly() {
        return Err(Errno::EROFS);
    }
    if !off.is_multiple_of(SECTOR) || !(len as u64).is_multiple_of(SECTOR) {
        return Err(Errno::EINVAL);
    }
    let end = off.checked_add(len as u64).ok_or(Errno::EINVAL)?;
    if end > blk.capacity() * SECTOR {
        return Err(Errno::EINVAL);
    }
    Ok(off / SECTOR)
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
    let sector = match check(i, write, off, len) {
        Ok(s) => s,
        Err(e) => {
            done.complete(Err(e));
            return;
        }
    };
    if len == 0 {
        done.complete(Ok(0));
        return;
    }
    let op = if write { Op::Write } else { Op::Read };
    let ctx = Ctx::Bio {
        done,
        bytes: len,
        sync,
    };
    // SAFETY: the kernel's buffer belongs to the request until `biodone`
    // (contract 3.5) and is `len` bytes long.
    let r = unsafe { Req::new(op, sector, data, len, ctx) };
    enqueue(i, r);
}

/// `rumpuser_iovread`/`iovwrite` on a disk: one request per iovec,
/// waiting for each.
///
/// # Safety
/// Every iovec is valid for its length (writable for reads) during the call.
pub unsafe fn iov(fd: c_int, iov: &[IoVec], off: Option<u64>, write: bool) -> HyperResult<usize> {
    let i = disk_of(fd).ok_or(Errno::EBADF)?;
    let mut off = off.ok_or(Errno::ESPIPE)?;
    let mut total = 0;
    for v in iov {
        let len = v.iov_len;
        if len == 0 {
            continue;
        }
        let sector = check(i, write, off, len)?;
        let op = if write { Op::Write } else { Op::Read };
        total += wait_for(i, op, sector, v.iov_base.cast(), len)?;
        off += len as u64;
    }
    Ok(total)
}

/// Submits one request for the calling green thread and parks until it completes.
fn wait_for(i: usize, op: Op, sector: u64, data: *mut u8, len: usize) -> HyperResult<usize> {
    let w = Arc::new(Waiter {
        tid: sched_core::current(),
        result: spin::Mutex::new(None),
    });
    let ctx = Ctx::Wait {
        w: w.clone(),
        bytes: len,
    };
    // SAFETY: the caller's buffer stays valid: this thread does not return
    // before the request completed.
    let r = unsafe { Req::new(op, sector, data, len, ctx) };
    enqueue(i, r);
    loop {
        if let Some(res) = w.result.lock().take() {
            return res;
        }
        sched_core::park(None);
    }
}

fn enqueue(i: usize, r: Box<Req<Ctx>>) {
    ensure_service_thread();
    let mut d = DISKS.lock();
    let disk = &mut d[i];
    // Keep FIFO order: only go straight to the ring when nothing waits.
    let r = if disk.backlog.is_empty() {
        match disk.blk.submit(r) {
            Ok(()) => {
                SUBMITTED.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(r) => Some(r),
        }
    } else {
        Some(r)
    };
    if let Some(r) = r {
        disk.backlog.push_back(r);
    }
}

fn ensure_service_thread() {
    if SERVICE.load(Ordering::Acquire) != 0 {
        return;
    }
    match sched_core::spawn_closure(service_thread, "virtio-blk", 0, false) {
        Ok(t) => {
            SERVICE.store(t.as_raw(), Ordering::Release);
            IRQ.bind(t);
            let d = DISKS.lock();
            for disk in d.iter() {
                if let Err(e) = crate::irq::register(disk.irq, &IRQ) {
                    rumpuser_pvh::kprintln!(
                        "rumpuser-baremetal: virtio-blk IRQ {}: {e:?} (completions by the watchdog only)",
                        disk.irq
                    );
                }
            }
        }
        Err(e) => rumpuser_pvh::exit::fatal(match e {
            sched_core::SpawnError::OutOfMemory => {
                "rumpuser-baremetal: no memory for the virtio-blk thread"
            }
            _ => "rumpuser-baremetal: cannot start the virtio-blk thread",
        }),
    }
}

/// What to do with one finished request.
enum Finish {
    Bio(BioDone, Result<usize, Errno>),
    Wait(Arc<Waiter>, Result<usize, Errno>),
}

/// Collects completions of every disk, chains flushes, refills the rings;
/// returns the requests still outstanding. `fired` are the interrupt
/// lines handed to this thread: acknowledged once every disk's interrupt
/// status has been read.
fn collect(out: &mut Vec<Finish>, fired: u32) -> usize {
    let mut harvested = Vec::new();
    let mut d = DISKS.lock();
    for disk in d.iter_mut() {
        disk.blk.ack_interrupt();
        disk.blk.harvest(&mut harvested);
        for (r, st) in harvested.drain(..) {
            COMPLETED.fetch_add(1, Ordering::Relaxed);
            if r.op == Op::Flush {
                FLUSHES.fetch_add(1, Ordering::Relaxed);
            }
            let res = match st {
                Status::Ok => Ok(()),
                Status::IoErr => Err(Errno::EIO),
                Status::Unsupp => Err(Errno::EOPNOTSUPP),
            };
            let flush_next = matches!(r.ctx, Ctx::Bio { sync: true, .. })
                && r.op == Op::Write
                && res.is_ok()
                && disk.blk.has_flush();
            if flush_next {
                disk.backlog.push_front(r.into_flush());
                continue;
            }
            let Req { ctx, .. } = *r;
            out.push(match ctx {
                Ctx::Bio { done, bytes, .. } => Finish::Bio(done, res.map(|()| bytes)),
                Ctx::Wait { w, bytes } => Finish::Wait(w, res.map(|()| bytes)),
            });
        }
        while let Some(r) = disk.backlog.pop_front() {
            match disk.blk.submit(r) {
                Ok(()) => {
                    SUBMITTED.fetch_add(1, Ordering::Relaxed);
                }
                Err(r) => {
                    disk.backlog.push_front(r);
                    break;
                }
            }
        }
    }
    let outstanding = d
        .iter()
        .map(|disk| disk.blk.in_flight() + disk.backlog.len())
        .sum::<usize>();
    drop(d);
    crate::irq::ack(fired);
    outstanding
}

/// The green thread that delivers completions.
fn service_thread() {
    let mut has_lwp = false;
    let mut out = Vec::new();
    loop {
        let outstanding = collect(&mut out, IRQ.take());
        let watchdog = WATCHDOG_WOKE.swap(false, Ordering::Relaxed);
        if !out.is_empty() {
            let c = if watchdog { &WATCHDOG } else { &BY_IRQ };
            c.fetch_add(out.len() as u64, Ordering::Relaxed);
        }
        for f in out.drain(..) {
            match f {
                Finish::Bio(done, res) => {
                    if !has_lwp {
                        // Completions run kernel code: this thread needs
                        // an lwp of its own (proc0), taken on first use.
                        let e = rumpuser_core::sched::adopt_helper_thread();
                        if e != 0 {
                            rumpuser_core::diag::report(format_args!(
                                "virtio-blk thread: newlwp failed: {e}"
                            ));
                        }
                        has_lwp = true;
                    }
                    done.complete(res);
                }
                Finish::Wait(w, res) => {
                    *w.result.lock() = Some(res);
                    sched_core::wake(w.tid);
                }
            }
        }
        let deadline = (outstanding > 0).then(|| sched_core::now_ns() + WATCHDOG_NS);
        if sched_core::park(deadline) == sched_core::Wakeup::TimedOut {
            WATCHDOG_WOKE.store(true, Ordering::Relaxed);
        }
    }
}

/// The virtio disks as the bare-metal machine's [`Disks`](rumpuser_pvh::host::Disks).
#[derive(Debug)]
pub struct VirtioDisks;

impl rumpuser_pvh::host::Disks for VirtioDisks {
    fn getfileinfo(name: &CStr) -> HyperResult<(u64, FileType)> {
        getfileinfo(name)
    }
    fn open(name: &CStr, flags: OpenFlags) -> HyperResult<c_int> {
        open(name, flags)
    }
    fn close(fd: c_int) -> HyperResult<()> {
        close(fd)
    }
    unsafe fn iov(fd: c_int, v: &[IoVec], off: Option<u64>, write: bool) -> HyperResult<usize> {
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
