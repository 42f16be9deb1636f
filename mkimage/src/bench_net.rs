//! `mkimage bench-net`: the network design of this kernel against sleep-based designs (issue
//! 13), in one run, one system after the other on the same machine:
//!
//! - rustix with its async design (the default), and with the sleep/wakeup design (`net=sleep`
//!   on the kernel command line; a kernel without it says `cmdline: ignoring unknown option
//!   'net=sleep'` and runs the async design: the table then labels that column so);
//! - the xv6+lwIP peer (`xv6-peer.sh`: a C xv6 whose lwIP blocks with sleep/wakeup; it serves
//!   one connection at a time);
//! - Linux with busybox httpd, and Linux with nginx without and with keep-alive
//!   (`linux-peer.sh`, `PEER_SERVER=nginx PEER_KEEPALIVE=0|1`).
//!
//! For each: wrk (`--latency`) on the small file at [`CONNECTIONS`] for [`SECONDS`] each,
//! p50 and p99 latency at each, MB/s on the 1 MiB file, and the host CPU of the idle guest;
//! for our two designs also the kernel's event counters (`/proc/stat`, read at the guest's
//! shell before and after each run) per request wrk counted. Every run is bounded; the whole
//! benchmark takes about five minutes. Tables are printed as markdown, ratios against our
//! async design; the charts go to `target/bench/` ([`crate::bench_chart`]).
//!
//! The peer scripts live outside this repository: in `$SHARED_BENCH` if set, else in
//! `../shared/bench` next to the workspace (`LINUX_PEER` may still name the Linux one alone).
//! A system whose script is missing or fails is reported as skipped, with the reason; the
//! others stand.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::bench_chart::{self, Series};
use crate::bench_ns::{free_port, run, wait_for_body, SMALL};
use crate::build::workspace_root;
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu::{self, Attach, FramePort, HostForward, Network};
use crate::udprelay::UdpRelay;

/// The numbers of connections of the small-file sweep.
pub const CONNECTIONS: [u32; 5] = [1, 8, 32, 64, 128];
/// How long each wrk run lasts, and how long the idle guest is watched.
pub const SECONDS: u32 = 3;
/// What the kernel prints when it does not know the sleep design's option.
pub const IGNORED_SLEEP: &str = "ignoring unknown option 'net=sleep'";
/// How long a guest step (boot, a command, a server coming up) may take.
const STEP: Duration = Duration::from_secs(60);

/// What one wrk run reported.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Wrk {
    pub requests_per_sec: f64,
    pub bytes_per_sec: f64,
    /// Requests completed in the run (`N requests in ...`).
    pub requests: u64,
    /// Latency percentiles in seconds (`--latency`), when wrk printed them.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    /// Socket errors (connect, read, write, timeout) and non-2xx/3xx answers, added up.
    pub errors: u64,
}

/// A duration as wrk prints it (`812.00us`, `10.12ms`, `1.02s`, `1.00m`, `2.00h`), in seconds.
pub fn parse_wrk_duration(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// A size as wrk prints it (`273.76KB`, `1.13MB`, `12B`), in bytes (wrk's units are binary).
fn parse_wrk_bytes(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let scale = match unit {
        "B" => 1.0,
        "KB" => 1024.0,
        "MB" => 1024.0 * 1024.0,
        "GB" => 1024.0 * 1024.0 * 1024.0,
        "TB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(num.parse::<f64>().ok()? * scale)
}

/// The figures of wrk's report; `None` without its two closing lines.
pub fn parse_wrk(out: &str) -> Option<Wrk> {
    let field = |name: &str| out.lines().find_map(|l| l.trim().strip_prefix(name).map(str::trim));
    let rps: f64 = field("Requests/sec:")?.parse().ok()?;
    let bytes_per_sec = parse_wrk_bytes(field("Transfer/sec:")?)?;
    let percentile =
        |p: &str| field(p).and_then(|v| v.split_whitespace().next()).and_then(parse_wrk_duration);
    let requests =
        out.lines().find_map(|l| l.trim().split_once(" requests in ")?.0.parse().ok()).unwrap_or(0);
    // "Socket errors: connect 0, read 5, write 0, timeout 0": every number after a word.
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| v.split([',', ' ']).filter_map(|w| w.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let bad_status: u64 =
        field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    // A run that completed nothing prints latencies of 0: not a figure.
    let served = |p: Option<f64>| p.filter(|_| requests > 0);
    Some(Wrk {
        requests_per_sec: rps,
        bytes_per_sec,
        requests,
        p50: served(percentile("50%")),
        p99: served(percentile("99%")),
        errors: socket_errors + bad_status,
    })
}

/// wrk --latency on `http://127.0.0.1:PORT/PATH` for [`SECONDS`].
pub fn wrk(port: u16, path: &str, connections: u32) -> Result<Wrk> {
    let out = Command::new("wrk")
        .args(["-t", &connections.min(2).to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{SECONDS}s"), "--timeout", "5s", "--latency"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| Error::Other(format!("wrk (apt-get install wrk): {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_wrk(&text).ok_or_else(|| Error::Other(format!("no wrk figures:\n{text}")))
}

/// The kernel's event counters, as `/proc/stat` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    pub interrupts: u64,
    pub context_switches: u64,
    pub wakeups: u64,
    pub stack_polls: u64,
}

/// The counters' names in `/proc/stat`, in the order of [`Counters::values`].
pub const COUNTER_NAMES: [&str; 4] = ["interrupts", "context_switches", "wakeups", "stack_polls"];

impl Counters {
    fn values(&self) -> [u64; 4] {
        [self.interrupts, self.context_switches, self.wakeups, self.stack_polls]
    }

    /// Each counter's growth from `self` to `later`, per request of `requests`.
    pub fn per_request(&self, later: &Counters, requests: u64) -> [f64; 4] {
        let (a, b) = (self.values(), later.values());
        std::array::from_fn(|i| b[i].saturating_sub(a[i]) as f64 / requests.max(1) as f64)
    }
}

/// `/proc/stat` (a `name value` line per counter), found in `text` (what the shell printed,
/// the echoed command included); `None` unless all four counters are there.
pub fn parse_stat(text: &str) -> Option<Counters> {
    let mut v: [Option<u64>; 4] = [None; 4];
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if let Some(i) = COUNTER_NAMES.iter().position(|&n| n == name) {
            v[i] = Some(value.parse().ok()?);
        }
    }
    Some(Counters {
        interrupts: v[0]?,
        context_switches: v[1]?,
        wakeups: v[2]?,
        stack_polls: v[3]?,
    })
}

fn read_stat(c: &Console) -> Result<Counters> {
    let out = run(c, "cat /proc/stat")?;
    parse_stat(&out).ok_or_else(|| Error::Other(format!("no counters in /proc/stat: {out}")))
}

/// The systems compared, in the order of the tables (the first is the anchor of the ratios).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    Async,
    Sleep,
    Xv6,
    LinuxBusybox,
    LinuxNginx,
    LinuxNginxKeepAlive,
}

pub const SYSTEMS: [System; 6] = [
    System::Async,
    System::Sleep,
    System::Xv6,
    System::LinuxBusybox,
    System::LinuxNginx,
    System::LinuxNginxKeepAlive,
];

impl System {
    pub fn label(self) -> &'static str {
        match self {
            System::Async => "rustix async",
            System::Sleep => "rustix sleep",
            System::Xv6 => "xv6 + lwIP",
            System::LinuxBusybox => "Linux busybox httpd",
            System::LinuxNginx => "Linux nginx",
            System::LinuxNginxKeepAlive => "Linux nginx keep-alive",
        }
    }
}

/// One point of the small-file sweep.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Point {
    pub connections: u32,
    pub wrk: Wrk,
    /// Our designs only: interrupts, context switches, wakeups, stack polls per request.
    pub per_request: Option<[f64; 4]>,
}

/// What one system measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Measured {
    /// The column's name: the system's label, unless the run says otherwise (a kernel that
    /// ignored `net=sleep`).
    pub label: String,
    pub points: Vec<Point>,
    /// The 1 MiB file at one connection.
    pub big: Wrk,
    /// Host CPU of the idle guest, percent of one core.
    pub idle: f64,
}

/// A system's figures, or why there are none.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ran(Measured),
    Skipped(String),
}

/// One column of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub system: System,
    pub outcome: Outcome,
}

impl Column {
    fn label(&self) -> &str {
        match &self.outcome {
            Outcome::Ran(m) => &m.label,
            Outcome::Skipped(_) => self.system.label(),
        }
    }

    fn measured(&self) -> Option<&Measured> {
        match &self.outcome {
            Outcome::Ran(m) => Some(m),
            Outcome::Skipped(_) => None,
        }
    }
}

/// Host CPU time (user + system) of process `pid` and all its descendants, in clock ticks
/// (a peer script's PID may be a `timeout` whose child is the QEMU).
fn tree_ticks(pid: u32) -> u64 {
    let own = (|| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let after = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    })()
    .unwrap_or(0);
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().filter_map(|w| w.parse().ok()).collect::<Vec<_>>())
        .collect();
    own + children.into_iter().map(tree_ticks).sum::<u64>()
}

/// The host CPU that process `pid` (and its descendants) takes over [`SECONDS`], in percent
/// of one core.
fn idle_percent(pid: u32) -> f64 {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let t0 = tree_ticks(pid);
    std::thread::sleep(Duration::from_secs(SECONDS.into()));
    tree_ticks(pid).saturating_sub(t0) as f64 / ticks_per_sec / f64::from(SECONDS) * 100.0
}

/// The 1 MiB file, then the small-file sweep (in that order: a server that the largest
/// numbers of connections overwhelm, like xv6's, still gets its 1 MiB figure); `counters`
/// is read around each small-file run, if the system has any.
fn sweep(
    port: u16,
    small: &str,
    big: &str,
    connections: &[u32],
    mut counters: impl FnMut() -> Result<Option<Counters>>,
) -> Result<(Vec<Point>, Wrk)> {
    let big = wrk(port, big, 1)?;
    let mut points = Vec::new();
    for &connections in connections {
        let before = counters()?;
        let w = wrk(port, small, connections)?;
        let after = counters()?;
        let per_request = before.zip(after).map(|(b, a)| b.per_request(&a, w.requests));
        eprintln!(
            "mkimage: bench-net:   {connections} connections: {:.0} req/s",
            w.requests_per_sec
        );
        points.push(Point { connections, wrk: w, per_request });
    }
    Ok((points, big))
}

/// How our guest's NIC is wired to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// Plain restricted user networking: TCP forwards only, no UDP from the host.
    Plain,
    /// `make run`'s before: the UDP relay on a QEMU hub with the NIC, copied every frame.
    RelayOnHub,
    /// `make run`'s: the UDP relay on a second NIC of its own, which the guest uses for UDP.
    RelayOnOwnNic,
}

impl Wiring {
    pub const ALL: [Wiring; 3] = [Wiring::Plain, Wiring::RelayOnHub, Wiring::RelayOnOwnNic];

    pub fn label(self) -> &'static str {
        match self {
            Wiring::Plain => "plain user networking (no UDP)",
            Wiring::RelayOnHub => "UDP relay on the NIC's hub (before)",
            Wiring::RelayOnOwnNic => "UDP relay on its own NIC (`make run`)",
        }
    }
}

/// Our guest, in the async design or the sleep one (`net=sleep`), its NIC wired as `wiring`:
/// the 1 MiB file and the small file at each of `connections`.
pub fn ours(
    kernel: &Path,
    system: System,
    wiring: Wiring,
    connections: &[u32],
) -> Result<Measured> {
    let cmdline = if system == System::Sleep { "net=sleep" } else { "" };
    let dir = TempDir::new("bench-net")?;
    let img = dir.path().join("fs.img");
    let extra = [("/www/small.html", SMALL.to_vec()), ("/www/1m.bin", vec![0u8; 1 << 20])];
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &extra)?;
    let port = free_port();
    let mut opts = qemu::Options::new(kernel, cmdline);
    opts.disk = Some(img);
    let forwards = vec![HostForward::tcp(port, 80)];
    // Lives until the guest is off: `make run` forwards the echo port's UDP this way.
    let relay = match wiring {
        Wiring::Plain => None,
        _ => Some(UdpRelay::start(0, 7).map_err(|e| Error::io("the UDP relay", e))?),
    };
    let frames = relay.as_ref().map(|r| match wiring {
        Wiring::RelayOnHub => FramePort { attach: Attach::Hub, ..r.frame_port() },
        _ => r.frame_port(),
    });
    opts.network = Network::User { forwards, frames };
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    let boot = c.expect("$ ", STEP)?;
    let label = if system == System::Sleep && boot.contains(IGNORED_SLEEP) {
        "rustix net=sleep (ignored: async)".to_string()
    } else {
        system.label().to_string()
    };
    run(&c, "httpd -q &")?;
    wait_for_body(port, "/small.html", SMALL)?;
    let idle = idle_percent(c.pid());
    let (points, big) =
        sweep(port, "/small.html", "/1m.bin", connections, || read_stat(&c).map(Some))?;
    c.send("poweroff\n")?;
    c.wait_exit(STEP)?;
    Ok(Measured { label, points, big, idle })
}

/// The connections of the wiring comparison.
pub const WIRING_CONNECTIONS: [u32; 2] = [1, 32];

/// One row of the wiring comparison: a design, a wiring, its figures (or why none).
pub struct WiringRow {
    pub system: System,
    pub wiring: Wiring,
    pub outcome: Result<Measured>,
}

/// Lever 1 of the speed work: what the UDP relay costs TCP, each design under each
/// [`Wiring`], at [`WIRING_CONNECTIONS`] and on the 1 MiB file.
pub fn measure_wirings(kernel: &Path) -> Vec<WiringRow> {
    let mut rows = Vec::new();
    for system in [System::Async, System::Sleep] {
        for wiring in Wiring::ALL {
            eprintln!("mkimage: bench-net: {}, {}", system.label(), wiring.label());
            let outcome = ours(kernel, system, wiring, &WIRING_CONNECTIONS);
            rows.push(WiringRow { system, wiring, outcome });
        }
    }
    rows
}

/// The wiring comparison as markdown, each figure with its ratio to plain user networking in
/// the same design (1.00: the relay costs TCP nothing).
pub fn wirings_markdown(rows: &[WiringRow]) -> String {
    let mut t = String::from(
        "| design | NIC wiring | small file, 1 connection (req/s) | 32 connections (req/s) | \
         1 MiB (MB/s) |\n|---|---|---:|---:|---:|\n",
    );
    let figures = |m: &Measured| -> Vec<f64> {
        let mut v: Vec<f64> = m.points.iter().map(|p| p.wrk.requests_per_sec).collect();
        v.push(m.big.bytes_per_sec / 1e6);
        v
    };
    for row in rows {
        t.push_str(&format!("| {} | {} |", row.system.label(), row.wiring.label()));
        let plain = rows
            .iter()
            .find(|r| r.system == row.system && r.wiring == Wiring::Plain)
            .and_then(|r| r.outcome.as_ref().ok())
            .map(figures);
        match &row.outcome {
            Ok(m) => {
                for (i, v) in figures(m).into_iter().enumerate() {
                    let base = plain.as_ref().and_then(|p| p.get(i).copied()).unwrap_or(0.0);
                    t.push_str(&format!(" {v:.1} ({}) |", ratio(v, base)));
                }
            }
            Err(e) => t.push_str(&format!(" failed: {e} | | |")),
        }
        t.push('\n');
    }
    t
}

/// Where the peer scripts are: `$SHARED_BENCH`, else `../shared/bench` next to the workspace.
pub fn shared_bench() -> PathBuf {
    std::env::var_os("SHARED_BENCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/bench"))
}

/// The Linux peer's script: `$LINUX_PEER` if set, else `linux-peer.sh` in [`shared_bench`].
pub fn linux_peer_script() -> PathBuf {
    std::env::var_os("LINUX_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_bench().join("linux-peer.sh"))
}

/// A peer guest started by its script; stopped (by the PID the script printed) when dropped.
pub struct PeerGuest {
    pub pid: i32,
}

impl PeerGuest {
    /// Runs `script PORT TTL` with `env`; its `READY pid=N` line gives the guest's PID.
    pub fn start(script: &Path, port: u16, env: &[(&str, &str)]) -> Result<PeerGuest> {
        let out = Command::new("bash")
            .arg(script)
            .args([port.to_string(), "300".to_string()])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::Other(format!("{}: {e}", script.display())))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let pid = text
            .lines()
            .filter(|l| l.starts_with("READY"))
            .flat_map(str::split_whitespace)
            .find_map(|w| w.strip_prefix("pid=")?.parse().ok())
            .filter(|&pid: &i32| pid > 0);
        match pid {
            Some(pid) => Ok(PeerGuest { pid }),
            None => Err(Error::Other(format!(
                "{} did not start: {}{}",
                script.display(),
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }
}

impl Drop for PeerGuest {
    fn drop(&mut self) {
        // The PID is a session leader (linux-peer.sh: the `timeout` of `setsid timeout qemu`,
        // whose group holds the QEMU) or the QEMU itself (xv6-peer.sh): the group if there is
        // one, else the process.
        // SAFETY: kill(2) on a PID the peer script printed for us to stop; no memory involved.
        if unsafe { libc::kill(-self.pid, libc::SIGTERM) } != 0 {
            // SAFETY: as above.
            unsafe { libc::kill(self.pid, libc::SIGTERM) };
        }
    }
}

/// A peer system: its script (and environment) started on a free port, measured, stopped.
pub fn peer(system: System) -> Outcome {
    let (script, env): (PathBuf, &[(&str, &str)]) = match system {
        System::Xv6 => (shared_bench().join("xv6-peer.sh"), &[]),
        System::LinuxBusybox => (linux_peer_script(), &[("PEER_SERVER", "busybox")]),
        System::LinuxNginx => {
            (linux_peer_script(), &[("PEER_SERVER", "nginx"), ("PEER_KEEPALIVE", "0")])
        }
        System::LinuxNginxKeepAlive => {
            (linux_peer_script(), &[("PEER_SERVER", "nginx"), ("PEER_KEEPALIVE", "1")])
        }
        System::Async | System::Sleep => return Outcome::Skipped("not a peer".into()),
    };
    if !script.is_file() {
        return Outcome::Skipped(format!(
            "no script at {} (set SHARED_BENCH to the folder of the peer scripts)",
            script.display()
        ));
    }
    let measured = (|| {
        let port = free_port();
        let guest = PeerGuest::start(&script, port, env)?;
        let idle = idle_percent(guest.pid as u32);
        let (points, big) = sweep(port, "/index.html", "/1m.bin", &CONNECTIONS, || Ok(None))?;
        drop(guest);
        Ok::<_, Error>(Measured { label: system.label().into(), points, big, idle })
    })();
    measured.map_or_else(|e| Outcome::Skipped(format!("it failed: {e}")), Outcome::Ran)
}

/// Every system in turn; our designs first. A system that fails is skipped, not fatal.
pub fn measure_all(kernel: &Path) -> Vec<Column> {
    SYSTEMS
        .iter()
        .map(|&system| {
            eprintln!("mkimage: bench-net: {}", system.label());
            let outcome = match system {
                System::Async | System::Sleep => {
                    ours(kernel, system, Wiring::RelayOnOwnNic, &CONNECTIONS)
                        .map_or_else(|e| Outcome::Skipped(format!("it failed: {e}")), Outcome::Ran)
                }
                _ => peer(system),
            };
            if let Outcome::Skipped(why) = &outcome {
                eprintln!("mkimage: bench-net: {} is skipped: {why}", system.label());
            }
            Column { system, outcome }
        })
        .collect()
}

/// `a / b` as a table cell.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

fn ms(s: Option<f64>) -> String {
    s.map_or("-".into(), |s| format!("{:.1}", s * 1e3))
}

/// The comparison as markdown: requests/s, p50 and p99 latency against the connections (each
/// cell with the ratio of our async design to that system), the 1 MiB file and idle CPU,
/// then our designs' counters per request, and what was skipped.
pub fn markdown(columns: &[Column]) -> String {
    let anchor = columns.iter().find(|c| c.system == System::Async).and_then(Column::measured);
    let mut t = String::new();
    let header = |t: &mut String, what: &str| {
        t.push_str(&format!("| {what} |"));
        for c in CONNECTIONS {
            t.push_str(&format!(" {c} |"));
        }
        t.push_str("\n|---|");
        t.push_str(&"---:|".repeat(CONNECTIONS.len()));
        t.push('\n');
    };
    type Pick = fn(&Wrk) -> Option<f64>;
    type Show = fn(Option<f64>) -> String;
    let tables: [(&str, Pick, Show); 3] = [
        (
            "requests/s (async / this: above 1, ours serves more)",
            |w| Some(w.requests_per_sec),
            |v| format!("{:.0}", v.unwrap_or(0.0)),
        ),
        ("p50 latency, ms (async / this: below 1, ours answers sooner)", |w| w.p50, ms),
        ("p99 latency, ms (async / this: below 1, ours answers sooner)", |w| w.p99, ms),
    ];
    for (what, pick, show) in tables {
        header(&mut t, &format!("small file, {what}; connections:"));
        for col in columns {
            t.push_str(&format!("| {} |", col.label()));
            for (i, _) in CONNECTIONS.iter().enumerate() {
                let cell = match col.measured().and_then(|m| m.points.get(i)) {
                    None => " skipped |".to_string(),
                    Some(p) => {
                        let v = pick(&p.wrk);
                        let base = anchor.and_then(|a| a.points.get(i)).and_then(|p| pick(&p.wrk));
                        let r = match (base, v) {
                            (Some(a), Some(b)) => format!(" ({})", ratio(a, b)),
                            _ => String::new(),
                        };
                        let errors = if p.wrk.errors > 0 {
                            format!(", {} errors", p.wrk.errors)
                        } else {
                            String::new()
                        };
                        format!(" {}{r}{errors} |", show(v))
                    }
                };
                t.push_str(&cell);
            }
            t.push('\n');
        }
        t.push('\n');
    }

    t.push_str(
        "| system | 1 MiB file, 1 connection (MB/s) | async / this | idle guest (% of a host core) |\n\
         |---|---:|---:|---:|\n",
    );
    for col in columns {
        match col.measured() {
            Some(m) => {
                let mb = m.big.bytes_per_sec / 1e6;
                let base = anchor.map_or(0.0, |a| a.big.bytes_per_sec / 1e6);
                t.push_str(&format!(
                    "| {} | {mb:.1} | {} | {:.1} |\n",
                    col.label(),
                    ratio(base, mb),
                    m.idle
                ));
            }
            None => t.push_str(&format!("| {} | skipped | - | skipped |\n", col.label())),
        }
    }

    let ours: Vec<&Column> = columns
        .iter()
        .filter(|c| matches!(c.system, System::Async | System::Sleep) && c.measured().is_some())
        .collect();
    if !ours.is_empty() {
        t.push_str(
            "\n| per request (small file) | connections | interrupts | context switches | \
             wakeups | stack polls |\n|---|---:|---:|---:|---:|---:|\n",
        );
        for col in ours {
            for p in col.measured().map_or(&[][..], |m| &m.points) {
                if let Some(v) = p.per_request {
                    t.push_str(&format!(
                        "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                        col.label(),
                        p.connections,
                        v[0],
                        v[1],
                        v[2],
                        v[3]
                    ));
                }
            }
        }
    }
    let mut notes = String::new();
    for col in columns {
        if let Outcome::Skipped(why) = &col.outcome {
            notes.push_str(&format!("- {} was skipped: {why}\n", col.label()));
        }
        if col.label() != col.system.label() && col.system == System::Sleep {
            notes.push_str(&format!(
                "- `net=sleep` was not taken by this kernel (`cmdline: {IGNORED_SLEEP}`): the \
                 column \"{}\" is the async design again.\n",
                col.label()
            ));
        }
    }
    if !notes.is_empty() {
        t.push('\n');
        t.push_str(&notes);
    }
    t
}

/// The two charts' series: requests/s and p99 latency (ms) against connections, one per
/// system that ran.
pub fn chart_series(columns: &[Column]) -> (Vec<Series>, Vec<Series>) {
    let series = |pick: fn(&Wrk) -> Option<f64>| -> Vec<Series> {
        columns
            .iter()
            .filter_map(|c| {
                let m = c.measured()?;
                let points = m
                    .points
                    .iter()
                    .filter_map(|p| Some((f64::from(p.connections), pick(&p.wrk)?)))
                    .collect();
                Some(Series { label: m.label.clone(), points })
            })
            .collect()
    };
    (series(|w| Some(w.requests_per_sec)), series(|w| w.p99.map(|s| s * 1e3)))
}

/// Today's date (UTC) as YYYY-MM-DD, for the charts' captions.
pub fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    civil_date(days)
}

/// The civil date of `days` since 1970-01-01 (Howard Hinnant's days-to-civil algorithm).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Writes `target/bench/bench-net-rps.svg` and `bench-net-p99.svg`; their paths.
pub fn write_charts(columns: &[Column]) -> Result<[PathBuf; 2]> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let (rps, p99) = chart_series(columns);
    let date = today();
    let rps_path = dir.join("bench-net-rps.svg");
    let p99_path = dir.join("bench-net-p99.svg");
    bench_chart::write_svg(
        &rps_path,
        &format!("httpd, small file: requests/s (wrk, {SECONDS} s a point; {date})"),
        "requests/s",
        &rps,
    )?;
    bench_chart::write_svg(
        &p99_path,
        &format!("httpd, small file: p99 latency (wrk --latency; {date})"),
        "p99 latency (ms)",
        &p99,
    )?;
    Ok([rps_path, p99_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_LATENCY: &str = "Running 3s test @ http://127.0.0.1:18765/index.html
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.72ms    1.65ms  12.07ms   78.62%
    Req/Sec     1.51k   170.99     1.78k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.46ms
     90%    5.16ms
     99%    1.20s 
  4500 requests in 3.00s, 273.93KB read
  Socket errors: connect 0, read 5, write 1, timeout 2
  Non-2xx or 3xx responses: 3
Requests/sec:   1499.10
Transfer/sec:    273.76KB
";

    #[test]
    fn parses_wrk_latency_output() {
        let w = parse_wrk(WRK_LATENCY).unwrap();
        assert_eq!(w.requests_per_sec, 1499.10);
        assert!((w.bytes_per_sec - 273.76 * 1024.0).abs() < 1e-6);
        assert_eq!(w.requests, 4500);
        assert!((w.p50.unwrap() - 812e-6).abs() < 1e-12);
        assert!((w.p99.unwrap() - 1.2).abs() < 1e-12);
        assert_eq!(w.errors, 5 + 1 + 2 + 3);
    }

    #[test]
    fn parses_wrk_without_latency_or_errors() {
        let out = "Running 5s test @ http://127.0.0.1:8080/\n  1 threads and 1 connections\n\
                   1451 requests in 5.00s, 50.0MB read\n\
                   Requests/sec:    290.51\nTransfer/sec:     35.20MB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.requests_per_sec, 290.51);
        assert!((w.bytes_per_sec - 35.2 * 1024.0 * 1024.0).abs() < 1.0);
        assert_eq!((w.requests, w.p50, w.p99, w.errors), (1451, None, None, 0));
        // Nothing served: wrk prints latencies of 0, which are no figures.
        let none = "  Latency Distribution\n     50%    0.00us\n     99%    0.00us\n\
                    0 requests in 3.00s, 0.00B read\n\
                    Socket errors: connect 0, read 0, write 0, timeout 4549\n\
                    Requests/sec:      0.00\nTransfer/sec:       0.00B\n";
        let w = parse_wrk(none).unwrap();
        assert_eq!((w.requests, w.p50, w.p99, w.errors), (0, None, None, 4549));
        assert!(parse_wrk("nothing").is_none());
        assert!(parse_wrk("Requests/sec: 1\nTransfer/sec: 2XB\n").is_none());
    }

    #[test]
    fn parses_wrk_durations() {
        let near = |s: &str, want: f64| {
            let got = parse_wrk_duration(s).unwrap();
            assert!((got - want).abs() <= want * 1e-12, "{s}: {got} != {want}");
        };
        near("10.00ms", 0.01);
        near("2.00s", 2.0);
        near("1.50m", 90.0);
        near("1.00h", 3600.0);
        near("5.00us", 5e-6);
        for bad in ["", "ms", "12", "1.0xs", "-1.00ms", "nanms"] {
            assert_eq!(parse_wrk_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_proc_stat_as_the_shell_prints_it() {
        let text = "cat /proc/stat\r\ninterrupts 120\r\ncontext_switches 45\r\nwakeups 30\r\n\
                    stack_polls 77\r\n";
        let c = parse_stat(text).unwrap();
        assert_eq!(
            c,
            Counters { interrupts: 120, context_switches: 45, wakeups: 30, stack_polls: 77 }
        );
        let later =
            Counters { interrupts: 320, context_switches: 145, wakeups: 80, stack_polls: 477 };
        assert_eq!(c.per_request(&later, 100), [2.0, 1.0, 0.5, 4.0]);
        // A counter that went backwards (a reboot between reads) counts as no growth.
        assert_eq!(later.per_request(&c, 0), [0.0; 4]);
        assert_eq!(parse_stat("interrupts 1\nwakeups 2\n"), None, "missing counters");
        assert_eq!(
            parse_stat("interrupts x\ncontext_switches 1\nwakeups 2\nstack_polls 3\n"),
            None
        );
    }

    fn measured(label: &str, rps: f64, p99_ms: f64) -> Measured {
        Measured {
            label: label.into(),
            points: CONNECTIONS
                .iter()
                .map(|&connections| Point {
                    connections,
                    wrk: Wrk {
                        requests_per_sec: rps,
                        bytes_per_sec: rps * 100.0,
                        requests: (rps * 3.0) as u64,
                        p50: Some(p99_ms / 2e3),
                        p99: Some(p99_ms / 1e3),
                        errors: 0,
                    },
                    per_request: None,
                })
                .collect(),
            big: Wrk { bytes_per_sec: 20e6, ..Default::default() },
            idle: 1.5,
        }
    }

    fn columns() -> Vec<Column> {
        let mut ours = measured("rustix async", 2000.0, 10.0);
        ours.points[0].per_request = Some([3.0, 4.0, 2.0, 6.5]);
        let mut linux = measured("Linux busybox httpd", 500.0, 40.0);
        linux.points[4].wrk.errors = 7;
        vec![
            Column { system: System::Async, outcome: Outcome::Ran(ours) },
            Column {
                system: System::Sleep,
                outcome: Outcome::Ran(measured("rustix net=sleep (ignored: async)", 1000.0, 20.0)),
            },
            Column { system: System::Xv6, outcome: Outcome::Skipped("no script at /x".into()) },
            Column { system: System::LinuxBusybox, outcome: Outcome::Ran(linux) },
        ]
    }

    #[test]
    fn tables_have_ratios_against_async_and_say_what_was_skipped() {
        let t = markdown(&columns());
        assert!(t.contains("| rustix async | 2000 (1.00) | 2000 (1.00) |"), "{t}");
        assert!(t.contains("| Linux busybox httpd | 500 (4.00) |"), "{t}");
        assert!(t.contains("500 (4.00), 7 errors |\n"), "{t}");
        assert!(t.contains("| Linux busybox httpd | 40.0 (0.25) |"), "{t}");
        assert!(t.contains("| xv6 + lwIP | skipped | skipped |"), "{t}");
        assert!(t.contains("| Linux busybox httpd | 20.0 | 1.00 | 1.5 |"), "{t}");
        assert!(t.contains("| rustix async | 1 | 3.00 | 4.00 | 2.00 | 6.50 |"), "{t}");
        assert!(t.contains("- xv6 + lwIP was skipped: no script at /x"), "{t}");
        assert!(t.contains("`net=sleep` was not taken by this kernel"), "{t}");
    }

    #[test]
    fn chart_series_one_per_system_that_ran() {
        let (rps, p99) = chart_series(&columns());
        let labels: Vec<&str> = rps.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            ["rustix async", "rustix net=sleep (ignored: async)", "Linux busybox httpd"]
        );
        assert_eq!(rps[0].points[0], (1.0, 2000.0));
        assert_eq!(p99[2].points[4], (128.0, 40.0));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(20_791), "2026-12-04");
    }
}
