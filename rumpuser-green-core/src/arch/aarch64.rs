//! AArch64 (AAPCS64, ELF) context switch and first-entry trampoline.
//!
//! A switch is an ordinary call of `__rumpuser_green_switch(save, to)`
//! (`x0`, `x1`), so the compiler already treats every caller-saved register
//! (x0–x18, the low halves' upper parts and v0–v7, v16–v31, NZCV) as
//! clobbered. The routine saves what AAPCS64 says a callee must preserve:
//! x19–x28, the frame pointer x29, the link register x30, sp, the low 64
//! bits of v8–v15 (d8–d15), and FPCR (rounding mode and trap enables).
//! FPCR is written back only when it differs from the context being left
//! (`msr fpcr` is synchronising on many cores); FPSR (cumulative flags) is
//! caller-saved and not switched. No signal mask, no system call.
//!
//! x18 is the platform register: Linux and bare-metal ELF leave it free,
//! and it is caller-saved for the compiler, so it is not switched.
//!
//! Saved frame, from the saved stack pointer upwards (176 bytes, 16-byte
//! aligned as sp must be):
//!
//! ```text
//! +0   x19 x20   +16  x21 x22   +32  x23 x24   +48  x25 x26
//! +64  x27 x28   +80  x29 x30   +96  d8  d9    +112 d10 d11
//! +128 d12 d13   +144 d14 d15   +160 FPCR, pad
//! ```
//!
//! A fresh thread's frame has the same shape with `x30` = the trampoline,
//! `x19 = start`, `x20 = arg`, `x29 = 0` (ends frame-pointer walks) and
//! FPCR 0 (round to nearest, no traps); the trampoline calls `start(arg)`
//! on the 16-byte aligned stack above the frame.
//!
//! Symbols are ELF `.hidden` so they never leak out of a cdylib.

use core::arch::global_asm;

global_asm!(
    ".pushsection .text.__rumpuser_green_switch,\"ax\",@progbits",
    ".globl __rumpuser_green_switch",
    ".hidden __rumpuser_green_switch",
    ".type __rumpuser_green_switch,%function",
    ".p2align 4",
    "__rumpuser_green_switch:",
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
    "    mrs x9, fpcr",
    "    str x9, [sp, #160]",
    "    mov x10, sp",
    "    str x10, [x0]",
    "    mov sp, x1",
    "    ldr x10, [sp, #160]",
    "    cmp x9, x10",
    "    b.eq 1f",
    "    msr fpcr, x10",
    "1:",
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
    ".size __rumpuser_green_switch, . - __rumpuser_green_switch",
    "",
    ".globl __rumpuser_green_trampoline",
    ".hidden __rumpuser_green_trampoline",
    ".type __rumpuser_green_trampoline,%function",
    ".p2align 4",
    "__rumpuser_green_trampoline:",
    "    mov x0, x20",
    "    blr x19",
    "    brk #0",
    ".size __rumpuser_green_trampoline, . - __rumpuser_green_trampoline",
    ".popsection",
);

extern "C" {
    fn __rumpuser_green_switch(save: *mut usize, to: usize);
    fn __rumpuser_green_trampoline();
}

/// Size of the saved frame in words (see the module doc).
const FRAME_WORDS: usize = 22;

/// Save the current context (stack pointer into `*save`) and resume `to`.
///
/// # Safety
///
/// * `save` must be valid for writing a `usize` at the moment of the switch.
/// * `to` must be a stack pointer produced by an earlier `switch` of a
///   context that has not been resumed since, or by [`init_frame`], on a
///   stack that is still allocated.
#[inline(always)]
pub(in super::super) unsafe fn switch(save: *mut usize, to: usize) {
    // SAFETY: an ordinary AAPCS64 call of the routine, which preserves
    // every callee-saved register (x19–x30, sp, d8–d15, FPCR) for this
    // context until some other context switches back to it, the only way
    // the call returns; the caller guarantees `save` is writable and `to`
    // is a valid saved context.
    unsafe { __rumpuser_green_switch(save, to) }
}

/// Build the first-entry frame on a fresh stack and return the stack
/// pointer to pass to [`switch`].
///
/// # Safety
///
/// `[base, base + size)` must be writable memory not in use by anything
/// else, with `size >= 256` and `base` 16-byte aligned.
pub(in super::super) unsafe fn init_frame(
    base: *mut u8,
    size: usize,
    start: extern "C" fn(usize) -> !,
    arg: usize,
) -> usize {
    let top = (base as usize + size) & !15;
    let sp = top - FRAME_WORDS * 8;
    let mut words = [0usize; FRAME_WORDS];
    words[0] = start as usize; // x19
    words[1] = arg; // x20
    words[10] = 0; // x29: end of the frame-pointer chain
    words[11] = __rumpuser_green_trampoline as *const () as usize; // x30
    words[20] = 0; // FPCR: round to nearest, no traps
                   // SAFETY: `sp..top` lies inside `[base, base + size)` (size >= 256,
                   // top is rounded down by at most 15 bytes), is 16-byte aligned (176 is
                   // a multiple of 16) and writable per the caller's guarantee.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), sp as *mut usize, FRAME_WORDS) };
    sp
}
