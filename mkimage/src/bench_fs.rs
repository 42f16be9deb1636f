//! `mkimage bench-fs`: the kernel's file system against Linux's ext2, in one run, on the same
//! QEMU machine and the same virtio-blk disk.
//!
//! Our side: the kernel boots `fsbench` on a fresh image and prints `fsbench: <op> <amount> <ns>`
//! lines (kernel/src/fstest.rs: 64 MiB sequential write and read through the file system, 1000
//! file creations of one byte each). Linux's side: Debian's kernel with a busybox initramfs
//! whose init mounts a fresh ext2 image (made on the host with `mke2fs`) from `/dev/vda` and runs
//! the same operations with `dd` and a shell loop, printing the same lines. Linux is timed until
//! its data is on the device, as ours is: the write with `conv=fsync`, the creations up to a
//! `sync`; the read starts with the page cache dropped, so it reads the disk. Times come from
//! the guest's clock (`/proc/timer_list`, in ns). Without Debian's kernel, busybox or `mke2fs`
//! the Linux column is skipped and the table says why. The ratio is ours / Linux (higher is
//! better for us); absolute numbers drift on shared machines.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::bench_sys::{vmlinuz, Cpio};
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::image::Builder;
use crate::qemu;

const BIG: u64 = 64 << 20;
/// How long each side may take (both take well under a minute here).
const DEADLINE: Duration = Duration::from_secs(600);
/// The image size of both sides (ours: `Builder::standard` below).
const IMAGE: u64 = 256 << 20;

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

/// Parse the `fsbench:` lines of either side.
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
    Builder::standard(IMAGE, 4096)?.write(&img)?;
    let mut opts = qemu::Options::new(kernel, "fsbench");
    opts.disk = Some(img);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("fsbench: create", DEADLINE)?;
    c.wait_exit(Duration::from_secs(60))?;
    parse_guest(&c.output())
        .ok_or_else(|| Error::Other(format!("no fsbench results in:\n{}", c.output())))
}

/// The Linux side: measured, or skipped (and why).
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    Ran(Results),
    Skipped(String),
}

/// The modules Debian's kernel needs for a virtio-blk disk with ext2, without their
/// dependencies: ext4's driver serves ext2 and asks for the crc32c hash at every mount, which
/// `modules.dep` does not list.
const MODULES: [&str; 4] = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];
/// Busybox applets the init script runs (`printf`, `echo` and `[` are ash builtins).
const APPLETS: [&str; 9] =
    ["sh", "mount", "insmod", "dd", "grep", "sync", "rm", "mkdir", "poweroff"];

/// Paths (relative to the modules directory) of `wanted` and everything they depend on, each
/// after its dependencies, from the text of `modules.dep` (`path: dep dep ...`). `None` if a
/// module or a dependency is not listed.
pub fn module_load_order(modules_dep: &str, wanted: &[&str]) -> Option<Vec<String>> {
    let deps: Vec<(&str, Vec<&str>)> = modules_dep
        .lines()
        .filter_map(|l| {
            let (path, deps) = l.split_once(':')?;
            Some((path.trim(), deps.split_whitespace().collect()))
        })
        .collect();
    let name = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        file.split_once(".ko").map_or(file, |(n, _)| n).replace('-', "_")
    };
    let mut order: Vec<String> = Vec::new();
    // Depth-first and recursive; the depth bound stops a cycle in a damaged file.
    fn visit(
        path: &str,
        deps: &[(&str, Vec<&str>)],
        order: &mut Vec<String>,
        depth: usize,
    ) -> Option<()> {
        if order.iter().any(|p| p == path) {
            return Some(());
        }
        if depth > 64 {
            return None;
        }
        let (_, ds) = deps.iter().find(|(p, _)| *p == path)?;
        for d in ds {
            visit(d, deps, order, depth + 1)?;
        }
        if !order.iter().any(|p| p == path) {
            order.push(path.to_string());
        }
        Some(())
    }
    for w in wanted {
        let w = w.replace('-', "_");
        let (path, _) = deps.iter().find(|(p, _)| name(p) == w)?;
        visit(path, &deps, &mut order, 0)?;
    }
    Some(order)
}

/// The init script of the Linux side: load `modules` (file names under /lib), mount the disk,
/// run the three operations and print them as our kernel does, power off.
pub fn init_script(modules: &[String]) -> String {
    let mut s = String::from(
        "#!/bin/sh\nmount -t proc proc /proc\nmount -t devtmpfs dev /dev\n\
         mount -t sysfs sys /sys\n",
    );
    for m in modules {
        s.push_str(&format!("insmod /lib/{m}\n"));
    }
    let count = BIG / (256 << 10);
    s.push_str(&format!(
        r#"fail() {{ echo "fsbench: FAIL $1"; poweroff -f; }}
mount -t ext2 /dev/vda /mnt || fail "mount /dev/vda"
# ns since boot: busybox date has no %N, the timer list has the clock in ns.
now() {{ t=$(grep -m1 '^now at' /proc/timer_list); t=${{t#now at }}; echo ${{t% nsecs}}; }}
t0=$(now)
dd if=/dev/zero of=/mnt/bench.bin bs=262144 count={count} conv=fsync 2>/dev/null || fail dd
t1=$(now)
echo "fsbench: seq_write {BIG} $((t1 - t0))"
sync; echo 3 > /proc/sys/vm/drop_caches
t0=$(now)
dd if=/mnt/bench.bin of=/dev/null bs=262144 2>/dev/null || fail "dd read"
t1=$(now)
echo "fsbench: seq_read {BIG} $((t1 - t0))"
rm /mnt/bench.bin
mkdir /mnt/benchdir
t0=$(now)
i=0
while [ $i -lt 1000 ]; do printf x > /mnt/benchdir/f$i || fail create; i=$((i + 1)); done
sync
t1=$(now)
echo "fsbench: create 1000 $((t1 - t0))"
poweroff -f
"#
    ));
    s
}

/// An initramfs with busybox, the kernel modules (`(file name, contents)`) and the init.
pub fn initramfs(busybox: &[u8], modules: &[(String, Vec<u8>)], init: &str) -> Vec<u8> {
    let mut a = Cpio::new();
    for d in ["bin", "proc", "dev", "sys", "mnt", "lib"] {
        a.dir(d);
    }
    a.exe("bin/busybox", busybox);
    for tool in APPLETS {
        a.link(&format!("bin/{tool}"), "busybox");
    }
    for (name, data) in modules {
        a.entry(&format!("lib/{name}"), 0o100644, data);
    }
    a.exe("init", init.as_bytes());
    a.finish()
}

/// Run `cmd` (QEMU) to its end and return its standard output; killed after `deadline`.
fn run_bounded(mut cmd: std::process::Command, deadline: Duration) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::Other(format!("qemu: {e}")))?;
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut s);
        s
    });
    let start = Instant::now();
    // Polls the child's exit: std has no wait with a timeout.
    while child.try_wait().map_err(|e| Error::Other(format!("qemu: {e}")))?.is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = reader.join().unwrap_or_default();
            return Err(Error::Other(format!(
                "the Linux side did not finish in {deadline:?}:\n{}",
                String::from_utf8_lossy(&out)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = reader.join().unwrap_or_default();
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Linux: Debian's kernel on a fresh ext2 image; skipped without the kernel, busybox or mke2fs.
pub fn linux() -> Result<Peer> {
    let skip = |why: &str| Ok(Peer::Skipped(format!("{why} (make deps-bench)")));
    let Some(kernel) = vmlinuz() else {
        return skip("no /boot/vmlinuz-*: install Debian's linux-image-amd64");
    };
    let Ok(busybox) = fs::read("/bin/busybox") else {
        return skip("no /bin/busybox: install Debian's busybox-static");
    };
    let release = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or_default()
        .to_string();
    let moddir = PathBuf::from("/lib/modules").join(&release);
    let Ok(dep) = fs::read_to_string(moddir.join("modules.dep")) else {
        return skip(&format!("no {}/modules.dep", moddir.display()));
    };
    let Some(order) = module_load_order(&dep, &MODULES) else {
        return Ok(Peer::Skipped(format!(
            "{} lacks one of {MODULES:?} (a kernel without virtio-blk or ext2 modules)",
            moddir.display()
        )));
    };
    let mut modules = Vec::new();
    for path in &order {
        let data = fs::read(moddir.join(path))
            .map_err(|e| Error::Other(format!("reading {path}: {e}")))?;
        if !path.ends_with(".ko") {
            return Ok(Peer::Skipped(format!("{path} is compressed; busybox insmod needs .ko")));
        }
        let file = path.rsplit('/').next().unwrap_or(path).to_string();
        modules.push((file, data));
    }
    let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
    let dir = TempDir::new("bench-fs-linux")?;
    let initrd = dir.path().join("initrd.cpio");
    fs::write(&initrd, initramfs(&busybox, &modules, &init_script(&names)))
        .map_err(|e| Error::Other(format!("writing the initramfs: {e}")))?;
    let img = dir.path().join("ext2.img");
    fs::File::create(&img)
        .and_then(|f| f.set_len(IMAGE))
        .map_err(|e| Error::Other(format!("creating {}: {e}", img.display())))?;
    // 4 KiB blocks: what mke2fs picks for any disk but a small one, and what Linux runs on.
    let mkfs = std::process::Command::new("mke2fs")
        .args(["-q", "-t", "ext2", "-F", "-b", "4096"])
        .arg(&img)
        .stdin(Stdio::null())
        .output();
    match mkfs {
        Err(e) => return skip(&format!("mke2fs: {e}: install e2fsprogs")),
        Ok(o) if !o.status.success() => {
            return Err(Error::Other(format!(
                "mke2fs failed: {}",
                String::from_utf8_lossy(&o.stderr)
            )))
        }
        Ok(_) => {}
    }
    let mut cmd = qemu::linux_peer_command(&kernel, &initrd);
    cmd.args(qemu::disk_args(&img));
    let text = run_bounded(cmd, DEADLINE)?;
    parse_guest(&text)
        .map(Peer::Ran)
        .ok_or_else(|| Error::Other(format!("the Linux side printed no fsbench results:\n{text}")))
}

/// The comparison as a markdown table, then a line if the Linux side was skipped.
pub fn markdown_table(ours: &Results, linux: &Peer) -> String {
    let theirs = match linux {
        Peer::Ran(r) => Some(r),
        Peer::Skipped(_) => None,
    };
    let mut t = String::from(
        "| file system (virtio-blk, same QEMU machine) | rustix | Linux ext2 | rustix / Linux |\n\
         |---|---:|---:|---:|\n",
    );
    type Pick = fn(&Results) -> Sample;
    let rows: [(&str, Pick, f64); 3] = [
        ("sequential write 64 MiB (MB/s)", |r| r.seq_write, 1e-6),
        ("sequential read 64 MiB (MB/s)", |r| r.seq_read, 1e-6),
        ("files created (files/s)", |r| r.create, 1.0),
    ];
    for (what, pick, scale) in rows {
        let ours = pick(ours).per_sec() * scale;
        match theirs {
            Some(l) => {
                let l = pick(l).per_sec() * scale;
                t.push_str(&format!("| {what} | {ours:.1} | {l:.1} | {:.3} |\n", ours / l));
            }
            None => t.push_str(&format!("| {what} | {ours:.1} | skipped | - |\n")),
        }
    }
    if let Peer::Skipped(why) = linux {
        t.push_str(&format!("\nLinux side skipped (its column is empty): {why}\n"));
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
        let ours = Results {
            seq_write: s(100_000_000, 1000),
            seq_read: s(100_000_000, 500),
            create: s(1000, 1000),
        };
        let linux = Results {
            seq_write: s(100_000_000, 100),
            seq_read: s(100_000_000, 50),
            create: s(1000, 10),
        };
        let t = markdown_table(&ours, &Peer::Ran(linux));
        assert!(t.contains("| sequential write 64 MiB (MB/s) | 100.0 | 1000.0 | 0.100 |"), "{t}");
        assert!(t.contains("| files created (files/s) | 1000.0 | 100000.0 | 0.010 |"), "{t}");
        let t = markdown_table(&ours, &Peer::Skipped("no /bin/busybox".into()));
        assert!(t.contains("| sequential read 64 MiB (MB/s) | 200.0 | skipped | - |"), "{t}");
        assert!(t.contains("Linux side skipped (its column is empty): no /bin/busybox"), "{t}");
    }

    #[test]
    fn modules_load_after_their_dependencies() {
        let dep = "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
                   kernel/lib/crc16.ko:\n\
                   kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\n\
                   kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n\
                   kernel/drivers/virtio/virtio_ring.ko:\n\
                   kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko \
                   kernel/drivers/virtio/virtio_ring.ko\n";
        let order = module_load_order(dep, &["virtio_blk", "ext4"]).unwrap();
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/block/virtio_blk.ko",
                "kernel/lib/crc16.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/ext4/ext4.ko",
            ]
        );
        // A module that is not there, a dependency that is not listed, a cycle: no order.
        assert!(module_load_order(dep, &["virtio_pci"]).is_none());
        assert!(module_load_order("a.ko: b.ko\n", &["a"]).is_none());
        assert!(module_load_order("a.ko: b.ko\nb.ko: a.ko\n", &["a"]).is_none());
    }

    #[test]
    fn init_loads_modules_and_prints_our_lines() {
        let init = init_script(&["virtio.ko".into(), "ext4.ko".into()]);
        assert!(init.starts_with("#!/bin/sh\n"));
        let v = init.find("insmod /lib/virtio.ko").unwrap();
        assert!(v < init.find("insmod /lib/ext4.ko").unwrap());
        assert!(init.contains("count=256 conv=fsync"), "{init}");
        for op in ["seq_write 67108864 $(", "seq_read 67108864 $(", "create 1000 $("] {
            assert!(init.contains(&format!("echo \"fsbench: {op}")), "{op}: {init}");
        }
        assert!(init.trim_end().ends_with("poweroff -f"));
        let a = initramfs(b"BB", &[("ext4.ko".into(), b"MOD".to_vec())], &init);
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        for name in ["bin/busybox", "bin/insmod", "lib/ext4.ko", "init", "TRAILER!!!"] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
