//! Listening TCP ports ([`Listener`], made by `listen`): part of a stack
//! ([`super::stack::Stack`]'s [`Listeners`]), because its task must tend them between received
//! frames.
//!
//! **One LISTEN socket, re-armed.** smoltcp turns a socket in LISTEN into the connection itself
//! when a SYN arrives, so a port can take one new connection per LISTEN socket. The interface
//! is therefore polled one received frame at a time (`poll_ingress_single`), and before each
//! frame every listener that may take a SYN gets a fresh LISTEN socket ("armed") if its last
//! one was taken: a burst of SYNs, however many arrive between two polls, finds a listener for
//! each. Sockets are made when a SYN needs them, not at `listen` (an idle listener costs one
//! socket).
//!
//! **Two queues, as in Linux.** A connection whose SYN arrived waits in the listener's *SYN
//! queue* (SYN-RECEIVED), and moves to its *accept queue* once the handshake is done; `accept`
//! takes from the accept queue only, and only the accept queue is the backlog.
//!
//! - *The accept queue* holds `backlog` connections. While it is full the listener is not
//!   armed and its SYNs are dropped before smoltcp sees them ([`Gate`]), as Linux drops them:
//!   the client retransmits its SYN and gets in once `accept` made room, instead of being reset.
//!   A handshake that was already under way when the queue filled still completes into it:
//!   the queue can hold more than `backlog` by at most the SYN queue. (Linux instead drops
//!   that final ACK, and the client, which believes itself connected, then waits for its data's
//!   retransmissions, backing off for tens of seconds; we measured that stall.)
//! - *The SYN queue* holds at most [`syn_capacity`] connections (the backlog, at least
//!   [`SYN_QUEUE_MIN`]; Linux also bounds it by the backlog), and a connection stays in it at
//!   most [`SYN_RECV_MS`] (Linux keeps trying for a minute, but shortens that when its queue
//!   fills). Spoofed SYNs only ever fill this queue: their SYN-ACKs go to addresses that never
//!   answer, and they can no longer take the backlog's places, as they did when both queues
//!   were one (a real client then waited up to a minute after a flood).
//! - *When the SYN queue is full*, a new SYN takes the place of the oldest half-open
//!   connection, dropped without a reset (its source is most likely forged, and a reset would
//!   go to an innocent host). Linux answers a full SYN queue with SYN cookies, which smoltcp
//!   cannot do, and without them drops the new SYN; but then a flood keeps every real client
//!   out until the flood's half-open connections time out. Replacing the oldest ("recycling the
//!   oldest half-open TCB", RFC 4987 3.4) lets every real SYN in, and its handshake only has to
//!   finish before [`syn_capacity`] more SYNs arrive: at the few thousand frames a second this
//!   guest can take, many round trips. The cost: a burst of real SYNs larger than the SYN
//!   queue loses its oldest handshakes (those clients are reset when their ACK comes).
//!
//! **Memory.** A connection keeps the buffers its LISTEN socket was made with (smoltcp fixes
//! them, and the window scale in the SYN-ACK depends on them): full-size ([`TCP_BUF`]) while
//! fewer than [`FULL_BUF_PENDING`] connections wait in both queues, modest ([`BURST_BUF`])
//! beyond, and small ([`SYN_FLOOD_BUF`]) when made while the SYN queue is full (its SYN will
//! replace a half-open connection: a flood, or a burst beyond the queue). So a listener holds
//! at most `backlog` + 2 x [`syn_capacity`] + 1 sockets, and a flood's steady state costs
//! 8 KiB of buffers per place in the SYN queue. Measured heap per pending connection:
//! 128.7 KiB with full buffers, 32.7 KiB with modest ones.
//!
//! A LISTEN socket's buffers are charged to the kernel-memory budget (`mm::budget`) when it is
//! made. When the budget refuses them the listener stays unarmed, exactly as with a full
//! accept queue: its SYNs wait (the clients retransmit) until memory is free, and the
//! connection then gets in; nothing is reset and nothing panics.
//!
//! All of this runs in the stack's task or a system call, under the stack's lock; nothing here
//! blocks or runs in interrupt context. The stack ([`super::stack::Stack`]) calls these
//! methods with its socket table ([`Sockets`]); listeners know nothing else of it.

use super::device::{phy_device, Link};
use super::stack::{Sockets, TCP_BUF};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use runtime::sync::WaitQueue;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
};

/// TCP buffers (each way) of connections beyond the first [`FULL_BUF_PENDING`] waiting on one
/// listener: a burst costs 32 KiB a connection instead of 128 KiB. (smoltcp fixes a socket's
/// buffers when it is made, so such a connection keeps them once accepted; it still works,
/// with a 16 KiB window.)
pub const BURST_BUF: usize = 16 * 1024;
/// TCP buffers (each way) of a connection whose SYN arrived while the SYN queue was full
/// (see the module docs): a flood's half-open connections cost 8 KiB each. A real client
/// that comes in then works, with a 4 KiB window.
pub const SYN_FLOOD_BUF: usize = 4 * 1024;
/// See [`BURST_BUF`].
pub const FULL_BUF_PENDING: usize = 16;
/// The smallest SYN queue, whatever the backlog: a burst of real SYNs fits.
pub const SYN_QUEUE_MIN: usize = 16;
/// A half-open connection is dropped this long after its SYN (smoltcp has sent its SYN-ACK at
/// 0 and 1 s by then, and a real client its ACK long before).
pub const SYN_RECV_MS: u64 = 3_000;

/// The SYN queue's capacity for a listener with this backlog.
pub fn syn_capacity(backlog: usize) -> usize {
    backlog.max(SYN_QUEUE_MIN)
}

/// A listening TCP port: its SYN queue and accept queue, and the LISTEN socket waiting for the
/// next SYN. Made by `listen`, owned by the listening [`crate::net::socket::Socket`] (which
/// holds its id) and tended by its stack's task.
struct Listener {
    ep: IpListenEndpoint,
    /// The accept queue's capacity.
    backlog: usize,
    /// The socket in LISTEN for the next SYN (`None` while the accept queue is full).
    armed: Option<SocketHandle>,
    /// Connections in their handshake, oldest first, each with the time (ms) its SYN
    /// arrived: at most [`syn_capacity`].
    syn: VecDeque<(SocketHandle, u64)>,
    /// Connections past their handshake, not yet accepted, oldest first.
    accept: VecDeque<SocketHandle>,
    /// Notified when a connection becomes acceptable (`accept` and `poll` wait on it).
    ready: Arc<WaitQueue>,
    /// Some connection was acceptable at the last look (the end of a poll, or an accept).
    /// Waiters only wait when it is false, so a change to true notifies them.
    was_ready: bool,
}

impl Listener {
    fn syn_full(&self) -> bool {
        self.syn.len() >= syn_capacity(self.backlog)
    }
}

/// A connection `accept` may return: the handshake is done. (CLOSE-WAIT too: the client may
/// have sent its request and its FIN before we accepted.)
fn acceptable(st: tcp::State) -> bool {
    !matches!(
        st,
        tcp::State::Listen | tcp::State::SynReceived | tcp::State::Closed | tcp::State::TimeWait
    )
}

/// Every listening port of the stack.
#[derive(Default)]
pub struct Listeners {
    /// By id (the listening socket holds its id).
    map: BTreeMap<u64, Listener>,
    next: u64,
    /// The endpoints of listeners that take no SYN now (no LISTEN socket): their SYNs are
    /// dropped ([`Gate`]). Recomputed before every received frame; kept to reuse its
    /// allocation.
    full: Vec<IpListenEndpoint>,
    /// The earliest time (ms) a half-open connection times out, as of the last full look.
    next_deadline: Option<u64>,
}

impl Listeners {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The device as smoltcp should see it while receiving: `dev`, minus SYNs to listeners
    /// that take none now.
    pub fn gate<'a, D: Link>(&'a self, dev: &'a mut D) -> Gate<'a, D> {
        Gate { dev, full: &self.full }
    }

    /// When the task must look at the SYN queues again (a half-open connection's timeout), in
    /// ms; `None`: no half-open connection.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_deadline
    }

    /// Start listening on `ep` with room for `backlog` connections not yet accepted; `ready`
    /// is notified when one can be accepted. Returns the listener's id.
    pub fn add(
        &mut self,
        sockets: &mut Sockets,
        ep: IpListenEndpoint,
        backlog: usize,
        ready: Arc<WaitQueue>,
        ms: u64,
    ) -> u64 {
        let id = self.next;
        self.next += 1;
        let l = Listener {
            ep,
            backlog: backlog.max(1),
            armed: None,
            syn: VecDeque::new(),
            accept: VecDeque::new(),
            ready,
            was_ready: false,
        };
        self.map.insert(id, l);
        self.tend(sockets, ms, false);
        id
    }

    /// `listen` again on a listening socket: a new backlog (connections already waiting
    /// beyond it stay).
    pub fn set_backlog(&mut self, sockets: &mut Sockets, id: u64, backlog: usize, ms: u64) {
        if let Some(l) = self.map.get_mut(&id) {
            l.backlog = backlog.max(1);
        }
        self.tend(sockets, ms, false);
    }

    /// Stop listening: the half-open connections and the LISTEN socket are freed; the
    /// connections waiting for `accept` are returned, for the stack to close.
    pub fn remove(&mut self, sockets: &mut Sockets, id: u64) -> VecDeque<SocketHandle> {
        let Some(l) = self.map.remove(&id) else { return VecDeque::new() };
        if let Some(h) = l.armed {
            sockets.remove(h);
        }
        for (h, _) in l.syn {
            sockets.remove(h);
        }
        l.accept
    }

    /// Take the oldest acceptable connection of listener `id` (`None`: none yet). Its place
    /// in the accept queue frees at once, so a listener that was full is armed again here.
    pub fn accept_ready(
        &mut self,
        sockets: &mut Sockets,
        id: u64,
        ms: u64,
    ) -> Option<SocketHandle> {
        let l = self.map.get_mut(&id)?;
        let i = l.accept.iter().position(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()))?;
        let h = l.accept.remove(i).expect("index in range");
        l.was_ready = l.accept.iter().any(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()));
        self.tend(sockets, ms, false);
        Some(h)
    }

    /// Give back a connection [`Listeners::accept_ready`] returned (`accept` found no free
    /// descriptor for it): it is first in line again. `Err(h)`: the listener is gone.
    pub fn requeue(&mut self, id: u64, h: SocketHandle) -> Result<(), SocketHandle> {
        let l = self.map.get_mut(&id).ok_or(h)?;
        l.accept.push_front(h);
        l.was_ready = true;
        crate::net::drive::notify(&l.ready);
        Ok(())
    }

    /// Whether listener `id` has a connection to accept.
    pub fn is_ready(&self, sockets: &Sockets, id: u64) -> bool {
        self.map.get(&id).is_some_and(|l| {
            l.accept.iter().any(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()))
        })
    }

    /// Keep every listener armed while its accept queue has room, and note the others for the
    /// [`Gate`]. Before every received frame (`full_scan` false): finished handshakes move to
    /// the accept queue if it may be full (so that a full one is known before the next SYN),
    /// a LISTEN socket that took a SYN joins the SYN queue (replacing the oldest half-open
    /// connection if the queue is full), and a listener with room and no LISTEN socket gets a
    /// new one. After a poll (`full_scan`): also drop the half-open connections past
    /// [`SYN_RECV_MS`] and the connections reset before they were accepted, take back a
    /// half-open one that a RST returned to LISTEN, and notify the listeners that have a
    /// connection to accept since the last look.
    pub fn tend(&mut self, sockets: &mut Sockets, ms: u64, full_scan: bool) {
        let mut next_deadline: Option<u64> = None;
        self.full.clear();
        for l in self.map.values_mut() {
            // Before a frame only when the finished handshakes could fill the accept queue (so
            // that a full one takes no more SYNs); otherwise the look after the poll will do.
            if full_scan || l.accept.len() + l.syn.len() >= l.backlog {
                let mut i = 0;
                while let Some(&(h, since)) = l.syn.get(i) {
                    match sockets.get::<tcp::Socket>(h).state() {
                        tcp::State::SynReceived if !full_scan || ms < since + SYN_RECV_MS => {
                            i += 1;
                            continue;
                        }
                        tcp::State::Listen => {
                            // A RST during the handshake sent it back to LISTEN.
                            if l.armed.is_none() {
                                l.armed = Some(h);
                            } else {
                                sockets.remove(h);
                            }
                        }
                        st if acceptable(st) => l.accept.push_back(h),
                        // Closed, or timed out: dropped without a reset (see the module docs).
                        _ => sockets.remove(h),
                    }
                    l.syn.remove(i);
                }
            }
            if let Some(h) = l.armed {
                if sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen {
                    l.armed = None;
                    if l.syn_full() {
                        // Recycle the oldest half-open connection (see the module docs). The
                        // look above took out every finished handshake: a full SYN queue is
                        // never short of the backlog, so the look happened.
                        if let Some((old, _)) = l.syn.pop_front() {
                            sockets.remove(old);
                        }
                    }
                    l.syn.push_back((h, ms));
                }
            }
            if full_scan {
                let mut ready = false;
                l.accept.retain(|&h| match sockets.get::<tcp::Socket>(h).state() {
                    tcp::State::Closed | tcp::State::TimeWait => {
                        sockets.remove(h);
                        false
                    }
                    st => {
                        ready |= acceptable(st);
                        true
                    }
                });
                if ready && !l.was_ready {
                    crate::net::drive::notify(&l.ready);
                }
                l.was_ready = ready;
                if let Some(&(_, since)) = l.syn.front() {
                    let d = since + SYN_RECV_MS;
                    next_deadline = Some(next_deadline.map_or(d, |n| n.min(d)));
                }
            }
            if l.accept.len() >= l.backlog {
                // A full accept queue takes no SYN: without a LISTEN socket, the gate drops them.
                if let Some(h) = l.armed.take() {
                    sockets.remove(h);
                }
            } else if l.armed.is_none() {
                let buf = if l.syn_full() {
                    SYN_FLOOD_BUF
                } else if l.accept.len() + l.syn.len() < FULL_BUF_PENDING {
                    TCP_BUF
                } else {
                    BURST_BUF
                };
                // Refused by the kernel-memory budget: not armed, so the gate holds its SYNs
                // back (the clients retransmit) until memory is free again.
                if let Some(h) = sockets.new_tcp(buf) {
                    let _ = sockets.get_mut::<tcp::Socket>(h).listen(l.ep);
                    l.armed = Some(h);
                }
            }
            if l.armed.is_none() {
                self.full.push(l.ep);
            }
        }
        if full_scan {
            self.next_deadline = next_deadline;
        }
    }
}

/// The device as smoltcp sees it while receiving: the stack's device, except that a SYN for
/// a listener that takes none now (its accept queue is full, or the budget refused its socket)
/// arrives as an empty frame (which smoltcp ignores), instead of reaching smoltcp, which would
/// answer it with a RST for want of a LISTEN socket. A layer like the others
/// (`super::device`), over the device it borrows for one poll.
pub struct Gate<'a, D> {
    dev: &'a mut D,
    full: &'a [IpListenEndpoint],
}

impl<D: Link> Link for Gate<'_, D> {
    fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        let f = self.dev.recv(now)?;
        match !self.full.is_empty() && syn_to(&f, self.full) {
            true => Some(Vec::new()),
            false => Some(f),
        }
    }
    fn can_send(&mut self) -> bool {
        self.dev.can_send()
    }
    fn send(&mut self, frame: Vec<u8>) {
        self.dev.send(frame)
    }
    fn pending(&self) -> bool {
        self.dev.pending()
    }
    fn tx_full(&self) -> bool {
        self.dev.tx_full()
    }
    fn offloads(&self) -> bool {
        self.dev.offloads()
    }
    fn flush(&mut self) {
        self.dev.flush()
    }
}
phy_device!(['a, D: Link] Gate<'a, D>);

/// Whether `frame` (Ethernet) is a TCP SYN (no ACK, no RST) for one of `eps`.
fn syn_to(frame: &[u8], eps: &[IpListenEndpoint]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return false };
    // A later fragment's "TCP header" would be payload (the NIC device drops fragments).
    if ip.next_header() != IpProtocol::Tcp || ip.frag_offset() != 0 {
        return false;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else { return false };
    if !tcp.syn() || tcp.ack() || tcp.rst() {
        return false;
    }
    let dst = IpAddress::Ipv4(ip.dst_addr());
    eps.iter().any(|ep| ep.port == tcp.dst_port() && ep.addr.is_none_or(|a| a == dst))
}
