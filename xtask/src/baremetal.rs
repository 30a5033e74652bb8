//! `cargo xtask baremetal-test` and `baremetal-dist`: the bare-metal
//! platform built for `x86_64-unknown-none` and booted in QEMU.
//!
//! `baremetal-test` first runs clippy on the freestanding build, then,
//! each in its own boot (TCG, a few hundred ms to two seconds):
//!
//! 1. **kit + platform**: the test image with two virtio disks (`virtio0`
//!    8 MiB read-write with a marker the host wrote in sector 0, `virtio1`
//!    read-only): the conformance kit, then timer accuracy/halting,
//!    interrupts under load, virtio-blk bio (write, flush, read back,
//!    errors, 256 in flight, iov, read-only) and benchmarks. Every case
//!    must pass, the exit status must be 0, and afterwards the host finds
//!    the guest's data in the disk image.
//! 2. **no RDRAND** (`-cpu qemu64`): `rumpuser_getrandom` must fail with
//!    `ENOTSUP` rather than invent bytes.
//! 3. **crash reports and exits**: a NULL write, a green-thread stack
//!    overflow, a panic, a deadlock, `rumpuser_exit(42)` and
//!    `rumpuser_exit(RUMPUSER_PANIC)` must each print their report and end
//!    QEMU with the documented status (253 exception, 255 panic, 85 for 42).
//! 4. **C link**: `tests/baremetal/c_image.c` compiled like a kernel layer
//!    and linked with `ld -T link.ld` against `librumpuser_baremetal.a`
//!    (constructors, link sets, SSE, stack protector, variadic dprintf).
//! 5. **the real kernel** (only with `RUMP_KERNEL_DIR`, a layer built with
//!    `RUMP_CURLWP=hypercall`): `tests/baremetal/kernel_ext2.c` linked with
//!    NetBSD's `librump*.a`: `rump_init`, ext2 on `virtio0` through
//!    `rumpuser_bio`, 1 MiB written, synced, remounted and read back,
//!    `rump_sys_reboot`; the host then reads the file with `debugfs`.
//!
//! `baremetal-dist` writes `target/dist/baremetal/` (the archive, the
//! linker script and a README with the link line).

use crate::qemu::{self, check_cases, expect, Outcome, Run, TARGET};
use crate::util::{output, require, root, sh, target, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const DISK_BYTES: u64 = 8 << 20;
const HOST_MARK: &[u8] = b"RUMPDISK-HOST-SECTOR0\n";
const GUEST_MARK: &[u8] = b"RUMPDISK-GUEST-WROTE-OK\n";

/// Fails with install hints unless QEMU and the bare-metal target exist.
pub fn require_tools() -> Result<()> {
    if !qemu::available() {
        return Err(format!(
            "`{}` is missing: install it with `apt-get install qemu-system-x86` \
             (the bare-metal tests boot the platform under QEMU)",
            qemu::QEMU
        ));
    }
    let libdir =
        output(Command::new("rustc").args(["--print", "target-libdir", "--target", TARGET]))?;
    if !Path::new(libdir.trim()).is_dir() {
        return Err(format!(
            "the Rust target {TARGET} is not installed: run `rustup target add {TARGET}`"
        ));
    }
    Ok(())
}

fn work_dir() -> Result<PathBuf> {
    let d = target().join("baremetal");
    fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

/// Builds the test image (release) and checks its layout.
pub fn build_image() -> Result<PathBuf> {
    let image = qemu::build_test_image("rumpuser-baremetal", "rumpuser-baremetal-test")?;
    check_layout(&image)?;
    Ok(image)
}

/// Builds `librumpuser_baremetal.a` (release) and returns its path.
pub fn build_archive() -> Result<PathBuf> {
    qemu::build_archive("rumpuser-baremetal")
}

/// Every allocated section must lie below `__image_end` (the heap starts
/// there) and the image must be a static executable with the PVH note.
fn check_layout(image: &Path) -> Result<()> {
    let sections = output(Command::new("readelf").args(["-SW"]).arg(image))?;
    let syms = output(Command::new("nm").arg(image))?;
    let end = syms
        .lines()
        .find(|l| l.ends_with(" __image_end"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .ok_or("the image has no __image_end symbol")?;
    for l in sections.lines() {
        let Some(rest) = l.trim_start().strip_prefix('[') else {
            continue;
        };
        let f: Vec<&str> = rest
            .split(']')
            .nth(1)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        // name type address offset size es flags ...
        if f.len() < 7 || !f[6].contains('A') {
            continue;
        }
        let (Ok(addr), Ok(size)) = (u64::from_str_radix(f[2], 16), u64::from_str_radix(f[4], 16))
        else {
            continue;
        };
        if addr + size > end {
            return Err(format!(
                "{}: section {} ends at {:#x}, above __image_end {end:#x} (fix link.ld)",
                image.display(),
                f[0],
                addr + size
            ));
        }
    }
    let notes = output(Command::new("readelf").args(["-nW"]).arg(image))?;
    if !notes.contains("Xen") {
        return Err(format!("{}: no PVH (Xen) ELF note", image.display()));
    }
    Ok(())
}

fn make_disks(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let d0 = dir.join("disk0.img");
    let mut img = vec![0u8; DISK_BYTES as usize];
    img[..HOST_MARK.len()].copy_from_slice(HOST_MARK);
    fs::write(&d0, &img).map_err(|e| format!("{}: {e}", d0.display()))?;
    let d1 = dir.join("disk1-ro.img");
    let mut ro = vec![0u8; 1 << 20];
    ro[..HOST_MARK.len()].copy_from_slice(HOST_MARK);
    fs::write(&d1, &ro).map_err(|e| format!("{}: {e}", d1.display()))?;
    Ok((d0, d1))
}

fn disk_args(d0: &Path, d1: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("file={},if=none,id=d0,format=raw", d0.display()),
        "-device".into(),
        "virtio-blk-pci,drive=d0".into(),
        "-drive".into(),
        format!("file={},if=none,id=d1,format=raw,readonly=on", d1.display()),
        "-device".into(),
        "virtio-blk-pci,drive=d1".into(),
    ]
}

/// After a CPU exception: the faulting RIP as function and line (addr2line).
fn symbolize(image: &Path, run: &Run) -> Option<String> {
    if run.outcome != Outcome::Exception {
        return None;
    }
    let rip = run
        .output
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("rip "))?
        .split_whitespace()
        .next()?
        .to_string();
    let out = output(
        Command::new("addr2line")
            .args(["-f", "-C", "-i", "-e"])
            .arg(image)
            .arg(&rip),
    )
    .ok()?;
    let s = out.lines().collect::<Vec<_>>().join(" <- ");
    eprintln!("baremetal: rip {rip} is {s}");
    Some(s)
}

fn check_disk_after(d0: &Path) -> Result<()> {
    let img = fs::read(d0).map_err(|e| format!("{}: {e}", d0.display()))?;
    if &img[1024..1024 + GUEST_MARK.len()] != GUEST_MARK {
        return Err("the guest's marker is not in sector 2 of disk0.img".into());
    }
    // The 64 KiB SYNC write at 65536: byte i = i*7 + 65536/512.
    let ok = (0..65536usize).all(|i| img[65536 + i] == (i * 7 + 128) as u8);
    if !ok {
        return Err("disk0.img does not hold the guest's 64 KiB write at 64 KiB".into());
    }
    Ok(())
}

/// The MAC the kit boot gives its virtio-net device.
const KIT_MAC: &str = "52:54:00:12:34:56";

/// The kit's network: a virtio-net device on QEMU's user-mode network
/// (slirp answers ARP and ping for its gateway 10.0.2.2), and QEMU's
/// `edu` device for the PCI hypercall cases.
fn kit_devices() -> Vec<String> {
    [
        "-netdev",
        "user,id=n0,restrict=on",
        "-device",
        &format!("virtio-net-pci,netdev=n0,mac={KIT_MAC}"),
        "-device",
        "edu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The kit + platform boot.
fn kit_and_platform(image: &Path, dir: &Path) -> Result<()> {
    let (d0, d1) = make_disks(dir)?;
    let mut args = qemu::base_args("max", "256M");
    args.extend(disk_args(&d0, &d1));
    args.extend(kit_devices());
    let append = format!("RUMPUSER_VERBOSE=1 disk_bytes={DISK_BYTES} net_mac={KIT_MAC}");
    let run = qemu::run(image, &args, &append, "kit", Duration::from_secs(300))?;
    symbolize(image, &run);
    let kit = check_cases(&run, "conformance", 37, "baremetal");
    let platform = check_cases(&run, "platform", 21, "baremetal");
    expect(&run, Outcome::Exited(0), "kit and platform tests")?;
    let (kit, platform) = (kit?, platform?);
    check_disk_after(&d0)?;
    eprintln!(
        "baremetal: conformance {kit} passed, platform {platform} passed in one boot of {} ms; host sees the guest's writes",
        run.elapsed.as_millis()
    );
    for l in run.output.lines().filter(|l| l.starts_with("bench ")) {
        eprintln!("baremetal: {l}");
    }
    Ok(())
}

/// `-cpu qemu64` has no RDRAND: getrandom must be an error.
fn no_rdrand(image: &Path) -> Result<()> {
    let args = qemu::base_args("qemu64", "64M");
    let run = qemu::run(
        image,
        &args,
        "suite=platform test=random",
        "nordrand",
        Duration::from_secs(60),
    )?;
    check_cases(&run, "platform", 1, "baremetal")?;
    expect(&run, Outcome::Exited(0), "getrandom without RDRAND")?;
    if !run.output.contains("neither RDRAND nor RDSEED") {
        return Err("no explanation printed when the CPU has no RDRAND".into());
    }
    Ok(())
}

/// Deliberate crashes print a report and end with the right status.
fn crashes(image: &Path) -> Result<()> {
    let cases: [(&str, Outcome, &[&str]); 6] = [
        (
            "null",
            Outcome::Exception,
            &[
                "CPU exception 14 (#PF page fault)",
                "NULL pointer dereference",
                "rip 0x",
                "thread: \"main\"",
            ],
        ),
        (
            "stack",
            Outcome::Exception,
            &[
                "#PF page fault",
                "stack guard page",
                "thread: \"deep-recursion\"",
            ],
        ),
        (
            "panic",
            Outcome::Panic,
            &[
                "*** rumpuser-baremetal: panic",
                "deliberate panic (crash=panic)",
                "thread: \"main\"",
            ],
        ),
        (
            "deadlock",
            Outcome::Panic,
            &["deadlock: every green thread is blocked"],
        ),
        ("exit", Outcome::Exited(42), &["halted (exit status 42)"]),
        (
            "exitpanic",
            Outcome::Panic,
            &["rumpuser_exit(RUMPUSER_PANIC)"],
        ),
    ];
    for (kind, want, needles) in cases {
        let args = qemu::base_args("max", "64M");
        let run = qemu::run(
            image,
            &args,
            &format!("crash={kind}"),
            kind,
            Duration::from_secs(30),
        )?;
        expect(&run, want, &format!("crash={kind}"))?;
        if kind == "null" && !symbolize(image, &run).is_some_and(|s| s.contains("crash")) {
            return Err("crash=null: addr2line does not place the fault in `crash`".into());
        }
        for n in needles {
            if !run.output.contains(n) {
                return Err(format!("crash={kind}: the report lacks {n:?}"));
            }
        }
    }
    Ok(())
}

/// Links `tests/baremetal/c_image.c` the documented way and boots it.
fn c_link(dir: &Path) -> Result<()> {
    let elf = qemu::link_c_image(dir, &build_archive()?)?;
    check_layout(&elf)?;
    let args = qemu::base_args("max", "64M");
    let run = qemu::run(&elf, &args, "-- hello", "c-image", Duration::from_secs(60))?;
    qemu::check_c_image(&run, "C image")?;
    // The same program through `baremetal-run` (its status is main's).
    let src = root().join("tests/baremetal/c_image.c");
    let args: Vec<String> = [
        src.to_str().ok_or("non-UTF-8 path")?,
        "--no-kernel",
        "--name",
        "c-image-run",
        "--cflag",
        "-fstack-protector-strong",
        "--memory",
        "64",
        "--",
        "--",
        "hello",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match app_status(&args)? {
        7 => Ok(()),
        n => Err(format!("baremetal-run of c_image.c exited with {n}, not 7")),
    }
}

/// The real kernel layer (`$RUMP_KERNEL_DIR`, built with
/// `RUMP_CURLWP=hypercall`) linked into an image: `rump_init`, ext2 on the
/// virtio disk through `rumpuser_bio`, write/sync/remount/read back, reboot;
/// then the host checks the image with `debugfs` and `e2fsck`.
fn kernel_ext2(dir: &Path) -> Result<()> {
    let Some(k) = qemu::kernel_layer("baremetal")? else {
        return Ok(());
    };
    let archive = build_archive()?;
    let elf = dir.join("kernel_ext2.elf");
    qemu::link_kernel_image(
        &k,
        &root().join("tests/baremetal/kernel_ext2.c"),
        &archive,
        &elf,
    )?;
    let ms = boot_ext2(dir, &elf, "RUMP_VERBOSE=1", "kernel")?;
    eprintln!(
        "baremetal kernel-ext2: NetBSD's kernel layer booted, ext2 on virtio0 written, remounted, \
         verified and rebooted in {ms} ms; the host reads the file"
    );
    Ok(())
}

/// The kernel archives of the ext2 image that reaches the disk through
/// NetBSD's own ld driver on its PCI bus.
const LD_LIBS: &[&str] = &[
    "rumpfs_ext2fs",
    "rumpfs_ffs",
    "rumpdev_disk",
    "rumpdev_virtio_ld",
    "rumpdev_pci_virtio",
    "rumpdev_pci",
    "rumpdev",
    "rumpvfs",
    "rump",
];

/// `kernel_ext2.c` linked with NetBSD's ld (`librumpdev_virtio_ld` on
/// `librumpdev_pci`): the same ext2 round trip on `/dev/ld0d`, the disk
/// driven by NetBSD's driver through the PCI hypercalls.
fn kernel_ext2_ld(dir: &Path) -> Result<()> {
    let layer = match crate::baremetal_net::layer()? {
        Ok(l) => l,
        Err(why) => {
            eprintln!("baremetal kernel-ld: SKIPPED ({why})");
            return Ok(());
        }
    };
    let libs: Vec<PathBuf> = match LD_LIBS.iter().map(|l| layer.lib(l)).collect() {
        Some(v) => v,
        None => {
            eprintln!("baremetal kernel-ld: SKIPPED (an ld archive is missing: {LD_LIBS:?})");
            return Ok(());
        }
    };
    let archive = build_archive()?;
    let elf = dir.join("kernel_ext2_ld.elf");
    let obj = elf.with_extension("o");
    qemu::cc_multi(
        &root().join("tests/baremetal/kernel_ext2.c"),
        &[&layer.kernel.join("include")],
        &[],
        &obj,
    )?;
    qemu::link_image(&elf, &[obj], &libs, &archive, false)?;
    let ms = boot_ext2(dir, &elf, "RUMP_VERBOSE=1 -- /dev/ld0d", "kernel-ld")?;
    eprintln!(
        "baremetal kernel-ld: ext2 on /dev/ld0d through NetBSD's ld driver (PCI hypercalls) written, \
         remounted, verified and rebooted in {ms} ms; the host reads the file"
    );
    Ok(())
}

/// Boots an ext2 image (`kernel_ext2.c`) with a fresh file system as its
/// virtio disk, checks its lines, then reads the file on the host
/// (`debugfs`, `e2fsck`); returns the boot's milliseconds.
fn boot_ext2(dir: &Path, elf: &Path, append: &str, label: &str) -> Result<u128> {
    check_layout(elf)?;
    let img = dir.join(format!("{label}.img"));
    qemu::make_ext2(&img)?;
    let mut args = qemu::base_args("max", "256M");
    args.extend([
        "-drive".to_string(),
        format!("file={},if=none,id=d0,format=raw", img.display()),
        "-device".into(),
        "virtio-blk-pci,drive=d0".into(),
    ]);
    let run = qemu::run(elf, &args, append, label, Duration::from_secs(120))?;
    symbolize(elf, &run);
    expect(&run, Outcome::Exited(0), label)?;
    for n in [
        "NetBSD",
        "kernel-ext2: rump_init done",
        "kernel-ext2: 1 MiB written, synced, remounted and verified",
        "rump kernel halting...",
    ] {
        if !run.output.contains(n) {
            return Err(format!("{label}: missing {n:?} in the console output"));
        }
    }
    if require("debugfs", "").is_ok() {
        let cat = output(Command::new("debugfs").args(["-R", "cat /hello"]).arg(&img))?;
        if !cat.contains("hello bare metal") {
            return Err(format!(
                "{label}: host debugfs cannot read /hello from the image"
            ));
        }
    }
    if require("e2fsck", "").is_ok() {
        sh(Command::new("e2fsck").arg("-fn").arg(&img))?;
    }
    Ok(run.elapsed.as_millis())
}

/// The real kernel's networking (`baremetal_net`): `which` of `vioif`,
/// `virtif`, `twoguests`, and the syscall proxy over it (`sysproxy`,
/// `baremetal_sp`).
fn kernel_net(dir: &Path, which: &[&str]) -> Result<()> {
    use crate::baremetal_net::{self as bn, Nic};
    let layer = match bn::layer()? {
        Ok(l) => l,
        Err(why) => {
            eprintln!("baremetal kernel-net: SKIPPED ({why})");
            return Ok(());
        }
    };
    let archive = build_archive()?;
    for step in which {
        match *step {
            "vioif" | "virtif" => {
                let nic = if *step == "vioif" {
                    Nic::Vioif
                } else {
                    Nic::Virtif
                };
                let (f, _) = bn::slirp_server(dir, &layer, &archive, nic)?;
                eprintln!(
                    "baremetal {step}: NetBSD's TCP/IP over {} on slirp: ping, echo and {} MiB each way checked byte for byte; host figures: {:.0} us per 64-byte round trip, guest->host {:.1} MiB/s, host->guest {:.1} MiB/s",
                    nic.ifname(),
                    bn::STREAM >> 20,
                    f.rtt_us,
                    f.rx_mib_s,
                    f.tx_mib_s
                );
            }
            "twoguests" => {
                bn::two_guests(dir, &layer, &archive)?;
            }
            "sysproxy" => crate::baremetal_sp::run(dir, &archive, &layer)?,
            other => return Err(format!("unknown network step {other}")),
        }
    }
    Ok(())
}

/// All bare-metal tests (what `cargo xtask test` runs).
pub fn test_all() -> Result<()> {
    require_tools()?;
    qemu::clippy_pvh()?;
    qemu::clippy("rumpuser-baremetal")?;
    let dir = work_dir()?;
    let image = build_image()?;
    kit_and_platform(&image, &dir)?;
    no_rdrand(&image)?;
    crashes(&image)?;
    c_link(&dir)?;
    kernel_ext2(&dir)?;
    kernel_ext2_ld(&dir)?;
    kernel_net(&dir, &["vioif", "virtif", "twoguests", "sysproxy"])?;
    eprintln!("baremetal: all QEMU tests passed");
    Ok(())
}

/// `cargo xtask baremetal-test [--only kit|nordrand|crash|c|kernel|ld|net|vioif|virtif|twoguests|sysproxy]`.
pub fn run(args: &[String]) -> Result<()> {
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let Some(only) = only else {
        return test_all();
    };
    require_tools()?;
    let dir = work_dir()?;
    match only {
        "c" => c_link(&dir),
        "kernel" => kernel_ext2(&dir),
        "ld" => kernel_ext2_ld(&dir),
        "vioif" | "virtif" | "twoguests" | "sysproxy" => kernel_net(&dir, &[only]),
        "net" => kernel_net(&dir, &["vioif", "virtif", "twoguests"]),
        step => {
            let image = build_image()?;
            match step {
                "kit" => kit_and_platform(&image, &dir),
                "nordrand" => no_rdrand(&image),
                "crash" => crashes(&image),
                other => Err(format!(
                    "unknown step {other:?} (kit, nordrand, crash, c, kernel, ld, net, vioif, virtif, twoguests, sysproxy)"
                )),
            }
        }
    }
}

/// `cargo xtask baremetal-run`: an application (C sources or objects,
/// optionally linked with a kernel layer) built into an image and booted
/// under QEMU TCG with disks and network devices; exits with the status
/// of the guest's `main` (125: a value the device cannot carry, 126: CPU
/// exception, 127: panic, 128: no status, e.g. killed at the timeout).
pub fn run_app(args: &[String]) -> Result<()> {
    let code = app_status(args)?;
    std::process::exit(code)
}

/// [`run_app`] without the exit: the status it would exit with.
pub fn app_status(args: &[String]) -> Result<i32> {
    let (opts, cmdline) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], args[i + 1..].join(" ")),
        None => (args, String::new()),
    };
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut kernel = std::env::var_os("RUMP_KERNEL_DIR").map(PathBuf::from);
    let mut pci = std::env::var_os("RUMP_PCI_DIR").map(PathBuf::from);
    let mut libs: Vec<String> = Vec::new();
    let mut cflags: Vec<String> = Vec::new();
    let mut disks: Vec<PathBuf> = Vec::new();
    let mut nets: Vec<String> = Vec::new();
    let mut extra: Vec<String> = Vec::new();
    let mut memory_mb: u32 = 256;
    let mut timeout = Duration::from_secs(600);
    let mut name = String::from("app");
    let mut it = opts.iter();
    while let Some(a) = it.next() {
        let mut val = |what: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("baremetal-run: {a} needs {what}"))
        };
        match a.as_str() {
            "--kernel" => kernel = Some(PathBuf::from(val("a directory")?)),
            "--no-kernel" => kernel = None,
            "--pci" => pci = Some(PathBuf::from(val("a directory")?)),
            "--lib" => libs.push(val("a library name (rumpfs_ffs)")?),
            "--cflag" => cflags.push(val("a compiler flag")?),
            "--disk" => disks.push(PathBuf::from(val("an image file")?)),
            "--net" => nets.push(val("a -netdev spec (user,hostfwd=tcp::8080-:80)")?),
            "--qemu" => extra.push(val("a QEMU argument")?),
            "--name" => name = val("a name")?,
            "--memory" => {
                memory_mb = val("MiB")?
                    .parse()
                    .map_err(|_| "baremetal-run: --memory takes MiB".to_string())?
            }
            "--timeout" => {
                timeout = Duration::from_secs(
                    val("seconds")?
                        .parse()
                        .map_err(|_| "baremetal-run: --timeout takes seconds".to_string())?,
                )
            }
            s if s.starts_with("--") => return Err(format!("baremetal-run: unknown option {s}")),
            s => sources.push(PathBuf::from(s)),
        }
    }
    require_tools()?;
    for t in ["cc", "ld"] {
        require(t, "install Debian's build-essential and binutils")?;
    }
    if sources.is_empty() {
        return Err("baremetal-run: no application sources (.c or .o)".into());
    }
    let archive = build_archive()?;
    let dir = work_dir()?.join("apps");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let core_inc = root().join("rumpuser-core/include");
    let kernel_inc = kernel.as_ref().map(|k| k.join("include"));
    let mut includes = vec![core_inc.as_path()];
    includes.extend(kernel_inc.as_deref());
    let cf: Vec<&str> = cflags.iter().map(String::as_str).collect();
    let mut objs = Vec::new();
    for (n, src) in sources.iter().enumerate() {
        match src.extension().and_then(|e| e.to_str()) {
            Some("c") => {
                let stem = src.file_stem().unwrap_or_default().to_string_lossy();
                let obj = dir.join(format!("{name}-{n}-{stem}.o"));
                qemu::cc_multi(src, &includes, &cf, &obj)?;
                objs.push(obj);
            }
            Some("o") => objs.push(src.clone()),
            _ => {
                return Err(format!(
                    "baremetal-run: {}: expected a .c or .o file",
                    src.display()
                ))
            }
        }
    }
    let whole: Vec<PathBuf> = match &kernel {
        None => Vec::new(),
        Some(k) => {
            let layer = crate::baremetal_net::Layer {
                kernel: k.clone(),
                pci: pci.clone(),
            };
            let names: Vec<String> = if libs.is_empty() {
                qemu::KERNEL_LIBS.iter().map(|l| l.to_string()).collect()
            } else {
                libs.clone()
            };
            names
                .iter()
                .map(|l| {
                    layer.lib(l).ok_or_else(|| {
                        format!("baremetal-run: lib{l}.a is in neither --pci/RUMP_PCI_DIR nor the kernel layer")
                    })
                })
                .collect::<Result<_>>()?
        }
    };
    let elf = dir.join(format!("{name}.elf"));
    // Without a kernel, unused sections go; a kernel's link sets must stay.
    qemu::link_image(&elf, &objs, &whole, &archive, kernel.is_none())?;
    check_layout(&elf)?;
    eprintln!("baremetal-run: image {}", elf.display());
    let mut qargs = qemu::base_args("max", &format!("{memory_mb}M"));
    for (i, d) in disks.iter().enumerate() {
        qargs.extend([
            "-drive".to_string(),
            format!("file={},if=none,id=d{i},format=raw", d.display()),
            "-device".into(),
            format!("virtio-blk-pci,drive=d{i}"),
        ]);
    }
    for (i, spec) in nets.iter().enumerate() {
        let (netdev, mac) = split_mac(spec);
        let mac = mac.unwrap_or_else(|| format!("52:54:00:12:34:{:02x}", 0x56 + i));
        qargs.extend([
            "-netdev".to_string(),
            format!("{netdev},id=n{i}"),
            "-device".into(),
            format!("virtio-net-pci,netdev=n{i},mac={mac}"),
        ]);
    }
    qargs.extend(extra);
    let run = qemu::run(&elf, &qargs, &cmdline, &name, timeout)?;
    symbolize(&elf, &run);
    let code = match run.outcome {
        Outcome::Exited(v) => v as i32,
        Outcome::OutOfRange => 125,
        Outcome::Exception => 126,
        Outcome::Panic => 127,
        Outcome::NoStatus(_) => 128,
    };
    eprintln!(
        "baremetal-run: the guest ended with {:?} after {} ms{}",
        run.outcome,
        run.elapsed.as_millis(),
        if run.timed_out { " (timed out)" } else { "" }
    );
    Ok(code)
}

/// `user,mac=..,hostfwd=..` → (`user,hostfwd=..`, the MAC).
fn split_mac(spec: &str) -> (String, Option<String>) {
    let mut mac = None;
    let rest: Vec<&str> = spec
        .split(',')
        .filter(|p| match p.strip_prefix("mac=") {
            Some(m) => {
                mac = Some(m.to_string());
                false
            }
            None => true,
        })
        .collect();
    (rest.join(","), mac)
}

/// `cargo xtask baremetal-dist`: `target/dist/baremetal/` with the archive,
/// the linker script and a README holding the link line.
pub fn dist(_args: &[String]) -> Result<()> {
    let archive = build_archive()?;
    let out = target().join("dist").join("baremetal");
    fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    // Debug info stays in debug/ (see `crate::dist`).
    let full = out.join("debug/librumpuser_baremetal.a");
    fs::create_dir_all(out.join("debug")).map_err(|e| e.to_string())?;
    fs::copy(&archive, &full).map_err(|e| format!("copy {}: {e}", archive.display()))?;
    crate::dist::strip_archive(&full, &out.join("librumpuser_baremetal.a"))?;
    let ld = root().join("rumpuser-pvh/link.ld");
    fs::copy(&ld, out.join("link.ld")).map_err(|e| format!("copy {}: {e}", ld.display()))?;
    let inc = out.join("include");
    fs::create_dir_all(&inc).map_err(|e| e.to_string())?;
    let hdr = root().join("rumpuser-baremetal/include/rumpcomp_userfeatures_pci.h");
    fs::copy(&hdr, inc.join("rumpcomp_userfeatures_pci.h"))
        .map_err(|e| format!("copy {}: {e}", hdr.display()))?;
    fs::write(out.join("README"), DIST_README).map_err(|e| e.to_string())?;
    eprintln!("baremetal-dist: {}", out.display());
    Ok(())
}

const DIST_README: &str = "\
rumpuser-baremetal: the rumpuser v17 hypercalls for x86_64 bare metal (PVH boot).

librumpuser_baremetal.a  the platform: boot code (PVH note, trampoline), console, timer,
                         heap, green threads, virtio-blk and virtio-net, every rumpuser_*
                         symbol, NetBSD's PCI hypercalls (rumpcomp_pci_*) and if_virt's
                         (rumpcomp_virt_*). It calls `int main(int argc, char **argv)`.
link.ld                  the image layout (linked at 1 MiB, identity mapped).
debug/librumpuser_baremetal.a  the same archive with its debug info (link it for line numbers).
include/rumpcomp_userfeatures_pci.h
                         the PCI features this platform has (DMAFREE, IOSPACE), for
                         building NetBSD's librumpdev_pci (below).

Compile the application and the kernel layer as ordinary x86_64 code without a C library
(the kernel layer with RUMP_CURLWP=hypercall; no TLS), then:

  ld -static -nostdlib -T link.ld -u pvh_start32 -o app.elf app.o \\
     --whole-archive librumpfs_tmpfs.a librumpvfs.a librump.a --no-whole-archive \\
     librumpuser_baremetal.a

  qemu-system-x86_64 -M q35 -cpu max -accel tcg -m 256M -display none -no-reboot \\
     -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \\
     -drive file=disk.img,if=none,id=d0,format=raw -device virtio-blk-pci,drive=d0 \\
     -netdev user,id=n0,hostfwd=tcp::8080-:80 -device virtio-net-pci,netdev=n0 \\
     -kernel app.elf -append 'RUMP_VERBOSE=1 -- app arguments'

QEMU's exit status is 2*v+1 for main's return value v (0..124); 251 out-of-range value,
253 CPU exception, 255 panic.

Devices and the archives they need (all between --whole-archive and --no-whole-archive):

  disk through rumpuser_bio   virtio0, virtio1, ... (rump_pub_etfs_register(\"/dev/xd0\",
                              \"virtio0\", RUMP_ETFS_BLK)): librumpdev_disk.a librumpdev.a
                              librumpvfs.a librump.a and the file system's archive
  disk through NetBSD's ld    /dev/ld0d: librumpdev_virtio_ld.a librumpdev_pci_virtio.a
                              librumpdev_pci.a librumpdev_disk.a librumpdev.a librumpvfs.a
                              librump.a and the file system's archive
  network through vioif       vioif0: librumpdev_virtio_if_vioif.a librumpdev_pci_virtio.a
                              librumpdev_pci.a librumpdev.a librumpvfs.a, then the stack:
                              librumpnet_netinet.a librumpnet_net.a librumpnet.a librump.a
                              (librumpnet_config.a for rump_pub_netconfig_*)
  network through if_virt     virt0, virt1, ... (rump_pub_netconfig_ifcreate(\"virt0\")):
                              librumpnet_virtif.a and the stack as above

A virtio class is driven either by this library or by NetBSD's driver: by default NetBSD's
when its driver (ld, vioif) is linked into the image, else this library's; override with
RUMPUSER_VIRTIO_BLK=platform|netbsd and RUMPUSER_VIRTIO_NET=platform|netbsd on the command
line. Functions this library drives are invisible on NetBSD's PCI bus. NetBSD's virtio
driver uses the legacy I/O interface: keep QEMU's virtio devices transitional (the default
on q35's root bus; not disable-legacy=on, not *-non-transitional). virtN takes the device's
MAC: give two guests on one link distinct mac= values.

buildrump.sh does not build the PCI libraries, nor an if_virt without NetBSD's POSIX tap
code. Build them with the rumpmake of your RUMP_CURLWP=hypercall kernel build (with
RUMP_CURLWP=hypercall and RUMPUSER_THREADS=fiber in the environment, as that build had, and
MAKEOBJDIR pointing at an object directory of yours): in each of the source directories
sys/rump/dev/lib/libpci, libpci_virtio, libvirtio_if_vioif and libvirtio_ld run `rumpmake
obj` and then `rumpmake dependall MKPIC=no`; for libpci, first point
RUMPCOMP_MAKEFILEINC_rumpdev_pci (in the environment) at a makefile fragment that adds
-I<this directory>/include to CPPFLAGS, so that pci_user.h finds
rumpcomp_userfeatures_pci.h. For if_virt do the same in sys/rump/net/lib/libvirtif with
RUMPCOMP_USER_SRCS= (empty) on the rumpmake command line, so the archive holds only
if_virt.o: the rumpcomp_virt_* calls are this library's. The archives land in the object
directories; link them from there (or collect them in one lib/ directory).
";
