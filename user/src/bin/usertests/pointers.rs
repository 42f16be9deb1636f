//! Every system call that takes a pointer, given bad ones: each must fail with EFAULT and leave
//! the process running (each attempt runs in a child of its own).
//!
//! Bad pointers: null; the kernel's half (its direct map and its text); the first
//! non-canonical address; an unmapped address between the heap and the stack; a buffer that
//! starts on the last mapped bytes of the heap and runs into the page after it (which was
//! mapped and then given back with sbrk); a buffer that wraps around the end of the address
//! space; and, for calls that write, the program's own read-only text.

use abi::syscall::nr;
use ulib::abi;
use ulib::prelude::*;
use ulib::sys::raw::{syscall1, syscall2, syscall3};

use crate::{ctx, describe_status, ensure, in_child, status_of, write_file, Outcome};

const PAGE: usize = 4096;
const DATA: &str = "/ut-bp-data";
const OUT: &str = "/ut-bp-out";
/// The working directory during the case (a name longer than the straddle of getcwd).
const CWD: &str = "/ut-bp-cwd";

/// What the kernel reads from the pointer (a buffer of `len`, or a NUL-terminated string) or
/// writes to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Reads,
    String,
    Writes,
}

struct Target {
    name: &'static str,
    addr: usize,
    /// Only for buffers the kernel writes.
    writes_only: bool,
    /// Not for strings: without a NUL after it this one is not a bad string.
    not_string: bool,
}

struct Call {
    name: &'static str,
    uses: Use,
    /// Null is allowed (wait's status, exec's argv).
    null_ok: bool,
    /// For the straddling pointer: how many bytes before the unmapped page the buffer starts.
    straddle: usize,
    call: fn(usize, &Fds) -> isize,
}

/// Descriptors the calls use.
struct Fds {
    data: Fd,
    out: Fd,
}

fn text_address() -> usize {
    text_address as *const () as usize
}

fn calls() -> Vec<Call> {
    fn c(name: &'static str, uses: Use, len: usize, call: fn(usize, &Fds) -> isize) -> Call {
        // A buffer of `len` straddles from up to 8 bytes before the end (4 for pipe's ints).
        Call { name, uses, null_ok: false, straddle: (len / 2).clamp(1, 8), call }
    }
    const ECHO: &[u8] = b"echo\0";
    const LINK: &[u8] = b"/ut-bp-link\0";
    const DATA_Z: &[u8] = b"/ut-bp-data\0";
    // SAFETY: the block covers the calls inside the closures. Each hands the kernel the
    // pointer under test, `p`, and otherwise only live constants (paths, argv arrays on the
    // closure's stack) and buffer lengths no larger than what `p` is meant to span. The
    // targets (see the module doc) are memory this program does not use: unmapped, the
    // kernel's, non-canonical, the program's read-only text (writes must fail), or the last
    // bytes before the heap edge, which `make_heap_edge` reserved for exactly this.
    unsafe {
        vec![
            c("read", Use::Writes, 64, |p, f| syscall3(nr::READ, f.data as usize, p, 64)),
            c("write", Use::Reads, 64, |p, f| syscall3(nr::WRITE, f.out as usize, p, 64)),
            c("pipe", Use::Writes, 8, |p, _| syscall1(nr::PIPE, p)),
            Call {
                null_ok: true,
                ..c("wait", Use::Writes, 4, |p, _| {
                    if let Ok(0) = sys::fork() {
                        sys::exit(0);
                    }
                    syscall2(nr::WAIT, p, 0)
                })
            },
            c("fstat", Use::Writes, core::mem::size_of::<Stat>(), |p, f| {
                syscall2(nr::FSTAT, f.data as usize, p)
            }),
            // The working directory is CWD: its name straddles when it starts 4 bytes before.
            Call {
                straddle: 4,
                ..c("getcwd", Use::Writes, 64, |p, _| syscall2(nr::GETCWD, p, 64))
            },
            c("open", Use::String, 0, |p, _| syscall2(nr::OPEN, p, sys::RDONLY)),
            c("open-create", Use::String, 0, |p, _| {
                syscall2(nr::OPEN, p, sys::CREATE | sys::WRONLY)
            }),
            c("chdir", Use::String, 0, |p, _| syscall1(nr::CHDIR, p)),
            c("mkdir", Use::String, 0, |p, _| syscall1(nr::MKDIR, p)),
            c("unlink", Use::String, 0, |p, _| syscall1(nr::UNLINK, p)),
            c("mknod", Use::String, 0, |p, _| syscall3(nr::MKNOD, p, 1, 0)),
            c("link-old", Use::String, 0, |p, _| syscall2(nr::LINK, p, LINK.as_ptr() as usize)),
            c("link-new", Use::String, 0, |p, _| syscall2(nr::LINK, DATA_Z.as_ptr() as usize, p)),
            c("rename-old", Use::String, 0, |p, _| syscall2(nr::RENAME, p, LINK.as_ptr() as usize)),
            c("rename-new", Use::String, 0, |p, _| {
                syscall2(nr::RENAME, DATA_Z.as_ptr() as usize, p)
            }),
            c("exec-path", Use::String, 0, |p, _| {
                let argv = [ECHO.as_ptr(), core::ptr::null()];
                syscall2(nr::EXEC, p, argv.as_ptr() as usize)
            }),
            // The array itself: eight bytes, read.
            Call {
                null_ok: true, // a null argv may mean "no arguments"
                ..c("exec-argv", Use::Reads, 16, |p, _| {
                    syscall2(nr::EXEC, ECHO.as_ptr() as usize, p)
                })
            },
            // (A null element just ends the array.)
            Call {
                null_ok: true,
                ..c("exec-argv-string", Use::String, 0, |p, _| {
                    let argv = [ECHO.as_ptr(), p as *const u8, core::ptr::null()];
                    syscall2(nr::EXEC, ECHO.as_ptr() as usize, argv.as_ptr() as usize)
                })
            },
        ]
    }
}

/// The break made page-aligned, then grown by two pages and shrunk by one: the page at the
/// returned address was mapped and is not any more. `[top - 16, top)` holds `a`s, no NUL.
fn make_heap_edge() -> Result<usize, String> {
    // Give the allocator room first, so that nothing it does moves the break afterwards.
    drop(Vec::<u8>::with_capacity(256 * 1024));
    let brk = sys::brk();
    let pad = brk.next_multiple_of(PAGE) - brk;
    // SAFETY: growing only.
    let base = ctx(unsafe { sys::sbrk((pad + 2 * PAGE) as isize) }, "sbrk(grow)")? + pad;
    // SAFETY: gives back the last page of the growth just made; nothing uses it (the
    // allocator had its room reserved first and did not move the break meanwhile).
    ctx(unsafe { sys::sbrk(-(PAGE as isize)) }, "sbrk(shrink)")?;
    let top = base + PAGE;
    ensure!(sys::brk() == top, "the break is not where sbrk said");
    // SAFETY: [base, top) is ours: just grown and not given back.
    unsafe { core::ptr::write_bytes((top - 16) as *mut u8, b'a', 16) };
    Ok(top)
}

pub fn bad_pointers() -> Outcome {
    write_file(DATA, &[0x5a; 8192])?;
    let top = make_heap_edge()?;
    let data = ctx(sys::open(DATA, sys::RDONLY), DATA)?;
    let out = ctx(sys::open(OUT, sys::WRONLY | sys::CREATE | sys::TRUNC), OUT)?;
    let fds = Fds { data, out };
    let _ = sys::mkdir(CWD);
    ctx(sys::chdir(CWD), CWD)?;
    let targets = [
        Target { name: "null", addr: 0, writes_only: false, not_string: false },
        Target {
            name: "kernel",
            addr: 0xffff_8000_0000_0000,
            writes_only: false,
            not_string: false,
        },
        Target {
            name: "kernel-text",
            addr: 0xffff_ffff_8000_0000,
            writes_only: false,
            not_string: false,
        },
        Target {
            name: "non-canonical",
            addr: abi::syscall::USER_END as usize,
            writes_only: false,
            not_string: false,
        },
        Target { name: "unmapped", addr: 0x1000_0000_0000, writes_only: false, not_string: false },
        Target { name: "straddling", addr: top - 16, writes_only: false, not_string: false },
        Target { name: "wrapping", addr: usize::MAX - 15, writes_only: false, not_string: true },
        Target { name: "read-only", addr: text_address(), writes_only: true, not_string: true },
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for call in calls() {
        for t in &targets {
            if (t.addr == 0 && call.null_ok)
                || (t.writes_only && call.uses != Use::Writes)
                || (t.not_string && call.uses == Use::String)
            {
                continue;
            }
            let addr = if t.name == "straddling" && call.uses != Use::String {
                top - call.straddle
            } else {
                t.addr
            };
            let f = call.call;
            let fds_ref = &fds;
            let status = in_child(move || status_of(f(addr, fds_ref)))?;
            checked += 1;
            if status != Errno::EFAULT as i32 {
                failures.push(format!("{}({}): {}", call.name, t.name, describe_status(status)));
            }
        }
    }
    // The process survived all that, and the files are intact.
    let _ = sys::chdir("/");
    let _ = sys::unlink(CWD);
    let _ = sys::close(fds.data);
    let _ = sys::close(fds.out);
    let data_ok = crate::read_file(DATA).map(|d| d == [0x5a; 8192]);
    let _ = sys::unlink(DATA);
    let _ = sys::unlink(OUT);
    let _ = sys::unlink("/ut-bp-link");
    ensure!(failures.is_empty(), "expected EFAULT: {}", failures.join(", "));
    ensure!(data_ok == Ok(true), "{DATA} changed");
    Ok(format!("{checked} calls"))
}
