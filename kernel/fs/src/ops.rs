//! Whole file-system operations, each one transaction: create, mkdir, link, unlink, rename,
//! truncate; and write, split into transactions of at most [`MAX_WRITE`] bytes.
//!
//! Each operation checks everything that can make it fail before it changes anything, so a
//! failed operation leaves the disk as it was (an inode allocated for a name that could not
//! be linked is freed again in the same transaction). Errors are Linux's for the same call
//! (rename(2), link(2), unlink(2) and rmdir(2): `unlink` also removes empty directories).
//!
//! Locks: an operation locks a directory before the inodes it holds, and an ancestor before
//! its descendants; it never locks an inode it already holds. Besides a directory and one of
//! its entries (create, unlink, link), only `rename` holds two directories at once; renames
//! run one at a time (`Fs::rename_lock`), which also keeps the tree's shape (which directory
//! is above which) still while one runs: nothing else moves directories. Inodes are locked
//! before buffers.

use crate::dir::Found;
use crate::inode::{Inode, Locked, T_DEV, T_DIR, T_FILE, T_FREE};
use crate::path::{check_name, Last};
use crate::{BlockDevice, Fs, FsError};
use abi::fs::{BSIZE, MAX_OP_BLOCKS, ROOT_INO};

/// The most bytes one transaction writes: `MAX_OP_BLOCKS` minus the inode block, two bitmap
/// blocks, three pointer tables, one block of slack for an unaligned start, and one spare.
pub const MAX_WRITE: usize = (MAX_OP_BLOCKS - 8) * BSIZE;

/// Run `$body` (an expression using `?`) inside one transaction; the transaction ends even
/// when the body fails.
macro_rules! in_tx {
    ($fs:expr, $body:expr) => {{
        $fs.log.begin_op().await?;
        let result: Result<_, FsError> = async { $body }.await;
        let ended = $fs.log.end_op(&$fs.cache).await;
        let value = result?;
        ended?;
        Ok::<_, FsError>(value)
    }};
}

/// `name`'s entry in the locked directory `dir`, for an operation that adds or removes it. A
/// removed directory (link count 0) holds nothing and takes nothing: `NotFound`.
async fn entry<D: BlockDevice>(
    dir: &mut Locked<'_, D>,
    name: &[u8],
) -> Result<Option<Found>, FsError> {
    if dir.nlink() == 0 {
        return Err(FsError::NotFound);
    }
    check_name(name)?;
    dir.dir_lookup(name).await
}

/// Add `delta` to a link count (the caller writes the inode back).
fn add_links<D: BlockDevice>(l: &mut Locked<'_, D>, delta: i32) -> Result<(), FsError> {
    let n = i32::from(l.nlink()) + delta;
    l.dinode_mut().nlink = match u16::try_from(n) {
        Ok(n) => n,
        Err(_) if n < 0 => return Err(FsError::Corrupt("link count below zero")),
        Err(_) => return Err(FsError::TooManyLinks),
    };
    Ok(())
}

/// Where a rename's two directories stand (what Linux's `lock_rename` finds). The "trap" is
/// the child of the upper directory on the way down to the lower one: the source may not be
/// it (a directory into its own subtree) and neither may the target (onto an ancestor of the
/// source, which is not empty).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Relation {
    Same,
    OldAbove { trap: u32 },
    NewAbove { trap: u32 },
    Apart,
}

impl<D: BlockDevice> Fs<D> {
    /// Create `path` as a `kind` inode. For `T_FILE` this is `open(path, O_CREAT)`: an existing
    /// file (or device) is returned, a directory is `IsDir`; mkdir and mknod find any existing
    /// inode in the way (`Exists`).
    pub async fn create<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
        kind: u16,
        major: u16,
        minor: u16,
    ) -> Result<Inode<'a, D>, FsError> {
        if ![T_DIR, T_FILE, T_DEV].contains(&kind) {
            return Err(FsError::InvalidArgument);
        }
        self.reap().await?;
        in_tx!(self, {
            let p = self.nameiparent(root, cwd, path).await?;
            let Last::Name(name) = &p.last else {
                // "/", "." or "..": a directory is there.
                return Err(if kind == T_FILE { FsError::IsDir } else { FsError::Exists });
            };
            if kind == T_FILE && p.slash {
                return Err(FsError::IsDir); // only a directory may be named "f/"
            }
            let mut dir = p.dir.lock().await?;
            if let Some(found) = entry(&mut dir, name).await? {
                drop(dir);
                if kind != T_FILE {
                    return Err(FsError::Exists);
                }
                let ip = self.iget(found.inum)?;
                let existing = ip.lock().await?.kind();
                return if existing == T_DIR { Err(FsError::IsDir) } else { Ok(ip) };
            }
            if p.slash && kind != T_DIR {
                return Err(FsError::NotFound); // mknod("x/"): Linux's answer
            }
            if kind == T_DIR && dir.nlink() == u16::MAX {
                return Err(FsError::TooManyLinks); // no room for the new directory's ".."
            }
            let ip = self.ialloc(kind).await?;
            let mut l = ip.lock().await?;
            {
                let d = l.dinode_mut();
                (d.major, d.minor, d.nlink) = (major, minor, 1);
            }
            l.update().await?;
            let linked = async {
                if kind == T_DIR {
                    l.dir_link(b".", ip.inum()).await?;
                    l.dir_link(b"..", p.dir.inum()).await?;
                }
                dir.dir_link(name, ip.inum()).await
            }
            .await;
            if let Err(e) = linked {
                // Undo the allocation inside this same transaction.
                l.truncate(0).await?;
                (l.dinode_mut().kind, l.dinode_mut().nlink) = (T_FREE, 0);
                l.update().await?;
                return Err(e);
            }
            if kind == T_DIR {
                add_links(&mut dir, 1)?; // the new directory's ".."
                dir.update().await?;
            }
            drop(l);
            Ok(ip)
        })
    }

    pub async fn mkdir<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<Inode<'a, D>, FsError> {
        self.create(root, cwd, path, T_DIR, 0, 0).await
    }

    /// Remove the name `path`: unlink(2) for a file, rmdir(2) for an (empty) directory. The
    /// inode is freed when its last link and last handle are gone.
    pub async fn unlink<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<(), FsError> {
        in_tx!(self, {
            let p = self.nameiparent(root, cwd, path).await?;
            let name = match &p.last {
                Last::Name(n) => n,
                // As rmdir(2): "/" is busy, "." invalid, and ".." holds at least us.
                Last::Root => return Err(FsError::Busy),
                Last::Dot => return Err(FsError::InvalidArgument),
                Last::DotDot => return Err(FsError::NotEmpty),
            };
            let mut dir = p.dir.lock().await?;
            let found = entry(&mut dir, name).await?.ok_or(FsError::NotFound)?;
            if found.inum == dir.inum() {
                return Err(FsError::Corrupt("a directory entry names its own directory"));
            }
            let ip = self.iget(found.inum)?;
            let mut l = ip.lock().await?;
            if l.kind() != T_DIR && p.slash {
                return Err(FsError::NotDir);
            }
            if l.nlink() == 0 {
                return Err(FsError::Corrupt("unlinking an inode with no links"));
            }
            if l.kind() == T_DIR && !l.dir_is_empty().await? {
                return Err(FsError::NotEmpty);
            }
            dir.dir_set(found.offset, 0, b"").await?;
            if l.kind() == T_DIR {
                add_links(&mut dir, -1)?; // its ".." is gone
                dir.update().await?;
                l.dinode_mut().nlink = 0;
            } else {
                add_links(&mut l, -1)?;
            }
            l.update().await?;
            Ok(())
        })?;
        self.reap().await.map(|_| ())
    }

    /// A second name `new` for the file `old` (not for directories: `NotPermitted`).
    pub async fn link<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), FsError> {
        in_tx!(self, {
            let ip = self.namei(root, cwd, old).await?;
            let is_dir = ip.lock().await?.kind() == T_DIR;
            let p = self.nameiparent(root, cwd, new).await?;
            let Last::Name(name) = &p.last else { return Err(FsError::Exists) };
            let mut dir = p.dir.lock().await?;
            if entry(&mut dir, name).await?.is_some() {
                return Err(FsError::Exists);
            }
            if p.slash {
                return Err(FsError::NotFound); // "x/" names a directory, and x is none
            }
            if is_dir {
                return Err(FsError::NotPermitted);
            }
            // Not a directory, so not `dir`: the directory first, then what it will hold.
            let mut l = ip.lock().await?;
            if l.nlink() == 0 {
                return Err(FsError::NotFound); // removed since the lookup
            }
            if l.nlink() == u16::MAX {
                return Err(FsError::TooManyLinks);
            }
            dir.dir_link(name, ip.inum()).await?;
            add_links(&mut l, 1)?;
            l.update().await?;
            Ok(())
        })
    }

    /// The child of directory `top` on the way down to directory `below`, when `top` is a
    /// proper ancestor of `below`. Walks `..` up to the file system's root, one lock at a time.
    async fn child_toward<'a>(
        &'a self,
        top: u32,
        below: &Inode<'a, D>,
    ) -> Result<Option<u32>, FsError> {
        let mut cur = below.clone();
        for _ in 0..self.sb.ninodes {
            let up = {
                let mut l = cur.lock().await?;
                if cur.inum() == ROOT_INO || l.nlink() == 0 {
                    // At the top, or removed (the rename then fails with NotFound).
                    return Ok(None);
                }
                l.dir_lookup(b"..").await?.ok_or(FsError::Corrupt("directory without .."))?.inum
            };
            if up == top {
                return Ok(Some(cur.inum()));
            }
            cur = self.iget(up)?;
        }
        Err(FsError::Corrupt("directory cycle"))
    }

    /// Rename `old` to `new`, replacing a file (or an empty directory) at `new`. Renames run
    /// one at a time (`rename_lock`), so the tree's shape stays still while this one finds
    /// which directory is above the other and locks the upper one first.
    pub async fn rename<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), FsError> {
        let _one_at_a_time = self.rename_lock.lock().await;
        in_tx!(self, {
            let op = self.nameiparent(root, cwd, old).await?;
            let np = self.nameiparent(root, cwd, new).await?;
            let (Last::Name(oname), Last::Name(nname)) = (&op.last, &np.last) else {
                return Err(FsError::Busy); // "/", "." or ".." on either side
            };
            let (o, n) = (op.dir.inum(), np.dir.inum());
            let rel = if o == n {
                Relation::Same
            } else if let Some(trap) = self.child_toward(o, &np.dir).await? {
                Relation::OldAbove { trap }
            } else if let Some(trap) = self.child_toward(n, &op.dir).await? {
                Relation::NewAbove { trap }
            } else {
                Relation::Apart
            };
            let names = (&oname[..], &nname[..], op.slash || np.slash);
            if rel == Relation::Same {
                let mut d = op.dir.lock().await?;
                return self.rename_locked(&mut d, None, names, rel).await;
            }
            let old_first = match rel {
                Relation::OldAbove { .. } => true,
                Relation::NewAbove { .. } => false,
                _ => o < n, // unrelated: any fixed order (renames run one at a time anyway)
            };
            let (mut od, mut nd) = if old_first {
                let od = op.dir.lock().await?;
                (od, np.dir.lock().await?)
            } else {
                let nd = np.dir.lock().await?;
                (op.dir.lock().await?, nd)
            };
            self.rename_locked(&mut od, Some(&mut nd), names, rel).await
        })
    }

    /// The body of `rename`, with the old directory and a distinct new one (`None`: the same)
    /// locked. Checks in Linux's order, then changes the disk.
    async fn rename_locked<'a>(
        &'a self,
        od: &mut Locked<'a, D>,
        mut nd: Option<&mut Locked<'a, D>>,
        (oname, nname, slash): (&[u8], &[u8], bool),
        rel: Relation,
    ) -> Result<(), FsError> {
        let src = entry(od, oname).await?.ok_or(FsError::NotFound)?;
        let tgt = match nd.as_deref_mut() {
            Some(nd) => entry(nd, nname).await?,
            None => entry(od, nname).await?,
        };
        let n = nd.as_deref().map_or(od.inum(), |nd| nd.inum());
        if rel == (Relation::OldAbove { trap: src.inum }) {
            // The source is above the new directory: a directory moving into itself (it is
            // not locked: it is above a directory we hold).
            return Err(FsError::InvalidArgument);
        }
        if src.inum == od.inum() || src.inum == n {
            return Err(FsError::Corrupt("a directory entry names its own directory"));
        }
        // Neither held nor above what is held, so it may be locked now.
        let sip = self.iget(src.inum)?;
        let (src_dir, dotdot) = {
            let mut l = sip.lock().await?;
            match l.kind() {
                T_DIR => (true, l.dir_lookup(b"..").await?),
                _ => (false, None),
            }
        };
        if !src_dir && slash {
            return Err(FsError::NotDir);
        }
        if tgt.is_some_and(|t| rel == Relation::NewAbove { trap: t.inum }) {
            return Err(FsError::NotEmpty); // onto an ancestor of the source
        }
        let moving_dir = src_dir && nd.is_some();
        // What a corrupt disk could make fail half-way, checked before anything changes.
        if src_dir && dotdot.is_none() {
            return Err(FsError::Corrupt("directory without .."));
        }
        if moving_dir && od.nlink() < 2 {
            return Err(FsError::Corrupt("link count below its subdirectories"));
        }
        match tgt {
            Some(t) if t.inum == src.inum => return Ok(()), // two names of one inode
            Some(t) => {
                if t.inum == od.inum() || t.inum == n {
                    return Err(FsError::Corrupt("a directory entry names its own directory"));
                }
                // A child of the new directory, and not above the old one (that was the trap).
                let tip = self.iget(t.inum)?;
                let mut tl = tip.lock().await?;
                let t_dir = tl.kind() == T_DIR;
                match (src_dir, t_dir) {
                    (true, false) => return Err(FsError::NotDir),
                    (false, true) => return Err(FsError::IsDir),
                    (true, true) if !tl.dir_is_empty().await? => return Err(FsError::NotEmpty),
                    _ => {}
                }
                let ndir: &mut Locked<'a, D> = match nd.as_deref_mut() {
                    Some(nd) => nd,
                    None => &mut *od,
                };
                if tl.nlink() == 0 || (t_dir && ndir.nlink() < 2) {
                    return Err(FsError::Corrupt("link count below the names of an inode"));
                }
                ndir.dir_set(t.offset, src.inum, nname).await?;
                if t_dir {
                    tl.dinode_mut().nlink = 0;
                    add_links(ndir, -1)?; // the replaced directory's ".."
                    ndir.update().await?;
                } else {
                    add_links(&mut tl, -1)?;
                }
                tl.update().await?;
            }
            None => {
                let ndir: &mut Locked<'a, D> = match nd.as_deref_mut() {
                    Some(nd) => nd,
                    None => &mut *od,
                };
                if moving_dir && ndir.nlink() == u16::MAX {
                    return Err(FsError::TooManyLinks); // no room for the moved directory's ".."
                }
                ndir.dir_link(nname, src.inum).await?;
            }
        }
        od.dir_set(src.offset, 0, b"").await?;
        if let (true, Some(nd), Some(dotdot)) = (moving_dir, nd, dotdot) {
            // The directory moved: its ".." now names the new parent.
            sip.lock().await?.dir_set(dotdot.offset, nd.inum(), b"..").await?;
            add_links(od, -1)?;
            od.update().await?;
            add_links(nd, 1)?;
            nd.update().await?;
        }
        Ok(())
    }

    /// Write all of `buf` at `off`, in as many transactions as it takes. Returns the bytes
    /// written (fewer than asked only if the disk filled up).
    pub async fn write(&self, ip: &Inode<'_, D>, off: u64, buf: &[u8]) -> Result<usize, FsError> {
        self.reap().await?;
        let mut done = 0;
        while done < buf.len() {
            let chunk = &buf[done..buf.len().min(done + MAX_WRITE)];
            let r: Result<usize, FsError> = in_tx!(self, {
                let mut l = ip.lock().await?;
                if l.kind() == T_DIR {
                    return Err(FsError::IsDir);
                }
                l.write_at(off + done as u64, chunk).await
            });
            match r {
                Ok(n) => {
                    done += n;
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    pub async fn read(
        &self,
        ip: &Inode<'_, D>,
        off: u64,
        buf: &mut [u8],
    ) -> Result<usize, FsError> {
        ip.lock().await?.read_at(off, buf).await
    }

    /// [`Fs::read`], with the read-ahead window read by a task `spawn` runs: the read does
    /// not wait for it (see [`crate::inode::Locked::read_spawning`]).
    pub async fn read_spawning(
        &'static self,
        ip: &Inode<'static, D>,
        off: u64,
        buf: &mut [u8],
        spawn: crate::inode::Spawn,
    ) -> Result<usize, FsError> {
        ip.lock().await?.read_spawning(off, buf, spawn).await
    }

    /// Set a file's length (shrinking frees its blocks; growing reads back as zeros).
    pub async fn truncate(&self, ip: &Inode<'_, D>, len: u64) -> Result<(), FsError> {
        in_tx!(self, {
            let mut l = ip.lock().await?;
            if l.kind() == T_DIR {
                return Err(FsError::IsDir);
            }
            l.truncate(len).await
        })
    }
}
