//! listenwait PORT BACKLOG: listen on PORT with BACKLOG, and accept only when told, so that a
//! test can see connections wait in the kernel's backlog (`mkimage/tests/backlog.rs`).
//!
//! Prints `listenwait: listening on PORT backlog BACKLOG`, then obeys one command per line of
//! standard input (it `poll`s standard input before each read, so a console that claimed to be
//! readable too early, or never woke a poller, would show here):
//!
//! - `count`: the TCP sockets on PORT by state, from `/proc/net`, as
//!   `listenwait: listen=L syn_recv=S established=E` (`established` counts every connection
//!   past the handshake: ESTABLISHED, CLOSE_WAIT...);
//! - `serve N`: accept N connections one after another; from each, read one line and answer
//!   `served K: LINE` (K counts from 1), then close it; then print `listenwait: served N`;
//! - `quit` (or end of input): exit.

#![no_std]
#![no_main]

use ulib::net::{self, endpoint, PollFd, SockAddrIn, POLLHUP, POLLIN};
use ulib::prelude::*;
use ulib::uparse::inet::parse_port;
use ulib::uparse::procnet;

ulib::entry!(main);

const USAGE: &str = "usage: listenwait PORT BACKLOG";

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let [_, port, backlog] = argv.as_slice() else { die!("{USAGE}") };
    let port = parse_port(port).unwrap_or_else(|| die!("{port}: not a port number\n{USAGE}"));
    let backlog: usize = backlog.parse().unwrap_or_else(|_| die!("{backlog}: not a number"));
    let want = SockAddrIn::new([0; 4], port);
    let listener = match net::tcp_listener(&want, backlog) {
        Ok(fd) => File::from_fd(fd),
        Err(e) => die!("listen on {}: {}", endpoint(&want), e.message()),
    };
    println!("listenwait: listening on {port} backlog {backlog}");
    let mut pending: Vec<u8> = Vec::new();
    let mut served = 0;
    loop {
        let mut fds = [PollFd { fd: 0, events: POLLIN, revents: 0 }];
        match net::poll(&mut fds, -1) {
            Ok(1) if fds[0].revents & (POLLIN | POLLHUP) != 0 => {}
            Ok(n) => die!("poll on standard input: {n} ready, revents {:#x}", fds[0].revents),
            Err(e) => die!("poll: {}", e.message()),
        }
        let mut buf = [0u8; 1024];
        let n = match sys::read(0, &mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => die!("standard input: {}", e.message()),
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).into_owned();
            if !command(&line, listener.fd(), port, &mut served) {
                return 0;
            }
        }
    }
}

/// Obeys one command line; false for `quit`.
fn command(line: &str, listener: Fd, port: u16, served: &mut usize) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => {}
        ["count"] => count(port),
        ["serve", n] => {
            let n: usize = n.parse().unwrap_or_else(|_| die!("serve {n}: not a number"));
            for _ in 0..n {
                *served += 1;
                serve_one(listener, *served);
            }
            println!("listenwait: served {n}");
        }
        ["quit"] => return false,
        _ => eprintln!("listenwait: {}: unknown command", line.trim_end()),
    }
    true
}

/// Prints the TCP sockets on `port` by state.
fn count(port: u16) {
    let mut text = Vec::new();
    if let Err(e) = File::open("/proc/net", sys::RDONLY).and_then(|f| f.read_to_end(&mut text)) {
        die!("/proc/net: {}", e.message());
    }
    let (sockets, _) = procnet::parse(&String::from_utf8_lossy(&text));
    let (mut listen, mut syn, mut est) = (0, 0, 0);
    for s in sockets.iter().filter(|s| s.proto == "tcp" && s.local.port == port) {
        match s.state.as_str() {
            "LISTEN" => listen += 1,
            "SYN_RECV" => syn += 1,
            "CLOSED" | "TIME_WAIT" => {}
            _ => est += 1,
        }
    }
    println!("listenwait: listen={listen} syn_recv={syn} established={est}");
}

/// Accepts one connection, reads a line from it, answers, closes.
fn serve_one(listener: Fd, k: usize) {
    let (fd, peer) = match net::accept(listener) {
        Ok(c) => c,
        Err(e) => die!("accept: {}", e.message()),
    };
    let conn = File::from_fd(fd);
    let mut got = Vec::new();
    let mut b = [0u8; 256];
    while !got.contains(&b'\n') && got.len() < 4096 {
        match net::recv(conn.fd(), &mut b) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) => {
                eprintln!("listenwait: {}: recv: {}", endpoint(&peer), e.message());
                return;
            }
        }
    }
    let line = String::from_utf8_lossy(&got);
    let answer = format!("served {k}: {}\n", line.trim_end());
    if let Err(e) = net::send_all(conn.fd(), answer.as_bytes()) {
        eprintln!("listenwait: {}: send: {}", endpoint(&peer), e.message());
    }
}
