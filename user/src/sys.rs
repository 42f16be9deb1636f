//! System calls: the `syscall` instruction ([`raw`]) and one typed wrapper per call.
//!
//! The convention is the one in `abi::syscall`: number in `rax`, arguments in `rdi`, `rsi`,
//! `rdx`, `r10`, `r8`, `r9`, result in `rax` (`-errno` on failure); the instruction clobbers
//! `rcx` and `r11`. Every wrapper turns a negative result into an [`Errno`], so errors are
//! values: `open("/x", RDONLY)?`.
//!
//! Paths are passed to the kernel NUL-terminated: the wrappers copy them (on the stack when
//! short, else on the heap); a path with a NUL inside is `EINVAL` without a system call.

use abi::syscall::{nr, Errno, Stat};
use alloc::vec::Vec;

/// A file descriptor.
pub type Fd = i32;
/// A process id.
pub type Pid = u32;
/// What system calls return.
pub type Result<T> = core::result::Result<T, Errno>;

pub use abi::syscall::open::{APPEND, CREATE, RDONLY, RDWR, TRUNC, WRONLY};

/// The bare instruction, for callers that pass arbitrary values (usertests passes bad
/// pointers on purpose). Each returns the kernel's `rax` unchanged.
pub mod raw {
    use core::arch::asm;

    /// # Safety
    /// The kernel may read or write memory the arguments point to.
    #[inline(always)]
    pub unsafe fn syscall0(n: usize) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    pub unsafe fn syscall1(n: usize, a0: usize) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    pub unsafe fn syscall2(n: usize, a0: usize, a1: usize) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0, in("rsi") a1,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    pub unsafe fn syscall3(n: usize, a0: usize, a1: usize, a2: usize) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    pub unsafe fn syscall4(n: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    pub unsafe fn syscall5(
        n: usize,
        a0: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
    ) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, in("r8") a4,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }

    /// # Safety
    /// See [`syscall0`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn syscall6(
        n: usize,
        a0: usize,
        a1: usize,
        a2: usize,
        a3: usize,
        a4: usize,
        a5: usize,
    ) -> isize {
        let ret: isize;
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a0, in("rsi") a1,
             in("rdx") a2, in("r10") a3, in("r8") a4, in("r9") a5,
             lateout("rcx") _, lateout("r11") _, options(nostack));
        ret
    }
}

/// A raw result as a value: `>= 0` is success, `-errno` an error (an error number this ABI
/// does not know becomes `EIO`).
pub fn check(ret: isize) -> Result<usize> {
    if ret >= 0 {
        Ok(ret as usize)
    } else {
        Err(errno_from_ret(ret))
    }
}

/// The error a negative result stands for: any the ABI defines, else `EIO`.
pub fn errno_from_ret(ret: isize) -> Errno {
    Errno::from_ret(ret).unwrap_or(Errno::EIO)
}

/// Short paths are copied to the stack; longer ones to the heap.
const STACK_PATH: usize = 256;

/// Calls `f` with `s` as a NUL-terminated string.
pub fn with_cstr<R>(s: &str, f: impl FnOnce(*const u8) -> R) -> Result<R> {
    let bytes = s.as_bytes();
    if bytes.contains(&0) {
        return Err(Errno::EINVAL);
    }
    if bytes.len() < STACK_PATH {
        let mut buf = [0u8; STACK_PATH];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(f(buf.as_ptr()))
    } else {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.extend_from_slice(bytes);
        v.push(0);
        Ok(f(v.as_ptr()))
    }
}

/// A call `n` whose only argument is a path (the kernel reads it, nothing else).
fn path_call1(n: usize, path: &str) -> Result<usize> {
    check(with_cstr(path, |p| {
        // SAFETY: `p` is a NUL-terminated copy of `path` that lives for the call; the callers
        // pass only calls that read their path argument and touch no other memory.
        unsafe { raw::syscall1(n, p as usize) }
    })?)
}

/// A call `n` whose only arguments are two paths (read by the kernel, nothing else).
fn path_call2(n: usize, a: &str, b: &str) -> Result<usize> {
    let ret = with_cstr(a, |pa| {
        with_cstr(b, |pb| {
            // SAFETY: as in `path_call1`, for two strings that both live for the call.
            unsafe { raw::syscall2(n, pa as usize, pb as usize) }
        })
    })??;
    check(ret)
}

/// A copy of this process; returns 0 in the child and the child's pid in the parent.
pub fn fork() -> Result<Pid> {
    // SAFETY: fork takes no pointer; the child gets a copy of this address space, so no memory
    // is shared between the two afterwards.
    check(unsafe { raw::syscall0(nr::FORK) }).map(|p| p as Pid)
}

/// Ends this process with `status` (what the parent's [`wait`] sees).
pub fn exit(status: i32) -> ! {
    // SAFETY: exit takes no pointer (the status is a number) and does not return.
    unsafe {
        raw::syscall1(nr::EXIT, status as isize as usize);
    }
    // The kernel never returns from exit; if it did, fault rather than run on.
    // SAFETY: `ud2` raises an invalid-opcode exception, which ends the process; it touches
    // no memory and nothing after it runs.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

/// Waits for a child to exit: its pid and exit status. `ECHILD` without children.
pub fn wait() -> Result<(Pid, i32)> {
    wait_flags(0)
}

/// [`wait`] with `abi::syscall::wait` flags (`FOREVER`: without children, wait for some).
pub fn wait_flags(flags: usize) -> Result<(Pid, i32)> {
    let mut status: i32 = 0;
    // SAFETY: the kernel writes one i32 into `status`, a live local.
    let pid = check(unsafe { raw::syscall2(nr::WAIT, &mut status as *mut i32 as usize, flags) })?;
    Ok((pid as Pid, status))
}

/// A new pipe: `(read end, write end)`.
pub fn pipe() -> Result<(Fd, Fd)> {
    let mut fds: [i32; 2] = [-1, -1];
    // SAFETY: the kernel writes two i32s to `fds`, a live local array of two.
    check(unsafe { raw::syscall1(nr::PIPE, fds.as_mut_ptr() as usize) })?;
    Ok((fds[0], fds[1]))
}

/// Reads up to `buf.len()` bytes; 0 at end of file.
pub fn read(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, which we hold mutably.
    check(unsafe { raw::syscall3(nr::READ, fd as usize, buf.as_mut_ptr() as usize, buf.len()) })
}

/// Writes up to `buf.len()` bytes; returns how many were written.
pub fn write(fd: Fd, buf: &[u8]) -> Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`, a live slice.
    check(unsafe { raw::syscall3(nr::WRITE, fd as usize, buf.as_ptr() as usize, buf.len()) })
}

/// Ends process `pid` (a sleeping one is woken to die).
pub fn kill(pid: Pid) -> Result<()> {
    // SAFETY: kill takes no pointer.
    check(unsafe { raw::syscall1(nr::KILL, pid as usize) }).map(drop)
}

/// Replaces this program with `path` (looked up in `/bin` first, then as given), with
/// arguments `args` (`args[0]` is by convention the program's name). Returns only on failure.
pub fn exec(path: &str, args: &[&str]) -> Errno {
    // One heap block holds every string, NUL-terminated; a second the pointer array.
    let mut strings: Vec<u8> = Vec::new();
    let mut offsets: Vec<usize> = Vec::with_capacity(args.len());
    for a in args {
        if a.as_bytes().contains(&0) {
            return Errno::EINVAL;
        }
        offsets.push(strings.len());
        strings.extend_from_slice(a.as_bytes());
        strings.push(0);
    }
    let base = strings.as_ptr();
    let mut argv: Vec<*const u8> = offsets.iter().map(|&o| base.wrapping_add(o)).collect();
    argv.push(core::ptr::null());
    match with_cstr(path, |p| {
        // SAFETY: the kernel reads the NUL-terminated `p` and the NULL-terminated `argv`,
        // whose pointers lead into `strings` (NUL-terminated pieces); all live for the call.
        // On success this program's memory is replaced; nothing of it is used again.
        unsafe { raw::syscall2(nr::EXEC, p as usize, argv.as_ptr() as usize) }
    }) {
        Ok(ret) => check(ret).err().unwrap_or(Errno::EIO),
        Err(e) => e,
    }
}

/// The status of an open file.
pub fn fstat(fd: Fd) -> Result<Stat> {
    let mut st = Stat::default();
    // SAFETY: the kernel writes one `Stat` (`repr(C)`, every bit pattern valid) to `st`.
    check(unsafe { raw::syscall2(nr::FSTAT, fd as usize, &mut st as *mut Stat as usize) })?;
    Ok(st)
}

/// Changes the working directory.
pub fn chdir(path: &str) -> Result<()> {
    path_call1(nr::CHDIR, path).map(drop)
}

/// A new descriptor (the lowest free one) for the same open file.
pub fn dup(fd: Fd) -> Result<Fd> {
    // SAFETY: dup takes no pointer.
    check(unsafe { raw::syscall1(nr::DUP, fd as usize) }).map(|f| f as Fd)
}

/// How many more descriptors this process could open (at most `max`), found by duplicating
/// `fd` (any open descriptor) until the table is full and closing the copies again.
pub fn free_descriptors(fd: Fd, max: usize) -> usize {
    let mut copies = Vec::new();
    while copies.len() < max {
        match dup(fd) {
            Ok(d) => copies.push(d),
            Err(_) => break,
        }
    }
    for &d in &copies {
        let _ = close(d);
    }
    copies.len()
}

/// This process's id.
pub fn getpid() -> Pid {
    // SAFETY: getpid takes no argument.
    unsafe { raw::syscall0(nr::GETPID) as Pid }
}

/// Moves the break (the end of the heap) by `delta` bytes; returns the old break.
///
/// # Safety
/// A negative `delta` unmaps `[break + delta, break)`: nothing may be in use there (in
/// particular not the allocator's heap, which grows the break itself: see `heap`), and no
/// reference into it may be used afterwards. Growing (and `delta == 0`) is always sound: the
/// pages added were not mapped before.
pub unsafe fn sbrk(delta: isize) -> Result<usize> {
    // SAFETY: sbrk reads and writes no memory of ours; what it unmaps is the caller's
    // promise above.
    check(unsafe { raw::syscall1(nr::SBRK, delta as usize) })
}

/// The break (the end of the heap) now.
pub fn brk() -> usize {
    // SAFETY: a zero delta moves nothing.
    unsafe { sbrk(0) }.unwrap_or(0)
}

/// Sleeps for `ms` milliseconds (`EINTR` if killed meanwhile).
pub fn sleep(ms: u64) -> Result<()> {
    // SAFETY: sleep takes no pointer.
    check(unsafe { raw::syscall1(nr::SLEEP, ms as usize) }).map(drop)
}

/// Milliseconds since boot.
pub fn uptime() -> u64 {
    // SAFETY: uptime takes no argument.
    unsafe { raw::syscall0(nr::UPTIME) as u64 }
}

/// Opens `path` with `flags` ([`RDONLY`], [`WRONLY`], [`RDWR`], with [`CREATE`], [`TRUNC`],
/// [`APPEND`]).
pub fn open(path: &str, flags: usize) -> Result<Fd> {
    check(with_cstr(path, |p| {
        // SAFETY: the kernel reads the NUL-terminated `p`, live for the call; flags are bits.
        unsafe { raw::syscall2(nr::OPEN, p as usize, flags) }
    })?)
    .map(|f| f as Fd)
}

/// Makes a device file.
pub fn mknod(path: &str, major: u16, minor: u16) -> Result<()> {
    let ret = with_cstr(path, |p| {
        // SAFETY: the kernel reads the NUL-terminated `p`, live for the call.
        unsafe { raw::syscall3(nr::MKNOD, p as usize, major as usize, minor as usize) }
    })?;
    check(ret).map(drop)
}

/// Removes a name (an empty directory too).
pub fn unlink(path: &str) -> Result<()> {
    path_call1(nr::UNLINK, path).map(drop)
}

/// A second name `new` for the file `old`.
pub fn link(old: &str, new: &str) -> Result<()> {
    path_call2(nr::LINK, old, new).map(drop)
}

/// Makes a directory.
pub fn mkdir(path: &str) -> Result<()> {
    path_call1(nr::MKDIR, path).map(drop)
}

/// Closes a descriptor.
pub fn close(fd: Fd) -> Result<()> {
    // SAFETY: close takes no pointer.
    check(unsafe { raw::syscall1(nr::CLOSE, fd as usize) }).map(drop)
}

/// Renames `old` to `new`.
pub fn rename(old: &str, new: &str) -> Result<()> {
    path_call2(nr::RENAME, old, new).map(drop)
}

/// The working directory, written into `buf`; returns the path (without its NUL).
pub fn getcwd(buf: &mut [u8]) -> Result<&str> {
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, which we hold mutably.
    let n = check(unsafe { raw::syscall2(nr::GETCWD, buf.as_mut_ptr() as usize, buf.len()) })?;
    let got = &buf[..n.min(buf.len())];
    let end = got.iter().position(|&b| b == 0).unwrap_or(got.len());
    core::str::from_utf8(&got[..end]).map_err(|_| Errno::EINVAL)
}

/// Powers the machine off.
pub fn poweroff() -> Result<()> {
    // SAFETY: poweroff takes no argument.
    check(unsafe { raw::syscall0(nr::POWEROFF) }).map(drop)
}

/// Makes `pid` the console's foreground process (the one ^C ends); 0 for none.
pub fn setfg(pid: Pid) -> Result<()> {
    // SAFETY: setfg takes no pointer.
    check(unsafe { raw::syscall1(nr::SETFG, pid as usize) }).map(drop)
}

/// `spawn`'s flags (`NEWPID`, `NEWFS`, `NEWNET`, `ALL`) and the namespace limits.
pub use abi::syscall::ns;

/// Like [`fork`], with the child in a new namespace isolating the kinds in `flags`
/// (`ns::NEWPID | ns::NEWFS | ...`): 0 in the child (pid 1 of a new pid namespace), the
/// child's pid as this process sees it in the parent.
pub fn spawn(flags: usize) -> Result<Pid> {
    // SAFETY: spawn takes no pointer; like fork, the child gets a copy of this address space.
    check(unsafe { raw::syscall1(nr::SPAWN, flags) }).map(|p| p as Pid)
}

/// Like [`fork`], with the child in the existing namespace `nsid`, a container below this
/// process's (`ns exec`): 0 in the child, its pid as this process sees it in the parent.
pub fn nsenter(nsid: u32) -> Result<Pid> {
    // SAFETY: nsenter takes no pointer; like fork, the child gets a copy of this address space.
    check(unsafe { raw::syscall1(nr::NSENTER, nsid as usize) }).map(|p| p as Pid)
}

/// This process's namespace (`ns::ROOT`, 1, in the root).
pub fn getns() -> u32 {
    // SAFETY: getns takes no argument and touches no memory.
    unsafe { raw::syscall0(nr::GETNS) as u32 }
}

/// Copies `src` (a directory tree with `recursive`) into the root of descendant namespace
/// `nsid`, at `dst` (`None`: `/` + the source's last name).
pub fn nspcopy(src: &str, nsid: u32, dst: Option<&str>, recursive: bool) -> Result<()> {
    let flags = if recursive { ns::COPY_RECURSIVE } else { 0 };
    let ret = with_cstr(src, |s| match dst {
        None => {
            // SAFETY: the kernel reads the NUL-terminated `src`, alive for the call; a null
            // destination is allowed.
            Ok(unsafe { raw::syscall4(nr::NSPCOPY, s as usize, nsid as usize, 0, flags) })
        }
        Some(dst) => with_cstr(dst, |d| {
            // SAFETY: both strings are NUL-terminated and alive for the call; the kernel only
            // reads them.
            unsafe { raw::syscall4(nr::NSPCOPY, s as usize, nsid as usize, d as usize, flags) }
        }),
    })??;
    check(ret).map(drop)
}

/// Publishes the wire's `host_port` to namespace `nsid`'s `port` (`proto`: `net::SOCK_STREAM`
/// for TCP, `net::SOCK_DGRAM` for UDP) until that namespace dies: connections to the guest's
/// address at `host_port` reach the container (see `abi::syscall::nr::PUBLISH`).
pub fn publish(nsid: u32, proto: usize, host_port: u16, port: u16) -> Result<()> {
    let (ns, hp, p) = (nsid as usize, host_port as usize, port as usize);
    // SAFETY: publish takes no pointer.
    check(unsafe { raw::syscall4(nr::PUBLISH, ns, proto, hp, p) }).map(drop)
}
