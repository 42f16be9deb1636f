//! The container network's addresses, and the root router's published ports: destination
//! NAT from the wire to a container and back ([`Nat`]). Pure (it depends only on
//! `smoltcp::wire` and `alloc`), so it is unit-tested on the host (`mkimage/tests/kernel_net.rs`).
//!
//! **Addresses.** Namespace `n` is `192.168.1.n/24` on the container network with the MAC
//! `02:00:00:00:01:n` (locally administered, made from the id); the root (1) is `192.168.1.1`
//! there, with its NIC's MAC.
//!
//! **Published ports** (Docker's `-p`). A TCP or UDP packet from the wire to the wire
//! address's `HOSTPORT` that is published to `(n, PORT)` is rewritten in place
//! ([`Nat::inbound`]): destination `192.168.1.n:PORT`, Ethernet destination the container's
//! MAC and source ours; it goes to the bridge, never to the root's own stack. The container
//! answers its peer (the client's own address: the container sees who called, as behind
//! Docker's DNAT) through its default gateway, the root; the root's router gives every frame
//! from the bridge that is not for the root itself to [`Nat::outbound`], which rewrites those
//! from a published endpoint back (source the wire address and `HOSTPORT`, Ethernet
//! destination the peer's MAC as learnt from its packets in, or the gateway's for a peer off
//! the wire's subnet) and refuses the rest: there is no general forwarding or masquerading, so
//! a container reaches the root and other containers only.
//!
//! Checksums: a packet from the wire has its IPv4 and TCP/UDP checksums verified before it is
//! rewritten (refilled, a corrupted packet would otherwise come out valid) and dropped if they
//! are wrong, as smoltcp would; both are refilled after the rewrite (`smoltcp::wire`). Frames
//! from the bridge come from the kernel's own stacks and are only refilled.
//!
//! One host port per container endpoint: the way back is found from the container's
//! `(proto, address, port)`, so a second host port for the same endpoint is refused
//! ([`PublishError::EndpointTaken`]).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use smoltcp::wire::{
    ArpPacket, EthernetAddress, EthernetFrame, EthernetProtocol, IpAddress, IpProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket,
};

/// The container network: `192.168.1.0/24`.
pub const CONTAINER_NET: [u8; 4] = [192, 168, 1, 0];
pub const CONTAINER_PREFIX: u8 = 24;

/// Namespace `ns`'s address on the container network (`ns` is at most 64: `MAX_LIVE`).
pub fn container_ip(ns: u32) -> [u8; 4] {
    [192, 168, 1, ns as u8]
}

/// A container's MAC: `02:00:00:00:01:<ns>`.
pub fn container_mac(ns: u32) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, ns as u8]
}

/// Whether `a` is on the container network.
pub fn in_container_net(a: Ipv4Address) -> bool {
    a.octets()[..3] == CONTAINER_NET[..3]
}

/// TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: the wire's `host_port` is namespace `ns`'s `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub proto: Proto,
    pub host_port: u16,
    pub ns: u32,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// The host port is published already.
    HostPortTaken,
    /// The container's endpoint is published already (on another host port).
    EndpointTaken,
}

/// What [`Nat::inbound`] made of a frame from the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbound {
    /// Not for a published port: the root's stack takes it.
    Stack,
    /// Rewritten for namespace `ns`: give it to the bridge.
    Container(u32),
    /// For a published port, but its checksums are wrong: drop it.
    Drop,
}

/// The root router's translation state: the published ports, and the MACs to answer with.
pub struct Nat {
    wire_ip: Ipv4Address,
    wire_prefix: u8,
    mac: EthernetAddress,
    by_host: BTreeMap<(Proto, u16), (u32, u16)>,
    by_inside: BTreeMap<(Proto, u32, u16), u16>,
    /// Peers on the wire's subnet that sent to a published port: their MACs. At most one
    /// per address of the subnet.
    peers: BTreeMap<Ipv4Address, EthernetAddress>,
    /// The MAC that packets from off the subnet came from: the gateway's.
    gateway: Option<EthernetAddress>,
}

/// The (source port, destination port) of a TCP or UDP packet, if it parses.
fn ports(proto: Proto, l4: &[u8]) -> Option<(u16, u16)> {
    match proto {
        Proto::Tcp => TcpPacket::new_checked(l4).ok().map(|t| (t.src_port(), t.dst_port())),
        Proto::Udp => UdpPacket::new_checked(l4).ok().map(|u| (u.src_port(), u.dst_port())),
    }
}

fn proto_of(p: IpProtocol) -> Option<Proto> {
    match p {
        IpProtocol::Tcp => Some(Proto::Tcp),
        IpProtocol::Udp => Some(Proto::Udp),
        _ => None,
    }
}

fn verify(proto: Proto, l4: &[u8], src: Ipv4Address, dst: Ipv4Address) -> bool {
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    match proto {
        Proto::Tcp => TcpPacket::new_checked(l4).is_ok_and(|t| t.verify_checksum(&s, &d)),
        Proto::Udp => UdpPacket::new_checked(l4).is_ok_and(|u| u.verify_checksum(&s, &d)),
    }
}

/// Set the source or destination port of a TCP or UDP packet and refill its checksum.
fn set_port(
    proto: Proto,
    l4: &mut [u8],
    src: Option<u16>,
    dst: Option<u16>,
    ips: (Ipv4Address, Ipv4Address),
) {
    let (s, d) = (IpAddress::Ipv4(ips.0), IpAddress::Ipv4(ips.1));
    match proto {
        Proto::Tcp => {
            let Ok(mut t) = TcpPacket::new_checked(l4) else { return };
            if let Some(p) = src {
                t.set_src_port(p);
            }
            if let Some(p) = dst {
                t.set_dst_port(p);
            }
            t.fill_checksum(&s, &d);
        }
        Proto::Udp => {
            let Ok(mut u) = UdpPacket::new_checked(l4) else { return };
            if let Some(p) = src {
                u.set_src_port(p);
            }
            if let Some(p) = dst {
                u.set_dst_port(p);
            }
            u.fill_checksum(&s, &d);
        }
    }
}

/// Where a frame the root's stack sends goes: the bridge (an IPv4 destination or an ARP
/// target on the container network), or the wire.
pub fn to_bridge(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            Ipv4Packet::new_checked(eth.payload()).is_ok_and(|ip| in_container_net(ip.dst_addr()))
        }
        EthernetProtocol::Arp => ArpPacket::new_checked(eth.payload())
            .ok()
            .and_then(|a| <[u8; 4]>::try_from(a.target_protocol_addr()).ok())
            .is_some_and(|t| in_container_net(Ipv4Address::from(t))),
        _ => false,
    }
}

impl Nat {
    /// The router of the wire address `wire_ip/wire_prefix`, whose MAC is `mac`.
    pub fn new(wire_ip: [u8; 4], wire_prefix: u8, mac: [u8; 6]) -> Nat {
        Nat {
            wire_ip: Ipv4Address::from(wire_ip),
            wire_prefix: wire_prefix.min(32),
            mac: EthernetAddress(mac),
            by_host: BTreeMap::new(),
            by_inside: BTreeMap::new(),
            peers: BTreeMap::new(),
            gateway: None,
        }
    }

    /// Publish `p`.
    pub fn add(&mut self, p: Published) -> Result<(), PublishError> {
        if self.by_host.contains_key(&(p.proto, p.host_port)) {
            return Err(PublishError::HostPortTaken);
        }
        if self.by_inside.contains_key(&(p.proto, p.ns, p.port)) {
            return Err(PublishError::EndpointTaken);
        }
        self.by_host.insert((p.proto, p.host_port), (p.ns, p.port));
        self.by_inside.insert((p.proto, p.ns, p.port), p.host_port);
        Ok(())
    }

    /// Forget every port published to `ns`; what was freed.
    pub fn remove_ns(&mut self, ns: u32) -> Vec<Published> {
        let gone: Vec<Published> = self.list().filter(|p| p.ns == ns).collect();
        for p in &gone {
            self.by_host.remove(&(p.proto, p.host_port));
            self.by_inside.remove(&(p.proto, p.ns, p.port));
        }
        gone
    }

    /// Every published port, by protocol and host port.
    pub fn list(&self) -> impl Iterator<Item = Published> + '_ {
        self.by_host.iter().map(|(&(proto, host_port), &(ns, port))| Published {
            proto,
            host_port,
            ns,
            port,
        })
    }

    fn on_wire_subnet(&self, a: Ipv4Address) -> bool {
        let mask = u32::MAX.checked_shl(32 - u32::from(self.wire_prefix)).unwrap_or(0);
        u32::from(a) & mask == u32::from(self.wire_ip) & mask
    }

    /// Note that `ip`'s packets come from `mac` (the way back for [`Nat::outbound`]).
    fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        if !mac.is_unicast() {
            return;
        }
        if self.on_wire_subnet(ip) {
            self.peers.insert(ip, mac);
        } else {
            self.gateway = Some(mac);
        }
    }

    /// A frame from the wire: rewrite it for its container if it is a TCP or UDP packet to a
    /// published port of the wire address (see the module docs).
    pub fn inbound(&mut self, frame: &mut [u8]) -> Inbound {
        let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else { return Inbound::Stack };
        if eth.ethertype() != EthernetProtocol::Ipv4 || eth.dst_addr() != self.mac {
            return Inbound::Stack;
        }
        let src_mac = eth.src_addr();
        let (src, ns) = {
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
                return Inbound::Stack;
            };
            // (Fragments never come this far: the wire's filter drops them.)
            if ip.dst_addr() != self.wire_ip || ip.more_frags() || ip.frag_offset() != 0 {
                return Inbound::Stack;
            }
            let Some(proto) = proto_of(ip.next_header()) else { return Inbound::Stack };
            let Some((_, dport)) = ports(proto, ip.payload_mut()) else { return Inbound::Stack };
            let Some(&(ns, port)) = self.by_host.get(&(proto, dport)) else {
                return Inbound::Stack;
            };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if !ip.verify_checksum() || !verify(proto, ip.payload_mut(), src, dst) {
                return Inbound::Drop;
            }
            let inside = Ipv4Address::from(container_ip(ns));
            ip.set_dst_addr(inside);
            set_port(proto, ip.payload_mut(), None, Some(port), (src, inside));
            ip.fill_checksum();
            (src, ns)
        };
        eth.set_dst_addr(EthernetAddress(container_mac(ns)));
        eth.set_src_addr(self.mac);
        self.learn(src, src_mac);
        Inbound::Container(ns)
    }

    /// Whether a frame from the bridge is for the root's own stack: anything but an IPv4
    /// unicast to an address that is not the root's (192.168.1.1 or the wire address).
    pub fn for_root(&self, frame: &[u8]) -> bool {
        let Ok(eth) = EthernetFrame::new_checked(frame) else { return true };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return true;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return true };
        let dst = ip.dst_addr();
        dst == self.wire_ip
            || in_container_net(dst)
            || dst.is_broadcast()
            || dst.is_multicast()
            || dst.is_loopback()
    }

    /// A frame from the bridge to an address off the container network: rewrite it for the
    /// wire if it comes from a published endpoint (see the module docs). `false`: drop it.
    pub fn outbound(&self, frame: &mut [u8]) -> bool {
        let Ok(mut eth) = EthernetFrame::new_checked(&mut *frame) else { return false };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            return false;
        }
        let dst = {
            let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else { return false };
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if !in_container_net(src) || ip.more_frags() || ip.frag_offset() != 0 {
                return false;
            }
            let Some(proto) = proto_of(ip.next_header()) else { return false };
            let Some((sport, _)) = ports(proto, ip.payload_mut()) else { return false };
            let ns = u32::from(src.octets()[3]);
            let Some(&host_port) = self.by_inside.get(&(proto, ns, sport)) else {
                return false;
            };
            ip.set_src_addr(self.wire_ip);
            set_port(proto, ip.payload_mut(), Some(host_port), None, (self.wire_ip, dst));
            ip.fill_checksum();
            dst
        };
        let mac =
            if self.on_wire_subnet(dst) { self.peers.get(&dst).copied() } else { self.gateway };
        let Some(mac) = mac else { return false };
        eth.set_dst_addr(mac);
        eth.set_src_addr(self.mac);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{EthernetRepr, Ipv4Repr, TcpControl, TcpRepr, TcpSeqNumber, UdpRepr};

    const WIRE: [u8; 4] = [10, 0, 2, 15];
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const GW_MAC: [u8; 6] = [0x52, 0x55, 10, 0, 2, 2];
    const HOST: [u8; 4] = [10, 0, 2, 2];

    fn a(b: [u8; 4]) -> Ipv4Address {
        Ipv4Address::from(b)
    }

    /// An Ethernet frame with a TCP SYN (and 5 bytes of data) or a UDP datagram.
    fn packet(
        proto: Proto,
        macs: ([u8; 6], [u8; 6]),
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
    ) -> Vec<u8> {
        let data = b"hello";
        let (s, d) = (IpAddress::Ipv4(a(src.0)), IpAddress::Ipv4(a(dst.0)));
        let caps = ChecksumCapabilities::default();
        let l4_len = match proto {
            Proto::Tcp => 20 + data.len(),
            Proto::Udp => 8 + data.len(),
        };
        let mut buf = vec![0u8; 14 + 20 + l4_len];
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress(macs.0),
            dst_addr: EthernetAddress(macs.1),
            ethertype: EthernetProtocol::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        Ipv4Repr {
            src_addr: a(src.0),
            dst_addr: a(dst.0),
            next_header: match proto {
                Proto::Tcp => IpProtocol::Tcp,
                Proto::Udp => IpProtocol::Udp,
            },
            payload_len: l4_len,
            hop_limit: 64,
        }
        .emit(&mut ip, &caps);
        match proto {
            Proto::Tcp => {
                let repr = TcpRepr {
                    src_port: src.1,
                    dst_port: dst.1,
                    control: TcpControl::Syn,
                    seq_number: TcpSeqNumber(1000),
                    ack_number: None,
                    window_len: 1024,
                    window_scale: None,
                    max_seg_size: None,
                    sack_permitted: false,
                    sack_ranges: [None; 3],
                    timestamp: None,
                    payload: data,
                };
                repr.emit(&mut TcpPacket::new_unchecked(ip.payload_mut()), &s, &d, &caps);
            }
            Proto::Udp => {
                let repr = UdpRepr { src_port: src.1, dst_port: dst.1 };
                let mut u = UdpPacket::new_unchecked(ip.payload_mut());
                repr.emit(&mut u, &s, &d, data.len(), |p| p.copy_from_slice(data), &caps);
            }
        }
        buf
    }

    /// An IPv4 address and a port.
    type Ep = ([u8; 4], u16);

    /// (Ethernet src, dst, IPv4 src, dst, ports) of a frame whose checksums all verify.
    fn parse(proto: Proto, f: &[u8]) -> ([u8; 6], [u8; 6], Ep, Ep) {
        let eth = EthernetFrame::new_checked(f).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum(), "IPv4 checksum");
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        assert!(verify(proto, ip.payload(), src, dst), "{proto:?} checksum");
        let (sp, dp) = ports(proto, ip.payload()).unwrap();
        (eth.src_addr().0, eth.dst_addr().0, (src.octets(), sp), (dst.octets(), dp))
    }

    fn nat() -> Nat {
        let mut n = Nat::new(WIRE, 24, MAC);
        n.add(Published { proto: Proto::Tcp, host_port: 8081, ns: 2, port: 80 }).unwrap();
        n.add(Published { proto: Proto::Udp, host_port: 8081, ns: 3, port: 7 }).unwrap();
        n
    }

    #[test]
    fn a_published_port_goes_to_its_container_and_back() {
        for (proto, ns, port) in [(Proto::Tcp, 2, 80), (Proto::Udp, 3, 7)] {
            let mut n = nat();
            let mut f = packet(proto, (GW_MAC, MAC), (HOST, 40000), (WIRE, 8081));
            assert_eq!(n.inbound(&mut f), Inbound::Container(ns));
            let (smac, dmac, src, dst) = parse(proto, &f);
            assert_eq!((smac, dmac), (MAC, container_mac(ns)));
            assert_eq!((src, dst), ((HOST, 40000), (container_ip(ns), port)));
            // The answer, as the container's stack sends it to its gateway (the root).
            let mut r =
                packet(proto, (container_mac(ns), MAC), (container_ip(ns), port), (HOST, 40000));
            assert!(!n.for_root(&r));
            assert!(n.outbound(&mut r));
            let (smac, dmac, src, dst) = parse(proto, &r);
            assert_eq!((smac, dmac), (MAC, GW_MAC));
            assert_eq!((src, dst), ((WIRE, 8081), (HOST, 40000)));
        }
    }

    #[test]
    fn a_peer_off_the_subnet_is_answered_through_the_gateway() {
        let mut n = nat();
        let far = [198, 51, 100, 7];
        let mut f = packet(Proto::Tcp, (GW_MAC, MAC), (far, 5555), (WIRE, 8081));
        assert_eq!(n.inbound(&mut f), Inbound::Container(2));
        let mut r = packet(Proto::Tcp, (container_mac(2), MAC), (container_ip(2), 80), (far, 5555));
        assert!(n.outbound(&mut r));
        assert_eq!(parse(Proto::Tcp, &r).1, GW_MAC);
        // A peer on the subnet nobody has heard from has no way back.
        let mut r =
            packet(Proto::Tcp, (container_mac(2), MAC), (container_ip(2), 80), ([10, 0, 2, 9], 1));
        assert!(!n.outbound(&mut r));
    }

    #[test]
    fn other_traffic_is_left_to_the_root_or_refused() {
        let mut n = nat();
        // Not published, another protocol's port, another address: the root's stack's.
        for (proto, dst) in [
            (Proto::Tcp, (WIRE, 80)),
            (Proto::Udp, (WIRE, 80)),
            (Proto::Tcp, ([10, 0, 2, 16], 8081)),
        ] {
            let mut f = packet(proto, (GW_MAC, MAC), (HOST, 1), dst);
            let before = f.clone();
            assert_eq!(n.inbound(&mut f), Inbound::Stack, "{proto:?} {dst:?}");
            assert_eq!(f, before, "changed");
        }
        // Another MAC: not ours to translate.
        let mut f = packet(Proto::Tcp, (GW_MAC, GW_MAC), (HOST, 1), (WIRE, 8081));
        assert_eq!(n.inbound(&mut f), Inbound::Stack);
        // A wrong checksum is dropped, not made right.
        let mut f = packet(Proto::Tcp, (GW_MAC, MAC), (HOST, 1), (WIRE, 8081));
        let last = f.len() - 1;
        f[last] ^= 0xff;
        assert_eq!(n.inbound(&mut f), Inbound::Drop);
        // Truncated frames are not translated.
        let f = packet(Proto::Tcp, (GW_MAC, MAC), (HOST, 1), (WIRE, 8081));
        for len in 0..14 + 20 + 20 {
            let mut cut = f[..len].to_vec();
            assert_ne!(n.inbound(&mut cut), Inbound::Container(2), "{len}");
        }
        // From a container: to the root or another container is the root's; elsewhere only
        // from a published endpoint.
        let c2 = (container_mac(2), MAC);
        assert!(n.for_root(&packet(Proto::Tcp, c2, (container_ip(2), 80), ([192, 168, 1, 1], 9))));
        assert!(n.for_root(&packet(Proto::Tcp, c2, (container_ip(2), 80), (WIRE, 9))));
        assert!(n.for_root(&packet(Proto::Udp, c2, (container_ip(2), 9), ([255; 4], 9))));
        let mut unpublished = packet(Proto::Tcp, c2, (container_ip(2), 81), (HOST, 9));
        assert!(!n.outbound(&mut unpublished));
        let mut other =
            packet(Proto::Tcp, (container_mac(4), MAC), (container_ip(4), 80), (HOST, 9));
        assert!(!n.outbound(&mut other));
    }

    #[test]
    fn publishing_and_forgetting() {
        let mut n = nat();
        let p = |proto, host_port, ns, port| Published { proto, host_port, ns, port };
        assert_eq!(n.add(p(Proto::Tcp, 8081, 4, 80)), Err(PublishError::HostPortTaken));
        assert_eq!(n.add(p(Proto::Tcp, 8082, 2, 80)), Err(PublishError::EndpointTaken));
        assert_eq!(n.add(p(Proto::Tcp, 8082, 2, 81)), Ok(()));
        assert_eq!(n.remove_ns(2).len(), 2);
        assert_eq!(n.list().collect::<Vec<_>>(), vec![p(Proto::Udp, 8081, 3, 7)]);
        assert_eq!(n.add(p(Proto::Tcp, 8081, 4, 80)), Ok(()));
        let mut f = packet(Proto::Tcp, (GW_MAC, MAC), (HOST, 1), (WIRE, 8081));
        assert_eq!(n.inbound(&mut f), Inbound::Container(4));
    }

    #[test]
    fn the_root_routes_the_container_network_to_the_bridge() {
        let to = |dst| packet(Proto::Tcp, (MAC, GW_MAC), (WIRE, 1), (dst, 80));
        assert!(to_bridge(&to([192, 168, 1, 5])));
        assert!(!to_bridge(&to(HOST)));
        assert!(!to_bridge(&to([192, 168, 2, 5])));
        assert!(!to_bridge(&[0u8; 10]));
    }
}
