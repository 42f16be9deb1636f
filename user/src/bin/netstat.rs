//! netstat [-a]: the sockets of this process's network namespace, from `/proc/net` (text, one
//! socket a line: `proto local_addr:port remote_addr:port [state]`), as a table:
//!
//! ```text
//! Proto Local Address          Foreign Address        State
//! tcp   0.0.0.0:80             0.0.0.0:*              LISTEN
//! ```
//!
//! `-a`: the sockets of every network namespace this process can see (its own and its
//! containers'), from `/proc/netall` (the same lines with the namespace's id first), with an
//! `NS` column first.
//!
//! A zero port shows as `*`. Lines not in that format are skipped (and counted on standard
//! error). Without the file (a kernel without sockets, or without network namespaces for
//! `-a`), exit status 1.

#![no_std]
#![no_main]

use ulib::net::{Endpoint, Ipv4};
use ulib::prelude::*;
use ulib::uparse::procnet::{self, Socket};

ulib::entry!(main);

const PROC_NET: &str = "/proc/net";
const PROC_NETALL: &str = "/proc/netall";

/// `a.b.c.d:port`, `*` for port 0.
fn show(ep: Endpoint) -> String {
    if ep.port == 0 {
        format!("{}:*", Ipv4(ep.addr))
    } else {
        format!("{ep}")
    }
}

/// The text of `path`; exits with a message when it cannot be read (`missing`: what its
/// absence suggests).
fn read_proc(path: &str, missing: &str) -> String {
    let mut text = Vec::new();
    let read = File::open(path, sys::RDONLY).and_then(|f| {
        if f.stat()?.kind == ulib::abi::syscall::kind::DIR {
            return Err(Errno::EISDIR);
        }
        f.read_to_end(&mut text)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&text).into_owned(),
        Err(Errno::ENOENT) => die!("{path}: no such file ({missing})"),
        Err(e) => die!("{path}: {}", e.message()),
    }
}

/// One row without the namespace column.
fn row(s: &Socket) -> String {
    format!("{:<5} {:<22} {:<22} {}", s.proto, show(s.local), show(s.remote), s.state)
}

fn main(args: Args) -> i32 {
    let all = match args.to_vec()[1..] {
        [] => false,
        ["-a"] => true,
        _ => die!("usage: netstat [-a]"),
    };
    let header = format!("{:<5} {:<22} {:<22} State", "Proto", "Local Address", "Foreign Address");
    let (path, bad) = if all {
        let text = read_proc(PROC_NETALL, "this kernel has no network namespaces?");
        let (sockets, bad) = procnet::parse_all(&text);
        println!("{:>3} {header}", "NS");
        for s in &sockets {
            println!("{}", format!("{:>3} {}", s.ns, row(&s.socket)).trim_end());
        }
        (PROC_NETALL, bad)
    } else {
        let text = read_proc(PROC_NET, "this kernel has no network sockets?");
        let (sockets, bad) = procnet::parse(&text);
        println!("{header}");
        for s in &sockets {
            println!("{}", row(s).trim_end());
        }
        (PROC_NET, bad)
    };
    if bad > 0 {
        eprintln!("netstat: {bad} line(s) of {path} not understood");
    }
    0
}
