//! PCI configuration access (mechanism #1, ports 0xcf8/0xcfc) for
//! `virtio-drivers` and for NetBSD's PCI bus ([`crate::pcihyp`]), which
//! functions the platform's own drivers claimed, which virtio devices
//! they take, and the DMA HAL of `virtio-drivers` on the identity map.
//!
//! # Who drives a virtio device
//!
//! A function is driven either by this crate (virtio-blk through
//! `rumpuser_bio` as `virtioN`, virtio-net through `if_virt` as `virtN`)
//! or by NetBSD's own drivers in the kernel layer (`ld` and `vioif` on
//! `librumpdev_pci`), never both: functions the platform claims read as
//! absent (all ones) through `rumpcomp_pci_confread`. The choice is per
//! device class, on the command line:
//!
//! * `RUMPUSER_VIRTIO_BLK=platform|netbsd`
//! * `RUMPUSER_VIRTIO_NET=platform|netbsd`
//!
//! The default is `netbsd` when the image contains NetBSD's driver for
//! the class (`librumpdev_virtio_ld`, `librumpdev_virtio_if_vioif`:
//! found through weak references to their autoconfiguration attachments),
//! else `platform`.

use alloc::vec::Vec;
use core::ptr::NonNull;
use rumpuser_pvh::arch::port::{inl, outl};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The configuration-space address of `bus:dev.fun` register `off`.
pub fn config_address(bus: u8, dev: u8, fun: u8, off: u8) -> u32 {
    0x8000_0000
        | (bus as u32) << 16
        | ((dev as u32) & 31) << 11
        | ((fun as u32) & 7) << 8
        | (off as u32 & 0xfc)
}

/// Reads the 32-bit configuration register `off` of `bus:dev.fun`.
pub fn config_read(bus: u8, dev: u8, fun: u8, off: u8) -> u32 {
    // SAFETY: PCI configuration mechanism #1: select the register, read
    // it. Single CPU and no interrupt handler uses these ports, and the
    // pair is never split by a green-thread switch (no call in between),
    // so the two accesses cannot interleave with another pair.
    unsafe {
        outl(0xcf8, config_address(bus, dev, fun, off));
        inl(0xcfc)
    }
}

/// Writes the 32-bit configuration register `off` of `bus:dev.fun`.
///
/// # Safety
/// The write is one the function's driver means (command, BAR, ...
/// registers of a device it owns).
pub unsafe fn config_write(bus: u8, dev: u8, fun: u8, off: u8, v: u32) {
    // SAFETY: as `config_read`; the caller vouches for the value.
    unsafe {
        outl(0xcf8, config_address(bus, dev, fun, off));
        outl(0xcfc, v);
    }
}

static CLAIMED: spin::Mutex<Vec<(u8, u8, u8)>> = spin::Mutex::new(Vec::new());

/// Marks `df` as driven by this crate: NetBSD's PCI bus no longer sees it.
pub fn claim(df: DeviceFunction) {
    let mut c = CLAIMED.lock();
    if !c.contains(&(df.bus, df.device, df.function)) {
        c.push((df.bus, df.device, df.function));
    }
}

/// Whether this crate drives `bus:dev.fun`.
pub fn is_claimed(bus: u8, dev: u8, fun: u8) -> bool {
    CLAIMED.lock().contains(&(bus, dev, fun))
}

/// Who drives a class of virtio devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// This crate (`virtioN` disks, `virtN` interfaces).
    Platform,
    /// NetBSD's driver on its PCI bus (`ld`, `vioif`).
    NetBsd,
}

// Weak references to NetBSD's virtio attachments: non-zero when the
// kernel layer's driver is linked into the image.
core::arch::global_asm!(
    ".pushsection .data.rumpuser_bm_netbsd_drivers, \"aw\"",
    ".p2align 3",
    ".weak rumpns_ld_virtio_ca",
    ".weak rumpns_vioif_ca",
    ".globl __rumpuser_bm_netbsd_ld",
    "__rumpuser_bm_netbsd_ld: .quad rumpns_ld_virtio_ca",
    ".globl __rumpuser_bm_netbsd_vioif",
    "__rumpuser_bm_netbsd_vioif: .quad rumpns_vioif_ca",
    ".popsection",
);

extern "C" {
    static __rumpuser_bm_netbsd_ld: usize;
    static __rumpuser_bm_netbsd_vioif: usize;
}

fn choose(param: &str, linked: bool) -> Driver {
    match rumpuser_pvh::cmdline::param(rumpuser_pvh::bootinfo::cmdline(), param) {
        Some("platform") => Driver::Platform,
        Some("netbsd") => Driver::NetBsd,
        Some(other) => {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: {param}={other}: expected platform or netbsd (using the default)"
            );
            if linked {
                Driver::NetBsd
            } else {
                Driver::Platform
            }
        }
        None if linked => Driver::NetBsd,
        None => Driver::Platform,
    }
}

/// Who drives virtio-blk devices (`RUMPUSER_VIRTIO_BLK`).
pub fn virtio_blk_driver() -> Driver {
    // SAFETY: a word of `.data` written by the linker, never changed.
    let linked = unsafe { core::ptr::addr_of!(__rumpuser_bm_netbsd_ld).read() } != 0;
    choose("RUMPUSER_VIRTIO_BLK", linked)
}

/// Who drives virtio-net devices (`RUMPUSER_VIRTIO_NET`).
pub fn virtio_net_driver() -> Driver {
    // SAFETY: as in `virtio_blk_driver`.
    let linked = unsafe { core::ptr::addr_of!(__rumpuser_bm_netbsd_vioif).read() } != 0;
    choose("RUMPUSER_VIRTIO_NET", linked)
}

/// Configuration space through I/O ports 0xcf8/0xcfc.
pub struct PortCam;

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, off: u8) -> u32 {
        config_read(df.bus, df.device, df.function, off)
    }

    fn write_word(&mut self, df: DeviceFunction, off: u8, data: u32) {
        // SAFETY: the caller (virtio-drivers) writes registers of the
        // function it drives (command, BARs).
        unsafe { config_write(df.bus, df.device, df.function, off, data) }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}

/// Reads the Interrupt Line register (the legacy IRQ the firmware routed
/// the function's INTx pin to) and the pin (0 = none).
pub fn interrupt_line(df: DeviceFunction) -> (u8, u8) {
    let w = PortCam.read_word(df, 0x3c);
    (w as u8, (w >> 8) as u8)
}

/// The DMA HAL: memory is identity mapped, so physical = virtual.
pub struct MetalHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, physically contiguous
// memory (the heap is identity-mapped RAM) owned by the driver until
// `dma_dealloc`; `mmio_phys_to_virt` maps the BAR (uncached) at its
// physical address; `share` returns the physical address of memory that is
// identity mapped, so the device sees exactly the driver's buffer.
unsafe impl Hal for MetalHal {
    fn dma_alloc(pages: usize, _dir: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match rumpuser_pvh::heap::alloc_zeroed(pages * 4096, 4096) {
            Some(p) => (p.as_ptr() as PhysAddr, p),
            None => rumpuser_pvh::exit::fatal("rumpuser-baremetal: out of memory for virtio DMA"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: `vaddr` came from `dma_alloc` with `pages` pages (trait contract).
        unsafe { rumpuser_pvh::heap::free(vaddr, pages * 4096) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        rumpuser_pvh::arch::paging::map_identity(paddr, paddr + size as u64, true);
        match NonNull::new(paddr as *mut u8) {
            Some(p) => p,
            None => rumpuser_pvh::exit::fatal("rumpuser-baremetal: virtio BAR at address 0"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _dir: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _dir: BufferDirection) {}
}
