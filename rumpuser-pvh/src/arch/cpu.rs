//! CPU identification and state: CPUID features, FPU/SSE enable, the TSC,
//! the interrupt flag and halting.

use core::arch::asm;
use core::arch::x86_64::CpuidResult;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// `cpuid(leaf, subleaf)`.
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    // SAFETY: CPUID exists on every x86_64 CPU and only reads identification.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::__cpuid_count(leaf, sub)
    }
}

/// What this crate uses from CPUID.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// `RDRAND` (CPUID.1:ECX.30).
    pub rdrand: bool,
    /// `RDSEED` (CPUID.7.0:EBX.18).
    pub rdseed: bool,
    /// LAPIC TSC-deadline timer mode (CPUID.1:ECX.24).
    pub tsc_deadline: bool,
    /// Invariant TSC (CPUID.80000007:EDX.8).
    pub invariant_tsc: bool,
    /// 1 GiB pages (CPUID.80000001:EDX.26).
    pub pdpe1gb: bool,
    /// Running under a hypervisor (CPUID.1:ECX.31).
    pub hypervisor: bool,
}

/// Reads the feature bits.
pub fn features() -> Features {
    let l1 = cpuid(1, 0);
    let max = cpuid(0, 0).eax;
    let l7 = if max >= 7 {
        cpuid(7, 0)
    } else {
        CpuidResult {
            eax: 0,
            ebx: 0,
            ecx: 0,
            edx: 0,
        }
    };
    let emax = cpuid(0x8000_0000, 0).eax;
    let e1 = if emax >= 0x8000_0001 {
        cpuid(0x8000_0001, 0).edx
    } else {
        0
    };
    let e7 = if emax >= 0x8000_0007 {
        cpuid(0x8000_0007, 0).edx
    } else {
        0
    };
    Features {
        rdrand: l1.ecx & (1 << 30) != 0,
        rdseed: l7.ebx & (1 << 18) != 0,
        tsc_deadline: l1.ecx & (1 << 24) != 0,
        invariant_tsc: e7 & (1 << 8) != 0,
        pdpe1gb: e1 & (1 << 26) != 0,
        hypervisor: l1.ecx & (1 << 31) != 0,
    }
}

/// Enables the x87 FPU and SSE so that C code (the kernel layer, built
/// for ordinary x86_64 with SSE2) and the green context switch
/// (`stmxcsr`/`fnstcw`) can run. This crate itself is soft-float.
pub fn enable_fpu_sse() {
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
    // SAFETY: only FPU-related bits change; paging and protection stay on.
    unsafe { Cr0::write(cr0) };
    let mut cr4 = Cr4::read();
    cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
    // SAFETY: announces FXSAVE/SSE support to the CPU; nothing else changes.
    unsafe { Cr4::write(cr4) };
    // SAFETY: the FPU is enabled above; this resets the x87 state. MXCSR
    // keeps its reset value 0x1f80 (all exceptions masked, round to
    // nearest), which the PVH loader does not change.
    unsafe {
        asm!("fninit", options(nomem, nostack));
    }
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU (CR4.TSD is clear).
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

/// The interrupt flag in RFLAGS.
pub const RFLAGS_IF: u64 = 1 << 9;

/// Disables interrupts, returning the previous RFLAGS.
#[inline]
pub fn irq_save() -> u64 {
    let flags: u64;
    // SAFETY: reads RFLAGS and clears IF; no memory is touched except the stack slot of pushfq.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    flags
}

/// Restores the interrupt flag saved by [`irq_save`].
#[inline]
pub fn irq_restore(flags: u64) {
    if flags & RFLAGS_IF != 0 {
        // SAFETY: re-enables interrupts that were enabled before `irq_save`.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

// The idle halt and the interrupt window are out-of-line sequences so that
// the interrupt entry knows where interrupts were let in on purpose, and
// the address of the `hlt` (see `window_resume`).
core::arch::global_asm!(
    ".pushsection .text.rumpuser_bm_halt, \"ax\", @progbits",
    ".globl __rumpuser_bm_halt",
    "__rumpuser_bm_halt:",
    "    sti",
    ".globl __rumpuser_bm_halt_insn",
    "__rumpuser_bm_halt_insn:",
    "    hlt",
    ".globl __rumpuser_bm_halt_done",
    "__rumpuser_bm_halt_done:",
    "    cli",
    "    ret",
    ".globl __rumpuser_bm_window",
    "__rumpuser_bm_window:",
    "    sti",
    ".globl __rumpuser_bm_window_open",
    "__rumpuser_bm_window_open:",
    "    nop",
    ".globl __rumpuser_bm_window_close",
    "__rumpuser_bm_window_close:",
    "    cli",
    "    ret",
    ".popsection",
);

extern "C" {
    fn __rumpuser_bm_halt();
    fn __rumpuser_bm_window();
    static __rumpuser_bm_halt_insn: u8;
    static __rumpuser_bm_halt_done: u8;
    static __rumpuser_bm_window_open: u8;
    static __rumpuser_bm_window_close: u8;
}

static EARLY_WAKES: AtomicU64 = AtomicU64::new(0);

/// With interrupts disabled: enable them and halt until the next one,
/// then disable them again. Interrupts pending before the call wake it
/// at once.
///
/// `sti` is meant to take effect only after `hlt` has started, so an
/// interrupt arriving between the caller's last check and the halt still
/// ends it. Not every virtual CPU keeps that promise (nested Xen under
/// QEMU TCG has been seen to deliver it on the `hlt` itself, which then
/// sleeps with the wake-up already consumed), so the interrupt entry
/// also steps over the `hlt` when it interrupted exactly there
/// ([`window_resume`]); with both, no wake-up is lost.
#[inline]
pub fn wait_for_interrupt() {
    // SAFETY: an ordinary call of the sequence above (it clobbers
    // nothing; the handlers only touch their own atomics, the PIC and the
    // LAPIC, and push their frame below this call's return address, where
    // nothing is live).
    unsafe { __rumpuser_bm_halt() };
}

/// Called by the interrupt entry with the interrupted `rip`: if the
/// interrupt was let in by the idle halt or the interrupt window, returns
/// where to resume, and the entry resumes there with interrupts masked.
///
/// Two cases:
/// * `rip` is the idle `hlt` itself: the interrupt came before the halt
///   began (see [`wait_for_interrupt`]); resume after it, so the halt is
///   skipped (counted by [`early_wakes`]).
/// * `rip` is after the `sti` of either sequence: resume there.
///
/// Why masked: those sequences exist to let one interrupt in, and the code
/// after them masks interrupts at once anyway. Returning with IF clear
/// makes that so even if the (virtual) CPU has another interrupt ready at
/// the `cli`: nested Xen under QEMU TCG has been seen to deliver the event
/// channel upcall vector again and again there, so that the handler ran
/// forever and the domain never got back to its scheduler (in about one
/// boot in five of the domU suite, seen with Xen's VMCB dump: RIP in the
/// handler's EOI, `evtchn_upcall_pending` set). With this the handler runs
/// once, the scheduler polls the events, and a CPU that keeps re-delivering
/// costs a spurious wake-up, not a hang.
#[inline]
pub fn window_resume(rip: u64) -> Option<u64> {
    // Only the addresses of the labels are taken (no reads): safe.
    let (hlt, done, open, close) = (
        core::ptr::addr_of!(__rumpuser_bm_halt_insn) as u64,
        core::ptr::addr_of!(__rumpuser_bm_halt_done) as u64,
        core::ptr::addr_of!(__rumpuser_bm_window_open) as u64,
        core::ptr::addr_of!(__rumpuser_bm_window_close) as u64,
    );
    if rip == hlt {
        EARLY_WAKES.fetch_add(1, Ordering::Relaxed);
        return Some(done);
    }
    (rip == done || rip == open || rip == close).then_some(rip)
}

/// How many interrupts arrived on the idle `hlt` instead of during it
/// (0 on a CPU that honours the `sti` shadow).
pub fn early_wakes() -> u64 {
    EARLY_WAKES.load(Ordering::Relaxed)
}

/// Lets interrupts that are already pending be taken, then masks them
/// again (the busy path's substitute for running with IF=1).
#[inline]
pub fn interrupt_window() {
    // SAFETY: as `wait_for_interrupt`, without halting.
    unsafe { __rumpuser_bm_window() };
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: masks interrupts and halts; nothing resumes this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// CR2: the faulting address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// CR3, CR0 and CR4 for reports.
pub fn control_registers() -> (u64, u64, u64) {
    let (frame, _) = x86_64::registers::control::Cr3::read_raw();
    (
        frame.start_address().as_u64(),
        Cr0::read_raw(),
        Cr4::read_raw(),
    )
}

/// The one thread-pointer block (`%fs` base), shared by all green threads.
///
/// C code built with the usual `-fstack-protector*` reads its canary at
/// `%fs:0x28` (and TLS variant II code reads the thread pointer at
/// `%fs:0`). There is no per-thread TLS here (the kernel layer must be
/// built with `RUMP_CURLWP=hypercall`), but a valid block with a random
/// canary lets such code run; `__stack_chk_fail` reports a smashed stack.
#[repr(C, align(64))]
struct FsBlock(core::cell::UnsafeCell<[u64; 64]>);
// SAFETY: written once at boot before any thread exists, then only read
// (by C code through %fs).
unsafe impl Sync for FsBlock {}
static FS_BLOCK: FsBlock = FsBlock(core::cell::UnsafeCell::new([0; 64]));

/// Points `%fs` at the block: self pointer at 0, `canary` at 0x28.
pub fn install_fs_block(canary: u64) {
    let p = FS_BLOCK.0.get();
    // SAFETY: boot, single thread: nothing else accesses the block yet.
    unsafe {
        (*p)[0] = p as u64;
        (*p)[5] = canary;
    }
    x86_64::registers::model_specific::FsBase::write(x86_64::VirtAddr::new(p as u64));
}

core::arch::global_asm!(
    ".pushsection .text.__stack_chk_fail, \"ax\", @progbits",
    ".weak __stack_chk_fail",
    ".type __stack_chk_fail, @function",
    "__stack_chk_fail:",
    "    and rsp, -16",
    "    call {report}",
    "    ud2",
    ".popsection",
    report = sym stack_chk_fail,
);

extern "C" fn stack_chk_fail() -> ! {
    crate::kprintln!(
        "\n*** {}: stack smashing detected (__stack_chk_fail)",
        crate::exit::who()
    );
    crate::exit::report_thread();
    crate::exit::exit_status(crate::status::PANIC)
}
