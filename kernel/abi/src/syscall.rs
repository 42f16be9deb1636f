//! The system-call ABI, one definition for the kernel and user programs.
//!
//! Calling convention (x86_64 `syscall`): number in `rax`; arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, `r8`, `r9`; result in `rax`. `rcx` and `r11` are clobbered by the instruction. A
//! result `>= 0` is success; `-errno` (see [`Errno`]) is failure. Every pointer argument is
//! checked by the kernel against the caller's mappings: a bad one gives `EFAULT`, never a
//! kernel fault.
//!
//! Program entry: `_start(argc: usize, argv: *const *const u8)` with `rsp` 16-byte aligned;
//! `argv` is a NULL-terminated array of NUL-terminated strings on the new stack.

/// System-call numbers.
pub mod nr {
    pub const FORK: usize = 1;
    /// `exit(status: i32) -> !`
    pub const EXIT: usize = 2;
    /// `wait(status: *mut i32, flags) -> pid` (status may be null); ECHILD without children,
    /// unless `flags` has `wait::FOREVER`.
    pub const WAIT: usize = 3;
    /// `pipe(fds: *mut [i32; 2])`
    pub const PIPE: usize = 4;
    /// `read(fd, buf, len) -> n` (0 at end of file)
    pub const READ: usize = 5;
    /// `kill(pid)`
    pub const KILL: usize = 6;
    /// `exec(path: *const u8 (NUL-terminated), argv: *const *const u8)`: `/bin` first, then the path as given.
    pub const EXEC: usize = 7;
    /// `fstat(fd, st: *mut Stat)`
    pub const FSTAT: usize = 8;
    /// `chdir(path)`
    pub const CHDIR: usize = 9;
    /// `dup(fd) -> new fd`
    pub const DUP: usize = 10;
    pub const GETPID: usize = 11;
    /// `sbrk(delta: isize) -> old break` (shrinking allowed; EINVAL below the initial break)
    pub const SBRK: usize = 12;
    /// `sleep(ms)`; interrupted by kill
    pub const SLEEP: usize = 13;
    /// `uptime() -> ms since boot`
    pub const UPTIME: usize = 14;
    /// `open(path, flags) -> fd`
    pub const OPEN: usize = 15;
    /// `write(fd, buf, len) -> n`
    pub const WRITE: usize = 16;
    /// `mknod(path, major, minor)`
    pub const MKNOD: usize = 17;
    pub const UNLINK: usize = 18;
    /// `link(old, new)`
    pub const LINK: usize = 19;
    pub const MKDIR: usize = 20;
    pub const CLOSE: usize = 21;
    /// `rename(old, new)`
    pub const RENAME: usize = 22;
    /// `getcwd(buf, len) -> length` (walks `..` from the cwd up to the process's root)
    pub const GETCWD: usize = 23;
    /// `poweroff() -> !` (EPERM from inside a container: only the root namespace may)
    pub const POWEROFF: usize = 24;
    /// `setfg(pgid)`: the foreground process group of the caller's console (the one its
    /// descriptor 0, 1 or 2 is open on; ENOTTY without one): ^C kills every process of it;
    /// 0 = none. The group as the caller numbers it: ESRCH for none it can see, EPERM for 1
    pub const SETFG: usize = 25;
    /// `spawn(flags) -> pid`: `fork`, with the child in new namespaces (`ns::NEW*` flags);
    /// 0 in the child, the child's pid as the caller sees it in the parent
    pub const SPAWN: usize = 26;
    /// `nspcopy(src, nsid, dst (may be null: `/` + the source's last name), flags)`: copy a
    /// file (a tree with `ns::COPY_RECURSIVE`) as the caller sees it into the root of its
    /// descendant namespace `nsid`
    pub const NSPCOPY: usize = 27;
    /// `getns() -> id`: the caller's namespace (the one its last `spawn` made; 1: the root)
    pub const GETNS: usize = 28;
    /// `publish(nsid, proto = net::SOCK_STREAM | net::SOCK_DGRAM, hostport, port)`: connections
    /// (datagrams) to the E1000's address at `hostport` reach namespace `nsid`'s `port`, until
    /// that namespace dies. EPERM: the caller is not in the root network namespace, or `nsid`
    /// is not a strict descendant of its namespace; ESRCH: no such namespace; EINVAL: `nsid`
    /// has no network namespace of its own, a bad `proto`, a port 0 or above 65535;
    /// EADDRINUSE: `hostport` is published or bound already (publishing reserves it in the
    /// root's port space), or that container port is published already on another host port
    pub const PUBLISH: usize = 29;
    /// `socket(domain = AF_INET, type = SOCK_STREAM | SOCK_DGRAM, protocol = 0) -> fd`
    pub const SOCKET: usize = 30;
    /// `bind(fd, addr: *const SockAddrIn, len)`
    pub const BIND: usize = 31;
    /// `listen(fd, backlog)`
    pub const LISTEN: usize = 32;
    /// `accept(fd, addr: *mut SockAddrIn (may be null), len: *mut u32 (may be null)) -> fd`
    pub const ACCEPT: usize = 33;
    /// `connect(fd, addr: *const SockAddrIn, len)`
    pub const CONNECT: usize = 34;
    /// `send(fd, buf, len, flags) -> n`
    pub const SEND: usize = 35;
    /// `recv(fd, buf, len, flags) -> n` (0: the peer closed)
    pub const RECV: usize = 36;
    /// `sendto(fd, buf, len, flags, addr: *const SockAddrIn, addrlen) -> n`
    pub const SENDTO: usize = 37;
    /// `recvfrom(fd, buf, len, flags, addr: *mut SockAddrIn, addrlen: *mut u32) -> n`
    pub const RECVFROM: usize = 38;
    /// `getsockname(fd, addr: *mut SockAddrIn, len: *mut u32)`
    pub const GETSOCKNAME: usize = 39;
    /// `getpeername(fd, addr: *mut SockAddrIn, len: *mut u32)`
    pub const GETPEERNAME: usize = 40;
    /// `shutdown(fd, how: SHUT_RD | SHUT_WR | SHUT_RDWR)`
    pub const SHUTDOWN: usize = 41;
    /// `poll(fds: *mut PollFd, nfds, timeout_ms: isize (-1 = forever)) -> ready count`
    pub const POLL: usize = 42;
    /// `fcntl(fd, cmd: F_GETFL | F_SETFL, arg) -> flags` (only `open::NONBLOCK` is settable)
    pub const FCNTL: usize = 43;
    /// `arping(ip: u32 (network order), mac: *mut [u8; 6])`: ARP request on the NIC, wait
    /// for the reply (ETIMEDOUT after a second)
    pub const ARPING: usize = 44;
    /// `nsenter(nsid) -> pid`: `fork`, with the child in the existing namespace `nsid` (the
    /// namespaces its members have; root and working directory: its root). Only into a strict
    /// descendant of the caller's namespace (EPERM); ESRCH: no such namespace (or retiring);
    /// ENOMEM: its pid namespace is dying. 0 in the child, its pid as the caller sees it in
    /// the parent
    pub const NSENTER: usize = 45;
    /// `attach(nsid)`: bring namespace `nsid`'s console to the front (keyboard and serial
    /// input go to it, the screen and the serial port show it), starting `/bin/sh` on it in
    /// `nsid` if nothing has it open; returns once it is in front. From the root to any
    /// namespace, from a container to its strict descendants and to the root (1); EPERM
    /// otherwise, ESRCH for no such namespace. `^P ^Q` typed at the console goes back
    pub const ATTACH: usize = 46;
    /// `setpgid(pid, pgid)`: put process `pid` (0: the caller) into process group `pgid`
    /// (0: `pid`'s own number), both as the caller numbers them: only the caller or its
    /// children of its pid namespace (ESRCH, EPERM), into a new group of the process's own
    /// number or one with a process of that pid namespace (EPERM); EINVAL for a bad `pgid`
    pub const SETPGID: usize = 47;
    /// `getpgid(pid) -> pgid`: the process group of `pid` (0: the caller) as the caller
    /// numbers it (0 when its leader is in a pid namespace above the caller's)
    pub const GETPGID: usize = 48;
    /// `spawn2(flags, args: *const ns::SpawnArgs (may be null)) -> pid`: `spawn`, the new
    /// namespace with the limits and the name of `args` (null: none, as `spawn`). A limit
    /// above the caller's namespace's is cut to it. EINVAL: a bad name or nonzero padding;
    /// EEXIST: a live namespace has that name; EFAULT: a bad pointer.
    pub const SPAWN2: usize = 49;
    /// `sendfile(out_fd, in_fd, offset: *mut u64 (may be null), count) -> n`: up to `count`
    /// bytes (at most 64 KiB, and no more than the socket takes now) of the regular file
    /// `in_fd` from `*offset` (null: from its own offset, which advances) to the connected
    /// TCP socket `out_fd`, without passing through user memory; `*offset` advances by `n`.
    /// 0 at the end of the file. Waits for room in the socket unless it is non-blocking
    /// (EAGAIN). EBADF: a bad descriptor or `in_fd` not open for reading; EINVAL: `in_fd` not
    /// a regular file, `out_fd` not a TCP socket, an offset above `i64::MAX`; ENOTCONN: not
    /// connected; EPIPE: the socket can send no more (the peer reset, or it was shut);
    /// EFAULT: a bad `offset` pointer (checked before anything moves)
    pub const SENDFILE: usize = 50;
}

/// Sockets: Linux's values and layouts.
pub mod net {
    pub const AF_INET: usize = 2;
    pub const SOCK_STREAM: usize = 1;
    pub const SOCK_DGRAM: usize = 2;
    pub const SHUT_RD: usize = 0;
    pub const SHUT_WR: usize = 1;
    pub const SHUT_RDWR: usize = 2;
    pub const F_GETFL: usize = 3;
    pub const F_SETFL: usize = 4;
    pub const POLLIN: i16 = 0x1;
    pub const POLLOUT: i16 = 0x4;
    pub const POLLERR: i16 = 0x8;
    pub const POLLHUP: i16 = 0x10;
    pub const POLLNVAL: i16 = 0x20;

    /// `struct sockaddr_in`: 16 bytes; `port` and `addr` in network byte order.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct SockAddrIn {
        pub family: u16,
        pub port: u16,
        pub addr: [u8; 4],
        pub zero: [u8; 8],
    }

    impl SockAddrIn {
        pub const SIZE: usize = 16;

        pub fn new(addr: [u8; 4], port: u16) -> Self {
            SockAddrIn { family: AF_INET as u16, port: port.to_be(), addr, zero: [0; 8] }
        }

        /// The port in host byte order.
        pub fn port(&self) -> u16 {
            u16::from_be(self.port)
        }

        pub fn encode(&self) -> [u8; 16] {
            let mut b = [0u8; 16];
            b[0..2].copy_from_slice(&self.family.to_le_bytes());
            b[2..4].copy_from_slice(&self.port.to_ne_bytes());
            b[4..8].copy_from_slice(&self.addr);
            b
        }

        pub fn decode(b: &[u8]) -> Option<SockAddrIn> {
            let b = b.get(..16)?;
            Some(SockAddrIn {
                family: u16::from_le_bytes([b[0], b[1]]),
                port: u16::from_ne_bytes([b[2], b[3]]),
                addr: [b[4], b[5], b[6], b[7]],
                zero: [0; 8],
            })
        }
    }

    /// `struct pollfd`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct PollFd {
        pub fd: i32,
        pub events: i16,
        pub revents: i16,
    }
}

/// Defines [`Errno`] and its tables from one list, so that no table can miss a value.
macro_rules! errnos {
    ($($name:ident = $value:literal => $message:literal,)*) => {
        /// Error numbers, with Linux's values.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(i32)]
        pub enum Errno {
            $($name = $value,)*
        }

        impl Errno {
            /// Every error number.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];

            pub const fn message(self) -> &'static str {
                match self {
                    $(Errno::$name => $message,)*
                }
            }
        }
    };
}

errnos! {
    EPERM = 1 => "operation not permitted",
    ENOENT = 2 => "no such file or directory",
    ESRCH = 3 => "no such process",
    EINTR = 4 => "interrupted",
    EIO = 5 => "I/O error",
    E2BIG = 7 => "argument list too long",
    ENOEXEC = 8 => "exec format error",
    EBADF = 9 => "bad file descriptor",
    ECHILD = 10 => "no child processes",
    EAGAIN = 11 => "try again",
    ENOMEM = 12 => "out of memory",
    EFAULT = 14 => "bad address",
    EBUSY = 16 => "busy",
    EEXIST = 17 => "file exists",
    EXDEV = 18 => "cross-device link",
    ENODEV = 19 => "no such device",
    ENOTDIR = 20 => "not a directory",
    EISDIR = 21 => "is a directory",
    EINVAL = 22 => "invalid argument",
    ENFILE = 23 => "too many open files in system",
    EMFILE = 24 => "too many open files",
    ENOTTY = 25 => "not a console",
    EFBIG = 27 => "file too large",
    ENOSPC = 28 => "no space left on device",
    ESPIPE = 29 => "illegal seek",
    EMLINK = 31 => "too many links",
    EPIPE = 32 => "broken pipe",
    ERANGE = 34 => "result too large",
    ENAMETOOLONG = 36 => "file name too long",
    ENOSYS = 38 => "function not implemented",
    ENOTEMPTY = 39 => "directory not empty",
    ENOTSOCK = 88 => "not a socket",
    EDESTADDRREQ = 89 => "destination address required",
    EMSGSIZE = 90 => "message too long",
    EPROTOTYPE = 91 => "wrong protocol type for socket",
    EAFNOSUPPORT = 97 => "address family not supported",
    EOPNOTSUPP = 95 => "operation not supported",
    EADDRINUSE = 98 => "address in use",
    EADDRNOTAVAIL = 99 => "address not available",
    ENETUNREACH = 101 => "network unreachable",
    ECONNABORTED = 103 => "connection aborted",
    ECONNRESET = 104 => "connection reset by peer",
    EISCONN = 106 => "already connected",
    ENOTCONN = 107 => "not connected",
    ETIMEDOUT = 110 => "timed out",
    ECONNREFUSED = 111 => "connection refused",
    EALREADY = 114 => "already in progress",
    EINPROGRESS = 115 => "in progress",
}

impl Errno {
    /// The value a system call returns for this error.
    pub const fn ret(self) -> isize {
        -(self as i32 as isize)
    }

    /// The error a system call's result stands for (`None`: not an error this ABI has).
    pub fn from_ret(ret: isize) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.ret() == ret)
    }
}

/// `open` flags (Linux's values).
pub mod open {
    pub const RDONLY: usize = 0;
    pub const WRONLY: usize = 1;
    pub const RDWR: usize = 2;
    pub const ACCMODE: usize = 3;
    pub const CREATE: usize = 0x40;
    pub const TRUNC: usize = 0x200;
    pub const APPEND: usize = 0x400;
    /// Non-blocking descriptor (`fcntl(F_SETFL)`): a wait returns EAGAIN instead.
    pub const NONBLOCK: usize = 0x800;
}

/// Kinds in [`Stat::kind`] (the file system's inode kinds).
pub mod kind {
    pub const DIR: u16 = 1;
    pub const FILE: u16 = 2;
    pub const DEVICE: u16 = 3;
    /// Pipes and other descriptors with no inode.
    pub const PIPE: u16 = 4;
}

/// Device numbers for `mknod`.
pub mod dev {
    pub const CONSOLE: u16 = 1;
}

/// What `fstat` fills in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Stat {
    pub dev: u32,
    pub ino: u32,
    pub kind: u16,
    pub nlink: u16,
    pub major: u16,
    pub minor: u16,
    pub size: u64,
}

/// Process states in [`ProcRecord::state`].
pub mod state {
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SLEEPING: u32 = 3;
    pub const ZOMBIE: u32 = 4;
}

pub const PROC_NAME_LEN: usize = 16;

/// The content of `/proc/<pid>`: one fixed binary record, produced when read. Every pid in it
/// is as the reader sees it (its own pid namespace's numbers), except `ns_pid`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcRecord {
    /// The pid as the reader sees it.
    pub pid: u32,
    /// The parent's pid as the reader sees it; 0 when the reader cannot see the parent (the
    /// init of a container, seen from inside).
    pub ppid: u32,
    pub state: u32,
    /// The process's namespace (the one its last `spawn` made; `ns::ROOT` = 1 for the root).
    pub ns: u32,
    /// The pid as its own pid namespace sees it (1 for a container's init).
    pub ns_pid: u32,
    /// Memory size of the process in bytes.
    pub size: u64,
    pub name: [u8; PROC_NAME_LEN],
    /// CPU time used so far (user and kernel mode), in milliseconds.
    pub cpu_ms: u64,
}

impl ProcRecord {
    /// Encoded size: five u32, one u64, the name, one u64.
    pub const SIZE: usize = 5 * 4 + 8 + PROC_NAME_LEN + 8;

    pub fn name(&self) -> &[u8] {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(PROC_NAME_LEN);
        &self.name[..end]
    }

    /// Little-endian fields in declaration order.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        for (i, v) in [self.pid, self.ppid, self.state, self.ns, self.ns_pid].iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out[20..28].copy_from_slice(&self.size.to_le_bytes());
        out[28..44].copy_from_slice(&self.name);
        out[44..52].copy_from_slice(&self.cpu_ms.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<ProcRecord> {
        let b = b.get(..Self::SIZE)?;
        let u = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        Some(ProcRecord {
            pid: u(0),
            ppid: u(1),
            state: u(2),
            ns: u(3),
            ns_pid: u(4),
            size: u64::from_le_bytes(b[20..28].try_into().unwrap()),
            name: b[28..44].try_into().unwrap(),
            cpu_ms: u64::from_le_bytes(b[44..52].try_into().unwrap()),
        })
    }
}

/// `wait`'s flags.
pub mod wait {
    /// Without children, wait for some to appear and exit instead of failing with `ECHILD`:
    /// for a namespace's init, which reaps orphans for ever.
    pub const FOREVER: usize = 1;
}

/// Namespaces: `spawn`'s flags and the limits of the namespace tree.
pub mod ns {
    /// A new pid namespace: the child is its pid 1.
    pub const NEWPID: usize = 1;
    /// A new file-system namespace: the child's root (and working directory) is a fresh
    /// directory, `/ns/<id>` in the caller's view.
    pub const NEWFS: usize = 2;
    /// A new network namespace (its own TCP/IP stack and address).
    pub const NEWNET: usize = 4;
    /// Every kind.
    pub const ALL: usize = NEWPID | NEWFS | NEWNET;
    /// The root namespace's id.
    pub const ROOT: u32 = 1;
    /// Deepest nesting below the root (`ENOSPC` beyond), as Linux's pid namespaces.
    pub const MAX_DEPTH: u32 = 32;
    /// Most namespaces alive at once, the root included (`EAGAIN` beyond).
    pub const MAX_LIVE: usize = 64;
    /// `nspcopy` flag: copy a directory and everything below it.
    pub const COPY_RECURSIVE: usize = 1;
    /// Where a file-system namespace's root lives in its parent's view: `/ns/<id>`.
    pub const ROOTS_DIR: &str = "/ns";
    /// `/proc/ns`: the namespaces the caller can see (its own and its descendants), one text
    /// line each: `id parent kinds init members addr ports name procs mem_used mem_max
    /// pids_max` (kinds: `pid,fs,net` or a subset; init: the pid of its init as the caller
    /// sees it, 0 without one; addr: the namespace's address on the container network,
    /// `192.168.1.<id>` (the root: `192.168.1.1`), `-` without the network kind; ports: its
    /// published ports, comma-separated, `-` for none: `HOSTPORT:PORT/tcp` (or `/udp`) to a
    /// caller in the root's network namespace, `PORT/tcp` to any other; name: `-` for none;
    /// procs: processes in it and below; mem_used, mem_max: bytes charged to it and below, and
    /// its limit; pids_max: its process limit; a limit of 0 is none). Readers accept more
    /// columns after these (the consoles' `front`).
    pub const PROC_PATH: &str = "/proc/ns";
    /// `/proc/netall`: the sockets of the caller's network namespace and of every network
    /// namespace below its own, one text line each: `ns proto local:port remote:port STATE`.
    pub const NETALL_PATH: &str = "/proc/netall";
    /// `/proc/ifaces`: the interfaces of the caller's network namespace, one text line each:
    /// `name mac addr/prefix`.
    pub const IFACES_PATH: &str = "/proc/ifaces";
    /// Longest namespace name ([`SpawnArgs::name`]).
    pub const NAME_MAX: usize = 15;

    /// Whether `name` may name a namespace: 1 to [`NAME_MAX`] bytes of `a-z`, `0-9`, `_`,
    /// `-`, not all digits (programs take an id or a name in one argument).
    pub fn name_ok(name: &[u8]) -> bool {
        (1..=NAME_MAX).contains(&name.len())
            && name.iter().all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
            && !name.iter().all(u8::is_ascii_digit)
    }

    /// `spawn2`'s limits and name for the new namespace (`repr(C)`: `pids_max` at 0, 4 bytes
    /// of padding that must be zero, `mem_max` at 8, `name` at 16; little endian; encoded
    /// explicitly by [`SpawnArgs::encode`] and [`SpawnArgs::decode`]).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct SpawnArgs {
        /// Most processes in the namespace and below (0: no limit of its own).
        pub pids_max: u32,
        /// Most bytes of memory charged to the namespace and below (0: no limit of its own).
        pub mem_max: u64,
        /// NUL-padded; empty: no name.
        pub name: [u8; NAME_MAX + 1],
    }

    /// Why [`SpawnArgs::decode`] or [`SpawnArgs::name`] refused the bytes (EINVAL).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BadArgs;

    impl SpawnArgs {
        pub const SIZE: usize = 32;

        /// Limits and a name (`None` when the name is not [`name_ok`]; "" for none).
        pub fn new(pids_max: u32, mem_max: u64, name: &str) -> Option<SpawnArgs> {
            let mut a = SpawnArgs { pids_max, mem_max, name: [0; NAME_MAX + 1] };
            if !name.is_empty() {
                if !name_ok(name.as_bytes()) {
                    return None;
                }
                a.name[..name.len()].copy_from_slice(name.as_bytes());
            }
            Some(a)
        }

        pub fn encode(&self) -> [u8; Self::SIZE] {
            let mut b = [0u8; Self::SIZE];
            b[0..4].copy_from_slice(&self.pids_max.to_le_bytes());
            b[8..16].copy_from_slice(&self.mem_max.to_le_bytes());
            b[16..32].copy_from_slice(&self.name);
            b
        }

        /// The record in `b` (at least [`SpawnArgs::SIZE`] bytes); its padding must be zero.
        pub fn decode(b: &[u8]) -> Result<SpawnArgs, BadArgs> {
            let b = b.get(..Self::SIZE).ok_or(BadArgs)?;
            if b[4..8] != [0; 4] {
                return Err(BadArgs);
            }
            Ok(SpawnArgs {
                pids_max: u32::from_le_bytes(b[0..4].try_into().unwrap()),
                mem_max: u64::from_le_bytes(b[8..16].try_into().unwrap()),
                name: b[16..32].try_into().unwrap(),
            })
        }

        /// The name: `None` for none (all NUL); `BadArgs` when the bytes before the first NUL
        /// are not [`name_ok`], or anything but NUL follows them.
        pub fn name(&self) -> Result<Option<&[u8]>, BadArgs> {
            let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
            if self.name[len..].iter().any(|&b| b != 0) {
                return Err(BadArgs);
            }
            match &self.name[..len] {
                [] => Ok(None),
                n if name_ok(n) => Ok(Some(n)),
                _ => Err(BadArgs),
            }
        }
    }
}

/// `/proc/meminfo`: free and total physical frames and free inodes, as text lines
/// `frames_free N`, `frames_total N`, `inodes_free N`.
pub const MEMINFO_PATH: &str = "/proc/meminfo";

/// Where user programs are linked and where their stack lives.
pub const USER_BASE: u64 = 0x40_0000;
pub const USER_STACK_TOP: u64 = 0x7fff_ffff_0000;
pub const USER_STACK_SIZE: u64 = 256 * 1024;
/// The highest address a user pointer may reach (exclusive).
pub const USER_END: u64 = 0x8000_0000_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_in_round_trip_and_byte_order() {
        let a = net::SockAddrIn::new([10, 0, 2, 15], 8080);
        let b = a.encode();
        assert_eq!(&b[2..4], &[0x1f, 0x90]); // network order on the wire
        assert_eq!(net::SockAddrIn::decode(&b).unwrap().port(), 8080);
        assert_eq!(b[0..2], (net::AF_INET as u16).to_le_bytes());
    }

    #[test]
    fn every_errno_round_trips() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_ret(e.ret()), Some(e), "{e:?}");
            assert!(!e.message().is_empty());
        }
        assert_eq!(Errno::from_ret(Errno::EINPROGRESS.ret()), Some(Errno::EINPROGRESS));
    }

    #[test]
    fn errno_round_trip() {
        assert_eq!(Errno::ENOENT.ret(), -2);
        assert_eq!(Errno::from_ret(-2), Some(Errno::ENOENT));
        assert_eq!(Errno::from_ret(-1000), None);
    }

    #[test]
    fn spawn_args_bytes_and_names() {
        use ns::{name_ok, BadArgs, SpawnArgs};
        let a = SpawnArgs::new(8, 16 << 20, "web-1_x").unwrap();
        let b = a.encode();
        assert_eq!(b[0..4], 8u32.to_le_bytes());
        assert_eq!(b[4..8], [0; 4]);
        assert_eq!(b[8..16], (16u64 << 20).to_le_bytes());
        assert_eq!(&b[16..23], b"web-1_x");
        assert_eq!(SpawnArgs::decode(&b), Ok(a));
        assert_eq!(a.name(), Ok(Some(&b"web-1_x"[..])));
        assert_eq!(SpawnArgs::new(0, 0, "").unwrap().name(), Ok(None));
        assert_eq!(core::mem::size_of::<SpawnArgs>(), SpawnArgs::SIZE);
        // Short input, nonzero padding, junk after the name's NUL, 16 bytes without a NUL.
        assert_eq!(SpawnArgs::decode(&b[..31]), Err(BadArgs));
        let mut pad = b;
        pad[5] = 1;
        assert_eq!(SpawnArgs::decode(&pad), Err(BadArgs));
        let mut junk = b;
        junk[25] = b'x';
        assert_eq!(SpawnArgs::decode(&junk).unwrap().name(), Err(BadArgs));
        let mut long = b;
        long[16..32].copy_from_slice(b"abcdefghijklmnop");
        assert_eq!(SpawnArgs::decode(&long).unwrap().name(), Err(BadArgs));
        for ok in ["a", "web", "a-b_c", "123456789abcdef", "0x", "-"] {
            assert!(name_ok(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "Web", "a b", "a/b", "a.b", "1234567890abcdef", "12", "\u{e9}"] {
            assert!(!name_ok(bad.as_bytes()), "{bad}");
            assert!(SpawnArgs::new(0, 0, bad).is_none() || bad.is_empty());
        }
    }

    #[test]
    fn proc_record_bytes_round_trip() {
        let mut r = ProcRecord {
            pid: 7,
            ppid: 1,
            state: state::SLEEPING,
            cpu_ms: 1234,
            ..Default::default()
        };
        r.name[..2].copy_from_slice(b"sh");
        let back = ProcRecord::decode(&r.encode()).unwrap();
        assert!(ProcRecord::decode(&[0; 10]).is_none());
        assert_eq!(back, r);
        assert_eq!(back.name(), b"sh");
    }
}
