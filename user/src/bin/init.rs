//! init: the first process. Opens the console as descriptors 0, 1 and 2 (making `/console`
//! first if it is missing), starts `sh` on it, and from then on waits: for orphans, which the
//! kernel gives to init, and for the shell, which it starts again whenever it exits.

#![no_std]
#![no_main]

use ulib::abi::syscall::dev;
use ulib::prelude::*;

ulib::entry!(main);

const CONSOLE: &str = "/console";
/// A shell that dies sooner than this after starting is restarted only after a pause, so that a
/// broken `/bin/sh` does not make init spin.
const QUICK_EXIT_MS: u64 = 500;
const PAUSE_MS: u64 = 1000;

fn main(_args: Args) -> i32 {
    open_console();
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
    match sys::fork()? {
        0 => {
            let e = sys::exec("sh", &["sh"]);
            eprintln!("init: exec sh: {}", e.message());
            sys::exit(127)
        }
        pid => Ok(pid),
    }
}
