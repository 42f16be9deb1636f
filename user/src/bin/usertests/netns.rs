//! Network namespaces (`spawn(NEWNET)`, `publish`): each namespace has a TCP/IP stack of its
//! own, `192.168.1.<id>` on the bridge between them, with its own loopback and port space.
//!
//! - `netns-isolation`: inside a new network namespace: its interfaces (`/proc/ifaces`),
//!   `bind` only to `0.0.0.0`, `127.0.0.0/8` or its own address, `127.0.0.1` reaching its own
//!   listeners only, the root's port bound again in its own port space, its own sockets in
//!   `/proc/net`, `publish` refused; the root and the container reach each other at their
//!   addresses and each sees the other's; the root's `/proc/netall` shows the container's
//!   sockets under its id while it lives, and nothing once it died.
//! - `netns-reach`: two containers and the root: TCP and UDP across the bridge, each side
//!   seeing the other's address; a container's `127.0.0.1` does not reach the other's.
//! - `netns-publish`: `publish`'s errors (`EINVAL`, `EPERM`, `ESRCH`, `EADDRINUSE` for a host
//!   port bound or published, or a container endpoint published twice), the published ports
//!   in `/proc/ns` as the root and the container see them, and the ports freed when the
//!   namespace dies (the root binds one, a new container publishes it, at once).
//!
//! Translation to and from the wire needs a client outside the guest: `mkimage/tests/netns.rs`
//! tests it from the host. Without a NIC there is no network to isolate (noted).

use ulib::abi::syscall::nr;
use ulib::abi::syscall::ns::{NEWNET, NEWPID, ROOT};
use ulib::io::write_all;
use ulib::net::{self, PollFd, SockAddrIn, POLLIN, SOCK_DGRAM, SOCK_STREAM};
use ulib::prelude::*;
use ulib::sys::raw::syscall4;

use crate::ns::{and_retired, proc_ns, recv_report, send_report, NsLine};
use crate::{ctx, ensure, expect_err, read_file, start_child, wait_all, wait_pid, Outcome};

/// A port the root and a container both listen on.
const SHARED: u16 = 7301;
/// A port only the root listens on.
const ROOT_ONLY: u16 = 7302;
/// Host ports for `netns-publish`.
const HOST: [u16; 3] = [7311, 7312, 7313];
const WIRE: [u8; 4] = [10, 0, 2, 15];
const BRIDGE_ROOT: [u8; 4] = [192, 168, 1, 1];
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
const ANY: [u8; 4] = [0; 4];
/// How long a connection, a datagram or an answer may take.
const DEADLINE_MS: isize = 10_000;
const NO_NETWORK: &str = "no network: skipped";

/// Namespace `id`'s address on the container network.
fn ip_of(id: u32) -> [u8; 4] {
    [192, 168, 1, id as u8]
}

fn show(a: &SockAddrIn) -> String {
    format!("{}", net::endpoint(a))
}

/// Whether there is a network (a socket can be made).
fn have_network() -> Result<bool, String> {
    match net::socket(SOCK_STREAM) {
        Ok(fd) => {
            let _ = sys::close(fd);
            Ok(true)
        }
        Err(Errno::ENETUNREACH) => Ok(false),
        Err(e) => Err(format!("socket: {}", e.message())),
    }
}

fn listen_on(ip: [u8; 4], port: u16) -> Result<Fd, String> {
    let a = SockAddrIn::new(ip, port);
    ctx(net::tcp_listener(&a, 8), &format!("listen on {}", show(&a)))
}

/// A TCP connection to `ip:port`.
fn connect(ip: [u8; 4], port: u16) -> sys::Result<Fd> {
    let fd = net::socket(SOCK_STREAM)?;
    match net::connect(fd, &SockAddrIn::new(ip, port)) {
        Ok(()) => Ok(fd),
        Err(e) => {
            let _ = sys::close(fd);
            Err(e)
        }
    }
}

/// Waits (at most [`DEADLINE_MS`]) until `fd` is readable.
fn readable(fd: Fd, what: &str) -> Result<(), String> {
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    match net::poll(&mut fds, DEADLINE_MS) {
        Ok(1) => Ok(()),
        Ok(_) => Err(format!("{what}: nothing after {DEADLINE_MS} ms")),
        Err(e) => Err(format!("{what}: poll: {}", e.message())),
    }
}

fn accept(l: Fd, what: &str) -> Result<(Fd, SockAddrIn), String> {
    readable(l, what)?;
    ctx(net::accept(l), what)
}

/// One line (without its newline) from a TCP connection.
fn recv_line(fd: Fd, what: &str) -> Result<String, String> {
    let mut line = Vec::new();
    let mut buf = [0u8; 64];
    while !line.ends_with(b"\n") {
        readable(fd, what)?;
        match ctx(net::recv(fd, &mut buf), what)? {
            0 => return Err(format!("{what}: closed after {line:?}")),
            n => line.extend_from_slice(&buf[..n]),
        }
    }
    line.pop();
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn send_line(fd: Fd, text: &str, what: &str) -> Result<(), String> {
    ctx(net::send_all(fd, format!("{text}\n").as_bytes()), what)
}

fn text_of(path: &str) -> Result<String, String> {
    Ok(String::from_utf8_lossy(&read_file(path)?).into_owned())
}

fn ns_line(id: u32) -> Result<NsLine, String> {
    proc_ns()?.into_iter().find(|l| l.id == id).ok_or(format!("{id} not in /proc/ns"))
}

/// Closes every descriptor of `fds`.
fn close_all(fds: &[Fd]) {
    for &fd in fds {
        let _ = sys::close(fd);
    }
}

pub fn isolation() -> Outcome {
    and_retired(isolation_case)
}

fn isolation_case() -> Outcome {
    if !have_network()? {
        return Ok(NO_NETWORK.into());
    }
    let shared = listen_on(ANY, SHARED)?;
    let root_only = listen_on(ANY, ROOT_ONLY)?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let child = start_child(sys::spawn(NEWNET), || {
        close_all(&[rep_r, shared, root_only]);
        send_report(rep_w, inside_alone());
        0
    });
    let _ = sys::close(rep_w);
    let child = match child {
        Ok(pid) => pid,
        Err(e) => {
            close_all(&[rep_r, shared, root_only]);
            return Err(format!("spawn(NEWNET): {}", e.message()));
        }
    };
    let seen = (|| -> Result<u32, String> {
        // The container calls the root at 192.168.1.1: it comes from its own address.
        let (c, peer) = accept(root_only, "the container's call")?;
        let id = u32::from(peer.addr[3]);
        ensure!(
            peer.addr == ip_of(id) && id != ROOT,
            "the container called from {}, not from the container network",
            show(&peer)
        );
        // Its connection is in the root's /proc/netall under its id, not in /proc/net.
        let netall = text_of("/proc/netall")?;
        let theirs = format!("{id} tcp {} 192.168.1.1:{ROOT_ONLY} ESTABLISHED", show(&peer));
        ensure!(netall.lines().any(|l| l == theirs), "no {theirs:?} in /proc/netall:\n{netall}");
        let mine = text_of("/proc/net")?;
        let local = format!("tcp {} ", show(&peer));
        ensure!(!mine.lines().any(|l| l.starts_with(&local)), "its socket in /proc/net:\n{mine}");
        let line = ns_line(id)?;
        ensure!(
            line.addr == format!("192.168.1.{id}") && line.ports == "-",
            "its /proc/ns line: {line:?}"
        );
        // The root reaches the container at its address, where it listens on the same port
        // as the root.
        let to = ctx(connect(ip_of(id), SHARED), "connect to the container")?;
        let (local, remote) = (net::getsockname(to), net::getpeername(to));
        let _ = sys::close(to);
        let (local, remote) = (ctx(local, "getsockname")?, ctx(remote, "getpeername")?);
        ensure!(
            local.addr == BRIDGE_ROOT && remote == SockAddrIn::new(ip_of(id), SHARED),
            "the root's connection to the container: {} -> {}",
            show(&local),
            show(&remote)
        );
        // Who the root saw: the container checks it is itself.
        send_line(c, &show(&peer), "answer the container")?;
        let _ = sys::close(c);
        Ok(id)
    })();
    close_all(&[shared, root_only]);
    let report = recv_report(rep_r, "the container");
    let _ = sys::close(rep_r);
    let status = wait_pid(child)?;
    let id = seen?;
    report?;
    ensure!(status == 0, "the container exited with {status}");
    // Reaped: its stack is gone, and its sockets with it.
    let netall = text_of("/proc/netall")?;
    let prefix = format!("{id} ");
    ensure!(!netall.lines().any(|l| l.starts_with(&prefix)), "after its death:\n{netall}");
    Ok(String::new())
}

/// In a new network namespace (alone: the root listens on [`SHARED`] and [`ROOT_ONLY`]).
fn inside_alone() -> Outcome {
    let me = sys::getns();
    ensure!(me != ROOT, "still in the root namespace");
    let mine = ip_of(me);
    let ifaces = text_of("/proc/ifaces")?;
    let want = format!(
        "eth0 02:00:00:00:01:{me:02x} 192.168.1.{me}/24\nlo 00:00:00:00:00:00 127.0.0.1/8\n"
    );
    ensure!(ifaces == want, "/proc/ifaces: {ifaces:?}, expected {want:?}");
    // Only 0.0.0.0, 127.0.0.0/8 and its own address.
    let other = ip_of(if me == 63 { 62 } else { me + 1 });
    for (ip, what) in [
        (WIRE, "the wire's address"),
        (BRIDGE_ROOT, "the root's address"),
        (other, "another container's address"),
        ([192, 0, 2, 1], "a stranger's address"),
    ] {
        for ty in [SOCK_STREAM, SOCK_DGRAM] {
            let fd = ctx(net::socket(ty), "socket")?;
            let r = net::bind(fd, &SockAddrIn::new(ip, SHARED));
            let _ = sys::close(fd);
            expect_err(r, Errno::EADDRNOTAVAIL, &format!("bind to {what}"))?;
        }
    }
    // Its 127.0.0.1 is its own: the root's listener is not there.
    expect_err(connect(LOOPBACK, SHARED), Errno::ECONNREFUSED, "connect to 127.0.0.1")?;
    // The root's port, in its own port space; reached on 127.0.0.1 and its own address.
    let l = listen_on(ANY, SHARED)?;
    for target in [LOOPBACK, mine] {
        let c = ctx(connect(target, SHARED), "connect to its own listener")?;
        let (a, peer) = accept(l, "its own connection")?;
        let local = net::getsockname(c);
        close_all(&[a, c]);
        let local = ctx(local, "getsockname")?;
        ensure!(
            peer.addr == target && local == SockAddrIn::new(target, peer.port()),
            "to {}: accepted from {}, connected from {}",
            show(&SockAddrIn::new(target, SHARED)),
            show(&peer),
            show(&local)
        );
    }
    let bound = ctx(net::socket(SOCK_DGRAM), "socket")?;
    let r = net::bind(bound, &SockAddrIn::new(mine, SHARED));
    let _ = sys::close(bound);
    ctx(r, "bind UDP to its own address")?;
    // Its own sockets only.
    let text = text_of("/proc/net")?;
    ensure!(
        text.contains(&format!("0.0.0.0:{SHARED} 0.0.0.0:0 LISTEN"))
            && !text.contains(&format!(":{ROOT_ONLY} ")),
        "/proc/net: {text}"
    );
    expect_err(sys::publish(me, SOCK_STREAM, HOST[0], 80), Errno::EPERM, "publish from inside")?;
    let lines = proc_ns()?;
    ensure!(
        lines.len() == 1 && lines[0].addr == format!("192.168.1.{me}") && lines[0].ports == "-",
        "/proc/ns inside: {lines:?}"
    );
    // The root, at 192.168.1.1, sees it at its address.
    let c = ctx(connect(BRIDGE_ROOT, ROOT_ONLY), "connect to the root")?;
    let r = (|| {
        let local = ctx(net::getsockname(c), "getsockname")?;
        let peer = ctx(net::getpeername(c), "getpeername")?;
        ensure!(
            local.addr == mine && peer == SockAddrIn::new(BRIDGE_ROOT, ROOT_ONLY),
            "connected {} -> {}",
            show(&local),
            show(&peer)
        );
        let seen = recv_line(c, "the root's answer")?;
        ensure!(seen == show(&local), "the root saw {seen}, we are {}", show(&local));
        Ok(String::new())
    })();
    close_all(&[c, l]);
    r
}

pub fn reach() -> Outcome {
    and_retired(reach_case)
}

fn reach_case() -> Outcome {
    if !have_network()? {
        return Ok(NO_NETWORK.into());
    }
    let (id_r, id_w) = ctx(sys::pipe(), "pipe")?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let server = start_child(sys::spawn(NEWNET), || {
        close_all(&[id_r, rep_r]);
        send_report(rep_w, serve(id_w));
        0
    });
    close_all(&[id_w, rep_w]);
    let server = match server {
        Ok(pid) => pid,
        Err(e) => {
            close_all(&[id_r, rep_r]);
            return Err(format!("spawn(NEWNET): {}", e.message()));
        }
    };
    let r = (|| {
        // Its id, once it listens.
        let mut b = [0u8; 4];
        ensure!(matches!(ulib::io::read_full(id_r, &mut b), Ok(4)), "the server sent no id");
        let a = u32::from_le_bytes(b);
        // The root calls it: it sees the root at 192.168.1.1.
        let c = ctx(connect(ip_of(a), SHARED), "the root connects")?;
        let local = net::getsockname(c);
        let seen = recv_line(c, "the server's answer to the root");
        let _ = sys::close(c);
        let (local, seen) = (ctx(local, "getsockname")?, seen?);
        ensure!(
            local.addr == BRIDGE_ROOT && seen == show(&local),
            "the server saw the root as {seen}, it is {}",
            show(&local)
        );
        // Another container calls it.
        let (r2, w2) = ctx(sys::pipe(), "pipe")?;
        let client = start_child(sys::spawn(NEWNET), || {
            let _ = sys::close(r2);
            send_report(w2, call(a));
            0
        });
        let _ = sys::close(w2);
        let client = match client {
            Ok(pid) => pid,
            Err(e) => {
                let _ = sys::close(r2);
                return Err(format!("spawn(NEWNET): {}", e.message()));
            }
        };
        let report = recv_report(r2, "the client container");
        let _ = sys::close(r2);
        Ok((client, report))
    })();
    let report = recv_report(rep_r, "the server container");
    close_all(&[id_r, rep_r]);
    // Both at once: whichever ends first is reaped by the same wait.
    let (client, client_report) = match r {
        Ok(r) => r,
        Err(e) => {
            let _ = wait_pid(server);
            return Err(e);
        }
    };
    let statuses = wait_all(&[server, client])?;
    report?;
    client_report?;
    ensure!(statuses == [0, 0], "the server and the client exited with {statuses:?}");
    Ok(String::new())
}

/// The server container: listens on TCP and UDP [`SHARED`], sends its id on `id_w`, answers
/// two connections and one datagram with the peer's address as it sees it.
fn serve(id_w: Fd) -> Outcome {
    let l = listen_on(ANY, SHARED)?;
    let u = ctx(net::socket(SOCK_DGRAM), "socket")?;
    ctx(net::bind(u, &SockAddrIn::new(ANY, SHARED)), "bind UDP")?;
    ctx(write_all(id_w, &sys::getns().to_le_bytes()), "send the id")?;
    let _ = sys::close(id_w);
    for who in ["the root", "the other container"] {
        let (c, peer) = accept(l, &format!("{who}'s connection"))?;
        let r = send_line(c, &show(&peer), "answer");
        let _ = sys::close(c);
        r?;
    }
    readable(u, "the datagram")?;
    let mut buf = [0u8; 64];
    let (_, from) = ctx(net::recvfrom(u, &mut buf), "recvfrom")?;
    ctx(net::sendto(u, show(&from).as_bytes(), &from), "sendto")?;
    close_all(&[l, u]);
    Ok(String::new())
}

/// The client container: calls the server container `a` by TCP and UDP.
fn call(a: u32) -> Outcome {
    let me = sys::getns();
    // The server's listener is not on this container's loopback.
    expect_err(connect(LOOPBACK, SHARED), Errno::ECONNREFUSED, "connect to 127.0.0.1")?;
    let c = ctx(connect(ip_of(a), SHARED), "connect to the other container")?;
    let local = net::getsockname(c);
    let seen = recv_line(c, "the server's answer");
    let _ = sys::close(c);
    let (local, seen) = (ctx(local, "getsockname")?, seen?);
    ensure!(
        local.addr == ip_of(me) && seen == show(&local),
        "the server saw {seen}, we are {}",
        show(&local)
    );
    let u = ctx(net::socket(SOCK_DGRAM), "socket")?;
    let r = (|| {
        ctx(net::sendto(u, b"who am I?", &SockAddrIn::new(ip_of(a), SHARED)), "sendto")?;
        readable(u, "the server's datagram")?;
        let mut buf = [0u8; 64];
        let (n, from) = ctx(net::recvfrom(u, &mut buf), "recvfrom")?;
        let local = ctx(net::getsockname(u), "getsockname")?;
        let seen = String::from_utf8_lossy(&buf[..n]).into_owned();
        ensure!(
            from == SockAddrIn::new(ip_of(a), SHARED)
                && seen == show(&SockAddrIn::new(ip_of(me), local.port())),
            "a datagram from {} saying we are {seen} (our port {})",
            show(&from),
            local.port()
        );
        Ok(String::new())
    })();
    let _ = sys::close(u);
    r
}

/// `publish` with raw arguments.
fn publish_raw(nsid: usize, proto: usize, host: usize, port: usize) -> sys::Result<()> {
    // SAFETY: publish takes no pointer.
    let ret = unsafe { syscall4(nr::PUBLISH, nsid, proto, host, port) };
    if ret < 0 {
        Err(Errno::from_ret(ret).unwrap_or(Errno::EINVAL))
    } else {
        Ok(())
    }
}

/// A child in a new namespace of `flags` that waits until `gate`'s write end is closed, and
/// meanwhile answers one request on `ask`: its `/proc/ns` line's ports, on `tell`. Returns its
/// pid and the namespace's id.
fn waiting_child(flags: usize) -> Result<(Pid, u32, Fd, Fd), String> {
    let before: Vec<u32> = proc_ns()?.iter().map(|l| l.id).collect();
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let (tell_r, tell_w) = ctx(sys::pipe(), "pipe")?;
    let pid = start_child(sys::spawn(flags), || {
        close_all(&[gate_w, tell_r]);
        let mut b = [0u8; 1];
        // One byte: look; the end of file: exit.
        while let Ok(1) = sys::read(gate_r, &mut b) {
            let ports = ns_line(sys::getns()).map(|l| l.ports).unwrap_or_else(|e| e);
            let _ = write_all(tell_w, format!("{ports}\n").as_bytes());
        }
        0
    });
    close_all(&[gate_r, tell_w]);
    let pid = match pid {
        Ok(pid) => pid,
        Err(e) => {
            close_all(&[gate_w, tell_r]);
            return Err(format!("spawn({flags:#x}): {}", e.message()));
        }
    };
    let id = proc_ns()?.iter().map(|l| l.id).find(|id| !before.contains(id));
    match id {
        Some(id) => Ok((pid, id, gate_w, tell_r)),
        None => {
            close_all(&[gate_w, tell_r]);
            let _ = wait_pid(pid);
            Err("the new namespace is not in /proc/ns".into())
        }
    }
}

/// Ends a [`waiting_child`] and reaps it.
fn end_child(pid: Pid, gate_w: Fd, tell_r: Fd) -> Result<(), String> {
    close_all(&[gate_w, tell_r]);
    let status = wait_pid(pid)?;
    ensure!(status == 0, "the waiting child exited with {status}");
    Ok(())
}

/// The ports a [`waiting_child`] sees for itself in `/proc/ns`.
fn ports_inside(gate_w: Fd, tell_r: Fd) -> Result<String, String> {
    ctx(write_all(gate_w, b"?"), "ask")?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = sys::read(tell_r, &mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

fn bind_fails(ty: usize, port: u16) -> Result<(), String> {
    let fd = ctx(net::socket(ty), "socket")?;
    let r = net::bind(fd, &SockAddrIn::new(ANY, port));
    let _ = sys::close(fd);
    expect_err(r, Errno::EADDRINUSE, &format!("bind the published port {port}"))
}

pub fn publish() -> Outcome {
    and_retired(publish_case)
}

fn publish_case() -> Outcome {
    if !have_network()? {
        return Ok(NO_NETWORK.into());
    }
    let (tcp, udp) = (SOCK_STREAM, SOCK_DGRAM);
    let [h1, h2, h3] = HOST;
    // Who: the root is no strict descendant of itself; an id nobody has.
    expect_err(sys::publish(ROOT, tcp, h1, 80), Errno::EPERM, "publish to the root")?;
    let live: Vec<u32> = proc_ns()?.iter().map(|l| l.id).collect();
    let free = (2..64).find(|id| !live.contains(id)).unwrap_or(64);
    expect_err(sys::publish(free, tcp, h1, 80), Errno::ESRCH, "publish to no namespace")?;
    expect_err(publish_raw(1 << 32 | 2, tcp, 8000, 80), Errno::ESRCH, "a 64-bit id")?;
    let (x, id, gate, tell) = waiting_child(NEWNET)?;
    let r = (|| {
        // What: protocols and ports.
        for (proto, host, port, what) in [
            (0, 8000, 80, "protocol 0"),
            (3, 8000, 80, "protocol 3"),
            (usize::MAX, 8000, 80, "protocol -1"),
            (tcp, 0, 80, "host port 0"),
            (tcp, 8000, 0, "port 0"),
            (tcp, 65536, 80, "host port 65536"),
            (udp, 8000, 1 << 16 | 80, "port 65536 + 80"),
        ] {
            expect_err(publish_raw(id as usize, proto, host, port), Errno::EINVAL, what)?;
        }
        // A host port the root has bound.
        let bound = listen_on(ANY, h1)?;
        let r = sys::publish(id, tcp, h1, 80);
        let _ = sys::close(bound);
        expect_err(r, Errno::EADDRINUSE, "publish a bound port")?;
        ctx(sys::publish(id, tcp, h2, 80), "publish")?;
        expect_err(sys::publish(id, tcp, h2, 81), Errno::EADDRINUSE, "the host port again")?;
        expect_err(sys::publish(id, tcp, h3, 80), Errno::EADDRINUSE, "the endpoint again")?;
        ctx(sys::publish(id, udp, h2, 80), "publish UDP")?;
        // Reserved in the root's port space.
        bind_fails(tcp, h2)?;
        bind_fails(udp, h2)?;
        let line = ns_line(id)?;
        let want = format!("{h2}:80/tcp,{h2}:80/udp");
        ensure!(line.ports == want, "/proc/ns: {line:?}, expected ports {want}");
        let inside = ports_inside(gate, tell)?;
        ensure!(inside == "80/tcp,80/udp", "/proc/ns inside: ports {inside}");
        Ok(())
    })();
    let ended = end_child(x, gate, tell);
    r?;
    ended?;
    // Freed when the namespace died (its last process was just reaped): at once.
    let again = listen_on(ANY, h2)?;
    let _ = sys::close(again);
    let (y, id, gate, tell) = waiting_child(NEWNET)?;
    let r = (|| {
        ctx(sys::publish(id, tcp, h2, 80), "publish the freed port to a new namespace")?;
        let line = ns_line(id)?;
        ensure!(line.ports == format!("{h2}:80/tcp"), "/proc/ns: {line:?}");
        Ok(())
    })();
    let ended = end_child(y, gate, tell);
    r?;
    ended?;
    // A namespace without the network kind has no ports of its own.
    let (z, id, gate, tell) = waiting_child(NEWPID)?;
    let r = expect_err(sys::publish(id, tcp, h3, 80), Errno::EINVAL, "publish to a pid namespace");
    let ended = end_child(z, gate, tell);
    r?;
    ended?;
    Ok(String::new())
}

/// `usertests --publish NSID tcp|udp HOSTPORT PORT`: publish, and say so (`usertests:
/// published ...` or the error); the exit status is 0 on success.
pub fn publish_command(args: &[&str]) -> i32 {
    let parsed = match args {
        [ns, proto, host, port] => {
            let proto = match *proto {
                "tcp" => Some(SOCK_STREAM),
                "udp" => Some(SOCK_DGRAM),
                _ => None,
            };
            match (ns.parse::<u32>(), proto, host.parse::<u16>(), port.parse::<u16>()) {
                (Ok(ns), Some(proto), Ok(host), Ok(port)) => Some((ns, proto, host, port)),
                _ => None,
            }
        }
        _ => None,
    };
    let Some((ns, proto, host, port)) = parsed else {
        eprintln!("usage: usertests --publish NSID tcp|udp HOSTPORT PORT");
        return 2;
    };
    match sys::publish(ns, proto, host, port) {
        Ok(()) => {
            println!("usertests: published {host} to ns {ns} port {port} ({})", args[1]);
            0
        }
        Err(e) => {
            println!("usertests: publish: {}", e.message());
            1
        }
    }
}
