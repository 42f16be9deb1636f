//! smoltcp's `phy::Device` over the E1000, with the machine's own addresses looped back.
//!
//! - Receive: a frame looped back by this device (below) first, else the next frame from the
//!   NIC's ring, copied out ([`RxFrame`] owns it).
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

pub struct NicDevice {
    nic: &'static Nic,
    mac: [u8; 6],
    /// The interface's own IPv4 address (127.0.0.0/8 is always local too).
    ip: [u8; 4],
    looped: VecDeque<Vec<u8>>,
    /// The last `transmit` found the NIC's ring full.
    pub tx_full: bool,
    pub loop_dropped: u64,
}

impl NicDevice {
    pub fn new(nic: &'static Nic, ip: [u8; 4]) -> Self {
        NicDevice {
            nic,
            mac: nic.mac(),
            ip,
            looped: VecDeque::new(),
            tx_full: false,
            loop_dropped: 0,
        }
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

    fn receive(&mut self, _now: Instant) -> Option<(RxFrame, TxFrame<'_>)> {
        let frame = match self.looped.pop_front() {
            Some(f) => f,
            None => {
                let f = self.nic.try_receive()?;
                super::stack::snoop_rx(&f);
                f
            }
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
