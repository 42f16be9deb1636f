//! `mkimage bench-fs`: the kernel's file system against the host's, in one run.
//!
//! The guest boots `fsbench` on a fresh image and prints `fsbench: <op> <amount> <ns>`
//! lines (64 MiB sequential write and read through the file system, 1000 file creations).
//! The same operations then run on the host's file system, in a temporary directory, with
//! the same chunk size. Neither side calls fsync: the guest's writes are complete when the
//! virtio device has handed them to QEMU (the host page cache), so the host is timed the
//! same way. The table's ratio is guest / host; absolute numbers drift on shared machines.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::image::Builder;
use crate::qemu;

const BIG: u64 = 64 << 20;
const CHUNK: usize = 256 * 1024;
const FILES: u32 = 1000;

/// One measured operation: bytes (or files) and the time they took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub amount: u64,
    pub time: Duration,
}

impl Sample {
    fn per_sec(&self) -> f64 {
        self.amount as f64 / self.time.as_secs_f64().max(1e-9)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Results {
    pub seq_write: Sample,
    pub seq_read: Sample,
    pub create: Sample,
}

/// Parse the guest's `fsbench:` lines.
pub fn parse_guest(out: &str) -> Option<Results> {
    let find = |op: &str| {
        out.lines().find_map(|l| {
            let mut w = l.trim().strip_prefix("fsbench: ")?.split_whitespace();
            (w.next()? == op).then_some(())?;
            let amount = w.next()?.parse().ok()?;
            let ns = w.next()?.parse().ok()?;
            Some(Sample { amount, time: Duration::from_nanos(ns) })
        })
    };
    Some(Results {
        seq_write: find("seq_write")?,
        seq_read: find("seq_read")?,
        create: find("create")?,
    })
}

pub fn guest(kernel: &Path) -> Result<Results> {
    let dir = TempDir::new("bench-fs")?;
    let img = dir.path().join("fs.img");
    Builder::standard(256 << 20, 4096)?.write(&img)?;
    let mut opts = qemu::Options::new(kernel, "fsbench");
    opts.disk = Some(img);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("fsbench: create", Duration::from_secs(600))?;
    c.wait_exit(Duration::from_secs(60))?;
    parse_guest(&c.output())
        .ok_or_else(|| Error::Other(format!("no fsbench results in:\n{}", c.output())))
}

pub fn host() -> Result<Results> {
    let dir = TempDir::new("bench-fs-host")?;
    timed_on_host(dir.path())
        .map_err(|source| Error::Io { context: "host file-system benchmark".into(), source })
}

fn timed_on_host(dir: &Path) -> std::io::Result<Results> {
    let path = dir.join("big.bin");
    let chunk = vec![0xa5u8; CHUNK];
    let t0 = Instant::now();
    let mut f = fs::File::create(&path)?;
    for _ in 0..BIG / CHUNK as u64 {
        f.write_all(&chunk)?;
    }
    drop(f);
    let seq_write = Sample { amount: BIG, time: t0.elapsed() };
    let mut buf = vec![0u8; CHUNK];
    let t0 = Instant::now();
    let mut f = fs::File::open(&path)?;
    while f.read(&mut buf)? > 0 {}
    let seq_read = Sample { amount: BIG, time: t0.elapsed() };
    let files = dir.join("many");
    fs::create_dir(&files)?;
    let t0 = Instant::now();
    for i in 0..FILES {
        fs::write(files.join(format!("f{i}")), b"x")?;
    }
    let create = Sample { amount: FILES as u64, time: t0.elapsed() };
    Ok(Results { seq_write, seq_read, create })
}

/// The comparison as a markdown table.
pub fn markdown_table(guest: &Results, host: &Results) -> String {
    let mut t = String::from(
        "| file system | rustix (guest) | host Linux | guest / host |\n|---|---:|---:|---:|\n",
    );
    let rows = [
        ("sequential write 64 MiB (MB/s)", guest.seq_write, host.seq_write, 1e-6),
        ("sequential read 64 MiB (MB/s)", guest.seq_read, host.seq_read, 1e-6),
        ("files created (files/s)", guest.create, host.create, 1.0),
    ];
    for (what, g, h, scale) in rows {
        let (g, h) = (g.per_sec() * scale, h.per_sec() * scale);
        t.push_str(&format!("| {what} | {g:.1} | {h:.1} | {:.3} |\n", g / h));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_guest_lines() {
        let out = "ready\r\nfsbench: seq_write 67108864 4000000000\r\n\
                   fsbench: seq_read 67108864 2000000000\r\nfsbench: create 1000 500000000\r\n";
        let r = parse_guest(out).unwrap();
        assert_eq!(r.seq_write, Sample { amount: 67108864, time: Duration::from_secs(4) });
        assert_eq!(r.create.amount, 1000);
        assert!(parse_guest("fsbench: seq_write 1 2\n").is_none());
    }

    #[test]
    fn table_has_ratios() {
        let s = |a, ms| Sample { amount: a, time: Duration::from_millis(ms) };
        let g = Results {
            seq_write: s(100_000_000, 1000),
            seq_read: s(100_000_000, 500),
            create: s(1000, 1000),
        };
        let h = Results {
            seq_write: s(100_000_000, 100),
            seq_read: s(100_000_000, 50),
            create: s(1000, 10),
        };
        let t = markdown_table(&g, &h);
        assert!(t.contains("| sequential write 64 MiB (MB/s) | 100.0 | 1000.0 | 0.100 |"), "{t}");
        assert!(t.contains("| files created (files/s) | 1000.0 | 100000.0 | 0.010 |"), "{t}");
    }
}
