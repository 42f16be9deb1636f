//! The block device the file system runs on, and an in-memory one for tests and tools.

use abi::fs::BSIZE;
use alloc::vec::Vec;
use core::future::Future;
use runtime::lockorder::{Mutex, Rank};

pub type Block = [u8; BSIZE];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The block number is past the end of the device.
    OutOfRange,
    /// The device reported a failure.
    Device,
}

/// A disk of `BSIZE`-byte blocks. A write has reached the disk when its future completes:
/// the log's crash safety rests on that ordering.
pub trait BlockDevice: Send + Sync + 'static {
    fn read(&self, block: u32, buf: &mut Block)
        -> impl Future<Output = Result<(), IoError>> + Send;
    fn write(&self, block: u32, buf: &Block) -> impl Future<Output = Result<(), IoError>> + Send;
    fn block_count(&self) -> u32;
}

/// A disk in memory. It can simulate a crash: after `crash_after(n)`, the first `n` further
/// writes succeed and every later write is silently lost (as if power failed right there).
pub struct MemDisk {
    /// Ranked as the disk driver's state, which it stands in for (docs/locks.md).
    state: Mutex<MemState>,
}

struct MemState {
    blocks: Vec<Block>,
    writes: u64,
    writes_left: Option<u64>,
}

impl MemDisk {
    pub fn new(blocks: u32) -> Self {
        Self::from_blocks(alloc::vec![[0; BSIZE]; blocks as usize])
    }

    pub fn from_blocks(blocks: Vec<Block>) -> Self {
        let state = MemState { blocks, writes: 0, writes_left: None };
        MemDisk { state: Mutex::new(Rank::VirtioBlk, state) }
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<Block> {
        self.state.lock().blocks.clone()
    }

    /// Writes that reached the disk so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    pub fn crash_after(&self, n: u64) {
        self.state.lock().writes_left = Some(n);
    }
}

impl BlockDevice for MemDisk {
    async fn read(&self, block: u32, buf: &mut Block) -> Result<(), IoError> {
        let s = self.state.lock();
        *buf = *s.blocks.get(block as usize).ok_or(IoError::OutOfRange)?;
        Ok(())
    }

    async fn write(&self, block: u32, buf: &Block) -> Result<(), IoError> {
        let mut s = self.state.lock();
        if block as usize >= s.blocks.len() {
            return Err(IoError::OutOfRange);
        }
        match s.writes_left {
            Some(0) => return Ok(()), // lost in the crash
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        s.blocks[block as usize] = *buf;
        s.writes += 1;
        Ok(())
    }

    fn block_count(&self) -> u32 {
        self.state.lock().blocks.len() as u32
    }
}
