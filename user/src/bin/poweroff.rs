//! poweroff: turn the machine off.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(_args: Args) -> i32 {
    match sys::poweroff() {
        Ok(()) => die!("the machine is still on"),
        Err(e) => die!("{}", e.message()),
    }
}
