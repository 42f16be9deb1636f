//! The write-ahead log: every change to the disk is part of a transaction, and a transaction
//! reaches the disk all or nothing.
//!
//! A system call brackets its changes with `begin_op` / `end_op`; in between, `record` notes
//! each modified buffer (pinned in the cache until installed). When the last outstanding
//! operation ends, the group commits:
//!
//! 1. copy every modified block to the log area;
//! 2. write the log header: the target block numbers and a CRC-32 over them and the logged
//!    data. **This write is the commit point**;
//! 3. install: write each block to its home location;
//! 4. write an empty header.
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
        // The disk takes many requests at once: issue each phase's writes together, and let
        // every one of them complete before the next phase (that order is the protocol).
        let to_log =
            copies.iter().enumerate().map(|(i, c)| cache.dev.write(self.start + 1 + i as u32, c));
        all_ok(join_all(to_log).await)?;
        cache.dev.write(self.start, &header_block(&blocks, crc)).await?; // commit point
        let install = blocks.iter().zip(&copies).map(|(&b, c)| cache.dev.write(b, c));
        all_ok(join_all(install).await)?;
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
                    let mut crc = LogHeader::checksum_begin(targets);
                    let mut data = Vec::with_capacity(targets.len());
                    for i in 0..targets.len() {
                        let mut b = Box::new([0u8; BSIZE]);
                        dev.read(self.start + 1 + i as u32, &mut b).await?;
                        crc = crc32(crc, &b[..]);
                        data.push(b);
                    }
                    (crc == h.checksum)
                        .then(|| targets.iter().copied().zip(data).collect::<Vec<_>>())
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut replayed = 0;
        for (target, data) in committed.unwrap_or_default() {
            dev.write(target, &data).await?;
            replayed += 1;
        }
        dev.write(self.start, &header_block(&[], 0)).await?;
        Ok(replayed)
    }
}
