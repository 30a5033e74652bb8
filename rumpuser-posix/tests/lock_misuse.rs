//! Lock misuse on the POSIX flavour: each case of the kit's misuse list
//! runs in a child process and must end it with `SIGABRT` and a report
//! that names the lock, the calling lwp and the host thread (harness in
//! `rumpuser_testkit::misuse`).

use rumpuser_core::conformance::Config;
use rumpuser_testkit::misuse;

#[test]
fn lock_misuse_aborts_with_a_message() {
    misuse::run(&misuse::Flavour {
        api: &rumpuser_posix::rumpuser_exports::API,
        cfg: Config::default(),
        test_name: "lock_misuse_aborts_with_a_message",
        thread: "on host thread ",
    });
}
