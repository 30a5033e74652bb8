//! The PVH command line (`qemu -append "..."`): parameters and `argv`.
//!
//! Syntax: whitespace-separated words. Words before a lone `--` of the form
//! `NAME=VALUE` are parameters; `rumpuser_getparam(NAME)` returns `VALUE`
//! (the last one wins). Every word after `--` is an argument of the
//! application's `main` (`argv[0]` is the platform's name, e.g. `"rumpuser-baremetal"`). There
//! is no quoting: values cannot contain spaces.
//!
//! Names the platform itself reads:
//!
//! | name | effect |
//! |---|---|
//! | `hostname` or `RUMP_HOSTNAME` | `_RUMPUSER_HOSTNAME` (default `rump-baremetal`) |
//! | `RUMP_NCPU` | ignored: bare metal always reports one CPU (a warning is printed if it is not `1`) |
//! | `RUMP_MEMLIMIT` | passed through; default half of the heap, as rumprun |
//! | `RUMPUSER_STACK` | kernel thread stack size in bytes (default 256 KiB, minimum 16 KiB) |
//! | `RUMPUSER_VERBOSE=1` | disk discovery on the console |
//! | `RUMPUSER_TIMER=oneshot` | use the LAPIC count-down timer even if the CPU has TSC-deadline mode |
//!
//! Everything else (`RUMP_VERBOSE`, `RUMP_THREADS`, `RUMP_BLKSECTSHIFT`,
//! test filters, …) is just a parameter.

/// The parameter `name` on `cmdline`, if set.
pub fn param<'a>(cmdline: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for w in params_part(cmdline) {
        if let Some((n, v)) = w.split_once('=') {
            if n == name {
                found = Some(v);
            }
        }
    }
    found
}

/// The words before `--`.
fn params_part(cmdline: &str) -> impl Iterator<Item = &str> {
    cmdline.split_ascii_whitespace().take_while(|w| *w != "--")
}

/// The application arguments: the words after `--`.
pub fn args(cmdline: &str) -> impl Iterator<Item = &str> {
    cmdline
        .split_ascii_whitespace()
        .skip_while(|w| *w != "--")
        .skip(1)
}

/// A parameter parsed as a number (decimal, or hex with `0x`; `k`/`m`/`g`
/// suffixes multiply by 1024, 1024², 1024³).
pub fn param_u64(cmdline: &str, name: &str) -> Option<u64> {
    parse_size(param(cmdline, name)?)
}

/// Parses `123`, `0x7b`, `64k`, `2M`, `1g`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v = match num.strip_prefix("0x").or_else(|| num.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => num.parse().ok()?,
    };
    v.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn params_and_args() {
        let c = "RUMP_VERBOSE=1 hostname=box x=1 x=2 noequals -- -v file=notaparam";
        assert_eq!(param(c, "RUMP_VERBOSE"), Some("1"));
        assert_eq!(param(c, "hostname"), Some("box"));
        assert_eq!(param(c, "x"), Some("2"));
        assert_eq!(param(c, "noequals"), None);
        assert_eq!(param(c, "file"), None);
        assert_eq!(args(c).collect::<Vec<_>>(), ["-v", "file=notaparam"]);
        assert_eq!(args("a=b").count(), 0);
        assert_eq!(param("", "x"), None);
        assert_eq!(param("EMPTY=", "EMPTY"), Some(""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("0x10"), Some(16));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(
            param_u64("RUMPUSER_STACK=32k", "RUMPUSER_STACK"),
            Some(32768)
        );
    }
}
