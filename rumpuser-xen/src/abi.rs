//! Our own bindings of the Xen public interface (Xen 4.17 headers,
//! `xen/include/public/`), only what this platform uses (`hvm_start_info` is
//! `rumpuser_pvh::bootinfo`'s, the one parser of every PVH platform).
//!
//! Why not `xen-sys`: it covers only `xen.h`, `sched.h` and the event
//! channel structures (interface 0x40e00), lacks everything PVH needs
//! besides (memory ops, HVM params, vcpu ops, version,
//! console and xenstore rings, grant tables, blkif), and its hypercall
//! wrappers are wrong on x86_64 (5th argument in `r9` instead of `r8`,
//! `sched_op` passing its argument by value). What it has and is right is
//! used: the argument structures of the event channel and sched ops
//! (aliased below, sizes asserted). Its `shared_info`, `vcpu_info` and
//! `vcpu_time_info` are not: the fields Xen writes while the guest runs
//! must be atomics here, and `xen-sys` declares plain integers; ours are
//! checked against its layouts (size and every field offset) by
//! `tests/xen_sys_layouts.rs`.
//!
//! Every structure is `repr(C)` with its size asserted at compile time
//! against the C layout (x86_64: `xen_ulong_t` and `xen_pfn_t` are 64
//! bits, `domid_t` 16 bits, guest handles are 64-bit pointers). Fields
//! Xen writes while the guest runs are atomics; the time record is read
//! with volatile loads under its version counter.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8};

// ---- hypercall numbers (xen.h) --------------------------------------

/// `__HYPERVISOR_set_timer_op`.
pub const HYPERVISOR_SET_TIMER_OP: usize = 15;
/// `__HYPERVISOR_memory_op`.
pub const HYPERVISOR_MEMORY_OP: usize = 12;
/// `__HYPERVISOR_xen_version`.
pub const HYPERVISOR_XEN_VERSION: usize = 17;
/// `__HYPERVISOR_console_io`.
pub const HYPERVISOR_CONSOLE_IO: usize = 18;
/// `__HYPERVISOR_grant_table_op`.
pub const HYPERVISOR_GRANT_TABLE_OP: usize = 20;
/// `__HYPERVISOR_vcpu_op`.
pub const HYPERVISOR_VCPU_OP: usize = 24;
/// `__HYPERVISOR_sched_op`.
pub const HYPERVISOR_SCHED_OP: usize = 29;
/// `__HYPERVISOR_event_channel_op`.
pub const HYPERVISOR_EVENT_CHANNEL_OP: usize = 32;
/// `__HYPERVISOR_hvm_op`.
pub const HYPERVISOR_HVM_OP: usize = 34;

/// `DOMID_SELF`.
pub const DOMID_SELF: u16 = 0x7ff0;

// ---- CPUID (arch-x86/cpuid.h) ----------------------------------------

/// Signature in EBX, ECX, EDX of the hypervisor leaf: "XenVMMXenVMM".
pub const CPUID_SIGNATURE: [u32; 3] = [0x566e_6558, 0x65584d4d, 0x4d4d_566e];

// ---- console_io / xen_version ---------------------------------------

/// `CONSOLEIO_write`.
pub const CONSOLEIO_WRITE: usize = 0;
/// `XENVER_version`: returns `major << 16 | minor`.
pub const XENVER_VERSION: usize = 0;
/// `XENVER_get_features`.
pub const XENVER_GET_FEATURES: usize = 6;
/// `XENFEAT_hvm_callback_vector`: `HVM_PARAM_CALLBACK_IRQ` may name a vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// `XENFEAT_dom0`: this is the hardware domain.
pub const XENFEAT_DOM0: u32 = 11;

/// `xen_feature_info`.
#[repr(C)]
#[derive(Debug, Default)]
pub struct FeatureInfo {
    /// Which 32-bit submap.
    pub submap_idx: u32,
    /// Its bits (out).
    pub submap: u32,
}

// ---- memory_op (memory.h) -------------------------------------------

/// `XENMEM_add_to_physmap`.
pub const XENMEM_ADD_TO_PHYSMAP: usize = 7;
/// `XENMEM_memory_map`: this domain's pseudo-physical E820 map.
pub const XENMEM_MEMORY_MAP: usize = 9;
/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// `xen_add_to_physmap`.
#[repr(C)]
#[derive(Debug)]
pub struct AddToPhysmap {
    /// Domain (`DOMID_SELF`).
    pub domid: u16,
    /// Pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index in the space (0 for shared info).
    pub idx: u64,
    /// Guest frame to map it at.
    pub gpfn: u64,
}

/// `xen_memory_map`.
#[repr(C)]
#[derive(Debug)]
pub struct MemoryMap {
    /// In: capacity of `buffer`; out: entries written.
    pub nr_entries: u32,
    /// Padding of the C layout.
    pub _pad: u32,
    /// Guest handle of an `E820Entry` array.
    pub buffer: u64,
}

/// `struct e820entry` as Xen writes it (packed, 20 bytes).
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default)]
pub struct E820Entry {
    /// Start.
    pub addr: u64,
    /// Length.
    pub size: u64,
    /// 1 = RAM.
    pub kind: u32,
}

// ---- hvm_op (hvm/hvm_op.h, hvm/params.h) -----------------------------

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: usize = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: usize = 1;
/// `HVMOP_set_evtchn_upcall_vector`: a per-vcpu upcall through the
/// local APIC (an edge-triggered LAPIC interrupt that the handler EOIs).
pub const HVMOP_SET_EVTCHN_UPCALL_VECTOR: usize = 23;

/// `xen_hvm_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Debug)]
pub struct EvtchnUpcallVector {
    /// The vcpu.
    pub vcpu: u32,
    /// IDT vector (>= 0x10).
    pub vector: u8,
    /// Padding of the C layout.
    pub _pad: [u8; 3],
}

/// `HVM_PARAM_CALLBACK_IRQ`: how event channel upcalls are delivered.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR << 56`: the low byte is an IDT vector.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2 << 56;

/// `xen_hvm_param`.
#[repr(C)]
#[derive(Debug)]
pub struct HvmParam {
    /// Domain (`DOMID_SELF`).
    pub domid: u16,
    /// Padding of the C layout.
    pub _pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// Value (in for set, out for get).
    pub value: u64,
}

// ---- vcpu_op (vcpu.h) -----------------------------------------------

/// `VCPUOP_stop_periodic_timer`.
pub const VCPUOP_STOP_PERIODIC_TIMER: usize = 7;
/// `VCPUOP_set_singleshot_timer`.
pub const VCPUOP_SET_SINGLESHOT_TIMER: usize = 8;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: usize = 9;

/// `vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Debug)]
pub struct SingleshotTimer {
    /// Absolute Xen system time (ns) of the `VIRQ_TIMER` event.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*` (0: fire at once if already past).
    pub flags: u32,
    /// Padding of the C layout.
    pub _pad: u32,
}

// ---- sched_op (sched.h) ---------------------------------------------

/// `SCHEDOP_yield`: let other vcpus run.
pub const SCHEDOP_YIELD: usize = 0;
/// `SCHEDOP_block`.
pub const SCHEDOP_BLOCK: usize = 1;
/// `SCHEDOP_shutdown`.
pub const SCHEDOP_SHUTDOWN: usize = 2;
/// `SCHEDOP_poll`: block until one of a list of ports is pending.
pub const SCHEDOP_POLL: usize = 3;
/// Most ports one `SCHEDOP_poll` may name (Xen's limit).
pub const SCHED_POLL_MAX_PORTS: usize = 128;

/// `SHUTDOWN_poweroff`.
pub const SHUTDOWN_POWEROFF: u32 = 0;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_CRASH: u32 = 3;

// ---- event_channel_op (event_channel.h) -----------------------------

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN: usize = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ: usize = 1;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE: usize = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND: usize = 4;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: usize = 6;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_UNMASK: usize = 9;
/// `VIRQ_TIMER`: the vcpu's timer (single-shot or periodic) fired.
pub const VIRQ_TIMER: u32 = 0;
/// Ports of the 2-level ABI on x86_64 (64 words of 64 bits).
pub const EVTCHN_2L_PORTS: usize = 64 * 64;

// The argument structures of the event channel and sched ops are
// `xen-sys`'s (plain structs passed by pointer, layouts asserted below
// against the C headers): our names for them.

/// `evtchn_bind_virq` (`virq`, `vcpu`, out `port`).
pub type EvtchnBindVirq = xen_sys::evtchn_bind_virq;
/// `evtchn_alloc_unbound` (`dom`, `remote_dom`, out `port`).
pub type EvtchnAllocUnbound = xen_sys::evtchn_alloc_unbound;
/// `evtchn_bind_interdomain` (`remote_dom`, `remote_port`, out `local_port`).
pub type EvtchnBindInterdomain = xen_sys::evtchn_bind_interdomain;
/// `evtchn_send`.
pub type EvtchnSend = xen_sys::evtchn_send;
/// `evtchn_close`.
pub type EvtchnClose = xen_sys::evtchn_close;
/// `evtchn_unmask`.
pub type EvtchnUnmask = xen_sys::evtchn_unmask;
/// `sched_poll` (`ports` guest handle, `nr_ports`, absolute `timeout`, 0: none).
pub type SchedPoll = xen_sys::sched_poll;
/// `sched_shutdown` (`reason`: `SHUTDOWN_*`).
pub type SchedShutdown = xen_sys::sched_shutdown;

// ---- shared_info (xen.h, arch-x86/xen.h, arch-x86/xen-x86_64.h) -----

/// `vcpu_time_info`: Xen system time at `tsc_timestamp` and the TSC scale.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct VcpuTimeInfo {
    /// Odd while Xen updates the record.
    pub version: u32,
    /// Padding of the C layout.
    pub _pad0: u32,
    /// TSC at the last update.
    pub tsc_timestamp: u64,
    /// Xen system time (ns since Xen booted) at `tsc_timestamp`.
    pub system_time: u64,
    /// `ns = ((tsc delta << tsc_shift) * tsc_to_system_mul) >> 32`.
    pub tsc_to_system_mul: u32,
    /// Shift applied first (negative: right shift).
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding of the C layout.
    pub _pad1: [u8; 2],
}

/// `vcpu_info` (x86_64: 64 bytes).
#[repr(C)]
pub struct VcpuInfo {
    /// Set by Xen when any port of `evtchn_pending_sel` became pending.
    pub evtchn_upcall_pending: AtomicU8,
    /// Upcall mask (PV only; HVM uses RFLAGS.IF).
    pub evtchn_upcall_mask: AtomicU8,
    /// Padding of the C layout.
    pub _pad: [u8; 6],
    /// Bit `w` set: word `w` of `evtchn_pending` has pending ports.
    pub evtchn_pending_sel: AtomicU64,
    /// `arch_vcpu_info` (`cr2`, pad).
    pub arch: [u64; 2],
    /// The pvclock record.
    pub time: VcpuTimeInfo,
}

/// `shared_info` (x86_64: 3136 bytes).
#[repr(C)]
pub struct SharedInfo {
    /// `XEN_LEGACY_MAX_VCPUS` = 32 records.
    pub vcpu_info: [VcpuInfo; 32],
    /// 2-level event channel pending bits.
    pub evtchn_pending: [AtomicU64; 64],
    /// 2-level event channel mask bits.
    pub evtchn_mask: [AtomicU64; 64],
    /// Odd while Xen updates the wall clock.
    pub wc_version: AtomicU32,
    /// Wall clock (seconds, low 32 bits) at Xen system time 0.
    pub wc_sec: AtomicU32,
    /// Nanoseconds of the above.
    pub wc_nsec: AtomicU32,
    /// High 32 bits of the seconds.
    pub wc_sec_hi: AtomicU32,
    /// `arch_shared_info` (max_pfn, p2m frame list, nmi_reason, p2m_cr3,
    /// p2m_vaddr, p2m_generation).
    pub arch: [u64; 6],
}

// ---- netif (io/netif.h, io/ring.h) ---------------------------------

/// `struct netif_tx_request`: one slot of a frame to send.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the page holding this slot's bytes.
    pub gref: u32,
    /// Their offset in the page (`offset + bytes <= 4096`).
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// First slot: the whole frame's length; others: this slot's bytes.
    pub size: u16,
}

/// `struct netif_tx_response`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request`: an empty page for the back end to fill.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding of the C layout.
    pub _pad: u16,
    /// Grant of the page (writable by the back end).
    pub gref: u32,
}

/// `struct netif_rx_response`. A slot that follows one with
/// `NETRXF_extra_info` holds a `netif_extra_info` instead (8 bytes too:
/// `type` in the low byte of `id`, `flags` in its high byte).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes in this slot (> 0), or a negative `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_extra_info` (`type`, `flags`, a 6-byte union).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub kind: u8,
    /// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra slot follows.
    pub flags: u8,
    /// The union (GSO, multicast, hash, XDP).
    pub u: [u16; 3],
}

/// `NETTXF_more_data`: the frame continues in the next slot.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`: the protocol checksum is left to the receiver.
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`: the packet continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: `netif_extra_info` slots follow this one.
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `XEN_NETIF_EXTRA_FLAG_MORE`.
pub const XEN_NETIF_EXTRA_FLAG_MORE: u8 = 1 << 0;
/// `NETIF_RSP_NULL`: the response of a slot that carried no data.
pub const NETIF_RSP_NULL: i16 = 1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `XEN_NETIF_NR_SLOTS_MIN`: slots per frame every back end accepts.
pub const XEN_NETIF_NR_SLOTS_MIN: usize = 18;

/// The shared ring header (`req_prod`, `req_event`, `rsp_prod`,
/// `rsp_event`, then padding to 64 bytes); the entries follow.
pub const SRING_HEADER: usize = 64;

/// `__RING_SIZE` for a one-page ring of entries of `entry` bytes: the
/// largest power of two that fits after the header.
pub const fn ring_size(entry: usize) -> usize {
    let n = (4096 - SRING_HEADER) / entry;
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// A tx ring entry (the union of request and response).
pub const NETIF_TX_ENTRY: usize = 12;
/// An rx ring entry.
pub const NETIF_RX_ENTRY: usize = 8;
/// `NET_TX_RING_SIZE` for one page.
pub const NET_TX_RING_SIZE: usize = ring_size(NETIF_TX_ENTRY);
/// `NET_RX_RING_SIZE` for one page.
pub const NET_RX_RING_SIZE: usize = ring_size(NETIF_RX_ENTRY);

/// Xen's negative return values (the Linux numbering), for messages.
pub fn errno_name(rc: i64) -> &'static str {
    match -rc {
        0 => "ok",
        1 => "EPERM",
        2 => "ENOENT",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        28 => "ENOSPC",
        38 => "ENOSYS",
        62 => "ETIME",
        95 => "EOPNOTSUPP",
        _ => "error",
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<FeatureInfo>() == 8);
    assert!(size_of::<AddToPhysmap>() == 24);
    assert!(size_of::<MemoryMap>() == 16);
    assert!(size_of::<E820Entry>() == 20);
    assert!(size_of::<HvmParam>() == 16);
    assert!(size_of::<EvtchnUpcallVector>() == 8);
    assert!(size_of::<SingleshotTimer>() == 16);
    assert!(size_of::<SchedShutdown>() == 4);
    assert!(size_of::<SchedPoll>() == 24);
    assert!(size_of::<EvtchnBindVirq>() == 12);
    assert!(size_of::<EvtchnAllocUnbound>() == 8);
    assert!(size_of::<EvtchnBindInterdomain>() == 12);
    assert!(size_of::<EvtchnSend>() == 4);
    assert!(size_of::<EvtchnClose>() == 4);
    assert!(size_of::<EvtchnUnmask>() == 4);
    assert!(size_of::<VcpuTimeInfo>() == 32);
    assert!(size_of::<VcpuInfo>() == 64);
    assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
    assert!(offset_of!(VcpuInfo, time) == 32);
    assert!(offset_of!(SharedInfo, evtchn_pending) == 2048);
    assert!(offset_of!(SharedInfo, evtchn_mask) == 2560);
    assert!(offset_of!(SharedInfo, wc_version) == 3072);
    assert!(offset_of!(SharedInfo, wc_sec_hi) == 3084);
    assert!(size_of::<SharedInfo>() == 3136);
    assert!(size_of::<NetifTxRequest>() == 12);
    assert!(offset_of!(NetifTxRequest, offset) == 4);
    assert!(offset_of!(NetifTxRequest, id) == 8);
    assert!(offset_of!(NetifTxRequest, size) == 10);
    assert!(size_of::<NetifTxResponse>() == 4);
    assert!(size_of::<NetifRxRequest>() == 8);
    assert!(offset_of!(NetifRxRequest, gref) == 4);
    assert!(size_of::<NetifRxResponse>() == 8);
    assert!(offset_of!(NetifRxResponse, status) == 6);
    assert!(size_of::<NetifExtraInfo>() == 8);
    assert!(NETIF_TX_ENTRY >= size_of::<NetifTxRequest>());
    assert!(NETIF_RX_ENTRY >= size_of::<NetifRxResponse>());
    assert!(NET_TX_RING_SIZE == 256 && NET_RX_RING_SIZE == 256);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_spells_xen() {
        let mut b = [0u8; 12];
        for (i, w) in CPUID_SIGNATURE.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&b, b"XenVMMXenVMM");
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(-38), "ENOSYS");
        assert_eq!(errno_name(0), "ok");
    }
}
