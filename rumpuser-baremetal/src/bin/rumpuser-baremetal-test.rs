//! The bootable test image: the conformance kit and the platform tests,
//! inside QEMU, reporting over the serial console.
//!
//! Built by `cargo xtask baremetal-test` for `x86_64-unknown-none` and
//! booted with a command line that picks what runs:
//!
//! * `suite=kit,platform` (default both): the conformance kit
//!   (`Config { scratch_dir: None, cooperative: true }`: file and bio
//!   cases skip), then the platform tests (timer accuracy and halting,
//!   interrupts under load, virtio-blk bio, benchmarks).
//! * `crash=null|stack|panic|deadlock|exit|exitpanic`: deliberately crash (or
//!   call `rumpuser_exit(42)` / `rumpuser_exit(RUMPUSER_PANIC)`) to check
//!   the reports and exit statuses.
//! * `RUMPUSER_KIT_FILTER=...`, `test=...`: run only matching cases.
//! * `disk_bytes=N`: the size the host made `virtio0` (checked);
//!   `virtio1`, if present, must be a read-only disk.
//!
//! Every case prints one line `<suite> <name> ... ok` or
//! `... FAILED: <why>`, then a summary line
//! `<suite>: N passed, N failed, N skipped`; `main` returns the number of
//! failures (the VM's exit status, see `rumpuser_baremetal::status`).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use rumpuser_baremetal::{cmdline, kprintln, rumpuser_exports::API};
use rumpuser_core::abi::*;
use rumpuser_core::conformance::{self, model, Config, Ctx, Report};
use rumpuser_core::Errno;
use rumpuser_green::sched_core;

struct Serial;

impl Report for Serial {
    fn case(&mut self, name: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => kprintln!("conformance {name} ... ok"),
            Err(e) => kprintln!("conformance {name} ... FAILED: {e}"),
        }
    }
}

fn param(name: &str) -> Option<&'static str> {
    cmdline::param(rumpuser_baremetal::bootinfo::cmdline(), name)
}

/// The image's entry point, called by the platform after boot.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if let Some(c) = param("crash") {
        crash(c);
    }
    let suites = param("suite").unwrap_or("kit,platform");
    let mut failed = 0;
    if suites.split(',').any(|s| s == "kit") {
        let cfg = Config {
            scratch_dir: None,
            filter: param("RUMPUSER_KIT_FILTER").map(String::from),
            ncpu: None,
            cooperative: true,
        };
        let t0 = now();
        let s = conformance::run(&API, &cfg, &mut Serial);
        kprintln!(
            "conformance: {} passed, {} failed, {} skipped in {} ms",
            s.passed,
            s.failed,
            s.skipped,
            (now() - t0) / 1_000_000
        );
        failed += s.failed;
    } else {
        // The platform tests need the model kernel's upcalls.
        // SAFETY: plain hypercall with the kit's static upcall table.
        let r = unsafe { (API.init)(RUMPUSER_VERSION, &model::HYPERUP) };
        assert_eq!(r, 0, "rumpuser_init");
        model::install(&API, 2);
    }
    if suites.split(',').any(|s| s == "platform") {
        failed += platform_tests();
    }
    failed as c_int
}

fn now() -> u64 {
    rumpuser_baremetal::time::now_ns()
}

// ---------------------------------------------------------------------
// Deliberate crashes (the host checks the report and the exit status).

#[inline(never)]
fn recurse(depth: u64, sink: &AtomicUsize) -> u64 {
    let buf = [depth as u8; 512];
    sink.fetch_add(buf[(depth % 512) as usize] as usize, Ordering::Relaxed);
    if depth == u64::MAX {
        return 0;
    }
    let r = recurse(depth + 1, sink);
    // Keeps `buf` alive across the call: no tail-recursion elimination.
    core::hint::black_box(&buf);
    r + buf[7] as u64
}

fn crash(kind: &str) -> ! {
    kprintln!("crash test: {kind}");
    match kind {
        "null" => {
            let p = core::hint::black_box(core::ptr::null_mut::<u64>());
            // SAFETY: deliberately invalid: this must fault and be reported.
            unsafe { p.write_volatile(42) };
        }
        "stack" => {
            let t = sched_core::spawn_closure(
                || {
                    static SINK: AtomicUsize = AtomicUsize::new(0);
                    recurse(0, &SINK);
                },
                "deep-recursion",
                64 * 1024,
                true,
            )
            .expect("spawn");
            let _ = sched_core::join(t);
        }
        "deadlock" => loop {
            // Nothing will ever wake this thread.
            sched_core::park(None);
        },
        "exit" => {
            // SAFETY: plain hypercall; never returns.
            unsafe { (API.exit)(42) }
        }
        "exitpanic" => {
            // SAFETY: plain hypercall; never returns.
            unsafe { (API.exit)(RUMPUSER_PANIC) }
        }
        _ => panic!("deliberate panic (crash={kind})"),
    }
    panic!("crash test {kind} did not crash");
}

// ---------------------------------------------------------------------
// Platform tests.

type Case = fn(&Ctx) -> Result<(), String>;

fn platform_tests() -> usize {
    let cases: &[(&str, Case)] = &[
        ("timer::sleeps_never_early", timer_never_early),
        ("timer::idle_halts", timer_idle_halts),
        ("timer::wall_clock", timer_wall_clock),
        ("irq::timers_under_load", irq_timers_under_load),
        ("random::cpu_source", random_cpu_source),
        ("blk::host_data_and_size", blk_host_data),
        ("blk::write_flush_read_back", blk_write_flush_read),
        ("blk::many_in_flight", blk_many_in_flight),
        ("blk::errors_reach_biodone", blk_errors),
        ("blk::iov_and_syncfd", blk_iov),
        ("blk::readonly_disk", blk_readonly),
        ("irq::bio_under_load", irq_bio_under_load),
        ("bench::report", bench),
    ];
    let ctx = Ctx {
        api: &API,
        cfg: Config::default(),
    };
    let m = model::model();
    let filter = param("test");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, case) in cases {
        if filter.is_some_and(|f| !name.contains(f)) {
            skipped += 1;
            continue;
        }
        m.enter();
        let r = case(&ctx);
        m.leave();
        match r {
            Ok(()) => {
                passed += 1;
                kprintln!("platform {name} ... ok");
            }
            Err(e) if e == SKIP => {
                skipped += 1;
                kprintln!("platform {name} ... skipped");
            }
            Err(e) => {
                failed += 1;
                kprintln!("platform {name} ... FAILED: {e}");
            }
        }
    }
    kprintln!("platform: {passed} passed, {failed} failed, {skipped} skipped");
    failed
}

const SKIP: &str = "skip";

macro_rules! ensure {
    ($c:expr, $($f:tt)+) => {
        if !$c {
            return Err(format!("{} (line {})", format!($($f)+), line!()));
        }
    };
}

/// Sleeps of every scale are never early; lateness is reported.
fn timer_never_early(ctx: &Ctx) -> Result<(), String> {
    let mut worst = 0u64;
    let mut line = String::new();
    for ns in [
        1u64,
        1_000,
        10_000,
        100_000,
        1_000_000,
        5_000_000,
        20_000_000,
        100_000_000,
    ] {
        let mut late_max = 0;
        for _ in 0..5 {
            let t0 = ctx.now();
            ctx.sleep_ns(ns);
            let dt = ctx.now() - t0;
            ensure!(dt >= ns, "a sleep of {ns} ns returned after {dt} ns");
            late_max = late_max.max(dt - ns);
        }
        worst = worst.max(late_max);
        line.push_str(&format!(" {ns}ns:+{}us", late_max / 1000));
    }
    kprintln!("  timer lateness (max of 5):{line}");
    ensure!(worst < 50_000_000, "a sleep was {worst} ns late");
    Ok(())
}

/// A 200 ms sleep halts the CPU: few idle calls, most of the time halted.
fn timer_idle_halts(ctx: &Ctx) -> Result<(), String> {
    let (i0, h0) = rumpuser_baremetal::platform::idle_stats();
    let irq0 = rumpuser_baremetal::time::timer_interrupts();
    let t0 = ctx.now();
    ctx.sleep_ns(200_000_000);
    let dt = ctx.now() - t0;
    let (i1, h1) = rumpuser_baremetal::platform::idle_stats();
    let irqs = rumpuser_baremetal::time::timer_interrupts() - irq0;
    let (idles, halted) = (i1 - i0, h1 - h0);
    kprintln!(
        "  200 ms sleep: {idles} idle call(s), {} ms halted of {} ms, {irqs} timer interrupt(s)",
        halted / 1_000_000,
        dt / 1_000_000
    );
    ensure!(
        idles <= 5,
        "{idles} idle calls for one sleep: the CPU is not halting"
    );
    ensure!(halted * 10 >= dt * 9, "halted only {halted} of {dt} ns");
    ensure!(irqs >= 1, "no timer interrupt ended the sleep");
    Ok(())
}

/// The wall clock is plausible and advances with the monotonic clock.
fn timer_wall_clock(ctx: &Ctx) -> Result<(), String> {
    let wall = |ctx: &Ctx| {
        let (mut s, mut n) = (0i64, 0);
        // SAFETY: valid out-pointers.
        unsafe { (ctx.api.clock_gettime)(RUMPUSER_CLOCK_RELWALL, &mut s, &mut n) };
        s as i128 * 1_000_000_000 + n as i128
    };
    let (w0, m0) = (wall(ctx), ctx.now());
    ctx.sleep_ns(20_000_000);
    let (w1, m1) = (wall(ctx), ctx.now());
    ensure!(
        w0 > 1_700_000_000 * 1_000_000_000,
        "wall clock {w0} is before 2023"
    );
    let dw = w1 - w0;
    let dm = (m1 - m0) as i128;
    // The two clocks are read one after the other: allow for that gap.
    ensure!(
        (dw - dm).abs() < 2_000_000,
        "wall advanced {dw} ns, monotonic {dm} ns"
    );
    Ok(())
}

struct Yielders {
    stop: &'static AtomicBool,
    spins: &'static AtomicU32,
    threads: Vec<sched_core::ThreadId>,
}

fn start_yielders(n: usize) -> Yielders {
    let stop: &'static AtomicBool =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(AtomicBool::new(false)));
    let spins: &'static AtomicU32 =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(AtomicU32::new(0)));
    let threads = (0..n)
        .map(|_| {
            sched_core::spawn_closure(
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        // CPU-bound work between yields.
                        let mut x = 0u64;
                        for i in 0..2_000u64 {
                            x = core::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                        }
                        spins.fetch_add(1, Ordering::Relaxed);
                        sched_core::yield_now();
                    }
                },
                "yielder",
                0,
                true,
            )
            .expect("spawn yielder")
        })
        .collect();
    Yielders {
        stop,
        spins,
        threads,
    }
}

impl Yielders {
    fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = sched_core::join(t);
        }
        self.spins.load(Ordering::Relaxed)
    }
}

/// Timers fire while four threads keep the CPU busy (no idle at all).
fn irq_timers_under_load(ctx: &Ctx) -> Result<(), String> {
    let y = start_yielders(4);
    let mut worst = 0;
    for ns in [100_000u64, 1_000_000, 5_000_000] {
        let t0 = ctx.now();
        ctx.sleep_ns(ns);
        let dt = ctx.now() - t0;
        ensure!(dt >= ns, "early under load: {dt} < {ns}");
        worst = worst.max(dt - ns);
    }
    let spins = y.stop();
    kprintln!(
        "  under load: worst lateness {} us, {spins} yielder rounds",
        worst / 1000
    );
    ensure!(spins > 0, "the yielders never ran");
    ensure!(worst < 20_000_000, "a sleep was {worst} ns late under load");
    Ok(())
}

/// With RDRAND every flag combination yields bytes; without it (boot
/// with `-cpu qemu64`) every call is an error, never made-up bytes.
fn random_cpu_source(ctx: &Ctx) -> Result<(), String> {
    let has = rumpuser_baremetal::random::available();
    for flags in [
        0,
        RUMPUSER_RANDOM_HARD,
        RUMPUSER_RANDOM_NOWAIT,
        RUMPUSER_RANDOM_HARD | RUMPUSER_RANDOM_NOWAIT,
    ] {
        let mut b = [0u8; 64];
        let mut n = usize::MAX;
        // SAFETY: valid buffer and out-pointer.
        let r = unsafe { (ctx.api.getrandom)(b.as_mut_ptr().cast(), b.len(), flags, &mut n) };
        if has {
            ensure!(
                r == 0 && (1..=64).contains(&n),
                "flags {flags}: {r}, {n} bytes"
            );
        } else {
            ensure!(
                r == Errno::ENOTSUP.raw(),
                "flags {flags} without RDRAND: {r}, want ENOTSUP"
            );
            ensure!(
                n == usize::MAX && b == [0u8; 64],
                "flags {flags}: bytes reported on failure"
            );
        }
    }
    kprintln!(
        "  random source: {}",
        rumpuser_baremetal::random::describe()
    );
    Ok(())
}

// ---- block I/O ------------------------------------------------------

#[derive(Default)]
struct Done {
    calls: AtomicU32,
    bytes: AtomicUsize,
    error: AtomicI32,
    bad_context: AtomicU32,
    /// Raw id of a green thread parked waiting for this completion.
    waiter: AtomicU64,
}

unsafe extern "C" fn biodone(arg: *mut c_void, bytes: usize, error: c_int) {
    // SAFETY: `arg` is a `Done` the test keeps alive until completion.
    let d = unsafe { &*(arg as *const Done) };
    match model::model().current() {
        Some(l) if l.holds_cpu.load(Ordering::Acquire) => {}
        _ => {
            d.bad_context.fetch_add(1, Ordering::Relaxed);
        }
    }
    d.bytes.store(bytes, Ordering::Relaxed);
    d.error.store(error, Ordering::Relaxed);
    d.calls.fetch_add(1, Ordering::Release);
    if let Some(t) = sched_core::ThreadId::from_raw(d.waiter.load(Ordering::Acquire)) {
        sched_core::wake(t);
    }
}

fn start_bio(ctx: &Ctx, fd: c_int, op: c_int, buf: *mut u8, len: usize, off: i64, d: &Done) {
    // SAFETY: the buffer and `d` outlive the request (the tests wait).
    unsafe {
        (ctx.api.bio)(
            fd,
            op,
            buf.cast(),
            len,
            off,
            Some(biodone),
            d as *const Done as *mut c_void,
        )
    };
}

/// Waits (parked, woken by `biodone`) for one completion, up to 10 s.
fn wait_done(ctx: &Ctx, d: &Done) -> Result<(usize, i32), String> {
    d.waiter
        .store(sched_core::current().as_raw(), Ordering::Release);
    let deadline = ctx.now() + 10_000_000_000;
    // The CPU is released while parked, as in any blocking hypercall.
    let n = rumpuser_core::sched::release_cpu(core::ptr::null_mut());
    while d.calls.load(Ordering::Acquire) == 0 && ctx.now() < deadline {
        sched_core::park(Some(deadline));
    }
    rumpuser_core::sched::reacquire_cpu(n, core::ptr::null_mut());
    d.waiter.store(0, Ordering::Release);
    ensure!(d.calls.load(Ordering::Acquire) > 0, "biodone never called");
    ensure!(d.calls.load(Ordering::Acquire) == 1, "biodone called twice");
    ensure!(
        d.bad_context.load(Ordering::Relaxed) == 0,
        "biodone called without a CPU or lwp"
    );
    Ok((
        d.bytes.load(Ordering::Relaxed),
        d.error.load(Ordering::Relaxed),
    ))
}

fn bio_sync(
    ctx: &Ctx,
    fd: c_int,
    op: c_int,
    buf: &mut [u8],
    off: i64,
) -> Result<(usize, i32), String> {
    let d = Done::default();
    start_bio(ctx, fd, op, buf.as_mut_ptr(), buf.len(), off, &d);
    wait_done(ctx, &d)
}

fn open(ctx: &Ctx, name: &core::ffi::CStr, mode: c_int) -> Result<c_int, c_int> {
    let mut fd = -1;
    // SAFETY: valid name and out-pointer.
    let r = unsafe { (ctx.api.open)(name.as_ptr(), mode, &mut fd) };
    if r == 0 {
        Ok(fd)
    } else {
        Err(r)
    }
}

fn close(ctx: &Ctx, fd: c_int) {
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
}

fn disk(ctx: &Ctx) -> Result<(c_int, u64), String> {
    let mut size = 0u64;
    let mut ty = 0;
    // SAFETY: valid name and out-pointers.
    let r = unsafe { (ctx.api.getfileinfo)(c"virtio0".as_ptr(), &mut size, &mut ty) };
    if r == Errno::ENOENT.raw() {
        return Err(SKIP.into());
    }
    ensure!(r == 0, "getfileinfo(virtio0): {r}");
    ensure!(ty == RUMPUSER_FT_BLK, "virtio0 type {ty}");
    let fd = open(ctx, c"virtio0", RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("open virtio0: {e}"))?;
    Ok((fd, size))
}

/// A heap buffer (DMA needs no special memory, but stacks are small).
fn buffer(len: usize, fill: impl Fn(usize) -> u8) -> Vec<u8> {
    (0..len).map(fill).collect()
}

/// The host wrote a marker into sector 0; the size matches the image.
fn blk_host_data(ctx: &Ctx) -> Result<(), String> {
    let (fd, size) = disk(ctx)?;
    if let Some(want) = param("disk_bytes").and_then(cmdline::parse_size) {
        ensure!(
            size == want,
            "virtio0 is {size} bytes, the host made {want}"
        );
    }
    let mut b = vec![0u8; 512];
    let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, 0)?;
    ensure!(r == (512, 0), "read sector 0: {r:?}");
    ensure!(
        b.starts_with(b"RUMPDISK-HOST-SECTOR0\n"),
        "sector 0 does not hold the host's marker: {:?}",
        &b[..24]
    );
    close(ctx, fd);
    Ok(())
}

/// SYNC writes of several sizes, read back; a marker the host checks.
fn blk_write_flush_read(ctx: &Ctx) -> Result<(), String> {
    let (fd, size) = disk(ctx)?;
    ensure!(size >= 4 << 20, "virtio0 is only {size} bytes");
    let flushes = rumpuser_baremetal::disk::stats().flushes;
    for (off, len) in [
        (4096usize, 512usize),
        (8192, 4096),
        (65536, 65536),
        (1 << 20, 131072),
    ] {
        let mut w = buffer(len, |i| (i * 7 + off / 512) as u8);
        let r = bio_sync(
            ctx,
            fd,
            RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
            &mut w,
            off as i64,
        )?;
        ensure!(r == (len, 0), "write {len} at {off}: {r:?}");
        ensure!(
            ctx.lwp().holds_cpu.load(Ordering::Relaxed),
            "bio returned without the CPU"
        );
        let mut back = vec![0u8; len];
        let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut back, off as i64)?;
        ensure!(r == (len, 0), "read {len} at {off}: {r:?}");
        ensure!(back == w, "data read back at {off} differs");
    }
    // The marker the host looks for after QEMU exits (sector 2).
    let mut m = vec![0u8; 512];
    m[..24].copy_from_slice(b"RUMPDISK-GUEST-WROTE-OK\n");
    let r = bio_sync(
        ctx,
        fd,
        RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
        &mut m,
        1024,
    )?;
    ensure!(r == (512, 0), "marker write: {r:?}");
    let flushed = rumpuser_baremetal::disk::stats().flushes - flushes;
    ensure!(flushed >= 5, "{flushed} flushes for 5 BIO_SYNC writes");
    close(ctx, fd);
    Ok(())
}

/// 256 requests in flight at once (more than the ring holds), each
/// completed exactly once with its own data.
fn blk_many_in_flight(ctx: &Ctx) -> Result<(), String> {
    let (fd, _) = disk(ctx)?;
    const N: usize = 256;
    const LEN: usize = 4096;
    let base = 2 << 20;
    let mut bufs: Vec<Vec<u8>> = (0..N).map(|k| buffer(LEN, |i| (k + i) as u8)).collect();
    let dones: Vec<Done> = (0..N).map(|_| Done::default()).collect();
    for (k, (b, d)) in bufs.iter_mut().zip(&dones).enumerate() {
        start_bio(
            ctx,
            fd,
            RUMPUSER_BIO_WRITE,
            b.as_mut_ptr(),
            LEN,
            (base + k * LEN) as i64,
            d,
        );
    }
    for d in &dones {
        let r = wait_done(ctx, d)?;
        ensure!(r == (LEN, 0), "write completion {r:?}");
    }
    let mut backs: Vec<Vec<u8>> = (0..N).map(|_| vec![0u8; LEN]).collect();
    let dones: Vec<Done> = (0..N).map(|_| Done::default()).collect();
    for (k, (b, d)) in backs.iter_mut().zip(&dones).enumerate() {
        start_bio(
            ctx,
            fd,
            RUMPUSER_BIO_READ,
            b.as_mut_ptr(),
            LEN,
            (base + k * LEN) as i64,
            d,
        );
    }
    for d in &dones {
        let r = wait_done(ctx, d)?;
        ensure!(r == (LEN, 0), "read completion {r:?}");
    }
    ensure!(backs == bufs, "data read back differs");
    close(ctx, fd);
    Ok(())
}

/// Out-of-range, misaligned and bad-descriptor requests complete with an errno.
fn blk_errors(ctx: &Ctx) -> Result<(), String> {
    let (fd, size) = disk(ctx)?;
    let mut b = vec![0u8; 1024];
    let einval = Errno::EINVAL.raw();
    let cases: [(&str, c_int, usize, i64, i32); 6] = [
        ("read at the end", fd, 512, size as i64, einval),
        ("read across the end", fd, 1024, size as i64 - 512, einval),
        ("write past the end", fd, 512, size as i64 + 4096, einval),
        ("misaligned offset", fd, 512, 100, einval),
        ("misaligned length", fd, 100, 0, einval),
        ("bad descriptor", 1_000_000, 512, 0, Errno::EBADF.raw()),
    ];
    for (what, f, len, off, want) in cases {
        let op = if what.starts_with("write") {
            RUMPUSER_BIO_WRITE
        } else {
            RUMPUSER_BIO_READ
        };
        let r = bio_sync(ctx, f, op, &mut b[..len], off)?;
        ensure!(r == (0, want), "{what}: {r:?}, want (0, {want})");
    }
    let mut size_out = 0u64;
    // SAFETY: valid name and out-pointer.
    let r =
        unsafe { (ctx.api.getfileinfo)(c"virtio9".as_ptr(), &mut size_out, core::ptr::null_mut()) };
    ensure!(r == Errno::ENOENT.raw(), "getfileinfo(virtio9): {r}");
    ensure!(
        open(ctx, c"nosuchdisk", RUMPUSER_OPEN_RDONLY) == Err(Errno::ENOENT.raw()),
        "open of an unknown name"
    );
    ensure!(
        open(
            ctx,
            c"virtio0",
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL
        ) == Err(Errno::EEXIST.raw()),
        "CREATE|EXCL of a disk"
    );
    close(ctx, fd);
    Ok(())
}

/// `rumpuser_iovwrite`/`iovread` on the disk (scatter/gather), `syncfd`.
fn blk_iov(ctx: &Ctx) -> Result<(), String> {
    let (fd, _) = disk(ctx)?;
    let mut a = buffer(1024, |i| i as u8 ^ 0x5a);
    let mut b = buffer(512, |i| i as u8 ^ 0xa5);
    let iov = [
        IoVec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        IoVec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    let mut n = 0usize;
    // SAFETY: valid iovecs and out-pointer.
    let r = unsafe { (ctx.api.iovwrite)(fd, iov.as_ptr(), 2, 3 << 20, &mut n) };
    ensure!(r == 0 && n == 1536, "iovwrite: {r}, {n} bytes");
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.syncfd)(fd, RUMPUSER_SYNCFD_WRITE, 0, 0) };
    ensure!(r == 0, "syncfd: {r}");
    let mut back = vec![0u8; 1536];
    let iov = [IoVec {
        iov_base: back.as_mut_ptr().cast(),
        iov_len: back.len(),
    }];
    // SAFETY: valid iovec and out-pointer.
    let r = unsafe { (ctx.api.iovread)(fd, iov.as_ptr().cast_mut(), 1, 3 << 20, &mut n) };
    ensure!(r == 0 && n == 1536, "iovread: {r}, {n} bytes");
    ensure!(
        back[..1024] == a[..] && back[1024..] == b[..],
        "iov data differs"
    );
    let iov = [IoVec {
        iov_base: back.as_mut_ptr().cast(),
        iov_len: 100,
    }];
    // SAFETY: as above.
    let r = unsafe { (ctx.api.iovread)(fd, iov.as_ptr().cast_mut(), 1, 0, &mut n) };
    ensure!(r == Errno::EINVAL.raw(), "unaligned iovread: {r}");
    close(ctx, fd);
    Ok(())
}

/// `virtio1`, when the host attached it, is read-only.
fn blk_readonly(ctx: &Ctx) -> Result<(), String> {
    let mut size = 0u64;
    // SAFETY: valid name and out-pointer.
    let r = unsafe { (ctx.api.getfileinfo)(c"virtio1".as_ptr(), &mut size, core::ptr::null_mut()) };
    if r != 0 {
        return Err(SKIP.into());
    }
    ensure!(
        open(ctx, c"virtio1", RUMPUSER_OPEN_RDWR) == Err(Errno::EROFS.raw()),
        "RDWR open of a read-only disk"
    );
    let fd = open(ctx, c"virtio1", RUMPUSER_OPEN_RDONLY | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("RDONLY open: {e}"))?;
    let mut b = vec![0u8; 512];
    let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, 0)?;
    ensure!(r == (512, 0), "read: {r:?}");
    let r = bio_sync(ctx, fd, RUMPUSER_BIO_WRITE, &mut b, 0)?;
    ensure!(
        r == (0, Errno::EROFS.raw()),
        "write to a read-only disk: {r:?}"
    );
    close(ctx, fd);
    Ok(())
}

/// Block I/O completes, by interrupt, while four threads keep the CPU busy.
fn irq_bio_under_load(ctx: &Ctx) -> Result<(), String> {
    let (fd, _) = disk(ctx)?;
    let s0 = rumpuser_baremetal::disk::stats();
    let y = start_yielders(4);
    const N: usize = 64;
    let mut bufs: Vec<Vec<u8>> = (0..N)
        .map(|k| buffer(4096, |i| (k * 3 + i) as u8))
        .collect();
    let dones: Vec<Done> = (0..N).map(|_| Done::default()).collect();
    let t0 = ctx.now();
    for (k, (b, d)) in bufs.iter_mut().zip(&dones).enumerate() {
        let off = (3 << 20) + (k * 4096) as i64;
        start_bio(ctx, fd, RUMPUSER_BIO_READ, b.as_mut_ptr(), 4096, off, d);
    }
    for d in &dones {
        let r = wait_done(ctx, d)?;
        ensure!(r == (4096, 0), "completion {r:?}");
    }
    let dt = ctx.now() - t0;
    let spins = y.stop();
    let s1 = rumpuser_baremetal::disk::stats();
    kprintln!(
        "  {N} reads under load in {} us: {} interrupt(s), {} completion(s) by interrupt, {} by watchdog, {spins} yielder rounds",
        dt / 1000,
        s1.interrupts - s0.interrupts,
        s1.by_interrupt - s0.by_interrupt,
        s1.watchdog - s0.watchdog,
    );
    ensure!(s1.interrupts > s0.interrupts, "no device interrupt");
    ensure!(
        s1.watchdog == s0.watchdog,
        "completions needed the watchdog"
    );
    close(ctx, fd);
    Ok(())
}

// ---- benchmarks -----------------------------------------------------

fn bench(ctx: &Ctx) -> Result<(), String> {
    // Context switch: two threads yielding to each other.
    let iters = 20_000;
    let ns = sched_core::bench_yield_pingpong(iters).map_err(|e| format!("{e:?}"))?;
    kprintln!("bench switch_pingpong {} ns/switch", ns / (2 * iters));
    // Timer wake latency: how late a 100 us sleep wakes, on average.
    let n = 200;
    let mut late = 0;
    for _ in 0..n {
        let t0 = ctx.now();
        ctx.sleep_ns(100_000);
        late += ctx.now() - t0 - 100_000;
    }
    kprintln!(
        "bench timer_wake_latency {} ns (mean lateness of 100 us sleeps)",
        late / n
    );
    let Ok((fd, _)) = disk(ctx) else {
        return Ok(());
    };
    // 4 KiB read latency at queue depth 1.
    let mut b = vec![0u8; 4096];
    let n = 500u64;
    let t0 = ctx.now();
    for k in 0..n {
        let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, (k as i64 % 256) * 4096)?;
        ensure!(r.1 == 0, "read {r:?}");
    }
    kprintln!(
        "bench blk_read_4k_qd1 {} us/read",
        (ctx.now() - t0) / n / 1000
    );
    // 64 KiB reads, 32 in flight.
    const Q: usize = 32;
    let mut bufs: Vec<Vec<u8>> = (0..Q).map(|_| vec![0u8; 65536]).collect();
    let rounds = 8;
    let t0 = ctx.now();
    for round in 0..rounds {
        let dones: Vec<Done> = (0..Q).map(|_| Done::default()).collect();
        for (k, (bb, d)) in bufs.iter_mut().zip(&dones).enumerate() {
            let off = (((round * Q + k) % 48) * 65536) as i64;
            start_bio(ctx, fd, RUMPUSER_BIO_READ, bb.as_mut_ptr(), 65536, off, d);
        }
        for d in &dones {
            wait_done(ctx, d)?;
        }
    }
    let dt = ctx.now() - t0;
    let bytes = (rounds * Q * 65536) as u64;
    kprintln!(
        "bench blk_read_64k_qd32 {} MiB/s",
        bytes * 1_000_000_000 / dt.max(1) / (1 << 20)
    );
    close(ctx, fd);
    Ok(())
}
