//! echo [-n] [word...]: print the words separated by spaces, then a newline (none with -n).

#![no_std]
#![no_main]

use ulib::io::{write_all, STDOUT};
use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let mut words = args.skip(1).peekable();
    let newline = words.next_if_eq(&"-n").is_none();
    let mut out = String::new();
    for (i, w) in words.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
    if newline {
        out.push('\n');
    }
    match write_all(STDOUT, out.as_bytes()) {
        Ok(()) => 0,
        Err(e) => die!("{}", e.message()),
    }
}
