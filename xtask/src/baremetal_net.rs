//! The real kernel layer's networking on bare metal (`cargo xtask
//! baremetal-test`, steps `vioif`, `virtif`, `twoguests`): NetBSD's TCP/IP
//! over NetBSD's own vioif driver (on `librumpdev_pci`, through our
//! `rumpcomp_pci_*` hypercalls) or over if_virt (through our `VIFHYPER_*`
//! on virtio-net), booted under QEMU TCG with user-mode networking
//! (slirp, `hostfwd`) or a `-netdev socket` link between two guests.
//!
//! `tests/baremetal/kernel_net.c` is the guest; this module is the host
//! program: it connects through the forwarded port, runs echo round trips
//! and a 64 MiB stream each way (checked byte for byte on both sides), and
//! reports the figures. The guest pings slirp's gateway (or the other
//! guest) first.
//!
//! The PCI device libraries and an if_virt without POSIX tap code are not
//! part of a buildrump.sh build: they are looked for in `$RUMP_PCI_DIR/lib`
//! first, then in `$RUMP_KERNEL_DIR/lib` (see README, "Networking and
//! NetBSD's PCI drivers on bare metal"); without them the steps are
//! skipped with a message.

use crate::qemu::{self, expect, Outcome, Run};
use crate::util::{output, root, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Bytes of each stream.
pub const STREAM: u64 = 64 << 20;
/// 64-byte echo round trips the host times.
const ECHO_ROUNDS: u32 = 1000;
const GUEST_PORT: u16 = 7777;

/// The interface a guest image is linked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nic {
    /// NetBSD's vioif on its PCI bus (`vioif0`).
    Vioif,
    /// if_virt over our virtio-net (`virt0`).
    Virtif,
}

impl Nic {
    /// The interface name in the guest.
    pub fn ifname(self) -> &'static str {
        match self {
            Nic::Vioif => "vioif0",
            Nic::Virtif => "virt0",
        }
    }

    /// The kernel archives to link (whole), in link order.
    pub fn libs(self) -> &'static [&'static str] {
        match self {
            Nic::Vioif => &[
                "rumpnet_config",
                "rumpnet_netinet",
                "rumpnet_net",
                "rumpnet",
                "rumpdev_virtio_if_vioif",
                "rumpdev_pci_virtio",
                "rumpdev_pci",
                "rumpdev",
                "rumpvfs",
                "rump",
            ],
            Nic::Virtif => &[
                "rumpnet_config",
                "rumpnet_virtif",
                "rumpnet_netinet",
                "rumpnet_net",
                "rumpnet",
                "rumpdev",
                "rumpvfs",
                "rump",
            ],
        }
    }
}

/// Where kernel archives are found: `$RUMP_PCI_DIR/lib` first, then the
/// kernel layer's `lib`.
pub struct Layer {
    /// The kernel layer (`include/`, `lib/`).
    pub kernel: PathBuf,
    /// The extra archives (`lib/`), if given.
    pub pci: Option<PathBuf>,
}

impl Layer {
    /// `lib<name>.a`, from the PCI dir if it has it.
    pub fn lib(&self, name: &str) -> Option<PathBuf> {
        let file = format!("lib{name}.a");
        self.pci
            .iter()
            .chain(std::iter::once(&self.kernel))
            .map(|d| d.join("lib").join(&file))
            .find(|p| p.is_file())
    }
}

/// The layer for the network steps, or why they are skipped.
pub fn layer() -> Result<std::result::Result<Layer, String>> {
    if std::env::var_os("RUMP_KERNEL_DIR").is_none() {
        return Ok(Err(
            "set RUMP_KERNEL_DIR to a kernel layer built with RUMP_CURLWP=hypercall and \
             RUMP_PCI_DIR to the PCI and if_virt archives"
                .into(),
        ));
    }
    let Some(k) = qemu::kernel_layer("baremetal")? else {
        return Ok(Err("the kernel layer cannot be used (see above)".into()));
    };
    let layer = Layer {
        kernel: k,
        pci: std::env::var_os("RUMP_PCI_DIR").map(PathBuf::from),
    };
    for nic in [Nic::Vioif, Nic::Virtif] {
        let missing: Vec<&str> = nic
            .libs()
            .iter()
            .copied()
            .filter(|l| layer.lib(l).is_none())
            .collect();
        if !missing.is_empty() {
            return Ok(Err(format!(
                "lib{} not found in $RUMP_PCI_DIR/lib or $RUMP_KERNEL_DIR/lib (README, \
                 \"Networking and NetBSD's PCI drivers on bare metal\", says how to build them)",
                missing.join(".a, lib") + ".a"
            )));
        }
    }
    if let Err(why) = virtif_without_tap(&layer)? {
        return Ok(Err(why));
    }
    Ok(Ok(layer))
}

/// Whether the layer's `librumpnet_virtif` calls the platform's
/// `rumpcomp_virt_*` (one built with NetBSD's POSIX tap code defines
/// them itself and needs a C library), or why not.
pub fn virtif_without_tap(layer: &Layer) -> Result<std::result::Result<(), String>> {
    let Some(v) = layer.lib("rumpnet_virtif") else {
        return Ok(Err(
            "librumpnet_virtif.a not found in $RUMP_PCI_DIR/lib or $RUMP_KERNEL_DIR/lib".into(),
        ));
    };
    let syms = output(Command::new("nm").arg(&v))?;
    if syms.contains(" T rumpcomp_virt_create") {
        return Ok(Err(format!(
            "{} contains NetBSD's POSIX tap code (virtif_user.c); a guest needs one \
             built with RUMPCOMP_USER_SRCS= (README, \"Networking and NetBSD's PCI drivers on bare metal\")",
            v.display()
        )));
    }
    Ok(Ok(()))
}

/// Links `tests/baremetal/kernel_net.c` with `nic`'s archives into `elf`.
pub fn link(layer: &Layer, nic: Nic, archive: &Path, elf: &Path) -> Result<()> {
    let obj = elf.with_extension("o");
    qemu::cc_multi(
        &root().join("tests/baremetal/kernel_net.c"),
        &[&layer.kernel.join("include")],
        &[],
        &obj,
    )?;
    let libs: Vec<PathBuf> = nic
        .libs()
        .iter()
        .map(|l| layer.lib(l).ok_or(format!("lib{l}.a not found")))
        .collect::<Result<_>>()?;
    qemu::link_image(elf, &[obj], &libs, archive, false)
}

/// A free TCP (or UDP) port on the loopback interface.
pub fn free_port(udp: bool) -> Result<u16> {
    let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let port = if udp {
        UdpSocket::bind(any).and_then(|s| s.local_addr())
    } else {
        TcpListener::bind(any).and_then(|s| s.local_addr())
    }
    .map_err(|e| format!("no free port: {e}"))?
    .port();
    Ok(port)
}

/// QEMU arguments for a virtio-net device on `netdev` with `mac`.
pub fn nic_args(netdev: &str, mac: &str) -> Vec<String> {
    vec![
        "-netdev".into(),
        netdev.into(),
        "-device".into(),
        format!("virtio-net-pci,netdev=n0,mac={mac}"),
    ]
}

/// What the host measured against a guest server.
#[derive(Debug)]
pub struct Figures {
    /// Mean 64-byte echo round trip.
    pub rtt_us: f64,
    /// Guest → host stream.
    pub rx_mib_s: f64,
    /// Host → guest stream.
    pub tx_mib_s: f64,
}

fn pattern(i: u64) -> u8 {
    (i.wrapping_mul(7).wrapping_add(i >> 10)) as u8
}

/// The stream's bytes repeat every 256 KiB (`7i mod 256` every 256
/// bytes, `(i >> 10) mod 256` every 2^18).
const PERIOD: usize = 1 << 18;
/// Bytes read or written at a time.
const CHUNK: usize = 65536;

/// `pattern(i)` for `i` in `0..PERIOD + CHUNK`: a chunk at any offset is
/// `&table[off % PERIOD..][..n]`, compared and sent without a per-byte
/// loop (the xtask is a debug build, and in a Xen dom0 it runs nested in
/// TCG).
fn pattern_table() -> Vec<u8> {
    (0..(PERIOD + CHUNK) as u64).map(pattern).collect()
}

/// Opens a session: connects, waits for the banner (slirp accepts the
/// host side before the guest listens, so an early connection just
/// closes), sends the command byte. Retries until `deadline`.
fn session(addr: SocketAddrV4, cmd: u8, deadline: Instant) -> Result<TcpStream> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(60)))
                    .map_err(|e| e.to_string())?;
                let mut b = [0u8; 8];
                match s.read_exact(&mut b) {
                    Ok(()) if &b == b"rumpnet\n" => {
                        s.write_all(&[cmd]).map_err(|e| e.to_string())?;
                        s.set_nodelay(true).map_err(|e| e.to_string())?;
                        return Ok(s);
                    }
                    Ok(()) => return Err(format!("unexpected banner {b:?}")),
                    Err(e) => last = format!("banner: {e}"),
                }
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("no session with the guest on {addr} ({last})"))
}

/// The host side of a session with a guest server on `port` (forwarded
/// to the loopback interface): [`peer_session`] with [`STREAM`] bytes.
pub fn host_session(port: u16, boot_deadline: Instant) -> Result<Figures> {
    peer_session(
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        STREAM,
        boot_deadline,
    )
}

/// The peer's side of a session with a guest server at `addr`: echo
/// round trips and a 256 KiB echo, `stream` bytes guest → peer and peer
/// → guest (both checked), then quit. Connections are retried until
/// `boot_deadline` (the guest may still be booting).
pub fn peer_session(addr: SocketAddrV4, stream: u64, boot_deadline: Instant) -> Result<Figures> {
    // Echo: 64-byte round trips, then 256 KiB in 16 KiB steps.
    let mut s = session(addr, b'E', boot_deadline)?;
    let t0 = Instant::now();
    let mut back = [0u8; 64];
    for k in 0..ECHO_ROUNDS {
        let msg: Vec<u8> = (0..64).map(|j| (k as u8).wrapping_add(j)).collect();
        s.write_all(&msg).map_err(|e| format!("echo write: {e}"))?;
        s.read_exact(&mut back)
            .map_err(|e| format!("echo read: {e}"))?;
        if back[..] != msg[..] {
            return Err(format!(
                "echo round trip {k}: the guest sent back other bytes"
            ));
        }
    }
    let rtt_us = t0.elapsed().as_secs_f64() * 1e6 / ECHO_ROUNDS as f64;
    let table = pattern_table();
    let mut big = vec![0u8; 16384];
    let mut got = vec![0u8; 16384];
    for step in 0..16u64 {
        for (i, b) in big.iter_mut().enumerate() {
            *b = pattern(step * 16384 + i as u64);
        }
        s.write_all(&big).map_err(|e| format!("echo write: {e}"))?;
        s.read_exact(&mut got)
            .map_err(|e| format!("echo read: {e}"))?;
        if got != big {
            return Err("256 KiB echo: the guest sent back other bytes".into());
        }
    }
    drop(s);
    // Guest → host.
    let mut s = session(addr, b'S', boot_deadline)?;
    s.write_all(&stream.to_be_bytes())
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut off = 0u64;
    let mut buf = vec![0u8; CHUNK];
    while off < stream {
        let n = s.read(&mut buf).map_err(|e| format!("stream read: {e}"))?;
        if n == 0 {
            return Err(format!("the guest's stream ended after {off} bytes"));
        }
        let want = &table[off as usize % PERIOD..][..n];
        if buf[..n] != *want {
            let i = (0..n).find(|&i| buf[i] != want[i]).unwrap_or(0);
            return Err(format!(
                "guest → host stream: byte {} differs",
                off + i as u64
            ));
        }
        off += n as u64;
    }
    let rx_mib_s = stream as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64();
    drop(s);
    // Host → guest.
    let mut s = session(addr, b'R', boot_deadline)?;
    s.write_all(&stream.to_be_bytes())
        .map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut off = 0u64;
    while off < stream {
        let k = CHUNK.min((stream - off) as usize);
        s.write_all(&table[off as usize % PERIOD..][..k])
            .map_err(|e| format!("stream write: {e}"))?;
        off += k as u64;
    }
    let mut verdict = [0u8; 3];
    s.read_exact(&mut verdict)
        .map_err(|e| format!("stream verdict: {e}"))?;
    let tx_mib_s = stream as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64();
    if &verdict != b"OK\n" {
        return Err(format!(
            "the guest found the host's stream wrong: {verdict:?}"
        ));
    }
    drop(s);
    let mut s = session(addr, b'Q', boot_deadline)?;
    let mut bye = [0u8; 4];
    s.read_exact(&mut bye)
        .map_err(|e| format!("the guest's goodbye: {e}"))?;
    Ok(Figures {
        rtt_us,
        rx_mib_s,
        tx_mib_s,
    })
}

/// Runs `qemu::run` on a thread (the host talks to the guest meanwhile).
pub fn spawn_guest(
    elf: PathBuf,
    args: Vec<String>,
    append: String,
    label: &'static str,
    timeout: Duration,
) -> std::thread::JoinHandle<Result<Run>> {
    std::thread::spawn(move || qemu::run(&elf, &args, &append, label, timeout))
}

/// Checks that a guest ended well and printed `needles`.
pub fn check_guest(run: &Run, what: &str, needles: &[&str]) -> Result<()> {
    expect(run, Outcome::Exited(0), what)?;
    for n in needles {
        if !run.output.contains(n) {
            return Err(format!("{what}: missing {n:?} in the console output"));
        }
    }
    Ok(())
}

/// The guest's own figure lines (`kernel-net: ...`), for the report.
pub fn guest_lines(run: &Run) -> Vec<String> {
    run.output
        .lines()
        .filter(|l| l.starts_with("kernel-net: ") && !l.contains("FAIL"))
        .map(String::from)
        .collect()
}

/// One guest server on slirp (gateway 10.0.2.2 pinged) with `nic`, the
/// host program through a forwarded port.
pub fn slirp_server(dir: &Path, layer: &Layer, archive: &Path, nic: Nic) -> Result<(Figures, Run)> {
    let elf = dir.join(format!("kernel_net_{}.elf", nic.ifname()));
    link(layer, nic, archive, &elf)?;
    let port = free_port(false)?;
    let mut args = qemu::base_args("max", "256M");
    args.extend(nic_args(
        &format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"),
        "52:54:00:12:34:56",
    ));
    let append = format!(
        "RUMP_VERBOSE=1 -- serve {} 10.0.2.15 255.255.255.0 10.0.2.2",
        nic.ifname()
    );
    let label = match nic {
        Nic::Vioif => "vioif",
        Nic::Virtif => "virtif",
    };
    let guest = spawn_guest(elf, args, append, label, Duration::from_secs(600));
    let deadline = Instant::now() + Duration::from_secs(120);
    let host = host_session(port, deadline);
    let run = guest
        .join()
        .map_err(|_| "the QEMU thread panicked".to_string())??;
    let figures = host.map_err(|e| format!("{label}: host session: {e}"))?;
    let ifup = format!("kernel-net: {} up as 10.0.2.15", nic.ifname());
    check_guest(
        &run,
        label,
        &[
            ifup.as_str(),
            "kernel-net: ping 10.0.2.2: 10 of 10 answered",
            "every byte as sent",
            "kernel-net: server done after 4 sessions",
        ],
    )?;
    for l in guest_lines(&run) {
        eprintln!("baremetal {label}: guest: {l}");
    }
    Ok((figures, run))
}

/// Two guests on one `-netdev socket` link (UDP between two QEMUs): the
/// server over vioif, the client over if_virt; the client pings the
/// server and runs the whole session against it.
pub fn two_guests(dir: &Path, layer: &Layer, archive: &Path) -> Result<Run> {
    let server_elf = dir.join("kernel_net_server.elf");
    let client_elf = dir.join("kernel_net_client.elf");
    link(layer, Nic::Vioif, archive, &server_elf)?;
    link(layer, Nic::Virtif, archive, &client_elf)?;
    let (pa, pb) = (free_port(true)?, free_port(true)?);
    let mut sa = qemu::base_args("max", "256M");
    sa.extend(nic_args(
        &format!("socket,id=n0,udp=127.0.0.1:{pb},localaddr=127.0.0.1:{pa}"),
        "52:54:00:00:03:01",
    ));
    let mut sb = qemu::base_args("max", "256M");
    sb.extend(nic_args(
        &format!("socket,id=n0,udp=127.0.0.1:{pa},localaddr=127.0.0.1:{pb}"),
        "52:54:00:00:03:02",
    ));
    let t0 = Instant::now();
    let a = spawn_guest(
        server_elf,
        sa,
        "RUMP_VERBOSE=1 -- serve vioif0 10.0.3.1 255.255.255.0".into(),
        "guest-a",
        Duration::from_secs(900),
    );
    let b = spawn_guest(
        client_elf,
        sb,
        "RUMP_VERBOSE=1 -- client virt0 10.0.3.2 255.255.255.0 10.0.3.1".into(),
        "guest-b",
        Duration::from_secs(900),
    );
    let rb = b
        .join()
        .map_err(|_| "the QEMU thread panicked".to_string())??;
    let ra = a
        .join()
        .map_err(|_| "the QEMU thread panicked".to_string())??;
    check_guest(
        &rb,
        "two guests: client (virt0)",
        &[
            "kernel-net: ping 10.0.3.1: 10 of 10 answered",
            "every byte as sent",
            "the server checked every byte",
            "kernel-net: client done",
        ],
    )?;
    check_guest(
        &ra,
        "two guests: server (vioif0)",
        &[
            "every byte as sent",
            "kernel-net: server done after 4 sessions",
        ],
    )?;
    for l in guest_lines(&rb) {
        eprintln!("baremetal twoguests: client: {l}");
    }
    for l in guest_lines(&ra) {
        eprintln!("baremetal twoguests: server: {l}");
    }
    eprintln!(
        "baremetal twoguests: vioif0 10.0.3.1 and virt0 10.0.3.2 over -netdev socket: ping, echo and \
         64 MiB each way checked, in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(rb)
}

/// The number in a guest line `kernel-net: <prefix><number>...`.
fn guest_number(run: &Run, prefix: &str) -> Option<f64> {
    run.output.lines().find_map(|l| {
        let rest = l.strip_prefix("kernel-net: ")?.strip_prefix(prefix)?;
        let n: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        n.parse().ok()
    })
}

/// MiB/s of a 64 MiB transfer the guest timed as `prefix<ms> ms`.
fn guest_mib_s(run: &Run, prefix: &str) -> Option<f64> {
    guest_number(run, prefix).map(|ms| (STREAM >> 20) as f64 / (ms / 1000.0))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The figures of a bench, row by row: each round's value and the unit.
#[derive(Default)]
pub struct Rows(Vec<(String, Vec<f64>, &'static str)>);

impl Rows {
    /// Adds one round's `v` to row `name`.
    pub fn push(&mut self, name: &str, v: f64, unit: &'static str) {
        match self.0.iter_mut().find(|(n, _, _)| n == name) {
            Some(r) => r.1.push(v),
            None => self.0.push((name.to_string(), vec![v], unit)),
        }
    }

    /// Prints each row's median and rounds.
    pub fn print(self, who: &str, rounds: usize) {
        println!("{who}: medians of {rounds} rounds");
        for (name, mut v, unit) in self.0 {
            let m = median(&mut v);
            let all: Vec<String> = v.iter().map(|x| format!("{x:.1}")).collect();
            println!("{name}: {m:.1} {unit} (rounds: {})", all.join(", "));
        }
    }
}

/// The posix flavour's shmif TCP bench (`benches/c/kernel_tcp.c` and the
/// library path it runs with), when `RUMP_POSIX_KERNEL_DIR` names a
/// pthread layer.
pub fn posix_shmif() -> Result<Option<(PathBuf, String)>> {
    match std::env::var_os("RUMP_POSIX_KERNEL_DIR").map(PathBuf::from) {
        Some(k) => Ok(Some(posix_tcp_bench(&k)?)),
        None => {
            eprintln!("RUMP_POSIX_KERNEL_DIR not set: no posix shmif rows");
            Ok(None)
        }
    }
}

/// One round of the posix shmif rows (round trip, stream) into `rows`.
pub fn posix_shmif_round(bench: &(PathBuf, String), rows: &mut Rows) -> Result<()> {
    let (exe, lib) = bench;
    let work = crate::util::target().join("bench-kernel");
    let bus = work.join("tcp.bus").display().to_string();
    for (what, arg, label, unit) in [
        ("rt", "1000", "kernel_tcp_rt_64b", "us"),
        ("stream", "67108864", "kernel_tcp_stream", "MiB/s"),
    ] {
        let out = output(
            Command::new(exe)
                .args([bus.as_str(), what, arg])
                .env("LD_LIBRARY_PATH", lib),
        )?;
        let v: f64 = out
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{label} ")))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("posix shmif bench: no {label}: {out}"))?;
        let v = if unit == "us" { v / 1000.0 } else { v };
        let name = if what == "rt" {
            "posix kernel<->kernel shmif: 64-byte TCP round trip"
        } else {
            "posix kernel<->kernel shmif: stream"
        };
        rows.push(name, v, unit);
    }
    Ok(())
}

/// `cargo xtask bench-baremetal-net [--rounds N]`: the bare-metal TCP
/// figures (host↔guest through slirp over vioif and over if_virt, and
/// guest↔guest over `-netdev socket`), and in the same run, round by
/// round, the posix flavour's TCP between two kernels over shmif
/// (`benches/c/kernel_tcp.c` on `ours-posix`, from the pthread layer in
/// `$RUMP_POSIX_KERNEL_DIR`, when set). Prints medians.
pub fn bench(args: &[String]) -> Result<()> {
    let rounds: usize = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("bench-baremetal-net: --rounds takes a number")?,
        None => 3,
    };
    crate::baremetal::require_tools()?;
    let layer = match layer()? {
        Ok(l) => l,
        Err(why) => return Err(format!("bench-baremetal-net: {why}")),
    };
    let dir = crate::util::target().join("baremetal");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let archive = crate::baremetal::build_archive()?;
    let shmif = posix_shmif()?;
    let mut rows = Rows::default();
    for round in 1..=rounds {
        eprintln!("bench-baremetal-net: round {round} of {rounds}");
        for nic in [Nic::Vioif, Nic::Virtif] {
            let (f, run) = slirp_server(&dir, &layer, &archive, nic)?;
            let n = nic.ifname();
            rows.push(
                &format!("host<->guest {n}: 64-byte TCP round trip (host)"),
                f.rtt_us,
                "us",
            );
            rows.push(
                &format!("host<->guest {n}: guest->host stream (host)"),
                f.rx_mib_s,
                "MiB/s",
            );
            rows.push(
                &format!("host<->guest {n}: host->guest stream (host)"),
                f.tx_mib_s,
                "MiB/s",
            );
            if let Some(v) = guest_mib_s(&run, "sent 64 MiB in ") {
                rows.push(
                    &format!("host<->guest {n}: guest->host stream (guest)"),
                    v,
                    "MiB/s",
                );
            }
            if let Some(v) = guest_mib_s(&run, "received 64 MiB in ") {
                rows.push(
                    &format!("host<->guest {n}: host->guest stream (guest)"),
                    v,
                    "MiB/s",
                );
            }
        }
        let rb = two_guests(&dir, &layer, &archive)?;
        if let Some(v) = guest_number(
            &rb,
            &format!("{ECHO_ROUNDS} echo round trips of 64 bytes: "),
        ) {
            rows.push(
                "guest<->guest virt0->vioif0: 64-byte TCP round trip (client guest)",
                v,
                "us",
            );
        }
        if let Some(v) = guest_mib_s(&rb, "client received 64 MiB in ") {
            rows.push(
                "guest<->guest: vioif0->virt0 stream (client guest)",
                v,
                "MiB/s",
            );
        }
        if let Some(v) = guest_mib_s(&rb, "client sent 64 MiB in ") {
            rows.push(
                "guest<->guest: virt0->vioif0 stream (client guest)",
                v,
                "MiB/s",
            );
        }
        if let Some(s) = &shmif {
            posix_shmif_round(s, &mut rows)?;
        }
    }
    rows.print("bench-baremetal-net", rounds);
    Ok(())
}

/// `benches/c/kernel_tcp.c` built against the pthread layer `k` (shared
/// libraries) and the library path of `ours-posix` under it.
fn posix_tcp_bench(k: &Path) -> Result<(PathBuf, String)> {
    let klib = k.join("lib");
    if !klib.join("librumpnet_shmif.so").exists() {
        return Err(format!("{} has no librumpnet_shmif.so", klib.display()));
    }
    crate::dist::build()?;
    let work = crate::util::target().join("bench-kernel");
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;
    let exe = work.join("kernel_tcp");
    crate::util::sh(
        Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&exe)
            .arg(root().join("benches/c/kernel_tcp.c"))
            .arg("-I")
            .arg(k.join("include"))
            .arg("-L")
            .arg(&klib)
            .arg(format!("-Wl,-rpath-link,{}", klib.display()))
            .arg("-Wl,--no-as-needed")
            .args([
                "-lrumpnet_shmif",
                "-lrumpnet_config",
                "-lrumpnet_netinet",
                "-lrumpnet_net",
                "-lrumpnet",
                "-lrump",
                "-lrumpuser",
                "-lpthread",
                "-ldl",
            ]),
    )?;
    let compat = crate::dist::dist_dir().join("compat").join("posix");
    Ok((exe, format!("{}:{}", compat.display(), klib.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_repeats_every_period() {
        let t = pattern_table();
        for off in [
            0u64,
            1,
            1023,
            1024,
            65535,
            PERIOD as u64 - 1,
            5 * PERIOD as u64 + 77,
        ] {
            let at = &t[off as usize % PERIOD..][..CHUNK];
            assert!(
                at.iter()
                    .enumerate()
                    .all(|(i, &b)| b == pattern(off + i as u64)),
                "{off}"
            );
        }
    }
}
