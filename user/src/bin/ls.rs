//! ls [PATH...]: list directories (default: the working directory), one entry per line:
//! `NAME KIND INODE SIZE`, KIND being 1 for a directory, 2 a file, 3 a device (as in xv6).
//! A PATH that is not a directory is listed as itself.

#![no_std]
#![no_main]

use ulib::abi::syscall::kind;
use ulib::dir::{join, ReadDir};
use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let mut paths: Vec<&str> = args.skip(1).collect();
    if paths.is_empty() {
        paths.push(".");
    }
    let several = paths.len() > 1;
    let mut status = 0;
    for path in paths {
        if let Err(e) = list(path, several) {
            eprintln!("ls: {path}: {}", e.message());
            status = 1;
        }
    }
    status
}

fn show(name: &str, st: &Stat) {
    println!("{name:<14} {} {} {}", st.kind, st.ino, st.size);
}

fn list(path: &str, header: bool) -> sys::Result<()> {
    let file = File::open(path, sys::RDONLY)?;
    let st = file.stat()?;
    if st.kind != kind::DIR {
        show(path, &st);
        return Ok(());
    }
    if header {
        println!("{path}:");
    }
    for entry in ReadDir::new(file) {
        let entry = entry?;
        let name = entry.name();
        match File::open(&join(path, name), sys::RDONLY).and_then(|f| f.stat()) {
            Ok(st) => show(name, &st),
            Err(e) => eprintln!("ls: {}: {}", join(path, name), e.message()),
        }
    }
    Ok(())
}
