//! File-system namespaces' root directories on the disk.
//!
//! A new file-system namespace `id` gets a fresh directory `/ns/<id>` in its parent's root
//! ([`make`]), which becomes its `/`: so an ancestor can look into a container's files (the
//! way Docker keeps containers under `/var/lib/docker`), and a nested container's root is
//! `/ns/<id>` inside its parent container's root. It holds what the shell and the programs
//! need: `/etc` (a copy of the parent's `/etc` files) and `/tmp`. Programs are not copied:
//! `exec` finds them in the global `/bin` (see `ns::rules::exec_lookup`).
//!
//! When the namespace dies, [`move_aside`] renames its root to `/ns/.dead-<id>-<n>` (one
//! atomic transaction, so the id can be reused at once) and [`remove_tree`] then removes that
//! tree one transaction at a time. A crash part-way leaves a consistent file system with some of the tree still
//! there; no namespace outlives a boot, so [`clean_at_boot`] removes everything below the
//! disk's `/ns`. The whole of `/ns` belongs to the kernel in that sense: a user's own files
//! there are removed at the next boot.
//!
//! Everything here runs in task or process context (it awaits the disk) and holds no lock
//! across an await but the file system's own.

use crate::file::convert::errno;
use crate::kprintln;
use crate::rootfs::Ino;
use abi::syscall::ns::ROOTS_DIR;
use abi::syscall::Errno;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering::SeqCst};
use fs::inode::{T_DIR, T_FILE};
use fs::FsError;

/// Largest `/etc` file copied into a new root (bigger ones are left out).
const ETC_FILE_MAX: u64 = 64 * 1024;
/// Bytes copied per step.
const CHUNK: usize = 4096;
/// Deepest directory tree `nspcopy -r` copies (`ENAMETOOLONG` beyond).
pub const TREE_DEPTH_MAX: usize = 256;

/// Numbers the `.dead-<id>-<n>` names, so that a retiring id never meets its predecessor.
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Names [`move_aside`] tries before it gives up.
const DEAD_NAME_TRIES: usize = 64;

/// `/ns/<id>` of `parent_root`, with `/etc` and `/tmp`; the new root's inode. Whatever was at
/// that name before is moved aside and removed first. On failure nothing is left behind.
pub async fn make(parent_root: &Ino, id: u32) -> Result<Ino, Errno> {
    let fs = parent_root.fs();
    match fs.mkdir(parent_root, parent_root, ROOTS_DIR.as_bytes()).await {
        Ok(_) | Err(FsError::Exists) => {}
        Err(e) => return Err(errno(e)),
    }
    let path = format!("{ROOTS_DIR}/{id}");
    // `/ns` is the kernel's: a directory already at `/ns/<id>` is a root whose removal failed,
    // or a user's; it would keep this id from ever being used, so it goes.
    if fs.namei(parent_root, parent_root, path.as_bytes()).await.is_ok() {
        if let Some(dead) = move_aside(parent_root, id).await {
            remove_tree(parent_root, dead.as_bytes()).await;
        }
    }
    let root = fs.mkdir(parent_root, parent_root, path.as_bytes()).await.map_err(errno)?;
    if let Err(e) = fill(parent_root, &root).await {
        remove_tree(parent_root, path.as_bytes()).await;
        return Err(e);
    }
    Ok(root)
}

/// What a new root starts with: `/tmp`, and `/etc` with copies of the parent's `/etc` files.
async fn fill(parent_root: &Ino, root: &Ino) -> Result<(), Errno> {
    let fs = root.fs();
    fs.mkdir(root, root, b"/tmp").await.map_err(errno)?;
    fs.mkdir(root, root, b"/etc").await.map_err(errno)?;
    let Ok(etc) = fs.namei(parent_root, parent_root, b"/etc").await else { return Ok(()) };
    for (name, _) in entries(&etc).await.map_err(errno)? {
        let src = fs.namei(parent_root, &etc, name.as_bytes()).await.map_err(errno)?;
        let (kind, size) = {
            let l = src.lock().await.map_err(errno)?;
            (l.kind(), l.size())
        };
        if kind == T_FILE && size <= ETC_FILE_MAX {
            let dst = format!("/etc/{name}");
            copy_file(&src, root, root, dst.as_bytes(), || false).await?;
        }
    }
    Ok(())
}

/// The names in directory `dir`, without `.` and `..`.
pub async fn entries(dir: &Ino) -> Result<Vec<(alloc::string::String, u32)>, FsError> {
    let mut l = dir.lock().await?;
    let mut v = l.dir_entries().await?;
    v.retain(|(n, _)| n != "." && n != "..");
    Ok(v)
}

/// Copy the file `src` to a new file `path` (from `root`, relative to `cwd`), a chunk at a
/// time; `stop()` is asked between chunks (a killed caller: `EINTR`). On failure the new file
/// is removed.
pub async fn copy_file(
    src: &Ino,
    root: &Ino,
    cwd: &Ino,
    path: &[u8],
    stop: impl Fn() -> bool,
) -> Result<(), Errno> {
    let fs = src.fs();
    let dst = fs.create(root, cwd, path, T_FILE, 0, 0).await.map_err(errno)?;
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    let r = async {
        loop {
            if stop() {
                return Err(Errno::EINTR);
            }
            let n = fs.read(src, off, &mut buf).await.map_err(errno)?;
            if n == 0 {
                return Ok(());
            }
            let w = fs.write(&dst, off, &buf[..n]).await.map_err(errno)?;
            if w < n {
                return Err(Errno::ENOSPC);
            }
            off += n as u64;
        }
    }
    .await;
    if r.is_err() {
        drop(dst);
        let _ = fs.unlink(root, cwd, path).await;
    }
    r
}

/// The namespace `id` died: rename its root (`/ns/<id>` of `parent_root`) to a fresh
/// `.dead-<id>-<n>` name, so that the id may be reused at once; the new name, for
/// [`remove_tree`]. `None` if there was nothing to move (an ancestor removed it) or the rename
/// failed (reported: the tree then stays until the next boot, and [`make`] moves it aside if
/// the id is reused first).
pub async fn move_aside(parent_root: &Ino, id: u32) -> Option<alloc::string::String> {
    let fs = parent_root.fs();
    let from = format!("{ROOTS_DIR}/{id}");
    // A name a tree left by an earlier boot (or a failed removal) may hold already: try on.
    for _ in 0..DEAD_NAME_TRIES {
        let to = format!("{ROOTS_DIR}/.dead-{id}-{}", GENERATION.fetch_add(1, SeqCst));
        match fs.rename(parent_root, parent_root, from.as_bytes(), to.as_bytes()).await {
            Ok(()) => return Some(to),
            Err(FsError::NotFound) => return None,
            Err(FsError::Exists | FsError::NotEmpty | FsError::IsDir) => continue,
            Err(e) => {
                kprintln!("ns {id}: cannot move its root {from} away: {e}");
                return None;
            }
        }
    }
    kprintln!("ns {id}: no free name to move its root {from} to");
    None
}

/// At boot: make the disk's `/ns` if it is missing (so that the first container does not add
/// an inode that outlives it), and remove everything below it (no namespace outlives a boot).
pub async fn clean_at_boot(fs: &'static crate::rootfs::RootFs) {
    let Ok(root) = fs.root() else { return };
    let dir = match fs.mkdir(&root, &root, ROOTS_DIR.as_bytes()).await {
        Ok(dir) => dir,
        Err(FsError::Exists) => match fs.namei(&root, &root, ROOTS_DIR.as_bytes()).await {
            Ok(dir) => dir,
            Err(_) => return,
        },
        Err(e) => return kprintln!("ns: cannot make {ROOTS_DIR}: {e}"),
    };
    let Ok(names) = entries(&dir).await else { return };
    if !names.is_empty() {
        kprintln!("ns: removing {} container roots left from the last run", names.len());
    }
    for (name, _) in names {
        remove_tree(&dir, name.as_bytes()).await;
    }
}

/// Remove `path` (from `base`, which is also the root for the lookup) and everything below
/// it, one file-system operation at a time. Stops (with a message) at an error; what it could
/// not remove stays (and goes at the next boot, for a root under `/ns`).
pub async fn remove_tree(base: &Ino, path: &[u8]) {
    if let Err(e) = try_remove_tree(base, path).await {
        kprintln!("ns: removing {}: {e}", alloc::string::String::from_utf8_lossy(path));
    }
}

/// [`remove_tree`]'s walk. It holds a constant number of inodes whatever the depth of the
/// tree (a container decides how deep its root goes): the directory being emptied and its
/// parent, reached again through `..` on the way up, never a stack of every level. Files go
/// as a directory is listed; its first subdirectory is entered; an empty directory is removed
/// and the walk goes back up. A directory that gained an entry meanwhile (a copy into a dying
/// namespace) is listed again, not given up.
async fn try_remove_tree(base: &Ino, path: &[u8]) -> Result<(), FsError> {
    let fs = base.fs();
    let mut dir = match fs.namei(base, base, &[path, b"/.."].concat()).await {
        Ok(d) => d,
        Err(FsError::NotFound) => return Ok(()),
        Err(e) => return Err(e),
    };
    // The entry being removed is `name` in `dir`, `depth` levels below `path`'s own.
    let mut name = super::rules::last_name(path).to_vec();
    let mut depth = 0usize;
    loop {
        let ip = match fs.namei(base, &dir, &name).await {
            Ok(ip) => Some(ip),
            Err(FsError::NotFound) => None, // removed by someone else: go on up
            Err(e) => return Err(e),
        };
        if let Some(ip) = ip {
            let is_dir = ip.lock().await?.kind() == T_DIR;
            let mut subdir = None;
            if is_dir {
                for (child, _) in entries(&ip).await? {
                    let kind = fs.namei(base, &ip, child.as_bytes()).await?.lock().await?.kind();
                    if kind == T_DIR {
                        subdir = Some(child);
                        break;
                    }
                    fs.unlink(base, &ip, child.as_bytes()).await?;
                }
            }
            if let Some(child) = subdir {
                (dir, name, depth) = (ip, child.into_bytes(), depth + 1);
                continue;
            }
            drop(ip);
            match fs.unlink(base, &dir, &name).await {
                Ok(()) | Err(FsError::NotFound) => {}
                Err(FsError::NotEmpty) => continue, // an entry came meanwhile: list it again
                Err(e) => return Err(e),
            }
        }
        if depth == 0 {
            return Ok(());
        }
        // Up: `dir` is the entry to remove next, named by its inode number in its parent.
        let parent = fs.namei(base, &dir, b"..").await?;
        let inum = dir.inum();
        let found = entries(&parent).await?.into_iter().find(|&(_, i)| i == inum);
        let (up_name, _) = found.ok_or(FsError::NotFound)?;
        (dir, name, depth) = (parent, up_name.into_bytes(), depth - 1);
    }
}
