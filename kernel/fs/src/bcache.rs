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
//! Read-ahead ([`Bcache::prefetch`], or [`Bcache::claim`] then [`Claim::fill`], possibly in
//! another task) only reads: it claims unused buffers (never one that is held, awaited or
//! pinned by the log, so never one with changes the disk lacks) for blocks not cached yet,
//! and fills them with device reads in flight together, one per run of contiguous blocks (the
//! device moves a run in one request). A claimed buffer is locked (and counted) from the
//! claim until its read completes, so a reader or writer of that block waits for the read
//! and then sees (or changes) the one cached copy: the cache never serves stale data. A
//! claim dropped unfilled leaves its buffers invalid (read again on the next use).
//!
//! The metadata finds a block's buffer through a hash index chained through the slots, and
//! keeps the unused buffers (`refcnt == 0`) in a list by release time: recycling takes the
//! oldest, and read-ahead the `k` oldest, without looking at every buffer.
//!
//! The metadata lock (`meta`) is a spin lock held only for short, await-free sections (rank
//! `FsBufferCache` in `docs/locks.md`: after the log's, before the buffers' `try_lock`).

use crate::dev::{Block, BlockDevice, IoError};
use abi::fs::BSIZE;
use alloc::boxed::Box;
use alloc::vec::Vec;
use runtime::lockorder::{Mutex as SpinLock, Rank};
use runtime::sync::{Mutex, MutexGuard};

/// Unused buffers read-ahead leaves unclaimed.
const PREFETCH_RESERVE: usize = 16;

/// No slot: the end of the list of unused buffers.
const NIL: usize = usize::MAX;

struct SlotMeta {
    refcnt: u32,
    blockno: Option<u32>,
    /// Neighbours in the list of unused buffers (`refcnt == 0`), towards its more and its less
    /// recently used end; `NIL` at the ends (and while in use).
    newer: usize,
    older: usize,
    /// The next slot in this slot's bucket of the block index (`NIL`: the last).
    chain: usize,
}

/// The slots' counts and blocks, the block index, and the unused buffers as a list from the
/// most recently released (`newest`) to the least (`oldest`, the next to recycle): finding
/// `k` victims walks `k` entries instead of looking at every buffer.
struct Meta {
    slots: Vec<SlotMeta>,
    /// The block index: a hash table whose buckets chain through the slots (`chain`), a
    /// power of two of them. A look-up costs a hash and a slot or two (a tree map cost
    /// several comparisons and, on insert and remove, node shuffles: per block, measurable).
    buckets: Vec<usize>,
    newest: usize,
    oldest: usize,
    /// Length of the unused list: the buffers with `refcnt == 0`.
    unused: usize,
}

impl Meta {
    fn bucket(&self, blockno: u32) -> usize {
        let bits = self.buckets.len().trailing_zeros();
        (blockno.wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
    }

    /// The slot holding `blockno`.
    fn find(&self, blockno: u32) -> Option<usize> {
        let mut i = self.buckets[self.bucket(blockno)];
        while i != NIL {
            if self.slots[i].blockno == Some(blockno) {
                return Some(i);
            }
            i = self.slots[i].chain;
        }
        None
    }

    /// Forget which block slot `i` holds (taking it out of the index).
    fn clear_block(&mut self, i: usize) {
        let Some(old) = self.slots[i].blockno.take() else { return };
        let b = self.bucket(old);
        let next = self.slots[i].chain;
        if self.buckets[b] == i {
            self.buckets[b] = next;
        } else {
            let mut j = self.buckets[b];
            while j != NIL && self.slots[j].chain != i {
                j = self.slots[j].chain;
            }
            if j != NIL {
                self.slots[j].chain = next;
            }
        }
        self.slots[i].chain = NIL;
    }

    /// Slot `i` now holds `blockno` (which no slot holds).
    fn set_block(&mut self, i: usize, blockno: u32) {
        self.clear_block(i);
        let b = self.bucket(blockno);
        self.slots[i].blockno = Some(blockno);
        self.slots[i].chain = self.buckets[b];
        self.buckets[b] = i;
    }

    fn unlink(&mut self, i: usize) {
        let (newer, older) = (self.slots[i].newer, self.slots[i].older);
        match newer {
            NIL => self.newest = older,
            n => self.slots[n].older = older,
        }
        match older {
            NIL => self.oldest = newer,
            o => self.slots[o].newer = newer,
        }
        self.slots[i].newer = NIL;
        self.slots[i].older = NIL;
        self.unused -= 1;
    }

    fn push_newest(&mut self, i: usize) {
        self.slots[i].newer = NIL;
        self.slots[i].older = self.newest;
        match self.newest {
            NIL => self.oldest = i,
            n => self.slots[n].newer = i,
        }
        self.newest = i;
        self.unused += 1;
    }

    /// Count a reference to slot `i` (leaving the unused list if it was on it).
    fn take_ref(&mut self, i: usize) {
        if self.slots[i].refcnt == 0 {
            self.unlink(i);
        }
        self.slots[i].refcnt += 1;
    }

    /// Up to `k` unused slots, least recently used first.
    fn oldest_unused(&self, k: usize) -> Vec<usize> {
        let mut v = Vec::with_capacity(k);
        let mut i = self.oldest;
        while i != NIL && v.len() < k {
            v.push(i);
            i = self.slots[i].newer;
        }
        v
    }
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

/// Buffers claimed for read-ahead ([`Bcache::claim`]), in the order of the blocks asked
/// for, each locked and counted until its read completes or the claim is dropped.
pub struct Claim<'a, D> {
    cache: &'a Bcache<D>,
    bufs: Vec<Claimed<'a, D>>,
}

impl<'a, D: BlockDevice> Claim<'a, D> {
    /// Blocks claimed.
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Read the claimed blocks: each run of them contiguous on the disk (and in the order
    /// claimed) is one `read_run`, all runs in flight at once (the driver queues what exceeds
    /// its slots), and each run's buffers are released as soon as its read completes. A
    /// failed read leaves its buffers invalid, so the next real use retries them and reports
    /// the error.
    pub async fn fill(self) {
        let Claim { cache, mut bufs } = self;
        let mut runs: Vec<Vec<Claimed<'a, D>>> = Vec::new();
        for c in bufs.drain(..) {
            match runs.last_mut() {
                Some(run)
                    if run
                        .last()
                        .is_some_and(|l| l.blockno().checked_add(1) == Some(c.blockno())) =>
                {
                    run.push(c)
                }
                _ => runs.push(alloc::vec![c]),
            }
        }
        futures_util::future::join_all(runs.into_iter().map(|mut run| async move {
            let start = run[0].blockno();
            let mut data: Vec<&mut Block> = run.iter_mut().map(|c| &mut *c.held().data).collect();
            if cache.dev.read_run(start, &mut data).await.is_ok() {
                run.iter_mut().for_each(|c| c.held().valid = true);
            }
            // dropping `run` unlocks and uncounts its buffers
        }))
        .await;
    }
}

impl<D> Bcache<D> {
    fn release(&self, slot: usize) {
        let mut m = self.meta.lock();
        m.slots[slot].refcnt -= 1;
        if m.slots[slot].refcnt == 0 {
            m.push_newest(slot);
        }
    }
}

impl<D: BlockDevice> Bcache<D> {
    pub fn new(dev: D, nbuf: usize) -> Self {
        let slots = (0..nbuf)
            .map(|_| Mutex::new(BufData { blockno: 0, valid: false, data: Box::new([0; BSIZE]) }))
            .collect();
        let meta = (0..nbuf)
            .map(|_| SlotMeta { refcnt: 0, blockno: None, newer: NIL, older: NIL, chain: NIL })
            .collect();
        let buckets = alloc::vec![NIL; nbuf.next_power_of_two().max(2)];
        let mut meta = Meta { slots: meta, buckets, newest: NIL, oldest: NIL, unused: 0 };
        for i in 0..nbuf {
            meta.push_newest(i); // slot 0 is recycled first
        }
        Bcache { dev, meta: SpinLock::new(Rank::FsBufferCache, meta), slots }
    }

    /// Find or claim the slot for `blockno` and count a reference to it.
    fn get(&self, blockno: u32) -> Result<Ref<'_, D>, CacheError> {
        let mut m = self.meta.lock();
        if let Some(slot) = m.find(blockno) {
            m.take_ref(slot);
            return Ok(Ref { cache: self, slot });
        }
        // The least recently used unused buffer. refcnt == 0 means try_lock succeeds, so
        // looking further is only a guard against that failing.
        let mut next = m.oldest;
        while next != NIL {
            let slot = next;
            next = m.slots[slot].newer;
            // refcnt == 0: nobody holds or awaits this buffer, so try_lock succeeds.
            let Some(mut data) = self.slots[slot].try_lock() else { continue };
            data.blockno = blockno;
            data.valid = false;
            drop(data);
            m.set_block(slot, blockno);
            m.take_ref(slot);
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
    /// [`Bcache::claim`] them, then [`Claim::fill`]. Returns the number of blocks claimed.
    pub async fn prefetch(&self, blocks: &[u32]) -> usize {
        let claim = self.claim(blocks);
        let n = claim.len();
        claim.fill().await;
        n
    }

    /// Claim unused buffers for the blocks of `blocks` that are not cached yet, locked until
    /// [`Claim::fill`] has read them (or the claim is dropped, leaving them invalid): from now
    /// on a reader or writer of those blocks waits for that read. Stops claiming when only
    /// `PREFETCH_RESERVE` unused buffers are left. Does not wait, so a claim can be made
    /// where the read must not wait (and filled elsewhere: see `Fs::read_spawning`).
    pub fn claim(&self, blocks: &[u32]) -> Claim<'_, D> {
        let mut claimed: Vec<Claimed<'_, D>> = Vec::new();
        {
            let mut m = self.meta.lock();
            let missing: Vec<u32> =
                blocks.iter().copied().filter(|&b| m.find(b).is_none()).collect();
            // The least recently used unused buffers, as many as there are missing blocks
            // but leaving a few to reads that need them now (read-ahead may run alongside the
            // read that started it).
            let want = missing.len().min(m.unused.saturating_sub(PREFETCH_RESERVE));
            let mut victims = m.oldest_unused(want).into_iter();
            for blockno in missing {
                if m.find(blockno).is_some() {
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
                m.set_block(slot, blockno);
                m.take_ref(slot);
                claimed.push(Claimed { cache: self, slot, guard: Some(data) });
            }
        }
        Claim { cache: self, bufs: claimed }
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
        if let Some(slot) = m.find(blockno) {
            m.take_ref(slot);
        }
    }

    pub(crate) fn unpin(&self, blockno: u32) {
        let slot = self.meta.lock().find(blockno);
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
                m.clear_block(i);
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
