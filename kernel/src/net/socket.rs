//! Sockets (a [`crate::file::File`] kind): BSD-style TCP and UDP over smoltcp.
//!
//! A [`Socket`] belongs to the stack of the network namespace it was made in
//! ([`super::stack::NetStack`], from the caller's `ns.net` at `socket()`), for its whole life:
//! a descriptor inherited into another namespace still uses it. It holds handles into that
//! stack's socket table. Every operation is a short section under that stack's lock, and
//! addresses are that stack's: `bind` takes `0.0.0.0`, `127.0.0.0/8` or one of the stack's
//! own addresses (`EADDRNOTAVAIL` otherwise); ports are the stack's own (the same port may be
//! bound in every namespace at once); `127.0.0.1` reaches the stack's own listeners only.
//! Once the namespace died (`super::netns::destroy`) every operation fails with `ENETUNREACH`.
//!
//! # Waiting: two wait queues per socket
//!
//! A socket file may have any number of waiters at once: processes sharing it after `fork`,
//! each in `recv`, `send`, `accept`, `connect` or `poll`. smoltcp has one waker slot per
//! direction per socket (feature `async`: `register_recv_waker` / `register_send_waker`), and
//! a new registration overwrites the last. So waiters never put their own wakers there: each
//! socket file owns two [`WaitQueue`]s (`readable`, `writable`, in [`Waits`]) and, for each,
//! the waker that notifies it ([`WaitQueue::notifier`]); only those two wakers ever go into
//! smoltcp's slots. A waiter ([`Socket::wait`]; `poll` through [`PollWait`]), in ONE section
//! under the stack lock, checks its condition and, finding it false, puts the queue's
//! notifier in the slot (free when it is there already) and takes a ticket on the queue;
//! then it waits on the queue for a notification after its ticket.
//!
//! Why no wakeup is lost, with any number of waiters: smoltcp's sockets change only under the
//! stack lock, and smoltcp wakes (and empties) a slot on every change that can make a
//! waiter's condition true (data or a datagram received, room freed by an ACK or by a
//! datagram sent, a change of state). A waiter's section left the notifier in the slot; the
//! slot is emptied again only by a wake, which notifies the queue after the ticket. (Nothing
//! else registers in these slots while the file lives.) So the first change after the
//! section notifies the queue, and [`WaitQueue::wait`] completes for every ticket taken
//! before it: each waiter looks again. Changes smoltcp does not signal either only make a
//! condition false (another waiter took the data) or are the socket's own (`shutdown`,
//! `bind`), which notify the queues themselves after the change. Wakeups may be spurious
//! (every waiter on a queue is woken, one takes the datagram): waiters loop.
//!
//! That is the event design's waiting. Every operation that may wait takes a `drive::How`
//! (not at all for a non-blocking descriptor, until done, or with a time limit) and waits
//! through [`Socket::wait`] -> `super::drive::wait`, so the same checks serve the sleep design
//! (`net=sleep`), where the queues and smoltcp's slots are left alone and the waiter sleeps on
//! the stack's channel instead (`super::drive::sleep`).
//!
//! # Locks, in order
//!
//! As in `docs/locks.md` (checked in debug builds): a process's descriptor table (`exit`
//! closes files under it), the socket's state (`Socket::st`), its stack (`NetStack::with`),
//! then a wait queue's internals. smoltcp wakes a notifier inside `iface.poll` (the network task)
//! or inside a socket operation of a system call, the stack lock held, in task context;
//! `notify_all` holds the queue's spin lock for a few instructions and wakes the waiters
//! after releasing it, and waking a waiter takes no lock (a process's waker and a task's are
//! atomics and lock-free queues). Nothing takes the stack lock while holding a queue's lock,
//! and no interrupt handler takes any of these locks.
//!
//! TCP `listen(backlog)` makes a listener in the stack (`Stack::add_listener`): up to
//! `backlog` connections (at most [`SOMAXCONN`]; [`DEFAULT_BACKLOG`] for a backlog of 0 or
//! less) complete their handshake before `accept` takes them, and the network task keeps one
//! smoltcp socket in LISTEN for the next SYN (see `stack`'s module docs). `accept` and `poll`
//! wait for a listener on its `readable` queue, which the listener notifies (under the stack
//! lock) when a connection becomes acceptable. `close` is graceful: FIN, and the smoltcp
//! socket is freed by the stack's task once its close is done (`Stack::close_tcp`).
//!
//! Buffers are charged to the kernel-memory budget (`mm::budget`) when they are made: a TCP
//! socket's at `connect` (or by its listener, before the SYN), a UDP socket's at `bind` (or its
//! first datagram). `socket` already fails with ENOMEM when the budget could not pay for them
//! now, and so do `connect` and `bind` if it no longer can by then.

use super::drive::{self, Design, How};
use super::stack::{self, NetStack, Stack, TCP_BUF};
use crate::file::poll::PollWait;
use crate::mm::budget;
use abi::syscall::net::{SockAddrIn, POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_RD, SHUT_WR};
use abi::syscall::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use core::fmt::Write;
use core::task::Waker;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

const UDP_PACKETS: usize = 32;
const UDP_BUF: usize = 64 * 1024;
/// The largest backlog `listen` honours (Linux's `SOMAXCONN` before 5.4).
pub const SOMAXCONN: usize = 128;
/// The backlog of `listen(fd, n)` with `n <= 0`.
pub const DEFAULT_BACKLOG: usize = 8;
/// `connect` gives up with ETIMEDOUT after this long.
pub const CONNECT_TIMEOUT_MS: u64 = 10_000;

enum Tcp {
    Fresh {
        bound: Option<IpListenEndpoint>,
    },
    /// `id`: the stack's listener (`stack::Stack::add_listener`).
    Listening {
        ep: IpListenEndpoint,
        id: u64,
    },
    Conn {
        h: SocketHandle,
        shut_rd: bool,
    },
}

enum State {
    Tcp { st: Tcp, port: Option<u16> },
    Udp { h: Option<SocketHandle>, port: Option<u16>, remote: Option<IpEndpoint> },
}

pub struct Socket {
    /// The stack it was made in, for good.
    net: Arc<NetStack>,
    st: Mutex<State>,
    waits: Waits,
}

/// A socket's wait queues, and the wakers that smoltcp's slots hold for them.
struct Waits {
    /// Something to receive or accept, or a change of state (smoltcp's receive slot; a
    /// listener's readiness; `shutdown`, `bind`).
    readable: Arc<WaitQueue>,
    /// Room to send, or a change of state (smoltcp's send slot; `bind`).
    writable: Arc<WaitQueue>,
    /// The queues' notifiers ([`WaitQueue::notifier`]): what smoltcp's receive and send
    /// slots hold, standing for every waiter on `readable` and `writable`.
    rx: Waker,
    tx: Waker,
}

impl Waits {
    fn new() -> Waits {
        let (readable, writable) = (Arc::new(WaitQueue::new()), Arc::new(WaitQueue::new()));
        let (rx, tx) = (readable.notifier(), writable.notifier());
        Waits { readable, writable, rx, tx }
    }

    fn queue(&self, d: Dir) -> &WaitQueue {
        match d {
            Dir::Recv => &self.readable,
            Dir::Send => &self.writable,
        }
    }

    /// Under the stack lock: put the waker of `d`'s queue in `k`'s smoltcp slot for `d`, so
    /// that its next change notifies the queue (nothing is cloned if it is there already).
    fn arm(&self, s: &mut Stack, k: Sock, d: Dir) {
        match (k, d) {
            (Sock::Tcp(h), Dir::Recv) => {
                s.sockets.get_mut::<tcp::Socket>(h).register_recv_waker(&self.rx)
            }
            (Sock::Tcp(h), Dir::Send) => {
                s.sockets.get_mut::<tcp::Socket>(h).register_send_waker(&self.tx)
            }
            (Sock::Udp(h), Dir::Recv) => {
                s.sockets.get_mut::<udp::Socket>(h).register_recv_waker(&self.rx)
            }
            (Sock::Udp(h), Dir::Send) => {
                s.sockets.get_mut::<udp::Socket>(h).register_send_waker(&self.tx)
            }
        }
    }

    /// Wake everyone waiting on this socket (after a change smoltcp does not signal).
    fn notify_all(&self) {
        self.readable.notify_all();
        self.writable.notify_all();
    }
}

/// A smoltcp socket of the set, by kind.
#[derive(Clone, Copy)]
enum Sock {
    Tcp(SocketHandle),
    Udp(SocketHandle),
}

fn ep_of(a: &SockAddrIn) -> Result<IpEndpoint, Errno> {
    if a.family as usize != abi::syscall::net::AF_INET {
        return Err(Errno::EAFNOSUPPORT);
    }
    Ok(IpEndpoint::new(IpAddress::v4(a.addr[0], a.addr[1], a.addr[2], a.addr[3]), a.port()))
}

fn addr_of(ep: Option<IpEndpoint>) -> SockAddrIn {
    match ep {
        Some(IpEndpoint { addr: IpAddress::Ipv4(a), port }) => SockAddrIn::new(a.octets(), port),
        _ => SockAddrIn::new([0; 4], 0),
    }
}

fn listen_addr(ep: IpListenEndpoint) -> SockAddrIn {
    let a = match ep.addr {
        Some(IpAddress::Ipv4(a)) => a.octets(),
        _ => [0; 4],
    };
    SockAddrIn::new(a, ep.port)
}

/// A connection's TCP socket, its buffers charged (ENOMEM: refused by the budget).
fn new_tcp(s: &mut Stack) -> Result<SocketHandle, Errno> {
    s.sockets.new_tcp(TCP_BUF).ok_or(Errno::ENOMEM)
}

/// The backlog `listen(fd, n)` gets: `n` up to [`SOMAXCONN`], [`DEFAULT_BACKLOG`] for `n <= 0`.
pub fn backlog_for(n: i32) -> usize {
    if n <= 0 {
        DEFAULT_BACKLOG
    } else {
        (n as usize).min(SOMAXCONN)
    }
}

/// Bytes charged for a UDP socket: its buffers and packet tables, both ways.
const UDP_CHARGE: usize = 2 * (UDP_BUF + UDP_PACKETS * size_of::<udp::PacketMetadata>());

/// A UDP socket, its buffers charged (ENOMEM: refused by the budget).
fn new_udp(s: &mut Stack) -> Result<SocketHandle, Errno> {
    let charge = s.sockets.charge(UDP_CHARGE).ok_or(Errno::ENOMEM)?;
    let u = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
    );
    Ok(s.sockets.add(u, charge))
}

#[derive(Clone, Copy)]
enum Dir {
    Recv,
    Send,
}

impl Socket {
    /// A new socket; its buffers come with `connect`, `bind` or the first datagram. ENOMEM
    /// when the kernel-memory budget could not pay for them now (as Linux's `socket` gives
    /// ENOBUFS or ENOMEM when memory is short; this ABI has no ENOBUFS).
    pub fn new(net: Arc<NetStack>, stream: bool) -> Result<Socket, Errno> {
        if !budget::admits(if stream { stack::tcp_charge(TCP_BUF) } else { UDP_CHARGE }) {
            return Err(Errno::ENOMEM);
        }
        let st = if stream {
            State::Tcp { st: Tcp::Fresh { bound: None }, port: None }
        } else {
            State::Udp { h: None, port: None, remote: None }
        };
        Ok(Socket { net, st: Mutex::new(Rank::Socket, st), waits: Waits::new() })
    }

    /// Run `f` on the socket's stack under its lock (`ENETUNREACH`: its namespace died).
    fn net<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> Result<R, Errno> {
        self.net.with_caller(f).ok_or(Errno::ENETUNREACH)
    }

    fn conn(&self, h: SocketHandle) -> Socket {
        Socket {
            net: self.net.clone(),
            st: Mutex::new(
                Rank::Socket,
                State::Tcp { st: Tcp::Conn { h, shut_rd: false }, port: None },
            ),
            waits: Waits::new(),
        }
    }

    /// Wait until `check` (run under the stack lock) gives a value, as the design waits
    /// (`super::drive`). The event design: in the section where it found none, smoltcp's
    /// slot of `d` at `k` gets the queue's waker and a ticket is taken on the queue, then the
    /// wait is for a notification after the ticket (see the module docs: no change after the
    /// check is missed, whoever else waits on the socket); the slot keeps the queue's waker,
    /// which is harmless. The sleep design: `sleep` on the stack's channel. `Ok(None)`: a
    /// `How::Within` wait timed out.
    fn wait<T>(
        &self,
        k: Option<Sock>,
        d: Dir,
        how: How,
        check: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>, Errno> {
        let q = self.waits.queue(d);
        let arm = |s: &mut Stack| {
            if let Some(k) = k {
                self.waits.arm(s, k, d)
            }
        };
        drive::wait(&self.net, q, arm, how, check)
    }

    /// [`Socket::wait`] without a time limit.
    fn wait_for<T>(
        &self,
        k: Option<Sock>,
        d: Dir,
        how: How,
        check: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<T, Errno> {
        // Only `How::Within` times out.
        self.wait(k, d, how, check)?.ok_or(Errno::ETIMEDOUT)
    }

    pub fn bind(&self, a: &SockAddrIn) -> Result<(), Errno> {
        let ep = ep_of(a)?;
        let addr = match ep.addr {
            IpAddress::Ipv4(v) if v.is_unspecified() => None,
            x => Some(x),
        };
        let mut st = self.st.lock();
        let r = self.net(|s| {
            if let Some(IpAddress::Ipv4(v)) = addr {
                if !s.is_own_addr(v) {
                    return Err(Errno::EADDRNOTAVAIL);
                }
            }
            match &mut *st {
                State::Tcp { st: Tcp::Fresh { bound: b @ None }, port } => {
                    let p = s.reserve_port(true, ep.port).ok_or(Errno::EADDRINUSE)?;
                    *port = Some(p);
                    *b = Some(IpListenEndpoint { addr, port: p });
                    Ok(())
                }
                State::Udp { h: h @ None, port, .. } => {
                    let p = s.reserve_port(false, ep.port).ok_or(Errno::EADDRINUSE)?;
                    let nh = match new_udp(s) {
                        Ok(nh) => nh,
                        Err(e) => {
                            s.release_port(false, p);
                            return Err(e);
                        }
                    };
                    if s.sockets
                        .get_mut::<udp::Socket>(nh)
                        .bind(IpListenEndpoint { addr, port: p })
                        .is_err()
                    {
                        s.sockets.remove(nh);
                        s.release_port(false, p);
                        return Err(Errno::EINVAL);
                    }
                    *h = Some(nh);
                    *port = Some(p);
                    Ok(())
                }
                _ => Err(Errno::EINVAL),
            }
        })?;
        drop(st);
        if r.is_ok() {
            // A UDP socket can receive now: `poll`s that found it unbound look again.
            self.changed();
        }
        r
    }

    /// Listen with room for `backlog` connections not yet accepted (see [`backlog_for`]);
    /// on a listening socket, change the backlog.
    pub fn listen(&self, backlog: usize) -> Result<(), Errno> {
        let mut st = self.st.lock();
        let State::Tcp { st: tcp_st, port } = &mut *st else { return Err(Errno::EOPNOTSUPP) };
        let ep = match tcp_st {
            Tcp::Fresh { bound: Some(ep) } => *ep,
            Tcp::Fresh { bound: None } => {
                let p = self.net(|s| s.reserve_port(true, 0))?.ok_or(Errno::EADDRINUSE)?;
                *port = Some(p);
                IpListenEndpoint { addr: None, port: p }
            }
            Tcp::Listening { id, .. } => return self.net(|s| s.set_backlog(*id, backlog)),
            Tcp::Conn { .. } => return Err(Errno::EISCONN),
        };
        let id = self.net(|s| s.add_listener(ep, backlog, self.waits.readable.clone()))?;
        *tcp_st = Tcp::Listening { ep, id };
        self.net.kick();
        Ok(())
    }

    fn listener(&self) -> Result<u64, Errno> {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Listening { id, .. }, .. } => Ok(*id),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Wait for an established connection: the new socket and its peer. If the caller cannot
    /// use it after all (no free descriptor), it gives it back with [`Socket::requeue`].
    pub fn accept(&self, how: How) -> Result<(Socket, SockAddrIn), Errno> {
        let id = self.listener()?;
        // The listener makes a connection acceptable under the stack lock and notifies the
        // `readable` queue (event design) after, through `drive::notify`.
        let h = self.wait_for(None, Dir::Recv, how, |s| s.accept_ready(id))?;
        self.net.kick();
        let peer = self.net(|s| addr_of(s.sockets.get::<tcp::Socket>(h).remote_endpoint()))?;
        Ok((self.conn(h), peer))
    }

    /// Put back a connection [`Socket::accept`] returned, first in line (as if it had never
    /// been accepted).
    pub fn requeue(&self, mut conn: Socket) {
        let fresh = State::Tcp { st: Tcp::Fresh { bound: None }, port: None };
        let State::Tcp { st: Tcp::Conn { h, .. }, .. } =
            core::mem::replace(conn.st.get_mut(), fresh)
        else {
            return;
        };
        match self.listener() {
            Ok(id) => {
                let _ = self.net(|s| s.requeue(id, h));
                // The sleep design's accepters wake at a poll's `wakeup`.
                self.net.kick();
            }
            Err(_) => {
                *conn.st.get_mut() = State::Tcp { st: Tcp::Conn { h, shut_rd: false }, port: None }
            }
        }
    }

    /// Start a connection (TCP) or set the default peer (UDP). For TCP, then wait with
    /// [`Socket::connected`].
    pub fn connect_start(&self, a: &SockAddrIn) -> Result<(), Errno> {
        let remote = ep_of(a)?;
        if remote.port == 0 || remote.addr.is_unspecified() {
            return Err(Errno::EINVAL);
        }
        if self.is_udp() {
            self.udp_autobind()?;
            if let State::Udp { remote: r, .. } = &mut *self.st.lock() {
                *r = Some(remote);
            }
            return Ok(());
        }
        let mut st = self.st.lock();
        match &mut *st {
            State::Udp { .. } => Err(Errno::EINVAL),
            State::Tcp { st: tcp_st, port } => {
                let local_ep = match tcp_st {
                    Tcp::Fresh { bound } => *bound,
                    Tcp::Listening { .. } => return Err(Errno::EINVAL),
                    Tcp::Conn { .. } => return Err(Errno::EISCONN),
                };
                let h = self.net(|s| -> Result<SocketHandle, Errno> {
                    // The buffers first: refused, nothing else has changed.
                    let h = new_tcp(s)?;
                    let lport = match local_ep {
                        Some(ep) => ep.port,
                        None => match s.reserve_port(true, 0) {
                            Some(p) => {
                                *port = Some(p);
                                p
                            }
                            None => {
                                s.sockets.remove(h);
                                return Err(Errno::EADDRNOTAVAIL);
                            }
                        },
                    };
                    let local =
                        IpListenEndpoint { addr: local_ep.and_then(|e| e.addr), port: lport };
                    let Stack { iface, sockets, .. } = s;
                    if sockets
                        .get_mut::<tcp::Socket>(h)
                        .connect(iface.context(), remote, local)
                        .is_err()
                    {
                        sockets.remove(h);
                        return Err(Errno::ENETUNREACH);
                    }
                    Ok(h)
                })??;
                *tcp_st = Tcp::Conn { h, shut_rd: false };
                self.net.kick();
                Ok(())
            }
        }
    }

    /// The socket changed in a way smoltcp does not signal (`bind`, `shutdown`): its waiters
    /// look again (the event design's queues are notified; the sleep design's kick polls
    /// the stack, and the poll's `wakeup` wakes its sleepers).
    fn changed(&self) {
        self.waits.notify_all();
        self.net.kick();
    }

    fn tcp_handle(&self) -> Option<SocketHandle> {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => Some(*h),
            _ => None,
        }
    }

    /// How a started TCP connection went: `None` while it is opening, ECONNREFUSED if it
    /// was refused.
    fn connect_check(s: &Stack, h: SocketHandle) -> Option<Result<(), Errno>> {
        match s.sockets.get::<tcp::Socket>(h).state() {
            tcp::State::SynSent | tcp::State::SynReceived => None,
            tcp::State::Closed => Some(Err(Errno::ECONNREFUSED)),
            _ => Some(Ok(())),
        }
    }

    /// [`Socket::connected`] without waiting: `None` while the connection is opening.
    pub fn connect_result(&self) -> Option<Result<(), Errno>> {
        let Some(h) = self.tcp_handle() else { return Some(Ok(())) };
        self.net(|s| Self::connect_check(s, h)).unwrap_or(Some(Err(Errno::ENETUNREACH)))
    }

    /// Wait until a started TCP connection is established (ECONNREFUSED if it was refused),
    /// at most `ms` milliseconds (then ETIMEDOUT, and the attempt is given up).
    pub fn connected(&self, ms: u64) -> Result<(), Errno> {
        let Some(h) = self.tcp_handle() else { return Ok(()) };
        // A change of state wakes both of smoltcp's slots.
        let r = self
            .wait(Some(Sock::Tcp(h)), Dir::Send, How::Within(ms), |s| Self::connect_check(s, h))?;
        match r {
            Some(r) => r,
            None => {
                self.abort_connect();
                Err(Errno::ETIMEDOUT)
            }
        }
    }

    /// Whether a TCP connect is still in progress.
    pub fn connecting(&self) -> bool {
        self.tcp_handle().is_some_and(|h| {
            self.net(|s| s.sockets.get::<tcp::Socket>(h).state() == tcp::State::SynSent)
                .unwrap_or(false)
        })
    }

    /// Give up a connection attempt (after a timeout).
    pub fn abort_connect(&self) {
        if let Some(h) = self.tcp_handle() {
            let _ = self.net(|s| s.sockets.get_mut::<tcp::Socket>(h).abort());
            self.net.kick();
        }
    }

    fn udp_autobind(&self) -> Result<SocketHandle, Errno> {
        if let State::Udp { h: Some(h), .. } = &*self.st.lock() {
            return Ok(*h);
        }
        self.bind(&SockAddrIn::new([0; 4], 0))?;
        match &*self.st.lock() {
            State::Udp { h: Some(h), .. } => Ok(*h),
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn is_udp(&self) -> bool {
        matches!(&*self.st.lock(), State::Udp { .. })
    }

    /// Send (TCP: what fits once there is room, at least one byte; UDP: one datagram to
    /// `to` or the connected peer).
    pub fn send(&self, buf: &[u8], to: Option<&SockAddrIn>, how: How) -> Result<usize, Errno> {
        if self.is_udp() {
            let h = self.udp_autobind()?;
            let dest = match to {
                Some(a) => ep_of(a)?,
                None => match &*self.st.lock() {
                    State::Udp { remote: Some(r), .. } => *r,
                    _ => return Err(Errno::EDESTADDRREQ),
                },
            };
            if buf.len() > UDP_BUF {
                return Err(Errno::EMSGSIZE);
            }
            let r = self.wait_for(Some(Sock::Udp(h)), Dir::Send, how, |s| {
                match s.sockets.get_mut::<udp::Socket>(h).send_slice(buf, dest) {
                    Ok(()) => Some(Ok(buf.len())),
                    Err(udp::SendError::BufferFull) => None,
                    Err(udp::SendError::Unaddressable) => Some(Err(Errno::ENETUNREACH)),
                }
            });
            self.net.kick_sent();
            return r?;
        }
        let h = self.tcp_handle().ok_or(Errno::ENOTCONN)?;
        let r = self.wait_for(Some(Sock::Tcp(h)), Dir::Send, how, |s| {
            let t = s.sockets.get_mut::<tcp::Socket>(h);
            if !t.may_send() {
                return Some(match t.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => return None,
                    _ => Err(Errno::EPIPE),
                });
            }
            if t.can_send() {
                return Some(t.send_slice(buf).map_err(|_| Errno::EPIPE));
            }
            None
        });
        self.net.kick_sent();
        r?
    }

    /// For `sendfile`: waits until a connected TCP socket can take bytes and says how many it
    /// takes now, so that no more is read from the file than is sent. EINVAL for UDP,
    /// ENOTCONN before `connect` or `accept`, EPIPE once it can send no more.
    pub fn send_room(&self, how: How) -> Result<usize, Errno> {
        if self.is_udp() {
            return Err(Errno::EINVAL);
        }
        let h = self.tcp_handle().ok_or(Errno::ENOTCONN)?;
        self.wait_for(Some(Sock::Tcp(h)), Dir::Send, how, |s| {
            let t = s.sockets.get_mut::<tcp::Socket>(h);
            if !t.may_send() {
                return match t.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => None,
                    _ => Some(Err(Errno::EPIPE)),
                };
            }
            t.can_send().then(|| Ok(t.send_capacity() - t.send_queue()))
        })?
    }

    /// Receive: TCP bytes (0 at the peer's FIN); UDP one datagram and its sender.
    pub fn recv(&self, buf: &mut [u8], how: How) -> Result<(usize, SockAddrIn), Errno> {
        if self.is_udp() {
            let h = self.udp_autobind()?;
            return self.wait_for(Some(Sock::Udp(h)), Dir::Recv, how, |s| {
                let u = s.sockets.get_mut::<udp::Socket>(h);
                if !u.can_recv() {
                    return None;
                }
                Some(match u.recv_slice(buf) {
                    Ok((n, meta)) => Ok((n, addr_of(Some(meta.endpoint)))),
                    Err(_) => Err(Errno::EMSGSIZE),
                })
            })?;
        }
        let (h, shut_rd) = match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, shut_rd }, .. } => (*h, *shut_rd),
            _ => return Err(Errno::ENOTCONN),
        };
        if shut_rd {
            return Ok((0, SockAddrIn::default()));
        }
        let r = self.wait_for(Some(Sock::Tcp(h)), Dir::Recv, how, |s| {
            let t = s.sockets.get_mut::<tcp::Socket>(h);
            let peer = addr_of(t.remote_endpoint());
            if t.can_recv() {
                return Some(t.recv_slice(buf).map(|n| (n, peer)).map_err(|_| Errno::ECONNRESET));
            }
            match t.state() {
                tcp::State::SynSent | tcp::State::SynReceived => None,
                _ if t.may_recv() => None,
                // Reset by the peer (never saw its FIN) vs. an orderly end.
                tcp::State::Closed => Some(Ok((0, peer))),
                _ => Some(Ok((0, peer))),
            }
        });
        self.net.kick(); // window update
        r?
    }

    pub fn shutdown(&self, how: usize) -> Result<(), Errno> {
        let mut st = self.st.lock();
        let State::Tcp { st: Tcp::Conn { h, shut_rd }, .. } = &mut *st else {
            return Err(Errno::ENOTCONN);
        };
        if how != SHUT_WR {
            *shut_rd = true;
        }
        if how != SHUT_RD {
            self.net(|s| s.sockets.get_mut::<tcp::Socket>(*h).close())?;
        }
        drop(st);
        // `poll` reports POLLIN once the read side is shut: pollers look again.
        self.changed();
        Ok(())
    }

    pub fn local_addr(&self) -> SockAddrIn {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Fresh { bound: Some(ep) }, .. }
            | State::Tcp { st: Tcp::Listening { ep, .. }, .. } => listen_addr(*ep),
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => self
                .net(|s| addr_of(s.sockets.get::<tcp::Socket>(*h).local_endpoint()))
                .unwrap_or_default(),
            State::Udp { h: Some(h), .. } => self
                .net(|s| listen_addr(s.sockets.get::<udp::Socket>(*h).endpoint()))
                .unwrap_or_default(),
            _ => SockAddrIn::new([0; 4], 0),
        }
    }

    pub fn peer_addr(&self) -> Result<SockAddrIn, Errno> {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => self
                .net(|s| {
                    s.sockets.get::<tcp::Socket>(*h).remote_endpoint().map(|e| addr_of(Some(e)))
                })?
                .ok_or(Errno::ENOTCONN),
            State::Udp { remote: Some(r), .. } => Ok(addr_of(Some(*r))),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// `poll` readiness for `events` (`POLLHUP` whether asked or not). With `w` and nothing
    /// to report, `w` is registered through `reg` on the queues of the directions asked for,
    /// with tickets taken and smoltcp's slots armed in the same section under the stack lock
    /// as the check (see the module docs), so the next change wakes it.
    pub fn poll_events<'a>(
        &'a self,
        events: i16,
        w: Option<&Waker>,
        reg: &mut PollWait<'a>,
    ) -> i16 {
        // The sleep design's `poll` registers on the stack's channel before its scan
        // (`syscall::net::sys_poll`): no waker goes anywhere.
        let w = w.filter(|_| drive::design() == Design::Event);
        let st = self.st.lock();
        self.net(|s| {
            let (rev, k) = match &*st {
                State::Tcp { st: Tcp::Fresh { .. }, .. } => (POLLOUT & events | POLLHUP, None),
                // Its `readable` queue is notified by the listener, not by a smoltcp slot.
                State::Tcp { st: Tcp::Listening { id, .. }, .. } => {
                    (if s.listener_ready(*id) { POLLIN & events } else { 0 }, None)
                }
                State::Tcp { st: Tcp::Conn { h, shut_rd }, .. } => {
                    let t = s.sockets.get::<tcp::Socket>(*h);
                    let state = t.state();
                    let opening = matches!(state, tcp::State::SynSent | tcp::State::SynReceived);
                    let mut rev = 0;
                    if t.can_recv() || *shut_rd || (!opening && !t.may_recv()) {
                        rev |= POLLIN & events;
                    }
                    if t.can_send() {
                        rev |= POLLOUT & events;
                    }
                    if state == tcp::State::Closed || (!opening && !t.may_send() && !t.may_recv()) {
                        rev |= POLLHUP;
                    }
                    (rev, Some(Sock::Tcp(*h)))
                }
                State::Udp { h: None, .. } => (POLLOUT & events, None),
                State::Udp { h: Some(h), .. } => {
                    let u = s.sockets.get::<udp::Socket>(*h);
                    let mut rev = 0;
                    if u.can_recv() {
                        rev |= POLLIN & events;
                    }
                    if u.can_send() {
                        rev |= POLLOUT & events;
                    }
                    (rev, Some(Sock::Udp(*h)))
                }
            };
            if let (0, Some(w)) = (rev, w) {
                // A change of state (a hangup) wakes both of smoltcp's slots: a poll for
                // neither direction waits on the readable queue.
                let out = events & POLLOUT != 0;
                let dirs = [(Dir::Recv, events & POLLIN != 0 || !out), (Dir::Send, out)];
                for (i, (d, _)) in dirs.into_iter().filter(|&(_, on)| on).enumerate() {
                    if let Some(k) = k {
                        self.waits.arm(s, k, d);
                    }
                    let q = self.waits.queue(d);
                    if i == 0 {
                        reg.arm(q, q.ticket(), w);
                    } else {
                        reg.arm_also(q, q.ticket(), w);
                    }
                }
            }
            rev
        })
        .unwrap_or(POLLERR)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let st = self.st.get_mut();
        let _ = self.net.with(|s| match st {
            State::Tcp { st: tcp_st, port } => {
                match tcp_st {
                    Tcp::Fresh { .. } => {}
                    Tcp::Listening { id, .. } => s.remove_listener(*id),
                    Tcp::Conn { h, .. } => s.close_tcp(*h),
                }
                if let Some(p) = port {
                    s.release_port(true, *p);
                }
            }
            State::Udp { h, port, .. } => {
                if let Some(h) = h {
                    // Datagrams sent just before the close wait in the socket for the task's
                    // next poll: send them now, as `sendto; close` on Linux has sent them.
                    if s.sockets.get::<udp::Socket>(*h).send_queue() > 0 {
                        s.flush();
                    }
                    s.sockets.remove(*h);
                }
                if let Some(p) = port {
                    s.release_port(false, *p);
                }
            }
        });
        self.net.kick();
    }
}

fn tcp_state_name(s: tcp::State) -> &'static str {
    match s {
        tcp::State::Closed => "CLOSED",
        tcp::State::Listen => "LISTEN",
        tcp::State::SynSent => "SYN_SENT",
        tcp::State::SynReceived => "SYN_RECV",
        tcp::State::Established => "ESTABLISHED",
        tcp::State::FinWait1 => "FIN_WAIT1",
        tcp::State::FinWait2 => "FIN_WAIT2",
        tcp::State::CloseWait => "CLOSE_WAIT",
        tcp::State::Closing => "CLOSING",
        tcp::State::LastAck => "LAST_ACK",
        tcp::State::TimeWait => "TIME_WAIT",
    }
}

fn fmt_addr(a: SockAddrIn) -> String {
    let mut o = String::new();
    let _ = write!(o, "{}.{}.{}.{}:{}", a.addr[0], a.addr[1], a.addr[2], a.addr[3], a.port());
    o
}

/// The lines of `/proc/net` for stack `s`, each after `prefix`:
/// `proto local:port remote:port STATE`, one per socket.
pub(super) fn socket_lines(s: &Stack, prefix: &str, out: &mut String) {
    for (_, sock) in s.sockets.iter() {
        match sock {
            smoltcp::socket::Socket::Tcp(t) => {
                let local = match t.local_endpoint() {
                    Some(e) => addr_of(Some(e)),
                    None => listen_addr(t.listen_endpoint()),
                };
                let _ = writeln!(
                    out,
                    "{prefix}tcp {} {} {}",
                    fmt_addr(local),
                    fmt_addr(addr_of(t.remote_endpoint())),
                    tcp_state_name(t.state())
                );
            }
            smoltcp::socket::Socket::Udp(u) => {
                let _ = writeln!(
                    out,
                    "{prefix}udp {} 0.0.0.0:0 {}",
                    fmt_addr(listen_addr(u.endpoint())),
                    if u.is_open() { "OPEN" } else { "CLOSED" }
                );
            }
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}
