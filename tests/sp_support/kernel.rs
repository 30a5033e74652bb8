//! A model of the parts of a rump kernel the syscall proxy server uses:
//! virtual CPUs, processes, lwps and a handful of system calls, behind a
//! real `struct rumpuser_hyperup`. It checks the scheduling rules the
//! server must follow (no nested `hyp_schedule`, upcalls only with a CPU,
//! no switch to an lwp that is running or freed, exec only with one lwp
//! left) and counts every violation.
//!
//! It runs on either flavour (the including test defines `API`, the
//! library's C ABI): like a kernel built with `RUMP_CURLWP=hypercall` it
//! keeps the current lwp in the hypervisor's curlwp slot
//! (`rumpuser_curlwpop`/`rumpuser_curlwp`), so "the current thread" is a
//! host thread on posix and a green thread on green; the CPU an lwp's
//! thread holds is recorded in the lwp. Blocking system calls sleep on
//! the library's own mutex and condition variable, as the kernel does.
//!
//! System calls (arguments are register-sized slots):
//!
//! | num | name | behaviour |
//! |---|---|---|
//! | 20 | getpid | `[pid, ppid]` |
//! | 500 | sleep | waits until the process is told to exit (`EINTR`) or 10 s (`ETIMEDOUT`) |
//! | 501 | copy(src, len, dst) | copyin, ASCII-uppercase, copyout; `len` |
//! | 502 | str(src, max, dst) | copyinstr (needs a NUL, else `ENAMETOOLONG`), copyoutstr; bytes |
//! | 503 | mmap(len) | `rumpuser_sp_anonmmap`; the address |
//! | 504 | raise(sig) | `rumpuser_sp_raise`; its result |
//! | 505 | getcomm(dst, len) | copies out the process name |
//! | 506 | setval(v) / 507 getval | a value in the "descriptor table" (rfork copy/share/clear) |
//! | 508 | fini(magic) | `rumpuser_sp_fini(cookie)`, then returns 777 (never seen: fini answers) |
//! | 509 | ping(x) | `x + 1` |

use crate::API;
use core::ffi::{c_char, c_int, c_long, c_void, CStr};
use rumpuser_core::abi::{Hyperup, Lwp, RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_SET, RUMPUSER_MTX_KMUTEX};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const NCPU: usize = 3;

pub const SYS_GETPID: u32 = 20;
pub const SYS_SLEEP: u32 = 500;
pub const SYS_COPY: u32 = 501;
pub const SYS_STR: u32 = 502;
pub const SYS_MMAP: u32 = 503;
pub const SYS_RAISE: u32 = 504;
pub const SYS_GETCOMM: u32 = 505;
pub const SYS_SETVAL: u32 = 506;
pub const SYS_GETVAL: u32 = 507;
pub const SYS_FINI: u32 = 508;
pub const SYS_PING: u32 = 509;
/// Argument syscall 508 needs (so random frames cannot stop the server).
pub const FINI_MAGIC: u64 = 0xf1f1_f1f1;

pub const EINTR: c_int = 4;
pub const ESRCH: c_int = 3;
pub const EBUSY: c_int = 16;
pub const ENOSYS: c_int = 78;
pub const ENAMETOOLONG: c_int = 63;
pub const ETIMEDOUT: c_int = 60;

/// A `struct rumpuser_mtx *` / `struct rumpuser_cv *` of the library.
struct Obj(*mut c_void);
// SAFETY: the library's objects are made to be used from any kernel thread.
unsafe impl Send for Obj {}
// SAFETY: as above.
unsafe impl Sync for Obj {}

pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub cookie: usize,
    pub comm: Mutex<String>,
    pub nlwps: AtomicUsize,
    /// Told to exit (`hyp_lwpexit`); guarded by `mtx` for sleepers.
    exiting: AtomicBool,
    mtx: Obj,
    cv: Obj,
    pub value: Arc<AtomicI64>,
}

impl Proc {
    fn new(pid: i32, ppid: i32, cookie: usize, comm: String, value: Arc<AtomicI64>) -> Proc {
        let mut mtx = core::ptr::null_mut();
        let mut cv = core::ptr::null_mut();
        // SAFETY: valid out-pointers; a kernel (adaptive) mutex.
        unsafe {
            (API.mutex_init)(&mut mtx, RUMPUSER_MTX_KMUTEX);
            (API.cv_init)(&mut cv);
        }
        Proc {
            pid,
            ppid,
            cookie,
            comm: Mutex::new(comm),
            nlwps: AtomicUsize::new(0),
            exiting: AtomicBool::new(false),
            mtx: Obj(mtx),
            cv: Obj(cv),
            value,
        }
    }

    /// Sets the exit flag under the process mutex and wakes its sleepers
    /// (called holding a CPU, as the kernel would).
    fn set_exiting(&self, v: bool) {
        // SAFETY: the process's own library objects.
        unsafe {
            (API.mutex_enter)(self.mtx.0);
            self.exiting.store(v, Ordering::SeqCst);
            (API.cv_broadcast)(self.cv.0);
            (API.mutex_exit)(self.mtx.0);
        }
    }
}

struct TLwp {
    proc: Arc<Proc>,
    /// Free at unschedule (temporary lwp of `hyp_schedule`, or released).
    free: Cell<bool>,
    /// `switch(NULL)` asked: clear curlwp at unschedule.
    clear: Cell<bool>,
    running: Cell<bool>,
    /// The thread running this lwp holds a virtual CPU.
    hold: Cell<bool>,
}

struct Kernel {
    procs: HashMap<i32, Arc<Proc>>,
    next_pid: i32,
    lwps: HashSet<usize>,
}

static K: Mutex<Option<Kernel>> = Mutex::new(None);
static CPUS: Mutex<usize> = Mutex::new(NCPU);
static CPU_CV: Condvar = Condvar::new();
pub static VIOLATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Sleepers woken by `hyp_lwpexit`.
pub static WOKEN: AtomicUsize = AtomicUsize::new(0);
/// Result of the latest `rumpuser_sp_copyin` in syscall 501.
pub static LAST_COPYIN: Mutex<Option<c_int>> = Mutex::new(None);

fn k() -> MutexGuard<'static, Option<Kernel>> {
    K.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn violation(s: String) {
    eprintln!("MODEL VIOLATION: {s}");
    VIOLATIONS.lock().unwrap().push(s);
}

fn cpu_take() {
    let mut n = CPUS.lock().unwrap();
    while *n == 0 {
        n = CPU_CV.wait(n).unwrap();
    }
    *n -= 1;
}

fn cpu_give() {
    *CPUS.lock().unwrap() += 1;
    CPU_CV.notify_one();
}

fn holds_cpu() -> bool {
    let c = cur();
    // SAFETY: the current lwp is live.
    !c.is_null() && unsafe { (*c).hold.get() }
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
        free: Cell::new(false),
        clear: Cell::new(false),
        running: Cell::new(false),
        hold: Cell::new(false),
    }));
    k().as_mut().unwrap().lwps.insert(l as usize);
    l
}

fn free_lwp(l: *mut TLwp) {
    if !k().as_mut().unwrap().lwps.remove(&(l as usize)) {
        violation("double free of an lwp".into());
        return;
    }
    // SAFETY: `l` was created by `new_lwp` and is freed once (checked above).
    let l = unsafe { Box::from_raw(l) };
    if l.proc.nlwps.fetch_sub(1, Ordering::SeqCst) == 1 && l.proc.pid != 1 {
        k().as_mut().unwrap().procs.remove(&l.proc.pid);
    }
}

fn live(l: *mut TLwp) -> bool {
    k().as_ref().unwrap().lwps.contains(&(l as usize))
}

/// The calling thread's lwp: the hypervisor's curlwp slot.
fn cur() -> *mut TLwp {
    // SAFETY: plain call.
    unsafe { (API.curlwp)() }.cast()
}

/// Rebinds the calling thread from `old` to `new` (either may be NULL).
fn set_cur(old: *mut TLwp, new: *mut TLwp) {
    // SAFETY: the curlwp calls in the order a kernel uses them.
    unsafe {
        if !old.is_null() {
            (API.curlwpop)(RUMPUSER_LWP_CLEAR, old.cast::<Lwp>());
        }
        if !new.is_null() {
            (API.curlwpop)(RUMPUSER_LWP_SET, new.cast::<Lwp>());
        }
    }
}

/// The current process (needs a current lwp).
fn curproc() -> Arc<Proc> {
    let l = cur();
    assert!(!l.is_null(), "no curlwp");
    // SAFETY: the current lwp is live while current.
    Arc::clone(unsafe { &(*l).proc })
}

fn switch_to(l: *mut TLwp) {
    let old = cur();
    if !l.is_null() {
        if !live(l) {
            violation("switch to a freed lwp".into());
            return;
        }
        // SAFETY: checked live.
        let lr = unsafe { &*l };
        if lr.running.get() {
            violation("switch to an lwp that is already running".into());
            return;
        }
        lr.running.set(true);
        lr.clear.set(false);
    }
    set_cur(old, l);
    if !old.is_null() {
        // SAFETY: the current lwp is live.
        let o = unsafe { &*old };
        o.running.set(false);
        if !l.is_null() {
            // The thread's CPU goes with it to the new lwp.
            // SAFETY: checked live above.
            unsafe { (*l).hold.set(o.hold.get()) };
        }
        o.hold.set(false);
        if o.free.get() {
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
        // SAFETY: fresh lwp.
        unsafe { (*l).free.set(true) };
        switch_to(l);
    }
    // SAFETY: the current lwp is live (set above if there was none).
    unsafe { (*cur()).hold.set(true) };
}

unsafe extern "C" fn unschedule() {
    if !need_cpu("hyp_unschedule") {
        return;
    }
    let l = cur();
    // SAFETY: the current lwp is live (`need_cpu`).
    let lr = unsafe { &*l };
    lr.hold.set(false);
    if lr.free.get() {
        lr.running.set(false);
        set_cur(l, core::ptr::null_mut());
        free_lwp(l);
    } else if lr.clear.get() {
        lr.clear.set(false);
        lr.running.set(false);
        set_cur(l, core::ptr::null_mut());
    }
    cpu_give();
}

unsafe extern "C" fn backend_unschedule(_n: c_int, countp: *mut c_int, _il: *mut c_void) {
    if !need_cpu("hyp_backend_unschedule") {
        return;
    }
    // SAFETY: the hypervisor passes a valid pointer.
    unsafe { *countp = 0 };
    // SAFETY: the current lwp is live (`need_cpu`).
    unsafe { (*cur()).hold.set(false) };
    cpu_give();
}

unsafe extern "C" fn backend_schedule(_n: c_int, _il: *mut c_void) {
    let c = cur();
    if c.is_null() {
        violation("hyp_backend_schedule from a thread without an lwp".into());
        return;
    }
    // SAFETY: the current lwp is live.
    let c = unsafe { &*c };
    if c.hold.get() {
        violation("hyp_backend_schedule while holding a CPU".into());
        return;
    }
    cpu_take();
    c.hold.set(true);
}

unsafe extern "C" fn lwproc_switch(l: *mut Lwp) {
    if !need_cpu("hyp_lwproc_switch") {
        return;
    }
    if l.is_null() {
        let c = cur();
        if c.is_null() {
            violation("switch(NULL) without curlwp".into());
        } else {
            // SAFETY: the current lwp is live.
            unsafe { (*c).clear.set(true) };
        }
        return;
    }
    switch_to(l.cast());
}

unsafe extern "C" fn lwproc_release() {
    if !need_cpu("hyp_lwproc_release") {
        return;
    }
    let c = cur();
    if c.is_null() {
        violation("release without curlwp".into());
        return;
    }
    // SAFETY: the current lwp is live.
    unsafe { (*c).free.set(true) };
}

unsafe extern "C" fn lwproc_newlwp(pid: i32) -> c_int {
    if !need_cpu("hyp_lwproc_newlwp") {
        return EBUSY;
    }
    let p = k().as_ref().unwrap().procs.get(&pid).cloned();
    let Some(p) = p else { return ESRCH };
    if p.exiting.load(Ordering::SeqCst) {
        return EBUSY;
    }
    switch_to(new_lwp(&p));
    0
}

unsafe extern "C" fn lwproc_curlwp() -> *mut Lwp {
    if !need_cpu("hyp_lwproc_curlwp") {
        return core::ptr::null_mut();
    }
    let c = cur();
    // SAFETY: the current lwp is live.
    if c.is_null() || unsafe { (*c).free.get() } {
        core::ptr::null_mut()
    } else {
        c.cast()
    }
}

unsafe extern "C" fn lwproc_rfork(priv_: *mut c_void, flags: c_int, comm: *const c_char) -> c_int {
    if !need_cpu("hyp_lwproc_rfork") {
        return EBUSY;
    }
    let parent = curproc();
    if parent.pid == 1 && flags != 2 {
        violation(format!("rfork from proc 1 with flags {flags}"));
    }
    let name = if comm.is_null() {
        parent.comm.lock().unwrap().clone()
    } else {
        // SAFETY: the server passes a C string.
        unsafe { CStr::from_ptr(comm) }
            .to_string_lossy()
            .into_owned()
    };
    let value = match flags {
        0 => Arc::clone(&parent.value),
        1 => Arc::new(AtomicI64::new(parent.value.load(Ordering::SeqCst))),
        2 => Arc::new(AtomicI64::new(0)),
        _ => return 22,
    };
    let pid = {
        let mut g = k();
        let kk = g.as_mut().unwrap();
        kk.next_pid += 1;
        kk.next_pid - 1
    };
    let p = Arc::new(Proc::new(pid, parent.pid, priv_ as usize, name, value));
    k().as_mut().unwrap().procs.insert(pid, Arc::clone(&p));
    switch_to(new_lwp(&p));
    0
}

unsafe extern "C" fn lwpexit() {
    if !need_cpu("hyp_lwpexit") {
        return;
    }
    curproc().set_exiting(true);
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
    p.set_exiting(false);
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

/// Sleeps until the process is told to exit (`EINTR`) or 10 s pass
/// (`ETIMEDOUT`), on the library's cv as the kernel's `cv_timedwait` does
/// (the library releases the CPU while waiting).
fn sleep_until_exit(p: &Proc) -> c_int {
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: the process's own library objects; the mutex is held around
    // every wait.
    unsafe {
        (API.mutex_enter)(p.mtx.0);
        while !p.exiting.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                (API.mutex_exit)(p.mtx.0);
                return ETIMEDOUT;
            }
            (API.cv_timedwait)(
                p.cv.0,
                p.mtx.0,
                left.as_secs() as i64,
                left.subsec_nanos() as c_long,
            );
        }
        (API.mutex_exit)(p.mtx.0);
    }
    WOKEN.fetch_add(1, Ordering::SeqCst);
    EINTR
}

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
            rv[1] = p.ppid as c_long;
            0
        }
        SYS_SLEEP => sleep_until_exit(&p),
        SYS_COPY => {
            let (src, len, dst) = (a[0], a[1] as usize, a[2]);
            let mut buf = vec![0u8; len];
            // SAFETY: buffer of `len` bytes.
            let e = unsafe {
                (API.sp_copyin)(cookie, src as *const c_void, buf.as_mut_ptr().cast(), len)
            };
            *LAST_COPYIN.lock().unwrap() = Some(e);
            if e != 0 {
                return e;
            }
            buf.make_ascii_uppercase();
            // SAFETY: buffer of `len` bytes.
            let e =
                unsafe { (API.sp_copyout)(cookie, buf.as_ptr().cast(), dst as *mut c_void, len) };
            rv[0] = len as c_long;
            e
        }
        SYS_STR => {
            let (src, max, dst) = (a[0], a[1] as usize, a[2]);
            let mut buf = vec![0u8; max];
            let mut n = max;
            // SAFETY: buffer of `max` bytes.
            let e = unsafe {
                (API.sp_copyinstr)(
                    cookie,
                    src as *const c_void,
                    buf.as_mut_ptr().cast(),
                    &mut n,
                )
            };
            if e != 0 {
                return e;
            }
            if n > max {
                violation(format!("copyinstr returned {n} > {max}"));
                return 14;
            }
            if !buf[..n].contains(&0) {
                return ENAMETOOLONG;
            }
            let mut m = n;
            // SAFETY: buffer of `n` bytes.
            let e = unsafe {
                (API.sp_copyoutstr)(cookie, buf.as_ptr().cast(), dst as *mut c_void, &mut m)
            };
            rv[0] = n as c_long;
            e
        }
        SYS_MMAP => {
            let mut addr: *mut c_void = core::ptr::null_mut();
            // SAFETY: valid out-pointer.
            let e = unsafe { (API.sp_anonmmap)(cookie, a[0] as usize, &mut addr) };
            rv[0] = addr as c_long;
            e
        }
        SYS_RAISE => {
            // SAFETY: plain call.
            rv[0] = unsafe { (API.sp_raise)(cookie, a[0] as c_int) } as c_long;
            0
        }
        SYS_GETCOMM => {
            let mut name = p.comm.lock().unwrap().clone().into_bytes();
            name.push(0);
            name.truncate(a[1] as usize);
            // SAFETY: buffer of `name.len()` bytes.
            let e = unsafe {
                (API.sp_copyout)(
                    cookie,
                    name.as_ptr().cast(),
                    a[0] as *mut c_void,
                    name.len(),
                )
            };
            rv[0] = name.len() as c_long;
            e
        }
        SYS_SETVAL => {
            p.value.store(a[0] as i64, Ordering::SeqCst);
            0
        }
        SYS_GETVAL => {
            rv[0] = p.value.load(Ordering::SeqCst) as c_long;
            0
        }
        SYS_FINI if a[0] == FINI_MAGIC => {
            // SAFETY: plain call.
            unsafe { (API.sp_fini)(cookie) };
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

pub static HYPERUP: Hyperup = Hyperup {
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

/// Boots the model (process 1) and calls `rumpuser_init`.
pub fn boot() {
    *k() = Some(Kernel {
        procs: HashMap::new(),
        next_pid: 2,
        lwps: HashSet::new(),
    });
    // SAFETY: the table is a static with valid function pointers.
    let e = unsafe { (API.init)(17, &HYPERUP) };
    assert_eq!(e, 0, "rumpuser_init");
    let init = Arc::new(Proc::new(
        1,
        0,
        0,
        "rumplocal".into(),
        Arc::new(AtomicI64::new(0)),
    ));
    k().as_mut().unwrap().procs.insert(1, init);
}

/// Pids of all processes but process 1.
pub fn pids() -> Vec<i32> {
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

/// Name of process `pid`.
pub fn comm_of(pid: i32) -> Option<String> {
    let p = k().as_ref().unwrap().procs.get(&pid).cloned();
    p.map(|p| p.comm.lock().unwrap().clone())
}

/// Number of lwps alive in the model (process 1 included).
pub fn nlwps() -> usize {
    k().as_ref().unwrap().lwps.len()
}

/// Waits up to `secs` for `cond`.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}
