//! A model of the parts of a rump kernel the syscall proxy server uses:
//! virtual CPUs, processes, lwps and a handful of system calls, behind a
//! real `struct rumpuser_hyperup`. It checks the scheduling rules the
//! server must follow (no nested `hyp_schedule`, upcalls only with a CPU,
//! no switch to an lwp that is running or freed, exec only with one lwp
//! left) and counts every violation.
//!
//! It runs on either flavour ([`boot`] is given the library's C ABI): like
//! a kernel built with `RUMP_CURLWP=hypercall` it
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

pub use super::model::eventually;
use super::model::{Cpus, ModelLwp, Process, Registry};
use crate::hyp::{Cv, Hyp, Mtx};
use crate::upcalls::Kernel;
use core::ffi::{c_int, c_long, c_void, CStr};
use rumpuser_core::abi::{Lwp, RUMPUSER_LWP_CLEAR, RUMPUSER_LWP_SET, RUMPUSER_MTX_KMUTEX};
use rumpuser_core::api::Api;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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

pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub cookie: usize,
    pub comm: Mutex<String>,
    pub nlwps: AtomicUsize,
    /// Told to exit (`hyp_lwpexit`); guarded by `mtx` for sleepers.
    exiting: AtomicBool,
    mtx: Mtx,
    cv: Cv,
    pub value: Arc<AtomicI64>,
}

impl Proc {
    fn new(pid: i32, ppid: i32, cookie: usize, comm: String, value: Arc<AtomicI64>) -> Proc {
        Proc {
            pid,
            ppid,
            cookie,
            comm: Mutex::new(comm),
            nlwps: AtomicUsize::new(0),
            exiting: AtomicBool::new(false),
            // A kernel (adaptive) mutex.
            mtx: hyp().mutex(RUMPUSER_MTX_KMUTEX),
            cv: hyp().cv(),
            value,
        }
    }

    /// Sets the exit flag under the process mutex and wakes its sleepers
    /// (called holding a CPU, as the kernel would).
    fn set_exiting(&self, v: bool) {
        self.mtx.enter();
        self.exiting.store(v, Ordering::SeqCst);
        self.cv.broadcast();
        self.mtx.exit();
    }
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

/// The library under test (set by [`boot`]).
static API: OnceLock<Hyp> = OnceLock::new();
static REG: Registry<Proc> = Registry::new();
static CPUS: Cpus = Cpus::new(NCPU);
/// Sleepers woken by `hyp_lwpexit`.
pub static WOKEN: AtomicUsize = AtomicUsize::new(0);
/// Result of the latest `rumpuser_sp_copyin` in syscall 501.
pub static LAST_COPYIN: Mutex<Option<c_int>> = Mutex::new(None);

/// The library under test.
pub fn hyp() -> Hyp {
    *API.get().expect("the sysproxy model kernel is not booted")
}

/// Records (and prints) a violation.
pub fn violation(s: String) {
    REG.violation(s);
}

/// The violations recorded so far.
pub fn violations() -> Vec<String> {
    REG.violations.list()
}

fn holds_cpu() -> bool {
    let c = cur();
    // SAFETY: the current lwp is live.
    !c.is_null() && unsafe { (*c).hold.load(Ordering::SeqCst) }
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

/// The calling thread's lwp: the hypervisor's curlwp slot.
fn cur() -> *mut TLwp {
    hyp().curlwp().cast()
}

/// Rebinds the calling thread from `old` to `new` (either may be NULL).
fn set_cur(old: *mut TLwp, new: *mut TLwp) {
    // SAFETY: the curlwp calls in the order a kernel uses them, with lwps
    // of this model (what `cur` reads back).
    unsafe {
        if !old.is_null() {
            hyp().curlwpop(RUMPUSER_LWP_CLEAR, old.cast::<Lwp>());
        }
        if !new.is_null() {
            hyp().curlwpop(RUMPUSER_LWP_SET, new.cast::<Lwp>());
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
    // SAFETY: `cur` is the calling thread's current lwp; `l` comes from a
    // switch upcall or was just made.
    unsafe { REG.switch_to(cur(), l, set_cur) };
}

/// Sleeps until the process is told to exit (`EINTR`) or 10 s pass
/// (`ETIMEDOUT`), on the library's cv as the kernel's `cv_timedwait` does
/// (the library releases the CPU while waiting).
fn sleep_until_exit(p: &Proc) -> c_int {
    let deadline = Instant::now() + Duration::from_secs(10);
    p.mtx.enter();
    while !p.exiting.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            p.mtx.exit();
            return ETIMEDOUT;
        }
        p.cv.timedwait(p.mtx, left.as_secs() as i64, left.subsec_nanos() as i64);
    }
    p.mtx.exit();
    WOKEN.fetch_add(1, Ordering::SeqCst);
    EINTR
}

/// The model kernel as a [`Kernel`]: its upcalls.
pub struct SpKernel;

impl Kernel for SpKernel {
    fn schedule() {
        if holds_cpu() {
            violation("nested hyp_schedule".into());
            return;
        }
        CPUS.take();
        if cur().is_null() {
            let init = REG.proc(1).expect("process 1");
            let l = new_lwp(&init);
            // SAFETY: fresh lwp.
            unsafe { (*l).free.store(true, Ordering::SeqCst) };
            switch_to(l);
        }
        // SAFETY: the current lwp is live (set above if there was none).
        unsafe { (*cur()).hold.store(true, Ordering::SeqCst) };
    }

    fn unschedule() {
        if !need_cpu("hyp_unschedule") {
            return;
        }
        let l = cur();
        // SAFETY: the current lwp is live (`need_cpu`).
        let lr = unsafe { &*l };
        lr.hold.store(false, Ordering::SeqCst);
        if lr.free.load(Ordering::SeqCst) {
            lr.running.store(false, Ordering::SeqCst);
            set_cur(l, core::ptr::null_mut());
            REG.free_lwp(l);
        } else if lr.clear.load(Ordering::SeqCst) {
            lr.clear.store(false, Ordering::SeqCst);
            lr.running.store(false, Ordering::SeqCst);
            set_cur(l, core::ptr::null_mut());
        }
        CPUS.give();
    }

    unsafe fn backend_unschedule(_n: c_int, count: Option<&mut c_int>, _il: *mut c_void) {
        if !need_cpu("hyp_backend_unschedule") {
            return;
        }
        match count {
            Some(c) => *c = 0,
            None => violation("hyp_backend_unschedule with NULL countp".into()),
        }
        // SAFETY: the current lwp is live (`need_cpu`).
        unsafe { (*cur()).hold.store(false, Ordering::SeqCst) };
        CPUS.give();
    }

    unsafe fn backend_schedule(_n: c_int, _il: *mut c_void) {
        let c = cur();
        if c.is_null() {
            violation("hyp_backend_schedule from a thread without an lwp".into());
            return;
        }
        // SAFETY: the current lwp is live.
        let c = unsafe { &*c };
        if c.hold.load(Ordering::SeqCst) {
            violation("hyp_backend_schedule while holding a CPU".into());
            return;
        }
        CPUS.take();
        c.hold.store(true, Ordering::SeqCst);
    }

    unsafe fn lwproc_switch(l: *mut Lwp) {
        if !need_cpu("hyp_lwproc_switch") {
            return;
        }
        if l.is_null() {
            let c = cur();
            if c.is_null() {
                violation("switch(NULL) without curlwp".into());
            } else {
                // SAFETY: the current lwp is live.
                unsafe { (*c).clear.store(true, Ordering::SeqCst) };
            }
            return;
        }
        switch_to(l.cast());
    }

    fn lwproc_release() {
        if !need_cpu("hyp_lwproc_release") {
            return;
        }
        let c = cur();
        if c.is_null() {
            violation("release without curlwp".into());
            return;
        }
        // SAFETY: the current lwp is live.
        unsafe { (*c).free.store(true, Ordering::SeqCst) };
    }

    fn lwproc_newlwp(pid: i32) -> c_int {
        if !need_cpu("hyp_lwproc_newlwp") {
            return EBUSY;
        }
        let p = REG.proc(pid);
        let Some(p) = p else { return ESRCH };
        if p.exiting.load(Ordering::SeqCst) {
            return EBUSY;
        }
        switch_to(new_lwp(&p));
        0
    }

    fn lwproc_curlwp() -> *mut Lwp {
        if !need_cpu("hyp_lwproc_curlwp") {
            return core::ptr::null_mut();
        }
        let c = cur();
        // SAFETY: the current lwp is live.
        if c.is_null() || unsafe { (*c).free.load(Ordering::SeqCst) } {
            core::ptr::null_mut()
        } else {
            c.cast()
        }
    }

    unsafe fn lwproc_rfork(priv_: *mut c_void, flags: c_int, comm: Option<&CStr>) -> c_int {
        if !need_cpu("hyp_lwproc_rfork") {
            return EBUSY;
        }
        let parent = curproc();
        if parent.pid == 1 && flags != 2 {
            violation(format!("rfork from proc 1 with flags {flags}"));
        }
        let name = match comm {
            None => parent.comm.lock().unwrap().clone(),
            Some(c) => c.to_string_lossy().into_owned(),
        };
        let value = match flags {
            0 => Arc::clone(&parent.value),
            1 => Arc::new(AtomicI64::new(parent.value.load(Ordering::SeqCst))),
            2 => Arc::new(AtomicI64::new(0)),
            _ => return 22,
        };
        let p = REG.add_proc(|pid| Proc::new(pid, parent.pid, priv_ as usize, name, value));
        switch_to(new_lwp(&p));
        0
    }

    fn lwpexit() {
        if !need_cpu("hyp_lwpexit") {
            return;
        }
        curproc().set_exiting(true);
    }

    fn execnotify(comm: Option<&CStr>) {
        if !need_cpu("hyp_execnotify") {
            return;
        }
        let p = curproc();
        let n = p.nlwps.load(Ordering::SeqCst);
        if n != 1 {
            violation(format!("execnotify with {n} lwps"));
        }
        p.set_exiting(false);
        match comm {
            Some(c) => *p.comm.lock().unwrap() = c.to_string_lossy().into_owned(),
            None => violation("execnotify without a name".into()),
        }
    }

    fn getpid() -> i32 {
        if !need_cpu("hyp_getpid") {
            return -1;
        }
        curproc().pid
    }

    unsafe fn syscall(num: c_int, args: *mut c_void, rv: &mut [c_long; 2]) -> c_int {
        if !need_cpu("hyp_syscall") {
            return EBUSY;
        }
        // SAFETY: the server pads argument buffers to 16 slots.
        let a = unsafe { core::slice::from_raw_parts(args as *const u64, 16) };
        let api = hyp().api();
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
                    (api.sp_copyin)(cookie, src as *const c_void, buf.as_mut_ptr().cast(), len)
                };
                *LAST_COPYIN.lock().unwrap() = Some(e);
                if e != 0 {
                    return e;
                }
                buf.make_ascii_uppercase();
                // SAFETY: buffer of `len` bytes.
                let e = unsafe {
                    (api.sp_copyout)(cookie, buf.as_ptr().cast(), dst as *mut c_void, len)
                };
                rv[0] = len as c_long;
                e
            }
            SYS_STR => {
                let (src, max, dst) = (a[0], a[1] as usize, a[2]);
                let mut buf = vec![0u8; max];
                let mut n = max;
                // SAFETY: buffer of `max` bytes.
                let e = unsafe {
                    (api.sp_copyinstr)(
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
                    (api.sp_copyoutstr)(cookie, buf.as_ptr().cast(), dst as *mut c_void, &mut m)
                };
                rv[0] = n as c_long;
                e
            }
            SYS_MMAP => {
                let mut addr: *mut c_void = core::ptr::null_mut();
                // SAFETY: valid out-pointer.
                let e = unsafe { (api.sp_anonmmap)(cookie, a[0] as usize, &mut addr) };
                rv[0] = addr as c_long;
                e
            }
            SYS_RAISE => {
                // SAFETY: plain call.
                rv[0] = unsafe { (api.sp_raise)(cookie, a[0] as c_int) } as c_long;
                0
            }
            SYS_GETCOMM => {
                let mut name = p.comm.lock().unwrap().clone().into_bytes();
                name.push(0);
                name.truncate(a[1] as usize);
                // SAFETY: buffer of `name.len()` bytes.
                let e = unsafe {
                    (api.sp_copyout)(
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
                // SAFETY: the client's cookie (from rfork).
                unsafe { (api.sp_fini)(cookie) };
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
}

/// Boots the model (process 1) and initialises `api`'s library with it
/// (once per process: `rumpuser_init`).
pub fn boot(api: &'static Api) {
    assert!(
        API.set(Hyp::new(api)).is_ok(),
        "the sysproxy model kernel is booted once"
    );
    let e = hyp().init::<SpKernel>();
    assert_eq!(e, 0, "rumpuser_init");
    REG.boot(Proc::new(
        1,
        0,
        0,
        "rumplocal".into(),
        Arc::new(AtomicI64::new(0)),
    ));
}

/// Pids of all processes but process 1.
pub fn pids() -> Vec<i32> {
    REG.pids()
}

/// Name of process `pid`.
pub fn comm_of(pid: i32) -> Option<String> {
    REG.proc(pid).map(|p| p.comm.lock().unwrap().clone())
}

/// Number of lwps alive in the model (process 1 included).
pub fn nlwps() -> usize {
    REG.nlwps()
}
