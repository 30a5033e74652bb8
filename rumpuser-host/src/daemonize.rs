//! `rumpuser_daemonize_begin` / `rumpuser_daemonize_done`: interlocked
//! daemonization (contract 3.17).
//!
//! A server (e.g. `rump_allserver`) calls `begin` before `rump_init`, because
//! forking is only sound while the process has a single thread; the original
//! process then waits, and exits only once the detached child has finished
//! setting up and reported through `done`, so the shell sees the server's
//! real start-up status:
//!
//! * `begin`: a second call gives `EINPROGRESS`. Creates a `socketpair`
//!   (a socket rather than a pipe, so `MSG_NOSIGNAL` avoids `SIGPIPE`) and
//!   forks. The parent blocks reading one `int` and `_exit`s with it (a
//!   short read, i.e. the child died first, exits with `ESRCH`); it never
//!   returns. The child calls `setsid` and returns `Ok`.
//! * `done(error)`: without a `begin` → `ENOENT`. If `error == 0`,
//!   stdin/stdout/stderr are redirected to `/dev/null`; then `error` is sent
//!   to the waiting parent (failure → `EPIPE`). The child does not
//!   `chdir("/")`, like the reference.
//!
//! All values returned or sent are NetBSD errnos (host errnos are
//! translated), so the parent's exit status is a NetBSD errno too.
//!
//! Differences from the reference (`rumpuser_daemonize.c`):
//! * If `setsid` fails, the child reports the error to the parent and
//!   *returns* it (the reference reports it but then returns 0 and runs on
//!   as a normal child; contract 7.18).
//! * If `socketpair` or `fork` fails, the state is reset so `done` answers
//!   `ENOENT` (the reference would `send` on fd 0).
//! * After `done`, the socket is closed and further `done` calls give
//!   `EPIPE` without touching a possibly reused descriptor number; `begin`
//!   keeps answering `EINPROGRESS`.
//! * The socket is close-on-exec, so programs the daemon spawns do not keep
//!   the parent waiting.

use core::ffi::c_int;
use core::sync::atomic::{AtomicI32, Ordering};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};

use rumpuser_core::errno::linux_to_netbsd;
use rustix::fs::{Mode, OFlags};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::sys::proc::Forked;
use crate::sys::{retry, with_fd};

/// NetBSD errno values used here.
const ENOENT: i32 = 2;
const ESRCH: i32 = 3;
const EPIPE: i32 = 32;
const EINPROGRESS: i32 = 36;

/// Daemonization state: one of the negative markers below, or (>= 0) the
/// child's end of the socketpair while daemonizing.
static STATE: AtomicI32 = AtomicI32::new(IDLE);
/// `begin` never called (or it failed before forking).
const IDLE: i32 = -1;
/// `begin` is creating the socketpair and forking.
const STARTING: i32 = -2;
/// The parent has been told (or `setsid` failed); the socket is closed.
const FINISHED: i32 = -3;

/// A host call's error, translated to NetBSD.
fn netbsd(e: rustix::io::Errno) -> i32 {
    linux_to_netbsd(e.raw_os_error())
}

/// Sends `error` on `fd`; `Err(EPIPE)` unless the whole `int` went out.
fn send_error(fd: c_int, error: i32) -> Result<(), i32> {
    let bytes = error.to_ne_bytes();
    // MSG_NOSIGNAL: no SIGPIPE if the parent is gone.
    match retry(|| with_fd(fd, |fd| rustix::net::send(fd, &bytes, SendFlags::NOSIGNAL))) {
        Ok(n) if n == bytes.len() => Ok(()),
        _ => Err(EPIPE),
    }
}

/// Parent side: waits for the child's status and exits with it.
fn parent_wait_and_exit(fd: OwnedFd) -> ! {
    let mut buf = [0u8; 4];
    let mut got = 0usize;
    let error = loop {
        match rustix::net::recv(&fd, &mut buf[got..], RecvFlags::empty()) {
            Ok((n, _)) if n > 0 => {
                got += n;
                if got == buf.len() {
                    break i32::from_ne_bytes(buf);
                }
            }
            Ok(_) => break ESRCH,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => break netbsd(e),
        }
    };
    // The parent must not run atexit handlers or flush stdio buffers it
    // shares with the child.
    crate::sys::proc::exit_now(error)
}

/// `rumpuser_daemonize_begin`: forks; returns only in the child.
///
/// Must be called while the process is single-threaded (before `rump_init`).
/// Errors are NetBSD errnos.
pub fn begin() -> Result<(), i32> {
    if STATE
        .compare_exchange(IDLE, STARTING, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(EINPROGRESS);
    }

    let (parent_end, child_end) = match rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    ) {
        Ok(p) => p,
        Err(e) => {
            STATE.store(IDLE, Ordering::Release);
            return Err(netbsd(e));
        }
    };

    // The contract allows this call only while the process has a single
    // thread (contract 3.17).
    match crate::sys::proc::fork_single_threaded() {
        Err(e) => {
            drop((parent_end, child_end));
            STATE.store(IDLE, Ordering::Release);
            Err(e.raw())
        }
        Ok(Forked::Child) => {
            // The parent's end is unused in the child.
            drop(parent_end);
            if let Err(e) = rustix::process::setsid() {
                let e = netbsd(e);
                let _ = send_error(child_end.as_raw_fd(), e);
                drop(child_end);
                STATE.store(FINISHED, Ordering::Release);
                return Err(e);
            }
            STATE.store(child_end.into_raw_fd(), Ordering::Release);
            Ok(())
        }
        Ok(Forked::Parent) => {
            // The child's end is unused in the parent.
            drop(child_end);
            parent_wait_and_exit(parent_end)
        }
    }
}

/// `rumpuser_daemonize_done(error)`: reports `error` (a NetBSD errno, 0 for
/// success) to the waiting parent, first detaching stdio if `error == 0`.
///
/// `Err(ENOENT)` without a successful `begin`; `Err(EPIPE)` if the status
/// could not be delivered or was already delivered.
pub fn done(error: i32) -> Result<(), i32> {
    let fd = STATE.load(Ordering::Acquire);
    if fd == FINISHED {
        return Err(EPIPE);
    }
    if fd < 0 {
        return Err(ENOENT);
    }
    if STATE
        .compare_exchange(fd, FINISHED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        // Another thread finished concurrently.
        return Err(EPIPE);
    }

    let mut error = error;
    if error == 0 {
        match rustix::fs::open(c"/dev/null", OFlags::RDWR, Mode::empty()) {
            Err(e) => error = netbsd(e),
            Ok(null) => {
                crate::sys::proc::dup_onto_stdio(null.as_raw_fd());
                if null.as_raw_fd() <= libc::STDERR_FILENO {
                    // It is one of them now: keep it open.
                    let _ = null.into_raw_fd();
                }
            }
        }
    }

    let sent = send_error(fd, error);
    // The descriptor was ours and is no longer reachable via STATE.
    let _ = crate::sys::fs::close(fd);
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::path::{Path, PathBuf};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    const MODE_ENV: &str = "RUMPUSER_DAEMONIZE_TEST_MODE";
    const FILE_ENV: &str = "RUMPUSER_DAEMONIZE_TEST_FILE";

    /// The full test path of `helper`, as libtest names it.
    fn helper_name() -> String {
        let m = module_path!();
        let m = m.split_once("::").map_or(m, |(_, rest)| rest);
        format!("{m}::helper")
    }

    /// Runs `helper` in a fresh copy of the test binary; returns its exit
    /// code and the report the detached child wrote.
    fn run_helper(mode: &str) -> (Option<i32>, String) {
        let file: PathBuf =
            std::env::temp_dir().join(format!("rumpuser-daemonize-{}-{mode}", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut cmd = crate::testing::current_exe_command();
        let mut child = cmd
            .args([
                helper_name().as_str(),
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .args(["--test-threads=1"])
            .env(MODE_ENV, mode)
            .env(FILE_ENV, &file)
            // Pipes, not /dev/null, so the test can see `done(0)` detach.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("helper ({mode}) hung");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let report = wait_for_report(&file);
        let _ = std::fs::remove_file(&file);
        (status.code(), report)
    }

    /// Waits until the detached child has written its complete report.
    fn wait_for_report(file: &Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(s) = std::fs::read_to_string(file) {
                if s.ends_with("end\n") {
                    return s;
                }
            }
            if Instant::now() > deadline {
                return std::fs::read_to_string(file).unwrap_or_default();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Appends `line` to the report with raw calls (runs in a forked child
    /// of a multi-threaded process: no locks, no allocation).
    fn report(path: &CString, line: &[u8]) {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::APPEND;
        if let Ok(fd) = rustix::fs::open(path.as_c_str(), flags, Mode::from_raw_mode(0o644)) {
            let _ = rustix::io::write(&fd, line);
        }
    }

    fn errno_line(buf: &mut [u8; 32], tag: &[u8], r: Result<(), i32>) -> usize {
        let v = match r {
            Ok(()) => 0,
            Err(e) => e,
        };
        let mut n = 0;
        for &b in tag {
            buf[n] = b;
            n += 1;
        }
        buf[n] = b'=';
        n += 1;
        let digits = [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
        buf[n..n + 2].copy_from_slice(&digits);
        n += 2;
        buf[n] = b'\n';
        n + 1
    }

    /// Is `fd` the null device?
    fn is_devnull(fd: c_int) -> bool {
        match (
            with_fd(fd, |fd| rustix::fs::fstat(fd)),
            rustix::fs::stat(c"/dev/null"),
        ) {
            (Ok(a), Ok(b)) => a.st_rdev == b.st_rdev && (a.st_mode & libc::S_IFMT) == libc::S_IFCHR,
            _ => false,
        }
    }

    /// The subprocess side; does nothing unless spawned by `run_helper`.
    #[test]
    #[ignore = "helper, run in a subprocess by the daemonize tests"]
    fn helper() {
        let (Ok(mode), Ok(file)) = (std::env::var(MODE_ENV), std::env::var(FILE_ENV)) else {
            return;
        };
        let path = CString::new(file).unwrap();
        let mut buf = [0u8; 32];

        let n = errno_line(&mut buf, b"done_before", done(0));
        report(&path, &buf[..n]);

        let r = begin();
        // From here on we are the detached child (the parent never returns).
        let n = errno_line(&mut buf, b"begin", r);
        report(&path, &buf[..n]);
        let n = errno_line(&mut buf, b"begin2", begin());
        report(&path, &buf[..n]);
        let leader = rustix::process::getsid(None).ok() == Some(rustix::process::getpid());
        report(&path, if leader { b"sid=1\n" } else { b"sid=0\n" });

        match mode.as_str() {
            "die" => {}
            code => {
                let code: i32 = code.parse().unwrap_or(99);
                let n = errno_line(&mut buf, b"done", done(code));
                report(&path, &buf[..n]);
                let null = is_devnull(0) && is_devnull(1) && is_devnull(2);
                report(&path, if null { b"null=1\n" } else { b"null=0\n" });
                let n = errno_line(&mut buf, b"done2", done(0));
                report(&path, &buf[..n]);
            }
        }
        report(&path, b"end\n");
        // Leave the forked child without running the test harness (its
        // other threads do not exist here).
        crate::sys::proc::exit_now(0)
    }

    #[test]
    fn done_without_begin_is_enoent() {
        // No test in this process ever calls `begin`.
        assert_eq!(done(0), Err(ENOENT));
        assert_eq!(done(5), Err(ENOENT));
    }

    #[test]
    fn parent_exits_with_reported_error() {
        let (code, report) = run_helper("7");
        assert_eq!(code, Some(7), "report: {report}");
        assert_eq!(
            report,
            "done_before=02\nbegin=00\nbegin2=36\nsid=1\ndone=00\nnull=0\ndone2=32\nend\n"
        );
    }

    #[test]
    fn success_detaches_stdio() {
        let (code, report) = run_helper("0");
        assert_eq!(code, Some(0), "report: {report}");
        assert_eq!(
            report,
            "done_before=02\nbegin=00\nbegin2=36\nsid=1\ndone=00\nnull=1\ndone2=32\nend\n"
        );
    }

    #[test]
    fn child_death_gives_esrch() {
        let (code, report) = run_helper("die");
        assert_eq!(code, Some(ESRCH), "report: {report}");
        assert_eq!(report, "done_before=02\nbegin=00\nbegin2=36\nsid=1\nend\n");
    }
}
