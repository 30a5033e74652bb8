//! An asynchronous virtio-blk driver on `virtio-drivers`' PCI transport
//! and `VirtQueue`.
//!
//! `virtio_drivers::device::blk::VirtIOBlk` can start reads and writes
//! without waiting, but its `flush` polls and assumes nothing else is in
//! flight, so the request path is written here: every request (read,
//! write, flush) is a three-part descriptor chain (header, data, status)
//! added with [`VirtQueue::add`]; completions are collected in used-ring
//! order with [`Blk::harvest`]. Requests carry a caller context `C` that
//! comes back with the result.

use crate::pci::MetalHal;
use alloc::boxed::Box;
use alloc::vec::Vec;
use bitflags::bitflags;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::Transport;

/// Descriptors per queue (each request takes three).
pub const QUEUE_SIZE: usize = 64;
/// Sector size of the interface.
pub const SECTOR: u64 = 512;

bitflags! {
    #[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
    struct Features: u64 {
        const RO = 1 << 5;
        const FLUSH = 1 << 9;
        const RING_EVENT_IDX = 1 << 29;
        const VERSION_1 = 1 << 32;
    }
}

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Device → memory.
    Read,
    /// Memory → device.
    Write,
    /// Make completed writes durable.
    Flush,
}

/// One request and its private buffers (boxed: the device holds their
/// addresses until completion).
pub struct Req<C> {
    hdr: [u8; 16],
    status: [u8; 1],
    /// The operation.
    pub op: Op,
    data: *mut u8,
    len: usize,
    /// The caller's context.
    pub ctx: C,
}

// SAFETY: the data buffer belongs to the request until it completes (the
// kernel's bio contract), so the request may move between green threads.
unsafe impl<C: Send> Send for Req<C> {}

impl<C> Req<C> {
    /// A request for `len` bytes at `data`, starting at sector `sector`.
    ///
    /// # Safety
    /// `data` is valid for `len` bytes (writable for reads) until the
    /// request completes, and nothing else touches it meanwhile.
    pub unsafe fn new(op: Op, sector: u64, data: *mut u8, len: usize, ctx: C) -> Box<Req<C>> {
        let kind: u32 = match op {
            Op::Read => 0,
            Op::Write => 1,
            Op::Flush => 4,
        };
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&kind.to_le_bytes());
        hdr[8..].copy_from_slice(&sector.to_le_bytes());
        Box::new(Req {
            hdr,
            status: [0xff],
            op,
            data,
            len,
            ctx,
        })
    }

    /// Turns a completed write into a flush request with the same context.
    pub fn into_flush(mut self: Box<Self>) -> Box<Self> {
        self.op = Op::Flush;
        self.hdr = [0; 16];
        self.hdr[..4].copy_from_slice(&4u32.to_le_bytes());
        self.status = [0xff];
        self.data = core::ptr::null_mut();
        self.len = 0;
        self
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the request carries no data (a flush).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The device's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// Device I/O error.
    IoErr,
    /// Request type not supported.
    Unsupp,
}

/// One virtio-blk device.
pub struct Blk<C> {
    transport: PciTransport,
    queue: VirtQueue<MetalHal, QUEUE_SIZE>,
    capacity: u64,
    readonly: bool,
    flush: bool,
    slots: [Option<Box<Req<C>>>; QUEUE_SIZE],
}

// SAFETY: the transport's MMIO pointers and the queue's DMA memory are
// used only through `&mut self` (the disk table's lock), from one CPU.
unsafe impl<C: Send> Send for Blk<C> {}

/// Driver errors at setup.
#[derive(Debug)]
pub enum SetupError {
    /// The transport refused (no modern capabilities, ...).
    Transport,
    /// Queue setup failed.
    Queue,
}

impl<C> Blk<C> {
    /// Initialises the device behind `transport` (interrupts left enabled).
    pub fn new(mut transport: PciTransport) -> Result<Blk<C>, SetupError> {
        let features = transport.begin_init(
            Features::RO | Features::FLUSH | Features::RING_EVENT_IDX | Features::VERSION_1,
        );
        let lo: u32 = transport
            .read_config_space(0)
            .map_err(|_| SetupError::Transport)?;
        let hi: u32 = transport
            .read_config_space(4)
            .map_err(|_| SetupError::Transport)?;
        let queue = VirtQueue::new(
            &mut transport,
            0,
            false,
            features.contains(Features::RING_EVENT_IDX),
        )
        .map_err(|_| SetupError::Queue)?;
        transport.finish_init();
        Ok(Blk {
            transport,
            queue,
            capacity: (hi as u64) << 32 | lo as u64,
            readonly: features.contains(Features::RO),
            flush: features.contains(Features::FLUSH),
            slots: [const { None }; QUEUE_SIZE],
        })
    }

    /// Size in sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether the device refuses writes.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// Whether flushes do anything (the device has a volatile cache).
    pub fn has_flush(&self) -> bool {
        self.flush
    }

    /// Reads (and so clears) the interrupt status, deasserting INTx.
    pub fn ack_interrupt(&mut self) -> bool {
        !self.transport.ack_interrupt().is_empty()
    }

    /// Queues a request and notifies the device, or gives it back when
    /// the ring is full.
    pub fn submit(&mut self, mut r: Box<Req<C>>) -> Result<(), Box<Req<C>>> {
        let token = {
            let Req {
                hdr,
                status,
                data,
                len,
                op,
                ..
            } = &mut *r;
            let hdr: &[u8] = &hdr[..];
            let status: &mut [u8] = &mut status[..];
            // SAFETY: the header and status live in the boxed request,
            // which stays in `slots` (not moved, not touched) until the
            // device returns it; the data buffer is valid for `len` bytes
            // until completion (`Req::new`'s contract).
            unsafe {
                match op {
                    Op::Flush => self.queue.add(&[hdr], &mut [status]),
                    Op::Read => {
                        let d = core::slice::from_raw_parts_mut(*data, *len);
                        self.queue.add(&[hdr], &mut [d, status])
                    }
                    Op::Write => {
                        let d = core::slice::from_raw_parts(*data as *const u8, *len);
                        self.queue.add(&[hdr, d], &mut [status])
                    }
                }
            }
        };
        match token {
            Ok(t) => {
                self.slots[t as usize] = Some(r);
                if self.queue.should_notify() {
                    self.transport.notify(0);
                }
                Ok(())
            }
            Err(_) => Err(r),
        }
    }

    /// Moves every completed request to `out` with its status.
    pub fn harvest(&mut self, out: &mut Vec<(Box<Req<C>>, Status)>) {
        while let Some(t) = self.queue.peek_used() {
            let Some(mut r) = self.slots.get_mut(t as usize).and_then(Option::take) else {
                rumpuser_pvh::exit::fatal(
                    "rumpuser-baremetal: virtio-blk returned an unknown token",
                );
            };
            let Req {
                hdr,
                status,
                data,
                len,
                op,
                ..
            } = &mut *r;
            let hdr: &[u8] = &hdr[..];
            let st: &mut [u8] = &mut status[..];
            // SAFETY: the same buffers `submit` added under token `t`.
            let popped = unsafe {
                match op {
                    Op::Flush => self.queue.pop_used(t, &[hdr], &mut [st]),
                    Op::Read => {
                        let d = core::slice::from_raw_parts_mut(*data, *len);
                        self.queue.pop_used(t, &[hdr], &mut [d, st])
                    }
                    Op::Write => {
                        let d = core::slice::from_raw_parts(*data as *const u8, *len);
                        self.queue.pop_used(t, &[hdr, d], &mut [st])
                    }
                }
            };
            let s = match (popped, status[0]) {
                (Ok(_), 0) => Status::Ok,
                (Ok(_), 2) => Status::Unsupp,
                _ => Status::IoErr,
            };
            out.push((r, s));
        }
    }

    /// Requests the device has not returned yet.
    pub fn in_flight(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}
