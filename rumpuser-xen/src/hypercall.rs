//! Finding Xen and calling it: CPUID detection, the hypercall page, and
//! the hypercall instruction sequence.
//!
//! * Detection: CPUID leaves `0x40000000 + 0x100 * i` (i < 16; Xen moves
//!   its leaves up when it also offers Viridian) carry the signature
//!   `"XenVMMXenVMM"`; leaf `base + 2` gives the number of hypercall pages
//!   and the MSR that installs them.
//! * The hypercall page: writing the page's physical address to that MSR
//!   makes Xen fill it with 32-byte stubs (`mov eax, nr; vmmcall|vmcall;
//!   ret`), so the same binary runs on AMD and Intel.
//! * Calls: `call page + 32 * nr` with the arguments in `rdi, rsi, rdx,
//!   r10, r8` (the x86_64 Xen ABI; `xen-sys` wrongly uses `r9` for the
//!   fifth). The result comes back in `rax`, negative Linux errno values
//!   on failure. Argument registers may be clobbered, so every
//!   caller-saved register is declared clobbered (`clobber_abi("C")`),
//!   and the stack is used by the `call` itself.

use crate::abi;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

/// One page of code Xen writes (in `.bss`: the identity map has no NX bit).
#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);
// SAFETY: written once by Xen (through the MSR) before any call; only
// executed afterwards.
unsafe impl Sync for Page {}

static HYPERCALL_PAGE: Page = Page(UnsafeCell::new([0; 4096]));
static CPUID_BASE: AtomicU32 = AtomicU32::new(0);

fn cpuid(leaf: u32) -> core::arch::x86_64::CpuidResult {
    rumpuser_pvh::arch::cpu::cpuid(leaf, 0)
}

/// The CPUID base leaf of Xen, if running on Xen.
pub fn detect() -> Option<u32> {
    if !rumpuser_pvh::arch::cpu::features().hypervisor {
        return None;
    }
    (0..16u32).map(|i| 0x4000_0000 + i * 0x100).find(|&base| {
        let r = cpuid(base);
        [r.ebx, r.ecx, r.edx] == abi::CPUID_SIGNATURE && r.eax >= base + 2
    })
}

/// Whether Xen emulates `rdtsc` for this guest (CPUID leaf `base + 3`,
/// sub-leaf 0, EAX bit 0): then every clock read is a VM exit. Xen does
/// that when it cannot trust the host TSC (e.g. no invariant TSC, as
/// under QEMU TCG); on ordinary hardware the TSC is native.
pub fn tsc_emulated() -> bool {
    let base = CPUID_BASE.load(Ordering::Relaxed);
    base != 0
        && cpuid(base).eax >= base + 3
        && rumpuser_pvh::arch::cpu::cpuid(base + 3, 0).eax & 1 != 0
}

/// What the hypervisor leaves say, for the boot line.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    /// CPUID base leaf.
    pub base: u32,
    /// `major << 16 | minor` from CPUID (before any hypercall).
    pub version: u32,
    /// The MSR that installs hypercall pages.
    pub msr: u32,
}

/// Installs the hypercall page through the MSR Xen names. Must be called
/// once, before any hypercall.
pub fn init(base: u32) -> Identity {
    let ver = cpuid(base + 1).eax;
    let leaf2 = cpuid(base + 2);
    let msr = leaf2.ebx;
    let gpa = HYPERCALL_PAGE.0.get() as u64;
    // SAFETY: the MSR is Xen's hypercall-page MSR (CPUID base+2); the value
    // is the page-aligned physical (= virtual) address of a page reserved
    // for Xen to write, index 0 in the low bits.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") gpa as u32, in("edx") (gpa >> 32) as u32,
             options(nostack, preserves_flags));
    }
    CPUID_BASE.store(base, Ordering::Relaxed);
    Identity {
        base,
        version: ver,
        msr,
    }
}

/// Whether [`init`] ran (hypercalls are possible).
pub fn ready() -> bool {
    CPUID_BASE.load(Ordering::Relaxed) != 0
}

fn entry(nr: usize) -> usize {
    HYPERCALL_PAGE.0.get() as usize + nr * 32
}

/// Hypercall `nr` with up to five arguments.
///
/// # Safety
/// The arguments must be what hypercall `nr` expects; pointers must point
/// to valid, identity-mapped memory of the right layout for the duration
/// of the call (Xen reads and writes them by guest physical address).
#[inline]
pub unsafe fn call5(nr: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize) -> i64 {
    if !ready() {
        return -38; // ENOSYS: no hypercall page yet.
    }
    let ret: i64;
    // SAFETY: `entry(nr)` is the stub Xen wrote into the hypercall page
    // (`init` ran); the registers follow the Xen x86_64 hypercall ABI and
    // everything the stub or Xen may clobber is declared.
    unsafe {
        asm!(
            "call rax",
            inout("rax") entry(nr) => ret,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            clobber_abi("C"),
        );
    }
    ret
}

/// Hypercall with three arguments.
///
/// # Safety
/// As [`call5`].
#[inline]
pub unsafe fn call3(nr: usize, a1: usize, a2: usize, a3: usize) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call5(nr, a1, a2, a3, 0, 0) }
}

/// Hypercall with two arguments.
///
/// # Safety
/// As [`call5`].
#[inline]
pub unsafe fn call2(nr: usize, a1: usize, a2: usize) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call5(nr, a1, a2, 0, 0, 0) }
}

// ---- typed wrappers --------------------------------------------------

/// `xen_version(cmd, arg)`.
pub fn xen_version() -> u32 {
    // SAFETY: XENVER_version takes no argument.
    unsafe { call2(abi::HYPERVISOR_XEN_VERSION, abi::XENVER_VERSION, 0) as u32 }
}

/// Submap `idx` of the feature bits (`XENVER_get_features`).
pub fn features(idx: u32) -> u32 {
    let mut f = abi::FeatureInfo {
        submap_idx: idx,
        submap: 0,
    };
    // SAFETY: `f` is a valid xen_feature_info for the duration of the call.
    let rc = unsafe {
        call2(
            abi::HYPERVISOR_XEN_VERSION,
            abi::XENVER_GET_FEATURES,
            &mut f as *mut _ as usize,
        )
    };
    if rc == 0 {
        f.submap
    } else {
        0
    }
}

/// `console_io(CONSOLEIO_write)`: Xen prints the bytes on its console
/// (allowed for dom0; a domU gets `-EPERM` from a non-debug Xen).
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: `bytes` is readable for `len` bytes during the call.
    unsafe {
        call3(
            abi::HYPERVISOR_CONSOLE_IO,
            abi::CONSOLEIO_WRITE,
            bytes.len(),
            bytes.as_ptr() as usize,
        )
    }
}

/// `memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` points to the structure `cmd` expects.
pub unsafe fn memory_op<T>(cmd: usize, arg: &mut T) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call2(abi::HYPERVISOR_MEMORY_OP, cmd, arg as *mut T as usize) }
}

/// `event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` points to the structure `cmd` expects.
pub unsafe fn evtchn_op<T>(cmd: usize, arg: &mut T) -> i64 {
    // SAFETY: forwarded contract.
    unsafe {
        call2(
            abi::HYPERVISOR_EVENT_CHANNEL_OP,
            cmd,
            arg as *mut T as usize,
        )
    }
}

/// `sched_op(cmd, arg)` — the argument is a *pointer* (`xen-sys` passes
/// it by value on x86_64, which is wrong).
///
/// # Safety
/// `arg` is null or points to the structure `cmd` expects.
pub unsafe fn sched_op(cmd: usize, arg: usize) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call2(abi::HYPERVISOR_SCHED_OP, cmd, arg) }
}

/// `vcpu_op(cmd, vcpu, arg)`.
///
/// # Safety
/// `arg` is null or points to the structure `cmd` expects.
pub unsafe fn vcpu_op(cmd: usize, vcpu: u32, arg: usize) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { call3(abi::HYPERVISOR_VCPU_OP, cmd, vcpu as usize, arg) }
}

/// `HVMOP_get_param`.
pub fn hvm_get_param(index: u32) -> Result<u64, i64> {
    let mut p = abi::HvmParam {
        domid: abi::DOMID_SELF,
        _pad: 0,
        index,
        value: 0,
    };
    // SAFETY: `p` is a valid xen_hvm_param for the duration of the call.
    let rc = unsafe {
        call2(
            abi::HYPERVISOR_HVM_OP,
            abi::HVMOP_GET_PARAM,
            &mut p as *mut _ as usize,
        )
    };
    if rc == 0 {
        Ok(p.value)
    } else {
        Err(rc)
    }
}

/// `HVMOP_set_param`.
pub fn hvm_set_param(index: u32, value: u64) -> i64 {
    let mut p = abi::HvmParam {
        domid: abi::DOMID_SELF,
        _pad: 0,
        index,
        value,
    };
    // SAFETY: `p` is a valid xen_hvm_param for the duration of the call.
    unsafe {
        call2(
            abi::HYPERVISOR_HVM_OP,
            abi::HVMOP_SET_PARAM,
            &mut p as *mut _ as usize,
        )
    }
}

/// `SCHEDOP_shutdown` with `reason`; returns only if Xen refused.
pub fn shutdown(reason: u32) -> i64 {
    let mut s = abi::SchedShutdown { reason };
    // SAFETY: `s` is a valid sched_shutdown for the duration of the call.
    unsafe { sched_op(abi::SCHEDOP_SHUTDOWN, &mut s as *mut _ as usize) }
}
