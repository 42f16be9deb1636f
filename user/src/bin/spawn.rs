//! spawn [-d] [--pid] [--fs] [--net] [PROGRAM ARGS...]: start a container. Makes new
//! namespaces (by default every kind the kernel isolates; with kind flags, only those) whose
//! first process runs `nsinit`, pid 1 there, which starts PROGRAM and reaps orphans for ever.
//! Prints `spawn: ns ID init PID` (PID as this process sees it) before the container starts.
//! With a PROGRAM and without `-d`, waits for PROGRAM to exit (its status is spawn's); the
//! container lives on with its nsinit until that is killed (`kill PID`), which ends everything
//! in it.

#![no_std]
#![no_main]

use ulib::abi::syscall::ProcRecord;
use ulib::io::read_full;
use ulib::prelude::*;
use ulib::sys::ns;

ulib::entry!(main);

/// What `spawn` isolates without kind flags: every kind this kernel supports.
const DEFAULT_KINDS: usize = ns::NEWPID | ns::NEWFS;

fn usage() -> ! {
    die!("usage: spawn [-d] [--pid] [--fs] [--net] [PROGRAM ARGS...]")
}

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let mut detach = false;
    let mut kinds = 0;
    let mut i = 1;
    while let Some(&arg) = argv.get(i) {
        match arg {
            "-d" => detach = true,
            "--pid" => kinds |= ns::NEWPID,
            "--fs" => kinds |= ns::NEWFS,
            "--net" => kinds |= ns::NEWNET,
            a if a.starts_with('-') => usage(),
            _ => break,
        }
        i += 1;
    }
    let program = &argv[i..];
    if kinds == 0 {
        kinds = DEFAULT_KINDS;
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
    // The container starts once the line below is out (at the end of file on this pipe):
    // otherwise its shell's prompt could come first, and the two would interleave.
    let (go_r, go_w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => die!("pipe: {}", e.message()),
    };
    let pid = match sys::spawn(kinds) {
        Ok(0) => {
            let _ = sys::close(go_w);
            let mut b = [0u8; 1];
            let _ = sys::read(go_r, &mut b);
            let _ = sys::close(go_r);
            run_nsinit(status_pipe, program)
        }
        Ok(pid) => pid,
        Err(e) => die!("{}", e.message()),
    };
    let _ = sys::close(go_r);
    let id = namespace_of(pid);
    println!("spawn: ns {id} init {pid}");
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
