//! `sendfile` over a loopback TCP connection: every byte of a file arrives in order (with an
//! offset of the caller's, and with the file's own); the offset pointer advances exactly by
//! what went and the file's own offset does not move then; bad descriptors, a descriptor of
//! the wrong kind, a bad offset pointer and an offset past `i64::MAX` are refused before
//! anything moves; a file that shrinks or changes under it sends what is there now; a socket
//! that can send no more makes it fail with EPIPE. Needs the network (loopback); without it
//! there is nothing to test.

use ulib::net::{self, PollFd, SockAddrIn, POLLIN, SOCK_DGRAM, SOCK_STREAM};
use ulib::prelude::*;
use ulib::sys::raw::syscall4;

use crate::{ctx, ensure, expect_err, pattern, write_file, Outcome};

const PATH: &str = "/ut-sendfile";
/// Larger than a socket's buffers (64 KiB each way), so the sender must wait for the reader.
const SIZE: usize = 150_000;
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];
/// How long the whole transfer may take, however loaded the machine.
const DEADLINE_MS: u64 = 30_000;

fn content() -> Vec<u8> {
    (0..SIZE as u64).map(|i| pattern(7, i)).collect()
}

pub fn sendfile() -> Outcome {
    let (client, conn) = match pair() {
        Ok(Some(p)) => p,
        Ok(None) => return Ok("no network: skipped".into()),
        Err(e) => return Err(e),
    };
    let r = write_file(PATH, &content()).and_then(|()| cases(client, conn));
    let _ = sys::unlink(PATH);
    let _ = sys::close(client);
    let _ = sys::close(conn);
    r
}

/// A connected loopback pair (client, accepted); `None` without a network.
fn pair() -> Result<Option<(Fd, Fd)>, String> {
    let l = match net::tcp_listener(&SockAddrIn::new(LOOPBACK, 0), 1) {
        Ok(l) => l,
        Err(Errno::ENETUNREACH) => return Ok(None),
        Err(e) => return Err(format!("listen: {}", e.message())),
    };
    let r = (|| {
        let at = net::getsockname(l)?;
        let c = net::socket(SOCK_STREAM)?;
        net::connect(c, &at)?;
        let (a, _) = net::accept(l)?;
        Ok((c, a))
    })();
    let _ = sys::close(l);
    r.map(Some).map_err(|e: Errno| format!("a loopback connection: {}", e.message()))
}

fn cases(client: Fd, conn: Fd) -> Outcome {
    let want = content();
    let f = ctx(File::open(PATH, sys::RDONLY), PATH)?;
    let fd = f.fd();

    refusals(conn, client, fd)?;

    // The whole file with an offset of ours, the reader draining as the sender fills.
    ctx(net::set_nonblocking(conn, true), "non-blocking")?;
    let mut off = 0u64;
    let got = transfer(client, |n| net::sendfile(conn, fd, Some(&mut off), n), SIZE)?;
    ensure!(got == want, "the file arrived changed ({} of {SIZE} bytes)", got.len());
    ensure!(off == SIZE as u64, "the offset is {off} after the whole file");
    // At the end: 0, and the offset stays.
    ensure!(net::sendfile(conn, fd, Some(&mut off), 10) == Ok(0), "no 0 at the end");
    ensure!(off == SIZE as u64, "the offset moved at the end");
    // Our offset left the file's own where it was; now the file's own: it advances.
    let mut first = [0u8; 5];
    ctx(sys::read(fd, &mut first), "read")?;
    ensure!(first == want[..5], "the file's offset moved with an offset of ours");
    let got = transfer(client, |n| net::sendfile(conn, fd, None, n.min(1000)), 3000)?;
    ensure!(got == want[5..3005], "from the file's own offset: other bytes");
    ctx(sys::read(fd, &mut first), "read")?;
    ensure!(first == want[3005..3010], "the file's offset did not advance by what went");

    // Bounds: a count larger than the rest sends the rest; count 0 sends nothing.
    let mut off = SIZE as u64 - 10;
    let got = transfer(client, |n| net::sendfile(conn, fd, Some(&mut off), n + 100), 10)?;
    ensure!(got == want[SIZE - 10..], "the last bytes");
    let mut off = 0;
    ensure!(net::sendfile(conn, fd, Some(&mut off), 0) == Ok(0), "count 0");
    ensure!(off == 0, "count 0 moved the offset");
    let mut off = u64::MAX / 4;
    ensure!(net::sendfile(conn, fd, Some(&mut off), 10) == Ok(0), "far past the end: not 0");

    // The file shrinks and changes under the open descriptor: what is there now goes.
    write_file(PATH, b"short and new")?;
    let mut off = 6;
    let got = transfer(client, |n| net::sendfile(conn, fd, Some(&mut off), n), 7)?;
    ensure!(got == b"and new", "after the change: {:?}", String::from_utf8_lossy(&got));
    let mut off = 1000;
    ensure!(net::sendfile(conn, fd, Some(&mut off), 10) == Ok(0), "past the new end: not 0");

    // Our sending side shut: EPIPE, at once (a peer that resets is driven from the host by
    // mkimage/tests/keepalive.rs: a peer closing here lingers and takes data meanwhile).
    ctx(net::shutdown(conn, net::SHUT_WR), "shutdown")?;
    let mut off = 0;
    expect_err(net::sendfile(conn, fd, Some(&mut off), 10), Errno::EPIPE, "after shutdown")?;
    ensure!(off == 0, "a failed sendfile moved the offset");
    Ok(String::new())
}

/// What must be refused before anything moves.
fn refusals(conn: Fd, client: Fd, fd: Fd) -> Result<(), String> {
    let mut off = 0u64;
    expect_err(net::sendfile(99, fd, Some(&mut off), 10), Errno::EBADF, "out 99")?;
    expect_err(net::sendfile(conn, 99, Some(&mut off), 10), Errno::EBADF, "in 99")?;
    expect_err(net::sendfile(-1, fd, None, 10), Errno::EBADF, "out -1")?;
    expect_err(net::sendfile(fd, fd, None, 10), Errno::EINVAL, "out a file")?;
    expect_err(net::sendfile(conn, conn, None, 10), Errno::EINVAL, "in a socket")?;
    let dir = ctx(File::open("/", sys::RDONLY), "/")?;
    expect_err(net::sendfile(conn, dir.fd(), None, 10), Errno::EINVAL, "in a directory")?;
    let wo = ctx(File::open(PATH, sys::WRONLY), PATH)?;
    expect_err(net::sendfile(conn, wo.fd(), None, 10), Errno::EBADF, "in write-only")?;
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let pipe = expect_err(net::sendfile(conn, r, None, 10), Errno::EINVAL, "in a pipe");
    let _ = (sys::close(r), sys::close(w));
    pipe?;
    let udp = ctx(net::socket(SOCK_DGRAM), "socket")?;
    let u = expect_err(net::sendfile(udp, fd, None, 10), Errno::EINVAL, "out UDP");
    let _ = sys::close(udp);
    u?;
    let tcp = ctx(net::socket(SOCK_STREAM), "socket")?;
    let t = expect_err(net::sendfile(tcp, fd, None, 10), Errno::ENOTCONN, "out unconnected");
    let _ = sys::close(tcp);
    t?;
    // Offsets: unmapped, in the kernel's half, read-only (our code), above i64::MAX.
    let text = sendfile as fn() -> Outcome as usize;
    for (p, what) in [(8usize, "unmapped"), (0xffff_8000_0000_0000, "kernel"), (text, "code")] {
        // SAFETY: the kernel must refuse these pointers (EFAULT) without touching them.
        let r = unsafe {
            syscall4(ulib::abi::syscall::nr::SENDFILE, conn as usize, fd as usize, p, 10)
        };
        ensure!(r == Errno::EFAULT.ret(), "offset pointer {what}: {r}, expected EFAULT");
    }
    let mut off = i64::MAX as u64 + 1;
    expect_err(net::sendfile(conn, fd, Some(&mut off), 10), Errno::EINVAL, "offset 2^63")?;
    // Nothing of these reached the peer: the connection is still empty.
    let mut p = [PollFd { fd: client, events: POLLIN, revents: 0 }];
    ctx(net::poll(&mut p, 0), "poll")?;
    ensure!(p[0].revents == 0, "a refused sendfile sent something");
    Ok(())
}

/// Calls `send(n)` (n: what is left of `total`; a non-blocking sender) while reading from
/// `client`, until `total` bytes arrived; what arrived.
fn transfer(
    client: Fd,
    mut send: impl FnMut(usize) -> sys::Result<usize>,
    total: usize,
) -> Result<Vec<u8>, String> {
    let mut got = Vec::with_capacity(total);
    let mut sent = 0;
    let mut buf = vec![0u8; 16 * 1024];
    let start = sys::uptime();
    while got.len() < total {
        ensure!(sys::uptime() - start < DEADLINE_MS, "stuck at {} of {total}", got.len());
        if sent < total {
            match send(total - sent) {
                Ok(0) => return Err(format!("0 after {sent} of {total} bytes")),
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) => {}
                Err(e) => return Err(format!("sendfile after {sent}: {}", e.message())),
            }
        }
        let mut p = [PollFd { fd: client, events: POLLIN, revents: 0 }];
        ctx(net::poll(&mut p, 100), "poll")?;
        if p[0].revents & POLLIN != 0 {
            let n = ctx(net::recv(client, &mut buf), "recv")?;
            ensure!(n > 0, "the connection closed");
            got.extend_from_slice(&buf[..n]);
        }
    }
    ensure!(sent == total, "sent {sent}, {total} arrived");
    Ok(got)
}
