//! Sockets: one typed wrapper per network system call (`abi::syscall::nr::SOCKET..ARPING`),
//! errors as `Result<_, Errno>`, plus address helpers.
//!
//! Only IPv4 (`AF_INET`) exists. Addresses are `SockAddrIn` (Linux's `sockaddr_in`: port and
//! address in network byte order; [`SockAddrIn::new`] and [`SockAddrIn::port`] convert), or
//! [`Endpoint`] (address and host-order port) for display. A socket is a file descriptor: close
//! it with `sys::close`, or own it with `io::File::from_fd` to close it on drop.
//!
//! ```ignore
//! let fd = net::socket(SOCK_STREAM)?;
//! net::connect(fd, &SockAddrIn::new([10, 0, 2, 2], 80))?;
//! net::send_all(fd, b"GET / HTTP/1.0\r\n\r\n")?;
//! ```

use abi::syscall::net::{F_GETFL, F_SETFL};
use abi::syscall::nr;
use abi::syscall::open::NONBLOCK;
use alloc::string::String;

use crate::sys::{check, raw, Fd, Result};
use crate::Errno;

pub use abi::syscall::net::{
    PollFd, SockAddrIn, AF_INET, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, SHUT_RD, SHUT_RDWR,
    SHUT_WR, SOCK_DGRAM, SOCK_STREAM,
};
pub use uparse::inet::{Endpoint, Ipv4, Mac};

const ADDR_LEN: usize = SockAddrIn::SIZE;

/// A new socket: `ty` is [`SOCK_STREAM`] (TCP) or [`SOCK_DGRAM`] (UDP).
pub fn socket(ty: usize) -> Result<Fd> {
    // SAFETY: socket takes no pointer.
    check(unsafe { raw::syscall3(nr::SOCKET, AF_INET, ty, 0) }).map(|f| f as Fd)
}

/// Gives the socket its local address (`[0; 4]` = every interface; port 0 = any free one).
pub fn bind(fd: Fd, addr: &SockAddrIn) -> Result<()> {
    let p = addr as *const SockAddrIn as usize;
    // SAFETY: the kernel reads `ADDR_LEN` bytes from `addr`, a live `SockAddrIn` of that size.
    check(unsafe { raw::syscall3(nr::BIND, fd as usize, p, ADDR_LEN) }).map(drop)
}

/// Makes a bound TCP socket accept connections, `backlog` of them waiting at most.
pub fn listen(fd: Fd, backlog: usize) -> Result<()> {
    // SAFETY: listen takes no pointer.
    check(unsafe { raw::syscall2(nr::LISTEN, fd as usize, backlog) }).map(drop)
}

/// Calls `f(addr_ptr, len_ptr)` with a zeroed address and its length, returning the call's
/// result and the address the kernel filled in.
fn with_addr_out(f: impl FnOnce(usize, usize) -> isize) -> Result<(usize, SockAddrIn)> {
    let mut addr = SockAddrIn::default();
    let mut len = ADDR_LEN as u32;
    let ret = f(&mut addr as *mut SockAddrIn as usize, &mut len as *mut u32 as usize);
    Ok((check(ret)?, addr))
}

/// The next connection on a listening socket: its descriptor and the peer's address
/// (`EAGAIN` when none is waiting and the socket is non-blocking).
pub fn accept(fd: Fd) -> Result<(Fd, SockAddrIn)> {
    with_addr_out(|a, l| {
        // SAFETY: `a` and `l` are `with_addr_out`'s address and length, live for the call; the
        // kernel writes at most `*l` (16) bytes to `a` and one u32 to `l`.
        unsafe { raw::syscall3(nr::ACCEPT, fd as usize, a, l) }
    })
    .map(|(f, addr)| (f as Fd, addr))
}

/// Connects a TCP socket (or sets a UDP socket's default destination).
pub fn connect(fd: Fd, addr: &SockAddrIn) -> Result<()> {
    let p = addr as *const SockAddrIn as usize;
    // SAFETY: the kernel reads `ADDR_LEN` bytes from `addr`, a live `SockAddrIn` of that size.
    check(unsafe { raw::syscall3(nr::CONNECT, fd as usize, p, ADDR_LEN) }).map(drop)
}

/// Sends up to `buf.len()` bytes on a connected socket; how many went.
pub fn send(fd: Fd, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, a live slice.
    check(unsafe { raw::syscall4(nr::SEND, fd as usize, buf.as_ptr() as usize, buf.len(), 0) })
}

/// Sends all of `buf` (a blocking socket), retrying short sends; no progress is `EIO`.
pub fn send_all(fd: Fd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match send(fd, buf)? {
            0 => return Err(Errno::EIO),
            n => buf = &buf[n.min(buf.len())..],
        }
    }
    Ok(())
}

/// Sends up to `count` bytes of the regular file `input` on the connected TCP socket `out`
/// without copying them through this process: from `*offset`, which advances by what went,
/// or with `None` from the file's own offset (which advances). At most 64 KiB, and no more
/// than the socket takes at once; 0 at the end of the file.
pub fn sendfile(out: Fd, input: Fd, offset: Option<&mut u64>, count: usize) -> Result<usize> {
    let p = offset.map_or(0, |o| o as *mut u64 as usize);
    // SAFETY: the kernel reads and writes the 8 bytes at `p`, a live `u64` we hold mutably,
    // or nothing when it is null.
    check(unsafe { raw::syscall4(nr::SENDFILE, out as usize, input as usize, p, count) })
}

/// Receives up to `buf.len()` bytes; 0 when the peer has closed its side.
pub fn recv(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, which we hold mutably.
    check(unsafe { raw::syscall4(nr::RECV, fd as usize, buf.as_mut_ptr() as usize, buf.len(), 0) })
}

/// Sends one datagram to `to`.
pub fn sendto(fd: Fd, buf: &[u8], to: &SockAddrIn) -> Result<usize> {
    let p = to as *const SockAddrIn as usize;
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf` and `ADDR_LEN` from `to`,
    // both live.
    check(unsafe {
        raw::syscall6(nr::SENDTO, fd as usize, buf.as_ptr() as usize, buf.len(), 0, p, ADDR_LEN)
    })
}

/// Receives one datagram: its length and its sender.
pub fn recvfrom(fd: Fd, buf: &mut [u8]) -> Result<(usize, SockAddrIn)> {
    let (ptr, len) = (buf.as_mut_ptr() as usize, buf.len());
    with_addr_out(|a, l| {
        // SAFETY: `a` and `l` are `with_addr_out`'s address and length, live for the call; the
        // kernel writes at most `*l` (16) bytes to `a` and one u32 to `l`. At most `len`
        // bytes go to `ptr`, which is `buf`, held mutably.
        unsafe { raw::syscall6(nr::RECVFROM, fd as usize, ptr, len, 0, a, l) }
    })
}

/// The socket's local address.
pub fn getsockname(fd: Fd) -> Result<SockAddrIn> {
    with_addr_out(|a, l| {
        // SAFETY: `a` and `l` are `with_addr_out`'s address and length, live for the call; the
        // kernel writes at most `*l` (16) bytes to `a` and one u32 to `l`.
        unsafe { raw::syscall3(nr::GETSOCKNAME, fd as usize, a, l) }
    })
    .map(|(_, addr)| addr)
}

/// The connected peer's address (`ENOTCONN` if none).
pub fn getpeername(fd: Fd) -> Result<SockAddrIn> {
    with_addr_out(|a, l| {
        // SAFETY: `a` and `l` are `with_addr_out`'s address and length, live for the call; the
        // kernel writes at most `*l` (16) bytes to `a` and one u32 to `l`.
        unsafe { raw::syscall3(nr::GETPEERNAME, fd as usize, a, l) }
    })
    .map(|(_, addr)| addr)
}

/// Ends one or both directions: [`SHUT_RD`], [`SHUT_WR`] (sends FIN), [`SHUT_RDWR`].
pub fn shutdown(fd: Fd, how: usize) -> Result<()> {
    // SAFETY: shutdown takes no pointer.
    check(unsafe { raw::syscall2(nr::SHUTDOWN, fd as usize, how) }).map(drop)
}

/// Waits until one of `fds` is ready (their `revents` filled in) or `timeout_ms` passes
/// (`-1`: forever; `0`: just look). Returns how many have non-zero `revents`.
pub fn poll(fds: &mut [PollFd], timeout_ms: isize) -> Result<usize> {
    // SAFETY: the kernel reads and writes `fds.len()` `PollFd`s (`repr(C)`, 8 bytes, any bit
    // pattern valid) in `fds`, which we hold mutably.
    check(unsafe {
        raw::syscall3(nr::POLL, fds.as_mut_ptr() as usize, fds.len(), timeout_ms as usize)
    })
}

/// `fcntl(fd, cmd, arg)`: `F_GETFL` returns the flags, `F_SETFL` sets them.
pub fn fcntl(fd: Fd, cmd: usize, arg: usize) -> Result<usize> {
    // SAFETY: fcntl's commands here (F_GETFL, F_SETFL) take no pointer.
    check(unsafe { raw::syscall3(nr::FCNTL, fd as usize, cmd, arg) })
}

/// Makes waits on `fd` return `EAGAIN` instead of blocking (or blocking again).
pub fn set_nonblocking(fd: Fd, on: bool) -> Result<()> {
    let flags = fcntl(fd, F_GETFL, 0)?;
    let new = if on { flags | NONBLOCK } else { flags & !NONBLOCK };
    if new != flags {
        fcntl(fd, F_SETFL, new)?;
    }
    Ok(())
}

/// Asks the network who has `ip` (an ARP request) and returns its hardware address
/// (`ETIMEDOUT` after a second without an answer).
pub fn arping(ip: [u8; 4]) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    // Network order: the u32 whose bytes in memory are a, b, c, d.
    let ip = u32::from_ne_bytes(ip) as usize;
    // SAFETY: the kernel writes 6 bytes to `mac`, a live local array of 6.
    check(unsafe { raw::syscall2(nr::ARPING, ip, mac.as_mut_ptr() as usize) })?;
    Ok(mac)
}

/// `a.b.c.d` as four bytes (strict: four decimal numbers up to 255, no leading zeros).
pub fn inet_aton(s: &str) -> Option<[u8; 4]> {
    uparse::inet::parse_ipv4(s)
}

/// Four bytes as `a.b.c.d` (`Ipv4(addr)` formats without allocating).
pub fn inet_ntoa(addr: [u8; 4]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(15);
    let _ = write!(s, "{}", Ipv4(addr));
    s
}

/// A socket address as an [`Endpoint`] (`a.b.c.d:port`, the port in host order).
pub fn endpoint(addr: &SockAddrIn) -> Endpoint {
    Endpoint::new(addr.addr, addr.port())
}

/// An [`Endpoint`] as a socket address.
pub fn sockaddr(ep: Endpoint) -> SockAddrIn {
    SockAddrIn::new(ep.addr, ep.port)
}

/// Host to network byte order (16 bits).
pub const fn htons(x: u16) -> u16 {
    x.to_be()
}

/// Network to host byte order (16 bits).
pub const fn ntohs(x: u16) -> u16 {
    u16::from_be(x)
}

/// Host to network byte order (32 bits).
pub const fn htonl(x: u32) -> u32 {
    x.to_be()
}

/// Network to host byte order (32 bits).
pub const fn ntohl(x: u32) -> u32 {
    u32::from_be(x)
}

/// Bind-and-listen in one: a TCP socket listening on `addr`, `backlog` deep.
pub fn tcp_listener(addr: &SockAddrIn, backlog: usize) -> Result<Fd> {
    let fd = socket(SOCK_STREAM)?;
    let r = bind(fd, addr).and_then(|()| listen(fd, backlog));
    if let Err(e) = r {
        let _ = crate::sys::close(fd);
        return Err(e);
    }
    Ok(fd)
}
