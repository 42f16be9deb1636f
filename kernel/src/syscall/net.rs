//! Socket system calls (`abi::syscall::nr::SOCKET..ARPING`), `poll` and `fcntl`.
//!
//! Waits go through `bridge::block_on_interruptible` (a killed process gets `EINTR`); on a
//! non-blocking descriptor the operation's future is polled once ([`run`]) and `EAGAIN`
//! replaces the wait.

use crate::file::File;
use crate::net::socket::{Socket, CONNECT_TIMEOUT_MS};
use crate::proc::{self, bridge, uaccess};
use abi::syscall::net::{
    PollFd, SockAddrIn, AF_INET, F_GETFL, F_SETFL, POLLNVAL, SOCK_DGRAM, SOCK_STREAM,
};
use abi::syscall::{open, Errno};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::{Context, Poll, Waker};

fn ret(r: Result<usize, Errno>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.ret(),
    }
}

/// Poll `f` once with a no-op waker: its value, or `EAGAIN`.
pub fn poll_once<F: Future>(f: F) -> Result<F::Output, Errno> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(Errno::EAGAIN),
    }
}

/// Run a socket operation: once if `nonblock`, else until done (interruptible).
pub(super) fn run<T>(
    nonblock: bool,
    f: impl Future<Output = Result<T, Errno>>,
) -> Result<T, Errno> {
    if nonblock {
        poll_once(f)?
    } else {
        bridge::block_on_interruptible(f)?
    }
}

fn file(fd: u64) -> Result<Arc<File>, Errno> {
    proc::current().files.lock().get(fd as usize)
}

fn with_socket<T>(fd: u64, f: impl FnOnce(&File, &Socket) -> Result<T, Errno>) -> Result<T, Errno> {
    let file = file(fd)?;
    let s = file.as_socket().ok_or(Errno::ENOTSOCK)?;
    f(&file, s)
}

fn addr_in(va: u64, len: u64) -> Result<SockAddrIn, Errno> {
    if (len as usize) < SockAddrIn::SIZE {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; SockAddrIn::SIZE];
    uaccess::copy_in(va, &mut b)?;
    SockAddrIn::decode(&b).ok_or(Errno::EINVAL)
}

/// Store an address for the caller (both pointers may be null).
fn addr_out(va: u64, len_va: u64, a: &SockAddrIn) -> Result<(), Errno> {
    if va == 0 {
        return Ok(());
    }
    let mut cap = SockAddrIn::SIZE;
    if len_va != 0 {
        let mut l = [0u8; 4];
        uaccess::copy_in(len_va, &mut l)?;
        cap = cap.min(u32::from_le_bytes(l) as usize);
        uaccess::copy_out(len_va, &(SockAddrIn::SIZE as u32).to_le_bytes())?;
    }
    uaccess::copy_out(va, &a.encode()[..cap])
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_DGRAM, 0) -> fd`
pub fn sys_socket(a: &[u64; 6]) -> isize {
    ret((|| {
        if a[0] as usize != AF_INET {
            return Err(Errno::EAFNOSUPPORT);
        }
        let stream = match a[1] as usize & 0xf {
            SOCK_STREAM => true,
            SOCK_DGRAM => false,
            _ => return Err(Errno::EPROTOTYPE),
        };
        let f = File::socket(Socket::new(stream)?);
        proc::current().files.lock().alloc(f)
    })())
}

pub fn sys_bind(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| s.bind(&addr_in(a[1], a[2])?).map(|()| 0)))
}

pub fn sys_listen(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| s.listen(a[1] as usize).map(|()| 0)))
}

pub fn sys_accept(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file(a[0])?;
        let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
        let (ns, peer) = run(f.nonblock(), s.accept())?;
        let fd = proc::current().files.lock().alloc(File::socket(ns))?;
        addr_out(a[1], a[2], &peer)?;
        Ok(fd)
    })())
}

pub fn sys_connect(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |f, s| {
        let addr = addr_in(a[1], a[2])?;
        s.connect_start(&addr)?;
        if f.nonblock() {
            return if s.connecting() { Err(Errno::EINPROGRESS) } else { Ok(0) };
        }
        let r = bridge::block_on_interruptible(crate::exec::timeout_ms(
            CONNECT_TIMEOUT_MS,
            s.connected(),
        ));
        match r {
            Ok(Ok(r)) => r.map(|()| 0),
            Ok(Err(_elapsed)) => {
                s.abort_connect();
                Err(Errno::ETIMEDOUT)
            }
            Err(e) => Err(e),
        }
    }))
}

/// `send`/`sendto`: copy in, one socket send.
fn send_common(a: &[u64; 6], to: Option<SockAddrIn>) -> Result<usize, Errno> {
    let f = file(a[0])?;
    let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
    let len = (a[2] as usize).min(64 * 1024);
    let mut buf = vec![0u8; len];
    uaccess::copy_in(a[1], &mut buf)?;
    run(f.nonblock(), s.send(&buf, to.as_ref()))
}

pub fn sys_send(a: &[u64; 6]) -> isize {
    ret(send_common(a, None))
}

pub fn sys_sendto(a: &[u64; 6]) -> isize {
    ret((|| {
        let to = if a[4] != 0 { Some(addr_in(a[4], a[5])?) } else { None };
        send_common(a, to)
    })())
}

fn recv_common(a: &[u64; 6], from: Option<(u64, u64)>) -> Result<usize, Errno> {
    let f = file(a[0])?;
    let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
    let len = (a[2] as usize).min(64 * 1024);
    let mut buf = vec![0u8; len];
    let (n, peer) = run(f.nonblock(), s.recv(&mut buf))?;
    uaccess::copy_out(a[1], &buf[..n])?;
    if let Some((va, lva)) = from {
        addr_out(va, lva, &peer)?;
    }
    Ok(n)
}

pub fn sys_recv(a: &[u64; 6]) -> isize {
    ret(recv_common(a, None))
}

pub fn sys_recvfrom(a: &[u64; 6]) -> isize {
    ret(recv_common(a, Some((a[4], a[5]))))
}

pub fn sys_getsockname(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| addr_out(a[1], a[2], &s.local_addr()).map(|()| 0)))
}

pub fn sys_getpeername(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| addr_out(a[1], a[2], &s.peer_addr()?).map(|()| 0)))
}

pub fn sys_shutdown(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| s.shutdown(a[1] as usize).map(|()| 0)))
}

/// `fcntl(fd, F_GETFL | F_SETFL, flags)`: only `open::NONBLOCK` changes.
pub fn sys_fcntl(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file(a[0])?;
        let acc = match (f.readable(), f.writable()) {
            (true, true) => open::RDWR,
            (false, true) => open::WRONLY,
            _ => open::RDONLY,
        };
        match a[1] as usize {
            F_GETFL => Ok(acc | if f.nonblock() { open::NONBLOCK } else { 0 }),
            F_SETFL => {
                f.set_nonblock(a[2] as usize & open::NONBLOCK != 0);
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        }
    })())
}

const POLL_MAX: usize = 1024;
/// Pipes and the console register no waker: with one of them not ready, `poll` looks again
/// at this interval.
const POLL_RECHECK_MS: u64 = 20;

/// `poll(fds, nfds, timeout_ms) -> ready count`
pub fn sys_poll(a: &[u64; 6]) -> isize {
    ret((|| {
        let n = a[1] as usize;
        if n > POLL_MAX {
            return Err(Errno::EINVAL);
        }
        let mut raw = vec![0u8; n * 8];
        uaccess::copy_in(a[0], &mut raw)?;
        let mut fds: Vec<PollFd> = raw
            .chunks(8)
            .map(|c| PollFd {
                fd: i32::from_le_bytes(c[0..4].try_into().unwrap()),
                events: i16::from_le_bytes(c[4..6].try_into().unwrap()),
                revents: 0,
            })
            .collect();
        let files: Vec<Option<Arc<File>>> = {
            let p = proc::current();
            let t = p.files.lock();
            fds.iter().map(|p| if p.fd < 0 { None } else { t.get(p.fd as usize).ok() }).collect()
        };
        let timeout = a[2] as i64;
        let only_sockets = files.iter().flatten().all(|f| f.as_socket().is_some());
        // One pass: readiness, registering `w` with every socket.
        let scan = |w: Option<&Waker>, fds: &mut [PollFd]| -> usize {
            let mut ready = 0;
            for (p, f) in fds.iter_mut().zip(&files) {
                p.revents = match f {
                    None if p.fd < 0 => 0,
                    None => POLLNVAL,
                    Some(f) => f.poll_events(p.events, w),
                };
                if p.revents != 0 {
                    ready += 1;
                }
            }
            ready
        };
        let deadline = (timeout > 0).then(|| crate::time::now_ns() / 1_000_000 + timeout as u64);
        let ready = loop {
            let left = deadline.map(|d| d.saturating_sub(crate::time::now_ns() / 1_000_000));
            if left == Some(0) {
                break scan(None, &mut fds);
            }
            let step = async {
                let mut w = pin!(poll_fn(|cx| {
                    let r = scan(Some(cx.waker()), &mut fds);
                    if r > 0 || timeout == 0 {
                        Poll::Ready(Some(r))
                    } else {
                        Poll::Pending
                    }
                }));
                let mut re = pin!(async {
                    if only_sockets {
                        core::future::pending::<()>().await
                    } else {
                        crate::exec::sleep_ms(POLL_RECHECK_MS).await
                    }
                });
                poll_fn(|cx| {
                    if let Poll::Ready(r) = w.as_mut().poll(cx) {
                        return Poll::Ready(r);
                    }
                    if re.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    Poll::Pending
                })
                .await
            };
            let r = match left {
                Some(ms) => bridge::block_on_interruptible(crate::exec::timeout_ms(ms, step))?
                    .unwrap_or(Some(0)),
                None => bridge::block_on_interruptible(step)?,
            };
            if let Some(r) = r {
                break r;
            }
        };
        // Deregister from the sockets.
        scan(Some(Waker::noop()), &mut fds);
        let mut out = Vec::with_capacity(n * 8);
        for p in &fds {
            out.extend_from_slice(&p.fd.to_le_bytes());
            out.extend_from_slice(&p.events.to_le_bytes());
            out.extend_from_slice(&p.revents.to_le_bytes());
        }
        uaccess::copy_out(a[0], &out)?;
        Ok(ready)
    })())
}

/// `arping(ip (network order), mac: *mut [u8; 6])`
pub fn sys_arping(a: &[u64; 6]) -> isize {
    ret((|| {
        let ip = (a[0] as u32).to_ne_bytes();
        let mac = bridge::block_on_interruptible(crate::net::stack::arping(ip))?
            .ok_or(Errno::ETIMEDOUT)?;
        uaccess::copy_out(a[1], &mac)?;
        Ok(0)
    })())
}
