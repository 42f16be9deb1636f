//! Namespaces (`spawn`, `nspcopy`, `getns`, `wait`'s `FOREVER`): what a process sees from
//! inside a new pid and file-system namespace, the bad input the calls must refuse with a clear
//! error (unknown flags, nesting too deep, too many namespaces, bad pointers, ids the caller
//! may not use), and a stream of containers started and killed.
//!
//! The cases that count namespaces (`ns-depth`, `ns-limit`) expect to run in the root
//! namespace with no container alive (as `usertests` does at boot) and say so in their note
//! otherwise. Namespaces retire asynchronously after their last process is reaped (a kernel
//! task removes their root), so what depends on that is polled with a deadline.
//!
//! Not tested here: `fork` into a dying namespace (`ENOMEM`). Every process of a namespace
//! whose init exits is killed in the same step that marks it dying, and a killed process never
//! returns to user mode to fork again, so only a `fork` already inside the kernel at that
//! instant meets the error: a race, not something a test can arrange.

use abi::syscall::nr;
use ulib::abi;
use ulib::abi::syscall::ns::{self, MAX_DEPTH, MAX_LIVE, NEWFS, NEWNET, NEWPID, ROOT};
use ulib::abi::syscall::state;
use ulib::abi::syscall::wait::FOREVER;
use ulib::dir::read_dir;
use ulib::io::{read_full, write_all};
use ulib::prelude::*;
use ulib::sys::raw::syscall4;

use crate::proc::proc_record;
use crate::{
    ctx, ensure, expect_err, fork_child, pattern, read_file, start_child, wait_all, wait_pid,
    write_file, Outcome,
};

/// A file in the caller's root that no container may see.
const MARKER: &str = "/ut-ns-marker";
/// What `nspcopy-errors` copies: a file and a directory tree.
const SRC: &str = "/ut-ns-src";
const SRC_LEN: usize = 20_000;
const DIR: &str = "/ut-ns-dir";
/// Containers `ns-cycles` starts and kills.
const CYCLES: usize = 50;
/// How long an asynchronous step (a namespace retiring, a process being reaped) may take.
const DEADLINE_MS: u64 = 10_000;
/// The status `wait` gives for a killed process.
const KILLED: i32 = -1;

/// Addresses no system call may read a string from.
const BAD_POINTERS: &[(&str, usize)] = &[
    ("null", 0),
    ("the kernel's half", 0xffff_8000_0010_0000),
    ("non-canonical", 0x0000_8000_0000_0000),
    ("unmapped", 0x0000_4000_0000_0000),
];

/// One line of `/proc/ns`: `id parent kinds init members addr ports` (and any columns after).
#[derive(Debug)]
pub struct NsLine {
    pub id: u32,
    pub parent: u32,
    pub kinds: String,
    pub init: u32,
    pub members: u32,
    /// Its address on the container network (`-` without the network kind).
    pub addr: String,
    /// Its published ports (`-`: none).
    pub ports: String,
}

/// The namespaces this process can see (its own and those below it).
pub fn proc_ns() -> Result<Vec<NsLine>, String> {
    let text = read_file(ns::PROC_PATH)?;
    let text = String::from_utf8_lossy(&text);
    let mut lines = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| w.get(i).and_then(|s| s.parse::<u32>().ok());
        match (num(0), num(1), w.get(2), num(3), num(4)) {
            (Some(id), Some(parent), Some(kinds), Some(init), Some(members)) if w.len() >= 7 => {
                lines.push(NsLine {
                    id,
                    parent,
                    kinds: kinds.to_string(),
                    init,
                    members,
                    addr: w[5].to_string(),
                    ports: w[6].to_string(),
                })
            }
            _ => return Err(format!("{}: bad line {line:?}", ns::PROC_PATH)),
        }
    }
    Ok(lines)
}

/// The pids in this process's `/proc`, in order.
fn visible_pids() -> Result<Vec<u32>, String> {
    let mut pids = Vec::new();
    for e in ctx(read_dir("/proc"), "/proc")? {
        if let Ok(pid) = ctx(e, "/proc")?.name().parse::<u32>() {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The names in directory `path`, without `.` and `..`.
fn names_in(path: &str) -> sys::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in read_dir(path)? {
        let e = e?;
        if !e.is_dot() {
            names.push(e.name().to_string());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The working directory.
fn cwd() -> Result<String, String> {
    let mut buf = [0u8; 256];
    Ok(ctx(sys::getcwd(&mut buf), "getcwd")?.to_string())
}

/// Polls `done` every 10 ms until it holds; fails after [`DEADLINE_MS`] with `what` and the
/// last state `done` described.
pub fn poll(what: &str, mut done: impl FnMut() -> Result<Option<String>, String>) -> Outcome {
    let start = sys::uptime();
    loop {
        // None: done; Some(state): not yet.
        match done()? {
            None => return Ok(String::new()),
            Some(state) if sys::uptime() - start > DEADLINE_MS => {
                return Err(format!("{what}: not after {DEADLINE_MS} ms: {state}"))
            }
            Some(_) => {
                let _ = sys::sleep(10);
            }
        }
    }
}

/// Sends a child's findings to its parent: one line, `+note` or `-why`.
pub fn send_report(fd: Fd, r: Outcome) {
    let line = match r {
        Ok(note) => format!("+{}\n", note.replace('\n', " ")),
        Err(why) => format!("-{}\n", why.replace('\n', " ")),
    };
    let _ = write_all(fd, line.as_bytes());
}

/// The line [`send_report`] sent on `fd`.
pub fn recv_report(fd: Fd, who: &str) -> Outcome {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = sys::read(fd, &mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    let text = String::from_utf8_lossy(&line).into_owned();
    match text.chars().next() {
        Some('+') => Ok(text[1..].to_string()),
        Some('-') => Err(format!("{who}: {}", &text[1..])),
        _ => Err(format!("{who} sent no report")),
    }
}

/// Blocks until `gate` is closed at its other end (or the process is killed).
fn wait_on(gate: Fd) {
    let mut b = [0u8; 1];
    let _ = sys::read(gate, &mut b);
}

/// `spawn(flags)` must fail with `want` (a child that starts anyway exits at once).
fn spawn_fails(flags: usize, want: Errno, what: &str) -> Result<(), String> {
    match start_child(sys::spawn(flags), || 0) {
        Ok(pid) => {
            let _ = wait_pid(pid);
            Err(format!("{what}: spawn({flags:#x}) succeeded, expected {want:?}"))
        }
        r => expect_err(r, want, &format!("{what}: spawn({flags:#x})")),
    }
}

/// Runs a case that makes namespaces, then waits (whatever it found) until they have all
/// retired: the same namespaces live and the same names under /ns as before it. They retire
/// in the background once their last process is reaped, and the next case, or a look at the
/// free frames and inodes, must not see them still going.
pub fn and_retired(case: fn() -> Outcome) -> Outcome {
    let state = || -> Result<(Vec<u32>, Vec<String>), String> {
        let ids = proc_ns()?.iter().map(|l| l.id).collect();
        Ok((ids, names_in(ns::ROOTS_DIR).unwrap_or_default()))
    };
    let before = state()?;
    let r = case();
    let retired = poll("the case's namespaces retired", || {
        let now = state()?;
        Ok((now != before).then(|| format!("namespaces and roots {now:?}, before {before:?}")))
    });
    let note = r?;
    retired?;
    Ok(note)
}

/// `spawn`'s flags: none and unknown bits are refused.
pub fn flags() -> Outcome {
    let before: Vec<u32> = proc_ns()?.iter().map(|l| l.id).collect();
    spawn_fails(0, Errno::EINVAL, "no flags")?;
    spawn_fails(8, Errno::EINVAL, "an unknown flag")?;
    spawn_fails(NEWPID | 0x100, Errno::EINVAL, "a known and an unknown flag")?;
    spawn_fails(usize::MAX, Errno::EINVAL, "every bit")?;
    spawn_fails(NEWNET | 0x10, Errno::EINVAL, "the network and an unknown flag")?;
    // None of these left a namespace behind.
    let after: Vec<u32> = proc_ns()?.iter().map(|l| l.id).collect();
    ensure!(after == before, "namespaces {before:?} before, {after:?} after the refusals");
    Ok(String::new())
}

/// A new pid and file-system namespace seen from inside (its own pids from 1, its own root
/// with `/etc` and `/tmp`, nothing of the caller's) and from outside (both pids, its root at
/// `/ns/<id>`, its line in `/proc/ns`); killing its init from outside ends every process in
/// it and removes its root. Then the kinds alone: a pid namespace keeps the caller's files, a
/// file-system namespace keeps the caller's pids.
pub fn views() -> Outcome {
    and_retired(views_case)
}

fn views_case() -> Outcome {
    write_file(MARKER, b"the caller's\n")?;
    let r = container_views().and_then(|_| kinds_alone());
    let _ = sys::unlink(MARKER);
    r
}

fn container_views() -> Outcome {
    let me = sys::getpid();
    let home = sys::getns();
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let spawned = start_child(sys::spawn(NEWPID | NEWFS), move || {
        let _ = sys::close(gate_w);
        let _ = sys::close(rep_r);
        send_report(rep_w, inside_container(me, home, gate_r));
        wait_on(gate_r); // as the container's init, until killed from outside
        0
    });
    let _ = sys::close(gate_r);
    let _ = sys::close(rep_w);
    let init = match spawned {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sys::close(gate_w);
            let _ = sys::close(rep_r);
            return Err(format!("spawn: {}", e.message()));
        }
    };
    let report = recv_report(rep_r, "inside");
    let _ = sys::close(rep_r);
    let seen = report.and_then(|id| outside_view(init, me, home, &id));
    // Kill the container's init whatever happened (the rest of it goes with it).
    let killed = ctx(sys::kill(init), "kill of the container's init");
    let status = wait_pid(init);
    let _ = sys::close(gate_w);
    let id = seen?;
    killed?;
    let status = status?;
    ensure!(status == KILLED, "the killed init exited with {status}");
    poll("the container's processes reaped, its root removed", || {
        let left: Vec<u32> = visible_pids()?
            .into_iter()
            .filter(|&p| proc_record(p).is_ok_and(|r| r.ns == id))
            .collect();
        let listed = proc_ns()?.iter().any(|l| l.id == id);
        let root = names_in(ns::ROOTS_DIR).unwrap_or_default();
        let root_left = root.iter().any(|n| *n == format!("{id}") || n.starts_with(".dead-"));
        Ok((!left.is_empty() || listed || root_left)
            .then(|| format!("processes {left:?}, in /proc/ns: {listed}, /ns: {root:?}")))
    })?;
    Ok(String::new())
}

/// What the container's init checks inside; its note is the namespace's id.
fn inside_container(outside: Pid, home: u32, gate: Fd) -> Outcome {
    let id = sys::getns();
    ensure!(id != home, "getns in the new namespace is the caller's ({id})");
    ensure!(sys::getpid() == 1, "getpid in a new pid namespace: {}", sys::getpid());
    let pids = visible_pids()?;
    ensure!(pids == [1], "/proc inside lists {pids:?}, not just [1]");
    let me = ctx(proc_record(1), "/proc/1")?;
    ensure!(
        (me.pid, me.ppid, me.ns, me.ns_pid) == (1, 0, id, 1),
        "/proc/1 inside: pid {} ppid {} ns {} nspid {}, expected 1 0 {id} 1",
        me.pid,
        me.ppid,
        me.ns,
        me.ns_pid
    );
    let lines = proc_ns()?;
    ensure!(
        lines.len() == 1 && lines[0].id == id && lines[0].parent == home && lines[0].init == 1,
        "/proc/ns inside: {lines:?}"
    );
    // Pids: the init cannot be killed from inside; the caller's number is nothing here.
    expect_err(sys::kill(1), Errno::EPERM, "kill(1) inside")?;
    expect_err(sys::kill(outside), Errno::ESRCH, "kill of the caller's pid from inside")?;
    expect_err(proc_record(outside), Errno::ENOENT, "/proc of the caller's pid from inside")?;
    // Files: its own root, with what the programs need, and no way out of it.
    ensure!(cwd()? == "/", "the working directory starts at {:?}, not /", cwd()?);
    let top = ctx(names_in("/"), "ls /")?;
    ensure!(top == ["etc", "tmp"], "the new root holds {top:?}");
    read_file("/etc/hostname")?; // a copy of the caller's
    for path in [MARKER, "../../ut-ns-marker", "/../ut-ns-marker", "/bin/sh"] {
        expect_err(File::open(path, sys::RDONLY), Errno::ENOENT, path)?;
    }
    ctx(sys::chdir("/tmp"), "cd /tmp")?;
    expect_err(File::open("../../../ut-ns-marker", sys::RDONLY), Errno::ENOENT, "from /tmp")?;
    ctx(sys::chdir("../../.."), "cd ../../..")?;
    ensure!(cwd()? == "/", "cd ../../.. from /tmp went to {:?}", cwd()?);
    ensure!(ctx(names_in("."), "ls .")? == top, "cd ../../.. from /tmp left the root");
    expect_err(read_dir("/bin").map(drop), Errno::ENOENT, "ls /bin")?;
    expect_err(File::create("/bin/x").map(drop), Errno::ENOENT, "creating /bin/x")?;
    // A program name with a slash is only looked up in this root (which has no /bin).
    for path in ["../bin/echo", "/bin/echo", "./../../bin/echo"] {
        let e = sys::exec(path, &[path, "exec'd out of the container"]);
        ensure!(e == Errno::ENOENT, "exec {path}: {e:?}, expected ENOENT");
    }
    // A second process gets pid 2 here.
    let child = ctx(
        start_child(sys::fork(), move || {
            wait_on(gate);
            0
        }),
        "fork",
    )?;
    ensure!(child == 2, "the init's first child is pid {child} inside, not 2");
    let rec = ctx(proc_record(2), "/proc/2")?;
    ensure!(rec.ppid == 1 && rec.ns == id, "/proc/2 inside: ppid {} ns {}", rec.ppid, rec.ns);
    Ok(format!("{id}"))
}

/// What the caller sees of the container whose init is `init` and whose id `inside` reported.
fn outside_view(init: Pid, me: Pid, home: u32, inside: &str) -> Result<u32, String> {
    let id: u32 = inside.parse().map_err(|_| format!("inside reported {inside:?}"))?;
    let rec = ctx(proc_record(init), "/proc of the container's init")?;
    ensure!(
        (rec.ppid, rec.ns, rec.ns_pid) == (me, id, 1),
        "the init from outside: ppid {} ns {} nspid {}, expected {me} {id} 1",
        rec.ppid,
        rec.ns,
        rec.ns_pid
    );
    let members: Vec<(u32, u32, u32)> = visible_pids()?
        .into_iter()
        .filter_map(|p| proc_record(p).ok().filter(|r| r.ns == id))
        .map(|r| (r.pid, r.ns_pid, r.ppid))
        .collect();
    ensure!(
        members.len() == 2 && members.iter().any(|&(p, n, pp)| p != init && n == 2 && pp == init),
        "its processes from outside (pid, nspid, ppid): {members:?}"
    );
    let lines = proc_ns()?;
    let line = lines.iter().find(|l| l.id == id).ok_or(format!("{id} not in /proc/ns"))?;
    ensure!(
        line.parent == home && line.kinds == "pid,fs" && line.init == init && line.members == 2,
        "its /proc/ns line: {line:?} (expected parent {home}, init {init}, 2 members)"
    );
    let root = format!("{}/{id}", ns::ROOTS_DIR);
    let inside = ctx(names_in(&root), &root)?;
    ensure!(inside == ["etc", "tmp"], "{root} holds {inside:?}");
    Ok(id)
}

/// `NEWPID` alone and `NEWFS` alone.
fn kinds_alone() -> Outcome {
    let (spawned, status) = {
        let pid = ctx(
            start_child(sys::spawn(NEWPID), || {
                let ok = sys::getpid() == 1
                    && sys::getns() != ROOT
                    && File::open(MARKER, sys::RDONLY).is_ok();
                if ok {
                    0
                } else {
                    1
                }
            }),
            "spawn(NEWPID)",
        )?;
        (pid, wait_pid(pid)?)
    };
    ensure!(status == 0, "spawn(NEWPID) {spawned}: not pid 1, or without the caller's files");
    let me = sys::getns();
    let pid = ctx(
        start_child(sys::spawn(NEWFS), move || {
            let ok = sys::getns() != me
                && File::open(MARKER, sys::RDONLY).is_err()
                && cwd().is_ok_and(|d| d == "/");
            // Its pid is the caller's view of it: the parent checks it against spawn's.
            if ok {
                sys::getpid() as i32
            } else {
                -2
            }
        }),
        "spawn(NEWFS)",
    )?;
    let status = wait_pid(pid)?;
    ensure!(
        status == pid as i32,
        "spawn(NEWFS) {pid}: exited with {status} (-2: the caller's files, or another cwd)"
    );
    Ok(String::new())
}

/// Nesting: a chain of `spawn(NEWPID)`, each in the namespace the one before made, gets
/// `ENOSPC` at level 33 (the root is level 0; Linux allows 32 too).
pub fn depth() -> Outcome {
    and_retired(depth_case)
}

fn depth_case() -> Outcome {
    if sys::getns() != ROOT {
        return Ok("skipped: not in the root namespace".into());
    }
    /// Spawns the next level; the last one writes `levels, errno, getpid` to `w`.
    fn level(n: u32, w: Fd) -> i32 {
        match sys::spawn(NEWPID) {
            Ok(0) => sys::exit(level(n + 1, w)),
            Ok(pid) => wait_pid(pid).unwrap_or(1),
            Err(e) => {
                let mut msg = [0u8; 12];
                msg[..4].copy_from_slice(&n.to_le_bytes());
                msg[4..8].copy_from_slice(&(e as i32).to_le_bytes());
                msg[8..].copy_from_slice(&sys::getpid().to_le_bytes());
                let _ = write_all(w, &msg);
                0
            }
        }
    }
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let top = fork_child(move || {
        let _ = sys::close(r);
        level(0, w)
    })?;
    let _ = sys::close(w);
    let mut msg = [0u8; 12];
    let n = ctx(read_full(r, &mut msg), "read")?;
    let _ = sys::close(r);
    let status = wait_pid(top)?;
    ensure!(n == 12 && status == 0, "the chain ended with status {status} ({n} bytes)");
    let word = |i: usize| u32::from_le_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
    let (levels, errno, pid) = (word(0), Errno::from_ret(-(word(4) as isize)), word(8));
    ensure!(
        levels == MAX_DEPTH && errno == Some(Errno::ENOSPC) && pid == 1,
        "{levels} nested spawns, then {errno:?} (pid {pid} there); expected {MAX_DEPTH}, ENOSPC, 1"
    );
    Ok(format!("{levels} levels, then ENOSPC"))
}

/// At most `MAX_LIVE` namespaces (the root included) are alive at once: the next `spawn` gets
/// `EAGAIN`, and once some are gone `spawn` works again.
pub fn limit() -> Outcome {
    and_retired(limit_case)
}

fn limit_case() -> Outcome {
    if sys::getns() != ROOT {
        return Ok("skipped: not in the root namespace".into());
    }
    let before = proc_ns()?.len();
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let mut kids = Vec::new();
    let start = sys::uptime();
    let outcome = loop {
        let spawned = start_child(sys::spawn(NEWPID), || {
            let _ = sys::close(gate_w);
            wait_on(gate_r);
            0
        });
        match spawned {
            Ok(pid) => {
                kids.push(pid);
                if kids.len() > MAX_LIVE {
                    break Err(format!("{} namespaces and no EAGAIN", kids.len() + before));
                }
            }
            Err(Errno::EAGAIN) => {
                // A namespace that is retiring (its processes gone, its id not yet free)
                // takes a place that /proc/ns no longer shows: wait for it.
                match proc_ns() {
                    Ok(l) if l.len() >= MAX_LIVE => break Ok(l.len()),
                    Ok(l) if sys::uptime() - start > DEADLINE_MS => {
                        break Err(format!("EAGAIN with {} namespaces live", l.len()))
                    }
                    Ok(_) => {
                        let _ = sys::sleep(10);
                    }
                    Err(e) => break Err(e),
                }
            }
            Err(e) => break Err(format!("spawn number {}: {e:?}", kids.len() + 1)),
        }
    };
    let _ = sys::close(gate_w);
    let _ = sys::close(gate_r);
    let statuses = wait_all(&kids)?;
    let live = outcome?;
    ensure!(live == MAX_LIVE, "EAGAIN with {live} namespaces live, not {MAX_LIVE}");
    ensure!(
        kids.len() == MAX_LIVE - before,
        "{} spawns succeeded with {before} namespaces live before",
        kids.len()
    );
    ensure!(statuses.iter().all(|&s| s == 0), "the namespaces' inits exited with {statuses:?}");
    poll("spawn works again", || match start_child(sys::spawn(NEWPID), || 0) {
        Ok(pid) => {
            wait_pid(pid)?;
            Ok(None)
        }
        Err(Errno::EAGAIN) => Ok(Some("EAGAIN".into())),
        Err(e) => Err(format!("spawn after the limit: {e:?}")),
    })?;
    Ok(format!("{} spawned, then EAGAIN", kids.len()))
}

/// With the process table full, `spawn(NEWPID | NEWFS)` fails as `fork` does, and the
/// namespace it had begun (its id, its root under /ns) is gone again ([`and_retired`]).
pub fn no_processes() -> Outcome {
    and_retired(no_processes_case)
}

fn no_processes_case() -> Outcome {
    const CAP: usize = 1000;
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let mut kids = Vec::new();
    let refusal = loop {
        if kids.len() == CAP {
            break None;
        }
        match start_child(sys::fork(), || {
            let _ = sys::close(gate_w);
            wait_on(gate_r);
            0
        }) {
            Ok(pid) => kids.push(pid),
            Err(e) => break Some(e),
        }
    };
    let spawned = start_child(sys::spawn(NEWPID | NEWFS), || 0);
    let _ = sys::close(gate_w);
    let _ = sys::close(gate_r);
    let mut all = kids.clone();
    if let Ok(pid) = spawned {
        all.push(pid);
    }
    wait_all(&all)?;
    let refusal = refusal.ok_or(format!("{CAP} processes and fork still works"))?;
    match spawned {
        Err(e) if e == refusal => {}
        other => return Err(format!("spawn with fork failing ({refusal:?}): {other:?}")),
    }
    Ok(format!("{} processes, then {refusal:?} for fork and spawn", kids.len()))
}

/// `nspcopy`'s errors, then copies that work (a file, over an existing copy, through `..`, a
/// directory tree) and that leave no temporary behind; from inside, copies into the parent,
/// itself or a sibling are refused.
pub fn nspcopy_errors() -> Outcome {
    and_retired(nspcopy_errors_case)
}

fn nspcopy_errors_case() -> Outcome {
    let data: Vec<u8> = (0..SRC_LEN as u64).map(|i| pattern(7, i)).collect();
    let made = write_file(SRC, &data)
        .and_then(|_| ctx(sys::mkdir(DIR), DIR))
        .and_then(|_| write_file(&format!("{DIR}/a"), b"a\n"))
        .and_then(|_| ctx(sys::mkdir(&format!("{DIR}/sub")), "sub"))
        .and_then(|_| write_file(&format!("{DIR}/sub/b"), &data[..5000]));
    let r = made.and_then(|_| nspcopy_checks(&data));
    for f in [&format!("{DIR}/sub/b"), &format!("{DIR}/sub"), &format!("{DIR}/a"), DIR, SRC] {
        let _ = sys::unlink(f);
    }
    r
}

fn nspcopy_checks(data: &[u8]) -> Outcome {
    let home = sys::getns();
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    // A sibling for the container: a pid namespace alone (no root of its own).
    let pid_only = start_child(sys::spawn(NEWPID), || {
        let _ = sys::close(gate_w);
        wait_on(gate_r);
        0
    });
    let pid_only = match pid_only {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sys::close(gate_w);
            let _ = sys::close(gate_r);
            return Err(format!("spawn(NEWPID): {e:?}"));
        }
    };
    let mut kids = vec![pid_only];
    let r = with_sibling(data, home, pid_only, (gate_r, gate_w), &mut kids);
    let _ = sys::close(gate_w);
    let _ = sys::close(gate_r);
    let statuses = wait_all(&kids)?;
    r?;
    ensure!(statuses.iter().all(|&s| s == 0), "the namespaces' inits exited with {statuses:?}");
    Ok(String::new())
}

fn with_sibling(
    data: &[u8],
    home: u32,
    pid_only: Pid,
    (gate_r, gate_w): (Fd, Fd),
    kids: &mut Vec<Pid>,
) -> Outcome {
    let sibling = ctx(proc_record(pid_only), "/proc of the pid namespace's init")?.ns;
    // An id no namespace has, and that the container spawned next will not take (ids are
    // given lowest first): the highest free one.
    let live = proc_ns()?;
    let unused = (2..=MAX_LIVE as u32).rev().find(|i| live.iter().all(|l| l.id != *i));
    let unused = unused.unwrap_or(0);
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let (go_r, go_w) = ctx(sys::pipe(), "pipe")?;
    let container = start_child(sys::spawn(NEWPID | NEWFS), move || {
        let _ = sys::close(gate_w);
        let _ = sys::close(rep_r);
        let _ = sys::close(go_w);
        let ready = copies_from_inside(home, sibling, unused).and_then(|_| make_own_temps());
        send_report(rep_w, ready);
        // Then the parent copies a file in: it is here, whole, and this container's own
        // files are as they were.
        wait_on(go_r);
        let here = read_file(SRC).and_then(|got| {
            ensure!(got.len() == SRC_LEN, "the copy inside has {} bytes", got.len());
            own_temps_kept()
        });
        send_report(rep_w, here);
        wait_on(gate_r);
        0
    });
    let _ = sys::close(rep_w);
    let _ = sys::close(go_r);
    let r = match container {
        Ok(pid) => {
            kids.push(pid);
            recv_report(rep_r, "inside").and_then(|_| copies_from_outside(pid, data, sibling, go_w))
        }
        Err(e) => Err(format!("spawn(NEWPID | NEWFS): {e:?}")),
    };
    let _ = sys::close(go_w);
    let here = r.and_then(|_| recv_report(rep_r, "inside, after the copy"));
    let _ = sys::close(rep_r);
    here
}

/// Inside a container: only descendants may be copied into.
fn copies_from_inside(parent: u32, sibling: u32, unused: u32) -> Outcome {
    let me = sys::getns();
    let file = "/etc/hostname";
    expect_err(sys::nspcopy(file, parent, None, false), Errno::EPERM, "into the parent")?;
    expect_err(sys::nspcopy(file, me, None, false), Errno::EPERM, "into itself")?;
    expect_err(sys::nspcopy(file, sibling, None, false), Errno::EPERM, "into a sibling")?;
    if unused != 0 {
        expect_err(sys::nspcopy(file, unused, None, false), Errno::ESRCH, "into no namespace")?;
    }
    Ok(String::new())
}

/// Names like those of nspcopy's temporaries that a container makes in its root before
/// anything is copied in (files and directories, the first numbers a boot gives): a copy must
/// neither write into them, nor move them, nor remove them.
const OWN_TEMPS: u32 = 30;

fn own_temp(i: u32) -> String {
    format!("/.nspcopy-{i}")
}

fn make_own_temps() -> Outcome {
    for i in 0..OWN_TEMPS {
        if i % 2 == 0 {
            write_file(&own_temp(i), b"mine\n")?;
        } else {
            ctx(sys::mkdir(&own_temp(i)), &own_temp(i))?;
            write_file(&format!("{}/keep", own_temp(i)), b"mine\n")?;
        }
    }
    Ok(String::new())
}

fn own_temps_kept() -> Outcome {
    for i in 0..OWN_TEMPS {
        let file = match i % 2 {
            0 => own_temp(i),
            _ => format!("{}/keep", own_temp(i)),
        };
        let got = read_file(&file)?;
        ensure!(got == b"mine\n", "{file} holds {} bytes, not what it was", got.len());
    }
    Ok(String::new())
}

/// The names in the container's root `root` but its own temporaries; there must be all of
/// those and nothing else like them (nothing left of a copy).
fn names_but_own_temps(root: &str) -> Result<Vec<String>, String> {
    let names = ctx(names_in(root), root)?;
    let (temps, rest): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| n.starts_with(".nspcopy-"));
    let mut want: Vec<String> = (0..OWN_TEMPS).map(|i| own_temp(i)[1..].to_string()).collect();
    want.sort_unstable();
    ensure!(temps == want, "{root} holds the temporaries {temps:?}");
    Ok(rest)
}

/// `nspcopy` as a raw call.
fn raw_nspcopy(src: usize, nsid: usize, dst: usize, flags: usize) -> isize {
    // SAFETY: the kernel only reads the two strings (and must refuse bad pointers with EFAULT);
    // nothing of this process is written.
    unsafe { syscall4(nr::NSPCOPY, src, nsid, dst, flags) }
}

/// From the caller: the errors, then copies into the container `init` is the init of.
fn copies_from_outside(init: Pid, data: &[u8], sibling: u32, go: Fd) -> Outcome {
    let id = ctx(proc_record(init), "/proc of the container's init")?.ns;
    let root = format!("{}/{id}", ns::ROOTS_DIR);
    let src_z = b"/ut-ns-src\0";
    let dst_z = b"/copy\0";
    let raw_err = |ret: isize| Errno::from_ret(ret);
    for &(what, bad) in BAD_POINTERS {
        let ret = raw_nspcopy(bad, id as usize, 0, 0);
        ensure!(raw_err(ret) == Some(Errno::EFAULT), "source {what}: {ret}, expected EFAULT");
        if bad != 0 {
            // (A null destination means the default name.)
            let ret = raw_nspcopy(src_z.as_ptr() as usize, id as usize, bad, 0);
            ensure!(raw_err(ret) == Some(Errno::EFAULT), "destination {what}: {ret}");
        }
    }
    for flags in [2, 0x100, usize::MAX] {
        let ret = raw_nspcopy(src_z.as_ptr() as usize, id as usize, dst_z.as_ptr() as usize, flags);
        ensure!(raw_err(ret) == Some(Errno::EINVAL), "flags {flags:#x}: {ret}, expected EINVAL");
    }
    for nsid in [0, MAX_LIVE + 1, u32::MAX as usize, u32::MAX as usize + 1 + id as usize] {
        let ret = raw_nspcopy(src_z.as_ptr() as usize, nsid, 0, 0);
        ensure!(raw_err(ret) == Some(Errno::ESRCH), "namespace {nsid:#x}: {ret}, expected ESRCH");
    }
    let me = sys::getns();
    expect_err(sys::nspcopy(SRC, me, None, false), Errno::EPERM, "into the caller's own")?;
    expect_err(sys::nspcopy(SRC, sibling, None, false), Errno::EINVAL, "into a pid namespace")?;
    expect_err(sys::nspcopy("/ut-ns-none", id, None, false), Errno::ENOENT, "no source")?;
    expect_err(sys::nspcopy(DIR, id, None, false), Errno::EISDIR, "a directory without -r")?;
    for dst in ["/", "/..", "/tmp/."] {
        expect_err(sys::nspcopy(SRC, id, Some(dst), false), Errno::EINVAL, dst)?;
    }
    expect_err(sys::nspcopy(SRC, id, Some("/none/x"), false), Errno::ENOENT, "/none/x")?;
    let names = names_but_own_temps(&root)?;
    ensure!(names == ["etc", "tmp"], "after the errors {root} holds {names:?}");
    // Copies that work. The destination is in the container's root, `..` included.
    ctx(sys::nspcopy(SRC, id, None, false), "nspcopy")?;
    ensure!(read_file(&format!("{root}{SRC}"))? == data, "{root}{SRC} differs");
    ctx(sys::nspcopy(DIR, id, Some("../../tmp/t"), true), "nspcopy -r to ../../tmp/t")?;
    ctx(sys::nspcopy(DIR, id, Some("/t2"), true), "nspcopy -r to /t2")?;
    ensure!(read_file(&format!("{root}/t2/sub/b"))? == data[..5000], "t2/sub/b differs");
    ctx(sys::nspcopy(SRC, id, Some("/t2"), false), "nspcopy over a directory")
        .err()
        .ok_or("a file copied over a directory")?;
    for name in ["/t2/sub/b", "/t2/sub", "/t2/a", "/t2"] {
        ctx(sys::unlink(&format!("{root}{name}")), name)?;
    }
    ensure!(read_file(&format!("{root}/tmp/t/a"))? == b"a\n", "{root}/tmp/t/a differs");
    ensure!(read_file(&format!("{root}/tmp/t/sub/b"))? == data[..5000], "tmp/t/sub/b differs");
    // Over an existing copy: replaced whole.
    write_file(&format!("{root}/tmp/old"), b"old")?;
    ctx(sys::nspcopy(SRC, id, Some("/tmp/old"), false), "nspcopy over a file")?;
    ensure!(read_file(&format!("{root}/tmp/old"))? == data, "the replaced copy differs");
    let names = ctx(names_in(&format!("{root}/tmp")), "tmp")?;
    ensure!(names == ["old", "t"], "{root}/tmp holds {names:?}");
    let names = names_but_own_temps(&root)?;
    ensure!(names == ["etc", "tmp", "ut-ns-src"], "{root} holds {names:?}");
    ctx(write_all(go, b"g"), "go")?;
    Ok(String::new())
}

/// `wait(FOREVER)`: without children it waits (until killed) instead of failing; with
/// children it is `wait`; a namespace's init reaps the orphans handed to it with it.
pub fn wait_forever() -> Outcome {
    and_retired(wait_forever_case)
}

fn wait_forever_case() -> Outcome {
    expect_err(sys::wait_flags(2), Errno::EINVAL, "wait with an unknown flag")?;
    expect_err(sys::wait_flags(FOREVER | 2), Errno::EINVAL, "wait with FOREVER and more")?;
    let waiter = fork_child(|| match sys::wait_flags(FOREVER) {
        Ok(_) => 1,
        Err(e) => 100 + e as i32,
    })?;
    let asleep = poll("the FOREVER waiter asleep", || {
        let rec = ctx(proc_record(waiter), "/proc of the waiter")?;
        Ok((rec.state != state::SLEEPING).then(|| format!("state {}", rec.state)))
    });
    let killed = ctx(sys::kill(waiter), "kill of the waiter");
    let status = wait_pid(waiter)?;
    asleep?;
    killed?;
    ensure!(status == KILLED, "the FOREVER waiter ended with {status}, not killed");
    // With a child, it returns as wait does.
    let child = fork_child(|| 7)?;
    let got = ctx(sys::wait_flags(FOREVER), "wait(FOREVER) with a child")?;
    ensure!(got == (child, 7), "wait(FOREVER) gave {got:?}, expected ({child}, 7)");
    // A namespace's init: its child exits and leaves a grandchild, which goes to the init;
    // the init reaps both with FOREVER (pids 2 and 3 there).
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let init = start_child(sys::spawn(NEWPID), move || {
        let _ = sys::close(gate_w);
        let middle = start_child(sys::fork(), move || {
            let _ = start_child(sys::fork(), move || {
                wait_on(gate_r);
                5
            });
            0
        });
        if middle != Ok(2) {
            return 10;
        }
        let mut reaped = Vec::new();
        for _ in 0..2 {
            match sys::wait_flags(FOREVER) {
                Ok(r) => reaped.push(r),
                Err(_) => return 11,
            }
        }
        reaped.sort_unstable();
        if reaped == [(2, 0), (3, 5)] {
            0
        } else {
            12
        }
    });
    let _ = sys::close(gate_r);
    let _ = sys::close(gate_w); // the grandchild reads end of file and exits with 5
    let init = ctx(init, "spawn(NEWPID)")?;
    let status = wait_pid(init)?;
    ensure!(status == 0, "the namespace's init failed with {status} (11: wait, 12: not 2 and 3)");
    Ok(String::new())
}

/// `CYCLES` containers started as `spawn` starts them (nsinit running `sleep`) and killed by
/// their init from here; the namespaces are all gone afterwards ([`and_retired`]). (The QEMU
/// test checks that memory, inodes and processes are back where they were.)
pub fn cycles() -> Outcome {
    and_retired(cycles_case)
}

fn cycles_case() -> Outcome {
    let start = sys::uptime();
    for i in 0..CYCLES {
        let init = start_child(sys::spawn(NEWPID | NEWFS), || {
            let e = sys::exec("nsinit", &["nsinit", "sleep", "100000"]);
            100 + e as i32
        });
        let init = ctx(init, &format!("spawn {i}"))?;
        // Wait for its program: two members, nsinit and sleep.
        let ran = ctx(proc_record(init), "/proc of the init").map(|r| r.ns).and_then(|id| {
            poll("the container's program", || {
                let lines = proc_ns()?;
                let line = lines.iter().find(|l| l.id == id);
                Ok(line.filter(|l| l.members >= 2).is_none().then(|| format!("{line:?}")))
            })
        });
        let killed = ctx(sys::kill(init), "kill of the init");
        let status = wait_pid(init)?;
        ran.map_err(|e| format!("cycle {i}: {e}"))?;
        killed?;
        ensure!(status == KILLED, "cycle {i}: the init exited with {status}");
    }
    let took = sys::uptime() - start;
    Ok(format!("{CYCLES} containers in {took} ms"))
}

/// `nsenter` into a container from its parent: the child is in the container's namespaces
/// (its id, a pid there other than 1, its root), the parent gets its pid and its status; from
/// outside the rules hold (only strict descendants: `EPERM` for the root itself, `ESRCH` for
/// none), and from inside the child neither its own namespace nor the root may be entered.
/// Then `attach` to namespaces that do not exist, and process groups: `setpgid` and `getpgid`
/// in parent and child, and their errors.
pub fn enter_and_groups() -> Outcome {
    and_retired(enter_and_groups_case)
}

fn enter_and_groups_case() -> Outcome {
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let spawned = start_child(sys::spawn(NEWPID | NEWFS), move || {
        let _ = sys::close(gate_w);
        let _ = sys::close(rep_r);
        let _ = write_all(rep_w, &sys::getns().to_le_bytes());
        let _ = sys::close(rep_w);
        wait_on(gate_r); // the container's init, until the gate closes
        0
    });
    let _ = sys::close(gate_r);
    let _ = sys::close(rep_w);
    let r = match spawned {
        Ok(init) => {
            let mut id = [0u8; 4];
            let got = read_full(rep_r, &mut id);
            let r = match got {
                Ok(4) => entered(u32::from_le_bytes(id)).and_then(|_| groups(init)),
                other => Err(format!("no namespace id from the container: {other:?}")),
            };
            let _ = sys::close(gate_w);
            wait_pid(init)?;
            r
        }
        Err(e) => {
            let _ = sys::close(gate_w);
            Err(format!("spawn: {}", e.message()))
        }
    };
    let _ = sys::close(rep_r);
    r
}

/// `nsenter(id)` and its refusals; attach's refusals.
fn entered(id: u32) -> Outcome {
    let raw_enter = |nsid: usize| -> isize {
        // SAFETY: nsenter takes no pointer; a child that starts anyway exits at once.
        let r = unsafe { ulib::sys::raw::syscall1(nr::NSENTER, nsid) };
        if r == 0 {
            sys::exit(0);
        }
        if r > 0 {
            let _ = wait_pid(r as Pid);
        }
        r
    };
    ensure!(raw_enter(ROOT as usize) == Errno::EPERM.ret(), "nsenter(the root) from the root");
    ensure!(raw_enter(0) == Errno::ESRCH.ret(), "nsenter(0)");
    ensure!(raw_enter(MAX_LIVE + 1) == Errno::ESRCH.ret(), "nsenter(MAX_LIVE + 1)");
    ensure!(raw_enter(1 << 32 | id as usize) == Errno::ESRCH.ret(), "nsenter(2^32 + id)");
    // Inside: the container's id, a pid of its own there, its root (etc and tmp, no bin).
    let pid = start_child(sys::nsenter(id), move || {
        let names = names_in("/").unwrap_or_default();
        let inside = sys::getns() == id && sys::getpid() > 1 && !names.iter().any(|n| n == "bin");
        let own = sys::nsenter(id) == Err(Errno::EPERM) && sys::nsenter(ROOT) == Err(Errno::EPERM);
        match (inside, own) {
            (true, true) => 0,
            (false, _) => 10,
            (true, false) => 11,
        }
    });
    let pid = ctx(pid, "nsenter")?;
    match wait_pid(pid)? {
        0 => {}
        10 => return Err(format!("the nsenter child is not in namespace {id}")),
        11 => return Err("from inside, nsenter into itself or the root worked".into()),
        s => return Err(format!("the nsenter child: status {s}")),
    }
    // attach: ids that name no namespace (none of these may move the console).
    for bad in [0, MAX_LIVE as u32 + 1, u32::MAX] {
        expect_err(sys::attach(bad), Errno::ESRCH, &format!("attach({bad})"))?;
    }
    Ok(String::new())
}

/// `setpgid`/`getpgid` with two children, one of them in a container (`init`).
fn groups(init: Pid) -> Outcome {
    let me = sys::getpid();
    let mine = ctx(sys::getpgid(0), "getpgid(0)")?;
    ensure!(sys::getpgid(me) == Ok(mine), "getpgid(me) != getpgid(0)");
    let (gate_r, gate_w) = ctx(sys::pipe(), "pipe")?;
    let child = |leads: bool| {
        start_child(sys::fork(), move || {
            let _ = sys::close(gate_w);
            if leads && sys::setpgid(0, 0).is_err() {
                return 1;
            }
            wait_on(gate_r);
            0
        })
    };
    let a = child(true);
    let b = child(false);
    let _ = sys::close(gate_r);
    let r = (|| -> Outcome {
        let (a, b) = (ctx(a, "fork")?, ctx(b, "fork")?);
        // The leader's group is its own number (set by both: whichever ran first).
        ctx(sys::setpgid(a, a), "setpgid(a, a)")?;
        ensure!(sys::getpgid(a) == Ok(a), "a's group: {:?}", sys::getpgid(a));
        ensure!(sys::getpgid(b) == Ok(mine), "b starts in its parent's group");
        ctx(sys::setpgid(b, a), "setpgid(b, a)")?;
        ensure!(sys::getpgid(b) == Ok(a), "b's group after joining a's: {:?}", sys::getpgid(b));
        expect_err(sys::setpgid(b, 0x7fff_fff0), Errno::EPERM, "setpgid into no group")?;
        expect_err(sys::setpgid(1, 0), Errno::ESRCH, "setpgid of init (not a child)")?;
        expect_err(sys::setpgid(init, 0), Errno::EPERM, "setpgid of a child in a container")?;
        expect_err(sys::setpgid(0x7fff_fff0, 0), Errno::ESRCH, "setpgid of no process")?;
        expect_err(sys::getpgid(0x7fff_fff0), Errno::ESRCH, "getpgid of no process")?;
        // SAFETY: setpgid takes no pointer.
        let r = unsafe { ulib::sys::raw::syscall2(nr::SETPGID, 0, usize::MAX) };
        ensure!(r == Errno::EINVAL.ret(), "setpgid(0, -1): {r}");
        // SAFETY: as above.
        let r = unsafe { ulib::sys::raw::syscall2(nr::SETPGID, 1 << 32, 0) };
        ensure!(r == Errno::ESRCH.ret(), "setpgid(2^32, 0): {r}");
        // setfg: a group that does not exist, and init's.
        expect_err(sys::setfg(0x7fff_fff0), Errno::ESRCH, "setfg of no group")?;
        expect_err(sys::setfg(1), Errno::EPERM, "setfg(1)")?;
        Ok(String::new())
    })();
    let _ = sys::close(gate_w);
    let mut kids = Vec::new();
    kids.extend(a.iter().copied());
    kids.extend(b.iter().copied());
    let statuses = wait_all(&kids)?;
    ensure!(statuses.iter().all(|&s| s == 0), "children's statuses {statuses:?}");
    r
}
