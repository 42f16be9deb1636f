//! The buffer cache: a fixed number of block buffers, recycled least-recently-used.
//!
//! Invariants:
//! - at most one buffer holds a given block (the `map` index);
//! - one owner at a time: a buffer's contents sit behind an async mutex, so waiting for a
//!   buffer another task holds (or for the disk read that fills it) is a future, never a spin;
//! - a buffer with `refcnt > 0` (held, waited for, or pinned by the log) is never recycled;
//!   so `refcnt == 0` means nobody holds or awaits its mutex, which is what lets recycling
//!   take it with `try_lock`.
//!
//! Read-ahead ([`Bcache::prefetch`]) only reads: it claims unused buffers (never one that is
//! held, awaited or pinned by the log, so never one with changes the disk lacks) for blocks
//! not cached yet, and fills them with device reads in flight together, one per run of
//! contiguous blocks (the device moves a run in one request). A claimed buffer is
//! locked until its read completes, so a reader or writer of that block waits for the read
//! and then sees (or changes) the one cached copy: the cache never serves stale data.
//!
//! The metadata lock (`meta`) is a spin lock held only for short, await-free sections (rank
//! `FsBufferCache` in `docs/locks.md`: after the log's, before the buffers' `try_lock`).

use crate::dev::{Block, BlockDevice, IoError};
use abi::fs::BSIZE;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use runtime::lockorder::{Mutex as SpinLock, Rank};
use runtime::sync::{Mutex, MutexGuard};

/// Unused buffers read-ahead leaves unclaimed.
const PREFETCH_RESERVE: usize = 16;

struct SlotMeta {
    refcnt: u32,
    last_use: u64,
    blockno: Option<u32>,
}

struct Meta {
    slots: Vec<SlotMeta>,
    map: BTreeMap<u32, usize>,
    clock: u64,
}

pub struct BufData {
    blockno: u32,
    valid: bool,
    data: Box<Block>,
}

pub struct Bcache<D> {
    pub(crate) dev: D,
    meta: SpinLock<Meta>,
    slots: Box<[Mutex<BufData>]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheError {
    Io(IoError),
    /// Every buffer is in use (held or pinned by the log).
    NoBuffers,
}

/// A held buffer: exclusive access to one block's cached contents until dropped.
pub struct Buf<'a, D> {
    cache: &'a Bcache<D>,
    slot: usize,
    /// Always `Some` until `drop` (an Option so the guard can be released before the count).
    guard: Option<MutexGuard<'a, BufData>>,
}

/// A reference count taken before awaiting the buffer's mutex; released if that await is
/// cancelled (the future dropped) or fails.
struct Ref<'a, D> {
    cache: &'a Bcache<D>,
    slot: usize,
}

impl<D> Drop for Ref<'_, D> {
    fn drop(&mut self) {
        self.cache.release(self.slot);
    }
}

/// A buffer claimed by [`Bcache::prefetch`]: locked and counted until its read is done (or
/// the prefetch is cancelled), then unlocked before it is uncounted.
struct Claimed<'a, D> {
    cache: &'a Bcache<D>,
    slot: usize,
    guard: Option<MutexGuard<'a, BufData>>,
}

impl<D> Claimed<'_, D> {
    fn held(&mut self) -> &mut BufData {
        self.guard.as_mut().expect("claimed buffer held")
    }

    fn blockno(&self) -> u32 {
        self.guard.as_ref().expect("claimed buffer held").blockno
    }
}

impl<D> Drop for Claimed<'_, D> {
    fn drop(&mut self) {
        drop(self.guard.take());
        self.cache.release(self.slot);
    }
}

impl<D> Bcache<D> {
    fn release(&self, slot: usize) {
        let mut m = self.meta.lock();
        m.clock += 1;
        let now = m.clock;
        let s = &mut m.slots[slot];
        s.refcnt -= 1;
        s.last_use = now;
    }
}

impl<D: BlockDevice> Bcache<D> {
    pub fn new(dev: D, nbuf: usize) -> Self {
        let slots = (0..nbuf)
            .map(|_| Mutex::new(BufData { blockno: 0, valid: false, data: Box::new([0; BSIZE]) }))
            .collect();
        let meta = (0..nbuf).map(|_| SlotMeta { refcnt: 0, last_use: 0, blockno: None }).collect();
        Bcache {
            dev,
            meta: SpinLock::new(
                Rank::FsBufferCache,
                Meta { slots: meta, map: BTreeMap::new(), clock: 0 },
            ),
            slots,
        }
    }

    /// Find or claim the slot for `blockno` and count a reference to it.
    fn get(&self, blockno: u32) -> Result<Ref<'_, D>, CacheError> {
        let mut m = self.meta.lock();
        if let Some(&slot) = m.map.get(&blockno) {
            m.slots[slot].refcnt += 1;
            return Ok(Ref { cache: self, slot });
        }
        // The least recently used unused buffer: one pass. refcnt == 0 means try_lock
        // succeeds, so the sorted fallback below is only a guard against that failing.
        let lru = (0..m.slots.len())
            .filter(|&i| m.slots[i].refcnt == 0)
            .min_by_key(|&i| m.slots[i].last_use);
        let mut victims: Vec<usize> = lru.into_iter().collect();
        if lru.is_some_and(|i| self.slots[i].try_lock().is_none()) {
            victims = (0..m.slots.len()).filter(|&i| m.slots[i].refcnt == 0).collect();
            victims.sort_by_key(|&i| m.slots[i].last_use);
        }
        for slot in victims {
            // refcnt == 0: nobody holds or awaits this buffer, so try_lock succeeds.
            let Some(mut data) = self.slots[slot].try_lock() else { continue };
            data.blockno = blockno;
            data.valid = false;
            drop(data);
            if let Some(old) = m.slots[slot].blockno.replace(blockno) {
                m.map.remove(&old);
            }
            m.map.insert(blockno, slot);
            m.slots[slot].refcnt = 1;
            return Ok(Ref { cache: self, slot });
        }
        Err(CacheError::NoBuffers)
    }

    async fn acquire(&self, blockno: u32, fill: bool) -> Result<Buf<'_, D>, CacheError> {
        let r = self.get(blockno)?;
        let mut guard = self.slots[r.slot].lock().await;
        if !guard.valid {
            if fill {
                self.dev.read(blockno, &mut guard.data).await.map_err(CacheError::Io)?;
            } else {
                guard.data.fill(0);
            }
            guard.valid = true;
        }
        let slot = r.slot;
        core::mem::forget(r); // the reference now belongs to the Buf
        Ok(Buf { cache: self, slot, guard: Some(guard) })
    }

    /// Read the blocks of `blocks` that are not cached yet into unused buffers (read-ahead):
    /// each run of them contiguous on the disk (and in `blocks`) is one `read_run`, and all
    /// runs are in flight at once (the driver queues what exceeds its slots). Stops claiming
    /// when only `PREFETCH_RESERVE` unused buffers are left. A failed read leaves its buffers
    /// invalid, so the next real use retries them and reports the error. Returns the number
    /// of blocks claimed.
    pub async fn prefetch(&self, blocks: &[u32]) -> usize {
        let mut claimed: Vec<Claimed<'_, D>> = Vec::new();
        {
            let mut m = self.meta.lock();
            let missing: Vec<u32> =
                blocks.iter().copied().filter(|b| !m.map.contains_key(b)).collect();
            // The least recently used unused buffers, as many as there are missing blocks
            // but leaving a few to reads that need them now (read-ahead may run alongside the
            // read that started it): a partial selection, not a sort of all of them.
            let mut victims: Vec<usize> =
                (0..m.slots.len()).filter(|&i| m.slots[i].refcnt == 0).collect();
            let want = missing.len().min(victims.len().saturating_sub(PREFETCH_RESERVE));
            if want == 0 {
                return 0;
            }
            if want < victims.len() {
                victims.select_nth_unstable_by_key(want, |&i| m.slots[i].last_use);
            }
            victims.truncate(want);
            victims.sort_unstable_by_key(|&i| m.slots[i].last_use);
            let mut victims = victims.into_iter();
            for blockno in missing {
                if m.map.contains_key(&blockno) {
                    continue; // named twice (a corrupt file's pointers): claimed already
                }
                // refcnt == 0: nobody holds or awaits this buffer, so try_lock succeeds.
                let Some((slot, mut data)) =
                    victims.by_ref().find_map(|i| self.slots[i].try_lock().map(|g| (i, g)))
                else {
                    break;
                };
                data.blockno = blockno;
                data.valid = false;
                if let Some(old) = m.slots[slot].blockno.replace(blockno) {
                    m.map.remove(&old);
                }
                m.map.insert(blockno, slot);
                m.slots[slot].refcnt = 1;
                claimed.push(Claimed { cache: self, slot, guard: Some(data) });
            }
        }
        let n = claimed.len();
        let runs = claimed.chunk_by_mut(|a, b| a.blockno().checked_add(1) == Some(b.blockno()));
        futures_util::future::join_all(runs.map(|run| async move {
            let start = run[0].blockno();
            let mut bufs: Vec<&mut Block> = run.iter_mut().map(|c| &mut *c.held().data).collect();
            if self.dev.read_run(start, &mut bufs).await.is_ok() {
                run.iter_mut().for_each(|c| c.held().valid = true);
            }
        }))
        .await;
        n // dropping `claimed` unlocks and uncounts each buffer
    }

    /// The block's contents, read from disk unless cached.
    pub async fn read(&self, blockno: u32) -> Result<Buf<'_, D>, CacheError> {
        self.acquire(blockno, true).await
    }

    /// A buffer for a block whose old contents do not matter (a freshly allocated block):
    /// zero-filled if not cached, and never read from disk.
    pub async fn zeroed(&self, blockno: u32) -> Result<Buf<'_, D>, CacheError> {
        let mut b = self.acquire(blockno, false).await?;
        b.data_mut().fill(0);
        Ok(b)
    }

    /// Keep `blockno`'s buffer in the cache (the log holds it until installed).
    pub(crate) fn pin(&self, blockno: u32) {
        let mut m = self.meta.lock();
        if let Some(&slot) = m.map.get(&blockno) {
            m.slots[slot].refcnt += 1;
        }
    }

    pub(crate) fn unpin(&self, blockno: u32) {
        let slot = self.meta.lock().map.get(&blockno).copied();
        if let Some(slot) = slot {
            self.release(slot);
        }
    }

    /// Drop every cached copy of a block that is not in use, so that the next use reads the
    /// disk (see `Fs::drop_cached_blocks`). Unused buffers hold what the disk holds: the log
    /// keeps the blocks it has not installed yet in use.
    pub fn invalidate_unused(&self) {
        let mut m = self.meta.lock();
        for i in 0..m.slots.len() {
            if m.slots[i].refcnt == 0 {
                if let Some(mut d) = self.slots[i].try_lock() {
                    d.valid = false;
                }
                if let Some(b) = m.slots[i].blockno.take() {
                    m.map.remove(&b);
                }
            }
        }
    }
}

impl<'a, D: BlockDevice> Buf<'a, D> {
    fn held(&self) -> &MutexGuard<'a, BufData> {
        self.guard.as_ref().expect("buffer released")
    }

    pub fn blockno(&self) -> u32 {
        self.held().blockno
    }

    pub fn data(&self) -> &Block {
        &self.held().data
    }

    pub fn data_mut(&mut self) -> &mut Block {
        &mut self.guard.as_mut().expect("buffer released").data
    }
}

impl<D> Drop for Buf<'_, D> {
    fn drop(&mut self) {
        // Unlock before uncounting: a buffer with refcnt 0 must never be locked.
        drop(self.guard.take());
        self.cache.release(self.slot);
    }
}
