//! System-call arguments at the edges of their types, each of which a kernel that wraps,
//! truncates or consumes before it checks gets wrong:
//!
//! - `sleep` and `poll` with huge timeouts wait (they do not wrap around to a short wait);
//! - `kill` of a pid beyond 32 bits names no process (it is not cut to a live pid);
//! - a bad buffer given to a call that consumes something (a pipe's bytes, a child's exit
//!   status, a datagram) is `EFAULT` and the thing stays for the next call;
//! - `exec`'s argument strings are bounded as a whole (`E2BIG`);
//! - socket arguments outside their sets (`shutdown`'s `how`, `socket`'s type bits) are
//!   `EINVAL`; `listen`'s backlog saturates.

use abi::syscall::net::{SHUT_RDWR, SOCK_DGRAM};
use abi::syscall::{nr, state};
use ulib::abi;
use ulib::io::write_all;
use ulib::net::{self, PollFd, SockAddrIn, AF_INET, POLLIN, POLLOUT, SOCK_STREAM};
use ulib::prelude::*;
use ulib::sys::raw::{syscall1, syscall2, syscall3, syscall4};

use crate::proc::proc_record;
use crate::{ctx, ensure, expect_err, fork_child, wait_pid, Outcome};

/// How long a waiting child is watched before it is killed.
const WATCH_MS: u64 = 300;
/// An address no process has mapped (between the heap and the stack).
const UNMAPPED: usize = 0x10_0000_0000;

/// `f` runs in a child that must still be waiting after [`WATCH_MS`] (then it is killed): a
/// child whose wait returns exits with 0 at once and is caught as a zombie.
fn still_waiting(what: &str, f: impl FnOnce() -> isize) -> Result<(), String> {
    let pid = fork_child(move || {
        let ret = f();
        // Returned: report how (the parent sees a zombie either way).
        (ret.unsigned_abs() as i32).clamp(0, 200) + 1
    })?;
    let _ = sys::sleep(WATCH_MS);
    let st = proc_record(pid).map(|r| r.state);
    let _ = sys::kill(pid);
    let status = wait_pid(pid)?;
    ensure!(
        st != Ok(state::ZOMBIE) && status == -1,
        "{what} returned within {WATCH_MS} ms (status {status}: 1 success, 1 + errno an error)"
    );
    Ok(())
}

/// `sleep` and `poll` with timeouts that overflow a nanosecond count or an `int` wait.
pub fn huge_timeouts() -> Outcome {
    for ms in [1u64 << 63, u64::MAX, u64::MAX / 1_000_000 + 1] {
        still_waiting(&format!("sleep({ms:#x})"), || {
            // SAFETY: `sleep` takes no pointer.
            unsafe { syscall1(nr::SLEEP, ms as usize) }
        })?;
    }
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    // 2^32 + 1 ms: cut to an int it is 1 ms; 2^32 is 0 ("just look").
    for timeout in [(1usize << 32) + 1, 1 << 32, isize::MAX as usize] {
        still_waiting(&format!("poll of an empty pipe for {timeout:#x} ms"), move || {
            let mut fds = [PollFd { fd: r, events: POLLIN, revents: 0 }];
            // SAFETY: `fds` is a live array of `fds.len()` entries the kernel may write.
            unsafe { syscall3(nr::POLL, fds.as_mut_ptr() as usize, 1, timeout) }
        })?;
    }
    let _ = (sys::close(r), sys::close(w));
    Ok(String::new())
}

/// `kill` of `pid | 2^32` (and -1) is ESRCH: the live process `pid` lives on.
pub fn kill_pid_range() -> Outcome {
    let pid = fork_child(|| {
        let _ = sys::sleep(100_000);
        0
    })?;
    for bad in [(1usize << 32) | pid as usize, usize::MAX] {
        // SAFETY: `kill` takes no pointer.
        let ret = unsafe { syscall1(nr::KILL, bad) };
        let _ = sys::sleep(50);
        let alive = proc_record(pid).is_ok_and(|r| r.state != state::ZOMBIE);
        if ret >= 0 || !alive {
            let _ = sys::kill(pid);
            let _ = wait_pid(pid);
            return Err(format!("kill({bad:#x}) returned {ret}; child {pid} alive after: {alive}"));
        }
        ensure!(sys::errno_from_ret(ret) == Errno::ESRCH, "kill({bad:#x}): {ret}, not ESRCH");
    }
    ctx(sys::kill(pid), "kill")?;
    ensure!(wait_pid(pid)? == -1, "the child was not killed");
    Ok(String::new())
}

/// A bad buffer for a call that consumes: EFAULT, and nothing is lost.
pub fn bad_buffer_keeps_data() -> Outcome {
    // A pipe's bytes.
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    ctx(write_all(w, b"hello"), "write")?;
    // Non-blocking: a kernel that lost the bytes would otherwise wait here for ever.
    ctx(net::set_nonblocking(r, true), "non-blocking pipe")?;
    for bad in [UNMAPPED, 0xffff_8000_0000_0000] {
        // SAFETY: the kernel must refuse the unmapped and kernel addresses, never write them.
        let ret = unsafe { syscall3(nr::READ, r as usize, bad, 5) };
        ensure!(sys::errno_from_ret(ret) == Errno::EFAULT, "read into {bad:#x}: {ret}");
    }
    let mut buf = [0u8; 8];
    let n = ctx(sys::read(r, &mut buf), "read")?;
    ensure!(&buf[..n] == b"hello", "the pipe held {:?} after the bad reads", &buf[..n]);
    let _ = (sys::close(r), sys::close(w));

    // A child's exit status.
    let pid = fork_child(|| 7)?;
    // SAFETY: as above.
    let ret = unsafe { syscall2(nr::WAIT, UNMAPPED, 0) };
    ensure!(sys::errno_from_ret(ret) == Errno::EFAULT, "wait into {UNMAPPED:#x}: {ret}");
    ensure!(wait_pid(pid)? == 7, "the child's status after the bad wait");

    // A datagram (loopback; without a network there is none to lose).
    let u = match net::socket(SOCK_DGRAM) {
        Ok(fd) => fd,
        Err(Errno::ENETUNREACH) => return Ok("no network: datagrams skipped".into()),
        Err(e) => return Err(format!("socket: {}", e.message())),
    };
    ctx(net::bind(u, &SockAddrIn::new([127, 0, 0, 1], 0)), "bind")?;
    let me = ctx(net::getsockname(u), "getsockname")?;
    ctx(net::sendto(u, b"dgram", &me), "sendto")?;
    let mut fds = [PollFd { fd: u, events: POLLIN, revents: 0 }];
    ensure!(ctx(net::poll(&mut fds, 20_000), "poll")? == 1, "the datagram never arrived");
    // SAFETY: as above.
    let ret = unsafe { syscall4(nr::RECV, u as usize, UNMAPPED, 64, 0) };
    ensure!(sys::errno_from_ret(ret) == Errno::EFAULT, "recv into {UNMAPPED:#x}: {ret}");
    let mut len = SockAddrIn::SIZE as u32;
    // SAFETY: `buf` and `len` are live; the address pointer is the bad one.
    let ret = unsafe {
        ulib::sys::raw::syscall6(
            nr::RECVFROM,
            u as usize,
            buf.as_mut_ptr() as usize,
            buf.len(),
            0,
            UNMAPPED,
            &mut len as *mut u32 as usize,
        )
    };
    ensure!(sys::errno_from_ret(ret) == Errno::EFAULT, "recvfrom to address {UNMAPPED:#x}: {ret}");
    ctx(net::set_nonblocking(u, true), "non-blocking")?;
    let n = ctx(net::recv(u, &mut buf), "recv after the bad ones")?;
    ensure!(&buf[..n] == b"dgram", "the socket held {:?} after the bad receives", &buf[..n]);
    let _ = sys::close(u);
    Ok(String::new())
}

/// `exec`'s argument strings are limited as a whole (64 KiB), not only one by one.
pub fn exec_arg_bytes() -> Outcome {
    let big = "x".repeat(60 * 1024);
    let one_too_long = "y".repeat(70 * 1024);
    let status = crate::in_child(move || {
        let many: Vec<&str> = core::iter::repeat_n(big.as_str(), 8).collect();
        match (sys::exec("echo", &many), sys::exec("echo", &[&one_too_long])) {
            (Errno::E2BIG, Errno::E2BIG) => 0,
            (a, b) => 1 + (a as i32) * 256 + b as i32,
        }
    })?;
    ensure!(status == 0, "exec with 480 KiB of arguments, then one of 70 KiB: status {status}");
    Ok(String::new())
}

/// `listen(fd, 2^32 + 1)` is a large backlog (saturated), not a backlog of 1: three clients
/// all finish their handshake without an `accept` (with a backlog of 1 only one would).
fn listen_backlog_whole() -> Result<(), String> {
    let lo = |port| SockAddrIn::new([127, 0, 0, 1], port);
    let l = ctx(net::socket(SOCK_STREAM), "socket")?;
    ctx(net::bind(l, &lo(0)), "bind")?;
    // SAFETY: `listen` takes no pointer.
    let ret = unsafe { syscall2(nr::LISTEN, l as usize, (1 << 32) + 1) };
    ensure!(ret == 0, "listen(2^32 + 1): {ret}");
    let port = ctx(net::getsockname(l), "getsockname")?.port();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let c = ctx(net::socket(SOCK_STREAM), "socket")?;
        ctx(net::set_nonblocking(c, true), "fcntl")?;
        let _ = net::connect(c, &lo(port)); // EINPROGRESS
        clients.push(c);
    }
    let start = sys::uptime();
    let mut connected = 0;
    while sys::uptime() - start < 3000 {
        let mut fds: Vec<PollFd> =
            clients.iter().map(|&fd| PollFd { fd, events: POLLOUT, revents: 0 }).collect();
        let _ = net::poll(&mut fds, 100);
        connected = fds.iter().filter(|p| p.revents & POLLOUT != 0).count();
        if connected == clients.len() {
            break;
        }
    }
    for fd in clients.into_iter().chain([l]) {
        let _ = sys::close(fd);
    }
    ensure!(connected == 3, "{connected} of 3 clients connected to a backlog of 2^32 + 1");
    Ok(())
}

/// `shutdown`'s `how` beyond `SHUT_RDWR`, and `socket` types with unknown bits: EINVAL.
pub fn socket_args() -> Outcome {
    let mut note = String::new();
    match net::socket(SOCK_STREAM) {
        Ok(fd) => {
            for how in [SHUT_RDWR + 1, 7, usize::MAX] {
                // SAFETY: `shutdown` takes no pointer.
                let ret = unsafe { syscall2(nr::SHUTDOWN, fd as usize, how) };
                if sys::errno_from_ret(ret) != Errno::EINVAL {
                    let _ = sys::close(fd);
                    return Err(format!("shutdown(how = {how:#x}): {ret}, not EINVAL"));
                }
            }
            let _ = sys::close(fd);
            listen_backlog_whole()?;
        }
        Err(Errno::ENETUNREACH) => note = "no network: shutdown and listen skipped".into(),
        Err(e) => return Err(format!("socket: {}", e.message())),
    }
    // The type is checked before the network is needed.
    for ty in [SOCK_STREAM | 0x800, SOCK_DGRAM | 1 << 32] {
        // SAFETY: `socket` takes no pointer.
        let ret = unsafe { syscall3(nr::SOCKET, AF_INET, ty, 0) };
        if ret >= 0 {
            let _ = sys::close(ret as Fd);
        }
        ensure!(sys::errno_from_ret(ret) == Errno::EINVAL, "socket(type = {ty:#x}): {ret}");
    }
    expect_err(net::socket(3), Errno::EPROTOTYPE, "socket(type 3)")?;
    Ok(note)
}
