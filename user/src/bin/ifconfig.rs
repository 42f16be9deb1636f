//! ifconfig: the network interfaces of this process's network namespace and their addresses,
//! from `/proc/ifaces` (text, one interface a line: `name mac addr/prefix`), one a line:
//!
//! ```text
//! eth0  02:00:00:00:01:02  192.168.1.2/24
//! lo    00:00:00:00:00:00  127.0.0.1/8
//! ```
//!
//! Lines not in that format are skipped (and counted on standard error). Without
//! `/proc/ifaces` (a kernel without network namespaces), exit status 1.

#![no_std]
#![no_main]

use ulib::net::{Ipv4, Mac};
use ulib::prelude::*;
use ulib::uparse::ifaces;

ulib::entry!(main);

const PROC_IFACES: &str = "/proc/ifaces";

fn main(args: Args) -> i32 {
    if args.len() > 1 {
        die!("usage: ifconfig");
    }
    let mut text = Vec::new();
    match File::open(PROC_IFACES, sys::RDONLY).and_then(|f| f.read_to_end(&mut text)) {
        Ok(_) => {}
        Err(Errno::ENOENT) => {
            die!("{PROC_IFACES}: no such file (this kernel has no network namespaces?)")
        }
        Err(e) => die!("{PROC_IFACES}: {}", e.message()),
    }
    let (list, bad) = ifaces::parse(&String::from_utf8_lossy(&text));
    let width = list.iter().map(|i| i.name.len()).max().unwrap_or(0).max(4);
    for i in &list {
        let addrs: Vec<String> =
            i.addrs.iter().map(|(a, len)| format!("{}/{len}", Ipv4(*a))).collect();
        println!("{:<width$}  {}  {}", i.name, Mac(i.mac), addrs.join("  "));
    }
    if bad > 0 {
        eprintln!("ifconfig: {bad} line(s) of {PROC_IFACES} not understood");
    }
    0
}
