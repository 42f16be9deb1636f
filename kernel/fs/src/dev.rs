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
///
/// A run of contiguous blocks can be read or written at once (`read_run`, `write_run`): a
/// disk that moves a run in one request (the virtio disk) implements them; the default loops
/// over single blocks. A run write that fails, or is cut short by a crash, may have written
/// any part of the run: only its completion says that all of it reached the disk.
pub trait BlockDevice: Send + Sync + 'static {
    fn read(&self, block: u32, buf: &mut Block)
        -> impl Future<Output = Result<(), IoError>> + Send;
    fn write(&self, block: u32, buf: &Block) -> impl Future<Output = Result<(), IoError>> + Send;
    fn block_count(&self) -> u32;

    /// Read blocks `start, start + 1, ...` into `bufs`.
    fn read_run(
        &self,
        start: u32,
        bufs: &mut [&mut Block],
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        async move {
            for (i, buf) in bufs.iter_mut().enumerate() {
                self.read(run_block(start, i)?, buf).await?;
            }
            Ok(())
        }
    }

    /// Write `bufs` to blocks `start, start + 1, ...`.
    fn write_run(
        &self,
        start: u32,
        bufs: &[&Block],
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        async move {
            for (i, buf) in bufs.iter().enumerate() {
                self.write(run_block(start, i)?, buf).await?;
            }
            Ok(())
        }
    }
}

/// Block `i` of the run starting at `start`.
fn run_block(start: u32, i: usize) -> Result<u32, IoError> {
    u32::try_from(i).ok().and_then(|i| start.checked_add(i)).ok_or(IoError::OutOfRange)
}

/// Where a run of `n` blocks at `start` lies in a disk of `len` blocks, if it fits.
fn run_range(start: u32, n: usize, len: usize) -> Result<core::ops::Range<usize>, IoError> {
    let start = start as usize;
    match start.checked_add(n) {
        Some(end) if end <= len => Ok(start..end),
        _ => Err(IoError::OutOfRange),
    }
}

/// A disk in memory. It can simulate a crash: after `crash_after(n)`, the first `n` further
/// block writes succeed and every later one is silently lost (as if power failed right
/// there). A run counts as one write per block, written in order, so a crash can land inside
/// a run and leave only its first blocks written. It counts requests (a run is one), so tests
/// can check that runs are batched.
pub struct MemDisk {
    /// Ranked as the disk driver's state, which it stands in for (docs/locks.md).
    state: Mutex<MemState>,
}

struct MemState {
    blocks: Vec<Block>,
    /// Blocks written (reached the disk).
    writes: u64,
    writes_left: Option<u64>,
    /// Read and write requests (a run is one request; refused ones are not counted).
    reads: u64,
    write_requests: u64,
}

impl MemState {
    /// Write one block, unless the simulated crash has happened.
    fn put(&mut self, block: usize, buf: &Block) {
        match self.writes_left {
            Some(0) => return, // lost in the crash
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        self.blocks[block] = *buf;
        self.writes += 1;
    }
}

impl MemDisk {
    pub fn new(blocks: u32) -> Self {
        Self::from_blocks(alloc::vec![[0; BSIZE]; blocks as usize])
    }

    pub fn from_blocks(blocks: Vec<Block>) -> Self {
        let state = MemState { blocks, writes: 0, writes_left: None, reads: 0, write_requests: 0 };
        MemDisk { state: Mutex::new(Rank::VirtioBlk, state) }
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<Block> {
        self.state.lock().blocks.clone()
    }

    /// Block writes that reached the disk so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// Requests so far: (reads, writes), a run counting as one.
    pub fn requests(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.reads, s.write_requests)
    }

    pub fn crash_after(&self, n: u64) {
        self.state.lock().writes_left = Some(n);
    }
}

impl BlockDevice for MemDisk {
    async fn read(&self, block: u32, buf: &mut Block) -> Result<(), IoError> {
        self.read_run(block, &mut [buf]).await
    }

    async fn write(&self, block: u32, buf: &Block) -> Result<(), IoError> {
        self.write_run(block, &[buf]).await
    }

    async fn read_run(&self, start: u32, bufs: &mut [&mut Block]) -> Result<(), IoError> {
        let mut s = self.state.lock();
        let range = run_range(start, bufs.len(), s.blocks.len())?;
        s.reads += 1;
        for (buf, block) in bufs.iter_mut().zip(&s.blocks[range]) {
            **buf = *block;
        }
        Ok(())
    }

    async fn write_run(&self, start: u32, bufs: &[&Block]) -> Result<(), IoError> {
        let mut s = self.state.lock();
        let range = run_range(start, bufs.len(), s.blocks.len())?;
        s.write_requests += 1;
        for (block, buf) in range.zip(bufs) {
            s.put(block, buf);
        }
        Ok(())
    }

    fn block_count(&self) -> u32 {
        self.state.lock().blocks.len() as u32
    }
}
