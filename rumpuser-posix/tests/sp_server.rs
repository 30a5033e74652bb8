//! The syscall proxy server of the POSIX flavour against the project's
//! own protocol client and a model kernel (the shared scenario in
//! `tests/sp_support/`, which the green flavour runs too). One test
//! function, because a process can call `rumpuser_init` only once.

#[path = "../../tests/sp_support/mod.rs"]
mod sp_support;

use rumpuser_posix::rumpuser_exports::API;
use sp_support::kernel;
use sp_support::scenario::{self, Hooks};

#[test]
fn sysproxy_server() {
    kernel::boot();
    scenario::run(&Hooks {
        // Any host thread may make hypercalls.
        on_kernel: |job| job(),
        live_clients: rumpuser_posix::sp::live_clients,
        tcp_address: rumpuser_posix::sp::tcp_address,
    });
}
