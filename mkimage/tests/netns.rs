//! Network namespaces end to end (issue 11): each container has its own TCP/IP stack,
//! `192.168.1.<id>` on the in-kernel bridge, its own loopback and ports, and the root
//! publishes container ports on the E1000's address. Typed at the guest's shell as a user
//! would, and driven from the host through QEMU's forwarded ports (always `restrict=on`).
//!
//! - [`containers_reach_each_other_and_keep_their_loopback`]: the usertests cases on network
//!   namespaces (bind rules, addresses seen, `publish`'s errors, ports freed at death); two
//!   containers running `httpd` with their own pages; `curl` from the root and from a third
//!   container at their addresses, `127.0.0.1` reaching a container's own httpd only.
//! - [`published_ports_answer_the_host`]: three containers, each `httpd` on port 80 with its
//!   own page (copied in with `nspcopy`), started with `spawn -p HOSTPORT:80` on three host
//!   ports; concurrent curls to all three each get their own page, then 50 concurrent clients
//!   per container, all three at once; a host port already published is refused to a fourth
//!   `spawn -p`; a container's `udpecho` published for UDP (`-p HOSTPORT:7/udp`) through the
//!   relay; httpd's hostile clients (as in httpd.rs) against one container while the other two
//!   keep serving; killing a container resets its connections and frees its port (the host's
//!   client is refused, not left hanging), and a new container publishes it at once.
//! - [`container_cycles_leave_no_memory_behind`]: containers that serve the host through a
//!   port published with `spawn -p` and are killed, 20 times: free frames come back within 1%.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, kernel, ok, parse_spawned, prompt, run, run_in, Forwards, STEP};
use mkimage::console::Console;
use mkimage::qemu::{HostForward, Network, Options};

/// How long an asynchronous effect (a container gone, a server up) may take to show.
const SETTLE: Duration = Duration::from_secs(30);

/// `spawn -d --pid --fs --net PROGRAM` at the root's shell: the namespace and its init.
fn spawn_detached(c: &Console, program: &str) -> (u32, u32) {
    spawn_detached_with(c, "--pid --fs --net", program)
}

/// `spawn -d FLAGS PROGRAM` at the root's shell: the namespace and its init.
fn spawn_detached_with(c: &Console, flags: &str, program: &str) -> (u32, u32) {
    common::spawn_detached(c, &format!("{flags} {program}"))
}

/// A container running httpd whose page says `page`: its id and init. httpd serves the
/// container's root (a fresh one has `/etc` and `/tmp`), whose `index.html` is copied in after
/// it started: until then it answers with a listing.
fn httpd_container(c: &Console, page: &str) -> (u32, u32) {
    let (id, init) = spawn_detached(c, "httpd -q 80 0.0.0.0 /");
    run(c, &format!("echo {page} > /{page}.html"));
    let out = run(c, &format!("nspcopy /{page}.html {id} /index.html"));
    assert!(!out.contains("nspcopy:"), "{out}");
    (id, init)
}

/// `curl URL` in the guest at the shell of `ns`, until its body is `want` (httpd may still be
/// starting).
fn guest_curl_until(c: &Console, ns: u32, url: &str, want: &str) {
    let end = Instant::now() + SETTLE;
    loop {
        let out = run_in(c, ns, &format!("curl -m 5 {url}"));
        if out.lines().any(|l| l.trim() == want) {
            return;
        }
        assert!(Instant::now() < end, "curl {url} in ns {ns} never gave {want:?}: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `curl URL` in the guest at the shell of `ns`, which must find nothing listening: curl's
/// "connection refused" (its status 7).
fn guest_curl_refused(c: &Console, ns: u32, url: &str) {
    let out = run_in(c, ns, &format!("curl -m 5 {url}"));
    assert!(out.contains("curl: (7)"), "curl {url} in ns {ns}: {out}");
}

/// Boots the image with a NIC on `network`.
fn boot(disk: &Path, network: Network) -> Console {
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(disk.to_path_buf());
    opts.network = network;
    common::boot_to_shell(opts)
}

/// Until namespace `id` is gone from the root's `/proc/ns`.
fn wait_gone(c: &Console, id: u32) {
    let end = Instant::now() + SETTLE;
    loop {
        let out = run(c, "cat /proc/ns");
        if !out.lines().any(|l| l.split_whitespace().next() == Some(&id.to_string())) {
            return;
        }
        assert!(Instant::now() < end, "ns {id} still in /proc/ns: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn containers_reach_each_other_and_keep_their_loopback() {
    let (_dir, img) = common::image_with_programs("netns-guest", &[]);
    let c = boot(&img, Network::user(vec![]));

    let out = run_in(
        &c,
        1,
        "usertests ns-flags netns-isolation netns-reach netns-publish; cat /proc/ifaces",
    );
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    assert!(!out.contains("skipped"), "{out}");
    assert!(out.contains("br0 52:54:00:12:34:56 192.168.1.1/24"), "{out}");

    let (a, _) = httpd_container(&c, "page-a");
    let (b, _) = httpd_container(&c, "page-b");
    // The root reaches each at its address, and its own 127.0.0.1 has no httpd.
    guest_curl_until(&c, 1, &format!("192.168.1.{a}"), "page-a");
    guest_curl_until(&c, 1, &format!("192.168.1.{b}"), "page-b");
    guest_curl_refused(&c, 1, "127.0.0.1");

    // A third container, with a shell: it reaches both, and its own loopback is its own.
    ok(c.send("spawn --pid --fs --net sh\n"));
    ok(c.expect("spawn: ns ", STEP));
    let line = ok(c.expect("\n", STEP));
    let (n, _) = parse_spawned(&line);
    ok(c.expect(prompt(n).trim_start(), STEP));
    guest_curl_until(&c, n, &format!("192.168.1.{a}"), "page-a");
    guest_curl_until(&c, n, &format!("http://192.168.1.{b}:80/"), "page-b");
    guest_curl_refused(&c, n, "127.0.0.1");
    run_in(&c, n, "mkdir /www; echo page-n > /www/index.html; httpd -q &");
    guest_curl_until(&c, n, "127.0.0.1", "page-n");
    guest_curl_until(&c, n, &format!("192.168.1.{n}"), "page-n");
    let out = run_in(&c, n, "cat /proc/ifaces; cat /proc/net");
    assert!(out.contains(&format!("eth0 02:00:00:00:01:{n:02x} 192.168.1.{n}/24")), "{out}");
    assert!(out.contains("tcp 0.0.0.0:80 0.0.0.0:0 LISTEN"), "{out}");
    // The root reaches it too; its 127.0.0.1 still has no httpd.
    ok(c.send("exit\n"));
    ok(c.expect(&prompt(1), STEP));
    guest_curl_until(&c, 1, &format!("192.168.1.{n}"), "page-n");
    guest_curl_refused(&c, 1, "127.0.0.1");
    // Every container's sockets, under its id, from the root.
    let out = run(&c, "cat /proc/netall");
    for id in [a, b, n] {
        assert!(out.contains(&format!("{id} tcp 0.0.0.0:80 0.0.0.0:0 LISTEN")), "{out}");
    }
    common::poweroff(c);
}

/// `spawn -d -p HOST:80 httpd` at the root's shell, as a user publishes a container's web
/// server, then its page (`page`) copied in with `nspcopy`: the namespace and its init.
/// httpd serves the container's root, whose `index.html` comes after it started: until then
/// it answers with a listing.
fn published_httpd(c: &Console, host: u16, page: &str) -> (u32, u32) {
    let (id, init) = spawn_detached_with(c, &format!("-p {host}:80"), "httpd -q 80 0.0.0.0 /");
    run(c, &format!("echo {page} > /{page}.html"));
    let out = run(c, &format!("nspcopy /{page}.html {id} /index.html"));
    assert!(!out.contains("nspcopy:"), "{out}");
    (id, init)
}

/// A GET of `/` on the host's `port`, raw HTTP/1.0: (status, body); (0, why) when nothing
/// answered within 20 s.
fn get(port: u16) -> (u16, String) {
    let mut s = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(s) => s,
        Err(e) => return (0, format!("connect: {e}")),
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if let Err(e) = s.write_all(b"GET / HTTP/1.0\r\n\r\n") {
        return (0, format!("write: {e}"));
    }
    let mut answer = Vec::new();
    if let Err(e) = s.read_to_end(&mut answer) {
        return (0, format!("read: {e}"));
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim().to_string();
    (status, body)
}

/// `n` curl processes at once to each of `ports` (a real client, as a user's): every one must
/// get the page of its port. The deadline is httpd.rs's: slirp takes the host's connections
/// one at a time, and those its listener's backlog cannot hold wait for the host's SYN
/// retransmissions, for tens of seconds in a burst (the root's httpd behaves the same).
fn concurrent_curls(c: &Console, n: usize, ports: &[(u16, &str)]) {
    let children: Vec<_> = (0..n)
        .flat_map(|_| ports.iter().copied())
        .map(|(port, page)| {
            let child = Command::new("curl")
                .args(["-s", "-m", "60", "-o", "-", "-w", "\n%{http_code}"])
                .arg(format!("http://127.0.0.1:{port}/"))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawn curl");
            (child, port, page)
        })
        .collect();
    for (i, (child, port, page)) in children.into_iter().enumerate() {
        let out = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", ""));
        assert_eq!(
            (code, body.trim()),
            ("200", page),
            "client {i} of port {port}:\n{}",
            c.output()
        );
    }
}

/// Until `port` on the host answers with `page`.
fn wait_for_page(c: &Console, port: u16, page: &str) {
    let end = Instant::now() + SETTLE;
    loop {
        let (status, body) = get(port);
        if status == 200 && body == page {
            return;
        }
        assert!(
            Instant::now() < end,
            "port {port} never answered {page:?} (last: {status} {body:?}):\n{}",
            c.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Until the root's `/proc/ns` lists exactly `ids` (and the root).
fn wait_namespaces(c: &Console, ids: &[u32]) {
    let end = Instant::now() + SETTLE;
    loop {
        let out = run(c, "cat /proc/ns");
        let mut seen: Vec<u32> = out
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .filter(|&id| id != 1)
            .collect();
        seen.sort_unstable();
        let mut want = ids.to_vec();
        want.sort_unstable();
        if seen == want {
            return;
        }
        assert!(Instant::now() < end, "/proc/ns is not the root and {ids:?}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The size of the big file that a container serves to the hostile clients.
const BIG: usize = 1 << 20;

#[test]
fn published_ports_answer_the_host() {
    let (_dir, img) = common::image_with_programs("netns-host", &[("/big.bin", vec![0x5a; BIG])]);
    // Host ports forwarded to the guest's 8081..8084, as `make run` does (TCP and UDP).
    let fw = Forwards::new(&[8081, 8082, 8083, 8084]);
    let (h1, h2, h3) = (fw.host(8081), fw.host(8082), fw.host(8083));
    let c = boot(&img, fw.network());

    // Three containers, each httpd on port 80 with its own page, published on three ports.
    let (a, init_a) = published_httpd(&c, 8081, "page-a");
    let (b, _) = published_httpd(&c, 8082, "page-b");
    let (d, _) = published_httpd(&c, 8083, "page-c");
    let out = run(&c, "cat /proc/ns; ps");
    for (id, host) in [(a, 8081), (b, 8082), (d, 8083)] {
        assert!(out.contains(&format!("192.168.1.{id} {host}:80/tcp")), "{out}");
        assert!(out.contains(&format!("ns {id} 192.168.1.{id} ports {host}:80/tcp")), "{out}");
    }
    let pages = [(h1, "page-a"), (h2, "page-b"), (h3, "page-c")];
    for (port, page) in pages {
        wait_for_page(&c, port, page);
    }

    // Concurrent clients to all three, each its own page: one each, then 50 each, all three
    // containers at once.
    concurrent_curls(&c, 1, &pages);
    let start = Instant::now();
    concurrent_curls(&c, 50, &pages);
    println!("150 clients (50 per container) answered in {:?}", start.elapsed());

    // A host port already published is refused to another container, which never runs.
    let out = run(&c, "spawn -d -p 8082:80 httpd -q 80 0.0.0.0 /");
    assert!(out.contains("spawn: publish 8082:80/tcp: address in use"), "{out}");
    assert!(!out.contains("spawn: ns "), "{out}");
    wait_namespaces(&c, &[a, b, d]);
    assert_eq!(get(h2), (200, "page-b".to_string()));

    // UDP: a container's udpecho published through the relay; the echo comes back.
    let (u, _) = spawn_detached_with(&c, "-p 8084:7/udp", "udpecho");
    // udpecho's "listening" line races spawn's return to the prompt: wait for its socket.
    let end = Instant::now() + SETTLE;
    let bound = |out: &str| {
        let want = [u.to_string(), "udp".into(), "0.0.0.0:7".into()];
        out.lines().any(|l| l.split_whitespace().take(3).eq(want.iter().map(String::as_str)))
    };
    while !bound(&run(&c, "cat /proc/netall")) {
        assert!(Instant::now() < end, "udpecho never bound in ns {u}:\n{}", c.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 2048];
    for i in 0..5u8 {
        let data = vec![i; 100 + usize::from(i) * 200];
        // The first may be lost while ARP runs: ask again, a few times.
        let echoed = (0..5).find_map(|_| {
            client.send_to(&data, ("127.0.0.1", fw.host(8084))).unwrap();
            client.recv_from(&mut buf).ok()
        });
        let (n, _) = echoed.unwrap_or_else(|| panic!("no echo of datagram {i}:\n{}", c.output()));
        assert!(buf[..n] == data[..], "datagram {i} came back changed");
    }
    run(&c, &format!("kill {}", init_of(&c, u)));
    wait_namespaces(&c, &[a, b, d]);

    // httpd's hostile clients against one container: after each, all three still serve.
    let out = run(&c, &format!("nspcopy /big.bin {a} /big.bin"));
    assert!(!out.contains("nspcopy:"), "{out}");
    let all_serve = || {
        for (port, page) in pages {
            assert_eq!(get(port), (200, page.to_string()), "port {port}:\n{}", c.output());
        }
    };
    drop(common::bad_clients(h1, BIG, &all_serve));

    // Killing a container resets its connections (the idle client hears of it, no waiting
    // for a timeout) and frees its published port: the host is refused there, the others
    // still serve, and a new container publishes it at once. The idle client connects just
    // before, well inside httpd's own idle timeout (5 s), which would close it too.
    let mut idle = TcpStream::connect(("127.0.0.1", h1)).expect("connect");
    run(&c, &format!("kill {init_a}"));
    wait_gone(&c, a);
    idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let start = Instant::now();
    let mut rest = Vec::new();
    let ended = idle.read_to_end(&mut rest);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the idle client waited {:?} ({ended:?})",
        start.elapsed()
    );
    assert_eq!(get(h1).0, 0, "the dead container's port still answers");
    assert_eq!(get(h2), (200, "page-b".to_string()));
    assert_eq!(get(h3), (200, "page-c".to_string()));
    published_httpd(&c, 8081, "page-a2");
    wait_for_page(&c, h1, "page-a2");
    concurrent_curls(&c, 5, &[(h1, "page-a2"), (h2, "page-b"), (h3, "page-c")]);
    common::poweroff(c);
}

/// The pid (as the root sees it) of namespace `id`'s init, from the root's `/proc/ns`.
fn init_of(c: &Console, id: u32) -> u32 {
    let out = run(c, "cat /proc/ns");
    out.lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first()? == &id.to_string()).then(|| w.get(3)?.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no ns {id} in /proc/ns: {out}"))
}

/// `frames_free` once no container is left (only the root in `/proc/ns`, nothing in `/ns`)
/// and it stays put between two looks.
fn quiet_frames(c: &Console) -> u64 {
    let frames = |c: &Console| {
        let out = run(c, "cat /proc/meminfo");
        out.lines()
            .find_map(|l| l.strip_prefix("frames_free ")?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no frames_free: {out}"))
    };
    let end = Instant::now() + SETTLE;
    loop {
        let ns = run(c, "cat /proc/ns");
        let roots = run(c, "ls /ns");
        let alone = ns.lines().filter(|l| l.contains("pid,fs,net")).count() == 1
            && !roots.lines().any(|l| l.trim().parse::<u32>().is_ok());
        let f = frames(c);
        if alone && frames(c) == f {
            return f;
        }
        assert!(Instant::now() < end, "not quiet after {SETTLE:?}: {ns}\n{roots}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn container_cycles_leave_no_memory_behind() {
    let (_dir, img) = common::image_with_programs("netns-cycles", &[]);
    let h1 = free_port();
    let c = boot(&img, Network::user(vec![HostForward::tcp(h1, 8081)]));
    // A container that serves the host through a port published with `spawn -p` (a few
    // clients at once), then is killed.
    let cycle = |i: usize| {
        let page = format!("cycle-{i}");
        let (id, init) = published_httpd(&c, 8081, &page);
        wait_for_page(&c, h1, &page);
        concurrent_curls(&c, 4, &[(h1, page.as_str())]);
        run(&c, &format!("kill {init}"));
        wait_gone(&c, id);
    };
    // Twice to warm the kernel's heap and caches up.
    cycle(0);
    cycle(1);
    let before = quiet_frames(&c);
    for i in 2..22 {
        cycle(i);
    }
    let after = quiet_frames(&c);
    println!("free frames: {before} before 20 containers, {after} after");
    assert!(
        after + before / 100 >= before,
        "free frames {before} before 20 containers, {after} after"
    );
    common::poweroff(c);
}
