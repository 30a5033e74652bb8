//! The Xen test image: the conformance kit and the Xen platform tests,
//! booted as a PVH guest under the nested Xen harness and reporting on
//! the Xen console.
//!
//! Built by `cargo xtask xen-test` for `x86_64-unknown-none`; the command
//! line (the dom0 module string) picks what runs:
//!
//! * `suite=kit+platform` (default both): the conformance kit
//!   (`Config { scratch_dir: None, cooperative: true }`: file and bio
//!   cases skip), then the platform tests (timers never early, idle
//!   halts in `hlt`, wall clock, timers under load, random, an event
//!   channel loopback woken by the upcall, benchmarks).
//! * `crash=panic|exit|null|deadlock`: a deliberate panic,
//!   `rumpuser_exit(42)`, a NULL write, or a deadlock, to check the
//!   reports and the exit status.
//! * `RUMPUSER_KIT_FILTER=...`, `test=...`: run only matching cases;
//!   `repeat=N` runs the platform tests N times (stress).
//!
//! Every case prints `<suite> <name> ... ok` (or `... FAILED: <why>` /
//! `... skipped`) and a summary `<suite>: N passed, N failed, N skipped`;
//! `main` returns the number of failures.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use rumpuser_baremetal::cmdline;
use rumpuser_core::abi::*;
use rumpuser_core::conformance::{self, model, Config, Ctx, Report};
use rumpuser_core::Errno;
use rumpuser_green::sched_core;
use rumpuser_xen::{events, rumpuser_exports::API, xprintln};

struct Console;

impl Report for Console {
    fn case(&mut self, name: &str, result: &Result<(), String>) {
        match result {
            Ok(()) => xprintln!("conformance {name} ... ok"),
            Err(e) => xprintln!("conformance {name} ... FAILED: {e}"),
        }
    }
}

fn param(name: &str) -> Option<&'static str> {
    cmdline::param(rumpuser_xen::start::cmdline(), name)
}

fn now() -> u64 {
    rumpuser_xen::time::now_ns()
}

/// The image's entry point, called by the platform after boot.
#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    if let Some(c) = param("crash") {
        crash(c);
    }
    let suites = param("suite").unwrap_or("kit+platform");
    let has = |s: &str| suites.split(['+', ',']).any(|x| x == s);
    let mut failed = 0;
    if has("kit") {
        let cfg = Config {
            scratch_dir: None,
            filter: param("RUMPUSER_KIT_FILTER").map(String::from),
            ncpu: None,
            cooperative: true,
        };
        let t0 = now();
        let s = conformance::run(&API, &cfg, &mut Console);
        xprintln!(
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
    if has("platform") {
        let repeat = param("repeat").and_then(|r| r.parse().ok()).unwrap_or(1);
        for _ in 0..repeat {
            failed += platform_tests();
        }
    }
    failed as c_int
}

// ---------------------------------------------------------------------
// Deliberate crashes (the host checks the report and the exit status).

fn crash(kind: &str) -> ! {
    xprintln!("crash test: {kind}");
    match kind {
        "null" => {
            let p = core::hint::black_box(core::ptr::null_mut::<u64>());
            // SAFETY: deliberately invalid: this must fault and be reported.
            unsafe { p.write_volatile(42) };
        }
        "deadlock" => loop {
            sched_core::park(None);
        },
        "exit" => {
            // SAFETY: plain hypercall; never returns.
            unsafe { (API.exit)(42) }
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
        ("xen::boot_info", xen_boot_info),
        ("timer::sleeps_never_early", timer_never_early),
        ("timer::idle_halts", timer_idle_halts),
        ("timer::wall_clock", timer_wall_clock),
        ("timer::under_load", timer_under_load),
        ("random::cpu_source", random_cpu_source),
        ("evtchn::loopback_wakes_parked_thread", evtchn_loopback),
        ("evtchn::under_load", evtchn_under_load),
        ("xenstore::read_write_directory_watch", xenstore_basics),
        ("blk::host_data_and_size", blk_host_data),
        ("blk::write_flush_read_back", blk_write_flush_read),
        ("blk::many_in_flight", blk_many_in_flight),
        ("blk::errors_reach_biodone", blk_errors),
        ("blk::iov_and_syncfd", blk_iov),
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
                xprintln!("platform {name} ... ok");
            }
            Err(e) if e == SKIP => {
                skipped += 1;
                xprintln!("platform {name} ... skipped");
            }
            Err(e) => {
                failed += 1;
                xprintln!("platform {name} ... FAILED: {e}");
            }
        }
    }
    xprintln!("platform: {passed} passed, {failed} failed, {skipped} skipped");
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

/// What boot found: Xen 4.x, a RAM map, a timer port.
fn xen_boot_info(_ctx: &Ctx) -> Result<(), String> {
    let i = rumpuser_xen::start::info().ok_or("no boot info")?;
    xprintln!(
        "  Xen {}.{} {}, start info v{}, RAM map from {} ({} range(s)), timer port {}, TSC {} kHz",
        i.xen_version >> 16,
        i.xen_version & 0xffff,
        if i.dom0 { "dom0" } else { "domU" },
        i.start_info_version,
        i.memmap_source,
        i.nram,
        i.timer_port,
        i.tsc_hz / 1000
    );
    ensure!(i.xen_version >> 16 == 4, "Xen version {:#x}", i.xen_version);
    ensure!(i.nram > 0, "no RAM ranges");
    ensure!(i.timer_port > 0, "no VIRQ_TIMER port");
    ensure!(i.tsc_hz > 1_000_000, "TSC scale {} Hz", i.tsc_hz);
    Ok(())
}

/// Sleeps of every scale are never early; lateness is reported.
fn timer_never_early(ctx: &Ctx) -> Result<(), String> {
    let mut worst = 0u64;
    let mut line = String::new();
    for ns in [1u64, 10_000, 100_000, 1_000_000, 5_000_000, 20_000_000] {
        let mut late_max = 0;
        for _ in 0..3 {
            let t0 = ctx.now();
            ctx.sleep_ns(ns);
            let dt = ctx.now() - t0;
            ensure!(dt >= ns, "a sleep of {ns} ns returned after {dt} ns");
            late_max = late_max.max(dt - ns);
        }
        worst = worst.max(late_max);
        line.push_str(&format!(" {ns}ns:+{}us", late_max / 1000));
    }
    xprintln!("  timer lateness (max of 3):{line}");
    // Generous: nested TCG on a loaded host can stall the vcpu for a while.
    ensure!(worst < 1_000_000_000, "a sleep was {worst} ns late");
    Ok(())
}

/// A 200 ms sleep halts the vcpu: few idle calls, most of the time
/// halted, ended by a `VIRQ_TIMER` event.
fn timer_idle_halts(ctx: &Ctx) -> Result<(), String> {
    let (i0, h0) = rumpuser_xen::platform::idle_stats();
    let ev0 = rumpuser_xen::time::timer_events();
    let t0 = ctx.now();
    ctx.sleep_ns(200_000_000);
    let dt = ctx.now() - t0;
    let (i1, h1) = rumpuser_xen::platform::idle_stats();
    let evs = rumpuser_xen::time::timer_events() - ev0;
    let (idles, halted) = (i1 - i0, h1 - h0);
    xprintln!(
        "  200 ms sleep: {idles} idle call(s), {} ms halted of {} ms, {evs} VIRQ_TIMER event(s)",
        halted / 1_000_000,
        dt / 1_000_000
    );
    ensure!(
        idles <= 5,
        "{idles} idle calls for one sleep: the vcpu is not halting"
    );
    ensure!(halted * 10 >= dt * 9, "halted only {halted} of {dt} ns");
    ensure!(evs >= 1, "no VIRQ_TIMER event ended the sleep");
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
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let spins: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(0)));
    let threads = (0..n)
        .map(|_| {
            sched_core::spawn_closure(
                move || {
                    while !stop.load(Ordering::Relaxed) {
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

/// Timers expire while four threads keep the vcpu busy (no idle).
fn timer_under_load(ctx: &Ctx) -> Result<(), String> {
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
    xprintln!(
        "  under load: worst lateness {} us, {spins} yielder rounds",
        worst / 1000
    );
    ensure!(spins > 0, "the yielders never ran");
    ensure!(
        worst < 1_000_000_000,
        "a sleep was {worst} ns late under load"
    );
    Ok(())
}

/// Every flag combination yields bytes from RDRAND/RDSEED (`-cpu max`).
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
                "flags {flags} without RDRAND: {r}"
            );
        }
    }
    xprintln!(
        "  random source: {}",
        rumpuser_baremetal::random::describe()
    );
    Ok(())
}

/// A loopback pair of ports: `(a, b)`, sending on `a` fires `b`.
fn loopback() -> Result<(u32, u32), String> {
    let a = events::alloc_unbound(rumpuser_xen::abi::DOMID_SELF)
        .map_err(|e| format!("EVTCHNOP_alloc_unbound: {e}"))?;
    let b = events::bind_interdomain(rumpuser_xen::abi::DOMID_SELF, a)
        .map_err(|e| format!("EVTCHNOP_bind_interdomain: {e}"))?;
    Ok((a, b))
}

/// A thread parked on a port is woken by an event sent from another
/// thread: the event goes through Xen, the upcall ends the idle halt and
/// the pending-bit scan wakes the thread.
fn evtchn_loopback(ctx: &Ctx) -> Result<(), String> {
    let (a, b) = loopback()?;
    static GOT: AtomicU64 = AtomicU64::new(0);
    GOT.store(0, Ordering::Relaxed);
    let waiter = sched_core::spawn_closure(
        move || {
            for _ in 0..10 {
                if events::wait(b, Some(now() + 5_000_000_000)) {
                    GOT.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
        "evtchn-waiter",
        0,
        true,
    )
    .map_err(|e| format!("spawn: {e:?}"))?;
    let up0 = events::upcalls();
    for _ in 0..10 {
        ctx.sleep_ns(2_000_000);
        ensure!(events::send(a) == 0, "EVTCHNOP_send failed");
    }
    let _ = sched_core::join(waiter);
    let got = GOT.load(Ordering::Relaxed);
    let ups = events::upcalls() - up0;
    xprintln!(
        "  loopback ports {a} -> {b}: {got}/10 events received, {} on port {b}, {ups} upcall scans",
        events::count(b)
    );
    ensure!(got == 10, "only {got} of 10 events woke the waiter");
    events::close(b);
    events::close(a);
    Ok(())
}

/// Events arrive (by polling between switches) while four threads keep
/// the vcpu busy.
fn evtchn_under_load(_ctx: &Ctx) -> Result<(), String> {
    let (a, b) = loopback()?;
    let y = start_yielders(4);
    let mut ok = 0;
    for _ in 0..20 {
        events::send(a);
        if events::wait(b, Some(now() + 2_000_000_000)) {
            ok += 1;
        }
    }
    let spins = y.stop();
    events::close(b);
    events::close(a);
    xprintln!("  under load: {ok}/20 events, {spins} yielder rounds");
    ensure!(ok == 20, "{ok} of 20 events arrived under load");
    Ok(())
}

/// The xenstore client against the real xenstored (domU only): our
/// domain's keys, the virtual disk the toolstack announced, a write read
/// back, an error, and a watch that fires on a write.
fn xenstore_basics(_ctx: &Ctx) -> Result<(), String> {
    use rumpuser_xen::xenstore as xs;
    if !xs::available() {
        return Err(SKIP.into());
    }
    let domid = xs::domid().map_err(|e| format!("domid: {e}"))?;
    let name = xs::read("name").map_err(|e| format!("name: {e}"))?;
    ensure!(
        domid > 0 && !name.is_empty(),
        "domid {domid}, name {name:?}"
    );
    let devices = xs::directory("device").map_err(|e| format!("device: {e}"))?;
    let vbds = xs::directory("device/vbd").unwrap_or_default();
    let mut disk = String::new();
    if let Some(id) = vbds.first() {
        let be = xs::read(&format!("device/vbd/{id}/backend"));
        let state = be
            .as_ref()
            .map(|b| xs::describe(&xs::read(&format!("{b}/state"))))
            .unwrap_or_default();
        disk = format!(", vbd {id} backend {} state {state}", xs::describe(&be));
    }
    xprintln!("  xenstore: domid {domid} name {name:?} devices {devices:?}{disk}");
    xs::write("data/rumpuser-test", "hello xenstore").map_err(|e| format!("write: {e}"))?;
    let back = xs::read("data/rumpuser-test").map_err(|e| format!("read back: {e}"))?;
    ensure!(back == "hello xenstore", "read back {back:?}");
    ensure!(
        xs::read("data/no-such-key") == Err(xs::XsError::Store("ENOENT".into())),
        "a missing key is not ENOENT"
    );
    xs::watch("data/rumpuser-w", "kit").map_err(|e| format!("watch: {e}"))?;
    // xenstored fires every new watch once.
    let first =
        xs::wait_watch("kit", now() + 5_000_000_000).map_err(|e| format!("first event: {e}"))?;
    let t0 = now();
    xs::write("data/rumpuser-w", "1").map_err(|e| format!("write watched: {e}"))?;
    let fired =
        xs::wait_watch("kit", now() + 5_000_000_000).map_err(|e| format!("watch event: {e}"))?;
    let dt = now() - t0;
    ensure!(
        fired.ends_with("data/rumpuser-w"),
        "watch fired for {fired:?}"
    );
    xs::unwatch("data/rumpuser-w", "kit").map_err(|e| format!("unwatch: {e}"))?;
    xs::remove("data/rumpuser-w").map_err(|e| format!("rm: {e}"))?;
    xprintln!(
        "  xenstore: watch registered ({first}), fired {} us after the write",
        dt / 1000
    );
    Ok(())
}

// ---- block I/O (blkfront; domU with a disk only) ---------------------

#[derive(Default)]
struct Done {
    calls: AtomicU32,
    bytes: AtomicUsize,
    error: AtomicI32,
    bad_context: AtomicU32,
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

/// Waits (parked, woken by `biodone`) for one completion, up to 15 s.
fn wait_done(ctx: &Ctx, d: &Done) -> Result<(usize, i32), String> {
    d.waiter
        .store(sched_core::current().as_raw(), Ordering::Release);
    let deadline = ctx.now() + 15_000_000_000;
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

/// `xvda`, opened read-write, and its size; skips without a disk (dom0).
fn disk(ctx: &Ctx) -> Result<(c_int, u64), String> {
    let mut size = 0u64;
    let mut ty = 0;
    // SAFETY: valid name and out-pointers.
    let r = unsafe { (ctx.api.getfileinfo)(c"xvda".as_ptr(), &mut size, &mut ty) };
    if r == Errno::ENOENT.raw() {
        return Err(SKIP.into());
    }
    ensure!(r == 0, "getfileinfo(xvda): {r}");
    ensure!(ty == RUMPUSER_FT_BLK, "xvda type {ty}");
    let fd = open(ctx, c"xvda", RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("open xvda: {e}"))?;
    Ok((fd, size))
}

fn buffer(len: usize, fill: impl Fn(usize) -> u8) -> Vec<u8> {
    (0..len).map(fill).collect()
}

/// The host's marker is in sector 0; the size is the backing file's.
fn blk_host_data(ctx: &Ctx) -> Result<(), String> {
    let (fd, size) = disk(ctx)?;
    for l in rumpuser_xen::blkfront::describe() {
        xprintln!("  {l}");
    }
    if let Some(want) = param("disk_bytes").and_then(cmdline::parse_size) {
        ensure!(size == want, "xvda is {size} bytes, the host made {want}");
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

/// SYNC writes of several sizes (one from a misaligned buffer) read back,
/// each followed by a flush; a marker the harness finds in the backing
/// file afterwards.
fn blk_write_flush_read(ctx: &Ctx) -> Result<(), String> {
    let (fd, size) = disk(ctx)?;
    ensure!(size >= 2 << 20, "xvda is only {size} bytes");
    let flushes = rumpuser_xen::blkfront::stats().flushes;
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
    let flushed = rumpuser_xen::blkfront::stats().flushes - flushes;
    ensure!(flushed >= 5, "{flushed} flushes for 5 BIO_SYNC writes");
    close(ctx, fd);
    Ok(())
}

/// 96 requests in flight at once (three times the ring), each completed
/// exactly once with its own data.
fn blk_many_in_flight(ctx: &Ctx) -> Result<(), String> {
    let (fd, _) = disk(ctx)?;
    const N: usize = 96;
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

/// Out-of-range, misaligned and bad-descriptor requests complete with
/// an errno; unknown names are ENOENT.
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
    for name in [c"xvdz", c"xvdb", c"12345"] {
        // SAFETY: valid name and out-pointer.
        let r =
            unsafe { (ctx.api.getfileinfo)(name.as_ptr(), &mut size_out, core::ptr::null_mut()) };
        ensure!(r == Errno::ENOENT.raw(), "getfileinfo({name:?}): {r}");
    }
    ensure!(
        open(
            ctx,
            c"xvda",
            RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_CREATE | RUMPUSER_OPEN_EXCL
        ) == Err(Errno::EEXIST.raw()),
        "CREATE|EXCL of a disk"
    );
    close(ctx, fd);
    Ok(())
}

/// `rumpuser_iovwrite`/`iovread` (scatter/gather) and `syncfd`.
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
    let f0 = rumpuser_xen::blkfront::stats().flushes;
    // SAFETY: plain hypercall.
    let r = unsafe { (ctx.api.syncfd)(fd, RUMPUSER_SYNCFD_WRITE, 0, 0) };
    ensure!(r == 0, "syncfd: {r}");
    ensure!(
        rumpuser_xen::blkfront::stats().flushes > f0,
        "syncfd issued no flush"
    );
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
    close(ctx, fd);
    Ok(())
}

fn bench(ctx: &Ctx) -> Result<(), String> {
    let iters = 20_000;
    let ns = sched_core::bench_yield_pingpong(iters).map_err(|e| format!("{e:?}"))?;
    xprintln!("bench switch_pingpong {} ns/switch", ns / (2 * iters));
    let n = 100;
    let mut late = 0;
    for _ in 0..n {
        let t0 = ctx.now();
        ctx.sleep_ns(100_000);
        late += ctx.now() - t0 - 100_000;
    }
    xprintln!(
        "bench timer_wake_latency {} ns (mean lateness of 100 us sleeps)",
        late / n
    );
    // Event channel round trip: send on a, the waiter on b answers on b,
    // which fires a.
    let (a, b) = loopback()?;
    let rounds = 200u64;
    let echo = sched_core::spawn_closure(
        move || {
            for _ in 0..rounds {
                if !events::wait(b, Some(now() + 5_000_000_000)) {
                    return;
                }
                events::send(b);
            }
        },
        "evtchn-echo",
        0,
        true,
    )
    .map_err(|e| format!("spawn: {e:?}"))?;
    let t0 = ctx.now();
    let mut done = 0;
    for _ in 0..rounds {
        events::send(a);
        if !events::wait(a, Some(now() + 5_000_000_000)) {
            break;
        }
        done += 1;
    }
    let dt = ctx.now() - t0;
    let _ = sched_core::join(echo);
    events::close(b);
    events::close(a);
    ensure!(done == rounds, "only {done} round trips completed");
    xprintln!(
        "bench evtchn_round_trip {} ns (send -> upcall scan -> wake, both ways)",
        dt / rounds
    );
    if let Ok((fd, _)) = disk(ctx) {
        let mut b = vec![0u8; 4096];
        let n = 200u64;
        let t0 = ctx.now();
        for k in 0..n {
            let r = bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, (k as i64 % 256) * 4096)?;
            ensure!(r.1 == 0, "read {r:?}");
        }
        xprintln!(
            "bench blk_read_4k_qd1 {} us/read",
            (ctx.now() - t0) / n / 1000
        );
        const Q: usize = 32;
        let mut bufs: Vec<Vec<u8>> = (0..Q).map(|_| vec![0u8; 65536]).collect();
        let rounds = 4;
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
        xprintln!(
            "bench blk_read_64k_qd32 {} MiB/s",
            bytes * 1_000_000_000 / dt.max(1) / (1 << 20)
        );
        close(ctx, fd);
    }
    let t0 = ctx.now();
    for _ in 0..1000 {
        core::hint::black_box(rumpuser_xen::hypercall::xen_version());
    }
    xprintln!("bench hypercall_xen_version {} ns", (ctx.now() - t0) / 1000);
    Ok(())
}
