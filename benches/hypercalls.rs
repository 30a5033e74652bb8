//! Criterion benchmarks of every rumpuser implementation through its C ABI,
//! side by side in one run: ours (posix, green), NetBSD's reference
//! (pthread, and rumpfiber where it applies) and a plain Rust/pthread
//! baseline. One criterion group per operation, one function per
//! implementation:
//!
//! | group | what one iteration is |
//! |---|---|
//! | `mutex_enter_exit` | uncontended KMUTEX enter + exit |
//! | `rw_read_enter_exit` | uncontended reader enter + exit |
//! | `mutex_contended_2thr` | enter + exit while a second host thread hammers the same lock (host-threaded only) |
//! | `cv_pingpong_roundtrip` | A signals B, B signals A back (two host threads, or two green threads) |
//! | `thread_create_join` | `rumpuser_thread_create` + `rumpuser_thread_join` of an empty thread |
//! | `clock_gettime_absmono` | one `rumpuser_clock_gettime(ABSMONO)` |
//! | `malloc_free_64` / `malloc_free_4k_aligned` | `rumpuser_malloc` + `rumpuser_free` |
//! | `getrandom_32` | one `rumpuser_getrandom` of 32 bytes |
//! | `bio_4k_read_qd1` / `bio_4k_read_qd64` | per 4 KiB random read of a page-cached 64 MiB file, completion counted in `biodone`; ours also as `-nomap` (opened without `RUMPUSER_OPEN_BIO`: no mapping) |
//! | `green_switch` | one context switch (green flavours; `clock_sleep(0)` ping-pong, and the scheduler core's `yield_now`) |
//! | `sleep_1ms_lateness` | how late a 1 ms `clock_sleep` returns (actual - requested) |
//!
//! Run with `cargo bench --bench hypercalls` (add `-- <filter>` to select).
//! `RUMPUSER_DIST`, `RUMPUSER_REFERENCE_LIB` and `RUMPUSER_FIBER_LIB` choose
//! the libraries (see `common/mod.rs`).

mod common;

use common::{Lib, Libs};
use criterion::{BenchmarkGroup, Criterion};
use rumpuser_core::abi::*;
use rumpuser_testkit::hyp::{Cv, Mtx};
use std::collections::BTreeMap;
use std::ffi::{c_int, c_void};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

const BASELINE: &str = "baseline";

fn main() {
    let libs = Libs::get();
    let mut c = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    mutex(&mut c, libs);
    rw(&mut c, libs);
    mutex_contended(&mut c, libs);
    cv_pingpong(&mut c, libs);
    thread_create_join(&mut c, libs);
    clock_gettime(&mut c, libs);
    malloc_free(&mut c, libs);
    getrandom(&mut c, libs);
    bio(&mut c, libs, 1);
    bio(&mut c, libs, 64);
    green_switch(&mut c, libs);
    sleep_lateness(&mut c, libs);
    c.final_summary();
    summary(libs);
}

// ---- locks -------------------------------------------------------------------------

fn mutex(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("mutex_enter_exit");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            let m = lib.mutex_new();
            b.iter(|| {
                black_box(m).enter();
                m.exit();
            });
            // SAFETY: unheld, and the bench is its only user.
            unsafe { m.destroy() };
        });
    }
    g.bench_function(BASELINE, |b| {
        let m = Mutex::new(0u64);
        b.iter(|| *black_box(&m).lock().unwrap() += 1);
    });
    g.finish();
}

fn rw(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("rw_read_enter_exit");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            let rw = lib.rw_new();
            b.iter(|| {
                black_box(rw).enter(RUMPUSER_RW_READER);
                rw.exit();
            });
            // SAFETY: unheld, and the bench is its only user.
            unsafe { rw.destroy() };
        });
    }
    g.bench_function(BASELINE, |b| {
        let l = RwLock::new(0u64);
        b.iter(|| *black_box(&l).read().unwrap());
    });
    g.finish();
}

/// State shared with the partner thread of the contended-mutex bench.
struct Contend {
    lib: &'static Lib,
    m: Mtx,
    started: AtomicBool,
    stop: AtomicBool,
    partner_ops: AtomicU64,
}

unsafe extern "C" fn contend_partner(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Contend` of the spawning bench, alive until it joins us.
    let s = unsafe { &*(arg as *const Contend) };
    {
        let _lwp = s.lib.bind_lwp();
        s.started.store(true, Ordering::Release);
        let mut n = 0u64;
        while !s.stop.load(Ordering::Relaxed) {
            s.m.enter();
            n += 1;
            s.m.exit();
        }
        s.partner_ops.fetch_add(n, Ordering::Relaxed);
    }
    // SAFETY: the end of a thread started by `Lib::spawn`, with nothing
    // that has a destructor alive.
    unsafe { s.lib.thread_end() }
}

/// Two host threads on one lock: the time per enter+exit of the measuring
/// thread while the partner does the same in a loop. Green flavours have
/// no parallel threads, so they are not in this group.
fn mutex_contended(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("mutex_contended_2thr");
    for lib in libs.threaded() {
        g.bench_function(lib.name, |b| {
            let s = Box::new(Contend {
                lib,
                m: lib.mutex_new(),
                started: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                partner_ops: AtomicU64::new(0),
            });
            let arg = &*s as *const Contend as *mut c_void;
            b.iter_custom(|iters| {
                s.started.store(false, Ordering::Relaxed);
                s.stop.store(false, Ordering::Relaxed);
                // SAFETY: `contend_partner` ends with `thread_end`; `arg` outlives the join below.
                let t = unsafe { lib.spawn(contend_partner, arg) };
                while !s.started.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
                let t0 = Instant::now();
                for _ in 0..iters {
                    s.m.enter();
                    black_box(s.m).exit();
                }
                let el = t0.elapsed();
                s.stop.store(true, Ordering::Relaxed);
                lib.join(t);
                el
            });
            // SAFETY: the partner was joined; nobody uses it any more.
            unsafe { s.m.destroy() };
        });
    }
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            let m = Arc::new(Mutex::new(0u64));
            let stop = Arc::new(AtomicBool::new(false));
            let started = Arc::new(AtomicBool::new(false));
            let t = {
                let (m, stop, started) = (m.clone(), stop.clone(), started.clone());
                std::thread::spawn(move || {
                    started.store(true, Ordering::Release);
                    while !stop.load(Ordering::Relaxed) {
                        *m.lock().unwrap() += 1;
                    }
                })
            };
            while !started.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let t0 = Instant::now();
            for _ in 0..iters {
                *black_box(&m).lock().unwrap() += 1;
            }
            let el = t0.elapsed();
            stop.store(true, Ordering::Relaxed);
            t.join().unwrap();
            el
        });
    });
    g.finish();
}

// ---- cv ping-pong -------------------------------------------------------------------

struct PingPong {
    lib: &'static Lib,
    m: Mtx,
    cv: Cv,
    /// 1: the partner's turn; 0: the bench thread's turn.
    turn: AtomicU32,
    stop: AtomicBool,
}

unsafe extern "C" fn pingpong_partner(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `PingPong` of the spawning bench, alive until it joins us.
    let s = unsafe { &*(arg as *const PingPong) };
    {
        let _lwp = s.lib.bind_lwp();
        s.m.enter();
        loop {
            while s.turn.load(Ordering::Relaxed) == 0 && !s.stop.load(Ordering::Relaxed) {
                s.cv.wait(s.m);
            }
            if s.stop.load(Ordering::Relaxed) {
                break;
            }
            s.turn.store(0, Ordering::Relaxed);
            s.cv.signal();
        }
        s.m.exit();
    }
    // SAFETY: the end of a thread started by `Lib::spawn`, with nothing
    // that has a destructor alive.
    unsafe { s.lib.thread_end() }
}

/// Round trip A→B→A over one mutex and one cv, the way kernel code hands
/// work to another thread and waits for the answer. The threads are host
/// threads for posix/pthread, green threads (the bench thread is one) for
/// the green flavours.
fn cv_pingpong(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("cv_pingpong_roundtrip");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            let s = Box::new(PingPong {
                lib,
                m: lib.mutex_new(),
                cv: lib.cv_new(),
                turn: AtomicU32::new(0),
                stop: AtomicBool::new(false),
            });
            let arg = &*s as *const PingPong as *mut c_void;
            b.iter_custom(|iters| {
                s.stop.store(false, Ordering::Relaxed);
                s.turn.store(0, Ordering::Relaxed);
                // SAFETY: `pingpong_partner` ends with `thread_end`; `arg` outlives the join below.
                let t = unsafe { lib.spawn(pingpong_partner, arg) };
                // One untimed round trip so the partner is up and waiting.
                let round = || {
                    s.turn.store(1, Ordering::Relaxed);
                    s.cv.signal();
                    while s.turn.load(Ordering::Relaxed) == 1 {
                        s.cv.wait(s.m);
                    }
                };
                s.m.enter();
                round();
                let t0 = Instant::now();
                for _ in 0..iters {
                    round();
                }
                let el = t0.elapsed();
                s.stop.store(true, Ordering::Relaxed);
                s.cv.signal();
                s.m.exit();
                lib.join(t);
                el
            });
            // SAFETY: the partner was joined; nobody uses them any more.
            unsafe {
                s.cv.destroy();
                s.m.destroy();
            }
        });
    }
    g.bench_function(BASELINE, |b| {
        b.iter_custom(|iters| {
            let pair = Arc::new((Mutex::new((0u32, false)), Condvar::new()));
            let t = {
                let pair = pair.clone();
                std::thread::spawn(move || {
                    let (m, cv) = &*pair;
                    let mut g = m.lock().unwrap();
                    loop {
                        while g.0 == 0 && !g.1 {
                            g = cv.wait(g).unwrap();
                        }
                        if g.1 {
                            break;
                        }
                        g.0 = 0;
                        cv.notify_one();
                    }
                })
            };
            let (m, cv) = &*pair;
            let mut gd = m.lock().unwrap();
            fn round<'a>(
                cv: &Condvar,
                mut gd: std::sync::MutexGuard<'a, (u32, bool)>,
            ) -> std::sync::MutexGuard<'a, (u32, bool)> {
                gd.0 = 1;
                cv.notify_one();
                while gd.0 == 1 {
                    gd = cv.wait(gd).unwrap();
                }
                gd
            }
            gd = round(cv, gd);
            let t0 = Instant::now();
            for _ in 0..iters {
                gd = round(cv, gd);
            }
            let el = t0.elapsed();
            gd.1 = true;
            cv.notify_one();
            drop(gd);
            t.join().unwrap();
            el
        });
    });
    g.finish();
}

// ---- threads ----------------------------------------------------------------------

/// An empty kernel thread: the argument is its `Lib`.
unsafe extern "C" fn empty_thread(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is a `&'static Lib`.
    let lib = unsafe { &*(arg as *const Lib) };
    // SAFETY: the end of a thread started by `Lib::spawn`.
    unsafe { lib.thread_end() }
}

fn thread_create_join(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("thread_create_join");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            let arg = lib as *const Lib as *mut c_void;
            b.iter(|| {
                // SAFETY: `empty_thread` ends with `thread_end`; `arg` outlives the join below.
                let t = unsafe { lib.spawn(empty_thread, arg) };
                lib.join(t);
            });
        });
    }
    g.bench_function(BASELINE, |b| {
        b.iter(|| std::thread::spawn(|| black_box(0)).join().unwrap());
    });
    g.finish();
}

// ---- clock, memory, random ---------------------------------------------------------

fn clock_gettime(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("clock_gettime_absmono");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            b.iter(|| {
                let (mut s, mut ns) = (0i64, 0);
                // SAFETY: valid clock id and out-pointers to locals.
                let e = unsafe { (lib.api.clock_gettime)(RUMPUSER_CLOCK_ABSMONO, &mut s, &mut ns) };
                black_box((e, s, ns))
            });
        });
    }
    g.bench_function(BASELINE, |b| {
        b.iter(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid clock id and out-pointer to a local.
            black_box(unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) });
            black_box(ts.tv_nsec)
        });
    });
    g.finish();
}

fn malloc_free(c: &mut Criterion, libs: &'static Libs) {
    for (group, len, align) in [
        ("malloc_free_64", 64usize, 0 as c_int),
        ("malloc_free_4k_aligned", 4096, 4096),
    ] {
        let mut g = c.benchmark_group(group);
        for lib in &libs.libs {
            g.bench_function(lib.name, |b| {
                b.iter(|| {
                    let mut p = std::ptr::null_mut();
                    // SAFETY: valid out-pointer; `align` is 0 or a power of two.
                    let e = unsafe { (lib.api.malloc)(black_box(len), align, &mut p) };
                    assert_eq!(e, 0);
                    // SAFETY: `p` came from this library's malloc with `len`.
                    unsafe { (lib.api.free)(black_box(p), len) };
                });
            });
        }
        g.bench_function(BASELINE, |b| {
            b.iter(|| {
                let mut p = std::ptr::null_mut();
                // SAFETY: plain allocation into a local out-pointer.
                let e = unsafe {
                    if align == 0 {
                        p = libc::malloc(black_box(len));
                        i32::from(p.is_null())
                    } else {
                        libc::posix_memalign(&mut p, align as usize, black_box(len))
                    }
                };
                assert_eq!(e, 0);
                // SAFETY: allocated just above.
                unsafe { libc::free(black_box(p)) };
            });
        });
        g.finish();
    }
}

fn getrandom(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("getrandom_32");
    for lib in &libs.libs {
        g.bench_function(lib.name, |b| {
            let mut buf = [0u8; 32];
            b.iter(|| {
                let mut n = 0usize;
                // SAFETY: 32 writable bytes and an out-pointer to a local.
                let e = unsafe { (lib.api.getrandom)(buf.as_mut_ptr().cast(), 32, 0, &mut n) };
                assert!(e == 0 && n == 32);
                black_box(&buf);
            });
        });
    }
    g.bench_function(BASELINE, |b| {
        let mut buf = [0u8; 32];
        b.iter(|| {
            // SAFETY: 32 writable bytes.
            let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), 32, 0) };
            assert_eq!(n, 32);
            black_box(&buf);
        });
    });
    g.finish();
}

// ---- block I/O ----------------------------------------------------------------------

const BIO_FILE_SIZE: u64 = 64 << 20;
const BIO_BLOCK: usize = 4096;
const MAX_DEPTH: usize = 64;

/// The page-cached file all bio benches read (created and read once).
fn bio_file() -> &'static std::path::Path {
    static F: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        use std::io::{Read, Write};
        let dir = std::env::var_os("RUMPUSER_BENCH_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-tmp")
            });
        std::fs::create_dir_all(&dir).expect("cannot create the bench directory");
        let p = dir.join("bio-64m.img");
        if std::fs::metadata(&p).map(|m| m.len()).ok() != Some(BIO_FILE_SIZE) {
            let mut f = std::fs::File::create(&p).expect("cannot create the bio file");
            let mut block = vec![0u8; 1 << 20];
            for (i, b) in block.iter_mut().enumerate() {
                *b = (i * 31 + 7) as u8;
            }
            for _ in 0..BIO_FILE_SIZE >> 20 {
                f.write_all(&block).unwrap();
            }
            f.sync_all().unwrap();
        }
        // Pull it into the page cache.
        let mut f = std::fs::File::open(&p).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        while f.read(&mut buf).unwrap() > 0 {}
        p
    })
}

/// Random block-aligned offsets inside the file (xorshift, fixed seed).
fn offsets() -> &'static [i64] {
    static O: std::sync::OnceLock<Vec<i64>> = std::sync::OnceLock::new();
    O.get_or_init(|| {
        let blocks = BIO_FILE_SIZE / BIO_BLOCK as u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..1 << 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % blocks) * BIO_BLOCK as u64) as i64
            })
            .collect()
    })
}

/// In-flight requests of one bio bench: completions push their slot on a
/// ring under the library's own mutex and signal its cv, as a kernel's
/// `biodone` would wake `biowait`.
struct BioQueue {
    lib: &'static Lib,
    m: Mtx,
    cv: Cv,
    ring: [AtomicU16; MAX_DEPTH],
    head: AtomicU64,
    errors: AtomicU64,
    slots: Vec<BioSlot>,
    bufs: *mut u8,
}

struct BioSlot {
    q: *const BioQueue,
    idx: u16,
}

unsafe extern "C" fn bio_done(arg: *mut c_void, done: usize, error: c_int) {
    // SAFETY: `arg` is a `BioSlot` of a live `BioQueue` (the bench waits for
    // every completion before dropping it).
    let slot = unsafe { &*(arg as *const BioSlot) };
    // SAFETY: as above.
    let q = unsafe { &*slot.q };
    if error != 0 || done != BIO_BLOCK {
        q.errors.fetch_add(1, Ordering::Relaxed);
    }
    q.m.enter();
    let h = q.head.load(Ordering::Relaxed);
    q.ring[h as usize % MAX_DEPTH].store(slot.idx, Ordering::Relaxed);
    q.head.store(h + 1, Ordering::Relaxed);
    q.cv.signal();
    q.m.exit();
}

impl BioQueue {
    fn new(lib: &'static Lib) -> Box<BioQueue> {
        let layout = std::alloc::Layout::from_size_align(MAX_DEPTH * BIO_BLOCK, 4096).unwrap();
        // SAFETY: non-zero size.
        let bufs = unsafe { std::alloc::alloc(layout) };
        assert!(!bufs.is_null());
        let mut q = Box::new(BioQueue {
            lib,
            m: lib.mutex_new(),
            cv: lib.cv_new(),
            ring: std::array::from_fn(|_| AtomicU16::new(0)),
            head: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            slots: Vec::new(),
            bufs,
        });
        let qp = &*q as *const BioQueue;
        q.slots = (0..MAX_DEPTH as u16)
            .map(|idx| BioSlot { q: qp, idx })
            .collect();
        q
    }

    fn submit(&self, fd: c_int, slot: u16, off: i64) {
        let s = &self.slots[slot as usize];
        // SAFETY: the slot's buffer is BIO_BLOCK bytes owned by this request
        // until `bio_done`; `s` outlives the request.
        unsafe {
            (self.lib.api.bio)(
                fd,
                RUMPUSER_BIO_READ,
                self.bufs.add(slot as usize * BIO_BLOCK).cast(),
                BIO_BLOCK,
                off,
                Some(bio_done),
                s as *const BioSlot as *mut c_void,
            )
        }
    }

    /// `n` reads with at most `depth` in flight; returns the elapsed time.
    fn run(&self, fd: c_int, n: u64, depth: usize, next_off: &mut usize) -> Duration {
        let offs = offsets();
        let mut off = || {
            *next_off = (*next_off + 1) % offs.len();
            offs[*next_off]
        };
        let depth = depth.min(n as usize).max(1);
        let mut tail = self.head.load(Ordering::Relaxed);
        let mut submitted = 0u64;
        let mut completed = 0u64;
        let mut ready = [0u16; MAX_DEPTH];
        let t0 = Instant::now();
        for slot in 0..depth as u16 {
            self.submit(fd, slot, off());
            submitted += 1;
        }
        while completed < n {
            self.m.enter();
            while self.head.load(Ordering::Relaxed) == tail {
                self.cv.wait(self.m);
            }
            let head = self.head.load(Ordering::Relaxed);
            let k = (head - tail) as usize;
            for (i, r) in ready.iter_mut().take(k).enumerate() {
                *r = self.ring[(tail as usize + i) % MAX_DEPTH].load(Ordering::Relaxed);
            }
            tail = head;
            self.m.exit();
            for &slot in &ready[..k] {
                completed += 1;
                if submitted < n {
                    self.submit(fd, slot, off());
                    submitted += 1;
                }
            }
        }
        t0.elapsed()
    }
}

impl Drop for BioQueue {
    fn drop(&mut self) {
        // SAFETY: no request is in flight, so no `bio_done` can use them.
        unsafe {
            self.cv.destroy();
            self.m.destroy();
        }
        let layout = std::alloc::Layout::from_size_align(MAX_DEPTH * BIO_BLOCK, 4096).unwrap();
        // SAFETY: allocated in `new` with this layout; no request is in flight.
        unsafe { std::alloc::dealloc(self.bufs, layout) };
    }
}

/// Per-I/O time of 4 KiB random reads at queue depth `depth`. Our
/// libraries run twice: as the kernel opens a disk image
/// (`RUMPUSER_OPEN_BIO`: reads are copied out of a mapping of the file)
/// and, as `<name>-nomap`, without the flag (one `preadv2(RWF_NOWAIT)`
/// per cached read), so the mapping's share shows in the same run.
fn bio(c: &mut Criterion, libs: &'static Libs, depth: usize) {
    let path = bio_file();
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut g = c.benchmark_group(format!("bio_4k_read_qd{depth}"));
    for lib in &libs.libs {
        let mut modes = vec![(lib.name.to_string(), RUMPUSER_OPEN_BIO)];
        if lib.name.starts_with("ours") {
            modes.push((format!("{}-nomap", lib.name), 0));
        }
        for (name, bio_flag) in modes {
            g.bench_function(&name, |b| {
                let mut fd: c_int = -1;
                // SAFETY: a C string and an out-pointer to a local.
                let e = unsafe {
                    (lib.api.open)(cpath.as_ptr(), RUMPUSER_OPEN_RDONLY | bio_flag, &mut fd)
                };
                assert_eq!(e, 0, "{name}: open failed: {e}");
                let q = BioQueue::new(lib);
                let mut next = 0usize;
                b.iter_custom(|iters| q.run(fd, iters, depth, &mut next));
                assert_eq!(q.errors.load(Ordering::Relaxed), 0, "{name}: bio errors");
                drop(q);
                // SAFETY: our descriptor, nothing in flight.
                unsafe { (lib.api.close)(fd) };
            });
        }
    }
    g.bench_function(BASELINE, |b| {
        // Synchronous pread on the calling thread: the floor of any queue.
        let f = std::fs::File::open(path).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        let mut buf = vec![0u8; BIO_BLOCK];
        let offs = offsets();
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % offs.len();
            // SAFETY: BIO_BLOCK writable bytes, a valid descriptor.
            let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), BIO_BLOCK, offs[i]) };
            assert_eq!(n, BIO_BLOCK as isize);
        });
    });
    g.finish();
}

// ---- green scheduling -----------------------------------------------------------------

struct Yielder {
    lib: &'static Lib,
    stop: AtomicBool,
}

unsafe extern "C" fn yield_partner(arg: *mut c_void) -> *mut c_void {
    // SAFETY: `arg` is the `Yielder` of the spawning bench, alive until it joins us.
    let s = unsafe { &*(arg as *const Yielder) };
    while !s.stop.load(Ordering::Relaxed) {
        s.lib.sleep_rel(0, 0);
    }
    // SAFETY: the end of a thread started by `Lib::spawn`, with nothing
    // that has a destructor alive.
    unsafe { s.lib.thread_end() }
}

/// One context switch between two green threads. Through the C ABI a
/// switch is `rumpuser_clock_sleep(RELWALL, 0, 0)`, which yields; the
/// figure is half a ping-pong round trip, so it includes the hypercall,
/// the clock read of the relative deadline and the CPU release upcalls.
/// `green-core` is the scheduler core's own `yield_now` (the switch alone).
fn green_switch(c: &mut Criterion, libs: &'static Libs) {
    let mut g = c.benchmark_group("green_switch");
    for lib in libs.green() {
        g.bench_function(lib.name, |b| {
            let s = Box::new(Yielder {
                lib,
                stop: AtomicBool::new(false),
            });
            let arg = &*s as *const Yielder as *mut c_void;
            b.iter_custom(|iters| {
                s.stop.store(false, Ordering::Relaxed);
                // SAFETY: `yield_partner` ends with `thread_end`; `arg` outlives the join below.
                let t = unsafe { lib.spawn(yield_partner, arg) };
                lib.sleep_rel(0, 0);
                let t0 = Instant::now();
                for _ in 0..iters {
                    lib.sleep_rel(0, 0);
                }
                let el = t0.elapsed();
                s.stop.store(true, Ordering::Relaxed);
                lib.join(t);
                el / 2
            });
        });
    }
    g.bench_function("green-core", |b| {
        core_sched::init();
        b.iter_custom(|iters| {
            let stop = core_sched::spawn_yielder();
            rumpuser_green::sched_core::yield_now();
            let t0 = Instant::now();
            for _ in 0..iters {
                rumpuser_green::sched_core::yield_now();
            }
            let el = t0.elapsed();
            core_sched::stop_yielder(stop);
            el / 2
        });
    });
    g.finish();
}

/// The green scheduler core (`rumpuser_green::sched_core`, linked into
/// this bench as a Rust library with its own tiny platform), to measure a
/// switch without any hypercall around it.
mod core_sched {
    use rumpuser_green::sched_core::{self as sc, Platform, Stack, ThreadId};
    use std::alloc::{alloc, dealloc, Layout};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct BenchPlatform;

    impl Platform for BenchPlatform {
        fn now_ns(&self) -> u64 {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid clock id and out-pointer to a local.
            unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
        }
        fn idle(&self, deadline: Option<u64>) {
            let now = self.now_ns();
            let d = deadline.unwrap_or(now + 1_000_000);
            std::thread::sleep(std::time::Duration::from_nanos(d.saturating_sub(now)));
        }
        fn poll_events(&self, _wake: &mut dyn FnMut(u64)) {}
        fn alloc_stack(&self, size: usize) -> Option<Stack> {
            let layout = Layout::from_size_align(size, 16).ok()?;
            // SAFETY: non-zero size (the core asks for at least 4 KiB).
            let base = unsafe { alloc(layout) };
            (!base.is_null()).then_some(Stack {
                base,
                size,
                cookie: 0,
            })
        }
        unsafe fn free_stack(&self, s: Stack) {
            let layout = Layout::from_size_align(s.size, 16).expect("stack layout");
            // SAFETY: allocated by `alloc_stack` with this layout, freed once.
            unsafe { dealloc(s.base, layout) }
        }
        fn console(&self, s: &str) {
            eprint!("{s}");
        }
        fn halt(&self) -> ! {
            std::process::abort()
        }
    }

    static PLATFORM: BenchPlatform = BenchPlatform;

    /// Makes the bench thread the core's main green thread (once).
    pub fn init() {
        if !sc::is_initialized() {
            // SAFETY: only the bench's main thread uses this scheduler.
            unsafe { sc::init(&PLATFORM, sc::Config::default()) }.expect("green core init");
        }
    }

    /// A partner that yields until told to stop.
    pub fn spawn_yielder() -> (ThreadId, Arc<AtomicBool>) {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let t = sc::spawn_closure(
            move || {
                while !s.load(Ordering::Relaxed) {
                    sc::yield_now();
                }
            },
            "yielder",
            0,
            true,
        )
        .expect("spawn");
        (t, stop)
    }

    /// Stops and joins a [`spawn_yielder`] partner.
    pub fn stop_yielder((t, stop): (ThreadId, Arc<AtomicBool>)) {
        stop.store(true, Ordering::Relaxed);
        sc::join(t).expect("join");
    }
}

// ---- timers -----------------------------------------------------------------------------

#[derive(Default, Clone, Copy)]
struct Lateness {
    n: u64,
    sum_ns: i128,
    min_ns: i64,
    max_ns: i64,
    early: u64,
}

static LATENESS: Mutex<BTreeMap<&'static str, Lateness>> = Mutex::new(BTreeMap::new());

fn record_lateness(name: &'static str, late_ns: i64) {
    let mut m = LATENESS.lock().unwrap();
    let e = m.entry(name).or_insert(Lateness {
        min_ns: i64::MAX,
        max_ns: i64::MIN,
        ..Lateness::default()
    });
    e.n += 1;
    e.sum_ns += i128::from(late_ns);
    e.min_ns = e.min_ns.min(late_ns);
    e.max_ns = e.max_ns.max(late_ns);
    if late_ns < 0 {
        e.early += 1;
    }
}

/// How late a 1 ms relative sleep returns: criterion gets the lateness
/// (actual − requested, 0 if early); early wake-ups and the extremes are
/// printed in the summary.
fn sleep_lateness(c: &mut Criterion, libs: &'static Libs) {
    const REQ: Duration = Duration::from_millis(1);
    let mut g = c.benchmark_group("sleep_1ms_lateness");
    // The reported time is only the lateness, so criterion's time budget
    // buys ~20x more wall time here; keep it small.
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(20))
        .measurement_time(Duration::from_millis(300));
    fn measure(g: &mut Group<'_>, name: &'static str, sleep: &dyn Fn()) {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t0 = Instant::now();
                    sleep();
                    let el = t0.elapsed();
                    let late = el.as_nanos() as i64 - REQ.as_nanos() as i64;
                    record_lateness(name, late);
                    total += el.saturating_sub(REQ);
                }
                total
            });
        });
    }
    for lib in &libs.libs {
        measure(&mut g, lib.name, &|| lib.sleep_rel(0, 1_000_000));
    }
    measure(&mut g, BASELINE, &|| std::thread::sleep(REQ));
    g.finish();
}

// ---- summary ---------------------------------------------------------------------------

fn summary(libs: &'static Libs) {
    let m = LATENESS.lock().unwrap();
    if !m.is_empty() {
        println!("\nsleep_1ms_lateness summary (actual - requested, all iterations):");
        println!(
            "{:<16} {:>8} {:>12} {:>12} {:>12} {:>8}",
            "impl", "n", "mean_us", "min_us", "max_us", "early"
        );
        for (name, l) in m.iter() {
            println!(
                "{:<16} {:>8} {:>12.1} {:>12.1} {:>12.1} {:>8}",
                name,
                l.n,
                l.sum_ns as f64 / l.n.max(1) as f64 / 1e3,
                l.min_ns as f64 / 1e3,
                l.max_ns as f64 / 1e3,
                l.early
            );
        }
    }
    println!("\nupcalls seen (schedule, unschedule, backend_unschedule, backend_schedule):");
    for l in &libs.libs {
        println!("{:<16} {:?}", l.name, l.counts());
    }
}
