//! NetBSD's PCI hypercalls (`sys/rump/dev/lib/libpci/pci_user.h`), so that
//! the kernel layer's own drivers (`librumpdev_pci` with
//! `librumpdev_pci_virtio`, `librumpdev_virtio_if_vioif`,
//! `librumpdev_virtio_ld`, …) run on bare metal. The kernel layer must be
//! built with the user-feature header this crate ships
//! (`include/rumpcomp_userfeatures_pci.h` in `cargo xtask baremetal-dist`:
//! `RUMPCOMP_USERFEATURE_PCI_DMAFREE` and `_IOSPACE`).
//!
//! | hypercall | here |
//! |---|---|
//! | `confread`/`confwrite` | mechanism #1 on any bus; functions the platform's own drivers claimed ([`crate::pci`]) read as all ones and ignore writes; registers past the 256-byte header read 0 (no extended capabilities) |
//! | `map` | BAR memory identity-mapped uncached |
//! | `iospace_init` | 0: port I/O works (the kernel runs in ring 0) |
//! | `irq_map` | records the cookie's legacy line (the Interrupt Line register SeaBIOS wrote), `ENXIO` for a function without an interrupt pin or line |
//! | `irq_establish` | adds the handler to its line; every handler runs on the green thread "pci-intr", which has an lwp of its own and holds a virtual CPU and the big kernel lock while it calls them (contract 3.5, as rumprun's `isrthr`); the line is unmasked after the handlers of all its devices ran ([`crate::irq`]) |
//! | `dmalloc`/`dmafree`/`dmamem_map`/`virt_to_mach` | [`crate::dma`]: physically contiguous memory, multi-segment maps through windows |
//!
//! Errors are NetBSD errno values. A NULL out-pointer is `EINVAL`.

use crate::dma;
use crate::irq::{self, IrqOwner};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_core::Errno;
use rumpuser_green::sched_core;

/// `struct rumpcomp_pci_dmaseg`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DmaSeg {
    /// Physical address.
    pub ds_pa: c_ulong,
    /// Length.
    pub ds_len: c_ulong,
    /// Virtual address from `dmalloc`.
    pub ds_vacookie: c_ulong,
}

/// A NetBSD interrupt handler (`int (*)(void *)`).
pub type IntrFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// One established handler (the cookie `irq_establish` returns).
pub struct Handler {
    line: u8,
    func: IntrFn,
    arg: *mut c_void,
    calls: AtomicU64,
    claimed: AtomicU64,
}

// SAFETY: `arg` is the driver's opaque softc pointer, only passed back to
// `func` on the one CPU.
unsafe impl Send for Handler {}
// SAFETY: as above; the counters are atomics.
unsafe impl Sync for Handler {}

struct Intr {
    /// `irq_map` cookies → line.
    cookies: Vec<(c_uint, u8)>,
    handlers: Vec<&'static Handler>,
    thread: Option<sched_core::ThreadId>,
}

static INTR: spin::Mutex<Intr> = spin::Mutex::new(Intr {
    cookies: Vec::new(),
    handlers: Vec::new(),
    thread: None,
});
static OWNER: IrqOwner = IrqOwner::new();
static RUNS: AtomicU64 = AtomicU64::new(0);

/// Interrupt statistics: `(handler rounds run, handlers established)`.
pub fn intr_stats() -> (u64, usize) {
    (RUNS.load(Ordering::Relaxed), INTR.lock().handlers.len())
}

/// `(calls, claims)` of the handler `irq_establish` returned as `cookie`
/// (`claims`: calls that returned non-zero, "it was my device").
///
/// # Safety
/// `cookie` is a non-NULL value `rumpcomp_pci_irq_establish` returned.
pub unsafe fn handler_stats(cookie: *const c_void) -> (u64, u64) {
    // SAFETY: such cookies are leaked `Handler`s (never freed).
    let h = unsafe { &*(cookie as *const Handler) };
    (
        h.calls.load(Ordering::Relaxed),
        h.claimed.load(Ordering::Relaxed),
    )
}

fn bdf(bus: c_uint, dev: c_uint, fun: c_uint) -> Result<(u8, u8, u8), Errno> {
    if bus > 255 || dev > 31 || fun > 7 {
        return Err(Errno::EINVAL);
    }
    Ok((bus as u8, dev as u8, fun as u8))
}

/// `rumpcomp_pci_confread`.
fn confread(bus: c_uint, dev: c_uint, fun: c_uint, reg: c_int) -> Result<u32, Errno> {
    let (b, d, f) = bdf(bus, dev, fun)?;
    if reg < 0 || reg % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    if reg >= 256 {
        return Ok(0);
    }
    if crate::pci::is_claimed(b, d, f) {
        return Ok(u32::MAX);
    }
    Ok(crate::pci::config_read(b, d, f, reg as u8))
}

/// `rumpcomp_pci_confwrite`.
fn confwrite(bus: c_uint, dev: c_uint, fun: c_uint, reg: c_int, v: u32) -> Result<(), Errno> {
    let (b, d, f) = bdf(bus, dev, fun)?;
    if reg < 0 || reg % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    if reg >= 256 || crate::pci::is_claimed(b, d, f) {
        return Ok(());
    }
    // SAFETY: the kernel's PCI code writes registers of a function it
    // drives (not one of ours, checked above).
    unsafe { crate::pci::config_write(b, d, f, reg as u8, v) };
    Ok(())
}

fn irq_map(
    bus: c_uint,
    dev: c_uint,
    fun: c_uint,
    line: c_int,
    cookie: c_uint,
) -> Result<(), Errno> {
    let (b, d, f) = bdf(bus, dev, fun)?;
    if crate::pci::is_claimed(b, d, f) {
        return Err(Errno::ENXIO);
    }
    let pin = (crate::pci::config_read(b, d, f, 0x3c) >> 8) as u8;
    if pin == 0 || !(0..irq::LINES as c_int).contains(&line) || line == 2 {
        return Err(Errno::ENXIO);
    }
    let mut st = INTR.lock();
    st.cookies.retain(|&(c, _)| c != cookie);
    st.cookies.push((cookie, line as u8));
    Ok(())
}

fn irq_establish(
    cookie: c_uint,
    func: IntrFn,
    arg: *mut c_void,
) -> Result<&'static Handler, Errno> {
    let line = {
        let st = INTR.lock();
        st.cookies
            .iter()
            .find(|&&(c, _)| c == cookie)
            .map(|&(_, l)| l)
            .ok_or(Errno::ENXIO)?
    };
    let thread = ensure_thread()?;
    OWNER.bind(thread);
    let h: &'static Handler = Box::leak(Box::new(Handler {
        line,
        func,
        arg,
        calls: AtomicU64::new(0),
        claimed: AtomicU64::new(0),
    }));
    INTR.lock().handlers.push(h);
    if irq::register(line, &OWNER).is_err() {
        INTR.lock().handlers.retain(|x| !core::ptr::eq(*x, h));
        return Err(Errno::EBUSY);
    }
    if crate::start::verbose() {
        rumpuser_pvh::kprintln!("rumpuser-baremetal: PCI interrupt handler on IRQ {line}");
    }
    Ok(h)
}

fn ensure_thread() -> Result<sched_core::ThreadId, Errno> {
    let mut st = INTR.lock();
    if let Some(t) = st.thread {
        return Ok(t);
    }
    let t =
        sched_core::spawn_closure(intr_thread, "pci-intr", 0, false).map_err(|_| Errno::ENOMEM)?;
    st.thread = Some(t);
    Ok(t)
}

/// The green thread that runs NetBSD's interrupt handlers.
fn intr_thread() {
    let mut has_lwp = false;
    let mut run: Vec<&'static Handler> = Vec::new();
    loop {
        let fired = OWNER.take();
        if fired == 0 {
            sched_core::park(None);
            continue;
        }
        if !has_lwp {
            // Handlers run kernel code: this thread needs an lwp of its
            // own (proc0), taken on first use.
            let e = rumpuser_core::sched::adopt_helper_thread();
            if e != 0 {
                rumpuser_core::diag::report(format_args!("pci-intr thread: newlwp failed: {e}"));
            }
            has_lwp = true;
        }
        run.clear();
        run.extend(
            INTR.lock()
                .handlers
                .iter()
                .copied()
                .filter(|h| fired & (1 << h.line) != 0),
        );
        RUNS.fetch_add(1, Ordering::Relaxed);
        // A virtual CPU and the big kernel lock, as an interrupt has.
        rumpuser_core::sched::reacquire_cpu(1, core::ptr::null_mut());
        for h in &run {
            h.calls.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the driver's handler with the argument it registered,
            // called holding a CPU from a thread with an lwp, as NetBSD's
            // interrupt handlers expect.
            if unsafe { (h.func)(h.arg) } != 0 {
                h.claimed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _ = rumpuser_core::sched::release_cpu(core::ptr::null_mut());
        // Every device on these lines was told to quiet its interrupt.
        irq::ack(fired);
    }
}

/// # Safety
/// `p` is NULL or valid for a write of `T`.
unsafe fn write_out<T>(p: *mut T, v: T) -> Result<(), Errno> {
    if p.is_null() {
        return Err(Errno::EINVAL);
    }
    // SAFETY: non-NULL, and valid by the caller's contract.
    unsafe { p.write(v) };
    Ok(())
}

fn ret(r: Result<(), Errno>) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.raw(),
    }
}

/// `rumpcomp_pci_iospace_init`: port I/O needs no set-up in ring 0.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_iospace_init() -> c_int {
    0
}

/// `rumpcomp_pci_confread(bus, dev, fun, reg, &value)`.
///
/// # Safety
/// C ABI: `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_pci_confread(
    bus: c_uint,
    dev: c_uint,
    fun: c_uint,
    reg: c_int,
    value: *mut c_uint,
) -> c_int {
    // SAFETY: the caller's contract.
    ret(confread(bus, dev, fun, reg).and_then(|v| unsafe { write_out(value, v) }))
}

/// `rumpcomp_pci_confwrite(bus, dev, fun, reg, value)`.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_confwrite(
    bus: c_uint,
    dev: c_uint,
    fun: c_uint,
    reg: c_int,
    value: c_uint,
) -> c_int {
    ret(confwrite(bus, dev, fun, reg, value))
}

/// `rumpcomp_pci_map(addr, len)`: BAR memory, identity-mapped uncached.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_map(addr: c_ulong, len: c_ulong) -> *mut c_void {
    match addr.checked_add(len) {
        Some(end) if addr != 0 && len != 0 => {
            rumpuser_pvh::arch::paging::map_identity(addr, end, true);
            addr as *mut c_void
        }
        _ => core::ptr::null_mut(),
    }
}

/// `rumpcomp_pci_irq_map(bus, dev, fun, intrline, cookie)`.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_irq_map(
    bus: c_uint,
    dev: c_uint,
    fun: c_uint,
    intrline: c_int,
    cookie: c_uint,
) -> c_int {
    ret(irq_map(bus, dev, fun, intrline, cookie))
}

/// `rumpcomp_pci_irq_establish(cookie, handler, arg)`: NULL on failure.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_irq_establish(
    cookie: c_uint,
    handler: Option<IntrFn>,
    arg: *mut c_void,
) -> *mut c_void {
    match handler.map(|f| irq_establish(cookie, f, arg)) {
        Some(Ok(h)) => h as *const Handler as *mut c_void,
        _ => core::ptr::null_mut(),
    }
}

/// `rumpcomp_pci_dmalloc(size, align, &pa, &va)`.
///
/// # Safety
/// C ABI: `pap` and `vap` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_pci_dmalloc(
    size: usize,
    align: usize,
    pap: *mut c_ulong,
    vap: *mut c_ulong,
) -> c_int {
    if pap.is_null() || vap.is_null() {
        return Errno::EINVAL.raw();
    }
    // SAFETY: the caller's contract (both checked non-NULL).
    ret(dma::alloc(size, align).and_then(|a| unsafe {
        write_out(pap, a)?;
        write_out(vap, a)
    }))
}

/// `rumpcomp_pci_dmafree(va, size)` (`RUMPCOMP_USERFEATURE_PCI_DMAFREE`).
///
/// # Safety
/// Nothing uses the block afterwards (NetBSD's `bus_dmamem_free`).
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_pci_dmafree(va: c_ulong, size: usize) {
    // SAFETY: the caller's contract; a non-block is refused by `dma::free`.
    if unsafe { dma::free(va, size) }.is_err() {
        rumpuser_core::diag::report(format_args!(
            "rumpcomp_pci_dmafree({va:#x}, {size}): not a DMA block of that size (ignored)"
        ));
    }
}

/// `rumpcomp_pci_dmamem_map(segs, nseg, totlen, &va)`.
///
/// # Safety
/// C ABI: `dss` holds `nseg` readable segments, `vap` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rumpcomp_pci_dmamem_map(
    dss: *mut DmaSeg,
    nseg: usize,
    totlen: usize,
    vap: *mut *mut c_void,
) -> c_int {
    if dss.is_null() || nseg == 0 || vap.is_null() {
        return Errno::EINVAL.raw();
    }
    // SAFETY: the kernel passes an array of `nseg` segments.
    let raw = unsafe { core::slice::from_raw_parts(dss, nseg) };
    let segs: Vec<dma::Seg> = raw
        .iter()
        .map(|s| dma::Seg {
            pa: s.ds_pa,
            len: s.ds_len,
            va: s.ds_vacookie,
        })
        .collect();
    // SAFETY: the caller's contract (checked non-NULL).
    ret(dma::map(&segs, totlen as u64).and_then(|va| unsafe { write_out(vap, va as *mut c_void) }))
}

/// `rumpcomp_pci_virt_to_mach(va)`.
#[no_mangle]
pub extern "C" fn rumpcomp_pci_virt_to_mach(va: *mut c_void) -> c_ulong {
    dma::virt_to_mach(va as u64)
}
