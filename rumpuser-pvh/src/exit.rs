//! The end of the machine, at the bottom of the crate: every module that
//! must stop the machine (a CPU exception, a stack-protector failure, out
//! of memory for page tables, a deadlock, `rumpuser_exit`) calls
//! [`exit_status`] or [`fatal`] here, never the boot sequence above it.
//!
//! How the machine ends is the platform's: its boot sequence registers an
//! exit hook with [`set_exit_hook`] (Xen: `SCHEDOP_shutdown`). Without a
//! hook — bare metal, or before the platform got that far — the end is
//! QEMU's `isa-debug-exit`, else a reset through the keyboard controller,
//! else a halt.

use crate::arch::{cpu, port};
use crate::{kprintln, status};

static EXIT_HOOK: spin::Once<fn(u32) -> !> = spin::Once::new();
static WHO: spin::Once<&'static str> = spin::Once::new();

/// Names the platform in the shared code's reports (`rumpuser-xen: CPU
/// exception …`); set once, first thing at boot.
pub fn set_who(name: &'static str) {
    WHO.call_once(|| name);
}

/// The platform's name for reports ([`set_who`]; `rumpuser-pvh` before).
pub fn who() -> &'static str {
    WHO.get().copied().unwrap_or("rumpuser-pvh")
}

/// Makes [`exit_status`] end the machine with `f` (set once, at boot).
pub fn set_exit_hook(f: fn(u32) -> !) {
    EXIT_HOOK.call_once(|| f);
}

/// Ends the machine with [`crate::status`] value `v`.
pub fn exit_status(v: u32) -> ! {
    if let Some(f) = EXIT_HOOK.get() {
        f(v)
    }
    debug_exit(v)
}

/// The end without a hook: `isa-debug-exit` with `v`, else a reset
/// through the keyboard controller, else a halt.
pub fn debug_exit(v: u32) -> ! {
    port::isa_debug_exit(v);
    port::reset_8042();
    cpu::halt_forever()
}

/// Prints `msg` and ends the machine with the panic status.
pub fn fatal(msg: &str) -> ! {
    kprintln!("{msg}");
    exit_status(status::PANIC)
}

/// [`fatal`] with a formatted message.
pub fn fatal_fmt(args: core::fmt::Arguments<'_>) -> ! {
    kprintln!("{args}");
    exit_status(status::PANIC)
}

/// Prints the running green thread for a crash report.
pub fn report_thread() {
    match rumpuser_green::sched_core::current_for_report() {
        Some((id, name)) => kprintln!("    thread: {:?} (id {:#x})", name.as_str(), id.as_raw()),
        None if rumpuser_green::sched_core::is_initialized() => {
            kprintln!("    thread: (inside the scheduler)")
        }
        None => kprintln!("    thread: (boot, before the scheduler)"),
    }
}

/// The report and end of a Rust panic, for the platform's
/// `#[panic_handler]`: `*** who: panic: …`, the thread, the panic status.
pub fn panic(who: &str, info: &core::panic::PanicInfo<'_>) -> ! {
    kprintln!("\n*** {who}: panic: {info}");
    report_thread();
    exit_status(status::PANIC)
}
