//! Architecture seam: the context switch and the initial stack frame.
//!
//! Each architecture module must define the same names:
//!
//! * `unsafe fn switch(save: *mut usize, to: usize)` — save the callee-saved
//!   state of the running context on its own stack, store the resulting
//!   stack pointer in `*save`, then resume the context whose saved stack
//!   pointer is `to`. Returns when some other context switches back.
//! * `unsafe fn init_frame(base: *mut u8, size: usize, start, arg) -> usize`
//!   — build a frame at the top of a fresh stack such that switching to the
//!   returned stack pointer calls `start(arg)` with an ABI-conformant stack.
//!
//! Implemented: x86_64 (System V, ELF; the POSIX, bare-metal and Xen
//! PVH backends) and AArch64 (AAPCS64, ELF; the POSIX backend on Linux,
//! tested under `qemu-aarch64` by `cargo xtask test`).

#[cfg(all(target_arch = "x86_64", not(target_vendor = "apple"), not(windows)))]
mod x86_64;

#[cfg(all(target_arch = "x86_64", not(target_vendor = "apple"), not(windows)))]
pub(super) use x86_64::{init_frame, switch};

#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple"), not(windows)))]
mod aarch64;

#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple"), not(windows)))]
pub(super) use aarch64::{init_frame, switch};

#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(target_vendor = "apple"),
    not(windows)
)))]
compile_error!(
    "rumpuser-green's scheduler core supports x86_64 System V and AArch64 AAPCS64 ELF targets"
);

#[cfg(feature = "hosts")]
pub(crate) mod tls;

/// Value written at the lowest word of every green-thread stack; checked
/// when the stack is released (and on every switch in debug builds).
pub(super) const STACK_CANARY: u64 = 0x7275_6d70_6772_6e21; // "rumpgrn!"

/// Write the canary at the bottom of a stack.
///
/// # Safety
///
/// `base` must be valid for an aligned 8-byte write.
pub(super) unsafe fn write_canary(base: *mut u8) {
    // SAFETY: the caller guarantees `base` is writable and 8-byte aligned
    // (the Platform contract requires 16-byte aligned stacks).
    unsafe { base.cast::<u64>().write_volatile(STACK_CANARY) }
}

/// Whether the canary written by [`write_canary`] is intact.
///
/// # Safety
///
/// `base` must be valid for an aligned 8-byte read.
pub(super) unsafe fn canary_intact(base: *const u8) -> bool {
    // SAFETY: the caller guarantees `base` is readable and aligned.
    unsafe { base.cast::<u64>().read_volatile() == STACK_CANARY }
}

#[cfg(test)]
mod tests {
    //! Raw context-switch tests (no scheduler): ping-pong, per-context FP
    //! control state, and the cost of one bare switch.

    use super::{init_frame, switch};
    use alloc::vec;

    struct Ctx {
        main_sp: usize,
        partner_sp: usize,
        count: u64,
        partner_fp: u32,
    }

    /// A 64 KiB stack for a partner context.
    struct PartnerStack(alloc::vec::Vec<u8>);

    impl PartnerStack {
        fn new() -> Self {
            PartnerStack(vec![0u8; 64 * 1024])
        }

        /// A fresh frame on this stack that calls `start(arg)` when
        /// switched to.
        ///
        /// # Safety
        /// The stack must outlive every resumption of the context, and
        /// whatever `arg` points to too.
        unsafe fn frame(&mut self, start: extern "C" fn(usize) -> !, arg: usize) -> usize {
            let base = (self.0.as_mut_ptr() as usize + 15) & !15;
            // SAFETY: the buffer is ours and unused, `base` is 16-aligned
            // and leaves 64 KiB - 16 bytes; the rest is the caller's.
            unsafe { init_frame(base as *mut u8, self.0.len() - 16, start, arg) }
        }
    }

    // The FP control state each context owns: x86_64's MXCSR control
    // bits, AArch64's FPCR rounding mode.
    #[cfg(target_arch = "x86_64")]
    mod fp {
        pub const DEFAULT: u32 = 0x1f80;
        pub const MAIN: u32 = 0x7f80; // round toward zero
        pub const PARTNER: u32 = 0x3f80; // round down
        pub const MASK: u32 = 0xffc0;
        pub fn get() -> u32 {
            let mut v = 0u32;
            // SAFETY: stores the MXCSR register into a local.
            unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
            v
        }
        pub fn set(v: u32) {
            // SAFETY: loads a valid MXCSR value (no reserved bits set).
            unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack)) };
        }
    }

    #[cfg(target_arch = "aarch64")]
    mod fp {
        pub const DEFAULT: u32 = 0;
        pub const MAIN: u32 = 3 << 22; // RMode: toward zero
        pub const PARTNER: u32 = 2 << 22; // RMode: toward minus infinity
        pub const MASK: u32 = 3 << 22;
        pub fn get() -> u32 {
            let v: u64;
            // SAFETY: reads FPCR.
            unsafe { core::arch::asm!("mrs {}, fpcr", out(reg) v, options(nomem, nostack)) };
            v as u32
        }
        pub fn set(v: u32) {
            // SAFETY: writes FPCR with only the rounding-mode field set.
            unsafe { core::arch::asm!("msr fpcr, {}", in(reg) v as u64, options(nomem, nostack)) };
        }
    }

    extern "C" fn partner(arg: usize) -> ! {
        let ctx = arg as *mut Ctx;
        // SAFETY: `arg` points at the test's `Ctx`, which outlives every
        // resumption of this context; only one context runs at a time.
        unsafe {
            (*ctx).partner_fp = fp::get();
            fp::set(fp::PARTNER);
            loop {
                (*ctx).count += 1;
                switch(core::ptr::addr_of_mut!((*ctx).partner_sp), (*ctx).main_sp);
            }
        }
    }

    #[test]
    fn ping_pong_and_fp_control_are_per_context() {
        let mut stack = PartnerStack::new();
        let mut ctx = Ctx {
            main_sp: 0,
            partner_sp: 0,
            count: 0,
            partner_fp: 0,
        };
        let saved = fp::get();
        fp::set(fp::MAIN);
        let p = core::ptr::addr_of_mut!(ctx);
        // SAFETY: the stack is ours, aligned, large enough and unused; `p`
        // outlives the partner context (never resumed after this test).
        unsafe {
            (*p).partner_sp = stack.frame(partner, p as usize);
            for _ in 0..1000 {
                switch(core::ptr::addr_of_mut!((*p).main_sp), (*p).partner_sp);
                assert_eq!(fp::get() & fp::MASK, fp::MAIN);
            }
        }
        fp::set(saved);
        assert_eq!(ctx.count, 1000);
        // A fresh context starts with the default control state, not ours.
        assert_eq!(ctx.partner_fp & fp::MASK, fp::DEFAULT & fp::MASK);
        drop(stack);
    }

    // `__rg_test_switch(save, to, pattern) -> mismatches`: saves the
    // caller's callee-saved registers, loads `pattern + k` into every one
    // of them, switches (`__rumpuser_green_switch(save, to)`), counts the
    // registers that no longer hold their value, restores them and
    // returns. In assembly, so nothing can be spilled around the switch.

    // x86_64: rbx, rbp, r12–r15 (`pattern + 1` … `pattern + 6`).
    #[cfg(target_arch = "x86_64")]
    core::arch::global_asm!(
        ".pushsection .text.__rg_test_switch,\"ax\",@progbits",
        ".macro rg_check reg, k",
        "    lea rcx, [rdx + \\k]",
        "    cmp \\reg, rcx",
        "    setne cl",
        "    movzx ecx, cl",
        "    add eax, ecx",
        ".endm",
        ".p2align 4",
        "__rg_test_switch:",
        "    push rbp",
        "    push rbx",
        "    push r12",
        "    push r13",
        "    push r14",
        "    push r15",
        "    push rdx",
        "    sub rsp, 8",
        "    lea rbx, [rdx + 1]",
        "    lea rbp, [rdx + 2]",
        "    lea r12, [rdx + 3]",
        "    lea r13, [rdx + 4]",
        "    lea r14, [rdx + 5]",
        "    lea r15, [rdx + 6]",
        "    call __rumpuser_green_switch",
        "    add rsp, 8",
        "    pop rdx",
        "    xor eax, eax",
        "    rg_check rbx, 1",
        "    rg_check rbp, 2",
        "    rg_check r12, 3",
        "    rg_check r13, 4",
        "    rg_check r14, 5",
        "    rg_check r15, 6",
        "    pop r15",
        "    pop r14",
        "    pop r13",
        "    pop r12",
        "    pop rbx",
        "    pop rbp",
        "    ret",
        ".purgem rg_check",
        ".popsection",
    );

    // AArch64: x19–x28 (`pattern + 19` … `pattern + 28`) and d8–d15
    // (`pattern + 19` … `pattern + 26`).
    #[cfg(target_arch = "aarch64")]
    core::arch::global_asm!(
        ".pushsection .text.__rg_test_switch,\"ax\",@progbits",
        ".p2align 4",
        "__rg_test_switch:",
        "    sub sp, sp, #176",
        "    stp x19, x20, [sp, #0]",
        "    stp x21, x22, [sp, #16]",
        "    stp x23, x24, [sp, #32]",
        "    stp x25, x26, [sp, #48]",
        "    stp x27, x28, [sp, #64]",
        "    stp x29, x30, [sp, #80]",
        "    stp d8, d9, [sp, #96]",
        "    stp d10, d11, [sp, #112]",
        "    stp d12, d13, [sp, #128]",
        "    stp d14, d15, [sp, #144]",
        "    str x2, [sp, #160]",
        "    .irp n, 19,20,21,22,23,24,25,26,27,28",
        "    add x\\n, x2, #\\n",
        "    .endr",
        "    .irp n, 8,9,10,11,12,13,14,15",
        "    add x3, x2, #(\\n + 11)",
        "    fmov d\\n, x3",
        "    .endr",
        "    bl __rumpuser_green_switch",
        "    ldr x2, [sp, #160]",
        "    mov x0, #0",
        "    .irp n, 19,20,21,22,23,24,25,26,27,28",
        "    add x3, x2, #\\n",
        "    cmp x\\n, x3",
        "    cinc x0, x0, ne",
        "    .endr",
        "    .irp n, 8,9,10,11,12,13,14,15",
        "    fmov x3, d\\n",
        "    add x4, x2, #(\\n + 11)",
        "    cmp x3, x4",
        "    cinc x0, x0, ne",
        "    .endr",
        "    ldp x19, x20, [sp, #0]",
        "    ldp x21, x22, [sp, #16]",
        "    ldp x23, x24, [sp, #32]",
        "    ldp x25, x26, [sp, #48]",
        "    ldp x27, x28, [sp, #64]",
        "    ldp x29, x30, [sp, #80]",
        "    ldp d8, d9, [sp, #96]",
        "    ldp d10, d11, [sp, #112]",
        "    ldp d12, d13, [sp, #128]",
        "    ldp d14, d15, [sp, #144]",
        "    add sp, sp, #176",
        "    ret",
        ".popsection",
    );

    extern "C" {
        fn __rg_test_switch(save: *mut usize, to: usize, pattern: u64) -> u64;
    }

    struct Pair {
        main_sp: usize,
        partner_sp: usize,
        partner_bad: u64,
        rounds: u64,
    }

    extern "C" fn register_partner(arg: usize) -> ! {
        let p = arg as *mut Pair;
        loop {
            // SAFETY: `p` outlives every resumption (see the test).
            unsafe {
                (*p).rounds += 1;
                let bad = __rg_test_switch(
                    core::ptr::addr_of_mut!((*p).partner_sp),
                    (*p).main_sp,
                    0x7000_0000_0000,
                );
                (*p).partner_bad += bad;
            }
        }
    }

    /// Every callee-saved register holds its value across a switch while
    /// the other context loads its own values into all of them.
    #[test]
    fn callee_saved_registers_survive_in_asm() {
        let mut stack = PartnerStack::new();
        let mut pair = Pair {
            main_sp: 0,
            partner_sp: 0,
            partner_bad: 0,
            rounds: 0,
        };
        let p = core::ptr::addr_of_mut!(pair);
        // SAFETY: the stack is ours, aligned and unused; `p` outlives the
        // partner context (never resumed after the loop).
        unsafe {
            (*p).partner_sp = stack.frame(register_partner, p as usize);
            // Enter the partner once so that it, too, runs the checker.
            switch(core::ptr::addr_of_mut!((*p).main_sp), (*p).partner_sp);
            for _ in 0..100 {
                let bad = __rg_test_switch(
                    core::ptr::addr_of_mut!((*p).main_sp),
                    (*p).partner_sp,
                    0x5000_0000_0000,
                );
                assert_eq!(bad, 0, "callee-saved registers lost across a switch");
            }
        }
        assert_eq!(pair.partner_bad, 0);
        assert_eq!(pair.rounds, 101);
        drop(stack);
    }

    /// Callee-saved registers survive a switch round trip even when the
    /// other context clobbers all of them.
    #[test]
    fn callee_saved_registers_survive() {
        extern "C" fn clobberer(arg: usize) -> ! {
            let ctx = arg as *mut Ctx;
            loop {
                // Touch many values across the switch so the compiler keeps
                // them in callee-saved registers of this context.
                let mut acc = [0u64; 12];
                for (i, a) in acc.iter_mut().enumerate() {
                    *a = core::hint::black_box(i as u64 * 0x9e37_79b9);
                }
                // SAFETY: as in `partner`.
                unsafe {
                    (*ctx).count += 1;
                    switch(core::ptr::addr_of_mut!((*ctx).partner_sp), (*ctx).main_sp);
                }
                core::hint::black_box(acc);
            }
        }
        let mut stack = PartnerStack::new();
        let mut ctx = Ctx {
            main_sp: 0,
            partner_sp: 0,
            count: 0,
            partner_fp: 0,
        };
        let p = core::ptr::addr_of_mut!(ctx);
        let vals: [u64; 12] = core::array::from_fn(|i| core::hint::black_box(i as u64 * 7 + 1));
        let f: [f64; 8] = core::array::from_fn(|i| core::hint::black_box(i as f64 * 1.5));
        // SAFETY: as in the test above.
        unsafe {
            (*p).partner_sp = stack.frame(clobberer, p as usize);
            for _ in 0..100 {
                switch(core::ptr::addr_of_mut!((*p).main_sp), (*p).partner_sp);
            }
        }
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(*v, i as u64 * 7 + 1);
        }
        for (i, v) in f.iter().enumerate() {
            assert_eq!(*v, i as f64 * 1.5);
        }
        assert_eq!(ctx.count, 100);
        drop(stack);
    }
}
