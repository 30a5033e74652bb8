//! The Xen platform: `rumpuser-pvh`'s [`PvhPlatform`] over the Xen machine.
//!
//! Scheduling is the green core's; the host half is
//! [`PvhHost`](rumpuser_pvh::host::PvhHost) with Xen's parts: memory
//! from `rumpuser_pvh::heap`, clocks from [`crate::time`] (pvclock and
//! shared_info), RDRAND/RDSEED through `rumpuser_pvh::random`, the
//! console of [`crate::console`], parameters from the PVH command line,
//! and exit through [`crate::start::exit_status`] (`SCHEDOP_shutdown`).
//!
//! Files are the domU's virtual disks ([`crate::blkfront`]: `xvda`, … or
//! the xenstore device id); dom0 has none, so every name is `ENOENT`
//! there. There are no host files: the kit's file cases skip.

use rumpuser_core::types::MonoNanos;
use rumpuser_pvh::host::{pvh_platform, Machine, PvhPlatform};

/// The Xen PVH guest machine.
#[derive(Debug)]
pub struct XenMachine;

/// The Xen platform.
pub type Xen = PvhPlatform<XenMachine>;

/// The instance exported through the C ABI.
pub static XEN: Xen = pvh_platform(XenMachine);

impl Machine for XenMachine {
    const WHO: &'static str = "rumpuser-xen";
    const DEFAULT_HOSTNAME: &'static str = "rump-xen";
    type Disks = crate::blkfront::Blkfront;

    fn cmdline() -> &'static str {
        crate::start::cmdline()
    }
    fn wall() -> (i64, i64) {
        crate::time::wall()
    }
    #[inline]
    fn now_ns() -> MonoNanos {
        crate::time::now_ns()
    }
    fn console_write(bytes: &[u8]) {
        crate::console::write(bytes)
    }
    fn exit(status: u32) -> ! {
        crate::start::exit_status(status)
    }
}
