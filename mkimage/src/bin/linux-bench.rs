//! The Linux twin of the guest's `bench` program (user/src/bin/bench.rs): the same
//! operations, timed with the cycle counter, printed in the same format. `mkimage bench-sys`
//! links it statically and runs it inside the Linux peer guest, in the same QEMU setup, where
//! it is init's child and so root (creating namespaces needs `CAP_SYS_ADMIN`).
//!
//! A container here is `clone` with new pid, mount and network namespaces (what Docker asks
//! for besides the rest); `spawn-pid-exit-wait` is `CLONE_NEWPID` alone. Before timing, one
//! child checks that it really got them: it is pid 1, and its `/proc/self/ns/{mnt,net}` links
//! differ from its parent's. A failure prints `bench: <op> failed: <why>`.

use std::ffi::CString;
use std::fs;
use std::io;

const DEFAULT_N: u64 = 100_000;
const EXIT_AT_ONCE: &str = "--exit";

fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn getpid(n: u64) -> u64 {
    let start = rdtsc();
    for _ in 0..n {
        // The raw system call: libc's getpid may not enter the kernel at all.
        // SAFETY: SYS_getpid takes no arguments.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getpid) });
    }
    rdtsc() - start
}

fn fork_exec_wait(n: u64, me: &CString) -> u64 {
    let arg = CString::new(EXIT_AT_ONCE).unwrap();
    let argv = [me.as_ptr(), arg.as_ptr(), std::ptr::null()];
    let start = rdtsc();
    for _ in 0..n {
        // SAFETY: fork/execv/_exit/waitpid with valid, NUL-terminated arguments.
        unsafe {
            match libc::fork() {
                0 => {
                    libc::execv(me.as_ptr(), argv.as_ptr());
                    libc::_exit(127);
                }
                pid if pid > 0 => {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                _ => panic!("fork failed"),
            }
        }
    }
    rdtsc() - start
}

fn pipe_pingpong(n: u64) -> u64 {
    let (mut there, mut back) = ([0i32; 2], [0i32; 2]);
    // SAFETY: pipe/fork/read/write/close/waitpid on descriptors this function owns.
    unsafe {
        assert!(libc::pipe(there.as_mut_ptr()) == 0 && libc::pipe(back.as_mut_ptr()) == 0);
        let mut b = [0u8; 1];
        match libc::fork() {
            0 => {
                for _ in 0..n {
                    libc::read(there[0], b.as_mut_ptr().cast(), 1);
                    libc::write(back[1], b.as_ptr().cast(), 1);
                }
                libc::_exit(0);
            }
            child => {
                let start = rdtsc();
                for _ in 0..n {
                    libc::write(there[1], b.as_ptr().cast(), 1);
                    libc::read(back[0], b.as_mut_ptr().cast(), 1);
                }
                let t = rdtsc() - start;
                libc::waitpid(child, std::ptr::null_mut(), 0);
                t
            }
        }
    }
}

/// The kinds of `spawn-exit-wait`, as clone flags and as the table names them.
const CONTAINER: (libc::c_int, &str, &str) = (
    libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET,
    "CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWNET",
    "pid,mnt,net",
);
const PID_ONLY: (libc::c_int, &str, &str) = (libc::CLONE_NEWPID, "CLONE_NEWPID", "pid");

/// The child's stack (`clone` without `CLONE_VM` gives the child a copy of this memory, so
/// one stack serves every child in turn).
const STACK: usize = 64 * 1024;

/// The namespace links a child compares with its parent's (read before the clone).
struct Expect {
    mnt: Option<Vec<u8>>,
    net: Option<Vec<u8>>,
}

fn ns_link(kind: &str) -> Option<Vec<u8>> {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .ok()
        .map(|p| p.into_os_string().into_encoded_bytes())
}

/// The checking child: exit status 0 only if it is pid 1 and in new namespaces of the kinds
/// asked for (`arg` points to the `Expect`, in the child's copy of the parent's memory).
extern "C" fn check_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&Expect` the parent passed; the child has its own copy of it.
    let expect = unsafe { &*(arg as *const Expect) };
    // SAFETY: SYS_getpid takes no arguments.
    if unsafe { libc::syscall(libc::SYS_getpid) } != 1 {
        return 2;
    }
    for (kind, parent) in [("mnt", &expect.mnt), ("net", &expect.net)] {
        if let Some(parent) = parent {
            if ns_link(kind).as_ref() == Some(parent) {
                return 3;
            }
        }
    }
    0
}

/// The timed child: exit at once.
extern "C" fn exit_child(_: *mut libc::c_void) -> libc::c_int {
    0
}

/// clone(flags) running `child`, and wait for it: Ok(its exit status).
fn clone_wait(
    flags: libc::c_int,
    child: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
    stack: &mut [u8],
) -> io::Result<libc::c_int> {
    let top = stack.as_mut_ptr().wrapping_add(stack.len() & !15);
    // SAFETY: `top` is the end of a live buffer the child uses as its stack (a copy of it:
    // no CLONE_VM); `child` is a plain function; SIGCHLD makes it an ordinary waitable child.
    let pid = unsafe { libc::clone(child, top.cast(), flags | libc::SIGCHLD, arg) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waitpid on our own child, into a live local.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(io::Error::last_os_error());
    }
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 })
}

/// `n` times: clone with `flags`, the child exits at once, wait. Checked once first.
fn spawn_exit_wait(n: u64, flags: libc::c_int) -> Result<u64, String> {
    let mut stack = vec![0u8; STACK];
    let expect = Expect {
        mnt: (flags & libc::CLONE_NEWNS != 0).then(|| ns_link("mnt")).flatten(),
        net: (flags & libc::CLONE_NEWNET != 0).then(|| ns_link("net")).flatten(),
    };
    let arg = &expect as *const Expect as *mut libc::c_void;
    match clone_wait(flags, check_child, arg, &mut stack).map_err(|e| e.to_string())? {
        0 => {}
        2 => return Err("the child is not pid 1 of a new pid namespace".into()),
        3 => return Err("the child's /proc/self/ns links are its parent's".into()),
        s => return Err(format!("the checking child exited with {s}")),
    }
    let start = rdtsc();
    for _ in 0..n {
        match clone_wait(flags, exit_child, std::ptr::null_mut(), &mut stack) {
            Ok(0) => {}
            Ok(s) => return Err(format!("a child exited with {s}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(rdtsc() - start)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(EXIT_AT_ONCE) {
        return;
    }
    let n = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(DEFAULT_N);
    let me = CString::new(std::env::current_exe().unwrap().to_string_lossy().as_bytes()).unwrap();
    println!("bench: getpid {}", getpid(n) / n);
    let m = (n / 1000).max(1);
    println!("bench: fork-exec-wait {}", fork_exec_wait(m, &me) / m);
    let p = (n / 20).max(1);
    println!("bench: pipe-pingpong {}", pipe_pingpong(p) / p);
    for (name, (flags, flag_names, kinds)) in
        [("spawn-exit-wait", CONTAINER), ("spawn-pid-exit-wait", PID_ONLY)]
    {
        match spawn_exit_wait(m, flags) {
            Ok(cycles) => println!("bench: {name} {} {kinds}", cycles / m),
            Err(e) => println!("bench: {name} failed: clone({flag_names}): {e}"),
        }
    }
}
