//! The bootable test image: the conformance kit and the platform tests,
//! inside QEMU, reporting over the serial console.
//!
//! Built by `cargo xtask baremetal-test` for `x86_64-unknown-none` and
//! booted with a command line that picks what runs (the harness, the
//! crashes and most cases are [`rumpuser_pvh::guest_tests`], shared
//! with the Xen test image):
//!
//! * `suite=kit,platform` (default both): the conformance kit
//!   (`Config { scratch_dir: None, cooperative: true }`: file and bio
//!   cases skip), then the platform tests (timer accuracy and halting,
//!   interrupts under load, virtio-blk bio, NetBSD's PCI hypercalls
//!   against QEMU's `edu` device (`pci.rs`), `if_virt` over virtio-net on
//!   QEMU's user-mode network, benchmarks).
//! * `crash=null|stack|panic|deadlock|exit|exitpanic`: deliberately crash (or
//!   call `rumpuser_exit(42)` / `rumpuser_exit(RUMPUSER_PANIC)`) to check
//!   the reports and exit statuses.
//! * `RUMPUSER_KIT_FILTER=...`, `test=...`: run only matching cases.
//! * `disk_bytes=N`: the size the host made `virtio0` (checked);
//!   `virtio1`, if present, must be a read-only disk.
//! * `net_mac=52:54:00:..`: the address the host gave the virtio-net
//!   device (`virt0` must take it).
//!
//! Every case prints one line `<suite> <name> ... ok` or
//! `... FAILED: <why>`, then a summary line
//! `<suite>: N passed, N failed, N skipped`; `main` returns the number of
//! failures (the VM's exit status, see `rumpuser_pvh::status`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod pci;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_char, c_int};
use rumpuser_baremetal::{disk, platform, rumpuser_exports::API, time};
use rumpuser_core::abi::*;
use rumpuser_core::conformance::Ctx;
use rumpuser_core::{ensure, Errno};
use rumpuser_pvh::guest_tests::{self as gt, BenchSizes, Done, Hooks, SKIP};
use rumpuser_pvh::kprintln;

static HOOKS: Hooks = Hooks {
    api: &API,
    cmdline: rumpuser_pvh::bootinfo::cmdline,
    now: time::now_ns,
    cases: &[
        ("timer::sleeps_never_early", gt::timer_never_early),
        ("timer::idle_halts", gt::timer_idle_halts),
        (
            "irq::one_interrupt_per_window",
            gt::one_interrupt_per_window,
        ),
        ("timer::wall_clock", gt::timer_wall_clock),
        ("irq::timers_under_load", gt::timer_under_load),
        ("random::cpu_source", gt::random_cpu_source),
        ("blk::host_data_and_size", gt::blk_host_data),
        ("blk::write_flush_read_back", gt::blk_write_flush_read),
        ("blk::many_in_flight", gt::blk_many_in_flight),
        ("blk::errors_reach_biodone", gt::blk_errors),
        ("blk::iov_and_syncfd", gt::blk_iov),
        ("blk::readonly_disk", blk_readonly),
        ("irq::bio_under_load", irq_bio_under_load),
        ("pci::config_space", pci::config_space),
        ("pci::mmio_map", pci::mmio_map),
        ("pci::interrupts", pci::interrupts),
        ("pci::dma_alloc", pci::dma_alloc),
        ("pci::dma_segments", pci::dma_segments),
        ("net::arp", gt::net::net_arp),
        ("net::ping", gt::net::net_ping),
        ("net::tx_burst", gt::net::net_tx_burst),
        ("net::lifecycle", gt::net::net_lifecycle),
        ("bench::report", gt::bench),
    ],
    cpu: "CPU",
    idle_stats: platform::idle_stats,
    timer_wakeups: (time::timer_interrupts, "timer interrupt"),
    sleep_scales: (
        &[
            1,
            1_000,
            10_000,
            100_000,
            1_000_000,
            5_000_000,
            20_000_000,
            100_000_000,
        ],
        5,
    ),
    max_late_ns: (50_000_000, 20_000_000),
    disk: c"virtio0",
    unknown_disks: &[c"virtio9", c"nosuchdisk"],
    disk_flushes: || disk::stats().flushes,
    disk_describe: None,
    in_flight: 256,
    bench: BenchSizes {
        timer_sleeps: 200,
        qd1_reads: 500,
        qd32_rounds: 8,
    },
};

/// The C entry points of the image and a raw call through the kit's C API.
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
        iov: *mut IoVec,
        iovlen: usize,
    ) {
        // SAFETY: the caller's contract, passed on.
        unsafe { gt::net::deliverpkt(sc, iov, iovlen) }
    }

    /// `rumpuser_getfileinfo(name)` through the kit's C API: its
    /// return value, and the size into `size`.
    pub fn getfileinfo(ctx: &Ctx, name: &core::ffi::CStr, size: &mut u64) -> c_int {
        // SAFETY: a NUL-terminated name and a valid out-pointer; the type
        // pointer may be NULL.
        unsafe { (ctx.api.getfileinfo)(name.as_ptr(), size, core::ptr::null_mut()) }
    }
}

/// `virtio1`, when the host attached it, is read-only.
fn blk_readonly(ctx: &Ctx, _h: &Hooks) -> Result<(), String> {
    let mut size = 0u64;
    let r = ffi::getfileinfo(ctx, c"virtio1", &mut size);
    if r != 0 {
        return Err(SKIP.into());
    }
    ensure!(
        gt::open(ctx, c"virtio1", RUMPUSER_OPEN_RDWR) == Err(Errno::EROFS.raw()),
        "RDWR open of a read-only disk"
    );
    let fd = gt::open(ctx, c"virtio1", RUMPUSER_OPEN_RDONLY | RUMPUSER_OPEN_BIO)
        .map_err(|e| format!("RDONLY open: {e}"))?;
    let mut b = vec![0u8; 512];
    let r = gt::bio_sync(ctx, fd, RUMPUSER_BIO_READ, &mut b, 0)?;
    ensure!(r == (512, 0), "read: {r:?}");
    let r = gt::bio_sync(ctx, fd, RUMPUSER_BIO_WRITE, &mut b, 0)?;
    ensure!(
        r == (0, Errno::EROFS.raw()),
        "write to a read-only disk: {r:?}"
    );
    gt::close(ctx, fd);
    Ok(())
}

/// Block I/O completes, by interrupt, while four threads keep the CPU busy.
fn irq_bio_under_load(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (fd, _) = gt::disk(ctx, h)?;
    let s0 = disk::stats();
    let y = gt::start_yielders(4);
    const N: usize = 64;
    let mut bufs: Vec<Vec<u8>> = (0..N)
        .map(|k| gt::buffer(4096, |i| (k * 3 + i) as u8))
        .collect();
    let dones: Vec<Done> = (0..N).map(|_| Done::default()).collect();
    let t0 = ctx.now();
    for (k, (b, d)) in bufs.iter_mut().zip(&dones).enumerate() {
        let off = (3 << 20) + (k * 4096) as i64;
        gt::start_bio(ctx, fd, RUMPUSER_BIO_READ, b.as_mut_ptr(), 4096, off, d);
    }
    for d in &dones {
        let r = gt::wait_done(ctx, d)?;
        ensure!(r == (4096, 0), "completion {r:?}");
    }
    let dt = ctx.now() - t0;
    let spins = y.stop();
    let s1 = disk::stats();
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
    gt::close(ctx, fd);
    Ok(())
}
