//! kill PID...: end processes.

#![no_std]
#![no_main]

use ulib::prelude::*;

ulib::entry!(main);

fn main(args: Args) -> i32 {
    let pids: Vec<&str> = args.skip(1).collect();
    if pids.is_empty() {
        die!("usage: kill PID...");
    }
    let mut status = 0;
    for p in pids {
        let result = p.parse::<Pid>().map_err(|_| Errno::EINVAL).and_then(sys::kill);
        if let Err(e) = result {
            eprintln!("kill: {p}: {}", e.message());
            status = 1;
        }
    }
    status
}
