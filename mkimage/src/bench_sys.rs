//! `mkimage bench-sys`: system-call costs in CPU cycles, our kernel against Linux, one run.
//!
//! Our side: the guest's `bench` program (user/src/bin/bench.rs) at the shell. Linux's side:
//! `linux-bench` (src/bin/linux-bench.rs, the same operations), linked statically and run as
//! part of an initramfs under Debian's kernel, in the same QEMU machine. Both print
//! `bench: <op> <cycles>`; the table shows the ratio ours / Linux (lower is better for us).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::build::{remove_outer_cargo_env, workspace_root};
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu;

pub const OPS: [&str; 3] = ["getpid", "fork-exec-wait", "pipe-pingpong"];
const DEADLINE: Duration = Duration::from_secs(300);

/// The `bench: <op> <cycles>` lines of some output.
pub fn parse(out: &str) -> Vec<(String, u64)> {
    out.lines()
        .filter_map(|l| {
            let mut w =
                l.trim().trim_start_matches("$ ").strip_prefix("bench: ")?.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

/// Our kernel: boot an image with the programs and run `bench` at the shell.
pub fn guest(kernel: &Path) -> Result<Vec<(String, u64)>> {
    let dir = TempDir::new("bench-sys")?;
    let img = dir.path().join("fs.img");
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &[])?;
    let mut opts = qemu::Options::new(kernel, "");
    opts.disk = Some(img);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("$ ", DEADLINE)?;
    c.send("bench\n")?;
    c.expect("bench: pipe-pingpong", DEADLINE)?;
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

/// One member of a newc ("070701") cpio archive.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let namesize = name.len() + 1;
    let fields = [ino, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, namesize as u32, 0];
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

const INIT: &str = "#!/bin/sh\nmount -t proc proc /proc\n/linux-bench\npoweroff -f\n";

/// An initramfs with busybox, `linux-bench` and an init that runs it and powers off.
pub fn initramfs(busybox: &[u8], bench: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    let (dir, file, link) = (0o040755, 0o100755, 0o120777);
    let mut ino = 1;
    let mut add = |a: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
        cpio_entry(a, ino, name, mode, data);
        ino += 1;
    };
    add(&mut a, "bin", dir, b"");
    add(&mut a, "proc", dir, b"");
    add(&mut a, "dev", dir, b"");
    add(&mut a, "bin/busybox", file, busybox);
    for tool in ["sh", "mount", "poweroff"] {
        add(&mut a, &format!("bin/{tool}"), link, b"busybox");
    }
    add(&mut a, "init", file, INIT.as_bytes());
    add(&mut a, "linux-bench", file, bench);
    add(&mut a, "TRAILER!!!", 0, b"");
    a
}

/// Debian's kernel image, if installed.
fn vmlinuz() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    v.sort();
    v.pop()
}

/// Linux: the peer kernel running `linux-bench`.
pub fn linux() -> Result<Vec<(String, u64)>> {
    let kernel = vmlinuz().ok_or_else(|| {
        Error::Other(
            "no /boot/vmlinuz-*: install Debian's linux-image-amd64 (make deps-bench)".into(),
        )
    })?;
    let busybox = fs::read("/bin/busybox").map_err(|_| {
        Error::Other("no /bin/busybox: install Debian's busybox-static (make deps-bench)".into())
    })?;
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
    if r.len() < OPS.len() {
        return Err(Error::Other(format!("the Linux peer printed no bench results:\n{text}")));
    }
    Ok(r)
}

/// The comparison as a markdown table.
pub fn markdown_table(ours: &[(String, u64)], linux: &[(String, u64)]) -> String {
    let get = |v: &[(String, u64)], op: &str| v.iter().find(|(n, _)| n == op).map(|(_, c)| *c);
    let mut t = String::from(
        "| cycles per operation | rustix | Linux | rustix / Linux |\n|---|---:|---:|---:|\n",
    );
    for op in OPS {
        match (get(ours, op), get(linux, op)) {
            (Some(a), Some(b)) => {
                t.push_str(&format!("| {op} | {a} | {b} | {:.2} |\n", a as f64 / b.max(1) as f64))
            }
            (a, b) => t.push_str(&format!("| {op} | {a:?} | {b:?} | - |\n")),
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines_after_a_prompt() {
        let r = parse("$ bench: getpid 1026\r\nbench: fork-exec-wait 16061584\r\nnoise\n");
        assert_eq!(r, [("getpid".to_string(), 1026), ("fork-exec-wait".to_string(), 16061584)]);
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
    fn table_ratio() {
        let ours = vec![("getpid".to_string(), 1000)];
        let linux = vec![("getpid".to_string(), 500)];
        assert!(markdown_table(&ours, &linux).contains("| getpid | 1000 | 500 | 2.00 |"));
    }
}
