//! Device interrupts → green-thread wake-ups.
//!
//! A driver's green thread owns an [`IrqOwner`] and registers it on the
//! PCI INTx lines of its devices. Lines are shared (SeaBIOS routes every
//! PCI pin to one of a few legacy IRQs), so a line can have up to
//! [`OWNERS_PER_LINE`] owners: the bare-metal disk thread, the virtio-net
//! thread of each interface and the thread that runs NetBSD's PCI
//! interrupt handlers can all sit on IRQ 11.
//!
//! The handler masks the line at the PIC, acknowledges the PIC, counts the
//! interrupt and sets a pending bit — nothing else (no device register
//! access, no scheduler call, no allocation). The scheduler's
//! `poll_events` ([`poll`]) hands each pending line to every owner
//! registered on it (a bit in the owner's [`IrqOwner::take`] mask) and
//! wakes their threads. Each owner acknowledges its own devices, then
//! calls [`ack`] with the lines it took; the line is unmasked when the
//! last of its owners has done so. A level-triggered line that is still
//! asserted (some device was not serviced) then interrupts again, so
//! nothing is lost, and no owner can unmask a line another owner's device
//! still asserts.

use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use rumpuser_green::sched_core::ThreadId;
use rumpuser_pvh::arch::pic;

/// Owners one line can have.
pub const OWNERS_PER_LINE: usize = 4;
/// Legacy lines (PIC pair).
pub const LINES: usize = 16;

/// A green thread's interest in device interrupts: the thread to wake and
/// the lines that interrupted since it last looked.
pub struct IrqOwner {
    thread: AtomicU64,
    fired: AtomicU32,
}

impl IrqOwner {
    /// An owner with no thread yet.
    pub const fn new() -> IrqOwner {
        IrqOwner {
            thread: AtomicU64::new(0),
            fired: AtomicU32::new(0),
        }
    }

    /// Makes `t` the thread woken for this owner's lines.
    pub fn bind(&self, t: ThreadId) {
        self.thread.store(t.as_raw(), Ordering::Release);
    }

    /// The lines handed to this owner since the last call (bit `n` = IRQ
    /// `n`). Each must be passed to [`ack`] once the owner's devices on it
    /// are acknowledged.
    pub fn take(&self) -> u32 {
        self.fired.swap(0, Ordering::AcqRel)
    }
}

impl Default for IrqOwner {
    fn default() -> Self {
        IrqOwner::new()
    }
}

/// Why [`register`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Not a line of the PIC pair, or the cascade (2).
    BadLine,
    /// The line has [`OWNERS_PER_LINE`] owners already.
    Full,
}

static PENDING: AtomicU32 = AtomicU32::new(0);
static OWNERS: [[AtomicPtr<IrqOwner>; OWNERS_PER_LINE]; LINES] =
    [const { [const { AtomicPtr::new(core::ptr::null_mut()) }; OWNERS_PER_LINE] }; LINES];
/// Owners that still have to [`ack`] the line's last interrupt.
static OUTSTANDING: [AtomicU8; LINES] = [const { AtomicU8::new(0) }; LINES];
static COUNTS: [AtomicU64; LINES] = [const { AtomicU64::new(0) }; LINES];

fn owners(line: usize) -> impl Iterator<Item = &'static IrqOwner> {
    OWNERS[line].iter().filter_map(|p| {
        // SAFETY: only `&'static IrqOwner`s are stored (see `register`).
        unsafe { p.load(Ordering::Acquire).as_ref() }
    })
}

/// Routes `line` (0..16) to `owner` as well and unmasks it
/// (level-triggered). Registering the same owner twice is a no-op.
pub fn register(line: u8, owner: &'static IrqOwner) -> Result<(), RegisterError> {
    let l = line as usize;
    if l >= LINES || l == 2 {
        return Err(RegisterError::BadLine);
    }
    let me = owner as *const IrqOwner as *mut IrqOwner;
    if OWNERS[l].iter().any(|p| p.load(Ordering::Acquire) == me) {
        return Ok(());
    }
    let slot = OWNERS[l].iter().find(|p| {
        p.compare_exchange(
            core::ptr::null_mut(),
            me,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    });
    if slot.is_none() {
        return Err(RegisterError::Full);
    }
    pic::set_level_triggered(line);
    if OUTSTANDING[l].load(Ordering::Acquire) == 0 {
        pic::unmask(line);
    }
    Ok(())
}

/// Removes `owner` from `line`; a pending interrupt it had not
/// acknowledged is acknowledged for it (the caller has quieted its
/// device), so the line is not left masked.
pub fn unregister(line: u8, owner: &'static IrqOwner) {
    let l = line as usize;
    if l >= LINES {
        return;
    }
    let me = owner as *const IrqOwner as *mut IrqOwner;
    let mut was = false;
    for p in &OWNERS[l] {
        if p.compare_exchange(
            me,
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
        {
            was = true;
        }
    }
    if was {
        let mine = owner.fired.fetch_and(!(1 << l), Ordering::AcqRel);
        if mine & (1 << l) != 0 {
            ack(1 << l);
        }
    }
}

/// Whether any line is routed to an owner (something can wake the CPU).
pub fn any_registered() -> bool {
    (0..LINES).any(|l| owners(l).next().is_some())
}

/// Interrupt handler for PIC line `irq`.
pub fn on_pic_irq(irq: u8) {
    if pic::is_spurious(irq) {
        return;
    }
    pic::mask(irq);
    pic::eoi(irq);
    COUNTS[irq as usize & 15].fetch_add(1, Ordering::Relaxed);
    PENDING.fetch_or(1 << irq, Ordering::Release);
}

/// Whether an interrupt is waiting to be turned into a wake-up.
pub fn any_pending() -> bool {
    PENDING.load(Ordering::Acquire) != 0
}

/// Hands every line that interrupted to its owners and passes their
/// threads to `wake` (scheduler context, not the interrupt handler).
pub fn poll(wake: &mut dyn FnMut(u64)) {
    let mut p = PENDING.swap(0, Ordering::AcqRel);
    while p != 0 {
        let line = p.trailing_zeros() as usize;
        p &= p - 1;
        let n = owners(line).count();
        // A line without owners stays masked: nobody could quiet it.
        OUTSTANDING[line].store(n as u8, Ordering::Release);
        for o in owners(line) {
            o.fired.fetch_or(1 << line, Ordering::AcqRel);
            let t = o.thread.load(Ordering::Acquire);
            if t != 0 {
                wake(t);
            }
        }
    }
}

/// One owner is done with the lines in `lines` (from [`IrqOwner::take`]):
/// each is unmasked when its last owner has acknowledged it.
pub fn ack(lines: u32) {
    let mut m = lines;
    while m != 0 {
        let line = m.trailing_zeros() as usize;
        m &= m - 1;
        if line >= LINES {
            continue;
        }
        let prev = OUTSTANDING[line]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1))
            .unwrap_or(0);
        if prev == 1 {
            pic::unmask(line as u8);
        }
    }
}

/// Interrupts taken on `irq` since boot.
pub fn count(irq: u8) -> u64 {
    COUNTS[irq as usize & 15].load(Ordering::Relaxed)
}
