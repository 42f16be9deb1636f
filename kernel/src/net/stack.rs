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
//! Every socket's buffers are charged to the kernel-memory budget (`mm::budget`): the charge
//! sits in [`Stack::charges`] beside the socket and goes when the socket leaves the set.
//!
//! Listening ports are part of the stack too; [`super::listen`] tends them, between received
//! frames (which is why `poll` takes the interface's poll apart), and the task also wakes for
//! their half-open connections' timeouts.
//!
//! The lock ([`with`]) is a spin lock held for short sections only (one poll, one socket
//! operation); never across an `await`. Kernel code is not preempted, so a holder always
//! finishes before anyone else spins on it. Its rank (`Stack` in `docs/locks.md`) comes after
//! a socket file's state and before what the stack takes: the NIC's rings, `ARP_SEEN`, the
//! wait queues that smoltcp's wakes notify, the heap, the log.
//!
//! `arping` support: every ARP reply received is noted ([`snoop_rx`]) so that
//! [`arping`] can send its own request on the NIC and wait for the answer.

use super::device::NicDevice;
use super::e1000::Nic;
use super::listen::Listeners;
use crate::exec::{timeout_ms, EXECUTOR};
use crate::kprintln;
use crate::mm::budget::Charge;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::pin::pin;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{tcp, AnySocket};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr, Ipv4Address};
use spin::Once;

/// Defaults: QEMU's user network.
pub const DEFAULT_IP: [u8; 4] = [10, 0, 2, 15];
pub const DEFAULT_PREFIX: u8 = 24;
pub const DEFAULT_GW: [u8; 4] = [10, 0, 2, 2];

/// How long a closed TCP socket may linger in the set (FIN exchange, TIME-WAIT) before it is
/// aborted and freed anyway.
const CLOSE_LINGER_MS: u64 = 30_000;

/// TCP buffers (each way) of connected sockets, and of the first few connections waiting on a
/// listener ([`super::listen::BURST_BUF`] beyond).
pub const TCP_BUF: usize = 64 * 1024;

/// The kernel-memory charge (`mm::budget`) of every socket in the set, by handle: its buffers.
/// A socket is added with its charge ([`add_socket`]) and removed with it ([`remove_socket`]),
/// so the charge lasts exactly as long as the buffers, whoever holds the handle meanwhile (a
/// socket file, a listener's backlog, the list of sockets closing).
pub type Charges = BTreeMap<SocketHandle, Charge>;

/// Bytes charged for a TCP socket with `buf` bytes of buffer each way.
pub const fn tcp_charge(buf: usize) -> usize {
    2 * buf
}

/// Add `socket`, whose buffers `charge` pays for.
pub fn add_socket(
    sockets: &mut SocketSet<'static>,
    charges: &mut Charges,
    socket: impl AnySocket<'static>,
    charge: Charge,
) -> SocketHandle {
    let h = sockets.add(socket);
    charges.insert(h, charge);
    h
}

/// Remove socket `h` (freeing its buffers) and release its charge.
pub fn remove_socket(sockets: &mut SocketSet<'static>, charges: &mut Charges, h: SocketHandle) {
    sockets.remove(h);
    charges.remove(&h);
}

/// A TCP socket with `buf` bytes of buffer each way, Nagle off; `None` when the kernel-memory
/// budget refuses its buffers.
pub fn new_tcp_socket(
    sockets: &mut SocketSet<'static>,
    charges: &mut Charges,
    buf: usize,
) -> Option<SocketHandle> {
    let charge = Charge::new(tcp_charge(buf))?;
    let mut t = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buf]),
        tcp::SocketBuffer::new(vec![0; buf]),
    );
    t.set_nagle_enabled(false);
    Some(add_socket(sockets, charges, t, charge))
}

pub struct Stack {
    pub iface: Interface,
    pub dev: NicDevice,
    pub sockets: SocketSet<'static>,
    /// The charge of each socket in `sockets` ([`Charges`]).
    pub charges: Charges,
    /// Bound ports: (is_tcp, port).
    ports: BTreeMap<(bool, u16), ()>,
    next_ephemeral: u16,
    /// TCP sockets whose file was closed: freed once closed (or at the deadline).
    pub(super) closing: Vec<(SocketHandle, u64)>,
    /// Listening ports ([`super::listen`]).
    pub(super) listen: Listeners,
    pub ip: [u8; 4],
}

static STACK: Once<Mutex<Stack>> = Once::new();
/// System calls kick the task after changing a socket.
static KICK: WaitQueue = WaitQueue::new();

pub fn now() -> Instant {
    Instant::from_micros((crate::time::now_ns() / 1000) as i64)
}

pub(super) fn now_ms() -> u64 {
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
            let mut gate = self.listen.gate(&mut self.dev);
            let r = self.iface.poll_ingress_single(t, &mut gate, &mut self.sockets);
            if r == PollIngressSingleResult::None {
                break;
            }
        }
        while self.iface.poll_egress(t, &mut self.dev, &mut self.sockets) != PollResult::None {}
        self.dev.report(t);
        if !self.listen.is_empty() {
            self.tend_listeners(ms, true);
        }
        let (sockets, charges) = (&mut self.sockets, &mut self.charges);
        let mut again = false;
        self.closing.retain(|&(h, deadline)| {
            let s = sockets.get_mut::<tcp::Socket>(h);
            match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    remove_socket(sockets, charges, h);
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
        let delay = self.iface.poll_delay(t, &self.sockets);
        // A half-open connection's timeout (smoltcp's own timers may not fall on it).
        match self.listen.next_deadline() {
            Some(at) => {
                let d = smoltcp::time::Duration::from_millis(at.saturating_sub(ms));
                Some(delay.map_or(d, |x| x.min(d)))
            }
            None => delay,
        }
    }
}

/// Start the stack and its task if there is a NIC. `ip`: address and prefix length.
pub fn start(ip: Option<([u8; 4], u8)>, gw: Option<[u8; 4]>) {
    let Some(nic) = super::nic() else { return };
    let (ip, prefix) = ip.unwrap_or((DEFAULT_IP, DEFAULT_PREFIX));
    let gw = gw.unwrap_or(DEFAULT_GW);
    let mut dev = NicDevice::new(nic, ip, prefix);
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(nic.mac())));
    config.random_seed = crate::time::now_ns();
    let mut iface = Interface::new(config, &mut dev, now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::v4(ip[0], ip[1], ip[2], ip[3]), prefix));
        let _ = a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(Ipv4Address::new(gw[0], gw[1], gw[2], gw[3]));
    STACK.call_once(|| {
        Mutex::new(
            Rank::Stack,
            Stack {
                iface,
                dev,
                sockets: SocketSet::new(vec![]),
                charges: Charges::new(),
                ports: BTreeMap::new(),
                next_ephemeral: 49152 + (crate::time::now_ns() % 8192) as u16,
                closing: Vec::new(),
                listen: Listeners::default(),
                ip,
            },
        )
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
        // The first of: a kick, a received frame, a free transmit slot (only waited for when
        // the ring was full), smoltcp's timer (only when it has one). The others are dropped,
        // which deregisters them.
        use futures_util::future::{pending, select, Either};
        let kicked = KICK.wait(ticket);
        let rx = poll_fn(|cx| nic.poll_rx_ready(cx));
        let tx = match tx_full {
            true => Either::Left(poll_fn(|cx| nic.poll_tx_ready(cx))),
            false => Either::Right(pending()),
        };
        let timer = match delay {
            Some(d) => Either::Left(EXECUTOR.timers().sleep(d.total_micros() * 1000)),
            None => Either::Right(pending()),
        };
        select(select(pin!(kicked), pin!(rx)), select(pin!(tx), pin!(timer))).await;
    }
}

// ---- arping ----

static ARP_SEEN: Mutex<BTreeMap<[u8; 4], [u8; 6]>> = Mutex::new(Rank::ArpSeen, BTreeMap::new());
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
