//! Sockets (a [`crate::file::File`] kind): BSD-style TCP and UDP over the smoltcp stack.
//!
//! A [`Socket`] holds handles into the stack's socket set. Every operation is a short
//! section under the stack lock; a blocking one is a future ([`wait`]) that checks its
//! condition and, if not met, registers the caller's waker with the smoltcp socket (feature
//! `async`: `register_recv_waker` / `register_send_waker`) in the same locked section, so no
//! wakeup can slip between the check and the registration. When the wait is over it
//! registers a no-op waker in its place (deregistration: no stale waker is left behind).
//!
//! TCP `listen(backlog)` makes a listener in the stack (`stack::Stack::add_listener`): up to
//! `backlog` connections (at most [`SOMAXCONN`]; [`DEFAULT_BACKLOG`] for a backlog of 0 or
//! less) complete their handshake before `accept` takes them, and the network task keeps one
//! smoltcp socket in LISTEN for the next SYN (see `stack`'s module docs). `accept` and `poll`
//! wait for a listener on its wait queue (notified by the network task when a connection
//! becomes acceptable), with the ticket taken under the stack lock in the same section as the
//! check. `close` is graceful: FIN, and the smoltcp socket is freed by the network task once
//! its close is done (`stack::Stack::close_tcp`).
//!
//! Buffers are charged to the kernel-memory budget (`mm::budget`) when they are made: a TCP
//! socket's at `connect` (or by its listener, before the SYN), a UDP socket's at `bind` (or its
//! first datagram). `socket` already fails with ENOMEM when the budget could not pay for them
//! now, and so do `connect` and `bind` if it no longer can by then.

use super::stack::{self, Stack, TCP_BUF};
use crate::file::poll::PollWait;
use crate::mm::budget::{self, Charge};
use abi::syscall::net::{SockAddrIn, POLLERR, POLLHUP, POLLIN, POLLOUT, SHUT_RD, SHUT_WR};
use abi::syscall::Errno;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};
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
    st: spin::Mutex<State>,
    /// A listener's wait queue, notified when a connection can be accepted (set by `listen`).
    accept_q: spin::Once<Arc<WaitQueue>>,
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

fn net<R>(f: impl FnOnce(&mut Stack) -> R) -> Result<R, Errno> {
    stack::with(f).ok_or(Errno::ENETUNREACH)
}

/// A connection's TCP socket, its buffers charged (ENOMEM: refused by the budget).
fn new_tcp(s: &mut Stack) -> Result<SocketHandle, Errno> {
    stack::new_tcp_socket(&mut s.sockets, &mut s.charges, TCP_BUF).ok_or(Errno::ENOMEM)
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
    let charge = Charge::new(UDP_CHARGE).ok_or(Errno::ENOMEM)?;
    let u = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; UDP_PACKETS], vec![0; UDP_BUF]),
    );
    Ok(stack::add_socket(&mut s.sockets, &mut s.charges, u, charge))
}

#[derive(Clone, Copy)]
enum Dir {
    Recv,
    Send,
}

fn register_tcp(t: &mut tcp::Socket, d: Dir, w: &Waker) {
    match d {
        Dir::Recv => t.register_recv_waker(w),
        Dir::Send => t.register_send_waker(w),
    }
}

/// Wait for `check` to give a value: checked under the stack lock, the waker registered with
/// the sockets `check` names (through `reg`) in the same section, deregistered when done.
async fn wait<T>(
    mut check: impl FnMut(&mut Stack) -> Option<T>,
    mut reg: impl FnMut(&mut Stack, &Waker),
) -> T {
    poll_fn(|cx: &mut Context<'_>| {
        let r = stack::with(|s| match check(s) {
            Some(v) => {
                reg(s, Waker::noop());
                Poll::Ready(v)
            }
            None => {
                reg(s, cx.waker());
                Poll::Pending
            }
        });
        r.unwrap_or(Poll::Pending)
    })
    .await
}

impl Socket {
    /// A new socket; its buffers come with `connect`, `bind` or the first datagram. ENOMEM
    /// when the kernel-memory budget could not pay for them now (as Linux's `socket` gives
    /// ENOBUFS or ENOMEM when memory is short; this ABI has no ENOBUFS).
    pub fn new(stream: bool) -> Result<Socket, Errno> {
        if !stack::is_up() {
            return Err(Errno::ENETUNREACH);
        }
        if !budget::admits(if stream { stack::tcp_charge(TCP_BUF) } else { UDP_CHARGE }) {
            return Err(Errno::ENOMEM);
        }
        let st = if stream {
            State::Tcp { st: Tcp::Fresh { bound: None }, port: None }
        } else {
            State::Udp { h: None, port: None, remote: None }
        };
        Ok(Socket { st: spin::Mutex::new(st), accept_q: spin::Once::new() })
    }

    fn conn(h: SocketHandle) -> Socket {
        Socket {
            st: spin::Mutex::new(State::Tcp { st: Tcp::Conn { h, shut_rd: false }, port: None }),
            accept_q: spin::Once::new(),
        }
    }

    pub fn bind(&self, a: &SockAddrIn) -> Result<(), Errno> {
        let ep = ep_of(a)?;
        let addr = match ep.addr {
            IpAddress::Ipv4(v) if v.is_unspecified() => None,
            x => Some(x),
        };
        let mut st = self.st.lock();
        net(|s| {
            if let Some(IpAddress::Ipv4(v)) = addr {
                if !v.is_loopback() && v.octets() != s.ip {
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
                        stack::remove_socket(&mut s.sockets, &mut s.charges, nh);
                        s.release_port(false, p);
                        return Err(Errno::EINVAL);
                    }
                    *h = Some(nh);
                    *port = Some(p);
                    Ok(())
                }
                _ => Err(Errno::EINVAL),
            }
        })?
    }

    /// Listen with room for `backlog` connections not yet accepted (see [`backlog_for`]);
    /// on a listening socket, change the backlog.
    pub fn listen(&self, backlog: usize) -> Result<(), Errno> {
        let mut st = self.st.lock();
        let State::Tcp { st: tcp_st, port } = &mut *st else { return Err(Errno::EOPNOTSUPP) };
        let ep = match tcp_st {
            Tcp::Fresh { bound: Some(ep) } => *ep,
            Tcp::Fresh { bound: None } => {
                let p = net(|s| s.reserve_port(true, 0))?.ok_or(Errno::EADDRINUSE)?;
                *port = Some(p);
                IpListenEndpoint { addr: None, port: p }
            }
            Tcp::Listening { id, .. } => return net(|s| s.set_backlog(*id, backlog)),
            Tcp::Conn { .. } => return Err(Errno::EISCONN),
        };
        let q = self.accept_q.call_once(|| Arc::new(WaitQueue::new())).clone();
        let id = net(|s| s.add_listener(ep, backlog, q))?;
        *tcp_st = Tcp::Listening { ep, id };
        stack::kick();
        Ok(())
    }

    fn listener(&self) -> Result<(u64, &WaitQueue), Errno> {
        match (&*self.st.lock(), self.accept_q.get()) {
            (State::Tcp { st: Tcp::Listening { id, .. }, .. }, Some(q)) => Ok((*id, q)),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Wait for an established connection: the new socket and its peer. If the caller cannot
    /// use it after all (no free descriptor), it gives it back with [`Socket::requeue`].
    pub async fn accept(&self) -> Result<(Socket, SockAddrIn), Errno> {
        let (id, q) = self.listener()?;
        let h = loop {
            // The ticket is taken under the stack lock, in the section that found nothing:
            // the network task makes a connection acceptable under that lock and notifies
            // after, so the notification comes after the ticket and `wait` sees it.
            match net(|s| s.accept_ready(id).ok_or_else(|| q.ticket()))? {
                Ok(h) => break h,
                Err(ticket) => q.wait(ticket).await,
            }
        };
        stack::kick();
        let peer = net(|s| addr_of(s.sockets.get::<tcp::Socket>(h).remote_endpoint()))?;
        Ok((Socket::conn(h), peer))
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
            Ok((id, _)) => {
                let _ = net(|s| s.requeue(id, h));
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
                let h = net(|s| -> Result<SocketHandle, Errno> {
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
                                stack::remove_socket(&mut s.sockets, &mut s.charges, h);
                                return Err(Errno::EADDRNOTAVAIL);
                            }
                        },
                    };
                    let local =
                        IpListenEndpoint { addr: local_ep.and_then(|e| e.addr), port: lport };
                    let Stack { iface, sockets, charges, .. } = s;
                    if sockets
                        .get_mut::<tcp::Socket>(h)
                        .connect(iface.context(), remote, local)
                        .is_err()
                    {
                        stack::remove_socket(sockets, charges, h);
                        return Err(Errno::ENETUNREACH);
                    }
                    Ok(h)
                })??;
                *tcp_st = Tcp::Conn { h, shut_rd: false };
                stack::kick();
                Ok(())
            }
        }
    }

    fn tcp_handle(&self) -> Option<SocketHandle> {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => Some(*h),
            _ => None,
        }
    }

    /// Wait until a started TCP connection is established (ECONNREFUSED if it was refused).
    pub async fn connected(&self) -> Result<(), Errno> {
        let Some(h) = self.tcp_handle() else { return Ok(()) };
        wait(
            |s| match s.sockets.get::<tcp::Socket>(h).state() {
                tcp::State::SynSent | tcp::State::SynReceived => None,
                tcp::State::Closed => Some(Err(Errno::ECONNREFUSED)),
                _ => Some(Ok(())),
            },
            |s, w| s.sockets.get_mut::<tcp::Socket>(h).register_send_waker(w),
        )
        .await
    }

    /// Whether a TCP connect is still in progress.
    pub fn connecting(&self) -> bool {
        self.tcp_handle().is_some_and(|h| {
            net(|s| s.sockets.get::<tcp::Socket>(h).state() == tcp::State::SynSent).unwrap_or(false)
        })
    }

    /// Give up a connection attempt (after a timeout).
    pub fn abort_connect(&self) {
        if let Some(h) = self.tcp_handle() {
            let _ = net(|s| s.sockets.get_mut::<tcp::Socket>(h).abort());
            stack::kick();
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
    pub async fn send(&self, buf: &[u8], to: Option<&SockAddrIn>) -> Result<usize, Errno> {
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
            let r = wait(
                |s| {
                    let u = s.sockets.get_mut::<udp::Socket>(h);
                    match u.send_slice(buf, dest) {
                        Ok(()) => Some(Ok(buf.len())),
                        Err(udp::SendError::BufferFull) => None,
                        Err(udp::SendError::Unaddressable) => Some(Err(Errno::ENETUNREACH)),
                    }
                },
                |s, w| s.sockets.get_mut::<udp::Socket>(h).register_send_waker(w),
            )
            .await;
            stack::kick();
            return r;
        }
        let h = self.tcp_handle().ok_or(Errno::ENOTCONN)?;
        let r = wait(
            |s| {
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
            },
            |s, w| register_tcp(s.sockets.get_mut::<tcp::Socket>(h), Dir::Send, w),
        )
        .await;
        stack::kick();
        r
    }

    /// Receive: TCP bytes (0 at the peer's FIN); UDP one datagram and its sender.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<(usize, SockAddrIn), Errno> {
        if self.is_udp() {
            let h = self.udp_autobind()?;
            return wait(
                |s| {
                    let u = s.sockets.get_mut::<udp::Socket>(h);
                    if !u.can_recv() {
                        return None;
                    }
                    Some(match u.recv_slice(buf) {
                        Ok((n, meta)) => Ok((n, addr_of(Some(meta.endpoint)))),
                        Err(_) => Err(Errno::EMSGSIZE),
                    })
                },
                |s, w| s.sockets.get_mut::<udp::Socket>(h).register_recv_waker(w),
            )
            .await;
        }
        let (h, shut_rd) = match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, shut_rd }, .. } => (*h, *shut_rd),
            _ => return Err(Errno::ENOTCONN),
        };
        if shut_rd {
            return Ok((0, SockAddrIn::default()));
        }
        let r = wait(
            |s| {
                let t = s.sockets.get_mut::<tcp::Socket>(h);
                let peer = addr_of(t.remote_endpoint());
                if t.can_recv() {
                    return Some(
                        t.recv_slice(buf).map(|n| (n, peer)).map_err(|_| Errno::ECONNRESET),
                    );
                }
                match t.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => None,
                    _ if t.may_recv() => None,
                    // Reset by the peer (never saw its FIN) vs. an orderly end.
                    tcp::State::Closed => Some(Ok((0, peer))),
                    _ => Some(Ok((0, peer))),
                }
            },
            |s, w| register_tcp(s.sockets.get_mut::<tcp::Socket>(h), Dir::Recv, w),
        )
        .await;
        stack::kick(); // window update
        r
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
            net(|s| s.sockets.get_mut::<tcp::Socket>(*h).close())?;
            stack::kick();
        }
        Ok(())
    }

    pub fn local_addr(&self) -> SockAddrIn {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Fresh { bound: Some(ep) }, .. }
            | State::Tcp { st: Tcp::Listening { ep, .. }, .. } => listen_addr(*ep),
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => {
                net(|s| addr_of(s.sockets.get::<tcp::Socket>(*h).local_endpoint()))
                    .unwrap_or_default()
            }
            State::Udp { h: Some(h), .. } => {
                net(|s| listen_addr(s.sockets.get::<udp::Socket>(*h).endpoint()))
                    .unwrap_or_default()
            }
            _ => SockAddrIn::new([0; 4], 0),
        }
    }

    pub fn peer_addr(&self) -> Result<SockAddrIn, Errno> {
        match &*self.st.lock() {
            State::Tcp { st: Tcp::Conn { h, .. }, .. } => net(|s| {
                s.sockets.get::<tcp::Socket>(*h).remote_endpoint().map(|e| addr_of(Some(e)))
            })?
            .ok_or(Errno::ENOTCONN),
            State::Udp { remote: Some(r), .. } => Ok(addr_of(Some(*r))),
            _ => Err(Errno::ENOTCONN),
        }
    }

    /// `poll` readiness for `events`; with `w`, the waker is registered for a change (a
    /// connection's smoltcp socket keeps it; a listener's wait queue through `reg`).
    pub fn poll_events<'a>(
        &'a self,
        events: i16,
        w: Option<&Waker>,
        reg: &mut PollWait<'a>,
    ) -> i16 {
        let st = self.st.lock();
        net(|s| {
            let mut rev = 0;
            match &*st {
                State::Tcp { st: Tcp::Fresh { .. }, .. } => rev |= POLLOUT & events | POLLHUP,
                State::Tcp { st: Tcp::Listening { id, .. }, .. } => {
                    if s.listener_ready(*id) {
                        rev |= POLLIN & events;
                    } else if let (Some(w), Some(q)) = (w, self.accept_q.get()) {
                        // Ticket under the stack lock, with the check: as in `accept`.
                        reg.arm(q, q.ticket(), w);
                    }
                }
                State::Tcp { st: Tcp::Conn { h, shut_rd }, .. } => {
                    let t = s.sockets.get_mut::<tcp::Socket>(*h);
                    let state = t.state();
                    let opening = matches!(state, tcp::State::SynSent | tcp::State::SynReceived);
                    if t.can_recv() || *shut_rd || (!opening && !t.may_recv()) {
                        rev |= POLLIN & events;
                    }
                    if t.can_send() {
                        rev |= POLLOUT & events;
                    }
                    if state == tcp::State::Closed || (!opening && !t.may_send() && !t.may_recv()) {
                        rev |= POLLHUP;
                    }
                    if let Some(w) = w {
                        t.register_recv_waker(w);
                        t.register_send_waker(w);
                    }
                }
                State::Udp { h: None, .. } => rev |= POLLOUT & events,
                State::Udp { h: Some(h), .. } => {
                    let u = s.sockets.get_mut::<udp::Socket>(*h);
                    if u.can_recv() {
                        rev |= POLLIN & events;
                    }
                    if u.can_send() {
                        rev |= POLLOUT & events;
                    }
                    if let Some(w) = w {
                        u.register_recv_waker(w);
                        u.register_send_waker(w);
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
        let _ = stack::with(|s| match st {
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
                    stack::remove_socket(&mut s.sockets, &mut s.charges, *h);
                }
                if let Some(p) = port {
                    s.release_port(false, *p);
                }
            }
        });
        stack::kick();
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

/// The text of `/proc/net`: `proto local:port remote:port STATE`, one line per socket.
pub fn proc_net() -> Vec<u8> {
    let mut out = String::new();
    let _ = stack::with(|s| {
        for (_, sock) in s.sockets.iter() {
            match sock {
                smoltcp::socket::Socket::Tcp(t) => {
                    let local = match t.local_endpoint() {
                        Some(e) => addr_of(Some(e)),
                        None => listen_addr(t.listen_endpoint()),
                    };
                    let _ = writeln!(
                        out,
                        "tcp {} {} {}",
                        fmt_addr(local),
                        fmt_addr(addr_of(t.remote_endpoint())),
                        tcp_state_name(t.state())
                    );
                }
                smoltcp::socket::Socket::Udp(u) => {
                    let _ = writeln!(
                        out,
                        "udp {} 0.0.0.0:0 {}",
                        fmt_addr(listen_addr(u.endpoint())),
                        if u.is_open() { "OPEN" } else { "CLOSED" }
                    );
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    });
    out.into_bytes()
}
