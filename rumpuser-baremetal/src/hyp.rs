//! The bare-metal platform: [`rumpuser_pvh::host::PvhPlatform`] over the
//! bare-metal machine — disks from [`crate::disk`], clocks from
//! [`crate::time`], the serial console, exit through `isa-debug-exit`
//! ([`rumpuser_pvh::exit`] without a hook).

use rumpuser_core::types::MonoNanos;
use rumpuser_pvh::host::{pvh_platform, Machine, PvhPlatform};

/// The bare-metal platform.
pub type Baremetal = PvhPlatform<BaremetalMachine>;

/// The instance exported through the C ABI.
pub static BAREMETAL: Baremetal = pvh_platform(BaremetalMachine);

/// The bare-metal machine: the serial console, the TSC clocks, virtio
/// disks, `isa-debug-exit`.
#[derive(Debug)]
pub struct BaremetalMachine;

impl Machine for BaremetalMachine {
    const WHO: &'static str = "rumpuser-baremetal";
    const DEFAULT_HOSTNAME: &'static str = "rump-baremetal";
    type Disks = crate::disk::VirtioDisks;

    fn cmdline() -> &'static str {
        rumpuser_pvh::bootinfo::cmdline()
    }
    fn wall() -> (i64, i64) {
        crate::time::wall()
    }
    #[inline]
    fn now_ns() -> MonoNanos {
        crate::time::now_ns()
    }
    fn console_write(bytes: &[u8]) {
        rumpuser_pvh::serial::write_bytes(bytes)
    }
    fn exit(status: u32) -> ! {
        rumpuser_pvh::exit::exit_status(status)
    }
}
