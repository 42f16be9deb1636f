//! `nspcopy`: a deep copy of a file or a directory tree, as the caller sees it, into the root
//! of one of its descendant file-system namespaces (the report's way of giving a container its
//! own copy of something: nothing is shared afterwards).
//!
//! All or nothing: the copy is made in a temporary directory of its own (`.nspcopy-<n>`, in
//! the destination directory) and renamed into place in one transaction once complete; on any
//! error (`ENOSPC`, `EINTR` when the caller is killed, ...) the temporary is removed again, so
//! no partial file or tree is left. The temporary is made with `mkdir`, which fails on a name
//! already there (`create` would open an existing file): a name the container made itself, by
//! chance or as a trap, is skipped for the next one, never written into, moved or removed. A
//! directory being copied never includes the destination's own root or the temporary (copying
//! `/` into a container whose root lies below `/` must not recurse into itself).
//!
//! Runs in the calling process's context (the system call waits on the disk through
//! `proc::bridge`); it holds no lock across an await but the file system's own.

use super::fsroot::{copy_file, entries, remove_tree, TREE_DEPTH_MAX};
use crate::file::convert::errno;
use crate::rootfs::Ino;
use abi::syscall::Errno;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use fs::inode::{T_DIR, T_FILE};
use fs::FsError;

static TEMP: AtomicU32 = AtomicU32::new(0);

/// What to copy and where: `src` from the caller's `root` and `cwd`; `dst` (absolute or
/// relative, both from `target`'s root) in the namespace whose root is `target`.
pub struct CopyJob<'a> {
    pub root: Ino,
    pub cwd: Ino,
    pub src: &'a [u8],
    pub target: Ino,
    pub dst: &'a [u8],
    pub recursive: bool,
}

/// Do the copy (see the module docs); `stop()` is asked between chunks and files.
pub async fn run(c: CopyJob<'_>, stop: impl Fn() -> bool + Copy) -> Result<(), Errno> {
    let fs = c.root.fs();
    let src = fs.namei(&c.root, &c.cwd, c.src).await.map_err(errno)?;
    let kind = src.lock().await.map_err(errno)?.kind();
    match kind {
        T_DIR if !c.recursive => return Err(Errno::EISDIR),
        T_DIR | T_FILE => {}
        _ => return Err(Errno::EINVAL), // devices are not copied
    }
    let (dir, name) = super::rules::split_last(c.dst);
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::EINVAL);
    }
    let dst_dir = fs.namei(&c.target, &c.target, dir).await.map_err(errno)?;
    let (temp, temp_dir) = make_temp(&c.target, &dst_dir).await?;
    let made = if kind == T_FILE {
        copy_file(&src, &c.target, &temp_dir, COPY, stop).await
    } else {
        copy_tree(&c, &src, &temp_dir, stop).await
    };
    let placed = match made {
        Ok(()) => {
            let inner = [temp.as_bytes(), b"/", COPY].concat();
            fs.rename(&c.target, &dst_dir, &inner, name).await.map_err(errno)
        }
        Err(e) => Err(e),
    };
    // Empty once the copy is in place; what is left of a failed one otherwise.
    drop(temp_dir);
    remove_tree(&dst_dir, temp.as_bytes()).await;
    placed
}

/// The copy's name in its temporary directory.
const COPY: &[u8] = b"copy";
/// Names tried for the temporary directory before giving up (`EEXIST`).
const TEMP_TRIES: usize = 256;

/// A new directory `.nspcopy-<n>` in `dst_dir`: its name and inode.
async fn make_temp(target: &Ino, dst_dir: &Ino) -> Result<(String, Ino), Errno> {
    let fs = target.fs();
    for _ in 0..TEMP_TRIES {
        let name = format!(".nspcopy-{}", TEMP.fetch_add(1, SeqCst));
        match fs.mkdir(target, dst_dir, name.as_bytes()).await {
            Ok(ip) => return Ok((name, ip)),
            Err(FsError::Exists) => {} // someone else's: the next number
            Err(e) => return Err(errno(e)),
        }
    }
    Err(Errno::EEXIST)
}

/// Copy directory `src` to a new directory [`COPY`] in `temp_dir`, and everything below it.
async fn copy_tree(
    c: &CopyJob<'_>,
    src: &Ino,
    temp_dir: &Ino,
    stop: impl Fn() -> bool + Copy,
) -> Result<(), Errno> {
    let fs = src.fs();
    let top = fs.mkdir(&c.target, temp_dir, COPY).await.map_err(errno)?;
    // Never copied into itself: the destination's root and the tree being made.
    let skip = [c.target.inum(), temp_dir.inum(), top.inum()];
    // (source directory, the directory it is copied to), depth first.
    let mut work: Vec<(Ino, Ino, usize)> = alloc::vec![(src.clone(), top, 0)];
    while let Some((from, to, depth)) = work.pop() {
        for (entry, inum) in entries(&from).await.map_err(errno)? {
            if stop() {
                return Err(Errno::EINTR);
            }
            if skip.contains(&inum) {
                continue;
            }
            let ip = fs.namei(&c.root, &from, entry.as_bytes()).await.map_err(errno)?;
            let kind = ip.lock().await.map_err(errno)?.kind();
            match kind {
                T_FILE => copy_file(&ip, &c.target, &to, entry.as_bytes(), stop).await?,
                T_DIR => {
                    if depth + 1 >= TREE_DEPTH_MAX {
                        return Err(Errno::ENAMETOOLONG);
                    }
                    let sub = fs.mkdir(&c.target, &to, entry.as_bytes()).await.map_err(errno)?;
                    work.push((ip, sub, depth + 1));
                }
                _ => {} // devices stay behind
            }
        }
    }
    Ok(())
}
