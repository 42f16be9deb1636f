//! Path lookup. The starting points are parameters, never globals: an absolute path starts
//! at the caller's `root` (a process's root directory: the disk's, or a container's), a
//! relative one at `cwd`. `..` at `root` stays at `root`, so no path leads out of it.
//!
//! Lookup holds one directory lock at a time (it drops a directory before locking the next),
//! so it cannot take part in a deadlock. A directory that was removed (link count 0) holds no
//! names: looking anything up in it but `.` is `NotFound`, `..` included, because its `..`
//! entry may name an inode since freed and reused (perhaps outside `root`).

use crate::inode::{Locked, T_DIR};
use crate::{BlockDevice, Fs, FsError, Inode};
use abi::fs::DIRSIZ;
use alloc::vec::Vec;

/// Split off the first component of `path`, skipping slashes: `"//a/b"` -> `("a", "/b")`.
fn first_component(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = path.iter().position(|&c| c != b'/')?;
    let rest = &path[start..];
    let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// What the last component of a path is (Linux's `LAST_NORM`, `LAST_DOT`, `LAST_DOTDOT` and
/// `LAST_ROOT`): operations that create, remove or rename need a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Last {
    Name(Vec<u8>),
    Dot,
    DotDot,
    /// The path is `/` (or only slashes): there is no last component.
    Root,
}

/// The directory that holds (or would hold) a path's last component.
pub struct Parent<'a, D: BlockDevice> {
    pub dir: Inode<'a, D>,
    pub last: Last,
    /// The path ends with a slash: it must name a directory.
    pub slash: bool,
}

/// `name` may be an entry: not too long for one, no NUL.
pub(crate) fn check_name(name: &[u8]) -> Result<(), FsError> {
    if name.len() > DIRSIZ || name.contains(&0) {
        return Err(FsError::InvalidName);
    }
    Ok(())
}

impl<D: BlockDevice> Fs<D> {
    /// One step of lookup: `name` in the locked directory `dir`.
    pub(crate) async fn step(
        &self,
        root: &Inode<'_, D>,
        dir: &mut Locked<'_, D>,
        name: &[u8],
    ) -> Result<u32, FsError> {
        if name == b"." {
            return Ok(dir.inum());
        }
        if name == b".." && dir.inum() == root.inum() {
            return Ok(root.inum()); // the root's parent is itself
        }
        if dir.nlink() == 0 {
            return Err(FsError::NotFound); // removed: see the module's doc
        }
        check_name(name)?;
        Ok(dir.dir_lookup(name).await?.ok_or(FsError::NotFound)?.inum)
    }

    /// Every component of `path` but the last, each a directory.
    async fn walk<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<Parent<'a, D>, FsError> {
        if path.is_empty() {
            return Err(FsError::NotFound);
        }
        let mut ip = if path[0] == b'/' { root.clone() } else { cwd.clone() };
        let slash = path.ends_with(b"/");
        let Some((mut name, mut rest)) = first_component(path) else {
            return Ok(Parent { dir: ip, last: Last::Root, slash: false });
        };
        loop {
            let mut dir = ip.lock().await?;
            if dir.kind() != T_DIR {
                return Err(FsError::NotDir);
            }
            let Some((next, after)) = first_component(rest) else {
                drop(dir);
                let last = match name {
                    b"." => Last::Dot,
                    b".." => Last::DotDot,
                    _ => Last::Name(name.into()),
                };
                return Ok(Parent { dir: ip, last, slash });
            };
            let inum = self.step(root, &mut dir, name).await?;
            drop(dir);
            ip = self.iget(inum)?;
            (name, rest) = (next, after);
        }
    }

    /// The inode `path` names. A trailing slash requires a directory (`NotDir`).
    pub async fn namei<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<Inode<'a, D>, FsError> {
        let p = self.walk(root, cwd, path).await?;
        let name: &[u8] = match &p.last {
            Last::Root => return Ok(p.dir),
            Last::Dot => b".",
            Last::DotDot => b"..",
            Last::Name(n) => n,
        };
        let inum = {
            let mut dir = p.dir.lock().await?;
            self.step(root, &mut dir, name).await?
        };
        let ip = self.iget(inum)?;
        if p.slash && ip.lock().await?.kind() != T_DIR {
            return Err(FsError::NotDir);
        }
        Ok(ip)
    }

    /// The directory that would hold `path`'s last component, and what that component is.
    pub async fn nameiparent<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<Parent<'a, D>, FsError> {
        self.walk(root, cwd, path).await
    }
}

#[cfg(test)]
mod tests {
    use super::first_component;

    #[test]
    fn components() {
        assert_eq!(first_component(b"//a/b"), Some((&b"a"[..], &b"/b"[..])));
        assert_eq!(first_component(b"abc"), Some((&b"abc"[..], &b""[..])));
        assert_eq!(first_component(b"///"), None);
        assert_eq!(first_component(b""), None);
    }
}
