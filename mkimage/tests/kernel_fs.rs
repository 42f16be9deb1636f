//! The two implementations of the on-disk format checked against each other: the kernel's
//! file system (crate `fs`, run here on the host over an in-memory disk) mounts and reads
//! images built by `mkimage image`, and `mkimage fsck` / the image reader accept what the kernel
//! writes, including after a crash at any write and the recovery that follows.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use abi::fs::{BSIZE, NDIRECT};
use fs::dev::Block;
use fs::inode::{T_DIR, T_FILE};
use fs::{BlockDevice, Fs, FsError, IoError, MemDisk};
use mkimage::fsck::{self, ProblemKind, Report};
use mkimage::image::{Builder, STANDARD_FILES};
use mkimage::imgread::{Disk, Image};
use testkit::block_on;

/// A `MemDisk` the test keeps a handle on while the file system owns the device.
#[derive(Clone)]
struct Shared(Arc<MemDisk>);

impl BlockDevice for Shared {
    fn read(
        &self,
        block: u32,
        buf: &mut Block,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        self.0.read(block, buf)
    }

    fn write(&self, block: u32, buf: &Block) -> impl Future<Output = Result<(), IoError>> + Send {
        self.0.write(block, buf)
    }

    fn block_count(&self) -> u32 {
        self.0.block_count()
    }
}

fn to_blocks(bytes: &[u8]) -> Vec<Block> {
    bytes.chunks_exact(BSIZE).map(|c| c.try_into().unwrap()).collect()
}

fn to_bytes(blocks: &[Block]) -> Vec<u8> {
    blocks.concat()
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(len)
}

/// Builds an image with mkimage and returns its bytes.
fn mkimage_bytes(size: u64, inodes: u32, extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = Builder::standard(size, inodes).unwrap();
    for (p, c) in extra {
        b.add_file(p, c.clone()).unwrap();
    }
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mkimage-kfs-{}-{n}", std::process::id()));
    b.write(&dir).unwrap();
    let bytes = std::fs::read(&dir).unwrap();
    std::fs::remove_file(&dir).unwrap();
    bytes
}

fn fsck_bytes(bytes: Vec<u8>) -> Report {
    fsck::check_bytes("snapshot", bytes).unwrap()
}

async fn read_all(fs: &Fs<Shared>, path: &str) -> Result<Vec<u8>, FsError> {
    let root = fs.root()?;
    let ip = fs.namei(&root, &root, path.as_bytes()).await?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 3 * BSIZE + 17];
    loop {
        let n = fs.read(&ip, out.len() as u64, &mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

async fn write_file(fs: &Fs<Shared>, path: &str, data: &[u8]) -> Result<(), FsError> {
    let root = fs.root()?;
    let ip = fs.create(&root, &root, path.as_bytes(), T_FILE, 0, 0).await?;
    fs.truncate(&ip, 0).await?;
    let n = fs.write(&ip, 0, data).await?;
    assert_eq!(n, data.len());
    Ok(())
}

/// Creates, overwrites, links, renames and removes files and directories.
async fn workload(fs: &Fs<Shared>) -> Result<(), FsError> {
    let root = fs.root()?;
    write_file(fs, "/etc/motd", &pattern(3000, 1)).await?;
    fs.mkdir(&root, &root, b"/tmp").await?;
    write_file(fs, "/tmp/a", &pattern(20_000, 2)).await?;
    write_file(fs, "/tmp/b", &pattern((NDIRECT + 4) * BSIZE, 3)).await?;
    fs.link(&root, &root, b"/tmp/a", b"/tmp/a2").await?;
    fs.unlink(&root, &root, b"/README").await?;
    fs.rename(&root, &root, b"/tmp/b", b"/www/b").await?;
    fs.unlink(&root, &root, b"/tmp/a").await?;
    fs.mkdir(&root, &root, b"/tmp/sub").await?;
    fs.rename(&root, &root, b"/tmp/sub", b"/www/docs/sub").await?;
    fs.unlink(&root, &root, b"/tmp/a2").await?;
    fs.unlink(&root, &root, b"/tmp").await?;
    Ok(())
}

#[test]
fn kernel_reads_what_mkimage_builds() {
    let big = pattern(5 << 20, 9);
    let bytes = mkimage_bytes(16 << 20, 256, &[("/data/big.bin", big.clone())]);
    let disk = Shared(Arc::new(MemDisk::from_blocks(to_blocks(&bytes))));
    let (fs, report) = block_on(Fs::mount(disk.clone())).unwrap();
    assert_eq!(report.replayed_blocks, 0);
    assert_eq!(report.orphans_freed, 0);
    for (path, contents) in STANDARD_FILES {
        assert_eq!(block_on(read_all(&fs, path)).unwrap(), contents.as_bytes(), "{path}");
    }
    assert!(block_on(read_all(&fs, "/data/big.bin")).unwrap() == big);
    block_on(async {
        let root = fs.root().unwrap();
        let bin = fs.namei(&root, &root, b"/bin").await.unwrap();
        let st = bin.lock().await.unwrap().stat();
        assert_eq!((st.kind, st.nlink, st.size), (T_DIR, 1, 128));
        let www = fs.namei(&root, &root, b"/www/docs/..").await.unwrap();
        assert_eq!(www.lock().await.unwrap().stat().nlink, 2);
    });

    // The kernel changes the image; fsck finds it consistent and the reader sees the changes.
    block_on(workload(&fs)).unwrap();
    let after = to_bytes(&disk.0.snapshot());
    let r = fsck_bytes(after.clone());
    assert!(r.is_clean(), "{r}");
    let img = Image::from_disk(Disk::from_bytes("after", after)).unwrap();
    assert_eq!(img.read_file("/etc/motd").unwrap(), pattern(3000, 1));
    assert_eq!(img.read_file("/www/b").unwrap(), pattern((NDIRECT + 4) * BSIZE, 3));
    assert!(img.read_file("/README").is_err());
    assert!(img.lookup("/tmp").is_err());
    assert_eq!(img.stat("/www/docs/sub").unwrap().nlink, 1);
    assert_eq!(img.stat("/www/docs").unwrap().nlink, 2);
    assert!(img.read_file("/data/big.bin").unwrap() == big);
}

#[test]
fn fsck_accepts_the_kernels_own_format() {
    let disk = Shared(Arc::new(MemDisk::new(2048)));
    block_on(fs::format::format(&disk, 128)).unwrap();
    let r = fsck_bytes(to_bytes(&disk.0.snapshot()));
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.inodes, 1);
}

/// A crash at every write of the workload: before the kernel's recovery the image is either
/// consistent or holds a committed log ("needs recovery"); after mounting (which replays the
/// log and frees orphans) fsck finds it clean.
#[test]
fn fsck_is_clean_after_recovery_from_a_crash_at_every_write() {
    let base = mkimage_bytes(2 << 20, 64, &[]);
    let total = {
        let disk = Shared(Arc::new(MemDisk::from_blocks(to_blocks(&base))));
        let (fs, _) = block_on(Fs::mount(disk.clone())).unwrap();
        let before = disk.0.writes();
        block_on(workload(&fs)).unwrap();
        disk.0.writes() - before
    };
    assert!(total > 30, "{total} writes");
    let mut needed_recovery = 0;
    for cut in 0..=total {
        let disk = Shared(Arc::new(MemDisk::from_blocks(to_blocks(&base))));
        let (fs, _) = block_on(Fs::mount(disk.clone())).unwrap();
        disk.0.crash_after(cut);
        let _ = block_on(workload(&fs)); // writes after `cut` are lost
        drop(fs);
        let crashed = disk.0.snapshot();
        let r = fsck_bytes(to_bytes(&crashed));
        if r.has(ProblemKind::LogNeedsRecovery) {
            needed_recovery += 1;
        } else {
            // Between transactions; at most an inode that was unlinked while open.
            assert!(
                r.problems
                    .iter()
                    .all(|p| p.kind == ProblemKind::Unreachable && p.message.contains("nlink 0")),
                "cut {cut}: {r}"
            );
        }
        let disk = Shared(Arc::new(MemDisk::from_blocks(crashed)));
        let (fs, _) = block_on(Fs::mount(disk.clone()))
            .unwrap_or_else(|e| panic!("cut {cut}: mount after crash: {e}"));
        drop(fs);
        let r = fsck_bytes(to_bytes(&disk.0.snapshot()));
        assert!(r.is_clean(), "cut {cut}, after recovery: {r}");
    }
    assert!(needed_recovery > 0, "no cut fell inside a commit");
}

/// Running out of data blocks and out of inodes are errors, and leave a disk that fsck
/// accepts (with everything written before the error still readable).
#[test]
fn out_of_space_and_inodes_leave_a_clean_image() {
    let bytes = mkimage_bytes(3 << 20, 48, &[]);
    let disk = Arc::new(MemDisk::from_blocks(to_blocks(&bytes)));
    let (fs, _) = block_on(Fs::mount(Shared(disk.clone()))).unwrap();
    block_on(async {
        let root = fs.root().unwrap();
        let ip = fs.create(&root, &root, b"/fill", T_FILE, 0, 0).await.unwrap();
        let data = pattern(8 << 20, 3);
        let n = fs.write(&ip, 0, &data).await.unwrap();
        assert!(n > 0 && n < data.len(), "wrote {n} of {} bytes on a 3 MiB disk", data.len());
        assert_eq!(fs.write(&ip, n as u64, b"more").await, Err(FsError::NoSpace));
        drop(ip);
        let mut i = 0;
        let err = loop {
            match fs.create(&root, &root, format!("/f{i}").as_bytes(), T_FILE, 0, 0).await {
                Ok(_) => i += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, FsError::NoInodes | FsError::NoSpace), "{err:?} after {i} files");
        let dir_err = fs.mkdir(&root, &root, b"/dir").await.err();
        assert!(matches!(dir_err, Some(FsError::NoInodes | FsError::NoSpace)), "{dir_err:?}");
        let report = fsck_bytes(to_bytes(&disk.snapshot()));
        assert!(report.is_clean(), "after running out:\n{}", report.render(20));
        let image = Image::from_disk(Disk::from_bytes("full", to_bytes(&disk.snapshot()))).unwrap();
        assert_eq!(image.read_file("/fill").unwrap(), data[..n]);
    });
}
