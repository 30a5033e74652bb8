//! `shared_info` and event channels (2-level ABI) into the green scheduler.
//!
//! * `shared_info` is mapped with `XENMEM_add_to_physmap`
//!   (`XENMAPSPACE_shared_info`) over a page of our `.bss`.
//! * Delivery (the default): the per-vcpu upcall vector
//!   (`HVMOP_set_evtchn_upcall_vector` on [`UPCALL_VECTOR`]), a local
//!   APIC interrupt whose handler is `rumpuser-baremetal`'s IDT entry for
//!   its LAPIC timer vector (0x30, a timer Xen guests never arm; it EOIs
//!   and returns). Interrupts stay masked while green threads run, so
//!   the vector only ends the idle halt: the scheduler's idle checks
//!   `evtchn_upcall_pending` with interrupts masked, then `sti; hlt`,
//!   which Xen turns into `SCHEDOP_block` for an HVM vcpu (`hvm_hlt`).
//!   [`poll`] then turns pending bits into green wake-ups (the scheduler
//!   calls it after every idle and every few switches): clear
//!   `evtchn_upcall_pending`, take `evtchn_pending_sel`, then for every
//!   word the pending and unmasked ports, clearing each bit before
//!   handling it (the standard 2-level scan).
//! * Why no wake-up is lost: Xen raises the vector only when
//!   `evtchn_upcall_pending` goes from 0 to 1, so an interrupt taken
//!   before the `hlt` would leave the vcpu halted for good. `sti` delays
//!   interrupts until the `hlt` has begun, but nested Xen under QEMU TCG
//!   does not always honour that: about one interrupt in a thousand idles
//!   is delivered on the `hlt` itself (measured by the `idle` storm test;
//!   the domain then hung). The interrupt entry therefore steps over the
//!   idle `hlt` when it interrupted exactly there
//!   (`rumpuser_pvh::arch::cpu::window_resume`), which makes the
//!   sequence safe whatever the virtual CPU does. The same nested setup
//!   sometimes delivers the vector again and again at the `cli` after the
//!   halt (about one domU boot in five hung that way, the vcpu running
//!   the handler's EOI forever with `evtchn_upcall_pending` set, seen in
//!   Xen's VMCB dump), so the entry returns from an interrupt taken there
//!   with interrupts masked (`cpu::window_resume`): one interrupt
//!   per idle, then the scheduler polls.
//! * `RUMPUSER_XEN_IDLE=poll` idles with `SCHEDOP_poll` instead, on the
//!   `VIRQ_TIMER` port plus every port a green thread waits on
//!   ([`poll_block`]), with interrupts masked throughout: Xen checks the
//!   ports' pending bits after marking the vcpu blocked. It costs a
//!   port list per idle and wakes only for watched ports; it is also the
//!   fallback when Xen offers no callback vector. (The global
//!   `HVM_PARAM_CALLBACK_IRQ` vector is not used: it is level-triggered
//!   on `evtchn_upcall_pending`, so its handler would have to clear the
//!   flag, and the shared IDT has no hook for that.)
//! * A port has an optional waiter (a green thread token) and a "fired"
//!   bit; [`wait`] parks until the bit is set. The `VIRQ_TIMER` port
//!   needs no waiter: its event only ends the idle halt, and the
//!   scheduler re-reads the clock.

use crate::abi::{self, SharedInfo};
use crate::hypercall;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use rumpuser_green::sched_core;

/// The IDT vector of event channel upcalls (see the module docs).
pub const UPCALL_VECTOR: u8 = rumpuser_pvh::arch::lapic::TIMER_VECTOR;

/// Ports this platform tracks (waiters, fired bits, counters).
pub const MAX_PORTS: usize = 1024;

#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);
// SAFETY: after `map_shared_info` the page is Xen's shared_info, accessed
// only through the atomics of `SharedInfo` and volatile reads.
unsafe impl Sync for Page {}

static SHARED_PAGE: Page = Page(UnsafeCell::new([0; 4096]));
static MAPPED: AtomicBool = AtomicBool::new(false);

static WAITERS: [AtomicU64; MAX_PORTS] = [const { AtomicU64::new(0) }; MAX_PORTS];
/// Ports with a waiter, as a bitmap (what idle's `SCHEDOP_poll` names).
static WATCHED: [AtomicU64; MAX_PORTS / 64] = [const { AtomicU64::new(0) }; MAX_PORTS / 64];
static FIRED: [AtomicU64; MAX_PORTS / 64] = [const { AtomicU64::new(0) }; MAX_PORTS / 64];
static COUNTS: [AtomicU64; MAX_PORTS] = [const { AtomicU64::new(0) }; MAX_PORTS];
static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// Maps shared_info over our page. Returns Xen's status.
pub fn map_shared_info() -> i64 {
    let mut a = abi::AddToPhysmap {
        domid: abi::DOMID_SELF,
        size: 0,
        space: abi::XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: SHARED_PAGE.0.get() as u64 >> 12,
    };
    // SAFETY: a valid xen_add_to_physmap; the frame is our own page,
    // used for nothing else.
    let rc = unsafe { hypercall::memory_op(abi::XENMEM_ADD_TO_PHYSMAP, &mut a) };
    if rc == 0 {
        MAPPED.store(true, Ordering::Release);
    }
    rc
}

/// The shared_info page (after [`map_shared_info`]).
pub fn shared() -> &'static SharedInfo {
    debug_assert!(MAPPED.load(Ordering::Relaxed));
    // SAFETY: the page holds Xen's shared_info (mapped at boot, before any
    // reader); `SharedInfo` is its repr(C) layout, fits in the page, and
    // every field Xen writes concurrently is an atomic.
    unsafe { &*(SHARED_PAGE.0.get() as *const SharedInfo) }
}

/// Enables the (virtual) local APIC and routes vcpu 0's upcalls to
/// [`UPCALL_VECTOR`]. Returns Xen's status.
pub fn enable_upcall_vector() -> i64 {
    rumpuser_pvh::arch::lapic::init();
    let mut v = abi::EvtchnUpcallVector {
        vcpu: 0,
        vector: UPCALL_VECTOR,
        _pad: [0; 3],
    };
    // SAFETY: a valid xen_hvm_evtchn_upcall_vector for the duration of the call.
    unsafe {
        hypercall::call2(
            abi::HYPERVISOR_HVM_OP,
            abi::HVMOP_SET_EVTCHN_UPCALL_VECTOR,
            &mut v as *mut _ as usize,
        )
    }
}

/// Binds `virq` on vcpu 0 to a new port.
pub fn bind_virq(virq: u32) -> Result<u32, i64> {
    let mut b = abi::EvtchnBindVirq {
        virq,
        vcpu: 0,
        port: 0,
    };
    // SAFETY: a valid evtchn_bind_virq.
    let rc = unsafe { hypercall::evtchn_op(abi::EVTCHNOP_BIND_VIRQ, &mut b) };
    if rc == 0 {
        Ok(b.port)
    } else {
        Err(rc)
    }
}

/// Allocates an unbound port that domain `remote` may bind.
pub fn alloc_unbound(remote: u16) -> Result<u32, i64> {
    let mut a = abi::EvtchnAllocUnbound {
        dom: abi::DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: a valid evtchn_alloc_unbound.
    let rc = unsafe { hypercall::evtchn_op(abi::EVTCHNOP_ALLOC_UNBOUND, &mut a) };
    if rc == 0 {
        Ok(a.port)
    } else {
        Err(rc)
    }
}

/// Binds a local port to `remote_port` of domain `remote`.
pub fn bind_interdomain(remote: u16, remote_port: u32) -> Result<u32, i64> {
    let mut b = abi::EvtchnBindInterdomain {
        remote_dom: remote,
        remote_port,
        local_port: 0,
    };
    // SAFETY: a valid evtchn_bind_interdomain.
    let rc = unsafe { hypercall::evtchn_op(abi::EVTCHNOP_BIND_INTERDOMAIN, &mut b) };
    if rc == 0 {
        Ok(b.local_port)
    } else {
        Err(rc)
    }
}

/// Notifies the other end of `port`.
pub fn send(port: u32) -> i64 {
    let mut p = abi::EvtchnSend { port };
    // SAFETY: a valid evtchn_send.
    unsafe { hypercall::evtchn_op(abi::EVTCHNOP_SEND, &mut p) }
}

/// Closes `port` (and forgets its waiter and fired bit).
pub fn close(port: u32) -> i64 {
    if let Some(w) = WAITERS.get(port as usize) {
        w.store(0, Ordering::Release);
        take_fired(port);
    }
    let mut p = abi::EvtchnClose { port };
    // SAFETY: a valid evtchn_close.
    unsafe { hypercall::evtchn_op(abi::EVTCHNOP_CLOSE, &mut p) }
}

/// Unmasks `port` (new ports start unmasked; for completeness).
pub fn unmask(port: u32) -> i64 {
    let mut p = abi::EvtchnUnmask { port };
    // SAFETY: a valid evtchn_unmask.
    unsafe { hypercall::evtchn_op(abi::EVTCHNOP_UNMASK, &mut p) }
}

/// Whether an upcall is pending (an event arrived since the last [`poll`]).
#[inline]
pub fn upcall_pending() -> bool {
    MAPPED.load(Ordering::Relaxed)
        && shared().vcpu_info[0]
            .evtchn_upcall_pending
            .load(Ordering::Acquire)
            != 0
}

/// Drains pending ports: sets their fired bits and hands the tokens of
/// their waiters to `wake`.
pub fn poll(wake: &mut dyn FnMut(u64)) {
    if !upcall_pending() {
        return;
    }
    let s = shared();
    let vi = &s.vcpu_info[0];
    vi.evtchn_upcall_pending.store(0, Ordering::Release);
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    let mut sel = vi.evtchn_pending_sel.swap(0, Ordering::AcqRel);
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        loop {
            let bits = s.evtchn_pending[w].load(Ordering::Acquire)
                & !s.evtchn_mask[w].load(Ordering::Acquire);
            if bits == 0 {
                break;
            }
            let b = bits.trailing_zeros() as usize;
            s.evtchn_pending[w].fetch_and(!(1u64 << b), Ordering::AcqRel);
            fire((w * 64 + b) as u32, wake);
        }
    }
}

fn fire(port: u32, wake: &mut dyn FnMut(u64)) {
    let p = port as usize;
    if p >= MAX_PORTS {
        return;
    }
    COUNTS[p].fetch_add(1, Ordering::Relaxed);
    FIRED[p / 64].fetch_or(1 << (p % 64), Ordering::Release);
    let t = WAITERS[p].load(Ordering::Acquire);
    if t != 0 {
        wake(t);
    }
}

/// Marks `port` fired and wakes its waiter, as if an event had arrived:
/// a local reason for the waiter to look at the port's state (blkfront's
/// back-end watch uses it when the back end goes away).
pub fn raise(port: u32) {
    fire(port, &mut |t| {
        if let Some(tid) = sched_core::ThreadId::from_raw(t) {
            sched_core::wake(tid);
        }
    });
}

/// Clears and returns the fired bit of `port`.
pub fn take_fired(port: u32) -> bool {
    let p = port as usize;
    p < MAX_PORTS
        && FIRED[p / 64].fetch_and(!(1 << (p % 64)), Ordering::AcqRel) & (1 << (p % 64)) != 0
}

/// Parks the calling green thread until `port` fires (consuming the
/// event) or `deadline` passes; returns whether it fired.
pub fn wait(port: u32, deadline: Option<u64>) -> bool {
    let p = port as usize;
    if p >= MAX_PORTS {
        return false;
    }
    WAITERS[p].store(sched_core::current().as_raw(), Ordering::Release);
    WATCHED[p / 64].fetch_or(1 << (p % 64), Ordering::Release);
    let fired = loop {
        if take_fired(port) {
            break true;
        }
        if deadline.is_some_and(|d| sched_core::now_ns() >= d) {
            break false;
        }
        sched_core::park(deadline);
    };
    WATCHED[p / 64].fetch_and(!(1 << (p % 64)), Ordering::Release);
    WAITERS[p].store(0, Ordering::Release);
    fired
}

/// Makes green thread `t` the waiter of `port` for good (`None`: no
/// waiter): an event wakes it, and it consumes the event with
/// [`take_fired`] (a driver thread that sleeps with `park`, as
/// `if_virt`'s receive thread does, instead of calling [`wait`]).
pub fn bind_waiter(port: u32, t: Option<sched_core::ThreadId>) {
    let p = port as usize;
    if p >= MAX_PORTS {
        return;
    }
    let bit = 1u64 << (p % 64);
    match t {
        Some(t) => {
            WAITERS[p].store(t.as_raw(), Ordering::Release);
            WATCHED[p / 64].fetch_or(bit, Ordering::Release);
        }
        None => {
            WATCHED[p / 64].fetch_and(!bit, Ordering::Release);
            WAITERS[p].store(0, Ordering::Release);
        }
    }
}

/// Whether some port has a waiter (something other than a timer can
/// wake the machine).
pub fn any_waiter() -> bool {
    WATCHED.iter().any(|w| w.load(Ordering::Relaxed) != 0)
}

/// Blocks the vcpu (`SCHEDOP_poll`) until `extra` or a port with a waiter
/// is pending, or until `timeout` (absolute system time, 0 = none).
/// Race-free with interrupts masked: Xen marks the vcpu blocked, then
/// checks the named ports, and any later event on one of them unblocks
/// it (an event on a port nobody waits for does not need to).
pub fn poll_block(extra: u32, timeout: u64) -> i64 {
    let mut ports = [0u32; abi::SCHED_POLL_MAX_PORTS];
    ports[0] = extra;
    let mut n = 1;
    'words: for (w, word) in WATCHED.iter().enumerate() {
        let mut bits = word.load(Ordering::Acquire);
        while bits != 0 {
            if n == ports.len() {
                break 'words;
            }
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            ports[n] = (w * 64 + b) as u32;
            n += 1;
        }
    }
    let mut p = abi::SchedPoll {
        ports: ports.as_mut_ptr(),
        nr_ports: n as u32,
        timeout,
    };
    // SAFETY: a valid sched_poll whose port array lives on this stack for
    // the duration of the call.
    unsafe { hypercall::sched_op(abi::SCHEDOP_POLL, &mut p as *mut _ as usize) }
}

/// Events seen on `port` since boot.
pub fn count(port: u32) -> u64 {
    COUNTS
        .get(port as usize)
        .map_or(0, |c| c.load(Ordering::Relaxed))
}

/// Upcalls (non-empty polls) since boot.
pub fn upcalls() -> u64 {
    UPCALLS.load(Ordering::Relaxed)
}
