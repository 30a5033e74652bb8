//! Multi-threaded stress and behaviour tests for the real (futex) primitives.
//!
//! Each stress test hammers one primitive from several threads for a bounded
//! time (`STRESS`, well under 2 s) and checks its invariants on every
//! operation: mutual exclusion through non-atomic data that would tear or
//! lose updates, readers never overlapping a writer, downgrade never letting a
//! writer in, `try_upgrade` succeeding exactly when the caller is alone, and
//! condition-variable waits never losing a wakeup (every wait carries a
//! multi-second guard deadline, so a lost wakeup fails the test instead of
//! hanging it) nor timing out before their deadline.
//!
//! A broken lock tends to turn a failed assertion into a hang (the panicking
//! thread never releases, its peers block forever), so every spawned thread
//! aborts the test process with a message on panic, and every test runs under
//! a [`Watchdog`] that aborts it if it has not finished after `WATCHDOG`.

use super::futex::monotonic_ns;
use super::{Condvar, RawMutex, RawRwLock};
use core::cell::UnsafeCell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const STRESS: Duration = Duration::from_millis(600);
const MS: u64 = 1_000_000;
/// Guard deadline for waits that must be woken: reaching it means a lost
/// wakeup.
const GUARD_NS: u64 = 5_000 * MS;

/// How long a test may run before its [`Watchdog`] declares it hung.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Reports `msg` on the real stderr (not the test harness's capture, which
/// an abort would discard) and aborts the test process.
fn die(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "sync stress test: {msg}");
    std::process::abort();
}

/// Aborts the process if the test holding it is still running after
/// `WATCHDOG` (deadlock or lost wakeup in the lock under test).
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn new(test: &'static str) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let done2 = Arc::clone(&done);
        thread::spawn(move || {
            let start = Instant::now();
            while !done2.load(SeqCst) {
                if start.elapsed() > WATCHDOG {
                    die(&format!("{test}: still running after {WATCHDOG:?}, hung"));
                }
                thread::sleep(Duration::from_millis(10));
            }
        });
        Self(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// Spawns a scoped thread that aborts the process if `f` panics (it may be
/// holding a lock its peers will wait for forever).
fn spawn<'scope, T: Send + 'scope>(
    s: &'scope thread::Scope<'scope, '_>,
    f: impl FnOnce() -> T + Send + 'scope,
) -> thread::ScopedJoinHandle<'scope, T> {
    s.spawn(move || match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|m| m.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            die(&format!("thread panicked: {msg}"))
        }
    })
}

/// Data protected by one of the locks under test; accessing it without the
/// lock is a bug the tests are designed to expose (torn pairs, lost updates).
struct Guarded<T>(UnsafeCell<T>);

// SAFETY: every access goes through `get`, whose callers hold the lock under
// test that protects the value (which is exactly what is being tested).
unsafe impl<T: Send> Sync for Guarded<T> {}

impl<T> Guarded<T> {
    fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// # Safety
    /// The caller must hold the lock protecting this value, exclusively if it
    /// writes through the pointer.
    unsafe fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// Runs `f(thread_index, stop_flag)` on `n` threads until `STRESS` elapses;
/// returns the sum of the per-thread results.
fn hammer(n: usize, f: impl Fn(usize, &AtomicBool) -> u64 + Sync) -> u64 {
    let stop = AtomicBool::new(false);
    let (f, stop_ref) = (&f, &stop);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|i| spawn(s, move || f(i, stop_ref))).collect();
        thread::sleep(STRESS);
        stop.store(true, SeqCst);
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn mutex_counter() {
    let _watchdog = Watchdog::new("mutex_counter");
    let m = RawMutex::new();
    let counter = Guarded::new(0u64);
    let inside = AtomicBool::new(false);
    let ops = hammer(4, |i, stop| {
        let mut ops = 0;
        while !stop.load(SeqCst) {
            if i == 0 && ops & 1 == 0 {
                if !m.try_lock() {
                    continue;
                }
            } else {
                m.lock();
            }
            assert!(m.is_locked());
            assert!(!inside.swap(true, SeqCst), "two holders of a RawMutex");
            // SAFETY: we hold `m`.
            unsafe {
                let c = counter.get();
                let v = c.read_volatile();
                core::hint::spin_loop();
                c.write_volatile(v + 1);
            }
            inside.store(false, SeqCst);
            m.unlock();
            ops += 1;
        }
        ops
    });
    // SAFETY: all threads have been joined.
    assert_eq!(unsafe { *counter.get() }, ops);
    assert!(ops > 0);
    assert!(!m.is_locked());
}

/// Threads re-taking the lock at once (more of them than CPUs): the
/// starvation bound must let every one in regularly, and the reservation
/// for a starving waiter must neither break exclusion nor hang.
#[test]
fn mutex_no_thread_starves() {
    let _watchdog = Watchdog::new("mutex_no_thread_starves");
    let m = RawMutex::new();
    let inside = AtomicBool::new(false);
    let worst_gap = AtomicU64::new(0);
    let ops = hammer(4, |_, stop| {
        let mut ops = 0;
        let mut last = Instant::now();
        while !stop.load(SeqCst) {
            m.lock();
            assert!(!inside.swap(true, SeqCst), "two holders of a RawMutex");
            let now = Instant::now();
            worst_gap.fetch_max((now - last).as_micros() as u64, SeqCst);
            last = now;
            inside.store(false, SeqCst);
            m.unlock();
            ops += 1;
        }
        assert!(ops > 0, "a thread never got the lock");
        ops
    });
    assert!(ops > 0);
    assert!(!m.is_locked());
    // 1 ms of starvation bound plus host scheduling: a wide margin.
    let gap = worst_gap.load(SeqCst);
    assert!(gap < 1_000_000, "a thread waited {gap} us for the lock");
}

/// Many more lockers than CPUs, each holding the lock a while, as dozens of
/// lwps queueing for a kernel lock do: waiters starve and reserve the lock
/// (checked), and no unlock may wake more than one thread (the reserving
/// waiter, or one sleeper). Waking every sleeper for each reservation made
/// 64 readers in the real kernel 6-30x slower.
#[test]
fn mutex_starvation_wakes_one() {
    let _watchdog = Watchdog::new("mutex_starvation_wakes_one");
    let m = RawMutex::new();
    let inside = AtomicBool::new(false);
    let reservations_before = super::mutex::wake_stats::RESERVATIONS.load(SeqCst);
    let ops = hammer(16, |_, stop| {
        let mut ops = 0;
        while !stop.load(SeqCst) {
            m.lock();
            assert!(!inside.swap(true, SeqCst), "two holders of a RawMutex");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_micros(100) {
                core::hint::spin_loop();
            }
            inside.store(false, SeqCst);
            m.unlock();
            ops += 1;
        }
        ops
    });
    assert!(ops > 0);
    assert!(!m.is_locked());
    let reservations = super::mutex::wake_stats::RESERVATIONS.load(SeqCst) - reservations_before;
    assert!(
        reservations > 0,
        "16 threads holding the lock 100 us each: nobody starved?"
    );
    let most = super::mutex::wake_stats::MAX_WOKEN.load(SeqCst);
    assert!(most <= 1, "one unlock woke {most} threads");
}

#[test]
fn mutex_sleeper_is_woken() {
    let _watchdog = Watchdog::new("mutex_sleeper_is_woken");
    let m = RawMutex::new();
    let acquired = AtomicBool::new(false);
    m.lock();
    thread::scope(|s| {
        spawn(s, || {
            m.lock();
            acquired.store(true, SeqCst);
            m.unlock();
        });
        thread::sleep(Duration::from_millis(30));
        assert!(!acquired.load(SeqCst));
        m.unlock();
    });
    assert!(acquired.load(SeqCst));
    assert!(!m.is_locked());
}

/// Shared state for the rwlock tests: who holds the lock according to the
/// threads themselves, and a pair a writer always keeps equal.
struct RwShared {
    lock: RawRwLock,
    readers: AtomicU32,
    writers: AtomicU32,
    pair: Guarded<(u64, u64)>,
}

impl RwShared {
    fn new() -> Self {
        Self {
            lock: RawRwLock::new(),
            readers: AtomicU32::new(0),
            writers: AtomicU32::new(0),
            pair: Guarded::new((0, 0)),
        }
    }

    /// Called right after acquiring a read hold.
    fn enter_read(&self) {
        self.readers.fetch_add(1, SeqCst);
        assert_eq!(self.writers.load(SeqCst), 0, "reader coexists with writer");
        assert!(!self.lock.is_write_locked());
        assert!(self.lock.has_readers());
        // SAFETY: we hold a read hold; writers are excluded.
        let (a, b) = unsafe { self.pair.get().read_volatile() };
        assert_eq!(a, b, "torn write observed by a reader");
    }

    /// Called right before releasing a read hold.
    fn leave_read(&self) {
        self.readers.fetch_sub(1, SeqCst);
    }

    /// Called right after acquiring the write hold; writes `v` to the pair.
    fn enter_write(&self, v: u64) {
        assert_eq!(self.writers.fetch_add(1, SeqCst), 0, "two writers");
        assert_eq!(self.readers.load(SeqCst), 0, "writer coexists with readers");
        assert!(self.lock.is_write_locked());
        assert!(!self.lock.has_readers());
        // SAFETY: we hold the write hold.
        unsafe {
            let p = self.pair.get();
            (*p).0 = v;
            core::hint::spin_loop();
            (*p).1 = v;
        }
    }

    /// Called right before releasing (or downgrading) the write hold.
    fn leave_write(&self) {
        self.writers.fetch_sub(1, SeqCst);
    }
}

#[test]
fn rwlock_readers_never_see_writer() {
    let _watchdog = Watchdog::new("rwlock_readers_never_see_writer");
    let sh = RwShared::new();
    let ops = hammer(5, |i, stop| {
        let mut ops = 0u64;
        while !stop.load(SeqCst) {
            if i < 2 {
                // Writers (thread 1 mixes in try_write).
                if i == 1 && ops % 3 == 1 {
                    if !sh.lock.try_write() {
                        continue;
                    }
                } else {
                    sh.lock.write();
                }
                sh.enter_write(ops);
                sh.leave_write();
                sh.lock.unlock_write();
            } else {
                // Readers (thread 2 mixes in try_read).
                if i == 2 && ops & 1 == 0 {
                    if !sh.lock.try_read() {
                        continue;
                    }
                } else {
                    sh.lock.read();
                }
                sh.enter_read();
                sh.leave_read();
                sh.lock.unlock_read();
            }
            ops += 1;
        }
        ops
    });
    assert!(ops > 0);
    assert!(!sh.lock.is_write_locked() && !sh.lock.has_readers());
}

/// The classic bug: a writer acquiring while readers still hold the lock.
#[test]
fn writer_waits_for_all_readers() {
    let _watchdog = Watchdog::new("writer_waits_for_all_readers");
    let sh = RwShared::new();
    let writer_in = AtomicBool::new(false);
    sh.lock.read();
    sh.lock.read();
    thread::scope(|s| {
        spawn(s, || {
            sh.lock.write();
            writer_in.store(true, SeqCst);
            assert!(!sh.lock.has_readers());
            sh.lock.unlock_write();
        });
        thread::sleep(Duration::from_millis(30));
        assert!(!writer_in.load(SeqCst), "writer got in with 2 readers");
        assert!(!sh.lock.try_write());
        // Writer preference: a waiting writer keeps new readers out.
        assert!(!sh.lock.try_read());
        sh.lock.unlock_read();
        thread::sleep(Duration::from_millis(30));
        assert!(!writer_in.load(SeqCst), "writer got in with 1 reader");
        assert!(sh.lock.has_readers());
        sh.lock.unlock_read();
    });
    assert!(writer_in.load(SeqCst));
    assert!(!sh.lock.is_write_locked() && !sh.lock.has_readers());
}

#[test]
fn readers_wait_for_writer_and_all_wake() {
    let _watchdog = Watchdog::new("readers_wait_for_writer_and_all_wake");
    let l = RawRwLock::new();
    let got = AtomicU32::new(0);
    l.write();
    thread::scope(|s| {
        for _ in 0..3 {
            spawn(s, || {
                l.read();
                assert!(!l.is_write_locked());
                got.fetch_add(1, SeqCst);
                // Hold until all three are in: they must coexist.
                while got.load(SeqCst) < 3 {
                    core::hint::spin_loop();
                }
                l.unlock_read();
            });
        }
        thread::sleep(Duration::from_millis(30));
        assert_eq!(got.load(SeqCst), 0, "reader got in under a writer");
        l.unlock_write();
    });
    assert_eq!(got.load(SeqCst), 3);
}

#[test]
fn downgrade_with_racing_writers() {
    let _watchdog = Watchdog::new("downgrade_with_racing_writers");
    let sh = RwShared::new();
    let downgrades = AtomicU64::new(0);
    let ops = hammer(5, |i, stop| {
        let mut ops = 0u64;
        while !stop.load(SeqCst) {
            match i {
                // Downgraders: write a token, downgrade, and check that no
                // writer sneaks in while we still hold the read hold.
                0..=1 => {
                    let token = ((i as u64 + 1) << 40) | ops;
                    sh.lock.write();
                    sh.enter_write(token);
                    sh.leave_write();
                    sh.readers.fetch_add(1, SeqCst);
                    sh.lock.downgrade();
                    for _ in 0..20 {
                        assert!(!sh.lock.is_write_locked());
                        assert!(sh.lock.has_readers());
                        assert_eq!(sh.writers.load(SeqCst), 0);
                        // SAFETY: we hold a read hold.
                        let pair = unsafe { sh.pair.get().read_volatile() };
                        assert_eq!(pair, (token, token), "writer got in after downgrade");
                        core::hint::spin_loop();
                    }
                    sh.leave_read();
                    sh.lock.unlock_read();
                    downgrades.fetch_add(1, SeqCst);
                }
                2..=3 => {
                    sh.lock.write();
                    sh.enter_write(ops);
                    sh.leave_write();
                    sh.lock.unlock_write();
                }
                _ => {
                    sh.lock.read();
                    sh.enter_read();
                    sh.leave_read();
                    sh.lock.unlock_read();
                }
            }
            ops += 1;
        }
        ops
    });
    assert!(ops > 0);
    assert!(downgrades.load(SeqCst) > 0);
    assert!(!sh.lock.is_write_locked() && !sh.lock.has_readers());
}

#[test]
fn downgrade_lets_sleeping_readers_in_without_writer() {
    let _watchdog = Watchdog::new("downgrade_lets_sleeping_readers_in_without_writer");
    let l = RawRwLock::new();
    let readers_in = AtomicU32::new(0);
    let writer_in = AtomicBool::new(false);
    l.write();
    thread::scope(|s| {
        for _ in 0..2 {
            spawn(s, || {
                l.read();
                readers_in.fetch_add(1, SeqCst);
                assert!(!writer_in.load(SeqCst));
                l.unlock_read();
            });
        }
        thread::sleep(Duration::from_millis(30));
        spawn(s, || {
            l.write();
            writer_in.store(true, SeqCst);
            l.unlock_write();
        });
        thread::sleep(Duration::from_millis(30));
        assert_eq!(readers_in.load(SeqCst), 0);
        l.downgrade();
        // The sleeping readers are woken and may join us even though a
        // writer waits; the writer must stay out while we hold the read hold.
        let deadline = Instant::now() + Duration::from_secs(5);
        while readers_in.load(SeqCst) < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(readers_in.load(SeqCst), 2, "downgrade did not wake readers");
        assert!(!writer_in.load(SeqCst));
        l.unlock_read();
    });
    assert!(writer_in.load(SeqCst));
}

#[test]
fn try_upgrade_sole_reader_succeeds() {
    let _watchdog = Watchdog::new("try_upgrade_sole_reader_succeeds");
    let l = RawRwLock::new();
    let other_in = AtomicBool::new(false);
    let release = AtomicBool::new(false);
    l.read();
    thread::scope(|s| {
        spawn(s, || {
            l.read();
            other_in.store(true, SeqCst);
            while !release.load(SeqCst) {
                core::hint::spin_loop();
            }
            l.unlock_read();
        });
        while !other_in.load(SeqCst) {
            thread::yield_now();
        }
        assert!(!l.try_upgrade(), "upgraded while another reader holds");
        assert!(l.has_readers() && !l.is_write_locked());
        release.store(true, SeqCst);
    });
    // Alone again: must succeed.
    assert!(l.try_upgrade());
    assert!(l.is_write_locked() && !l.has_readers());
    l.unlock_write();
}

/// `try_upgrade` must succeed when the caller is the only reader even if a
/// writer is queued (the waiting bits must not make it fail).
#[test]
fn try_upgrade_with_waiting_writer() {
    let _watchdog = Watchdog::new("try_upgrade_with_waiting_writer");
    let l = RawRwLock::new();
    let writer_in = AtomicBool::new(false);
    l.read();
    thread::scope(|s| {
        spawn(s, || {
            l.write();
            writer_in.store(true, SeqCst);
            l.unlock_write();
        });
        thread::sleep(Duration::from_millis(30));
        assert!(!writer_in.load(SeqCst));
        assert!(l.try_upgrade());
        assert!(l.is_write_locked());
        thread::sleep(Duration::from_millis(10));
        assert!(!writer_in.load(SeqCst));
        l.unlock_write();
    });
    assert!(writer_in.load(SeqCst));
}

#[test]
fn try_upgrade_stress() {
    let _watchdog = Watchdog::new("try_upgrade_stress");
    let sh = RwShared::new();
    let upgrades = AtomicU64::new(0);
    let ops = hammer(4, |i, stop| {
        let mut ops = 0u64;
        while !stop.load(SeqCst) {
            if i == 3 {
                sh.lock.write();
                sh.enter_write(ops);
                sh.leave_write();
                sh.lock.unlock_write();
            } else {
                sh.lock.read();
                sh.enter_read();
                if i == 0 || ops & 1 == 0 {
                    // Decrement first: a successful upgrade means we are the
                    // only holder, so nobody else may be counted as reader.
                    sh.leave_read();
                    if sh.lock.try_upgrade() {
                        sh.enter_write(ops);
                        sh.leave_write();
                        upgrades.fetch_add(1, SeqCst);
                        if ops & 1 == 0 {
                            sh.lock.unlock_write();
                        } else {
                            sh.lock.downgrade();
                            sh.enter_read();
                            sh.leave_read();
                            sh.lock.unlock_read();
                        }
                    } else {
                        sh.lock.unlock_read();
                    }
                } else {
                    sh.leave_read();
                    sh.lock.unlock_read();
                }
            }
            ops += 1;
        }
        ops
    });
    assert!(ops > 0);
    assert!(upgrades.load(SeqCst) > 0);
    assert!(!sh.lock.is_write_locked() && !sh.lock.has_readers());
}

/// Waits on `cv` until `pred` (evaluated with `m` held) is true; returns with
/// `m` held.  Fails the test if the guard deadline is reached.
fn wait_until(cv: &Condvar, m: &RawMutex, mut pred: impl FnMut() -> bool) {
    m.lock();
    let guard = monotonic_ns() + GUARD_NS;
    while !pred() {
        let timed_out = cv.wait_unlocked(m, Some(guard));
        assert!(!timed_out, "lost wakeup: guard deadline reached");
        m.lock();
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // inside it; sched_setaffinity reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(rc, 0, "sched_setaffinity to CPU {cpu}");
}

/// The first CPU this process may run on.
fn some_allowed_cpu() -> usize {
    // SAFETY: as in `pin_to`; sched_getaffinity fills the set.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        let rc = libc::sched_getaffinity(0, core::mem::size_of::<libc::cpu_set_t>(), &mut set);
        assert_eq!(rc, 0, "sched_getaffinity");
        (0..libc::CPU_SETSIZE as usize)
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("no allowed CPU")
    }
}

/// Two threads taking turns on one CPU: a waiter that watches before it
/// sleeps must give that CPU to the thread that will notify it (it polls
/// with `sched_yield`), so most waits end without sleeping. A waiter that
/// only spun would use up its whole spin before the notifier could run,
/// then sleep, every time.
#[test]
fn condvar_watch_yields_to_the_notifier() {
    let _watchdog = Watchdog::new("condvar_watch_yields_to_the_notifier");
    const ROUNDS: u32 = 400;
    let cpu = some_allowed_cpu();
    let m = RawMutex::new();
    let cv = Condvar::new();
    let turn = Guarded::new(0usize);
    thread::scope(|s| {
        for me in 0..2 {
            let (m, cv, turn) = (&m, &cv, &turn);
            spawn(s, move || {
                pin_to(cpu);
                for _ in 0..ROUNDS {
                    // SAFETY: `wait_until` evaluates the predicate with `m` held.
                    wait_until(cv, m, || unsafe { *turn.get() } == me);
                    // SAFETY: we hold `m`.
                    unsafe { *turn.get() = 1 - me };
                    m.unlock();
                    cv.notify_one();
                }
            });
        }
    });
    let sleeps = cv.sleeps();
    assert!(
        sleeps < ROUNDS / 2,
        "{sleeps} of {} waits on one CPU went to sleep",
        2 * ROUNDS
    );
}

#[test]
fn condvar_ping_pong() {
    let _watchdog = Watchdog::new("condvar_ping_pong");
    let m = RawMutex::new();
    let cv = Condvar::new();
    let turn = Guarded::new(0usize);
    let rounds = hammer(2, |me, stop| {
        let mut rounds = 0;
        loop {
            // SAFETY: `wait_until` evaluates the predicate with `m` held.
            wait_until(&cv, &m, || unsafe { *turn.get() } == me);
            if stop.load(SeqCst) {
                // Let the other thread see the stop flag too.
                // SAFETY: we hold `m`.
                unsafe { *turn.get() = 1 - me };
                m.unlock();
                cv.notify_one();
                return rounds;
            }
            // SAFETY: we hold `m`.
            unsafe { *turn.get() = 1 - me };
            if rounds & 1 == 0 {
                cv.notify_one();
                m.unlock();
            } else {
                m.unlock();
                cv.notify_one();
            }
            rounds += 1;
        }
    });
    assert!(rounds > 100, "only {rounds} rounds");
}

#[test]
fn condvar_notify_without_mutex_queue() {
    let _watchdog = Watchdog::new("condvar_notify_without_mutex_queue");
    let m = RawMutex::new();
    let cv = Condvar::new();
    // (items queued, producer done)
    let q = Guarded::new((0u64, false));
    let consumed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let produced = thread::scope(|s| {
        for _ in 0..3 {
            spawn(s, || loop {
                // SAFETY: the predicate runs with `m` held.
                wait_until(&cv, &m, || unsafe { (*q.get()).0 > 0 || (*q.get()).1 });
                // SAFETY: we hold `m`.
                let (items, done) = unsafe { &mut *q.get() };
                if *items > 0 {
                    *items -= 1;
                    consumed.fetch_add(1, SeqCst);
                    m.unlock();
                } else {
                    assert!(*done);
                    m.unlock();
                    return;
                }
            });
        }
        let producer = spawn(s, || {
            let mut produced = 0u64;
            while !stop.load(SeqCst) {
                m.lock();
                // SAFETY: we hold `m`.
                unsafe { (*q.get()).0 += 1 };
                m.unlock();
                // Notify without holding the mutex.
                cv.notify_one();
                produced += 1;
                if produced & 63 == 0 {
                    thread::yield_now();
                }
            }
            m.lock();
            // SAFETY: we hold `m`.
            unsafe { (*q.get()).1 = true };
            m.unlock();
            cv.notify_all();
            produced
        });
        thread::sleep(STRESS);
        stop.store(true, SeqCst);
        producer.join().unwrap()
    });
    assert!(produced > 0);
    assert_eq!(consumed.load(SeqCst), produced);
    assert!(!cv.has_waiters());
}

#[test]
fn condvar_broadcast_wakes_all() {
    let _watchdog = Watchdog::new("condvar_broadcast_wakes_all");
    let m = RawMutex::new();
    let cv = Condvar::new();
    let go = Guarded::new(false);
    let woken = AtomicU32::new(0);
    thread::scope(|s| {
        for _ in 0..4 {
            spawn(s, || {
                // SAFETY: the predicate runs with `m` held.
                wait_until(&cv, &m, || unsafe { *go.get() });
                m.unlock();
                woken.fetch_add(1, SeqCst);
            });
        }
        // Let them all go to sleep.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cv.has_waiters() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        thread::sleep(Duration::from_millis(20));
        m.lock();
        // SAFETY: we hold `m`.
        unsafe { *go.get() = true };
        m.unlock();
        cv.notify_all();
    });
    assert_eq!(woken.load(SeqCst), 4);
}

/// Timed waits under a storm of spurious notifies: every "timed out" report
/// must come at or after the deadline.
#[test]
fn condvar_timed_waits_never_early() {
    let _watchdog = Watchdog::new("condvar_timed_waits_never_early");
    let m = RawMutex::new();
    let cv = Condvar::new();
    let stop = AtomicBool::new(false);
    let timeouts = AtomicU64::new(0);
    thread::scope(|s| {
        spawn(s, || {
            while !stop.load(SeqCst) {
                cv.notify_all();
                thread::yield_now();
            }
        });
        let waiters: Vec<_> = (0..2u64)
            .map(|i| {
                let (m, cv, timeouts) = (&m, &cv, &timeouts);
                spawn(s, move || {
                    for k in 0..12u64 {
                        let deadline = monotonic_ns() + (1 + (k + i) % 5) * MS + 77_777;
                        m.lock();
                        loop {
                            if cv.wait_unlocked(m, Some(deadline)) {
                                let now = monotonic_ns();
                                assert!(now >= deadline, "timed out {} ns early", deadline - now);
                                timeouts.fetch_add(1, SeqCst);
                                break;
                            }
                            m.lock();
                        }
                    }
                })
            })
            .collect();
        for w in waiters {
            w.join().unwrap();
        }
        stop.store(true, SeqCst);
    });
    assert_eq!(timeouts.load(SeqCst), 24);
}
