//! usertests [-l] [CASE...]: a stress and regression suite for the kernel's system calls.
//!
//! Each case runs in a process of its own (so that a case the kernel kills, or that leaves
//! things behind, cannot take the others down) and reports through a pipe; this process prints
//! one line per case, `usertests: <case> ok` (with a note in parentheses) or
//! `usertests: <case> FAILED: <why>`, then `ALL TESTS PASSED` or `SOME TESTS FAILED: <cases>`.
//! `-l` lists the cases; names given select cases (all by default). `--publish NSID tcp|udp
//! HOSTPORT PORT` only calls `publish` (for the tests that drive published ports from the
//! host: `mkimage/tests/netns.rs`) and says what it did. Files the cases make are
//! named `/ut-*` and removed by the case that made them. Cases that need the network (a NIC)
//! pass with a note when there is none.

#![no_std]
#![no_main]

mod exec;
mod exhaust;
mod fs;
mod limits;
mod mem;
mod netns;
mod ns;
mod overflow;
mod pointers;
mod poll;
mod proc;
mod sendfile;
mod sockshare;

use core::sync::atomic::{AtomicI32, Ordering};

use ulib::io::write_all;
use ulib::prelude::*;

ulib::entry!(main);

/// What a case returns: a note on success, the reason on failure.
pub type Outcome = Result<String, String>;

pub struct Case {
    pub name: &'static str,
    pub run: fn() -> Outcome,
}

const CASES: &[Case] = &[
    Case { name: "fork-wait", run: proc::fork_wait },
    Case { name: "fork-limit", run: proc::fork_limit },
    Case { name: "exec-args", run: exec::exec_args },
    Case { name: "exec-missing", run: exec::exec_missing },
    Case { name: "exec-bad-files", run: exec::exec_bad_files },
    Case { name: "bad-pointers", run: pointers::bad_pointers },
    Case { name: "sbrk", run: mem::sbrk },
    Case { name: "sbrk-limit", run: mem::sbrk_limit },
    Case { name: "pipe-4mib", run: fs::pipe_megabytes },
    Case { name: "pipe-errors", run: fs::pipe_errors },
    Case { name: "pipe-nonblocking-write", run: fs::pipe_nonblocking_write },
    Case { name: "files", run: fs::files },
    Case { name: "rename-errors", run: fs::rename_errors },
    Case { name: "concurrent-create", run: fs::concurrent_create },
    Case { name: "large-file", run: fs::large_file },
    Case { name: "fd-limit", run: fs::fd_limit },
    Case { name: "nonblocking-file", run: fs::nonblocking_file },
    Case { name: "poll-pipe", run: poll::poll_pipe },
    Case { name: "accept-emfile", run: poll::accept_emfile },
    Case { name: "shared-udp-recv", run: sockshare::udp_recv },
    Case { name: "shared-udp-poll", run: sockshare::udp_poll },
    Case { name: "shared-tcp-recv", run: sockshare::tcp_recv },
    Case { name: "shared-tcp-poll", run: sockshare::tcp_poll },
    Case { name: "shared-tcp-accept", run: sockshare::tcp_accept },
    Case { name: "sendfile", run: sendfile::sendfile },
    Case { name: "orphans", run: proc::orphans },
    Case { name: "kill-sleeper", run: proc::kill_sleeper },
    Case { name: "exit-with-children", run: proc::exit_with_children },
    Case { name: "kernel-memory", run: exhaust::kernel_memory },
    Case { name: "huge-timeouts", run: overflow::huge_timeouts },
    Case { name: "kill-pid-range", run: overflow::kill_pid_range },
    Case { name: "bad-buffer-keeps-data", run: overflow::bad_buffer_keeps_data },
    Case { name: "exec-arg-bytes", run: overflow::exec_arg_bytes },
    Case { name: "socket-args", run: overflow::socket_args },
    Case { name: "ns-flags", run: ns::flags },
    Case { name: "ns-views", run: ns::views },
    Case { name: "ns-depth", run: ns::depth },
    Case { name: "ns-limit", run: ns::limit },
    Case { name: "ns-no-procs", run: ns::no_processes },
    Case { name: "nspcopy-errors", run: ns::nspcopy_errors },
    Case { name: "wait-forever", run: ns::wait_forever },
    Case { name: "ns-cycles", run: ns::cycles },
    Case { name: "ns-enter-groups", run: ns::enter_and_groups },
    Case { name: "netns-isolation", run: netns::isolation },
    Case { name: "netns-reach", run: netns::reach },
    Case { name: "netns-publish", run: netns::publish },
    Case { name: "limits-pids", run: limits::pids },
    Case { name: "limits-mem", run: limits::mem },
    Case { name: "limits-names", run: limits::names },
    Case { name: "cpu-share", run: limits::cpu_share },
];

/// The write end of the current case's report pipe (in the case's process), which processes
/// forked inside a case close (see [`fork_child`]).
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

fn main(args: Args) -> i32 {
    let names: Vec<&str> = args.skip(1).collect();
    if names.first() == Some(&"--publish") {
        return netns::publish_command(&names[1..]);
    }
    if names.contains(&"-l") {
        for c in CASES {
            println!("{}", c.name);
        }
        return 0;
    }
    if let Some(bad) = names.iter().find(|n| !CASES.iter().any(|c| c.name == **n)) {
        die!("no case {bad} (usertests -l lists them)");
    }
    let mut failed = Vec::new();
    for case in CASES.iter().filter(|c| names.is_empty() || names.contains(&c.name)) {
        match run_case(case) {
            Ok(note) if note.is_empty() => println!("usertests: {} ok", case.name),
            Ok(note) => println!("usertests: {} ok ({note})", case.name),
            Err(why) => {
                println!("usertests: {} FAILED: {why}", case.name);
                failed.push(case.name);
            }
        }
    }
    if failed.is_empty() {
        println!("ALL TESTS PASSED");
        0
    } else {
        println!("SOME TESTS FAILED: {}", failed.join(" "));
        1
    }
}

/// Runs one case in a child; its report is one line on the pipe: `+note` or `-why`.
fn run_case(case: &Case) -> Outcome {
    let (r, w) = sys::pipe().map_err(|e| format!("pipe: {}", e.message()))?;
    let pid = match sys::fork() {
        Ok(0) => {
            let _ = sys::close(r);
            REPORT_FD.store(w, Ordering::Relaxed);
            let (status, line) = match (case.run)() {
                Ok(note) => (0, format!("+{}\n", note.replace('\n', " "))),
                Err(why) => (1, format!("-{}\n", why.replace('\n', " "))),
            };
            let _ = write_all(w, line.as_bytes());
            sys::exit(status)
        }
        Ok(pid) => pid,
        Err(e) => {
            let _ = sys::close(r);
            let _ = sys::close(w);
            return Err(format!("fork: {}", e.message()));
        }
    };
    let _ = sys::close(w);
    // Up to the newline: a process the case left running may still hold the write end.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = sys::read(r, &mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    let _ = sys::close(r);
    let status = wait_pid(pid)?;
    let text = String::from_utf8_lossy(&line).into_owned();
    match (text.chars().next(), status) {
        (Some('+'), 0) => Ok(text[1..].to_string()),
        (Some('-'), _) => Err(text[1..].to_string()),
        (_, status) => Err(format!("the case's process ended with status {status} and no report")),
    }
}

/// Waits for `pid`; its status. Other children that end meanwhile are reaped and forgotten:
/// to wait for several, use [`wait_all`].
pub fn wait_pid(pid: Pid) -> Result<i32, String> {
    Ok(wait_all(&[pid])?[0])
}

/// Waits for every process of `pids`, in whatever order they end; their statuses, in the
/// order of `pids`.
pub fn wait_all(pids: &[Pid]) -> Result<Vec<i32>, String> {
    let mut statuses: Vec<Option<i32>> = vec![None; pids.len()];
    while statuses.iter().any(Option::is_none) {
        match sys::wait() {
            Ok((got, status)) => {
                if let Some(i) = pids.iter().position(|&p| p == got) {
                    statuses[i] = Some(status);
                }
            }
            Err(e) => return Err(format!("wait for {pids:?}: {}", e.message())),
        }
    }
    Ok(statuses.into_iter().flatten().collect())
}

/// Forks a process that runs `f` and exits with what it returns; inside a case, the report
/// pipe is closed in the child first.
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<Pid, String> {
    start_child(sys::fork(), f).map_err(|e| format!("fork: {}", e.message()))
}

/// What a `fork` or `spawn` returned, made into a child that runs `f` and exits with what it
/// returns (the report pipe closed first, as in [`fork_child`]); the child's pid in the
/// parent, or the call's error.
pub fn start_child(forked: sys::Result<Pid>, f: impl FnOnce() -> i32) -> sys::Result<Pid> {
    match forked {
        Ok(0) => {
            let fd = REPORT_FD.load(Ordering::Relaxed);
            if fd >= 0 {
                let _ = sys::close(fd);
            }
            sys::exit(f())
        }
        other => other,
    }
}

/// Runs `f` in a child and returns its exit status.
pub fn in_child(f: impl FnOnce() -> i32) -> Result<i32, String> {
    let pid = fork_child(f)?;
    wait_pid(pid)
}

/// A raw system-call result as an exit status: 0 for success, the error number otherwise.
pub fn status_of(ret: isize) -> i32 {
    if ret >= 0 {
        0
    } else {
        (-ret).min(255) as i32
    }
}

/// Describes an exit status made by [`status_of`].
pub fn describe_status(status: i32) -> String {
    match Errno::from_ret(-(status as isize)) {
        _ if status == 0 => "success".to_string(),
        Some(e) => format!("{e:?}"),
        None => format!("status {status} (killed?)"),
    }
}

/// A system call's error with what was being done.
pub fn ctx<T>(r: sys::Result<T>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {}", e.message()))
}

/// That `r` failed with `want`.
pub fn expect_err<T>(r: sys::Result<T>, want: Errno, what: &str) -> Result<(), String> {
    match r {
        Err(e) if e == want => Ok(()),
        Err(e) => Err(format!("{what}: {e:?}, expected {want:?}")),
        Ok(_) => Err(format!("{what}: succeeded, expected {want:?}")),
    }
}

/// Fails the case with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err(format!($($arg)*));
        }
    };
}

/// Writes `data` to a new file `path`.
pub fn write_file(path: &str, data: &[u8]) -> Result<(), String> {
    let f = ctx(File::create(path), path)?;
    ctx(f.write_all(data), path)
}

/// The whole file `path`.
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let f = ctx(File::open(path, sys::RDONLY), path)?;
    let mut out = Vec::new();
    ctx(f.read_to_end(&mut out), path)?;
    Ok(out)
}

/// Deterministic bytes: byte `i` of stream `seed`.
pub fn pattern(seed: u64, i: u64) -> u8 {
    let x = (i ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0x2545_f491_4f6c_dd1d);
    (x >> 56) as u8
}
