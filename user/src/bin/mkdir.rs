//! mkdir DIR...: make directories.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let dirs: Vec<&str> = args.skip(1).collect();
    if dirs.is_empty() {
        die!("usage: mkdir DIR...");
    }
    let mut status = 0;
    for dir in dirs {
        if let Err(e) = sys::mkdir(dir) {
            eprintln!("mkdir: {dir}: {}", e.message());
            status = 1;
        }
    }
    status
}
