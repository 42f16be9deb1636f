//! Inodes: the in-memory inode table, allocation, block mapping (12 direct, one indirect and
//! one double-indirect block: files up to 4 GiB), reading, writing and truncation.
//!
//! An [`Inode`] is a counted handle (cloning it counts another reference); its contents are
//! reached through [`Inode::lock`], an async mutex held across disk I/O. When the last handle
//! of an inode whose link count is zero goes away, the inode joins `Fs::orphans` and
//! [`Fs::reap`] frees it: this is how an unlinked file that is still open survives until its
//! last close. Every block pointer read from disk is checked against the data area.
//!
//! The table's slots and counts are behind a spin lock (rank `FsInodes` in `docs/locks.md`),
//! under which a slot's mutex is only `try_lock`ed and the orphan list (`FsOrphans`) pushed.

use crate::bcache::Claim;
use crate::{BlockDevice, Fs, FsError};
use abi::fs::{Dinode, BSIZE, DINODE_SIZE, IPB, MAX_FILE_BLOCKS, NDIRECT, NINDIRECT};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use runtime::lockorder::{Mutex as SpinLock, Rank};
use runtime::sync::{Mutex, MutexGuard};

pub const T_FREE: u16 = 0;
pub const T_DIR: u16 = 1;
pub const T_FILE: u16 = 2;
pub const T_DEV: u16 = 3;

struct Slot {
    inum: u32,
    refcnt: u32,
}

pub struct IData {
    valid: bool,
    d: Dinode,
    ra: ReadAhead,
}

/// Read-ahead state of one in-memory inode (shared by every reader of the file, reset when
/// the inode is read from disk again).
#[derive(Clone, Copy, Default)]
struct ReadAhead {
    /// The file block after the last one read: a read starting there (or in the last block
    /// read, for reads smaller than a block) continues a sequential run.
    next: u64,
    /// Blocks fetched beyond the current read; 0 when the last read was not sequential.
    window: u64,
    /// File blocks before this one have been fetched by read-ahead already.
    until: u64,
}

/// The first read-ahead window of a sequential run, and the largest (in blocks): the largest
/// is two of the virtio-blk driver's largest requests (32 blocks each); measured, 64 reads
/// sequentially at about 500 MB/s in bench-fs, 32 at about 380.
const RA_MIN: u64 = 4;
const RA_MAX: u64 = 64;

pub(crate) struct Table {
    meta: SpinLock<Vec<Slot>>,
    data: Box<[Mutex<IData>]>,
}

impl Table {
    pub(crate) fn new(n: usize) -> Self {
        Table {
            meta: SpinLock::new(
                Rank::FsInodes,
                (0..n).map(|_| Slot { inum: 0, refcnt: 0 }).collect(),
            ),
            data: (0..n)
                .map(|_| {
                    Mutex::new(IData {
                        valid: false,
                        d: Dinode::default(),
                        ra: ReadAhead::default(),
                    })
                })
                .collect(),
        }
    }
}

/// What `stat` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub inum: u32,
    pub kind: u16,
    pub nlink: u16,
    pub size: u64,
    pub major: u16,
    pub minor: u16,
}

/// A counted reference to an in-memory inode.
pub struct Inode<'a, D: BlockDevice> {
    fs: &'a Fs<D>,
    slot: usize,
    inum: u32,
}

/// A locked inode: its on-disk fields, loaded and exclusively ours until dropped.
pub struct Locked<'a, D: BlockDevice> {
    pub(crate) fs: &'a Fs<D>,
    inum: u32,
    g: MutexGuard<'a, IData>,
}

impl<D: BlockDevice> Fs<D> {
    /// A handle for inode `inum` (not locked, not read from disk yet).
    pub(crate) fn iget(&self, inum: u32) -> Result<Inode<'_, D>, FsError> {
        if inum == 0 || inum >= self.sb.ninodes {
            return Err(FsError::Corrupt("inode number out of range"));
        }
        let mut m = self.inodes.meta.lock();
        let slot = match m.iter().position(|s| s.refcnt > 0 && s.inum == inum) {
            Some(i) => i,
            None => {
                // Prefer a free slot that still caches this inode; else any free slot.
                let i = m
                    .iter()
                    .position(|s| s.refcnt == 0 && s.inum == inum)
                    .or_else(|| m.iter().position(|s| s.refcnt == 0))
                    .ok_or(FsError::TooManyOpen)?;
                if m[i].inum != inum {
                    // refcnt == 0: nobody holds or awaits this slot's mutex.
                    let mut d = self.inodes.data[i].try_lock().ok_or(FsError::TooManyOpen)?;
                    d.valid = false;
                    m[i].inum = inum;
                }
                i
            }
        };
        m[slot].refcnt += 1;
        Ok(Inode { fs: self, slot, inum })
    }

    fn inode_location(&self, inum: u32) -> (u32, usize) {
        (self.sb.inodestart + inum / IPB as u32, (inum as usize % IPB) * DINODE_SIZE)
    }

    /// Allocate an inode of `kind` (inside a transaction).
    pub(crate) async fn ialloc(&self, kind: u16) -> Result<Inode<'_, D>, FsError> {
        for inum in 1..self.sb.ninodes {
            let (block, off) = self.inode_location(inum);
            let mut buf = self.cache.read(block).await?;
            let raw = &buf.data()[off..off + DINODE_SIZE];
            if u16::from_le_bytes([raw[0], raw[1]]) != T_FREE {
                continue;
            }
            let d = Dinode { kind, ..Dinode::default() };
            d.encode(&mut buf.data_mut()[off..off + DINODE_SIZE]);
            self.log.record(&self.cache, block)?;
            drop(buf);
            let ip = self.iget(inum)?;
            // A cached copy of this inode (from before it was freed) is stale now.
            let idx = ip.slot;
            if let Some(mut g) = self.inodes.data[idx].try_lock() {
                g.valid = false;
            }
            return Ok(ip);
        }
        Err(FsError::NoInodes)
    }

    /// How many inodes are free on disk (inode 0, never used, is not counted). Reads the
    /// inode blocks through the cache, so allocations not yet committed count as in use.
    pub async fn count_free_inodes(&self) -> Result<u32, FsError> {
        let mut free = 0;
        let mut inum = 1;
        while inum < self.sb.ninodes {
            let (block, _) = self.inode_location(inum);
            let buf = self.cache.read(block).await?;
            // Every inode of this block from `inum` on.
            while inum < self.sb.ninodes && self.inode_location(inum).0 == block {
                let off = self.inode_location(inum).1;
                let raw = &buf.data()[off..off + DINODE_SIZE];
                if u16::from_le_bytes([raw[0], raw[1]]) == T_FREE {
                    free += 1;
                }
                inum += 1;
            }
        }
        Ok(free)
    }

    /// Free `inum` if nothing references it and no directory names it (one transaction).
    pub(crate) async fn free_if_unreferenced(&self, inum: u32) -> Result<(), FsError> {
        self.log.begin_op().await?;
        let r = async {
            let ip = self.iget(inum)?;
            let mut l = ip.lock().await?;
            let only_us = self.inodes.meta.lock()[ip.slot].refcnt == 1;
            if only_us && l.g.d.nlink == 0 && l.g.d.kind != T_FREE {
                l.truncate(0).await?;
                l.g.d.kind = T_FREE;
                l.update().await?;
            }
            Ok(())
        }
        .await;
        self.log.end_op(&self.cache).await?;
        r
    }

    /// Mount-time scan: inodes allocated but linked nowhere were open-but-unlinked when the
    /// machine stopped; free them.
    pub(crate) async fn free_orphans_on_disk(&self) -> Result<usize, FsError> {
        let mut found = Vec::new();
        for inum in 1..self.sb.ninodes {
            let (block, off) = self.inode_location(inum);
            let buf = self.cache.read(block).await?;
            if let Ok(d) = Dinode::decode(&buf.data()[off..off + DINODE_SIZE]) {
                if d.kind != T_FREE && d.nlink == 0 {
                    found.push(inum);
                }
            }
        }
        for &inum in &found {
            self.free_if_unreferenced(inum).await?;
        }
        Ok(found.len())
    }
}

impl<'a, D: BlockDevice> Inode<'a, D> {
    pub fn inum(&self) -> u32 {
        self.inum
    }

    pub fn fs(&self) -> &'a Fs<D> {
        self.fs
    }

    /// Lock the inode, reading it from disk if this is the first use.
    pub async fn lock(&self) -> Result<Locked<'a, D>, FsError> {
        let mut g = self.fs.inodes.data[self.slot].lock().await;
        if !g.valid {
            let (block, off) = self.fs.inode_location(self.inum);
            let buf = self.fs.cache.read(block).await?;
            g.d = Dinode::decode(&buf.data()[off..off + DINODE_SIZE])
                .map_err(|_| FsError::Corrupt("bad inode"))?;
            g.ra = ReadAhead::default();
            g.valid = true;
        }
        if g.d.kind == T_FREE {
            return Err(FsError::Corrupt("reference to a free inode"));
        }
        Ok(Locked { fs: self.fs, inum: self.inum, g })
    }
}

impl<D: BlockDevice> Clone for Inode<'_, D> {
    fn clone(&self) -> Self {
        self.fs.inodes.meta.lock()[self.slot].refcnt += 1;
        Inode { fs: self.fs, slot: self.slot, inum: self.inum }
    }
}

impl<D: BlockDevice> Drop for Inode<'_, D> {
    fn drop(&mut self) {
        let mut m = self.fs.inodes.meta.lock();
        m[self.slot].refcnt -= 1;
        if m[self.slot].refcnt == 0 {
            // Last reference: nobody holds the mutex, so try_lock succeeds.
            if let Some(g) = self.fs.inodes.data[self.slot].try_lock() {
                if g.valid && g.d.nlink == 0 && g.d.kind != T_FREE {
                    self.fs.orphans.lock().push(self.inum);
                }
            }
        }
    }
}

/// Little-endian u32 `idx` of a block of block pointers.
fn entry(block: &[u8; BSIZE], idx: usize) -> u32 {
    u32::from_le_bytes(block[idx * 4..idx * 4 + 4].try_into().unwrap())
}

fn set_entry(block: &mut [u8; BSIZE], idx: usize, v: u32) {
    block[idx * 4..idx * 4 + 4].copy_from_slice(&v.to_le_bytes());
}

/// Runs a future to its end on its own (the kernel's executor): see [`Locked::read_spawning`].
pub type Spawn = fn(Pin<Box<dyn Future<Output = ()> + Send + 'static>>);

impl<D: BlockDevice> Locked<'static, D> {
    /// [`Locked::read_at`], but the read-ahead window is read by a task of its own (`spawn`):
    /// the read returns once its own blocks are copied, and the window's request continues;
    /// the next read finds those buffers locked until their read completes, and waits only
    /// for what it needs. Only for a file system that lives for ever (the kernel's).
    pub async fn read_spawning(
        &mut self,
        off: u64,
        buf: &mut [u8],
        spawn: Spawn,
    ) -> Result<usize, FsError> {
        let mut detach = |c: Claim<'static, D>| spawn(Box::pin(c.fill()));
        self.read_with(off, buf, Some(&mut detach)).await
    }
}

impl<'a, D: BlockDevice> Locked<'a, D> {
    pub fn inum(&self) -> u32 {
        self.inum
    }
    pub fn kind(&self) -> u16 {
        self.g.d.kind
    }
    pub fn size(&self) -> u64 {
        self.g.d.size
    }
    pub fn nlink(&self) -> u16 {
        self.g.d.nlink
    }
    pub fn stat(&self) -> Stat {
        let d = &self.g.d;
        Stat {
            inum: self.inum,
            kind: d.kind,
            nlink: d.nlink,
            size: d.size,
            major: d.major,
            minor: d.minor,
        }
    }
    pub(crate) fn dinode_mut(&mut self) -> &mut Dinode {
        &mut self.g.d
    }

    /// Write the in-memory fields to the inode block (inside a transaction).
    pub(crate) async fn update(&mut self) -> Result<(), FsError> {
        let (block, off) = self.fs.inode_location(self.inum);
        let mut buf = self.fs.cache.read(block).await?;
        self.g.d.encode(&mut buf.data_mut()[off..off + DINODE_SIZE]);
        self.fs.log.record(&self.fs.cache, block)?;
        Ok(())
    }

    fn check_ptr(&self, b: u32) -> Result<u32, FsError> {
        if b != 0 && (b < self.fs.sb.datastart || b >= self.fs.sb.size) {
            return Err(FsError::Corrupt("block pointer outside the data area"));
        }
        Ok(b)
    }

    /// Pointer `idx` inside the pointer block `table`, allocating the target if asked.
    async fn table_entry(&self, table: u32, idx: usize, alloc: bool) -> Result<u32, FsError> {
        let mut buf = self.fs.cache.read(table).await?;
        let b = self.check_ptr(entry(buf.data(), idx))?;
        if b != 0 || !alloc {
            return Ok(b);
        }
        let new = self.fs.balloc().await?;
        set_entry(buf.data_mut(), idx, new);
        self.fs.log.record(&self.fs.cache, table)?;
        Ok(new)
    }

    /// `addrs[i]`, allocating it if asked (the caller writes the inode back).
    async fn addr(&mut self, i: usize, alloc: bool) -> Result<u32, FsError> {
        let b = self.check_ptr(self.g.d.addrs[i])?;
        if b != 0 || !alloc {
            return Ok(b);
        }
        let new = self.fs.balloc().await?;
        self.g.d.addrs[i] = new;
        Ok(new)
    }

    /// The disk block holding file block `bn` (0 = a hole, when not allocating).
    pub(crate) async fn bmap(&mut self, bn: u64, alloc: bool) -> Result<u32, FsError> {
        let (nd, ni) = (NDIRECT as u64, NINDIRECT as u64);
        if bn < nd {
            return self.addr(bn as usize, alloc).await;
        }
        let bn = bn - nd;
        if bn < ni {
            let table = self.addr(NDIRECT, alloc).await?;
            if table == 0 {
                return Ok(0);
            }
            return self.table_entry(table, bn as usize, alloc).await;
        }
        let bn = bn - ni;
        if bn >= ni * ni {
            return Err(FsError::FileTooBig);
        }
        let top = self.addr(NDIRECT + 1, alloc).await?;
        if top == 0 {
            return Ok(0);
        }
        let mid = self.table_entry(top, (bn / ni) as usize, alloc).await?;
        if mid == 0 {
            return Ok(0);
        }
        self.table_entry(mid, (bn % ni) as usize, alloc).await
    }

    /// The disk blocks of file blocks `from..to` (0 for a hole), as [`Locked::bmap`] without
    /// allocating, but reading each pointer block once for the whole range instead of once per
    /// file block (a sequential read maps 64 blocks at a time). Stops at the first error, which
    /// it returns only if no block was mapped; the caller meets it again when it maps the
    /// first missing block itself.
    pub(crate) async fn bmap_run(&mut self, from: u64, to: u64) -> Result<Vec<u32>, FsError> {
        let (nd, ni) = (NDIRECT as u64, NINDIRECT as u64);
        let mut out = Vec::with_capacity(to.saturating_sub(from) as usize);
        let mut bn = from;
        while bn < to {
            let got = if bn < nd {
                self.bmap(bn, false).await.map(|b| {
                    out.push(b);
                    1
                })
            } else {
                // The pointer block holding `bn`'s entry, and the entries of it in the range.
                let (table, first) = match bn - nd {
                    i if i < ni => (self.addr(NDIRECT, false).await, i),
                    i if i - ni < ni * ni => {
                        let i = i - ni;
                        match self.addr(NDIRECT + 1, false).await {
                            Ok(0) => (Ok(0), i % ni),
                            Ok(top) => {
                                (self.table_entry(top, (i / ni) as usize, false).await, i % ni)
                            }
                            Err(e) => (Err(e), 0),
                        }
                    }
                    _ => (Err(FsError::FileTooBig), 0),
                };
                let n = (ni - first).min(to - bn);
                match table {
                    Ok(0) => {
                        out.extend((0..n).map(|_| 0)); // the whole table is a hole
                        Ok(n)
                    }
                    Ok(t) => match self.fs.cache.read(t).await {
                        Ok(buf) => (first..first + n)
                            .map(|i| self.check_ptr(entry(buf.data(), i as usize)))
                            .try_for_each(|b| b.map(|b| out.push(b)))
                            .map(|()| n),
                        Err(e) => Err(e.into()),
                    },
                    Err(e) => Err(e),
                }
            };
            match got {
                Ok(n) => bn += n,
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// Before reading file blocks `first..=last` of a file of `size` bytes: which file blocks
    /// to fetch now or ahead, `from..to`. In a sequential run that is the blocks of this read
    /// not fetched yet and the next `window` blocks (doubling from `RA_MIN` to `RA_MAX`),
    /// never past the end of the file; otherwise this read's blocks.
    fn read_ahead(&mut self, first: u64, last: u64, off: u64, size: u64) -> (u64, u64) {
        let eof = size.div_ceil(BSIZE as u64);
        let mut ra = self.g.ra;
        let continuing = first == ra.next || first + 1 == ra.next;
        if !continuing {
            // A new run (or a random read): what an earlier run fetched may be gone.
            ra.window = 0;
            ra.until = 0;
        }
        let sequential = continuing || off == 0;
        let from;
        let to;
        if sequential {
            if last + 1 + ra.window / 2 < ra.until {
                // Enough fetched ahead already.
                ra.next = last + 1;
                self.g.ra = ra;
                return (last + 1, last + 1);
            }
            ra.window = (ra.window * 2).clamp(RA_MIN, RA_MAX);
            from = first.max(ra.until);
            to = (last + 1 + ra.window).min(eof);
            ra.until = to;
        } else {
            from = first;
            to = last + 1;
        }
        ra.next = last + 1;
        self.g.ra = ra;
        (from, to)
    }

    /// Read up to `buf.len()` bytes at `off`; returns the count (0 at or past the end).
    ///
    /// Maps this read's blocks and the read-ahead window at once, fetches the blocks of this
    /// read that are not cached (together), then fetches the window beyond it while copying
    /// out this read's blocks (so the device works meanwhile), and returns when both are
    /// done. Read-ahead only fills the cache: its errors are left for the reads themselves to
    /// meet and report.
    pub async fn read_at(&mut self, off: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        self.read_with(off, buf, None).await
    }

    /// The read of [`Locked::read_at`]; the window's claimed buffers go to `detach` when
    /// given (which fills them on its own: the read does not wait for them), else the read
    /// fills them itself alongside its copy.
    async fn read_with(
        &mut self,
        off: u64,
        buf: &mut [u8],
        detach: Option<&mut (dyn FnMut(Claim<'a, D>) + Send)>,
    ) -> Result<usize, FsError> {
        let size = self.g.d.size;
        if off >= size {
            return Ok(0);
        }
        let n = buf.len().min((size - off) as usize);
        let bs = BSIZE as u64;
        let (first, last) = (off / bs, (off + n as u64 - 1) / bs);
        let (from, to) = self.read_ahead(first, last, off, size);
        // One block at most to fetch: the copy fetches it as fast.
        let fetch = to > from + 1;
        let map = self.bmap_run(first, (last + 1).max(if fetch { to } else { 0 })).await?;
        let (mut now, mut ahead) = (Vec::new(), Vec::new());
        if fetch {
            for (bn, &b) in (first..).zip(&map).skip((from - first) as usize) {
                match (b, bn <= last) {
                    (0, _) => {} // a hole
                    (b, true) => now.push(b),
                    (b, false) => ahead.push(b),
                }
            }
        }
        if now.len() > 1 {
            self.fs.cache.prefetch(&now).await;
        }
        // Claimed now, before this read returns: the next read finds the window's buffers
        // (locked until filled) rather than claiming and reading its blocks one by one.
        let claim = self.fs.cache.claim(&ahead);
        let mine = &map[..map.len().min((last + 1 - first) as usize)];
        match detach {
            Some(detach) => {
                if !claim.is_empty() {
                    detach(claim);
                }
                self.copy_out(off, mine, &mut buf[..n]).await?;
            }
            None => {
                let (_, copied) = futures_util::future::join(
                    claim.fill(),
                    self.copy_out(off, mine, &mut buf[..n]),
                )
                .await;
                copied?;
            }
        }
        Ok(n)
    }

    /// Copy file bytes `off..off + buf.len()` (inside the file) into `buf`; `map` holds the
    /// disk blocks of the first file blocks of the range (those past it are mapped here).
    async fn copy_out(&mut self, off: u64, map: &[u32], buf: &mut [u8]) -> Result<(), FsError> {
        let n = buf.len();
        let first = off / BSIZE as u64;
        let mut done = 0;
        while done < n {
            let pos = off + done as u64;
            let (bn, within) = (pos / BSIZE as u64, (pos % BSIZE as u64) as usize);
            let len = (BSIZE - within).min(n - done);
            let b = match map.get((bn - first) as usize) {
                Some(&b) => b,
                None => self.bmap(bn, false).await?,
            };
            if b == 0 {
                buf[done..done + len].fill(0); // a hole
            } else {
                let blk = self.fs.cache.read(b).await?;
                buf[done..done + len].copy_from_slice(&blk.data()[within..within + len]);
            }
            done += len;
        }
        Ok(())
    }

    /// Write `buf` at `off` inside the caller's transaction (which must have room for it:
    /// see `ops::MAX_WRITE`). Returns the bytes written; a partial count if space ran out.
    pub(crate) async fn write_at(&mut self, off: u64, buf: &[u8]) -> Result<usize, FsError> {
        let end = off.checked_add(buf.len() as u64).ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_BLOCKS as u64 * BSIZE as u64 {
            return Err(FsError::FileTooBig);
        }
        let mut done = 0;
        let mut err = None;
        while done < buf.len() {
            let pos = off + done as u64;
            let (bn, within) = (pos / BSIZE as u64, (pos % BSIZE as u64) as usize);
            let len = (BSIZE - within).min(buf.len() - done);
            let b = match self.bmap(bn, true).await {
                Ok(b) => b,
                Err(e) => {
                    err = Some(e);
                    break;
                }
            };
            // balloc hands out zeroed blocks, so a whole-block overwrite need not read.
            let mut blk = if len == BSIZE {
                self.fs.cache.zeroed(b).await?
            } else {
                self.fs.cache.read(b).await?
            };
            blk.data_mut()[within..within + len].copy_from_slice(&buf[done..done + len]);
            self.fs.log.record(&self.fs.cache, b)?;
            done += len;
        }
        if off + done as u64 > self.g.d.size {
            self.g.d.size = off + done as u64;
        }
        self.update().await?;
        match err {
            Some(e) if done == 0 => Err(e),
            _ => Ok(done),
        }
    }

    /// Free every block of pointer table `table` at level `depth` (1 = points at data)
    /// from entry `from` on; frees the table itself when `from == 0`.
    async fn free_table(&self, table: u32, depth: u32, from: u64) -> Result<(), FsError> {
        let span = if depth == 1 { 1 } else { NINDIRECT as u64 };
        let first = (from / span) as usize;
        let mut ptrs = [0u32; NINDIRECT];
        {
            let buf = self.fs.cache.read(table).await?;
            for (i, p) in ptrs.iter_mut().enumerate() {
                *p = self.check_ptr(entry(buf.data(), i))?;
            }
        }
        for (i, &p) in ptrs.iter().enumerate().skip(first) {
            if p == 0 {
                continue;
            }
            if depth == 1 {
                self.fs.bfree(p).await?;
            } else {
                let sub_from = if i == first { from % span } else { 0 };
                Box::pin(self.free_table(p, depth - 1, sub_from)).await?;
            }
        }
        if from == 0 {
            return self.fs.bfree(table).await;
        }
        // Partly kept: clear the freed pointers (a kept subtable keeps its entry).
        let keep_first = if depth > 1 && !from.is_multiple_of(span) { first + 1 } else { first };
        let mut buf = self.fs.cache.read(table).await?;
        for i in keep_first..NINDIRECT {
            set_entry(buf.data_mut(), i, 0);
        }
        self.fs.log.record(&self.fs.cache, table)
    }

    /// Set the size to `len` (inside a transaction), freeing blocks past it. Growing leaves a
    /// hole that reads as zeros.
    pub(crate) async fn truncate(&mut self, len: u64) -> Result<(), FsError> {
        if len < self.g.d.size {
            let keep = len.div_ceil(BSIZE as u64); // blocks that stay
            let (nd, ni) = (NDIRECT as u64, NINDIRECT as u64);
            for i in keep.min(nd) as usize..NDIRECT {
                let b = self.check_ptr(self.g.d.addrs[i])?;
                if b != 0 {
                    self.fs.bfree(b).await?;
                    self.g.d.addrs[i] = 0;
                }
            }
            let ind = self.check_ptr(self.g.d.addrs[NDIRECT])?;
            if ind != 0 && keep < nd + ni {
                let from = keep.saturating_sub(nd);
                self.free_table(ind, 1, from).await?;
                if from == 0 {
                    self.g.d.addrs[NDIRECT] = 0;
                }
            }
            let dbl = self.check_ptr(self.g.d.addrs[NDIRECT + 1])?;
            if dbl != 0 {
                let from = keep.saturating_sub(nd + ni);
                self.free_table(dbl, 2, from).await?;
                if from == 0 {
                    self.g.d.addrs[NDIRECT + 1] = 0;
                }
            }
            // Zero the tail of a kept partial block, so growing later reads zeros there.
            if !len.is_multiple_of(BSIZE as u64) {
                let b = self.bmap(len / BSIZE as u64, false).await?;
                if b != 0 {
                    let mut blk = self.fs.cache.read(b).await?;
                    blk.data_mut()[(len % BSIZE as u64) as usize..].fill(0);
                    self.fs.log.record(&self.fs.cache, b)?;
                }
            }
        }
        self.g.d.size = len;
        self.update().await
    }
}
