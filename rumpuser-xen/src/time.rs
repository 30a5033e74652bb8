//! Clocks and the wake-up timer on Xen.
//!
//! * Monotonic: Xen system time (ns since Xen booted) extrapolated from
//!   vcpu 0's `vcpu_time_info` with `rdtsc` ([`crate::pvclock`]), read
//!   under the record's version counter and clamped so that it never goes
//!   backwards. It is the same clock Xen's timers use, so deadlines need
//!   no conversion.
//! * Wall: `shared_info.wc_*` (the wall time at system time 0, under
//!   `wc_version`) plus the system time.
//! * Timer: `VCPUOP_set_singleshot_timer` at the absolute deadline (or
//!   `set_timer_op` if Xen refuses the vcpu op); Xen raises `VIRQ_TIMER`,
//!   whose event ends the idle `hlt`. Xen may fire a timer up to its
//!   slop (50 µs) early; the scheduler re-reads the clock and idles again,
//!   so no sleeper ever wakes early. The periodic timer is stopped at
//!   boot: no tick.

use crate::abi;
use crate::events;
use crate::hypercall;
use crate::pvclock::{self, Monotonic, Snapshot};
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

static MONO: Monotonic = Monotonic::new();
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
static USE_SET_TIMER_OP: AtomicBool = AtomicBool::new(false);
static ARMS: AtomicU64 = AtomicU64::new(0);

/// A consistent copy of vcpu 0's time record.
pub fn snapshot() -> Snapshot {
    let t = &events::shared().vcpu_info[0].time as *const abi::VcpuTimeInfo;
    loop {
        // SAFETY: `t` points into the mapped shared_info page; Xen updates
        // the record concurrently, so every field is read volatile and the
        // copy is kept only if the version was even and unchanged.
        let (v0, s, v1) = unsafe {
            let v0 = core::ptr::addr_of!((*t).version).read_volatile();
            fence(Ordering::Acquire);
            let s = Snapshot {
                tsc_timestamp: core::ptr::addr_of!((*t).tsc_timestamp).read_volatile(),
                system_time: core::ptr::addr_of!((*t).system_time).read_volatile(),
                mul: core::ptr::addr_of!((*t).tsc_to_system_mul).read_volatile(),
                shift: core::ptr::addr_of!((*t).tsc_shift).read_volatile(),
            };
            fence(Ordering::Acquire);
            let v1 = core::ptr::addr_of!((*t).version).read_volatile();
            (v0, s, v1)
        };
        if v0 & 1 == 0 && v0 == v1 {
            return s;
        }
        core::hint::spin_loop();
    }
}

/// Monotonic nanoseconds (Xen system time).
#[inline]
pub fn now_ns() -> u64 {
    let s = snapshot();
    MONO.clamp(s.ns_at(rumpuser_pvh::arch::cpu::rdtsc()))
}

/// Wall-clock time as `(seconds, nanoseconds)` since the Unix epoch.
pub fn wall() -> (i64, i64) {
    let s = events::shared();
    loop {
        let v0 = s.wc_version.load(Ordering::Acquire);
        let sec = s.wc_sec.load(Ordering::Relaxed) as u64
            | (s.wc_sec_hi.load(Ordering::Relaxed) as u64) << 32;
        let nsec = s.wc_nsec.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if v0 & 1 == 0 && s.wc_version.load(Ordering::Relaxed) == v0 {
            return pvclock::wall_at(sec, nsec, now_ns());
        }
        core::hint::spin_loop();
    }
}

/// Binds `VIRQ_TIMER` and stops the periodic timer. Returns the port.
pub fn init() -> Result<u32, i64> {
    // SAFETY: VCPUOP_stop_periodic_timer takes no argument.
    let _ = unsafe { hypercall::vcpu_op(abi::VCPUOP_STOP_PERIODIC_TIMER, 0, 0) };
    let port = events::bind_virq(abi::VIRQ_TIMER)?;
    TIMER_PORT.store(port, Ordering::Relaxed);
    Ok(port)
}

/// The `VIRQ_TIMER` port.
pub fn timer_port() -> u32 {
    TIMER_PORT.load(Ordering::Relaxed)
}

/// The deadline the timer is armed for (0: none) and the timer event
/// count when it was armed: while that count is unchanged the timer has
/// not fired, so idling again for the same deadline needs no hypercall.
static ARMED: AtomicU64 = AtomicU64::new(0);
static ARMED_AT: AtomicU64 = AtomicU64::new(0);

/// Programs one `VIRQ_TIMER` event at monotonic time `deadline` (ns),
/// unless exactly that timer is already armed and has not fired.
pub fn arm(deadline: u64) {
    let deadline = deadline.max(1);
    let fired = timer_events();
    if ARMED.load(Ordering::Relaxed) == deadline && ARMED_AT.load(Ordering::Relaxed) == fired {
        return;
    }
    ARMED.store(deadline, Ordering::Relaxed);
    ARMED_AT.store(fired, Ordering::Relaxed);
    ARMS.fetch_add(1, Ordering::Relaxed);
    if !USE_SET_TIMER_OP.load(Ordering::Relaxed) {
        let mut t = abi::SingleshotTimer {
            timeout_abs_ns: deadline,
            flags: 0,
            _pad: 0,
        };
        // SAFETY: a valid vcpu_set_singleshot_timer for vcpu 0 (ours).
        let rc = unsafe {
            hypercall::vcpu_op(
                abi::VCPUOP_SET_SINGLESHOT_TIMER,
                0,
                &mut t as *mut _ as usize,
            )
        };
        if rc == 0 {
            return;
        }
        crate::xprintln!(
            "rumpuser-xen: VCPUOP_set_singleshot_timer failed ({rc}, {}); using set_timer_op",
            abi::errno_name(rc)
        );
        USE_SET_TIMER_OP.store(true, Ordering::Relaxed);
    }
    // SAFETY: set_timer_op takes the absolute deadline by value.
    let rc = unsafe { hypercall::call2(abi::HYPERVISOR_SET_TIMER_OP, deadline as usize, 0) };
    if rc != 0 {
        rumpuser_pvh::exit::fatal_fmt(format_args!(
            "rumpuser-xen: set_timer_op failed ({rc}, {}): no timer",
            abi::errno_name(rc)
        ));
    }
}

/// Cancels the timer (no hypercall when none is armed or it has fired).
pub fn disarm() {
    if ARMED.swap(0, Ordering::Relaxed) == 0 || ARMED_AT.load(Ordering::Relaxed) != timer_events() {
        return;
    }
    if USE_SET_TIMER_OP.load(Ordering::Relaxed) {
        // SAFETY: a deadline of 0 cancels the timer.
        let _ = unsafe { hypercall::call2(abi::HYPERVISOR_SET_TIMER_OP, 0, 0) };
    } else {
        // SAFETY: VCPUOP_stop_singleshot_timer takes no argument.
        let _ = unsafe { hypercall::vcpu_op(abi::VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0) };
    }
}

/// Timer events (`VIRQ_TIMER`) since boot.
pub fn timer_events() -> u64 {
    events::count(timer_port())
}

/// Timers armed (hypercalls made) since boot.
pub fn arms() -> u64 {
    ARMS.load(Ordering::Relaxed)
}
