//! Server URLs (`parseurl` of sp_common.c, plus IPv6).
//!
//! * `unix://PATH` — a local socket. Relative paths are returned as given;
//!   the host makes them absolute against its working directory (so the
//!   file can be removed at `sp_fini` even after a `chdir`).
//! * `tcp://A.B.C.D:PORT[/anything]` — IPv4; a server may use `*` or `0`
//!   for any address.
//! * `tcp://[V6]:PORT[/anything]` and `tcp6://[V6]:PORT[/anything]` — IPv6
//!   (the reference recognizes `tcp6` but answers `EOPNOTSUPP`); a server
//!   may use `[::]` or `[*]` for any address.
//!
//! The port is decimal (at least one digit, below 65536, else `ERANGE`);
//! after it only `/` or the end of the string may follow. The scheme is at
//! most 15 characters. Errors are NetBSD errnos (`EINVAL` unless noted).

use crate::errno::Errno;
use alloc::string::{String, ToString};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest `sun_path` a unix socket address can hold, NUL included.
pub const SUN_PATH_MAX: usize = 108;

/// A parsed server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpUrl {
    /// A local socket at this path (possibly relative).
    Unix(String),
    /// A TCP endpoint.
    Tcp(SocketAddr),
}

/// Parses `url`. `server` allows wildcard addresses.
pub fn parse(url: &str, server: bool) -> Result<SpUrl, Errno> {
    let Some((scheme, addr)) = url.split_once("://") else {
        return Err(Errno::EINVAL);
    };
    if scheme.len() > 15 {
        return Err(Errno::EINVAL);
    }
    match scheme {
        "unix" => parse_unix(addr),
        "tcp" => parse_tcp(addr, server, true),
        "tcp6" => parse_tcp(addr, server, false),
        _ => Err(Errno::EINVAL),
    }
}

fn parse_unix(path: &str) -> Result<SpUrl, Errno> {
    if path.is_empty() || path.as_bytes().contains(&0) {
        return Err(Errno::EINVAL);
    }
    if path.len() >= SUN_PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(SpUrl::Unix(path.to_string()))
}

fn parse_tcp(addr: &str, server: bool, v4_ok: bool) -> Result<SpUrl, Errno> {
    let (ip, rest): (IpAddr, &str) = if let Some(r) = addr.strip_prefix('[') {
        let (host, rest) = r.split_once(']').ok_or(Errno::EINVAL)?;
        let ip = if host == "*" {
            Ipv6Addr::UNSPECIFIED
        } else {
            host.parse::<Ipv6Addr>().map_err(|_| Errno::EINVAL)?
        };
        (IpAddr::V6(ip), rest.strip_prefix(':').ok_or(Errno::EINVAL)?)
    } else {
        if !v4_ok {
            return Err(Errno::EINVAL);
        }
        let (host, rest) = addr.split_once(':').ok_or(Errno::EINVAL)?;
        if host.len() > 63 {
            return Err(Errno::EINVAL);
        }
        let ip = if host == "*" || host == "0" {
            Ipv4Addr::UNSPECIFIED
        } else {
            host.parse::<Ipv4Addr>().map_err(|_| Errno::EINVAL)?
        };
        (IpAddr::V4(ip), rest)
    };
    if ip.is_unspecified() && !server {
        return Err(Errno::EINVAL);
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(Errno::EINVAL);
    }
    let (port, tail) = rest.split_at(digits);
    if !(tail.is_empty() || tail.starts_with('/')) {
        return Err(Errno::EINVAL);
    }
    // Leading zeros are fine; the value must fit a port.
    let mut v: u32 = 0;
    for b in port.bytes() {
        v = v.saturating_mul(10).saturating_add(u32::from(b - b'0'));
    }
    let port = u16::try_from(v).map_err(|_| Errno::ERANGE)?;
    Ok(SpUrl::Tcp(SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn tcp(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn good() {
        assert_eq!(parse("unix://sock", true), Ok(SpUrl::Unix("sock".into())));
        assert_eq!(
            parse("unix:///tmp/s", false),
            Ok(SpUrl::Unix("/tmp/s".into()))
        );
        assert_eq!(
            parse("tcp://127.0.0.1:1234", false),
            Ok(SpUrl::Tcp(tcp("127.0.0.1:1234")))
        );
        assert_eq!(
            parse("tcp://*:80/x", true),
            Ok(SpUrl::Tcp(tcp("0.0.0.0:80")))
        );
        assert_eq!(parse("tcp://0:0", true), Ok(SpUrl::Tcp(tcp("0.0.0.0:0"))));
        assert_eq!(
            parse("tcp://[::1]:65535", false),
            Ok(SpUrl::Tcp(tcp("[::1]:65535")))
        );
        assert_eq!(parse("tcp6://[::]:7/", true), Ok(SpUrl::Tcp(tcp("[::]:7"))));
        assert_eq!(parse("tcp://[*]:7", true), Ok(SpUrl::Tcp(tcp("[::]:7"))));
        assert_eq!(
            parse("tcp://1.2.3.4:0080", false),
            Ok(SpUrl::Tcp(tcp("1.2.3.4:80")))
        );
    }

    #[test]
    fn bad() {
        for u in [
            "",
            "unix:/x",
            "unix://",
            "foo://x",
            "abcdefghijklmnop://x",
            "tcp://1.2.3.4",
            "tcp://1.2.3.4:",
            "tcp://1.2.3.4:x",
            "tcp://1.2.3.4:1x",
            "tcp://1.2.3:1",
            "tcp://host:1",
            "tcp://[::1:1",
            "tcp://[::1]1",
            "tcp://[zz]:1",
            "tcp6://1.2.3.4:1",
            "tcp://0:1",
            "tcp://[::]:1",
        ] {
            assert_eq!(parse(u, false), Err(Errno::EINVAL), "{u}");
        }
        assert_eq!(parse("tcp://1.2.3.4:65536", true), Err(Errno::ERANGE));
        assert_eq!(
            parse("tcp://1.2.3.4:99999999999999999999", true),
            Err(Errno::ERANGE)
        );
        let long = format!("unix://{}", "a".repeat(SUN_PATH_MAX));
        assert_eq!(parse(&long, true), Err(Errno::ENAMETOOLONG));
    }
}
