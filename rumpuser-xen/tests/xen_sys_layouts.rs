//! Our `shared_info`, `vcpu_info` and `vcpu_time_info`
//! (`rumpuser_xen::abi`) against `xen-sys`'s: same size, same field
//! offsets. The platform keeps its own types for these because the fields
//! Xen writes concurrently must be atomics (`xen-sys` has plain integers);
//! the event channel and sched op structures it uses from `xen-sys`
//! directly. (Its hypercall wrappers are not used: they are wrong, see
//! `abi`.)

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
