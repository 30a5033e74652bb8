//! `rumpuser_getparam`: the parameter namespace and the output buffer.
//!
//! The core answers the two mandatory names through [`Sched::ncpu`]
//! and [`Host::hostname`], rejects other reserved `_` names with
//! `EINVAL` (as the reference does), and hands the rest to
//! [`Host::param`]. Values are NUL-terminated; one that does not fit
//! is `ERANGE` and the buffer is left holding an empty string.
//!
//! [`Sched::ncpu`]: crate::Sched::ncpu
//! [`Host::hostname`]: crate::Host::hostname
//! [`Host::param`]: crate::Host::param

use crate::errno::Errno;
use core::fmt;

/// Writes a parameter value into the kernel's buffer, leaving room for the NUL.
pub struct ParamWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflow: bool,
}

impl<'a> ParamWriter<'a> {
    /// Wraps the caller's buffer (its full capacity, including the NUL byte).
    pub fn new(buf: &'a mut [u8]) -> ParamWriter<'a> {
        ParamWriter {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Appends bytes; remembers an overflow instead of truncating silently.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        // One byte is always reserved for the terminating NUL.
        if self.len + bytes.len() + 1 > self.buf.len() {
            self.overflow = true;
            return;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends a string.
    pub fn push_str(&mut self, s: &str) {
        self.push(s.as_bytes());
    }

    /// Terminates the value; `ERANGE` if it did not fit.
    pub fn finish(self) -> Result<usize, Errno> {
        if self.overflow || self.buf.is_empty() {
            if let Some(b) = self.buf.first_mut() {
                *b = 0;
            }
            return Err(Errno::ERANGE);
        }
        self.buf[self.len] = 0;
        Ok(self.len)
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Nothing written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Write for ParamWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// How the core routes a parameter name.
#[derive(Debug, PartialEq, Eq)]
pub enum ParamName<'a> {
    /// `_RUMPUSER_NCPU`.
    Ncpu,
    /// `_RUMPUSER_HOSTNAME`.
    Hostname,
    /// Any other reserved name: `EINVAL`.
    Reserved,
    /// A platform parameter.
    Other(&'a str),
}

impl<'a> ParamName<'a> {
    /// Classifies a name.
    pub fn classify(name: &'a str) -> ParamName<'a> {
        match name {
            crate::abi::RUMPUSER_PARAM_NCPU => ParamName::Ncpu,
            crate::abi::RUMPUSER_PARAM_HOSTNAME => ParamName::Hostname,
            n if n.starts_with('_') => ParamName::Reserved,
            n => ParamName::Other(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn writer_terminates_and_detects_overflow() {
        let mut b = [0xffu8; 4];
        let mut w = ParamWriter::new(&mut b);
        w.push_str("abc");
        assert_eq!(w.finish(), Ok(3));
        assert_eq!(&b, b"abc\0");
        let mut b = [0xffu8; 4];
        let mut w = ParamWriter::new(&mut b);
        write!(w, "{}", 1234).unwrap();
        assert_eq!(w.finish(), Err(Errno::ERANGE));
        assert_eq!(b[0], 0);
        assert_eq!(ParamWriter::new(&mut []).finish(), Err(Errno::ERANGE));
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(ParamName::classify("_RUMPUSER_NCPU"), ParamName::Ncpu);
        assert_eq!(ParamName::classify("_FOO"), ParamName::Reserved);
        assert_eq!(
            ParamName::classify("RUMP_VERBOSE"),
            ParamName::Other("RUMP_VERBOSE")
        );
    }
}
