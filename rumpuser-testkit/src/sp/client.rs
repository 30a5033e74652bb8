//! A sysproxy client written for the tests: speaks the wire protocol with
//! `rumpuser_core::sp::wire`, serves the server's copyin/copyout/anonmmap/
//! raise requests from a simulated address space, and can misbehave on
//! purpose. It runs over a unix or TCP socket ([`Client::connect`]) or
//! over any other byte stream a test provides ([`Client::over`], e.g. an
//! in-memory transport).

use core::ffi::{c_int, c_long};
use rumpuser_core::sp::frame::{Assembler, Frame};
use rumpuser_core::sp::wire::*;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where to connect.
#[derive(Clone, Debug)]
pub enum Target {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// A connection the client can run over besides the sockets of
/// [`Target`]: a reliable, ordered byte stream in both directions.
pub trait Duplex: Send {
    /// Up to `b.len()` bytes; 0 at end of stream.
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize>;
    /// All of `b`, or an error.
    fn write_all(&mut self, b: &[u8]) -> io::Result<()>;
    /// Shuts both directions down: the peer sees end of stream.
    fn shutdown(&self);
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Other(Box<dyn Duplex>),
}

impl Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(b),
            Stream::Tcp(s) => s.read(b),
            Stream::Other(s) => s.read(b),
        }
    }
    fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(b),
            Stream::Tcp(s) => s.write_all(b),
            Stream::Other(s) => s.write_all(b),
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Other(s) => {
                s.shutdown();
                Ok(())
            }
        };
    }
}

/// A simulated client address space: regions at fake addresses.
#[derive(Default)]
pub struct Mem {
    regions: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl Mem {
    pub fn alloc(&mut self, data: &[u8]) -> u64 {
        if self.next == 0 {
            self.next = 0x7000_0000_0000;
        }
        let a = self.next;
        self.next += (data.len() as u64 + 0xfff) & !0xfff;
        self.next += 0x1000;
        self.regions.insert(a, data.to_vec());
        a
    }
    fn find(&self, addr: u64) -> Option<(u64, &Vec<u8>)> {
        let (&base, r) = self.regions.range(..=addr).next_back()?;
        (addr - base < r.len() as u64 || r.is_empty() && addr == base).then_some((base, r))
    }
    /// Up to `len` bytes at `addr` (fewer at the end of a region).
    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        match self.find(addr) {
            Some((base, r)) => {
                let o = (addr - base) as usize;
                r[o..(o + len).min(r.len())].to_vec()
            }
            None => Vec::new(),
        }
    }
    pub fn write(&mut self, addr: u64, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let Some((base, _)) = self.find(addr) else {
            return false;
        };
        let r = self.regions.get_mut(&base).unwrap();
        let o = (addr - base) as usize;
        if o + data.len() > r.len() {
            return false;
        }
        r[o..o + data.len()].copy_from_slice(data);
        true
    }
    pub fn has_region(&self, addr: u64) -> bool {
        self.regions.contains_key(&addr)
    }
}

/// How to answer the server's copyin requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyinMode {
    Normal,
    /// Close the connection instead of answering.
    Disconnect,
    /// Answer with a response of the wrong type.
    WrongType,
}

pub struct Client {
    s: Stream,
    asm: Assembler,
    rbuf: Vec<u8>,
    /// Scratch space for one `read` (kept, so a read does not clear 64 KiB).
    tmp: Vec<u8>,
    next: u64,
    stash: HashMap<u64, Frame>,
    pub banner: Vec<u8>,
    pub mem: Mem,
    pub signals: Vec<u32>,
    pub mmap_fails: bool,
    pub copyin: CopyinMode,
}

fn any(_: &Header) -> Result<usize, rumpuser_core::sp::frame::FrameError> {
    Ok(1 << 30)
}

impl Client {
    /// Connects without reading the banner.
    pub fn connect_raw(t: &Target) -> io::Result<Client> {
        let s = match t {
            Target::Unix(p) => {
                let s = UnixStream::connect(p)?;
                s.set_read_timeout(Some(Duration::from_secs(20)))?;
                Stream::Unix(s)
            }
            Target::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_read_timeout(Some(Duration::from_secs(20)))?;
                s.set_nodelay(true)?;
                Stream::Tcp(s)
            }
        };
        Ok(Client::on(s))
    }

    fn on(s: Stream) -> Client {
        Client {
            s,
            asm: Assembler::new(),
            rbuf: Vec::new(),
            tmp: vec![0; 65536],
            next: 0,
            stash: HashMap::new(),
            banner: Vec::new(),
            mem: Mem::default(),
            signals: Vec::new(),
            mmap_fails: false,
            copyin: CopyinMode::Normal,
        }
    }

    /// Connects and reads the banner (one line).
    pub fn connect(t: &Target) -> io::Result<Client> {
        Client::connect_raw(t)?.read_banner()
    }

    /// A client over `conn`, once it has read the banner (one line).
    pub fn over(conn: Box<dyn Duplex>) -> io::Result<Client> {
        Client::on(Stream::Other(conn)).read_banner()
    }

    fn read_banner(mut self) -> io::Result<Client> {
        let mut b = [0u8; 1];
        while self.banner.last() != Some(&b'\n') {
            if self.s.read(&mut b)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no banner"));
            }
            self.banner.push(b[0]);
            if self.banner.len() > MAX_BANNER {
                return Err(io::Error::other("banner too long"));
            }
        }
        Ok(self)
    }

    pub fn send_raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.s.write_all(b)
    }

    pub fn close(&self) {
        self.s.shutdown();
    }

    /// Next frame, or `None` at end of stream.
    pub fn read_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if !self.rbuf.is_empty() {
                let (n, f) = self
                    .asm
                    .push(&self.rbuf, any)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                self.rbuf.drain(..n);
                if let Some(f) = f {
                    return Ok(Some(f));
                }
            }
            let n = self.s.read(&mut self.tmp)?;
            if n == 0 {
                return Ok(None);
            }
            self.rbuf.extend_from_slice(&self.tmp[..n]);
        }
    }

    /// Sends a request built by `f` with a fresh request number.
    pub fn request(&mut self, f: impl FnOnce(&mut Vec<u8>, u64)) -> io::Result<u64> {
        let r = self.next;
        self.next += 1;
        let mut v = Vec::new();
        f(&mut v, r);
        self.s.write_all(&v)?;
        Ok(r)
    }

    /// Serves one server request.
    fn serve(&mut self, f: Frame) -> io::Result<()> {
        let h = f.hdr;
        let mut out = Vec::new();
        match h.msg_type() {
            Some(t @ (MsgType::Copyin | MsgType::Copyinstr)) => {
                let (len, addr, _) = decode_copy_req(&f.body).expect("copy request body");
                match self.copyin {
                    CopyinMode::Disconnect => {
                        self.close();
                        return Err(io::Error::other("disconnected on purpose"));
                    }
                    CopyinMode::WrongType => put_anonmmap_resp(&mut out, h.reqno, 0),
                    CopyinMode::Normal => {
                        let mut d = self.mem.read(addr as u64, len);
                        if t == MsgType::Copyinstr {
                            if let Some(i) = d.iter().position(|&c| c == 0) {
                                d.truncate(i + 1);
                            }
                        }
                        put_copyin_resp(&mut out, h.reqno, &d);
                    }
                }
            }
            Some(MsgType::Copyout | MsgType::Copyoutstr) => {
                let (len, addr, data) = decode_copy_req(&f.body).expect("copyout body");
                assert_eq!(len, data.len());
                assert!(
                    self.mem.write(addr as u64, data),
                    "copyout to a bad address"
                );
            }
            Some(MsgType::Anonmmap) => {
                let len = decode_usize(&f.body).expect("anonmmap body");
                let a = if self.mmap_fails {
                    0
                } else {
                    self.mem.alloc(&vec![0; len])
                };
                put_anonmmap_resp(&mut out, h.reqno, a as usize);
            }
            Some(MsgType::Raise) => self.signals.push(h.arg),
            t => panic!("unexpected server request {t:?}"),
        }
        if !out.is_empty() {
            self.s.write_all(&out)?;
        }
        Ok(())
    }

    /// Waits for the response to `reqno`, serving server requests meanwhile.
    pub fn wait(&mut self, reqno: u64) -> io::Result<Frame> {
        if let Some(f) = self.stash.remove(&reqno) {
            return Ok(f);
        }
        loop {
            let Some(f) = self.read_frame()? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed",
                ));
            };
            match f.hdr.class() {
                Some(Class::Req) => self.serve(f)?,
                _ if f.hdr.reqno == reqno => return Ok(f),
                _ => {
                    self.stash.insert(f.hdr.reqno, f);
                }
            }
        }
    }

    /// Guest handshake; the server's error code.
    pub fn guest(&mut self, name: &str) -> io::Result<c_int> {
        let r =
            self.request(|o, r| put_handshake_req(o, r, HandshakeKind::Guest, name.as_bytes()))?;
        handshake_result(self.wait(r)?)
    }

    /// Exec handshake.
    pub fn exec(&mut self, name: &str) -> io::Result<c_int> {
        let r =
            self.request(|o, r| put_handshake_req(o, r, HandshakeKind::Exec, name.as_bytes()))?;
        handshake_result(self.wait(r)?)
    }

    /// Fork handshake with a cookie.
    pub fn fork(&mut self, auth: &[u8; AUTH_LEN]) -> io::Result<c_int> {
        let r = self.request(|o, r| put_fork_req(o, r, auth, false))?;
        handshake_result(self.wait(r)?)
    }

    /// Prefork: the cookie.
    pub fn prefork(&mut self) -> io::Result<[u8; AUTH_LEN]> {
        let r = self.request(put_prefork_req)?;
        let f = self.wait(r)?;
        if f.hdr.class() != Some(Class::Resp) || f.body.len() != AUTH_LEN {
            return Err(io::Error::other(format!("prefork answered {:?}", f.hdr)));
        }
        Ok(f.body.try_into().unwrap())
    }

    /// Sends a syscall without waiting; the request number.
    pub fn send_syscall(&mut self, num: u32, args: &[u64]) -> io::Result<u64> {
        let bytes: Vec<u8> = args.iter().flat_map(|a| a.to_ne_bytes()).collect();
        self.request(|o, r| put_syscall_req(o, r, num, &bytes))
    }

    /// The result of a syscall sent earlier.
    pub fn syscall_result(&mut self, reqno: u64) -> io::Result<(c_int, [c_long; 2])> {
        let f = self.wait(reqno)?;
        match f.hdr.class() {
            Some(Class::Resp) => decode_syscall_resp(&f.body)
                .ok_or_else(|| io::Error::other("bad syscall response body")),
            _ => Err(io::Error::other(format!("syscall answered {:?}", f.hdr))),
        }
    }

    /// The answer to a syscall sent earlier: its result, or the code of
    /// the `ERROR` frame the server answered with (e.g. `TRYAGAIN`).
    pub fn syscall_outcome(&mut self, reqno: u64) -> io::Result<Result<(c_int, [c_long; 2]), u32>> {
        let f = self.wait(reqno)?;
        match f.hdr.class() {
            Some(Class::Error) => Ok(Err(f.hdr.arg)),
            Some(Class::Resp) => decode_syscall_resp(&f.body)
                .map(Ok)
                .ok_or_else(|| io::Error::other("bad syscall response body")),
            _ => Err(io::Error::other(format!("syscall answered {:?}", f.hdr))),
        }
    }

    /// A complete syscall.
    pub fn syscall(&mut self, num: u32, args: &[u64]) -> io::Result<(c_int, [c_long; 2])> {
        let r = self.send_syscall(num, args)?;
        self.syscall_result(r)
    }

    /// Reads until end of stream (serving requests); the ERROR codes seen.
    pub fn drain_to_eof(&mut self) -> io::Result<Vec<u32>> {
        let mut errors = Vec::new();
        while let Some(f) = self.read_frame()? {
            match f.hdr.class() {
                Some(Class::Error) => errors.push(f.hdr.arg),
                Some(Class::Req) => self.serve(f)?,
                _ => {}
            }
        }
        Ok(errors)
    }
}

fn handshake_result(f: Frame) -> io::Result<c_int> {
    match f.hdr.class() {
        Some(Class::Resp) => decode_handshake_resp(&f.body)
            .ok_or_else(|| io::Error::other("bad handshake response body")),
        Some(Class::Error) => Ok(-(f.hdr.arg as c_int)),
        _ => Err(io::Error::other("unexpected frame")),
    }
}
