//! Lock misuse on the green flavour: each case of the kit's misuse list
//! runs in a child process (whose test thread becomes the green host
//! thread) and must end it with `SIGABRT` and a report that names the
//! lock, the calling lwp and the green thread (harness in
//! `rumpuser_testkit::misuse`).

use rumpuser_core::conformance::Config;
use rumpuser_testkit::misuse;

#[test]
fn lock_misuse_aborts_with_a_message() {
    misuse::run(&misuse::Flavour {
        api: &rumpuser_green::rumpuser_exports::API,
        cfg: Config::default().cooperative(true),
        test_name: "lock_misuse_aborts_with_a_message",
        thread: "on green thread ",
    });
}
