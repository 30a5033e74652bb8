//! A one-CPU model kernel with no rumpuser library underneath, and an
//! in-memory transport, for testing the syscall proxy server's blocking
//! runtime (`sp::server::blocking`, what bare metal and Xen run on their
//! own kernel's sockets) on host threads: `tests/sp_blocking.rs`.
//!
//! It differs from [`super::kernel`], which runs on a library's C ABI
//! (`Hyp`, three CPUs, curlwp in the hypervisor's slot, sleeps on the
//! library's cv): here the server is driven directly as a
//! `Proxy<Blocking<MemHost>>` ([`PROXY`]), so the upcall table is
//! installed into rumpuser-core's scheduler itself, curlwp is a
//! thread-local, locks are std's, there is one virtual CPU (as on the
//! guests) and system call 510 copies out far above the server's
//! high-water mark. The CPUs, violations and process/lwp registry are the
//! shared ones of [`super::model`].
//!
//! The transport behaves like a guest kernel's sockets: every call is a
//! kernel entry (it needs the model's one virtual CPU, and a thread that
//! makes one must hold no CPU and have no lwp of a client's process, or
//! the call would act on that process's descriptors: a violation); `accept`,
//! `recv` and `send` block the calling thread only; a pipe holds 64 KiB,
//! so a client that does not read stops the server's writer. [`connect`]
//! gives a client's end, a [`Duplex`] for the kit's protocol client.
//!
//! System calls: 20 getpid (`[pid, 0]`), 500 sleep (until told to exit,
//! `EINTR`, or 10 s, `ETIMEDOUT`), 501 copy(src, len, dst) (copyin,
//! ASCII-uppercase, copyout), 508 fini(magic) (`sp_fini` with the CPU
//! held), 509 ping(x) (`x + 1`), 510 bigout(dst, len) ([`pattern`] copied
//! out in 64 KiB pieces).

use super::client::Duplex;
pub use super::model::eventually;
use super::model::{Cpus, ModelLwp, Process, Registry};
use core::cell::Cell;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use rumpuser_core::abi::{Hyperup, Lwp};
use rumpuser_core::sp::server::blocking::{Blocking, Host};
use rumpuser_core::sp::server::{Config, Globals, LazyGlobals, Lock, Locks, Proxy, Transport};
use rumpuser_core::sp::url::SpUrl;
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::Errno;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---- the model kernel -------------------------------------------------------------

pub const SYS_GETPID: u32 = 20;
pub const SYS_SLEEP: u32 = 500;
pub const SYS_COPY: u32 = 501;
pub const SYS_FINI: u32 = 508;
pub const SYS_PING: u32 = 509;
pub const SYS_BIGOUT: u32 = 510;
pub const FINI_MAGIC: u64 = 0xf1f1_f1f1;

const EINTR: c_int = 4;
const ESRCH: c_int = 3;
const EBUSY: c_int = 16;
pub const ENOSYS: c_int = 78;
const ETIMEDOUT: c_int = 60;
pub const EFAULT: c_int = 14;

struct Proc {
    pid: i32,
    cookie: usize,
    comm: Mutex<String>,
    nlwps: AtomicUsize,
    exiting: Mutex<bool>,
    cv: Condvar,
}

impl Process for Proc {
    fn pid(&self) -> i32 {
        self.pid
    }
    fn nlwps(&self) -> &AtomicUsize {
        &self.nlwps
    }
}

type TLwp = ModelLwp<Proc>;

static REG: Registry<Proc> = Registry::new();
/// One virtual CPU, as on the guests.
static CPU: Cpus = Cpus::new(1);
/// Sleepers woken by `hyp_lwpexit`.
pub static WOKEN: AtomicUsize = AtomicUsize::new(0);
pub static LAST_COPYIN: Mutex<Option<c_int>> = Mutex::new(None);

thread_local! {
    static CUR: Cell<usize> = const { Cell::new(0) };
}

fn violation(s: String) {
    REG.violation(s);
}

fn cur() -> *mut TLwp {
    CUR.with(|c| c.get()) as *mut TLwp
}

fn lwp<'a>(l: *mut TLwp) -> &'a TLwp {
    // SAFETY: callers pass live lwps (current, or checked with `live`);
    // lwps are freed only through `free_lwp`, which checks the registry.
    unsafe { &*l }
}

fn holds_cpu() -> bool {
    let c = cur();
    !c.is_null() && lwp(c).hold.load(Ordering::SeqCst)
}

fn need_cpu(what: &str) -> bool {
    if !holds_cpu() {
        violation(format!("{what} without a CPU"));
        return false;
    }
    true
}

fn new_lwp(p: &Arc<Proc>) -> *mut TLwp {
    REG.new_lwp(p)
}

fn curproc() -> Arc<Proc> {
    let l = cur();
    assert!(!l.is_null(), "no curlwp");
    Arc::clone(&lwp(l).proc)
}

fn switch_to(l: *mut TLwp) {
    // SAFETY: `cur` is the calling thread's current lwp; `l` comes from a
    // switch upcall or was just made.
    unsafe { REG.switch_to(cur(), l, |_, new| CUR.with(|c| c.set(new as usize))) };
}

unsafe extern "C" fn schedule() {
    if holds_cpu() {
        violation("nested hyp_schedule".into());
        return;
    }
    CPU.take();
    if cur().is_null() {
        let init = REG.proc(1).expect("process 1");
        let l = new_lwp(&init);
        lwp(l).free.store(true, Ordering::SeqCst);
        switch_to(l);
    }
    lwp(cur()).hold.store(true, Ordering::SeqCst);
}

unsafe extern "C" fn unschedule() {
    if !need_cpu("hyp_unschedule") {
        return;
    }
    let l = cur();
    let lr = lwp(l);
    lr.hold.store(false, Ordering::SeqCst);
    if lr.free.load(Ordering::SeqCst) {
        lr.running.store(false, Ordering::SeqCst);
        CUR.with(|c| c.set(0));
        REG.free_lwp(l);
    } else if lr.clear.swap(false, Ordering::SeqCst) {
        lr.running.store(false, Ordering::SeqCst);
        CUR.with(|c| c.set(0));
    }
    CPU.give();
}

unsafe extern "C" fn backend_unschedule(_n: c_int, countp: *mut c_int, _il: *mut c_void) {
    if !need_cpu("hyp_backend_unschedule") {
        return;
    }
    // SAFETY: the hypervisor passes a valid pointer.
    unsafe { *countp = 0 };
    lwp(cur()).hold.store(false, Ordering::SeqCst);
    CPU.give();
}

unsafe extern "C" fn backend_schedule(_n: c_int, _il: *mut c_void) {
    let c = cur();
    if c.is_null() || lwp(c).hold.load(Ordering::SeqCst) {
        violation("hyp_backend_schedule without an lwp or with a CPU".into());
        return;
    }
    CPU.take();
    lwp(c).hold.store(true, Ordering::SeqCst);
}

unsafe extern "C" fn lwproc_switch(l: *mut Lwp) {
    if !need_cpu("hyp_lwproc_switch") {
        return;
    }
    if l.is_null() {
        lwp(cur()).clear.store(true, Ordering::SeqCst);
        return;
    }
    switch_to(l.cast());
}

unsafe extern "C" fn lwproc_release() {
    if need_cpu("hyp_lwproc_release") {
        lwp(cur()).free.store(true, Ordering::SeqCst);
    }
}

unsafe extern "C" fn lwproc_newlwp(pid: i32) -> c_int {
    if !need_cpu("hyp_lwproc_newlwp") {
        return EBUSY;
    }
    let p = REG.proc(pid);
    let Some(p) = p else { return ESRCH };
    if *p.exiting.lock().unwrap() {
        return EBUSY;
    }
    switch_to(new_lwp(&p));
    0
}

unsafe extern "C" fn lwproc_curlwp() -> *mut Lwp {
    if !need_cpu("hyp_lwproc_curlwp") || lwp(cur()).free.load(Ordering::SeqCst) {
        return core::ptr::null_mut();
    }
    cur().cast()
}

unsafe extern "C" fn lwproc_rfork(priv_: *mut c_void, _flags: c_int, comm: *const c_char) -> c_int {
    if !need_cpu("hyp_lwproc_rfork") {
        return EBUSY;
    }
    let parent = curproc();
    let name = if comm.is_null() {
        parent.comm.lock().unwrap().clone()
    } else {
        // SAFETY: the server passes a C string.
        unsafe { CStr::from_ptr(comm) }
            .to_string_lossy()
            .into_owned()
    };
    let p = REG.add_proc(|pid| Proc::new(pid, priv_ as usize, name));
    switch_to(new_lwp(&p));
    0
}

unsafe extern "C" fn lwpexit() {
    if need_cpu("hyp_lwpexit") {
        let p = curproc();
        *p.exiting.lock().unwrap() = true;
        p.cv.notify_all();
    }
}

unsafe extern "C" fn execnotify(comm: *const c_char) {
    if !need_cpu("hyp_execnotify") {
        return;
    }
    let p = curproc();
    let n = p.nlwps.load(Ordering::SeqCst);
    if n != 1 {
        violation(format!("execnotify with {n} lwps"));
    }
    *p.exiting.lock().unwrap() = false;
    // SAFETY: the server passes a C string.
    *p.comm.lock().unwrap() = unsafe { CStr::from_ptr(comm) }
        .to_string_lossy()
        .into_owned();
}

unsafe extern "C" fn getpid() -> i32 {
    if !need_cpu("hyp_getpid") {
        return -1;
    }
    curproc().pid
}

impl Proc {
    fn new(pid: i32, cookie: usize, comm: String) -> Proc {
        Proc {
            pid,
            cookie,
            comm: Mutex::new(comm),
            nlwps: AtomicUsize::new(0),
            exiting: Mutex::new(false),
            cv: Condvar::new(),
        }
    }
}

/// Runs `f` with the CPU released, as `KLOCK_WRAP` does around a
/// hypercall that blocks.
fn cpu_released<T>(f: impl FnOnce() -> T) -> T {
    rumpuser_core::sched::klock_wrap(f)
}

fn sleep_until_exit(p: &Proc) -> c_int {
    cpu_released(|| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ex = p.exiting.lock().unwrap();
        while !*ex {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return ETIMEDOUT;
            }
            ex = p.cv.wait_timeout(ex, left).unwrap().0;
        }
        WOKEN.fetch_add(1, Ordering::SeqCst);
        EINTR
    })
}

pub static PROXY: Proxy<Blocking<MemHost>> = Proxy::new();

unsafe extern "C" fn syscall(num: c_int, args: *mut c_void, rv: *mut c_long) -> c_int {
    if !need_cpu("hyp_syscall") {
        return EBUSY;
    }
    // SAFETY: the server pads argument buffers to 16 slots.
    let a = unsafe { core::slice::from_raw_parts(args as *const u64, 16) };
    // SAFETY: two writable longs.
    let rv = unsafe { core::slice::from_raw_parts_mut(rv, 2) };
    let p = curproc();
    let cookie = p.cookie as *mut c_void;
    match num as u32 {
        SYS_GETPID => {
            rv[0] = p.pid as c_long;
            0
        }
        SYS_SLEEP => sleep_until_exit(&p),
        SYS_COPY => {
            let (src, len, dst) = (a[0], a[1] as usize, a[2]);
            let mut buf = vec![0u8; len];
            let e = match cpu_released(|| PROXY.copyin(cookie, src as *const c_void, &mut buf)) {
                Ok(()) => 0,
                Err(e) => e.raw(),
            };
            *LAST_COPYIN.lock().unwrap() = Some(e);
            if e != 0 {
                return e;
            }
            buf.make_ascii_uppercase();
            rv[0] = len as c_long;
            match cpu_released(|| PROXY.copyout(cookie, &buf, dst as *mut c_void)) {
                Ok(()) => 0,
                Err(e) => e.raw(),
            }
        }
        SYS_BIGOUT => {
            // Copies out `len` bytes of a pattern in 64 KiB pieces.
            let (dst, len) = (a[0], a[1] as usize);
            let data: Vec<u8> = (0..len).map(pattern).collect();
            for (i, piece) in data.chunks(65536).enumerate() {
                let to = (dst as usize + i * 65536) as *mut c_void;
                if let Err(e) = cpu_released(|| PROXY.copyout(cookie, piece, to)) {
                    return e.raw();
                }
            }
            rv[0] = len as c_long;
            0
        }
        SYS_FINI if a[0] == FINI_MAGIC => {
            // As the kernel's cpu_reboot: with the CPU held.
            PROXY.fini(cookie);
            rv[0] = 777;
            0
        }
        SYS_PING => {
            rv[0] = a[0] as c_long + 1;
            0
        }
        _ => ENOSYS,
    }
}

static HYPERUP: Hyperup = Hyperup {
    hyp_schedule: Some(schedule),
    hyp_unschedule: Some(unschedule),
    hyp_backend_unschedule: Some(backend_unschedule),
    hyp_backend_schedule: Some(backend_schedule),
    hyp_lwproc_switch: Some(lwproc_switch),
    hyp_lwproc_release: Some(lwproc_release),
    hyp_lwproc_rfork: Some(lwproc_rfork),
    hyp_lwproc_newlwp: Some(lwproc_newlwp),
    hyp_lwproc_curlwp: Some(lwproc_curlwp),
    hyp_syscall: Some(syscall),
    hyp_lwpexit: Some(lwpexit),
    hyp_execnotify: Some(execnotify),
    hyp_getpid: Some(getpid),
    hyp_extra: [core::ptr::null_mut(); 8],
};

pub fn boot() {
    REG.boot(Proc::new(1, 0, "rumplocal".into()));
    rumpuser_core::sched::install(&HYPERUP);
    rumpuser_core::diag::set_sink(|b| {
        use std::io::Write;
        let _ = std::io::stderr().write_all(b);
    });
}

/// Pids of every process but 1.
pub fn pids() -> Vec<i32> {
    REG.pids()
}

/// Processes with a second lwp (a system call in progress).
pub fn sleeping() -> usize {
    REG.procs()
        .iter()
        .filter(|p| p.nlwps.load(Ordering::SeqCst) >= 2)
        .count()
}

pub fn comm_of(pid: i32) -> Option<String> {
    REG.proc(pid).map(|p| p.comm.lock().unwrap().clone())
}

pub fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 9)) as u8
}

// ---- the in-memory transport --------------------------------------------------------

/// Bytes a pipe holds.
const PIPE_CAP: usize = 64 * 1024;

#[derive(Default)]
struct PipeSt {
    data: VecDeque<u8>,
    /// The writer shut down: the reader sees end of stream.
    wclosed: bool,
    /// The reader shut down: the writer gets an error.
    rclosed: bool,
}

#[derive(Default)]
struct Pipe {
    st: Mutex<PipeSt>,
    cv: Condvar,
}

impl Pipe {
    fn recv(&self, buf: &mut [u8], entry: &dyn Fn()) -> usize {
        let mut st = self.st.lock().unwrap();
        while st.data.is_empty() && !st.wclosed && !st.rclosed {
            st = self.cv.wait(st).unwrap();
            drop(st);
            entry();
            st = self.st.lock().unwrap();
        }
        let n = buf.len().min(st.data.len());
        for (d, s) in buf.iter_mut().zip(st.data.drain(..n)) {
            *d = s;
        }
        self.cv.notify_all();
        n
    }

    fn send(&self, buf: &[u8], entry: &dyn Fn()) -> Result<usize, Errno> {
        let mut st = self.st.lock().unwrap();
        while st.data.len() >= PIPE_CAP && !st.rclosed && !st.wclosed {
            st = self.cv.wait(st).unwrap();
            drop(st);
            entry();
            st = self.st.lock().unwrap();
        }
        if st.rclosed || st.wclosed {
            return Err(Errno::ENOTCONN);
        }
        let n = buf.len().min(PIPE_CAP - st.data.len());
        st.data.extend(&buf[..n]);
        self.cv.notify_all();
        Ok(n)
    }

    fn close_write(&self) {
        self.st.lock().unwrap().wclosed = true;
        self.cv.notify_all();
    }

    fn close_read(&self) {
        self.st.lock().unwrap().rclosed = true;
        self.cv.notify_all();
    }
}

/// One end of a connection.
pub struct End {
    rx: Arc<Pipe>,
    tx: Arc<Pipe>,
    closed: AtomicBool,
}

impl End {
    fn shutdown(&self) {
        self.tx.close_write();
        self.rx.close_read();
    }
}

/// A listening address of the transport.
pub struct MemListener {
    addr: SocketAddr,
    q: Mutex<VecDeque<End>>,
    cv: Condvar,
}

static LISTENERS: Mutex<Vec<Arc<MemListener>>> = Mutex::new(Vec::new());
/// Server-side connection ends not closed yet.
pub static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Transport calls made (each a kernel entry on a guest).
pub static CALLS: AtomicU64 = AtomicU64::new(0);

/// A transport call is a kernel entry on a guest: it needs the CPU, and
/// the caller must hold none and have no lwp (else it would run as a
/// client's lwp, on that process's descriptors).
fn entry() {
    if !cur().is_null() {
        violation("a socket call from a thread with an lwp (a kernel thread)".into());
    }
    CPU.take();
    CPU.give();
}

/// The in-memory transport (TCP addresses only).
pub struct MemTransport;

impl Transport for MemTransport {
    type Listener = Arc<MemListener>;
    type Sock = End;

    fn listen(url: &SpUrl, _cfg: &Config, _backlog: c_int) -> Result<Self::Listener, Errno> {
        entry();
        let SpUrl::Tcp(addr) = url else {
            return Err(Errno::EOPNOTSUPP);
        };
        let mut ls = LISTENERS.lock().unwrap();
        if ls.iter().any(|l| l.addr == *addr) {
            return Err(Errno::EADDRINUSE);
        }
        let l = Arc::new(MemListener {
            addr: *addr,
            q: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
        });
        ls.push(Arc::clone(&l));
        Ok(l)
    }

    fn unix_path(_l: &Self::Listener) -> Option<&CStr> {
        None
    }

    fn tcp_addr(l: &Self::Listener) -> Option<SocketAddr> {
        Some(l.addr)
    }

    fn unlink(_path: &CStr) {}

    fn accept(l: &Self::Listener) -> Result<Option<End>, Errno> {
        entry();
        CALLS.fetch_add(1, Ordering::Relaxed);
        let mut q = l.q.lock().unwrap();
        loop {
            if let Some(e) = q.pop_front() {
                OPEN.fetch_add(1, Ordering::SeqCst);
                return Ok(Some(e));
            }
            q = l.cv.wait(q).unwrap();
            drop(q);
            entry();
            q = l.q.lock().unwrap();
        }
    }

    fn send(s: &End, buf: &[u8]) -> Result<usize, Errno> {
        entry();
        CALLS.fetch_add(1, Ordering::Relaxed);
        if s.closed.load(Ordering::SeqCst) {
            violation("send on a closed socket".into());
        }
        s.tx.send(buf, &entry)
    }

    fn recv(s: &End, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        entry();
        CALLS.fetch_add(1, Ordering::Relaxed);
        if s.closed.load(Ordering::SeqCst) {
            violation("recv on a closed socket".into());
        }
        Ok(Some(s.rx.recv(buf, &entry)))
    }

    fn shutdown(s: &End) {
        entry();
        s.shutdown();
    }

    fn close(s: &End) {
        entry();
        if s.closed.swap(true, Ordering::SeqCst) {
            violation("socket closed twice".into());
            return;
        }
        s.shutdown();
        OPEN.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connects to the listener on `port`: the client's end, `None` without
/// a listener.
pub fn connect(port: u16) -> Option<ClientEnd> {
    let l = LISTENERS
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.addr.port() == port)
        .cloned()?;
    let (c2s, s2c) = (Arc::new(Pipe::default()), Arc::new(Pipe::default()));
    l.q.lock().unwrap().push_back(End {
        rx: Arc::clone(&c2s),
        tx: Arc::clone(&s2c),
        closed: AtomicBool::new(false),
    });
    l.cv.notify_all();
    Some(ClientEnd(End {
        rx: s2c,
        tx: c2s,
        closed: AtomicBool::new(false),
    }))
}

// ---- the host: std threads and locks --------------------------------------------------

/// A std mutex as the server's lock.
pub struct StdLock<T>(Mutex<T>);

impl<T: Send> Lock<T> for StdLock<T> {
    type Guard<'a>
        = MutexGuard<'a, T>
    where
        T: 'a;
    fn new(v: T) -> Self {
        StdLock(Mutex::new(v))
    }
    fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// std locks and a monotonic clock.
pub struct StdLocks;

static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

impl Locks for StdLocks {
    type Mutex<T: Send> = StdLock<T>;
    type Cond = Condvar;

    fn wait<'a, T: Send>(
        cv: &Condvar,
        _m: &'a StdLock<T>,
        g: MutexGuard<'a, T>,
    ) -> MutexGuard<'a, T> {
        cv.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    fn wait_until<'a, T: Send>(
        cv: &Condvar,
        _m: &'a StdLock<T>,
        g: MutexGuard<'a, T>,
        deadline: u64,
    ) -> MutexGuard<'a, T> {
        let left = Duration::from_nanos(deadline.saturating_sub(Self::now_ns()));
        cv.wait_timeout(g, left)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    fn notify_one(cv: &Condvar) {
        cv.notify_one()
    }

    fn notify_all(cv: &Condvar) {
        cv.notify_all()
    }

    fn now_ns() -> u64 {
        EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }
}

/// `RUMPUSER_SP_*` parameters the next `sp_init` reads.
pub static PARAMS: Mutex<Vec<(&str, &str)>> = Mutex::new(Vec::new());
pub static GLOBALS: LazyGlobals<Blocking<MemHost>> = LazyGlobals::new();

/// The host of the blocking runtime: std threads and locks, the
/// in-memory transport.
pub struct MemHost;

impl Host for MemHost {
    type Locks = StdLocks;
    type Transport = MemTransport;

    fn globals() -> &'static Globals<Blocking<MemHost>> {
        GLOBALS.get()
    }

    fn config() -> Config {
        let p = PARAMS.lock().unwrap().clone();
        Config::from_lookup(|n| p.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string()))
    }

    fn random(buf: &mut [u8]) -> bool {
        static N: AtomicU64 = AtomicU64::new(0x1234_5678);
        for b in buf {
            *b = (N.fetch_add(0x9e37_79b9, Ordering::Relaxed) >> 13) as u8;
        }
        true
    }

    fn spawn(f: Box<dyn FnOnce() + Send>, name: &'static str) -> Result<(), Errno> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map(drop)
            .map_err(|_| Errno::EAGAIN)
    }
}

/// The client's end of a connection. Dropping it shuts the connection
/// down, as closing a socket would.
pub struct ClientEnd(End);

impl Duplex for ClientEnd {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        Ok(self.0.rx.recv(b, &|| {}))
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        let mut off = 0;
        while off < b.len() {
            match self.0.tx.send(&b[off..], &|| {}) {
                Ok(n) => off += n,
                Err(e) => return Err(std::io::Error::from_raw_os_error(e.raw())),
            }
        }
        Ok(())
    }

    fn shutdown(&self) {
        self.0.shutdown();
    }
}

impl Drop for ClientEnd {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// `rumpuser_sp_init(url)` on the server, as NetBSD 7.99.34 amd64.
pub fn sp_init(url: &str) -> Result<(), Errno> {
    let u = std::ffi::CString::new(url).unwrap();
    PROXY.init(&u, c"NetBSD", c"7.99.34", c"amd64")
}

/// Fails if the model recorded a violation.
pub fn no_violations() {
    let v = REG.violations.list();
    assert!(v.is_empty(), "model violations: {v:#?}");
}

/// Clients the server holds.
pub fn live() -> usize {
    GLOBALS.get().live_clients()
}

/// `(pid, lwps)` of every process.
pub fn nlwps_by_pid() -> Vec<(i32, usize)> {
    REG.procs()
        .iter()
        .map(|p| (p.pid, p.nlwps.load(Ordering::SeqCst)))
        .collect()
}
