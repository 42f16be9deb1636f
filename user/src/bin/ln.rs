//! ln OLD NEW: give the file OLD a second name NEW (a hard link).

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let [_, old, new] = argv.as_slice() else { die!("usage: ln OLD NEW") };
    match sys::link(old, new) {
        Ok(()) => 0,
        Err(e) => die!("{old} -> {new}: {}", e.message()),
    }
}
