//! Kernel memory a user program makes the kernel allocate: processes that each fill their
//! descriptor table with sockets (TCP connecting over loopback, UDP bound) and pipes, all held
//! at once, until the kernel refuses. Every refusal must be a clean error (`socket`,
//! `connect`, `bind`: ENOMEM, as Linux may give (this ABI has no ENOBUFS); `pipe`: ENFILE or
//! ENOMEM; `fork`: EAGAIN or ENOMEM), never a kernel panic; and once the processes exit, the
//! memory comes back (the frames free are as before, within 1%) and everything works again.
//!
//! Two phases (`kernel/src/mm/budget.rs` has the rules they meet). First with user memory
//! taken to its limit by heap hogs (processes that grow their heap until ENOMEM), so that
//! the buffers of the processes forked before them run into the kernel's reserve of free
//! memory (the budget's floor). Then the buffers alone, process after process, until the
//! kernel refuses more of them (the budget's cap). Without a network (no NIC), pipes only.
//! Each phase ends at its first refusal, so the number of processes follows the machine's
//! size and the case takes a second or two.

use ulib::abi::syscall::MEMINFO_PATH;
use ulib::io::{read_full, write_all};
use ulib::net::{self, PollFd, SockAddrIn, POLLIN, SOCK_DGRAM, SOCK_STREAM};
use ulib::prelude::*;
use ulib::uparse::meminfo;

use crate::{ctx, ensure, wait_all, Outcome};

/// Processes per phase at most (the kernel has 256 slots; a few are taken).
const MAX_CHILDREN: usize = 200;
/// Processes opening things while the heap hogs hold user memory.
const FLOOR_CHILDREN: usize = 8;
/// How long a report may take before the child counts as lost.
const REPORT_MS: isize = 30_000;
/// A port nothing listens on: connections to it are reset at once (and stay allocated until
/// closed).
const CLOSED_PORT: u16 = 1;
const MIB: usize = 1 << 20;
/// Heap hogs at most, and what one may grow by (the kernel's `MAX_HEAP` less the first MiB).
const MAX_HOGS: usize = 4;
const HOG_MAX_MIB: u32 = 255;

/// What one process managed to open, and what stopped it.
#[derive(Clone, Copy, Debug)]
struct Report {
    /// Objects opened (a socket or a pipe each).
    count: u32,
    /// The operation that failed.
    op: Op,
    /// Its error; `None`: the descriptor table was full (EMFILE), which is no refusal.
    err: Option<Errno>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Op {
    TcpSocket = 1,
    Connect,
    UdpSocket,
    Bind,
    Pipe,
}

impl Op {
    fn from(b: u8) -> Option<Op> {
        [Op::TcpSocket, Op::Connect, Op::UdpSocket, Op::Bind, Op::Pipe]
            .into_iter()
            .find(|o| *o as u8 == b)
    }

    /// The errors that are a clean refusal of kernel memory for this operation (as on Linux).
    fn refusal_ok(self, e: Errno) -> bool {
        match self {
            Op::TcpSocket | Op::UdpSocket | Op::Connect | Op::Bind => e == Errno::ENOMEM,
            Op::Pipe => matches!(e, Errno::ENFILE | Errno::ENOMEM),
        }
    }
}

impl Report {
    const SIZE: usize = 9;

    fn encode(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..4].copy_from_slice(&self.count.to_le_bytes());
        b[4] = self.op as u8;
        let e = self.err.map_or(0, |e| -(e.ret() as i32));
        b[5..].copy_from_slice(&e.to_le_bytes());
        b
    }

    fn decode(b: &[u8; Self::SIZE]) -> Option<Report> {
        let count = u32::from_le_bytes(b[..4].try_into().ok()?);
        let op = Op::from(b[4])?;
        let e = i32::from_le_bytes(b[5..].try_into().ok()?);
        let err = match e {
            0 => None,
            e => Some(sys::errno_from_ret(-(e as isize))),
        };
        Some(Report { count, op, err })
    }
}

/// Where TCP sockets connect: a listener of the case's (`port`), and a closed port.
#[derive(Clone, Copy)]
struct Net {
    port: u16,
}

/// Open sockets and pipes until something fails; everything stays open.
fn fill(net: Option<Net>) -> Report {
    let mut count = 0u32;
    let loopback = |port| SockAddrIn::new([127, 0, 0, 1], port);
    for i in 0usize.. {
        let step = match net {
            Some(_) => i % 4,
            None => 3,
        };
        let r = match (step, net) {
            (0 | 1, Some(n)) => (|| {
                let fd = net::socket(SOCK_STREAM).map_err(|e| (Op::TcpSocket, e))?;
                count += 1;
                net::set_nonblocking(fd, true).map_err(|e| (Op::Connect, e))?;
                let port = if step == 0 { n.port } else { CLOSED_PORT };
                match net::connect(fd, &loopback(port)) {
                    Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::ECONNREFUSED) => Ok(()),
                    Err(e) => Err((Op::Connect, e)),
                }
            })(),
            (2, Some(_)) => (|| {
                let fd = net::socket(SOCK_DGRAM).map_err(|e| (Op::UdpSocket, e))?;
                count += 1;
                net::bind(fd, &loopback(0)).map_err(|e| (Op::Bind, e))
            })(),
            _ => match sys::pipe() {
                Ok(_) => {
                    count += 1;
                    Ok(())
                }
                Err(e) => Err((Op::Pipe, e)),
            },
        };
        if let Err((op, e)) = r {
            let err = if e == Errno::EMFILE { None } else { Some(e) };
            return Report { count, op, err };
        }
        if i > 1000 {
            break; // the descriptor table cannot be that large
        }
    }
    Report { count, op: Op::Pipe, err: Some(Errno::EIO) }
}

fn frames_free() -> Option<u64> {
    let mut text = Vec::new();
    File::open(MEMINFO_PATH, sys::RDONLY).and_then(|f| f.read_to_end(&mut text)).ok()?;
    meminfo::parse(&String::from_utf8_lossy(&text)).frames_free
}

/// The next report on `fd`, waiting at most [`REPORT_MS`].
fn read_report(fd: Fd) -> Result<Report, String> {
    let mut fds = [PollFd { fd, events: POLLIN, revents: 0 }];
    let n = ctx(net::poll(&mut fds, REPORT_MS), "poll for a report")?;
    ensure!(n == 1, "no report from a child within {REPORT_MS} ms");
    let mut b = [0u8; Report::SIZE];
    let got = ctx(read_full(fd, &mut b), "read a report")?;
    ensure!(got == Report::SIZE, "a short report ({got} bytes)");
    Report::decode(&b).ok_or_else(|| format!("a garbled report {b:?}"))
}

/// A child that waits for a byte on `go` (if any), fills its table, reports on `rep`, and holds
/// everything until `gate` reaches end of file. `close` are the parent's descriptors it must
/// not keep.
fn spawn_filler(
    net: Option<Net>,
    go: Option<Fd>,
    rep: Fd,
    gate: Fd,
    close: &[Fd],
) -> sys::Result<Pid> {
    match sys::fork()? {
        0 => {
            for &fd in close {
                let _ = sys::close(fd);
            }
            if let Some(go) = go {
                let mut b = [0u8; 1];
                if sys::read(go, &mut b) != Ok(1) {
                    sys::exit(2);
                }
                let _ = sys::close(go);
            }
            let r = fill(net);
            if write_all(rep, &r.encode()).is_err() {
                sys::exit(3);
            }
            let _ = sys::close(rep);
            let mut b = [0u8; 1];
            let _ = sys::read(gate, &mut b);
            sys::exit(0)
        }
        pid => Ok(pid),
    }
}

fn check_refusal(r: &Report) -> Result<(), String> {
    match r.err {
        Some(e) if !r.op.refusal_ok(e) => {
            Err(format!("{:?} failed with {e:?} (not a clean refusal of memory)", r.op))
        }
        _ => Ok(()),
    }
}

fn check_fork_refusal(e: Errno) -> Result<(), String> {
    ensure!(
        matches!(e, Errno::EAGAIN | Errno::ENOMEM),
        "fork failed with {e:?}, expected EAGAIN or ENOMEM"
    );
    Ok(())
}

/// Release the children (end of file on the gate) and reap them.
fn release(gate_w: Fd, pids: &[Pid]) -> Result<(), String> {
    let _ = sys::close(gate_w);
    let statuses = wait_all(pids)?;
    if let Some((pid, s)) = pids.iter().zip(&statuses).find(|(_, s)| **s != 0) {
        return Err(format!("child {pid} ended with status {s}"));
    }
    Ok(())
}

/// The cap: processes fill their tables, one after the other, until the kernel refuses.
fn buffers_alone(net: Option<Net>, keep: &[Fd]) -> Result<String, String> {
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let mut close = vec![gate_w, rep_r];
    close.extend_from_slice(keep);
    let mut pids = Vec::new();
    let mut total = 0u64;
    let mut refusal = None;
    let mut result = Ok(());
    while pids.len() < MAX_CHILDREN {
        match spawn_filler(net, None, rep_w, gate_r, &close) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                result = check_fork_refusal(e);
                refusal = Some(format!("fork {e:?}"));
                break;
            }
        }
        let r = match read_report(rep_r) {
            Ok(r) => r,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        total += u64::from(r.count);
        if let Err(e) = check_refusal(&r) {
            result = Err(e);
            break;
        }
        if let Some(e) = r.err {
            refusal = Some(format!("{:?} {e:?}", r.op));
            break;
        }
    }
    let _ = (sys::close(rep_w), sys::close(rep_r), sys::close(gate_r));
    let released = release(gate_w, &pids);
    result?;
    released?;
    Ok(match refusal {
        Some(r) => format!("{r} after {total} objects in {} processes", pids.len()),
        None => format!("{total} objects in {} processes without refusal", pids.len()),
    })
}

/// A process that grows its heap a MiB at a time until refused, reports how far (in MiB) on
/// `rep`, and holds it until `gate` reaches end of file.
fn hog(rep: Fd, gate: Fd) -> ! {
    let mut grown = 0u32;
    let err = loop {
        // SAFETY: growing only.
        match unsafe { sys::sbrk(MIB as isize) } {
            Ok(_) => grown += 1,
            Err(e) => break e,
        }
        if grown >= 4096 {
            break Errno::EIO;
        }
    };
    let r = Report { count: grown, op: Op::Pipe, err: Some(err) };
    let _ = write_all(rep, &r.encode());
    let mut b = [0u8; 1];
    let _ = sys::read(gate, &mut b);
    sys::exit(0)
}

/// The floor: heap hogs take user memory to its limit and hold it; then processes forked
/// before them fill their tables.
fn after_user_memory(net: Option<Net>, keep: &[Fd]) -> Result<String, String> {
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let (go_r, go_w) = ctx(sys::pipe(), "pipe")?;
    let mut close = vec![gate_w, rep_r, go_w];
    close.extend_from_slice(keep);
    let mut pids = Vec::new();
    let mut result = Ok(());
    for _ in 0..FLOOR_CHILDREN {
        match spawn_filler(net, Some(go_r), rep_w, gate_r, &close) {
            Ok(pid) => pids.push(pid),
            Err(e) => {
                result = Err(format!("fork before the hog: {e:?}"));
                break;
            }
        }
    }
    // Heap hogs, one after the other, until one is refused before its own limit: user memory
    // is then at the kernel's limit for it.
    let fillers = pids.len();
    let mut note = String::new();
    if result.is_ok() {
        result = (|| {
            let mut hogged = 0;
            for _ in 0..MAX_HOGS {
                let pid = ctx(sys::fork(), "fork a heap hog")?;
                if pid == 0 {
                    for fd in [gate_w, rep_r, go_w, go_r].iter().chain(keep) {
                        let _ = sys::close(*fd);
                    }
                    hog(rep_w, gate_r);
                }
                pids.push(pid);
                let h = read_report(rep_r)?;
                ensure!(h.err == Some(Errno::ENOMEM), "a heap hog's sbrk stopped with {:?}", h.err);
                hogged += h.count;
                if h.count < HOG_MAX_MIB {
                    break;
                }
            }
            note = format!("heap hogs took {hogged} MiB");
            ctx(write_all(go_w, &vec![1u8; fillers]), "start the fillers")?;
            let mut total = 0u64;
            let mut refusals = Vec::new();
            for _ in 0..fillers {
                let r = read_report(rep_r)?;
                check_refusal(&r)?;
                total += u64::from(r.count);
                if let Some(e) = r.err {
                    refusals.push(format!("{:?} {e:?}", r.op));
                }
            }
            // With user memory at its limit, the fillers' buffers (tens of MiB) cannot all fit
            // in what is left above the kernel's reserve.
            ensure!(!refusals.is_empty(), "{note}, then {total} objects without a refusal");
            refusals.sort();
            refusals.dedup();
            note += &format!(", then {} after {total} objects", refusals.join("/"));
            Ok(())
        })();
    }
    for fd in [rep_w, rep_r, gate_r, go_r, go_w] {
        let _ = sys::close(fd);
    }
    let released = release(gate_w, &pids);
    result?;
    released?;
    Ok(note)
}

/// Wait (10 s at most) until at least `want` frames are free again.
fn memory_back(want: u64) -> Result<(), String> {
    let mut now = 0;
    for _ in 0..100 {
        now = frames_free().ok_or("no /proc/meminfo")?;
        if now >= want {
            return Ok(());
        }
        let _ = sys::sleep(100);
    }
    Err(format!("{now} frames free after the processes exited, expected at least {want}"))
}

/// Sockets, pipes and processes work (the kernel is alive and has memory again).
fn all_works(net: bool) -> Result<(), String> {
    let (r, w) = ctx(sys::pipe(), "pipe afterwards")?;
    let status = crate::in_child(move || i32::from(write_all(w, b"ok").is_err()))?;
    ensure!(status == 0, "a child afterwards ended with {status}");
    let mut b = [0u8; 2];
    ensure!(ctx(read_full(r, &mut b), "read")? == 2 && &b == b"ok", "the pipe afterwards");
    let _ = (sys::close(r), sys::close(w));
    if net {
        for ty in [SOCK_STREAM, SOCK_DGRAM] {
            let fd = ctx(net::socket(ty), "socket afterwards")?;
            if ty == SOCK_DGRAM {
                ctx(net::bind(fd, &SockAddrIn::new([127, 0, 0, 1], 0)), "bind afterwards")?;
            }
            let _ = sys::close(fd);
        }
    }
    Ok(())
}

/// Run `phase` with a listener for the TCP sockets to connect to (if there is a network),
/// close it, and wait for the memory to come back.
fn phase(
    net: bool,
    want: u64,
    phase: fn(Option<Net>, &[Fd]) -> Result<String, String>,
) -> Result<String, String> {
    let listener = match net {
        true => Some(ctx(net::tcp_listener(&SockAddrIn::new([127, 0, 0, 1], 0), 128), "listen")?),
        false => None,
    };
    let port = match listener {
        Some(fd) => Some(Net { port: ctx(net::getsockname(fd), "getsockname")?.port() }),
        None => None,
    };
    let keep: Vec<Fd> = listener.into_iter().collect();
    let r = phase(port, &keep);
    for fd in keep {
        let _ = sys::close(fd);
    }
    let note = r?;
    memory_back(want).map_err(|e| format!("{note}; then {e}"))?;
    Ok(note)
}

pub fn kernel_memory() -> Outcome {
    let t0 = sys::uptime();
    let before = frames_free().ok_or("no /proc/meminfo")?;
    let total = {
        let mut text = Vec::new();
        let _ = File::open(MEMINFO_PATH, sys::RDONLY).and_then(|f| f.read_to_end(&mut text));
        meminfo::parse(&String::from_utf8_lossy(&text)).frames_total.unwrap_or(before)
    };
    // The kernel's own heap may keep some of what it grew by (small allocations): 1%.
    let want = before - total / 100;
    let net = match net::socket(SOCK_DGRAM) {
        Ok(fd) => {
            let _ = sys::close(fd);
            true
        }
        Err(Errno::ENETUNREACH) => false,
        Err(e) => return Err(format!("socket: {}", e.message())),
    };
    let kind = if net { "sockets and pipes" } else { "pipes (no network)" };
    let first = phase(net, want, after_user_memory).map_err(|e| format!("{kind}: {e}"))?;
    let second = phase(net, want, buffers_alone).map_err(|e| format!("{kind}: {e}"))?;
    all_works(net)?;
    let after = frames_free().unwrap_or(0);
    Ok(format!(
        "{kind}: {first}; {second}; {before} frames free before, {after} after, {} ms",
        sys::uptime() - t0
    ))
}
