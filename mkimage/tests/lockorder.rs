//! The lock order (docs/locks.md) checked on the real system. A debug kernel checks every spin
//! lock it takes against the order and panics on a violation, naming both locks: the checker
//! is on (`fault=lockorder` takes two locks against the order and the kernel panics), and the
//! shell, pipes, the file system, processes, `poll`, shared sockets, the network (httpd
//! serving a real curl on the host, ARP), a container with its own network stack behind the
//! bridge and a published port, a container's console with `attach`, `^C` and `^P ^Q`, and
//! the kernel's self test all run on it without one.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, ok, BOOT, STEP};
use mkimage::console::Console;
use mkimage::qemu::{HostForward, Network, Options, Outcome};

/// The debug kernel ELF, built once per test binary.
fn debug_kernel() -> std::path::PathBuf {
    static KERNEL: std::sync::OnceLock<Result<std::path::PathBuf, String>> =
        std::sync::OnceLock::new();
    KERNEL
        .get_or_init(|| mkimage::build::kernel(false).map_err(|e| e.to_string()))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_lock_taken_against_the_order_panics_a_debug_kernel() {
    let c = common::spawn_with(Options::new(debug_kernel(), "fault=lockorder"));
    ok(c.expect("lock order: checked", BOOT));
    ok(c.expect("lock order: Socket taken while holding Stack", BOOT));
    let status = ok(c.wait_exit(STEP));
    let out = c.output();
    assert_eq!(Outcome::from_status(status), Outcome::KernelCrashed, "{status}\n{out}");
    // The report names the lock's caller, not the checker.
    let panic = out.lines().find(|l| l.starts_with("PANIC")).unwrap_or_else(|| panic!("{out}"));
    assert!(panic.contains("kernel/src/selftest.rs"), "{panic}");
    assert!(!out.contains("not checked"), "{out}");
}

/// Types `line` at the shell; what it printed, up to the next prompt. A generous deadline: a
/// debug kernel is several times slower than a release one.
fn run(c: &Console, line: &str, deadline: Duration) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect("\n$ ", deadline)).replace('\r', "")
}

/// `curl` from the host: the body, or `None` when nothing answered. Bounded in time.
fn curl(port: u16, path: &str) -> Option<String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let out = Command::new("curl").args(["-s", "-f", "-m", "20", &url]).output().expect("run curl");
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_system_runs_on_a_debug_kernel_without_an_order_violation() {
    let (_dir, image) = common::image_with_programs("lockorder", &[]);
    let (http, published) = (free_port(), free_port());
    let mut opts = Options::new(debug_kernel(), "");
    opts.disk = Some(image);
    opts.network =
        Network::user(vec![HostForward::tcp(http, 80), HostForward::tcp(published, 8081)]);
    let c = common::boot_to_shell(opts);
    assert!(c.output().contains("lock order: checked"), "not a checking kernel:\n{}", c.output());

    // Pipes, files, directories, processes.
    let out = run(&c, "echo one two three | wc", STEP);
    assert!(out.lines().any(|l| l.split_whitespace().eq(["1", "3", "14"])), "{out}");
    let out = run(&c, "mkdir /lo; echo locks > /lo/a; mv /lo/a /lo/b; cat /lo/b | grep ock", STEP);
    assert!(out.lines().any(|l| l.trim() == "locks"), "{out}");
    run(&c, "rm /lo/b; ls /lo; ps; free", STEP);

    // Every usertests case: fork and exec, kills, memory exhaustion, pipes, the file system,
    // poll, sockets shared between processes (over loopback).
    let out = run(&c, "usertests", Duration::from_secs(600));
    assert!(out.contains("ALL TESTS PASSED"), "{out}");

    // The network: httpd in the background, a real client on the host, and one in the guest
    // (loopback).
    run(&c, "httpd &", STEP);
    let deadline = Instant::now() + BOOT;
    let page = loop {
        if let Some(body) = curl(http, "/") {
            break body;
        }
        assert!(Instant::now() < deadline, "httpd never answered:\n{}", c.output());
    };
    assert!(!page.is_empty());
    for _ in 0..5 {
        assert!(curl(http, "/about.html").is_some_and(|b| !b.is_empty()), "{}", c.output());
    }
    let out = run(&c, "curl 127.0.0.1/about.html | wc; netstat", STEP);
    assert!(out.contains("tcp"), "{out}");

    // A container with its own stack: httpd there, reached from the root across the bridge
    // and from the host through a published port (the router's translation both ways), then
    // killed (its stack torn down, its port freed).
    let out = run(&c, "spawn -d --pid --fs --net httpd -q 80 0.0.0.0 /", STEP);
    let (id, init) = out
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.strip_prefix("spawn: ns ")?.split_whitespace().collect();
            Some((w.first()?.parse::<u32>().ok()?, w.get(2)?.parse::<u32>().ok()?))
        })
        .unwrap_or_else(|| panic!("no `spawn: ns` line:\n{out}"));
    let out = run(&c, &format!("usertests --publish {id} tcp 8081 80"), STEP);
    assert!(out.contains("usertests: published"), "{out}");
    let deadline = Instant::now() + BOOT;
    while curl(published, "/").is_none_or(|b| !b.contains("Index of /")) {
        assert!(Instant::now() < deadline, "the container never answered:\n{}", c.output());
    }
    let out = run(&c, &format!("curl 192.168.1.{id}/ | grep Index; cat /proc/netall"), STEP);
    assert!(out.contains("Index of /") && out.contains(&format!("{id} tcp")), "{out}");
    run(&c, &format!("kill {init}"), STEP);
    let deadline = Instant::now() + BOOT;
    while curl(published, "/").is_some() {
        assert!(Instant::now() < deadline, "the dead container still answers");
    }

    // ARP through the raw path (`arping`), and ^C killing a foreground program from the
    // console's input task.
    let out = run(&c, "arptest", STEP);
    assert!(out.contains("arptest: 10.0.2.2 is at"), "{out}");
    // The job prints once it runs, in its own group, the console's foreground (a child takes
    // it before it runs its program): a ^C typed before that would be the shell's empty line.
    ok(c.send("sh -c 'echo sleeping; sleep 100000'\n"));
    ok(c.expect("\nsleeping", STEP));
    ok(c.send("\x03"));
    ok(c.expect("^C", STEP));
    run(&c, "echo after", STEP);

    // Consoles: attach to a container (its console made, a shell started on it, the input
    // task switching, the ring replayed), ^C on a pipeline there (a process group killed), and
    // ^P ^Q back.
    // (The prompts above may be one behind the commands: wait for spawn's own line.)
    ok(c.send("spawn -d\n"));
    ok(c.expect("spawn: ns ", STEP));
    let line = ok(c.expect("\n", STEP));
    let id: u32 = line
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("not `ID init PID`: {line:?}"));
    ok(c.expect("$ ", STEP));
    ok(c.send(format!("attach {id}\n")));
    ok(c.expect(&format!("--- ns {id} console"), STEP));
    ok(c.expect(&format!("ns{id}$ "), STEP));
    ok(c.send("spin | sh -c 'echo piped; cat'\n"));
    ok(c.expect("\npiped", STEP));
    ok(c.send("\x03"));
    ok(c.expect(&format!("\nns{id}$ "), STEP));
    ok(c.send("\x10\x11"));
    ok(c.expect("--- ns 1 console", STEP));
    ok(c.expect("$ ", STEP));
    ok(c.send("cat /proc/ns\n"));
    ok(c.expect("\n1 0 ", STEP));
    let line = ok(c.expect("\n", STEP));
    assert!(line.trim_end().ends_with(" 1"), "the root's /proc/ns line: {line:?}");

    common::poweroff(c);
}

/// The sleep design (`net=sleep`, docs/06-async-vs-sleep.md) on a debug kernel: its stack runs
/// in the E1000's and the timer's interrupt handlers under an interrupt-safe lock, so every
/// lock taken under it is checked to be interrupt-safe: sockets shared between processes,
/// `poll` with timeouts, httpd serving a real curl on the host and one in the guest over
/// loopback, ARP, and the refused network namespace.
#[test]
fn the_sleep_design_runs_on_a_debug_kernel_without_an_order_violation() {
    let (_dir, image) = common::image_with_programs("lockorder-sleep", &[]);
    let http = free_port();
    let mut opts = Options::new(debug_kernel(), "net=sleep");
    opts.disk = Some(image);
    opts.network = Network::user(vec![HostForward::tcp(http, 80)]);
    let c = common::boot_to_shell(opts);
    assert!(c.output().contains("lock order: checked"), "not a checking kernel:\n{}", c.output());
    let cases = "shared-udp-recv shared-udp-poll shared-tcp-recv shared-tcp-poll \
                 shared-tcp-accept poll-pipe accept-emfile huge-timeouts socket-args kill-sleeper";
    let out = run(&c, &format!("usertests {cases}"), Duration::from_secs(300));
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    run(&c, "httpd &", STEP);
    let deadline = Instant::now() + BOOT;
    while curl(http, "/").is_none() {
        assert!(Instant::now() < deadline, "httpd never answered:\n{}", c.output());
    }
    for _ in 0..5 {
        assert!(curl(http, "/about.html").is_some_and(|b| !b.is_empty()), "{}", c.output());
    }
    let out = run(&c, "curl 127.0.0.1/about.html | wc; arptest; spawn --net echo x", STEP);
    assert!(out.contains("arptest: 10.0.2.2 is at"), "{out}");
    assert!(out.contains("spawn: invalid argument"), "{out}");
    common::poweroff(c);
}

/// The kernel's own tests on a debug kernel with a blank disk and a NIC: the executor, timers,
/// the disk driver with many requests in flight, raw frames and ARP on the E1000.
#[test]
fn the_self_test_passes_on_a_debug_kernel() {
    self_test("selftest");
}

/// The same on the sleep design: ARP and TCP over loopback with the stack polled by the
/// interrupts and the scheduler loop.
#[test]
fn the_self_test_passes_on_the_sleep_design() {
    self_test("selftest net=sleep");
}

fn self_test(cmdline: &str) {
    let dir = ok(mkimage::console::TempDir::new("lockorder-selftest"));
    let disk = dir.path().join("disk.img");
    std::fs::File::create(&disk).unwrap().set_len(8 << 20).unwrap();
    let mut opts = Options::new(debug_kernel(), cmdline);
    opts.disk = Some(disk);
    opts.network = Network::user(vec![]);
    let c = common::spawn_with(opts);
    ok(c.expect("lock order: checked", BOOT));
    ok(c.expect("selftest: PASS", BOOT));
    common::expect_poweroff(&c);
}
