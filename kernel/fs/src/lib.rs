//! The file system: xv6's on-disk layout (superblock, write-ahead log, inodes, bitmap, data;
//! defined once in `abi::fs`), written as async Rust over any [`BlockDevice`].
//!
//! Layers, bottom up (read in this order):
//! - [`dev`]: the block device trait, and an in-memory disk that can simulate crashes;
//! - [`bcache`]: the buffer cache (LRU, one owner per buffer, waits are futures);
//! - [`log`]: transactions, group commit, crash recovery;
//! - [`balloc`]: the free-block bitmap;
//! - [`inode`]: the inode table, block mapping (direct, indirect, double indirect), read/write;
//! - [`dir`] and [`path`]: directories and path lookup **from a root passed in** (each
//!   process, and later each container, has its own root);
//! - [`ops`]: whole operations (create, mkdir, link, unlink, rename, write), each one
//!   transaction (large writes are split into several).
//!
//! Concurrency: every lock is either an async mutex (buffers, inodes: may be held across
//! disk I/O) or a spin lock held for a few instructions without awaiting. Lock order:
//! `rename_lock` before a transaction; inode before buffer; directory before the inodes it
//! contains, ancestor before descendant, and no inode locked twice (see [`ops`]); log state
//! before cache metadata. Nothing here runs in interrupt context.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod balloc;
pub mod bcache;
pub mod dev;
pub mod dir;
pub mod format;
pub mod inode;
pub mod log;
pub mod ops;
pub mod path;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_readahead;

use abi::fs::{Superblock, BSIZE};
use alloc::boxed::Box;
use alloc::vec::Vec;
use bcache::{Bcache, CacheError};
use core::fmt;
use core::sync::atomic::AtomicU32;
pub use dev::{BlockDevice, IoError, MemDisk};
pub use inode::{Inode, Stat};

/// Buffers in the cache: more than the log can pin (`LOG_DATA`) plus a working set.
pub const NBUF: usize = 512;
/// In-memory inodes (open files, working directories, inodes being operated on).
pub const NINODE: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    Exists,
    NotDir,
    IsDir,
    NotEmpty,
    NoSpace,
    NoInodes,
    InvalidName,
    FileTooBig,
    InvalidArgument,
    /// `/`, `.` or `..` where an operation needs a name it can change (rename).
    Busy,
    /// An operation directories do not allow (a hard link to one).
    NotPermitted,
    /// A link count would pass the largest one an inode holds.
    TooManyLinks,
    TooManyOpen,
    NoBuffers,
    TransactionTooBig,
    Io,
    Corrupt(&'static str),
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FsError::NotFound => "no such file or directory",
            FsError::Exists => "file exists",
            FsError::NotDir => "not a directory",
            FsError::IsDir => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::NoSpace => "no space left on device",
            FsError::NoInodes => "no free inodes",
            FsError::InvalidName => "invalid file name",
            FsError::FileTooBig => "file too large",
            FsError::InvalidArgument => "invalid argument",
            FsError::Busy => "busy",
            FsError::NotPermitted => "operation not permitted",
            FsError::TooManyLinks => "too many links",
            FsError::TooManyOpen => "too many inodes in use",
            FsError::NoBuffers => "no free buffers",
            FsError::TransactionTooBig => "transaction too big",
            FsError::Io => "I/O error",
            FsError::Corrupt(what) => return write!(f, "file system corrupt: {what}"),
        };
        f.write_str(s)
    }
}

impl From<CacheError> for FsError {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Io(_) => FsError::Io,
            CacheError::NoBuffers => FsError::NoBuffers,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountError {
    Io(IoError),
    /// The superblock is not ours or not sane; the text says which check failed.
    BadSuperblock(alloc::string::String),
    /// The superblock describes more blocks than the device has.
    DeviceTooSmall {
        superblock: u32,
        device: u32,
    },
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::Io(e) => write!(f, "I/O error reading the disk: {e:?}"),
            MountError::BadSuperblock(why) => write!(f, "not a valid file system: {why}"),
            MountError::DeviceTooSmall { superblock, device } => {
                write!(f, "superblock says {superblock} blocks but the disk has {device}")
            }
        }
    }
}

/// What `mount` found and did.
#[derive(Clone, Copy, Debug, Default)]
pub struct MountReport {
    pub replayed_blocks: usize,
    pub orphans_freed: usize,
}

pub struct Fs<D: BlockDevice> {
    pub(crate) cache: Bcache<D>,
    pub(crate) log: log::Log,
    pub sb: Superblock,
    pub(crate) inodes: inode::Table,
    /// Where the next block search starts (next fit).
    pub(crate) alloc_hint: AtomicU32,
    /// Inodes whose last reference went away while their link count was zero: freed by
    /// [`Fs::reap`] (dropping a handle cannot do disk I/O itself).
    pub(crate) orphans: runtime::lockorder::Mutex<Vec<u32>>,
    /// Renames run one at a time (see `ops::rename`).
    pub(crate) rename_lock: runtime::sync::Mutex<()>,
}

impl<D: BlockDevice> Fs<D> {
    /// Check the superblock, replay the log, and free inodes left unlinked-but-open by a crash.
    pub async fn mount(dev: D) -> Result<(Fs<D>, MountReport), MountError> {
        let mut block = Box::new([0u8; BSIZE]);
        dev.read(1, &mut block).await.map_err(MountError::Io)?;
        let sb = Superblock::decode(&block[..])
            .and_then(|sb| sb.validate().map(|()| sb))
            .map_err(|e| MountError::BadSuperblock(alloc::format!("{e}")))?;
        if sb.size > dev.block_count() {
            return Err(MountError::DeviceTooSmall {
                superblock: sb.size,
                device: dev.block_count(),
            });
        }
        let log = log::Log::new(sb.logstart);
        let in_fs = |b: u32| b >= sb.inodestart && b < sb.size;
        let replayed_blocks = log.recover(&dev, in_fs).await.map_err(MountError::Io)?;
        let fs = Fs {
            cache: Bcache::new(dev, NBUF),
            log,
            sb,
            inodes: inode::Table::new(NINODE),
            alloc_hint: AtomicU32::new(sb.datastart),
            orphans: runtime::lockorder::Mutex::new(
                runtime::lockorder::Rank::FsOrphans,
                Vec::new(),
            ),
            rename_lock: runtime::sync::Mutex::new(()),
        };
        let orphans_freed =
            fs.free_orphans_on_disk().await.map_err(|_| MountError::Io(IoError::Device))?;
        Ok((fs, MountReport { replayed_blocks, orphans_freed }))
    }

    /// The root directory of this file system.
    pub fn root(&self) -> Result<Inode<'_, D>, FsError> {
        self.iget(abi::fs::ROOT_INO)
    }

    /// Free the inodes whose last handle was dropped while unlinked. The kernel calls this
    /// from a task after file operations; each free is its own transaction.
    pub async fn reap(&self) -> Result<usize, FsError> {
        let mut n = 0;
        loop {
            let Some(inum) = self.orphans.lock().pop() else { return Ok(n) };
            self.free_if_unreferenced(inum).await?;
            n += 1;
        }
    }

    /// Forget every cached block nobody is using: the next use of each reads the disk. For
    /// tests that make operations wait for the disk while they hold locks (so that several
    /// interleave) and for measurements of a cold cache.
    pub fn drop_cached_blocks(&self) {
        self.cache.invalidate_unused();
    }

    /// True when some unlinked inode lost its last handle and waits for [`Fs::reap`].
    pub fn orphans_pending(&self) -> bool {
        !self.orphans.lock().is_empty()
    }
}
