//! The TCP/IP stack: one smoltcp [`Interface`] over the E1000 ([`NicDevice`], which also
//! loops back the machine's own addresses), one [`SocketSet`], and one executor task that
//! drives them.
//!
//! The task's loop:
//! 1. take a [`KICK`] ticket, then, under the stack lock, poll the interface with the real
//!    time ([`crate::time::now_ns`]) and ask smoltcp for its `poll_delay`; free the sockets
//!    whose graceful close finished;
//! 2. release the lock and wait for the first of: a received frame (the NIC's receive waker,
//!    woken by its interrupt), a free transmit slot (only after a `transmit` found the ring
//!    full), a kick from a system call (data queued, socket closed, connect started...), or
//!    a timer armed for `poll_delay` (none when smoltcp has nothing timed). It never spins:
//!    with nothing to do it sleeps on wakers only.
//!
//! Listening ports ([`Listener`], made by `listen`) live here too, because the task must tend
//! them between frames. smoltcp turns a socket in LISTEN into the connection itself when a SYN
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
//! The lock ([`with`]) is a spin lock held for short sections only (one poll, one socket
//! operation); never across an `await`. Kernel code is not preempted, so a holder always
//! finishes before anyone else spins on it.
//!
//! `arping` support: every ARP reply received is noted ([`snoop_rx`]) so that
//! [`arping`] can send its own request on the NIC and wait for the answer.

use super::device::NicDevice;
use super::e1000::Nic;
use crate::exec::{timeout_ms, EXECUTOR};
use crate::kprintln;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;
use runtime::sync::WaitQueue;
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, Device, DeviceCapabilities};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, Ipv4Address,
};
use spin::{Mutex, Once};

/// Defaults: QEMU's user network.
pub const DEFAULT_IP: [u8; 4] = [10, 0, 2, 15];
pub const DEFAULT_PREFIX: u8 = 24;
pub const DEFAULT_GW: [u8; 4] = [10, 0, 2, 2];

/// How long a closed TCP socket may linger in the set (FIN exchange, TIME-WAIT) before it is
/// aborted and freed anyway.
const CLOSE_LINGER_MS: u64 = 30_000;

/// TCP buffers (each way) of connected sockets, and of the first [`FULL_BUF_PENDING`]
/// connections waiting on a listener.
pub const TCP_BUF: usize = 64 * 1024;
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

/// A TCP socket with `buf` bytes of buffer each way, Nagle off.
pub fn new_tcp_socket(sockets: &mut SocketSet<'static>, buf: usize) -> SocketHandle {
    let mut t = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    t.set_nagle_enabled(false);
    sockets.add(t)
}

pub struct Stack {
    pub iface: Interface,
    pub dev: NicDevice,
    pub sockets: SocketSet<'static>,
    /// Bound ports: (is_tcp, port).
    ports: BTreeMap<(bool, u16), ()>,
    next_ephemeral: u16,
    /// TCP sockets whose file was closed: freed once closed (or at the deadline).
    closing: Vec<(SocketHandle, u64)>,
    /// Listening ports, by id.
    listeners: BTreeMap<u64, Listener>,
    next_listener: u64,
    /// The endpoints of listeners with a full backlog: their SYNs are dropped ([`Gate`]).
    /// Recomputed before every received frame; kept to reuse its allocation.
    full: Vec<IpListenEndpoint>,
    /// SYNs dropped because their listener's backlog was full.
    pub syn_dropped: u64,
    pub ip: [u8; 4],
}

static STACK: Once<Mutex<Stack>> = Once::new();
/// System calls kick the task after changing a socket.
static KICK: WaitQueue = WaitQueue::new();

pub fn now() -> Instant {
    Instant::from_micros((crate::time::now_ns() / 1000) as i64)
}

fn now_ms() -> u64 {
    crate::time::now_ns() / 1_000_000
}

/// Run `f` on the stack under its lock (`None`: no network).
pub fn with<R>(f: impl FnOnce(&mut Stack) -> R) -> Option<R> {
    STACK.get().map(|m| f(&mut m.lock()))
}

pub fn is_up() -> bool {
    STACK.get().is_some()
}

/// Make the network task poll soon (a socket changed).
pub fn kick() {
    KICK.notify_all();
}

impl Stack {
    /// Reserve `port` (0: a free ephemeral one). `None`: in use.
    pub fn reserve_port(&mut self, tcp: bool, port: u16) -> Option<u16> {
        if port != 0 {
            return match self.ports.insert((tcp, port), ()) {
                None => Some(port),
                Some(()) => None,
            };
        }
        for _ in 0..16384 {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p == 65535 { 49152 } else { p + 1 };
            if let alloc::collections::btree_map::Entry::Vacant(e) = self.ports.entry((tcp, p)) {
                e.insert(());
                return Some(p);
            }
        }
        None
    }

    pub fn release_port(&mut self, tcp: bool, port: u16) {
        self.ports.remove(&(tcp, port));
    }

    /// Close `h` gracefully and free it from the set once the close is done.
    pub fn close_tcp(&mut self, h: SocketHandle) {
        let s = self.sockets.get_mut::<tcp::Socket>(h);
        match s.state() {
            tcp::State::Listen | tcp::State::SynSent | tcp::State::SynReceived => s.abort(),
            _ => s.close(),
        }
        self.closing.push((h, now_ms() + CLOSE_LINGER_MS));
    }

    // ---- listeners ----

    /// Start listening on `ep` with room for `backlog` connections not yet accepted; `ready`
    /// is notified when one can be accepted. Returns the listener's id.
    pub fn add_listener(
        &mut self,
        ep: IpListenEndpoint,
        backlog: usize,
        ready: Arc<WaitQueue>,
    ) -> u64 {
        let id = self.next_listener;
        self.next_listener += 1;
        let l = Listener {
            ep,
            backlog: backlog.max(1),
            armed: None,
            pending: VecDeque::new(),
            ready,
            was_ready: false,
        };
        self.listeners.insert(id, l);
        self.tend_listeners(now_ms(), false);
        id
    }

    /// `listen` again on a listening socket: a new backlog (connections already waiting
    /// beyond it stay).
    pub fn set_backlog(&mut self, id: u64, backlog: usize) {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.backlog = backlog.max(1);
        }
        self.tend_listeners(now_ms(), false);
    }

    /// Stop listening: the waiting connections are closed, the LISTEN socket freed.
    pub fn remove_listener(&mut self, id: u64) {
        let Some(l) = self.listeners.remove(&id) else { return };
        if let Some(h) = l.armed {
            self.sockets.remove(h);
        }
        for (h, _) in l.pending {
            self.close_tcp(h);
        }
    }

    /// Take the oldest acceptable connection of listener `id` (`None`: none yet). Its place
    /// in the backlog frees at once, so a listener that was full is armed again here.
    pub fn accept_ready(&mut self, id: u64) -> Option<SocketHandle> {
        let l = self.listeners.get_mut(&id)?;
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
        match self.listeners.get_mut(&id) {
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
        self.listeners.get(&id).is_some_and(|l| {
            l.pending.iter().any(|&(h, _)| acceptable(self.sockets.get::<tcp::Socket>(h).state()))
        })
    }

    /// Keep every listener armed, and note the full ones for the [`Gate`]. A LISTEN socket
    /// that took a SYN joins the pending connections; a listener with room and no LISTEN
    /// socket gets a new one. With `full_scan` (after a poll), also look at every pending
    /// connection: drop the ones reset before they were accepted and the half-open ones
    /// past [`HALF_OPEN_MS`], take back a SYN-RECEIVED one that a RST returned to LISTEN,
    /// and notify the listeners that have a connection to accept since the last look.
    fn tend_listeners(&mut self, ms: u64, full_scan: bool) {
        let sockets = &mut self.sockets;
        let mut close = Vec::new();
        self.full.clear();
        for l in self.listeners.values_mut() {
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
                            sockets.remove(h);
                            false
                        }
                        tcp::State::Listen => {
                            // A RST during the handshake sent it back to LISTEN.
                            if l.armed.is_none() {
                                l.armed = Some(h);
                            } else {
                                sockets.remove(h);
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
                let h = new_tcp_socket(sockets, buf);
                let _ = sockets.get_mut::<tcp::Socket>(h).listen(l.ep);
                l.armed = Some(h);
            }
            if l.armed.is_none() {
                self.full.push(l.ep);
            }
        }
        for h in close {
            self.close_tcp(h);
        }
    }

    /// One poll of the interface, then free finished sockets. Returns how long smoltcp may
    /// wait before the next poll (`None`: until something happens).
    ///
    /// This is `Interface::poll` taken apart: received frames one at a time, with the
    /// listeners tended before each (see the module docs), then everything there is to send.
    fn poll(&mut self) -> Option<smoltcp::time::Duration> {
        let t = now();
        let ms = now_ms();
        self.iface.poll_maintenance(t);
        loop {
            // Cheap with no listeners (it also forgets the gate's endpoints then).
            self.tend_listeners(ms, false);
            let mut gate =
                Gate { dev: &mut self.dev, full: &self.full, dropped: &mut self.syn_dropped };
            let r = self.iface.poll_ingress_single(t, &mut gate, &mut self.sockets);
            if r == PollIngressSingleResult::None {
                break;
            }
        }
        while self.iface.poll_egress(t, &mut self.dev, &mut self.sockets) != PollResult::None {}
        if !self.listeners.is_empty() {
            self.tend_listeners(ms, true);
        }
        let sockets = &mut self.sockets;
        let mut again = false;
        self.closing.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(h);
                    false
                }
                _ if ms >= deadline => {
                    s.abort(); // sends RST at the next poll; removed then
                    again = true;
                    true
                }
                _ => true,
            }
        });
        if again {
            return Some(smoltcp::time::Duration::ZERO);
        }
        self.iface.poll_delay(t, &self.sockets)
    }
}

/// Start the stack and its task if there is a NIC. `ip`: address and prefix length.
pub fn start(ip: Option<([u8; 4], u8)>, gw: Option<[u8; 4]>) {
    let Some(nic) = super::nic() else { return };
    let (ip, prefix) = ip.unwrap_or((DEFAULT_IP, DEFAULT_PREFIX));
    let gw = gw.unwrap_or(DEFAULT_GW);
    let mut dev = NicDevice::new(nic, ip);
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(nic.mac())));
    config.random_seed = crate::time::now_ns();
    let mut iface = Interface::new(config, &mut dev, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), prefix));
        let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(gw[0], gw[1], gw[2], gw[3]));
    STACK.call_once(|| {
        Mutex::new(Stack {
            iface,
            dev,
            sockets: SocketSet::new(vec![]),
            ports: BTreeMap::new(),
            next_ephemeral: 49152 + (crate::time::now_ns() % 8192) as u16,
            closing: Vec::new(),
            listeners: BTreeMap::new(),
            next_listener: 0,
            full: Vec::new(),
            syn_dropped: 0,
            ip,
        })
    });
    kprintln!(
        "net: {}.{}.{}.{}/{} gateway {}.{}.{}.{}",
        ip[0],
        ip[1],
        ip[2],
        ip[3],
        prefix,
        gw[0],
        gw[1],
        gw[2],
        gw[3]
    );
    crate::exec::spawn(run(nic));
}

/// The network task.
async fn run(nic: &'static Nic) {
    loop {
        let ticket = KICK.ticket();
        let (delay, tx_full, looped) = with(|s| {
            let d = s.poll();
            (d, s.dev.tx_full, s.dev.loop_pending())
        })
        .expect("stack");
        if looped || delay == Some(smoltcp::time::Duration::ZERO) {
            // More to do at once (frames looped back to ourselves): but let others run first.
            runtime::yield_now().await;
            continue;
        }
        let mut sleep = pin!(delay.map(|d| EXECUTOR.timers().sleep(d.total_micros() * 1000)));
        let mut kicked = pin!(KICK.wait(ticket));
        poll_fn(|cx| {
            if kicked.as_mut().poll(cx).is_ready() || nic.poll_rx_ready(cx).is_ready() {
                return Poll::Ready(());
            }
            if tx_full && nic.poll_tx_ready(cx).is_ready() {
                return Poll::Ready(());
            }
            if let Some(s) = sleep.as_mut().as_pin_mut() {
                if s.poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            Poll::Pending
        })
        .await;
    }
}

// ---- the gate: SYNs to a full listener ----

/// The device as smoltcp sees it while receiving: the NIC, except that a SYN for a listener
/// whose backlog is full arrives as an empty frame (which smoltcp ignores), instead of
/// reaching smoltcp, which would answer it with a RST for want of a LISTEN socket.
struct Gate<'a> {
    dev: &'a mut NicDevice,
    full: &'a [IpListenEndpoint],
    dropped: &'a mut u64,
}

struct GateRx<'a> {
    rx: <NicDevice as Device>::RxToken<'a>,
    full: &'a [IpListenEndpoint],
    dropped: &'a mut u64,
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
        Some((GateRx { rx, full: self.full, dropped: self.dropped }, tx))
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
        let (full, dropped) = (self.full, self.dropped);
        phy::RxToken::consume(self.rx, |frame| {
            if !full.is_empty() && syn_to(frame, full) {
                *dropped += 1;
                f(&[])
            } else {
                f(frame)
            }
        })
    }
}

/// Whether `frame` (Ethernet) is a TCP SYN (no ACK, no RST) for one of `eps`.
fn syn_to(frame: &[u8], eps: &[IpListenEndpoint]) -> bool {
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    let Some(ip) = frame.get(14..) else { return false };
    if frame[12..14] != [0x08, 0x00] || ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 6 {
        return false;
    }
    // Not a later fragment (its "TCP header" would be payload).
    if u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return false;
    }
    let Some(tcp) = ip.get(usize::from(ip[0] & 0xf) * 4..) else { return false };
    if tcp.len() < 14 || tcp[13] & (SYN | RST | ACK) != SYN {
        return false;
    }
    let port = u16::from_be_bytes([tcp[2], tcp[3]]);
    let dst = IpAddress::v4(ip[16], ip[17], ip[18], ip[19]);
    eps.iter().any(|ep| ep.port == port && ep.addr.is_none_or(|a| a == dst))
}

// ---- arping ----

static ARP_SEEN: Mutex<BTreeMap<[u8; 4], [u8; 6]>> = Mutex::new(BTreeMap::new());
static ARP_WAIT: WaitQueue = WaitQueue::new();

/// The network task saw `frame` arrive: note ARP replies (sender IP -> MAC).
pub fn snoop_rx(f: &[u8]) {
    if f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[14..22] == [0, 1, 0x08, 0x00, 6, 4, 0, 2] {
        let ip: [u8; 4] = f[28..32].try_into().expect("4 bytes");
        let mac: [u8; 6] = f[22..28].try_into().expect("6 bytes");
        {
            let mut seen = ARP_SEEN.lock();
            if seen.len() >= 64 {
                seen.clear();
            }
            seen.insert(ip, mac);
        }
        ARP_WAIT.notify_all();
    }
}

/// Ask the network who has `target`; its MAC, or `None` after a second.
pub async fn arping(target: [u8; 4]) -> Option<[u8; 6]> {
    let nic = super::nic()?;
    let ip = with(|s| s.ip)?;
    let mac = nic.mac();
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[38..42].copy_from_slice(&target);
    ARP_SEEN.lock().remove(&target);
    nic.send(&f).await.ok()?;
    timeout_ms(1000, async {
        loop {
            let ticket = ARP_WAIT.ticket();
            if let Some(m) = ARP_SEEN.lock().get(&target) {
                return *m;
            }
            ARP_WAIT.wait(ticket).await;
        }
    })
    .await
    .ok()
}
