//! The in-guest test harness shared by the bare-metal and Xen test images
//! (`src/bin/rumpuser-baremetal-test/` in `rumpuser-baremetal`, `src/bin/rumpuser-xen-test.rs`
//! in `rumpuser-xen`): `main`'s command line (`crash=`, `suite=`,
//! `repeat=`, `RUMPUSER_KIT_FILTER=`, `test=`), the deliberate crashes, the
//! conformance-kit and platform-test runners and the cases both platforms
//! run (timers, random, block I/O through `rumpuser_bio`), given a
//! [`Hooks`] of platform functions and limits.
//!
//! Every case prints one line `<suite> <name> ... ok` (or `... FAILED:
//! <why>` / `... skipped`), then a summary line `<suite>: N passed, N
//! failed, N skipped` (what `cargo xtask baremetal-test`/`xen-test` parse);
//! [`main`] returns the number of failures.

pub mod net;

use crate::{cmdline, kprintln};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void, CStr};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use rumpuser_core::abi::*;
use rumpuser_core::conformance::{self, model, Config, Ctx, KitApi, Report};
use rumpuser_core::{ensure, Errno};
use rumpuser_green::sched_core;

/// A platform test: `Ok`, `Err(SKIP)` or `Err(why it failed)`.
pub type Case = fn(&Ctx, &Hooks) -> Result<(), String>;

/// The error a case returns to be counted as skipped.
pub const SKIP: &str = "skip";

/// Sizes of the shared benchmarks.
pub struct BenchSizes {
    /// 100 us sleeps timed for the wake latency.
    pub timer_sleeps: u64,
    /// 4 KiB reads at queue depth 1.
    pub qd1_reads: u64,
    /// Rounds of 32 64 KiB reads in flight.
    pub qd32_rounds: usize,
}

/// What a platform supplies to the shared harness and cases.
pub struct Hooks {
    /// The platform's exported hypercalls.
    pub api: KitApi,
    /// The boot command line (parameters).
    pub cmdline: fn() -> &'static str,
    /// Monotonic clock, ns.
    pub now: fn() -> u64,
    /// The platform tests, in order.
    pub cases: &'static [(&'static str, Case)],
    /// What halts the CPU: "CPU" or "vcpu".
    pub cpu: &'static str,
    /// `(idle calls, ns halted)` so far.
    pub idle_stats: fn() -> (u64, u64),
    /// Timer wake-ups so far, and what one is called ("timer interrupt").
    pub timer_wakeups: (fn() -> u64, &'static str),
    /// Sleep lengths (ns) `timer::sleeps_never_early` tries, how often each.
    pub sleep_scales: (&'static [u64], u32),
    /// The latest a sleep may end, idle and under load (ns).
    pub max_late_ns: (u64, u64),
    /// The read-write disk the host made (its marker in sector 0).
    pub disk: &'static CStr,
    /// Names that must not be disks (`ENOENT`).
    pub unknown_disks: &'static [&'static CStr],
    /// Flushes the disk driver has issued so far.
    pub disk_flushes: fn() -> u64,
    /// Lines describing the disks, printed by `blk::host_data_and_size`.
    pub disk_describe: Option<fn() -> Vec<String>>,
    /// Requests `blk::many_in_flight` keeps in flight.
    pub in_flight: usize,
    /// Sizes of [`bench()`].
    pub bench: BenchSizes,
}

impl Hooks {
    /// A command-line parameter.
    pub fn param(&self, name: &str) -> Option<&'static str> {
        cmdline::param((self.cmdline)(), name)
    }
}

struct Console;

impl Report for Console {
    fn case(&mut self, name: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => kprintln!("conformance {name} ... ok"),
            Err(e) => kprintln!("conformance {name} ... FAILED: {e}"),
        }
    }
}

/// The test image's `main`: a deliberate crash (`crash=`), or the suites
/// of `suite=` (`kit` and/or `platform`, joined by `,` or `+`; default
/// both), the platform tests `repeat=` times. Returns the failures.
pub fn main(h: &Hooks) -> c_int {
    if let Some(c) = h.param("crash") {
        crash(h.api, c);
    }
    let suites = h.param("suite").unwrap_or("kit,platform");
    let has = |s: &str| suites.split(['+', ',']).any(|x| x == s);
    let mut failed = 0;
    if has("kit") {
        let cfg = Config {
            scratch_dir: None,
            filter: h.param("RUMPUSER_KIT_FILTER").map(String::from),
            ncpu: None,
            cooperative: true,
        };
        let t0 = (h.now)();
        let s = conformance::run(h.api, &cfg, &mut Console);
        kprintln!(
            "conformance: {} passed, {} failed, {} skipped in {} ms",
            s.passed,
            s.failed,
            s.skipped,
            ((h.now)() - t0) / 1_000_000
        );
        failed += s.failed;
    } else {
        // The platform tests need the model kernel's upcalls.
        // SAFETY: plain hypercall with the kit's static upcall table.
        let r = unsafe { (h.api.init)(RUMPUSER_VERSION, &model::HYPERUP) };
        assert_eq!(r, 0, "rumpuser_init");
        model::install(h.api, 2);
    }
    if has("platform") {
        let repeat = h.param("repeat").and_then(|r| r.parse().ok()).unwrap_or(1);
        for _ in 0..repeat {
            failed += platform_tests(h);
        }
    }
    failed as c_int
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

/// `crash=null|stack|panic|deadlock|exit|exitpanic`: a NULL write, a
/// green-thread stack overflow, a panic, a deadlock, `rumpuser_exit(42)`,
/// `rumpuser_exit(RUMPUSER_PANIC)`.
#[inline(never)]
fn crash(api: KitApi, kind: &str) -> ! {
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
            unsafe { (api.exit)(42) }
        }
        "exitpanic" => {
            // SAFETY: plain hypercall; never returns.
            unsafe { (api.exit)(RUMPUSER_PANIC) }
        }
        _ => panic!("deliberate panic (crash={kind})"),
    }
    panic!("crash test {kind} did not crash");
}

// ---------------------------------------------------------------------
// The platform-test runner.

fn platform_tests(h: &Hooks) -> usize {
    let ctx = Ctx {
        api: h.api,
        cfg: Config::default(),
    };
    let m = model::model();
    let filter = h.param("test");
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, case) in h.cases {
        if filter.is_some_and(|f| !name.contains(f)) {
            skipped += 1;
            continue;
        }
        m.enter();
        let r = case(&ctx, h);
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

// ---------------------------------------------------------------------
// Timers and random.

/// Sleeps of every scale are never early; lateness is reported.
pub fn timer_never_early(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (scales, reps) = h.sleep_scales;
    let mut worst = 0u64;
    let mut line = String::new();
    for &ns in scales {
        let mut late_max = 0;
        for _ in 0..reps {
            let t0 = ctx.now();
            ctx.sleep_ns(ns);
            let dt = ctx.now() - t0;
            ensure!(dt >= ns, "a sleep of {ns} ns returned after {dt} ns");
            late_max = late_max.max(dt - ns);
        }
        worst = worst.max(late_max);
        line.push_str(&format!(" {ns}ns:+{}us", late_max / 1000));
    }
    kprintln!("  timer lateness (max of {reps}):{line}");
    ensure!(worst < h.max_late_ns.0, "a sleep was {worst} ns late");
    Ok(())
}

/// A 200 ms sleep halts the CPU: few idle calls, most of the time
/// halted, ended by a timer wake-up.
pub fn timer_idle_halts(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (wakeups, wakeup) = h.timer_wakeups;
    let (i0, h0) = (h.idle_stats)();
    let w0 = wakeups();
    let t0 = ctx.now();
    ctx.sleep_ns(200_000_000);
    let dt = ctx.now() - t0;
    let (i1, h1) = (h.idle_stats)();
    let ws = wakeups() - w0;
    let (idles, halted) = (i1 - i0, h1 - h0);
    kprintln!(
        "  200 ms sleep: {idles} idle call(s), {} ms halted of {} ms, {ws} {wakeup}(s)",
        halted / 1_000_000,
        dt / 1_000_000
    );
    ensure!(
        idles <= 5,
        "{idles} idle calls for one sleep: the {} is not halting",
        h.cpu
    );
    ensure!(halted * 10 >= dt * 9, "halted only {halted} of {dt} ns");
    ensure!(ws >= 1, "no {wakeup} ended the sleep");
    Ok(())
}

/// Two interrupts pending when interrupts are let in: the interrupt
/// window (and so the idle halt, the same mechanism) takes exactly one,
/// and the next window the other. A CPU that re-delivers at the `cli`
/// (nested Xen under TCG did, forever) must not keep the handler
/// running; the entry returns from an interrupt taken in the window with
/// interrupts masked (`cpu::window_resume`).
pub fn one_interrupt_per_window(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    use crate::arch::{cpu, lapic, trap};
    if !lapic::enabled() {
        // Xen with `RUMPUSER_XEN_IDLE=poll`: no local APIC in use.
        return Err(SKIP.into());
    }
    let flags = cpu::irq_save();
    let before = trap::self_test_irqs();
    // Two vectors: two requests for one vector are one pending bit.
    lapic::self_ipi(lapic::SELF_TEST_VECTOR);
    lapic::self_ipi(lapic::TIMER_VECTOR);
    let timer_before = crate::arch::trap::timer_interrupts();
    let both_pending =
        lapic::pending(lapic::SELF_TEST_VECTOR) && lapic::pending(lapic::TIMER_VECTOR);
    cpu::interrupt_window();
    let after_one = (
        trap::self_test_irqs() - before,
        crate::arch::trap::timer_interrupts() - timer_before,
    );
    cpu::interrupt_window();
    let after_two = (
        trap::self_test_irqs() - before,
        crate::arch::trap::timer_interrupts() - timer_before,
    );
    cpu::irq_restore(flags);
    ensure!(both_pending, "the two self-IPIs were not both pending");
    // The higher vector (0x31) is delivered first.
    ensure!(
        after_one == (1, 0),
        "one window took {} self-test and {} timer interrupt(s), expected exactly one",
        after_one.0,
        after_one.1
    );
    ensure!(
        after_two == (1, 1),
        "the second window took {:?} (self-test, timer) in all, expected (1, 1)",
        after_two
    );
    Ok(())
}

/// The wall clock is plausible and advances with the monotonic clock.
pub fn timer_wall_clock(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let wall = |ctx: &Ctx| {
        let (mut s, mut n) = (0i64, 0);
        // SAFETY: valid out-pointers.
        unsafe { (ctx.api.clock_gettime)(RUMPUSER_CLOCK_RELWALL, &mut s, &mut n) };
        s as i128 * 1_000_000_000 + n as i128
    };
    // The host may step the wall clock (a Xen dom0 sets Xen's wall clock
    // for every domain when its own time is corrected): a step inside the
    // 20 ms window is a legitimate disagreement, so up to three windows
    // are measured; a wrong rate or offset fails all of them.
    let mut last = String::new();
    for _ in 0..3 {
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
        if (dw - dm).abs() < 2_000_000 {
            return Ok(());
        }
        last = format!("wall advanced {dw} ns, monotonic {dm} ns");
    }
    Err(format!("in three 20 ms windows; last: {last}"))
}

/// Green threads that keep the CPU busy between yields.
pub struct Yielders {
    stop: &'static AtomicBool,
    spins: &'static AtomicU32,
    threads: Vec<sched_core::ThreadId>,
}

/// Starts `n` [`Yielders`].
pub fn start_yielders(n: usize) -> Yielders {
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let spins: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
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
    /// Stops and joins them; returns how many rounds they ran.
    pub fn stop(self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = sched_core::join(t);
        }
        self.spins.load(Ordering::Relaxed)
    }
}

/// Timers fire while four threads keep the CPU busy (no idle at all).
pub fn timer_under_load(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
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
    ensure!(
        worst < h.max_late_ns.1,
        "a sleep was {worst} ns late under load"
    );
    Ok(())
}

/// With RDRAND every flag combination yields bytes; without it (boot
/// with `-cpu qemu64`) every call is an error, never made-up bytes.
pub fn random_cpu_source(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let has = crate::random::available();
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
    kprintln!("  random source: {}", crate::random::describe());
    Ok(())
}

// ---------------------------------------------------------------------
// Block I/O.

/// One `rumpuser_bio` completion, filled by its `biodone`.
#[derive(Default)]
pub struct Done {
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

/// Starts `rumpuser_bio` of `len` bytes at `buf`; `d` gets the completion.
/// The buffer and `d` must outlive the request (wait with [`wait_done`]).
pub fn start_bio(ctx: &Ctx, fd: c_int, op: c_int, buf: *mut u8, len: usize, off: i64, d: &Done) {
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

/// Waits (parked, woken by `biodone`) for one completion, up to 15 s;
/// returns `(bytes, error)`.
pub fn wait_done(ctx: &Ctx, d: &Done) -> Result<(usize, i32), String> {
    d.waiter
        .store(sched_core::current().as_raw(), Ordering::Release);
    let deadline = ctx.now() + 15_000_000_000;
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

/// One `rumpuser_bio` on `buf`, waited for.
pub fn bio_sync(
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

/// `rumpuser_open`: the descriptor or the errno.
pub fn open(ctx: &Ctx, name: &CStr, mode: c_int) -> Result<c_int, c_int> {
    let mut fd = -1;
    // SAFETY: valid name and out-pointer.
    let r = unsafe { (ctx.api.open)(name.as_ptr(), mode, &mut fd) };
    if r == 0 {
        Ok(fd)
    } else {
        Err(r)
    }
}

/// `rumpuser_close`.
pub fn close(ctx: &Ctx, fd: c_int) {
    // SAFETY: plain hypercall.
    unsafe { (ctx.api.close)(fd) };
}

/// The platform's disk, opened read-write for bio, and its size; skips
/// when there is none.
pub fn disk(ctx: &Ctx, h: &Hooks) -> Result<(c_int, u64), String> {
    let name = h.disk;
    let mut size = 0u64;
    let mut ty = 0;
    // SAFETY: valid name and out-pointers.
    let r = unsafe { (ctx.api.getfileinfo)(name.as_ptr(), &mut size, &mut ty) };
    if r == Errno::ENOENT.raw() {
        return Err(SKIP.into());
    }
    ensure!(r == 0, "getfileinfo({name:?}): {r}");
    ensure!(ty == RUMPUSER_FT_BLK, "{name:?} type {ty}");
    let fd = open(ctx, name, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("open {name:?}: {e}"))?;
    Ok((fd, size))
}

/// A heap buffer (DMA needs no special memory, but stacks are small).
pub fn buffer(len: usize, fill: impl Fn(usize) -> u8) -> Vec<u8> {
    (0..len).map(fill).collect()
}

/// The host wrote a marker into sector 0 (read by bio and by iovread);
/// the size is what the host made (`disk_bytes=`).
pub fn blk_host_data(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, size) = disk(ctx, h)?;
    if let Some(describe) = h.disk_describe {
        for l in describe() {
            kprintln!("  {l}");
        }
    }
    if let Some(want) = h.param("disk_bytes").and_then(cmdline::parse_size) {
        ensure!(
            size == want,
            "{:?} is {size} bytes, the host made {want}",
            h.disk
        );
    }
    let mut b = vec![0u8; 512];
    let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, 0)?;
    ensure!(r == (512, 0), "read sector 0: {r:?}");
    ensure!(
        b.starts_with(b"RUMPDISK-HOST-SECTOR0"),
        "sector 0 does not hold the host's marker: {:?}",
        &b[..24]
    );
    // The same through rumpuser_iovread.
    let mut c = vec![0u8; 512];
    let iov = [IoVec {
        iov_base: c.as_mut_ptr().cast(),
        iov_len: c.len(),
    }];
    let mut n = 0usize;
    // SAFETY: valid iovec and out-pointer.
    let r = unsafe { (ctx.api.iovread)(fd, iov.as_ptr().cast_mut(), 1, 0, &mut n) };
    ensure!(
        r == 0 && n == 512 && c == b,
        "iovread of sector 0: {r}, {n}"
    );
    close(ctx, fd);
    Ok(())
}

/// SYNC writes of several sizes (some from misaligned buffers) read back,
/// each followed by a flush; a marker the host looks for afterwards
/// (sector 2).
pub fn blk_write_flush_read(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, size) = disk(ctx, h)?;
    ensure!(size >= 4 << 20, "{:?} is only {size} bytes", h.disk);
    let flushes = (h.disk_flushes)();
    for (off, len, skew) in [
        (4096usize, 512usize, 0usize),
        (8192, 4096, 8),
        (65536, 65536, 0),
        (1 << 20, 131072, 100),
    ] {
        let mut w = buffer(len + skew, |i| (i * 7 + off / 512) as u8);
        let data = &mut w[skew..];
        let r = bio_sync(
            ctx,
            fd,
            RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
            data,
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
        ensure!(back[..] == data[..], "data read back at {off} differs");
    }
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
    let flushed = (h.disk_flushes)() - flushes;
    ensure!(flushed >= 5, "{flushed} flushes for 5 BIO_SYNC writes");
    close(ctx, fd);
    Ok(())
}

/// `h.in_flight` requests in flight at once (more than the ring holds),
/// each completed exactly once with its own data.
pub fn blk_many_in_flight(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, _) = disk(ctx, h)?;
    const LEN: usize = 4096;
    let base = 2 << 20;
    let ios = |op: c_int, bufs: &mut [Vec<u8>]| -> Result<(), String> {
        let dones: Vec<Done> = bufs.iter().map(|_| Done::default()).collect();
        for (k, (b, d)) in bufs.iter_mut().zip(&dones).enumerate() {
            start_bio(ctx, fd, op, b.as_mut_ptr(), LEN, (base + k * LEN) as i64, d);
        }
        for d in &dones {
            let r = wait_done(ctx, d)?;
            ensure!(r == (LEN, 0), "completion of op {op}: {r:?}");
        }
        Ok(())
    };
    let mut bufs: Vec<Vec<u8>> = (0..h.in_flight)
        .map(|k| buffer(LEN, |i| (k + i) as u8))
        .collect();
    ios(RUMPUSER_BIO_WRITE, &mut bufs)?;
    let mut backs: Vec<Vec<u8>> = (0..h.in_flight).map(|_| vec![0u8; LEN]).collect();
    ios(RUMPUSER_BIO_READ, &mut backs)?;
    ensure!(backs == bufs, "data read back differs");
    close(ctx, fd);
    Ok(())
}

/// Out-of-range, misaligned and bad-descriptor requests complete with
/// an errno; unknown names are `ENOENT`, a disk cannot be created.
pub fn blk_errors(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, size) = disk(ctx, h)?;
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
    for &name in h.unknown_disks {
        // SAFETY: valid name and out-pointer.
        let r =
            unsafe { (ctx.api.getfileinfo)(name.as_ptr(), &mut size_out, core::ptr::null_mut()) };
        ensure!(r == Errno::ENOENT.raw(), "getfileinfo({name:?}): {r}");
        ensure!(
            open(ctx, name, RUMPUSER_OPEN_RDONLY) == Err(Errno::ENOENT.raw()),
            "open of an unknown name {name:?}"
        );
    }
    ensure!(
        open(
            ctx,
            h.disk,
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL
        ) == Err(Errno::EEXIST.raw()),
        "CREATE|EXCL of a disk"
    );
    close(ctx, fd);
    Ok(())
}

/// `rumpuser_iovwrite`/`iovread` on the disk (scatter/gather), `syncfd`
/// (a flush), an unaligned `iovread`.
pub fn blk_iov(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, _) = disk(ctx, h)?;
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
    let f0 = (h.disk_flushes)();
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.syncfd)(fd, RUMPUSER_SYNCFD_WRITE, 0, 0) };
    ensure!(r == 0, "syncfd: {r}");
    ensure!((h.disk_flushes)() > f0, "syncfd issued no flush");
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

// ---------------------------------------------------------------------
// Benchmarks.

/// `bench <name> <value>` lines: context switch, timer wake latency and,
/// with a disk, 4 KiB reads at queue depth 1 and 64 KiB reads 32 in flight.
pub fn bench(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    // Context switch: two threads yielding to each other.
    let iters = 20_000;
    let ns = sched_core::bench_yield_pingpong(iters).map_err(|e| format!("{e:?}"))?;
    kprintln!("bench switch_pingpong {} ns/switch", ns / (2 * iters));
    // One monotonic clock read (what the scheduler pays per timer check).
    let reads = 2_000u64;
    let t0 = ctx.now();
    for _ in 0..reads {
        core::hint::black_box(ctx.now());
    }
    kprintln!("bench clock_read {} ns", (ctx.now() - t0) / reads);
    // Timer wake latency: how late a 100 us sleep wakes, on average.
    let n = h.bench.timer_sleeps;
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
    let Ok((fd, _)) = disk(ctx, h) else {
        return Ok(());
    };
    // 4 KiB read latency at queue depth 1.
    let mut b = vec![0u8; 4096];
    let n = h.bench.qd1_reads;
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
    let rounds = h.bench.qd32_rounds;
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
