//! What the kit's two syscall proxy model kernels share ([`super::kernel`]
//! on a library's C ABI, [`super::onecpu`] with no library underneath):
//! virtual CPUs ([`Cpus`]), the record of violations ([`Violations`]), and
//! the registry of processes and lwps ([`Registry`]) with its lwp records
//! ([`ModelLwp`]) and the switch from one lwp to another. Where the
//! current lwp is kept (the hypervisor's slot, a thread-local) and what a
//! process holds besides its pid and lwp count are each kernel's own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Virtual CPUs: a count of free ones, taken and given by host threads.
pub struct Cpus {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Cpus {
    /// `n` CPUs, all free.
    pub const fn new(n: usize) -> Cpus {
        Cpus {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    /// Waits for a free CPU and takes it.
    pub fn take(&self) {
        let mut n = self.free.lock().unwrap();
        while *n == 0 {
            n = self.cv.wait(n).unwrap();
        }
        *n -= 1;
    }

    /// Gives a CPU back.
    pub fn give(&self) {
        *self.free.lock().unwrap() += 1;
        self.cv.notify_one();
    }
}

/// Broken scheduling rules, recorded (and printed) as they happen.
pub struct Violations(Mutex<Vec<String>>);

impl Violations {
    pub const fn new() -> Violations {
        Violations(Mutex::new(Vec::new()))
    }

    /// Records (and prints) one.
    pub fn record(&self, s: String) {
        eprintln!("MODEL VIOLATION: {s}");
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    /// Those recorded so far.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Default for Violations {
    fn default() -> Violations {
        Violations::new()
    }
}

/// What the registry needs of a kernel's process.
pub trait Process: Send + Sync {
    fn pid(&self) -> i32;
    /// Its lwps (the registry counts them up and down).
    fn nlwps(&self) -> &AtomicUsize;
}

/// An lwp: its process and its scheduling state. Made by
/// [`Registry::new_lwp`] and handed to the kernel's caller by pointer (a
/// `struct lwp *`); live until [`Registry::free_lwp`].
pub struct ModelLwp<P> {
    pub proc: Arc<P>,
    /// Free at unschedule (temporary lwp of `hyp_schedule`, or released).
    pub free: AtomicBool,
    /// `switch(NULL)` asked: clear curlwp at unschedule.
    pub clear: AtomicBool,
    pub running: AtomicBool,
    /// The thread running this lwp holds a virtual CPU.
    pub hold: AtomicBool,
}

struct State<P> {
    procs: HashMap<i32, Arc<P>>,
    next_pid: i32,
    lwps: HashSet<usize>,
}

/// The processes (by pid; process 1 is the kernel's own and stays) and
/// the live lwps of a model kernel, and its violations.
pub struct Registry<P> {
    st: Mutex<Option<State<P>>>,
    pub violations: Violations,
}

impl<P: Process> Registry<P> {
    /// An empty registry; [`Registry::boot`] adds process 1.
    pub const fn new() -> Registry<P> {
        Registry {
            st: Mutex::new(None),
            violations: Violations::new(),
        }
    }

    fn st(&self) -> MutexGuard<'_, Option<State<P>>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State<P>) -> T) -> T {
        f(self.st().as_mut().expect("the model kernel is not booted"))
    }

    /// Starts with process 1, `init`; later pids count from 2.
    pub fn boot(&self, init: P) {
        assert_eq!(init.pid(), 1, "process 1 first");
        *self.st() = Some(State {
            procs: HashMap::from([(1, Arc::new(init))]),
            next_pid: 2,
            lwps: HashSet::new(),
        });
    }

    /// Records (and prints) a violation.
    pub fn violation(&self, s: String) {
        self.violations.record(s);
    }

    pub fn proc(&self, pid: i32) -> Option<Arc<P>> {
        self.with(|s| s.procs.get(&pid).cloned())
    }

    /// A new process, `make(pid)` with the next pid.
    pub fn add_proc(&self, make: impl FnOnce(i32) -> P) -> Arc<P> {
        let pid = self.with(|s| {
            s.next_pid += 1;
            s.next_pid - 1
        });
        let p = Arc::new(make(pid));
        self.with(|s| s.procs.insert(pid, Arc::clone(&p)));
        p
    }

    /// Every process.
    pub fn procs(&self) -> Vec<Arc<P>> {
        self.with(|s| s.procs.values().cloned().collect())
    }

    /// Pids of all processes but process 1, in order.
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.with(|s| s.procs.keys().copied().filter(|&p| p != 1).collect());
        v.sort();
        v
    }

    /// Live lwps (process 1's included).
    pub fn nlwps(&self) -> usize {
        self.with(|s| s.lwps.len())
    }

    /// A new lwp of `p`, not running.
    pub fn new_lwp(&self, p: &Arc<P>) -> *mut ModelLwp<P> {
        p.nlwps().fetch_add(1, Ordering::SeqCst);
        let l = Box::into_raw(Box::new(ModelLwp {
            proc: Arc::clone(p),
            free: AtomicBool::new(false),
            clear: AtomicBool::new(false),
            running: AtomicBool::new(false),
            hold: AtomicBool::new(false),
        }));
        self.with(|s| s.lwps.insert(l as usize));
        l
    }

    /// Frees `l` (a violation if it is not live); its process goes with
    /// its last lwp, unless it is process 1.
    pub fn free_lwp(&self, l: *mut ModelLwp<P>) {
        let Some(addr) = self.with(|s| s.lwps.take(&(l as usize))) else {
            self.violation("double free of an lwp".into());
            return;
        };
        // SAFETY: the registry's record of an lwp `new_lwp` made, taken
        // out of the registry under its lock: freed once.
        let l = unsafe { Box::from_raw(addr as *mut ModelLwp<P>) };
        let pid = l.proc.pid();
        if l.proc.nlwps().fetch_sub(1, Ordering::SeqCst) == 1 && pid != 1 {
            self.with(|s| s.procs.remove(&pid));
        }
    }

    /// Whether `l` is a live lwp of this registry.
    pub fn live(&self, l: *mut ModelLwp<P>) -> bool {
        self.with(|s| s.lwps.contains(&(l as usize)))
    }

    /// Switches the calling thread from `old` (its current lwp, live, or
    /// NULL) to `new` (or NULL), as `hyp_lwproc_switch` and a new or
    /// forked lwp do: a violation if `new` is freed or already running;
    /// `set_cur(old, new)` rebinds the thread; the thread's CPU goes with
    /// it to `new`; `old` is freed if it was to be.
    ///
    /// # Safety
    ///
    /// `old` is NULL or the calling thread's current lwp (live: only its
    /// own thread frees it), and a live `new` is not freed meanwhile (an
    /// lwp that is not running is freed only by a switch to it).
    pub unsafe fn switch_to(
        &self,
        old: *mut ModelLwp<P>,
        new: *mut ModelLwp<P>,
        set_cur: impl FnOnce(*mut ModelLwp<P>, *mut ModelLwp<P>),
    ) {
        if !new.is_null() {
            if !self.live(new) {
                self.violation("switch to a freed lwp".into());
                return;
            }
            // SAFETY: checked live, and not freed meanwhile (the
            // caller's contract).
            let n = unsafe { &*new };
            if n.running.swap(true, Ordering::SeqCst) {
                self.violation("switch to an lwp that is already running".into());
                return;
            }
            n.clear.store(false, Ordering::SeqCst);
        }
        set_cur(old, new);
        if !old.is_null() {
            // SAFETY: the caller's current lwp (its contract).
            let o = unsafe { &*old };
            o.running.store(false, Ordering::SeqCst);
            if !new.is_null() {
                // SAFETY: checked live above and running on this thread.
                let n = unsafe { &*new };
                n.hold
                    .store(o.hold.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            o.hold.store(false, Ordering::SeqCst);
            if o.free.load(Ordering::SeqCst) {
                self.free_lwp(old);
            }
        }
    }
}

impl<P: Process> Default for Registry<P> {
    fn default() -> Registry<P> {
        Registry::new()
    }
}

/// Waits up to `secs` for `cond`.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cond()
}
