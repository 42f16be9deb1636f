//! nspcopy [-r] FILE NSID [DEST]: copy FILE, as this process sees it, into the root of the
//! container (namespace) NSID, at DEST there (default: `/` and FILE's last name). Only an
//! ancestor may copy into a namespace. `-r` copies a directory and everything below it. The
//! copy is whole or not at all: a copy that runs out of space leaves nothing behind.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let (recursive, rest) = match argv.get(1) {
        Some(&"-r") => (true, &argv[2..]),
        _ => (false, &argv[1..]),
    };
    let (file, nsid, dest) = match rest {
        [file, nsid] => (*file, *nsid, None),
        [file, nsid, dest] => (*file, *nsid, Some(*dest)),
        _ => die!("usage: nspcopy [-r] FILE NSID [DEST]"),
    };
    let Ok(id) = nsid.parse::<u32>() else { die!("{nsid}: not a namespace id") };
    match sys::nspcopy(file, id, dest, recursive) {
        Ok(()) => 0,
        Err(e) => die!("{file} -> ns {id}: {}", e.message()),
    }
}
