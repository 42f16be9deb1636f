//! smoltcp's `phy::Device` over the E1000, with the machine's own addresses looped back.
//!
//! - Receive: a frame looped back by this device (below) first, else the next frame from the
//!   NIC's ring, copied out ([`RxFrame`] owns it), that passes the receive filter
//!   ([`super::filter`]): martians (loopback or our own address claimed by the wire, ARP that
//!   would map them to a stranger's MAC...) and IP fragments are dropped here, counted
//!   ([`NicDevice::rx_martians`], [`NicDevice::rx_fragments`]) and reported on the console at
//!   most once every [`REPORT_MS`] ([`NicDevice::report`]). Looped-back frames are not
//!   filtered: 127.0.0.1 is legitimate between the machine and itself.
//! - Transmit: a [`TxFrame`] gets a buffer from smoltcp and hands the frame to the NIC's ring.
//!   When the ring is full, `transmit` returns `None` and records it ([`NicDevice::tx_full`]):
//!   the network task then also waits on the NIC's `poll_tx_ready`.
//!
//! Loopback (127.0.0.0/8 and the interface's own address): smoltcp 0.14 has no internal
//! delivery to its own addresses, so this device does it. A frame the interface sends to its
//! own MAC, or an ARP packet asking for one of its own addresses, never reaches the wire: it
//! goes to a queue that `receive` drains first. So a connection to 127.0.0.1 (or 10.0.2.15)
//! is an ordinary smoltcp exchange (ARP to itself, then TCP) inside one interface and one
//! socket set, served by the same task as the NIC; listeners need no second copy.

use super::e1000::Nic;
use super::filter::{Local, Verdict};
use crate::kprintln;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Largest Ethernet frame (no CRC).
pub const MTU: usize = 1514;
/// Most looped-back frames queued at once (more are dropped, as a full NIC ring would).
const LOOP_MAX: usize = 256;

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
/// The receive filter reports its drops on the console at most this often (a flood of
/// martians must not become a flood of lines).
pub const REPORT_MS: i64 = 10_000;

pub struct NicDevice {
    nic: &'static Nic,
    mac: [u8; 6],
    /// The interface's own IPv4 address (127.0.0.0/8 is always local too).
    ip: [u8; 4],
    /// The receive filter, which knows the address and the subnet.
    filter: Local,
    looped: VecDeque<Vec<u8>>,
    /// The last `transmit` found the NIC's ring full.
    pub tx_full: bool,
    pub loop_dropped: u64,
    /// Frames from the wire the receive filter dropped since boot: martians, IP fragments.
    pub rx_martians: u64,
    pub rx_fragments: u64,
    report: Report,
}

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

impl NicDevice {
    pub fn new(nic: &'static Nic, ip: [u8; 4], prefix: u8) -> Self {
        NicDevice {
            nic,
            mac: nic.mac(),
            ip,
            filter: Local::new(ip, prefix),
            looped: VecDeque::new(),
            tx_full: false,
            loop_dropped: 0,
            rx_martians: 0,
            rx_fragments: 0,
            report: Report::default(),
        }
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
        self.report(now);
    }

    /// Print the drops not yet reported, unless a report was printed less than [`REPORT_MS`]
    /// ago (the first drop is reported at once; the network task calls this after every poll,
    /// so the rest of a burst is reported once the time has come).
    pub fn report(&mut self, now: Instant) {
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

    /// Looped-back frames wait to be received (the task polls again at once).
    pub fn loop_pending(&self) -> bool {
        !self.looped.is_empty()
    }

    fn is_local_ip(&self, ip: &[u8]) -> bool {
        ip[0] == 127 || ip == self.ip
    }

    /// Whether this outgoing frame is for this machine itself.
    fn is_for_us(&self, f: &[u8]) -> bool {
        if f.len() < 14 {
            return false;
        }
        if f[0..6] == self.mac {
            return true;
        }
        f.len() >= 42 && f[12..14] == ETHERTYPE_ARP && self.is_local_ip(&f[38..42])
    }

    fn send(&mut self, frame: Vec<u8>) {
        if self.is_for_us(&frame) {
            if self.looped.len() < LOOP_MAX {
                self.looped.push_back(frame);
            } else {
                self.loop_dropped += 1;
            }
        } else {
            // A slot was free when the token was handed out, and only this task transmits
            // through the stack; a failure drops the frame (TCP retransmits).
            let _ = self.nic.transmit(&frame);
        }
    }
}

/// A received frame, owned.
pub struct RxFrame(Vec<u8>);

/// Permission to transmit one frame.
pub struct TxFrame<'a>(&'a mut NicDevice);

impl phy::RxToken for RxFrame {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxFrame<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.send(buf);
        r
    }
}

impl phy::Device for NicDevice {
    type RxToken<'a> = RxFrame;
    type TxToken<'a> = TxFrame<'a>;

    fn receive(&mut self, now: Instant) -> Option<(RxFrame, TxFrame<'_>)> {
        let frame = match self.looped.pop_front() {
            Some(f) => f,
            None => loop {
                let f = self.nic.try_receive()?;
                match self.filter.check(&f) {
                    Verdict::Pass => {
                        super::stack::snoop_rx(&f);
                        break f;
                    }
                    v => self.dropped(v, now),
                }
            },
        };
        Some((RxFrame(frame), TxFrame(self)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxFrame<'_>> {
        if self.nic.tx_in_flight() >= drivers::e1000::TX_RING - 1 {
            self.tx_full = true;
            return None;
        }
        self.tx_full = false;
        Some(TxFrame(self))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps
    }
}
