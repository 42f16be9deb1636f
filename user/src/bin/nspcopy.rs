//! nspcopy [-r] FILE NSID|NAME [DEST]: copy FILE, as this process sees it, into the root of
//! the container (namespace) NSID, or the one named NAME (looked up in `/proc/ns`), at DEST
//! there (default: `/` and FILE's last name). Only an ancestor may copy into a namespace. `-r`
//! copies a directory and everything below it. The copy is whole or not at all: a copy that
//! runs out of space leaves nothing behind.

#![no_std]
#![no_main]

use ulib::nslist;
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
        _ => die!("usage: nspcopy [-r] FILE NSID|NAME [DEST]"),
    };
    let id = nslist::resolve(nsid).unwrap_or_else(|e| die!("{e}"));
    match sys::nspcopy(file, id, dest, recursive) {
        Ok(()) => 0,
        Err(e) => die!("{file} -> {}: {}", nslist::describe(nsid, id), e.message()),
    }
}
