//! rm FILE...: remove names (an empty directory too: unlink removes those).

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let paths: Vec<&str> = args.skip(1).collect();
    if paths.is_empty() {
        die!("usage: rm FILE...");
    }
    let mut status = 0;
    for path in paths {
        if let Err(e) = sys::unlink(path) {
            eprintln!("rm: {path}: {}", e.message());
            status = 1;
        }
    }
    status
}
