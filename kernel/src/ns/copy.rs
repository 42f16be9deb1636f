//! `nspcopy`: a deep copy of a file or a directory tree, as the caller sees it, into the root
//! of one of its descendant file-system namespaces (the report's way of giving a container its
//! own copy of something: nothing is shared afterwards).
//!
//! All or nothing: the copy is made under a temporary name (`.nspcopy-<n>`) in the destination
//! directory and renamed into place in one transaction once complete; on any error (`ENOSPC`,
//! `EINTR` when the caller is killed, ...) the temporary is removed again, so no partial file
//! or tree is left. A directory being copied never includes the destination's own root or the
//! temporary (copying `/` into a container whose root lies below `/` must not recurse into
//! itself).
//!
//! Runs in the calling process's context (the system call waits on the disk through
//! `proc::bridge`); it holds no lock across an await but the file system's own.

use super::fsroot::{copy_file, entries, remove_tree, TREE_DEPTH_MAX};
use crate::file::convert::errno;
use crate::rootfs::Ino;
use abi::syscall::Errno;
use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use fs::inode::{T_DIR, T_FILE};

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
    let temp = format!(".nspcopy-{}", TEMP.fetch_add(1, SeqCst));
    let made = if kind == T_FILE {
        copy_file(&src, &c.target, &dst_dir, temp.as_bytes(), stop).await
    } else {
        copy_tree(&c, &src, &dst_dir, temp.as_bytes(), stop).await
    };
    let placed = match made {
        Ok(()) => fs.rename(&c.target, &dst_dir, temp.as_bytes(), name).await.map_err(errno),
        Err(e) => Err(e),
    };
    if placed.is_err() {
        remove_tree(&dst_dir, temp.as_bytes()).await;
    }
    placed
}

/// Copy directory `src` to a new directory `name` in `dst_dir`, and everything below it.
async fn copy_tree(
    c: &CopyJob<'_>,
    src: &Ino,
    dst_dir: &Ino,
    name: &[u8],
    stop: impl Fn() -> bool + Copy,
) -> Result<(), Errno> {
    let fs = src.fs();
    let top = fs.mkdir(&c.target, dst_dir, name).await.map_err(errno)?;
    // Never copied into itself: the destination's root and the tree being made.
    let skip = [c.target.inum(), top.inum()];
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
