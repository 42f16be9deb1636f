//! One batch of random system calls, run in a process of its own (the runner, `main.rs`,
//! forks it and watches it).
//!
//! # Memory the kernel may write
//!
//! Pointers given to the kernel are of three sorts, and this is what keeps the fuzzer itself
//! alive whatever the kernel does with them:
//! - into the *scratch region* `R`: 32 pages this process grew with `sbrk` right after
//!   reserving room for its allocator, so they end at the break (the *edge*). Nothing the
//!   program uses lives there, and what lies past the edge is unmapped, or pages a fuzzed
//!   `sbrk` added and nothing uses either. A buffer starting in `R` with any length may be
//!   written up to the edge and no further. (After every call the break is checked: if the
//!   allocator had moved it, the batch stops with a fuzzer error.)
//! - read-only or unmapped memory: the program's text, below the program, between the heap and
//!   the stack, just below the stack (a buffer there starts on the unmapped page below it);
//! - not user memory at all: the kernel's direct map and text, non-canonical addresses, the
//!   ends of the address space.
//!
//! # Calls that could wait for ever
//!
//! A hang is a bug only when the call should have returned, so the calls are made so that each
//! returns within about two seconds on a correct kernel:
//! - every descriptor the batch makes is non-blocking, and stays so (`fcntl` calls are followed
//!   by setting `NONBLOCK` again): reads, writes, `accept`, `connect`, `recv` answer `EAGAIN`
//!   or `EINPROGRESS` instead of waiting. The descriptors inherited from the shell (0, 1, 2)
//!   are never used: they share their open files with the shell, whose flags must not change;
//! - `sleep` and `poll` get timeouts up to 20 ms, `arping` waits at most its second;
//! - `wait` is called only when every child is about to exit (children exit at once);
//! - what may wait for ever by design (a huge `sleep` or `poll` timeout, a blocking read of an
//!   empty pipe, `wait` for a child that never exits) and what ends a process (`exit`, `kill`
//!   of itself, `exec`, a negative `sbrk` into the heap, privileged instructions) run in a
//!   *grandchild* with a deadline: once it passes, the grandchild is killed, which must end it
//!   within five seconds. Grandchildren share the batch's open files, so after one the batch
//!   sets `NONBLOCK` on all of them again. Some grandchildren make random calls of their own
//!   and are killed at a random moment, in the middle of whatever they are doing.
//!
//! A batch that does not finish before the runner's deadline, or a killed grandchild that does
//! not go, is a hang: reported with the seed and the batch, which replays alone
//! (`fuzz SEED CALLS -only K -v` prints each call before making it).
//!
//! Never called: `poweroff`, `kill` of any process but the batch's own (and the numbers above
//! the pid range that must name none: `kill(2^32 + 1)` must not end init), `exit` of the batch
//! itself, `attach` of a namespace that may be alive (it would bring a new shell to the front
//! and take the console from the test: only the root's and ids naming none).
//!
//! # Files
//!
//! The batch works in its own directory, its working directory (`/fuzz-PID-UPTIME/bK` under
//! the runner's scratch directory): paths that create, remove or rename are relative and never
//! go above it (no `..` component at their top; `d/..` is the directory itself), or name what
//! cannot change (`/proc`, a missing directory). The runner removes the directory after the
//! batch.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write as _;

use ulib::abi::syscall::net::{
    PollFd, F_GETFL, F_SETFL, POLLIN, POLLOUT, SHUT_RDWR, SOCK_DGRAM, SOCK_STREAM,
};
use ulib::abi::syscall::{kind, nr, open, USER_BASE, USER_END, USER_STACK_SIZE, USER_STACK_TOP};
use ulib::net::{self, SockAddrIn};
use ulib::prelude::*;
use ulib::sys::raw::syscall6;

use crate::rng::Rng;
use crate::{elf, Groups};

const PAGE: u64 = 4096;
/// The scratch region's size.
const R_SIZE: u64 = 32 * PAGE;
/// Where in `R` the prepared arguments go.
const SLOT_PATH1: u64 = 0;
const SLOT_PATH2: u64 = 2048;
const SLOT_ADDR: u64 = 4096;
const SLOT_LEN: u64 = 4096 + 64;
const SLOT_FDS: u64 = 4096 + 128;
const SLOT_ARGV: u64 = 8192;
const SLOT_STRINGS: u64 = 12 * 1024;
const SLOT_POLL: u64 = 16 * 1024;
/// The data area: `[DATA, R_SIZE)`, ending at the edge.
const DATA: u64 = 64 * 1024;
/// Short, printable bytes for the console (so that the log stays readable).
const CONSOLE_TEXT: &[u8] = b"[fuzz console write]\n";
/// How long a grandchild may run before it is killed, and how long it may take to go then.
const GRANDCHILD_MS: u64 = 2000;
const KILLED_GOES_MS: u64 = 5000;
/// The exit status of a grandchild whose `exec` returned something outside the ABI.
const EXEC_ODD: i32 = 97;
/// Most descriptors the batch keeps (the table has 64).
const POOL_MAX: usize = 56;
/// Most memory fuzzed `sbrk` calls may add.
const GROW_MAX: u64 = 16 << 20;

/// What a descriptor refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    PipeRead,
    PipeWrite,
    Console,
    Proc,
    Socket,
}

/// A result outside what the ABI allows, or a process that outlived its kill.
pub enum Trouble {
    Odd(String),
    Hang(String),
}

pub struct Batch<'a> {
    rng: Rng,
    groups: Groups,
    verbose: bool,
    index: u64,
    call_no: usize,
    /// Absolute path of the batch's directory.
    dir: String,
    /// The program whose mutations `exec` tries (`/bin/echo`).
    program: &'a [u8],
    /// The buffer of [`elf::mutate`], allocated before the scratch region.
    mutated: Vec<u8>,
    me: Pid,
    runner: Pid,
    base: u64,
    /// The break: the scratch region's end, plus what fuzzed `sbrk` calls added.
    brk: u64,
    edge: u64,
    grown: u64,
    pool: Vec<(Fd, Kind)>,
    closed: Vec<Fd>,
    /// Children, all about to exit (each exits at once).
    kids: Vec<Pid>,
    /// Ports of the batch's own sockets (for connect and sendto).
    ports: Vec<u16>,
    pub troubles: Vec<Trouble>,
    /// In a grandchild that will be killed at a random moment (see [`Batch::risky`]).
    doomed: bool,
}

fn text_address() -> u64 {
    text_address as *const () as u64
}

/// The raw call; every pointer among `a` follows the module's rules.
fn raw(n: usize, a: [u64; 6]) -> isize {
    // SAFETY: the fuzzer's invariant (module doc): each pointer argument is into the scratch
    // region, whose bytes nothing reads unprepared and which is followed by memory nothing
    // uses; or read-only, unmapped, kernel or non-canonical memory. Whatever the kernel
    // writes through them lands where no Rust value lives.
    unsafe {
        syscall6(
            n,
            a[0] as usize,
            a[1] as usize,
            a[2] as usize,
            a[3] as usize,
            a[4] as usize,
            a[5] as usize,
        )
    }
}

/// An error value the ABI knows (`-errno`).
fn known_error(ret: isize) -> bool {
    ret == Errno::EIO.ret() || sys::errno_from_ret(ret) != Errno::EIO
}

const NAMES: [(usize, &str); 52] = [
    (nr::FORK, "fork"),
    (nr::EXIT, "exit"),
    (nr::WAIT, "wait"),
    (nr::PIPE, "pipe"),
    (nr::READ, "read"),
    (nr::KILL, "kill"),
    (nr::EXEC, "exec"),
    (nr::FSTAT, "fstat"),
    (nr::CHDIR, "chdir"),
    (nr::DUP, "dup"),
    (nr::GETPID, "getpid"),
    (nr::SBRK, "sbrk"),
    (nr::SLEEP, "sleep"),
    (nr::UPTIME, "uptime"),
    (nr::OPEN, "open"),
    (nr::WRITE, "write"),
    (nr::MKNOD, "mknod"),
    (nr::UNLINK, "unlink"),
    (nr::LINK, "link"),
    (nr::MKDIR, "mkdir"),
    (nr::CLOSE, "close"),
    (nr::RENAME, "rename"),
    (nr::GETCWD, "getcwd"),
    (nr::POWEROFF, "poweroff"),
    (nr::SETFG, "setfg"),
    (nr::SPAWN, "spawn"),
    (nr::SPAWN2, "spawn2"),
    (nr::NSPCOPY, "nspcopy"),
    (nr::GETNS, "getns"),
    (nr::PUBLISH, "publish"),
    (nr::SOCKET, "socket"),
    (nr::BIND, "bind"),
    (nr::LISTEN, "listen"),
    (nr::ACCEPT, "accept"),
    (nr::CONNECT, "connect"),
    (nr::SEND, "send"),
    (nr::RECV, "recv"),
    (nr::SENDTO, "sendto"),
    (nr::RECVFROM, "recvfrom"),
    (nr::GETSOCKNAME, "getsockname"),
    (nr::GETPEERNAME, "getpeername"),
    (nr::SHUTDOWN, "shutdown"),
    (nr::POLL, "poll"),
    (nr::FCNTL, "fcntl"),
    (nr::ARPING, "arping"),
    (nr::NSENTER, "nsenter"),
    (nr::ATTACH, "attach"),
    (nr::SETPGID, "setpgid"),
    (nr::GETPGID, "getpgid"),
    (0, "nr-0"),
    (usize::MAX, "nr-max"),
    (1 << 32 | nr::GETPID, "nr-2^32+getpid"),
];

fn name_of(n: usize) -> String {
    match NAMES.iter().find(|(v, _)| *v == n) {
        Some((_, s)) => String::from(*s),
        None => format!("nr-{n:#x}"),
    }
}

/// The calls made directly, with weights (how many entries each has).
const CALLS: &[usize] = &[
    nr::FORK,
    nr::WAIT,
    nr::PIPE,
    nr::READ,
    nr::READ,
    nr::KILL,
    nr::EXEC,
    nr::FSTAT,
    nr::CHDIR,
    nr::DUP,
    nr::GETPID,
    nr::SBRK,
    nr::SLEEP,
    nr::UPTIME,
    nr::OPEN,
    nr::OPEN,
    nr::WRITE,
    nr::WRITE,
    nr::MKNOD,
    nr::UNLINK,
    nr::LINK,
    nr::MKDIR,
    nr::CLOSE,
    nr::RENAME,
    nr::GETCWD,
    nr::SETFG,
    nr::SPAWN,
    nr::NSPCOPY,
    nr::GETNS,
    nr::PUBLISH,
    nr::SOCKET,
    nr::BIND,
    nr::LISTEN,
    nr::ACCEPT,
    nr::CONNECT,
    nr::SEND,
    nr::RECV,
    nr::SENDTO,
    nr::RECVFROM,
    nr::GETSOCKNAME,
    nr::GETPEERNAME,
    nr::SHUTDOWN,
    nr::POLL,
    nr::FCNTL,
    nr::ARPING,
    nr::NSENTER,
    nr::ATTACH,
    nr::SETPGID,
    nr::GETPGID,
];

/// Numbers that are no system call (each must be ENOSYS): gaps, the ends, and valid numbers
/// with high bits set (the kernel must not cut the number to fewer bits).
const INVALID_NUMBERS: [usize; 10] = [
    0,
    63,
    64,
    255,
    1000,
    1 << 16,
    1 << 32 | nr::GETPID,
    1 << 63 | nr::FORK,
    usize::MAX,
    usize::MAX - 1,
];

/// Integers that break arithmetic.
const INTS: [u64; 24] = [
    0,
    1,
    2,
    3,
    7,
    16,
    64,
    255,
    4095,
    4096,
    65536,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 32,
    (1 << 32) + 1,
    1 << 47,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX / 1_000_000 + 1,
    u64::MAX - 4095,
    u64::MAX - 1,
    u64::MAX,
    0xdead_beef,
];

const LENGTHS: [u64; 20] = [
    0,
    1,
    2,
    7,
    8,
    16,
    64,
    100,
    4095,
    4096,
    4097,
    65535,
    65536,
    65537,
    1 << 20,
    1 << 32,
    (1 << 32) + 1,
    i64::MAX as u64,
    u64::MAX - 1,
    u64::MAX,
];

/// Paths that stay inside the batch's directory (or name what cannot be changed: /proc, a
/// missing directory): the ones that create, remove and rename use only these.
const SCRATCH_PATHS: &[&str] = &[
    "f",
    "g",
    "d",
    "d/e",
    "d/e/h",
    "d/",
    "d/e/",
    "d/.",
    "d/..",
    "d/e/..",
    "d/e/../f",
    "d//e",
    "./f",
    ".",
    "",
    "h",
    "k",
    "x/y",
    "f/x",
    "c",
    "n",
    "m",
    "proc/1",
    "/proc",
    "/proc/1",
    "/proc/meminfo",
    "/proc/net",
    "/proc/none",
    "/proc/1/x",
    "/nonexistent/x",
];

/// Pairs for `rename` and `link`: a directory onto its parent, its child, itself, `.`.
const RELATED: &[(&str, &str)] = &[
    ("d/e", "d/"),
    ("d/e", "d"),
    ("d/e/", "d/."),
    ("d", "d/e/x"),
    ("d", "d/e"),
    ("d", "d/"),
    ("d/e/h", "d/e/"),
    ("d/e", "d/e/h"),
    (".", "d"),
    ("d/..", "x"),
    ("d/e", "."),
    ("d/e/..", "d/e"),
    ("f", "d/e"),
    ("d", "f"),
    ("f", "f"),
    ("f", "d/e/h/"),
];

/// Paths only read or looked up.
const READ_PATHS: &[&str] = &[
    "/",
    "/bin",
    "/bin/echo",
    "/bin/../bin/echo",
    "/..",
    "/console",
    "/etc/motd",
    "/README",
    "echo",
    "..",
    "../..",
];

/// Programs that end by themselves and do not read the console.
const PROGRAMS: [&str; 5] = ["echo", "/bin/echo", "pwd", "ls", "free"];

/// An address the kernel must refuse: `(address, whether it may be read)`.
fn bad_addresses(edge: u64) -> [u64; 20] {
    let stack_bottom = USER_STACK_TOP - USER_STACK_SIZE;
    [
        0,
        1,
        8,
        0xfff,
        USER_BASE - 1,
        0x10_0000_0000,
        edge,
        edge + PAGE - 1,
        stack_bottom - 1,
        stack_bottom - 8,
        USER_STACK_TOP,
        USER_END - 1,
        USER_END,
        0xffff_8000_0000_0000,
        0xffff_8000_0010_0000,
        0xffff_ffff_8000_0000,
        0xffff_ffff_ffff_f000,
        1 << 63,
        u64::MAX - 7,
        u64::MAX,
    ]
}

/// How a batch ended (for the runner).
pub struct Summary {
    pub calls: usize,
}

impl<'a> Batch<'a> {
    pub fn new(
        seed: u64,
        index: u64,
        groups: Groups,
        verbose: bool,
        dir: String,
        program: &'a [u8],
        runner: Pid,
    ) -> Result<Batch<'a>, String> {
        // Room for the allocator first: nothing it does during the batch may move the break,
        // which must stay at the end of the scratch region.
        drop(Vec::<u8>::with_capacity(4 << 20));
        // The mutated program's buffer, made now for the same reason (a 36 KiB allocation
        // during the batch moved the break).
        let mutated = Vec::with_capacity(program.len());
        let brk = sys::brk() as u64;
        let pad = brk.next_multiple_of(PAGE) - brk;
        // SAFETY: growing only.
        let old = unsafe { sys::sbrk((pad + R_SIZE) as isize) }
            .map_err(|e| format!("sbrk for the scratch region: {}", e.message()))?;
        let base = old as u64 + pad;
        let edge = base + R_SIZE;
        Ok(Batch {
            rng: Rng::for_batch(seed, index),
            groups,
            verbose,
            index,
            call_no: 0,
            dir,
            program,
            mutated,
            me: sys::getpid(),
            runner,
            base,
            brk: edge,
            edge,
            grown: 0,
            pool: Vec::with_capacity(128),
            closed: Vec::with_capacity(128),
            kids: Vec::with_capacity(64),
            ports: Vec::with_capacity(8),
            troubles: Vec::new(),
            doomed: false,
        })
    }

    // ---- the scratch region ----

    /// The end of what this process has mapped above the scratch region's start: the break,
    /// rounded up to a page (the kernel maps whole pages).
    fn mapped_end(&self) -> u64 {
        self.brk.next_multiple_of(PAGE)
    }

    fn bytes(&self, off: u64, len: u64) -> &'static mut [u8] {
        assert!(self.base + off + len <= self.mapped_end());
        // SAFETY: `[base + off, base + off + len)` lies in the scratch region or above it up
        // to the break (pages fuzzed `sbrk` calls added), which this process grew and owns
        // and nothing else uses; the kernel writes it only during a system call, never while
        // this slice is used (a process has one thread).
        unsafe { core::slice::from_raw_parts_mut((self.base + off) as *mut u8, len as usize) }
    }

    fn put(&self, off: u64, data: &[u8]) -> u64 {
        self.bytes(off, data.len() as u64).copy_from_slice(data);
        self.base + off
    }

    fn put_u32(&self, off: u64, v: u32) -> u64 {
        self.put(off, &v.to_le_bytes())
    }

    /// Random bytes in the data area.
    fn scramble(&mut self) {
        let data = self.bytes(DATA, R_SIZE - DATA);
        for chunk in data.chunks_mut(8) {
            let v = self.rng.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    // ---- arguments ----

    fn int(&mut self) -> u64 {
        match self.rng.below(4) {
            0 => self.rng.next(),
            1 => self.rng.below(64),
            _ => *self.rng.pick(&INTS),
        }
    }

    fn len(&mut self) -> u64 {
        match self.rng.below(5) {
            0 => self.rng.below(8192),
            _ => *self.rng.pick(&LENGTHS),
        }
    }

    fn bad(&mut self) -> u64 {
        *self.rng.pick(&bad_addresses(self.edge))
    }

    /// A buffer the kernel writes: mostly in the data area (any length: it stops at the
    /// edge), else across the edge, read-only text, or a bad address.
    fn out_ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => self.base + DATA + self.rng.below(R_SIZE - DATA),
            6 => self.edge - 1 - self.rng.below(16),
            7 => text_address(),
            _ => self.bad(),
        }
    }

    /// A buffer the kernel reads: the data area (random bytes), text, or a bad address.
    fn in_ptr(&mut self) -> u64 {
        match self.rng.below(10) {
            0..=5 => self.base + DATA + self.rng.below(R_SIZE - DATA),
            6 => self.edge - 1 - self.rng.below(16),
            7 => text_address(),
            _ => self.bad(),
        }
    }

    /// `prepared` (the address of valid content) most of the time, else a bad pointer.
    fn or_bad(&mut self, prepared: u64) -> u64 {
        match self.rng.below(10) {
            0..=7 => prepared,
            8 => self.out_ptr(),
            _ => self.bad(),
        }
    }

    /// Random name bytes (no NUL; no `/` when `one_component`).
    fn garbage_name(&mut self, one_component: bool) -> Vec<u8> {
        let max = if self.rng.chance(1, 8) { 80 } else { 12 };
        let n = 1 + self.rng.index(max);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let b = match self.rng.below(4) {
                0 => 1 + self.rng.below(255) as u8,
                _ => b"abcde.-_/"[self.rng.index(9)],
            };
            if b == b'/' && one_component {
                v.push(b'z');
            } else {
                v.push(b);
            }
        }
        // Never `..` at the top of a path that changes things (it would leave the directory).
        if one_component && v.iter().all(|&b| b == b'.') {
            v.push(b'z');
        }
        v
    }

    /// A path argument (`mutating`: one of the scratch paths, which stay in the batch's
    /// directory), written NUL-terminated to `slot`; or a bad pointer, or a string running
    /// into the edge.
    fn path(&mut self, slot: u64, mutating: bool) -> (u64, String) {
        let bytes: Vec<u8> = match self.rng.below(20) {
            0 => return (self.bad(), String::from("<bad>")),
            1 => {
                // Across the edge: no NUL before it (EFAULT), or one just before it.
                let n = 1 + self.rng.below(20);
                let nul = self.rng.chance(1, 2);
                let at = self.edge - n - u64::from(nul);
                let s = self.bytes(at - self.base, n + u64::from(nul));
                s.fill(b'q');
                if nul {
                    s[n as usize] = 0;
                }
                return (at, format!("<edge {n}{}>", if nul { "+nul" } else { "" }));
            }
            2 => vec![b'p'; 61],   // one component too long
            3 => vec![b'a'; 1500], // longer than any path
            4 => self.garbage_name(mutating),
            5..=7 if !mutating => self.rng.pick(READ_PATHS).as_bytes().to_vec(),
            8 if !mutating => format!("/proc/{}", self.me).into_bytes(),
            _ => self.rng.pick(SCRATCH_PATHS).as_bytes().to_vec(),
        };
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        let mut z = bytes;
        z.push(0);
        (self.put(slot, &z), shown)
    }

    /// A descriptor: one of the batch's (mostly), a closed one, or a number that names none.
    fn fd(&mut self) -> u64 {
        match self.rng.below(20) {
            0..=15 if !self.pool.is_empty() => self.rng.pick(&self.pool).0 as u64,
            16 if !self.closed.is_empty() => *self.rng.pick(&self.closed) as u64,
            17 if !self.pool.is_empty() => 1 << 32 | self.rng.pick(&self.pool).0 as u64,
            _ => *self.rng.pick(&[u64::MAX, u64::MAX - 1, 64, 65, 1000, 0x7fff_ffff, 1 << 63]),
        }
    }

    fn kind_of(&self, fd: u64) -> Option<Kind> {
        self.pool.iter().find(|(f, _)| *f as u64 == fd).map(|&(_, k)| k)
    }

    /// A socket address at `SLOT_ADDR`: the batch's own ports on loopback and on the guest's
    /// own address, refused ports, an address on the guest's network that no one has, and
    /// bad families. Nothing that would leave the machine (no address outside 127/8 and
    /// the guest's own network; the network is QEMU's restricted user network anyway).
    fn sockaddr(&mut self) -> u64 {
        let addr = *self.rng.pick(&[
            [127, 0, 0, 1],
            [127, 0, 0, 1],
            [0, 0, 0, 0],
            [10, 0, 2, 15],
            [10, 0, 2, 99],
            [127, 1, 2, 3],
            [1, 2, 3, 4],
        ]);
        let port = match self.rng.below(4) {
            0 if !self.ports.is_empty() => *self.rng.pick(&self.ports),
            1 => *self.rng.pick(&[0u16, 1, 7, 80, 65535]),
            _ => self.rng.below(65536) as u16,
        };
        let mut a = SockAddrIn::new(addr, port);
        if self.rng.chance(1, 10) {
            a.family = *self.rng.pick(&[0u16, 1, 10, 0xffff]);
        }
        let bytes = a.encode();
        let at = self.put(SLOT_ADDR, &bytes);
        self.or_bad(at)
    }

    fn addrlen(&mut self) -> u64 {
        *self.rng.pick(&[16, 16, 16, 0, 15, 17, 128, 1 << 32 | 16, u64::MAX])
    }

    /// An address-length pointer for calls that write an address.
    fn addrlen_ptr(&mut self) -> u64 {
        let v = *self.rng.pick(&[16u32, 16, 0, 4, 15, 1 << 31, u32::MAX]);
        let at = self.put_u32(SLOT_LEN, v);
        match self.rng.below(5) {
            0 => 0,
            _ => self.or_bad(at),
        }
    }

    // ---- bookkeeping ----

    fn say(&self, what: &str) {
        if self.verbose {
            let _ = ulib::fdprint!(2, "fuzz: b{} #{} {}\n", self.index, self.call_no, what);
        }
    }

    /// The call, and in verbose mode its result.
    fn call(&self, n: usize, a: [u64; 6]) -> isize {
        let ret = raw(n, a);
        if self.verbose {
            let _ = ulib::fdprint!(2, "fuzz: b{} #{} = {ret}\n", self.index, self.call_no);
        }
        ret
    }

    fn trouble(&mut self, t: Trouble) {
        let (kind, msg) = match &t {
            Trouble::Odd(m) => ("ODD", m),
            Trouble::Hang(m) => ("HANG", m),
        };
        let _ =
            ulib::fdprint!(2, "fuzz: {kind}: batch {} call #{}: {msg}\n", self.index, self.call_no);
        self.troubles.push(t);
    }

    fn set_nonblock(fd: Fd) {
        if let Ok(flags) = net::fcntl(fd, F_GETFL, 0) {
            let _ = net::fcntl(fd, F_SETFL, flags | open::NONBLOCK);
        }
    }

    /// A descriptor the kernel just made: non-blocking, into the pool (or closed when the
    /// pool is full, so that the table keeps some room).
    fn adopt(&mut self, fd: Fd, kind: Kind) {
        if fd < 0 {
            return;
        }
        self.closed.retain(|&c| c != fd);
        if self.pool.len() >= POOL_MAX {
            let _ = sys::close(fd);
            self.closed.push(fd);
            return;
        }
        // What it really is: a device (the console) must not get random writes.
        let kind = match sys::fstat(fd).map(|st| st.kind) {
            Ok(kind::DEVICE) => Kind::Console,
            Ok(kind::DIR) if kind == Kind::File => Kind::Dir,
            _ => kind,
        };
        Self::set_nonblock(fd);
        self.pool.push((fd, kind));
    }

    fn forget(&mut self, fd: u64) {
        if let Some(i) = self.pool.iter().position(|(f, _)| *f as u64 == fd) {
            let (f, _) = self.pool.swap_remove(i);
            self.closed.push(f);
        }
    }

    fn restore_nonblock(&self) {
        for &(fd, _) in &self.pool {
            Self::set_nonblock(fd);
        }
    }

    // ---- setup ----

    /// Descriptors of every kind, files and directories to work on.
    pub fn setup(&mut self) {
        self.scramble();
        let _ = sys::mkdir("d");
        let _ = sys::mkdir("d/e");
        if let Ok(f) = File::create("f") {
            let _ = f.write_all(b"some bytes in a file\n");
        }
        let _ = File::create("g");
        let _ = sys::mknod("c", ulib::abi::syscall::dev::CONSOLE, 0);
        let _ = sys::mknod("n", 0x77, 1);
        for (path, flags, kind) in [
            ("f", sys::RDWR, Kind::File),
            ("f", sys::RDONLY, Kind::File),
            ("g", sys::WRONLY | sys::APPEND, Kind::File),
            (".", sys::RDONLY, Kind::Dir),
            ("/", sys::RDONLY, Kind::Dir),
            ("/console", sys::RDWR, Kind::Console),
            ("c", sys::RDONLY, Kind::Console),
            ("/proc", sys::RDONLY, Kind::Proc),
            ("/proc/meminfo", sys::RDONLY, Kind::Proc),
            ("/proc/net", sys::RDONLY, Kind::Proc),
            ("/proc/1", sys::RDONLY, Kind::Proc),
        ] {
            if let Ok(fd) = sys::open(path, flags) {
                self.adopt(fd, kind);
            }
        }
        if let Ok(fd) = sys::open(&format!("/proc/{}", self.me), sys::RDONLY) {
            self.adopt(fd, Kind::Proc);
        }
        if let Ok((r, w)) = sys::pipe() {
            self.adopt(r, Kind::PipeRead);
            self.adopt(w, Kind::PipeWrite);
        }
        // A closed descriptor.
        if let Ok(fd) = sys::open("g", sys::RDONLY) {
            let _ = sys::close(fd);
            self.closed.push(fd);
        }
        if !self.groups.net {
            return;
        }
        // Sockets: a fresh one, a bound UDP one, a listener, and a connection's two ends.
        let lo = |port| SockAddrIn::new([127, 0, 0, 1], port);
        if let Ok(fd) = net::socket(SOCK_STREAM) {
            self.adopt(fd, Kind::Socket);
        }
        if let Ok(fd) = net::socket(SOCK_DGRAM) {
            if net::bind(fd, &lo(0)).is_ok() {
                if let Ok(a) = net::getsockname(fd) {
                    self.ports.push(a.port());
                }
            }
            self.adopt(fd, Kind::Socket);
        }
        let Ok(listener) = net::tcp_listener(&lo(0), 4) else { return };
        let Ok(port) = net::getsockname(listener).map(|a| a.port()) else { return };
        self.ports.push(port);
        self.adopt(listener, Kind::Socket);
        let Ok(client) = net::socket(SOCK_STREAM) else { return };
        self.adopt(client, Kind::Socket);
        let _ = net::connect(client, &lo(port)); // EINPROGRESS: non-blocking
        let mut fds = [PollFd { fd: listener, events: POLLIN, revents: 0 }];
        if matches!(net::poll(&mut fds, 2000), Ok(1)) {
            if let Ok((conn, _)) = net::accept(listener) {
                self.adopt(conn, Kind::Socket);
            }
        }
    }

    // ---- the calls ----

    /// Make `calls` calls; returns the count made.
    pub fn run(&mut self, calls: usize) -> Summary {
        for i in 0..calls {
            self.call_no = i;
            self.one();
            if sys::brk() as u64 != self.brk {
                let _ = ulib::fdprint!(
                    2,
                    "fuzz: fuzzer error: batch {} call #{}: the break moved (allocator?)\n",
                    self.index,
                    i
                );
                sys::exit(4);
            }
            if self.troubles.iter().any(|t| matches!(t, Trouble::Hang(_))) {
                return Summary { calls: i + 1 };
            }
        }
        self.reap_kids();
        Summary { calls }
    }

    fn one(&mut self) {
        let roll = self.rng.below(100);
        if roll < 4 {
            let n = *self.rng.pick(&INVALID_NUMBERS);
            let a = [self.int(), self.in_ptr(), self.len(), self.int(), self.out_ptr(), self.int()];
            self.say(&format!("{}({:#x}, {:#x}, {:#x}, ..)", name_of(n), a[0], a[1], a[2]));
            let ret = self.call(n, a);
            if ret != Errno::ENOSYS.ret() {
                self.trouble(Trouble::Odd(format!(
                    "system call {n:#x} returned {ret}, not ENOSYS"
                )));
            }
            return;
        }
        if roll < 8 {
            if !self.doomed {
                self.risky();
            }
            return;
        }
        let n = *self.rng.pick(CALLS);
        // A doomed grandchild makes no process of its own: nothing would watch it.
        if self.doomed && [nr::FORK, nr::SPAWN, nr::NSENTER, nr::WAIT, nr::EXEC].contains(&n) {
            return;
        }
        let net_call = (nr::SOCKET..=nr::ARPING).contains(&n) && n != nr::POLL && n != nr::FCNTL;
        if (net_call && !self.groups.net)
            || (n == nr::RENAME && !self.groups.rename)
            || (n == nr::EXEC && !self.groups.exec)
            || (n == nr::ARPING && !self.rng.chance(1, 8))
        {
            return;
        }
        self.scramble_some();
        match n {
            nr::FORK => self.fork(),
            nr::SPAWN => self.spawn(),
            nr::NSENTER => self.nsenter(),
            nr::WAIT => self.wait(),
            nr::PIPE => self.pipe(),
            nr::EXEC => self.exec(),
            nr::KILL => self.kill(),
            nr::SBRK => self.sbrk(),
            nr::POLL => self.poll(),
            _ => self.plain(n),
        }
    }

    /// Refresh a few random words of the data area (the kernel may have written it).
    fn scramble_some(&mut self) {
        for _ in 0..8 {
            let off = DATA + self.rng.below((R_SIZE - DATA) / 8) * 8;
            let v = self.rng.next();
            self.put(off, &v.to_le_bytes());
        }
    }

    /// Calls whose arguments need no bookkeeping beyond the result.
    fn plain(&mut self, n: usize) {
        let mut a = [0u64; 6];
        let mut desc = String::new();
        match n {
            nr::READ | nr::RECV | nr::RECVFROM => {
                a[0] = self.fd();
                a[1] = self.out_ptr();
                a[2] = self.len();
                a[3] = self.int();
                if n == nr::RECVFROM {
                    a[4] = if self.rng.chance(1, 4) { 0 } else { self.out_ptr() };
                    a[5] = self.addrlen_ptr();
                }
            }
            nr::WRITE | nr::SEND | nr::SENDTO => {
                a[0] = self.fd();
                a[1] = self.in_ptr();
                a[2] = self.len();
                a[3] = self.int();
                if self.kind_of(a[0]) == Some(Kind::Console) {
                    // The console gets short, printable text (the log must stay readable).
                    a[1] = self.put(SLOT_STRINGS, CONSOLE_TEXT);
                    a[2] = self.rng.below(CONSOLE_TEXT.len() as u64 + 1);
                }
                if n == nr::SENDTO {
                    a[4] = if self.rng.chance(1, 4) { 0 } else { self.sockaddr() };
                    a[5] = self.addrlen();
                }
            }
            nr::FSTAT => {
                a[0] = self.fd();
                a[1] = self.out_ptr();
            }
            nr::CHDIR => {
                let (p, s) = self.path(SLOT_PATH1, false);
                a[0] = p;
                desc = s;
            }
            nr::DUP | nr::CLOSE => a[0] = self.fd(),
            nr::GETPID | nr::UPTIME => {}
            nr::SLEEP => a[0] = self.rng.below(21),
            nr::OPEN => {
                let flags = match self.rng.below(12) {
                    0 => open::RDONLY,
                    1 => open::WRONLY,
                    2 => open::RDWR,
                    3 => open::ACCMODE,
                    4 => open::CREATE | open::WRONLY,
                    5 => open::CREATE | open::RDWR | open::TRUNC,
                    6 => open::APPEND | open::WRONLY,
                    7 => open::TRUNC,
                    8 => open::NONBLOCK,
                    9 => self.rng.next() as usize,
                    10 => usize::MAX,
                    _ => open::RDONLY,
                };
                let changes = flags & (open::ACCMODE | open::CREATE | open::TRUNC | open::APPEND);
                let (p, s) = self.path(SLOT_PATH1, changes != 0);
                a[0] = p;
                a[1] = flags as u64;
                desc = s;
            }
            nr::MKNOD => {
                let (p, s) = self.path(SLOT_PATH1, true);
                a[0] = p;
                a[1] = *self.rng.pick(&[1, 1, 0, 2, 0xffff, 0x1_0000, u64::MAX]);
                a[2] = self.int();
                desc = s;
            }
            nr::UNLINK | nr::MKDIR => {
                let (p, s) = self.path(SLOT_PATH1, true);
                a[0] = p;
                desc = s;
            }
            nr::LINK | nr::RENAME if self.rng.chance(1, 3) => {
                // Names related as a directory and its parent, child or itself: where
                // renames go wrong.
                let (p, q) = *self.rng.pick(RELATED);
                let mut z = p.as_bytes().to_vec();
                z.push(0);
                a[0] = self.put(SLOT_PATH1, &z);
                let mut z = q.as_bytes().to_vec();
                z.push(0);
                a[1] = self.put(SLOT_PATH2, &z);
                desc = format!("{p} -> {q}");
            }
            nr::LINK | nr::RENAME => {
                let (p, s) = self.path(SLOT_PATH1, n == nr::RENAME);
                let (q, t) = self.path(SLOT_PATH2, true);
                a[0] = p;
                a[1] = q;
                desc = format!("{s} -> {t}");
            }
            nr::GETCWD => {
                a[0] = self.out_ptr();
                a[1] = *self.rng.pick(&[0, 1, 2, 5, 10, 64, 1024, 1 << 32, u64::MAX]);
            }
            nr::GETNS => {}
            nr::PUBLISH => {
                // Host ports no test serves on: a container the batch made may keep one until
                // it dies.
                a[0] = *self.rng.pick(&[0, 1, 2, 3, 64, 65, 1 << 32 | 2, u64::MAX]);
                a[1] = *self.rng.pick(&[1, 2, 2, 0, 3, 1 << 32 | 1, u64::MAX]);
                a[2] = *self.rng.pick(&[40_000, 40_001, 0, 65_535, 65_536, u64::MAX]);
                a[3] = *self.rng.pick(&[80, 7, 0, 65_536, u64::MAX]);
            }
            nr::NSPCOPY => {
                // A tree copy only of the scratch directory's names: `-r /` would copy the disk.
                let recursive = self.rng.chance(1, 4);
                let (p, s) = if recursive {
                    let name = self.rng.pick(SCRATCH_PATHS).as_bytes().to_vec();
                    let shown = String::from_utf8_lossy(&name).into_owned();
                    let mut z = name;
                    z.push(0);
                    (self.put(SLOT_PATH1, &z), shown)
                } else {
                    self.path(SLOT_PATH1, false)
                };
                a[0] = p;
                a[1] = *self.rng.pick(&[0, 1, 2, 3, 64, 65, 1 << 32 | 2, u64::MAX]);
                a[2] = match self.rng.below(4) {
                    0 => 0,
                    1 => self.bad(),
                    _ => self.path(SLOT_PATH2, true).0,
                };
                a[3] = match self.rng.below(4) {
                    0 => self.rng.next(),
                    _ if recursive => 1,
                    _ => 0,
                };
                desc = s;
            }
            nr::SETFG => {
                a[0] = *self.rng.pick(&[
                    0,
                    self.me as u64,
                    0x7fff_fff0,
                    1 << 32 | self.me as u64,
                    u64::MAX,
                ]);
            }
            nr::ATTACH => {
                // Only what must change nothing: no such namespace (ESRCH), or the root's
                // console, in front already. A live container's would take the console from
                // the test (a shell started there, in front).
                a[0] = *self.rng.pick(&[0, 1, 65, 1000, 1 << 32 | 1, 1 << 32 | 2, u64::MAX]);
            }
            nr::SETPGID => {
                let kid = self.kids.first().map_or(2, |&k| k as u64);
                a[0] = *self.rng.pick(&[0, 0, self.me as u64, kid, 1, 0x7fff_fff0, 1 << 32]);
                a[1] = *self.rng.pick(&[
                    0,
                    0,
                    self.me as u64,
                    kid,
                    1,
                    0x7fff_fff0,
                    1 << 32 | self.me as u64,
                    u64::MAX,
                ]);
            }
            nr::GETPGID => {
                a[0] = *self.rng.pick(&[0, self.me as u64, 1, 2, 0x7fff_fff0, 1 << 32, u64::MAX]);
            }
            nr::SOCKET => {
                a[0] = *self.rng.pick(&[2, 2, 2, 0, 1, 10, 1 << 32 | 2, u64::MAX]);
                a[1] = *self.rng.pick(&[
                    SOCK_STREAM as u64,
                    SOCK_DGRAM as u64,
                    0,
                    3,
                    5,
                    SOCK_STREAM as u64 | 0x800,
                    SOCK_DGRAM as u64 | 1 << 32,
                    u64::MAX,
                ]);
                a[2] = *self.rng.pick(&[0, 0, 6, 17, 255, u64::MAX]);
            }
            nr::BIND | nr::CONNECT => {
                a[0] = self.fd();
                a[1] = self.sockaddr();
                a[2] = self.addrlen();
            }
            nr::LISTEN => {
                a[0] = self.fd();
                a[1] = *self.rng.pick(&[0, 1, 4, 128, 1000, u64::MAX, 1 << 32, 0x7fff_ffff]);
            }
            nr::ACCEPT | nr::GETSOCKNAME | nr::GETPEERNAME => {
                a[0] = self.fd();
                a[1] = if self.rng.chance(1, 5) { 0 } else { self.out_ptr() };
                a[2] = self.addrlen_ptr();
            }
            nr::SHUTDOWN => {
                a[0] = self.fd();
                a[1] = *self.rng.pick(&[0, 1, 2, SHUT_RDWR as u64 + 1, u64::MAX]);
            }
            nr::FCNTL => {
                a[0] = self.fd();
                a[1] = *self.rng.pick(&[3, 4, 4, 0, 1, 2, 1 << 32 | 3, u64::MAX]);
                a[2] = self.int();
            }
            nr::ARPING => {
                a[0] = *self.rng.pick(&[
                    u32::from_ne_bytes([10, 0, 2, 2]) as u64,
                    u32::from_ne_bytes([10, 0, 2, 99]) as u64,
                    u32::from_ne_bytes([127, 0, 0, 1]) as u64,
                    0,
                    1 << 32 | u32::from_ne_bytes([10, 0, 2, 2]) as u64,
                ]);
                a[1] = self.out_ptr();
            }
            _ => return,
        }
        self.say(&format!(
            "{}({:#x}, {:#x}, {:#x}, {:#x}, {:#x}, {:#x}) {desc}",
            name_of(n),
            a[0],
            a[1],
            a[2],
            a[3],
            a[4],
            a[5]
        ));
        let ret = self.call(n, a);
        self.check(n, &a, ret);
        if ret < 0 {
            return;
        }
        match n {
            nr::OPEN => self.adopt(ret as Fd, Kind::File),
            nr::DUP => {
                let k = self.kind_of(a[0]).unwrap_or(Kind::File);
                self.adopt(ret as Fd, k);
            }
            nr::ACCEPT | nr::SOCKET => self.adopt(ret as Fd, Kind::Socket),
            nr::CLOSE => self.forget(a[0]),
            nr::FCNTL if a[0] <= i32::MAX as u64 => Self::set_nonblock(a[0] as Fd),
            nr::CHDIR => {
                let _ = sys::chdir(&self.dir);
            }
            nr::BIND => {
                if let Ok(addr) = net::getsockname(a[0] as Fd) {
                    if self.ports.len() < 16 {
                        self.ports.push(addr.port());
                    }
                }
            }
            _ => {}
        }
    }

    /// The result of a call made by [`Batch::plain`]: an error the ABI knows, or a success
    /// that fits the arguments.
    fn check(&mut self, n: usize, a: &[u64; 6], ret: isize) {
        let name = name_of(n);
        if ret < 0 {
            if !known_error(ret) {
                self.trouble(Trouble::Odd(format!("{name}: unknown error {ret}")));
            }
            return;
        }
        let r = ret as u64;
        let bad = match n {
            nr::READ | nr::WRITE | nr::SEND | nr::RECV | nr::SENDTO | nr::RECVFROM => r > a[2],
            nr::GETPID => r != self.me as u64,
            nr::GETCWD => r >= a[1],
            nr::OPEN | nr::DUP | nr::ACCEPT | nr::SOCKET => r >= 64,
            _ => false,
        };
        if bad {
            let msg = format!("{name}({:#x}, {:#x}, {:#x}) returned {ret}", a[0], a[1], a[2]);
            self.trouble(Trouble::Odd(msg));
        }
    }

    fn fork(&mut self) {
        if self.kids.len() >= 16 {
            self.reap_kids();
        }
        let status = self.rng.below(256) as i32 - 128;
        self.say("fork()");
        match raw(nr::FORK, [0; 6]) {
            0 => sys::exit(status),
            pid if pid > 0 => self.kids.push(pid as Pid),
            ret => {
                if !known_error(ret) {
                    self.trouble(Trouble::Odd(format!("fork: unknown error {ret}")));
                }
            }
        }
    }

    /// `spawn` with any flags (valid kinds, none, unknown bits, the network kind that may be
    /// refused), or half the time `spawn2` with hostile arguments (`spawn_args`): like
    /// `fork`, the child exits at once, here as pid 1 of its namespace.
    fn spawn(&mut self) {
        if self.kids.len() >= 16 {
            self.reap_kids();
        }
        let flags = match self.rng.below(8) {
            0 => 0,
            1 => self.rng.next(),
            2 => 8,
            _ => 1 + self.rng.below(7),
        };
        let status = self.rng.below(256) as i32 - 128;
        let (n, args, must_fail) = if self.rng.chance(1, 2) {
            let (p, bad) = self.spawn_args();
            (nr::SPAWN2, p, bad)
        } else {
            (nr::SPAWN, 0, false)
        };
        self.say(&format!("{}({flags:#x}, {args:#x})", name_of(n)));
        match raw(n, [flags, args, 0, 0, 0, 0]) {
            0 => sys::exit(status),
            pid if pid > 0 => {
                self.kids.push(pid as Pid);
                if must_fail {
                    self.trouble(Trouble::Odd(format!("spawn2 took bad arguments at {args:#x}")));
                }
            }
            ret => {
                if !known_error(ret) {
                    self.trouble(Trouble::Odd(format!("spawn: unknown error {ret}")));
                }
            }
        }
    }

    /// `spawn2`'s argument: null, a valid `SpawnArgs` (small or huge limits, a name from a
    /// few, so that two live ones may clash), one with a bad name or nonzero padding, random
    /// bytes, or a bad pointer. Also whether the kernel must refuse it (EINVAL).
    fn spawn_args(&mut self) -> (u64, bool) {
        use ulib::abi::syscall::ns::{name_ok, SpawnArgs, NAME_MAX};
        const NAMES: [&str; 4] = ["", "fz", "fz-1", "a_very-long-nam"];
        const MEM: [u64; 6] = [0, 1, 64 << 10, 1 << 20, 64 << 20, u64::MAX];
        let pids = *self.rng.pick(&[0u32, 1, 2, 3, u32::MAX]);
        let mem = *self.rng.pick(&MEM);
        let name = *self.rng.pick(&NAMES);
        let mut b = SpawnArgs::new(pids, mem, name).expect("valid names").encode();
        let bad = match self.rng.below(8) {
            0 => return (0, false),
            1 => return (self.in_ptr(), false),
            2 => return (self.edge - 1 - self.rng.below(SpawnArgs::SIZE as u64), false),
            3 => {
                // A name of garbage bytes (it may happen to be a good one).
                let g = self.garbage_name(true);
                let len = g.len().min(NAME_MAX + 1);
                b[16..32].fill(0);
                b[16..16 + len].copy_from_slice(&g[..len]);
                let end = b[16..32].iter().position(|&c| c == 0).unwrap_or(16);
                let after_nul = b[16 + end..32].iter().any(|&c| c != 0);
                end == 16 || after_nul || (end > 0 && !name_ok(&b[16..16 + end]))
            }
            4 => {
                b[4 + self.rng.index(4)] = 1 + self.rng.below(255) as u8;
                true
            }
            5 => {
                // A good name, then junk after its NUL.
                b[16..32].fill(0);
                b[16] = b'q';
                b[18 + self.rng.index(14)] = b'x';
                true
            }
            _ => false,
        };
        let p = self.put(SLOT_ADDR, &b);
        match self.rng.below(10) {
            0 => (self.bad(), false),
            _ => (p, bad),
        }
    }

    /// `nsenter` into any namespace (one of a batch's containers, the root, none): like
    /// `fork`, the child exits at once, here in that namespace.
    fn nsenter(&mut self) {
        if self.kids.len() >= 16 {
            self.reap_kids();
        }
        let nsid = *self.rng.pick(&[0, 1, 2, 3, 4, 64, 65, 1 << 32 | 2, u64::MAX]);
        let status = self.rng.below(256) as i32 - 128;
        self.say(&format!("nsenter({nsid:#x})"));
        match raw(nr::NSENTER, [nsid, 0, 0, 0, 0, 0]) {
            0 => sys::exit(status),
            pid if pid > 0 => self.kids.push(pid as Pid),
            ret => {
                if !known_error(ret) {
                    self.trouble(Trouble::Odd(format!("nsenter: unknown error {ret}")));
                }
            }
        }
    }

    fn wait(&mut self) {
        // Sometimes a child that exits at once first: then wait returns it (or, for a bad
        // status pointer, EFAULT before reaping it).
        if self.rng.chance(1, 2) && self.kids.len() < 16 {
            match sys::fork() {
                Ok(0) => sys::exit(3),
                Ok(pid) => self.kids.push(pid),
                Err(_) => {}
            }
        }
        let p = match self.rng.below(4) {
            0 => 0,
            _ => self.out_ptr(),
        };
        self.say(&format!("wait({p:#x})"));
        let ret = self.call(nr::WAIT, [p, 0, 0, 0, 0, 0]);
        if ret > 0 {
            self.kids.retain(|&k| k != ret as Pid);
        } else if ret < 0 && !known_error(ret) {
            self.trouble(Trouble::Odd(format!("wait: unknown error {ret}")));
        }
    }

    fn pipe(&mut self) {
        let slot = self.base + SLOT_FDS;
        let p = self.or_bad(slot);
        self.say(&format!("pipe({p:#x})"));
        let ret = self.call(nr::PIPE, [p, 0, 0, 0, 0, 0]);
        if ret < 0 {
            if !known_error(ret) {
                self.trouble(Trouble::Odd(format!("pipe: unknown error {ret}")));
            }
            return;
        }
        if p >= self.base && p + 8 <= self.mapped_end() {
            let b = self.bytes(p - self.base, 8);
            let r = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let w = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            self.adopt(r, Kind::PipeRead);
            self.adopt(w, Kind::PipeWrite);
        } else {
            self.trouble(Trouble::Odd(format!("pipe({p:#x}) succeeded")));
        }
    }

    fn kill(&mut self) {
        let pid = match self.rng.below(8) {
            0 if !self.kids.is_empty() => *self.rng.pick(&self.kids) as u64,
            1 => 0,
            2 => u64::MAX,
            3 => 1 << 32 | 1,
            4 => 1 << 32 | self.runner as u64,
            5 => 1 << 32 | self.me as u64,
            6 => 0x7fff_fff0,
            _ => 0xffff_fff0,
        };
        self.say(&format!("kill({pid:#x})"));
        let ret = self.call(nr::KILL, [pid, 0, 0, 0, 0, 0]);
        if ret >= 0 && !self.kids.iter().any(|&k| k as u64 == pid) {
            self.trouble(Trouble::Odd(format!("kill({pid:#x}) succeeded: not a child")));
        } else if ret < 0 && !known_error(ret) {
            self.trouble(Trouble::Odd(format!("kill: unknown error {ret}")));
        }
    }

    fn sbrk(&mut self) {
        let below_start = self.brk as i64 - 0x40_0000 + PAGE as i64;
        let delta: i64 = match self.rng.below(10) {
            0 => 0,
            1 if self.grown < GROW_MAX => 1,
            2 | 3 if self.grown < GROW_MAX => (PAGE * (1 + self.rng.below(16))) as i64,
            4 if self.grown > 0 => -(self.grown as i64),
            5 if self.grown > 0 => -(1 + self.rng.below(self.grown) as i64),
            6 => 1 << 46,
            7 => i64::MAX,
            8 => -below_start,
            _ => *self.rng.pick(&[i64::MIN, -(1 << 40), i64::MIN + 1]),
        };
        self.say(&format!("sbrk({delta})"));
        let ret = self.call(nr::SBRK, [delta as u64, 0, 0, 0, 0, 0]);
        if ret < 0 {
            if !known_error(ret) {
                self.trouble(Trouble::Odd(format!("sbrk: unknown error {ret}")));
            }
            return;
        }
        if ret as u64 != self.brk {
            self.trouble(Trouble::Odd(format!("sbrk({delta}) returned {ret:#x}, not the break")));
        }
        self.brk = self.brk.wrapping_add_signed(delta);
        if self.brk < self.edge {
            // The scratch region is gone: nothing more can be done safely.
            self.trouble(Trouble::Odd(format!("sbrk({delta}) went below the region")));
            sys::exit(5);
        }
        self.grown = self.brk - self.edge;
    }

    fn poll(&mut self) {
        let n = match self.rng.below(10) {
            0 => 0,
            1 => 64,
            2 => 65,
            3 => 1024,
            4 => 1025,
            5 => u64::MAX,
            _ => 1 + self.rng.below(8),
        };
        let entries = n.min(1024);
        for i in 0..entries {
            let fd = match self.rng.below(5) {
                0 => -1,
                1 => self.rng.next() as i32,
                _ => self.fd() as i32,
            };
            let events = match self.rng.below(3) {
                0 => self.rng.next() as i16,
                _ => *self.rng.pick(&[POLLIN, POLLOUT, POLLIN | POLLOUT]),
            };
            let mut e = [0u8; 8];
            e[..4].copy_from_slice(&fd.to_le_bytes());
            e[4..6].copy_from_slice(&events.to_le_bytes());
            self.put(SLOT_POLL + i * 8, &e);
        }
        let p = self.or_bad(self.base + SLOT_POLL);
        let timeout = *self.rng.pick(&[0u64, 0, 1, 5, 20]);
        self.say(&format!("poll({p:#x}, {n}, {timeout})"));
        let ret = self.call(nr::POLL, [p, n, timeout, 0, 0, 0]);
        if ret < 0 && !known_error(ret) {
            self.trouble(Trouble::Odd(format!("poll: unknown error {ret}")));
        } else if ret > entries as isize {
            self.trouble(Trouble::Odd(format!("poll of {n} returned {ret}")));
        }
    }

    // ---- grandchildren ----

    /// Run `f` in a grandchild that is killed after `limit_ms`; it must be gone within
    /// [`KILLED_GOES_MS`] of that. Returns its exit status (None: a hang, reported).
    fn grandchild(
        &mut self,
        what: &str,
        limit_ms: u64,
        f: impl FnOnce(&mut Self) -> i32,
    ) -> Option<i32> {
        self.say(what);
        let (r, w) = sys::pipe().ok()?;
        let pid = match sys::fork() {
            Ok(0) => {
                let _ = sys::close(r);
                self.me = sys::getpid();
                let status = f(self);
                sys::exit(status)
            }
            Ok(pid) => pid,
            Err(_) => {
                let _ = (sys::close(r), sys::close(w));
                return None;
            }
        };
        let _ = sys::close(w);
        // The pipe's write end is held by the grandchild (and what it execs): end of file
        // when it is gone, or when it is killed at the limit. (A process it forked may hold
        // the pipe longer: then its state tells.)
        let mut fds = [PollFd { fd: r, events: POLLIN, revents: 0 }];
        let ended = matches!(net::poll(&mut fds, limit_ms as isize), Ok(1));
        let _ = sys::close(r);
        if !ended {
            let _ = sys::kill(pid);
            if !crate::zombie_within(pid, KILLED_GOES_MS) {
                self.trouble(Trouble::Hang(format!(
                    "{what}: pid {pid} still there {KILLED_GOES_MS} ms after kill"
                )));
                return None;
            }
        }
        let status = self.reap(pid);
        self.restore_nonblock();
        status
    }

    /// Wait for `pid` (the others reaped meanwhile are forgotten).
    fn reap(&mut self, pid: Pid) -> Option<i32> {
        loop {
            match sys::wait() {
                Ok((p, status)) if p == pid => return Some(status),
                Ok((p, _)) => self.kids.retain(|&k| k != p),
                Err(_) => return None,
            }
        }
    }

    fn reap_kids(&mut self) {
        while !self.kids.is_empty() {
            match sys::wait() {
                Ok((p, _)) => self.kids.retain(|&k| k != p),
                Err(_) => self.kids.clear(),
            }
        }
    }

    /// Calls that end a process or may wait for ever, in a grandchild.
    fn risky(&mut self) {
        let pick = self.rng.below(12);
        match pick {
            0 => {
                let status = self.int();
                self.grandchild(&format!("exit({status:#x})"), GRANDCHILD_MS, |_| {
                    raw(nr::EXIT, [status, 0, 0, 0, 0, 0]);
                    99
                });
            }
            1 => {
                let ms = *self.rng.pick(&[1u64 << 63, u64::MAX, u64::MAX / 1_000_000 + 1, 1 << 32]);
                self.grandchild(&format!("sleep({ms:#x}) (killed)"), 30, |_| {
                    raw(nr::SLEEP, [ms, 0, 0, 0, 0, 0]);
                    0
                });
            }
            2 => {
                let timeout = *self.rng.pick(&[u64::MAX, 1 << 32, (1 << 32) + 1, i64::MAX as u64]);
                let p = self.base + SLOT_POLL;
                let n = 1 + self.rng.below(4);
                self.grandchild(&format!("poll(.., {n}, {timeout:#x}) (killed)"), 30, |_| {
                    raw(nr::POLL, [p, n, timeout, 0, 0, 0]);
                    0
                });
            }
            3 => {
                // A blocking read: the grandchild clears NONBLOCK (on the shared file).
                let fd = self.fd();
                let out = self.out_ptr();
                let len = self.len();
                self.grandchild(&format!("blocking read({fd:#x}, {out:#x}, {len:#x})"), 30, |_| {
                    let _ = raw(nr::FCNTL, [fd, F_SETFL as u64, 0, 0, 0, 0]);
                    raw(nr::READ, [fd, out, len, 0, 0, 0]);
                    0
                });
            }
            4 => {
                self.grandchild("kill(self)", GRANDCHILD_MS, |_| {
                    raw(nr::KILL, [sys::getpid() as u64, 0, 0, 0, 0, 0]);
                    // Killed: it dies on its way back to user mode.
                    98
                });
            }
            5 => {
                let delta = -(self.rng.below(64 << 20) as i64) - 1;
                self.grandchild(&format!("sbrk({delta}) then touch"), GRANDCHILD_MS, |b| {
                    let ret = raw(nr::SBRK, [delta as u64, 0, 0, 0, 0, 0]);
                    if ret >= 0 {
                        // Touch what was given back: a fault must end this process.
                        let at = (ret as u64).wrapping_add_signed(delta).next_multiple_of(PAGE);
                        if at < b.brk {
                            // SAFETY: deliberately not: this memory was just unmapped (or
                            // is the allocator's heap, which this dying process no longer
                            // uses); the kernel must end the process.
                            unsafe { core::ptr::write_volatile(at as *mut u64, 1) };
                        }
                    }
                    0
                });
            }
            6 => {
                // wait for a child that never exits: killed.
                self.grandchild("wait for a sleeping child (killed)", 30, |_| {
                    if let Ok(0) = sys::fork() {
                        let _ = sys::sleep(200);
                        sys::exit(0);
                    }
                    let _ = sys::wait();
                    0
                });
            }
            7 if self.groups.cpu => {
                let trick = self.rng.below(crate::cpu::TRICKS as u64) as usize;
                let status =
                    self.grandchild(&format!("cpu trick {trick}"), GRANDCHILD_MS, move |_| {
                        crate::cpu::trick(trick);
                        77
                    });
                if status == Some(77) {
                    let msg = format!("cpu trick {} did not fault", crate::cpu::name(trick));
                    self.trouble(Trouble::Odd(msg));
                }
            }
            8 | 9 if self.groups.exec => self.exec(),
            10 | 11 => {
                // Calls in a grandchild killed at a random moment: whatever it is in the
                // middle of (a wait, a pipe or socket operation, a transaction) is cut short
                // and must leave nothing behind.
                let (calls, after) = (1 + self.rng.below(40), self.rng.below(15));
                let what = format!("{calls} calls in a grandchild killed after {after} ms");
                self.grandchild(&what, after, move |b| {
                    b.doomed = true;
                    for _ in 0..calls {
                        b.one();
                    }
                    0
                });
            }
            _ => {}
        }
    }

    /// `exec` in a grandchild: a real program, a mutated one, a file that is no program, or
    /// a bad path; argv null, short, bad, too many or too long.
    fn exec(&mut self) {
        let (path, shown, real) = match self.rng.below(10) {
            0..=2 => {
                let p = *self.rng.pick(&PROGRAMS);
                let mut z = p.as_bytes().to_vec();
                z.push(0);
                (self.put(SLOT_PATH1, &z), String::from(p), true)
            }
            3..=5 if self.groups.elf && !self.program.is_empty() => {
                let what = elf::mutate(self.program, &mut self.rng, &mut self.mutated);
                match File::open("m", sys::WRONLY | sys::CREATE | sys::TRUNC) {
                    Ok(f) => {
                        let _ = f.write_all(&self.mutated);
                    }
                    Err(_) => return,
                }
                let shown = format!("m ({what}, {} bytes)", self.mutated.len());
                (self.put(SLOT_PATH1, b"m\0"), shown, true)
            }
            6 => {
                let p =
                    *self.rng.pick(&["f", "g", "d", "c", "n", "/", "/proc/meminfo", "/console"]);
                let mut z = p.as_bytes().to_vec();
                z.push(0);
                (self.put(SLOT_PATH1, &z), String::from(p), false)
            }
            _ => {
                let (p, s) = self.path(SLOT_PATH1, false);
                (p, s, false)
            }
        };
        // argv: pointers to strings in SLOT_STRINGS (or the data area for long ones).
        let argv = self.base + SLOT_ARGV;
        let argv_arg = match self.rng.below(10) {
            0 | 1 => 0,
            2 => self.bad(),
            _ => {
                let count = match self.rng.below(10) {
                    0 if !real => 65,
                    _ => self.rng.below(5),
                };
                let mut at = SLOT_STRINGS;
                for i in 0..count {
                    let s = match self.rng.below(10) {
                        0 => self.bad(),
                        1 if !real => {
                            // A long string in the data area: up to the edge (E2BIG or
                            // EFAULT when it has no NUL).
                            let n = 1 + self.rng.below(R_SIZE - DATA - 1);
                            let start = self.edge - n;
                            let b = self.bytes(start - self.base, n);
                            b.fill(b'L');
                            if self.rng.chance(1, 2) {
                                b[b.len() - 1] = 0;
                            }
                            start
                        }
                        _ => {
                            let mut v = format!("a{i}").into_bytes();
                            v.push(0);
                            let p = self.put(at, &v);
                            at += v.len() as u64;
                            p
                        }
                    };
                    self.put(SLOT_ARGV + i * 8, &s.to_le_bytes());
                }
                self.put(SLOT_ARGV + count * 8, &0u64.to_le_bytes());
                argv
            }
        };
        let what = format!("exec({path:#x} {shown}, {argv_arg:#x})");
        let status = self.grandchild(&what, GRANDCHILD_MS, move |_| {
            let ret = raw(nr::EXEC, [path, argv_arg, 0, 0, 0, 0]);
            if ret >= 0 || !known_error(ret) {
                return EXEC_ODD;
            }
            (-ret) as i32
        });
        if status == Some(EXEC_ODD) {
            self.trouble(Trouble::Odd(format!("{what} returned success or an unknown error")));
        }
    }
}

/// The batch's report to the runner: one line.
pub fn report_line(index: u64, s: &Summary, troubles: &[Trouble]) -> String {
    let mut line = String::new();
    let hangs = troubles.iter().filter(|t| matches!(t, Trouble::Hang(_))).count();
    let odd = troubles.len() - hangs;
    let _ = writeln!(line, "end {index} {} {hangs} {odd}", s.calls);
    line
}
