//! UDP port forwards into a guest on restricted user networking: one relay carries any number
//! of them, each from a host port to a guest port.
//!
//! libslirp drops every UDP datagram the guest sends when `restrict=on`, except to its own DHCP
//! and TFTP servers (`udp_input` checks `slirp->restricted` before it even looks for the
//! forward's socket). So `hostfwd=udp:` would deliver to the guest, but the replies would never
//! come back. This relay takes its place, on this machine's loopback only:
//!
//! ```text
//!  client ──UDP──▶ 127.0.0.1:host_port ─┐              slirp ── e1000 #1 ─┐  (TCP forwards, ARP)
//!  (one socket per forward)              relay ══frames══════ e1000 #2 ─┴─ guest  (UDP only)
//!  client ◀─UDP── 127.0.0.1:host_port ◀─┘  (unix datagram socket, `-netdev dgram`)
//! ```
//!
//! QEMU gives the guest a second NIC (same MAC) whose other end is a unix datagram socket
//! carrying raw Ethernet frames to and from this relay ([`crate::qemu::FramePort`],
//! [`crate::qemu::Attach::UdpNic`]); the kernel sends its UDP through that NIC and everything
//! else through the first, so the relay sees UDP only and TCP pays nothing for it. A datagram
//! from a host client becomes an IPv4/UDP frame from the gateway (10.0.2.2, at slirp's MAC, on
//! a port the relay picks for that client and forward) to the forward's `guest_port`. A UDP
//! datagram from that `guest_port` to one of those gateway ports goes back to its client from
//! the forward's `host_port`, like a reply through a NAT. A client that talks to two forwards
//! gets a gateway port for each, so two forwards to the same guest port keep their replies
//! apart.
//!
//! The guest has no IP fragmentation, so a datagram that does not fit one Ethernet frame
//! (more than [`MAX_PAYLOAD`] bytes) is dropped, as a router would on a path that cannot
//! fragment. Frames are built and parsed with smoltcp's `wire` module, the same crate the
//! kernel's stack is built on.
//!
//! The relay's end is a [`FrameTap`]: the raw-frame socket alone, which a test can also use
//! directly, attached to the first NIC's segment through a QEMU hub
//! ([`crate::qemu::Attach::Hub`]), to put any frame on the guest's wire and read every frame
//! the guest sends (`mkimage/tests/frames.rs` sends it hostile ones).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::console::TempDir;
use crate::qemu::{Attach, FramePort, GUEST_MAC};

/// The guest's default IPv4 address (the kernel's `ip=`); its MAC is [`GUEST_MAC`].
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// Slirp's gateway: its address, and the MAC slirp answers ARP with.
pub const GATEWAY_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// The largest UDP payload in one 1500-byte Ethernet frame (1500 - 20 IPv4 - 8 UDP).
pub const MAX_PAYLOAD: usize = 1472;
const ETH_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Clients remembered at once; the oldest is forgotten first (its late replies are dropped).
const MAX_CLIENTS: usize = 4096;
/// Gateway-side ports handed to clients: the dynamic range.
const FIRST_PORT: u16 = 49152;

/// The host's end of a [`FramePort`]: a unix datagram socket that exchanges raw Ethernet
/// frames with QEMU, one frame a datagram. Whatever is sent arrives at the guest's NIC as if
/// from the wire; what the guest sends on that segment arrives here (on a hub, every frame,
/// also copied to slirp). Frames this end does not read wait in the socket's queue; once it
/// is full, QEMU drops the rest for this port only (the guest's traffic to slirp goes on).
pub struct FrameTap {
    port: FramePort,
    sock: UnixDatagram,
    _dir: TempDir,
}

/// How long [`FrameTap::send`] may wait for QEMU to take a frame: QEMU stops reading while
/// the guest's receive ring is full, so a guest that stopped receiving makes it fail.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

impl FrameTap {
    /// A new socket in a fresh directory; QEMU must be started with [`FrameTap::frame_port`]
    /// afterwards.
    pub fn open() -> io::Result<FrameTap> {
        let dir = TempDir::new("mkimage-frames").map_err(io::Error::other)?;
        let port = FramePort {
            qemu: dir.path().join("qemu.sock"),
            peer: dir.path().join("peer.sock"),
            attach: Attach::Hub,
        };
        let sock = UnixDatagram::bind(&port.peer)?;
        sock.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(FrameTap { port, sock, _dir: dir })
    }

    /// The sockets QEMU's frame port uses to reach this tap, on the first NIC's hub.
    pub fn frame_port(&self) -> FramePort {
        self.port.clone()
    }

    /// Put `frame` on the guest's wire. Blocks while QEMU's queue toward the guest is full (so
    /// a flood goes at the guest's pace), up to a timeout.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.sock.send_to(frame, &self.port.qemu).map(drop)
    }

    /// The next frame the guest (or anything else on its segment) sent, waiting up to `timeout`;
    /// `None` when none came.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        self.sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.sock.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Another handle on the same socket (one thread sends while another receives).
    pub fn try_clone(&self) -> io::Result<UnixDatagram> {
        self.sock.try_clone()
    }
}

/// One UDP forward: datagrams to `127.0.0.1:host_port` reach the guest's `guest_port`, and its
/// replies come back from `host_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpForward {
    pub host_port: u16,
    pub guest_port: u16,
}

impl UdpForward {
    pub fn new(host_port: u16, guest_port: u16) -> UdpForward {
        UdpForward { host_port, guest_port }
    }
}

/// A running relay: a thread serving one host UDP port per forward. Dropping it stops the
/// thread.
pub struct UdpRelay {
    host_ports: Vec<u16>,
    tap: FrameTap,
    /// Frames the guest sent that reached the relay, and those of them that were not IPv4/UDP
    /// (on its own NIC, none should be: the TCP path does not pass here).
    seen: Arc<(AtomicU64, AtomicU64)>,
    stop: UnixDatagram,
    thread: Option<JoinHandle<()>>,
}

impl UdpRelay {
    /// Listen on `127.0.0.1:host_port` (0: any free port) and forward to the guest's
    /// `guest_port`. QEMU must be started with [`UdpRelay::frame_port`] afterwards.
    pub fn start(host_port: u16, guest_port: u16) -> io::Result<UdpRelay> {
        UdpRelay::start_many(&[UdpForward::new(host_port, guest_port)])
    }

    /// [`UdpRelay::start`] for every forward of `forwards` (at least one), through one frame
    /// port and one thread. A host port that cannot be bound fails the whole start, naming it.
    pub fn start_many(forwards: &[UdpForward]) -> io::Result<UdpRelay> {
        if forwards.is_empty() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a relay without forwards"));
        }
        let tap = FrameTap::open()?;
        let wire = tap.try_clone()?;
        let mut hosts = Vec::with_capacity(forwards.len());
        for f in forwards {
            let host = UdpSocket::bind((Ipv4Addr::LOCALHOST, f.host_port)).map_err(|e| {
                io::Error::new(e.kind(), format!("UDP 127.0.0.1:{}: {e}", f.host_port))
            })?;
            host.set_nonblocking(true)?;
            hosts.push(host);
        }
        // The thread waits in poll(2) only: a full queue on either side drops a datagram, as a
        // congested link would, instead of stalling the other direction. (The tap's socket
        // is this one: it is not used blocking by anyone else.)
        wire.set_nonblocking(true)?;
        let host_ports =
            hosts.iter().map(|h| h.local_addr().map(|a| a.port())).collect::<io::Result<_>>()?;
        let (stop, stopped) = UnixDatagram::pair()?;
        let mut relay = Relay::new(forwards.iter().map(|f| f.guest_port).collect());
        let qemu = tap.port.qemu.clone();
        let name = format!("udp-relay-{}", forwards.len());
        let seen = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let counts = seen.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || relay.serve(&hosts, &wire, &qemu, &stopped, &counts))?;
        Ok(UdpRelay { host_ports, tap, seen, stop, thread: Some(thread) })
    }

    /// The host port clients send to (the first forward's).
    pub fn host_port(&self) -> u16 {
        self.host_ports[0]
    }

    /// The host port of each forward, in the order given to [`UdpRelay::start_many`] (the
    /// ports picked when 0 was given).
    pub fn host_ports(&self) -> &[u16] {
        &self.host_ports
    }

    /// Frames from the guest seen so far, and how many of them were not IPv4/UDP.
    pub fn frames_seen(&self) -> (u64, u64) {
        (self.seen.0.load(Ordering::Relaxed), self.seen.1.load(Ordering::Relaxed))
    }

    /// The sockets QEMU's frame port uses to reach this relay: on a NIC of its own, which
    /// the guest uses for UDP only.
    pub fn frame_port(&self) -> FramePort {
        FramePort { attach: Attach::UdpNic, ..self.tap.frame_port() }
    }
}

impl Drop for UdpRelay {
    fn drop(&mut self) {
        let _ = self.stop.send(&[1]);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A client of one forward: the forward's index and the client's address.
type Client = (usize, SocketAddr);

/// The relay's state: the guest port of each forward, and which gateway-side port stands for
/// which client of which forward.
pub struct Relay {
    guest_ports: Vec<u16>,
    by_client: HashMap<Client, u16>,
    by_port: HashMap<u16, Client>,
    /// Clients in the order they were first seen, for forgetting the oldest.
    order: VecDeque<Client>,
    next_port: u16,
}

impl Relay {
    /// Forward `i` goes to `guest_ports[i]`.
    pub fn new(guest_ports: Vec<u16>) -> Relay {
        Relay {
            guest_ports,
            by_client: HashMap::new(),
            by_port: HashMap::new(),
            order: VecDeque::new(),
            next_port: FIRST_PORT,
        }
    }

    /// The gateway-side port that stands for `client`, handing out a new one if needed.
    fn port_for(&mut self, client: Client) -> u16 {
        if let Some(&p) = self.by_client.get(&client) {
            return p;
        }
        if self.order.len() >= MAX_CLIENTS {
            if let Some(old) = self.order.pop_front() {
                if let Some(p) = self.by_client.remove(&old) {
                    self.by_port.remove(&p);
                }
            }
        }
        // MAX_CLIENTS is far below the range's size, so a free port is always found.
        while self.by_port.contains_key(&self.next_port) {
            self.advance();
        }
        let p = self.next_port;
        self.advance();
        self.by_client.insert(client, p);
        self.by_port.insert(p, client);
        self.order.push_back(client);
        p
    }

    fn advance(&mut self) {
        self.next_port = if self.next_port == u16::MAX { FIRST_PORT } else { self.next_port + 1 };
    }

    /// The Ethernet frame that carries `payload` from `client` of forward `forward` to the
    /// guest, or `None` when it does not fit in one frame (or there is no such forward).
    pub fn to_guest(
        &mut self,
        forward: usize,
        client: SocketAddr,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        let guest_port = *self.guest_ports.get(forward)?;
        if payload.len() > MAX_PAYLOAD {
            return None;
        }
        let src_port = self.port_for((forward, client));
        Some(udp_frame(
            (GATEWAY_MAC, GATEWAY_IP, src_port),
            (GUEST_MAC, GUEST_IP, guest_port),
            payload,
        ))
    }

    /// If `frame` is a reply from the guest's service to a client, the forward it goes back
    /// through, that client and the payload. Everything else seen here (TCP, ARP,
    /// slirp's own frames, malformed frames, a datagram from another guest port than the
    /// client's forward's) is `None`.
    pub fn from_guest<'a>(&self, frame: &'a [u8]) -> Option<(usize, SocketAddr, &'a [u8])> {
        let (src, dst, payload) = parse_udp(frame)?;
        if src.0 != GUEST_IP || dst.0 != GATEWAY_IP {
            return None;
        }
        let &(forward, client) = self.by_port.get(&dst.1)?;
        (src.1 == self.guest_ports[forward]).then_some((forward, client, payload))
    }

    /// The relay thread: waits on the host sockets (`hosts[i]` is forward `i`'s), the frame
    /// socket and the stop signal; counts the guest's frames in `seen` (all, not UDP).
    fn serve(
        &mut self,
        hosts: &[UdpSocket],
        wire: &UnixDatagram,
        qemu: &Path,
        stop: &UnixDatagram,
        seen: &(AtomicU64, AtomicU64),
    ) {
        let mut buf = vec![0u8; 65536];
        let (wire_at, stop_at) = (hosts.len(), hosts.len() + 1);
        let mut fds: Vec<libc::pollfd> = hosts
            .iter()
            .map(AsRawFd::as_raw_fd)
            .chain([wire.as_raw_fd(), stop.as_raw_fd()])
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        let mut warned = false;
        loop {
            // SAFETY: `fds` is a valid array of pollfd for its whole length during the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
            if n < 0 {
                if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return;
            }
            if fds[stop_at].revents != 0 {
                return;
            }
            for (forward, host) in hosts.iter().enumerate() {
                if fds[forward].revents == 0 {
                    continue;
                }
                if let Ok((len, client)) = host.recv_from(&mut buf) {
                    match self.to_guest(forward, client, &buf[..len]) {
                        // Before QEMU binds its socket, or after it exits, the frame is lost,
                        // as a datagram may be.
                        Some(frame) => drop(wire.send_to(&frame, qemu)),
                        None if !warned => {
                            warned = true;
                            eprintln!(
                                "udp relay: dropping datagrams over {MAX_PAYLOAD} bytes \
                                 (the guest does not reassemble IP fragments)"
                            );
                        }
                        None => {}
                    }
                }
            }
            if fds[wire_at].revents != 0 {
                if let Ok(len) = wire.recv(&mut buf) {
                    seen.0.fetch_add(1, Ordering::Relaxed);
                    if !is_ipv4_udp(&buf[..len]) {
                        seen.1.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some((forward, client, payload)) = self.from_guest(&buf[..len]) {
                        let _ = hosts[forward].send_to(payload, client);
                    }
                }
            }
        }
    }
}

type Endpoint = (Ipv4Addr, u16);

/// An IPv4 frame carrying UDP, by its Ethernet type and IP protocol alone.
fn is_ipv4_udp(frame: &[u8]) -> bool {
    EthernetFrame::new_checked(frame).is_ok_and(|e| {
        e.ethertype() == EthernetProtocol::Ipv4
            && Ipv4Packet::new_checked(e.payload())
                .is_ok_and(|ip| ip.next_header() == IpProtocol::Udp)
    })
}

/// An Ethernet frame carrying one IPv4/UDP datagram, checksums filled in.
pub fn udp_frame(
    (src_mac, src_ip, src_port): ([u8; 6], Ipv4Addr, u16),
    (dst_mac, dst_ip, dst_port): ([u8; 6], Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let udp = UdpRepr { src_port, dst_port };
    let ip = Ipv4Repr {
        src_addr: src_ip,
        dst_addr: dst_ip,
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER + payload.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; ETH_HEADER + IPV4_HEADER + UDP_HEADER + payload.len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    let mut datagram = UdpPacket::new_unchecked(packet.payload_mut());
    udp.emit(
        &mut datagram,
        &src_ip.into(),
        &dst_ip.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &caps,
    );
    buf
}

/// Source, destination and payload of an Ethernet frame holding a valid IPv4/UDP datagram
/// (header lengths and checksums checked), or `None`.
pub fn parse_udp(frame: &[u8]) -> Option<(Endpoint, Endpoint, &[u8])> {
    let caps = ChecksumCapabilities::default();
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let packet = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv4Repr::parse(&packet, &caps).ok()?;
    if ip.next_header != IpProtocol::Udp {
        return None;
    }
    let datagram = UdpPacket::new_checked(packet.payload()).ok()?;
    let udp = UdpRepr::parse(&datagram, &ip.src_addr.into(), &ip.dst_addr.into(), &caps).ok()?;
    // smoltcp's addresses are `core::net` ones.
    Some(((ip.src_addr, udp.src_port), (ip.dst_addr, udp.dst_port), datagram.payload()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    /// What the guest would send back: the same payload, from its port to the frame's source.
    fn reply_to(frame: &[u8], payload: &[u8]) -> Vec<u8> {
        let (src, dst, _) = parse_udp(frame).expect("a UDP frame");
        udp_frame((GUEST_MAC, dst.0, dst.1), (GATEWAY_MAC, src.0, src.1), payload)
    }

    #[test]
    fn frames_round_trip_through_the_parser() {
        let payload: Vec<u8> = (0..=255).collect();
        let f = udp_frame((GATEWAY_MAC, GATEWAY_IP, 50000), (GUEST_MAC, GUEST_IP, 7), &payload);
        assert_eq!(f.len(), 14 + 20 + 8 + 256);
        assert_eq!(&f[0..6], &GUEST_MAC);
        let (src, dst, p) = parse_udp(&f).unwrap();
        assert_eq!((src, dst, p), ((GATEWAY_IP, 50000), (GUEST_IP, 7), &payload[..]));
    }

    #[test]
    fn corrupt_frames_are_ignored() {
        let f = udp_frame((GATEWAY_MAC, GATEWAY_IP, 50000), (GUEST_MAC, GUEST_IP, 7), b"hello");
        for i in 14..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x40;
            if let Some((_, _, p)) = parse_udp(&bad) {
                // A flipped bit survives only where no checksum covers it: the TOS byte is
                // covered by the IPv4 checksum, so nothing should get through.
                panic!("byte {i} flipped, still parsed as {p:?}");
            }
        }
        for len in 0..f.len() {
            let _ = parse_udp(&f[..len]); // never panics on a short frame
        }
        assert!(parse_udp(&[0u8; 60]).is_none());
    }

    #[test]
    fn replies_go_back_to_their_own_client() {
        let mut r = Relay::new(vec![7]);
        let (a, b) = (client(40000), client(40001));
        let fa = r.to_guest(0, a, b"from a").unwrap();
        let fb = r.to_guest(0, b, b"from b").unwrap();
        // The same client keeps its port; different clients get different ones.
        assert_eq!(
            parse_udp(&r.to_guest(0, a, b"again").unwrap()).unwrap().0,
            parse_udp(&fa).unwrap().0
        );
        assert_ne!(parse_udp(&fa).unwrap().0, parse_udp(&fb).unwrap().0);
        assert_eq!(r.from_guest(&reply_to(&fb, b"to b")), Some((0, b, &b"to b"[..])));
        assert_eq!(r.from_guest(&reply_to(&fa, b"to a")), Some((0, a, &b"to a"[..])));
    }

    /// Several forwards: each datagram goes to its forward's guest port, and each reply back
    /// through the forward its client used, even when two forwards share a guest port or one
    /// client uses two forwards.
    #[test]
    fn each_forward_keeps_its_guest_port_and_its_clients() {
        let mut r = Relay::new(vec![7, 8081, 8082, 7]);
        let a = client(40000);
        let frames: Vec<Vec<u8>> = (0..4).map(|i| r.to_guest(i, a, b"x").unwrap()).collect();
        let dst_ports: Vec<u16> = frames.iter().map(|f| parse_udp(f).unwrap().1 .1).collect();
        assert_eq!(dst_ports, [7, 8081, 8082, 7]);
        let mut src_ports: Vec<u16> = frames.iter().map(|f| parse_udp(f).unwrap().0 .1).collect();
        src_ports.sort_unstable();
        src_ports.dedup();
        assert_eq!(src_ports.len(), 4, "one gateway port per (forward, client)");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(r.from_guest(&reply_to(f, b"back")), Some((i, a, &b"back"[..])));
        }
        // A reply from another guest port than the forward's is not that forward's.
        let (src, _, _) = parse_udp(&frames[1]).unwrap();
        let wrong = udp_frame((GUEST_MAC, GUEST_IP, 8082), (GATEWAY_MAC, src.0, src.1), b"x");
        assert_eq!(r.from_guest(&wrong), None);
        assert!(r.to_guest(4, a, b"x").is_none(), "no such forward");
    }

    #[test]
    fn other_traffic_is_not_relayed() {
        let mut r = Relay::new(vec![7]);
        let f = r.to_guest(0, client(40000), b"x").unwrap();
        let (src, _, _) = parse_udp(&f).unwrap();
        // From another guest port, to an unknown port, or our own frame seen again on the hub.
        let other_port = udp_frame((GUEST_MAC, GUEST_IP, 8), (GATEWAY_MAC, src.0, src.1), b"x");
        let unknown = udp_frame((GUEST_MAC, GUEST_IP, 7), (GATEWAY_MAC, GATEWAY_IP, 1234), b"x");
        assert_eq!(r.from_guest(&other_port), None);
        assert_eq!(r.from_guest(&unknown), None);
        assert_eq!(r.from_guest(&f), None);
    }

    #[test]
    fn oversized_datagrams_are_dropped() {
        let mut r = Relay::new(vec![7]);
        assert!(r.to_guest(0, client(1), &[0; MAX_PAYLOAD]).is_some());
        assert!(r.to_guest(0, client(1), &[0; MAX_PAYLOAD + 1]).is_none());
        let f = r.to_guest(0, client(1), &[0; MAX_PAYLOAD]).unwrap();
        assert_eq!(f.len(), 1514, "a full Ethernet frame without its FCS");
    }

    #[test]
    fn the_oldest_client_is_forgotten_first() {
        let mut r = Relay::new(vec![7]);
        let first = r.to_guest(0, client(1), b"x").unwrap();
        for i in 0..MAX_CLIENTS as u16 {
            r.to_guest(0, client(1000 + i), b"x").unwrap();
        }
        assert_eq!(r.by_port.len(), MAX_CLIENTS);
        assert_eq!(r.from_guest(&reply_to(&first, b"late")), None);
    }

    /// The tap alone, with this test playing QEMU: frames go both ways unchanged, and a quiet
    /// wire is `None` after the timeout.
    #[test]
    fn a_tap_exchanges_raw_frames() {
        let tap = FrameTap::open().unwrap();
        let fp = tap.frame_port();
        let qemu = UnixDatagram::bind(&fp.qemu).unwrap();
        qemu.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let frame: Vec<u8> = (0..77).collect();
        tap.send(&frame).unwrap();
        let mut buf = [0u8; 2048];
        let n = qemu.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &frame[..]);
        qemu.send_to(&[1, 2, 3], &fp.peer).unwrap();
        assert_eq!(tap.recv(&mut buf, Duration::from_secs(10)).unwrap(), Some(3));
        assert_eq!(&buf[..3], &[1, 2, 3]);
        assert_eq!(tap.recv(&mut buf, Duration::from_millis(10)).unwrap(), None);
    }

    /// The whole thread, with this test playing QEMU on the frame socket.
    #[test]
    fn relay_thread_forwards_both_ways() {
        let relay = UdpRelay::start(0, 7).unwrap();
        let fp = relay.frame_port();
        let qemu = UnixDatagram::bind(&fp.qemu).unwrap();
        let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        qemu.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        c.send_to(b"ping", (Ipv4Addr::LOCALHOST, relay.host_port())).unwrap();
        let mut buf = [0u8; 2048];
        let n = qemu.recv(&mut buf).unwrap();
        let (src, dst, p) = parse_udp(&buf[..n]).unwrap();
        assert_eq!((dst, p), ((GUEST_IP, 7), &b"ping"[..]));
        qemu.send_to(&reply_to(&buf[..n], b"pong"), &fp.peer).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.port()), (&b"pong"[..], relay.host_port()));
        assert_eq!(src.0, GATEWAY_IP);
        drop(relay); // joins the thread: a hang here fails the test by timeout
    }

    /// The thread with several forwards, this test playing QEMU: each host port reaches its
    /// guest port, and each reply leaves from the host port its client sent to.
    #[test]
    fn relay_thread_serves_several_forwards() {
        let forwards = [UdpForward::new(0, 7), UdpForward::new(0, 8081), UdpForward::new(0, 8082)];
        let relay = UdpRelay::start_many(&forwards).unwrap();
        let ports = relay.host_ports().to_vec();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&p| p != 0));
        assert_eq!(relay.host_port(), ports[0]);
        let fp = relay.frame_port();
        let qemu = UnixDatagram::bind(&fp.qemu).unwrap();
        qemu.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let c = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 2048];
        // In reverse order, so that an index mix-up would show.
        for (i, f) in forwards.iter().enumerate().rev() {
            let msg = format!("to {i}");
            c.send_to(msg.as_bytes(), (Ipv4Addr::LOCALHOST, ports[i])).unwrap();
            let n = qemu.recv(&mut buf).unwrap();
            let (_, dst, p) = parse_udp(&buf[..n]).unwrap();
            assert_eq!((dst, p), ((GUEST_IP, f.guest_port), msg.as_bytes()));
            qemu.send_to(&reply_to(&buf[..n], b"pong"), &fp.peer).unwrap();
            let (n, from) = c.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from.port()), (&b"pong"[..], ports[i]));
        }
        drop(relay);
    }

    #[test]
    fn a_taken_host_port_is_named() {
        let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let forwards = [UdpForward::new(0, 7), UdpForward::new(port, 8081)];
        let err = UdpRelay::start_many(&forwards).err().expect("the port is taken");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")), "{err}");
        assert!(UdpRelay::start_many(&[]).is_err());
    }
}
