//! Signals and termination (rumpuser.c, rumpuser_sigtrans.c): NetBSD signal
//! numbers are translated before raising; `RUMPUSER_PANIC` aborts.

use core::ffi::c_int;
use rumpuser_core::signal::netbsd_to_linux;
use rumpuser_core::types::ExitKind;
use rumpuser_core::HyperResult;

/// `rumpuser_kill`: the pid is only a hint; the hosting process gets the
/// signal. Signals Linux lacks (SIGEMT, SIGINFO) are dropped, as in the reference.
pub fn kill(_pid: i64, sig: c_int) -> HyperResult<()> {
    if let Some(host) = netbsd_to_linux(sig).filter(|&s| s > 0) {
        crate::sys::proc::raise(host)?;
    }
    Ok(())
}

/// `rumpuser_exit`: abort for a panic, otherwise `exit(3)` (stdio is flushed).
///
/// The kernel prints its panic message with `rumpuser_putchar`, i.e. into C
/// stdio's stdout buffer, which `abort` discards: with stdout a file or a
/// pipe (a log, a CI job) the reason for the panic was lost. So a panic
/// flushes every stdio output stream first (what `exit` would do).
pub fn exit(how: ExitKind) -> ! {
    match how {
        ExitKind::Panic => {
            crate::sys::proc::flush_stdio();
            abort_now()
        }
        // exit(3): atexit handlers and stdio flushing run.
        ExitKind::Status(v) => std::process::exit(v),
    }
}

/// Aborts the process (used for impossible states, after a message).
pub fn abort_now() -> ! {
    std::process::abort()
}
