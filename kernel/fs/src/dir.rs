//! Directories: files of 64-byte entries (`abi::fs::Dirent`); inode 0 marks a free slot.
//! Every directory starts with `.` and `..`. All functions take the directory locked.

use crate::inode::{Locked, T_DIR};
use crate::{BlockDevice, FsError};
use abi::fs::{Dirent, BSIZE, DIRENT_SIZE};
use alloc::string::String;
use alloc::vec::Vec;

/// Where a name was found.
#[derive(Clone, Copy, Debug)]
pub struct Found {
    pub inum: u32,
    pub offset: u64,
}

impl<D: BlockDevice> Locked<'_, D> {
    fn require_dir(&self) -> Result<(), FsError> {
        if self.kind() == T_DIR {
            Ok(())
        } else {
            Err(FsError::NotDir)
        }
    }

    /// Call `f(offset, entry)` for each entry until it returns `Some`.
    async fn scan<T>(
        &mut self,
        mut f: impl FnMut(u64, &Dirent) -> Option<T>,
    ) -> Result<Option<T>, FsError> {
        self.require_dir()?;
        let mut block = alloc::boxed::Box::new([0u8; BSIZE]);
        let mut off = 0;
        while off < self.size() {
            let n = self.read_at(off, &mut block[..]).await?;
            for (i, raw) in block[..n].chunks_exact(DIRENT_SIZE).enumerate() {
                let e = Dirent::decode(raw).map_err(|_| FsError::Corrupt("bad directory entry"))?;
                if let Some(t) = f(off + (i * DIRENT_SIZE) as u64, &e) {
                    return Ok(Some(t));
                }
            }
            off += n as u64;
            if n == 0 {
                break;
            }
        }
        Ok(None)
    }

    pub async fn dir_lookup(&mut self, name: &[u8]) -> Result<Option<Found>, FsError> {
        self.scan(|offset, e| {
            (e.inum != 0 && e.name() == name).then_some(Found { inum: e.inum, offset })
        })
        .await
    }

    /// Every live entry (name, inode number), `.` and `..` included.
    pub async fn dir_entries(&mut self) -> Result<Vec<(String, u32)>, FsError> {
        let mut out = Vec::new();
        self.scan(|_, e| {
            if e.inum != 0 {
                out.push((String::from_utf8_lossy(e.name()).into_owned(), e.inum));
            }
            None::<()>
        })
        .await?;
        Ok(out)
    }

    /// True when only `.` and `..` remain.
    pub(crate) async fn dir_is_empty(&mut self) -> Result<bool, FsError> {
        let other = self
            .scan(|_, e| (e.inum != 0 && e.name() != b"." && e.name() != b"..").then_some(()))
            .await?;
        Ok(other.is_none())
    }

    /// Overwrite the entry at `offset` (inside a transaction).
    pub(crate) async fn dir_set(
        &mut self,
        offset: u64,
        inum: u32,
        name: &[u8],
    ) -> Result<(), FsError> {
        let mut raw = [0u8; DIRENT_SIZE];
        if inum != 0 {
            Dirent::new(inum, name).map_err(|_| FsError::InvalidName)?.encode(&mut raw);
        }
        let n = self.write_at(offset, &raw).await?;
        if n != DIRENT_SIZE {
            return Err(FsError::NoSpace);
        }
        Ok(())
    }

    /// Add `name -> inum` (inside a transaction). Fails with `Exists` if the name is taken.
    pub(crate) async fn dir_link(&mut self, name: &[u8], inum: u32) -> Result<(), FsError> {
        Dirent::new(inum, name).map_err(|_| FsError::InvalidName)?;
        if self.dir_lookup(name).await?.is_some() {
            return Err(FsError::Exists);
        }
        let size = self.size();
        let free = self.scan(|offset, e| (e.inum == 0).then_some(offset)).await?;
        self.dir_set(free.unwrap_or(size), inum, name).await
    }
}
