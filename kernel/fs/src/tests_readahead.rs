//! Host tests of read-ahead over a disk that counts its read requests (a run of blocks is one),
//! their sizes, and how many are in flight at once (each read yields once before completing,
//! so reads issued together overlap).

use crate::dev::{Block, BlockDevice, IoError, MemDisk};
use crate::format::format;
use crate::inode::T_FILE;
use crate::Fs;
use abi::fs::BSIZE;
use alloc::collections::BTreeSet;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll};
use std::sync::Mutex;
use testkit::{block_on, Rng};

struct CountingDisk {
    inner: MemDisk,
    reads: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Every block read, in order.
    log: Mutex<Vec<u32>>,
    /// The largest run read in one request.
    max_run: AtomicUsize,
}

/// Pending once (waking itself), then ready: a device that answers later.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl BlockDevice for CountingDisk {
    async fn read(&self, block: u32, buf: &mut Block) -> Result<(), IoError> {
        self.read_run(block, &mut [buf]).await
    }

    async fn read_run(&self, start: u32, bufs: &mut [&mut Block]) -> Result<(), IoError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.log.lock().unwrap().extend((start..).take(bufs.len()));
        self.max_run.fetch_max(bufs.len(), Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        YieldOnce(false).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.inner.read_run(start, bufs).await
    }

    async fn write(&self, block: u32, buf: &Block) -> Result<(), IoError> {
        self.inner.write(block, buf).await
    }

    fn block_count(&self) -> u32 {
        self.inner.block_count()
    }
}

impl CountingDisk {
    fn reset(&self) {
        self.reads.store(0, Ordering::SeqCst);
        self.max_in_flight.store(0, Ordering::SeqCst);
        self.max_run.store(0, Ordering::SeqCst);
        self.log.lock().unwrap().clear();
    }
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
    fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
    fn max_run(&self) -> usize {
        self.max_run.load(Ordering::SeqCst)
    }
    fn blocks_read(&self) -> Vec<u32> {
        self.log.lock().unwrap().clone()
    }
}

/// A file system holding `files` (name, contents), mounted on a counting disk, cache cold.
fn fs_with(files: &[(&str, &[u8])]) -> Fs<CountingDisk> {
    let disk = MemDisk::new(8192);
    block_on(format(&disk, 256)).unwrap();
    let fs = block_on(Fs::mount(disk)).unwrap().0;
    block_on(async {
        let root = fs.root().unwrap();
        for (name, data) in files {
            let ip = fs.create(&root, &root, name.as_bytes(), T_FILE, 0, 0).await.unwrap();
            assert_eq!(fs.write(&ip, 0, data).await.unwrap(), data.len());
        }
    });
    let blocks = fs.cache.dev.snapshot();
    drop(fs);
    let disk = CountingDisk {
        inner: MemDisk::from_blocks(blocks),
        reads: AtomicUsize::new(0),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
        max_run: AtomicUsize::new(0),
    };
    block_on(Fs::mount(disk)).unwrap().0
}

/// The disk blocks holding `name`'s data, in file order.
fn data_blocks(fs: &Fs<CountingDisk>, name: &str) -> Vec<u32> {
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, name.as_bytes()).await.unwrap();
        let mut l = ip.lock().await.unwrap();
        let n = l.size().div_ceil(BSIZE as u64);
        let mut v = Vec::new();
        for bn in 0..n {
            v.push(l.bmap(bn, false).await.unwrap());
        }
        v
    })
}

/// Read `name` in `chunk`-byte reads at the offsets `offs`, checking each against `want`.
fn read_at_offsets(fs: &Fs<CountingDisk>, name: &str, chunk: usize, offs: &[u64], want: &[u8]) {
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, name.as_bytes()).await.unwrap();
        let mut buf = alloc::vec![0u8; chunk];
        for &off in offs {
            let n = fs.read(&ip, off, &mut buf).await.unwrap();
            let end = (off as usize + chunk).min(want.len());
            assert_eq!(n, end - off as usize, "read at {off}");
            assert!(buf[..n] == want[off as usize..end], "bytes at {off}");
        }
    });
}

const BIG: usize = 1 << 20; // 256 blocks: more than the largest window

#[test]
fn sequential_reads_batch_runs_and_stop_at_the_end_of_the_file() {
    // An odd size: the last block is partial. "/b" sits right after "/a" on the disk.
    let a = Rng::new(1).bytes(BIG + 100);
    let b = Rng::new(2).bytes(64 * BSIZE);
    let fs = fs_with(&[("a", &a), ("b", &b)]);
    let a_blocks = data_blocks(&fs, "a");
    let b_blocks: BTreeSet<u32> = data_blocks(&fs, "b").into_iter().collect();
    fs.drop_cached_blocks();
    let dev = &fs.cache.dev;
    dev.reset();
    let offs: Vec<u64> = (0..a.len().div_ceil(BSIZE)).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "a", BSIZE, &offs, &a);
    let read = dev.blocks_read();
    // A window of contiguous blocks travels as one request: the largest window is one run.
    assert!(dev.max_run() >= 16, "read-ahead reads runs: {}", dev.max_run());
    assert!(dev.reads() <= 24, "{} requests for {} blocks", dev.reads(), a_blocks.len());
    for blk in &a_blocks {
        assert_eq!(read.iter().filter(|&&r| r == *blk).count(), 1, "block {blk} read once");
    }
    assert!(read.iter().all(|r| !b_blocks.contains(r)), "read-ahead went past the end");
    // Every read hit the cache except the few that started a window.
    assert!(read.len() < a_blocks.len() + 16, "{} reads for {} blocks", read.len(), a_blocks.len());
}

#[test]
fn random_reads_do_not_read_ahead() {
    let a = Rng::new(3).bytes(BIG);
    let fs = fs_with(&[("a", &a)]);
    let a_blocks = data_blocks(&fs, "a");
    fs.drop_cached_blocks();
    let dev = &fs.cache.dev;
    let mut rng = Rng::new(4);
    // Block-sized reads at scattered blocks, none following the one before.
    let mut offs: Vec<u64> = Vec::new();
    let mut last = u64::MAX;
    while offs.len() < 40 {
        let bn = rng.below(a_blocks.len() as u64);
        if bn == last.wrapping_add(1) || bn == last || bn == 0 {
            continue;
        }
        offs.push(bn * BSIZE as u64);
        last = bn;
    }
    // Warm the metadata (inode, indirect block) first; then only data blocks are read.
    read_at_offsets(&fs, "a", BSIZE, &offs[..1], &a);
    dev.reset();
    read_at_offsets(&fs, "a", BSIZE, &offs[1..], &a);
    let distinct: BTreeSet<u64> = offs[1..].iter().copied().filter(|&o| o != offs[0]).collect();
    assert_eq!(dev.reads(), distinct.len(), "one read per block asked for, none ahead");
    assert_eq!(dev.max_in_flight(), 1);
    // Every block read is one that was asked for.
    let asked: BTreeSet<u32> = distinct.iter().map(|&o| a_blocks[o as usize / BSIZE]).collect();
    assert!(dev.blocks_read().iter().all(|b| asked.contains(b)));
}

#[test]
fn small_sequential_reads_get_every_byte_right() {
    // Reads smaller than a block, and not aligned to one, through to the end.
    let a = Rng::new(5).bytes(200 * BSIZE + 1234);
    let fs = fs_with(&[("a", &a)]);
    fs.drop_cached_blocks();
    let offs: Vec<u64> = (0..a.len().div_ceil(1000)).map(|i| (i * 1000) as u64).collect();
    read_at_offsets(&fs, "a", 1000, &offs, &a);
    assert!(fs.cache.dev.max_run() > 1);
    // Large reads too: each fetches its own blocks together.
    fs.drop_cached_blocks();
    let offs: Vec<u64> = (0..a.len().div_ceil(65536)).map(|i| (i * 65536) as u64).collect();
    read_at_offsets(&fs, "a", 65536, &offs, &a);
}

#[test]
fn a_write_to_a_block_read_ahead_is_what_the_next_read_sees() {
    let mut a = Rng::new(6).bytes(BIG);
    let fs = fs_with(&[("a", &a)]);
    let a_blocks = data_blocks(&fs, "a");
    fs.drop_cached_blocks();
    let dev = &fs.cache.dev;
    // Read the first 8 blocks sequentially: the window reaches well past them.
    let offs: Vec<u64> = (0..8).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "a", BSIZE, &offs, &a);
    assert!(dev.blocks_read().contains(&a_blocks[10]), "block 10 was read ahead");
    // Overwrite part of block 10 (read ahead, not read yet), then read on sequentially.
    let patch = Rng::new(7).bytes(300);
    let at = 10 * BSIZE + 77;
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, b"a").await.unwrap();
        assert_eq!(fs.write(&ip, at as u64, &patch).await.unwrap(), patch.len());
    });
    a[at..at + patch.len()].copy_from_slice(&patch);
    let offs: Vec<u64> = (8..a.len() / BSIZE).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "a", BSIZE, &offs, &a);
    // And from the disk, once the cache is dropped.
    fs.drop_cached_blocks();
    let offs: Vec<u64> = (0..a.len() / BSIZE).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "a", BSIZE, &offs, &a);
}

/// Mapping a range at once (a pointer block read once for all its entries) gives what mapping
/// each block does, across the direct, indirect and double-indirect parts, holes (a whole
/// missing pointer table too) and the end of a range inside a table.
#[test]
fn mapping_a_range_matches_mapping_each_block() {
    let fs = fs_with(&[]);
    let bs = BSIZE as u64;
    let (nd, ni) = (abi::fs::NDIRECT as u64, abi::fs::NINDIRECT as u64);
    // Written blocks: some direct, some indirect, none under the first double-indirect table
    // (a hole table), some under the second.
    let written = [0, 1, 5, nd, nd + 7, nd + ni - 1, nd + ni + ni + 3, nd + ni + ni + 4];
    let end = nd + ni + ni + 9;
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.create(&root, &root, b"sparse", T_FILE, 0, 0).await.unwrap();
        for &bn in &written {
            let data = [bn as u8 | 1; BSIZE];
            assert_eq!(fs.write(&ip, bn * bs, &data).await.unwrap(), BSIZE);
        }
        let mut l = ip.lock().await.unwrap();
        let mut each = Vec::new();
        for bn in 0..end {
            each.push(l.bmap(bn, false).await.unwrap());
        }
        assert_eq!(each.iter().filter(|&&b| b != 0).count(), written.len());
        for (from, to) in [(0, end), (3, nd + 2), (nd + ni - 2, nd + ni + 5), (nd + ni + ni, end)] {
            let run = l.bmap_run(from, to).await.unwrap();
            assert_eq!(run, each[from as usize..to as usize], "{from}..{to}");
        }
        assert!(l.bmap_run(7, 7).await.unwrap().is_empty());
    });
}

/// A block named twice in one prefetch (two pointers to one block: a corrupt file system) is
/// claimed once: a block never has two buffers.
#[test]
fn a_block_named_twice_is_prefetched_once() {
    let data: Vec<u8> = (0..8 * BSIZE).map(|i| (i % 251) as u8).collect();
    let fs = fs_with(&[("f", &data)]);
    let blocks = data_blocks(&fs, "f");
    fs.cache.dev.reset();
    let (b, c) = (blocks[2], blocks[3]);
    assert_eq!(block_on(fs.cache.prefetch(&[b, b, c, b])), 2);
    assert_eq!(fs.cache.dev.reads(), 1, "one run of two blocks");
    let got = block_on(async { fs.cache.read(b).await.unwrap().data()[..16].to_vec() });
    assert_eq!(got, data[2 * BSIZE..2 * BSIZE + 16]);
    assert_eq!(fs.cache.dev.reads(), 1, "served from the cache");
}

type Fill = Pin<alloc::boxed::Box<dyn Future<Output = ()> + Send + 'static>>;

std::thread_local! {
    /// Read-ahead fills handed to `park` by this test thread, not run yet.
    static PARKED: core::cell::RefCell<Vec<Fill>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// A spawner that runs nothing: the test decides when the window's reads happen.
fn park(fill: Fill) {
    PARKED.with(|p| p.borrow_mut().push(fill));
}

fn parked() -> usize {
    PARKED.with(|p| p.borrow().len())
}

/// Run every parked fill to its end.
fn run_parked() {
    let fills: Vec<Fill> = PARKED.with(|p| p.borrow_mut().drain(..).collect());
    for f in fills {
        block_on(f);
    }
}

type StaticFs = &'static Fs<CountingDisk>;

/// Poll `t` a few times without running the parked fills (the disk answers after one
/// yield): whether it finished.
fn poll_alone<T>(t: &mut testkit::Task<'_, T>) -> bool {
    (0..8).any(|_| t.poll())
}

/// Poll `t` to its end, running the parked fills in between.
fn finish<T>(t: &mut testkit::Task<'_, T>) {
    for _ in 0..100 {
        if t.poll() {
            return;
        }
        run_parked();
    }
    panic!("the task never finished");
}

fn read_spawning(
    fs: StaticFs,
    name: &str,
    off: u64,
    len: usize,
) -> testkit::Task<'static, Vec<u8>> {
    let name = name.as_bytes().to_vec();
    testkit::Task::new(async move {
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, &name).await.unwrap();
        let mut buf = alloc::vec![0u8; len];
        let n = fs.read_spawning(&ip, off, &mut buf, park).await.unwrap();
        buf.truncate(n);
        buf
    })
}

/// With a spawner, a read returns once its own blocks are in: the window's request is left to
/// the spawned task, whose buffers the next read waits for (and finds, without reading the
/// blocks again).
#[test]
fn a_read_returns_before_its_read_ahead_completes() {
    let a = Rng::new(8).bytes(BIG);
    let fs: StaticFs = testkit::leak(fs_with(&[("a", &a)]));
    let blocks = data_blocks(fs, "a");
    fs.drop_cached_blocks();
    fs.cache.dev.reset();
    let chunk = 4 * BSIZE;
    let mut first = read_spawning(fs, "a", 0, chunk);
    assert!(poll_alone(&mut first), "the first read needs only its own blocks");
    assert_eq!(first.result.as_deref(), Some(&a[..chunk]));
    assert_eq!(parked(), 1, "the window went to the spawner");
    let read = fs.cache.dev.blocks_read();
    assert!(!read.contains(&blocks[4]), "the window is not read yet: {read:?}");
    // The next read wants the window's blocks: it waits for the parked fill, not the disk.
    let mut second = read_spawning(fs, "a", chunk as u64, chunk);
    assert!(!poll_alone(&mut second), "waits for the blocks in flight");
    finish(&mut second);
    assert_eq!(second.result.as_deref(), Some(&a[chunk..2 * chunk]));
    run_parked();
    // And on to the end: every block read from the disk once.
    for off in (2 * chunk..a.len()).step_by(chunk) {
        let mut t = read_spawning(fs, "a", off as u64, chunk);
        finish(&mut t);
        assert!(t.result.as_deref() == Some(&a[off..off + chunk]), "bytes at {off}");
    }
    run_parked();
    let read = fs.cache.dev.blocks_read();
    for b in &blocks {
        assert_eq!(read.iter().filter(|&&r| r == *b).count(), 1, "block {b} read once");
    }
}

/// A write to a block whose read-ahead is still in flight waits for that read, then changes
/// the one cached copy: later reads (cached, then from the disk) see the write.
#[test]
fn a_write_to_a_block_in_flight_waits_for_its_read() {
    let mut a = Rng::new(9).bytes(BIG);
    let fs: StaticFs = testkit::leak(fs_with(&[("a", &a)]));
    fs.drop_cached_blocks();
    let chunk = 4 * BSIZE;
    assert!(poll_alone(&mut read_spawning(fs, "a", 0, chunk)));
    assert_eq!(parked(), 1);
    let patch = Rng::new(10).bytes(500);
    let at = 5 * BSIZE + 33; // inside the parked window
    let p = patch.clone();
    let mut write = testkit::Task::new(async move {
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, b"a").await.unwrap();
        fs.write(&ip, at as u64, &p).await.unwrap()
    });
    assert!(!poll_alone(&mut write), "the write waits for the block's read");
    finish(&mut write);
    assert_eq!(write.result, Some(patch.len()));
    a[at..at + patch.len()].copy_from_slice(&patch);
    let mut t = read_spawning(fs, "a", chunk as u64, 2 * chunk);
    finish(&mut t);
    run_parked();
    assert!(t.result.as_deref() == Some(&a[chunk..3 * chunk]), "cached copy has the write");
    fs.drop_cached_blocks();
    let offs: Vec<u64> = (0..a.len() / BSIZE).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(fs, "a", BSIZE, &offs, &a);
}

/// Buffers claimed for read-ahead and not filled yet never crowd out reads: a claim leaves
/// `PREFETCH_RESERVE` buffers unused, a further claim gets none, reads still work, and a claim
/// dropped unfilled leaves its blocks to be read again, correctly.
#[test]
fn a_cache_full_of_blocks_in_flight_still_serves_reads() {
    let a = Rng::new(11).bytes(4 * BIG); // 1024 blocks: more than the cache holds
    let b = Rng::new(12).bytes(8 * BSIZE);
    let fs = fs_with(&[("a", &a), ("b", &b)]);
    let blocks = data_blocks(&fs, "a");
    fs.drop_cached_blocks();
    let claim = fs.cache.claim(&blocks);
    assert!(claim.len() > crate::NBUF - 64 && claim.len() < crate::NBUF, "{}", claim.len());
    assert!(fs.cache.claim(&blocks[claim.len()..]).is_empty(), "only the reserve is left");
    let offs: Vec<u64> = (0..b.len() / BSIZE).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "b", BSIZE, &offs, &b);
    drop(claim);
    let offs: Vec<u64> = (0..a.len() / BSIZE).map(|i| (i * BSIZE) as u64).collect();
    read_at_offsets(&fs, "a", BSIZE, &offs, &a);
}
