//! `mkimage bench-ns`: our httpd against the Linux peer (`linux-peer.sh`, found as
//! [`crate::bench_net::linux_peer_script`] says: Debian's kernel with busybox httpd, same QEMU
//! machine, e1000, user net with restrict=on), measured with wrk from the host on 127.0.0.1,
//! in one run (`make bench-net` is the comparison of network designs, issue 13:
//! [`crate::bench_net`]):
//!
//! - one server: a small file at 1 and 32 connections, and a 1 MiB file; also the host CPU an
//!   idle guest costs;
//! - three servers at once (issue 11's cost of network namespaces): three containers, each
//!   `httpd` on port 80 published on its own host port (`spawn -p`), under three wrk at the
//!   same time (1, then 32 connections each), the total against the same three wrk on one
//!   httpd in the root namespace (the same offered load, no namespaces: the issue's
//!   comparison), on three httpd in the root namespace on ports 80, 81 and 82 (as many server
//!   processes as containers, no namespaces: what the namespaces alone cost), and against
//!   three Linux peers (the script serves one port per guest).
//!
//! The three layouts of our guest take turns, three rounds, and the best total of each is
//! kept (other load on this shared machine only lowers figures). Load is bounded: each wrk
//! run lasts a few seconds. Without the peer script (`SHARED_BENCH` or `LINUX_PEER` naming
//! another place, or no `../shared` next to the workspace) the Linux columns say what was
//! skipped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::bench_net::{linux_peer_script, parse_wrk, Wrk};
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu::{self, HostForward, Network};

/// The peer's small file, byte for byte (linux-peer.sh writes it as /www/index.html).
pub const SMALL: &[u8] = b"<html><body>hello from a container</body></html>\n";
const SECONDS: u32 = 5;
/// How many servers run at once in the namespaces' comparison (the three containers).
pub const SERVERS: usize = 3;
/// The guest ports the containers publish (`spawn -p 8081:80` ...), as under `make run`.
const PUBLISHED: [u16; SERVERS] = [8081, 8082, 8083];
/// How many times the three-server layouts take turns (the best of each is kept).
const ROUNDS: usize = 3;
/// The ports of the three httpd in the root namespace (the first is the one httpd's).
const ROOT_PORTS: [u16; SERVERS] = [80, 81, 82];
/// How long a guest step (boot, a command, a server coming up) may take.
const STEP: Duration = Duration::from_secs(60);

/// wrk against `http://127.0.0.1:PORT/PATH`, started (several run at once).
fn start_wrk(port: u16, path: &str, connections: u32, threads: u32) -> Result<Child> {
    Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{SECONDS}s"), "--timeout", "10s"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::Other(format!("wrk (apt-get install wrk): {e}")))
}

fn finish_wrk(child: Child) -> Result<Wrk> {
    let out = child.wait_with_output().map_err(|e| Error::Other(format!("wrk: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_wrk(&text).ok_or_else(|| Error::Other(format!("no wrk figures:\n{text}")))
}

fn wrk(port: u16, path: &str, connections: u32) -> Result<Wrk> {
    finish_wrk(start_wrk(port, path, connections, connections.min(2))?)
}

/// One wrk per port, all at once, `connections` each (one thread each: two cores feed three
/// wrk and the guests): each one's figures, in the order of `ports`.
fn wrk_at_once(ports: &[u16], path: &str, connections: u32) -> Result<Vec<Wrk>> {
    let children: Vec<Result<Child>> =
        ports.iter().map(|&p| start_wrk(p, path, connections, 1)).collect();
    // Wait for every one started before reporting a failure, so none outlives the run.
    let results: Vec<Result<Wrk>> = children.into_iter().map(|c| c.and_then(finish_wrk)).collect();
    results.into_iter().collect()
}

/// The three measurements against a server on `port` serving `small` and `big`.
fn measure(port: u16, small: &str, big: &str) -> Result<[Wrk; 3]> {
    Ok([wrk(port, small, 1)?, wrk(port, small, 32)?, wrk(port, big, 1)?])
}

/// Three servers at once (one per port), the small file at 1 and then 32 connections each.
fn measure_at_once(ports: &[u16], small: &str) -> Result<Many> {
    Ok(Many { one: wrk_at_once(ports, small, 1)?, many: wrk_at_once(ports, small, 32)? })
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Host CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The host CPU that process `pid` takes over [`SECONDS`], in percent of one core.
fn idle_percent(pid: u32) -> f64 {
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(pid).unwrap_or(0);
    std::thread::sleep(Duration::from_secs(SECONDS as u64));
    cpu_ticks(pid).unwrap_or(0).saturating_sub(t0) as f64 / ticks_per_sec / SECONDS as f64 * 100.0
}

/// Until a GET of `path` on the host's `port` answers 200 with `body`.
pub(crate) fn wait_for_body(port: u16, path: &str, body: &[u8]) -> Result<()> {
    let end = Instant::now() + STEP;
    loop {
        let answer = (|| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).ok()?;
            let mut all = Vec::new();
            s.read_to_end(&mut all).ok()?;
            Some(all)
        })()
        .unwrap_or_default();
        if answer.starts_with(b"HTTP/1.0 200") && answer.ends_with(body) {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(Error::Other(format!("port {port} never served {path}")));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Several servers under wrk at once: each server's figures, small file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Many {
    /// 1 connection each.
    pub one: Vec<Wrk>,
    /// 32 connections each.
    pub many: Vec<Wrk>,
}

impl Many {
    fn total(w: &[Wrk]) -> f64 {
        w.iter().map(|w| w.requests_per_sec).sum()
    }

    /// Keep, for each number of connections, whichever of its figures and `other`'s has the
    /// higher total.
    fn keep_best(&mut self, other: Many) {
        if self.one.is_empty() || Self::total(&other.one) > Self::total(&self.one) {
            self.one = other.one;
        }
        if self.many.is_empty() || Self::total(&other.many) > Self::total(&self.many) {
            self.many = other.many;
        }
    }
}

/// What our guest measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ours {
    /// One httpd in the root namespace, one wrk: small file at 1 and 32 connections, 1 MiB.
    pub single: [Wrk; 3],
    /// Host CPU of the idle guest (root httpd waiting), percent of one core.
    pub idle: f64,
    /// The same, with two more root httpd and the three containers' httpd waiting too.
    pub idle_containers: f64,
    /// Three wrk at once on the root's one httpd.
    pub root: Many,
    /// Three wrk at once, one per httpd of three in the root namespace (ports 80, 81, 82).
    pub root3: Many,
    /// Three wrk at once, one per container's published port.
    pub containers: Many,
}

/// Types `line` at the root's shell; what it printed up to the next prompt.
pub(crate) fn run(c: &Console, line: &str) -> Result<String> {
    c.send(format!("{line}\n"))?;
    c.expect("\n$ ", STEP)
}

/// Our guest: one httpd in the root namespace, then three containers' httpd beside it.
pub fn ours(kernel: &Path) -> Result<Ours> {
    let dir = TempDir::new("bench-net")?;
    let img = dir.path().join("fs.img");
    let extra = [("/www/small.html", SMALL.to_vec()), ("/www/1m.bin", vec![0u8; 1 << 20])];
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &extra)?;
    // A host port to each root httpd's port, and one to each container's published port.
    let root_ports: Vec<u16> = (0..SERVERS).map(|_| free_port()).collect();
    let published: Vec<u16> = (0..SERVERS).map(|_| free_port()).collect();
    let mut forwards: Vec<HostForward> =
        root_ports.iter().zip(ROOT_PORTS).map(|(&h, g)| HostForward::tcp(h, g)).collect();
    forwards.extend(published.iter().zip(PUBLISHED).map(|(&h, g)| HostForward::tcp(h, g)));
    let mut opts = qemu::Options::new(kernel, "");
    opts.disk = Some(img);
    opts.network = Network::user(forwards);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("$ ", STEP)?;
    run(&c, "httpd -q &")?;
    wait_for_body(root_ports[0], "/small.html", SMALL)?;
    // Idle: nothing to do; how much host CPU does the guest take?
    let idle = idle_percent(c.pid());
    let single = measure(root_ports[0], "/small.html", "/1m.bin")?;

    // Two more httpd in the root namespace (as many server processes as containers), and
    // three containers, each httpd on its port 80 serving the same file, published. All
    // wait together, so that the three layouts can take turns under load.
    for port in &ROOT_PORTS[1..] {
        run(&c, &format!("httpd -q {port} &"))?;
    }
    for guest_port in PUBLISHED {
        let out = run(&c, &format!("spawn -d -p {guest_port}:80 httpd -q 80 0.0.0.0 /"))?;
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("spawn: ns ")?.split_whitespace().next())
            .ok_or_else(|| Error::Other(format!("spawn -p {guest_port}:80: {out}")))?;
        let out = run(&c, &format!("nspcopy /www/small.html {id} /small.html"))?;
        if out.contains("nspcopy:") {
            return Err(Error::Other(out));
        }
    }
    for &port in root_ports[1..].iter().chain(&published) {
        wait_for_body(port, "/small.html", SMALL)?;
    }
    let idle_containers = idle_percent(c.pid());
    // The layouts in turn, [`ROUNDS`] times, the best total of each kept: other load on the
    // host only ever lowers a figure, and it comes and goes.
    let layouts = [vec![root_ports[0]; SERVERS], root_ports.clone(), published.clone()];
    let mut best: [Many; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (b, ports) in best.iter_mut().zip(&layouts) {
            let m = measure_at_once(ports, "/small.html")?;
            b.keep_best(m);
        }
    }
    let [root, root3, containers] = best;
    c.send("poweroff\n")?;
    c.wait_exit(STEP)?;
    Ok(Ours { single, idle, idle_containers, root, root3, containers })
}

/// The Linux peer's figures, or why there are none.
#[derive(Clone, Debug, PartialEq)]
pub enum Peer {
    Ran { single: Box<[Wrk; 3]>, many: Many },
    Skipped(String),
}

/// One Linux peer guest serving on the host's `port`; its PID (its session's leader).
fn start_peer(script: &Path, port: u16) -> Result<i32> {
    let out = Command::new("bash")
        .arg(script)
        .args([port.to_string(), "300".to_string()])
        .output()
        .map_err(|e| Error::Other(format!("{}: {e}", script.display())))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("pid=")?.parse().ok())
        .ok_or_else(|| Error::Other(format!("the Linux peer did not start:\n{text}")))
}

fn stop_peer(pid: i32) {
    // SAFETY: kill(2) of the session the peer script started (its leader is `pid`).
    unsafe { libc::kill(-pid, libc::SIGTERM) };
}

/// The Linux peer: one guest for the one-server figures, then two more started beside it for
/// the three at once (the script serves one port per guest), each stopped by its PID.
pub fn linux_peer() -> Result<Peer> {
    let script = linux_peer_script();
    if !script.is_file() {
        return Ok(Peer::Skipped(format!("no peer script at {}", script.display())));
    }
    let ports: Vec<u16> = (0..SERVERS).map(|_| free_port()).collect();
    // The first alone: it builds the peer's initramfs, which the others then share.
    let first = start_peer(&script, ports[0])?;
    let mut pids = vec![first];
    let figures = (|| {
        let single = measure(ports[0], "/index.html", "/1m.bin")?;
        let others: Vec<_> = ports[1..]
            .iter()
            .map(|&p| {
                let script = script.clone();
                std::thread::spawn(move || start_peer(&script, p))
            })
            .collect();
        let started: Vec<Result<i32>> = others
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(Error::Other("peer thread".into()))))
            .collect();
        // Every one that started is stopped below, even if another did not start.
        pids.extend(started.iter().filter_map(|r| r.as_ref().ok().copied()));
        for r in started {
            r?;
        }
        let many = measure_at_once(&ports, "/index.html")?;
        Ok(Peer::Ran { single: Box::new(single), many })
    })();
    for pid in pids {
        stop_peer(pid);
    }
    figures
}

/// The one-server comparison as a markdown table.
pub fn markdown_table(ours: &Ours, linux: &Peer) -> String {
    let mut t = String::from(
        "| httpd (wrk, 5 s) | rustix | Linux peer | rustix / Linux |\n|---|---:|---:|---:|\n",
    );
    let rows = [
        ("small file, 1 connection (req/s)", 0, false),
        ("small file, 32 connections (req/s)", 1, false),
        ("1 MiB file, 1 connection (MB/s)", 2, true),
    ];
    let peer = match linux {
        Peer::Ran { single, .. } => Some(single),
        Peer::Skipped(_) => None,
    };
    for (what, i, bytes) in rows {
        let pick = |w: &Wrk| if bytes { w.bytes_per_sec / 1e6 } else { w.requests_per_sec };
        let a = pick(&ours.single[i]);
        match peer {
            Some(l) => {
                let b = pick(&l[i]);
                t.push_str(&format!("| {what} | {a:.1} | {b:.1} | {:.2} |\n", a / b.max(1e-9)));
            }
            None => t.push_str(&format!("| {what} | {a:.1} | skipped | - |\n")),
        }
    }
    t.push_str(&format!(
        "\nIdle guest (httpd waiting): {:.1}% of one host core; with two more root httpd and \
         three containers' httpd waiting too: {:.1}%.\n",
        ours.idle, ours.idle_containers
    ));
    t
}

/// The three-servers comparison (issue 11) as a markdown table: totals of the three wrk, the
/// ratios, and each server's share.
pub fn markdown_table_many(ours: &Ours, linux: &Peer) -> String {
    let mut t = String::from(
        "| 3 servers at once (3 wrk, 5 s; req/s, total) | rustix: 3 containers | \
         rustix: 1 root httpd | containers / 1 root httpd | rustix: 3 root httpd | \
         containers / 3 root httpd | Linux peer: 3 guests | containers / Linux |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let peer = match linux {
        Peer::Ran { many, .. } => Some(many),
        Peer::Skipped(_) => None,
    };
    type Pick = fn(&Many) -> &Vec<Wrk>;
    let rows: [(&str, Pick); 2] = [
        ("small file, 1 connection each", |m| &m.one),
        ("small file, 32 connections each", |m| &m.many),
    ];
    let ratio = |a: f64, b: f64| a / b.max(1e-9);
    for (what, pick) in rows {
        let c = Many::total(pick(&ours.containers));
        let r = Many::total(pick(&ours.root));
        let r3 = Many::total(pick(&ours.root3));
        let linux = match peer {
            Some(l) => {
                let l = Many::total(pick(l));
                format!("{l:.1} | {:.2}", ratio(c, l))
            }
            None => "skipped | -".into(),
        };
        t.push_str(&format!(
            "| {what} | {c:.1} | {r:.1} | {:.2} | {r3:.1} | {:.2} | {linux} |\n",
            ratio(c, r),
            ratio(c, r3)
        ));
    }
    let each = |m: &Many| {
        let one = |w: &[Wrk]| {
            w.iter().map(|w| format!("{:.0}", w.requests_per_sec)).collect::<Vec<_>>().join("/")
        };
        format!("{}; {}", one(&m.one), one(&m.many))
    };
    t.push_str(&format!(
        "\nEach wrk's req/s (1 connection; 32 connections): containers {}; 1 root httpd {}; \
         3 root httpd {}",
        each(&ours.containers),
        each(&ours.root),
        each(&ours.root3)
    ));
    if let Some(l) = peer {
        t.push_str(&format!("; Linux peers {}", each(l)));
    }
    t.push_str(".\n");
    if let Peer::Skipped(why) = linux {
        t.push_str(&format!("\nThe Linux peer was skipped: {why}.\n"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(rps: f64) -> Wrk {
        Wrk { requests_per_sec: rps, bytes_per_sec: rps * 100.0, ..Default::default() }
    }

    fn ours() -> Ours {
        Ours {
            single: [
                w(100.0),
                w(300.0),
                Wrk { requests_per_sec: 10.0, bytes_per_sec: 20e6, ..Default::default() },
            ],
            idle: 1.0,
            idle_containers: 1.5,
            root: Many { one: vec![w(100.0); 3], many: vec![w(200.0); 3] },
            root3: Many { one: vec![w(90.0); 3], many: vec![w(150.0); 3] },
            containers: Many { one: vec![w(90.0); 3], many: vec![w(190.0), w(200.0), w(210.0)] },
        }
    }

    #[test]
    fn tables_with_the_peer() {
        let peer = Peer::Ran {
            single: Box::new([
                w(200.0),
                w(600.0),
                Wrk { requests_per_sec: 10.0, bytes_per_sec: 40e6, ..Default::default() },
            ]),
            many: Many { one: vec![w(150.0); 3], many: vec![w(300.0); 3] },
        };
        let t = markdown_table(&ours(), &peer);
        assert!(t.contains("| small file, 1 connection (req/s) | 100.0 | 200.0 | 0.50 |"), "{t}");
        assert!(t.contains("| 1 MiB file, 1 connection (MB/s) | 20.0 | 40.0 | 0.50 |"), "{t}");
        let t = markdown_table_many(&ours(), &peer);
        assert!(
            t.contains(
                "| small file, 1 connection each | 270.0 | 300.0 | 0.90 | 270.0 | 1.00 | 450.0 \
                 | 0.60 |"
            ),
            "{t}"
        );
        assert!(
            t.contains(
                "| small file, 32 connections each | 600.0 | 600.0 | 1.00 | 450.0 | 1.33 | 900.0 \
                 | 0.67 |"
            ),
            "{t}"
        );
        assert!(t.contains("containers 90/90/90; 190/200/210; 1 root httpd"), "{t}");
    }

    #[test]
    fn tables_without_the_peer() {
        let peer = Peer::Skipped("no peer script at /x".into());
        let t = markdown_table(&ours(), &peer);
        assert!(t.contains("| small file, 32 connections (req/s) | 300.0 | skipped | - |"), "{t}");
        let t = markdown_table_many(&ours(), &peer);
        assert!(t.contains("| 270.0 | 300.0 | 0.90 | 270.0 | 1.00 | skipped | - |"), "{t}");
        assert!(t.contains("The Linux peer was skipped: no peer script at /x."), "{t}");
    }
}
