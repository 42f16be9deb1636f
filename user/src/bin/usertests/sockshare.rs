//! One socket shared by two processes (inherited through `fork`), both waiting on it at once:
//! in `recv` (UDP and TCP), in `poll`, in `accept`. Every datagram, byte or connection must
//! wake a waiter that takes it, whichever of the two registered last: a socket with a single
//! waker slot (each waiter overwriting the other's) leaves the second reader asleep once the
//! first stops reading, and the case then fails at its deadline.
//!
//! Each case: the socket's owner (the case's process) forks two readers, waits until both are
//! asleep on the socket, then sends [`N`] messages; each reader takes [`N`]` / 2` of them
//! (then exits) and reports each on a pipe, one byte per message. All [`N`] must be reported
//! within [`DEADLINE_MS`]; otherwise the readers still waiting are killed and the case fails.
//! Needs the network (loopback); without it there is nothing to test.

use ulib::abi::syscall::state;
use ulib::net::{self, PollFd, SockAddrIn, POLLIN, SOCK_DGRAM, SOCK_STREAM};
use ulib::prelude::*;

use crate::proc::proc_record;
use crate::{ctx, ensure, fork_child, status_of, wait_all, Outcome};

/// Messages per case: half for each reader.
const N: usize = 16;
/// How long all [`N`] may take to arrive (the machine may be loaded; on a sound kernel it is
/// a few milliseconds).
const DEADLINE_MS: u64 = 10_000;
const LOOPBACK: [u8; 4] = [127, 0, 0, 1];

/// A socket, or the case's "no network" note.
fn socket(ty: usize) -> Result<Fd, Outcome> {
    match net::socket(ty) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENETUNREACH) => Err(Ok("no network: skipped".into())),
        Err(e) => Err(Err(format!("socket: {}", e.message()))),
    }
}

/// Whether `pid` is asleep (blocked in a system call).
fn asleep(pid: Pid) -> bool {
    proc_record(pid).is_ok_and(|r| r.state == state::SLEEPING)
}

fn kill_all(pids: &[Pid]) {
    for &p in pids {
        let _ = sys::kill(p);
    }
}

/// Two readers of `fd`, each calling `take` (one message) `N / 2` times; `send` makes the `N`
/// messages once both are asleep. Passes when all `N` were taken within [`DEADLINE_MS`].
fn two_readers(
    fd: Fd,
    take: impl Fn(Fd) -> sys::Result<()>,
    send: impl FnOnce() -> Result<(), String>,
) -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let mut readers = Vec::new();
    for _ in 0..2 {
        let reader = fork_child(|| {
            let _ = sys::close(r);
            for _ in 0..N / 2 {
                if let Err(e) = take(fd) {
                    return status_of(-(e as isize));
                }
                if sys::write(w, b"+").is_err() {
                    return 1;
                }
            }
            0
        });
        match reader {
            Ok(pid) => readers.push(pid),
            Err(e) => {
                kill_all(&readers);
                let _ = wait_all(&readers);
                return Err(e);
            }
        }
    }
    let _ = sys::close(w);
    let result = (|| {
        // Both waiting before anything arrives: a message must wake one of them.
        let start = sys::uptime();
        while !readers.iter().all(|&p| asleep(p)) {
            ensure!(sys::uptime() - start < DEADLINE_MS, "the readers never went to sleep");
            let _ = sys::sleep(5);
        }
        send()?;
        let start = sys::uptime();
        let mut taken = 0;
        while taken < N {
            let left = (start + DEADLINE_MS).saturating_sub(sys::uptime());
            let mut fds = [PollFd { fd: r, events: POLLIN, revents: 0 }];
            if left == 0 || ctx(net::poll(&mut fds, left as isize), "poll the count")? == 0 {
                return Err(format!(
                    "{taken} of {N} taken after {DEADLINE_MS} ms: a reader was not woken"
                ));
            }
            let mut b = [0u8; N];
            match ctx(sys::read(r, &mut b), "read the count")? {
                0 => return Err(format!("the readers ended after taking {taken} of {N}")),
                n => taken += n,
            }
        }
        Ok(())
    })();
    if result.is_err() {
        kill_all(&readers);
    }
    let statuses = wait_all(&readers);
    let _ = sys::close(r);
    result?;
    for (pid, status) in readers.iter().zip(statuses?) {
        ensure!(status == 0, "reader {pid} failed: {}", crate::describe_status(status));
    }
    Ok(String::new())
}

/// A UDP socket bound to a free loopback port, and that address.
fn udp_bound() -> Result<(Fd, SockAddrIn), Outcome> {
    let fd = socket(SOCK_DGRAM)?;
    let bound = net::bind(fd, &SockAddrIn::new(LOOPBACK, 0)).and_then(|()| net::getsockname(fd));
    match bound {
        Ok(a) => Ok((fd, a)),
        Err(e) => {
            let _ = sys::close(fd);
            Err(Err(format!("bind: {}", e.message())))
        }
    }
}

/// `N` datagrams to `to`, from `from`. (`from` stays open until they are taken: closing a
/// UDP socket drops the datagrams the stack has not sent yet.)
fn send_datagrams(from: Fd, to: SockAddrIn) -> Result<(), String> {
    ctx((0..N).try_for_each(|i| net::sendto(from, &[i as u8], &to).map(drop)), "sendto")
}

/// A connected pair over loopback: (the client's end, the accepted end).
fn tcp_pair() -> Result<(Fd, Fd), Outcome> {
    let l = match net::tcp_listener(&SockAddrIn::new(LOOPBACK, 0), 1) {
        Ok(l) => l,
        Err(Errno::ENETUNREACH) => return Err(Ok("no network: skipped".into())),
        Err(e) => return Err(Err(format!("listen: {}", e.message()))),
    };
    let r = (|| {
        let at = net::getsockname(l)?;
        let c = net::socket(SOCK_STREAM)?;
        match net::connect(c, &at).and_then(|()| net::accept(l)) {
            Ok((a, _)) => Ok((c, a)),
            Err(e) => {
                let _ = sys::close(c);
                Err(e)
            }
        }
    })();
    let _ = sys::close(l);
    r.map_err(|e| Err(format!("a loopback connection: {}", e.message())))
}

/// Waits in `poll` until `fd` is readable, then receives one byte or datagram without
/// waiting (the other reader may have been faster: then polls again).
fn poll_then_recv(fd: Fd) -> sys::Result<()> {
    loop {
        let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
        net::poll(&mut fds, -1)?;
        match net::recv(fd, &mut [0u8; 1]) {
            Ok(_) => return Ok(()),
            Err(Errno::EAGAIN) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Two processes in `recv` on one UDP socket.
pub fn udp_recv() -> Outcome {
    let (fd, at) = match udp_bound() {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let r = ctx(net::socket(SOCK_DGRAM), "socket").and_then(|from| {
        let r = two_readers(
            fd,
            |fd| net::recv(fd, &mut [0u8; 8]).map(drop),
            || send_datagrams(from, at),
        );
        let _ = sys::close(from);
        r
    });
    let _ = sys::close(fd);
    r
}

/// Two processes in `poll` on one UDP socket (non-blocking, each `recv`ing after its poll).
pub fn udp_poll() -> Outcome {
    let (fd, at) = match udp_bound() {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let r = ctx(net::set_nonblocking(fd, true), "non-blocking")
        .and_then(|()| ctx(net::socket(SOCK_DGRAM), "socket"))
        .and_then(|from| {
            let r = two_readers(fd, poll_then_recv, || send_datagrams(from, at));
            let _ = sys::close(from);
            r
        });
    let _ = sys::close(fd);
    r
}

/// Two processes in `recv` (one byte at a time) on one TCP connection.
pub fn tcp_recv() -> Outcome {
    let (client, conn) = match tcp_pair() {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let r = two_readers(
        conn,
        |fd| match net::recv(fd, &mut [0u8; 1]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Errno::ECONNRESET),
            Err(e) => Err(e),
        },
        || ctx(net::send_all(client, &[b'x'; N]), "send"),
    );
    let _ = sys::close(client);
    let _ = sys::close(conn);
    r
}

/// Two processes in `poll` on one TCP connection (non-blocking, one byte per `recv`).
pub fn tcp_poll() -> Outcome {
    let (client, conn) = match tcp_pair() {
        Ok(x) => x,
        Err(outcome) => return outcome,
    };
    let r = ctx(net::set_nonblocking(conn, true), "non-blocking").and_then(|()| {
        two_readers(conn, poll_then_recv, || ctx(net::send_all(client, &[b'x'; N]), "send"))
    });
    let _ = sys::close(client);
    let _ = sys::close(conn);
    r
}

/// Two processes in `accept` on one listener; `N` connections come in.
pub fn tcp_accept() -> Outcome {
    let l = match net::tcp_listener(&SockAddrIn::new(LOOPBACK, 0), N) {
        Ok(l) => l,
        Err(Errno::ENETUNREACH) => return Ok("no network: skipped".into()),
        Err(e) => return Err(format!("listen: {}", e.message())),
    };
    let mut clients = Vec::new();
    let r = (|| {
        let at = ctx(net::getsockname(l), "getsockname")?;
        two_readers(
            l,
            |fd| net::accept(fd).and_then(|(c, _)| sys::close(c)),
            || {
                for _ in 0..N {
                    let c = ctx(net::socket(SOCK_STREAM), "socket")?;
                    clients.push(c);
                    ctx(net::connect(c, &at), "connect")?;
                }
                Ok(())
            },
        )
    })();
    for c in clients {
        let _ = sys::close(c);
    }
    let _ = sys::close(l);
    r
}
