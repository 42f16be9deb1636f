//! fuzz [SEED [CALLS]] [-b PER_BATCH] [-j JOBS] [-x GROUP,...] [-only K] [-v]: random system
//! calls with hostile arguments, to find what makes the kernel panic, fault, hang or leak.
//!
//! The calls go in batches of PER_BATCH (default 100), each in a process of its own (see
//! `batch.rs` for what a batch does, which memory it lets the kernel write and why no call
//! it makes may wait for ever), JOBS of them at once (default 1; more find races between
//! processes, but a batch then no longer replays exactly alone). This process, the runner,
//! forks the batches and watches them: a
//! batch that has not reported its end after [`BATCH_DEADLINE_MS`] is a hang (killed, and if
//! the kill does not end it within five seconds, an unkillable hang: the run stops there, as
//! the kernel is probably stuck). A batch that ends with any status but 0 crashed (a fault in
//! the fuzzer's own process: the kernel wrote where it should not have, or a fuzzer bug).
//! Each batch has its own random stream (from SEED and its index) and its own directory
//! (`/fuzz-PID-UPTIME/bK`, removed after it), so any batch replays alone: `-only K`, and `-v`
//! prints each call before it is made.
//!
//! GROUPs that `-x` leaves out: `exec` (every exec), `elf` (exec of mutated programs),
//! `rename`, `net` (socket calls), `cpu` (privileged instructions and the like).
//!
//! Output: a first line with the seed (`fuzz: seed ...`), one line per trouble
//! (`fuzz: HANG ...`, `fuzz: ODD ...`, `fuzz: CRASH ...`), and the last line
//! `fuzz: end: ... PASSED` or `... FAILED`; the exit status is 0 only when it passed.

#![no_std]
#![no_main]

extern crate alloc;

mod batch;
mod cpu;
mod elf;
mod rng;

use ulib::abi::fs::{Dirent, DIRENT_SIZE};
use ulib::abi::syscall::{kind, nr, state, ProcRecord};
use ulib::io::read_to_end;
use ulib::net::{self, PollFd, POLLIN};
use ulib::prelude::*;

ulib::entry!(main);

const DEFAULT_CALLS: usize = 2000;
const DEFAULT_PER_BATCH: usize = 100;
/// A batch must report its end within this (its calls each end within about two seconds,
/// and few of them take that long).
const BATCH_DEADLINE_MS: u64 = 60_000;
/// After a kill, a batch must be gone within this.
const KILLED_GOES_MS: u64 = 5000;
/// How long the processes a run left (children of killed grandchildren, given to init) may
/// take to end: they sleep at most 200 ms.
const STRAYS_MS: u64 = 10_000;

/// Which kinds of calls a run makes.
#[derive(Clone, Copy, Debug)]
pub struct Groups {
    pub exec: bool,
    pub elf: bool,
    pub rename: bool,
    pub net: bool,
    pub cpu: bool,
}

struct Options {
    seed: u64,
    calls: usize,
    per_batch: usize,
    groups: Groups,
    only: Option<u64>,
    verbose: bool,
    /// Batches at once.
    jobs: usize,
}

fn usage() -> ! {
    die!(
        "usage: fuzz [SEED [CALLS]] [-b PER_BATCH] [-j JOBS] [-x exec,elf,rename,net,cpu] \
         [-only K] [-v]"
    )
}

fn number(s: &str) -> u64 {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|_| usage())
}

fn parse(args: Args) -> Options {
    let mut o = Options {
        seed: 1,
        calls: DEFAULT_CALLS,
        per_batch: DEFAULT_PER_BATCH,
        groups: Groups { exec: true, elf: true, rename: true, net: true, cpu: true },
        only: None,
        verbose: false,
        jobs: 1,
    };
    let mut positional = 0;
    let mut args = args.skip(1);
    while let Some(a) = args.next() {
        match a {
            "-v" => o.verbose = true,
            "-b" => o.per_batch = number(args.next().unwrap_or_else(|| usage())).max(1) as usize,
            "-only" => o.only = Some(number(args.next().unwrap_or_else(|| usage()))),
            "-j" => o.jobs = number(args.next().unwrap_or_else(|| usage())).clamp(1, 16) as usize,
            "-x" => {
                for g in args.next().unwrap_or_else(|| usage()).split(',') {
                    match g {
                        "exec" => o.groups.exec = false,
                        "elf" => o.groups.elf = false,
                        "rename" => o.groups.rename = false,
                        "net" => o.groups.net = false,
                        "cpu" => o.groups.cpu = false,
                        _ => usage(),
                    }
                }
            }
            _ if a.starts_with('-') => usage(),
            _ => {
                match positional {
                    0 => o.seed = number(a),
                    1 => o.calls = number(a) as usize,
                    _ => usage(),
                }
                positional += 1;
            }
        }
    }
    o
}

#[derive(Default)]
struct Tally {
    calls: usize,
    batches: usize,
    hangs: usize,
    crashes: usize,
    odd: usize,
}

fn main(args: Args) -> i32 {
    let o = parse(args);
    let g = o.groups;
    let left_out: Vec<&str> =
        [("exec", g.exec), ("elf", g.elf), ("rename", g.rename), ("net", g.net), ("cpu", g.cpu)]
            .iter()
            .filter(|(_, on)| !on)
            .map(|(n, _)| *n)
            .collect();
    let batches = o.calls.div_ceil(o.per_batch) as u64;
    println!(
        "fuzz: seed {} calls {} in {} batches of {}, {} at once; left out: {}",
        o.seed,
        o.calls,
        batches,
        o.per_batch,
        o.jobs,
        if left_out.is_empty() { "none".to_string() } else { left_out.join(",") }
    );
    let mut program = Vec::new();
    if let Ok(f) = File::open("/bin/echo", sys::RDONLY) {
        let _ = f.read_to_end(&mut program);
    }
    // (A run that was stopped leaves its directory: the uptime keeps the next one's apart.)
    let root = format!("/fuzz-{}-{}", sys::getpid(), sys::uptime());
    if let Err(e) = sys::mkdir(&root) {
        die!("mkdir {root}: {}", e.message());
    }
    let start = sys::uptime();
    let mut t = Tally::default();
    let range = match o.only {
        Some(k) => k..k + 1,
        None => 0..batches,
    };
    let mut stuck = false;
    let mut next = range.start;
    let mut running: Vec<Running> = Vec::new();
    let mut reaped: Vec<(Pid, i32)> = Vec::new();
    let mut finished = 0u64;
    while !stuck && (next < range.end || !running.is_empty()) {
        while running.len() < o.jobs && next < range.end {
            let k = next;
            next += 1;
            let calls = o.per_batch.min(o.calls.saturating_sub(k as usize * o.per_batch)).max(1);
            let dir = format!("{root}/b{k}");
            if let Err(e) = sys::mkdir(&dir) {
                println!("fuzz: mkdir {dir}: {}", e.message());
                stuck = true;
                break;
            }
            match start_batch(&o, k, calls, &dir, &program) {
                Some(b) => {
                    t.batches += 1;
                    running.push(b);
                }
                None => stuck = true,
            }
        }
        if running.is_empty() {
            break;
        }
        // Wait for a report line, an end of file, or the earliest deadline.
        let now = sys::uptime();
        let soonest = running.iter().map(|b| b.deadline).min().unwrap_or(now);
        let mut fds: Vec<PollFd> =
            running.iter().map(|b| PollFd { fd: b.r, events: POLLIN, revents: 0 }).collect();
        let _ = net::poll(&mut fds, soonest.saturating_sub(now) as isize);
        let mut i = 0;
        while i < running.len() {
            let b = &mut running[i];
            if fds[i].revents != 0 {
                let mut buf = [0u8; 128];
                match sys::read(b.r, &mut buf) {
                    Ok(0) | Err(_) => b.eof = true,
                    Ok(n) => b.line.extend_from_slice(&buf[..n]),
                }
            }
            let complete = b.eof || b.line.ends_with(b"\n");
            if complete || sys::uptime() >= b.deadline {
                let b = running.remove(i);
                fds.remove(i);
                let replay = format!(
                    "replay: fuzz {} {} -b {} -only {} -v",
                    o.seed, o.calls, o.per_batch, b.k
                );
                if !finish_batch(b, complete, &replay, &mut reaped, &mut t) {
                    stuck = true;
                }
                finished += 1;
                if o.only.is_none() && finished.is_multiple_of(10) {
                    let ms = sys::uptime().saturating_sub(start);
                    println!("fuzz: {finished} of {batches} batches, {} calls, {ms} ms", t.calls);
                }
            } else {
                i += 1;
            }
        }
    }
    if !stuck {
        let left = wait_for_strays(STRAYS_MS);
        if left > 0 {
            println!("fuzz: {left} processes of the run still there after {STRAYS_MS} ms");
        }
        remove_tree(root.as_bytes());
    }
    let ms = sys::uptime().saturating_sub(start);
    let passed = t.hangs == 0 && t.crashes == 0 && t.odd == 0;
    println!(
        "fuzz: end: seed {} calls {} batches {} hangs {} crashes {} odd {} in {} ms: {}",
        o.seed,
        t.calls,
        t.batches,
        t.hangs,
        t.crashes,
        t.odd,
        ms,
        if passed { "PASSED" } else { "FAILED" }
    );
    if passed {
        0
    } else {
        1
    }
}

/// A batch being watched.
struct Running {
    k: u64,
    pid: Pid,
    /// The read end of its report pipe.
    r: Fd,
    dir: String,
    deadline: u64,
    line: Vec<u8>,
    eof: bool,
}

/// Fork batch `k` (in its directory `dir`).
fn start_batch(o: &Options, k: u64, calls: usize, dir: &str, program: &[u8]) -> Option<Running> {
    let Ok((r, w)) = sys::pipe() else {
        println!("fuzz: pipe failed");
        return None;
    };
    let runner = sys::getpid();
    let pid = match sys::fork() {
        Ok(0) => {
            let _ = sys::close(r);
            if sys::chdir(dir).is_err() {
                sys::exit(2);
            }
            let b = batch::Batch::new(o.seed, k, o.groups, o.verbose, dir.into(), program, runner);
            let mut b = match b {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("fuzz: batch {k}: {e}");
                    sys::exit(2)
                }
            };
            b.setup();
            let s = b.run(calls);
            let line = batch::report_line(k, &s, &b.troubles);
            let _ = ulib::io::write_all(w, line.as_bytes());
            sys::exit(0)
        }
        Ok(pid) => pid,
        Err(e) => {
            println!("fuzz: fork of batch {k}: {}", e.message());
            let _ = (sys::close(r), sys::close(w));
            return None;
        }
    };
    let _ = sys::close(w);
    Some(Running {
        k,
        pid,
        r,
        dir: dir.into(),
        deadline: sys::uptime() + BATCH_DEADLINE_MS,
        line: Vec::new(),
        eof: false,
    })
}

/// Judge batch `b`, whose report is `complete` (or whose deadline passed), and count what it
/// reported. False when it would not go: the run cannot go on.
fn finish_batch(
    b: Running,
    complete: bool,
    replay: &str,
    reaped: &mut Vec<(Pid, i32)>,
    t: &mut Tally,
) -> bool {
    let _ = sys::close(b.r);
    let k = b.k;
    if !complete {
        t.hangs += 1;
        let _ = sys::kill(b.pid);
        if !zombie_within(b.pid, KILLED_GOES_MS) {
            let ms = BATCH_DEADLINE_MS;
            println!("fuzz: HANG: batch {k} did not end in {ms} ms and survived kill; {replay}");
            return false;
        }
        println!("fuzz: HANG: batch {k} did not end in {BATCH_DEADLINE_MS} ms (killed); {replay}");
        let _ = wait_for(b.pid, reaped);
        remove_tree(b.dir.as_bytes());
        return true;
    }
    let status = wait_for(b.pid, reaped);
    // `end K CALLS HANGS ODD`
    let text = String::from_utf8_lossy(&b.line).into_owned();
    let f: Vec<usize> = text.split_whitespace().skip(2).filter_map(|w| w.parse().ok()).collect();
    if let [calls, hangs, odd] = f[..] {
        t.calls += calls;
        t.hangs += hangs;
        t.odd += odd;
        if hangs + odd > 0 {
            println!("fuzz: batch {k}: {hangs} hangs, {odd} odd results; {replay}");
        }
    }
    if status != Some(0) || f.len() != 3 {
        t.crashes += 1;
        println!("fuzz: CRASH: batch {k} ended with status {status:?} after {text:?}; {replay}");
    }
    remove_tree(b.dir.as_bytes());
    true
}

/// The exit status of the child `pid` (children that end meanwhile are kept in `reaped`).
fn wait_for(pid: Pid, reaped: &mut Vec<(Pid, i32)>) -> Option<i32> {
    if let Some(i) = reaped.iter().position(|&(p, _)| p == pid) {
        return Some(reaped.swap_remove(i).1);
    }
    loop {
        match sys::wait() {
            Ok((p, status)) if p == pid => return Some(status),
            Ok(other) => reaped.push(other),
            Err(_) => return None,
        }
    }
}

/// `path` and everything under it, gone (names are bytes: a fuzzed name may be anything).
fn remove_tree(path: &[u8]) {
    if unlink(path).is_ok() {
        return;
    }
    let Ok(fd) = open(path) else { return };
    let is_dir = sys::fstat(fd).is_ok_and(|st| st.kind == kind::DIR);
    let mut raw = Vec::new();
    if is_dir {
        let _ = read_to_end(fd, &mut raw);
    }
    let _ = sys::close(fd);
    for entry in raw.chunks_exact(DIRENT_SIZE) {
        let Ok(d) = Dirent::decode(entry) else { continue };
        let name = d.name();
        if d.is_free() || name == b"." || name == b".." {
            continue;
        }
        let mut child = path.to_vec();
        child.push(b'/');
        child.extend_from_slice(name);
        remove_tree(&child);
    }
    let _ = unlink(path);
}

fn with_nul(path: &[u8]) -> Vec<u8> {
    let mut z = path.to_vec();
    z.push(0);
    z
}

fn unlink(path: &[u8]) -> sys::Result<usize> {
    let z = with_nul(path);
    // SAFETY: the kernel reads the NUL-terminated `z`, live for the call.
    sys::check(unsafe { sys::raw::syscall1(nr::UNLINK, z.as_ptr() as usize) })
}

fn open(path: &[u8]) -> sys::Result<Fd> {
    let z = with_nul(path);
    // SAFETY: as in `unlink`.
    sys::check(unsafe { sys::raw::syscall2(nr::OPEN, z.as_ptr() as usize, sys::RDONLY) })
        .map(|fd| fd as Fd)
}

/// Whether `pid` (a child) has exited within `ms`: its `/proc` record says zombie.
pub fn zombie_within(pid: Pid, ms: u64) -> bool {
    let end = sys::uptime() + ms;
    loop {
        let mut rec = [0u8; ProcRecord::SIZE];
        let state = File::open(&format!("/proc/{pid}"), sys::RDONLY)
            .and_then(|f| ulib::io::read_full(f.fd(), &mut rec))
            .ok()
            .and_then(|n| ProcRecord::decode(&rec[..n]))
            .map(|r| r.state);
        if state.is_none() || state == Some(state::ZOMBIE) {
            return true;
        }
        if sys::uptime() >= end {
            return false;
        }
        let _ = sys::sleep(10);
    }
}

/// Wait until no process but this one is called `fuzz` (batches fork without exec, so
/// everything a run started and did not exec is called that) or `ms` pass; how many are left.
/// Then what they held (files in the run's directory, the directory itself) is free again.
fn wait_for_strays(ms: u64) -> usize {
    let me = sys::getpid();
    let end = sys::uptime() + ms;
    loop {
        let mut listing = Vec::new();
        if let Ok(f) = File::open("/proc", sys::RDONLY) {
            let _ = f.read_to_end(&mut listing);
        }
        let left = listing
            .chunks_exact(DIRENT_SIZE)
            .filter_map(|e| Dirent::decode(e).ok())
            .filter_map(|d| core::str::from_utf8(d.name()).ok()?.parse::<Pid>().ok())
            .filter(|&pid| pid != me)
            .filter_map(|pid| {
                let mut rec = [0u8; ProcRecord::SIZE];
                let f = File::open(&format!("/proc/{pid}"), sys::RDONLY).ok()?;
                let n = ulib::io::read_full(f.fd(), &mut rec).ok()?;
                ProcRecord::decode(&rec[..n])
            })
            .filter(|r| r.name() == b"fuzz" && r.state != state::ZOMBIE)
            .count();
        if left == 0 || sys::uptime() >= end {
            return left;
        }
        let _ = sys::sleep(20);
    }
}
