//! The kernel's mounted file system: the `fs` crate over the virtio disk, mounted at boot.
//!
//! Everything that names files (system calls, the kernel console, the file-system tests) goes
//! through [`get`], and passes its own root directory to path lookup.

use crate::blk::{self, Disk};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::future::Future;
use core::pin::Pin;
use fs::dev::Block;
use fs::{BlockDevice, Fs, IoError, MountError, MountReport};
use spin::Once;

/// The virtio disk as the file system's block device.
pub struct DiskDevice(&'static Disk);

impl BlockDevice for DiskDevice {
    async fn read(&self, block: u32, buf: &mut Block) -> Result<(), IoError> {
        self.0.read(block, buf).await.map_err(|_| IoError::Device)
    }

    async fn write(&self, block: u32, buf: &Block) -> Result<(), IoError> {
        self.0.write(block, buf).await.map_err(|_| IoError::Device)
    }

    async fn read_run(&self, start: u32, bufs: &mut [&mut Block]) -> Result<(), IoError> {
        self.0.read_run(start, bufs).await.map_err(|_| IoError::Device)
    }

    async fn write_run(&self, start: u32, bufs: &[&Block]) -> Result<(), IoError> {
        self.0.write_run(start, bufs).await.map_err(|_| IoError::Device)
    }

    fn block_count(&self) -> u32 {
        self.0.block_count()
    }
}

pub type RootFs = Fs<DiskDevice>;
/// An inode of the mounted file system (open files, working and root directories).
pub type Ino = fs::Inode<'static, DiskDevice>;

static ROOT: Once<RootFs> = Once::new();

/// Runs a read's read-ahead window as a task of its own (`Fs::read_spawning`): the read
/// returns once its own blocks are copied while the device keeps reading ahead. Detached: the
/// task ends when its read completes, and holds only the buffers it fills.
pub fn spawn_read_ahead(fill: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) {
    drop(crate::exec::spawn(fill));
}

/// Mount the disk (replaying its log if the last run crashed). Called once, from a task.
pub async fn mount() -> Result<(&'static RootFs, MountReport), String> {
    let disk = blk::disk().ok_or_else(|| String::from("no disk"))?;
    let (fs, report) = boxed_mount(disk).await.map_err(|e| format!("{e}"))?;
    Ok((ROOT.call_once(|| fs), report))
}

/// `Fs::mount` on `disk`, built and boxed here rather than inside `mount`: in an unoptimised
/// (debug) build an async fn's poll frame holds its own copies of every future it builds,
/// and this one is about 5 KiB; `mount`'s frame stays on the executor's stack for the whole
/// mount (log replay, orphan scan), so it must stay small.
fn boxed_mount(disk: &'static Disk) -> Pin<Box<impl Future<Output = MountResult> + Send>> {
    Box::pin(Fs::mount(DiskDevice(disk)))
}

type MountResult = Result<(RootFs, MountReport), MountError>;

pub fn get() -> Option<&'static RootFs> {
    ROOT.get()
}
