//! Process-wide host calls: the clocks, C stdio, signals, `fork` for
//! daemonizing, `pthread_atfork`, the timer slack, the CPU count.

use core::ffi::c_int;
use rumpuser_core::Errno;

use super::last_error;

/// `clock_gettime` of `clock` (vDSO, no system call).
#[inline]
pub fn clock_gettime(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out-pointer to a local.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

/// Asks for 1 ns timer slack on the calling thread.
pub fn set_tight_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects only the caller.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
}

/// One byte on C stdio's stdout.
pub fn putchar(c: u8) {
    // SAFETY: C stdio `putchar` is thread-safe and takes any int.
    unsafe { libc::putchar(c as c_int) };
}

/// Flushes every C stdio output stream (`fflush(NULL)`).
pub fn flush_stdio() {
    // SAFETY: fflush(NULL) takes no pointer of ours.
    unsafe { libc::fflush(core::ptr::null_mut()) };
}

/// Raises host signal `sig` in the calling process.
pub fn raise(sig: c_int) -> Result<(), Errno> {
    // SAFETY: raise takes a plain number; a bad one fails with EINVAL.
    if unsafe { libc::raise(sig) } != 0 {
        return Err(last_error());
    }
    Ok(())
}

/// Host CPUs online (`sysconf(_SC_NPROCESSORS_ONLN)`; not the affinity
/// mask), at least 1.
pub fn online_cpus() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as u32
    }
}

/// Runs `child` in the child after every `fork` (`pthread_atfork`).
pub fn after_fork_in_child(child: extern "C" fn()) {
    // SAFETY: registers a plain function; `child` is safe to call (a
    // Rust `extern "C" fn`), and the C library calls it in the child.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

/// Runs `f` when the process exits through `exit(3)` (`atexit`).
pub fn at_exit(f: extern "C" fn()) {
    // SAFETY: registers a plain function; `f` is safe to call (a Rust
    // `extern "C" fn`).
    unsafe { libc::atexit(f) };
}

/// Which side of a `fork` returned.
pub enum Forked {
    /// The original process.
    Parent,
    /// The new one.
    Child,
}

/// `fork`, for `rumpuser_daemonize_begin`, its only caller, which the
/// contract allows only while the process has a single thread (contract
/// 3.17: before `rump_init`).
pub(crate) fn fork_single_threaded() -> Result<Forked, Errno> {
    // SAFETY: the process has one thread (above), so the child has every
    // lock and allocation in the state the parent had; the child only
    // makes plain system calls before it returns to the application.
    match unsafe { libc::fork() } {
        -1 => Err(last_error()),
        0 => Ok(Forked::Child),
        _ => Ok(Forked::Parent),
    }
}

/// Ends the process at once with `code`: no `atexit` handlers, no stdio
/// flush (`_exit`), as a forked parent that shares both with its child must.
pub fn exit_now(code: c_int) -> ! {
    // SAFETY: _exit takes a plain number and never returns.
    unsafe { libc::_exit(code) }
}

/// Points descriptors 0, 1 and 2 at `fd` (`dup2`); errors ignored.
pub fn dup_onto_stdio(fd: c_int) {
    for std in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 takes plain numbers; the standard descriptors are
        // the process's to replace.
        unsafe { libc::dup2(fd, std) };
    }
}
