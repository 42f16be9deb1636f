//! ns: the container list, and a container's end or a program in it (like `docker ps`, `docker
//! stop` and `docker exec`).
//!
//! - `ns`: one line per namespace this process can see (its own and those below it), from
//!   `/proc/ns`: `ID NAME PARENT KINDS INIT PROCS MEM LIMIT ADDR PORTS FRONT`
//!   (`uparse::procns::table`; `-` for nothing, or for what the kernel does not tell).
//! - `ns stop ID|NAME`: kills the namespace's init, which ends every process in it and below,
//!   then waits until the namespace is gone from `/proc/ns` (at most [`STOP_DEADLINE_MS`]).
//! - `ns exec [-d] ID|NAME PROG ARGS...`: runs PROG inside the namespace (`nsenter`, then
//!   `exec`) and waits for it, like a command at the shell; its exit status is `ns`'s. With
//!   `-d` (`docker exec -d`) it does not wait: the program lives on as an orphan of the
//!   container, which its init reaps. Only from an ancestor of that namespace: the kernel
//!   refuses a sibling or a parent (`EPERM`).
//!
//! A namespace is named by its id or by its name (`spawn --name`), looked up in `/proc/ns`.

#![no_std]
#![no_main]

use ulib::nslist;
use ulib::prelude::*;
use ulib::uparse::procns::{self, Namespace};

ulib::entry!(main);

const USAGE: &str = "usage: ns | ns stop ID|NAME | ns exec [-d] ID|NAME PROGRAM [ARGS...]";

/// How long `ns stop` waits for the namespace to be gone: its processes must exit and be
/// reaped, and its root be moved aside, which takes a few transactions on the disk.
const STOP_DEADLINE_MS: u64 = 10_000;
/// How often `ns stop` looks again: nothing tells a process that a namespace is gone.
const STOP_POLL_MS: u64 = 20;

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    match argv.get(1..).unwrap_or(&[]) {
        [] => list(),
        ["stop", ns] => stop(ns),
        ["exec", "-d", ns, program @ ..] if !program.is_empty() => exec(ns, program, false),
        ["exec", ns, program @ ..] if !program.is_empty() => exec(ns, program, true),
        _ => die!("{USAGE}"),
    }
}

fn read() -> Vec<Namespace> {
    let (spaces, bad) = match nslist::read() {
        Ok(r) => r,
        Err(e) => die!("{}: {}", sys::ns::PROC_PATH, e.message()),
    };
    if bad > 0 {
        eprintln!("ns: {bad} line(s) of {} not understood", sys::ns::PROC_PATH);
    }
    spaces
}

fn list() -> i32 {
    print!("{}", procns::table(&read()));
    0
}

fn resolve(arg: &str) -> u32 {
    nslist::resolve(arg).unwrap_or_else(|e| die!("{e}"))
}

fn stop(arg: &str) -> i32 {
    let id = resolve(arg);
    let what = nslist::describe(arg, id);
    let spaces = read();
    let Some(target) = spaces.iter().find(|n| n.id == id) else {
        die!("{what}: no such namespace here")
    };
    if id == sys::ns::ROOT {
        die!("{what}: the root namespace cannot be stopped (poweroff ends everything)");
    }
    if id == sys::getns() {
        die!("{what}: ns runs in it; stop it from a namespace above");
    }
    if target.init == 0 {
        die!("{what}: it has no init of its own (no pid namespace); nothing to stop");
    }
    let init = target.init;
    if let Err(e) = sys::kill(init) {
        die!("{what}: kill its init (pid {init}): {}", e.message());
    }
    // Gone when no line has that id and that init: the id may be taken by a new namespace at
    // once, whose init is another process.
    let deadline = sys::uptime() + STOP_DEADLINE_MS;
    loop {
        let spaces = read();
        if !spaces.iter().any(|n| n.id == id && n.init == init) {
            println!("ns: stopped {what}");
            return 0;
        }
        if sys::uptime() >= deadline {
            die!(
                "{what}: still there {} s after its init (pid {init}) was killed: is its parent \
                 reaping it?",
                STOP_DEADLINE_MS / 1000
            );
        }
        let _ = sys::sleep(STOP_POLL_MS);
    }
}

fn exec(arg: &str, program: &[&str], wait: bool) -> i32 {
    let id = resolve(arg);
    let what = nslist::describe(arg, id);
    let pid = match sys::nsenter(id) {
        Ok(0) => {
            let e = sys::exec(program[0], program);
            eprintln!("ns: {}: {}", program[0], e.message());
            sys::exit(127)
        }
        Ok(pid) => pid,
        Err(Errno::EPERM) => die!(
            "exec in {what}: not allowed: only a namespace above it may run a program there \
             ({})",
            Errno::EPERM.message()
        ),
        Err(Errno::ESRCH) => die!("exec in {what}: no such namespace"),
        Err(Errno::ENOSYS) => die!("exec in {what}: this kernel has no nsenter"),
        Err(e) => die!("exec in {what}: {}", e.message()),
    };
    if !wait {
        // ns exits: the program becomes an orphan of its own namespace, whose init reaps it.
        return 0;
    }
    // ns has no other child: the first one that ends is the program (orphans go to inits).
    loop {
        match sys::wait() {
            Ok((p, status)) if p == pid => return status,
            Ok(_) => {}
            Err(e) => die!("wait: {}", e.message()),
        }
    }
}
