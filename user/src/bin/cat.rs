//! cat [FILE...]: copy each FILE (standard input when none, or for `-`) to standard output.

#![no_std]
#![no_main]

use ulib::io::{write_all, STDIN, STDOUT};
use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let files: Vec<&str> = args.skip(1).collect();
    if files.is_empty() {
        return copy(STDIN, "standard input");
    }
    let mut status = 0;
    for path in files {
        if path == "-" {
            status |= copy(STDIN, "standard input");
            continue;
        }
        match File::open(path, sys::RDONLY) {
            Ok(f) => status |= copy(f.fd(), path),
            Err(e) => {
                eprintln!("cat: {path}: {}", e.message());
                status = 1;
            }
        }
    }
    status
}

fn copy(fd: Fd, name: &str) -> i32 {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match sys::read(fd, &mut buf) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(e) => {
                eprintln!("cat: {name}: {}", e.message());
                return 1;
            }
        };
        if let Err(e) = write_all(STDOUT, &buf[..n]) {
            eprintln!("cat: write: {}", e.message());
            return 1;
        }
    }
}
