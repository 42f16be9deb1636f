//! File system calls: open, read, write, close, dup, pipe, fstat, link, unlink, mkdir, mknod,
//! rename, chdir, getcwd, setfg.
//!
//! Rules every handler follows:
//! - paths are resolved from the calling process's own root and working directory
//!   (`fs.namei(&root, &cwd, path)`), never a global root; `/proc` paths go to procfs
//!   (which paths those are: `file::procfs`), and the calls that would change the disk
//!   there (`mkdir`, `unlink`, ...) refuse them with `EPERM`;
//! - user memory is reached only through `uaccess` and a kernel bounce buffer (`bounce`, in
//!   `syscall`), a piece of `syscall::CHUNK` bytes at a time (a page at a time when the
//!   kernel-memory budget, `mm::budget`, cannot pay for more: the buffer may be held for as
//!   long as a pipe waits); no spin lock is held across `block_on` (the process's locks are
//!   taken only to clone a handle out);
//! - what a call makes the kernel keep is charged to that budget first: a pipe's ring
//!   (`pipe` gives ENFILE when refused, as Linux does when it cannot make one; ENOMEM past
//!   its namespace's memory limit), a `/proc` snapshot (ENOMEM);
//! - waits that may last for ever (pipes, the console) are interruptible: a killed process
//!   gets `EINTR`, or the count of what it already transferred;
//! - file-system errors become error numbers in one place, `file::convert::errno`.

use super::bounce;
use crate::file::pipe::PIPE_SIZE;
use crate::file::{self, convert::errno, cwd, procfs, File};
use crate::mm::budget;
use crate::proc::{self, bridge, uaccess};
use crate::rootfs::Ino;
use abi::syscall::{dev, open, Errno};
use alloc::sync::Arc;
use alloc::vec::Vec;
use fs::inode::{T_DEV, T_DIR, T_FILE};
use fs::FsError;

/// Longest path argument (bytes before the NUL).
const MAX_PATH: usize = 1024;
/// What a `/proc` snapshot may take, for the budget's check at `open` (`/proc/net` with a
/// thousand sockets; the others are smaller).
const PROC_SNAPSHOT: usize = 64 * 1024;

fn ret(r: Result<usize, Errno>) -> isize {
    match r {
        Ok(n) => n as isize,
        Err(e) => e.ret(),
    }
}

fn path_arg(va: u64) -> Result<alloc::vec::Vec<u8>, Errno> {
    uaccess::copy_in_str(va, MAX_PATH)
}

/// A descriptor argument (negative values become huge, hence `EBADF`).
fn fd_arg(v: u64) -> usize {
    v as usize
}

fn file_arg(v: u64) -> Result<Arc<File>, Errno> {
    proc::current().files.lock().get(fd_arg(v))
}

/// The caller's root and working directory, as handles of their own.
fn dirs() -> Result<(Ino, Ino), Errno> {
    let p = proc::current();
    let root = p.root.lock().clone().ok_or(Errno::ENOENT)?;
    let cwd = p.cwd.lock().clone().ok_or(Errno::ENOENT)?;
    Ok((root, cwd))
}

/// `EPERM` for a path procfs answers for (nothing there can be created, removed or renamed).
fn not_proc(path: &[u8], root: &Ino, cwd: &Ino) -> Result<(), Errno> {
    match procfs::classify(path, cwd.inum() == root.inum()) {
        Some(_) => Err(Errno::EPERM),
        None => Ok(()),
    }
}

fn install(f: Arc<File>) -> Result<usize, Errno> {
    proc::current().files.lock().alloc(f)
}

/// Free unlinked inodes whose last handle just went (so the space is back when `close`
/// returns); handles dropped elsewhere are reaped by a kernel task (`file::Handle`).
fn reap() {
    if let Some(fs) = crate::rootfs::get().filter(|fs| fs.orphans_pending()) {
        if let Err(e) = bridge::block_on(fs.reap()) {
            crate::kprintln!("fs: freeing unlinked inodes: {e}");
        }
    }
}

/// `open(path, flags) -> fd`
pub fn sys_open(a: &[u64; 6]) -> isize {
    ret((|| {
        let path = path_arg(a[0])?;
        let flags = a[1] as usize;
        let (readable, writable) = match flags & open::ACCMODE {
            open::RDONLY => (true, false),
            open::WRONLY => (false, true),
            open::RDWR => (true, true),
            _ => return Err(Errno::EINVAL),
        };
        let (root, cwd) = dirs()?;
        let f = match procfs::classify(&path, cwd.inum() == root.inum()) {
            Some(node) => {
                let node = node?;
                if writable || flags & open::TRUNC != 0 {
                    return Err(if node == procfs::Node::Root {
                        Errno::EISDIR
                    } else {
                        Errno::EPERM
                    });
                }
                // The snapshot stays with the open file: not when memory is short.
                if !budget::admits(PROC_SNAPSHOT) {
                    return Err(Errno::ENOMEM);
                }
                bridge::block_on(File::open_proc(node))?
            }
            None => bridge::block_on(open_inode(&root, &cwd, &path, flags, readable, writable))?,
        };
        install(f)
    })())
}

async fn open_inode(
    root: &Ino,
    cwd: &Ino,
    path: &[u8],
    flags: usize,
    readable: bool,
    writable: bool,
) -> Result<Arc<File>, Errno> {
    let fs = root.fs();
    let ip = if flags & open::CREATE != 0 {
        // open(O_CREAT): an existing file is opened; a directory in the way is EISDIR.
        fs.create(root, cwd, path, T_FILE, 0, 0).await.map_err(errno)?
    } else {
        fs.namei(root, cwd, path).await.map_err(errno)?
    };
    let st = ip.lock().await.map_err(errno)?.stat();
    match st.kind {
        T_DIR if writable || flags & open::TRUNC != 0 => Err(Errno::EISDIR),
        T_DIR => Ok(File::inode(ip, true, false, false)),
        T_DEV if st.major == dev::CONSOLE => {
            let vt = file::console::nearest(&proc::current().ns.home);
            Ok(File::console(vt, Some(ip), readable, writable))
        }
        T_DEV => Err(Errno::ENODEV),
        _ => {
            // O_TRUNC truncates only when the file is opened for writing.
            if flags & open::TRUNC != 0 && writable && st.size > 0 {
                fs.truncate(&ip, 0).await.map_err(errno)?;
            }
            Ok(File::inode(ip, readable, writable, flags & open::APPEND != 0))
        }
    }
}

/// How a read or write on `f` waits: a stream (pipe, console, socket) waits until killed
/// (`EINTR`), or tries once (`EAGAIN`) when non-blocking; a file operation runs to completion
/// whatever the descriptor's flags, as on Linux. It may have begun a file-system transaction
/// and hold inode locks: dropped half-way (for `EAGAIN`), the transaction would never end and
/// every later file-system call would wait for ever.
fn io<T>(f: &File, op: impl core::future::Future<Output = Result<T, Errno>>) -> Result<T, Errno> {
    if f.is_stream() {
        bridge::run(f.nonblock(), op)
    } else {
        bridge::block_on(op)
    }
}

/// `read(fd, buf, len) -> n`: files are read until `len` or the end; pipes and the console
/// return what one wait brings.
pub fn sys_read(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file_arg(a[0])?;
        if !f.readable() {
            return Err(Errno::EBADF);
        }
        let (va, len) = (a[1], a[2] as usize);
        if len == 0 {
            return Ok(0);
        }
        let mut bounce = bounce(&f, len)?;
        let chunk = bounce.len();
        let mut done = 0;
        while done < len {
            let piece = &mut bounce[..(len - done).min(chunk)];
            let want = piece.len();
            // The buffer is checked before the read: a pipe's or socket's bytes (a file's
            // offset) must not be consumed for a buffer they cannot be copied to.
            let at = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
            if let Err(e) = uaccess::check(at, want, true) {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            let r = io(&f, f.read(piece));
            let n = match r {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            if let Err(e) = uaccess::copy_out(at, &piece[..n]) {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            done += n;
            if n < want || f.is_stream() {
                break;
            }
        }
        Ok(done)
    })())
}

/// `write(fd, buf, len) -> n`: everything, unless the disk fills, the pipe's reader goes,
/// or the process is killed (then the count written so far, if any).
pub fn sys_write(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file_arg(a[0])?;
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        let (va, len) = (a[1], a[2] as usize);
        if len == 0 {
            return Ok(0);
        }
        let mut bounce = bounce(&f, len)?;
        let chunk = bounce.len();
        let mut done = 0;
        while done < len {
            let piece = &mut bounce[..(len - done).min(chunk)];
            let at = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
            if let Err(e) = uaccess::copy_in(at, piece) {
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            let r = f.write_nonblocking(piece).unwrap_or_else(|| io(&f, f.write(piece)));
            let n = match r {
                Ok(n) => n,
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            };
            done += n;
            // A blocking socket write sends everything (in as many pieces as it takes).
            if n < piece.len() && (f.nonblock() || f.as_socket().is_none()) {
                break;
            }
        }
        Ok(done)
    })())
}

/// `close(fd)`
pub fn sys_close(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = proc::current().files.lock().close(fd_arg(a[0]))?;
        drop(f); // the last reference releases the file, outside the table's lock
        reap();
        Ok(0)
    })())
}

/// `dup(fd) -> new fd` (the lowest free one)
pub fn sys_dup(a: &[u64; 6]) -> isize {
    ret(proc::current().files.lock().dup(fd_arg(a[0])))
}

/// `pipe(fds: *mut [i32; 2])`: `fds[0]` reads, `fds[1]` writes. ENFILE when the machine's
/// kernel-memory budget cannot pay for the ring (Linux's answer when it cannot make a pipe),
/// ENOMEM when the memory limit of the caller's namespace (or one above) refuses it.
pub fn sys_pipe(a: &[u64; 6]) -> isize {
    ret((|| {
        let charge = budget::Charge::try_new(PIPE_SIZE).map_err(|r| match r {
            budget::Refused::Machine => Errno::ENFILE,
            budget::Refused::Limit => Errno::ENOMEM,
        })?;
        let (r, w) = File::pipe(charge);
        let p = proc::current();
        let (rfd, wfd) = {
            let mut t = p.files.lock();
            let rfd = t.alloc(r)?;
            match t.alloc(w) {
                Ok(wfd) => (rfd, wfd),
                Err(e) => {
                    let _ = t.close(rfd);
                    return Err(e);
                }
            }
        };
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&(rfd as i32).to_le_bytes());
        out[4..].copy_from_slice(&(wfd as i32).to_le_bytes());
        if let Err(e) = uaccess::copy_out(a[0], &out) {
            let mut t = p.files.lock();
            let _ = (t.close(rfd), t.close(wfd));
            return Err(e);
        }
        Ok(0)
    })())
}

/// `fstat(fd, st: *mut Stat)`
pub fn sys_fstat(a: &[u64; 6]) -> isize {
    ret((|| {
        let f = file_arg(a[0])?;
        let st = bridge::block_on(f.stat())?;
        uaccess::copy_out(a[1], &file::convert::stat_bytes(&st))?;
        Ok(0)
    })())
}

/// The shape of link, unlink, mkdir, mknod and rename: `N` path arguments (none of them under
/// `/proc`), resolved from the caller's root and working directory by one file-system
/// operation, which runs to completion (file-system transactions are not interruptible).
fn path_op<const N: usize, F>(a: &[u64; 6], op: impl FnOnce(Ino, Ino, [Vec<u8>; N]) -> F) -> isize
where
    F: core::future::Future<Output = Result<(), FsError>>,
{
    ret((|| {
        let mut paths: [Vec<u8>; N] = core::array::from_fn(|_| Vec::new());
        for (i, p) in paths.iter_mut().enumerate() {
            *p = path_arg(a[i])?;
        }
        let (root, cwd) = dirs()?;
        for p in &paths {
            not_proc(p, &root, &cwd)?;
        }
        bridge::block_on(op(root, cwd, paths)).map_err(errno)?;
        Ok(0)
    })())
}

/// `link(old, new)`: a second name for a file.
pub fn sys_link(a: &[u64; 6]) -> isize {
    path_op(a, |root, cwd, [old, new]| async move { root.fs().link(&root, &cwd, &old, &new).await })
}

/// `unlink(path)`: remove a name (a directory only when empty).
pub fn sys_unlink(a: &[u64; 6]) -> isize {
    path_op(a, |root, cwd, [path]| async move { root.fs().unlink(&root, &cwd, &path).await })
}

/// `mkdir(path)`
pub fn sys_mkdir(a: &[u64; 6]) -> isize {
    path_op(
        a,
        |root, cwd, [path]| async move { root.fs().mkdir(&root, &cwd, &path).await.map(drop) },
    )
}

/// `mknod(path, major, minor)`: a device inode (`EEXIST` if the name is taken).
pub fn sys_mknod(a: &[u64; 6]) -> isize {
    let (Ok(major), Ok(minor)) = (u16::try_from(a[1]), u16::try_from(a[2])) else {
        return Errno::EINVAL.ret();
    };
    path_op(a, |root, cwd, [path]| async move {
        root.fs().create(&root, &cwd, &path, T_DEV, major, minor).await.map(drop)
    })
}

/// `rename(old, new)`
pub fn sys_rename(a: &[u64; 6]) -> isize {
    path_op(
        a,
        |root, cwd, [old, new]| async move { root.fs().rename(&root, &cwd, &old, &new).await },
    )
}

/// `chdir(path)`: the new working directory (`ENOTDIR` unless a directory; `/proc` is not
/// a place one can be: `EPERM`).
pub fn sys_chdir(a: &[u64; 6]) -> isize {
    ret((|| {
        let path = path_arg(a[0])?;
        let (root, cwd) = dirs()?;
        not_proc(&path, &root, &cwd)?;
        let ip = bridge::block_on(async {
            let ip = root.fs().namei(&root, &cwd, &path).await?;
            let kind = ip.lock().await?.kind();
            if kind == T_DIR {
                Ok(ip)
            } else {
                Err(FsError::NotDir)
            }
        })
        .map_err(errno)?;
        let old = proc::current().cwd.lock().replace(ip);
        drop(old);
        Ok(0)
    })())
}

/// `getcwd(buf, len) -> length`: the path of the working directory from the process's root,
/// NUL-terminated in `buf`; the length returned excludes the NUL. `ERANGE` if `len` is too
/// small for the path and its NUL; `ENOENT` if the directory was removed.
pub fn sys_getcwd(a: &[u64; 6]) -> isize {
    ret((|| {
        let (root, cwd) = dirs()?;
        let mut path = bridge::block_on(cwd::getcwd(&root, &cwd)).map_err(errno)?;
        let len = path.len();
        if len + 1 > a[1] as usize {
            return Err(Errno::ERANGE);
        }
        path.push(0);
        uaccess::copy_out(a[0], &path)?;
        Ok(len)
    })())
}

/// `setfg(pgid)`: the foreground process group of the caller's console (the one its
/// descriptor 0, 1 or 2 is open on: `ENOTTY` without one), which `^C` kills (0: none). The
/// group is named in the caller's view; one it cannot see (or with no live process) is
/// `ESRCH`, and 1 `EPERM`: as for `kill`, a namespace's init is not interrupted from inside it.
pub fn sys_setfg(a: &[u64; 6]) -> isize {
    ret((|| {
        let pgid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
        let p = proc::current();
        let vt = {
            let files = p.files.lock();
            (0..3).find_map(|fd| files.get(fd).ok()?.console_vt().cloned())
        };
        let vt = vt.ok_or(Errno::ENOTTY)?;
        // The console keeps the group's global number; the caller names it in its own view.
        let global = match pgid {
            0 => 0,
            1 => return Err(Errno::EPERM),
            pgid => proc::jobs::find_group(proc::Viewer::of(&p), pgid).ok_or(Errno::ESRCH)?,
        };
        vt.set_foreground(global);
        Ok(0)
    })())
}
