//! A TCP/IP stack: one per network namespace ([`NetStack`]). Each has its own smoltcp
//! [`Interface`] over its own device (`super::device`: loopback, ARP snooping, and below them
//! the root's router or a container's bridge port), its own socket table ([`Sockets`], with
//! the kernel-memory charge of every socket), port space, listeners, sockets closing, and
//! what drives it (`super::drive`: in the default event design a kick queue and an executor
//! task, in the sleep design, `net=sleep`, the interrupts). The registry by namespace id,
//! creation and teardown are in `super::netns`. [`Stack`] is the data under the stack's lock;
//! all of `impl Stack` is here.
//!
//! In the event design each stack's task (`super::drive::event::run`) loops:
//! 1. take its kick and bridge-port tickets, then, under the stack lock, poll the interface
//!    with the real time ([`crate::time::now_ns`]) and ask smoltcp for its `poll_delay`; free
//!    the sockets whose graceful close finished;
//! 2. release the lock and wait for the first of: a frame queued on its bridge port (the
//!    bridge notifies the port's queue), for the root also a frame from the NIC (its receive
//!    waker, woken by the interrupt) and a free transmit slot (only after the ring was found
//!    full), a kick from a system call (data queued, socket closed, connect started...), or a
//!    timer for `poll_delay` (none when smoltcp has nothing timed). It never spins: with
//!    nothing to do it sleeps on wakers only. Many stacks share the one executor; no threads.
//!
//! Every socket's buffers are charged to the kernel-memory budget (`mm::budget`): the charge
//! sits in [`Sockets`] beside the socket and goes when the socket leaves the table (and all of
//! them when the stack is torn down). A container's stack is itself charged
//! ([`STACK_CHARGE`]: its queues' bound), at `spawn`.
//!
//! Listening ports are part of the stack too ([`super::listen`]); they are tended between
//! received frames (which is why `poll` takes the interface's poll apart), and the task also
//! wakes for their half-open connections' timeouts.
//!
//! # Locks
//! (The sleep design's lock is interrupt-safe, rank `StackIrq`, and is also taken in the
//! E1000's and the timer's interrupt handlers: `super::drive::sleep`.)
//! A stack's lock (rank `Stack`, [`NetStack::with`]) is a spin lock held for short sections
//! only (one poll, one socket operation); never across an `await`. It comes after a socket
//! file's state (`Socket`) and before what the stack's device and smoltcp take: the bridge
//! (`Bridge`), its ARP notes (`ArpSeen`), the NIC's rings (`NicRx`, `NicTx`), the wait queues
//! smoltcp's wakes and the bridge notify (`WaitQueue`), the heap, the log. **A stack never
//! takes another stack's lock**: they have one rank, and a debug kernel panics if two are held
//! at once; frames between stacks go through the bridge's queues, and the code that works on
//! two stacks (`netns::destroy`, `publish`) takes one after the other. In the event design,
//! process and task context only; no interrupt handler takes these locks.

use super::bridge::{self, BRIDGE};
use super::device::{
    self, ArpSeen, Below, Dev, Filter, Loopback, Port, Snoop, Wire, LOOP_MAX, MTU,
};
use super::drive::{self, How, StackGuard, StackLock};
use super::e1000::Cards;
use super::filter::Local;
use super::listen::Listeners;
use super::nat::{self, Nat, PublishError, Published};
use super::router::Router;
use crate::mm::budget::Charge;
use crate::ns::Account;
use abi::syscall::ns::ROOT;
use abi::syscall::Errno;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use runtime::sync::WaitQueue;
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{tcp, AnySocket};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};

/// Defaults: QEMU's user network.
pub const DEFAULT_IP: [u8; 4] = [10, 0, 2, 15];
pub const DEFAULT_PREFIX: u8 = 24;
pub const DEFAULT_GW: [u8; 4] = [10, 0, 2, 2];

/// How long a closed TCP socket may linger in the set (FIN exchange, TIME-WAIT) before it is
/// aborted and freed anyway.
const CLOSE_LINGER_MS: u64 = 30_000;

/// TCP buffers of connected sockets, and of the first few connections waiting on a listener
/// ([`super::listen::BURST_BUF`] beyond): the receive buffer (the window it advertises).
pub const TCP_BUF: usize = 64 * 1024;
/// The send buffer of a full-size socket. A sender whose buffer holds one window's worth must
/// be scheduled again to refill it after every ACK, while the link idles; with more queued,
/// the stack sends the moment the window opens (1 MiB at one connection, measured against
/// a send buffer of [`TCP_BUF`]: 69 -> 76 MB/s).
pub const TCP_TX_BUF: usize = 4 * TCP_BUF;

/// The send buffer that goes with a receive buffer of `rx` bytes: smaller sockets (made in a
/// burst or a flood of connections) keep both sides alike.
const fn tx_buf(rx: usize) -> usize {
    if rx >= TCP_BUF {
        TCP_TX_BUF
    } else {
        rx
    }
}

/// What a container's stack is charged to the kernel-memory budget while it lives: its
/// bridge port's queue and its loopback queue full, and its interface's tables (the neighbor
/// cache of 256 entries, the socket table).
pub const STACK_CHARGE: usize = (bridge::QUEUE_MAX + LOOP_MAX) * MTU + 64 * 1024;

/// Bytes charged for a TCP socket with a receive buffer of `buf` bytes (and its send buffer).
pub const fn tcp_charge(buf: usize) -> usize {
    buf + tx_buf(buf)
}

pub fn now() -> Instant {
    Instant::from_micros((crate::time::now_ns() / 1000) as i64)
}

pub(super) fn now_ms() -> u64 {
    crate::time::now_ns() / 1_000_000
}

/// A stack's smoltcp sockets, each with the kernel-memory charge (`mm::budget`) of its
/// buffers. A socket is added with its charge ([`Sockets::add`]) and removed with it
/// ([`Sockets::remove`]), so the charge lasts exactly as long as the buffers, whoever holds
/// the handle meanwhile (a socket file, a listener's backlog, the list of sockets closing).
pub struct Sockets {
    set: SocketSet<'static>,
    charges: BTreeMap<SocketHandle, Charge>,
    /// Whom the buffers made now are charged to: the calling process's account (taken
    /// before the stack's lock by [`NetStack::with`]: finding the process takes a lock of
    /// lower rank, and an interrupt handler's poll must not charge the process it
    /// interrupted), `None` in a task's or an interrupt handler's poll.
    pub(super) account: Option<Arc<Account>>,
}

impl Sockets {
    /// How many sockets the stack has.
    pub fn len(&self) -> usize {
        self.charges.len()
    }

    fn new() -> Sockets {
        Sockets { set: SocketSet::new(vec![]), charges: BTreeMap::new(), account: None }
    }

    pub fn get<T: AnySocket<'static>>(&self, h: SocketHandle) -> &T {
        self.set.get(h)
    }

    pub fn get_mut<T: AnySocket<'static>>(&mut self, h: SocketHandle) -> &mut T {
        self.set.get_mut(h)
    }

    /// Charge `bytes` to [`Sockets::account`] (`None`: refused by the budget).
    pub fn charge(&self, bytes: usize) -> Option<Charge> {
        Charge::new_in(self.account.clone(), bytes).ok()
    }

    /// Add `socket`, whose buffers `charge` pays for.
    pub fn add(&mut self, socket: impl AnySocket<'static>, charge: Charge) -> SocketHandle {
        let h = self.set.add(socket);
        self.charges.insert(h, charge);
        h
    }

    /// Remove socket `h` (freeing its buffers) and release its charge.
    pub fn remove(&mut self, h: SocketHandle) {
        self.set.remove(h);
        self.charges.remove(&h);
    }

    /// A TCP socket with a receive buffer of `buf` bytes (and the send buffer that goes with
    /// it, [`tx_buf`]), Nagle off; `None` when the kernel-memory budget refuses its buffers.
    pub fn new_tcp(&mut self, buf: usize) -> Option<SocketHandle> {
        let charge = self.charge(tcp_charge(buf))?;
        let mut t = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buf]),
            tcp::SocketBuffer::new(vec![0; tx_buf(buf)]),
        );
        t.set_nagle_enabled(false);
        Some(self.add(t, charge))
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketHandle, &smoltcp::socket::Socket<'static>)> {
        self.set.iter()
    }
}

/// One stack's data, under its lock ([`NetStack::with`]).
pub struct Stack {
    pub iface: Interface,
    pub dev: Dev,
    pub sockets: Sockets,
    /// Bound ports: (is_tcp, port). The root's also holds its published host ports.
    ports: BTreeSet<(bool, u16)>,
    next_ephemeral: u16,
    /// TCP sockets whose file was closed: freed once closed (or at the deadline).
    closing: Vec<(SocketHandle, u64)>,
    /// Listening ports ([`super::listen`]).
    listen: Listeners,
    /// The stack's own IPv4 addresses (127.0.0.0/8 is always its own too).
    addrs: Vec<[u8; 4]>,
}

impl Stack {
    /// Whether a socket of this stack may bind `a`: 127.0.0.0/8 or one of its addresses.
    pub fn is_own_addr(&self, a: Ipv4Address) -> bool {
        a.is_loopback() || self.addrs.contains(&a.octets())
    }

    /// Reserve `port` (0: a free ephemeral one). `None`: in use.
    pub fn reserve_port(&mut self, tcp: bool, port: u16) -> Option<u16> {
        if port != 0 {
            return self.ports.insert((tcp, port)).then_some(port);
        }
        for _ in 0..16384 {
            let p = self.next_ephemeral;
            self.next_ephemeral = if p == 65535 { 49152 } else { p + 1 };
            if self.ports.insert((tcp, p)) {
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

    /// Start listening on `ep` with room for `backlog` connections not yet accepted; `ready`
    /// is notified when one can be accepted. Returns the listener's id.
    pub fn add_listener(
        &mut self,
        ep: smoltcp::wire::IpListenEndpoint,
        backlog: usize,
        ready: Arc<WaitQueue>,
    ) -> u64 {
        self.listen.add(&mut self.sockets, ep, backlog, ready, now_ms())
    }

    /// `listen` again on a listening socket: a new backlog.
    pub fn set_backlog(&mut self, id: u64, backlog: usize) {
        self.listen.set_backlog(&mut self.sockets, id, backlog, now_ms())
    }

    /// Stop listening: the connections waiting for `accept` are closed, the half-open ones
    /// and the LISTEN socket freed.
    pub fn remove_listener(&mut self, id: u64) {
        for h in self.listen.remove(&mut self.sockets, id) {
            self.close_tcp(h);
        }
    }

    /// Take the oldest acceptable connection of listener `id` (`None`: none yet).
    pub fn accept_ready(&mut self, id: u64) -> Option<SocketHandle> {
        self.listen.accept_ready(&mut self.sockets, id, now_ms())
    }

    /// Give back a connection [`Stack::accept_ready`] returned (`accept` found no free
    /// descriptor for it): it is first in line again (closed if the listener is gone).
    pub fn requeue(&mut self, id: u64, h: SocketHandle) {
        if let Err(h) = self.listen.requeue(id, h) {
            self.close_tcp(h);
        }
    }

    /// Whether listener `id` has a connection to accept.
    pub fn listener_ready(&self, id: u64) -> bool {
        self.listen.is_ready(&self.sockets, id)
    }

    /// One poll of the interface, then free finished sockets. Returns how long smoltcp may
    /// wait before the next poll (`None`: until something happens).
    ///
    /// This is `Interface::poll` taken apart: received frames one at a time, with the
    /// listeners tended before each (see the module docs), then everything there is to send.
    pub(super) fn poll(&mut self) -> Option<Duration> {
        crate::stats::count(crate::stats::Counter::StackPolls);
        let t = now();
        let ms = now_ms();
        self.iface.poll_maintenance(t);
        loop {
            // Cheap with no listeners (it also forgets the gate's endpoints then).
            self.listen.tend(&mut self.sockets, ms, false);
            let mut gate = self.listen.gate(&mut self.dev);
            let r = self.iface.poll_ingress_single(t, &mut gate, &mut self.sockets.set);
            if r == PollIngressSingleResult::None {
                break;
            }
        }
        self.poll_egress(t);
        device::Link::report(&mut self.dev, t);
        if !self.listen.is_empty() {
            self.listen.tend(&mut self.sockets, ms, true);
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
            return Some(Duration::ZERO);
        }
        let delay = self.iface.poll_delay(t, &self.sockets.set);
        // A half-open connection's timeout (smoltcp's own timers may not fall on it).
        match self.listen.next_deadline() {
            Some(at) => {
                let d = Duration::from_millis(at.saturating_sub(ms));
                Some(delay.map_or(d, |x| x.min(d)))
            }
            None => delay,
        }
    }

    /// Send what the sockets have queued, now (a UDP socket about to be freed).
    pub fn flush(&mut self) {
        self.poll_egress(now());
    }

    /// Everything there is to send.
    fn poll_egress(&mut self, t: Instant) {
        while self.iface.poll_egress(t, &mut self.dev, &mut self.sockets.set) != PollResult::None {}
        // What ingress answered and egress sent, handed to the NIC in one batch.
        device::Link::flush(&mut self.dev);
    }

    /// The stack's namespace is dying: reset every TCP connection (the resets are sent now,
    /// through the device), stop listening, and free every socket with its charge. Sockets
    /// files that still name a handle find the stack gone ([`NetStack::with`]).
    pub(super) fn reset_all(&mut self) {
        for (_, s) in self.sockets.set.iter_mut() {
            if let smoltcp::socket::Socket::Tcp(t) = s {
                t.abort();
            }
        }
        let handles: Vec<SocketHandle> = self.sockets.iter().map(|(h, _)| h).collect();
        self.poll_egress(now());
        self.listen = Listeners::default();
        self.closing.clear();
        for h in handles {
            self.sockets.remove(h);
        }
    }

    /// The root's router, if this is the root's stack.
    fn router(&mut self) -> Option<&mut Router> {
        device::router_mut(&mut self.dev)
    }

    /// Publish `p` (the root's stack): its host port is reserved in this stack's port space.
    pub fn publish(&mut self, p: Published) -> Result<(), Errno> {
        let tcp = p.proto == nat::Proto::Tcp;
        if self.router().is_none() {
            return Err(Errno::EPERM);
        }
        self.reserve_port(tcp, p.host_port).ok_or(Errno::EADDRINUSE)?;
        let router = self.router().expect("the root's stack");
        match router.nat.add(p) {
            Ok(()) => Ok(()),
            Err(PublishError::HostPortTaken | PublishError::EndpointTaken) => {
                self.release_port(tcp, p.host_port);
                Err(Errno::EADDRINUSE)
            }
        }
    }

    /// Forget the ports published to namespace `ns`, freeing their host ports.
    pub fn unpublish(&mut self, ns: u32) {
        let gone = match self.router() {
            Some(r) => r.nat.remove_ns(ns),
            None => return,
        };
        for p in gone {
            self.release_port(p.proto == nat::Proto::Tcp, p.host_port);
        }
    }

    /// The ports published (the root's stack).
    pub fn published(&mut self) -> Vec<Published> {
        self.router().map(|r| r.nat.list().collect()).unwrap_or_default()
    }
}

/// One interface of a stack, as `/proc/ifaces` shows it.
#[derive(Clone, Copy)]
pub struct Iface {
    pub name: &'static str,
    pub mac: [u8; 6],
    pub addr: [u8; 4],
    pub prefix: u8,
}

/// A network namespace's stack (see the module docs). Shared: the registry, its task, and
/// every socket made in the namespace hold it.
pub struct NetStack {
    /// The namespace's id (and its bridge port's).
    pub id: u32,
    /// `None` once the namespace died (`super::netns::destroy`). Its kind is the design's
    /// (`super::drive`).
    stack: StackLock,
    /// The event design: system calls kick the task after changing a socket.
    pub(super) kick_queue: WaitQueue,

    /// Notified by the bridge when a frame is queued for this stack's port.
    pub(super) port_ready: Arc<WaitQueue>,
    /// The ARP replies its device saw, for `arping`.
    arp: Arc<ArpSeen>,
    /// The root's network cards.
    pub(super) cards: Option<&'static Cards>,
    pub mac: [u8; 6],
    pub ifaces: Vec<Iface>,
    /// The kernel-memory charge of a container's stack ([`STACK_CHARGE`]).
    _charge: Option<Charge>,
}

impl NetStack {
    /// A stack over `dev` with `ifaces`' addresses and 127.0.0.1/8, its default route via
    /// `gw`.
    fn new(
        id: u32,
        mut dev: Dev,
        ifaces: Vec<Iface>,
        gw: [u8; 4],
        cards: Option<&'static Cards>,
        arp: Arc<ArpSeen>,
        charge: Option<Charge>,
    ) -> Arc<NetStack> {
        let mac = ifaces[0].mac;
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = crate::time::now_ns() ^ u64::from(id);
        let mut iface = Interface::new(config, &mut dev, now());
        iface.update_ip_addrs(|a| {
            for i in &ifaces {
                let _ = a.push(IpCidr::new(IpAddress::Ipv4(Ipv4Address::from(i.addr)), i.prefix));
            }
        });
        let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::from(gw));
        let addrs = ifaces.iter().map(|i| i.addr).filter(|a| a[0] != 127).collect();
        let stack = Stack {
            iface,
            dev,
            sockets: Sockets::new(),
            ports: BTreeSet::new(),
            next_ephemeral: 49152 + (crate::time::now_ns() % 8192) as u16,
            closing: Vec::new(),
            listen: Listeners::default(),
            addrs,
        };
        Arc::new(NetStack {
            id,
            stack: drive::lock(stack),
            kick_queue: WaitQueue::new(),

            port_ready: Arc::new(WaitQueue::new()),
            arp,
            cards,
            mac,
            ifaces,
            _charge: charge,
        })
    }

    /// The root's stack over `cards`: `ip/prefix` on the wire with its gateway `gw`, and
    /// `192.168.1.1/24` on the bridge, through one interface with the main card's MAC.
    pub(super) fn root(
        cards: &'static Cards,
        ip: [u8; 4],
        prefix: u8,
        gw: [u8; 4],
    ) -> Arc<NetStack> {
        let mac = cards.main.mac();
        let local = Local::new(ip, prefix).with_inside(nat::CONTAINER_NET, nat::CONTAINER_PREFIX);
        let router = Router::new(
            Filter::new(Wire::new(cards), local),
            Port::new(ROOT),
            Nat::new(ip, prefix, mac),
        );
        let bridge_ip = nat::container_ip(ROOT);
        let arp = Arc::new(ArpSeen::new());
        let dev = Loopback::new(
            Snoop::new(Below::Root(Box::new(router)), arp.clone()),
            mac,
            vec![ip, bridge_ip],
        );
        let ifaces = vec![
            Iface { name: "eth0", mac, addr: ip, prefix },
            Iface { name: "br0", mac, addr: bridge_ip, prefix: nat::CONTAINER_PREFIX },
            Iface { name: "lo", mac: [0; 6], addr: [127, 0, 0, 1], prefix: 8 },
        ];
        NetStack::new(ROOT, dev, ifaces, gw, Some(cards), arp, None)
    }

    /// Namespace `id`'s stack: `192.168.1.<id>/24` on its bridge port, the root its gateway.
    pub(super) fn container(id: u32, charge: Charge) -> Arc<NetStack> {
        let (mac, ip) = (nat::container_mac(id), nat::container_ip(id));
        let arp = Arc::new(ArpSeen::new());
        let dev =
            Loopback::new(Snoop::new(Below::Container(Port::new(id)), arp.clone()), mac, vec![ip]);
        let ifaces = vec![
            Iface { name: "eth0", mac, addr: ip, prefix: nat::CONTAINER_PREFIX },
            Iface { name: "lo", mac: [0; 6], addr: [127, 0, 0, 1], prefix: 8 },
        ];
        NetStack::new(id, dev, ifaces, nat::container_ip(ROOT), None, arp, Some(charge))
    }

    /// Start driving it (`super::drive`: its task, or its interrupts).
    pub(super) fn start(self: &Arc<Self>) {
        drive::start(self);
    }

    /// Run `f` on the stack under its lock (`None`: the namespace died).
    /// Buffers made in `f` are charged to no namespace ([`NetStack::with_caller`] charges
    /// the calling process's).
    pub fn with<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> Option<R> {
        self.stack.lock().as_mut().map(f)
    }

    /// [`NetStack::with`] for a system call: buffers made in `f` are charged to the calling
    /// process's account. Not under a lock ranked after `Current` (it finds the process).
    pub fn with_caller<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> Option<R> {
        let account = crate::mm::budget::current_account();
        let mut g = self.stack.lock();
        let s = g.as_mut()?;
        s.sockets.account = account;
        let r = f(s);
        s.sockets.account = None;
        Some(r)
    }

    /// The stack's lock, held (`None` inside: the namespace died).
    pub(super) fn lock(&self) -> StackGuard<'_> {
        self.stack.lock()
    }

    /// Make the stack poll soon, or now (a socket changed; `super::drive`).
    pub fn kick(&self) {
        drive::kick(self);
    }

    /// [`NetStack::kick`] after a send: what it queued may go out at once (`super::drive`).
    pub fn kick_sent(&self) {
        drive::kick_sent(self);
    }

    /// The end of the stack (its namespace died, `super::netns::destroy`, after
    /// [`Stack::reset_all`]): unplug its port, free the stack and end the task.
    pub(super) fn end(&self) {
        BRIDGE.unplug(self.id);
        let stack = self.stack.lock().take();
        drop(stack); // the interface and the sockets' buffers, outside the lock
        self.kick(); // the task finds no stack and ends
    }

    /// Ask the network who has `target`, from this stack (on the bridge for the container
    /// network or a container's stack, on the wire otherwise): send the request (`false`:
    /// it could not be sent) after forgetting any reply seen before.
    pub fn arp_request(&self, target: [u8; 4]) -> bool {
        let on_bridge = self.cards.is_none() || nat::in_container_net(Ipv4Address::from(target));
        let from = match on_bridge {
            true => match self
                .ifaces
                .iter()
                .find(|i| i.name != "lo" && nat::in_container_net(Ipv4Address::from(i.addr)))
            {
                Some(i) => i,
                None => return false,
            },
            false => &self.ifaces[0],
        };
        let mut f = [0u8; 42];
        f[0..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&self.mac);
        f[12..14].copy_from_slice(&[0x08, 0x06]);
        f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&self.mac);
        f[28..32].copy_from_slice(&from.addr);
        f[38..42].copy_from_slice(&target);
        self.arp.forget(target);
        match (on_bridge, self.cards) {
            // Not waiting for a free transmit slot (a full ring counts as no answer): no
            // waker, in either design.
            (false, Some(cards)) => cards.main.transmit(&f).is_ok(),
            _ => {
                BRIDGE.forward(self.id, f.to_vec());
                true
            }
        }
    }

    /// The reply to an [`NetStack::arp_request`] for `target`, if seen yet.
    pub fn arp_reply(&self, target: [u8; 4]) -> Option<[u8; 6]> {
        self.arp.get(target)
    }

    /// `arping`: [`NetStack::arp_request`], then wait for the reply; its MAC, or `None` after
    /// a second. `EINTR` once the caller is killed. A system call's (it blocks the process).
    pub fn arping(&self, target: [u8; 4]) -> Result<Option<[u8; 6]>, Errno> {
        if !self.arp_request(target) {
            return Ok(None);
        }
        // The device notes replies under the stack lock (`ArpSeen::note`, through
        // `drive::notify`): the check is made under it too.
        let arp = self.arp.clone();
        drive::wait(self, &arp.wait, |_| {}, How::Within(1000), |_| arp.get(target))
    }
}
