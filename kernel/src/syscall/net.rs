//! Socket system calls (`abi::syscall::nr::SOCKET..ARPING`), `poll` and `fcntl`.
//!
//! Waits go through `bridge::block_on_interruptible` (a killed process gets `EINTR`); on a
//! non-blocking descriptor the operation's future is polled once (`bridge::run`) and `EAGAIN`
//! replaces the wait.

use super::bounce;
use crate::file::{fdtable, File, PollWait};
use crate::mm::budget::Charge;
use crate::net::drive::{self, Design, How};
use crate::net::socket::{self, Socket, CONNECT_TIMEOUT_MS};
use crate::proc::bridge;
use crate::proc::{self, uaccess};
use abi::syscall::net::{
    PollFd, SockAddrIn, AF_INET, F_GETFL, F_SETFL, POLLNVAL, SHUT_RD, SHUT_RDWR, SHUT_WR,
    SOCK_DGRAM, SOCK_STREAM,
};
use abi::syscall::{open, Errno};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::sync::atomic::Ordering::SeqCst;
use core::task::{Poll, Waker};

fn ret(r: Result<usize, Errno>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.ret(),
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

/// That [`addr_out`] will not fault on these pointers (both may be null).
fn check_addr_out(va: u64, len_va: u64) -> Result<(), Errno> {
    if va == 0 {
        return Ok(());
    }
    let mut cap = SockAddrIn::SIZE;
    if len_va != 0 {
        uaccess::check(len_va, 4, true)?;
        let mut l = [0u8; 4];
        uaccess::copy_in(len_va, &mut l)?;
        cap = cap.min(u32::from_le_bytes(l) as usize);
    }
    uaccess::check(va, cap, true)
}

/// `socket(AF_INET, SOCK_STREAM | SOCK_DGRAM, 0) -> fd`
pub fn sys_socket(a: &[u64; 6]) -> isize {
    ret((|| {
        if a[0] as usize != AF_INET {
            return Err(Errno::EAFNOSUPPORT);
        }
        // No flag (Linux's SOCK_NONBLOCK, SOCK_CLOEXEC) exists here: any bit beyond the type
        // is refused rather than ignored.
        let stream = match a[1] {
            t if t as usize == SOCK_STREAM => true,
            t if t as usize == SOCK_DGRAM => false,
            t if t & !0xf != 0 => return Err(Errno::EINVAL),
            _ => return Err(Errno::EPROTOTYPE),
        };
        let net = crate::net::netns::current().ok_or(Errno::ENETUNREACH)?;
        let f = File::socket(Socket::new(net, stream)?);
        proc::current().files.lock().alloc(f)
    })())
}

pub fn sys_bind(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| s.bind(&addr_in(a[1], a[2])?).map(|()| 0)))
}

pub fn sys_listen(a: &[u64; 6]) -> isize {
    // The backlog is taken whole and saturated to an int: cut to 32 bits, 2^32 + 1 would
    // be 1 and 2^32 the default.
    let n = (a[1] as i64).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
    ret(with_socket(a[0], |_, s| s.listen(socket::backlog_for(n)).map(|()| 0)))
}

/// `accept(fd, addr, addrlen) -> fd`. As on Linux, a full descriptor table is `EMFILE` before
/// any connection is taken, and a connection that cannot be handed over after all (no
/// descriptor, a bad address pointer) goes back to the front of the queue: it is not lost.
pub fn sys_accept(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file(a[0])?;
        let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
        let has_free = |t: &crate::file::FdTable| (0..fdtable::NOFILE).any(|fd| t.get(fd).is_err());
        if !has_free(&proc::current().files.lock()) {
            return Err(Errno::EMFILE);
        }
        let (ns, peer) = s.accept(How::of(f.nonblock()))?;
        if let Err(e) = addr_out(a[1], a[2], &peer) {
            s.requeue(ns);
            return Err(e);
        }
        let nf = File::socket(ns);
        let r = proc::current().files.lock().alloc(nf.clone());
        match r {
            Ok(fd) => Ok(fd),
            Err(e) => {
                // Only this process's own threads could have taken the slot: none exist
                // today, but keep the connection if it happens.
                if let Ok(file) = Arc::try_unwrap(nf) {
                    if let Some(ns) = file.into_socket() {
                        s.requeue(ns);
                    }
                }
                Err(e)
            }
        }
    })())
}

pub fn sys_connect(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |f, s| {
        let addr = addr_in(a[1], a[2])?;
        s.connect_start(&addr)?;
        if f.nonblock() {
            return if s.connecting() { Err(Errno::EINPROGRESS) } else { Ok(0) };
        }
        s.connected(CONNECT_TIMEOUT_MS).map(|()| 0)
    }))
}

/// `send`/`sendto`: copy in (at most `syscall::CHUNK` bytes), one socket send.
fn send_common(a: &[u64; 6], to: Option<SockAddrIn>) -> Result<usize, Errno> {
    let f = file(a[0])?;
    let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
    let mut buf = bounce(&f, a[2] as usize)?;
    uaccess::copy_in(a[1], &mut buf)?;
    s.send(&buf, to.as_ref(), How::of(f.nonblock()))
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

/// `sendfile(out_fd, in_fd, offset, count)`: one piece, from the file through a kernel
/// buffer into the socket. The socket's room is known before the file is read, so the
/// piece read is the piece sent (another sender on the same socket can only make the send
/// short: the offset then advances by what went). The file's offset (when used) stays
/// locked from the read to the send, as `read` holds it.
pub fn sys_sendfile(a: &[u64; 6]) -> isize {
    ret((|| {
        let out = file(a[0])?;
        let input = file(a[1])?;
        let (ptr, count) = (a[2], a[3] as usize);
        let s = out.as_socket().ok_or(Errno::EINVAL)?;
        if !out.writable() {
            return Err(Errno::EBADF);
        }
        let mut off = bridge::block_on(input.file_offset())?;
        let at = if ptr == 0 {
            *off
        } else {
            // Both ways now: the offset is written back only after bytes went.
            uaccess::check(ptr, 8, true)?;
            let mut b = [0u8; 8];
            uaccess::copy_in(ptr, &mut b)?;
            u64::from_le_bytes(b)
        };
        if at > i64::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        if count == 0 {
            return Ok(0);
        }
        let room = s.send_room(How::of(out.nonblock()))?;
        let mut buf = super::bounce(&input, count.min(room).max(1))?;
        let n = bridge::block_on(input.read_at(at, &mut buf))?;
        if n == 0 {
            return Ok(0); // the end of the file
        }
        let sent = s.send(&buf[..n], None, How::of(out.nonblock()))?;
        let next = at + sent as u64;
        if ptr == 0 {
            *off = next;
        } else {
            uaccess::copy_out(ptr, &next.to_le_bytes())?;
        }
        Ok(sent)
    })())
}

fn recv_common(a: &[u64; 6], from: Option<(u64, u64)>) -> Result<usize, Errno> {
    let f = file(a[0])?;
    let s = f.as_socket().ok_or(Errno::ENOTSOCK)?;
    let mut buf = bounce(&f, a[2] as usize)?;
    // Every pointer is checked before the receive: a datagram or stream bytes must not be
    // consumed for a buffer they cannot be copied to.
    uaccess::check(a[1], buf.len(), true)?;
    if let Some((va, len_va)) = from {
        check_addr_out(va, len_va)?;
    }
    let (n, peer) = s.recv(&mut buf, How::of(f.nonblock()))?;
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

/// `shutdown(fd, how)`: `how` other than `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR` is `EINVAL` (the
/// socket would otherwise read any other value as both).
pub fn sys_shutdown(a: &[u64; 6]) -> isize {
    ret(with_socket(a[0], |_, s| {
        let how = a[1] as usize; // a u64 register: lossless on x86_64
        if ![SHUT_RD, SHUT_WR, SHUT_RDWR].contains(&how) {
            return Err(Errno::EINVAL);
        }
        s.shutdown(how).map(|()| 0)
    }))
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
/// `poll` arrays of up to this many entries go uncharged; larger ones are charged to the
/// kernel-memory budget (ENOMEM when refused, as Linux's `poll` may give): they are held for
/// as long as the call waits.
const POLL_SMALL: usize = 64;
/// Kernel bytes per `poll` entry: the user's copy in and out, the parsed entry, the file, its
/// registration.
const POLL_ENTRY: usize =
    8 + 8 + size_of::<PollFd>() + size_of::<Option<Arc<File>>>() + size_of::<PollWait<'_>>();

/// One look at every descriptor: fills in `revents`, returns how many are ready. With `w`,
/// registers it with each descriptor for its next change (`File::poll_events`, through the
/// descriptor's slot in `regs`).
fn scan<'a>(
    files: &'a [Option<Arc<File>>],
    fds: &mut [PollFd],
    regs: &mut [PollWait<'a>],
    w: Option<&Waker>,
) -> usize {
    let mut ready = 0;
    for ((p, f), reg) in fds.iter_mut().zip(files).zip(regs.iter_mut()) {
        p.revents = match f {
            None if p.fd < 0 => 0,
            None => POLLNVAL,
            Some(f) => f.poll_events(p.events, w, reg),
        };
        if p.revents != 0 {
            ready += 1;
        }
    }
    ready
}

/// `poll(fds, nfds, timeout_ms) -> ready count`
///
/// Waits without rechecking on a timer: each pass registers the process's waker with every
/// descriptor in the same critical section as its readiness check (see `File::poll_events`
/// and `file::poll::PollWait`), so whichever becomes ready first wakes the process, and a
/// change between a check and the sleep is not lost (it wakes the process, whose bridge
/// then polls again instead of sleeping). Sockets, pipes, the console and listeners mix
/// freely.
pub fn sys_poll(a: &[u64; 6]) -> isize {
    ret((|| {
        let n = a[1] as usize;
        if n > POLL_MAX {
            return Err(Errno::EINVAL);
        }
        let _charge = match n > POLL_SMALL {
            true => Some(Charge::new(n * POLL_ENTRY).ok_or(Errno::ENOMEM)?),
            false => None,
        };
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
        // An `isize` in milliseconds (the ABI's type); negative waits for ever. Taken whole:
        // cut to C's `int`, 2^32 ms would be 0 and return at once.
        let timeout = a[2] as i64;
        let mut regs: Vec<PollWait<'_>> = files.iter().map(|_| PollWait::new()).collect();
        let ready = if timeout == 0 {
            scan(&files, &mut fds, &mut regs, None)
        } else if drive::design() == Design::Sleep {
            let r = poll_sleeping(&files, &mut fds, &mut regs, timeout);
            regs.iter_mut().for_each(PollWait::clear);
            r?
        } else {
            // Ready with the count of the pass that found something (`fds` holds its
            // `revents`), or pending with a waker registered everywhere.
            let wait = poll_fn(|cx| match scan(&files, &mut fds, &mut regs, Some(cx.waker())) {
                0 => Poll::Pending,
                r => Poll::Ready(r),
            });
            let r = if timeout < 0 {
                bridge::block_on_interruptible(wait).map(Some)
            } else {
                bridge::block_on_interruptible(crate::exec::timeout_ms(timeout as u64, wait))
                    .map(Result::ok)
            };
            // Deregister everywhere, whatever the outcome (EINTR included). (A socket's
            // smoltcp slots keep the socket's own wakers, which wake nobody once its queues
            // hold no registration.)
            regs.iter_mut().for_each(PollWait::clear);
            match r? {
                Some(ready) => ready,
                // Timed out: a last look, registering nothing.
                None => scan(&files, &mut fds, &mut regs, None),
            }
        };
        drop(regs);
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

/// `poll`'s wait in the sleep design (`net=sleep`): each pass registers the process on the
/// stack's channel (`proc::sleep`) BEFORE it looks at the descriptors, so a `wakeup` after a
/// change the scan did not see finds it registered (xv6's rule, with the registration made
/// first instead of under every socket's lock: one registration covers them all), then
/// sleeps once. Pipes and the console are not on the network path: their wait queues get
/// the process's waker, as in the event design. `timeout` < 0 waits for ever.
fn poll_sleeping<'a>(
    files: &'a [Option<Arc<File>>],
    fds: &mut [PollFd],
    regs: &mut [PollWait<'a>],
    timeout: i64,
) -> Result<usize, Errno> {
    let p = proc::current();
    let waker = p.waker();
    let deadline = u64::try_from(timeout)
        .ok()
        .map(|ms| crate::time::now_ns().saturating_add(ms.saturating_mul(1_000_000)));
    loop {
        // Clears `woken`, then registers: a wake from here on is not lost.
        let reg = drive::sleep::register(&p, deadline);
        let ready = scan(files, fds, regs, Some(&waker));
        if ready > 0 {
            return Ok(ready);
        }
        if p.killed.load(SeqCst) {
            return Err(Errno::EINTR);
        }
        if deadline.is_some_and(|d| d <= crate::time::now_ns()) {
            // Timed out: a last look, registering nothing.
            return Ok(scan(files, fds, regs, None));
        }
        proc::sched::block(&p);
        drop(reg);
    }
}

/// `arping(ip (network order), mac: *mut [u8; 6])`
pub fn sys_arping(a: &[u64; 6]) -> isize {
    ret((|| {
        let ip = u32::try_from(a[0]).map_err(|_| Errno::EINVAL)?.to_ne_bytes();
        let net = crate::net::netns::current().ok_or(Errno::ENETUNREACH)?;
        let mac = net.arping(ip)?.ok_or(Errno::ETIMEDOUT)?;
        uaccess::copy_out(a[1], &mac)?;
        Ok(0)
    })())
}
