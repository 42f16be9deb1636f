//! Checksums where the NIC computes them for the wire and nothing else does (`docs/04-network.md`,
//! "Checksum offload"). The root's stack leaves the IPv4, TCP and UDP checksums to the layers
//! below it (`super::device`): for a frame that leaves on the wire the E1000 inserts them
//! ([`prepare`] zeroes and seeds the fields and says where the sums go); a frame that goes
//! anywhere else (looped back, or to the bridge) has them filled here in software ([`fill`]); a
//! frame that arrives without the NIC's verdict (QEMU's e1000 gives none) is checked here
//! ([`verify`]). Pure functions of a frame, unit-tested on the host
//! (`mkimage/tests/kernel_net.rs`). Every byte may come from the wire: malformed frames are
//! left alone by `fill` and `prepare` and refused by `verify`, never a panic.

use smoltcp::wire::{
    checksum, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol, Ipv4Packet, TcpPacket,
    UdpPacket,
};

/// Ethernet header (no VLAN tag: the stacks send none, and the NIC strips none).
const ETH: usize = 14;

/// Where the NIC is to insert the sums of a frame [`prepare`]d for it: each the sum of the
/// bytes from `start` to `end` (inclusive; `None`: the end of the frame), stored at `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sum {
    pub start: usize,
    pub at: usize,
    pub end: Option<usize>,
}

/// The IPv4 header's sum, and the TCP or UDP one if there is one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    pub ip: Sum,
    pub l4: Option<Sum>,
}

/// The IPv4 packet inside an Ethernet frame, checked for its lengths.
fn ipv4(frame: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    Ipv4Packet::new_checked(&frame[ETH..]).ok()
}

fn is_ipv4(frame: &[u8]) -> bool {
    frame.len() >= ETH && frame[12..14] == [0x08, 0x00]
}

/// Where a TCP or UDP checksum sits in its header.
fn l4_at(proto: IpProtocol) -> Option<usize> {
    match proto {
        IpProtocol::Tcp => Some(16),
        IpProtocol::Udp => Some(6),
        _ => None,
    }
}

/// Fill in the IPv4 header checksum and the TCP or UDP checksum of an IPv4 frame (those a
/// stack left to the NIC), in software. Other frames, and malformed ones, are left as they are
/// (the receiver refuses them as it would have).
pub fn fill(frame: &mut [u8]) {
    if ipv4(frame).is_none() {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(&mut frame[ETH..]) else { return };
    ip.fill_checksum();
    if ip.more_frags() || ip.frag_offset() != 0 {
        return; // a later fragment has no TCP/UDP header (the stacks send no fragments)
    }
    let (s, d) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    match ip.next_header() {
        IpProtocol::Tcp => {
            if let Ok(mut t) = TcpPacket::new_checked(ip.payload_mut()) {
                t.fill_checksum(&s, &d);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut u) = UdpPacket::new_checked(ip.payload_mut()) {
                u.fill_checksum(&s, &d);
            }
        }
        _ => {}
    }
}

/// Whether an arriving frame's IPv4 header checksum and TCP or UDP checksum are right (a UDP
/// checksum of zero means "none", as RFC 768 says). Frames other than IPv4 pass (ARP has no
/// checksum); a malformed IPv4 packet does not. A fragment's header is checked, its payload
/// cannot be (the wire's filter drops fragments before).
pub fn verify(frame: &[u8]) -> bool {
    if !is_ipv4(frame) {
        return true;
    }
    let Some(ip) = ipv4(frame) else { return false };
    if !ip.verify_checksum() {
        return false;
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return true;
    }
    let (s, d) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    match ip.next_header() {
        IpProtocol::Tcp => {
            TcpPacket::new_checked(ip.payload()).is_ok_and(|t| t.verify_checksum(&s, &d))
        }
        IpProtocol::Udp => {
            UdpPacket::new_checked(ip.payload()).is_ok_and(|u| u.verify_checksum(&s, &d))
        }
        _ => true,
    }
}

/// Make an IPv4 frame ready for the NIC to insert its sums: the IPv4 checksum zeroed, the TCP
/// or UDP checksum seeded with the pseudo-header's sum (the NIC sums the segment, the field
/// included, and knows no pseudo-header). `None`, the frame untouched, for a frame that is not
/// IPv4, is malformed, is a fragment, or carries bytes after its IPv4 packet (the NIC would
/// sum them): the caller fills its checksums with [`fill`] instead.
pub fn prepare(frame: &mut [u8]) -> Option<Offsets> {
    let ip = ipv4(frame)?;
    let hl = ip.header_len() as usize;
    let total = ip.total_len() as usize;
    if ETH + total != frame.len() || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let proto = ip.next_header();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let l4_len = total - hl;
    let l4 = match l4_at(proto) {
        // Too short for its header: no sum asked (the receiver refuses it as before).
        Some(at) if l4_len >= at + 2 => {
            let seed = checksum::pseudo_header_v4(&src, &dst, proto, l4_len as u32);
            let at = ETH + hl + at;
            frame[at..at + 2].copy_from_slice(&seed.to_be_bytes());
            Some(Sum { start: ETH + hl, at, end: None })
        }
        _ => None,
    };
    frame[ETH + 10..ETH + 12].copy_from_slice(&[0, 0]);
    Some(Offsets { ip: Sum { start: ETH, at: ETH + 10, end: Some(ETH + hl - 1) }, l4 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::phy::{Checksum, ChecksumCapabilities};
    use smoltcp::wire::{
        EthernetAddress, EthernetRepr, Ipv4Address, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber,
        UdpRepr,
    };

    const SRC: [u8; 4] = [10, 0, 2, 15];
    const DST: [u8; 4] = [10, 0, 2, 2];

    /// A frame as a stack emits it: an IPv4 TCP segment (`tcp`) or UDP datagram with
    /// `data`, its checksums computed (`software`) or left to the link (zero), as smoltcp does.
    fn frame(tcp: bool, data: &[u8], software: bool) -> Vec<u8> {
        let mut caps = ChecksumCapabilities::default();
        if !software {
            (caps.ipv4, caps.tcp, caps.udp) = (Checksum::None, Checksum::None, Checksum::None);
        }
        let (s, d) =
            (IpAddress::Ipv4(Ipv4Address::from(SRC)), IpAddress::Ipv4(Ipv4Address::from(DST)));
        let l4_len = if tcp { 20 } else { 8 } + data.len();
        let mut buf = vec![0u8; ETH + 20 + l4_len];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        Ipv4Repr {
            src_addr: Ipv4Address::from(SRC),
            dst_addr: Ipv4Address::from(DST),
            next_header: if tcp { IpProtocol::Tcp } else { IpProtocol::Udp },
            payload_len: l4_len,
            hop_limit: 64,
        }
        .emit(&mut ip, &caps);
        if tcp {
            let repr = TcpRepr {
                src_port: 80,
                dst_port: 50000,
                control: TcpControl::Psh,
                seq_number: TcpSeqNumber(1000),
                ack_number: Some(TcpSeqNumber(77)),
                window_len: 1024,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload: data,
            };
            repr.emit(&mut TcpPacket::new_unchecked(ip.payload_mut()), &s, &d, &caps);
        } else {
            let mut u = UdpPacket::new_unchecked(ip.payload_mut());
            let repr = UdpRepr { src_port: 53, dst_port: 50000 };
            repr.emit(&mut u, &s, &d, data.len(), |p| p.copy_from_slice(data), &caps);
        }
        buf
    }

    /// What the E1000 does with a frame [`prepare`]d for it (QEMU's `putsum`): the TCP/UDP
    /// sum, then the IPv4 one.
    fn nic(f: &mut [u8], o: Offsets) {
        for s in o.l4.into_iter().chain([o.ip]) {
            let end = s.end.map_or(f.len(), |e| e + 1);
            let c = match !checksum::data(&f[s.start..end]) {
                0 => 0xffff,
                c => c,
            };
            f[s.at..s.at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }

    #[test]
    fn what_the_nic_inserts_and_what_fill_computes_are_what_software_emits() {
        for tcp in [true, false] {
            for data in [&b""[..], b"GET / HTTP/1.1\r\n\r\n", b"odd", &[0xff; 1400]] {
                let want = frame(tcp, data, true);
                let left = frame(tcp, data, false);
                assert!(verify(&want));
                assert!(!verify(&left), "the sums were left to the link");
                let mut filled = left.clone();
                fill(&mut filled);
                assert_eq!(filled, want, "fill, tcp {tcp}, {} bytes", data.len());
                let mut offloaded = left.clone();
                let o = prepare(&mut offloaded).expect("an IPv4 frame the NIC can sum");
                assert_eq!(o.ip, Sum { start: 14, at: 24, end: Some(33) });
                let at = if tcp { 34 + 16 } else { 34 + 6 };
                assert_eq!(o.l4, Some(Sum { start: 34, at, end: None }));
                nic(&mut offloaded, o);
                assert_eq!(offloaded, want, "offload, tcp {tcp}, {} bytes", data.len());
                // A frame whose sums are already there comes out the same.
                let mut again = want.clone();
                let o = prepare(&mut again).unwrap();
                nic(&mut again, o);
                assert_eq!(again, want);
            }
        }
    }

    #[test]
    fn verify_refuses_what_is_corrupt_and_passes_what_has_no_sum() {
        let good = frame(true, b"payload", true);
        for at in [14 + 8, 14 + 20 + 4, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x40; // the TTL, the sequence number, the payload
            assert!(!verify(&bad), "byte {at} changed");
        }
        assert!(!verify(&good[..good.len() - 3]), "cut short: the IPv4 length lies");
        let mut udp = frame(false, b"no sum", false);
        Ipv4Packet::new_unchecked(&mut udp[ETH..]).fill_checksum();
        assert!(verify(&udp), "UDP's zero checksum: none");
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(verify(&arp), "ARP has no checksum");
        assert!(!verify(&good[..20]), "an IPv4 frame without its header");
        let mut fragment = good.clone();
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut fragment[ETH..]);
            ip.set_more_frags(true);
            ip.fill_checksum();
        }
        assert!(verify(&fragment), "a fragment's header is right; its payload not checkable");
    }

    #[test]
    fn prepare_leaves_alone_what_the_nic_cannot_sum() {
        let mut padded = frame(true, b"x", false);
        padded.extend_from_slice(&[0; 6]); // Ethernet padding after the IPv4 packet
        let before = padded.clone();
        assert_eq!(prepare(&mut padded), None);
        assert_eq!(padded, before, "untouched");
        fill(&mut padded);
        assert!(verify(&padded), "fill works on it instead");
        let mut fragment = frame(false, b"x", false);
        Ipv4Packet::new_unchecked(&mut fragment[ETH..]).set_frag_offset(8);
        assert_eq!(prepare(&mut fragment), None);
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(prepare(&mut arp), None);
        fill(&mut arp);
        assert_eq!(arp[..12], [0; 12], "fill leaves other frames alone");
        for n in [0, 5, 14, 20, 34] {
            let mut short = frame(true, b"", false)[..n].to_vec();
            assert_eq!(prepare(&mut short), None);
            fill(&mut short);
        }
    }
}
