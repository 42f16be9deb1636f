//! `mkimage bench-sys`: system-call costs in CPU cycles, our kernel against Linux, one run.
//!
//! Our side: the guest's `bench` program (user/src/bin/bench.rs) at the shell. Linux's side:
//! `linux-bench` (src/bin/linux-bench.rs, the same operations), linked statically and run as
//! part of an initramfs under Debian's kernel, in the same QEMU machine. Both print
//! `bench: <op> <cycles> [<kinds>]` (kinds: what the spawn rows isolated) or
//! `bench: <op> failed: <why>`; the table shows the ratio ours / Linux (lower is better for
//! us). Without Debian's kernel or busybox the Linux column is skipped, and the table says so.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::build::{remove_outer_cargo_env, workspace_root};
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu;

pub const OPS: [&str; 5] =
    ["getpid", "fork-exec-wait", "pipe-pingpong", "spawn-exit-wait", "spawn-pid-exit-wait"];
const DEADLINE: Duration = Duration::from_secs(300);

/// One operation's cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub op: String,
    /// Cycles per operation.
    pub cycles: u64,
    /// What a spawn row isolated (`pid,fs`, `pid,mnt,net`); empty for the others.
    pub kinds: String,
}

/// What one side printed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Results {
    pub rows: Vec<Row>,
    /// `(op, why)` of the operations that failed.
    pub failed: Vec<(String, String)>,
}

impl Results {
    fn row(&self, op: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.op == op)
    }

    fn failure(&self, op: &str) -> Option<&str> {
        self.failed.iter().find(|(o, _)| o == op).map(|(_, why)| why.as_str())
    }
}

/// The Linux side: measured, or skipped (and why).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    Ran(Results),
    Skipped(String),
}

/// The `bench: ...` lines of some output.
pub fn parse(out: &str) -> Results {
    let mut r = Results::default();
    for l in out.lines() {
        let Some(rest) = l.trim().trim_start_matches("$ ").strip_prefix("bench: ") else {
            continue;
        };
        let Some((op, rest)) = rest.split_once(' ') else { continue };
        if let Some(why) = rest.strip_prefix("failed: ") {
            r.failed.push((op.to_string(), why.trim().to_string()));
            continue;
        }
        let mut w = rest.split_whitespace();
        let Some(Ok(cycles)) = w.next().map(str::parse) else { continue };
        let kinds = w.next().unwrap_or("").to_string();
        r.rows.push(Row { op: op.to_string(), cycles, kinds });
    }
    r
}

/// Our kernel: boot an image with the programs and run `bench` at the shell.
pub fn guest(kernel: &Path) -> Result<Results> {
    let dir = TempDir::new("bench-sys")?;
    let img = dir.path().join("fs.img");
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &[])?;
    let mut opts = qemu::Options::new(kernel, "");
    opts.disk = Some(img);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("$ ", DEADLINE)?;
    c.send("bench\n")?;
    // The last operation prints its line, result or failure, then the prompt comes back.
    c.expect(&format!("bench: {}", OPS[OPS.len() - 1]), DEADLINE)?;
    c.expect("\n$ ", DEADLINE)?;
    c.send("poweroff\n")?;
    c.wait_exit(DEADLINE)?;
    Ok(parse(&c.output()))
}

/// Build `linux-bench` as a static Linux executable (its own target dir, like the kernel's).
fn build_linux_bench() -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = root.join("target").join("linux-bench");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    remove_outer_cargo_env(&mut cmd);
    cmd.current_dir(&root)
        .args(["build", "--release", "-p", "mkimage", "--bin", "linux-bench"])
        .args(["--target", "x86_64-unknown-linux-gnu", "--target-dir"])
        .arg(&target_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", "-Ctarget-feature=+crt-static");
    let status = cmd.status().map_err(|e| Error::Other(format!("cargo: {e}")))?;
    if !status.success() {
        return Err(Error::Build("static build of linux-bench failed".into()));
    }
    Ok(target_dir.join("x86_64-unknown-linux-gnu/release/linux-bench"))
}

/// A newc ("070701") cpio archive (an initramfs), built member by member.
pub(crate) struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    pub(crate) fn new() -> Cpio {
        Cpio { out: Vec::new(), ino: 1 }
    }

    /// A directory.
    pub(crate) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, b"");
    }

    /// An executable file.
    pub(crate) fn exe(&mut self, name: &str, data: &[u8]) {
        self.entry(name, 0o100755, data);
    }

    /// A symbolic link to `target`.
    pub(crate) fn link(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120777, target.as_bytes());
    }

    /// One member, of any mode; each gets the next inode number.
    pub(crate) fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        let out = &mut self.out;
        let namesize = name.len() + 1;
        let fields =
            [self.ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, namesize as u32, 0];
        self.ino += 1;
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.resize(out.len().next_multiple_of(4), 0);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }

    /// The archive, closed by its trailer.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

const INIT: &str = "#!/bin/sh\nmount -t proc proc /proc\n/linux-bench\npoweroff -f\n";

/// An initramfs with busybox, `linux-bench` and an init that runs it and powers off.
pub fn initramfs(busybox: &[u8], bench: &[u8]) -> Vec<u8> {
    let mut a = Cpio::new();
    for d in ["bin", "proc", "dev"] {
        a.dir(d);
    }
    a.exe("bin/busybox", busybox);
    for tool in ["sh", "mount", "poweroff"] {
        a.link(&format!("bin/{tool}"), "busybox");
    }
    a.exe("init", INIT.as_bytes());
    a.exe("linux-bench", bench);
    a.finish()
}

/// Debian's kernel image, if installed.
pub(crate) fn vmlinuz() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    v.sort();
    v.pop()
}

/// Linux: the peer kernel running `linux-bench`; skipped without Debian's kernel or busybox.
pub fn linux() -> Result<Peer> {
    let Some(kernel) = vmlinuz() else {
        return Ok(Peer::Skipped(
            "no /boot/vmlinuz-*: install Debian's linux-image-amd64 (make deps-bench)".into(),
        ));
    };
    let Ok(busybox) = fs::read("/bin/busybox") else {
        return Ok(Peer::Skipped(
            "no /bin/busybox: install Debian's busybox-static (make deps-bench)".into(),
        ));
    };
    let bench = fs::read(build_linux_bench()?)
        .map_err(|e| Error::Other(format!("reading linux-bench: {e}")))?;
    let dir = TempDir::new("linux-peer")?;
    let initrd = dir.path().join("initrd.cpio");
    fs::write(&initrd, initramfs(&busybox, &bench))
        .map_err(|e| Error::Other(format!("writing the initramfs: {e}")))?;
    let mut cmd = qemu::linux_peer_command(&kernel, &initrd);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Other(format!("qemu: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let r = parse(&text);
    if r.rows.is_empty() && r.failed.is_empty() {
        return Err(Error::Other(format!("the Linux peer printed no bench results:\n{text}")));
    }
    Ok(Peer::Ran(r))
}

/// One side's cell for `op`: its cycles, or why there are none.
fn cell(side: Option<&Results>, op: &str) -> (String, Option<u64>) {
    let Some(side) = side else { return ("skipped".into(), None) };
    match (side.row(op), side.failure(op)) {
        (Some(r), _) => (r.cycles.to_string(), Some(r.cycles)),
        (None, Some(_)) => ("failed".into(), None),
        (None, None) => ("missing".into(), None),
    }
}

/// The comparison as a markdown table, then a line for everything skipped or failed.
pub fn markdown_table(ours: &Results, linux: &Peer) -> String {
    let theirs = match linux {
        Peer::Ran(r) => Some(r),
        Peer::Skipped(_) => None,
    };
    let mut t = String::from(
        "| cycles per operation | rustix | Linux | rustix / Linux |\n|---|---:|---:|---:|\n",
    );
    for op in OPS {
        let kinds = |side: Option<&Results>| side.and_then(|s| s.row(op)).map(|r| r.kinds.clone());
        let label = match (kinds(Some(ours)), kinds(theirs)) {
            (Some(a), Some(b)) if !a.is_empty() || !b.is_empty() => {
                format!("{op} (rustix {a}; Linux {b})")
            }
            (Some(a), None) if !a.is_empty() => format!("{op} (rustix {a})"),
            _ => op.to_string(),
        };
        let ((a, x), (b, y)) = (cell(Some(ours), op), cell(theirs, op));
        let ratio = match (x, y) {
            (Some(x), Some(y)) => format!("{:.2}", x as f64 / y.max(1) as f64),
            _ => "-".into(),
        };
        t.push_str(&format!("| {label} | {a} | {b} | {ratio} |\n"));
    }
    let mut notes = Vec::new();
    if let Peer::Skipped(why) = linux {
        notes.push(format!("Linux peer skipped (its column is empty): {why}"));
    }
    for (side, r) in [("rustix", Some(ours)), ("Linux", theirs)] {
        for (op, why) in r.map_or(&[][..], |r| &r.failed[..]) {
            notes.push(format!("{side} {op} failed: {why}"));
        }
    }
    if !notes.is_empty() {
        t.push('\n');
        for n in notes {
            t.push_str(&n);
            t.push('\n');
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(op: &str, cycles: u64, kinds: &str) -> Row {
        Row { op: op.into(), cycles, kinds: kinds.into() }
    }

    #[test]
    fn parses_bench_lines_after_a_prompt() {
        let r = parse(
            "$ bench: getpid 1026\r\nbench: fork-exec-wait 16061584\r\nnoise\n\
             bench: spawn-exit-wait 900 pid,fs\n\
             bench: spawn-pid-exit-wait failed: clone(CLONE_NEWPID): Operation not permitted\n",
        );
        assert_eq!(
            r.rows,
            [
                row("getpid", 1026, ""),
                row("fork-exec-wait", 16061584, ""),
                row("spawn-exit-wait", 900, "pid,fs")
            ]
        );
        assert_eq!(
            r.failed,
            [(
                "spawn-pid-exit-wait".to_string(),
                "clone(CLONE_NEWPID): Operation not permitted".to_string()
            )]
        );
    }

    #[test]
    fn cpio_members_are_aligned_and_named() {
        let a = initramfs(b"BB", b"BENCH");
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        for name in ["bin/busybox", "init", "linux-bench", "TRAILER!!!"] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn table_ratio_and_kinds() {
        let ours = Results {
            rows: vec![row("getpid", 1000, ""), row("spawn-exit-wait", 300, "pid,fs")],
            failed: vec![],
        };
        let linux = Results {
            rows: vec![row("getpid", 500, ""), row("spawn-exit-wait", 100, "pid,mnt,net")],
            failed: vec![],
        };
        let t = markdown_table(&ours, &Peer::Ran(linux));
        assert!(t.contains("| getpid | 1000 | 500 | 2.00 |"), "{t}");
        assert!(
            t.contains("| spawn-exit-wait (rustix pid,fs; Linux pid,mnt,net) | 300 | 100 | 3.00 |"),
            "{t}"
        );
        assert!(t.contains("| pipe-pingpong | missing | missing | - |"), "{t}");
    }

    #[test]
    fn a_skipped_peer_and_a_failure_are_said() {
        let ours = Results {
            rows: vec![row("getpid", 1000, "")],
            failed: vec![("spawn-exit-wait".into(), "spawn(pid,fs): no space left".into())],
        };
        let t = markdown_table(&ours, &Peer::Skipped("no /bin/busybox".into()));
        assert!(t.contains("| getpid | 1000 | skipped | - |"), "{t}");
        assert!(t.contains("| spawn-exit-wait | failed | skipped | - |"), "{t}");
        assert!(t.contains("Linux peer skipped (its column is empty): no /bin/busybox"), "{t}");
        assert!(t.contains("rustix spawn-exit-wait failed: spawn(pid,fs): no space left"), "{t}");
    }
}
