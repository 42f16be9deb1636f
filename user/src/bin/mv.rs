//! mv OLD NEW, mv FILE... DIR: rename OLD to NEW, or move FILEs into the directory DIR (keeping
//! their last names).

#![no_std]
#![no_main]

use ulib::abi::syscall::kind;
use ulib::dir::join;
use ulib::prelude::*;

ulib::entry!(main);

fn is_dir(path: &str) -> bool {
    File::open(path, sys::RDONLY).and_then(|f| f.stat()).is_ok_and(|st| st.kind == kind::DIR)
}

fn last_name(path: &str) -> &str {
    path.trim_end_matches('/').rsplit('/').next().unwrap_or(path)
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    if argv.len() < 3 {
        die!("usage: mv OLD NEW | mv FILE... DIR");
    }
    let (sources, target) = argv[1..].split_at(argv.len() - 2);
    let target = target[0];
    let into_dir = is_dir(target);
    if sources.len() > 1 && !into_dir {
        die!("{target}: not a directory");
    }
    let mut status = 0;
    for src in sources {
        let dest = if into_dir { join(target, last_name(src)) } else { target.to_string() };
        if let Err(e) = sys::rename(src, &dest) {
            eprintln!("mv: {src} -> {dest}: {}", e.message());
            status = 1;
        }
    }
    status
}
