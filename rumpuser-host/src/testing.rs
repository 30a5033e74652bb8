//! Support for tests that start a copy of their own test binary (a child
//! process for a scenario that aborts, or that needs a fresh process).

use std::process::Command;

/// A command running the current executable: directly, or through the
/// emulator named by `RUMPUSER_TEST_RUNNER` (e.g. `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`, set by `cargo xtask aarch64-test`), since
/// without binfmt_misc an emulated process cannot exec another one.
pub fn current_exe_command() -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let runner = std::env::var("RUMPUSER_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut c = Command::new(emulator);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}
