//! x86_64 System V context switch and first-entry trampoline.
//!
//! A switch is an ordinary call of `__rumpuser_green_switch(save, to)`, so
//! the compiler already treats every caller-saved register (rax, rcx, rdx,
//! rsi, rdi, r8–r11, all vector registers, flags) as clobbered. The routine
//! therefore saves exactly what the ABI says a callee must preserve: rbx,
//! rbp, r12–r15, rsp, the MXCSR control bits and the x87 control word. No
//! signal mask, no system call (unlike `swapcontext`).
//!
//! The FP control state is loaded only when it differs from the state of
//! the context being left (`ldmxcsr`/`fldcw` are the slow part of a switch
//! and threads almost never change rounding modes). MXCSR status flags
//! (bits 0–5) are caller-saved per the ABI and are ignored by the check;
//! they follow the control bits when those are reloaded. Each value is read
//! back with the width it was stored with, so the check does not stall on
//! store forwarding.
//!
//! The routine resumes the other context with `pop rdx; jmp rdx` rather
//! than `ret` (as Boost.Context does): a `ret` to another stack's return
//! address is always mispredicted by the return-stack buffer, whereas the
//! indirect-branch predictor learns the alternation. (Neither `ret` nor
//! this is compatible with CET shadow stacks, which no supported host
//! enables for Rust binaries.)
//!
//! Saved frame, from the saved stack pointer upwards:
//!
//! ```text
//! +0  MXCSR (4 bytes) | x87 CW (2 bytes) | pad (2 bytes)
//! +8  r15   +16 r14   +24 r13   +32 r12   +40 rbx   +48 rbp
//! +56 return address
//! ```
//!
//! A fresh thread's frame has the same shape, with the return address set
//! to the trampoline, `r12 = start`, `r13 = arg`, `rbp = 0` (terminates
//! frame-pointer walks) and the default MXCSR/CW; the trampoline calls
//! `start(arg)` with `rsp + 8` 16-byte aligned, as the ABI requires.
//!
//! Symbols are ELF `.hidden` so they never leak out of a cdylib.

use core::arch::global_asm;

global_asm!(
    ".pushsection .text.__rumpuser_green_switch,\"ax\",@progbits",
    ".globl __rumpuser_green_switch",
    ".hidden __rumpuser_green_switch",
    ".type __rumpuser_green_switch,@function",
    ".p2align 4",
    "__rumpuser_green_switch:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    sub rsp, 8",
    "    stmxcsr dword ptr [rsp]",
    "    fnstcw word ptr [rsp + 4]",
    "    mov qword ptr [rdi], rsp",
    "    mov eax, dword ptr [rsp]",
    "    movzx ecx, word ptr [rsp + 4]",
    "    mov rsp, rsi",
    "    xor eax, dword ptr [rsp]",
    "    test eax, 0xffc0", // MXCSR control bits (status flags are volatile)
    "    jnz 2f",
    "    cmp cx, word ptr [rsp + 4]",
    "    jne 2f",
    "1:",
    "    add rsp, 8",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    pop rdx",
    "    jmp rdx",
    "2:",
    "    ldmxcsr dword ptr [rsp]",
    "    fldcw word ptr [rsp + 4]",
    "    jmp 1b",
    ".size __rumpuser_green_switch, . - __rumpuser_green_switch",
    "",
    ".globl __rumpuser_green_trampoline",
    ".hidden __rumpuser_green_trampoline",
    ".type __rumpuser_green_trampoline,@function",
    ".p2align 4",
    "__rumpuser_green_trampoline:",
    "    mov rdi, r13",
    "    call r12",
    "    ud2",
    ".size __rumpuser_green_trampoline, . - __rumpuser_green_trampoline",
    ".popsection",
);

extern "C" {
    fn __rumpuser_green_switch(save: *mut usize, to: usize);
    fn __rumpuser_green_trampoline();
}

/// Default MXCSR (all exceptions masked, round to nearest) in the low 32
/// bits and the default x87 control word (0x037f) in bits 32..48.
const DEFAULT_FP_CONTROL: usize = 0x1f80 | (0x037f << 32);

/// Size of the initial frame built by [`init_frame`] (see the module doc).
const FRAME_WORDS: usize = 10;

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
    // SAFETY: the routine follows the System V calling convention: every
    // caller-saved register is declared clobbered (`clobber_abi("C")`),
    // and the callee-saved ones (rbx, rbp, r12–r15, rsp, MXCSR/x87 control)
    // hold this context's values again when some other context switches
    // back to it, which is the only way the call returns. The asm block may
    // use the stack (no `nostack`) and is assumed to access any memory. The
    // caller guarantees `save` is writable and `to` is a valid saved
    // context. Calling through `sym` gives a direct (non-GOT) call.
    unsafe {
        core::arch::asm!(
            "call {switch}",
            switch = sym __rumpuser_green_switch,
            in("rdi") save,
            in("rsi") to,
            clobber_abi("C"),
        );
    }
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
    let frame = sp as *mut usize;
    let words: [usize; FRAME_WORDS] = [
        DEFAULT_FP_CONTROL,
        0,                                                 // r15
        0,                                                 // r14
        arg,                                               // r13
        start as usize,                                    // r12
        0,                                                 // rbx
        0,                                                 // rbp
        __rumpuser_green_trampoline as *const () as usize, // return address
        0,                                                 // fake return of start
        0,                                                 // padding to `top`
    ];
    // SAFETY: `sp..top` lies inside `[base, base + size)` (size >= 256,
    // top is rounded down by at most 15 bytes), is 16-byte aligned and
    // writable per the caller's guarantee, and nothing else uses it.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), frame, FRAME_WORDS) };
    sp
}
