//! Incremental frame assembly for non-blocking sockets (`readframe` of
//! sp_common.c, with limits).
//!
//! The reader hands whatever bytes a `read` returned to
//! [`Assembler::push`]; the assembler consumes up to the end of the current
//! frame and returns it when complete, so one read may yield several frames
//! (call `push` again with the rest). Before any body byte is accepted the
//! caller's limit function sees the header and says how long a body it
//! allows for it; a longer frame is refused *before* anything is allocated,
//! and the body buffer then grows only as bytes actually arrive, so a peer
//! announcing a huge frame and sending nothing costs nothing.

use super::wire::{Header, HDRSZ};
use alloc::vec::Vec;

/// A complete frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub hdr: Header,
    /// `hdr.len - HDRSZ` bytes.
    pub body: Vec<u8>,
}

/// Why a byte stream cannot be a valid frame sequence. The connection is
/// unusable afterwards (the stream position is lost) and must be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `len` is smaller than the header itself.
    TooShort {
        /// The announced length.
        len: u64,
    },
    /// The body is longer than the limit for this kind of frame.
    TooLong {
        /// The announced length.
        len: u64,
        /// The largest body allowed for this header.
        max: usize,
    },
    /// The limit function refused the header outright.
    Rejected(&'static str),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::TooShort { len } => {
                write!(f, "frame length {len} is shorter than its header")
            }
            FrameError::TooLong { len, max } => {
                write!(f, "frame length {len} exceeds the limit ({max}-byte body)")
            }
            FrameError::Rejected(why) => f.write_str(why),
        }
    }
}

/// Reassembles frames from arbitrary chunks of a byte stream.
#[derive(Default)]
pub struct Assembler {
    hdr: [u8; HDRSZ],
    fill: usize,
    cur: Option<(Header, usize)>,
    body: Vec<u8>,
}

impl Assembler {
    /// An assembler at a frame boundary.
    pub const fn new() -> Assembler {
        Assembler {
            hdr: [0; HDRSZ],
            fill: 0,
            cur: None,
            body: Vec::new(),
        }
    }

    /// True at a frame boundary (no partial frame buffered).
    pub fn is_idle(&self) -> bool {
        self.fill == 0 && self.cur.is_none()
    }

    /// Bytes of the current partial frame held so far.
    pub fn buffered(&self) -> usize {
        self.fill + self.body.len()
    }

    /// Consumes bytes from `input` up to the end of the current frame.
    /// Returns how many were consumed and the frame if it is now complete.
    /// `limit` is called once per frame, with the header, and returns the
    /// largest body it accepts for that header (or an error to refuse it).
    pub fn push<F>(&mut self, input: &[u8], limit: F) -> Result<(usize, Option<Frame>), FrameError>
    where
        F: FnOnce(&Header) -> Result<usize, FrameError>,
    {
        let mut used = 0;
        if self.cur.is_none() {
            let n = (HDRSZ - self.fill).min(input.len());
            self.hdr[self.fill..self.fill + n].copy_from_slice(&input[..n]);
            self.fill += n;
            used += n;
            if self.fill < HDRSZ {
                return Ok((used, None));
            }
            let hdr = Header::decode(&self.hdr);
            if hdr.len < HDRSZ as u64 {
                return Err(FrameError::TooShort { len: hdr.len });
            }
            let max = limit(&hdr)?;
            let body_len = match hdr.body_len() {
                Some(b) if b <= max => b,
                _ => return Err(FrameError::TooLong { len: hdr.len, max }),
            };
            self.cur = Some((hdr, body_len));
            self.body = Vec::new();
        }
        let (hdr, body_len) = self.cur.expect("header parsed above");
        let n = (body_len - self.body.len()).min(input.len() - used);
        self.body.extend_from_slice(&input[used..used + n]);
        used += n;
        if self.body.len() < body_len {
            return Ok((used, None));
        }
        self.cur = None;
        self.fill = 0;
        let body = core::mem::take(&mut self.body);
        Ok((used, Some(Frame { hdr, body })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sp::wire::*;

    fn any(_: &Header) -> Result<usize, FrameError> {
        Ok(1 << 20)
    }

    #[test]
    fn byte_at_a_time_and_batched() {
        let mut s = Vec::new();
        put_syscall_req(&mut s, 1, 20, &[1, 2, 3]);
        put_prefork_req(&mut s, 2);
        put_handshake_req(&mut s, 3, HandshakeKind::Guest, b"prog");
        // One byte at a time.
        let mut a = Assembler::new();
        let mut frames = Vec::new();
        for b in &s {
            let (n, f) = a.push(core::slice::from_ref(b), any).unwrap();
            assert_eq!(n, 1);
            frames.extend(f);
        }
        assert_eq!(frames.len(), 3);
        assert!(a.is_idle());
        // All at once.
        let mut a = Assembler::new();
        let mut rest = &s[..];
        let mut frames2 = Vec::new();
        while !rest.is_empty() {
            let (n, f) = a.push(rest, any).unwrap();
            rest = &rest[n..];
            frames2.extend(f);
        }
        assert_eq!(frames, frames2);
        assert_eq!(frames[0].body, [1, 2, 3]);
        assert_eq!(frames[1].body.len(), 0);
        assert_eq!(frames[2].body, b"prog\0");
        assert_eq!(frames[2].hdr.arg, HandshakeKind::Guest as u32);
    }

    #[test]
    fn limits() {
        let mut h = Header {
            len: 10,
            ..Header::default()
        };
        let mut a = Assembler::new();
        assert_eq!(
            a.push(&h.encode(), any),
            Err(FrameError::TooShort { len: 10 })
        );
        h.len = u64::MAX;
        let mut a = Assembler::new();
        assert!(matches!(
            a.push(&h.encode(), any),
            Err(FrameError::TooLong { .. })
        ));
        h.len = 24 + 5;
        let mut a = Assembler::new();
        assert_eq!(
            a.push(&h.encode(), |_| Ok(4)),
            Err(FrameError::TooLong { len: 29, max: 4 })
        );
        let mut a = Assembler::new();
        assert_eq!(
            a.push(&h.encode(), |_| Err(FrameError::Rejected("no"))),
            Err(FrameError::Rejected("no"))
        );
    }
}
