//! A stack's device, in layers: each layer is a smoltcp `phy::Device` that owns the layer
//! below it, and no layer calls up into the stack. From the wire up:
//!
//! ```text
//! container n:  Loopback< Snoop< Port(n) > >                                  (+ Gate at poll time)
//! root:         Loopback< Snoop< Router{ wire: Filter<Wire>, port: Port(1), nat } > > (+ Gate)
//! ```
//!
//! - [`Wire`]: the E1000's rings, of one card or of two (`super::e1000::Cards`: UDP on the
//!   second). A full transmit ring makes `transmit` say no ([`Link::tx_full`]): the task then
//!   also waits for a free slot.
//! - [`Filter`]: the receive filter (`super::filter`): martians and IP fragments from the wire
//!   are dropped, counted and reported on the console at most every [`REPORT_MS`].
//! - [`Port`]: the stack's port on the bridge (`super::bridge`): sending hands the frame to the
//!   bridge, receiving takes from the port's queue.
//! - `Router` (the root only, `super::router`): the wire and the root's bridge port as one
//!   link, choosing by destination, with the published ports' translation.
//! - [`Snoop`]: notes the ARP replies that arrive ([`ArpSeen`]) so that `arping` can wait for
//!   them (before, the device called up into the stack for this).
//! - [`Loopback`]: frames for the interface's own MAC, and ARP for its own addresses, are
//!   queued back instead of sent: smoltcp 0.14 does not deliver to its own addresses.
//! - `Gate` (`super::listen`): SYNs for listeners that take none now are held back.
//!
//! The layers pass owned frames to each other through [`Link`] (one allocation per frame, no
//! token plumbing through five layers); [`phy_device!`] makes each a `phy::Device` with the
//! same two tokens ([`Frame`], [`Tx`]), so any of them can be smoltcp's device.
//!
//! # Checksums
//!
//! A layer whose [`Link::offloads`] is true takes frames whose IPv4, TCP and UDP checksums are
//! not filled in, and gives frames whose checksums are verified: the stack above computes and
//! checks none (smoltcp's `ChecksumCapabilities`, [`capabilities`]). Only the root's stack has
//! such a device, because only the wire has a NIC to compute them:
//!
//! - [`Wire`] asks the E1000 to insert them (`super::csum::prepare`), and verifies what arrives
//!   unless the E1000 already did (QEMU's never does).
//! - [`Loopback`] fills them in software for what it loops back (`super::csum::fill`): no NIC
//!   sees those frames. They come back unverified: they were filled a moment ago by this code.
//! - The root's `Router` fills them for the frames it hands to the bridge (the containers'
//!   stacks verify in software as always), and verifies the frames the bridge gives the root.
//!   The frames it rewrites (published ports) keep `nat`'s own software sums, and on the way
//!   to the wire are offloaded like the root's own.
//! - A container's [`Port`] offloads nothing: its stack computes and verifies in software.
//!
//! Everything here runs under its stack's lock (the task's poll, or a system call's socket
//! operation); below it the layers take the NIC's ring locks, the bridge's, an [`ArpSeen`]'s,
//! and notify wait queues. Nothing runs in interrupt context.

use super::bridge::BRIDGE;
use super::e1000::{Cards, Nic};
use super::filter::{Local, Verdict};
use super::router::Router;
use crate::kprintln;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use drivers::e1000::{Csum, TxOffload};
use runtime::lockorder::{IrqMutex, Rank};
use runtime::sync::WaitQueue;
use smoltcp::phy::{self, Checksum, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame (no CRC).
pub const MTU: usize = 1514;
/// Most looped-back frames queued at once (more are dropped, as a full NIC ring would).
pub const LOOP_MAX: usize = 256;
/// The receive filter reports its drops on the console at most this often (a flood of
/// martians must not become a flood of lines).
pub const REPORT_MS: i64 = 10_000;

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

/// One layer of a stack's device (see the module docs).
pub trait Link {
    /// The next frame received, if any.
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>>;
    /// Whether a frame may be sent now. `false` only for a full NIC ring: smoltcp then keeps
    /// its frames, and the task waits for a free slot ([`Link::tx_full`]).
    fn can_send(&mut self) -> bool;
    /// Send `frame` (one that cannot go now is dropped; TCP retransmits).
    fn send(&mut self, frame: Vec<u8>);
    /// Frames wait that no wakeup will announce (looped back): poll again at once.
    fn pending(&self) -> bool {
        false
    }
    /// The last [`Link::can_send`] found the NIC's transmit ring full.
    fn tx_full(&self) -> bool {
        false
    }
    /// After every poll: print what is due (the filter's rate-limited report).
    fn report(&mut self, _now: Instant) {}
    /// Whether this link computes the IPv4, TCP and UDP checksums of what it sends and
    /// verifies those of what it gives (module docs, "Checksums"): the stack then does not.
    fn offloads(&self) -> bool {
        false
    }
    /// Hand what was sent to the hardware now (the NIC's tail register moves once per batch):
    /// after every batch of sends (the stack's egress).
    fn flush(&mut self) {}
}

/// Inside `impl Link for` a layer with an `inner` link: the named [`Link`] methods, passing
/// to `inner` unchanged (a layer writes out only what it does itself).
macro_rules! pass_down {
    ($($m:ident),* $(,)?) => { $(pass_down!(@ $m);)* };
    (@ can_send) => { fn can_send(&mut self) -> bool { self.inner.can_send() } };
    (@ send) => { fn send(&mut self, frame: Vec<u8>) { self.inner.send(frame) } };
    (@ pending) => { fn pending(&self) -> bool { self.inner.pending() } };
    (@ tx_full) => { fn tx_full(&self) -> bool { self.inner.tx_full() } };
    (@ report) => { fn report(&mut self, now: Instant) { self.inner.report(now) } };
    (@ offloads) => { fn offloads(&self) -> bool { self.inner.offloads() } };
    (@ flush) => { fn flush(&mut self) { self.inner.flush() } };
}

/// A received frame, owned (smoltcp's receive token for every layer).
pub struct Frame(pub Vec<u8>);

impl phy::RxToken for Frame {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

/// Permission to send one frame through a layer (smoltcp's transmit token for every layer).
pub struct Tx<'a>(&'a mut (dyn Link + 'a));

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.send(buf);
        r
    }
}

/// What a layer tells smoltcp: Ethernet, [`MTU`], and the IPv4, TCP and UDP checksums left
/// to the layers below if they `offload` ([`Link::offloads`]; ICMP's stay in software).
pub fn capabilities(offload: bool) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = MTU;
    if offload {
        caps.checksum.ipv4 = Checksum::None;
        caps.checksum.tcp = Checksum::None;
        caps.checksum.udp = Checksum::None;
    }
    caps
}

/// `phy::Device` for a [`Link`]: `phy_device!([generics] Type)`.
macro_rules! phy_device {
    ([$($g:tt)*] $t:ty) => {
        impl<$($g)*> smoltcp::phy::Device for $t {
            type RxToken<'tok>
                = $crate::net::device::Frame
            where
                Self: 'tok;
            type TxToken<'tok>
                = $crate::net::device::Tx<'tok>
            where
                Self: 'tok;

            fn receive(
                &mut self,
                now: smoltcp::time::Instant,
            ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
                let f = $crate::net::device::Link::recv(self, now)?;
                // The token for an immediate answer (an ARP reply, a RST): sent whatever the
                // ring's state, or dropped by the layer that cannot send it.
                Some(($crate::net::device::Frame(f), $crate::net::device::Tx::new(self)))
            }

            fn transmit(&mut self, _now: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
                match $crate::net::device::Link::can_send(self) {
                    true => Some($crate::net::device::Tx::new(self)),
                    false => None,
                }
            }

            fn capabilities(&self) -> smoltcp::phy::DeviceCapabilities {
                $crate::net::device::capabilities($crate::net::device::Link::offloads(self))
            }
        }
    };
}
pub(crate) use phy_device;

impl<'a> Tx<'a> {
    pub fn new(link: &'a mut (dyn Link + 'a)) -> Tx<'a> {
        Tx(link)
    }
}

// ---- the wire ----

/// Whether the wire's checksums are the E1000's (module docs, "Checksums"); false: the root's
/// stack computes and verifies them in software, as a container's does.
const OFFLOAD: bool = true;

/// The E1000's rings: the main card's, and the UDP card's when there is one.
pub struct Wire {
    cards: &'static Cards,
    /// Which card `recv` looks at first: they take turns, so neither starves the other.
    udp_first: bool,
    tx_full: bool,
    /// Frames dropped because the transmit ring was full.
    pub tx_dropped: u64,
    /// Frames from the wire dropped for a bad IPv4, TCP or UDP checksum found here (those the
    /// E1000 finds bad are in its own `rx_bad_csum`).
    pub rx_bad_csum: u64,
}

impl Wire {
    pub fn new(cards: &'static Cards) -> Wire {
        Wire { cards, udp_first: false, tx_full: false, tx_dropped: 0, rx_bad_csum: 0 }
    }

    /// The card `frame` leaves by: the UDP card for IPv4 UDP, when there is one.
    fn card_for(&self, frame: &[u8]) -> &'static Nic {
        match &self.cards.udp {
            Some(udp) if is_ipv4_udp(frame) => udp,
            _ => &self.cards.main,
        }
    }

    fn recv_from(&mut self, nic: &Nic) -> Option<Vec<u8>> {
        loop {
            let (f, sums) = nic.try_receive_csum()?;
            // The NIC's verdict only for what it checked; the rest is checked here.
            if !OFFLOAD || (sums.ip && sums.l4) || super::csum::verify(&f) {
                return Some(f);
            }
            self.rx_bad_csum += 1;
        }
    }
}

/// An IPv4 frame carrying UDP (a fragment too: every fragment of a datagram goes one way).
fn is_ipv4_udp(f: &[u8]) -> bool {
    f.get(12..14) == Some(&[0x08, 0x00]) && f.get(14 + 9) == Some(&17)
}

/// A frame takes one transmit slot, two with a new offload context.
const SLOTS_PER_FRAME: usize = 2;

impl Link for Wire {
    fn recv(&mut self, _now: Instant) -> Option<Vec<u8>> {
        let cards = self.cards;
        let Some(udp) = &cards.udp else { return self.recv_from(&cards.main) };
        self.udp_first = !self.udp_first;
        match self.udp_first {
            true => self.recv_from(udp).or_else(|| self.recv_from(&cards.main)),
            false => self.recv_from(&cards.main).or_else(|| self.recv_from(udp)),
        }
    }

    fn can_send(&mut self) -> bool {
        // smoltcp asks before it builds the frame: a slot on every card.
        self.tx_full = false;
        for nic in self.cards.iter() {
            if nic.tx_room() < SLOTS_PER_FRAME {
                // The batch not yet handed over may be what fills the ring.
                nic.flush_tx();
                // The sleep design polls again on the interrupt of a slot freed (the event
                // design's task also arms it, through `poll_tx_ready`).
                nic.arm_tx_interrupt();
            }
            self.tx_full |= nic.tx_room() < SLOTS_PER_FRAME;
        }
        !self.tx_full
    }

    fn send(&mut self, mut frame: Vec<u8>) {
        let offload = match OFFLOAD {
            true => super::csum::prepare(&mut frame),
            false => None,
        };
        if OFFLOAD && offload.is_none() {
            super::csum::fill(&mut frame); // not a frame the NIC can sum (a fragment, say)
        }
        let offload = offload.map(|o| {
            let c = |s: super::csum::Sum| Csum {
                start: s.start as u8,
                at: s.at as u8,
                end: s.end.unwrap_or(0) as u16,
            };
            TxOffload { ip: Some(c(o.ip)), l4: o.l4.map(c) }
        });
        // Only the stack's task sends through the rings (under the stack lock), and a slot was
        // free when smoltcp got its token; a failure drops the frame. Handed to the device at
        // the end of the batch (`flush`).
        if self.card_for(&frame).queue(&frame, offload).is_err() {
            self.tx_dropped += 1;
        }
    }

    fn tx_full(&self) -> bool {
        self.tx_full
    }

    fn offloads(&self) -> bool {
        OFFLOAD
    }

    fn flush(&mut self) {
        for nic in self.cards.iter() {
            nic.flush_tx();
        }
    }
}
phy_device!([] Wire);

// ---- the receive filter ----

/// The rate limit of the filter's console report.
#[derive(Default)]
struct Report {
    /// When the last line was printed (ms of smoltcp time).
    at: Option<i64>,
    /// Drops since then: martians, fragments, and the last martian.
    martians: u64,
    fragments: u64,
    last: Option<Verdict>,
}

/// The wire's receive filter (`super::filter`): drops martians and IP fragments.
pub struct Filter<D> {
    inner: D,
    local: Local,
    /// Frames the filter dropped since boot.
    pub rx_martians: u64,
    pub rx_fragments: u64,
    report: Report,
}

impl<D: Link> Filter<D> {
    pub fn new(inner: D, local: Local) -> Filter<D> {
        Filter { inner, local, rx_martians: 0, rx_fragments: 0, report: Report::default() }
    }

    /// Count a frame the filter dropped, and report it if the last report is old enough.
    fn dropped(&mut self, v: Verdict, now: Instant) {
        let r = &mut self.report;
        match v {
            Verdict::Pass => return,
            Verdict::Martian { .. } => {
                self.rx_martians += 1;
                r.martians += 1;
                r.last = Some(v);
            }
            Verdict::Fragment => {
                self.rx_fragments += 1;
                r.fragments += 1;
            }
        }
        self.print_report(now);
    }

    /// Print the drops not yet reported, unless a report was printed less than [`REPORT_MS`]
    /// ago (the first drop is reported at once; the task calls this after every poll, so the
    /// rest of a burst is reported once the time has come).
    fn print_report(&mut self, now: Instant) {
        let r = &mut self.report;
        let ms = now.total_millis();
        if r.martians + r.fragments == 0 || r.at.is_some_and(|at| ms < at + REPORT_MS) {
            return;
        }
        let last = match r.last {
            Some(Verdict::Martian { arp, src, dst }) => {
                alloc::format!(" (last: {}{src} -> {dst})", if arp { "ARP " } else { "" })
            }
            _ => alloc::string::String::new(),
        };
        kprintln!(
            "net: dropped from the wire: martians {}{last}, IP fragments {}",
            r.martians,
            r.fragments
        );
        *r = Report { at: Some(ms), ..Report::default() };
    }
}

impl<D: Link> Link for Filter<D> {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        loop {
            let f = self.inner.recv(now)?;
            match self.local.check(&f) {
                Verdict::Pass => return Some(f),
                v => self.dropped(v, now),
            }
        }
    }
    fn report(&mut self, now: Instant) {
        self.print_report(now);
        self.inner.report(now);
    }
    pass_down!(can_send, send, pending, tx_full, offloads, flush);
}
phy_device!([D: Link] Filter<D>);

// ---- the bridge port ----

/// A stack's port on the bridge (`super::bridge`).
pub struct Port {
    id: u32,
    /// Frames for this port the bridge dropped (its queue was full), as of the last report,
    /// and when that was printed (ms of smoltcp time).
    reported: (u64, Option<i64>),
}

impl Port {
    /// Port `id` (the namespace's id), already plugged into the bridge.
    pub fn new(id: u32) -> Port {
        Port { id, reported: (0, None) }
    }
}

impl Link for Port {
    fn recv(&mut self, _now: Instant) -> Option<Vec<u8>> {
        BRIDGE.take(self.id)
    }
    fn can_send(&mut self) -> bool {
        true
    }
    fn send(&mut self, frame: Vec<u8>) {
        BRIDGE.forward(self.id, frame);
    }
    /// Frames the bridge dropped for this port, on the console at most every [`REPORT_MS`].
    fn report(&mut self, now: Instant) {
        let (last, at) = self.reported;
        let ms = now.total_millis();
        if at.is_some_and(|at| ms < at + REPORT_MS) {
            return;
        }
        let Some(stats) = BRIDGE.stats(self.id) else { return };
        if stats.dropped > last {
            kprintln!(
                "net: ns {}: bridge port queue full: {} frames dropped ({} since boot)",
                self.id,
                stats.dropped - last,
                stats.dropped
            );
            self.reported = (stats.dropped, Some(ms));
        }
    }
}
phy_device!([] Port);

// ---- ARP snooping, for arping ----

/// The ARP replies one stack has seen (sender IP -> MAC), for `arping`; at most 64.
pub struct ArpSeen {
    seen: IrqMutex<BTreeMap<[u8; 4], [u8; 6]>>,
    /// Notified when a reply is noted.
    pub wait: WaitQueue,
}

impl Default for ArpSeen {
    fn default() -> Self {
        Self::new()
    }
}

impl ArpSeen {
    pub const fn new() -> ArpSeen {
        ArpSeen { seen: IrqMutex::new(Rank::ArpSeen, BTreeMap::new()), wait: WaitQueue::new() }
    }

    /// Note `f` if it is an ARP reply.
    fn note(&self, f: &[u8]) {
        if f.len() >= 42
            && f[12..14] == ETHERTYPE_ARP
            && f[14..22] == [0, 1, 0x08, 0x00, 6, 4, 0, 2]
        {
            let ip: [u8; 4] = f[28..32].try_into().expect("4 bytes");
            let mac: [u8; 6] = f[22..28].try_into().expect("6 bytes");
            {
                let mut seen = self.seen.lock();
                if seen.len() >= 64 {
                    seen.clear();
                }
                seen.insert(ip, mac);
            }
            // Under the stack lock: the sleep design may take no wait queue here.
            super::drive::notify(&self.wait);
        }
    }

    pub fn forget(&self, ip: [u8; 4]) {
        self.seen.lock().remove(&ip);
    }

    pub fn get(&self, ip: [u8; 4]) -> Option<[u8; 6]> {
        self.seen.lock().get(&ip).copied()
    }
}

/// Notes the ARP replies that arrive from the link below (see [`ArpSeen`]).
pub struct Snoop<D> {
    inner: D,
    arp: alloc::sync::Arc<ArpSeen>,
}

impl<D> Snoop<D> {
    pub fn new(inner: D, arp: alloc::sync::Arc<ArpSeen>) -> Snoop<D> {
        Snoop { inner, arp }
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }
}

impl<D: Link> Link for Snoop<D> {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        let f = self.inner.recv(now)?;
        self.arp.note(&f);
        Some(f)
    }
    pass_down!(can_send, send, pending, tx_full, report, offloads, flush);
}
phy_device!([D: Link] Snoop<D>);

// ---- loopback ----

/// Loopback: a frame the interface sends to its own MAC, or an ARP packet asking for one of
/// its own addresses (127.0.0.0/8 and `ips`), goes to a queue that `recv` drains first,
/// instead of to the link below. So a connection to 127.0.0.1, or to the stack's own address,
/// is an ordinary smoltcp exchange (ARP to itself, then TCP) inside one interface and one
/// socket set. Looped frames are not filtered: 127.0.0.1 is legitimate between a stack and
/// itself. They never reach another stack: each stack has its own loopback.
pub struct Loopback<D> {
    inner: D,
    mac: [u8; 6],
    ips: Vec<[u8; 4]>,
    looped: VecDeque<Vec<u8>>,
    /// Frames dropped because [`LOOP_MAX`] were queued.
    pub dropped: u64,
}

impl<D> Loopback<D> {
    pub fn new(inner: D, mac: [u8; 6], ips: Vec<[u8; 4]>) -> Loopback<D> {
        Loopback { inner, mac, ips, looped: VecDeque::new(), dropped: 0 }
    }

    pub fn inner_mut(&mut self) -> &mut D {
        &mut self.inner
    }

    fn is_local_ip(&self, ip: &[u8]) -> bool {
        ip[0] == 127 || self.ips.iter().any(|a| a == ip)
    }

    /// Whether this outgoing frame is for this stack itself.
    fn is_for_us(&self, f: &[u8]) -> bool {
        if f.len() < 14 {
            return false;
        }
        if f[0..6] == self.mac {
            return true;
        }
        f.len() >= 42 && f[12..14] == ETHERTYPE_ARP && self.is_local_ip(&f[38..42])
    }
}

impl<D: Link> Link for Loopback<D> {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        match self.looped.pop_front() {
            Some(f) => Some(f),
            None => self.inner.recv(now),
        }
    }
    fn send(&mut self, mut frame: Vec<u8>) {
        if !self.is_for_us(&frame) {
            self.inner.send(frame);
        } else if self.looped.len() < LOOP_MAX {
            // No NIC sees a looped frame: the sums the stack left to the link are filled here.
            if self.inner.offloads() {
                super::csum::fill(&mut frame);
            }
            self.looped.push_back(frame);
        } else {
            self.dropped += 1;
        }
    }
    fn pending(&self) -> bool {
        !self.looped.is_empty() || self.inner.pending()
    }
    pass_down!(can_send, tx_full, report, offloads, flush);
}
phy_device!([D: Link] Loopback<D>);

// ---- a stack's device ----

/// The link below a stack's loopback and snooping: the root's router, or a container's port.
pub enum Below {
    /// Boxed: a container's stack need not carry a router's room.
    Root(alloc::boxed::Box<Router>),
    Container(Port),
}

impl Below {
    fn link(&mut self) -> &mut dyn Link {
        match self {
            Below::Root(r) => &mut **r,
            Below::Container(p) => p,
        }
    }

    fn link_ref(&self) -> &dyn Link {
        match self {
            Below::Root(r) => &**r,
            Below::Container(p) => p,
        }
    }
}

impl Link for Below {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.link().recv(now)
    }
    fn can_send(&mut self) -> bool {
        self.link().can_send()
    }
    fn send(&mut self, frame: Vec<u8>) {
        self.link().send(frame)
    }
    fn pending(&self) -> bool {
        self.link_ref().pending()
    }
    fn tx_full(&self) -> bool {
        self.link_ref().tx_full()
    }
    fn report(&mut self, now: Instant) {
        self.link().report(now)
    }
    fn offloads(&self) -> bool {
        self.link_ref().offloads()
    }
    fn flush(&mut self) {
        self.link().flush()
    }
}
phy_device!([] Below);

/// A stack's device (the `Gate` is added at poll time).
pub type Dev = Loopback<Snoop<Below>>;

/// The root's router in a stack's device (`None` for a container's).
pub fn router_mut(dev: &mut Dev) -> Option<&mut Router> {
    match dev.inner_mut().inner_mut() {
        Below::Root(r) => Some(r),
        Below::Container(_) => None,
    }
}
