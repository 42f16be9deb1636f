//! nsinit [--status-fd FD] [PROGRAM ARGS...]: pid 1 of a container (`spawn` runs it). Starts
//! PROGRAM, if given, and reaps every process handed to it for ever (orphans of its
//! namespace go to it, as they go to init in the root). With `--status-fd`, PROGRAM's exit
//! status is written there (four bytes, little endian) when it exits, and the descriptor is
//! closed: that is how `spawn` in the foreground learns that its program ended. When nsinit
//! itself ends (killed), the kernel ends everything in the container.

#![no_std]
#![no_main]

use ulib::abi::syscall::wait::FOREVER;
use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut rest = &argv[1..];
    let mut status_fd = None;
    if let ["--status-fd", fd, tail @ ..] = rest {
        match fd.parse::<Fd>() {
            Ok(fd) => status_fd = Some(fd),
            Err(_) => die!("nsinit: --status-fd {fd}: not a descriptor"),
        }
        rest = tail;
    }
    let program = match rest.first() {
        Some(prog) => match sys::fork() {
            Ok(0) => {
                if let Some(fd) = status_fd {
                    let _ = sys::close(fd);
                }
                let e = sys::exec(prog, rest);
                eprintln!("nsinit: {prog}: {}", e.message());
                sys::exit(127)
            }
            Ok(pid) => Some(pid),
            Err(e) => {
                eprintln!("nsinit: fork: {}", e.message());
                None
            }
        },
        None => None,
    };
    if program.is_none() {
        report(&mut status_fd, 127);
    }
    loop {
        match sys::wait_flags(FOREVER) {
            Ok((pid, status)) if Some(pid) == program => report(&mut status_fd, status),
            Ok(_) => {} // an orphan
            Err(e) => {
                eprintln!("nsinit: wait: {}", e.message());
                let _ = sys::sleep(1000); // not expected; do not spin
            }
        }
    }
}

/// Tell whoever waits on the status descriptor (once), and close it.
fn report(fd: &mut Option<Fd>, status: i32) {
    if let Some(fd) = fd.take() {
        let _ = ulib::io::write_all(fd, &status.to_le_bytes());
        let _ = sys::close(fd);
    }
}
