//! Per-host-thread curlwp (rumpuser_pth.c's pthread key), as one word of
//! *initial-exec* TLS: reading it is a load of its offset from the GOT and
//! a load relative to the thread pointer, in an executable and in the
//! shared library alike.
//!
//! Why not `thread_local!`: Rust compiles it with the general-dynamic
//! model, which the linker relaxes to two instructions in an executable
//! but which costs a call of `__tls_get_addr` (about 20 instructions) in
//! `librumpuser_posix.so` and the drop-in `librumpuser.so.0`. curlwp is
//! read on every mutex acquisition (the KMUTEX owner) and release (the
//! misuse check, `rumpuser_core::lockcheck`), so there that call was a
//! third of an uncontended enter + exit. The initial-exec model needs a
//! slot in the static TLS block, which glibc reserves for `dlopen`ed
//! libraries too (8 bytes of its surplus here). Architectures other than
//! x86_64 and AArch64 use `thread_local!`.

use rumpuser_core::abi::Lwp;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod slot {
    use core::arch::{asm, global_asm};
    use rumpuser_core::abi::Lwp;

    // The slot: 8 zeroed bytes of .tbss. Global so that every codegen unit
    // can reach it, hidden so that no shared object exports it; the name
    // lacks the `rumpuser_` prefix, so the distribution's archive makes it
    // local like every other symbol but the C ABI.
    #[cfg(target_arch = "x86_64")]
    global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".globl __rumpuser_posix_curlwp",
        ".hidden __rumpuser_posix_curlwp",
        ".type __rumpuser_posix_curlwp,@object",
        ".size __rumpuser_posix_curlwp,8",
        "__rumpuser_posix_curlwp:",
        ".zero 8",
        ".popsection",
    );
    #[cfg(target_arch = "aarch64")]
    global_asm!(
        ".pushsection .tbss,\"awT\",%nobits",
        ".p2align 3",
        ".globl __rumpuser_posix_curlwp",
        ".hidden __rumpuser_posix_curlwp",
        ".type __rumpuser_posix_curlwp,%object",
        ".size __rumpuser_posix_curlwp,8",
        "__rumpuser_posix_curlwp:",
        ".zero 8",
        ".popsection",
    );

    #[inline(always)]
    pub fn get() -> *mut Lwp {
        let v: usize;
        // SAFETY: reads the calling thread's own 8-byte slot defined
        // above, at its TLS offset from the thread pointer; every thread
        // has the slot (static TLS) and no other thread writes it.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!(
                "mov {v}, qword ptr [rip + __rumpuser_posix_curlwp@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        // SAFETY: as above (AArch64: `tpidr_el0` is the thread pointer).
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!(
                "adrp {o}, :gottprel:__rumpuser_posix_curlwp",
                "ldr {o}, [{o}, #:gottprel_lo12:__rumpuser_posix_curlwp]",
                "mrs {t}, tpidr_el0",
                "ldr {v}, [{t}, {o}]",
                o = out(reg) _,
                t = out(reg) _,
                v = out(reg) v,
                options(nostack, preserves_flags, readonly),
            );
        }
        v as *mut Lwp
    }

    #[inline(always)]
    pub fn set(l: *mut Lwp) {
        // SAFETY: writes the calling thread's own slot (see `get`).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            asm!(
                "mov {o}, qword ptr [rip + __rumpuser_posix_curlwp@GOTTPOFF]",
                "mov qword ptr fs:[{o}], {v}",
                o = out(reg) _,
                v = in(reg) l as usize,
                options(nostack, preserves_flags),
            );
        }
        // SAFETY: as above.
        #[cfg(target_arch = "aarch64")]
        unsafe {
            asm!(
                "adrp {o}, :gottprel:__rumpuser_posix_curlwp",
                "ldr {o}, [{o}, #:gottprel_lo12:__rumpuser_posix_curlwp]",
                "mrs {t}, tpidr_el0",
                "str {v}, [{t}, {o}]",
                o = out(reg) _,
                t = out(reg) _,
                v = in(reg) l as usize,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod slot {
    use core::cell::Cell;
    use core::ptr;
    use rumpuser_core::abi::Lwp;

    std::thread_local! {
        static CURLWP: Cell<*mut Lwp> = const { Cell::new(ptr::null_mut()) };
    }

    #[inline]
    pub fn get() -> *mut Lwp {
        CURLWP.with(|c| c.get())
    }

    #[inline]
    pub fn set(l: *mut Lwp) {
        CURLWP.with(|c| c.set(l))
    }
}

/// The calling thread's lwp.
#[inline]
pub fn get() -> *mut Lwp {
    slot::get()
}

/// Binds `l` to the calling thread.
#[inline]
pub fn set(l: *mut Lwp) {
    slot::set(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_thread_and_initially_null() {
        assert!(get().is_null());
        let a = 0x1000 as *mut Lwp;
        set(a);
        assert_eq!(get(), a);
        std::thread::spawn(|| {
            assert!(get().is_null(), "a new thread starts without an lwp");
            set(0x2000 as *mut Lwp);
            assert_eq!(get() as usize, 0x2000);
        })
        .join()
        .unwrap();
        assert_eq!(get(), a, "another thread's set does not leak here");
        set(core::ptr::null_mut());
    }
}
