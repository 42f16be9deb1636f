//! A container's limits and the fair scheduler (issue 12), through the serial console as a user
//! would use them.
//!
//! - [`limits_with_exact_errors`]: the usertests cases on limits (`limits-pids`,
//!   `limits-mem`, `limits-names`: `EAGAIN`, `ENOMEM`, `EEXIST`, `EINVAL`, `EFAULT`, each in
//!   the container only) and `spawn`'s options refused with a clear message.
//! - [`a_fork_bomb_and_a_memory_hog_leave_the_rest_working`]: `hog fork` and `hog mem` in
//!   containers at their limits while the root shell answers within a deadline and another
//!   container's shell works; `/proc/ns` shows the limits and the use; killing their inits
//!   ends them.
//! - [`cpu_is_shared_between_containers`]: eight busy loops in one container against one in
//!   another, each container's share of their CPU time (the `cpu-share` case) within 30% to
//!   70%; the shares are printed.

mod common;

use std::time::{Duration, Instant};

use common::{ok, poweroff, run, shell, spawn_detached, BOOT, STEP};
use mkimage::console::Console;

/// The longest the root shell may take to answer `echo` while containers misbehave. A turn
/// of the CPU comes every few time slices (10 ms); this allows for a loaded host.
const ANSWER: Duration = Duration::from_secs(10);
/// How long a container's processes may take to start or to be reaped.
const SETTLE: Duration = Duration::from_secs(30);

/// Runs `usertests CASES` at the root's shell; its output, once all passed.
fn usertests(c: &Console, cases: &str) -> String {
    ok(c.send(format!("usertests {cases}\n")));
    let out = ok(c.expect("\n$ ", BOOT)).replace('\r', "");
    assert!(out.contains("ALL TESTS PASSED"), "usertests {cases}:\n{out}");
    out
}

/// `/proc/ns`'s columns of namespace `id`: `id parent kinds init members addr ports name
/// procs mem_used mem_max pids_max`, as words (`None`: no such line).
fn ns_line(c: &Console, id: u32) -> Option<Vec<String>> {
    let out = run(c, "cat /proc/ns");
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .find(|w| w.len() >= 12 && w[0] == id.to_string())
}

/// Reads `/proc/ns` until `done` holds for namespace `id`'s line (or its absence).
fn poll_ns(c: &Console, id: u32, what: &str, done: impl Fn(Option<&[String]>) -> bool) {
    let end = Instant::now() + SETTLE;
    loop {
        let line = ns_line(c, id);
        if done(line.as_deref()) {
            return;
        }
        assert!(Instant::now() < end, "{what}: not after {SETTLE:?}: {line:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn limits_with_exact_errors() {
    let (_dir, img) = common::image_with_programs("limits-errors", &[]);
    let c = shell(&img);
    let out = usertests(&c, "limits-pids limits-mem limits-names");
    println!("{out}");
    for (args, says) in [
        ("--name Web sh", "--name Web: 1 to 15 of a-z 0-9 _ -, not all digits"),
        ("--name 0123456789abcdef sh", "--name 0123456789abcdef: 1 to 15"),
        ("--pids 0 sh", "--pids 0: must be at least 1"),
        ("--pids 4294967296 sh", "--pids 4294967296: too large"),
        ("--mem 16X sh", "--mem 16X: the unit is K, M or G"),
        ("--mem 0 sh", "--mem 0: must be at least 1"),
        ("--mem", "usage: spawn"),
    ] {
        let out = run(&c, &format!("spawn {args}"));
        assert!(out.contains(says), "spawn {args}:\n{out}");
    }
    // A name in use, typed at the shell.
    let (_, init) = spawn_detached(&c, "--name web sleep 100000");
    let out = run(&c, "spawn -d --name web sleep 1");
    assert!(out.contains("--name web: a container has that name"), "{out}");
    run(&c, &format!("kill {init}"));
    poweroff(c);
}

#[test]
fn a_fork_bomb_and_a_memory_hog_leave_the_rest_working() {
    let (_dir, img) = common::image_with_programs("limits-bomb", &[]);
    let c = shell(&img);
    let (bomb, bomb_init) = spawn_detached(&c, "--name bomb --pids 16 hog fork");
    let (hog, hog_init) = spawn_detached(&c, "--name hog --mem 4M hog mem");
    // (Printed whenever they happen: before a prompt or after it.)
    for says in ["hog: fork: EAGAIN after", "hog: sbrk: ENOMEM after"] {
        let end = Instant::now() + SETTLE;
        while !c.output().contains(says) {
            assert!(Instant::now() < end, "no {says:?} after {SETTLE:?}:\n{}", c.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The bomb at its limit: 16 processes (nsinit, hog and its children); the hog under its.
    poll_ns(&c, bomb, "the bomb at its limit", |w| {
        w.is_some_and(|w| w[7] == "bomb" && w[8] == "16" && w[11] == "16")
    });
    let w = ns_line(&c, hog).expect("the hog's line");
    let (used, max): (u64, u64) = (w[9].parse().unwrap(), w[10].parse().unwrap());
    assert_eq!((w[7].as_str(), max), ("hog", 4 << 20), "{w:?}");
    assert!(used <= max && used > max - (128 << 10), "the hog uses {used} of {max}: {w:?}");
    println!("{}", run(&c, "cat /proc/ns"));

    // The root shell answers, and forks (pipelines), within a deadline each time.
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let start = Instant::now();
        ok(c.send(format!("echo ping{i} | cat\n")));
        ok(c.expect(&format!("\nping{i}"), ANSWER));
        ok(c.expect("\n$ ", ANSWER));
        slowest = slowest.max(start.elapsed());
    }
    println!("the root shell's slowest answer: {slowest:?}");
    // Another container works: its shell starts, runs a pipeline and a program, and exits.
    ok(c.send("spawn --name other sh\n"));
    ok(c.expect("spawn: ns ", STEP));
    let line = ok(c.expect("\n", STEP));
    let other: u32 = line.split_whitespace().next().unwrap().parse().unwrap();
    ok(c.expect(&format!("ns{other}$ "), ANSWER));
    ok(c.send("echo alive | cat\n"));
    ok(c.expect("\nalive", ANSWER));
    ok(c.expect(&format!("ns{other}$ "), ANSWER));
    ok(c.send("ls /\n"));
    ok(c.expect(&format!("ns{other}$ "), ANSWER));
    ok(c.send("exit\n"));
    ok(c.expect("\n$ ", ANSWER));

    // Killing their inits ends everything in them, and the accounts come back down.
    run(&c, &format!("kill {bomb_init}"));
    run(&c, &format!("kill {hog_init}"));
    for id in [bomb, hog] {
        poll_ns(&c, id, "the container gone", |w| w.is_none());
    }
    poll_ns(&c, 1, "the root's count back", |w| {
        // The root's shell, init and this cat (and nothing of the containers).
        w.is_some_and(|w| w[8].parse::<u32>().is_ok_and(|n| n <= 4))
    });
    poweroff(c);
}

#[test]
fn cpu_is_shared_between_containers() {
    let (_dir, img) = common::image_with_programs("limits-cpu", &[]);
    let c = shell(&img);
    let out = usertests(&c, "cpu-share");
    // `usertests: cpu-share ok (8 busy: N ms (P%), 1 busy: ...)`: shown in the test's output.
    let line = out.lines().find(|l| l.contains("cpu-share ok")).unwrap_or_default();
    println!("{line}");
    poweroff(c);
}
