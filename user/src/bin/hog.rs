//! hog fork | hog mem: misbehave, to show a container's limits holding (`spawn --pids N hog
//! fork`, `spawn --mem SIZE hog mem`) while everything outside keeps working.
//!
//! - `hog fork`: a fork bomb. Every process forks for ever; a refused fork is retried at once,
//!   so the bomb also keeps the CPU busy. The first process prints `hog: fork: EAGAIN after N`
//!   the first time one of its forks is refused (N: the processes it made itself).
//! - `hog mem`: grows its heap by 64 KiB until refused, prints `hog: sbrk: ENOMEM after N
//!   KiB`, then tries again every 100 ms for ever (memory freed elsewhere in the container is
//!   taken at once).
//!
//! Both run until killed.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

const STEP: isize = 64 * 1024;

fn main(mut args: Args) -> i32 {
    match args.nth(1) {
        Some("fork") => fork_bomb(),
        Some("mem") => memory_hog(),
        _ => die!("usage: hog fork|mem"),
    }
}

fn fork_bomb() -> ! {
    let first = sys::getpid();
    let mut made = 0u64;
    let mut said = false;
    loop {
        match sys::fork() {
            Ok(0) => {}
            Ok(_) => made += 1,
            Err(e) => {
                if sys::getpid() == first && !said {
                    println!("hog: fork: {e:?} after {made}");
                    said = true;
                }
            }
        }
    }
}

fn memory_hog() -> ! {
    // Let the allocator take what it needs for the message first: only `sbrk` moves the
    // break from here on.
    drop(Vec::<u8>::with_capacity(16 * 1024));
    let mut grown = 0u64;
    let mut said = false;
    loop {
        // SAFETY: growing the break maps new pages and unmaps nothing.
        match unsafe { sys::sbrk(STEP) } {
            Ok(_) => grown += STEP as u64,
            Err(e) => {
                if !said {
                    println!("hog: sbrk: {e:?} after {} KiB", grown / 1024);
                    said = true;
                }
                let _ = sys::sleep(100);
            }
        }
    }
}
