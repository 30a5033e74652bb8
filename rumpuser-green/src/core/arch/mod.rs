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
//! Only x86_64 (System V, ELF) is implemented; it is the target of the
//! POSIX, bare-metal and Xen PV/PVH backends.

#[cfg(all(target_arch = "x86_64", not(target_vendor = "apple"), not(windows)))]
mod x86_64;

#[cfg(all(target_arch = "x86_64", not(target_vendor = "apple"), not(windows)))]
pub(super) use x86_64::{init_frame, switch, switch_tail};

#[cfg(not(all(target_arch = "x86_64", not(target_vendor = "apple"), not(windows))))]
compile_error!("rumpuser-green's scheduler core supports only x86_64 System V ELF targets");

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
        partner_mxcsr: u32,
    }

    fn mxcsr() -> u32 {
        let mut v = 0u32;
        // SAFETY: stores the MXCSR register into a local.
        unsafe { core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack)) };
        v
    }

    fn set_mxcsr(v: u32) {
        // SAFETY: loads a valid MXCSR value (no reserved bits set).
        unsafe { core::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack)) };
    }

    extern "C" fn partner(arg: usize) -> ! {
        let ctx = arg as *mut Ctx;
        // SAFETY: `arg` points at the test's `Ctx`, which outlives every
        // resumption of this context; only one context runs at a time.
        unsafe {
            (*ctx).partner_mxcsr = mxcsr();
            set_mxcsr(0x3f80); // round down, exceptions masked
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
            partner_mxcsr: 0,
        };
        let saved = mxcsr();
        set_mxcsr(0x7f80); // round toward zero
        let p = core::ptr::addr_of_mut!(ctx);
        // SAFETY: the stack is ours, aligned, large enough and unused; `p`
        // outlives the partner context (never resumed after this test).
        unsafe {
            (*p).partner_sp = init_frame(base as *mut u8, 64 * 1024 - 16, partner, p as usize);
            for _ in 0..1000 {
                switch(core::ptr::addr_of_mut!((*p).main_sp), (*p).partner_sp);
                assert_eq!(mxcsr() & 0xffc0, 0x7f80);
            }
        }
        set_mxcsr(saved);
        assert_eq!(ctx.count, 1000);
        assert_eq!(ctx.partner_mxcsr & 0xffc0, 0x1f80);
        drop(stack);
    }
}
