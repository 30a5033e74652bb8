//! The application: the image's C constructors and its
//! `int main(int argc, char **argv)` — defined by the application (C, or
//! Rust with `#[no_mangle] extern "C" fn main`) — called by every PVH
//! platform's boot sequence once the machine is up.

use crate::cmdline;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int};

extern "C" {
    /// The application's entry point.
    fn main(argc: c_int, argv: *const *const c_char) -> c_int;
    static __init_array_start: Option<unsafe extern "C" fn()>;
    static __init_array_end: Option<unsafe extern "C" fn()>;
}

/// The calling green thread's errno as last set by `rumpuser_seterrno`
/// (what `rump_sys_*` failures leave): a guest's C programs have no libc
/// `errno`, so they read it with this function (`int
/// rumpuser_pvh_errno(void);`), on bare metal and Xen alike.
#[no_mangle]
pub extern "C" fn rumpuser_pvh_errno() -> c_int {
    rumpuser_green::sched_core::errno()
}

/// Runs the image's C constructors (`.init_array`, which also registers
/// rump components under `RUMP_LDSCRIPT=ctor`), then the application's
/// `main` with `program` as `argv[0]` and the command line's arguments
/// after it; returns what `main` returned.
pub fn run_main(program: &str, cmdline: &str) -> c_int {
    run_constructors();
    let mut args: Vec<Vec<u8>> = Vec::new();
    for a in core::iter::once(program).chain(cmdline::args(cmdline)) {
        let mut v = a.as_bytes().to_vec();
        v.push(0);
        args.push(v);
    }
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr().cast()).collect();
    argv.push(core::ptr::null());
    // SAFETY: `main` is the application's C entry point; argv is a
    // NULL-terminated array of NUL-terminated strings that outlive the call.
    unsafe { main((argv.len() - 1) as c_int, argv.as_ptr()) }
}

fn run_constructors() {
    // SAFETY: the linker script brackets `.init_array` with these symbols;
    // every slot holds a constructor (or NULL) compiled for this image.
    unsafe {
        let mut p = core::ptr::addr_of!(__init_array_start);
        let end = core::ptr::addr_of!(__init_array_end);
        while p < end {
            if let Some(f) = *p {
                f();
            }
            p = p.add(1);
        }
    }
}
