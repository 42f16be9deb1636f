//! init: the first process. Opens the console as descriptors 0, 1 and 2 (making `/console`
//! first if it is missing); runs the boot script `/etc/rc` with `sh`, if there is one, and
//! waits for it to end; then starts `sh` on the console, and from then on waits: for orphans,
//! which the kernel gives to init, and for the shell, which it starts again whenever it exits.
//!
//! The boot script prints on the console and reads from it; whatever it does (a command that
//! fails, a parse error, `exit 3`, a crash), the boot goes on to the shell: init only reports
//! a status other than 0. A script that never ends holds the boot, as on Unix: ^C ends the
//! command it is running.

#![no_std]
#![no_main]

use ulib::abi::syscall::dev;
use ulib::prelude::*;

ulib::entry!(main);

const CONSOLE: &str = "/console";
/// The boot script.
const RC: &str = "/etc/rc";
/// A shell that dies sooner than this after starting is restarted only after a pause, so that a
/// broken `/bin/sh` does not make init spin.
const QUICK_EXIT_MS: u64 = 500;
const PAUSE_MS: u64 = 1000;

fn main(_args: Args) -> i32 {
    open_console();
    run_rc();
    loop {
        println!("init: starting sh");
        let started = sys::uptime();
        let sh = match start_shell() {
            Ok(pid) => pid,
            Err(e) => {
                eprintln!("init: fork: {}", e.message());
                let _ = sys::sleep(PAUSE_MS);
                continue;
            }
        };
        // Reap everything until the shell itself exits.
        let status = loop {
            match sys::wait() {
                Ok((pid, status)) if pid == sh => break status,
                Ok(_) => {} // an orphan
                Err(e) => {
                    eprintln!("init: wait: {}", e.message());
                    break -1;
                }
            }
        };
        if sys::uptime().saturating_sub(started) < QUICK_EXIT_MS {
            let _ = sys::sleep(PAUSE_MS);
        }
        println!("init: sh exited with status {status}");
    }
}

fn open_console() {
    let fd = match sys::open(CONSOLE, sys::RDWR) {
        Ok(fd) => fd,
        Err(_) => {
            // Nothing to print to yet: on failure, exit (the kernel reports init's death).
            if sys::mknod(CONSOLE, dev::CONSOLE, 0).is_err() {
                sys::exit(1);
            }
            match sys::open(CONSOLE, sys::RDWR) {
                Ok(fd) => fd,
                Err(_) => sys::exit(1),
            }
        }
    };
    // The first open of a process gets 0; make 1 and 2 the same file.
    if fd != 0 {
        let _ = sys::close(0);
        let _ = sys::dup(fd);
        let _ = sys::close(fd);
    }
    let _ = sys::dup(0);
    let _ = sys::dup(0);
}

fn start_shell() -> sys::Result<Pid> {
    start(&["sh"])
}

/// Forks a child that execs `sh` with `argv`.
fn start(argv: &[&str]) -> sys::Result<Pid> {
    match sys::fork()? {
        0 => {
            let e = sys::exec("sh", argv);
            eprintln!("init: exec sh: {}", e.message());
            sys::exit(127)
        }
        pid => Ok(pid),
    }
}

/// Runs `sh /etc/rc` if the file is there and waits for it, reaping orphans meanwhile.
fn run_rc() {
    match File::open(RC, sys::RDONLY) {
        Ok(_) => {}
        Err(Errno::ENOENT) => return,
        Err(e) => {
            eprintln!("init: {RC}: {}", e.message());
            return;
        }
    }
    println!("init: running {RC}");
    let rc = match start(&["sh", RC]) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("init: fork: {}", e.message());
            return;
        }
    };
    loop {
        match sys::wait() {
            Ok((pid, 0)) if pid == rc => return,
            Ok((pid, status)) if pid == rc => {
                println!("init: {RC} exited with status {status}");
                return;
            }
            Ok(_) => {} // an orphan
            Err(e) => {
                eprintln!("init: wait: {}", e.message());
                return;
            }
        }
    }
}
