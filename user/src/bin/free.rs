//! free: physical memory and inodes, from `/proc/meminfo`.
//!
//! ```text
//!          total KiB    used KiB    free KiB
//! memory      524288       20480      503808
//! inodes                                4090
//! ```

#![no_std]
#![no_main]

use ulib::abi::syscall::MEMINFO_PATH;
use ulib::prelude::*;
use ulib::uparse::meminfo::{self, FRAME_SIZE};

ulib::entry!(main);

fn kib(frames: Option<u64>) -> String {
    frames.map_or_else(|| "?".to_string(), |f| (f * FRAME_SIZE / 1024).to_string())
}

fn main(_args: Args) -> i32 {
    let mut text = Vec::new();
    let read = File::open(MEMINFO_PATH, sys::RDONLY).and_then(|f| f.read_to_end(&mut text));
    if let Err(e) = read {
        die!("{MEMINFO_PATH}: {}", e.message());
    }
    let info = meminfo::parse(&String::from_utf8_lossy(&text));
    println!("{:<8} {:>11} {:>11} {:>11}", "", "total KiB", "used KiB", "free KiB");
    println!(
        "{:<8} {:>11} {:>11} {:>11}",
        "memory",
        kib(info.frames_total),
        kib(info.frames_used()),
        kib(info.frames_free)
    );
    let inodes = info.inodes_free.map_or_else(|| "?".to_string(), |n| n.to_string());
    println!("{:<8} {:>11} {:>11} {:>11}", "inodes", "", "", inodes);
    0
}
