//! ps: list the processes this one can see, from `/proc` (one file per pid, each an
//! `abi::syscall::ProcRecord`): `PID NS NSPID PPID STATE NAME`, by pid. PID and PPID are as
//! this process sees them (in a container: its own numbers, and PPID 0 for its init); NS is
//! the process's namespace and NSPID its pid there.
//!
//! After the table, one line for each namespace this process can see that has published
//! ports (from `/proc/ns`): `ns 2 192.168.1.2 ports 8081:80/tcp,8082:53/udp` (in the root's
//! view, host port and the container's; in a container's view of itself, its own ports only:
//! `80/tcp`). Nothing when no namespace has any (or the kernel lists none).

#![no_std]
#![no_main]

use ulib::abi::syscall::{ns, state, ProcRecord};
use ulib::dir::read_dir;
use ulib::io::read_full;
use ulib::net::Ipv4;
use ulib::prelude::*;
use ulib::uparse::procns;

ulib::entry!(main);

fn state_name(s: u32) -> &'static str {
    match s {
        state::RUNNABLE => "runnable",
        state::RUNNING => "running",
        state::SLEEPING => "sleeping",
        state::ZOMBIE => "zombie",
        _ => "?",
    }
}

fn record(pid: &str) -> sys::Result<ProcRecord> {
    let f = File::open(&format!("/proc/{pid}"), sys::RDONLY)?;
    let mut buf = [0u8; ProcRecord::SIZE];
    let n = read_full(f.fd(), &mut buf)?;
    ProcRecord::decode(&buf[..n]).ok_or(Errno::EIO)
}

fn main(_args: Args) -> i32 {
    let dir = match read_dir("/proc") {
        Ok(d) => d,
        Err(e) => die!("/proc: {}", e.message()),
    };
    let mut records = Vec::new();
    for entry in dir {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => die!("/proc: {}", e.message()),
        };
        let name = entry.name();
        if name.parse::<u32>().is_err() {
            continue; // meminfo, net, ns, . and ..
        }
        // A process that exited since the directory was read is simply not shown.
        if let Ok(r) = record(name) {
            records.push(r);
        }
    }
    records.sort_by_key(|r| r.pid);
    println!("{:>5} {:>3} {:>5} {:>5} {:<9} NAME", "PID", "NS", "NSPID", "PPID", "STATE");
    for r in &records {
        let name = core::str::from_utf8(r.name()).unwrap_or("?");
        let state = state_name(r.state);
        println!("{:>5} {:>3} {:>5} {:>5} {:<9} {}", r.pid, r.ns, r.ns_pid, r.ppid, state, name);
    }
    published_ports();
    0
}

/// The published ports of each namespace in `/proc/ns` that has some.
fn published_ports() {
    let mut text = Vec::new();
    let read = File::open(ns::PROC_PATH, sys::RDONLY).and_then(|f| f.read_to_end(&mut text));
    if let Err(e) = read {
        eprintln!("ps: {}: {}", ns::PROC_PATH, e.message());
        return;
    }
    let (spaces, bad) = procns::parse(&String::from_utf8_lossy(&text));
    for n in spaces.iter().filter(|n| !n.ports.is_empty()) {
        let addr = n.addr.map_or_else(|| "-".to_string(), |a| Ipv4(a).to_string());
        let ports: Vec<String> = n.ports.iter().map(ToString::to_string).collect();
        println!("ns {} {addr} ports {}", n.id, ports.join(","));
    }
    if bad > 0 {
        eprintln!("ps: {bad} line(s) of {} not understood", ns::PROC_PATH);
    }
}
