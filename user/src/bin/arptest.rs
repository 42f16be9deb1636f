//! arptest [IP]: ask the local network who has IP (default 10.0.2.2, QEMU's gateway) with an
//! ARP request, and print `arptest: IP is at xx:xx:xx:xx:xx:xx`. Exit status 1 on failure
//! (no answer within a second is `timed out`).

#![no_std]
#![no_main]

use ulib::net::{self, Ipv4, Mac};
use ulib::prelude::*;

ulib::entry!(main);

const DEFAULT: [u8; 4] = [10, 0, 2, 2];

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let ip = match argv.as_slice() {
        [_] => DEFAULT,
        [_, ip] => match net::inet_aton(ip) {
            Some(ip) => ip,
            None => die!("{ip}: not an IPv4 address (a.b.c.d)"),
        },
        _ => die!("usage: arptest [IP]"),
    };
    match net::arping(ip) {
        Ok(mac) => {
            println!("arptest: {} is at {}", Ipv4(ip), Mac(mac));
            0
        }
        Err(e) => die!("{}: {}", Ipv4(ip), e.message()),
    }
}
