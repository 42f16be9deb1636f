//! Listening TCP ports ([`Listener`], made by `listen`): part of the [`Stack`], because the
//! network task must tend them between received frames.
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
//! All of this runs in the network task or a system call, under the stack lock
//! ([`super::stack::with`]); nothing here blocks or runs in interrupt context.

use super::device::NicDevice;
use super::stack::{new_tcp_socket, now_ms, remove_socket, Stack, TCP_BUF};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use runtime::sync::WaitQueue;
use smoltcp::iface::SocketHandle;
use smoltcp::phy::{self, Device, DeviceCapabilities};
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
/// holds its id) and tended by the network task.
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
    pub fn gate<'a>(&'a self, dev: &'a mut NicDevice) -> Gate<'a> {
        Gate { dev, full: &self.full }
    }

    /// When the network task must look at the SYN queues again (a half-open connection's
    /// timeout), in ms; `None`: no half-open connection.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_deadline
    }
}

impl Stack {
    /// Start listening on `ep` with room for `backlog` connections not yet accepted; `ready`
    /// is notified when one can be accepted. Returns the listener's id.
    pub fn add_listener(
        &mut self,
        ep: IpListenEndpoint,
        backlog: usize,
        ready: Arc<WaitQueue>,
    ) -> u64 {
        let id = self.listen.next;
        self.listen.next += 1;
        let l = Listener {
            ep,
            backlog: backlog.max(1),
            armed: None,
            syn: VecDeque::new(),
            accept: VecDeque::new(),
            ready,
            was_ready: false,
        };
        self.listen.map.insert(id, l);
        self.tend_listeners(now_ms(), false);
        id
    }

    /// `listen` again on a listening socket: a new backlog (connections already waiting
    /// beyond it stay).
    pub fn set_backlog(&mut self, id: u64, backlog: usize) {
        if let Some(l) = self.listen.map.get_mut(&id) {
            l.backlog = backlog.max(1);
        }
        self.tend_listeners(now_ms(), false);
    }

    /// Stop listening: the connections waiting for `accept` are closed, the half-open ones
    /// and the LISTEN socket freed.
    pub fn remove_listener(&mut self, id: u64) {
        let Some(l) = self.listen.map.remove(&id) else { return };
        if let Some(h) = l.armed {
            remove_socket(&mut self.sockets, &mut self.charges, h);
        }
        for (h, _) in l.syn {
            remove_socket(&mut self.sockets, &mut self.charges, h);
        }
        for h in l.accept {
            self.close_tcp(h);
        }
    }

    /// Take the oldest acceptable connection of listener `id` (`None`: none yet). Its place
    /// in the accept queue frees at once, so a listener that was full is armed again here.
    pub fn accept_ready(&mut self, id: u64) -> Option<SocketHandle> {
        let l = self.listen.map.get_mut(&id)?;
        let sockets = &self.sockets;
        let i = l.accept.iter().position(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()))?;
        let h = l.accept.remove(i).expect("index in range");
        l.was_ready = l.accept.iter().any(|&h| acceptable(sockets.get::<tcp::Socket>(h).state()));
        self.tend_listeners(now_ms(), false);
        Some(h)
    }

    /// Give back a connection [`Stack::accept_ready`] returned (`accept` found no free
    /// descriptor for it): it is first in line again.
    pub fn requeue(&mut self, id: u64, h: SocketHandle) {
        match self.listen.map.get_mut(&id) {
            Some(l) => {
                l.accept.push_front(h);
                l.was_ready = true;
                l.ready.notify_all();
            }
            None => self.close_tcp(h),
        }
    }

    /// Whether listener `id` has a connection to accept.
    pub fn listener_ready(&self, id: u64) -> bool {
        self.listen.map.get(&id).is_some_and(|l| {
            l.accept.iter().any(|&h| acceptable(self.sockets.get::<tcp::Socket>(h).state()))
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
    pub(super) fn tend_listeners(&mut self, ms: u64, full_scan: bool) {
        let (sockets, charges) = (&mut self.sockets, &mut self.charges);
        let mut next_deadline: Option<u64> = None;
        self.listen.full.clear();
        for l in self.listen.map.values_mut() {
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
                                remove_socket(sockets, charges, h);
                            }
                        }
                        st if acceptable(st) => l.accept.push_back(h),
                        // Closed, or timed out: dropped without a reset (see the module docs).
                        _ => remove_socket(sockets, charges, h),
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
                            remove_socket(sockets, charges, old);
                        }
                    }
                    l.syn.push_back((h, ms));
                }
            }
            if full_scan {
                let mut ready = false;
                l.accept.retain(|&h| match sockets.get::<tcp::Socket>(h).state() {
                    tcp::State::Closed | tcp::State::TimeWait => {
                        remove_socket(sockets, charges, h);
                        false
                    }
                    st => {
                        ready |= acceptable(st);
                        true
                    }
                });
                if ready && !l.was_ready {
                    l.ready.notify_all();
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
                    remove_socket(sockets, charges, h);
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
                if let Some(h) = new_tcp_socket(sockets, charges, buf) {
                    let _ = sockets.get_mut::<tcp::Socket>(h).listen(l.ep);
                    l.armed = Some(h);
                }
            }
            if l.armed.is_none() {
                self.listen.full.push(l.ep);
            }
        }
        if full_scan {
            self.listen.next_deadline = next_deadline;
        }
    }
}

/// The device as smoltcp sees it while receiving: the NIC, except that a SYN for a listener
/// that takes none now (its accept queue is full, or the budget refused its socket) arrives as
/// an empty frame (which smoltcp ignores), instead of reaching smoltcp, which would answer it
/// with a RST for want of a LISTEN socket.
pub struct Gate<'a> {
    dev: &'a mut NicDevice,
    full: &'a [IpListenEndpoint],
}

pub struct GateRx<'a> {
    rx: <NicDevice as Device>::RxToken<'a>,
    full: &'a [IpListenEndpoint],
}

impl Device for Gate<'_> {
    type RxToken<'b>
        = GateRx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = <NicDevice as Device>::TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, t: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.dev.receive(t)?;
        Some((GateRx { rx, full: self.full }, tx))
    }

    fn transmit(&mut self, t: Instant) -> Option<Self::TxToken<'_>> {
        self.dev.transmit(t)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        self.dev.capabilities()
    }
}

impl phy::RxToken for GateRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let full = self.full;
        phy::RxToken::consume(self.rx, |frame| {
            if !full.is_empty() && syn_to(frame, full) {
                f(&[])
            } else {
                f(frame)
            }
        })
    }
}

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
