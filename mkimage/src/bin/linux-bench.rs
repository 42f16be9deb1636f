//! The Linux twin of the guest's `bench` program (user/src/bin/bench.rs): the same three
//! operations, timed with the cycle counter, printed in the same format. `mkimage bench-sys`
//! links it statically and runs it inside the Linux peer guest, in the same QEMU setup.

use std::ffi::CString;

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
}
