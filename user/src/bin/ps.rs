//! ps: list the processes this one can see, from `/proc` (one file per pid, each an
//! `abi::syscall::ProcRecord`): `PID NS NSPID PPID STATE NAME`, by pid. PID and PPID are as
//! this process sees them (in a container: its own numbers, and PPID 0 for its init); NS is
//! the process's namespace and NSPID its pid there.

#![no_std]
#![no_main]

use ulib::abi::syscall::{state, ProcRecord};
use ulib::dir::read_dir;
use ulib::io::read_full;
use ulib::prelude::*;

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
    0
}
