//! NetBSD's PCI hypercalls (`rumpcomp_pci_*`) through their C symbols,
//! against QEMU's `edu` device (vendor 0x1234, device 0x11e8: an MMIO
//! BAR with an identification and a liveness register, an interrupt it
//! raises on request, and a DMA engine that copies between RAM and a
//! 4 KiB buffer of its own, completing after 100 ms with an interrupt).
//! The cases do what NetBSD's PCI code and a driver do: find the
//! function, size and map its BAR, enable it, map and establish its
//! interrupt, allocate and map DMA memory and hand the device
//! `virt_to_mach` addresses; the device's behaviour is the check.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_int, c_uint, c_ulong, c_void};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use rumpuser_baremetal::dma;
use rumpuser_baremetal::pcihyp::{self, DmaSeg};
use rumpuser_core::conformance::{model, Ctx};
use rumpuser_core::ensure;
use rumpuser_core::Errno;
use rumpuser_green::sched_core;
use rumpuser_pvh::guest_tests::{Hooks, SKIP};
use rumpuser_pvh::kprintln;

const EDU_VENDOR_DEVICE: u32 = 0x11e8_1234;
const EDU_BUF: u32 = 0x40000;
/// Bytes per edu DMA transfer: QEMU 7.2's range check refuses a transfer
/// that ends exactly at the end of the 4 KiB buffer.
const XFER: usize = 4032;

fn confread(bus: u32, dev: u32, fun: u32, reg: c_int) -> Result<u32, c_int> {
    let mut v: c_uint = 0;
    // SAFETY: a valid out-pointer.
    let r = unsafe { pcihyp::rumpcomp_pci_confread(bus, dev, fun, reg, &mut v) };
    if r == 0 {
        Ok(v)
    } else {
        Err(r)
    }
}

fn confwrite(dev: u32, reg: c_int, v: u32) -> c_int {
    pcihyp::rumpcomp_pci_confwrite(0, dev, 0, reg, v)
}

struct Edu {
    dev: u32,
    bar: u64,
    line: u8,
}

impl Edu {
    fn reg(&self, off: u64) -> *mut u32 {
        (self.bar + off) as *mut u32
    }
    fn read(&self, off: u64) -> u32 {
        // SAFETY: a register of the BAR `rumpcomp_pci_map` mapped (uncached).
        unsafe { self.reg(off).read_volatile() }
    }
    fn write(&self, off: u64, v: u32) {
        // SAFETY: as `read`; edu's registers take 32-bit writes.
        unsafe { self.reg(off).write_volatile(v) }
    }
}

/// The edu function on bus 0 (through the hypercalls), its BAR mapped
/// and memory decoding and bus mastering enabled.
fn edu() -> Result<Edu, String> {
    let dev = (0..32)
        .find(|&d| confread(0, d, 0, 0) == Ok(EDU_VENDOR_DEVICE))
        .ok_or_else(|| String::from(SKIP))?;
    let bar = confread(0, dev, 0, 0x10).map_err(|e| format!("BAR0: {e}"))? & !0xf;
    let line = confread(0, dev, 0, 0x3c).map_err(|e| format!("line: {e}"))? as u8;
    let cmd = confread(0, dev, 0, 0x04).map_err(|e| format!("command: {e}"))?;
    ensure!(
        confwrite(dev, 0x04, (cmd & 0xffff) | 0x6) == 0,
        "enable memory and bus master"
    );
    let p = pcihyp::rumpcomp_pci_map(bar as c_ulong, 1 << 20);
    ensure!(
        p as u64 == bar as u64,
        "rumpcomp_pci_map({bar:#x}) gave {p:p}"
    );
    Ok(Edu {
        dev,
        bar: bar as u64,
        line,
    })
}

/// Configuration space: the edu function is found with its class and
/// interrupt pin; BAR sizing, the command register and the scratch
/// Interrupt Line register take writes; a virtio-blk function the
/// platform drives reads as absent; bad arguments are `EINVAL`.
pub fn config_space(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let e = edu()?;
    let class = confread(0, e.dev, 0, 0x08).map_err(|r| format!("class: {r}"))?;
    ensure!(class >> 16 == 0x00ff, "edu class {class:#x}");
    let intr = confread(0, e.dev, 0, 0x3c).map_err(|r| format!("intr: {r}"))?;
    ensure!(
        (intr >> 8) & 0xff == 1,
        "edu interrupt pin {}",
        (intr >> 8) & 0xff
    );
    ensure!(
        (1..16).contains(&(intr & 0xff)),
        "edu interrupt line {}",
        intr & 0xff
    );
    // BAR sizing, as pci_mapreg_info does: all ones, read the mask, restore.
    let bar = confread(0, e.dev, 0, 0x10).map_err(|r| format!("{r}"))?;
    ensure!(confwrite(e.dev, 0x10, u32::MAX) == 0, "BAR write");
    let mask = confread(0, e.dev, 0, 0x10).map_err(|r| format!("{r}"))?;
    ensure!(confwrite(e.dev, 0x10, bar) == 0, "BAR restore");
    ensure!(confread(0, e.dev, 0, 0x10) == Ok(bar), "BAR not restored");
    ensure!(
        mask & !0xf == 0xfff0_0000,
        "BAR0 size mask {mask:#x}: not 1 MiB"
    );
    // The Interrupt Line register is read-write scratch for software.
    ensure!(
        confwrite(e.dev, 0x3c, (intr & !0xff) | 0x5a) == 0,
        "line write"
    );
    let back = confread(0, e.dev, 0, 0x3c).map_err(|r| format!("{r}"))?;
    ensure!(confwrite(e.dev, 0x3c, intr) == 0, "line restore");
    ensure!(
        back & 0xff == 0x5a,
        "Interrupt Line wrote 0x5a, read {:#x}",
        back & 0xff
    );
    let cmd = confread(0, e.dev, 0, 0x04).map_err(|r| format!("{r}"))?;
    ensure!(cmd & 0x6 == 0x6, "memory/bus master not enabled: {cmd:#x}");
    // Functions the platform drives are hidden from NetBSD's bus.
    let mut hidden = 0;
    for d in 0..32u32 {
        let direct = rumpuser_baremetal::pci::config_read(0, d as u8, 0, 0);
        if direct == 0x1001_1af4 || direct == 0x1042_1af4 {
            ensure!(
                confread(0, d, 0, 0) == Ok(u32::MAX),
                "claimed virtio-blk at {d} visible"
            );
            ensure!(
                confread(0, d, 0, 0x3c) == Ok(u32::MAX),
                "claimed function's registers visible"
            );
            hidden += 1;
        }
    }
    ensure!(hidden >= 1, "no virtio-blk function found to check hiding");
    ensure!(
        confread(0, e.dev, 0, 0x100) == Ok(0),
        "extended configuration space"
    );
    let einval = Errno::EINVAL.raw();
    ensure!(confread(0, 32, 0, 0) == Err(einval), "device 32");
    ensure!(confread(0, 0, 8, 0) == Err(einval), "function 8");
    ensure!(confread(256, 0, 0, 0) == Err(einval), "bus 256");
    ensure!(
        confread(0, e.dev, 0, 2) == Err(einval),
        "misaligned register"
    );
    ensure!(
        confread(0, e.dev, 0, -4) == Err(einval),
        "negative register"
    );
    // SAFETY: NULL out-pointer on purpose: must be refused.
    let r = unsafe { pcihyp::rumpcomp_pci_confread(0, e.dev, 0, 0, core::ptr::null_mut()) };
    ensure!(r == einval, "NULL out-pointer: {r}");
    ensure!(pcihyp::rumpcomp_pci_iospace_init() == 0, "iospace_init");
    Ok(())
}

/// The BAR as mapped by `rumpcomp_pci_map`: the identification register
/// and the liveness register (it inverts what is written) answer.
pub fn mmio_map(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let e = edu()?;
    let id = e.read(0);
    ensure!(id & 0xff == 0xed, "edu identification {id:#x}");
    for v in [0u32, 0x1234_5678, u32::MAX, 0xa5a5_5a5a] {
        e.write(4, v);
        let r = e.read(4);
        ensure!(r == !v, "liveness: wrote {v:#x}, read {r:#x}");
    }
    ensure!(
        pcihyp::rumpcomp_pci_map(0, 4096).is_null(),
        "map of address 0"
    );
    ensure!(
        pcihyp::rumpcomp_pci_map(e.bar as c_ulong, 0).is_null(),
        "map of 0 bytes"
    );
    Ok(())
}

/// What the test handler saw.
struct IrqLog {
    bar: AtomicU64,
    calls: AtomicU32,
    claims: AtomicU32,
    status: AtomicU32,
    bad_context: AtomicU32,
    waiter: AtomicU64,
}

static LOG: IrqLog = IrqLog {
    bar: AtomicU64::new(0),
    calls: AtomicU32::new(0),
    claims: AtomicU32::new(0),
    status: AtomicU32::new(0),
    bad_context: AtomicU32::new(0),
    waiter: AtomicU64::new(0),
};

/// The driver's interrupt handler: reads and acknowledges edu's status.
unsafe extern "C" fn edu_intr(arg: *mut c_void) -> c_int {
    // SAFETY: the handler was established with `&LOG`.
    let log = unsafe { &*(arg as *const IrqLog) };
    log.calls.fetch_add(1, Ordering::Relaxed);
    let ok_ctx = model::model().current().is_some_and(|l| {
        l.holds_cpu.load(Ordering::Acquire) && l.biglocks.load(Ordering::Relaxed) == 1
    }) && sched_core::current_for_report()
        .is_some_and(|(_, n)| n.as_str() == "pci-intr");
    if !ok_ctx {
        log.bad_context.fetch_add(1, Ordering::Relaxed);
    }
    let bar = log.bar.load(Ordering::Acquire);
    let st_reg = (bar + 0x24) as *mut u32;
    // SAFETY: edu's interrupt status register in its mapped BAR.
    let st = unsafe { st_reg.read_volatile() };
    if st == 0 {
        return 0; // not edu: another device on the shared line
    }
    // SAFETY: edu's interrupt acknowledge register.
    unsafe { ((bar + 0x64) as *mut u32).write_volatile(st) };
    log.status.fetch_or(st, Ordering::AcqRel);
    log.claims.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = sched_core::ThreadId::from_raw(log.waiter.load(Ordering::Acquire)) {
        sched_core::wake(t);
    }
    1
}

static COOKIE: spin::Once<usize> = spin::Once::new();

/// edu's interrupt, mapped and established once per boot.
fn edu_irq(e: &Edu) -> Result<usize, String> {
    LOG.bar.store(e.bar, Ordering::Release);
    if let Some(c) = COOKIE.get() {
        return Ok(*c);
    }
    ensure!(
        pcihyp::rumpcomp_pci_irq_map(0, e.dev, 0, e.line as c_int, 77) == 0,
        "irq_map"
    );
    let h = pcihyp::rumpcomp_pci_irq_establish(
        77,
        Some(edu_intr),
        &LOG as *const IrqLog as *mut c_void,
    );
    ensure!(!h.is_null(), "irq_establish returned NULL");
    Ok(*COOKIE.call_once(|| h as usize))
}

/// Waits (CPU released, parked) up to 3 s for `bits` in the status the
/// handler collected; clears them.
fn wait_status(ctx: &Ctx, bits: u32) -> Result<(), String> {
    LOG.waiter
        .store(sched_core::current().as_raw(), Ordering::Release);
    let deadline = ctx.now() + 3_000_000_000;
    let n = rumpuser_core::sched::release_cpu(core::ptr::null_mut());
    while LOG.status.load(Ordering::Acquire) & bits != bits && ctx.now() < deadline {
        sched_core::park(Some(deadline));
    }
    rumpuser_core::sched::reacquire_cpu(n, core::ptr::null_mut());
    LOG.waiter.store(0, Ordering::Release);
    let got = LOG.status.fetch_and(!bits, Ordering::AcqRel);
    ensure!(
        got & bits == bits,
        "no interrupt with status {bits:#x} in 3 s (status {got:#x})"
    );
    Ok(())
}

/// `irq_map` + `irq_establish`: every interrupt edu raises runs the
/// handler once, on "pci-intr" with a CPU and the big kernel lock, and
/// the level-triggered line is quiet again after the handler's
/// acknowledgement; bad cookies and hidden functions are refused.
pub fn interrupts(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let e = edu()?;
    let cookie = edu_irq(&e)?;
    let c0 = LOG.claims.load(Ordering::Relaxed);
    const N: u32 = 50;
    let t0 = ctx.now();
    for k in 0..N {
        LOG.status.store(0, Ordering::Release);
        let v = 1u32 << (k % 8);
        e.write(0x60, v);
        wait_status(ctx, v)?;
        ensure!(
            e.read(0x24) == 0,
            "edu still signals after the handler acknowledged"
        );
    }
    let dt = ctx.now() - t0;
    let claims = LOG.claims.load(Ordering::Relaxed) - c0;
    // SAFETY: the cookie `irq_establish` returned.
    let (calls, _) = unsafe { pcihyp::handler_stats(cookie as *const c_void) };
    kprintln!(
        "  {N} edu interrupts on IRQ {}: {} us each from raise to handler, {claims} claimed, {calls} handler calls in all",
        e.line,
        dt / N as u64 / 1000
    );
    ensure!(claims == N, "{claims} interrupts handled for {N} raised");
    ensure!(
        LOG.bad_context.load(Ordering::Relaxed) == 0,
        "a handler ran without CPU, biglock or on the wrong thread"
    );
    // Refusals.
    ensure!(
        pcihyp::rumpcomp_pci_irq_establish(4242, Some(edu_intr), core::ptr::null_mut()).is_null(),
        "establish with an unmapped cookie"
    );
    ensure!(
        pcihyp::rumpcomp_pci_irq_establish(77, None, core::ptr::null_mut()).is_null(),
        "establish without a handler"
    );
    ensure!(
        pcihyp::rumpcomp_pci_irq_map(0, e.dev, 0, 16, 78) == Errno::ENXIO.raw(),
        "irq_map of line 16"
    );
    for d in 0..32u32 {
        if rumpuser_baremetal::pci::is_claimed(0, d as u8, 0) {
            ensure!(
                pcihyp::rumpcomp_pci_irq_map(0, d, 0, 11, 79) == Errno::ENXIO.raw(),
                "irq_map of a claimed function"
            );
        }
    }
    Ok(())
}

fn dmalloc(size: usize, align: usize) -> Result<u64, c_int> {
    let (mut pa, mut va) = (0 as c_ulong, 0 as c_ulong);
    // SAFETY: valid out-pointers.
    let r = unsafe { pcihyp::rumpcomp_pci_dmalloc(size, align, &mut pa, &mut va) };
    if r != 0 {
        return Err(r);
    }
    if pa != va {
        return Err(-1);
    }
    Ok(pa)
}

fn dmafree(a: u64, size: usize) {
    // SAFETY: a block from `dmalloc` of that size, no longer used.
    unsafe { pcihyp::rumpcomp_pci_dmafree(a, size) };
}

/// Has edu copy `count` bytes RAM→buffer (`to_dev`) or buffer→RAM, and
/// waits for its completion interrupt.
fn edu_dma(ctx: &Ctx, e: &Edu, ram: u64, count: u32, to_dev: bool) -> Result<(), String> {
    ensure!(ram < 1 << 28, "{ram:#x} is beyond edu's 28-bit DMA mask");
    let (src, dst) = if to_dev {
        (ram as u32, EDU_BUF)
    } else {
        (EDU_BUF, ram as u32)
    };
    LOG.status.fetch_and(!0x100, Ordering::AcqRel);
    e.write(0x80, src);
    e.write(0x88, dst);
    e.write(0x90, count);
    e.write(0x98, 0x1 | if to_dev { 0 } else { 0x2 } | 0x4);
    wait_status(ctx, 0x100)?;
    ensure!(
        e.read(0x98) & 1 == 0,
        "edu DMA still running after its interrupt"
    );
    Ok(())
}

fn fill(a: u64, len: usize, seed: u8) {
    // SAFETY: `len` bytes of a live DMA block (identity mapped).
    let s = unsafe { core::slice::from_raw_parts_mut(a as *mut u8, len) };
    for (i, b) in s.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(seed);
    }
}

fn bytes(a: u64, len: usize) -> Vec<u8> {
    // SAFETY: `len` readable bytes of a live DMA block or window.
    unsafe { core::slice::from_raw_parts(a as *const u8, len) }.to_vec()
}

/// `dmalloc`: page-aligned (or more, as asked), zeroed, disjoint blocks
/// whose address is what the device uses: edu copies a block into its
/// buffer and back into another through `virt_to_mach` addresses, byte
/// for byte. `dmafree` returns them; a bogus free is refused.
pub fn dma_alloc(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let s0 = dma::stats();
    let mut blocks: Vec<(u64, usize)> = Vec::new();
    for (size, align) in [
        (1usize, 0usize),
        (4096, 4096),
        (12345, 0),
        (65536, 65536),
        (8192, 1 << 20),
    ] {
        let a = dmalloc(size, align).map_err(|r| format!("dmalloc({size}, {align}): {r}"))?;
        ensure!(
            a % 4096 == 0 && a % align.max(1) as u64 == 0,
            "{a:#x} not aligned to {align}"
        );
        ensure!(
            bytes(a, size).iter().all(|&b| b == 0),
            "block {a:#x} not zeroed"
        );
        let end = a + size.next_multiple_of(4096) as u64;
        for &(b, bs) in &blocks {
            let bend = b + bs.next_multiple_of(4096) as u64;
            ensure!(end <= b || bend <= a, "blocks {a:#x} and {b:#x} overlap");
        }
        blocks.push((a, size));
    }
    ensure!(
        dma::stats().blocks == s0.blocks + blocks.len(),
        "block count"
    );
    ensure!(
        dmalloc(0, 0) == Err(Errno::EINVAL.raw()),
        "dmalloc of 0 bytes"
    );
    ensure!(
        dmalloc(4096, 3000) == Err(Errno::EINVAL.raw()),
        "alignment 3000"
    );
    if let Ok(e) = edu() {
        edu_irq(&e)?;
        let (src, dst) = (blocks[1].0, blocks[2].0);
        fill(src, 4096, 3);
        let (ms, md) = (
            pcihyp::rumpcomp_pci_virt_to_mach(src as *mut c_void),
            pcihyp::rumpcomp_pci_virt_to_mach(dst as *mut c_void),
        );
        ensure!(
            ms == src && md == dst,
            "virt_to_mach of identity-mapped blocks"
        );
        edu_dma(ctx, &e, ms, XFER as u32, true)?;
        edu_dma(ctx, &e, md, XFER as u32, false)?;
        ensure!(
            bytes(dst, XFER) == bytes(src, XFER),
            "the device's copy differs"
        );
        ensure!(
            bytes(dst + XFER as u64, 4096 - XFER)
                .iter()
                .all(|&b| b == 0),
            "the device wrote past the transfer"
        );
        kprintln!("  edu copied a DMA block into its buffer and back into another, byte for byte");
    }
    for (a, size) in blocks {
        dmafree(a, size);
    }
    ensure!(
        dma::stats() == s0,
        "blocks left after dmafree: {:?} vs {:?}",
        dma::stats(),
        s0
    );
    let a = dmalloc(4096, 0).map_err(|r| format!("{r}"))?;
    dmafree(a + 4096, 4096); // not a block: reported, ignored
    dmafree(a, 8192); // wrong size: reported, ignored
    ensure!(
        dma::stats().blocks == s0.blocks + 1,
        "a bogus dmafree freed something"
    );
    dmafree(a, 4096);
    ensure!(dma::stats() == s0, "the block was not freed");
    Ok(())
}

fn dmamem_map(segs: &[DmaSeg], total: usize) -> Result<u64, c_int> {
    let mut va: *mut c_void = core::ptr::null_mut();
    // SAFETY: a valid segment array and out-pointer.
    let r = unsafe {
        pcihyp::rumpcomp_pci_dmamem_map(segs.as_ptr() as *mut DmaSeg, segs.len(), total, &mut va)
    };
    if r == 0 {
        Ok(va as u64)
    } else {
        Err(r)
    }
}

fn seg(a: u64, len: u64) -> DmaSeg {
    DmaSeg {
        ds_pa: a,
        ds_len: len,
        ds_vacookie: a,
    }
}

/// `dmamem_map` of several segments: physically adjacent ones map to
/// their identity address; separate ones to a window in which writes
/// land in the segments, `virt_to_mach` translates page by page (the
/// device reads the third segment through it), and which disappears
/// when a segment is freed. Inconsistent lists are `EINVAL`.
pub fn dma_segments(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let s0 = dma::stats();
    let pg = 4096u64;
    // Adjacent: one 8 KiB block as two segments.
    let x = dmalloc(8192, 0).map_err(|r| format!("{r}"))?;
    let m =
        dmamem_map(&[seg(x, pg), seg(x + pg, pg)], 8192).map_err(|r| format!("adjacent: {r}"))?;
    ensure!(m == x, "adjacent segments mapped at {m:#x}, not {x:#x}");
    ensure!(
        dma::stats().windows == s0.windows,
        "a window for adjacent segments"
    );
    // Separate: A, B, C with spacers so that none is adjacent.
    let mut spacers = Vec::new();
    let mut parts = Vec::new();
    for _ in 0..3 {
        parts.push(dmalloc(4096, 0).map_err(|r| format!("{r}"))?);
        spacers.push(dmalloc(4096, 0).map_err(|r| format!("{r}"))?);
    }
    let segs: Vec<DmaSeg> = parts.iter().map(|&a| seg(a, pg)).collect();
    ensure!(
        !dma::contiguous(&[
            dma::Seg {
                pa: parts[0],
                len: pg,
                va: parts[0]
            },
            dma::Seg {
                pa: parts[1],
                len: pg,
                va: parts[1]
            },
        ]),
        "test blocks are adjacent"
    );
    let w = dmamem_map(&segs, 3 * 4096).map_err(|r| format!("window: {r}"))?;
    ensure!(
        (dma::WINDOW_BASE..dma::WINDOW_BASE + dma::WINDOW_SIZE).contains(&w),
        "window at {w:#x}"
    );
    let st = dma::stats();
    ensure!(
        st.windows == s0.windows + 1 && st.window_bytes == s0.window_bytes + 3 * pg,
        "window stats {st:?}"
    );
    fill(w, 3 * 4096, 11);
    let through = bytes(w, 3 * 4096);
    for (k, &a) in parts.iter().enumerate() {
        ensure!(
            bytes(a, 4096) == through[k * 4096..(k + 1) * 4096],
            "segment {k} does not hold the window's bytes"
        );
        for off in [0u64, 5, 4095] {
            let mach = pcihyp::rumpcomp_pci_virt_to_mach((w + k as u64 * pg + off) as *mut c_void);
            ensure!(
                mach == a + off,
                "virt_to_mach(window + {k} pages + {off}) = {mach:#x}, want {:#x}",
                a + off
            );
        }
    }
    if let Ok(e) = edu() {
        edu_irq(&e)?;
        let out = spacers[0];
        let third = pcihyp::rumpcomp_pci_virt_to_mach((w + 2 * pg) as *mut c_void);
        edu_dma(ctx, &e, third, XFER as u32, true)?;
        edu_dma(ctx, &e, out, XFER as u32, false)?;
        ensure!(
            bytes(out, XFER) == through[8192..8192 + XFER],
            "the device read something else through virt_to_mach"
        );
        kprintln!(
            "  edu read the third page of a 3-segment window through virt_to_mach, byte for byte"
        );
    }
    // Refusals.
    let einval = Err(Errno::EINVAL.raw());
    ensure!(dmamem_map(&[], 4096) == einval, "no segments");
    ensure!(
        dmamem_map(&segs, 4 * 4096) == einval,
        "total beyond the segments"
    );
    ensure!(
        dmamem_map(&[seg(parts[0], 100), seg(parts[1], pg)], 4096) == einval,
        "a first segment ending inside a page"
    );
    ensure!(
        dmamem_map(&[seg(parts[0], pg), seg(parts[1] + 8, 100)], 4096) == einval,
        "a later segment starting inside a page"
    );
    // Freeing a segment takes the window down.
    dmafree(parts[1], 4096);
    ensure!(
        dma::stats().windows == s0.windows,
        "window kept after its segment was freed"
    );
    let gone = pcihyp::rumpcomp_pci_virt_to_mach(w as *mut c_void);
    ensure!(
        gone == 0,
        "virt_to_mach of an unmapped window address: {gone:#x}"
    );
    for a in [parts[0], parts[2]].into_iter().chain(spacers) {
        dmafree(a, 4096);
    }
    dmafree(x, 8192);
    ensure!(
        dma::stats() == s0,
        "left over: {:?} vs {:?}",
        dma::stats(),
        s0
    );
    Ok(())
}
