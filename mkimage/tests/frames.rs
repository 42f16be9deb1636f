//! Hostile Ethernet frames on the guest's wire. The guest's NIC sits on a QEMU hub with slirp
//! and a [`FrameTap`] (the raw-frame socket the UDP relay uses), so this test can put any
//! frame on the wire and read every frame the guest sends. httpd is started at the shell and
//! reached by real clients through slirp's forwarded port, as in `httpd.rs`.
//!
//! - Martians: frames from the wire claiming a loopback source or destination, the guest's own
//!   address as source, or a broadcast, multicast or zero source, must be dropped by the NIC
//!   device's receive filter: a SYN from 127.0.0.1 to 127.0.0.1:80 leaves no SYN_RECV entry, an
//!   ARP packet cannot map 127.0.0.1 or the guest's own address to a stranger's MAC (the
//!   guest's own loopback then still works and never leaks onto the wire), and the kernel
//!   reports the drops.
//! - A flood: thousands of malformed frames (truncated headers, bad lengths, IHL and data
//!   offsets, odd TCP options, IP fragments, ARP floods, random bytes) with thousands of spoofed
//!   SYNs to port 80 among them; afterwards a real client gets its page at once (before its
//!   first SYN would be retransmitted), the half-open connections the flood left stay within
//!   the listener's SYN queue, and the kernel printed no panic.
//!
//! - Checksums: a SYN with a wrong IPv4 or TCP checksum is dropped (the root's stack leaves
//!   checksums to the NIC's layer, which verifies what the E1000 did not), and every IPv4,
//!   TCP and UDP checksum the guest puts on the wire (inserted by the E1000: transmit offload)
//!   is right, in every test here.
//!
//! Everything is seeded: a failure replays with the same frames.

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{free_port, image_with_programs, kernel, ok, BOOT, STEP};
use mkimage::console::{Console, Settings, TempDir};
use mkimage::qemu::{HostForward, Network, Options, Outcome, GUEST_MAC};
use mkimage::udprelay::{udp_frame, FrameTap, GUEST_IP};

/// How long a real client may take to get its page after the flood: less than slirp's first
/// SYN retransmission (3 s), so its first SYN must get in. (Before the SYN queue, a minute:
/// its SYNs were dropped while the flood's half-open connections filled the backlog.)
const CLIENT_DEADLINE: Duration = Duration::from_millis(2500);
/// httpd's listen backlog (`user/src/bin/httpd.rs`), which is also the size of its SYN queue
/// (`kernel/src/net/listen.rs`).
const HTTPD_BACKLOG: usize = 64;

// ---- frames, built by hand where they must be wrong ----

/// A MAC of our own (locally administered) for the frames we forge.
const EVIL_MAC: [u8; 6] = [0x02, 0x66, 0x66, 0x66, 0x66, 0x01];

const ETH_IPV4: u16 = 0x0800;
const ETH_ARP: u16 = 0x0806;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// xorshift64*: a small seeded generator, so that a failing run replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
    /// Up to `max - 1` random bytes.
    fn some_bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max) as usize;
        self.bytes(len)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A unicast, locally administered MAC.
    fn mac(&mut self) -> [u8; 6] {
        let mut m = [0u8; 6];
        m.iter_mut().for_each(|b| *b = self.byte());
        m[0] = (m[0] & 0xfc) | 0x02;
        m
    }
    /// A spoofed, otherwise plausible source: a stranger on the guest's own subnet (never the
    /// gateway, slirp's DNS or the guest) or somewhere beyond the gateway.
    fn stranger(&mut self) -> Ipv4Addr {
        if self.chance(50) {
            Ipv4Addr::new(10, 0, 2, 16 + self.below(230) as u8)
        } else {
            Ipv4Addr::new(198, 18 + self.below(2) as u8, self.byte(), 1 + self.below(254) as u8)
        }
    }
}

/// The Internet checksum of `data` added to `sum`.
fn checksum(mut sum: u32, data: &[u8]) -> u16 {
    for pair in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (20 bytes, checksum filled in) followed by `payload`. `frag`: the flags and
/// fragment offset field (0x2000 = more fragments).
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let len = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(0, &p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// The IPv4 header checksum recomputed over the header length `p` claims (as far as `p` goes).
fn refill_ip_checksum(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    p[10..12].fill(0);
    let hl = (usize::from(p[0] & 0x0f) * 4).min(p.len());
    let c = checksum(0, &p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

/// A TCP segment with a valid checksum: `options` are padded to a multiple of 4 with zeros
/// (end of options); `data_offset` overrides the header length field when given.
#[allow(clippy::too_many_arguments)]
fn tcp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    seq: u32,
    options: &[u8],
    data_offset: Option<u8>,
    payload: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let off = data_offset.unwrap_or(((20 + opts.len()) / 4) as u8);
    let mut s = Vec::new();
    s.extend_from_slice(&src.1.to_be_bytes());
    s.extend_from_slice(&dst.1.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&0u32.to_be_bytes());
    s.extend_from_slice(&[off << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(&opts);
    s.extend_from_slice(payload);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.0.octets());
    pseudo.extend_from_slice(&dst.0.octets());
    pseudo.extend_from_slice(&[0, PROTO_TCP]);
    pseudo.extend_from_slice(&(s.len() as u16).to_be_bytes());
    let mut sum = 0u32;
    for pair in pseudo.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    let c = checksum(sum, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

/// MSS 1460, as a real SYN carries.
const MSS_OPTION: [u8; 4] = [2, 4, 0x05, 0xb4];

/// A SYN from `src` (at `mac`) to `dst`, addressed to the guest's NIC.
fn syn(mac: [u8; 6], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), seq: u32) -> Vec<u8> {
    let seg = tcp(src, dst, SYN, seq, &MSS_OPTION, None, &[]);
    ethernet(GUEST_MAC, mac, ETH_IPV4, &ipv4(src.0, dst.0, PROTO_TCP, 0, &seg))
}

/// An ARP packet (Ethernet/IPv4) from `sha`, broadcast for requests.
fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    let dst = if op == 1 { [0xff; 6] } else { GUEST_MAC };
    ethernet(dst, sha, ETH_ARP, &a)
}

/// One hostile frame of a random kind.
fn hostile(rng: &mut Rng) -> Vec<u8> {
    let guest = (GUEST_IP, if rng.chance(70) { 80 } else { rng.below(1024) as u16 });
    let src = (rng.stranger(), 1024 + rng.below(60000) as u16);
    let mac = rng.mac();
    let seq = rng.next() as u32;
    match rng.below(12) {
        // Random bytes, to the guest or broadcast, of any length up to a jumbo frame.
        0 => {
            // (Never empty: QEMU takes an empty datagram for the end of its socket.)
            let len = 1 + rng.below(1600) as usize;
            let mut f = rng.bytes(len);
            if f.len() >= 6 {
                f[..6].copy_from_slice(if rng.chance(50) { &GUEST_MAC } else { &[0xff; 6] });
            }
            f
        }
        // A valid frame cut anywhere (inside the Ethernet, IP or TCP header, or the data).
        1 => {
            let f = syn(mac, src, guest, seq);
            let cut = 1 + rng.below(f.len() as u64 - 1) as usize;
            f[..cut].to_vec()
        }
        // IPv4 header fields gone wrong (version, IHL, total length, protocol, options), with
        // the header checksum made right again so that the parser looks further.
        2 => {
            let seg = tcp(src, guest, SYN, seq, &MSS_OPTION, None, &[]);
            let mut p = ipv4(src.0, guest.0, PROTO_TCP, 0, &seg);
            match rng.below(5) {
                0 => p[0] = (p[0] & 0x0f) | (rng.byte() << 4),
                1 => p[0] = (p[0] & 0xf0) | (rng.byte() & 0x0f),
                2 => p[2..4].copy_from_slice(&(rng.below(1600) as u16).to_be_bytes()),
                3 => p[9] = rng.byte(),
                _ => {
                    // IHL 6..15 with random "options" where the TCP header was.
                    p[0] = 0x40 | (6 + rng.below(10) as u8);
                }
            }
            if rng.chance(80) {
                refill_ip_checksum(&mut p);
            }
            ethernet(GUEST_MAC, mac, ETH_IPV4, &p)
        }
        // TCP data offsets below 5 or past the segment, flags nobody sends together.
        3 => {
            let off = Some(rng.below(16) as u8);
            let flags = rng.byte();
            let payload = rng.some_bytes(64);
            let seg = tcp(src, guest, flags, seq, &MSS_OPTION, off, &payload);
            ethernet(GUEST_MAC, mac, ETH_IPV4, &ipv4(src.0, guest.0, PROTO_TCP, 0, &seg))
        }
        // Odd TCP options on a SYN: lengths 0, 1, past the header, huge window scales, zero
        // MSS, unknown kinds, SACK blocks on a SYN, random option bytes.
        4 => {
            let options: Vec<u8> = match rng.below(8) {
                0 => vec![2, 0],
                1 => vec![2, 1, 3],
                2 => vec![3, 3, 255, 2, 4, 0, 0],
                3 => vec![8, 40, 1, 2, 3, 4],
                4 => vec![5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 4, 2],
                5 => vec![254, 255],
                6 => vec![1, 1, 1, 0, 2, 4, 0xff, 0xff],
                _ => rng.some_bytes(41),
            };
            let options = &options[..options.len().min(40)];
            let flags = if rng.chance(80) { SYN } else { rng.byte() };
            let seg = tcp(src, guest, flags, seq, options, None, &[]);
            ethernet(GUEST_MAC, mac, ETH_IPV4, &ipv4(src.0, guest.0, PROTO_TCP, 0, &seg))
        }
        // IP fragments: a first fragment carrying a SYN, later ones (at odd offsets,
        // overlapping, tiny), of TCP to port 80 and UDP to port 7.
        5 => {
            let seg = tcp(src, guest, SYN, seq, &MSS_OPTION, None, &rng.bytes(16));
            let frag = match rng.below(4) {
                0 => 0x2000,
                1 => 0x2000 | (1 + rng.below(20) as u16),
                2 => rng.below(0x2000) as u16,
                _ => 0x2000 | rng.below(0x2000) as u16,
            };
            let proto = if rng.chance(50) { PROTO_TCP } else { PROTO_UDP };
            let cut = 8 + rng.below(seg.len() as u64 - 8) as usize;
            let mut p = ipv4(src.0, guest.0, proto, frag, &seg[..cut]);
            // TTL 0, which slirp (on the same hub, so it sees these too) drops before its IP
            // reassembly: libslirp 4.7 dies of SIGBUS reassembling such fragments. A host
            // takes TTL 0 for itself (only a router must not forward it).
            p[8] = 0;
            refill_ip_checksum(&mut p);
            ethernet(GUEST_MAC, mac, ETH_IPV4, &p)
        }
        // An ARP flood: requests for the guest from strangers, unsolicited replies, and ARP
        // with wrong hardware/protocol sizes or operations.
        6 | 7 => {
            let mut f = arp(1 + rng.below(2) as u16, mac, rng.stranger(), [0; 6], GUEST_IP);
            if rng.chance(20) {
                let i = 14 + rng.below(8) as usize;
                f[i] = rng.byte();
            }
            f
        }
        // UDP with lengths that disagree with the IP header's, to the echo port and others.
        8 => {
            let payload = rng.some_bytes(100);
            let mut f = udp_frame((mac, src.0, src.1), (GUEST_MAC, GUEST_IP, 7), &payload);
            f[38..40].copy_from_slice(&(rng.below(0x10000) as u16).to_be_bytes());
            f
        }
        // Other EtherTypes: IPv6, VLAN-tagged IPv4, and random ones.
        9 => {
            let ethertype = [0x86dd, 0x8100, rng.below(0x10000) as u16][rng.below(3) as usize];
            let payload = rng.some_bytes(200);
            ethernet(GUEST_MAC, mac, ethertype, &payload)
        }
        // Resets and ACKs for connections that do not exist.
        10 => {
            let flags =
                [RST, ACK, RST | ACK, FIN | ACK, SYN | FIN, SYN | RST][rng.below(6) as usize];
            let seg = tcp(src, guest, flags, seq, &[], None, &rng.some_bytes(32));
            ethernet(GUEST_MAC, mac, ETH_IPV4, &ipv4(src.0, guest.0, PROTO_TCP, 0, &seg))
        }
        // A plain spoofed SYN: part of the flood.
        _ => syn(mac, src, (GUEST_IP, 80), seq),
    }
}

/// Martian frames: each claims a source or destination no wire may carry. `port` is the
/// spoofed source port (the test then looks for it in `netstat`).
fn martian_syns(port: u16) -> Vec<Vec<u8>> {
    let lo = Ipv4Addr::LOCALHOST;
    let lo2 = Ipv4Addr::new(127, 0, 0, 2);
    vec![
        // The frame: from 127.0.0.1 to 127.0.0.1:80.
        syn(EVIL_MAC, (lo, port), (lo, 80), 1),
        syn(EVIL_MAC, (lo2, port), (GUEST_IP, 80), 2),
        syn(EVIL_MAC, (lo2, port), (lo, 80), 3),
        // Our own address as the source.
        syn(EVIL_MAC, (GUEST_IP, port), (GUEST_IP, 80), 4),
        // Zero, broadcast and multicast sources.
        syn(EVIL_MAC, (Ipv4Addr::UNSPECIFIED, port), (GUEST_IP, 80), 5),
        syn(EVIL_MAC, (Ipv4Addr::BROADCAST, port), (GUEST_IP, 80), 6),
        syn(EVIL_MAC, (Ipv4Addr::new(224, 0, 0, 1), port), (GUEST_IP, 80), 7),
        // To a loopback address from a plausible stranger.
        syn(EVIL_MAC, (Ipv4Addr::new(10, 0, 2, 99), port), (lo2, 80), 8),
    ]
}

/// ARP that would teach the guest that its loopback and its own address are at our MAC: a
/// request for 127.0.0.1 from 127.0.0.1, a gratuitous reply for 10.0.2.15, a request for
/// 10.0.2.15 from 127.0.0.2, a request for 127.0.0.1 from 10.0.2.15.
fn martian_arp() -> Vec<Vec<u8>> {
    let (lo, lo2) = (Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 0, 0, 2));
    vec![
        arp(1, EVIL_MAC, lo, [0; 6], lo),
        arp(2, EVIL_MAC, GUEST_IP, GUEST_MAC, GUEST_IP),
        arp(1, EVIL_MAC, lo2, [0; 6], GUEST_IP),
        arp(1, EVIL_MAC, GUEST_IP, [0; 6], lo),
    ]
}

// ---- the guest ----

struct Guest {
    console: Console,
    http: u16,
    tap: FrameTap,
    watch: Watch,
    /// ARP probes sent so far, and those that got no answer in time ([`Guest::sync`]).
    probes: Cell<u32>,
    lost: Cell<u32>,
}

/// How long [`Guest::sync`] waits for the answer to one probe (it comes within milliseconds),
/// and how many probes it sends before it gives up on the guest.
const PROBE_WAIT: Duration = Duration::from_secs(1);
const PROBES: usize = 10;

/// The address the ARP probes come from: on the guest's subnet (or the guest ignores them),
/// nobody's address.
const PROBE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 254);

fn boot(name: &str, design: &str) -> (TempDir, Guest) {
    let (dir, img) = image_with_programs(name, &[]);
    let http = free_port();
    let tap = FrameTap::open().expect("open the frame socket");
    let mut opts = Options::new(kernel(), design);
    opts.disk = Some(img);
    opts.network = Network::User {
        forwards: vec![HostForward::tcp(http, 80)],
        frames: Some(tap.frame_port()),
    };
    let console = ok(Console::spawn_with(opts, Settings::default()));
    ok(console.expect("init: starting sh", BOOT));
    ok(console.expect("$ ", BOOT));
    let watch = Watch::start(&tap);
    let g = Guest { console, http, tap, watch, probes: Cell::new(0), lost: Cell::new(0) };
    g.run("httpd &");
    let deadline = Instant::now() + STEP;
    while get(http, "/index.html", Duration::from_secs(5)).is_err() {
        assert!(Instant::now() < deadline, "httpd never answered:\n{}", g.console.output());
    }
    (dir, g)
}

impl Guest {
    fn run(&self, line: &str) -> String {
        ok(self.console.send(format!("{line}\n")));
        ok(self.console.expect("\n$ ", STEP)).replace('\r', "")
    }

    fn send(&self, frame: &[u8]) {
        if let Err(e) = self.tap.send(frame) {
            // QEMU died (its exit status says of what) or stopped reading the frame socket.
            let qemu = self.console.wait_exit(Duration::from_secs(3));
            panic!(
                "QEMU stopped taking frames ({e}; QEMU: {qemu:?}):\n{}\n{}",
                self.console.output(),
                self.console.stderr_output()
            );
        }
    }

    /// Waits until the guest has taken every frame sent so far off its receive ring: it
    /// answers an ARP request sent after them (from a MAC of its own, which the answer goes
    /// back to without any lookup or rate limit in the guest). A flood must go at the guest's
    /// pace to reach it: QEMU's e1000 passes on what fits in the guest's 32 receive
    /// descriptors, and frames waiting behind them are mostly lost (measured: of 12,000 frames
    /// sent at once, the guest saw about 1,000). Slirp's own frames to the guest (resets for
    /// the SYN-ACKs the guest sends to spoofed sources beyond the gateway) share those
    /// descriptors, at their own pace, so even a small batch may now and then overflow them
    /// and lose the probe itself: then another probe goes (they are counted, [`Guest::lost`]).
    /// A guest that answers none of them fails the test.
    fn sync(&self) {
        let mut sent = Vec::new();
        for _ in 0..PROBES {
            let n = self.probes.get() + 1;
            self.probes.set(n);
            let mut mac = [0x02, 0x70, 0, 0, 0, 0];
            mac[2..].copy_from_slice(&n.to_be_bytes());
            sent.push(mac);
            self.send(&arp(1, mac, PROBE_IP, [0; 6], GUEST_IP));
            if self.watch.wait(PROBE_WAIT, |st| sent.iter().any(|m| st.arp_to.contains(m))) {
                return;
            }
            self.lost.set(self.lost.get() + 1);
        }
        panic!(
            "no answer to {PROBES} ARP probes (the guest sent {} frames):\n{}",
            self.watch.frames(),
            self.console.output()
        );
    }

    /// The guest's TCP sockets (`netstat` at the shell): (local, remote, state).
    fn netstat(&self) -> Vec<(String, String, String)> {
        self.run("netstat")
            .lines()
            .filter_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
                ["tcp", local, remote, state] => {
                    Some((local.to_string(), remote.to_string(), state.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    fn poweroff(self) {
        ok(self.console.send("poweroff\n"));
        let status = ok(self.console.wait_exit(STEP));
        let out = self.console.output();
        assert_eq!(Outcome::from_status(status), Outcome::PowerOff, "{out}");
        assert!(!out.contains("PANIC"), "{out}");
        let st = self.watch.seen.clone();
        let leaks = self.watch.stop();
        assert!(leaks.is_empty(), "the guest put loopback addresses on the wire: {leaks:02x?}");
        let st = st.state.lock().unwrap();
        assert!(st.bad_sums.is_empty(), "wrong checksums on the wire: {:02x?}", st.bad_sums);
        assert!(st.sums_checked > 0, "no checksum of the guest's was checked");
    }
}

/// A thread reading every frame the guest sends: it keeps those that carry a loopback address
/// (they must never reach the wire) and notes where its ARP replies go, so that the test can
/// wait for the answer to a probe ([`Guest::sync`]).
struct Watch {
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Seen {
    state: Mutex<SeenState>,
    changed: Condvar,
}

#[derive(Default)]
struct SeenState {
    frames: usize,
    leaks: Vec<Vec<u8>>,
    /// Destination MAC of every ARP reply from the guest.
    arp_to: Vec<[u8; 6]>,
    /// IPv4 frames from the guest whose checksums were checked, and those found wrong.
    sums_checked: usize,
    bad_sums: Vec<Vec<u8>>,
    /// Where the guest's SYN-ACKs went (address, port).
    syn_acks: Vec<(Ipv4Addr, u16)>,
}

/// Whether the IPv4 header checksum and the TCP or UDP checksum of `f` (from the guest) are
/// right; `None` for what has none to check (not IPv4, a fragment, malformed).
fn sums_ok(f: &[u8]) -> Option<bool> {
    if f.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = &f[14..];
    let hl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
    if hl < 20 || total < hl || ip.len() < total || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
    {
        return None;
    }
    if checksum(0, &ip[..hl]) != 0 {
        return Some(false);
    }
    let seg = &ip[hl..total];
    let mut pseudo = 0u32;
    for pair in ip[12..20].chunks(2) {
        pseudo += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    pseudo += u32::from(ip[9]) + seg.len() as u32;
    Some(match ip[9] {
        PROTO_TCP => checksum(pseudo, seg) == 0,
        PROTO_UDP => seg.get(6..8) == Some(&[0, 0]) || checksum(pseudo, seg) == 0,
        _ => true,
    })
}

/// The destination of a SYN-ACK from the guest.
fn syn_ack_to(f: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let ip = f.get(14..)?;
    if f.get(12..14)? != [0x08, 0x00] || *ip.get(9)? != PROTO_TCP {
        return None;
    }
    let seg = ip.get(usize::from(ip[0] & 0x0f) * 4..)?;
    if *seg.get(13)? & (SYN | ACK | RST) != SYN | ACK {
        return None;
    }
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    Some((dst, u16::from_be_bytes([seg[2], seg[3]])))
}

/// Whether `f` (from the guest) carries a 127.0.0.0/8 address in its IPv4 or ARP header.
fn carries_loopback(f: &[u8]) -> bool {
    let at = |range: std::ops::Range<usize>| f.get(range).is_some_and(|a| a[0] == 127);
    match f.get(12..14) {
        Some([0x08, 0x00]) => at(26..30) || at(30..34),
        Some([0x08, 0x06]) => at(28..32) || at(38..42),
        _ => false,
    }
}

impl Watch {
    fn start(tap: &FrameTap) -> Watch {
        let sock = tap.try_clone().expect("clone the frame socket");
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Seen::default());
        let (halt, note) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !halt.load(Ordering::Relaxed) {
                let Ok(len) = sock.recv(&mut buf) else { continue };
                let f = &buf[..len];
                if f.get(6..12) != Some(&GUEST_MAC[..]) {
                    continue; // slirp's frames: the hub copies them here too
                }
                let mut st = note.state.lock().unwrap();
                st.frames += 1;
                if carries_loopback(f) {
                    st.leaks.push(f.to_vec());
                }
                if f.get(12..14) == Some(&[0x08, 0x06]) && f.get(20..22) == Some(&[0, 2]) {
                    st.arp_to.push(f[..6].try_into().unwrap());
                }
                match sums_ok(f) {
                    Some(true) => st.sums_checked += 1,
                    Some(false) => st.bad_sums.push(f.to_vec()),
                    None => {}
                }
                if let Some(to) = syn_ack_to(f) {
                    st.syn_acks.push(to);
                }
                drop(st);
                note.changed.notify_all();
            }
        });
        Watch { stop, seen, thread: Some(thread) }
    }

    fn frames(&self) -> usize {
        self.seen.state.lock().unwrap().frames
    }

    fn leaks(&self) -> Vec<Vec<u8>> {
        self.seen.state.lock().unwrap().leaks.clone()
    }

    /// Waits until `seen` holds for what the guest sent; false if it did not by `deadline`.
    fn wait(&self, deadline: Duration, seen: impl Fn(&SeenState) -> bool) -> bool {
        let end = Instant::now() + deadline;
        let mut st = self.seen.state.lock().unwrap();
        while !seen(&st) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.seen.changed.wait_timeout(st, left).unwrap().0;
        }
        true
    }

    fn stop(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.leaks()
    }
}

/// `GET path` from the host through the forwarded port: the status line, within `deadline`
/// (connecting, sending and reading included).
fn get(port: u16, path: &str, deadline: Duration) -> Result<String, String> {
    let end = Instant::now() + deadline;
    let left = || end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, left()).map_err(|e| format!("connect: {e}"))?;
    s.set_write_timeout(Some(left())).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        s.set_read_timeout(Some(left())).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {got:?}")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("no answer within {deadline:?}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&got);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Whether `f` is a well-formed IPv4 TCP SYN (without ACK) to port 80.
fn is_syn_to_80(f: &[u8]) -> bool {
    f.len() >= 54
        && f[12..14] == [0x08, 0x00]
        && f[14] == 0x45
        && f[23] == PROTO_TCP
        && f[36..38] == [0, 80]
        && f[47] & (SYN | ACK | RST) == SYN
}

/// Whether `ep` (`a.b.c.d:port` or `a.b.c.d:*`) is an address no wire may bring.
fn is_martian(ep: &str) -> bool {
    let ip: Ipv4Addr = match ep.rsplit_once(':').and_then(|(a, _)| a.parse().ok()) {
        Some(ip) => ip,
        None => return false,
    };
    ip.is_loopback() || ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified()
}

// ---- the tests ----

common::both_designs!(
    martian_frames_are_dropped_at_the_nic,
    sleep_design_martian_frames_are_dropped_at_the_nic,
    martian_frames_are_dropped_at_the_nic_on
);

/// Martian frames from the wire leave no trace: no connection from or to a loopback, zero,
/// broadcast or multicast address, or from the guest itself; the guest's loopback still works
/// (ARP from the wire could not redirect it) and nothing of it leaks onto the wire; the kernel
/// reports the drops.
fn martian_frames_are_dropped_at_the_nic_on(design: &str) {
    let (_dir, g) = boot(&format!("frames-martians{design}"), design);
    const PORT: u16 = 6666;
    for f in martian_syns(PORT) {
        g.send(&f);
    }
    g.sync();
    let socks = g.netstat();
    let from_us = format!("{GUEST_IP}:{PORT}");
    let bad: Vec<_> = socks
        .iter()
        .filter(|(local, remote, _)| {
            remote.ends_with(&format!(":{PORT}"))
                && (is_martian(remote) || is_martian(local) || *remote == from_us)
        })
        .collect();
    assert!(bad.is_empty(), "connections from martians: {bad:?}\nall: {socks:?}");
    for f in martian_arp() {
        g.send(&f);
    }
    g.sync();
    // The guest's own loopback goes to itself, not to the MAC that ARP claimed it had.
    let out = g.run("curl -m 3 http://127.0.0.1/index.html > /got.html; wc < /got.html");
    assert!(!out.contains("curl:"), "the guest's loopback is broken:\n{out}");
    let out = g.run("curl -m 3 http://10.0.2.15/index.html > /got.html; wc < /got.html");
    assert!(!out.contains("curl:"), "the guest cannot reach its own address:\n{out}");
    assert!(g.watch.leaks().is_empty(), "loopback frames on the wire: {:02x?}", g.watch.leaks());
    let out = g.console.output();
    assert!(out.contains("net: dropped"), "the kernel did not report the martians:\n{out}");
    g.poweroff();
}

common::both_designs!(
    a_flood_of_hostile_frames_leaves_httpd_answering_at_once,
    sleep_design_a_flood_of_hostile_frames_leaves_httpd_answering_at_once,
    a_flood_of_hostile_frames_leaves_httpd_answering_at_once_on
);

/// 12,000 hostile frames, a spoofed SYN to port 80 in every sixth and more among the others
/// (about 3,500 in all), and a martian SYN from 127.0.0.1 now and then; then a real client gets
/// its page within [`CLIENT_DEADLINE`], at most the SYN queue's worth of half-open connections
/// is left, none from a martian, and the kernel did not panic.
fn a_flood_of_hostile_frames_leaves_httpd_answering_at_once_on(design: &str) {
    let (_dir, g) = boot(&format!("frames-flood{design}"), design);
    let seed = 0x9e37_79b9_7f4a_7c15u64;
    eprintln!("frames: seed {seed:#x}");
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut syns = 0;
    const FRAMES: u32 = 12_000;
    // Frames between two syncs ([`Guest::sync`]).
    const BATCH: u32 = 8;
    for i in 0..FRAMES {
        let f = if i % 6 == 0 {
            let src = (rng.stranger(), 1024 + rng.below(60000) as u16);
            syn(rng.mac(), src, (GUEST_IP, 80), rng.next() as u32)
        } else if i % 997 == 0 {
            syn(EVIL_MAC, (Ipv4Addr::LOCALHOST, 7000 + (i % 100) as u16), (GUEST_IP, 80), i)
        } else {
            hostile(&mut rng)
        };
        if is_syn_to_80(&f) {
            syns += 1;
        }
        g.send(&f);
        if i % BATCH == BATCH - 1 {
            g.sync();
        }
    }
    eprintln!(
        "frames: sent {FRAMES} frames ({syns} SYNs to port 80) in {:?}; the guest sent {}; \
         {} of {} probes unanswered in time",
        started.elapsed(),
        g.watch.frames(),
        g.lost.get(),
        g.probes.get()
    );
    let t = Instant::now();
    let status = get(g.http, "/index.html", CLIENT_DEADLINE)
        .unwrap_or_else(|e| panic!("a real client after the flood: {e}\n{}", g.console.output()));
    eprintln!("frames: a real client got {status:?} {:?} after the flood", t.elapsed());
    assert!(status.contains(" 200 "), "{status}");
    let socks = g.netstat();
    let half_open = socks.iter().filter(|(l, _, st)| l.ends_with(":80") && st == "SYN_RECV");
    let n = half_open.clone().count();
    assert!(n <= HTTPD_BACKLOG, "{n} half-open connections on port 80: {socks:?}");
    let martian: Vec<_> =
        socks.iter().filter(|(_, r, st)| st != "LISTEN" && is_martian(r)).collect();
    assert!(martian.is_empty(), "connections from martians: {martian:?}");
    // And again, with the flood's half-open connections still there.
    let t = Instant::now();
    let status = get(g.http, "/", CLIENT_DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("frames: another client got {status:?} {:?} later", t.elapsed());
    g.poweroff();
}

common::both_designs!(
    frames_with_bad_checksums_are_dropped,
    sleep_design_frames_with_bad_checksums_are_dropped,
    frames_with_bad_checksums_are_dropped_on
);

/// A SYN whose IPv4 or TCP checksum is wrong gets no answer; the same SYN with right
/// checksums is answered (its SYN-ACK is seen on the wire; slirp then resets it). (The E1000 under QEMU verifies
/// nothing: the NIC's layer does, since the root's stack leaves checksums to it.)
fn frames_with_bad_checksums_are_dropped_on(design: &str) {
    let (_dir, g) = boot(&format!("frames-checksums{design}"), design);
    let from = |n: u8| (Ipv4Addr::new(198, 18, 7, n), 40000 + u16::from(n));
    let mut bad_tcp = syn(EVIL_MAC, from(2), (GUEST_IP, 80), 2);
    bad_tcp[14 + 20 + 16] ^= 0x5a;
    let mut bad_ip = syn(EVIL_MAC, from(3), (GUEST_IP, 80), 3);
    bad_ip[14 + 10] ^= 0x5a;
    g.send(&bad_tcp);
    g.send(&bad_ip);
    g.send(&syn(EVIL_MAC, from(1), (GUEST_IP, 80), 1));
    g.sync();
    let answered = |st: &SeenState| st.syn_acks.contains(&from(1));
    assert!(g.watch.wait(STEP, answered), "no SYN-ACK to the good SYN:\n{}", g.console.output());
    // Frames are taken in order: the bad ones were handled before the good one was answered.
    let st = g.watch.seen.state.lock().unwrap();
    let wrong: Vec<_> = st.syn_acks.iter().filter(|a| **a == from(2) || **a == from(3)).collect();
    assert!(wrong.is_empty(), "SYNs with bad checksums answered: {wrong:?}");
    drop(st);
    g.poweroff();
}
