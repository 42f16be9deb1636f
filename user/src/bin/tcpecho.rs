//! tcpecho [PORT]: the TCP echo service (default port 7): every byte a client sends comes back.
//!
//! Up to 64 clients at once (fewer when the process has fewer free descriptors), in one
//! process: the listener and the clients are non-blocking and polled together. A client's
//! bytes are read into a 4 KiB buffer, which is sent back before more is read (a client that
//! does not read its echo is simply not read from either). When the client closes its side,
//! what is left is sent and the connection closed. Connections and their ends are logged on
//! standard output.

#![no_std]
#![no_main]

use ulib::net::{self, endpoint, Endpoint, PollFd, SockAddrIn, POLLERR, POLLIN, POLLNVAL, POLLOUT};
use ulib::prelude::*;
use ulib::uparse::inet::parse_port;

ulib::entry!(main);

const MAX_CLIENTS: usize = 64;
const BACKLOG: usize = 16;
const BUF: usize = 4096;
/// The most echoed for one client in one round of `poll` (the others get their turn).
const ROUND_BYTES: u64 = 16 * BUF as u64;
/// After `accept` failed for another reason than "none waiting": when to try again.
const ACCEPT_RETRY_MS: u64 = 100;

struct Client {
    sock: File,
    peer: Endpoint,
    /// Received, not yet sent back: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// The client closed its sending side.
    eof: bool,
    echoed: u64,
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let port = match argv.as_slice() {
        [_] => 7,
        [_, p] => parse_port(p).unwrap_or_else(|| die!("{p}: not a port number")),
        _ => die!("usage: tcpecho [PORT]"),
    };
    let want = SockAddrIn::new([0; 4], port);
    let listener = match net::tcp_listener(&want, BACKLOG) {
        Ok(fd) => File::from_fd(fd),
        Err(e) => die!("listen on {}: {}", endpoint(&want), e.message()),
    };
    if let Err(e) = net::set_nonblocking(listener.fd(), true) {
        die!("non-blocking listener: {}", e.message());
    }
    let local = net::getsockname(listener.fd()).map(|a| endpoint(&a)).unwrap_or(endpoint(&want));
    let max_clients = sys::free_descriptors(listener.fd(), MAX_CLIENTS).max(1);
    println!("tcpecho: listening on {local} ({max_clients} connections at once)");
    serve(listener.fd(), max_clients)
}

fn serve(listener: Fd, max_clients: usize) -> ! {
    let mut clients: Vec<Client> = Vec::new();
    let mut fds: Vec<PollFd> = Vec::new();
    let mut retry_at: Option<u64> = None;
    loop {
        let now = sys::uptime();
        if retry_at.is_some_and(|t| now >= t) {
            retry_at = None;
        }
        fds.clear();
        let listening = clients.len() < max_clients && retry_at.is_none();
        if listening {
            fds.push(PollFd { fd: listener, events: POLLIN, revents: 0 });
        }
        for c in &clients {
            let events = if c.pos < c.buf.len() { POLLOUT } else { POLLIN };
            fds.push(PollFd { fd: c.sock.fd(), events, revents: 0 });
        }
        let timeout = retry_at.map_or(-1, |t| t.saturating_sub(now) as isize);
        if fds.is_empty() {
            let _ = sys::sleep(timeout.max(1) as u64);
            continue;
        }
        match net::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR | Errno::EAGAIN) => continue,
            Err(e) => die!("poll: {}", e.message()),
        }
        let base = usize::from(listening);
        let before = clients.len();
        let mut i = 0;
        clients.retain_mut(|c| {
            let revents = fds[base + i].revents;
            i += 1;
            let keep = revents == 0 || step(c, revents);
            if !keep {
                println!("tcpecho: {} closed ({} bytes echoed)", c.peer, c.echoed);
            }
            keep
        });
        if clients.len() < before {
            retry_at = None;
        }
        if listening && fds[0].revents != 0 {
            retry_at = accept_all(listener, &mut clients, max_clients);
        }
    }
}

fn accept_all(listener: Fd, clients: &mut Vec<Client>, max_clients: usize) -> Option<u64> {
    while clients.len() < max_clients {
        match net::accept(listener) {
            Ok((fd, addr)) => {
                let sock = File::from_fd(fd);
                let peer = endpoint(&addr);
                if let Err(e) = net::set_nonblocking(fd, true) {
                    eprintln!("tcpecho: {peer}: non-blocking: {}", e.message());
                    continue;
                }
                println!("tcpecho: {peer} connected");
                let buf = Vec::with_capacity(BUF);
                clients.push(Client { sock, peer, buf, pos: 0, eof: false, echoed: 0 });
            }
            Err(Errno::EAGAIN) => return None,
            Err(Errno::EINTR | Errno::ECONNABORTED | Errno::ECONNRESET) => {}
            Err(e) => {
                if !matches!(e, Errno::EMFILE | Errno::ENFILE) {
                    eprintln!("tcpecho: accept: {}", e.message());
                }
                return Some(sys::uptime() + ACCEPT_RETRY_MS);
            }
        }
    }
    None
}

/// Reads or writes what `revents` allows; false when the client is done.
fn step(c: &mut Client, revents: i16) -> bool {
    if revents & (POLLERR | POLLNVAL) != 0 {
        return false;
    }
    let fd = c.sock.fd();
    let start = c.echoed;
    loop {
        if c.pos < c.buf.len() {
            match net::send(fd, &c.buf[c.pos..]) {
                Ok(0) => return false,
                Ok(n) => {
                    c.pos += n;
                    c.echoed += n as u64;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
            continue;
        }
        if c.eof {
            return false; // everything echoed, and the client is done sending
        }
        if c.echoed - start >= ROUND_BYTES {
            return true; // poll again: others may be waiting
        }
        c.buf.resize(BUF, 0);
        c.pos = 0;
        let got = net::recv(fd, &mut c.buf);
        c.buf.truncate(got.unwrap_or(0));
        match got {
            Ok(0) => c.eof = true,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    }
}
