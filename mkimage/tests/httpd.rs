//! The network from the host, as a user would use it: boot an image with the programs, start
//! servers at the guest's shell, and talk to them through QEMU's forwarded ports on
//! 127.0.0.1 with real clients (curl, and plain sockets for the echo servers). UDP reaches
//! the guest through mkimage's relay, as under `make run` (restricted slirp carries only TCP).

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{curl, kernel, ok, Forwards, STEP};
use mkimage::console::{Console, TempDir};
use mkimage::qemu::Options;
use mkimage::udprelay::MAX_PAYLOAD;

/// A fresh image with the programs in /bin and a 1 MiB file to serve.
fn image(name: &str) -> (TempDir, PathBuf) {
    common::image_with_programs(name, &[("/www/big.bin", random_bytes(5, 1 << 20))])
}

struct Guest {
    console: Console,
    http: u16,
    echo: u16,
    /// The host ports (TCP and UDP) of the guest ports; dropped after the console.
    fw: Forwards,
}

/// Boot with user networking (restrict=on, added by qemu.rs), free host ports forwarded to
/// guest ports 80 and 7 and to `more` (TCP through slirp, UDP through the relay); wait for
/// the shell. `design`: the kernel command line's network design (`""` is the default,
/// the event design; `"net=sleep"`, docs/06-async-vs-sleep.md).
fn boot_with(disk: &Path, more: &[u16], design: &str) -> Guest {
    let fw = Forwards::new(&[&[80, 7], more].concat());
    let mut opts = Options::new(kernel(), design);
    opts.disk = Some(disk.to_path_buf());
    opts.network = fw.network();
    let console = common::boot_to_shell(opts);
    Guest { console, http: fw.host(80), echo: fw.host(7), fw }
}

fn boot(disk: &Path, design: &str) -> Guest {
    boot_with(disk, &[], design)
}

impl Guest {
    fn run(&self, line: &str) -> String {
        common::run(&self.console, line)
    }

    /// `/proc/stat`: the kernel's event counters by name.
    fn stat(&self) -> std::collections::HashMap<String, u64> {
        let out = self.run("cat /proc/stat");
        let counters: std::collections::HashMap<String, u64> = out
            .lines()
            .filter_map(|l| {
                let (name, n) = l.trim().split_once(' ')?;
                Some((name.to_string(), n.parse().ok()?))
            })
            .collect();
        assert_eq!(counters.len(), 4, "/proc/stat:\n{out}");
        counters
    }

    fn poweroff(self) {
        common::poweroff(self.console);
    }
}

/// Wait (with a deadline, polling the real client) until the server answers.
fn wait_for_http(port: u16) {
    let deadline = std::time::Instant::now() + STEP;
    while curl(port, "/").0 == 0 {
        assert!(std::time::Instant::now() < deadline, "httpd never answered on {port}");
    }
}

common::both_designs!(
    httpd_serves_files_listings_and_errors_to_curl,
    sleep_design_httpd_serves_files_listings_and_errors_to_curl,
    httpd_serves_files_listings_and_errors_to_curl_on
);

fn httpd_serves_files_listings_and_errors_to_curl_on(design: &str) {
    let (_dir, img) = image(&format!("httpd{design}"));
    let g = boot(&img, design);
    g.run("httpd &");
    wait_for_http(g.http);

    let (code, body) = curl(g.http, "/index.html");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<html"), "{body}");
    let (code, body) = curl(g.http, "/docs/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("Index of /docs"), "no directory listing: {body}");
    let (code, body) = curl(g.http, "/no-such-file");
    assert_eq!(code, 404, "{body}");

    // /proc/stat's counters grow with the work: ten requests take interrupts (the NIC's),
    // polls of the stack, and wakeups of httpd.
    let before = g.stat();
    for _ in 0..10 {
        assert_eq!(curl(g.http, "/index.html").0, 200);
    }
    let after = g.stat();
    for name in ["interrupts", "context_switches", "wakeups", "stack_polls"] {
        assert!(after[name] >= before[name] + 10, "{name}: {before:?} then {after:?}");
        eprintln!("{design:?}: {name} per request: {}", (after[name] - before[name]) / 10);
    }

    // 50 connections at once, each answered in full.
    let children: Vec<_> = (0..50)
        .map(|_| {
            Command::new("curl")
                .args(["-s", "-m", "60", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://127.0.0.1:{}/index.html", g.http))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn curl")
        })
        .collect();
    let codes: Vec<String> = children
        .into_iter()
        .map(|c| String::from_utf8_lossy(&c.wait_with_output().unwrap().stdout).into_owned())
        .collect();
    assert!(codes.iter().all(|c| c == "200"), "not all 50 answered 200: {codes:?}");
    g.poweroff();
}

/// The counters explain the designs' difference (docs/06-async-vs-sleep.md): the sleep design
/// polls the stack in every system call that changes a socket and in every NIC interrupt,
/// where the event design's task folds them into fewer polls.
#[test]
fn designs_differ_in_stack_polls_per_request() {
    let polls = |design: &str| {
        let (_dir, img) = image(&format!("polls{design}"));
        let g = boot(&img, design);
        g.run("httpd &");
        wait_for_http(g.http);
        let before = g.stat();
        for _ in 0..20 {
            assert_eq!(curl(g.http, "/index.html").0, 200);
        }
        let after = g.stat();
        g.poweroff();
        after["stack_polls"] - before["stack_polls"]
    };
    let (event, sleep) = (polls(""), polls("net=sleep"));
    assert!(sleep > event, "stack polls for 20 requests: event {event}, sleep {sleep}");
}

fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    testkit::Rng::new(seed).bytes(len)
}

common::both_designs!(
    tcpecho_returns_every_byte,
    sleep_design_tcpecho_returns_every_byte,
    tcpecho_returns_every_byte_on
);

fn tcpecho_returns_every_byte_on(design: &str) {
    let (_dir, img) = image(&format!("echo{design}"));
    let g = boot(&img, design);
    g.run("tcpecho &");
    // TCP: payloads up to 1 MiB, compared byte for byte.
    let deadline = std::time::Instant::now() + STEP;
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", g.echo)) {
            Ok(s) => break s,
            Err(e) => assert!(std::time::Instant::now() < deadline, "tcpecho: {e}"),
        }
    };
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    for (i, len) in [1usize, 1000, 65_536, 1 << 20].into_iter().enumerate() {
        let data = random_bytes(i as u64 + 7, len);
        let mut back = vec![0u8; len];
        std::thread::scope(|s| {
            let mut w = stream.try_clone().unwrap();
            let writer = s.spawn(move || w.write_all(&data).map(|()| data));
            stream.read_exact(&mut back).expect("read the echo");
            let data = writer.join().unwrap().expect("write");
            assert!(back == data, "tcpecho changed a {len}-byte payload");
        });
    }
    drop(stream);
    g.poweroff();
}

common::both_designs!(
    udpecho_returns_every_datagram,
    sleep_design_udpecho_returns_every_datagram,
    udpecho_returns_every_datagram_on
);

/// UDP through the relay: random payloads from empty to the largest that fits one frame,
/// each echoed byte for byte, to two clients whose datagrams interleave.
fn udpecho_returns_every_datagram_on(design: &str) {
    let (_dir, img) = image(&format!("udpecho{design}"));
    let g = boot(&img, design);
    ok(g.console.send("udpecho &\n"));
    ok(g.console.expect("udpecho: listening on 0.0.0.0:7", STEP));
    let to = ("127.0.0.1", g.fw.host(7));
    let clients = [0, 1].map(|_| {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        c
    });
    let mut sizes = vec![0, 1, 2, 100, 512, 1000, MAX_PAYLOAD - 1, MAX_PAYLOAD];
    sizes.extend(
        random_bytes(3, 24)
            .chunks(2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])) % (MAX_PAYLOAD + 1)),
    );
    let mut buf = vec![0u8; 65536];
    for (i, &len) in sizes.iter().enumerate() {
        let c = &clients[i % 2];
        let data = random_bytes(100 + i as u64, len);
        c.send_to(&data, to).unwrap();
        let (n, from) = c.recv_from(&mut buf).unwrap_or_else(|e| {
            panic!("no echo of datagram {i} ({len} bytes): {e}\n{}", g.console.output())
        });
        assert_eq!(from.port(), g.fw.host(7), "the echo comes from the forwarded port");
        assert!(buf[..n] == data[..], "udpecho changed a {len}-byte datagram into {n} bytes");
    }
    g.poweroff();
}

common::both_designs!(
    forwarded_guest_ports_reach_their_own_servers,
    sleep_design_forwarded_guest_ports_reach_their_own_servers,
    forwarded_guest_ports_reach_their_own_servers_on
);

/// The forwards a test gives the ports containers publish (`make run`'s `PUBLISH_PORTS`): any
/// guest port, TCP and UDP, each from its own host port. Here the root's servers stand in for
/// the containers': httpd on 8081 and udpecho on 8082, both reached from the host.
fn forwarded_guest_ports_reach_their_own_servers_on(design: &str) {
    let (_dir, img) = image(&format!("forwards{design}"));
    let g = boot_with(&img, &[8081, 8082], design);
    g.run("httpd -q 8081 &");
    ok(g.console.send("udpecho 8082 &\n"));
    ok(g.console.expect("udpecho: listening on 0.0.0.0:8082", STEP));
    let web = g.fw.host(8081);
    wait_for_http(web);
    let (code, body) = curl(web, "/index.html");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<html"), "{body}");
    assert_eq!(curl(g.http, "/").0, 0, "nothing listens on guest port 80");
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let udp = g.fw.host(8082);
    c.send_to(b"to 8082", ("127.0.0.1", udp)).unwrap();
    let mut buf = [0u8; 2048];
    let (n, from) = c.recv_from(&mut buf).expect("udpecho's answer");
    assert_eq!((&buf[..n], from.port()), (&b"to 8082"[..], udp), "from its own host port");
    // The relay has a NIC of its own, which the guest uses for UDP only: the HTTP exchange
    // above never reached it (on a hub with the main NIC, QEMU copied it every frame).
    assert!(g.console.output().contains(": carries UDP"), "{}", g.console.output());
    let (frames, not_udp) = g.fw.relay.frames_seen();
    assert!(frames >= 1, "the echo came back through the relay");
    assert_eq!(not_udp, 0, "{not_udp} of the {frames} frames the relay saw were not UDP");
    g.poweroff();
}

common::both_designs!(
    guest_curl_reaches_httpd_over_loopback_and_its_own_address,
    sleep_design_guest_curl_reaches_httpd_over_loopback_and_its_own_address,
    guest_curl_reaches_httpd_over_loopback_and_its_own_address_on
);

fn guest_curl_reaches_httpd_over_loopback_and_its_own_address_on(design: &str) {
    let (_dir, img) = image(&format!("loopback{design}"));
    let g = boot(&img, design);
    g.run("httpd &");
    wait_for_http(g.http);
    for addr in ["127.0.0.1", "10.0.2.15"] {
        let out = g.run(&format!("curl {addr} /index.html > /got.html; wc < /got.html"));
        let (code, body) = curl(g.http, "/index.html");
        assert_eq!(code, 200);
        let bytes = body.len();
        assert!(
            out.lines().any(|l| l.split_whitespace().last() == Some(&bytes.to_string())),
            "guest curl via {addr} did not fetch {bytes} bytes:\n{out}"
        );
    }
    let out = g.run("arptest");
    assert!(out.contains("10.0.2.2 is at"), "{out}");
    g.poweroff();
}

common::both_designs!(
    httpd_survives_bad_clients,
    sleep_design_httpd_survives_bad_clients,
    httpd_survives_bad_clients_on
);

/// Bad clients never stop httpd: after each, a normal request is still answered.
fn httpd_survives_bad_clients_on(design: &str) {
    let (_dir, img) = image(&format!("badclients{design}"));
    let g = boot(&img, design);
    g.run("httpd &");
    wait_for_http(g.http);
    let still_serving = || assert_eq!(curl(g.http, "/index.html").0, 200, "httpd stopped");
    let idle = common::bad_clients(g.http, 1 << 20, &still_serving);
    drop(idle);
    g.poweroff();
}

/// Headless Chromium (Debian's) loads the directory listing from the guest: the rendered
/// DOM has the listing's title and a link per entry, and a screenshot is saved in
/// target/test-artifacts/ for a person to look at.
#[test]
fn chromium_renders_the_directory_listing() {
    let (_dir, img) = image("chromium");
    let g = boot(&img, "");
    g.run("httpd &");
    wait_for_http(g.http);
    let tmp = ok(TempDir::new("chromium"));
    let url = format!("http://127.0.0.1:{}/docs/", g.http);
    let chromium = |extra: &[String]| {
        let mut cmd = Command::new("chromium");
        cmd.args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"])
            .args(["--no-first-run", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", tmp.path().join("profile").display()))
            .args(extra)
            .arg(&url);
        common::run_with_deadline(cmd, b"", Duration::from_secs(120))
    };
    let (code, dom) = chromium(&["--dump-dom".to_string()]);
    assert_eq!(code, Some(0), "chromium failed:\n{dom}");
    assert!(dom.contains("<title>Index of /docs/</title>"), "no listing title in the DOM:\n{dom}");
    assert!(
        dom.contains("<a href=\"/docs/filesystem.html\">filesystem.html</a>"),
        "no link to the page in /docs:\n{dom}"
    );

    let artifacts = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("directory-listing.png");
    let _ = std::fs::remove_file(&shot);
    let (code, out) = chromium(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=800,600".to_string(),
    ]);
    assert_eq!(code, Some(0), "chromium screenshot failed:\n{out}");
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    g.poweroff();
}
