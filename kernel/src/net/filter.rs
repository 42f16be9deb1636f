//! The receive filter: which frames from the wire the wire's device (`super::device::Filter`)
//! drops before anything else sees them. Pure (it depends only on `smoltcp::wire`), so it is
//! unit-tested on the host (`mkimage/tests/kernel_net.rs`).
//!
//! - **Martians**, as Linux drops them (`ip_route_input_slow`, `arp_process`; without
//!   `route_localnet` or `accept_local`): an IPv4 packet whose source is loopback
//!   (127.0.0.0/8), "this network" (0.0.0.0/8, except 0.0.0.0 to 255.255.255.255, a DHCP
//!   client's), multicast, the limited or the subnet's broadcast, or one of our own addresses;
//!   or whose destination is loopback or 0.0.0.0/8. ARP whose target is loopback or multicast,
//!   or whose sender is an address no IPv4 source may have (the rules above; 0.0.0.0, an
//!   address probe, passes). The container network behind the bridge ([`Local::inside`],
//!   192.168.1.0/24) is internal: no packet from the wire may come from it or go to it, and no
//!   ARP from the wire may name an address in it (the root's stack owns 192.168.1.1 too, and
//!   its neighbor cache must not learn a container's address from a stranger). smoltcp would otherwise take a loopback packet from the wire for
//!   its own (127.0.0.0/8 is one of the interface's addresses), and fill its neighbor cache
//!   from such ARP: the wire could then map 127.0.0.1 or our own address to a stranger's MAC,
//!   and the machine's loopback traffic would go to it.
//! - **IP fragments**: the stack does not reassemble (smoltcp is built without
//!   `proto-ipv4-fragmentation`), and without reassembly smoltcp reads a fragment as if it
//!   were the whole datagram: a first fragment would pass for a complete TCP segment.
//!
//! Frames looped back by the device itself never come here: they are the machine talking to
//! itself, where 127.0.0.1 is legitimate. A frame the filter cannot parse passes: smoltcp
//! parses it the same way (`new_checked`, `ArpRepr::parse`) and drops it too.

use smoltcp::wire::{ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Ipv4Address, Ipv4Packet};

/// What the filter makes of a frame from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// A martian: the source and destination it claims (IPv4 or ARP).
    Martian {
        arp: bool,
        src: Ipv4Address,
        dst: Ipv4Address,
    },
    /// An IPv4 fragment (no reassembly).
    Fragment,
}

/// The interface's own IPv4 address and its subnet, as the filter needs them, and the
/// internal network the wire must not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub ip: Ipv4Address,
    pub prefix: u8,
    /// An internal network (address, prefix): the containers' (none by default).
    pub inside: Option<(Ipv4Address, u8)>,
}

impl Local {
    pub fn new(ip: [u8; 4], prefix: u8) -> Local {
        Local { ip: Ipv4Address::from(ip), prefix: prefix.min(32), inside: None }
    }

    /// The same, with `net/prefix` internal.
    pub fn with_inside(self, net: [u8; 4], prefix: u8) -> Local {
        Local { inside: Some((Ipv4Address::from(net), prefix.min(32))), ..self }
    }

    /// Whether `a` is in the internal network.
    fn is_inside(&self, a: Ipv4Address) -> bool {
        self.inside.is_some_and(|(net, prefix)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(net) & mask
        })
    }

    /// The subnet's directed broadcast address (none for /31 and /32).
    fn subnet_broadcast(&self) -> Option<Ipv4Address> {
        if self.prefix >= 31 {
            return None;
        }
        let host_bits = u32::MAX >> self.prefix;
        Some(Ipv4Address::from(u32::from(self.ip) | host_bits))
    }

    /// Whether no packet from the wire may come from `src` (to `dst`).
    fn martian_source(&self, src: Ipv4Address, dst: Ipv4Address) -> bool {
        if src.is_unspecified() && dst.is_broadcast() {
            return false; // a DHCP client has no address yet
        }
        src.octets()[0] == 0
            || src.is_loopback()
            || src.is_multicast()
            || src.is_broadcast()
            || Some(src) == self.subnet_broadcast()
            || src == self.ip
            || self.is_inside(src)
    }

    /// Whether no packet from the wire may be for `dst`.
    fn martian_destination(&self, dst: Ipv4Address) -> bool {
        dst.octets()[0] == 0 || dst.is_loopback() || self.is_inside(dst)
    }

    /// What to do with `frame`, just received from the wire.
    pub fn check(&self, frame: &[u8]) -> Verdict {
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return Verdict::Pass };
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Verdict::Pass };
                let (src, dst) = (ip.src_addr(), ip.dst_addr());
                if self.martian_source(src, dst) || self.martian_destination(dst) {
                    Verdict::Martian { arp: false, src, dst }
                } else if ip.more_frags() || ip.frag_offset() != 0 {
                    Verdict::Fragment
                } else {
                    Verdict::Pass
                }
            }
            EthernetProtocol::Arp => {
                let Ok(packet) = ArpPacket::new_checked(eth.payload()) else {
                    return Verdict::Pass;
                };
                let Ok(ArpRepr::EthernetIpv4 {
                    source_protocol_addr: src,
                    target_protocol_addr: dst,
                    ..
                }) = ArpRepr::parse(&packet)
                else {
                    return Verdict::Pass;
                };
                let bad_target = dst.is_loopback() || dst.is_multicast() || self.is_inside(dst);
                let bad_sender = !src.is_unspecified() && self.martian_source(src, dst);
                if bad_target || bad_sender {
                    Verdict::Martian { arp: true, src, dst }
                } else {
                    Verdict::Pass
                }
            }
            _ => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{ArpOperation, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr};

    const US: [u8; 4] = [10, 0, 2, 15];
    const MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);

    fn local() -> Local {
        Local::new(US, 24)
    }

    fn a(b: [u8; 4]) -> Ipv4Address {
        Ipv4Address::from(b)
    }

    /// An IPv4 frame from `src` to `dst` with 8 bytes of payload; `frag`: (more fragments,
    /// offset in bytes).
    fn ipv4(src: [u8; 4], dst: [u8; 4], frag: (bool, u16)) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: a(src),
            dst_addr: a(dst),
            next_header: IpProtocol::Tcp,
            payload_len: 8,
            hop_limit: 64,
        };
        let mut buf = vec![0u8; 14 + 20 + 8];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr { src_addr: PEER_MAC, dst_addr: MAC, ethertype: EthernetProtocol::Ipv4 }
            .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        repr.emit(&mut ip, &ChecksumCapabilities::default());
        ip.set_more_frags(frag.0);
        ip.set_frag_offset(frag.1);
        ip.fill_checksum();
        buf
    }

    fn arp(op: ArpOperation, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let repr = ArpRepr::EthernetIpv4 {
            operation: op,
            source_hardware_addr: PEER_MAC,
            source_protocol_addr: a(spa),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: a(tpa),
        };
        let mut buf = vec![0u8; 14 + repr.buffer_len()];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: PEER_MAC,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        }
        .emit(&mut eth);
        repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
        buf
    }

    fn martian(v: Verdict) -> bool {
        matches!(v, Verdict::Martian { .. })
    }

    #[test]
    fn ordinary_traffic_passes() {
        let l = local();
        for (src, dst) in [
            ([10, 0, 2, 2], US),
            ([198, 18, 0, 1], US),
            ([10, 0, 2, 2], [255, 255, 255, 255]),
            ([10, 0, 2, 2], [10, 0, 2, 255]),
            ([10, 0, 2, 2], [224, 0, 0, 1]),
            ([0, 0, 0, 0], [255, 255, 255, 255]),
        ] {
            assert_eq!(l.check(&ipv4(src, dst, (false, 0))), Verdict::Pass, "{src:?} -> {dst:?}");
        }
        assert_eq!(l.check(&arp(ArpOperation::Request, [10, 0, 2, 2], US)), Verdict::Pass);
        assert_eq!(l.check(&arp(ArpOperation::Reply, [10, 0, 2, 2], US)), Verdict::Pass);
        // An address probe (RFC 5227) has no sender address yet.
        assert_eq!(l.check(&arp(ArpOperation::Request, [0, 0, 0, 0], US)), Verdict::Pass);
    }

    #[test]
    fn martian_sources_and_destinations_are_dropped() {
        let l = local();
        for (src, dst) in [
            ([127, 0, 0, 1], [127, 0, 0, 1]),
            ([127, 0, 0, 2], US),
            ([10, 0, 2, 9], [127, 0, 0, 1]),
            (US, US),
            ([0, 0, 0, 0], US),
            ([0, 1, 2, 3], US),
            ([255, 255, 255, 255], US),
            ([10, 0, 2, 255], US),
            ([224, 0, 0, 1], US),
            ([239, 1, 1, 1], US),
            ([10, 0, 2, 2], [0, 0, 0, 0]),
            ([10, 0, 2, 2], [0, 9, 9, 9]),
        ] {
            assert_eq!(
                l.check(&ipv4(src, dst, (false, 0))),
                Verdict::Martian { arp: false, src: a(src), dst: a(dst) },
                "{src:?} -> {dst:?}"
            );
        }
    }

    #[test]
    fn arp_cannot_claim_our_addresses_or_loopback() {
        let l = local();
        for (spa, tpa) in [
            ([127, 0, 0, 1], [127, 0, 0, 1]),
            ([10, 0, 2, 2], [127, 0, 0, 1]),
            ([127, 0, 0, 2], US),
            (US, US),
            ([10, 0, 2, 2], [224, 0, 0, 5]),
            ([224, 0, 0, 5], US),
            ([255, 255, 255, 255], US),
        ] {
            for op in [ArpOperation::Request, ArpOperation::Reply] {
                assert!(martian(l.check(&arp(op, spa, tpa))), "{op:?} {spa:?} -> {tpa:?}");
            }
        }
    }

    #[test]
    fn the_container_network_is_not_the_wire_s() {
        let l = local().with_inside([192, 168, 1, 0], 24);
        let peer = [10, 0, 2, 2];
        for (src, dst) in [
            ([192, 168, 1, 2], US),
            ([192, 168, 1, 1], US),
            (peer, [192, 168, 1, 1]),
            (peer, [192, 168, 1, 7]),
        ] {
            assert!(martian(l.check(&ipv4(src, dst, (false, 0)))), "{src:?} -> {dst:?}");
        }
        for (spa, tpa) in [([192, 168, 1, 9], US), (peer, [192, 168, 1, 1])] {
            for op in [ArpOperation::Request, ArpOperation::Reply] {
                assert!(martian(l.check(&arp(op, spa, tpa))), "{op:?} {spa:?} -> {tpa:?}");
            }
        }
        // Next door is not inside.
        assert_eq!(l.check(&ipv4([192, 168, 2, 1], US, (false, 0))), Verdict::Pass);
        assert_eq!(l.check(&ipv4(peer, US, (false, 0))), Verdict::Pass);
        assert_eq!(l.check(&arp(ArpOperation::Request, peer, US)), Verdict::Pass);
        // Without an internal network, nothing changes.
        assert_eq!(local().check(&ipv4([192, 168, 1, 2], US, (false, 0))), Verdict::Pass);
    }

    #[test]
    fn fragments_are_dropped() {
        let l = local();
        let src = [10, 0, 2, 2];
        assert_eq!(l.check(&ipv4(src, US, (true, 0))), Verdict::Fragment);
        assert_eq!(l.check(&ipv4(src, US, (false, 8))), Verdict::Fragment);
        assert_eq!(l.check(&ipv4(src, US, (true, 1480))), Verdict::Fragment);
        // A martian fragment counts as a martian.
        assert!(martian(l.check(&ipv4([127, 0, 0, 1], US, (true, 0)))));
    }

    #[test]
    fn what_cannot_be_parsed_passes_to_smoltcp_which_drops_it() {
        let l = local();
        let f = ipv4([127, 0, 0, 1], US, (false, 0));
        for len in 0..f.len() {
            // Cut inside the IP header or its payload: new_checked fails (as in smoltcp).
            let v = l.check(&f[..len]);
            assert!(v == Verdict::Pass || martian(v), "{len}: {v:?}");
        }
        assert_eq!(l.check(&[]), Verdict::Pass);
        assert_eq!(l.check(&[0xff; 13]), Verdict::Pass);
        let mut other = f.clone();
        other[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(l.check(&other), Verdict::Pass);
    }

    #[test]
    fn the_subnet_broadcast_follows_the_prefix() {
        assert_eq!(Local::new(US, 24).subnet_broadcast(), Some(a([10, 0, 2, 255])));
        assert_eq!(Local::new(US, 16).subnet_broadcast(), Some(a([10, 0, 255, 255])));
        assert_eq!(Local::new(US, 31).subnet_broadcast(), None);
        assert_eq!(Local::new(US, 40).subnet_broadcast(), None);
        assert_eq!(Local::new(US, 0).subnet_broadcast(), Some(a([255, 255, 255, 255])));
    }
}
