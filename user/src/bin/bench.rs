//! bench [N]: time these operations with the cycle counter and print the cycles each takes:
//!
//! ```text
//! bench: getpid <cycles>          a null system call, N times (default 100000)
//! bench: fork-exec-wait <cycles>  fork, exec of a program that exits at once, wait (N/1000)
//! bench: pipe-pingpong <cycles>   a byte to a child and back through two pipes (N/20)
//! bench: spawn-exit-wait <cycles> <kinds>
//!                                 a container: spawn into new namespaces of every kind the
//!                                 kernel isolates, the child exits at once, wait (N/1000)
//! bench: spawn-pid-exit-wait <cycles> pid
//!                                 the same with a new pid namespace only (no root directory)
//! ```
//!
//! A failed operation prints `bench: <op> failed: <error>` instead. The two spawn rows include
//! the namespaces' teardown: after the last wait the clock runs until `/proc/ns` and `/ns` are
//! back to what they held before (the kernel retires a namespace in a task after the reap,
//! and that task removes its root from the disk).
//!
//! `bench --spawn-phases [N]` splits a spawn into phases instead, N times for each spawn row
//! (default 20), letting each container retire before the next starts. It prints the cycles
//! in `spawn` (the parent's call: the fork and, with `fs`, making the root), in `wait` (the
//! child runs, exits, is reaped) and until `/proc/ns` and `/ns` are back (the retirement,
//! measured with the granularity of the sleep it polls with).
//!
//! Under QEMU's TCG the cycle counter runs at the host's rate, so the figures compare runs on
//! one machine rather than machines.

#![no_std]
#![no_main]

use ulib::dir::read_dir;
use ulib::io::read_full;
use ulib::prelude::*;
use ulib::sys::ns;
use ulib::time::rdtsc;

ulib::entry!(main);

/// The argument with which bench execs itself: exit at once.
const EXIT_AT_ONCE: &str = "--exit";
const DEFAULT_N: u64 = 100_000;
/// What `spawn-exit-wait` isolates: every kind this kernel supports (the network kind joins
/// when namespaces get their own network stacks: add `ns::NEWNET` here then).
const CONTAINER_KINDS: usize = ns::NEWPID | ns::NEWFS;
const SPAWN_ROWS: [(&str, usize); 2] =
    [("spawn-exit-wait", CONTAINER_KINDS), ("spawn-pid-exit-wait", ns::NEWPID)];

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let n = match argv.get(1).copied() {
        Some(EXIT_AT_ONCE) => return 0,
        Some("--spawn-phases") => {
            let n = argv.get(2).map_or(Ok(20), |a| a.parse::<u64>());
            match n {
                Ok(n) if n > 0 => return spawn_phases(n),
                _ => die!("usage: bench --spawn-phases [ITERATIONS]"),
            }
        }
        Some(arg) => match arg.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => die!("usage: bench [ITERATIONS] | bench --spawn-phases [ITERATIONS]"),
        },
        None => DEFAULT_N,
    };
    report("getpid", n, getpid);
    report("fork-exec-wait", (n / 1000).max(1), fork_exec_wait);
    report("pipe-pingpong", (n / 20).max(1), pipe_pingpong);
    let m = (n / 1000).max(1);
    for (name, kinds) in SPAWN_ROWS {
        match spawn_exit_wait(m, kinds) {
            Ok(cycles) => println!("bench: {name} {} {}", cycles / m, kind_names(kinds)),
            Err(e) => {
                println!("bench: {name} failed: spawn({}): {}", kind_names(kinds), e.message())
            }
        }
    }
    0
}

fn report(name: &str, n: u64, f: fn(u64) -> sys::Result<u64>) {
    match f(n) {
        Ok(cycles) => println!("bench: {name} {}", cycles / n),
        Err(e) => println!("bench: {name} failed: {}", e.message()),
    }
}

/// `pid,fs`: the kinds in `spawn` flags.
fn kind_names(flags: usize) -> String {
    let names = [(ns::NEWPID, "pid"), (ns::NEWFS, "fs"), (ns::NEWNET, "net")];
    let v: Vec<&str> = names.iter().filter(|(f, _)| flags & f != 0).map(|(_, n)| *n).collect();
    v.join(",")
}

fn getpid(n: u64) -> sys::Result<u64> {
    let start = rdtsc();
    for _ in 0..n {
        core::hint::black_box(sys::getpid());
    }
    Ok(rdtsc() - start)
}

fn fork_exec_wait(n: u64) -> sys::Result<u64> {
    let start = rdtsc();
    for _ in 0..n {
        match sys::fork()? {
            0 => {
                sys::exec("bench", &["bench", EXIT_AT_ONCE]);
                sys::exit(127)
            }
            pid => loop {
                let (got, status) = sys::wait()?;
                if got == pid {
                    if status != 0 {
                        return Err(Errno::ENOEXEC);
                    }
                    break;
                }
            },
        }
    }
    Ok(rdtsc() - start)
}

fn pipe_pingpong(n: u64) -> sys::Result<u64> {
    let (to_child_r, to_child_w) = sys::pipe()?;
    let (to_parent_r, to_parent_w) = sys::pipe()?;
    let pid = sys::fork()?;
    if pid == 0 {
        let _ = sys::close(to_child_w);
        let _ = sys::close(to_parent_r);
        let mut b = [0u8; 1];
        while let Ok(1) = sys::read(to_child_r, &mut b) {
            if sys::write(to_parent_w, &b) != Ok(1) {
                break;
            }
        }
        sys::exit(0);
    }
    let _ = sys::close(to_child_r);
    let _ = sys::close(to_parent_w);
    let mut b = [7u8; 1];
    let start = rdtsc();
    let mut result = Ok(());
    for _ in 0..n {
        match sys::write(to_child_w, &b).and_then(|_| sys::read(to_parent_r, &mut b)) {
            Ok(1) => {}
            Ok(_) => {
                result = Err(Errno::EPIPE);
                break;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let cycles = rdtsc() - start;
    let _ = sys::close(to_child_w);
    let _ = sys::close(to_parent_r);
    while let Ok((got, _)) = sys::wait() {
        if got == pid {
            break;
        }
    }
    result.map(|()| cycles)
}

/// `n` times: spawn a child into new namespaces `kinds`; it exits at once; wait for it. Then
/// wait until those namespaces have retired (their roots removed from the disk), so that the
/// figure is the whole cost of a container that does nothing.
fn spawn_exit_wait(n: u64, kinds: usize) -> sys::Result<u64> {
    let before = live_namespaces()?;
    let start = rdtsc();
    for _ in 0..n {
        let pid = match sys::spawn(kinds)? {
            0 => sys::exit(0),
            pid => pid,
        };
        loop {
            let (got, status) = sys::wait()?;
            if got == pid {
                if status != 0 {
                    return Err(Errno::EINTR); // the child did not exit by itself
                }
                break;
            }
        }
    }
    retired(before)?;
    Ok(rdtsc() - start)
}

/// Wait until at most `before` namespaces are left. Retirement is a kernel task that runs
/// beside this process; a short sleep gives it the CPU instead of spinning here. Bounded:
/// namespaces that never go are an error.
fn retired(before: usize) -> sys::Result<()> {
    for _ in 0..10_000 {
        if live_namespaces()? <= before {
            return Ok(());
        }
        sys::sleep(1)?;
    }
    Err(Errno::EBUSY)
}

/// `bench --spawn-phases`: where a spawn's time goes (see the module docs).
fn spawn_phases(n: u64) -> i32 {
    for (name, kinds) in SPAWN_ROWS {
        let mut phases = [0u64; 3];
        let r: sys::Result<()> = (|| {
            let before = live_namespaces()?;
            for _ in 0..n {
                let t0 = rdtsc();
                let pid = match sys::spawn(kinds)? {
                    0 => sys::exit(0),
                    pid => pid,
                };
                let t1 = rdtsc();
                while sys::wait()?.0 != pid {}
                let t2 = rdtsc();
                retired(before)?;
                let t3 = rdtsc();
                for (sum, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2]) {
                    *sum += d;
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => println!(
                "phases: {name} ({}): spawn {} wait {} retire {}",
                kind_names(kinds),
                phases[0] / n,
                phases[1] / n,
                phases[2] / n
            ),
            Err(e) => println!("phases: {name} failed: {}", e.message()),
        }
    }
    0
}

/// What is left of namespaces: the ones this process can see (lines of `/proc/ns`; a
/// namespace leaves it when it starts to retire) and the roots in `/ns` (each goes only when
/// its retirement has removed it from the disk).
fn live_namespaces() -> sys::Result<usize> {
    let f = File::open(ns::PROC_PATH, sys::RDONLY)?;
    let mut buf = [0u8; 4096];
    let n = read_full(f.fd(), &mut buf)?;
    let listed = buf[..n].iter().filter(|&&b| b == b'\n').count();
    let roots = match read_dir(ns::ROOTS_DIR) {
        Ok(dir) => {
            dir.filter(|e| e.as_ref().map_or(true, |e| e.name() != "." && e.name() != "..")).count()
        }
        Err(Errno::ENOENT) => 0,
        Err(e) => return Err(e),
    };
    Ok(listed + roots)
}
