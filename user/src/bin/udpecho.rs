//! udpecho [PORT]: the UDP echo service (default port 7): each datagram goes back to its sender
//! unchanged. Runs until killed; a datagram that cannot be sent back is reported and dropped.

#![no_std]
#![no_main]

use ulib::net::{self, endpoint, SockAddrIn, SOCK_DGRAM};
use ulib::prelude::*;
use ulib::uparse::inet::parse_port;

ulib::entry!(main);

/// The largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let port = match argv.as_slice() {
        [_] => 7,
        [_, p] => parse_port(p).unwrap_or_else(|| die!("{p}: not a port number")),
        _ => die!("usage: udpecho [PORT]"),
    };
    let want = SockAddrIn::new([0; 4], port);
    let sock = match net::socket(SOCK_DGRAM) {
        Ok(fd) => File::from_fd(fd),
        Err(e) => die!("socket: {}", e.message()),
    };
    if let Err(e) = net::bind(sock.fd(), &want) {
        die!("bind {}: {}", endpoint(&want), e.message());
    }
    let local = net::getsockname(sock.fd()).map(|a| endpoint(&a)).unwrap_or(endpoint(&want));
    println!("udpecho: listening on {local}");
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match net::recvfrom(sock.fd(), &mut buf) {
            Ok(got) => got,
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            // Errors of this socket itself will not go away.
            Err(
                e
                @ (Errno::EBADF | Errno::ENOTSOCK | Errno::EINVAL | Errno::EFAULT | Errno::ENOSYS),
            ) => {
                die!("recvfrom: {}", e.message())
            }
            // Others (an ICMP error for an earlier reply, say) concern one peer.
            Err(e) => {
                eprintln!("udpecho: recvfrom: {}", e.message());
                continue;
            }
        };
        if let Err(e) = net::sendto(sock.fd(), &buf[..n], &from) {
            eprintln!("udpecho: {}: {n} bytes: {}", endpoint(&from), e.message());
        }
    }
}
