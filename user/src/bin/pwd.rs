//! pwd: print the working directory.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(_args: Args) -> i32 {
    let mut buf = vec![0u8; 4096];
    match sys::getcwd(&mut buf) {
        Ok(cwd) => {
            println!("{cwd}");
            0
        }
        Err(e) => die!("{}", e.message()),
    }
}
