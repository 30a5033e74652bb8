//! The sysproxy wire format (contract 4.3 and 4.4): the 24-byte frame
//! header, the message classes, types, handshake kinds and error codes, and
//! encoders/decoders for every body.
//!
//! Everything is in host byte order and native layout, exactly like
//! NetBSD's `sp_common.c`: client and server must share endianness and the
//! sizes of `size_t`, pointers and `long`. There is no negotiation.
//!
//! Encoders append to a `Vec<u8>`, so that a connection's outbound buffer
//! can receive a frame without an intermediate copy. Server-side and
//! client-side encoders are both here: the server uses the former, the
//! project's own test client and the fuzz corpus the latter.

use alloc::vec::Vec;
use core::ffi::{c_int, c_long};
use core::mem::size_of;

/// Size of the frame header; `len` counts it.
pub const HDRSZ: usize = 24;
/// Protocol version announced in the banner: major.
pub const PROTO_MAJOR: u32 = 0;
/// Protocol version announced in the banner: minor.
pub const PROTO_MINOR: u32 = 4;
/// The banner is at most this many bytes, the final `\n` included (the
/// client reads it with one `read` of 95 bytes).
pub const MAX_BANNER: usize = 95;
/// Length of the prefork authentication cookie (4 × `u32`).
pub const AUTH_LEN: usize = 16;
/// Body of a `HANDSHAKE`/`FORK` request: `struct { u32 auth[4]; int cancel; }`.
pub const FORK_BODY_LEN: usize = AUTH_LEN + size_of::<c_int>();
/// Body of a copyin/copyout request header: `struct { size_t len; void *addr; }`.
pub const COPY_REQ_LEN: usize = 2 * size_of::<usize>();
/// Body of an `ANONMMAP` response: one pointer.
pub const ANONMMAP_RESP_LEN: usize = size_of::<usize>();

/// `rsp_class`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A request; the peer may answer with `Resp` or `Error`.
    Req = 0,
    /// A response, matched to a request by `reqno`.
    Resp = 1,
    /// An error response; the code is in the header's union.
    Error = 2,
}

impl Class {
    /// Parses the raw field.
    pub const fn from_raw(v: u16) -> Option<Class> {
        match v {
            0 => Some(Class::Req),
            1 => Some(Class::Resp),
            2 => Some(Class::Error),
            _ => None,
        }
    }
}

/// `rsp_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    /// Client identification (guest, fork, exec).
    Handshake = 0,
    /// A system call; `sysnum` in the header union.
    Syscall = 1,
    /// Server asks for client memory.
    Copyin = 2,
    /// Server asks for a client string.
    Copyinstr = 3,
    /// Server writes client memory (no response).
    Copyout = 4,
    /// Server writes a client string (no response).
    Copyoutstr = 5,
    /// Server asks the client to map anonymous memory.
    Anonmmap = 6,
    /// Client asks for a fork cookie.
    Prefork = 7,
    /// Server asks the client to raise a signal (no response).
    Raise = 8,
}

impl MsgType {
    /// Parses the raw field.
    pub const fn from_raw(v: u16) -> Option<MsgType> {
        Some(match v {
            0 => MsgType::Handshake,
            1 => MsgType::Syscall,
            2 => MsgType::Copyin,
            3 => MsgType::Copyinstr,
            4 => MsgType::Copyout,
            5 => MsgType::Copyoutstr,
            6 => MsgType::Anonmmap,
            7 => MsgType::Prefork,
            8 => MsgType::Raise,
            _ => return None,
        })
    }
}

/// Handshake kind (header union of a `REQ`/`HANDSHAKE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeKind {
    /// A new client: a fresh process forked off process 1.
    Guest = 0,
    /// Authentication (never supported).
    Auth = 1,
    /// The child of a host `fork`, presenting a prefork cookie.
    Fork = 2,
    /// The same client after a host `execve`, on its inherited connection.
    Exec = 3,
}

impl HandshakeKind {
    /// Parses the raw field.
    pub const fn from_raw(v: u32) -> Option<HandshakeKind> {
        match v {
            0 => Some(HandshakeKind::Guest),
            1 => Some(HandshakeKind::Auth),
            2 => Some(HandshakeKind::Fork),
            3 => Some(HandshakeKind::Exec),
            _ => None,
        }
    }
}

/// Error codes carried by `ERROR` frames (the client maps them to host
/// errnos: 0, `EAGAIN`, `EPERM`, `ESRCH`, `EIO`, `EBUSY`, `ENOMEM`, `EINVAL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// No error.
    None = 0,
    /// Server resource shortage; the client retries.
    TryAgain = 1,
    /// Not allowed (wrong handshake).
    Auth = 2,
    /// Unknown prefork cookie.
    InvalidPrefork = 3,
    /// The kernel could not fork.
    RforkFailed = 4,
    /// The client is in the middle of an exec.
    InExec = 5,
    /// Server out of memory (or prefork limit reached).
    NoMem = 6,
    /// The request makes no sense.
    MalformedRequest = 7,
}

impl ErrorCode {
    /// Parses the raw field.
    pub const fn from_raw(v: u32) -> Option<ErrorCode> {
        Some(match v {
            0 => ErrorCode::None,
            1 => ErrorCode::TryAgain,
            2 => ErrorCode::Auth,
            3 => ErrorCode::InvalidPrefork,
            4 => ErrorCode::RforkFailed,
            5 => ErrorCode::InExec,
            6 => ErrorCode::NoMem,
            7 => ErrorCode::MalformedRequest,
            _ => return None,
        })
    }
}

/// The 24-byte frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Total frame length, header included.
    pub len: u64,
    /// Request number; a response echoes its request's.
    pub reqno: u64,
    /// Raw class ([`Class::from_raw`]).
    pub class: u16,
    /// Raw type ([`MsgType::from_raw`]).
    pub typ: u16,
    /// The union: `sysnum`, `error`, `handshake` or `signo`.
    pub arg: u32,
}

impl Header {
    /// Decodes a header (host byte order).
    pub fn decode(b: &[u8; HDRSZ]) -> Header {
        let u64_at = |o: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[o..o + 8]);
            u64::from_ne_bytes(x)
        };
        Header {
            len: u64_at(0),
            reqno: u64_at(8),
            class: u16::from_ne_bytes([b[16], b[17]]),
            typ: u16::from_ne_bytes([b[18], b[19]]),
            arg: u32::from_ne_bytes([b[20], b[21], b[22], b[23]]),
        }
    }

    /// Encodes the header (host byte order).
    pub fn encode(&self) -> [u8; HDRSZ] {
        let mut b = [0u8; HDRSZ];
        b[0..8].copy_from_slice(&self.len.to_ne_bytes());
        b[8..16].copy_from_slice(&self.reqno.to_ne_bytes());
        b[16..18].copy_from_slice(&self.class.to_ne_bytes());
        b[18..20].copy_from_slice(&self.typ.to_ne_bytes());
        b[20..24].copy_from_slice(&self.arg.to_ne_bytes());
        b
    }

    /// Body length (`len - HDRSZ`), or `None` if `len` is impossible.
    pub fn body_len(&self) -> Option<usize> {
        let l = usize::try_from(self.len).ok()?;
        l.checked_sub(HDRSZ)
    }

    /// The class, if known.
    pub fn class(&self) -> Option<Class> {
        Class::from_raw(self.class)
    }

    /// The type, if known.
    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_raw(self.typ)
    }
}

/// Appends a header for a body of `body_len` bytes.
pub fn put_header(
    out: &mut Vec<u8>,
    reqno: u64,
    class: Class,
    typ: u16,
    arg: u32,
    body_len: usize,
) {
    let h = Header {
        len: (HDRSZ + body_len) as u64,
        reqno,
        class: class as u16,
        typ,
        arg,
    };
    out.extend_from_slice(&h.encode());
}

fn put_usize(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn usize_at(b: &[u8], off: usize) -> Option<usize> {
    let s = b.get(off..off + size_of::<usize>())?;
    let mut x = [0u8; size_of::<usize>()];
    x.copy_from_slice(s);
    Some(usize::from_ne_bytes(x))
}

/// The `RESP`/`SYSCALL` body: `struct { int error; long retval[2]; }` with
/// native alignment (24 bytes on LP64).
#[repr(C)]
struct SysResp {
    error: c_int,
    retval: [c_long; 2],
}

/// Length of a `RESP`/`SYSCALL` body.
pub const SYSCALL_RESP_LEN: usize = size_of::<SysResp>();
const SYSRESP_RETVAL_OFF: usize = core::mem::offset_of!(SysResp, retval);

// ---- server → client ----------------------------------------------------------

/// `RESP`/`HANDSHAKE` with `int error`.
pub fn put_handshake_resp(out: &mut Vec<u8>, reqno: u64, error: c_int) {
    put_header(
        out,
        reqno,
        Class::Resp,
        MsgType::Handshake as u16,
        0,
        size_of::<c_int>(),
    );
    out.extend_from_slice(&error.to_ne_bytes());
}

/// `RESP`/`SYSCALL` with a NetBSD errno and the two return values.
pub fn put_syscall_resp(out: &mut Vec<u8>, reqno: u64, error: c_int, retval: [c_long; 2]) {
    put_header(
        out,
        reqno,
        Class::Resp,
        MsgType::Syscall as u16,
        0,
        SYSCALL_RESP_LEN,
    );
    let start = out.len();
    out.resize(start + SYSCALL_RESP_LEN, 0);
    let b = &mut out[start..];
    b[..size_of::<c_int>()].copy_from_slice(&error.to_ne_bytes());
    let w = size_of::<c_long>();
    for (i, r) in retval.iter().enumerate() {
        let o = SYSRESP_RETVAL_OFF + i * w;
        b[o..o + w].copy_from_slice(&r.to_ne_bytes());
    }
}

/// `RESP`/`PREFORK` with the cookie.
pub fn put_prefork_resp(out: &mut Vec<u8>, reqno: u64, auth: &[u8; AUTH_LEN]) {
    put_header(
        out,
        reqno,
        Class::Resp,
        MsgType::Prefork as u16,
        0,
        AUTH_LEN,
    );
    out.extend_from_slice(auth);
}

/// `ERROR` frame (type 0) with `code` in the union.
pub fn put_error(out: &mut Vec<u8>, reqno: u64, code: ErrorCode) {
    put_header(out, reqno, Class::Error, 0, code as u32, 0);
}

/// `REQ`/`COPYIN` or `COPYINSTR`: `len` bytes at client address `addr`.
pub fn put_copyin_req(out: &mut Vec<u8>, reqno: u64, string: bool, addr: usize, len: usize) {
    let t = if string {
        MsgType::Copyinstr
    } else {
        MsgType::Copyin
    };
    put_header(out, reqno, Class::Req, t as u16, 0, COPY_REQ_LEN);
    put_usize(out, len);
    put_usize(out, addr);
}

/// `REQ`/`COPYOUT` (used for strings too): `data` to client address `addr`.
/// No response follows.
pub fn put_copyout_req(out: &mut Vec<u8>, reqno: u64, addr: usize, data: &[u8]) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Copyout as u16,
        0,
        COPY_REQ_LEN + data.len(),
    );
    put_usize(out, data.len());
    put_usize(out, addr);
    out.extend_from_slice(data);
}

/// `REQ`/`ANONMMAP` of `len` bytes.
pub fn put_anonmmap_req(out: &mut Vec<u8>, reqno: u64, len: usize) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Anonmmap as u16,
        0,
        size_of::<usize>(),
    );
    put_usize(out, len);
}

/// `REQ`/`RAISE` of NetBSD signal `signo`. No response follows.
pub fn put_raise_req(out: &mut Vec<u8>, reqno: u64, signo: c_int) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Raise as u16,
        signo as u32,
        0,
    );
}

// ---- client → server ----------------------------------------------------------

/// `REQ`/`HANDSHAKE` of kind `GUEST` or `EXEC` with the program name
/// (sent NUL-terminated, as librumpclient does).
pub fn put_handshake_req(out: &mut Vec<u8>, reqno: u64, kind: HandshakeKind, name: &[u8]) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Handshake as u16,
        kind as u32,
        name.len() + 1,
    );
    out.extend_from_slice(name);
    out.push(0);
}

/// `REQ`/`HANDSHAKE` of kind `FORK` with a prefork cookie.
pub fn put_fork_req(out: &mut Vec<u8>, reqno: u64, auth: &[u8; AUTH_LEN], cancel: bool) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Handshake as u16,
        HandshakeKind::Fork as u32,
        FORK_BODY_LEN,
    );
    out.extend_from_slice(auth);
    out.extend_from_slice(&(cancel as c_int).to_ne_bytes());
}

/// `REQ`/`SYSCALL` number `sysnum` with the raw argument structure.
pub fn put_syscall_req(out: &mut Vec<u8>, reqno: u64, sysnum: u32, args: &[u8]) {
    put_header(
        out,
        reqno,
        Class::Req,
        MsgType::Syscall as u16,
        sysnum,
        args.len(),
    );
    out.extend_from_slice(args);
}

/// `REQ`/`PREFORK`.
pub fn put_prefork_req(out: &mut Vec<u8>, reqno: u64) {
    put_header(out, reqno, Class::Req, MsgType::Prefork as u16, 0, 0);
}

/// `RESP`/`COPYIN` with the bytes read (librumpclient uses this type for
/// string copyins too).
pub fn put_copyin_resp(out: &mut Vec<u8>, reqno: u64, data: &[u8]) {
    put_header(
        out,
        reqno,
        Class::Resp,
        MsgType::Copyin as u16,
        0,
        data.len(),
    );
    out.extend_from_slice(data);
}

/// `RESP`/`ANONMMAP` with the mapped address (0 on failure).
pub fn put_anonmmap_resp(out: &mut Vec<u8>, reqno: u64, addr: usize) {
    put_header(
        out,
        reqno,
        Class::Resp,
        MsgType::Anonmmap as u16,
        0,
        ANONMMAP_RESP_LEN,
    );
    put_usize(out, addr);
}

// ---- body decoders ----------------------------------------------------------------

/// Decodes a copyin/copyout request body: `(len, addr, trailing data)`.
pub fn decode_copy_req(body: &[u8]) -> Option<(usize, usize, &[u8])> {
    let len = usize_at(body, 0)?;
    let addr = usize_at(body, size_of::<usize>())?;
    Some((len, addr, &body[COPY_REQ_LEN..]))
}

/// Decodes an `ANONMMAP` request (`len`) or response (`addr`) body.
pub fn decode_usize(body: &[u8]) -> Option<usize> {
    if body.len() != size_of::<usize>() {
        return None;
    }
    usize_at(body, 0)
}

/// Decodes a `RESP`/`SYSCALL` body: `(error, retval)`.
pub fn decode_syscall_resp(body: &[u8]) -> Option<(c_int, [c_long; 2])> {
    if body.len() != SYSCALL_RESP_LEN {
        return None;
    }
    let mut e = [0u8; size_of::<c_int>()];
    e.copy_from_slice(&body[..size_of::<c_int>()]);
    let w = size_of::<c_long>();
    let mut rv = [0 as c_long; 2];
    for (i, r) in rv.iter_mut().enumerate() {
        let o = SYSRESP_RETVAL_OFF + i * w;
        let mut x = [0u8; size_of::<c_long>()];
        x.copy_from_slice(&body[o..o + w]);
        *r = c_long::from_ne_bytes(x);
    }
    Some((c_int::from_ne_bytes(e), rv))
}

/// Decodes a `RESP`/`HANDSHAKE` body (`int error`).
pub fn decode_handshake_resp(body: &[u8]) -> Option<c_int> {
    let b: [u8; size_of::<c_int>()] = body.try_into().ok()?;
    Some(c_int::from_ne_bytes(b))
}

/// Decodes a `HANDSHAKE`/`FORK` body: `(cookie, cancel)`.
pub fn decode_fork_req(body: &[u8]) -> Option<([u8; AUTH_LEN], bool)> {
    if body.len() != FORK_BODY_LEN {
        return None;
    }
    let mut auth = [0u8; AUTH_LEN];
    auth.copy_from_slice(&body[..AUTH_LEN]);
    let mut c = [0u8; size_of::<c_int>()];
    c.copy_from_slice(&body[AUTH_LEN..]);
    Some((auth, c_int::from_ne_bytes(c) != 0))
}

/// The banner line `RUMPSP-0.4-<ostype>-<osrelease>/<machine>\n`, at most
/// [`MAX_BANNER`] bytes and always ending in `\n` (the reference's
/// `snprintf` could cut the newline off, which the client rejects).
/// Control characters in the components become `?`.
pub fn banner(ostype: &[u8], osrelease: &[u8], machine: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(MAX_BANNER);
    b.extend_from_slice(b"RUMPSP-");
    push_decimal(&mut b, PROTO_MAJOR);
    b.push(b'.');
    push_decimal(&mut b, PROTO_MINOR);
    b.push(b'-');
    let clean = |b: &mut Vec<u8>, s: &[u8]| {
        b.extend(
            s.iter()
                .map(|&c| if c < 0x20 || c == 0x7f { b'?' } else { c }),
        );
    };
    clean(&mut b, ostype);
    b.push(b'-');
    clean(&mut b, osrelease);
    b.push(b'/');
    clean(&mut b, machine);
    b.truncate(MAX_BANNER - 1);
    b.push(b'\n');
    b
}

fn push_decimal(b: &mut Vec<u8>, mut v: u32) {
    let mut tmp = [0u8; 10];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    b.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let h = Header {
            len: 99,
            reqno: 0x1122_3344_5566_7788,
            class: 1,
            typ: 6,
            arg: 0xdead_beef,
        };
        assert_eq!(Header::decode(&h.encode()), h);
        assert_eq!(h.body_len(), Some(75));
        let short = Header { len: 3, ..h };
        assert_eq!(short.body_len(), None);
    }

    #[test]
    fn layouts_match_lp64() {
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(SYSCALL_RESP_LEN, 24);
            assert_eq!(SYSRESP_RETVAL_OFF, 8);
            assert_eq!(COPY_REQ_LEN, 16);
        }
        assert_eq!(FORK_BODY_LEN, 20);
    }

    #[test]
    fn syscall_resp_roundtrip() {
        let mut v = Vec::new();
        put_syscall_resp(&mut v, 7, 22, [-1, 42]);
        let h = Header::decode(v[..HDRSZ].try_into().unwrap());
        assert_eq!(h.len as usize, v.len());
        assert_eq!(h.class(), Some(Class::Resp));
        assert_eq!(h.msg_type(), Some(MsgType::Syscall));
        assert_eq!(decode_syscall_resp(&v[HDRSZ..]), Some((22, [-1, 42])));
    }

    #[test]
    fn copy_and_fork_bodies() {
        let mut v = Vec::new();
        put_copyout_req(&mut v, 1, 0x1000, b"abc");
        assert_eq!(decode_copy_req(&v[HDRSZ..]), Some((3, 0x1000, &b"abc"[..])));
        v.clear();
        put_fork_req(&mut v, 2, &[7; AUTH_LEN], true);
        assert_eq!(decode_fork_req(&v[HDRSZ..]), Some(([7; AUTH_LEN], true)));
        assert_eq!(decode_fork_req(&v[HDRSZ + 1..]), None);
    }

    #[test]
    fn banner_is_bounded_and_terminated() {
        let b = banner(b"NetBSD", b"7.99.34", b"amd64");
        assert_eq!(b, b"RUMPSP-0.4-NetBSD-7.99.34/amd64\n");
        let long = [b'x'; 300];
        let b = banner(&long, b"1\n", b"m");
        assert_eq!(b.len(), MAX_BANNER);
        assert_eq!(*b.last().unwrap(), b'\n');
        assert_eq!(b.iter().filter(|&&c| c == b'\n').count(), 1);
    }
}
