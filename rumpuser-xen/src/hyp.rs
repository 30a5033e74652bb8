//! `impl Hypervisor for Xen`: the hypercalls on a Xen PVH guest.
//!
//! Scheduling (locks, cvs, threads, sleeps, curlwp) is the green core's,
//! through [`rumpuser_green::glue`]; the host half is bare metal's
//! `pvh_hypervisor_host!` with Xen's parts: memory from the heap shared
//! with bare metal, clocks from [`crate::time`] (pvclock and
//! shared_info), RDRAND/RDSEED through bare metal's `random`, the console
//! of [`crate::console`], parameters from the PVH command line, and exit
//! through [`crate::start::exit_status`] (`SCHEDOP_shutdown`).
//!
//! Files are the domU's virtual disks ([`crate::blkfront`]: `xvda`, … or
//! the xenstore device id); dom0 has none, so every name is `ENOENT`
//! there. There are no host files: the kit's file cases skip.

use core::ffi::c_int;
use rumpuser_core::Hypervisor;

/// The Xen hypervisor layer.
pub struct Xen;

/// The instance exported through the C ABI.
pub static XEN: Xen = Xen;

impl Hypervisor for Xen {
    rumpuser_green::green_hypervisor_sched!(
        guard = rumpuser_green::glue::no_guard,
        stack_size = rumpuser_baremetal::hyp::stack_size()
    );

    rumpuser_baremetal::pvh_hypervisor_host!(
        name = "xen",
        cmdline = crate::start::cmdline,
        disk = crate::blkfront,
        clock = crate::time,
        console = crate::console::write,
        exit = crate::start::exit_status,
    );
}

/// The calling green thread's errno as last set by `rumpuser_seterrno`
/// (C programs without a libc read it with this function).
#[no_mangle]
pub extern "C" fn rumpuser_xen_errno() -> c_int {
    rumpuser_green::sched_core::errno()
}
