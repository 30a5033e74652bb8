//! Running a bare-metal image under QEMU and collecting its serial output.
//!
//! The guest's console is `-serial stdio`; its exit status comes from the
//! `isa-debug-exit` device (`rumpuser_baremetal::status`: guest value `v`
//! becomes QEMU status `2v + 1`). QEMU runs with TCG (fast to start here;
//! KVM adds seconds of firmware time), is killed when the timeout passes
//! or when the [`Qemu`] guard is dropped (so a failing test never leaves a
//! VM behind), and every line it prints is echoed as it arrives.

use crate::util::Result;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// What the guest's exit status means (mirror of `rumpuser_baremetal::status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `main` returned / `rumpuser_exit` with this value.
    Exited(u32),
    /// An exit value the device cannot carry.
    OutOfRange,
    /// A CPU exception (report on the console).
    Exception,
    /// A panic or `rumpuser_exit(RUMPUSER_PANIC)`.
    Panic,
    /// No status from the guest (reset, killed, timeout): the raw status.
    NoStatus(Option<i32>),
}

fn decode(code: Option<i32>) -> Outcome {
    match code {
        Some(c) if c > 0 && c & 1 == 1 && c <= 255 => match c >> 1 {
            125 => Outcome::OutOfRange,
            126 => Outcome::Exception,
            127 => Outcome::Panic,
            v => Outcome::Exited(v as u32),
        },
        other => Outcome::NoStatus(other),
    }
}

/// One finished run.
pub struct Run {
    /// Decoded exit status.
    pub outcome: Outcome,
    /// Serial output, `\r` removed.
    pub output: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
    /// Whether the run hit the timeout and was killed.
    pub timed_out: bool,
}

/// Kills QEMU when dropped.
struct Qemu(Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// The common machine: q35, TCG, `-cpu max` (RDRAND), no display, no
/// reboot, serial on stdio, the debug-exit device.
pub fn base_args(cpu: &str, mem: &str) -> Vec<String> {
    [
        "-M",
        "q35",
        "-accel",
        "tcg",
        "-cpu",
        cpu,
        "-m",
        mem,
        "-display",
        "none",
        "-no-reboot",
        "-nodefaults",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Boots `image` with `args` (after [`base_args`]) and the kernel command
/// line `append`; echoes output lines prefixed with `label`.
pub fn run(
    image: &Path,
    args: &[String],
    append: &str,
    label: &str,
    timeout: Duration,
) -> Result<Run> {
    let mut cmd = Command::new(QEMU);
    cmd.args(args)
        .arg("-kernel")
        .arg(image)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!(
        "+ {QEMU} {} -kernel {} -append {append:?}",
        args.join(" "),
        image.display()
    );
    let start = Instant::now();
    let mut child = Qemu(
        cmd.spawn()
            .map_err(|e| format!("cannot start {QEMU}: {e}"))?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout")?;
    let mut stderr = child.0.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = mpsc::channel::<String>();
    let label = label.to_string();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            eprintln!("[{label}] {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut timed_out = false;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if start.elapsed() > timeout => {
                timed_out = true;
                let _ = child.0.kill();
                break child.0.wait().ok();
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {QEMU}: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let _ = reader.join();
    let qemu_err = err_reader.join().unwrap_or_default();
    let output: Vec<String> = rx.try_iter().collect();
    if !qemu_err.trim().is_empty() {
        eprintln!("[qemu] stderr: {}", qemu_err.trim());
    }
    Ok(Run {
        outcome: decode(status.and_then(|s| s.code())),
        output: output.join("\n"),
        elapsed,
        timed_out,
    })
}

/// Whether QEMU is installed.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(QEMU).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(decode(Some(1)), Outcome::Exited(0));
        assert_eq!(decode(Some(3)), Outcome::Exited(1));
        assert_eq!(decode(Some(251)), Outcome::OutOfRange);
        assert_eq!(decode(Some(253)), Outcome::Exception);
        assert_eq!(decode(Some(255)), Outcome::Panic);
        assert_eq!(decode(Some(0)), Outcome::NoStatus(Some(0)));
        assert_eq!(decode(None), Outcome::NoStatus(None));
    }
}
