//! Listening TCP ports ([`Listener`], made by `listen`): part of the [`Stack`], because the
//! network task must tend them between received frames. smoltcp turns a socket in LISTEN into the connection itself when a SYN
//! arrives, so a port can take one new connection per LISTEN socket. The interface is therefore
//! polled one received frame at a time (`poll_ingress_single`), and before each frame every
//! listener whose backlog has room gets a fresh LISTEN socket ("armed") if its last one was
//! taken: a burst of SYNs, however many arrive between two polls, finds a listener for each,
//! up to the backlog. A listener whose backlog is full has no LISTEN socket, and its SYNs are
//! dropped before smoltcp sees them ([`Gate`]), as Linux drops them when the accept queue is
//! full: the client retransmits its SYN and gets in once `accept` made room, instead of being
//! reset. Sockets are made when a SYN needs them, not at `listen` (an idle listener costs one
//! socket), and buffers are full-size for the first [`FULL_BUF_PENDING`] pending connections of
//! a port and modest ([`BURST_BUF`]) beyond. Measured heap per pending connection: 128.7 KiB
//! with full buffers, 32.7 KiB with modest ones; so a full backlog of 128 costs about 5.7 MiB
//! rather than 16 MiB, and an idle listener 129 KiB (it was 2 MiB for the old fixed pool of 16
//! LISTEN sockets).
//!
//! A LISTEN socket's buffers are charged to the kernel-memory budget (`mm::budget`) when it is
//! made. When the budget refuses them the listener stays unarmed, exactly as with a full
//! backlog: its SYNs wait (the clients retransmit) until memory is free, and the connection then
//! gets in; nothing is reset and nothing panics.

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
/// See [`BURST_BUF`].
pub const FULL_BUF_PENDING: usize = 16;
/// A connection still in SYN-RECEIVED this long after its SYN is dropped (its client went
/// away mid-handshake), so half-open connections cannot hold a backlog for ever. (Linux gives
/// up after 5 SYN-ACK retransmissions, about a minute.)
const HALF_OPEN_MS: u64 = 60_000;

/// A listening TCP port: its connections not yet accepted, and the LISTEN socket waiting for
/// the next SYN. Made by `listen`, owned by the listening [`crate::net::socket::Socket`]
/// (which holds its id) and tended by the network task.
struct Listener {
    ep: IpListenEndpoint,
    /// Connections not yet accepted, at most.
    backlog: usize,
    /// The socket in LISTEN for the next SYN (`None` while the backlog is full).
    armed: Option<SocketHandle>,
    /// Connections not yet accepted (SYN-RECEIVED onward), oldest first, each with the time
    /// (ms) it left LISTEN.
    pending: VecDeque<(SocketHandle, u64)>,
    /// Notified when a connection becomes acceptable (`accept` and `poll` wait on it).
    ready: Arc<WaitQueue>,
    /// Some pending connection was acceptable at the last look (the end of a poll, or an
    /// accept). Waiters only wait when it is false, so a change to true notifies them.
    was_ready: bool,
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
    /// The endpoints of listeners with a full backlog: their SYNs are dropped ([`Gate`]).
    /// Recomputed before every received frame; kept to reuse its allocation.
    full: Vec<IpListenEndpoint>,
}

impl Listeners {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The device as smoltcp should see it while receiving: `dev`, minus SYNs to full
    /// listeners.
    pub fn gate<'a>(&'a self, dev: &'a mut NicDevice) -> Gate<'a> {
        Gate { dev, full: &self.full }
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
            pending: VecDeque::new(),
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

    /// Stop listening: the waiting connections are closed, the LISTEN socket freed.
    pub fn remove_listener(&mut self, id: u64) {
        let Some(l) = self.listen.map.remove(&id) else { return };
        if let Some(h) = l.armed {
            remove_socket(&mut self.sockets, &mut self.charges, h);
        }
        for (h, _) in l.pending {
            self.close_tcp(h);
        }
    }

    /// Take the oldest acceptable connection of listener `id` (`None`: none yet). Its place
    /// in the backlog frees at once, so a listener that was full is armed again here.
    pub fn accept_ready(&mut self, id: u64) -> Option<SocketHandle> {
        let l = self.listen.map.get_mut(&id)?;
        let sockets = &self.sockets;
        let i = l
            .pending
            .iter()
            .position(|&(h, _)| acceptable(sockets.get::<tcp::Socket>(h).state()))?;
        let (h, _) = l.pending.remove(i).expect("index in range");
        l.was_ready =
            l.pending.iter().any(|&(h, _)| acceptable(sockets.get::<tcp::Socket>(h).state()));
        self.tend_listeners(now_ms(), false);
        Some(h)
    }

    /// Give back a connection [`Stack::accept_ready`] returned (`accept` found no free
    /// descriptor for it): it is first in line again.
    pub fn requeue(&mut self, id: u64, h: SocketHandle) {
        match self.listen.map.get_mut(&id) {
            Some(l) => {
                l.pending.push_front((h, now_ms()));
                l.was_ready = true;
                l.ready.notify_all();
            }
            None => self.close_tcp(h),
        }
    }

    /// Whether listener `id` has a connection to accept.
    pub fn listener_ready(&self, id: u64) -> bool {
        self.listen.map.get(&id).is_some_and(|l| {
            l.pending.iter().any(|&(h, _)| acceptable(self.sockets.get::<tcp::Socket>(h).state()))
        })
    }

    /// Keep every listener armed, and note the full ones for the [`Gate`]. A LISTEN socket
    /// that took a SYN joins the pending connections; a listener with room and no LISTEN
    /// socket gets a new one. With `full_scan` (after a poll), also look at every pending
    /// connection: drop the ones reset before they were accepted and the half-open ones
    /// past [`HALF_OPEN_MS`], take back a SYN-RECEIVED one that a RST returned to LISTEN,
    /// and notify the listeners that have a connection to accept since the last look.
    pub(super) fn tend_listeners(&mut self, ms: u64, full_scan: bool) {
        let (sockets, charges) = (&mut self.sockets, &mut self.charges);
        let mut close = Vec::new();
        self.listen.full.clear();
        for l in self.listen.map.values_mut() {
            if let Some(h) = l.armed {
                if sockets.get::<tcp::Socket>(h).state() != tcp::State::Listen {
                    l.armed = None;
                    l.pending.push_back((h, ms));
                }
            }
            if full_scan {
                let mut ready = false;
                l.pending.retain(|&(h, since)| {
                    let t = sockets.get_mut::<tcp::Socket>(h);
                    match t.state() {
                        tcp::State::Closed | tcp::State::TimeWait => {
                            remove_socket(sockets, charges, h);
                            false
                        }
                        tcp::State::Listen => {
                            // A RST during the handshake sent it back to LISTEN.
                            if l.armed.is_none() {
                                l.armed = Some(h);
                            } else {
                                remove_socket(sockets, charges, h);
                            }
                            false
                        }
                        tcp::State::SynReceived if ms >= since + HALF_OPEN_MS => {
                            close.push(h);
                            false
                        }
                        st => {
                            ready |= acceptable(st);
                            true
                        }
                    }
                });
                if ready && !l.was_ready {
                    l.ready.notify_all();
                }
                l.was_ready = ready;
            }
            if l.armed.is_none() && l.pending.len() < l.backlog {
                let buf = if l.pending.len() < FULL_BUF_PENDING { TCP_BUF } else { BURST_BUF };
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
        for h in close {
            self.close_tcp(h);
        }
    }
}

/// The device as smoltcp sees it while receiving: the NIC, except that a SYN for a listener
/// whose backlog is full arrives as an empty frame (which smoltcp ignores), instead of
/// reaching smoltcp, which would answer it with a RST for want of a LISTEN socket.
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
    // A later fragment's "TCP header" would be payload.
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
