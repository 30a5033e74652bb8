//! The syscall proxy on bare metal (`cargo xtask baremetal-test`, step
//! `sysproxy`): a host program on NetBSD's librumpclient calls into a
//! guest's kernel over TCP.
//!
//! The guest (`tests/baremetal/kernel_sp.c`, linked with the kernel's
//! sysproxy component, ext2 and the network stack, once over NetBSD's
//! vioif and once over if_virt) mounts ext2 from its virtio disk and
//! serves itself on 10.0.2.15:5555,
//! forwarded by QEMU's user-mode network to a host port, with at most two
//! clients. The host program (`tests/baremetal/sp_client.c`, linked with
//! `$RUMP_KERNEL_DIR/lib/librumpclient.so`) then:
//!
//! 1. lists `/mnt` and `/mnt/dir1`, reads a file the guest wrote, writes
//!    256 KiB to `/mnt/fromhost.txt` and reads it back;
//! 2. blocks a client in `accept(2)` on guest port 4242, sees the port
//!    busy from another client, blocks a second client (port 4243), and
//!    checks that a third client is refused (the limit);
//! 3. kills both blocked clients (a disconnect mid-call) and waits for
//!    both ports to become free again: their processes were released;
//! 4. (this module, raw protocol) a frame over the 4 KiB body limit and a
//!    request before the handshake each close the connection, the latter
//!    after an `ERROR(AUTH)` frame;
//! 5. reboots the guest from a client: the kernel unmounts the disk,
//!    answers, and powers off with status 0; the host reads
//!    `/fromhost.txt` from the image with `debugfs`.

use crate::baremetal_net::{self as bn, Layer, Nic};
use crate::qemu::{self, expect, Outcome};
use crate::util::{output, require, root, sh, Result};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The port `kernel_sp.c` serves on.
pub const GUEST_PORT: u16 = 5555;
/// Bytes the client writes to `/mnt/fromhost.txt`.
pub const FROMHOST: usize = 256 * 1024;

/// The kernel archives of a guest on `nic`, in link order.
pub fn libs(nic: Nic) -> Vec<&'static str> {
    let mut v = vec![
        "rumpkern_sysproxy",
        "rumpfs_ext2fs",
        "rumpfs_ffs",
        "rumpdev_disk",
    ];
    v.extend(nic.libs());
    v
}

/// The text the client writes to `/mnt/fromhost.txt` (as `fromhost_text`
/// in `sp_client.c`).
pub fn fromhost_text() -> Vec<u8> {
    let mut v = Vec::with_capacity(FROMHOST + 32);
    let mut line = 0u32;
    while v.len() < FROMHOST {
        v.extend_from_slice(format!("rumpclient line {line:06}\n").as_bytes());
        line += 1;
    }
    v.truncate(FROMHOST);
    v
}

/// What the guest's console must show once [`host_side`] is done:
/// `kernel_sp.c` on `ifname` at `ip`, the server's messages for the
/// refused client, the oversized frame and the early request, and the
/// kernel's halt.
pub fn guest_needles(ifname: &str, ip: &str) -> Vec<String> {
    let mut v = vec![
        "kernel-sp: ext2 mounted on /mnt".to_string(),
        format!("kernel-sp: {ifname} up as {ip}, serving tcp://{ip}:{GUEST_PORT}"),
    ];
    v.extend(
        [
            "clients connected, refusing another",
            "exceeds the limit",
            "no handshake; closing",
            "rump kernel halting...",
        ]
        .map(String::from),
    );
    v
}

/// The guest's command line: `kernel_sp.c` on `ifname` at `ip`/24,
/// serving [`GUEST_PORT`] to two clients at most.
pub fn guest_cmdline(ifname: &str, ip: &str) -> String {
    format!("RUMP_VERBOSE=1 RUMPUSER_SP_MAXCLIENTS=2 -- {ifname} {ip} 255.255.255.0 {GUEST_PORT}")
}

/// The host client, built against the kernel layer's librumpclient.
pub fn build_client(k: &Path, dir: &Path) -> Result<PathBuf> {
    let exe = dir.join("sp_client");
    let lib = k.join("lib");
    sh(Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&exe)
        .arg(root().join("tests/baremetal/sp_client.c"))
        .arg("-I")
        .arg(k.join("include"))
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lrumpclient"))?;
    Ok(exe)
}

/// The client program and the `RUMP_SERVER` it calls.
pub struct Client {
    pub exe: PathBuf,
    pub server: String,
}

impl Client {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args)
            .env("RUMP_SERVER", &self.server)
            .stdin(Stdio::null());
        c
    }

    /// Runs a mode to its end; its stdout, or why it failed.
    fn run(&self, args: &[&str]) -> Result<String> {
        let out = self
            .command(args)
            .output()
            .map_err(|e| format!("sp_client: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "sp_client {}: {} ({}{})",
                args.join(" "),
                out.status,
                stdout.trim(),
                stderr.trim()
            ));
        }
        Ok(stdout)
    }

    /// Starts `block PORT` and waits for its "blocking" line.
    fn block(&self, port: u16) -> Result<Child> {
        let mut child = self
            .command(&["block", &port.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("sp_client: {e}"))?;
        let mut line = String::new();
        let out = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("sp_client block: {e}"))?;
        if line.trim() != "blocking" {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("sp_client block {port}: said {line:?}"));
        }
        Ok(child)
    }
}

/// A raw protocol connection: reads the banner, sends `frame`, and
/// returns the `(class, arg)` of every frame the server sends before it
/// closes the connection.
fn raw_session(addr: SocketAddrV4, frame: &[u8]) -> Result<Vec<(u16, u32)>> {
    let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(5))
        .map_err(|e| format!("raw session: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut banner = Vec::new();
    let mut b = [0u8; 1];
    while banner.last() != Some(&b'\n') {
        s.read_exact(&mut b)
            .map_err(|e| format!("raw session banner: {e}"))?;
        banner.push(b[0]);
    }
    if !banner.starts_with(b"RUMPSP-") {
        return Err(format!("unexpected banner {banner:?}"));
    }
    s.write_all(frame).map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .map_err(|e| format!("raw session: the server did not close the connection: {e}"))?;
    let mut frames = Vec::new();
    let mut off = 0;
    while off + 24 <= rest.len() {
        let len = u64::from_le_bytes(rest[off..off + 8].try_into().unwrap()) as usize;
        let class = u16::from_le_bytes(rest[off + 16..off + 18].try_into().unwrap());
        let arg = u32::from_le_bytes(rest[off + 20..off + 24].try_into().unwrap());
        frames.push((class, arg));
        off += len.max(24);
    }
    Ok(frames)
}

/// A frame header: length, request number, class, type, argument.
fn header(len: u64, reqno: u64, class: u16, typ: u16, arg: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&reqno.to_le_bytes());
    v.extend_from_slice(&class.to_le_bytes());
    v.extend_from_slice(&typ.to_le_bytes());
    v.extend_from_slice(&arg.to_le_bytes());
    v
}

/// The host's side of the test while the guest runs: `c` calls the
/// server, whose raw protocol address is `addr`; `say` reports progress.
/// Shared with Xen, whose dom0 runs it against a domU
/// (`xtask/src/xen/sp.rs`).
pub fn host_side(c: &Client, addr: SocketAddrV4, say: &dyn Fn(&str)) -> Result<()> {
    let t0 = Instant::now();
    let out = c.run(&["list"])?;
    for l in out.lines() {
        say(&format!("client: {l}"));
    }
    say(&format!(
        "guest up and listed after {:.1} s",
        t0.elapsed().as_secs_f64()
    ));

    // Two clients blocked in a call; a third is refused.
    let mut a = c.block(4242)?;
    let probe = c.run(&["probe", "4242"]);
    let mut b = c.block(4243);
    let refused = c.run(&["refused"]);
    // A disconnect mid-call: kill both (SIGKILL) while they are in accept.
    let _ = a.kill();
    let _ = a.wait();
    if let Ok(b) = b.as_mut() {
        let _ = b.kill();
        let _ = b.wait();
    }
    b?;
    if probe?.trim() != "busy" {
        return Err("guest port 4242 was not busy while a client listened on it".into());
    }
    if refused?.trim() != "refused" {
        return Err("a third client was not refused (RUMPUSER_SP_MAXCLIENTS=2)".into());
    }
    for p in ["4242", "4243"] {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match c.run(&["probe", p]) {
                Ok(s) if s.trim() == "free" => break,
                Ok(_) | Err(_) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(300))
                }
                r => {
                    return Err(format!(
                        "guest port {p} stays busy after its client was killed mid-call: {r:?}"
                    ))
                }
            }
        }
    }
    say(
        "two clients killed in accept(2): their processes were released, \
         a third client was refused while they were connected",
    );

    // Frame limits and protocol violations (class 0 = request, type 1 = syscall).
    let long = header(24 + 4097, 1, 0, 1, 20);
    if !raw_session(addr, &long)?.is_empty() {
        return Err("an oversized frame was answered".into());
    }
    let mut early = header(24 + 8, 1, 0, 1, 20);
    early.extend_from_slice(&[0; 8]);
    let frames = raw_session(addr, &early)?;
    if frames != [(2, 2)] {
        return Err(format!(
            "a request before the handshake got {frames:?}, not ERROR(AUTH) and a close"
        ));
    }
    say(
        "an oversized frame closes the connection; a request before the \
         handshake gets ERROR(AUTH), then the close",
    );

    let out = c.run(&["reboot"])?;
    say(&format!("client: {}", out.trim()));
    Ok(())
}

/// The step, over NetBSD's vioif and over if_virt: skipped with a
/// message without the kernel archives or librumpclient.
pub fn run(dir: &Path, archive: &Path, layer: &Layer) -> Result<()> {
    if !layer.kernel.join("lib/librumpclient.so").is_file() {
        eprintln!(
            "baremetal sysproxy: SKIPPED (no librumpclient.so in {}/lib)",
            layer.kernel.display()
        );
        return Ok(());
    }
    loopback(dir, archive, layer)?;
    let client = build_client(&layer.kernel, dir)?;
    for nic in [Nic::Vioif, Nic::Virtif] {
        let missing: Vec<&str> = libs(nic)
            .into_iter()
            .filter(|l| layer.lib(l).is_none())
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "baremetal sysproxy: SKIPPED over {} (no lib{}.a)",
                nic.ifname(),
                missing.join(".a, lib")
            );
            continue;
        }
        one_guest(dir, archive, layer, nic, &client)?;
    }
    Ok(())
}

/// `tests/baremetal/kernel_sp_loop.c`: a guest without a network device
/// serves itself on its loopback interface and talks the protocol to
/// itself (what Xen can do until it has a network device).
fn loopback(dir: &Path, archive: &Path, layer: &Layer) -> Result<()> {
    const LIBS: &[&str] = &[
        "rumpkern_sysproxy",
        "rumpnet_netinet",
        "rumpnet_net",
        "rumpnet",
        "rumpvfs",
        "rump",
    ];
    let elf = dir.join("kernel_sp_loop.elf");
    let obj = elf.with_extension("o");
    qemu::cc_multi(
        &root().join("tests/baremetal/kernel_sp_loop.c"),
        &[&layer.kernel.join("include")],
        &[],
        &obj,
    )?;
    let whole: Vec<PathBuf> = LIBS
        .iter()
        .map(|l| layer.lib(l).ok_or(format!("lib{l}.a not found")))
        .collect::<Result<_>>()?;
    qemu::link_image(&elf, &[obj], &whole, archive, false)?;
    let args = qemu::base_args("max", "256M");
    let run = qemu::run(
        &elf,
        &args,
        "RUMP_VERBOSE=1",
        "sysproxy-loop",
        Duration::from_secs(120),
    )?;
    expect(&run, Outcome::Exited(0), "sysproxy-loop")?;
    for n in [
        "kernel-sp-loop: handshake and getpid over loopback",
        "kernel-sp-loop: frame limit and handshake rule hold",
        "rump kernel halting...",
    ] {
        if !run.output.contains(n) {
            return Err(format!(
                "baremetal sysproxy-loop: missing {n:?} in the console output"
            ));
        }
    }
    eprintln!(
        "baremetal sysproxy-loop: a guest without a network device serves its loopback \
         interface: handshake, getpid, frame limit ({:.1} s)",
        run.elapsed.as_secs_f64()
    );
    Ok(())
}

fn one_guest(dir: &Path, archive: &Path, layer: &Layer, nic: Nic, client: &Path) -> Result<()> {
    let ifname = nic.ifname();
    let elf = dir.join(format!("kernel_sp_{ifname}.elf"));
    let obj = elf.with_extension("o");
    qemu::cc_multi(
        &root().join("tests/baremetal/kernel_sp.c"),
        &[&layer.kernel.join("include")],
        &[],
        &obj,
    )?;
    let whole: Vec<PathBuf> = libs(nic)
        .iter()
        .map(|l| layer.lib(l).ok_or(format!("lib{l}.a not found")))
        .collect::<Result<_>>()?;
    qemu::link_image(&elf, &[obj], &whole, archive, false)?;

    let img = dir.join(format!("sysproxy_{ifname}.img"));
    qemu::make_ext2(&img)?;
    let port = bn::free_port(false)?;
    let mut args = qemu::base_args("max", "256M");
    args.extend([
        "-drive".to_string(),
        format!("file={},if=none,id=d0,format=raw", img.display()),
        "-device".into(),
        "virtio-blk-pci,drive=d0".into(),
    ]);
    args.extend(bn::nic_args(
        &format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORT}"),
        "52:54:00:12:34:56",
    ));
    let append = guest_cmdline(ifname, "10.0.2.15");
    let label = match nic {
        Nic::Vioif => "sysproxy-vioif",
        Nic::Virtif => "sysproxy-virtif",
    };
    let guest = bn::spawn_guest(elf, args, append, label, Duration::from_secs(600));
    let c = Client {
        exe: client.to_path_buf(),
        server: format!("tcp://127.0.0.1:{port}"),
    };
    let host = host_side(
        &c,
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
        &|l: &str| eprintln!("baremetal sysproxy: {l}"),
    );
    let run = guest
        .join()
        .map_err(|_| "the QEMU thread panicked".to_string())??;
    host.map_err(|e| format!("baremetal {label}: {e}"))?;
    expect(&run, Outcome::Exited(0), label)?;
    for n in &guest_needles(ifname, "10.0.2.15") {
        if !run.output.contains(n.as_str()) {
            return Err(format!(
                "baremetal {label}: missing {n:?} in the console output"
            ));
        }
    }
    if require("debugfs", "").is_ok() {
        let tmp = dir.join("fromhost.txt");
        let _ = std::fs::remove_file(&tmp);
        output(
            Command::new("debugfs")
                .arg("-R")
                .arg(format!("dump /fromhost.txt {}", tmp.display()))
                .arg(&img),
        )?;
        let got = std::fs::read(&tmp).map_err(|e| format!("debugfs dump: {e}"))?;
        if got != fromhost_text() {
            return Err(format!(
                "baremetal {label}: /fromhost.txt on the disk ({} bytes) is not what the client wrote",
                got.len()
            ));
        }
    }
    eprintln!(
        "baremetal {label}: a host librumpclient program listed and read the guest's ext2 over \
         TCP ({ifname}), wrote a file the host then read from the disk image, and rebooted the \
         guest ({:.1} s)",
        run.elapsed.as_secs_f64()
    );
    Ok(())
}
