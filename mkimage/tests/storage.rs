//! The storage stack in QEMU: the kernel's file system on a virtio disk built by mkimage,
//! checked from the host with mkimage's own reader and fsck, and a crash test that kills
//! QEMU at random points of a write workload.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use abi::workload::{crash_step, fill};
use common::{expect_poweroff, ok, poweroff, spawn_with_disk, BOOT, STEP};
use mkimage::image::Builder;
use mkimage::imgread::Image;
use testkit::Rng;

/// A fresh standard image of `mb` MiB in a new temporary directory.
fn image(mb: u64, name: &str) -> (mkimage::console::TempDir, PathBuf) {
    let dir = ok(mkimage::console::TempDir::new(name));
    let path = dir.path().join("fs.img");
    Builder::standard(mb << 20, 4096).expect("builder").write(&path).expect("write image");
    (dir, path)
}

fn fsck_clean(path: &Path) {
    let report = mkimage::fsck::check(path).expect("fsck could not read the image");
    assert!(report.is_clean(), "fsck found problems:\n{}", report.render(50));
}

#[test]
fn kernel_fs_tests_pass_and_leave_a_clean_image() {
    let (_dir, img) = image(160, "fstest");
    let c = spawn_with_disk(&img, "fstest");
    ok(c.expect("fstest: PASS", BOOT * 5));
    expect_poweroff(&c);
    drop(c);

    fsck_clean(&img);
    let image = Image::open(&img).expect("open image");
    assert_eq!(image.read_file("/fstest/hello").unwrap(), b"hello from the kernel\n");
    // The 64 MiB file, byte for byte, as the host reads it.
    let big = image.read_file("/fstest/big").unwrap();
    assert_eq!(big.len(), 64 << 20);
    let mut want = vec![0u8; big.len()];
    fill(1, 0, 0, &mut want);
    assert!(big == want, "/fstest/big differs from what the kernel wrote");
    assert_eq!(image.list_dir("/fstest/many").unwrap().len(), 1002);
}

#[test]
fn boot_mounts_the_image_and_console_reads_files() {
    let (_dir, img) = image(32, "mount");
    let c = spawn_with_disk(&img, "");
    ok(c.expect("fs: mounted", BOOT));
    ok(c.expect_line("ready", BOOT));
    ok(c.send("cat /etc/motd\n"));
    ok(c.expect("Welcome to rustix", STEP));
    ok(c.send("ls /www\n"));
    ok(c.expect("index.html", STEP));
    ok(c.send("cat /nonexistent\n"));
    ok(c.expect("no such file or directory", STEP));
    poweroff(c);
}

#[test]
fn a_foreign_image_is_refused_with_a_message() {
    let dir = ok(mkimage::console::TempDir::new("foreign"));
    let img = dir.path().join("junk.img");
    std::fs::write(&img, vec![0x5a; 4 << 20]).unwrap();
    let c = spawn_with_disk(&img, "");
    ok(c.expect("fs: not mounted: not a valid file system", BOOT));
    ok(c.expect_line("ready", BOOT));
    poweroff(c);
}

/// The last `crash: committed N` in the serial output.
fn last_committed(out: &str) -> Option<u64> {
    out.lines().rev().find_map(|l| l.trim().strip_prefix("crash: committed ")?.parse().ok())
}

/// The crash files as they are on the image (absent = None).
fn crash_files(image: &Image) -> Vec<Option<Vec<u8>>> {
    (0..abi::workload::CRASH_FILES).map(|f| image.read_file(&format!("/crash/f{f}")).ok()).collect()
}

/// Every file must hold exactly one committed version: the newest step at or before the
/// last reported commit that wrote it (or its content before this round, `before`), or the
/// step after (its rename may have committed just before the kill, ahead of its report).
fn check_crash_files(
    image: &Image,
    seed: u64,
    last: Option<u64>,
    before: &[Option<Vec<u8>>],
) -> Result<(), String> {
    let next = last.map_or(0, |l| l + 1);
    let version = |i: u64| {
        let mut want = vec![0u8; crash_step(seed, i).len as usize];
        fill(seed, i, 0, &mut want);
        Some(want)
    };
    for (f, got) in crash_files(image).into_iter().enumerate() {
        let f = f as u32;
        let committed = (0..next).rev().find(|&i| crash_step(seed, i).file == f);
        let mut allowed = vec![committed.map_or_else(|| before[f as usize].clone(), version)];
        if crash_step(seed, next).file == f {
            allowed.push(version(next));
        }
        if !allowed.contains(&got) {
            return Err(format!(
                "/crash/f{f}: {} bytes, not the committed version (step {committed:?}, or {next} if it wrote f{f})",
                got.map_or(-1, |g| g.len() as i64)
            ));
        }
    }
    Ok(())
}

#[test]
fn crash_at_random_points_recovers_to_committed_contents() {
    // A fixed seed, so every run draws the same workloads and kill points (the kill instants
    // still land wherever the guest happens to be); CRASH_SEED=N tries others.
    let mut rng = Rng::from_env("CRASH_SEED", 20_261_124);
    let seed = rng.seed();
    let (_dir, img) = image(64, "crash");
    let mut replays = 0;
    let mut before = vec![None; abi::workload::CRASH_FILES as usize];
    for round in 0..12 {
        let wseed = rng.below(1000);
        let c = spawn_with_disk(&img, &format!("crashwork={wseed}"));
        ok(c.expect("crash: start", BOOT));
        // Kill at a random instant: after a random number of commits, plus up to 200 ms.
        let commits = rng.below(6);
        ok(c.expect_line(&format!("crash: committed {commits}"), BOOT));
        let extra = Duration::from_micros(rng.below(200_000));
        let kill_at = Instant::now() + extra;
        while Instant::now() < kill_at {
            std::hint::spin_loop(); // a fault-injection point in time, not a synchronisation wait
        }
        c.kill();
        let last = last_committed(&c.output());
        drop(c);
        // A committed but uninstalled transaction on the crashed disk must be replayed.
        let crashed = mkimage::fsck::check(&img).expect("fsck could not read the image");
        let pending = crashed.has(mkimage::fsck::ProblemKind::LogNeedsRecovery);

        // Reboot: mounting replays the log; then power off cleanly.
        let c = spawn_with_disk(&img, "");
        ok(c.expect("fs: mounted", BOOT));
        ok(c.expect_line("ready", BOOT));
        ok(c.send("poweroff\n"));
        expect_poweroff(&c);
        let replayed = !c.output().contains("log replayed 0 blocks");
        assert_eq!(
            replayed,
            pending,
            "round {round} (seed {seed}): committed log pending {pending}, replayed {replayed}\n{}",
            c.output()
        );
        replays += replayed as usize;
        drop(c);

        fsck_clean(&img);
        let image = Image::open(&img).expect("open image");
        if let Err(e) = check_crash_files(&image, wseed, last, &before) {
            panic!("round {round} (seed {seed}, workload seed {wseed}, last commit {last:?}): {e}");
        }
        before = crash_files(&image);
        // The next round continues on the same image, like a machine that keeps crashing.
    }
    println!("crash test: 12 kills, {replays} needed a log replay at the next mount");
}
