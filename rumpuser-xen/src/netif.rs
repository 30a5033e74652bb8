//! The netif ring protocol (`io/netif.h`, `io/ring.h`) as pure
//! functions, tested on the host: the notification rule of the shared
//! rings, how a frame is laid out over transmit slots, and which
//! responses make up one received packet. The driver that uses them is
//! `netfront` (compiled for the guest only).

use crate::abi::{
    NetifRxResponse, NETRXF_EXTRA_INFO, NETRXF_MORE_DATA, NETTXF_MORE_DATA, NET_RX_RING_SIZE,
    XEN_NETIF_EXTRA_FLAG_MORE, XEN_NETIF_NR_SLOTS_MIN,
};

/// A page: what one grant covers.
pub const PAGE: usize = 4096;
/// Bytes of one transmit buffer (two to a page). A frame of `if_virt`
/// (at most 1514 bytes) fits one; a longer one takes several slots,
/// which the back end must allow (`feature-sg`).
pub const TX_CHUNK: usize = 2048;
/// The Ethernet header: the back end drops shorter frames.
pub const ETH_HLEN: usize = 14;
/// The longest frame sent over several slots: as many chunks as every
/// back end accepts in one frame.
pub const MAX_SG_FRAME: usize = XEN_NETIF_NR_SLOTS_MIN * TX_CHUNK;

/// `RING_PUSH_{REQUESTS,RESPONSES}_AND_CHECK_NOTIFY`: whether a
/// producer that moved its index from `old` to `new` must notify the
/// other end, which asked to be told when the index passes `event`.
pub fn must_notify(old: u32, new: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// An event index the other end's producer will not reach for 2^31
/// entries: notifications off for a consumer at `cons`.
pub fn quiet_event(cons: u32) -> u32 {
    cons.wrapping_add(1 << 31)
}

/// Why a frame cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxPlanError {
    /// Shorter than an Ethernet header.
    TooShort,
    /// Longer than one transmit buffer without `feature-sg`, or than
    /// [`MAX_SG_FRAME`] with it.
    TooLong,
}

/// How many transmit slots (and [`TX_CHUNK`] buffers) a frame of `len`
/// bytes takes: one without scatter-gather.
pub fn tx_slots(len: usize, sg: bool) -> Result<usize, TxPlanError> {
    if len < ETH_HLEN {
        return Err(TxPlanError::TooShort);
    }
    let n = len.div_ceil(TX_CHUNK);
    if n == 1 || (sg && len <= MAX_SG_FRAME) {
        Ok(n)
    } else {
        Err(TxPlanError::TooLong)
    }
}

/// Slot `k` of a frame of `len` bytes laid over `n` slots: `(size
/// field, flags, bytes in this slot's buffer)`. The first slot's size is
/// the whole frame's (the back end subtracts the others), every slot
/// but the last has `NETTXF_more_data`.
pub fn tx_slot(len: usize, k: usize, n: usize) -> (u16, u16, usize) {
    let bytes = (len - k * TX_CHUNK).min(TX_CHUNK);
    let size = if k == 0 { len } else { bytes };
    let flags = if k + 1 < n { NETTXF_MORE_DATA } else { 0 };
    (size as u16, flags, bytes)
}

/// Why a received packet is not delivered (its slots are consumed and
/// their buffers posted again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// The back end reported an error for a slot (`NETIF_RSP_*`).
    Status(i16),
    /// A slot's data does not lie inside its page.
    Bounds,
    /// No bytes at all.
    Empty,
    /// More slots than the ring has.
    TooManySlots,
}

/// One received packet at the consumer index, as [`scan_rx`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxPacket {
    /// Responses it spans: the first data slot, the extra-info slots,
    /// the other data slots.
    pub slots: u32,
    /// Extra-info slots (right after the first; they carry no data).
    pub extras: u32,
    /// Bytes over all data slots.
    pub len: usize,
    /// Why it cannot be delivered, if it cannot.
    pub error: Option<RxError>,
}

impl RxPacket {
    /// Whether the slot `i` responses after the first holds data.
    pub fn is_data(&self, i: u32) -> bool {
        i == 0 || i > self.extras
    }
}

/// The packet whose first response is at `cons`, given the responses
/// produced up to `prod` (`rsp(i)` reads the one at index `i`): `None`
/// while there is none, or while its last response is still to come.
/// Extra-info slots follow the first slot, chained by
/// `XEN_NETIF_EXTRA_FLAG_MORE` (in the high byte of the slot's first
/// word); data slots are chained by `NETRXF_more_data`.
pub fn scan_rx(cons: u32, prod: u32, rsp: impl Fn(u32) -> NetifRxResponse) -> Option<RxPacket> {
    let avail = prod.wrapping_sub(cons);
    if avail == 0 || avail as usize > NET_RX_RING_SIZE {
        return None;
    }
    let mut p = RxPacket {
        slots: 1,
        extras: 0,
        len: 0,
        error: None,
    };
    let data = |r: &NetifRxResponse, p: &mut RxPacket| {
        if r.status < 0 {
            p.error.get_or_insert(RxError::Status(r.status));
        } else if r.offset as usize + r.status as usize > PAGE {
            p.error.get_or_insert(RxError::Bounds);
        } else {
            p.len += r.status as usize;
        }
    };
    let first = rsp(cons);
    data(&first, &mut p);
    if first.flags & NETRXF_EXTRA_INFO != 0 {
        loop {
            if p.slots >= avail {
                return None;
            }
            let e = rsp(cons.wrapping_add(p.slots));
            p.slots += 1;
            p.extras += 1;
            if (e.id >> 8) as u8 & XEN_NETIF_EXTRA_FLAG_MORE == 0 {
                break;
            }
        }
    }
    let mut last = first;
    while last.flags & NETRXF_MORE_DATA != 0 {
        if p.slots as usize >= NET_RX_RING_SIZE {
            p.error.get_or_insert(RxError::TooManySlots);
            break;
        }
        if p.slots >= avail {
            return None;
        }
        last = rsp(cons.wrapping_add(p.slots));
        p.slots += 1;
        data(&last, &mut p);
    }
    if p.len == 0 {
        p.error.get_or_insert(RxError::Empty);
    }
    Some(p)
}

/// A MAC address as xenstore writes it (`00:16:3e:12:34:56`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut it = s.trim().split(':');
    for b in m.iter_mut() {
        let part = it.next()?;
        if part.is_empty() || part.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(part, 16).ok()?;
    }
    it.next().is_none().then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn notify_when_the_event_index_is_passed() {
        // The consumer asked to hear at index 5.
        assert!(must_notify(4, 5, 5));
        assert!(must_notify(2, 9, 5));
        assert!(!must_notify(5, 9, 5));
        assert!(!must_notify(0, 4, 5));
        // Across the wrap of the 32-bit indexes.
        assert!(must_notify(u32::MAX - 1, 3, 1));
        assert!(!must_notify(u32::MAX - 1, 0, 1));
        // A quiet consumer is not told for a long way.
        let q = quiet_event(100);
        assert!(!must_notify(100, 100 + 1_000_000, q));
        assert!(!must_notify(u32::MAX, 5, quiet_event(u32::MAX)));
    }

    #[test]
    fn frames_over_transmit_slots() {
        assert_eq!(tx_slots(13, true), Err(TxPlanError::TooShort));
        assert_eq!(tx_slots(60, false), Ok(1));
        assert_eq!(tx_slots(1514, false), Ok(1));
        assert_eq!(tx_slots(TX_CHUNK, false), Ok(1));
        // Without scatter-gather a frame must fit one buffer (one copy).
        assert_eq!(tx_slots(TX_CHUNK + 1, false), Err(TxPlanError::TooLong));
        assert_eq!(tx_slots(6042, true), Ok(3));
        assert_eq!(tx_slots(MAX_SG_FRAME, true), Ok(XEN_NETIF_NR_SLOTS_MIN));
        assert_eq!(tx_slots(MAX_SG_FRAME + 1, true), Err(TxPlanError::TooLong));
        for len in [14, 1514, 2048, 2049, 6042, MAX_SG_FRAME] {
            let n = tx_slots(len, true).unwrap();
            let slots: Vec<_> = (0..n).map(|k| tx_slot(len, k, n)).collect();
            assert_eq!(slots[0].0 as usize, len);
            assert_eq!(slots.iter().map(|s| s.2).sum::<usize>(), len, "{len}");
            assert!(slots.iter().all(|s| s.2 <= TX_CHUNK && s.2 > 0));
            for (k, s) in slots.iter().enumerate() {
                assert_eq!(s.1 == NETTXF_MORE_DATA, k + 1 < n);
                if k > 0 {
                    assert_eq!(s.0 as usize, s.2);
                }
            }
        }
    }

    fn rsp(id: u16, offset: u16, flags: u16, status: i16) -> NetifRxResponse {
        NetifRxResponse {
            id,
            offset,
            flags,
            status,
        }
    }

    fn scan(ring: &[NetifRxResponse], cons: u32, prod: u32) -> Option<RxPacket> {
        scan_rx(cons, prod, |i| ring[i as usize % ring.len()])
    }

    #[test]
    fn one_slot_packets() {
        let ring = [rsp(0, 0, 0, 60), rsp(1, 0, 0, 1514)];
        let p = scan(&ring, 0, 2).unwrap();
        assert_eq!((p.slots, p.extras, p.len, p.error), (1, 0, 60, None));
        let p = scan(&ring, 1, 2).unwrap();
        assert_eq!((p.slots, p.len), (1, 1514));
        assert_eq!(scan(&ring, 2, 2), None);
    }

    #[test]
    fn multi_slot_packet_waits_for_its_last_slot() {
        let ring = [
            rsp(0, 0, NETRXF_MORE_DATA, 4096),
            rsp(1, 0, NETRXF_MORE_DATA, 4096),
            rsp(2, 0, 0, 100),
        ];
        assert_eq!(scan(&ring, 0, 1), None);
        assert_eq!(scan(&ring, 0, 2), None);
        let p = scan(&ring, 0, 3).unwrap();
        assert_eq!((p.slots, p.extras, p.len, p.error), (3, 0, 8292, None));
        assert!(p.is_data(0) && p.is_data(1) && p.is_data(2));
    }

    #[test]
    fn extra_info_slots_carry_no_data() {
        // First slot, two extras (the first says MORE), then a data slot.
        let more = (XEN_NETIF_EXTRA_FLAG_MORE as u16) << 8 | 1;
        let ring = [
            rsp(0, 0, NETRXF_EXTRA_INFO | NETRXF_MORE_DATA, 3000),
            rsp(more, 0xdead, 0xbeef, -7),
            rsp(2, 0xdead, 0xbeef, -7),
            rsp(3, 0, 0, 500),
        ];
        assert_eq!(scan(&ring, 0, 3), None);
        let p = scan(&ring, 0, 4).unwrap();
        assert_eq!((p.slots, p.extras, p.len, p.error), (4, 2, 3500, None));
        assert!(p.is_data(0) && !p.is_data(1) && !p.is_data(2) && p.is_data(3));
    }

    #[test]
    fn bad_packets_are_consumed_whole() {
        let ring = [
            rsp(0, 0, NETRXF_MORE_DATA, -1),
            rsp(1, 0, 0, 20),
            rsp(2, 4000, 0, 200),
            rsp(3, 0, 0, 0),
        ];
        let p = scan(&ring, 0, 4).unwrap();
        assert_eq!((p.slots, p.error), (2, Some(RxError::Status(-1))));
        let p = scan(&ring, 2, 4).unwrap();
        assert_eq!((p.slots, p.error), (1, Some(RxError::Bounds)));
        let p = scan(&ring, 3, 4).unwrap();
        assert_eq!((p.slots, p.error), (1, Some(RxError::Empty)));
        // A back end that says "more" forever: stopped at the ring's size.
        let ring = [rsp(0, 0, NETRXF_MORE_DATA, 10); 256];
        assert_eq!(scan(&ring, 0, 255), None);
        let p = scan(&ring, 0, 256).unwrap();
        assert_eq!((p.slots, p.error), (256, Some(RxError::TooManySlots)));
        // Indexes a ring's length apart are not a packet.
        assert_eq!(scan(&ring, 0, 1000), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("00:16:3e:72:75:6d\n"),
            Some([0, 0x16, 0x3e, 0x72, 0x75, 0x6d])
        );
        assert_eq!(parse_mac("0:1:2:3:4:5"), Some([0, 1, 2, 3, 4, 5]));
        for bad in [
            "",
            "00:16:3e:72:75",
            "00:16:3e:72:75:6d:00",
            "00:16:3e:72:75:6g",
            "000:1:2:3:4:5",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
