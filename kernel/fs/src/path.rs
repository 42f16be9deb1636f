//! Path lookup. The starting points are parameters, never globals: an absolute path starts
//! at the caller's `root` (a process's root directory; a container's root later), a relative
//! one at `cwd`. `..` at `root` stays at `root`, so no path leads out of it.

use crate::inode::Inode;
use crate::{BlockDevice, Fs, FsError};
use abi::fs::DIRSIZ;

/// Split off the first component of `path`, skipping slashes: `"//a/b"` -> `("a", "/b")`.
fn first_component(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = path.iter().position(|&c| c != b'/')?;
    let rest = &path[start..];
    let end = rest.iter().position(|&c| c == b'/').unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

impl<D: BlockDevice> Fs<D> {
    async fn walk<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
        stop_at_parent: bool,
    ) -> Result<(Inode<'a, D>, alloc::vec::Vec<u8>), FsError> {
        if path.is_empty() {
            return Err(FsError::NotFound);
        }
        let mut ip = if path[0] == b'/' { root.clone() } else { cwd.clone() };
        let mut rest = path;
        while let Some((name, after)) = first_component(rest) {
            if name.len() > DIRSIZ || name.contains(&0) {
                return Err(FsError::InvalidName);
            }
            let last = first_component(after).is_none();
            let mut dir = ip.lock().await?;
            if dir.kind() != crate::inode::T_DIR {
                return Err(FsError::NotDir);
            }
            if stop_at_parent && last {
                drop(dir);
                return Ok((ip, name.into()));
            }
            let next = if name == b".." && ip.inum() == root.inum() {
                root.inum() // the root's parent is itself
            } else {
                dir.dir_lookup(name).await?.ok_or(FsError::NotFound)?.inum
            };
            drop(dir);
            ip = self.iget(next)?;
            rest = after;
        }
        if stop_at_parent {
            return Err(FsError::InvalidArgument); // "/" or "." has no parent entry to name
        }
        Ok((ip, alloc::vec::Vec::new()))
    }

    /// The inode `path` names.
    pub async fn namei<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<Inode<'a, D>, FsError> {
        Ok(self.walk(root, cwd, path, false).await?.0)
    }

    /// The directory that would hold `path`'s last component, and that component.
    pub async fn nameiparent<'a>(
        &'a self,
        root: &Inode<'a, D>,
        cwd: &Inode<'a, D>,
        path: &[u8],
    ) -> Result<(Inode<'a, D>, alloc::vec::Vec<u8>), FsError> {
        self.walk(root, cwd, path, true).await
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
