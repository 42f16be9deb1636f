//! `mkimage bench-net`: our httpd against the Linux peer (`../shared/bench/linux-peer.sh`:
//! Debian's kernel with busybox httpd, same QEMU machine, e1000, user net with
//! restrict=on), measured with wrk from the host on 127.0.0.1, in one run: a small file at 1
//! and 32 connections, and a 1 MiB file. Also the host CPU an idle guest costs.
//! Load is bounded: each wrk run lasts a few seconds.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::build::workspace_root;
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu::{self, HostForward, Network};

/// The peer's small file, byte for byte (linux-peer.sh writes it as /www/index.html).
pub const SMALL: &[u8] = b"<html><body>hello from a container</body></html>\n";
const SECONDS: u32 = 5;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Wrk {
    pub requests_per_sec: f64,
    pub bytes_per_sec: f64,
}

/// The figures of wrk's report.
pub fn parse_wrk(out: &str) -> Option<Wrk> {
    let field = |name: &str| out.lines().find_map(|l| l.trim().strip_prefix(name).map(str::trim));
    let rps = field("Requests/sec:")?.parse().ok()?;
    let t = field("Transfer/sec:")?;
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(Wrk { requests_per_sec: rps, bytes_per_sec: num.parse::<f64>().ok()? * scale })
}

fn wrk(port: u16, path: &str, connections: u32) -> Result<Wrk> {
    let threads = connections.min(2);
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{SECONDS}s"), "--timeout", "10s"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .map_err(|e| Error::Other(format!("wrk (apt-get install wrk): {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_wrk(&text).ok_or_else(|| Error::Other(format!("no wrk figures:\n{text}")))
}

/// The three measurements against a server on `port` serving `small` and `big`.
fn measure(port: u16, small: &str, big: &str) -> Result<[Wrk; 3]> {
    Ok([wrk(port, small, 1)?, wrk(port, small, 32)?, wrk(port, big, 1)?])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Host CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Our guest: figures, and the idle guest's host CPU use in percent of one core.
pub fn ours(kernel: &Path) -> Result<([Wrk; 3], f64)> {
    let dir = TempDir::new("bench-net")?;
    let img = dir.path().join("fs.img");
    let extra = [("/www/small.html", SMALL.to_vec()), ("/www/1m.bin", vec![0u8; 1 << 20])];
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &extra)?;
    let port = free_port();
    let mut opts = qemu::Options::new(kernel, "");
    opts.disk = Some(img);
    opts.network = Network::user(vec![HostForward::tcp(port, 80)]);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("$ ", Duration::from_secs(60))?;
    c.send("httpd -q &\n")?;
    c.expect("\n$ ", Duration::from_secs(60))?;
    // Idle: nothing to do; how much host CPU does the guest take?
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(c.pid()).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(SECONDS as u64));
    let idle =
        (cpu_ticks(c.pid()).unwrap_or(0) - t0) as f64 / ticks_per_sec / SECONDS as f64 * 100.0;
    let figures = measure(port, "/small.html", "/1m.bin")?;
    c.send("poweroff\n")?;
    c.wait_exit(Duration::from_secs(60))?;
    Ok((figures, idle))
}

/// The Linux peer, started and stopped by its PID.
pub fn linux_peer() -> Result<[Wrk; 3]> {
    let script = workspace_root().join("../shared/bench/linux-peer.sh");
    let port = free_port();
    let out = Command::new("bash")
        .arg(&script)
        .args([port.to_string(), "300".to_string()])
        .output()
        .map_err(|e| Error::Other(format!("{}: {e}", script.display())))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let pid: i32 = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("pid=")?.parse().ok())
        .ok_or_else(|| Error::Other(format!("the Linux peer did not start:\n{text}")))?;
    let figures = measure(port, "/index.html", "/1m.bin");
    // SAFETY: kill(2) of the session the peer script started (its leader is `pid`).
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    figures
}

/// The comparison as a markdown table.
pub fn markdown_table(ours: &[Wrk; 3], linux: &[Wrk; 3], idle_percent: f64) -> String {
    let mut t = String::from(
        "| httpd (wrk, 5 s) | rustix | Linux peer | rustix / Linux |\n|---|---:|---:|---:|\n",
    );
    let rows = [
        ("small file, 1 connection (req/s)", 0, false),
        ("small file, 32 connections (req/s)", 1, false),
        ("1 MiB file, 1 connection (MB/s)", 2, true),
    ];
    for (what, i, bytes) in rows {
        let pick = |w: &Wrk| if bytes { w.bytes_per_sec / 1e6 } else { w.requests_per_sec };
        let (a, b) = (pick(&ours[i]), pick(&linux[i]));
        t.push_str(&format!("| {what} | {a:.1} | {b:.1} | {:.2} |\n", a / b.max(1e-9)));
    }
    t.push_str(&format!("\nIdle guest (httpd waiting): {idle_percent:.1}% of one host core.\n"));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:8080/\n  1 threads and 1 connections\n\
                   Requests/sec:    290.51\nTransfer/sec:     35.20MB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.requests_per_sec, 290.51);
        assert!((w.bytes_per_sec - 35.2 * 1024.0 * 1024.0).abs() < 1.0);
        assert!(parse_wrk("nothing").is_none());
    }
}
