//! The syscall proxy server's blocking runtime (`sp::server::blocking`,
//! what bare metal and Xen run on their own kernel's sockets) against an
//! in-memory transport and a model kernel, on host threads.
//!
//! The transport behaves like a guest kernel's sockets: every call is a
//! kernel entry (it needs the model's one virtual CPU, and a thread that
//! makes one must hold no CPU and have no lwp of a client's process, or
//! the call would act on that process's descriptors); `accept`, `recv`
//! and `send` block the calling thread only; a pipe holds 64 KiB, so a
//! client that does not read stops the server's writer.
//!
//! One test function, because the upcall table is installed once per
//! process: handshake and system calls, copyin/copyout from a kernel
//! thread (the writer thread sends for it), output far above the high
//! water mark, pipelined and concurrent clients, clients that disconnect
//! mid-call and mid-copyin, the client and queue limits, frame limits and
//! protocol violations, prefork/fork and prefork expiry, exec, `sp_fini`
//! from a client's system call (with the one CPU held) and what follows.

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use rumpuser_core::abi::{Hyperup, Lwp};
use rumpuser_core::sp::server::blocking::{Blocking, Host};
use rumpuser_core::sp::server::{Config, Globals, LazyGlobals, Lock, Locks, Proxy, Transport};
use rumpuser_core::sp::url::SpUrl;
use rumpuser_core::sp::wire::*;
use rumpuser_core::sysproxy::SysProxy;
use rumpuser_core::Errno;
use rumpuser_testkit::sp::client::{Client, CopyinMode, Duplex};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// ---- the model kernel -------------------------------------------------------------

const SYS_GETPID: u32 = 20;
const SYS_SLEEP: u32 = 500;
const SYS_COPY: u32 = 501;
const SYS_FINI: u32 = 508;
const SYS_PING: u32 = 509;
const SYS_BIGOUT: u32 = 510;
const FINI_MAGIC: u64 = 0xf1f1_f1f1;

const EINTR: c_int = 4;
const ESRCH: c_int = 3;
const EBUSY: c_int = 16;
const ENOSYS: c_int = 78;
const ETIMEDOUT: c_int = 60;
const EFAULT: c_int = 14;

struct Proc {
    pid: i32,
    cookie: usize,
    comm: Mutex<String>,
    nlwps: AtomicUsize,
    exiting: Mutex<bool>,
    cv: Condvar,
}

struct TLwp {
    proc: Arc<Proc>,
    /// Freed at unschedule (temporary lwp, or released).
    free: AtomicBool,
    /// `switch(NULL)`: curlwp cleared at unschedule.
    clear: AtomicBool,
    running: AtomicBool,
    /// Its thread holds the CPU.
    hold: AtomicBool,
}

struct Kernel {
    procs: HashMap<i32, Arc<Proc>>,
    next_pid: i32,
    lwps: HashSet<usize>,
}

static K: Mutex<Option<Kernel>> = Mutex::new(None);
/// One virtual CPU, as on the guests.
static CPU: Mutex<bool> = Mutex::new(true);
static CPU_CV: Condvar = Condvar::new();
static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Sleepers woken by `hyp_lwpexit`.
static WOKEN: AtomicUsize = AtomicUsize::new(0);
static LAST_COPYIN: Mutex<Option<c_int>> = Mutex::new(None);

thread_local! {
    static CUR: Cell<usize> = const { Cell::new(0) };
}

fn k() -> MutexGuard<'static, Option<Kernel>> {
    K.lock().unwrap_or_else(|e| e.into_inner())
}

fn violation(s: String) {
    eprintln!("MODEL VIOLATION: {s}");
    VIOLATIONS.lock().unwrap().push(s);
}

fn cpu_take() {
    let mut free = CPU.lock().unwrap();
    while !*free {
        free = CPU_CV.wait(free).unwrap();
    }
    *free = false;
}

fn cpu_give() {
    *CPU.lock().unwrap() = true;
    CPU_CV.notify_one();
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
    p.nlwps.fetch_add(1, Ordering::SeqCst);
    let l = Box::into_raw(Box::new(TLwp {
        proc: Arc::clone(p),
        free: AtomicBool::new(false),
        clear: AtomicBool::new(false),
        running: AtomicBool::new(false),
        hold: AtomicBool::new(false),
    }));
    k().as_mut().unwrap().lwps.insert(l as usize);
    l
}

fn free_lwp(l: *mut TLwp) {
    if !k().as_mut().unwrap().lwps.remove(&(l as usize)) {
        violation("double free of an lwp".into());
        return;
    }
    // SAFETY: made by `new_lwp`, freed once (checked above).
    let l = unsafe { Box::from_raw(l) };
    if l.proc.nlwps.fetch_sub(1, Ordering::SeqCst) == 1 && l.proc.pid != 1 {
        k().as_mut().unwrap().procs.remove(&l.proc.pid);
    }
}

fn lwp_live(l: *mut TLwp) -> bool {
    k().as_ref().unwrap().lwps.contains(&(l as usize))
}

fn curproc() -> Arc<Proc> {
    let l = cur();
    assert!(!l.is_null(), "no curlwp");
    Arc::clone(&lwp(l).proc)
}

fn switch_to(l: *mut TLwp) {
    let old = cur();
    if !l.is_null() {
        if !lwp_live(l) {
            violation("switch to a freed lwp".into());
            return;
        }
        if lwp(l).running.swap(true, Ordering::SeqCst) {
            violation("switch to an lwp that is already running".into());
            return;
        }
        lwp(l).clear.store(false, Ordering::SeqCst);
    }
    CUR.with(|c| c.set(l as usize));
    if !old.is_null() {
        let o = lwp(old);
        o.running.store(false, Ordering::SeqCst);
        if !l.is_null() {
            lwp(l)
                .hold
                .store(o.hold.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        o.hold.store(false, Ordering::SeqCst);
        if o.free.load(Ordering::SeqCst) {
            free_lwp(old);
        }
    }
}

unsafe extern "C" fn schedule() {
    if holds_cpu() {
        violation("nested hyp_schedule".into());
        return;
    }
    cpu_take();
    if cur().is_null() {
        let init = Arc::clone(k().as_ref().unwrap().procs.get(&1).unwrap());
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
        free_lwp(l);
    } else if lr.clear.swap(false, Ordering::SeqCst) {
        lr.running.store(false, Ordering::SeqCst);
        CUR.with(|c| c.set(0));
    }
    cpu_give();
}

unsafe extern "C" fn backend_unschedule(_n: c_int, countp: *mut c_int, _il: *mut c_void) {
    if !need_cpu("hyp_backend_unschedule") {
        return;
    }
    // SAFETY: the hypervisor passes a valid pointer.
    unsafe { *countp = 0 };
    lwp(cur()).hold.store(false, Ordering::SeqCst);
    cpu_give();
}

unsafe extern "C" fn backend_schedule(_n: c_int, _il: *mut c_void) {
    let c = cur();
    if c.is_null() || lwp(c).hold.load(Ordering::SeqCst) {
        violation("hyp_backend_schedule without an lwp or with a CPU".into());
        return;
    }
    cpu_take();
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
    let p = k().as_ref().unwrap().procs.get(&pid).cloned();
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
    let pid = {
        let mut g = k();
        let kk = g.as_mut().unwrap();
        kk.next_pid += 1;
        kk.next_pid - 1
    };
    let p = Arc::new(Proc::new(pid, priv_ as usize, name));
    k().as_mut().unwrap().procs.insert(pid, Arc::clone(&p));
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

static PROXY: Proxy<Blocking<Mem>> = Proxy::new();

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

fn boot() {
    *k() = Some(Kernel {
        procs: HashMap::new(),
        next_pid: 2,
        lwps: HashSet::new(),
    });
    let init = Arc::new(Proc::new(1, 0, "rumplocal".into()));
    k().as_mut().unwrap().procs.insert(1, init);
    rumpuser_core::sched::install(&HYPERUP);
    rumpuser_core::diag::set_sink(|b| {
        use std::io::Write;
        let _ = std::io::stderr().write_all(b);
    });
}

/// Pids of every process but 1.
fn pids() -> Vec<i32> {
    let mut v: Vec<i32> = k()
        .as_ref()
        .unwrap()
        .procs
        .keys()
        .copied()
        .filter(|&p| p != 1)
        .collect();
    v.sort();
    v
}

/// Processes with a second lwp (a system call in progress).
fn sleeping() -> usize {
    k().as_ref()
        .unwrap()
        .procs
        .values()
        .filter(|p| p.nlwps.load(Ordering::SeqCst) >= 2)
        .count()
}

fn comm_of(pid: i32) -> Option<String> {
    let p = k().as_ref().unwrap().procs.get(&pid).cloned();
    p.map(|p| p.comm.lock().unwrap().clone())
}

fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

fn pattern(i: usize) -> u8 {
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
struct End {
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

struct MemListener {
    addr: SocketAddr,
    q: Mutex<VecDeque<End>>,
    cv: Condvar,
}

static LISTENERS: Mutex<Vec<Arc<MemListener>>> = Mutex::new(Vec::new());
/// Server-side connection ends not closed yet.
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Transport calls made (each a kernel entry on a guest).
static CALLS: AtomicU64 = AtomicU64::new(0);

/// A transport call is a kernel entry on a guest: it needs the CPU, and
/// the caller must hold none and have no lwp (else it would run as a
/// client's lwp, on that process's descriptors).
fn entry() {
    if !cur().is_null() {
        violation("a socket call from a thread with an lwp (a kernel thread)".into());
    }
    cpu_take();
    cpu_give();
}

struct MemTransport;

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

fn connect_end(port: u16) -> Option<End> {
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
    Some(End {
        rx: s2c,
        tx: c2s,
        closed: AtomicBool::new(false),
    })
}

// ---- the host: std threads and locks --------------------------------------------------

struct StdLock<T>(Mutex<T>);

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

struct StdLocks;

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
static PARAMS: Mutex<Vec<(&str, &str)>> = Mutex::new(Vec::new());
static GLOBALS: LazyGlobals<Blocking<Mem>> = LazyGlobals::new();

struct Mem;

impl Host for Mem {
    type Locks = StdLocks;
    type Transport = MemTransport;

    fn globals() -> &'static Globals<Blocking<Mem>> {
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

// ---- the kit's protocol client over the in-memory transport --------------------------

/// The client's end of a connection. Dropping it shuts the connection
/// down, as closing a socket would.
struct ClientEnd(End);

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

/// Connects and reads the banner; `None` if there is no listener or the
/// server closes first.
fn connect(port: u16) -> Option<Client> {
    let c = Client::over(Box::new(ClientEnd(connect_end(port)?))).ok()?;
    assert!(c.banner.starts_with(b"RUMPSP-0.4-NetBSD"), "{:?}", c.banner);
    Some(c)
}

fn guest(port: u16, name: &str) -> Client {
    let mut c = connect(port).expect("connect");
    assert_eq!(c.guest(name).ok(), Some(0));
    c
}

// ---- the scenario ---------------------------------------------------------------------

fn step(name: &str) {
    println!("--- {name}");
}

fn sp_init(url: &str) -> Result<(), Errno> {
    let u = std::ffi::CString::new(url).unwrap();
    PROXY.init(&u, c"NetBSD", c"7.99.34", c"amd64")
}

fn no_violations() {
    let v = VIOLATIONS.lock().unwrap();
    assert!(v.is_empty(), "model violations: {v:#?}");
}

fn live() -> usize {
    GLOBALS.get().live_clients()
}

/// Every client gone: processes released, sockets closed.
fn all_gone(what: &str) {
    assert!(
        eventually(10, || live() == 0
            && pids().is_empty()
            && OPEN.load(Ordering::SeqCst) == 0),
        "{what}: live {} pids {:?} open sockets {}",
        live(),
        pids(),
        OPEN.load(Ordering::SeqCst)
    );
}

#[test]
fn blocking_server_on_an_in_memory_transport() {
    boot();
    *PARAMS.lock().unwrap() = vec![
        ("RUMPUSER_SP_MAXCLIENTS", "4"),
        ("RUMPUSER_SP_MAXWORKERS", "3"),
        ("RUMPUSER_SP_IDLEWORKERS", "1"),
        ("RUMPUSER_SP_MAXQUEUE", "2"),
        ("RUMPUSER_SP_PREFORK_TIMEOUT", "1"),
    ];

    step("sp_init: a guest kernel's transport has no unix sockets; TCP; a second server");
    assert_eq!(sp_init("unix:///tmp/x.sock"), Err(Errno::EOPNOTSUPP));
    assert_eq!(sp_init("tcp://1.2.3.4:99999"), Err(Errno::ERANGE));
    assert_eq!(sp_init("tcp://10.0.2.15:5555"), Ok(()));
    assert_eq!(sp_init("tcp://10.0.2.15:5556"), Err(Errno::EBUSY));
    assert_eq!(
        GLOBALS.get().tcp_address(),
        Some("10.0.2.15:5555".parse().unwrap())
    );
    let port = 5555;

    step("handshake, system calls, an unknown one, the process name");
    let mut c = guest(port, "first");
    assert_eq!(c.syscall(SYS_PING, &[41]).unwrap(), (0, [42, 0]));
    assert_eq!(c.syscall(9999, &[]).unwrap().0, ENOSYS);
    let (e, [pid, _]) = c.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(e, 0);
    assert!(pid > 1);
    assert_eq!(comm_of(pid as i32).as_deref(), Some("first"));
    assert_eq!(live(), 1);

    step("copyin and copyout from a kernel thread (the writer thread sends for it)");
    let src = c.mem.alloc(b"hello, guest kernel");
    let dst = c.mem.alloc(&[0u8; 19]);
    assert_eq!(c.syscall(SYS_COPY, &[src, 19, dst]).unwrap(), (0, [19, 0]));
    assert_eq!(c.mem.read(dst, 19), b"HELLO, GUEST KERNEL");

    step("3 MiB of copyout through 64 KiB pipes: senders wait at the high-water mark");
    let len = 3 << 20;
    let big = c.mem.alloc(&vec![0u8; len]);
    assert_eq!(
        c.syscall(SYS_BIGOUT, &[big, len as u64]).unwrap(),
        (0, [len as c_long, 0])
    );
    let out = c.mem.read(big, len);
    assert!(
        out.len() == len && out.iter().enumerate().all(|(i, &b)| b == pattern(i)),
        "copied out as sent"
    );

    step("200 pipelined system calls");
    let reqs: Vec<u64> = (0..200)
        .map(|i| c.send_syscall(SYS_PING, &[i]).unwrap())
        .collect();
    for (i, r) in reqs.into_iter().enumerate() {
        // The queue holds 2: some are refused with TRYAGAIN, the rest answered.
        match c.syscall_outcome(r).expect("answer") {
            Ok(res) => assert_eq!(res, (0, [i as c_long + 1, 0])),
            Err(code) => assert_eq!(code, ErrorCode::TryAgain as u32),
        }
    }

    step("concurrent clients");
    let ts: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                let mut c = guest(port, "conc");
                for i in 0..100u64 {
                    let mut tries = 0;
                    loop {
                        let r = c.send_syscall(SYS_PING, &[i * 10 + t]).unwrap();
                        match c.syscall_outcome(r).expect("answer") {
                            Ok(res) => {
                                assert_eq!(res, (0, [(i * 10 + t) as c_long + 1, 0]));
                                break;
                            }
                            Err(_) => {
                                tries += 1;
                                assert!(tries < 1000, "always TRYAGAIN");
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                    }
                }
                c.close();
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    c.close();
    all_gone("after the first clients");
    no_violations();

    step("a client that disconnects mid-call: its sleeping lwp is told to exit");
    let woken = WOKEN.load(Ordering::SeqCst);
    let mut c = guest(port, "sleeper");
    let _ = c.send_syscall(SYS_SLEEP, &[]).unwrap();
    assert!(eventually(5, || sleeping() == 1));
    c.close();
    assert!(eventually(5, || WOKEN.load(Ordering::SeqCst) == woken + 1));
    all_gone("after a disconnect mid-call");

    step("a client that disconnects instead of answering a copyin");
    let mut c = guest(port, "dropper");
    let src = c.mem.alloc(b"never read");
    let dst = c.mem.alloc(&[0u8; 10]);
    c.copyin = CopyinMode::Disconnect;
    let r = c.send_syscall(SYS_COPY, &[src, 10, dst]).unwrap();
    assert!(c.syscall_outcome(r).ok().is_none());
    assert!(eventually(5, || *LAST_COPYIN.lock().unwrap() == Some(EFAULT)));
    all_gone("after a disconnect mid-copyin");

    step("the client limit: the fifth is closed without a banner");
    let cs: Vec<Client> = (0..4).map(|_| guest(port, "many")).collect();
    assert_eq!(live(), 4);
    assert!(connect(port).is_none(), "a fifth client is refused");
    for c in &cs {
        c.close();
    }
    drop(cs);
    all_gone("after the client limit");
    assert!(connect(port).is_some(), "room again");
    all_gone("after the probe");

    step("the queue limit: 3 workers asleep, 2 queued, the rest refused with TRYAGAIN");
    // One at a time: three at once could find the queue full.
    let mut sleepers: Vec<Client> = (0..3).map(|_| guest(port, "busy")).collect();
    for (i, s) in sleepers.iter_mut().enumerate() {
        let _ = s.send_syscall(SYS_SLEEP, &[]).unwrap();
        assert!(eventually(5, || sleeping() == i + 1));
    }
    assert!(
        eventually(5, || sleeping() == 3),
        "three calls asleep: {:?}",
        k().as_ref()
            .unwrap()
            .procs
            .values()
            .map(|p| (p.pid, p.nlwps.load(Ordering::SeqCst)))
            .collect::<Vec<_>>()
    );
    let mut c = guest(port, "queued");
    let reqs: Vec<u64> = (0..6)
        .map(|i| c.send_syscall(SYS_PING, &[i]).unwrap())
        .collect();
    // The queued two are answered only once a worker is free: the four
    // refusals come first.
    let mut refused = HashSet::new();
    for _ in 0..4 {
        let f = c.read_frame().unwrap().expect("a frame");
        assert_eq!(f.hdr.class(), Some(Class::Error));
        assert_eq!(f.hdr.arg, ErrorCode::TryAgain as u32);
        assert!(reqs.contains(&f.hdr.reqno));
        refused.insert(f.hdr.reqno);
    }
    assert_eq!(refused.len(), 4);
    for s in &sleepers {
        s.close();
    }
    for (i, r) in reqs.iter().enumerate() {
        if !refused.contains(r) {
            assert_eq!(
                c.syscall_outcome(*r).ok(),
                Some(Ok((0, [i as c_long + 1, 0])))
            );
        }
    }
    c.close();
    drop(sleepers);
    all_gone("after the queue limit");

    step("frame limits and protocol violations close the connection");
    // A body over 4 KiB is refused from its header.
    let long = Header {
        len: (HDRSZ + 4097) as u64,
        reqno: 1,
        class: Class::Req as u16,
        typ: MsgType::Syscall as u16,
        arg: 0,
    }
    .encode();
    let mut c = guest(port, "long");
    assert!(c.send_raw(&long).is_ok());
    assert!(c.drain_to_eof().unwrap().is_empty());
    let mut c = connect(port).unwrap();
    let mut b = Vec::new();
    put_syscall_req(&mut b, 1, SYS_PING, &[0; 8]);
    assert!(c.send_raw(&b).is_ok());
    assert_eq!(
        c.drain_to_eof().unwrap(),
        vec![ErrorCode::Auth as u32],
        "no handshake"
    );
    let mut c = guest(port, "badclass");
    let bad = Header {
        len: HDRSZ as u64,
        reqno: 7,
        class: 9,
        typ: 0,
        arg: 0,
    }
    .encode();
    assert!(c.send_raw(&bad).is_ok());
    let _ = c.drain_to_eof().unwrap();
    all_gone("after violations");
    no_violations();

    step("prefork and fork; an unclaimed prefork expires after its parent left");
    let mut parent = guest(port, "parent");
    // `prefork` checks the answer is a RESP carrying a cookie.
    let auth = parent.prefork().unwrap();
    let mut child = connect(port).unwrap();
    assert_eq!(child.fork(&auth).ok(), Some(0));
    let (_, [ppid, _]) = parent.syscall(SYS_GETPID, &[]).unwrap();
    let (_, [cpid, _]) = child.syscall(SYS_GETPID, &[]).unwrap();
    assert_ne!(ppid, cpid);
    assert!(parent.prefork().is_ok());
    assert_eq!(pids().len(), 3, "parent, child, unclaimed prefork");
    parent.close();
    child.close();
    let gone = Instant::now();
    assert!(eventually(5, || live() == 0), "parent and child gone");
    // The unclaimed prefork stays for the timeout (1 s), then the reaper
    // releases it.
    assert_eq!(
        pids().len(),
        1,
        "the unclaimed prefork is kept: {:?}",
        pids()
    );
    all_gone("after the prefork expired");
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "kept for the timeout"
    );

    step("exec");
    let mut c = guest(port, "before");
    let (_, [pid, _]) = c.syscall(SYS_GETPID, &[]).unwrap();
    assert_eq!(c.exec("after").ok(), Some(0));
    assert_eq!(comm_of(pid as i32).as_deref(), Some("after"));
    assert_eq!(c.syscall(SYS_GETPID, &[]).unwrap().1[0], pid);
    c.close();
    all_gone("after exec");

    step("sp_fini from a client's system call, with the CPU held");
    let mut c = guest(port, "halter");
    let mut other = guest(port, "bystander");
    let calls = CALLS.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let r = c.send_syscall(SYS_FINI, &[FINI_MAGIC]).unwrap();
    assert_eq!(
        c.syscall_outcome(r).ok(),
        Some(Ok((0, [0, 0]))),
        "sp_fini answers the call in flight"
    );
    // At once: the writer's kernel call gets the CPU sp_fini's caller held
    // (else the answer would wait for sp_fini's 2 s timeout).
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    assert!(CALLS.load(Ordering::Relaxed) > calls);
    assert_eq!(GLOBALS.get().tcp_address(), None);
    // The call returns from the kernel after sp_fini stopped the server.
    assert!(eventually(5, || sleeping() == 0));
    // Nothing is served any more.
    let r = other.send_syscall(SYS_PING, &[1]).unwrap();
    assert!(
        other.syscall_outcome(r).ok().is_none(),
        "no answer after sp_fini"
    );
    assert!(connect(port).is_none(), "no banner after sp_fini");
    no_violations();
}
