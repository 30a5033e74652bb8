//! Parameters (rumpuser.c `rumpuser_getparam`): `_RUMPUSER_NCPU` from
//! `RUMP_NCPU` (default 2 as in the reference, `host` = online host CPUs),
//! `_RUMPUSER_HOSTNAME` as `rump-<pid>.<hostname>`, and every other name
//! looked up in the environment.

use core::fmt::Write;
use rumpuser_core::param::ParamWriter;
use rumpuser_core::{Errno, HyperResult};

/// The reference's default when `RUMP_NCPU` is unset.
pub const DEFAULT_NCPU: u32 = 2;

/// Parses a `RUMP_NCPU` value; `None` for garbage (the caller then uses the default).
pub fn parse_ncpu(v: &str, host_cpus: u32) -> Option<u32> {
    let v = v.trim();
    if v == "host" {
        return Some(host_cpus.max(1));
    }
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Some(n.min(rumpuser_core::abi::MAXCPUS)),
        _ => None,
    }
}

fn host_cpus() -> u32 {
    crate::sys::proc::online_cpus()
}

/// Whether the environment switch `name` is set to a value starting with
/// `0` (`RUMP_THREADS=0`, `RUMPUSER_GREEN_EXCURSIONS=0`, …): the knobs
/// that turn a default behaviour off.
pub fn switched_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.starts_with('0'))
}

/// Number of virtual CPUs to report.
pub fn ncpu() -> u32 {
    match std::env::var("RUMP_NCPU") {
        Ok(v) => parse_ncpu(&v, host_cpus()).unwrap_or_else(|| {
            rumpuser_core::diag::log(format_args!(
                "RUMP_NCPU={v:?} is not a number or \"host\"; using {DEFAULT_NCPU}"
            ));
            DEFAULT_NCPU
        }),
        Err(_) => DEFAULT_NCPU,
    }
}

/// `rump-<pid 5 digits>.<host name>`, or `rump-<pid>` without a host name.
pub fn hostname(out: &mut ParamWriter<'_>) -> HyperResult<()> {
    let pid = std::process::id();
    // gethostname(2) is the `uname` node name.
    let uts = rustix::system::uname();
    let host = core::str::from_utf8(uts.nodename().to_bytes())
        .ok()
        .filter(|s| !s.is_empty());
    let _ = match host {
        Some(h) => write!(out, "rump-{pid:05}.{h}"),
        None => write!(out, "rump-{pid:05}"),
    };
    Ok(())
}

/// Any other parameter: the host environment variable of the same name.
pub fn env(name: &str, out: &mut ParamWriter<'_>) -> HyperResult<()> {
    match std::env::var_os(name) {
        Some(v) => {
            out.push(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()));
            Ok(())
        }
        None => Err(Errno::ENOENT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ncpu_parsing() {
        assert_eq!(parse_ncpu("4", 8), Some(4));
        assert_eq!(parse_ncpu("host", 8), Some(8));
        assert_eq!(parse_ncpu("0", 8), None);
        assert_eq!(parse_ncpu("-1", 8), None);
        assert_eq!(parse_ncpu("x", 8), None);
        assert_eq!(parse_ncpu("100000", 8), Some(256));
    }
}
