//! spin: burn CPU in user mode forever (until killed). With one CPU, the shell answering
//! while `spin &` runs shows that user mode is preempted.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(_args: Args) -> i32 {
    let mut x: u64 = 0;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}
