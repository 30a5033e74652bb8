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
pub(super) use x86_64::{init_frame, switch, switch_tail};

#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple"), not(windows)))]
mod aarch64;

#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple"), not(windows)))]
pub(super) use aarch64::{init_frame, switch, switch_tail};

#[cfg(not(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    not(target_vendor = "apple"),
    not(windows)
)))]
compile_error!(
    "rumpuser-green's scheduler core supports x86_64 System V and AArch64 AAPCS64 ELF targets"
);

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
        let mut stack = vec![0u8; 64 * 1024];
        let base = (stack.as_mut_ptr() as usize + 15) & !15;
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
            (*p).partner_sp = init_frame(base as *mut u8, 64 * 1024 - 16, partner, p as usize);
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
        let mut stack = vec![0u8; 64 * 1024];
        let base = (stack.as_mut_ptr() as usize + 15) & !15;
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
            (*p).partner_sp = init_frame(base as *mut u8, 64 * 1024 - 16, clobberer, p as usize);
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
