//! Network cases: `if_virt`'s hypercalls ([`crate::virtif`]) through
//! their C symbols, on device 0 attached to a network with a peer that
//! answers ARP and ICMP echo: by default QEMU's user-mode network
//! (slirp: gateway 10.0.2.2, the guest 10.0.2.15), else the addresses
//! `net_ip=` (ours) and `net_gw=` (the peer's) of the command line (Xen:
//! dom0 on the other end of the vif). The image stands in for
//! `if_virt`: its `rump_virtif_virt_deliverpkt` ([`deliverpkt`]) records
//! every frame delivered, with the thread and CPU it came on.
//!
//! Platform-independent: any [`crate::virtif::NetDevice`] on a network
//! that answers ARP and ICMP echo for a gateway passes them.

use super::{Hooks, SKIP};
use crate::virtif::{self, Viu};
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicU64, Ordering};
use rumpuser_core::abi::IoVec;
use rumpuser_core::conformance::{model, Ctx};
use rumpuser_core::ensure;
use rumpuser_core::Errno;
use rumpuser_green::sched_core;

/// The guest's address on slirp's network (the default of `net_ip=`).
pub const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
/// slirp's gateway (the default of `net_gw=`).
pub const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];

/// An IPv4 address in dotted form.
pub fn parse_ip(s: &str) -> Option<[u8; 4]> {
    let mut a = [0u8; 4];
    let mut it = s.split('.');
    for b in a.iter_mut() {
        *b = it.next()?.parse().ok()?;
    }
    it.next().is_none().then_some(a)
}

/// `(ours, the peer's)` addresses: `net_ip=`, `net_gw=`, or slirp's.
pub fn addrs(h: &Hooks) -> ([u8; 4], [u8; 4]) {
    let p = |name, default| h.param(name).and_then(parse_ip).unwrap_or(default);
    (p("net_ip", GUEST_IP), p("net_gw", GATEWAY_IP))
}

/// One frame `rump_virtif_virt_deliverpkt` got.
pub struct Delivered {
    /// The frame.
    pub frame: Vec<u8>,
    /// The softc pointer it came with.
    pub sc: usize,
    /// Whether the delivering thread held a (model) virtual CPU.
    pub holds_cpu: bool,
    /// The delivering thread's name.
    pub thread: String,
}

static RX: spin::Mutex<VecDeque<Delivered>> = spin::Mutex::new(VecDeque::new());
static WAITER: AtomicU64 = AtomicU64::new(0);

/// `if_virt`'s delivery function, as the test image's stand-in: the test
/// image exports it as `rump_virtif_virt_deliverpkt` from a crate of its
/// own (the platform refers to that symbol weakly, and a weak reference
/// and a definition cannot share one compilation unit).
///
/// # Safety
/// C ABI: `iov` holds `iovlen` readable iovecs.
pub unsafe extern "C" fn deliverpkt(sc: *mut c_void, iov: *mut IoVec, iovlen: usize) {
    let mut frame = Vec::new();
    // SAFETY: the caller's contract.
    for v in unsafe { core::slice::from_raw_parts(iov, iovlen) } {
        // SAFETY: each iovec is readable for its length during the call.
        frame.extend_from_slice(unsafe {
            core::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len)
        });
    }
    let holds_cpu = model::model()
        .current()
        .is_some_and(|l| l.holds_cpu.load(Ordering::Acquire));
    let thread = sched_core::current_for_report()
        .map(|(_, n)| String::from(n.as_str()))
        .unwrap_or_default();
    RX.lock().push_back(Delivered {
        frame,
        sc: sc as usize,
        holds_cpu,
        thread,
    });
    if let Some(t) = sched_core::ThreadId::from_raw(WAITER.load(Ordering::Acquire)) {
        sched_core::wake(t);
    }
}

/// Waits (CPU released, parked) up to `ns` for a delivered frame that
/// `want` accepts; earlier frames that it refuses are dropped.
pub fn wait_frame(ctx: &Ctx, ns: u64, want: &dyn Fn(&Delivered) -> bool) -> Option<Delivered> {
    WAITER.store(sched_core::current().as_raw(), Ordering::Release);
    let deadline = ctx.now() + ns;
    let n = rumpuser_core::sched::release_cpu(core::ptr::null_mut());
    let got = loop {
        let next = RX.lock().pop_front();
        match next {
            Some(d) if want(&d) => break Some(d),
            Some(_) => continue,
            None if ctx.now() >= deadline => break None,
            None => {
                sched_core::park(Some(deadline));
            }
        }
    };
    rumpuser_core::sched::reacquire_cpu(n, core::ptr::null_mut());
    WAITER.store(0, Ordering::Release);
    got
}

/// Frames delivered and not yet looked at, dropped.
pub fn drain() -> usize {
    let mut q = RX.lock();
    let n = q.len();
    q.clear();
    n
}

/// The sc pointer the cases hand to `rumpcomp_virt_create`.
const SC: usize = 0x5c5c_0000;

/// An interface `create` made (destroy it with [`destroy`]).
pub struct Iface(*mut Viu);

/// `rumpcomp_virt_create(unit, SC)`: the interface and its address.
pub fn create(unit: &core::ffi::CStr) -> Result<(Iface, [u8; 6]), c_int> {
    let mut mac = [0u8; 6];
    let mut viu: *mut Viu = core::ptr::null_mut();
    // SAFETY: valid string, 6-byte array and out-pointer.
    let r = unsafe {
        virtif::rumpcomp_virt_create(unit.as_ptr(), SC as *mut c_void, mac.as_mut_ptr(), &mut viu)
    };
    if r == 0 {
        Ok((Iface(viu), mac))
    } else {
        Err(r)
    }
}

/// `rumpcomp_virt_dying` + `rumpcomp_virt_destroy`.
pub fn destroy(i: Iface) -> Result<(), String> {
    let viu = i.0;
    // SAFETY: a live interface from `create`.
    let r = unsafe { virtif::rumpcomp_virt_dying(viu) };
    ensure!(r == 0, "dying: {r}");
    // SAFETY: as above; not used afterwards.
    unsafe { virtif::rumpcomp_virt_destroy(viu) };
    Ok(())
}

/// `rumpcomp_virt_send` of the frame split at `cuts`.
pub fn send(i: &Iface, frame: &[u8], cuts: &[usize]) {
    let mut iov = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain(core::iter::once(&frame.len())) {
        let c = c.min(frame.len());
        if c > at {
            iov.push(IoVec {
                iov_base: frame[at..].as_ptr() as *mut c_void,
                iov_len: c - at,
            });
            at = c;
        }
    }
    // SAFETY: a live interface; the iovecs cover `frame`, valid for the call.
    unsafe { virtif::rumpcomp_virt_send(i.0, iov.as_ptr(), iov.len()) };
}

/// The Internet checksum of `b`.
pub fn inet_sum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            (c[0] as u32) << 8 | c[1] as u32
        } else {
            (c[0] as u32) << 8
        };
        s += w;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// An ARP request for `target` from `mac`/`ip` (42 bytes).
pub fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xffu8; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

/// The sender MAC of an ARP reply from `ip` to `mac`, if `f` is one.
pub fn arp_reply_from(f: &[u8], ip: [u8; 4], mac: [u8; 6]) -> Option<[u8; 6]> {
    if f.len() < 42 || f[..6] != mac || f[12..14] != [0x08, 0x06] || f[20..22] != [0, 2] {
        return None;
    }
    if f[28..32] != ip || f[32..38] != mac {
        return None;
    }
    let mut m = [0u8; 6];
    m.copy_from_slice(&f[22..28]);
    Some(m)
}

/// An ICMP echo request from `src` to `dst` (Ethernet `smac` → `dmac`),
/// id/seq as given, with `payload`.
pub fn ping(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![8u8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let c = inet_sum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45u8, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&seq.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = inet_sum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = Vec::with_capacity(14 + ip.len() + icmp.len());
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// `(id, seq, payload)` of an ICMP echo reply in `f` addressed to `mac`
/// from `from`, checksums verified.
pub fn echo_reply(f: &[u8], mac: [u8; 6], from: [u8; 4]) -> Option<(u16, u16, &[u8])> {
    if f.len() < 42 || f[..6] != mac || f[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let ihl = (ip[0] & 15) as usize * 4;
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ip[0] >> 4 != 4 || ip[9] != 1 || ip[12..16] != from || total > ip.len() || ihl < 20 {
        return None;
    }
    if inet_sum(&ip[..ihl]) != 0 {
        return None;
    }
    let icmp = &ip[ihl..total];
    if icmp.len() < 8 || icmp[0] != 0 || inet_sum(icmp) != 0 {
        return None;
    }
    Some((
        u16::from_be_bytes([icmp[4], icmp[5]]),
        u16::from_be_bytes([icmp[6], icmp[7]]),
        &icmp[8..],
    ))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.split(':');
    for b in m.iter_mut() {
        *b = u8::from_str_radix(it.next()?, 16).ok()?;
    }
    it.next().is_none().then_some(m)
}

/// The interface on device 0, or a skip when there is none.
pub fn up(h: &Hooks) -> Result<(Iface, [u8; 6]), String> {
    if virtif::count() == 0 {
        return Err(SKIP.into());
    }
    let (viu, mac) = create(c"0").map_err(|e| format!("create virt0: {e}"))?;
    if let Some(want) = h.param("net_mac").and_then(parse_mac) {
        ensure!(
            mac == want,
            "virt0 took {mac:02x?}, the host gave the device {want:02x?}"
        );
    }
    drain();
    Ok((viu, mac))
}

/// The peer's MAC, asked by ARP (the request cut into three iovecs).
pub fn resolve_gateway(
    ctx: &Ctx,
    h: &Hooks,
    viu: &Iface,
    mac: [u8; 6],
) -> Result<(Delivered, [u8; 6]), String> {
    let (ip, gw_ip) = addrs(h);
    let req = arp_request(mac, ip, gw_ip);
    for _ in 0..3 {
        send(viu, &req, &[14, 22]);
        if let Some(d) = wait_frame(ctx, 2_000_000_000, &|d| {
            arp_reply_from(&d.frame, gw_ip, mac).is_some()
        }) {
            let gw = arp_reply_from(&d.frame, gw_ip, mac).unwrap_or_default();
            return Ok((d, gw));
        }
    }
    Err(format!("no ARP reply from the peer {gw_ip:?} in 6 s"))
}

/// `virt0` takes the device's address; an ARP request (a three-part
/// iovec) is answered, delivered on the interface's own thread holding a
/// CPU with the softc it was created with.
pub fn net_arp(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (viu, mac) = up(h)?;
    let s0 = virtif::stats(0).unwrap_or_default();
    let (d, gw) = resolve_gateway(ctx, h, &viu, mac)?;
    let s1 = virtif::stats(0).unwrap_or_default();
    let (_, gw_ip) = addrs(h);
    crate::kprintln!(
        "  virt0 {mac:02x?}: the peer {gw_ip:?} is {gw:02x?}; {}",
        virtif::describe(0).unwrap_or_default()
    );
    ensure!(d.holds_cpu, "delivered without a virtual CPU");
    ensure!(
        d.thread == "virt0",
        "delivered on thread {:?}, not virt0",
        d.thread
    );
    ensure!(d.sc == SC, "delivered with sc {:#x}", d.sc);
    ensure!(
        s1.tx_frames > s0.tx_frames,
        "the request was not counted as sent"
    );
    ensure!(
        s1.rx_frames > s0.rx_frames,
        "the reply was not counted as received"
    );
    destroy(viu)
}

/// 64 pings of 1400 bytes to the peer, one at a time: every reply
/// comes back with its payload; the thread only woke for interrupts and
/// slept (no polling) while the line was quiet.
pub fn net_ping(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (viu, mac) = up(h)?;
    let (_, gw) = resolve_gateway(ctx, h, &viu, mac)?;
    let (ip, gw_ip) = addrs(h);
    let st0 = virtif::device_state(0).unwrap_or_default();
    let s0 = virtif::stats(0).unwrap_or_default();
    let t0 = ctx.now();
    const N: u16 = 64;
    for seq in 0..N {
        let payload: Vec<u8> = (0..1400).map(|i| (i as u16 ^ seq) as u8).collect();
        let f = ping(mac, gw, ip, gw_ip, 0x7272, seq, &payload);
        send(&viu, &f, &[14, 34, 700]);
        let d = wait_frame(
            ctx,
            3_000_000_000,
            &|d| matches!(echo_reply(&d.frame, mac, gw_ip), Some((0x7272, s, _)) if s == seq),
        )
        .ok_or_else(|| format!("no echo reply to ping {seq}"))?;
        let (_, _, p) = echo_reply(&d.frame, mac, gw_ip).unwrap_or((0, 0, &[]));
        ensure!(p == &payload[..], "ping {seq}: the reply's payload differs");
        ensure!(
            d.holds_cpu && d.thread == "virt0",
            "ping {seq}: delivery context"
        );
    }
    let dt = ctx.now() - t0;
    let st1 = virtif::device_state(0).unwrap_or_default();
    let s1 = virtif::stats(0).unwrap_or_default();
    // A quiet stretch: the thread may only wake for what arrives.
    let q0 = virtif::stats(0).unwrap_or_default();
    ctx.sleep_ns(300_000_000);
    let q1 = virtif::stats(0).unwrap_or_default();
    let quiet = q1.rx_wakeups - q0.rx_wakeups;
    let quiet_frames = q1.rx_frames - q0.rx_frames;
    crate::kprintln!(
        "  {N} pings of 1400 bytes: {} us per round trip; {} device interrupt(s), {} wake-up(s), {} batch(es) for {} frame(s); {quiet} wake-up(s) and {quiet_frames} frame(s) in 300 quiet ms",
        dt / N as u64 / 1000,
        st1.interrupts - st0.interrupts,
        s1.rx_wakeups - s0.rx_wakeups,
        s1.rx_batches - s0.rx_batches,
        s1.rx_frames - s0.rx_frames,
    );
    ensure!(st1.interrupts > st0.interrupts, "no device interrupt");
    ensure!(
        s1.rx_wakeups - s0.rx_wakeups <= s1.rx_frames - s0.rx_frames + 4,
        "the receive thread woke more often than frames arrived"
    );
    ensure!(
        quiet <= quiet_frames + 1,
        "the receive thread woke {quiet} times for {quiet_frames} frame(s)"
    );
    ensure!(
        st1.rx_posted == st1.rx_capacity,
        "{} of {} receive buffers posted",
        st1.rx_posted,
        st1.rx_capacity
    );
    destroy(viu)
}

/// 1000 frames back to back (more than the transmit ring holds): every
/// one is accepted (senders wait for room, none is dropped) and the
/// peer answers.
pub fn net_tx_burst(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    let (viu, mac) = up(h)?;
    let (_, gw) = resolve_gateway(ctx, h, &viu, mac)?;
    let (ip, gw_ip) = addrs(h);
    let s0 = virtif::stats(0).unwrap_or_default();
    const N: u16 = 1000;
    let t0 = ctx.now();
    for seq in 0..N {
        let f = ping(mac, gw, ip, gw_ip, 0x6262, seq, &[seq as u8; 56]);
        send(&viu, &f, &[]);
    }
    let dt = ctx.now() - t0;
    let s1 = virtif::stats(0).unwrap_or_default();
    let mut replies = 0;
    while wait_frame(ctx, 500_000_000, &|d| {
        matches!(echo_reply(&d.frame, mac, gw_ip), Some((0x6262, _, _)))
    })
    .is_some()
    {
        replies += 1;
    }
    crate::kprintln!(
        "  {N} frames sent in {} us ({} waited for room), {replies} replies",
        dt / 1000,
        s1.tx_waits - s0.tx_waits
    );
    ensure!(
        s1.tx_frames - s0.tx_frames == N as u64,
        "{} of {N} frames accepted",
        s1.tx_frames - s0.tx_frames
    );
    ensure!(
        s1.tx_drops == s0.tx_drops,
        "{} frames dropped",
        s1.tx_drops - s0.tx_drops
    );
    ensure!(replies > 0, "no reply to any of the burst");
    destroy(viu)
}

/// Create/destroy: unknown units are `ENXIO`, a device in use `EBUSY`;
/// after destroy every receive buffer is back with the device and the
/// interface can be made again and works.
pub fn net_lifecycle(ctx: &Ctx, h: &Hooks) -> Result<(), String> {
    if virtif::count() == 0 {
        return Err(SKIP.into());
    }
    for bad in [c"9", c"01", c"x", c""] {
        ensure!(
            create(bad).err() == Some(Errno::ENXIO.raw()),
            "create({bad:?})"
        );
    }
    let (viu, mac) = up(h)?;
    ensure!(
        create(c"0").err() == Some(Errno::EBUSY.raw()),
        "second create of virt0"
    );
    ensure!(virtif::in_use(0), "virt0 not in use after create");
    destroy(viu)?;
    ensure!(!virtif::in_use(0), "device 0 still in use after destroy");
    let st = virtif::device_state(0).unwrap_or_default();
    ensure!(
        st.rx_posted == st.rx_capacity,
        "{} of {} receive buffers back",
        st.rx_posted,
        st.rx_capacity
    );
    for round in 0..3 {
        let (viu, mac2) = up(h)?;
        ensure!(mac2 == mac, "round {round}: another address");
        resolve_gateway(ctx, h, &viu, mac)?;
        destroy(viu)?;
    }
    Ok(())
}
