//! spawn [-d] [--pid] [--fs] [--net] [--name NAME] [--pids N] [--mem SIZE]
//! [-p HOSTPORT:PORT[/udp]]... [PROGRAM ARGS...]: start a container. Makes new namespaces (by default [`DEFAULT_KINDS`]; with kind flags, only those)
//! whose first process runs `nsinit`, pid 1 there, which starts PROGRAM and reaps orphans for
//! ever. Prints `spawn: ns ID init PID` (PID as this process sees it) before the container
//! starts. With a PROGRAM and without `-d`, waits for PROGRAM to exit (its status is spawn's);
//! the container lives on with its nsinit until that is killed (`kill PID`), which ends
//! everything in it.
//!
//! `-p HOSTPORT:PORT` (Docker's syntax; several allowed) publishes the container's TCP PORT on
//! the host's HOSTPORT (the E1000's address), `-p HOSTPORT:PORT/udp` a UDP one: connections
//! to that port reach the container, until it ends. Every port is published before the
//! container's program starts; if one cannot be (`EADDRINUSE`: the host port is taken), spawn
//! says which and why (`spawn: publish 8081:80/tcp: address in use`), kills the container's
//! init and exits with status 1.
//!
//! `--name NAME` names the container (`a-z`, `0-9`, `_`, `-`, up to 15; unique among the live
//! ones), `--pids N` limits its processes (fork past it: `EAGAIN` inside), `--mem SIZE` its
//! memory (`16M`, `512K`; past it `sbrk`, `fork`, `exec`, pipes and sockets: `ENOMEM` inside).
//! Both cover the containers it starts, and are cut to the limits of the one spawn runs in.

#![no_std]
#![no_main]

use ulib::abi::syscall::ProcRecord;
use ulib::io::{read_full, write_all};
use ulib::net::{SOCK_DGRAM, SOCK_STREAM};
use ulib::prelude::*;
use ulib::sys::ns;
use ulib::uparse::publish::{first_clash, parse_spec, PortMap, Proto};
use ulib::uparse::size::{parse_count, parse_limit};

ulib::entry!(main);

/// What `spawn` isolates without kind flags: everything (pids, files and the network), the
/// report's all-or-nothing container.
const DEFAULT_KINDS: usize = ns::ALL;

/// The byte that tells the container to start (anything else, or the end of the pipe, tells
/// it that spawn gave up).
const GO: u8 = b'g';

fn usage() -> ! {
    die!(
        "usage: spawn [-d] [--pid] [--fs] [--net] [--name NAME] [--pids N] [--mem SIZE] \
         [-p HOSTPORT:PORT[/udp]]... [PROGRAM ARGS...]"
    )
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut detach = false;
    let mut kinds = 0;
    let mut ports: Vec<PortMap> = Vec::new();
    let (mut name, mut pids_max, mut mem_max) = ("", 0u32, 0u64);
    let mut i = 1;
    while let Some(&arg) = argv.get(i) {
        match arg {
            "-d" => detach = true,
            "--pid" => kinds |= ns::NEWPID,
            "--fs" => kinds |= ns::NEWFS,
            "--net" => kinds |= ns::NEWNET,
            "-p" => {
                let Some(&spec) = argv.get(i + 1) else { usage() };
                match parse_spec(spec) {
                    Ok(m) => ports.push(m),
                    Err(e) => die!("-p {spec}: {}", e.message()),
                }
                i += 1;
            }
            "--name" | "--pids" | "--mem" => {
                let Some(&v) = argv.get(i + 1) else { usage() };
                match arg {
                    "--name" if ns::name_ok(v.as_bytes()) => name = v,
                    "--name" => {
                        die!("--name {v}: 1 to {} of a-z 0-9 _ -, not all digits", ns::NAME_MAX)
                    }
                    "--pids" => {
                        pids_max =
                            parse_count(v).unwrap_or_else(|e| die!("--pids {v}: {}", e.message()))
                    }
                    _ => {
                        mem_max =
                            parse_limit(v).unwrap_or_else(|e| die!("--mem {v}: {}", e.message()))
                    }
                }
                i += 1;
            }
            a if a.starts_with('-') => usage(),
            _ => break,
        }
        i += 1;
    }
    let program = &argv[i..];
    if let Some((a, b)) = first_clash(&ports) {
        die!("-p {a} and -p {b}: the same host port");
    }
    if kinds == 0 {
        kinds = DEFAULT_KINDS;
    } else if !ports.is_empty() && kinds & ns::NEWNET == 0 {
        die!("-p needs a network namespace of the container's own (--net)");
    }
    // The program's status comes back through a pipe that nsinit writes when it exits.
    let status_pipe = if program.is_empty() || detach {
        None
    } else {
        match sys::pipe() {
            Ok(p) => Some(p),
            Err(e) => die!("pipe: {}", e.message()),
        }
    };
    // The container starts when GO arrives on this pipe: once its ports are published and the
    // line below is out (otherwise its shell's prompt could come first, and the two would
    // interleave).
    let (go_r, go_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => die!("pipe: {}", e.message()),
    };
    let args = ns::SpawnArgs::new(pids_max, mem_max, name).unwrap_or_else(|| usage());
    let pid = match sys::spawn2(kinds, Some(&args)) {
        Ok(0) => {
            let _ = sys::close(go_w);
            let mut b = [0u8; 1];
            let go = sys::read(go_r, &mut b);
            let _ = sys::close(go_r);
            if go != Ok(1) || b[0] != GO {
                // spawn failed or was killed: the container must not run half set up.
                sys::exit(1);
            }
            run_nsinit(status_pipe, program)
        }
        Ok(pid) => pid,
        Err(Errno::EEXIST) => die!("--name {name}: a container has that name"),
        Err(e) => die!("{}", e.message()),
    };
    let _ = sys::close(go_r);
    let id = namespace_of(pid);
    for m in &ports {
        if let Err(e) = publish(id, m) {
            eprintln!("spawn: publish {m}: {}", e.message());
            abandon(pid, go_w);
            return 1;
        }
    }
    println!("spawn: ns {id} init {pid}");
    let _ = write_all(go_w, &[GO]);
    let _ = sys::close(go_w);
    let Some((r, w)) = status_pipe else { return 0 };
    let _ = sys::close(w);
    let mut status = [0u8; 4];
    match read_full(r, &mut status) {
        Ok(4) => i32::from_le_bytes(status),
        _ => {
            eprintln!("spawn: ns {id}: its init ended before the program");
            1
        }
    }
}

/// Publishes one port of namespace `id` (`m.host` is always there: `parse_spec` requires it).
fn publish(id: u32, m: &PortMap) -> sys::Result<()> {
    let proto = match m.proto {
        Proto::Tcp => SOCK_STREAM,
        Proto::Udp => SOCK_DGRAM,
    };
    sys::publish(id, proto, m.host.unwrap_or(0), m.port)
}

/// Ends the container before its program started: kills its init (which ends the namespace,
/// and frees the ports already published), lets it see the end of the start pipe in case the
/// kill failed, and reaps it.
fn abandon(pid: Pid, go_w: Fd) {
    let _ = sys::kill(pid);
    let _ = sys::close(go_w);
    loop {
        match sys::wait() {
            Ok((p, _)) if p == pid => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// In the child, pid 1 of the new namespaces: become nsinit.
fn run_nsinit(status_pipe: Option<(Fd, Fd)>, program: &[&str]) -> ! {
    let mut args: Vec<String> = vec!["nsinit".into()];
    if let Some((r, w)) = status_pipe {
        let _ = sys::close(r);
        args.push("--status-fd".into());
        args.push(format!("{w}"));
    }
    args.extend(program.iter().map(|s| String::from(*s)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = sys::exec("nsinit", &refs);
    eprintln!("spawn: exec nsinit: {}", e.message());
    sys::exit(127)
}

/// The namespace of process `pid` (from `/proc/PID`); 0 if it is gone already.
fn namespace_of(pid: Pid) -> u32 {
    let Ok(f) = File::open(&format!("/proc/{pid}"), sys::RDONLY) else { return 0 };
    let mut buf = [0u8; ProcRecord::SIZE];
    match read_full(f.fd(), &mut buf) {
        Ok(n) => ProcRecord::decode(&buf[..n]).map_or(0, |r| r.ns),
        Err(_) => 0,
    }
}
