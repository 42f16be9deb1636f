//! bench [N]: time three operations with the cycle counter and print the cycles each takes:
//!
//! ```text
//! bench: getpid <cycles>          a null system call, N times (default 100000)
//! bench: fork-exec-wait <cycles>  fork, exec of a program that exits at once, wait (N/1000)
//! bench: pipe-pingpong <cycles>   a byte to a child and back through two pipes (N/20)
//! ```
//!
//! Under QEMU's TCG the cycle counter runs at the host's rate, so the figures compare runs on
//! one machine rather than machines.

#![no_std]
#![no_main]

use ulib::prelude::*;
use ulib::time::rdtsc;

ulib::entry!(main);

/// The argument with which bench execs itself: exit at once.
const EXIT_AT_ONCE: &str = "--exit";
const DEFAULT_N: u64 = 100_000;

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let n = match argv.get(1).copied() {
        Some(EXIT_AT_ONCE) => return 0,
        Some(arg) => match arg.parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => die!("usage: bench [ITERATIONS]"),
        },
        None => DEFAULT_N,
    };
    report("getpid", n, getpid);
    report("fork-exec-wait", (n / 1000).max(1), fork_exec_wait);
    report("pipe-pingpong", (n / 20).max(1), pipe_pingpong);
    0
}

fn report(name: &str, n: u64, f: fn(u64) -> sys::Result<u64>) {
    match f(n) {
        Ok(cycles) => println!("bench: {name} {}", cycles / n),
        Err(e) => eprintln!("bench: {name} failed: {}", e.message()),
    }
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
