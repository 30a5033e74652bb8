//! Our Xen bindings (`rumpuser_xen::abi`) against the structures `xen-sys`
//! provides: same size, same field offsets. The platform keeps its own
//! types because the fields Xen writes concurrently must be atomics
//! (`xen-sys` has plain integers) and because most of what a PVH guest
//! needs is not in `xen-sys` at all; this test is the "checked them"
//! half of that decision. (Its hypercall wrappers are not checked here:
//! they are wrong, see `abi`.)

#![cfg(target_arch = "x86_64")]

use core::mem::{offset_of, size_of};
use rumpuser_xen::abi;
use xen_sys as xs;

macro_rules! same_layout {
    ($ours:ty, $theirs:ty, [$(($a:ident, $b:ident)),* $(,)?]) => {{
        assert_eq!(
            size_of::<$ours>(),
            size_of::<$theirs>(),
            "size of {} vs {}",
            stringify!($ours),
            stringify!($theirs)
        );
        $(
            assert_eq!(
                offset_of!($ours, $a),
                offset_of!($theirs, $b),
                "{}.{} vs {}.{}",
                stringify!($ours),
                stringify!($a),
                stringify!($theirs),
                stringify!($b)
            );
        )*
    }};
}

#[test]
fn shared_info_and_vcpu_info() {
    same_layout!(
        abi::VcpuTimeInfo,
        xs::vcpu_time_info,
        [
            (version, version),
            (tsc_timestamp, tsc_timestamp),
            (system_time, system_time),
            (tsc_to_system_mul, tsc_to_system_mul),
            (tsc_shift, tsc_shift),
        ]
    );
    same_layout!(
        abi::VcpuInfo,
        xs::vcpu_info,
        [
            (evtchn_upcall_pending, evtchn_upcall_pending),
            (evtchn_upcall_mask, evtchn_upcall_mask),
            (evtchn_pending_sel, evtchn_pending_sel),
            (arch, arch),
            (time, time),
        ]
    );
    same_layout!(
        abi::SharedInfo,
        xs::shared_info,
        [
            (vcpu_info, vcpu_info),
            (evtchn_pending, evtchn_pending),
            (evtchn_mask, evtchn_mask),
            (wc_version, wc_version),
            (wc_sec, wc_sec),
            (wc_nsec, wc_nsec),
            (wc_sec_hi, wc_sec_hi),
            (arch, arch),
        ]
    );
}

#[test]
fn event_channel_ops() {
    same_layout!(
        abi::EvtchnAllocUnbound,
        xs::evtchn_alloc_unbound,
        [(dom, dom), (remote_dom, remote_dom), (port, port)]
    );
    same_layout!(
        abi::EvtchnBindInterdomain,
        xs::evtchn_bind_interdomain,
        [
            (remote_dom, remote_dom),
            (remote_port, remote_port),
            (local_port, local_port),
        ]
    );
    same_layout!(
        abi::EvtchnBindVirq,
        xs::evtchn_bind_virq,
        [(virq, virq), (vcpu, vcpu), (port, port)]
    );
    // send, close and unmask share one shape.
    same_layout!(abi::EvtchnPort, xs::evtchn_send, [(port, port)]);
    same_layout!(abi::EvtchnPort, xs::evtchn_close, [(port, port)]);
    same_layout!(abi::EvtchnPort, xs::evtchn_unmask, [(port, port)]);
}

#[test]
fn sched_ops() {
    same_layout!(
        abi::SchedPoll,
        xs::sched_poll,
        [(ports, ports), (nr_ports, nr_ports), (timeout, timeout)]
    );
    same_layout!(abi::SchedShutdown, xs::sched_shutdown, [(reason, reason)]);
}
