//! PCI configuration access (mechanism #1, ports 0xcf8/0xcfc) for
//! `virtio-drivers`, and its DMA HAL on the identity map.

use crate::arch::port::{inl, outl};
use core::ptr::NonNull;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Configuration space through I/O ports 0xcf8/0xcfc.
pub struct PortCam;

fn address(df: DeviceFunction, off: u8) -> u32 {
    0x8000_0000
        | (df.bus as u32) << 16
        | ((df.device as u32) & 31) << 11
        | ((df.function as u32) & 7) << 8
        | (off as u32 & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, df: DeviceFunction, off: u8) -> u32 {
        // SAFETY: PCI configuration mechanism #1: select the register, read
        // it. Single CPU and no interrupt handler uses these ports, so the
        // two accesses cannot interleave with another pair.
        unsafe {
            outl(0xcf8, address(df, off));
            inl(0xcfc)
        }
    }

    fn write_word(&mut self, df: DeviceFunction, off: u8, data: u32) {
        // SAFETY: as `read_word`; the caller (virtio-drivers) writes
        // registers of the function it drives (command, BARs).
        unsafe {
            outl(0xcf8, address(df, off));
            outl(0xcfc, data);
        }
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
        match crate::heap::alloc_zeroed(pages * 4096, 4096) {
            Some(p) => (p.as_ptr() as PhysAddr, p),
            None => crate::start::fatal("rumpuser-baremetal: out of memory for virtio DMA"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: `vaddr` came from `dma_alloc` with `pages` pages (trait contract).
        unsafe { crate::heap::free(vaddr, pages * 4096) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        crate::arch::paging::map_identity(paddr, paddr + size as u64, true);
        match NonNull::new(paddr as *mut u8) {
            Some(p) => p,
            None => crate::start::fatal("rumpuser-baremetal: virtio BAR at address 0"),
        }
    }

    unsafe fn share(buffer: NonNull<[u8]>, _dir: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _dir: BufferDirection) {}
}
