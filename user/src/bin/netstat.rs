//! netstat: the kernel's sockets, from `/proc/net` (text, one socket a line:
//! `proto local_addr:port remote_addr:port [state]`), as a table:
//!
//! ```text
//! Proto Local Address          Foreign Address        State
//! tcp   0.0.0.0:80             0.0.0.0:*              LISTEN
//! ```
//!
//! A zero port shows as `*`. Lines not in that format are skipped (and counted on standard
//! error). Without `/proc/net` (a kernel without sockets), exit status 1.

#![no_std]
#![no_main]

use ulib::net::{Endpoint, Ipv4};
use ulib::prelude::*;
use ulib::uparse::procnet;

ulib::entry!(main);

const PROC_NET: &str = "/proc/net";

/// `a.b.c.d:port`, `*` for port 0.
fn show(ep: Endpoint) -> String {
    if ep.port == 0 {
        format!("{}:*", Ipv4(ep.addr))
    } else {
        format!("{ep}")
    }
}

fn main(args: Args) -> i32 {
    if args.len() > 1 {
        die!("usage: netstat");
    }
    let mut text = Vec::new();
    let read = File::open(PROC_NET, sys::RDONLY).and_then(|f| {
        if f.stat()?.kind == ulib::abi::syscall::kind::DIR {
            return Err(Errno::EISDIR);
        }
        f.read_to_end(&mut text)
    });
    match read {
        Ok(_) => {}
        Err(Errno::ENOENT) => {
            die!("{PROC_NET}: no such file (this kernel has no network sockets?)")
        }
        Err(e) => die!("{PROC_NET}: {}", e.message()),
    }
    let (sockets, bad) = procnet::parse(&String::from_utf8_lossy(&text));
    println!("{:<5} {:<22} {:<22} State", "Proto", "Local Address", "Foreign Address");
    for s in &sockets {
        let row =
            format!("{:<5} {:<22} {:<22} {}", s.proto, show(s.local), show(s.remote), s.state);
        println!("{}", row.trim_end());
    }
    if bad > 0 {
        eprintln!("netstat: {bad} line(s) of {PROC_NET} not understood");
    }
    0
}
