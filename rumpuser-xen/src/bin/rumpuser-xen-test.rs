//! The Xen test image: the conformance kit and the Xen platform tests,
//! booted as a PVH guest under the nested Xen harness and reporting on
//! the Xen console.
//!
//! Built by `cargo xtask xen-test` for `x86_64-unknown-none`; the command
//! line (the dom0 module string) picks what runs. The harness, the
//! crashes and the cases shared with bare metal are
//! `rumpuser_pvh::guest_tests`; this file adds the Xen hooks and
//! the Xen-only cases:
//!
//! * `suite=kit+platform` (default both): the conformance kit
//!   (`Config { scratch_dir: None, cooperative: true }`: file and bio
//!   cases skip), then the platform tests (timers never early, idle
//!   halts in `hlt`, wall clock, timers under load, random, an event
//!   channel loopback woken by the upcall, xenstore, blkfront, netfront
//!   under `if_virt`'s hypercalls against dom0 (`net_ip=`, `net_gw=`),
//!   benchmarks).
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
#![deny(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_core::conformance::Ctx;
use rumpuser_core::ensure;
use rumpuser_green::sched_core;
use rumpuser_pvh::guest_tests::net as gnet;
use rumpuser_pvh::guest_tests::{self as gt, BenchSizes, Hooks, SKIP};
use rumpuser_pvh::virtif;
use rumpuser_xen::{blkfront, events, netfront, platform, rumpuser_exports::API, time, xprintln};

static HOOKS: Hooks = Hooks {
    api: &API,
    cmdline: rumpuser_xen::start::cmdline,
    now: time::now_ns,
    cases: &[
        ("xen::boot_info", xen_boot_info),
        ("timer::sleeps_never_early", gt::timer_never_early),
        ("timer::idle_halts", gt::timer_idle_halts),
        ("timer::wall_clock", gt::timer_wall_clock),
        ("timer::under_load", gt::timer_under_load),
        ("random::cpu_source", gt::random_cpu_source),
        ("evtchn::loopback_wakes_parked_thread", evtchn_loopback),
        ("evtchn::under_load", evtchn_under_load),
        ("idle::short_sleep_storm", idle_storm),
        (
            "irq::one_interrupt_per_window",
            gt::one_interrupt_per_window,
        ),
        ("xenstore::read_write_directory_watch", xenstore_basics),
        ("blk::host_data_and_size", gt::blk_host_data),
        ("blk::write_flush_read_back", gt::blk_write_flush_read),
        ("blk::many_in_flight", gt::blk_many_in_flight),
        ("blk::errors_reach_biodone", gt::blk_errors),
        ("blk::iov_and_syncfd", gt::blk_iov),
        ("blk::detach_gives_errors", blk_detach),
        ("net::arp_on_own_thread", gt::net::net_arp),
        ("net::ping_interrupt_driven", gt::net::net_ping),
        ("net::tx_burst_waits_for_room", gt::net::net_tx_burst),
        ("net::create_destroy", gt::net::net_lifecycle),
        ("net::scatter_gather", net_scatter_gather),
        ("net::detach_gives_errors", net_detach),
        ("bench::report", bench),
    ],
    cpu: "vcpu",
    idle_stats: platform::idle_stats,
    timer_wakeups: (time::timer_events, "VIRQ_TIMER event"),
    sleep_scales: (&[1, 10_000, 100_000, 1_000_000, 5_000_000, 20_000_000], 3),
    // Generous: nested TCG on a loaded host can stall the vcpu for a while.
    max_late_ns: (1_000_000_000, 1_000_000_000),
    disk: c"xvda",
    unknown_disks: &[c"xvdz", c"xvdc", c"12345"],
    disk_flushes: || blkfront::stats().flushes,
    disk_describe: Some(blkfront::describe),
    // Three times the ring.
    in_flight: 96,
    bench: BenchSizes {
        timer_sleeps: 100,
        qd1_reads: 200,
        qd32_rounds: 4,
    },
};

fn now() -> u64 {
    time::now_ns()
}

/// The C entry points of the image.
#[allow(unsafe_code)]
mod ffi {
    use super::*;

    /// The image's entry point, called by the platform after boot.
    #[no_mangle]
    pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
        gt::main(&HOOKS)
    }

    /// `if_virt`'s delivery function, for the network cases: the platform
    /// refers to it weakly, so it is defined here, in a crate of its own.
    ///
    /// # Safety
    /// C ABI: `iov` holds `iovlen` readable iovecs.
    #[no_mangle]
    pub unsafe extern "C" fn rump_virtif_virt_deliverpkt(
        sc: *mut core::ffi::c_void,
        iov: *mut rumpuser_core::abi::IoVec,
        iovlen: usize,
    ) {
        // SAFETY: the caller's contract, passed on.
        unsafe { gnet::deliverpkt(sc, iov, iovlen) }
    }
}

/// What boot found: Xen 4.x, a RAM map, a timer port.
fn xen_boot_info(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
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
fn evtchn_loopback(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
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
fn evtchn_under_load(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let (a, b) = loopback()?;
    let y = gt::start_yielders(4);
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

/// Many idles whose wake-up lands close to the halt: sleeps of 1 to
/// 400 us (the timer fires while the vcpu is still entering the halt)
/// interleaved with loopback events from a second thread. A lost wake-up
/// hangs the domain (the harness times out); an early return fails here.
fn idle_storm(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let (a, b) = loopback()?;
    static ECHOED: AtomicU64 = AtomicU64::new(0);
    ECHOED.store(0, Ordering::Relaxed);
    let echo = sched_core::spawn_closure(
        move || {
            while events::wait(b, Some(now() + 2_000_000_000)) {
                ECHOED.fetch_add(1, Ordering::Relaxed);
            }
        },
        "storm-echo",
        0,
        true,
    )
    .map_err(|e| format!("spawn: {e:?}"))?;
    let (i0, _) = platform::idle_stats();
    let e0 = rumpuser_pvh::arch::cpu::early_wakes();
    let w0 = platform::empty_wakes();
    let mut x = 0x9e37_79b9_u64 ^ now();
    let n = 1500u64;
    let mut sent = 0u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ns = 1_000 + x % 400_000;
        let t0 = now();
        ctx.sleep_ns(ns);
        let dt = now() - t0;
        ensure!(dt >= ns, "sleep {i} of {ns} ns returned after {dt} ns");
        if i % 4 == 0 {
            events::send(a);
            sent += 1;
        }
    }
    let deadline = now() + 2_000_000_000;
    while ECHOED.load(Ordering::Relaxed) < sent && now() < deadline {
        ctx.sleep_ns(1_000_000);
    }
    let got = ECHOED.load(Ordering::Relaxed);
    events::close(a);
    let _ = sched_core::join(echo);
    events::close(b);
    let (i1, _) = platform::idle_stats();
    xprintln!(
        "  {n} sleeps of 1-400 us, {got}/{sent} events: {} idle halts, {} interrupts on the hlt, {} wake-ups without an event",
        i1 - i0,
        rumpuser_pvh::arch::cpu::early_wakes() - e0,
        platform::empty_wakes() - w0
    );
    // Events coalesce while the echo thread runs, so fewer wake-ups than
    // sends is fine; none at all is not. (Binding the pair marks `b`
    // pending once: Xen's bind_interdomain does that against lost
    // notifications.)
    ensure!(
        got >= 1 && got <= sent + 1,
        "{got} echo wake-ups for {sent} events"
    );
    Ok(())
}

/// `xl block-detach` of the second disk (`xvdb`) while it is in use
/// (domU only; dom0's harness detaches when the guest writes
/// `data/detach = now`): requests then fail with `ENXIO` within seconds,
/// with every completion delivered once, the name no longer opens, the
/// front end tells the toolstack `Closed` (so the detach is not forced),
/// and `xvda` keeps working.
fn blk_detach(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    use rumpuser_core::abi::*;
    use rumpuser_core::Errno;
    use rumpuser_xen::xenstore as xs;
    let name = c"xvdb";
    let fd = match gt::open(ctx, name, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO) {
        Ok(fd) => fd,
        Err(e) if e == Errno::ENOENT.raw() => return Err(SKIP.into()),
        Err(e) => return Err(format!("open xvdb: {e}")),
    };
    let mut buf = gt::buffer(4096, |i| (i * 13) as u8);
    let r = gt::bio_sync(
        ctx,
        fd,
        RUMPUSER_BIO_WRITE | RUMPUSER_BIO_SYNC,
        &mut buf,
        4096,
    )?;
    ensure!(r == (4096, 0), "write before the detach: {r:?}");
    let detaches = blkfront::stats().detaches;
    xs::write("data/detach", "now").map_err(|e| format!("xenstore write data/detach: {e:?}"))?;
    let t0 = now();
    // Keep a few requests in flight until they start failing.
    let mut ok = 0u32;
    let err = loop {
        ensure!(
            now() - t0 < 60_000_000_000,
            "xvdb still answers 60 s after the detach was asked for ({ok} requests)"
        );
        let dones: Vec<gt::Done> = (0..4).map(|_| gt::Done::default()).collect();
        let mut bufs: Vec<Vec<u8>> = (0..4).map(|_| alloc::vec![0u8; 4096]).collect();
        for (k, (b, d)) in bufs.iter_mut().zip(&dones).enumerate() {
            gt::start_bio(
                ctx,
                fd,
                RUMPUSER_BIO_READ,
                b.as_mut_ptr(),
                4096,
                4096 * k as i64,
                d,
            );
        }
        let mut first_err = 0;
        for d in &dones {
            let (n, e) = gt::wait_done(ctx, d)?;
            if e == 0 {
                ensure!(n == 4096, "short read {n}");
                ok += 1;
            } else if first_err == 0 {
                first_err = e;
            }
        }
        if first_err != 0 {
            break first_err;
        }
        ctx.sleep_ns(20_000_000);
    };
    let failed_after = now() - t0;
    ensure!(
        err == Errno::ENXIO.raw(),
        "I/O on a detached disk failed with {err}, expected ENXIO"
    );
    // New requests fail at once; the name is gone.
    let r = gt::bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut buf, 0)?;
    ensure!(r.1 == Errno::ENXIO.raw(), "read after the detach: {r:?}");
    let deadline = now() + 10_000_000_000;
    while blkfront::stats().detaches == detaches && now() < deadline {
        ctx.sleep_ns(10_000_000);
    }
    ensure!(
        blkfront::stats().detaches == detaches + 1,
        "the front end never closed"
    );
    let r = gt::open(ctx, name, RUMPUSER_OPEN_RDWR | RUMPUSER_OPEN_BIO);
    ensure!(
        matches!(r, Err(e) if e == Errno::ENXIO.raw() || e == Errno::ENOENT.raw()),
        "open of the detached disk: {r:?}"
    );
    gt::close(ctx, fd);
    // The other disk is unaffected.
    let a = gt::open(ctx, c"xvda", RUMPUSER_OPEN_RDONLY | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("open xvda: {e}"))?;
    let r = gt::bio_sync(ctx, a, RUMPUSER_BIO_READ, &mut buf, 0)?;
    ensure!(r == (4096, 0), "xvda after the detach: {r:?}");
    gt::close(ctx, a);
    xprintln!(
        "  xvdb detached: {ok} reads answered, then ENXIO {} ms after the request",
        failed_after / 1_000_000
    );
    Ok(())
}

/// Waits (up to 60 s) for dom0 to answer a request the guest made in
/// xenstore: the value of `data/<key>`.
fn dom0_answer(ctx: &Ctx, key: &str) -> Result<String, String> {
    use rumpuser_xen::xenstore as xs;
    let deadline = now() + 60_000_000_000;
    loop {
        if let Ok(v) = xs::read(&format!("data/{key}")) {
            return Ok(v);
        }
        ensure!(now() < deadline, "dom0 did not write data/{key} in 60 s");
        ctx.sleep_ns(100_000_000);
    }
}

/// Scatter-gather both ways (domU only): when asked (`data/vif-mtu`),
/// dom0 raises its end of the vif to an MTU of 9000 (which netback
/// allows because we said `feature-sg`); a ping of 6000 bytes, handed
/// over as five iovecs, goes out over three transmit slots, and dom0's
/// unfragmented reply (6042 bytes, more than a receive page) comes back
/// over two receive slots and reaches `if_virt`'s delivery as one frame
/// with the payload intact.
fn net_scatter_gather(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    use rumpuser_xen::xenstore as xs;
    let Some(st) = netfront::stats(0) else {
        return Err(SKIP.into());
    };
    ensure!(st.sg, "netback did not offer feature-sg");
    let (viu, mac) = gnet::up(h)?;
    let (_, gw) = gnet::resolve_gateway(ctx, h, &viu, mac)?;
    let (ip, gw_ip) = gnet::addrs(h);
    xs::write("data/vif-mtu", "9000").map_err(|e| format!("xenstore write: {e}"))?;
    let rc = dom0_answer(ctx, "vif-mtu-set")?;
    ensure!(
        rc.trim() == "0",
        "dom0 could not set its vif's MTU to 9000 (ip: {rc})"
    );
    let s0 = netfront::stats(0).unwrap_or_default();
    let payload: Vec<u8> = (0..6000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut reply = None;
    let mut sent = 0;
    for seq in 1..=5u16 {
        let f = gnet::ping(mac, gw, ip, gw_ip, 0x5347, seq, &payload);
        sent = f.len();
        gnet::send(&viu, &f, &[14, 34, 1000, 2100, 4500]);
        let got = gnet::wait_frame(
            ctx,
            3_000_000_000,
            &|d| matches!(gnet::echo_reply(&d.frame, mac, gw_ip), Some((0x5347, s, _)) if s == seq),
        );
        if got.is_some() {
            reply = got;
            break;
        }
    }
    let d = reply.ok_or("no reply to five pings of 6000 bytes")?;
    let s1 = netfront::stats(0).unwrap_or_default();
    let (_, _, p) = gnet::echo_reply(&d.frame, mac, gw_ip).unwrap_or((0, 0, &[]));
    ensure!(p == &payload[..], "the reply's payload differs");
    ensure!(
        d.frame.len() == sent,
        "a reply of {} bytes to a frame of {sent}",
        d.frame.len()
    );
    ensure!(
        s1.tx_multi_slot > s0.tx_multi_slot,
        "the ping did not go out over several transmit slots"
    );
    ensure!(
        s1.rx_multi_slot > s0.rx_multi_slot,
        "the reply did not arrive over several receive slots"
    );
    ensure!(
        d.holds_cpu && d.thread == "virt0",
        "delivery context of the reply"
    );
    xprintln!(
        "  {sent}-byte ping out over several slots, its {}-byte reply in over several, delivered as one frame",
        d.frame.len()
    );
    gnet::destroy(viu)
}

/// `xl network-detach` while `virt0` is up (domU only; dom0 detaches
/// when the guest writes `data/netdetach = now`): within seconds the vif
/// is gone; a send then returns at once, dropped and counted, and no
/// answer comes; the front end tells the toolstack `Closed` (so the
/// detach is not forced: dom0's log says how long it took); destroying
/// the interface returns, and making it again fails with `ENXIO`.
fn net_detach(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    use rumpuser_core::Errno;
    use rumpuser_xen::xenstore as xs;
    if netfront::stats(0).is_none() {
        return Err(SKIP.into());
    }
    let (viu, mac) = gnet::up(h)?;
    let (_, gw) = gnet::resolve_gateway(ctx, h, &viu, mac)?;
    let (ip, gw_ip) = gnet::addrs(h);
    let closed0 = netfront::detaches();
    xs::write("data/netdetach", "now").map_err(|e| format!("xenstore write: {e}"))?;
    let t0 = now();
    let (mut seq, mut answered) = (0u16, 0u32);
    while !netfront::stats(0).unwrap_or_default().gone {
        ensure!(
            now() - t0 < 60_000_000_000,
            "virt0's vif still there 60 s after the detach was asked for"
        );
        let f = gnet::ping(mac, gw, ip, gw_ip, 0x6464, seq, &[7; 56]);
        gnet::send(&viu, &f, &[]);
        if gnet::wait_frame(
            ctx,
            200_000_000,
            &|d| matches!(gnet::echo_reply(&d.frame, mac, gw_ip), Some((0x6464, s, _)) if s == seq),
        )
        .is_some()
        {
            answered += 1;
        }
        seq = seq.wrapping_add(1);
    }
    let gone_ms = (now() - t0) / 1_000_000;
    let v0 = virtif::stats(0).unwrap_or_default();
    let t1 = now();
    let f = gnet::ping(mac, gw, ip, gw_ip, 0x6464, seq, &[7; 56]);
    gnet::send(&viu, &f, &[]);
    let send_us = (now() - t1) / 1000;
    let v1 = virtif::stats(0).unwrap_or_default();
    ensure!(
        v1.tx_drops == v0.tx_drops + 1 && v1.tx_frames == v0.tx_frames,
        "a send on the detached vif was not dropped ({v0:?} -> {v1:?})"
    );
    ensure!(
        send_us < 100_000,
        "a send on the detached vif took {send_us} us"
    );
    ensure!(
        gnet::wait_frame(ctx, 500_000_000, &|d| gnet::echo_reply(
            &d.frame, mac, gw_ip
        )
        .is_some())
        .is_none(),
        "an answer arrived after the detach"
    );
    let deadline = now() + 15_000_000_000;
    while netfront::detaches() == closed0 && now() < deadline {
        ctx.sleep_ns(10_000_000);
    }
    ensure!(
        netfront::detaches() == closed0 + 1 && netfront::stats(0).unwrap_or_default().closed,
        "the front end never closed"
    );
    let t2 = now();
    gnet::destroy(viu)?;
    let destroy_us = (now() - t2) / 1000;
    let again = gnet::create(c"0");
    ensure!(
        again.as_ref().err() == Some(&Errno::ENXIO.raw()),
        "making virt0 again on the detached vif: {:?}",
        again.as_ref().map(|_| ())
    );
    xprintln!(
        "  vif detached: {answered} of {seq} pings answered meanwhile, gone {gone_ms} ms after the request; \
         a send then dropped in {send_us} us; destroy {destroy_us} us; create ENXIO"
    );
    Ok(())
}

/// The xenstore client against the real xenstored (domU only): our
/// domain's keys, the virtual disk the toolstack announced, a write read
/// back, an error, and a watch that fires on a write.
fn xenstore_basics(_ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
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

/// The shared benchmarks, then an event channel round trip and a
/// hypercall.
fn bench(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    gt::bench(ctx, h)?;
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
    let t0 = ctx.now();
    for _ in 0..1000 {
        core::hint::black_box(rumpuser_xen::hypercall::xen_version());
    }
    xprintln!("bench hypercall_xen_version {} ns", (ctx.now() - t0) / 1000);
    xprintln!(
        "bench idle_halts {} ({} interrupts arrived on the hlt instead of during it)",
        platform::idle_stats().0,
        rumpuser_pvh::arch::cpu::early_wakes()
    );
    Ok(())
}
