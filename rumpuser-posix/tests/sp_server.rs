//! The syscall proxy server of the POSIX flavour against the project's
//! own protocol client and a model kernel (the shared scenario of
//! `rumpuser_testkit::sp`, which the green flavour runs too). One test
//! function, because a process can call `rumpuser_init` only once.

use rumpuser_posix::rumpuser_exports::API;
use rumpuser_testkit::sp::kernel;
use rumpuser_testkit::sp::scenario::{self, Hooks};

#[test]
fn sysproxy_server() {
    kernel::boot(&API);
    scenario::run(&Hooks {
        // Any host thread may make hypercalls.
        on_kernel: |job| job(),
        live_clients: rumpuser_posix::sp::live_clients,
        tcp_address: rumpuser_posix::sp::tcp_address,
    });
}
