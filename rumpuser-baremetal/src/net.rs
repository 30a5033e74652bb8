//! virtio-net over PCI as a [`NetDevice`] for `if_virt`
//! ([`rumpuser_pvh::virtif`]), on `virtio-drivers`' PCI transport and
//! `VirtQueue` (its `VirtIONet` polls and owns its buffers the wrong way
//! for an interrupt-driven interface, so the queues are driven here).
//!
//! * Features: `VERSION_1` and `MAC` only (no offloads: `if_virt` has
//!   none), so the device header is 12 bytes and a frame is at most
//!   1514 bytes.
//! * Receive: [`QUEUE`] buffers of [`BUF`] bytes, each one device-writable
//!   descriptor, all posted at start and reposted as the interface gives
//!   them back. A frame is handed out as a pointer into its buffer.
//! * Transmit: [`QUEUE`] buffers; a frame's iovec is copied behind a
//!   zeroed header into a free one (the one copy: `if_virt` frees the
//!   mbuf when the send returns). Finished buffers are collected lazily
//!   on the next send; transmit interrupts are off except while a sender
//!   waits for room.
//! * Interrupts: the function's INTx line through [`crate::irq`], shared
//!   with whoever else is on it; notifications are suppressed with the
//!   ring flags (`RING_EVENT_IDX` is not negotiated), so the receive
//!   thread can turn them off while it drains the ring.
//!
//! [`probe`] registers every virtio-net function on bus 0 (unless NetBSD's
//! `vioif` is to drive them, [`crate::pci::virtio_net_driver`]) in PCI
//! order: the first is `virt0`.

use crate::irq::{self, IrqOwner};
use crate::pci::MetalHal;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use bitflags::bitflags;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_core::Errno;
use rumpuser_green::sched_core::ThreadId;
use rumpuser_pvh::virtif::{DeviceState, NetDevice, RxFrame, TxError};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{virtio_device_type, PciTransport};
use virtio_drivers::transport::{DeviceType, Transport};

/// Descriptors (and buffers) per queue.
pub const QUEUE: usize = 256;
/// Bytes per buffer.
pub const BUF: usize = 2048;
/// The device header in front of every frame (`VERSION_1`).
pub const HDR: usize = 12;
/// The longest frame a buffer holds.
pub const MAX_FRAME: usize = BUF - HDR;

const RX_Q: u16 = 0;
const TX_Q: u16 = 1;

bitflags! {
    #[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
    struct Features: u64 {
        const MAC = 1 << 5;
        const VERSION_1 = 1 << 32;
    }
}

/// One block of `QUEUE` buffers of `BUF` bytes (physically contiguous
/// heap memory, identity mapped).
struct Buffers(NonNull<u8>);

impl Buffers {
    fn new() -> Option<Buffers> {
        rumpuser_pvh::heap::alloc_zeroed(QUEUE * BUF, 4096).map(Buffers)
    }

    fn ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: `i < QUEUE` (every caller's index comes from a slot
        // table of that size): inside the block.
        unsafe { self.0.as_ptr().add(i * BUF) }
    }

    /// Buffer `i`, `len` bytes.
    ///
    /// # Safety
    /// Nothing else (the device included) uses that buffer meanwhile
    /// unless the slice is handed to the queue.
    unsafe fn slice(&self, i: usize, len: usize) -> &'static mut [u8] {
        // SAFETY: forwarded; `len <= BUF` by every caller.
        unsafe { core::slice::from_raw_parts_mut(self.ptr(i), len) }
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        // SAFETY: the block `new` allocated; the queues that used it are
        // dropped (reset) before the buffers (field order in `VirtioNet`).
        unsafe { rumpuser_pvh::heap::free(self.0, QUEUE * BUF) };
    }
}

/// One virtio-net function.
pub struct VirtioNet {
    // Field order: the queues (and transport) go before the buffers.
    rx: VirtQueue<MetalHal, QUEUE>,
    tx: VirtQueue<MetalHal, QUEUE>,
    transport: PciTransport,
    rx_bufs: Buffers,
    tx_bufs: Buffers,
    /// Queue token → receive buffer index (or none).
    rx_slot: [u16; QUEUE],
    /// Queue token → (transmit buffer index, bytes).
    tx_slot: [Option<(u16, u16)>; QUEUE],
    tx_free: Vec<u16>,
    rx_posted: usize,
    mac: [u8; 6],
    irq: u8,
    df: DeviceFunction,
    owner: &'static IrqOwner,
    bound: bool,
    acks: &'static AtomicU64,
}

// SAFETY: the transport's MMIO pointers, the queues' DMA memory and the
// buffers are only used through `&mut self`, from one CPU (virtif's lock).
unsafe impl Send for VirtioNet {}

const NO_SLOT: u16 = u16::MAX;

impl VirtioNet {
    fn new(mut transport: PciTransport, irq: u8, df: DeviceFunction) -> Result<VirtioNet, String> {
        let features = transport.begin_init(Features::MAC | Features::VERSION_1);
        if !features.contains(Features::VERSION_1) {
            return Err("no VERSION_1".into());
        }
        let mut mac = [0u8; 6];
        if features.contains(Features::MAC) {
            for (i, b) in mac.iter_mut().enumerate() {
                *b = transport
                    .read_config_space::<u8>(i)
                    .map_err(|e| format!("config: {e:?}"))?;
            }
        } else {
            // A locally administered address from the PCI location.
            mac = [0x02, 0x72, 0x75, 0x6d, df.bus, df.device << 3 | df.function];
        }
        let rx = VirtQueue::new(&mut transport, RX_Q, false, false)
            .map_err(|e| format!("receive queue: {e:?}"))?;
        let tx = VirtQueue::new(&mut transport, TX_Q, false, false)
            .map_err(|e| format!("transmit queue: {e:?}"))?;
        let (Some(rx_bufs), Some(tx_bufs)) = (Buffers::new(), Buffers::new()) else {
            return Err("out of memory for buffers".into());
        };
        let mut d = VirtioNet {
            rx,
            tx,
            transport,
            rx_bufs,
            tx_bufs,
            rx_slot: [NO_SLOT; QUEUE],
            tx_slot: [None; QUEUE],
            tx_free: (0..QUEUE as u16).rev().collect(),
            rx_posted: 0,
            mac,
            irq,
            df,
            owner: Box::leak(Box::new(IrqOwner::new())),
            bound: false,
            acks: Box::leak(Box::new(AtomicU64::new(0))),
        };
        // No interrupts until an interface binds the device.
        d.rx.set_dev_notify(false);
        d.tx.set_dev_notify(false);
        for i in 0..QUEUE as u16 {
            d.post_rx(i);
        }
        d.transport.finish_init();
        if d.rx.should_notify() {
            d.transport.notify(RX_Q);
        }
        Ok(d)
    }

    /// Hands receive buffer `i` to the device (no notify).
    fn post_rx(&mut self, i: u16) {
        // SAFETY: buffer `i` is not posted (the caller took it off the
        // ring or never posted it) and stays untouched until popped.
        let b = unsafe { self.rx_bufs.slice(i as usize, BUF) };
        // SAFETY: as above: valid until `pop_used` returns it.
        match unsafe { self.rx.add(&[], &mut [b]) } {
            Ok(t) => {
                self.rx_slot[t as usize] = i;
                self.rx_posted += 1;
            }
            Err(e) => rumpuser_pvh::exit::fatal(&format!(
                "rumpuser-baremetal: virtio-net {}: cannot post a receive buffer: {e:?}",
                self.df
            )),
        }
    }
}

impl NetDevice for VirtioNet {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn bind(&mut self, t: ThreadId) -> Result<(), Errno> {
        self.owner.bind(t);
        irq::register(self.irq, self.owner).map_err(|_| Errno::EBUSY)?;
        self.bound = true;
        self.rx.set_dev_notify(true);
        Ok(())
    }

    fn unbind(&mut self) {
        self.rx.set_dev_notify(false);
        self.tx.set_dev_notify(false);
        if self.bound {
            irq::unregister(self.irq, self.owner);
            // The device may still assert the line: quiet it.
            self.transport.ack_interrupt();
            self.bound = false;
        }
    }

    fn ack(&mut self) {
        let fired = self.owner.take();
        if fired == 0 {
            return;
        }
        // Reading the interrupt status deasserts the device's INTx.
        if !self.transport.ack_interrupt().is_empty() {
            self.acks.fetch_add(1, Ordering::Relaxed);
        }
        irq::ack(fired);
    }

    fn rx_pop(&mut self) -> Option<RxFrame> {
        let t = self.rx.peek_used()?;
        let i = self.rx_slot[t as usize];
        if i == NO_SLOT {
            rumpuser_pvh::exit::fatal(
                "rumpuser-baremetal: virtio-net returned an unknown receive token",
            );
        }
        // SAFETY: the buffer `post_rx` added under token `t`.
        let b = unsafe { self.rx_bufs.slice(i as usize, BUF) };
        // SAFETY: the same buffer as added under `t`.
        let len = match unsafe { self.rx.pop_used(t, &[], &mut [b]) } {
            Ok(n) => n as usize,
            Err(e) => rumpuser_pvh::exit::fatal(&format!(
                "rumpuser-baremetal: virtio-net receive ring: {e:?}"
            )),
        };
        self.rx_slot[t as usize] = NO_SLOT;
        self.rx_posted -= 1;
        let len = len.min(BUF).saturating_sub(HDR);
        Some(RxFrame {
            // SAFETY: `HDR < BUF`: inside buffer `i`.
            data: unsafe { self.rx_bufs.ptr(i as usize).add(HDR) },
            len,
            id: i as u32,
            more: false,
        })
    }

    fn rx_recycle(&mut self, frames: &mut Vec<RxFrame>) {
        for f in frames.drain(..) {
            self.post_rx(f.id as u16);
        }
        if self.rx.should_notify() {
            self.transport.notify(RX_Q);
        }
    }

    fn rx_notify(&mut self, on: bool) -> bool {
        self.rx.set_dev_notify(on);
        on && self.rx.can_pop()
    }

    fn transmit(&mut self, segs: &[&[u8]]) -> Result<(), TxError> {
        let len: usize = segs.iter().map(|s| s.len()).sum();
        if len > MAX_FRAME {
            return Err(TxError::TooLong);
        }
        if self.tx_free.is_empty() && !self.tx_reclaim() {
            return Err(TxError::Full);
        }
        let Some(i) = self.tx_free.pop() else {
            return Err(TxError::Full);
        };
        // SAFETY: buffer `i` is free (not in flight).
        let b = unsafe { self.tx_bufs.slice(i as usize, HDR + len) };
        b[..HDR].fill(0);
        let mut at = HDR;
        for s in segs {
            b[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        }
        // SAFETY: the buffer stays untouched until `pop_used` returns it.
        match unsafe { self.tx.add(&[b], &mut []) } {
            Ok(t) => {
                self.tx_slot[t as usize] = Some((i, (HDR + len) as u16));
                if self.tx.should_notify() {
                    self.transport.notify(TX_Q);
                }
                Ok(())
            }
            Err(_) => {
                self.tx_free.push(i);
                Err(TxError::Full)
            }
        }
    }

    fn tx_reclaim(&mut self) -> bool {
        while let Some(t) = self.tx.peek_used() {
            let Some((i, len)) = self.tx_slot[t as usize].take() else {
                rumpuser_pvh::exit::fatal(
                    "rumpuser-baremetal: virtio-net returned an unknown transmit token",
                );
            };
            // SAFETY: the buffer `transmit` added under token `t`.
            let b = unsafe { self.tx_bufs.slice(i as usize, len as usize) };
            // SAFETY: the same buffer as added under `t`.
            if let Err(e) = unsafe { self.tx.pop_used(t, &[b], &mut []) } {
                rumpuser_pvh::exit::fatal(&format!(
                    "rumpuser-baremetal: virtio-net transmit ring: {e:?}"
                ));
            }
            self.tx_free.push(i);
        }
        !self.tx_free.is_empty()
    }

    fn tx_notify(&mut self, on: bool) {
        self.tx.set_dev_notify(on);
    }

    fn state(&self) -> DeviceState {
        DeviceState {
            rx_posted: self.rx_posted,
            rx_capacity: QUEUE,
            tx_in_flight: QUEUE - self.tx_free.len(),
            interrupts: self.acks.load(Ordering::Relaxed),
        }
    }

    fn describe(&self) -> String {
        let m = self.mac;
        format!(
            "virtio-net PCI {} IRQ {} MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            self.df, self.irq, m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// Finds the virtio-net functions on PCI bus 0 and registers them with
/// [`rumpuser_pvh::virtif`] (unless NetBSD's `vioif` is to drive them).
pub fn probe() {
    if crate::pci::virtio_net_driver() == crate::pci::Driver::NetBsd {
        if crate::start::verbose() {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: virtio-net devices left to NetBSD's vioif driver"
            );
        }
        return;
    }
    let mut root = PciRoot::new(crate::pci::PortCam);
    let found: Vec<DeviceFunction> = root
        .enumerate_bus(0)
        .filter(|(_, info)| virtio_device_type(info) == Some(DeviceType::Network))
        .map(|(df, _)| df)
        .collect();
    for df in found {
        crate::pci::claim(df);
        let (line, pin) = crate::pci::interrupt_line(df);
        if pin == 0 || line >= 16 || line == 2 {
            rumpuser_pvh::kprintln!(
                "rumpuser-baremetal: virtio-net {df}: no legacy interrupt line (pin {pin}, line {line}); skipped"
            );
            continue;
        }
        let transport = match PciTransport::new::<MetalHal, _>(&mut root, df) {
            Ok(t) => t,
            Err(e) => {
                rumpuser_pvh::kprintln!("rumpuser-baremetal: virtio-net {df}: {e:?} (skipped)");
                continue;
            }
        };
        match VirtioNet::new(transport, line, df) {
            Ok(d) => {
                let desc = d.describe();
                let n = rumpuser_pvh::virtif::register(Box::new(d));
                if crate::start::verbose() {
                    rumpuser_pvh::kprintln!("rumpuser-baremetal: virt{n} = {desc}");
                }
            }
            Err(e) => rumpuser_pvh::kprintln!("rumpuser-baremetal: virtio-net {df}: {e} (skipped)"),
        }
    }
}
