//! The root's router: the link below the root stack's loopback, made of the wire (the E1000
//! behind its receive filter) and the root's port on the bridge, with the published ports'
//! translation ([`Nat`], `super::nat`). A `phy::Device` like every layer (`super::device`).
//!
//! - **Sending** (the root's stack): by destination ([`super::nat::to_bridge`]): an IPv4
//!   packet or an ARP request for the container network goes to the bridge, everything else
//!   to the wire.
//! - **Receiving**: from the wire and the bridge in turn (the other goes first next time, so
//!   neither starves the other). A frame from the wire to a published port is rewritten for
//!   its container and handed to the bridge, never to the root's stack; a frame from the
//!   bridge for an address that is not the root's is rewritten for the wire if it answers
//!   through a published port, and dropped otherwise (no general forwarding). Everything else
//!   goes up to the root's stack. `recv` returns the first frame for the stack, forwarding
//!   what comes before it.
//!
//! A frame for the wire that finds the NIC's transmit ring full waits in the router (one
//! frame; the bridge's queue holds what follows) until a slot frees, as smoltcp's own frames
//! wait (`can_send`): dropping them made a burst of answers from containers (50 connections'
//! SYN-ACKs at once, for a ring of 32) retransmit with growing backoff, for tens of seconds.
//!
//! Under the root stack's lock, like the other layers; it takes the bridge's lock (inside
//! [`Port`]) and the NIC's rings, never a stack's lock.

use super::bridge::BRIDGE;
use super::csum;
use super::device::{phy_device, Filter, Link, Port, Wire};
use super::nat::{self, Inbound, Nat};
use abi::syscall::ns::ROOT;
use alloc::vec::Vec;
use smoltcp::time::Instant;

pub struct Router {
    wire: Filter<Wire>,
    port: Port,
    pub nat: Nat,
    /// A frame from the bridge, translated for the wire, that found the NIC's transmit ring
    /// full: it goes first once a slot is free, and until then nothing more is taken from
    /// the bridge (whose queue then holds the rest, and drops beyond its bound), so that a
    /// burst of answers from containers waits for the ring instead of being lost to it.
    held: Option<Vec<u8>>,
    /// Which link `recv` looks at first next time.
    wire_first: bool,
    /// Frames translated: wire to a container, a container to the wire; frames from the
    /// bridge refused (not for the root, not from a published endpoint), and frames from the
    /// wire with bad checksums for a published port.
    pub stats: RouterStats,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct RouterStats {
    pub inbound: u64,
    pub outbound: u64,
    pub refused: u64,
    pub dropped: u64,
    /// Frames from the bridge for the root with a bad checksum.
    pub bad_csum: u64,
}

impl Router {
    pub fn new(wire: Filter<Wire>, port: Port, nat: Nat) -> Router {
        Router { wire, port, nat, held: None, wire_first: true, stats: RouterStats::default() }
    }

    /// A frame from the wire: `Some` if it is the stack's.
    fn take_from_wire(&mut self, mut f: Vec<u8>) -> Option<Vec<u8>> {
        match self.nat.inbound(&mut f) {
            Inbound::Stack => return Some(f),
            Inbound::Container(_) => {
                self.stats.inbound += 1;
                BRIDGE.forward(ROOT, f);
            }
            Inbound::Drop => self.stats.dropped += 1,
        }
        None
    }

    /// A frame from the bridge: `Some` if it is the stack's.
    fn take_from_bridge(&mut self, mut f: Vec<u8>) -> Option<Vec<u8>> {
        if self.nat.for_root(&f) {
            // The stack above verifies nothing when the wire offloads (`device`, "Checksums").
            if self.wire.offloads() && !csum::verify(&f) {
                self.stats.bad_csum += 1;
                return None;
            }
            return Some(f);
        }
        if !self.nat.outbound(&mut f) {
            self.stats.refused += 1;
        } else if self.wire.can_send() {
            self.stats.outbound += 1;
            self.wire.send(f);
        } else {
            self.held = Some(f);
        }
        None
    }

    /// Send the held frame if the ring has room now; whether the bridge may be read.
    fn send_held(&mut self) -> bool {
        let Some(f) = self.held.take() else { return true };
        if self.wire.can_send() {
            self.stats.outbound += 1;
            self.wire.send(f);
            true
        } else {
            // The task waits for a free slot (`can_send` noted the full ring).
            self.held = Some(f);
            false
        }
    }
}

impl Link for Router {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        let (mut wire_empty, mut port_empty) = (false, !self.send_held());
        while !(wire_empty && port_empty) {
            let from_wire = !wire_empty && (port_empty || self.wire_first);
            self.wire_first = !from_wire;
            let got = if from_wire {
                match self.wire.recv(now) {
                    Some(f) => self.take_from_wire(f),
                    None => {
                        wire_empty = true;
                        None
                    }
                }
            } else {
                match self.port.recv(now) {
                    Some(f) => {
                        let got = self.take_from_bridge(f);
                        port_empty = self.held.is_some();
                        got
                    }
                    None => {
                        port_empty = true;
                        None
                    }
                }
            };
            if got.is_some() {
                return got;
            }
        }
        None
    }

    fn can_send(&mut self) -> bool {
        self.wire.can_send()
    }

    fn send(&mut self, mut frame: Vec<u8>) {
        if nat::to_bridge(&frame) {
            // No NIC on the bridge: the sums the stack left to the wire are filled here.
            if self.wire.offloads() {
                csum::fill(&mut frame);
            }
            self.port.send(frame);
        } else {
            self.wire.send(frame);
        }
    }

    fn pending(&self) -> bool {
        self.wire.pending()
    }

    fn tx_full(&self) -> bool {
        self.wire.tx_full() || self.held.is_some()
    }

    fn report(&mut self, now: Instant) {
        self.wire.report(now);
        self.port.report(now);
    }

    fn offloads(&self) -> bool {
        self.wire.offloads()
    }

    fn flush(&mut self) {
        self.wire.flush()
    }
}
phy_device!([] Router);
