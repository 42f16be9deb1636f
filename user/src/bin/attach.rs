//! attach ID|NAME: bring a container's console to the front (`sys::attach`), starting a shell
//! on it if none runs there; `attach 1` goes back to the root's. The keys `^P ^Q` typed at the
//! console go back to the console the user came from. While a console is behind, what its
//! programs print is kept and shown when it comes to the front again.
//!
//! The container is named by its id or by its name (`spawn --name`), looked up in `/proc/ns`
//! (`ulib::nslist::resolve`).
//!
//! From the root any container may be attached to; from a container only those below it and
//! the root (`attach: 3: operation not permitted` for a sibling).

#![no_std]
#![no_main]

use ulib::nslist;
use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let [_, target] = argv.as_slice() else { die!("usage: attach ID|NAME") };
    let id = nslist::resolve(target).unwrap_or_else(|e| die!("{e}"));
    match sys::attach(id) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("attach: {target}: {}", e.message());
            1
        }
    }
}
