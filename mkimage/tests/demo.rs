//! The container list, the boot script and `make demo` (issue 12), typed at the guest's shell
//! as a user would and driven from the host through forwarded ports (always `restrict=on`).
//!
//! - [`a_failing_boot_script_does_not_stop_the_boot`]: `/etc/rc` with a missing program, a
//!   parse error, a failing command and `exit 3`: its output shows, init reports its status,
//!   the shell starts and answers.
//! - [`ns_lists_and_stops_containers`]: `ns` after `spawn` and `spawn -p` (ids, kinds, inits,
//!   addresses, published ports); `ns stop ID` ends a container (its port stops answering the
//!   host, the other keeps serving) and waits until it is gone; the errors of `ns` and of a
//!   name nobody has.
//! - [`the_demo_serves_three_pages`]: `make demo`'s image (`mkimage image --demo`): its
//!   `/etc/rc` starts web1..web3 at boot; the three URLs answer the host with three different
//!   pages; `ns` lists them by name; `ns stop web2` ends one; `nspcopy` by name. Needs
//!   `spawn --name` (`spawn2`, 49).
//! - [`ns_exec_and_names_across_containers`]: `ns exec` runs a program inside a container
//!   (by id and by name), is refused from a sibling, and `ns` shows the console in front.
//!   Needs `nsenter` (45), `spawn --name` (`spawn2`, 49) and the consoles' `front` column.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{curl, kernel, ok, prompt, run, run_in, spawn_detached, Forwards, STEP};
use mkimage::console::Console;
use mkimage::image::DEMO_FILES;
use mkimage::qemu::{Network, Options};

/// How long an asynchronous effect (a container gone, a server up) may take to show.
const SETTLE: Duration = Duration::from_secs(30);

/// `ns`'s table as rows of (column name -> cell), by the header's names.
fn ns_table(out: &str) -> Vec<HashMap<String, String>> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("ID "));
    let head: Vec<&str> =
        lines.next().unwrap_or_else(|| panic!("no header:\n{out}")).split_whitespace().collect();
    assert_eq!(
        head,
        [
            "ID", "NAME", "PARENT", "KINDS", "INIT", "PROCS", "MEM", "LIMIT", "ADDR", "PORTS",
            "FRONT"
        ],
        "{out}"
    );
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .take_while(|cells| cells.len() == head.len() && cells[0].parse::<u32>().is_ok())
        .map(|cells| head.iter().zip(cells).map(|(h, c)| (h.to_string(), c.to_string())).collect())
        .collect()
}

/// The row of namespace `id` in `ns`'s output.
fn ns_row(out: &str, id: u32) -> HashMap<String, String> {
    ns_table(out)
        .into_iter()
        .find(|r| r["ID"] == id.to_string())
        .unwrap_or_else(|| panic!("ns {id} is not listed:\n{out}"))
}

/// Until the host's `port` answers `/` with 200 and a body containing `want` (a container's
/// httpd may still be starting); the body.
fn wait_for_page(c: &Console, port: u16, want: &str) -> String {
    let end = Instant::now() + SETTLE;
    loop {
        let (status, body) = curl(port, "/");
        if status == 200 && body.contains(want) {
            return body;
        }
        assert!(
            Instant::now() < end,
            "port {port} never answered with {want:?} (last: {status} {body:?}):\n{}",
            c.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Boots `disk` with a NIC on restricted user networking and `forwards`, to the shell.
fn boot(disk: &Path, forwards: &Forwards) -> Console {
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(disk.to_path_buf());
    opts.network = forwards.network();
    common::boot_to_shell(opts)
}

#[test]
fn a_failing_boot_script_does_not_stop_the_boot() {
    let rc = "echo rc: started\n\
              nosuchprogram --flag\n\
              echo 'an unterminated quote\n\
              cat /no/such/file\n\
              echo rc: still running\n\
              exit 3\n\
              echo rc: after exit\n";
    let (_dir, img) = common::image_with_programs("rc-fails", &[("/etc/rc", rc.into())]);
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(img);
    let c = common::spawn_with(opts);
    ok(c.expect("init: running /etc/rc", common::BOOT));
    ok(c.expect("rc: started", STEP));
    ok(c.expect("sh: nosuchprogram:", STEP));
    ok(c.expect("cat: /no/such/file", STEP));
    ok(c.expect("rc: still running", STEP));
    ok(c.expect("init: /etc/rc exited with status 3", STEP));
    ok(c.expect("init: starting sh", STEP));
    ok(c.expect("$ ", STEP));
    let out = run(&c, "echo the shell answers");
    assert!(out.contains("the shell answers"), "{out}");
    assert!(!c.output().contains("rc: after exit"), "{}", c.output());
    common::poweroff(c);
}

#[test]
fn ns_lists_and_stops_containers() {
    let (_dir, img) = common::image_with_programs("ns-list", &[]);
    let f = Forwards::new(&[8081, 8082]);
    let c = boot(&img, &f);

    // No container yet: the root alone.
    let out = run(&c, "ns");
    let rows = ns_table(&out);
    assert_eq!(rows.len(), 1, "{out}");
    let root = &rows[0];
    assert_eq!((root["ID"].as_str(), root["PARENT"].as_str()), ("1", "-"), "{out}");
    assert_eq!((root["INIT"].as_str(), root["KINDS"].as_str()), ("1", "pid,fs,net"), "{out}");
    assert_eq!(root["ADDR"], "192.168.1.1", "{out}");

    let (a, init_a) = spawn_detached(&c, "-p 8081:80 httpd -q 80 0.0.0.0 /");
    let (b, init_b) = spawn_detached(&c, "-p 8082:80 httpd -q 80 0.0.0.0 /");
    let (p, init_p) = spawn_detached(&c, "--pid sleep 1000000");
    for (id, page) in [(a, "page-a"), (b, "page-b")] {
        let out =
            run(&c, &format!("echo {page} > /{page}.html; nspcopy /{page}.html {id} /index.html"));
        assert!(!out.contains("nspcopy:"), "{out}");
    }
    assert_eq!(wait_for_page(&c, f.host(8081), "page-a").trim(), "page-a");
    assert_eq!(wait_for_page(&c, f.host(8082), "page-b").trim(), "page-b");

    let out = run(&c, "ns");
    assert_eq!(ns_table(&out).len(), 4, "{out}");
    for (id, init, port) in [(a, init_a, 8081), (b, init_b, 8082)] {
        let row = ns_row(&out, id);
        assert_eq!(row["PARENT"], "1", "{out}");
        assert_eq!(row["KINDS"], "pid,fs,net", "{out}");
        assert_eq!(row["INIT"], init.to_string(), "{out}");
        assert_eq!(row["ADDR"], format!("192.168.1.{id}"), "{out}");
        assert_eq!(row["PORTS"], format!("{port}:80/tcp"), "{out}");
        assert_eq!(row["NAME"], "-", "{out}");
    }
    // Only a pid namespace: no address, no port.
    let row = ns_row(&out, p);
    assert_eq!((row["KINDS"].as_str(), row["INIT"].as_str()), ("pid", &*init_p.to_string()));
    assert_eq!((row["ADDR"].as_str(), row["PORTS"].as_str()), ("-", "-"), "{out}");

    // Mistakes: clear errors, nothing stopped.
    for (line, says) in [
        ("ns stop 1", "ns: ns 1: the root namespace cannot be stopped"),
        ("ns stop 42", "ns: ns 42: no such namespace here"),
        ("ns stop nosuch", "ns: nosuch: no such namespace"),
        ("ns stop Web!", "ns: Web!: no such namespace"),
        ("ns frobnicate", "usage: ns"),
        ("ns exec 2", "usage: ns"),
        ("nspcopy /etc/motd nosuch", "nspcopy: nosuch: no such namespace"),
    ] {
        let out = run(&c, line);
        assert!(out.contains(says), "{line}: {out}");
    }
    assert_eq!(ns_table(&run(&c, "ns")).len(), 4);

    // Stopping one: gone from the list when `ns stop` returns, its port no longer answers,
    // the other container still serves.
    let out = run(&c, &format!("ns stop {a}"));
    assert!(out.contains(&format!("ns: stopped ns {a}")), "{out}");
    let out = run(&c, "ns");
    assert!(ns_table(&out).iter().all(|r| r["ID"] != a.to_string()), "{out}");
    assert_eq!(curl(f.host(8081), "/").0, 0, "the stopped container's port still answers");
    assert_eq!(curl(f.host(8082), "/"), (200, "page-b\n".into()));
    let out = run(&c, &format!("ns stop {p}; ns"));
    assert!(out.contains(&format!("ns: stopped ns {p}")), "{out}");
    let ids: Vec<String> = ns_table(&out).into_iter().map(|r| r["ID"].clone()).collect();
    assert_eq!(ids, ["1".to_string(), b.to_string()], "{out}");
    common::poweroff(c);
}

/// `make demo`'s image: the standard one with the programs and `mkimage image --demo`'s files.
fn demo_image() -> (mkimage::console::TempDir, std::path::PathBuf) {
    let files: Vec<(&str, Vec<u8>)> =
        DEMO_FILES.iter().map(|(path, text)| (*path, text.as_bytes().to_vec())).collect();
    common::image_with_programs("demo", &files)
}

#[test]
fn the_demo_serves_three_pages() {
    let (_dir, img) = demo_image();
    let f = Forwards::new(&[8081, 8082, 8083]);
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(img);
    opts.network = f.network();
    let c = common::spawn_with(opts);
    // The script runs before the shell and prints the URLs.
    ok(c.expect("init: running /etc/rc", common::BOOT));
    for port in [8081, 8082, 8083] {
        ok(c.expect(&format!("  http://127.0.0.1:{port}/"), STEP));
    }
    ok(c.expect("init: starting sh", STEP));
    ok(c.expect("$ ", STEP));
    let boot = c.output();
    assert!(!boot.contains("usage:") && !boot.contains("nspcopy:"), "{boot}");
    assert!(!boot.contains("init: /etc/rc exited"), "{boot}");

    // Three different pages from the host, one per container.
    let pages: Vec<String> =
        (1..=3).map(|n| wait_for_page(&c, f.host(8080 + n), &format!("<h1>web{n}</h1>"))).collect();
    assert!(pages[0] != pages[1] && pages[1] != pages[2] && pages[0] != pages[2]);

    // The list by name; the shell stays usable.
    let out = run(&c, "ns");
    let rows = ns_table(&out);
    assert_eq!(rows.len(), 4, "{out}");
    let mut web2 = 0;
    for n in 1..=3u16 {
        let row = rows
            .iter()
            .find(|r| r["NAME"] == format!("web{n}"))
            .unwrap_or_else(|| panic!("no web{n}:\n{out}"));
        assert_eq!(row["PORTS"], format!("{}:80/tcp", 8080 + n), "{out}");
        assert_eq!(row["ADDR"], format!("192.168.1.{}", row["ID"]), "{out}");
        assert_eq!(row["KINDS"], "pid,fs,net", "{out}");
        if n == 2 {
            web2 = row["ID"].parse().unwrap();
        }
    }
    let out = run(&c, "ps");
    assert_eq!(out.matches(" httpd").count(), 3, "{out}");

    // A file copied in by name is served at once.
    let out = run(&c, "nspcopy /etc/hostname web1 /www/host.txt");
    assert!(!out.contains("nspcopy:"), "{out}");
    assert_eq!(curl(f.host(8081), "/host.txt"), (200, "rustix\n".into()));
    // httpd serves the container's /www, not the rest of its root.
    assert_eq!(curl(f.host(8081), "/etc/rc").0, 404);

    // Stopping web2 by name: its URL no longer answers, the two others still do.
    let out = run(&c, "ns stop web2");
    assert!(out.contains(&format!("ns: stopped web2 (ns {web2})")), "{out}");
    assert_eq!(curl(f.host(8082), "/").0, 0, "web2's port still answers");
    assert_eq!(curl(f.host(8081), "/"), (200, pages[0].clone()));
    assert_eq!(curl(f.host(8083), "/"), (200, pages[2].clone()));
    let out = run(&c, "ns");
    assert!(ns_table(&out).iter().all(|r| r["NAME"] != "web2"), "{out}");
    common::poweroff(c);
}

#[test]
fn ns_exec_and_names_across_containers() {
    let (_dir, img) = common::image_with_programs("ns-exec", &[]);
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(img);
    opts.network = Network::User { forwards: vec![], frames: None };
    let c = common::boot_to_shell(opts);

    let (alpha, _) = spawn_detached(&c, "--name alpha sleep 1000000");
    let (beta, _) = spawn_detached(&c, "--name beta sleep 1000000");
    let out = run(&c, "ns");
    assert_eq!(ns_row(&out, alpha)["NAME"], "alpha", "{out}");
    assert_eq!(ns_row(&out, beta)["NAME"], "beta", "{out}");
    // The root's console is the one in front.
    assert_eq!(ns_row(&out, 1)["FRONT"], "*", "{out}");
    assert_eq!(ns_row(&out, alpha)["FRONT"], "-", "{out}");

    // A program inside, by name and by id: it sees the container's pids and files.
    let out = run(&c, "ns exec alpha ps");
    // ps's lines (the first field a pid; not the command line typed, which ends in `ps` too).
    let own: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().next().is_some_and(|w| w.parse::<u32>().is_ok()))
        .filter(|l| l.ends_with(" ps") || l.ends_with(" nsinit"))
        .collect();
    assert_eq!(own.len(), 2, "{out}");
    assert!(own.iter().all(|l| l.split_whitespace().nth(1) == Some(&*alpha.to_string())), "{out}");
    // Its init is pid 1 there.
    let init = own.iter().find(|l| l.ends_with(" nsinit")).unwrap();
    assert_eq!(init.split_whitespace().next(), Some("1"), "{out}");
    let out = run(&c, &format!("ns exec {beta} sh -c 'pwd; ls /'"));
    assert!(out.lines().any(|l| l.trim() == "/") && out.contains("etc"), "{out}");
    let out = run(&c, "ns exec alpha nosuchprogram");
    assert!(out.contains("ns: nosuchprogram:"), "{out}");
    // Not into one's own namespace or above.
    let out = run(&c, "ns exec 1 echo hi");
    assert!(out.contains("ns: exec in ns 1: not allowed"), "{out}");

    // From a container: its siblings are neither listed nor reachable.
    ok(c.send("spawn --name gamma sh\n"));
    let out = ok(c.expect("$ ", STEP)).replace('\r', "");
    let gamma: u32 = out
        .split("spawn: ns ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no `spawn: ns` line: {out}"));
    assert!(out.ends_with(&prompt(gamma)), "{out}");
    let out = run_in(&c, gamma, "ns");
    let ids: Vec<String> = ns_table(&out).into_iter().map(|r| r["ID"].clone()).collect();
    assert_eq!(ids, [gamma.to_string()], "{out}");
    let out = run_in(&c, gamma, &format!("ns exec {beta} echo hi"));
    assert!(out.contains(&format!("ns: exec in ns {beta}: not allowed")), "{out}");
    assert!(!out.lines().any(|l| l.trim() == "hi"), "{out}");
    let out = run_in(&c, gamma, "ns exec beta echo hi");
    assert!(out.contains("ns: beta: no such namespace"), "{out}");
    let out = run_in(&c, gamma, "ns stop beta");
    assert!(out.contains("ns: beta: no such namespace"), "{out}");
    ok(c.send("exit\n"));
    ok(c.expect(&prompt(1), STEP));

    // Names wherever an id goes.
    let out = run(&c, "ns stop alpha");
    assert!(out.contains(&format!("ns: stopped alpha (ns {alpha})")), "{out}");
    let out = run(&c, "ns");
    assert!(ns_table(&out).iter().all(|r| r["NAME"] != "alpha"), "{out}");
    common::poweroff(c);
}
