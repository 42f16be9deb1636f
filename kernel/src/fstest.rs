//! File-system checks and workloads run inside QEMU on the real disk (virtio interrupts,
//! the kernel executor), selected on the command line:
//!
//! - `fstest`: operations, a 64 MiB file, a thousand files in one directory, concurrent
//!   writers; leaves `/fstest/hello` and `/fstest/big` for the host to verify with mkimage;
//! - `fsbench`: sequential write and read of 64 MiB and file creations, as timed lines;
//! - `crashwork=SEED`: the crash workload of `abi::workload`, run until QEMU is killed.

use crate::exec::spawn;
use crate::rootfs::RootFs;
use crate::{kprintln, time};
use abi::workload::{crash_step, fill};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use fs::inode::T_FILE;
use fs::{FsError, Inode};

type Check = Result<(), FsError>;
type Ino = Inode<'static, crate::rootfs::DiskDevice>;

pub const BIG: u64 = 64 << 20;
const CHUNK: usize = 256 * 1024;

fn fail(what: &'static str) -> FsError {
    kprintln!("fstest: {what}");
    FsError::InvalidArgument
}

fn ensure(cond: bool, what: &'static str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(fail(what))
    }
}

async fn write_new(
    fs: &'static RootFs,
    root: &Ino,
    path: &str,
    data: &[u8],
) -> Result<Ino, FsError> {
    let ip = fs.create(root, root, path.as_bytes(), T_FILE, 0, 0).await?;
    fs.truncate(&ip, 0).await?;
    if fs.write(&ip, 0, data).await? != data.len() {
        return Err(FsError::NoSpace);
    }
    Ok(ip)
}

async fn read_all(fs: &'static RootFs, root: &Ino, path: &str) -> Result<Vec<u8>, FsError> {
    let ip = fs.namei(root, root, path.as_bytes()).await?;
    let size = ip.lock().await?.size() as usize;
    let mut buf = vec![0; size];
    fs.read(&ip, 0, &mut buf).await?;
    Ok(buf)
}

async fn basic(fs: &'static RootFs, root: &Ino) -> Check {
    let ip = write_new(fs, root, "/fstest/a", b"hello world").await?;
    fs.write(&ip, 6, b"there").await?;
    ensure(read_all(fs, root, "/fstest/a").await? == b"hello there", "overwrite")?;
    fs.truncate(&ip, 5).await?;
    ensure(read_all(fs, root, "/fstest/a").await? == b"hello", "truncate")?;
    fs.mkdir(root, root, b"/fstest/d").await?;
    fs.rename(root, root, b"/fstest/a", b"/fstest/d/b").await?;
    ensure(
        fs.namei(root, root, b"/fstest/a").await.err() == Some(FsError::NotFound),
        "rename left the old name",
    )?;
    ensure(read_all(fs, root, "/fstest/d/b").await? == b"hello", "rename content")?;
    fs.unlink(root, root, b"/fstest/d/b").await?;
    fs.unlink(root, root, b"/fstest/d").await?;
    write_new(fs, root, "/fstest/hello", b"hello from the kernel\n").await?;
    Ok(())
}

/// Write `len` bytes of version `v` of `seed`'s content in CHUNK pieces; returns ns taken.
async fn write_pattern(
    fs: &'static RootFs,
    ip: &Ino,
    seed: u64,
    v: u64,
    len: u64,
) -> Result<u64, FsError> {
    let t0 = time::now_ns();
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0;
    while off < len {
        let n = CHUNK.min((len - off) as usize);
        fill(seed, v, off, &mut buf[..n]);
        if fs.write(ip, off, &buf[..n]).await? != n {
            return Err(FsError::NoSpace);
        }
        off += n as u64;
    }
    Ok(time::now_ns() - t0)
}

/// Read `len` bytes back; checks them against the pattern when `verify`. Returns ns taken.
async fn read_pattern(
    fs: &'static RootFs,
    ip: &Ino,
    seed: u64,
    v: u64,
    len: u64,
    verify: bool,
) -> Result<u64, FsError> {
    let t0 = time::now_ns();
    let (mut buf, mut want) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let mut off = 0;
    while off < len {
        let n = CHUNK.min((len - off) as usize);
        if fs.read_spawning(ip, off, &mut buf[..n], crate::rootfs::spawn_read_ahead).await? != n {
            return Err(fail("short read"));
        }
        if verify {
            fill(seed, v, off, &mut want[..n]);
            if buf[..n] != want[..n] {
                return Err(fail("big file content differs"));
            }
        }
        off += n as u64;
    }
    Ok(time::now_ns() - t0)
}

fn mb_per_s(bytes: u64, ns: u64) -> u64 {
    bytes * 1000 / ns.max(1) // bytes/ns * 1000 = MB/s
}

async fn big_file(fs: &'static RootFs, root: &Ino) -> Check {
    let ip = write_new(fs, root, "/fstest/big", b"").await?;
    let w = write_pattern(fs, &ip, 1, 0, BIG).await?;
    let r = read_pattern(fs, &ip, 1, 0, BIG, true).await?;
    kprintln!(
        "fstest: 64 MiB written in {} ms, read and verified in {} ms",
        w / 1_000_000,
        r / 1_000_000
    );
    ensure(ip.lock().await?.size() == BIG, "big file size")
}

async fn many_files(fs: &'static RootFs, root: &Ino) -> Check {
    fs.mkdir(root, root, b"/fstest/many").await?;
    for i in 0..1000 {
        write_new(fs, root, &format!("/fstest/many/f{i}"), format!("{i}").as_bytes()).await?;
    }
    let dir = fs.namei(root, root, b"/fstest/many").await?;
    let n = dir.lock().await?.dir_entries().await?.len();
    ensure(n == 1002, "directory does not list 1000 files")?;
    for i in (0..1000).step_by(111) {
        let got = read_all(fs, root, &format!("/fstest/many/f{i}")).await?;
        ensure(got == format!("{i}").as_bytes(), "small file content")?;
    }
    Ok(())
}

async fn concurrent_writers(fs: &'static RootFs) -> Check {
    let tasks: Vec<_> = (0..4u64)
        .map(|t| {
            spawn(async move {
                let root = fs.root()?;
                let ip = write_new(fs, &root, &format!("/fstest/w{t}"), b"").await?;
                write_pattern(fs, &ip, 100 + t, 0, 1 << 20).await?;
                read_pattern(fs, &ip, 100 + t, 0, 1 << 20, true).await.map(|_| ())
            })
        })
        .collect();
    for t in tasks {
        t.await.map_err(|_| fail("writer task aborted"))??;
    }
    Ok(())
}

pub async fn run(fs: &'static RootFs) -> Result<(), &'static str> {
    let root = fs.root().map_err(|_| "no root")?;
    match fs.mkdir(&root, &root, b"/fstest").await {
        Ok(_) | Err(FsError::Exists) => {}
        Err(_) => return Err("mkdir /fstest"),
    }
    let checks: [(&str, Check); 4] = [
        ("basic", basic(fs, &root).await),
        ("big_file", big_file(fs, &root).await),
        ("many_files", many_files(fs, &root).await),
        ("concurrent_writers", concurrent_writers(fs).await),
    ];
    let mut result = Ok(());
    for (name, r) in checks {
        match r {
            Ok(()) => kprintln!("fstest: {name} ok"),
            Err(e) => {
                kprintln!("fstest: FAIL {name}: {e}");
                result = Err("fstest failed");
            }
        }
    }
    result
}

/// Timed lines for `make bench`: `fsbench: <what> <bytes or count> <ns>`.
pub async fn bench(fs: &'static RootFs) -> Result<(), FsError> {
    let root = fs.root()?;
    let ip = write_new(fs, &root, "/bench.bin", b"").await?;
    let w = write_pattern(fs, &ip, 9, 0, BIG).await?;
    kprintln!("fsbench: seq_write {BIG} {w}");
    let r = read_pattern(fs, &ip, 9, 0, BIG, false).await?;
    kprintln!("fsbench: seq_read {BIG} {r}");
    drop(ip);
    fs.unlink(&root, &root, b"/bench.bin").await?;
    match fs.mkdir(&root, &root, b"/benchdir").await {
        Ok(_) | Err(FsError::Exists) => {}
        Err(e) => return Err(e),
    }
    let t0 = time::now_ns();
    for i in 0..1000 {
        write_new(fs, &root, &format!("/benchdir/f{i}"), b"x").await?;
    }
    kprintln!("fsbench: create 1000 {}", time::now_ns() - t0);
    kprintln!("fsbench: write {} MB/s", mb_per_s(BIG, w));
    Ok(())
}

/// The crash workload: runs until QEMU is killed (or 100 000 steps), printing
/// `crash: committed <i>` once step `i`'s rename has committed.
pub async fn crash_workload(fs: &'static RootFs, seed: u64) -> Result<(), FsError> {
    let root = fs.root()?;
    match fs.mkdir(&root, &root, b"/crash").await {
        Ok(_) | Err(FsError::Exists) => {}
        Err(e) => return Err(e),
    }
    kprintln!("crash: start seed={seed}");
    for i in 0..100_000u64 {
        let step = crash_step(seed, i);
        let tmp = write_new(fs, &root, "/crash/tmp", b"").await?;
        write_pattern(fs, &tmp, seed, i, step.len as u64).await?;
        drop(tmp);
        let dst = format!("/crash/f{}", step.file);
        fs.rename(&root, &root, b"/crash/tmp", dst.as_bytes()).await?;
        kprintln!("crash: committed {i}");
    }
    Ok(())
}
