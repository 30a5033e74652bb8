//! The per-connection protocol logic of the server, without I/O or
//! kernel calls (contract 4.5 and 4.6), so that every flavour drives the
//! same rules and the fuzz loop can exercise them.
//!
//! * [`body_limit`] decides, from a header alone, how long a body the
//!   server accepts: client requests are small ([`MAX_REQUEST_BODY`]);
//!   a response may be exactly as long as what the server asked for.
//! * [`classify`] turns a complete frame into an [`Event`] the server acts
//!   on, or a [`Violation`] after which the connection is closed (with an
//!   `ERROR` frame first where the reference sends one).
//! * [`Pending`] is the table of the server's own outstanding requests
//!   (copyin, copyinstr, anonmmap) and matches responses to them.
//!
//! Differences from the reference (contract 4.8): names are terminated
//! without writing past the body and may be empty; request bodies and
//! response lengths are bounded; short copyin responses fail the copyin
//! with `EFAULT` instead of copying stale memory; string responses are
//! clamped to the requested maximum; syscall argument buffers are aligned
//! and zero-padded so the kernel never reads past what the client sent; a
//! syscall number that would be negative as a C `int` is answered with
//! `ENOSYS` without entering the kernel; unknown request types and
//! classes close the connection.

use super::frame::{Frame, FrameError};
use super::wire::*;
use crate::errno::Errno;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void};

/// Largest body of a frame the client originates (a syscall argument
/// structure is at most a few dozen bytes; a program name is short).
pub const MAX_REQUEST_BODY: usize = 4096;

/// Syscall argument buffers are zero-padded to at least this many bytes
/// (16 register-sized slots, more than any NetBSD syscall takes), so a
/// client sending a short structure cannot make the kernel read beyond it.
pub const SYSCALL_ARGS_MIN: usize = 128;

/// Connection phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Banner sent; only a GUEST or FORK handshake is acceptable.
    New,
    /// Handshake done; requests and responses flow.
    Running,
    /// Disconnected; waiting for in-flight work to finish.
    Dying,
}

/// A program name from a handshake: no interior NUL, NUL-terminated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comm(Vec<u8>);

impl Comm {
    /// The name up to the first NUL of `body` (or all of it), terminated.
    pub fn from_body(body: &[u8]) -> Comm {
        let n = body.iter().position(|&c| c == 0).unwrap_or(body.len());
        let mut v = Vec::with_capacity(n + 1);
        v.extend_from_slice(&body[..n]);
        v.push(0);
        Comm(v)
    }

    /// The name without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..self.0.len() - 1]
    }

    /// A C string pointer valid as long as `self`.
    pub fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// A syscall argument structure in an 8-byte aligned, zero-padded buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallArgs {
    words: Vec<u64>,
    len: usize,
}

impl SyscallArgs {
    /// Copies `body` into an aligned buffer of at least [`SYSCALL_ARGS_MIN`] bytes.
    pub fn from_body(body: &[u8]) -> SyscallArgs {
        let nwords = body.len().max(SYSCALL_ARGS_MIN).div_ceil(8);
        let mut words = vec![0u64; nwords];
        for (w, chunk) in words.iter_mut().zip(body.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        SyscallArgs {
            words,
            len: body.len(),
        }
    }

    /// Bytes the client sent.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the client sent no arguments.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer, for `hyp_syscall` (valid and writable for at least
    /// `max(len, SYSCALL_ARGS_MIN)` bytes).
    pub fn as_mut_ptr(&mut self) -> *mut c_void {
        self.words.as_mut_ptr().cast()
    }
}

/// The kernel's syscall number for a wire `sysnum`, or `None` (answer
/// `ENOSYS`) if it would be negative as a C `int`: `hyp_syscall` only
/// checks the upper bound.
pub fn kernel_sysnum(sysnum: u32) -> Option<c_int> {
    c_int::try_from(sysnum).ok()
}

/// A validated client request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `HANDSHAKE`/`GUEST` in phase New.
    Guest {
        /// Program name.
        comm: Comm,
    },
    /// `HANDSHAKE`/`FORK` in phase New.
    Fork {
        /// The prefork cookie.
        auth: [u8; AUTH_LEN],
        /// Give the preforked process up instead.
        cancel: bool,
    },
    /// `HANDSHAKE`/`EXEC` in phase Running (not already in exec).
    Exec {
        /// New program name.
        comm: Comm,
    },
    /// `PREFORK` in phase Running (not in exec).
    Prefork,
    /// `SYSCALL` in phase Running.
    Syscall {
        /// Raw wire number (see [`kernel_sysnum`]).
        sysnum: u32,
        /// Argument structure.
        args: SyscallArgs,
    },
}

/// What a frame means to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request to act on and answer with `reqno`.
    Request {
        /// Request number to echo.
        reqno: u64,
        /// The request.
        req: Request,
    },
    /// A response to one of the server's requests (match with [`Pending`]).
    Response {
        /// Request number it answers.
        reqno: u64,
        /// Its type.
        typ: MsgType,
        /// Its body.
        body: Vec<u8>,
    },
}

/// A frame the server refuses; the connection is closed after sending
/// `ERROR(reply)` if `reply` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Request number of the offending frame.
    pub reqno: u64,
    /// Error frame to send before closing.
    pub reply: Option<ErrorCode>,
    /// For the log line.
    pub why: &'static str,
}

fn violation(reqno: u64, reply: Option<ErrorCode>, why: &'static str) -> Violation {
    Violation { reqno, reply, why }
}

/// The largest body the server accepts for a frame with this header.
pub fn body_limit(pending: &Pending, hdr: &Header) -> Result<usize, FrameError> {
    match hdr.class() {
        Some(Class::Resp) => Ok(pending.limit(hdr.reqno).unwrap_or(MAX_REQUEST_BODY)),
        _ => Ok(MAX_REQUEST_BODY),
    }
}

/// Interprets a complete frame in the given state.
pub fn classify(phase: Phase, in_exec: bool, f: Frame) -> Result<Event, Violation> {
    let Frame { hdr, body } = f;
    let reqno = hdr.reqno;
    let class = hdr.class();
    let typ = hdr.msg_type();
    match phase {
        Phase::Dying => Err(violation(reqno, None, "frame after disconnect")),
        Phase::New => {
            if class != Some(Class::Req) || typ != Some(MsgType::Handshake) {
                return Err(violation(reqno, Some(ErrorCode::Auth), "no handshake"));
            }
            match HandshakeKind::from_raw(hdr.arg) {
                Some(HandshakeKind::Guest) => Ok(Event::Request {
                    reqno,
                    req: Request::Guest {
                        comm: Comm::from_body(&body),
                    },
                }),
                Some(HandshakeKind::Fork) => match decode_fork_req(&body) {
                    Some((auth, cancel)) => Ok(Event::Request {
                        reqno,
                        req: Request::Fork { auth, cancel },
                    }),
                    None => Err(violation(
                        reqno,
                        Some(ErrorCode::MalformedRequest),
                        "fork handshake body is not 20 bytes",
                    )),
                },
                _ => Err(violation(
                    reqno,
                    Some(ErrorCode::Auth),
                    "handshake kind not allowed on a new connection",
                )),
            }
        }
        Phase::Running => match (class, typ) {
            (Some(Class::Resp), Some(t)) => Ok(Event::Response {
                reqno,
                typ: t,
                body,
            }),
            (Some(Class::Req), Some(MsgType::Syscall)) => Ok(Event::Request {
                reqno,
                req: Request::Syscall {
                    sysnum: hdr.arg,
                    args: SyscallArgs::from_body(&body),
                },
            }),
            (Some(Class::Req), Some(MsgType::Prefork)) => {
                if in_exec {
                    Err(violation(
                        reqno,
                        Some(ErrorCode::InExec),
                        "prefork during exec",
                    ))
                } else {
                    Ok(Event::Request {
                        reqno,
                        req: Request::Prefork,
                    })
                }
            }
            (Some(Class::Req), Some(MsgType::Handshake)) => {
                if HandshakeKind::from_raw(hdr.arg) != Some(HandshakeKind::Exec) {
                    Err(violation(
                        reqno,
                        Some(ErrorCode::MalformedRequest),
                        "second handshake that is not an exec",
                    ))
                } else if in_exec {
                    Err(violation(
                        reqno,
                        Some(ErrorCode::InExec),
                        "exec during exec",
                    ))
                } else {
                    Ok(Event::Request {
                        reqno,
                        req: Request::Exec {
                            comm: Comm::from_body(&body),
                        },
                    })
                }
            }
            (Some(Class::Req), _) => Err(violation(
                reqno,
                Some(ErrorCode::MalformedRequest),
                "unknown or server-only request type",
            )),
            (Some(Class::Resp), None) => Err(violation(
                reqno,
                Some(ErrorCode::MalformedRequest),
                "response of unknown type",
            )),
            (Some(Class::Error), _) | (None, _) => Err(violation(
                reqno,
                Some(ErrorCode::MalformedRequest),
                "unexpected frame class",
            )),
        },
    }
}

/// What the server expects in answer to one of its requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exactly `len` bytes.
    Copyin {
        /// Requested length.
        len: usize,
    },
    /// At most `max` bytes of a string.
    Copyinstr {
        /// Requested maximum.
        max: usize,
    },
    /// One pointer.
    Anonmmap,
}

impl Expect {
    fn limit(self) -> usize {
        match self {
            Expect::Copyin { len } => len,
            Expect::Copyinstr { max } => max,
            Expect::Anonmmap => ANONMMAP_RESP_LEN,
        }
    }
}

/// Result of offering a response to [`Pending::deliver`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The waiter has its data.
    Delivered,
    /// The waiter gets `EFAULT`: the body had the wrong length.
    Short,
    /// No such outstanding request (the reference discards these too).
    Unmatched,
    /// A response of the wrong type: close the connection.
    Violation(&'static str),
}

/// The result of a server request: the response body or an error.
pub type Outcome = Result<Vec<u8>, Errno>;

/// The server's outstanding requests on one connection, by `reqno`.
#[derive(Debug, Default)]
pub struct Pending {
    next: u64,
    waits: BTreeMap<u64, (Expect, Option<Outcome>)>,
}

impl Pending {
    /// An empty table; request numbers start at 0.
    pub const fn new() -> Pending {
        Pending {
            next: 0,
            waits: BTreeMap::new(),
        }
    }

    /// A fresh request number (also for requests without a response).
    pub fn next_reqno(&mut self) -> u64 {
        let r = self.next;
        self.next = self.next.wrapping_add(1);
        r
    }

    /// Registers a request that expects a response; returns its number.
    pub fn register(&mut self, e: Expect) -> u64 {
        loop {
            let r = self.next_reqno();
            if let alloc::collections::btree_map::Entry::Vacant(v) = self.waits.entry(r) {
                v.insert((e, None));
                return r;
            }
        }
    }

    /// Largest acceptable response body for `reqno`, if it is outstanding.
    pub fn limit(&self, reqno: u64) -> Option<usize> {
        match self.waits.get(&reqno) {
            Some((e, None)) => Some(e.limit()),
            _ => None,
        }
    }

    /// Offers a response.
    pub fn deliver(&mut self, reqno: u64, typ: MsgType, body: Vec<u8>) -> Delivery {
        let Some((e, slot @ None)) = self.waits.get_mut(&reqno) else {
            return Delivery::Unmatched;
        };
        let copy = matches!(typ, MsgType::Copyin | MsgType::Copyinstr);
        let (ok_type, exact) = match *e {
            Expect::Copyin { len } => (copy, Some(len)),
            Expect::Copyinstr { .. } => (copy, None),
            Expect::Anonmmap => (typ == MsgType::Anonmmap, Some(ANONMMAP_RESP_LEN)),
        };
        if !ok_type {
            return Delivery::Violation("response type does not match the request");
        }
        if body.len() > e.limit() {
            return Delivery::Violation("response longer than requested");
        }
        if exact.is_some_and(|n| n != body.len()) {
            *slot = Some(Err(Errno::EFAULT));
            return Delivery::Short;
        }
        *slot = Some(Ok(body));
        Delivery::Delivered
    }

    /// The result of `reqno` if it arrived (and forgets the request), or
    /// `None` while still waiting. An unknown `reqno` reads as `ENOTCONN`.
    pub fn take(&mut self, reqno: u64) -> Option<Outcome> {
        match self.waits.get(&reqno) {
            None => Some(Err(Errno::ENOTCONN)),
            Some((_, None)) => None,
            Some((_, Some(_))) => self.waits.remove(&reqno).and_then(|(_, r)| r),
        }
    }

    /// Forgets a request (its sender gave up).
    pub fn cancel(&mut self, reqno: u64) {
        self.waits.remove(&reqno);
    }

    /// Completes every outstanding request with `e` (disconnect).
    pub fn fail_all(&mut self, e: Errno) {
        for (_, slot) in self.waits.values_mut() {
            if slot.is_none() {
                *slot = Some(Err(e));
            }
        }
    }

    /// Number of requests not yet taken.
    pub fn len(&self) -> usize {
        self.waits.len()
    }

    /// True if nothing is outstanding.
    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sp::frame::Assembler;

    fn frame(bytes: &[u8]) -> Frame {
        let mut a = Assembler::new();
        let (n, f) = a.push(bytes, |_| Ok(1 << 20)).unwrap();
        assert_eq!(n, bytes.len());
        f.unwrap()
    }

    #[test]
    fn new_phase() {
        let mut v = Vec::new();
        put_handshake_req(&mut v, 0, HandshakeKind::Guest, b"x");
        assert!(matches!(
            classify(Phase::New, false, frame(&v)),
            Ok(Event::Request {
                reqno: 0,
                req: Request::Guest { .. }
            })
        ));
        v.clear();
        put_syscall_req(&mut v, 5, 20, &[]);
        assert_eq!(
            classify(Phase::New, false, frame(&v)).unwrap_err().reply,
            Some(ErrorCode::Auth)
        );
        v.clear();
        put_handshake_req(&mut v, 0, HandshakeKind::Exec, b"x");
        assert_eq!(
            classify(Phase::New, false, frame(&v)).unwrap_err().reply,
            Some(ErrorCode::Auth)
        );
        // Empty and unterminated names.
        let mut h = Header {
            len: HDRSZ as u64,
            class: 0,
            typ: 0,
            ..Header::default()
        };
        let f = Frame {
            hdr: h,
            body: Vec::new(),
        };
        match classify(Phase::New, false, f) {
            Ok(Event::Request {
                req: Request::Guest { comm },
                ..
            }) => assert_eq!(comm.as_bytes(), b""),
            r => panic!("{r:?}"),
        }
        h.len += 3;
        let f = Frame {
            hdr: h,
            body: b"abc".to_vec(),
        };
        match classify(Phase::New, false, f) {
            Ok(Event::Request {
                req: Request::Guest { comm },
                ..
            }) => assert_eq!(comm.as_bytes(), b"abc"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn running_phase() {
        let mut v = Vec::new();
        put_prefork_req(&mut v, 1);
        assert_eq!(
            classify(Phase::Running, true, frame(&v)).unwrap_err().reply,
            Some(ErrorCode::InExec)
        );
        v.clear();
        put_handshake_req(&mut v, 1, HandshakeKind::Guest, b"x");
        assert_eq!(
            classify(Phase::Running, false, frame(&v))
                .unwrap_err()
                .reply,
            Some(ErrorCode::MalformedRequest)
        );
        v.clear();
        put_copyin_req(&mut v, 1, false, 0, 0);
        assert!(classify(Phase::Running, false, frame(&v)).is_err());
        v.clear();
        put_syscall_req(&mut v, 9, 3, &[1, 2, 3]);
        match classify(Phase::Running, false, frame(&v)) {
            Ok(Event::Request {
                reqno: 9,
                req: Request::Syscall { sysnum: 3, args },
            }) => assert_eq!(args.len(), 3),
            r => panic!("{r:?}"),
        }
        assert_eq!(kernel_sysnum(0x8000_0000), None);
        assert_eq!(kernel_sysnum(20), Some(20));
    }

    #[test]
    fn pending_matching() {
        let mut p = Pending::new();
        let a = p.register(Expect::Copyin { len: 4 });
        let b = p.register(Expect::Copyinstr { max: 8 });
        let c = p.register(Expect::Anonmmap);
        assert_eq!(p.limit(a), Some(4));
        assert_eq!(p.limit(99), None);
        assert_eq!(p.take(a), None);
        assert_eq!(p.deliver(a, MsgType::Copyin, vec![1, 2]), Delivery::Short);
        assert_eq!(p.take(a), Some(Err(Errno::EFAULT)));
        assert_eq!(
            p.deliver(a, MsgType::Copyin, vec![1, 2]),
            Delivery::Unmatched
        );
        assert_eq!(
            p.deliver(b, MsgType::Copyin, b"hi\0".to_vec()),
            Delivery::Delivered
        );
        assert_eq!(p.take(b), Some(Ok(b"hi\0".to_vec())));
        assert!(matches!(
            p.deliver(c, MsgType::Copyin, vec![0; 8]),
            Delivery::Violation(_)
        ));
        p.fail_all(Errno::ENOTCONN);
        assert_eq!(p.take(c), Some(Err(Errno::ENOTCONN)));
        assert!(p.is_empty());
    }
}
