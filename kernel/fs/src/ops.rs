//! Whole file-system operations, each one transaction: create, mkdir, link, unlink, rename,
//! truncate; and write, split into transactions of at most [`MAX_WRITE`] bytes.
//!
//! Each operation leaves the disk consistent even when it fails half-way: an inode allocated
//! for a name that could not be linked is freed again in the same transaction.

use crate::inode::{Inode, Locked, T_DEV, T_DIR, T_FILE, T_FREE};
use crate::{BlockDevice, Fs, FsError};
use abi::fs::{BSIZE, MAX_OP_BLOCKS};

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

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl<D: BlockDevice> Fs<D> {
    /// Create `path` as a `kind` inode. Opening an existing file for creation returns it.
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
            let (dp, name) = self.nameiparent(root, cwd, path).await?;
            if is_dot(&name) {
                return Err(FsError::Exists);
            }
            let mut dir = dp.lock().await?;
            if let Some(found) = dir.dir_lookup(&name).await? {
                drop(dir);
                let ip = self.iget(found.inum)?;
                let existing = ip.lock().await?.kind();
                return if kind == T_FILE && existing != T_DIR {
                    Ok(ip)
                } else {
                    Err(FsError::Exists)
                };
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
                    l.dir_link(b"..", dp.inum()).await?;
                }
                dir.dir_link(&name, ip.inum()).await
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
                dir.dinode_mut().nlink += 1; // the new directory's ".."
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

    /// Remove the name `path`. The inode is freed when its last link and last handle are gone.
    pub async fn unlink<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<(), FsError> {
        in_tx!(self, {
            let (dp, name) = self.nameiparent(root, cwd, path).await?;
            if is_dot(&name) {
                return Err(FsError::InvalidArgument);
            }
            let mut dir = dp.lock().await?;
            let found = dir.dir_lookup(&name).await?.ok_or(FsError::NotFound)?;
            let ip = self.iget(found.inum)?;
            let mut l = ip.lock().await?;
            if l.nlink() == 0 {
                return Err(FsError::Corrupt("unlinking an inode with no links"));
            }
            if l.kind() == T_DIR && !l.dir_is_empty().await? {
                return Err(FsError::NotEmpty);
            }
            dir.dir_set(found.offset, 0, b"").await?;
            if l.kind() == T_DIR {
                dir.dinode_mut().nlink -= 1; // its ".." is gone
                dir.update().await?;
                l.dinode_mut().nlink = 0;
            } else {
                l.dinode_mut().nlink -= 1;
            }
            l.update().await?;
            Ok(())
        })?;
        self.reap().await.map(|_| ())
    }

    /// A second name `new` for the file `old` (not for directories).
    pub async fn link<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), FsError> {
        in_tx!(self, {
            let ip = self.namei(root, cwd, old).await?;
            let mut l = ip.lock().await?;
            if l.kind() == T_DIR {
                return Err(FsError::IsDir);
            }
            if l.nlink() == u16::MAX {
                return Err(FsError::InvalidArgument);
            }
            drop(l);
            let (dp, name) = self.nameiparent(root, cwd, new).await?;
            let mut dir = dp.lock().await?;
            dir.dir_link(&name, ip.inum()).await?;
            drop(dir);
            l = ip.lock().await?;
            l.dinode_mut().nlink += 1;
            l.update().await?;
            Ok(())
        })
    }

    /// Is directory `inum` equal to or below directory `ancestor`? Walks `..` up to `root`.
    async fn is_within<'a>(
        &'a self,
        root: &Inode<'a, D>,
        mut inum: u32,
        ancestor: u32,
    ) -> Result<bool, FsError> {
        for _ in 0..self.sb.ninodes {
            if inum == ancestor {
                return Ok(true);
            }
            if inum == root.inum() {
                return Ok(false);
            }
            let ip = self.iget(inum)?;
            let mut l = ip.lock().await?;
            inum = l.dir_lookup(b"..").await?.ok_or(FsError::Corrupt("directory without .."))?.inum;
        }
        Err(FsError::Corrupt("directory cycle"))
    }

    /// Rename `old` to `new` within this file system, replacing a file (or empty directory)
    /// at `new`. Renames run one at a time (`rename_lock`), locking directories ancestor
    /// first, so two renames cannot deadlock.
    pub async fn rename<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        old: &[u8],
        new: &[u8],
    ) -> Result<(), FsError> {
        let _one_at_a_time = self.rename_lock.lock().await;
        in_tx!(self, {
            let (odp, oname) = self.nameiparent(root, cwd, old).await?;
            let (ndp, nname) = self.nameiparent(root, cwd, new).await?;
            if is_dot(&oname) || is_dot(&nname) {
                return Err(FsError::InvalidArgument);
            }
            let src = {
                let mut od = odp.lock().await?;
                od.dir_lookup(&oname).await?.ok_or(FsError::NotFound)?.inum
            };
            let ip = self.iget(src)?;
            let is_dir = ip.lock().await?.kind() == T_DIR;
            if is_dir && self.is_within(root, ndp.inum(), src).await? {
                return Err(FsError::InvalidArgument); // into itself or its own subtree
            }
            if odp.inum() == ndp.inum() {
                let mut d = odp.lock().await?;
                self.rename_in(&mut d, None, &oname, &nname, &ip, is_dir).await
            } else {
                let odp_first = self.is_within(root, ndp.inum(), odp.inum()).await?
                    || (!self.is_within(root, odp.inum(), ndp.inum()).await?
                        && odp.inum() < ndp.inum());
                let (mut od, mut nd) = if odp_first {
                    let od = odp.lock().await?;
                    (od, ndp.lock().await?)
                } else {
                    let nd = ndp.lock().await?;
                    (odp.lock().await?, nd)
                };
                self.rename_in(&mut od, Some(&mut nd), &oname, &nname, &ip, is_dir).await
            }
        })
    }

    /// The body of `rename`, with the old directory (and a distinct new one) locked.
    async fn rename_in<'a>(
        &'a self,
        od: &mut Locked<'a, D>,
        mut nd: Option<&mut Locked<'a, D>>,
        oname: &[u8],
        nname: &[u8],
        ip: &Inode<'a, D>,
        is_dir: bool,
    ) -> Result<(), FsError> {
        let ofound = od.dir_lookup(oname).await?.ok_or(FsError::NotFound)?;
        if ofound.inum != ip.inum() {
            return Err(FsError::NotFound); // changed under us
        }
        let target = match nd.as_deref_mut() {
            Some(nd) => nd.dir_lookup(nname).await?,
            None => od.dir_lookup(nname).await?,
        };
        if let Some(t) = target {
            if t.inum == ip.inum() {
                return Ok(()); // both names already refer to the same file
            }
            let tip = self.iget(t.inum)?;
            let mut tl = tip.lock().await?;
            match (is_dir, tl.kind() == T_DIR) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !tl.dir_is_empty().await? => return Err(FsError::NotEmpty),
                _ => {}
            }
            let nd_ref: &mut Locked<'a, D> = match nd.as_deref_mut() {
                Some(nd) => nd,
                None => &mut *od,
            };
            nd_ref.dir_set(t.offset, ip.inum(), nname).await?;
            if tl.kind() == T_DIR {
                tl.dinode_mut().nlink = 0;
                nd_ref.dinode_mut().nlink -= 1; // the replaced directory's ".."
                nd_ref.update().await?;
            } else {
                tl.dinode_mut().nlink -= 1;
            }
            tl.update().await?;
        } else {
            match nd.as_deref_mut() {
                Some(nd) => nd.dir_link(nname, ip.inum()).await?,
                None => od.dir_link(nname, ip.inum()).await?,
            }
        }
        let ofound = od.dir_lookup(oname).await?.ok_or(FsError::NotFound)?;
        od.dir_set(ofound.offset, 0, b"").await?;
        if let (true, Some(nd)) = (is_dir, nd) {
            // The directory moved: its ".." now names the new parent.
            let mut l = ip.lock().await?;
            let dotdot =
                l.dir_lookup(b"..").await?.ok_or(FsError::Corrupt("directory without .."))?;
            l.dir_set(dotdot.offset, nd.inum(), b"..").await?;
            od.dinode_mut().nlink -= 1;
            od.update().await?;
            nd.dinode_mut().nlink += 1;
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
