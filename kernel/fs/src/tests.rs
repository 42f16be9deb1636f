//! Host tests over an in-memory disk: the operations, large files, many files, concurrent
//! writers, bad input, and crash safety (the disk stops at every possible write).

use crate::dev::MemDisk;
use crate::format::format;
use crate::inode::{T_DIR, T_FILE};
use crate::{Fs, FsError};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use std::format;
use std::string::String;
use testkit::{block_on, Rng};

const BLOCKS: u32 = 8192; // 32 MiB

fn fresh() -> MemDisk {
    let disk = MemDisk::new(BLOCKS);
    block_on(format(&disk, 1024)).unwrap();
    disk
}

fn mount(disk: MemDisk) -> Fs<MemDisk> {
    block_on(Fs::mount(disk)).unwrap().0
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

async fn write_file(fs: &Fs<MemDisk>, path: &str, data: &[u8]) -> Result<(), FsError> {
    let root = fs.root()?;
    let ip = fs.create(&root, &root, path.as_bytes(), T_FILE, 0, 0).await?;
    fs.truncate(&ip, 0).await?;
    let n = fs.write(&ip, 0, data).await?;
    assert_eq!(n, data.len());
    Ok(())
}

async fn read_file(fs: &Fs<MemDisk>, path: &str) -> Result<Vec<u8>, FsError> {
    let root = fs.root()?;
    let ip = fs.namei(&root, &root, path.as_bytes()).await?;
    let size = ip.lock().await?.size() as usize;
    let mut buf = alloc::vec![0; size];
    let n = fs.read(&ip, 0, &mut buf).await?;
    assert_eq!(n, size);
    Ok(buf)
}

async fn names(fs: &Fs<MemDisk>, path: &str) -> Vec<String> {
    let root = fs.root().unwrap();
    let ip = fs.namei(&root, &root, path.as_bytes()).await.unwrap();
    let mut l = ip.lock().await.unwrap();
    let mut v: Vec<String> = l.dir_entries().await.unwrap().into_iter().map(|(n, _)| n).collect();
    v.sort();
    v
}

#[test]
fn create_write_read_overwrite_truncate() {
    let fs = mount(fresh());
    block_on(async {
        write_file(&fs, "/hello", b"hello world").await.unwrap();
        assert_eq!(read_file(&fs, "/hello").await.unwrap(), b"hello world");
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, b"/hello").await.unwrap();
        fs.write(&ip, 6, b"WORLD!!").await.unwrap();
        assert_eq!(read_file(&fs, "/hello").await.unwrap(), b"hello WORLD!!");
        fs.truncate(&ip, 5).await.unwrap();
        assert_eq!(read_file(&fs, "/hello").await.unwrap(), b"hello");
        fs.truncate(&ip, 8).await.unwrap(); // growing reads back zeros
        assert_eq!(read_file(&fs, "/hello").await.unwrap(), b"hello\0\0\0");
    });
}

#[test]
fn data_survives_remount() {
    let fs = mount(fresh());
    let data = pattern(7, 300_000);
    block_on(write_file(&fs, "/f", &data)).unwrap();
    let disk = MemDisk::from_blocks(fs.cache.dev.snapshot());
    let fs2 = mount(disk);
    assert_eq!(block_on(read_file(&fs2, "/f")).unwrap(), data);
}

#[test]
fn mkdir_unlink_and_link_counts() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        fs.mkdir(&root, &root, b"/d").await.unwrap();
        fs.mkdir(&root, &root, b"/d/e").await.unwrap();
        write_file(&fs, "/d/e/f", b"x").await.unwrap();
        assert_eq!(names(&fs, "/d").await, [".", "..", "e"]);
        let d = fs.namei(&root, &root, b"/d").await.unwrap();
        assert_eq!(d.lock().await.unwrap().nlink(), 2); // entry in / plus e's ".."
        assert_eq!(fs.mkdir(&root, &root, b"/d").await.err(), Some(FsError::Exists));
        assert_eq!(fs.unlink(&root, &root, b"/d/e").await, Err(FsError::NotEmpty));
        fs.unlink(&root, &root, b"/d/e/f").await.unwrap();
        fs.unlink(&root, &root, b"/d/e").await.unwrap();
        assert_eq!(d.lock().await.unwrap().nlink(), 1);
        assert_eq!(fs.unlink(&root, &root, b"/d/e").await, Err(FsError::NotFound));
        assert_eq!(fs.unlink(&root, &root, b"/d/.").await, Err(FsError::InvalidArgument));
        write_file(&fs, "/a", b"data").await.unwrap();
        fs.link(&root, &root, b"/a", b"/d/b").await.unwrap();
        fs.unlink(&root, &root, b"/a").await.unwrap();
        assert_eq!(read_file(&fs, "/d/b").await.unwrap(), b"data");
        // link(2): a directory cannot have a second name (EPERM).
        assert_eq!(fs.link(&root, &root, b"/d", b"/d2").await, Err(FsError::NotPermitted));
    });
}

#[test]
fn relative_paths_dotdot_and_root_boundary() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        fs.mkdir(&root, &root, b"/jail").await.unwrap();
        fs.mkdir(&root, &root, b"/jail/sub").await.unwrap();
        write_file(&fs, "/secret", b"outside").await.unwrap();
        write_file(&fs, "/jail/inside", b"in").await.unwrap();
        let jail = fs.namei(&root, &root, b"/jail").await.unwrap();
        let sub = fs.namei(&root, &root, b"/jail/sub").await.unwrap();
        // With /jail as the root, "/" is /jail and ".." cannot climb out of it.
        let f = fs.namei(&jail, &sub, b"../inside").await.unwrap();
        assert_eq!(fs.namei(&jail, &jail, b"/inside").await.unwrap().inum(), f.inum());
        assert_eq!(fs.namei(&jail, &sub, b"../../../secret").await.err(), Some(FsError::NotFound));
        assert_eq!(fs.namei(&jail, &jail, b"/../secret").await.err(), Some(FsError::NotFound));
        assert!(fs.namei(&root, &sub, b"../../secret").await.is_ok());
        let long = [b'x'; 61];
        assert_eq!(fs.namei(&root, &root, &long).await.err(), Some(FsError::InvalidName));
        assert_eq!(fs.namei(&root, &root, b"/secret/x").await.err(), Some(FsError::NotDir));
    });
}

#[test]
fn rename_files_and_directories() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        write_file(&fs, "/a", b"A").await.unwrap();
        write_file(&fs, "/b", b"B").await.unwrap();
        fs.rename(&root, &root, b"/a", b"/c").await.unwrap();
        assert_eq!(read_file(&fs, "/c").await.unwrap(), b"A");
        assert_eq!(fs.namei(&root, &root, b"/a").await.err(), Some(FsError::NotFound));
        fs.rename(&root, &root, b"/c", b"/b").await.unwrap(); // replaces b
        assert_eq!(read_file(&fs, "/b").await.unwrap(), b"A");
        fs.mkdir(&root, &root, b"/x").await.unwrap();
        fs.mkdir(&root, &root, b"/y").await.unwrap();
        fs.mkdir(&root, &root, b"/x/inner").await.unwrap();
        fs.rename(&root, &root, b"/x/inner", b"/y/moved").await.unwrap();
        let x = fs.namei(&root, &root, b"/x").await.unwrap();
        let y = fs.namei(&root, &root, b"/y").await.unwrap();
        assert_eq!(x.lock().await.unwrap().nlink(), 1);
        assert_eq!(y.lock().await.unwrap().nlink(), 2);
        let up = fs.namei(&root, &root, b"/y/moved/..").await.unwrap();
        assert_eq!(up.inum(), y.inum());
        assert_eq!(
            fs.rename(&root, &root, b"/y", b"/y/moved/z").await,
            Err(FsError::InvalidArgument)
        );
        assert_eq!(fs.rename(&root, &root, b"/b", b"/y").await, Err(FsError::IsDir));
    });
}

#[test]
fn large_file_uses_double_indirect_blocks() {
    let fs = mount(fresh());
    let data = pattern(3, 12 * 1024 * 1024); // 3072 blocks: past 12 + 1024
    block_on(async {
        write_file(&fs, "/big", &data).await.unwrap();
        assert_eq!(read_file(&fs, "/big").await.unwrap(), data);
        // Partial truncation inside the double-indirect range, then to zero.
        let root = fs.root().unwrap();
        let ip = fs.namei(&root, &root, b"/big").await.unwrap();
        fs.truncate(&ip, 6 * 1024 * 1024 + 100).await.unwrap();
        assert_eq!(read_file(&fs, "/big").await.unwrap(), data[..6 * 1024 * 1024 + 100]);
        fs.truncate(&ip, 0).await.unwrap();
        drop(ip);
        fs.unlink(&root, &root, b"/big").await.unwrap();
        // Everything came back: the same file fits again.
        write_file(&fs, "/big2", &data).await.unwrap();
    });
}

#[test]
fn thousand_files_in_one_directory() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        fs.mkdir(&root, &root, b"/many").await.unwrap();
        for i in 0..1000 {
            write_file(&fs, &format!("/many/file{i}"), format!("{i}").as_bytes()).await.unwrap();
        }
        assert_eq!(names(&fs, "/many").await.len(), 1002);
        for i in (0..1000).step_by(97) {
            assert_eq!(
                read_file(&fs, &format!("/many/file{i}")).await.unwrap(),
                format!("{i}").as_bytes()
            );
        }
    });
}

#[test]
fn out_of_space_and_out_of_inodes_are_errors() {
    let disk = MemDisk::new(600);
    block_on(format(&disk, 64)).unwrap();
    let fs = mount(disk);
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.create(&root, &root, b"/fill", T_FILE, 0, 0).await.unwrap();
        let n = fs.write(&ip, 0, &pattern(1, 4 << 20)).await.unwrap();
        assert!(n < 4 << 20 && n > 0, "wrote {n}");
        assert_eq!(fs.write(&ip, n as u64, b"more").await, Err(FsError::NoSpace));
        let mut made = 0;
        let err = loop {
            match fs.create(&root, &root, format!("/i{made}").as_bytes(), T_FILE, 0, 0).await {
                Ok(_) => made += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, FsError::NoInodes | FsError::NoSpace), "{err:?}");
        // Freeing space makes room again.
        drop(ip);
        fs.unlink(&root, &root, b"/fill").await.unwrap();
        write_file(&fs, "/after", &pattern(2, 100_000)).await.unwrap();
    });
}

#[test]
fn unlinked_open_file_lives_until_last_close() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        write_file(&fs, "/tmp", &pattern(5, 50_000)).await.unwrap();
        let ip = fs.namei(&root, &root, b"/tmp").await.unwrap();
        fs.unlink(&root, &root, b"/tmp").await.unwrap();
        let mut buf = alloc::vec![0; 50_000];
        assert_eq!(fs.read(&ip, 0, &mut buf).await.unwrap(), 50_000);
        assert_eq!(buf, pattern(5, 50_000));
        let inum = ip.inum();
        drop(ip);
        assert_eq!(fs.reap().await.unwrap(), 1);
        let raw = fs.iget(inum).unwrap();
        assert_eq!(raw.lock().await.err(), Some(FsError::Corrupt("reference to a free inode")));
    });
}

#[test]
fn concurrent_writers() {
    let fs: &'static Fs<MemDisk> = Box::leak(Box::new(mount(fresh())));
    let exec = runtime::Executor::new();
    let handles: Vec<_> = (0..8u64)
        .map(|i| {
            exec.spawn(async move {
                let data = pattern(i, 200_000 + i as usize * 1000);
                write_file(fs, &format!("/w{i}"), &data).await.unwrap();
                assert_eq!(read_file(fs, &format!("/w{i}")).await.unwrap(), data);
            })
        })
        .collect();
    exec.run_until_idle();
    assert!(handles.iter().all(|h| h.is_finished()), "a writer did not finish");
    for i in 0..8u64 {
        let data = pattern(i, 200_000 + i as usize * 1000);
        assert_eq!(block_on(read_file(fs, &format!("/w{i}"))).unwrap(), data);
    }
}

#[test]
fn bad_superblock_is_refused() {
    let disk = MemDisk::new(100);
    let err = block_on(Fs::mount(disk)).err().unwrap();
    assert!(matches!(err, crate::MountError::BadSuperblock(_)), "{err:?}");
    // A superblock that claims more blocks than the device has.
    let disk = fresh();
    let mut blocks = disk.snapshot();
    blocks.truncate(4000);
    let err = block_on(Fs::mount(MemDisk::from_blocks(blocks))).err().unwrap();
    assert!(matches!(err, crate::MountError::DeviceTooSmall { .. }), "{err:?}");
}

/// The workload of the crash test: each step is one transaction whose effect is known.
async fn crash_workload(fs: &Fs<MemDisk>) -> Result<(), FsError> {
    let root = fs.root()?;
    fs.mkdir(&root, &root, b"/d").await?;
    write_file(fs, "/d/a", &pattern(1, 5000)).await?;
    write_file(fs, "/d/b", &pattern(2, 20_000)).await?;
    fs.rename(&root, &root, b"/d/a", b"/d/c").await?;
    fs.unlink(&root, &root, b"/d/b").await?;
    write_file(fs, "/e", &pattern(3, 9000)).await?;
    Ok(())
}

/// After a crash at any write, mounting replays the log and leaves a state in which every
/// file is either absent or has exactly the content of a committed step.
#[test]
fn crash_at_every_write_recovers_to_a_committed_state() {
    let base = fresh();
    let total = {
        let fs = mount(MemDisk::from_blocks(base.snapshot()));
        let before = fs.cache.dev.writes();
        block_on(crash_workload(&fs)).unwrap();
        fs.cache.dev.writes() - before
    };
    assert!(total > 20);
    for cut in 0..total {
        let fs = mount(MemDisk::from_blocks(base.snapshot()));
        fs.cache.dev.crash_after(cut);
        let _ = block_on(crash_workload(&fs)); // writes past `cut` are lost
        let after = MemDisk::from_blocks(fs.cache.dev.snapshot());
        let fs = block_on(Fs::mount(after)).unwrap_or_else(|e| panic!("cut {cut}: {e}")).0;
        block_on(async {
            let ok = |path: &str, allowed: &[Option<Vec<u8>>]| {
                let got = block_on(read_file(&fs, path)).ok();
                assert!(
                    allowed.contains(&got),
                    "cut {cut}: {path} = {:?} bytes",
                    got.map(|g| g.len())
                );
            };
            ok("/d/a", &[None, Some(Vec::new()), Some(pattern(1, 5000))]);
            ok("/d/c", &[None, Some(pattern(1, 5000))]);
            ok("/d/b", &[None, Some(Vec::new()), Some(pattern(2, 20_000))]);
            ok("/e", &[None, Some(Vec::new()), Some(pattern(3, 9000))]);
            // The file system still works after recovery.
            write_file(&fs, "/post", b"ok").await.unwrap();
        });
    }
}

#[test]
fn dir_kind_is_reported_in_stat() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        let st = root.lock().await.unwrap().stat();
        assert_eq!(st.kind, T_DIR);
        assert_eq!(st.inum, abi::fs::ROOT_INO);
        let _ = Arc::new(());
    });
}

#[test]
fn count_free_inodes_follows_create_unlink_and_reap() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        // 1024 inodes: 0 is never used and 1 is the root directory.
        let start = fs.count_free_inodes().await.unwrap();
        assert_eq!(start, 1022);
        write_file(&fs, "/a", b"a").await.unwrap();
        fs.mkdir(&root, &root, b"/d").await.unwrap();
        assert_eq!(fs.count_free_inodes().await.unwrap(), start - 2);
        // Unlinked but open: still allocated until the last handle goes and reap runs.
        let ip = fs.namei(&root, &root, b"/a").await.unwrap();
        fs.unlink(&root, &root, b"/a").await.unwrap();
        assert_eq!(fs.count_free_inodes().await.unwrap(), start - 2);
        assert!(!fs.orphans_pending());
        drop(ip);
        assert!(fs.orphans_pending());
        assert_eq!(fs.reap().await.unwrap(), 1);
        assert!(!fs.orphans_pending());
        assert_eq!(fs.count_free_inodes().await.unwrap(), start - 1);
        fs.unlink(&root, &root, b"/d").await.unwrap();
        assert_eq!(fs.count_free_inodes().await.unwrap(), start);
    });
}

/// Poll `f` at most `polls` times: `None` if it is still pending (over MemDisk, where nothing
/// ever waits for the device, a pending operation is one waiting on a lock nobody will free).
fn bounded<F: Future>(polls: usize, f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    (0..polls).find_map(|_| match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    })
}

/// Issue 9: `rename("/fz/d", "/fz/")` names the source's own parent as the target. It used to
/// lock that parent a second time and wait on itself forever; Linux answers ENOTEMPTY (the
/// target is an ancestor of the source).
#[test]
fn rename_onto_the_sources_own_parent_is_an_error_not_a_hang() {
    let fs = mount(fresh());
    let root = fs.root().unwrap();
    block_on(fs.mkdir(&root, &root, b"/fz")).unwrap();
    block_on(fs.mkdir(&root, &root, b"/fz/d")).unwrap();
    for (old, new) in [(&b"/fz/d"[..], &b"/fz/"[..]), (b"/fz/d", b"/fz"), (b"/fz/d", b"//fz//")] {
        let r = bounded(10_000, fs.rename(&root, &root, old, new));
        let shown = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
        assert!(r.is_some(), "rename{shown:?} hung");
        assert_eq!(r.unwrap(), Err(FsError::NotEmpty), "rename{shown:?}");
    }
    // Nothing is left locked: the tree is intact and further operations run.
    block_on(async {
        assert_eq!(names(&fs, "/fz").await, [".", "..", "d"]);
        fs.rename(&root, &root, b"/fz/d", b"/e").await.unwrap();
        fs.unlink(&root, &root, b"/fz").await.unwrap();
    });
}

/// `..` of a removed directory used to follow its stale `..` entry, which may name an inode
/// freed and reused since, here a directory outside the caller's root: a way out of a jail.
/// A removed directory holds no names, `..` included (and nothing can be created in it).
#[test]
fn dotdot_of_a_removed_directory_leads_nowhere() {
    let fs = mount(fresh());
    block_on(async {
        let top = fs.root().unwrap();
        fs.mkdir(&top, &top, b"/jail").await.unwrap();
        fs.mkdir(&top, &top, b"/jail/a").await.unwrap();
        let jail = fs.namei(&top, &top, b"/jail").await.unwrap();
        let cwd = fs.mkdir(&jail, &jail, b"/a/b").await.unwrap();
        let a = fs.namei(&jail, &jail, b"/a").await.unwrap().inum();
        fs.unlink(&jail, &jail, b"/a/b").await.unwrap(); // cwd is removed but still held
        fs.unlink(&jail, &jail, b"/a").await.unwrap(); // freed: its number can be reused
        let outside = fs.mkdir(&top, &top, b"/outside").await.unwrap();
        assert_eq!(outside.inum(), a, "the test needs /a's inode number reused");
        assert_eq!(fs.namei(&jail, &cwd, b"..").await.err(), Some(FsError::NotFound));
        assert_eq!(fs.namei(&jail, &cwd, b"../x").await.err(), Some(FsError::NotFound));
        assert_eq!(fs.namei(&jail, &cwd, b".").await.unwrap().inum(), cwd.inum());
        assert_eq!(fs.mkdir(&jail, &cwd, b"c").await.err(), Some(FsError::NotFound));
        assert_eq!(fs.create(&jail, &cwd, b"f", T_FILE, 0, 0).await.err(), Some(FsError::NotFound));
    });
}

/// MemDisk, as the tests below rely on it: a run is one request, a crash can cut a run after
/// any of its blocks (the first ones written), a run past the end is refused uncounted.
#[test]
fn memdisk_counts_runs_and_crashes_inside_one() {
    use crate::dev::BlockDevice;
    let disk = MemDisk::new(16);
    let bufs: Vec<[u8; abi::fs::BSIZE]> = (1..=5u8).map(|i| [i; abi::fs::BSIZE]).collect();
    let refs: Vec<&[u8; abi::fs::BSIZE]> = bufs.iter().collect();
    block_on(disk.write_run(2, &refs)).unwrap();
    assert_eq!((disk.requests(), disk.writes()), ((0, 1), 5));
    assert_eq!(block_on(disk.write_run(12, &refs)), Err(crate::IoError::OutOfRange));
    assert_eq!(block_on(disk.write_run(u32::MAX, &refs)), Err(crate::IoError::OutOfRange));
    let mut back = alloc::vec![[0u8; abi::fs::BSIZE]; 5];
    let mut brefs: Vec<&mut [u8; abi::fs::BSIZE]> = back.iter_mut().collect();
    block_on(disk.read_run(2, &mut brefs)).unwrap();
    assert_eq!(back, bufs);
    assert_eq!(disk.requests(), (1, 1));
    disk.crash_after(2);
    let zeros = [[0u8; abi::fs::BSIZE]; 5];
    let zrefs: Vec<&[u8; abi::fs::BSIZE]> = zeros.iter().collect();
    block_on(disk.write_run(2, &zrefs)).unwrap(); // "succeeds": the machine is gone
    let snap = disk.snapshot();
    assert_eq!(&snap[2..7], &[zeros[0], zeros[0], bufs[2], bufs[3], bufs[4]]);
    assert_eq!(disk.writes(), 7);
}

/// How many write requests a commit makes: the log's blocks go as one run, the home blocks
/// as one run per contiguous stretch; no more than a handful for a transaction of 20 blocks
/// (it was one request per block write: 2 * 20 + 2 and more).
#[test]
fn a_commit_writes_runs() {
    let fs = mount(fresh());
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.create(&root, &root, b"/f", T_FILE, 0, 0).await.unwrap();
        let data = pattern(8, 20 * abi::fs::BSIZE);
        let (w0, r0) = (fs.cache.dev.writes(), fs.cache.dev.requests().1);
        assert_eq!(fs.write(&ip, 0, &data).await.unwrap(), data.len());
        let (blocks, requests) = (fs.cache.dev.writes() - w0, fs.cache.dev.requests().1 - r0);
        // 20 data blocks, the inode's and the bitmap's block: twice each, and two headers.
        assert!(blocks >= 2 * 22 + 2, "{blocks} blocks written");
        // Log run, header, data run + inode + bitmap, empty header.
        assert!(requests <= 6, "{requests} write requests for {blocks} blocks");
        assert_eq!(read_file(&fs, "/f").await.unwrap(), data);
    });
    // And what the commits wrote reads back from the disk alone.
    let fs = mount(MemDisk::from_blocks(fs.cache.dev.snapshot()));
    assert_eq!(block_on(read_file(&fs, "/f")).unwrap(), pattern(8, 20 * abi::fs::BSIZE));
}

/// Crash safety with multi-block writes: a workload of large writes (transactions of
/// `MAX_WRITE` bytes, their log and home blocks written as runs), cut after every block
/// write, so that some cuts land inside a run (part of it written). After recovery each file
/// holds whole transactions only.
#[test]
fn crash_inside_multi_block_writes_recovers_whole_transactions() {
    use crate::ops::MAX_WRITE;
    let len = 3 * MAX_WRITE + 5000;
    let (old, new) = (pattern(10, len), pattern(11, len));
    async fn workload(fs: &Fs<MemDisk>, old: &[u8], new: &[u8]) -> Result<(), FsError> {
        write_file(fs, "/big", old).await?;
        let root = fs.root()?;
        let ip = fs.namei(&root, &root, b"/big").await?;
        fs.write(&ip, 0, new).await?; // overwrite in place, chunk by chunk
        Ok(())
    }
    // Every state a crash may leave: the file absent, or any number of whole chunks of the
    // first write, or the first write complete and any number of chunks overwritten.
    let mut allowed: Vec<Option<Vec<u8>>> = alloc::vec![None];
    for k in (0..len).step_by(MAX_WRITE).chain([len]) {
        allowed.push(Some(old[..k].to_vec()));
        let mut v = new[..k].to_vec();
        v.extend_from_slice(&old[k..]);
        allowed.push(Some(v));
    }
    // A small disk: every cut copies it twice.
    let base = MemDisk::new(1024);
    block_on(format(&base, 64)).unwrap();
    let total = {
        let fs = mount(MemDisk::from_blocks(base.snapshot()));
        let (w0, r0) = (fs.cache.dev.writes(), fs.cache.dev.requests().1);
        block_on(workload(&fs, &old, &new)).unwrap();
        let (blocks, requests) = (fs.cache.dev.writes() - w0, fs.cache.dev.requests().1 - r0);
        assert!(blocks > 4 * requests, "runs: {blocks} blocks in {requests} requests");
        blocks
    };
    for cut in 0..total {
        let fs = mount(MemDisk::from_blocks(base.snapshot()));
        fs.cache.dev.crash_after(cut);
        let _ = block_on(workload(&fs, &old, &new));
        let fs = block_on(Fs::mount(MemDisk::from_blocks(fs.cache.dev.snapshot())))
            .unwrap_or_else(|e| panic!("cut {cut}: {e}"))
            .0;
        let got = block_on(read_file(&fs, "/big")).ok();
        assert!(allowed.contains(&got), "cut {cut}: /big = {:?} bytes", got.map(|g| g.len()));
        block_on(write_file(&fs, "/post", b"ok")).unwrap();
    }
}

/// Recovery reads the log as one run and installs home blocks run by run; a header naming a
/// block twice (commit never writes one, but the disk is not trusted) replays as if in
/// order: the later copy wins.
#[test]
fn recovery_installs_runs_and_the_later_copy_of_a_block_wins() {
    use crate::dev::BlockDevice;
    use crate::log::Log;
    use abi::fs::{LogHeader, BSIZE, LOG_DATA, LOG_MAGIC};
    let disk = MemDisk::new(200);
    let start = 10;
    let targets = [100u32, 101, 102, 100, 150];
    let data: Vec<[u8; BSIZE]> = (1..=5u8).map(|i| [i; BSIZE]).collect();
    let refs: Vec<&[u8; BSIZE]> = data.iter().collect();
    block_on(disk.write_run(start + 1, &refs)).unwrap();
    let mut blocks = [0u32; LOG_DATA];
    blocks[..targets.len()].copy_from_slice(&targets);
    let h = LogHeader {
        magic: LOG_MAGIC,
        n: targets.len() as u32,
        checksum: LogHeader::checksum_of(&targets, &data),
        reserved: 0,
        blocks,
    };
    let mut hb = [0u8; BSIZE];
    h.encode(&mut hb);
    block_on(disk.write(start, &hb)).unwrap();
    let before = disk.requests();
    let replayed = block_on(Log::new(start).recover(&disk, |t| t >= 100)).unwrap();
    assert_eq!(replayed, 5);
    let (reads, writes) = disk.requests();
    // The header and the log as one run; 100..=102 and 150 as two runs, then the empty header.
    assert_eq!((reads - before.0, writes - before.1), (2, 3));
    let snap = disk.snapshot();
    assert_eq!([snap[100][0], snap[101][0], snap[102][0], snap[150][0]], [4, 2, 3, 5]);
    // The log is empty now: a second recovery replays nothing.
    assert_eq!(block_on(Log::new(start).recover(&disk, |t| t >= 100)).unwrap(), 0);
}
