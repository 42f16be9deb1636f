//! `poll` on pipes (timeouts, a writer that comes later, a full pipe that drains, a writer
//! that goes away) and `accept` when the descriptor table is full (the connection must stay
//! queued, as on Linux).

use ulib::abi::syscall::nr;
use ulib::io::write_all;
use ulib::net::{self, PollFd, SockAddrIn, POLLHUP, POLLIN, POLLOUT, SOCK_STREAM};
use ulib::prelude::*;

use crate::{ctx, ensure, expect_err, fork_child, wait_pid, Outcome};

/// How late a wake may come before it counts as missed (the machine may be loaded).
const SLACK_MS: u64 = 5000;

fn poll1(fd: Fd, events: i16, timeout_ms: isize) -> Result<(usize, i16), String> {
    let mut fds = [PollFd { fd, events, revents: 0 }];
    let n = ctx(net::poll(&mut fds, timeout_ms), "poll")?;
    Ok((n, fds[0].revents))
}

/// A child that sleeps `ms`, then runs `f`.
fn later(ms: u64, f: impl FnOnce() -> i32) -> Result<Pid, String> {
    fork_child(move || {
        if sys::sleep(ms).is_err() {
            return 1;
        }
        f()
    })
}

/// `poll` on pipes: an empty pipe times out (not early, not much late); a pipe written by a
/// child after a delay wakes the poller then, with only that pipe ready; a full pipe becomes
/// writable when the child reads; the last writer leaving is POLLHUP.
pub fn poll_pipe() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let (r2, w2) = ctx(sys::pipe(), "pipe")?;

    // Nothing comes: 0 after the timeout.
    let t0 = sys::uptime();
    let (n, rev) = poll1(r, POLLIN, 150)?;
    let waited = sys::uptime() - t0;
    ensure!(n == 0 && rev == 0, "empty pipe: {n} ready, revents {rev:#x}");
    ensure!(waited >= 140, "a 150 ms timeout came after {waited} ms");
    ensure!(waited < 150 + SLACK_MS, "a 150 ms timeout came after {waited} ms");
    // Timeout 0 only looks.
    ensure!(poll1(r, POLLIN, 0)? == (0, 0), "timeout 0 on an empty pipe");

    // A child writes into the second pipe after 200 ms; the poller sleeps on both.
    let t0 = sys::uptime();
    let pid = later(200, move || i32::from(write_all(w2, b"x").is_err()))?;
    let mut fds = [
        PollFd { fd: r, events: POLLIN, revents: 0 },
        PollFd { fd: r2, events: POLLIN, revents: 0 },
    ];
    let n = ctx(net::poll(&mut fds, 20_000), "poll")?;
    let waited = sys::uptime() - t0;
    ensure!(
        n == 1 && fds[0].revents == 0 && fds[1].revents == POLLIN,
        "after the child's write: {n} ready, revents {:#x} {:#x}",
        fds[0].revents,
        fds[1].revents
    );
    ensure!(waited >= 150, "woke after {waited} ms, before the child wrote");
    ensure!(waited < 200 + SLACK_MS, "woke only after {waited} ms (a missed wakeup?)");
    ensure!(wait_pid(pid)? == 0, "the writer failed");
    let mut b = [0u8; 8];
    ensure!(ctx(sys::read(r2, &mut b), "read")? == 1, "read the child's byte");

    // Fill the first pipe (non-blocking writes) until it has no room: not writable.
    ctx(net::set_nonblocking(w, true), "non-blocking write end")?;
    let chunk = vec![7u8; 4096];
    let mut filled = 0usize;
    loop {
        match sys::write(w, &chunk) {
            Ok(n) => filled += n,
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(format!("filling the pipe: {}", e.message())),
        }
        ensure!(filled <= 16 << 20, "the pipe took {filled} bytes without filling");
    }
    ensure!(poll1(w, POLLOUT, 0)? == (0, 0), "a full pipe polled writable");
    // A child drains some after 200 ms: writable again.
    let t0 = sys::uptime();
    let pid = later(200, move || {
        let mut buf = vec![0u8; 8192];
        i32::from(!matches!(sys::read(r, &mut buf), Ok(n) if n > 0))
    })?;
    let (n, rev) = poll1(w, POLLOUT, 20_000)?;
    let waited = sys::uptime() - t0;
    ensure!(n == 1 && rev == POLLOUT, "after the child's read: {n} ready, revents {rev:#x}");
    ensure!(waited < 200 + SLACK_MS, "writable only after {waited} ms");
    ensure!(wait_pid(pid)? == 0, "the reader failed");

    // The last writer of the second pipe goes away (the child's copy after a delay, ours now).
    let pid = later(200, || 0)?; // holds a copy of w2 until it exits
    let _ = sys::close(w2);
    let (n, rev) = poll1(r2, POLLIN, 20_000)?;
    ensure!(n == 1 && rev & POLLHUP != 0, "no writer left: {n} ready, revents {rev:#x}");
    ensure!(wait_pid(pid)? == 0, "the child failed");

    for fd in [r, w, r2] {
        let _ = sys::close(fd);
    }
    Ok(String::new())
}

/// `accept` with no free descriptor: EMFILE, and the connection stays queued (the next
/// `accept`, with a descriptor free, returns it, its data intact). Likewise after a bad
/// address pointer (EFAULT). Needs the network (loopback); without it, nothing to test.
pub fn accept_emfile() -> Outcome {
    let listener = match net::tcp_listener(&SockAddrIn::new([127, 0, 0, 1], 0), 4) {
        Ok(fd) => fd,
        Err(Errno::ENETUNREACH) => return Ok("no network: skipped".into()),
        Err(e) => return Err(format!("listen: {}", e.message())),
    };
    let port = ctx(net::getsockname(listener), "getsockname")?.port();
    let client = ctx(net::socket(SOCK_STREAM), "socket")?;
    ctx(net::connect(client, &SockAddrIn::new([127, 0, 0, 1], port)), "connect")?;
    ctx(net::send_all(client, b"ping"), "send")?;
    let me = ctx(net::getsockname(client), "getsockname of the client")?;
    // Wait until the connection is there to accept.
    let (n, _) = poll1(listener, POLLIN, 20_000)?;
    ensure!(n == 1, "the listener never became readable");

    // A bad address pointer: EFAULT, connection kept.
    let mut len = SockAddrIn::SIZE as u32;
    // SAFETY: the address pointer is 8 (never mapped: the kernel must refuse it); `len` is a
    // live local u32.
    let ret = unsafe {
        sys::raw::syscall3(nr::ACCEPT, listener as usize, 8, &mut len as *mut u32 as usize)
    };
    ensure!(sys::errno_from_ret(ret) == Errno::EFAULT, "accept to address 8: {ret}");

    // Fill the descriptor table.
    let mut dups = Vec::new();
    while let Ok(fd) = sys::dup(0) {
        dups.push(fd);
        ensure!(dups.len() < 10_000, "dup never failed");
    }
    expect_err(net::accept(listener), Errno::EMFILE, "accept with a full table")?;
    expect_err(net::accept(listener), Errno::EMFILE, "accept with a full table, again")?;
    let _ = sys::close(dups.pop().expect("at least one dup"));
    let (conn, peer) = ctx(net::accept(listener), "accept after freeing a descriptor")?;
    for fd in dups {
        let _ = sys::close(fd);
    }
    ensure!(peer == me, "accepted {}, the client is {}", net::endpoint(&peer), net::endpoint(&me));
    let mut got = Vec::new();
    let mut b = [0u8; 16];
    while got.len() < 4 {
        match ctx(net::recv(conn, &mut b), "recv")? {
            0 => break,
            n => got.extend_from_slice(&b[..n]),
        }
    }
    ensure!(got == b"ping", "the queued connection's data: {got:?}");
    // Nothing else was queued: a non-blocking accept finds none.
    ctx(net::set_nonblocking(listener, true), "non-blocking listener")?;
    expect_err(net::accept(listener), Errno::EAGAIN, "a second accept")?;
    for fd in [conn, client, listener] {
        let _ = sys::close(fd);
    }
    Ok(String::new())
}
