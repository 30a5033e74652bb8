//! Two words of *initial-exec* TLS per host thread (feature `hosts`): the
//! host cell of the calling host thread and the `curlwp` of the green
//! thread running on it. Reading one is a load of its offset from the GOT
//! and a load relative to the thread pointer, in an executable and in a
//! shared library alike (Rust's `thread_local!` uses the general-dynamic
//! model, a call of `__tls_get_addr` in `librumpuser_green.so`, and
//! `rumpuser_curlwp` is the hottest hypercall of a kernel). The
//! initial-exec model needs a slot in the static TLS block, which glibc
//! reserves for `dlopen`ed libraries too (16 bytes of its surplus here).
//!
//! The symbols are global (every codegen unit reaches them) and hidden
//! (no shared object exports them); their names start with `__rumpuser`,
//! outside the `rumpuser_` prefix the distribution keeps global.

use crate::hosts::HostCell;
use core::arch::{asm, global_asm};

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".pushsection .tbss,\"awT\",@nobits",
    ".p2align 3",
    ".globl __rumpuser_green_host",
    ".hidden __rumpuser_green_host",
    ".type __rumpuser_green_host,@object",
    ".size __rumpuser_green_host,8",
    "__rumpuser_green_host:",
    ".zero 8",
    ".globl __rumpuser_green_curlwp",
    ".hidden __rumpuser_green_curlwp",
    ".type __rumpuser_green_curlwp,@object",
    ".size __rumpuser_green_curlwp,8",
    "__rumpuser_green_curlwp:",
    ".zero 8",
    ".popsection",
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".pushsection .tbss,\"awT\",%nobits",
    ".p2align 3",
    ".globl __rumpuser_green_host",
    ".hidden __rumpuser_green_host",
    ".type __rumpuser_green_host,%object",
    ".size __rumpuser_green_host,8",
    "__rumpuser_green_host:",
    ".zero 8",
    ".globl __rumpuser_green_curlwp",
    ".hidden __rumpuser_green_curlwp",
    ".type __rumpuser_green_curlwp,%object",
    ".size __rumpuser_green_curlwp,8",
    "__rumpuser_green_curlwp:",
    ".zero 8",
    ".popsection",
);

/// Reads the calling thread's word `$sym`.
macro_rules! tls_get {
    ($sym:literal) => {{
        let v: usize;
        // SAFETY: reads the calling thread's own 8-byte slot defined above,
        // at its TLS offset from the thread pointer; every thread has the
        // slot (static TLS) and only the thread itself writes it.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!(
                concat!("mov {v}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        // SAFETY: as above (AArch64: `tpidr_el0` is the thread pointer).
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!(
                concat!("adrp {o}, :gottprel:", $sym),
                concat!("ldr {o}, [{o}, #:gottprel_lo12:", $sym, "]"),
                "mrs {t}, tpidr_el0",
                "ldr {v}, [{t}, {o}]",
                o = out(reg) _,
                t = out(reg) _,
                v = out(reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        v
    }};
}

/// Writes the calling thread's word `$sym`.
macro_rules! tls_set {
    ($sym:literal, $val:expr) => {{
        let v: usize = $val;
        // SAFETY: writes the calling thread's own slot (see `tls_get`).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!(
                concat!("mov {o}, qword ptr [rip + ", $sym, "@GOTTPOFF]"),
                "mov qword ptr fs:[{o}], {v}",
                o = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            );
        }
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!(
                concat!("adrp {o}, :gottprel:", $sym),
                concat!("ldr {o}, [{o}, #:gottprel_lo12:", $sym, "]"),
                "mrs {t}, tpidr_el0",
                "str {v}, [{t}, {o}]",
                o = out(reg) _,
                t = out(reg) _,
                v = in(reg) v,
                options(nostack, preserves_flags),
            );
        }
    }};
}

/// The calling host thread's host cell (`None`: none yet).
#[inline(always)]
pub(crate) fn host() -> Option<&'static HostCell> {
    let h = tls_get!("__rumpuser_green_host") as *const HostCell;
    // SAFETY: only `set_host` stores the word, from a `&'static HostCell`
    // (0 until then).
    unsafe { h.as_ref() }
}

/// Records the calling host thread's host cell.
#[inline(always)]
pub(crate) fn set_host(h: &'static HostCell) {
    tls_set!("__rumpuser_green_host", h as *const HostCell as usize)
}

/// `curlwp` of the green thread running on the calling host thread.
#[inline(always)]
pub(crate) fn curlwp() -> usize {
    tls_get!("__rumpuser_green_curlwp")
}

/// Sets what [`curlwp`] returns on the calling host thread.
#[inline(always)]
pub(crate) fn set_curlwp(l: usize) {
    tls_set!("__rumpuser_green_curlwp", l)
}
