//! Processes: fork and wait, running out of processes, orphans, kill, exit with live children.

use ulib::abi::syscall::ProcRecord;
use ulib::io::read_full;
use ulib::prelude::*;

use crate::{ctx, ensure, expect_err, fork_child, in_child, wait_pid, Outcome};

/// The cap on `fork-limit`: a kernel with room for more processes passes at this many.
const FORK_CAP: usize = 1000;
/// The pid of init, which inherits orphans.
const INIT_PID: u32 = 1;

/// A child's exit status reaches its parent; wait without children is ECHILD.
pub fn fork_wait() -> Outcome {
    let mut pids = Vec::new();
    for status in [0, 1, 42, 255] {
        pids.push((fork_child(move || status)?, status));
    }
    for _ in 0..pids.len() {
        let (pid, status) = ctx(sys::wait(), "wait")?;
        let Some(&(_, want)) = pids.iter().find(|(p, _)| *p == pid) else {
            return Err(format!("wait returned {pid}, not one of my children"));
        };
        ensure!(status == want, "child {pid} exited with {want}, wait said {status}");
    }
    expect_err(sys::wait(), Errno::ECHILD, "wait without children")?;
    let me = sys::getpid();
    let status = in_child(move || if sys::getpid() != me { 0 } else { 1 })?;
    ensure!(status == 0, "the child has its parent's pid");
    Ok(String::new())
}

/// Fork until the kernel refuses (or the cap), then let every child go and check that fork
/// works again.
pub fn fork_limit() -> Outcome {
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let mut children = 0usize;
    let mut refusal = None;
    while children < FORK_CAP {
        // Each child waits for the gate to close (end of file), then exits.
        match sys::fork() {
            Ok(0) => {
                let _ = sys::close(gate_w);
                let mut b = [0u8; 1];
                let _ = sys::read(gate_r, &mut b);
                sys::exit(0);
            }
            Ok(_) => children += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let _ = sys::close(gate_w);
    let _ = sys::close(gate_r);
    let mut reaped = 0;
    while reaped < children {
        match sys::wait() {
            Ok((_, 0)) => reaped += 1,
            Ok((pid, status)) => return Err(format!("child {pid} exited with {status}")),
            Err(e) => return Err(format!("wait after {reaped} of {children}: {}", e.message())),
        }
    }
    expect_err(sys::wait(), Errno::ECHILD, "wait after reaping all")?;
    ensure!(children > 0, "the first fork failed: {:?}", refusal);
    // Recovered: fork works again.
    let status = in_child(|| 7)?;
    ensure!(status == 7, "fork after the limit: status {status}");
    Ok(match refusal {
        Some(e) => format!("fork failed after {children} children: {e:?}"),
        None => format!("{children} children, no refusal"),
    })
}

/// The `/proc` record of `pid`.
pub fn proc_record(pid: Pid) -> sys::Result<ProcRecord> {
    let f = File::open(&format!("/proc/{pid}"), sys::RDONLY)?;
    let mut buf = [0u8; ProcRecord::SIZE];
    let n = read_full(f.fd(), &mut buf)?;
    ProcRecord::decode(&buf[..n]).ok_or(Errno::EIO)
}

/// A process whose parent exits is given to init (its ppid in /proc becomes 1).
pub fn orphans() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let middle = fork_child(move || {
        // The grandchild watches its own record until its parent is init, and reports the
        // ppid it ends up with: 8 bytes, little-endian (u32::MAX when /proc failed).
        let grandchild = fork_child(move || {
            let me = sys::getpid();
            let mut ppid = u32::MAX;
            for _ in 0..250 {
                if let Ok(rec) = proc_record(me) {
                    ppid = rec.ppid;
                    if ppid == INIT_PID {
                        break;
                    }
                }
                let _ = sys::sleep(20);
            }
            let mut msg = [0u8; 8];
            msg[..4].copy_from_slice(&me.to_le_bytes());
            msg[4..].copy_from_slice(&ppid.to_le_bytes());
            let _ = ulib::io::write_all(w, &msg);
            0
        });
        if grandchild.is_err() {
            return 1;
        }
        0 // exit at once: the grandchild is an orphan
    })?;
    let _ = sys::close(w);
    let status = wait_pid(middle)?;
    ensure!(status == 0, "the middle process failed to fork");
    let mut msg = [0u8; 8];
    let n = ctx(read_full(r, &mut msg), "read")?;
    let _ = sys::close(r);
    ensure!(n == 8, "the orphan sent nothing ({n} bytes)");
    let orphan = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
    let ppid = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
    ensure!(ppid != u32::MAX, "the orphan {orphan} could not read /proc/{orphan}");
    ensure!(ppid == INIT_PID, "the orphan {orphan} has ppid {ppid} after 5 s, not {INIT_PID}");
    // It was reparented, not ours: waiting finds no child.
    expect_err(sys::wait(), Errno::ECHILD, "wait after the orphan")?;
    Ok(String::new())
}

/// kill wakes a sleeping process, which exits; kill of a missing pid is ESRCH.
pub fn kill_sleeper() -> Outcome {
    let start = sys::uptime();
    let pid = fork_child(|| {
        let _ = sys::sleep(100_000);
        0
    })?;
    let _ = sys::sleep(50);
    ctx(sys::kill(pid), "kill")?;
    let status = wait_pid(pid)?;
    let took = sys::uptime().saturating_sub(start);
    ensure!(status != 0, "the killed sleeper exited with status 0 (did it sleep to the end?)");
    ensure!(took < 10_000, "the killed sleeper took {took} ms to go");
    expect_err(sys::kill(pid), Errno::ESRCH, "kill of a reaped pid")?;
    expect_err(sys::kill(999_999), Errno::ESRCH, "kill of pid 999999")?;
    Ok(format!("gone after {took} ms, status {status}"))
}

/// A process exits while its children still run: it is reaped normally, its children go to
/// init and are reaped there (they vanish from /proc).
pub fn exit_with_children() -> Outcome {
    const KIDS: usize = 3;
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let parent = fork_child(move || {
        for _ in 0..KIDS {
            match fork_child(|| {
                let _ = sys::sleep(200);
                0
            }) {
                Ok(pid) => {
                    let _ = ulib::io::write_all(w, &pid.to_le_bytes());
                }
                Err(_) => return 1,
            }
        }
        0
    })?;
    let _ = sys::close(w);
    let status = wait_pid(parent)?;
    ensure!(status == 0, "the parent could not fork its children");
    let mut buf = [0u8; 4 * KIDS];
    let n = ctx(read_full(r, &mut buf), "read")?;
    let _ = sys::close(r);
    ensure!(n == buf.len(), "got {n} bytes of pids");
    expect_err(sys::wait(), Errno::ECHILD, "wait for grandchildren")?;
    let kids: Vec<u32> =
        buf.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // init reaps them once they exit: their /proc files go away.
    for _ in 0..250 {
        if kids.iter().all(|&k| proc_record(k) == Err(Errno::ENOENT)) {
            return Ok(String::new());
        }
        let _ = sys::sleep(20);
    }
    let left: Vec<String> = kids
        .iter()
        .filter_map(|&k| proc_record(k).ok().map(|rec| format!("{k} (ppid {})", rec.ppid)))
        .collect();
    Err(format!("5 s later still in /proc: {}", left.join(", ")))
}
