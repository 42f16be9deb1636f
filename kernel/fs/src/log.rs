//! The write-ahead log: every change to the disk is part of a transaction, and a transaction
//! reaches the disk all or nothing.
//!
//! A system call brackets its changes with `begin_op` / `end_op`; in between, `record` notes
//! each modified buffer (pinned in the cache until installed). When the last outstanding
//! operation ends, the group commits:
//!
//! 1. copy every modified block to the log area (contiguous there: one run, so one device
//!    request per `max_run` blocks);
//! 2. write the log header: the target block numbers and a CRC-32 over them and the logged
//!    data. **This write is the commit point**;
//! 3. install: write each block to its home location (home blocks sorted, each run of
//!    contiguous ones written as one run, all runs at once);
//! 4. write an empty header.
//!
//! Each step starts only when every write of the step before has completed (reached the
//! disk). A run may reach the disk in any part if the machine stops during it; that is safe
//! because no step depends on the order of writes inside the step before.
//!
//! A crash before 2 leaves the old header (empty, or a header whose checksum does not match
//! the log data, which recovery treats as empty): the transaction never happened. A crash
//! after 2 is repaired at mount by `recover`, which replays the log. Either way the disk
//! holds whole transactions only.
//!
//! Waiting: `begin_op` waits (an async `WaitQueue`, not a spin) while a commit is running or
//! while the log could overflow if every outstanding operation wrote `MAX_OP_BLOCKS`.
//! `end_op` must be driven to completion: the kernel runs file-system operations to the end.
//!
//! The state is behind a spin lock (rank `FsLog` in `docs/locks.md`), under which `record` pins
//! the buffer in the cache (`FsBufferCache`).

use crate::bcache::Bcache;
use crate::dev::{Block, BlockDevice, IoError};
use crate::FsError;
use abi::fs::{crc32, LogHeader, BSIZE, LOG_DATA, LOG_MAGIC, MAX_OP_BLOCKS};
use alloc::boxed::Box;
use alloc::vec::Vec;
use futures_util::future::join_all;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;

struct State {
    outstanding: usize,
    committing: bool,
    /// Home block numbers of the buffers in the current transaction, in first-write order.
    blocks: Vec<u32>,
    /// An I/O error broke a commit: the cache and disk may disagree, refuse further writes.
    broken: bool,
}

pub struct Log {
    /// The header block; the data blocks follow it.
    start: u32,
    state: Mutex<State>,
    changed: WaitQueue,
}

fn header_block(targets: &[u32], crc: u32) -> Box<Block> {
    let mut blocks = [0u32; LOG_DATA];
    blocks[..targets.len()].copy_from_slice(targets);
    let h =
        LogHeader { magic: LOG_MAGIC, n: targets.len() as u32, checksum: crc, reserved: 0, blocks };
    let mut out = Box::new([0u8; BSIZE]);
    h.encode(&mut out[..]);
    out
}

fn all_ok(results: Vec<Result<(), IoError>>) -> Result<(), IoError> {
    results.into_iter().collect()
}

/// Write each (home block, data) of `homes` (distinct blocks): sorted, each run of
/// contiguous blocks as one `write_run`, all runs in flight together. Done when all are.
async fn install<D: BlockDevice>(dev: &D, mut homes: Vec<(u32, &Block)>) -> Result<(), IoError> {
    homes.sort_unstable_by_key(|&(b, _)| b);
    let runs = homes.chunk_by(|a, b| a.0.checked_add(1) == Some(b.0)).map(|run| async move {
        let bufs: Vec<&Block> = run.iter().map(|&(_, d)| d).collect();
        dev.write_run(run[0].0, &bufs).await
    });
    all_ok(join_all(runs).await)
}

impl Log {
    pub fn new(start: u32) -> Self {
        Log {
            start,
            state: Mutex::new(
                Rank::FsLog,
                State { outstanding: 0, committing: false, blocks: Vec::new(), broken: false },
            ),
            changed: WaitQueue::new(),
        }
    }

    pub async fn begin_op(&self) -> Result<(), FsError> {
        loop {
            let ticket = self.changed.ticket();
            {
                let mut s = self.state.lock();
                if s.broken {
                    return Err(FsError::Io);
                }
                let reserved = (s.outstanding + 1) * MAX_OP_BLOCKS;
                if !s.committing && s.blocks.len() + reserved <= LOG_DATA {
                    s.outstanding += 1;
                    return Ok(());
                }
            }
            self.changed.wait(ticket).await;
        }
    }

    /// Note that `blockno`'s cached buffer (held by the caller) was modified in this
    /// transaction. Writing the same block again in one transaction costs nothing more.
    pub fn record<D: BlockDevice>(&self, cache: &Bcache<D>, blockno: u32) -> Result<(), FsError> {
        let mut s = self.state.lock();
        if s.blocks.contains(&blockno) {
            return Ok(());
        }
        if s.blocks.len() >= LOG_DATA {
            return Err(FsError::TransactionTooBig);
        }
        s.blocks.push(blockno);
        cache.pin(blockno);
        Ok(())
    }

    pub async fn end_op<D: BlockDevice>(&self, cache: &Bcache<D>) -> Result<(), FsError> {
        let commit = {
            let mut s = self.state.lock();
            s.outstanding -= 1;
            s.committing = s.outstanding == 0;
            s.committing
        };
        if !commit {
            self.changed.notify_all(); // our reservation is free for a waiting begin_op
            return Ok(());
        }
        let result = self.commit(cache).await;
        {
            let mut s = self.state.lock();
            s.committing = false;
            s.broken |= result.is_err();
        }
        self.changed.notify_all();
        result.map_err(|_| FsError::Io)
    }

    async fn commit<D: BlockDevice>(&self, cache: &Bcache<D>) -> Result<(), IoError> {
        // No operation is outstanding and none can begin: the list is ours.
        let blocks = core::mem::take(&mut self.state.lock().blocks);
        if blocks.is_empty() {
            return Ok(());
        }
        // Copy the blocks out, one buffer held at a time (holding several could deadlock
        // against a reader that holds one and waits for another), checksumming in order.
        let mut copies: Vec<Box<Block>> = Vec::with_capacity(blocks.len());
        let mut crc = LogHeader::checksum_begin(&blocks);
        for &b in &blocks {
            let buf = cache.read(b).await.map_err(|_| IoError::Device)?; // pinned: a cache hit
            crc = crc32(crc, buf.data());
            copies.push(Box::new(*buf.data()));
        }
        // The disk takes many requests at once, and a run of blocks as one: issue each phase's
        // writes together, and let every one of them complete before the next phase (that
        // order is the protocol).
        let copies: Vec<&Block> = copies.iter().map(|c| &**c).collect();
        cache.dev.write_run(self.start + 1, &copies).await?;
        cache.dev.write(self.start, &header_block(&blocks, crc)).await?; // commit point
        install(&cache.dev, blocks.iter().copied().zip(copies).collect()).await?;
        for &b in &blocks {
            cache.unpin(b);
        }
        cache.dev.write(self.start, &header_block(&[], 0)).await
    }

    /// Replay a committed transaction left by a crash, then empty the log. Returns the number
    /// of blocks replayed. Runs at mount, before anything else touches the disk.
    pub async fn recover<D: BlockDevice>(
        &self,
        dev: &D,
        valid_target: impl Fn(u32) -> bool,
    ) -> Result<usize, IoError> {
        let mut block = Box::new([0u8; BSIZE]);
        dev.read(self.start, &mut block).await?;
        let committed = match LogHeader::decode(&block[..]) {
            Ok(h) if h.magic == LOG_MAGIC && (h.n as usize) <= LOG_DATA => {
                let targets = &h.blocks[..h.n as usize];
                if targets.iter().all(|&t| valid_target(t)) {
                    let mut data: Vec<Box<Block>> =
                        (0..targets.len()).map(|_| Box::new([0u8; BSIZE])).collect();
                    let mut bufs: Vec<&mut Block> = data.iter_mut().map(|b| &mut **b).collect();
                    dev.read_run(self.start + 1, &mut bufs).await?;
                    let crc = data
                        .iter()
                        .fold(LogHeader::checksum_begin(targets), |crc, b| crc32(crc, &b[..]));
                    (crc == h.checksum).then(|| (targets.to_vec(), data))
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut replayed = 0;
        if let Some((targets, data)) = committed {
            // Commit names each block once; should a header name one twice, the later copy
            // wins, as if the log were replayed in order.
            let mut homes: Vec<(u32, &Block)> =
                targets.iter().copied().zip(data.iter().map(|b| &**b)).rev().collect();
            homes.sort_by_key(|&(b, _)| b); // stable: the later copy stays first
            homes.dedup_by_key(|&mut (b, _)| b);
            replayed = targets.len();
            install(dev, homes).await?;
        }
        dev.write(self.start, &header_block(&[], 0)).await?;
        Ok(replayed)
    }
}
