//! Sockets shared between processes, in a guest with a NIC (loopback needs the stack, which
//! only starts with one): the usertests cases `shared-*` make two processes wait on one socket
//! (`recv` on UDP and TCP, `poll`, `accept`) and check that every datagram, byte and
//! connection wakes one of them. Both network designs run them (docs/06-async-vs-sleep.md):
//! the default event design and the sleep design (`net=sleep`), which also runs the cases on
//! `poll`'s timeouts and socket arguments, and refuses a network namespace.

mod common;

use std::time::Duration;

use common::{image_with_programs, kernel, ok, BOOT, STEP};
use mkimage::console::{Console, Settings};
use mkimage::qemu::{Network, Options, Outcome};

const CASES: &[&str] = &[
    "shared-udp-recv",
    "shared-udp-poll",
    "shared-tcp-recv",
    "shared-tcp-poll",
    "shared-tcp-accept",
];

/// More cases on the sleep design: `poll` on pipes and its timeouts, `accept` at EMFILE, bad
/// socket arguments (its own path through `poll`, `connect` and `accept`).
const SLEEP_CASES: &[&str] = &["poll-pipe", "accept-emfile", "huge-timeouts", "socket-args"];

/// Boot `design` (a kernel command line: `""` or `"net=sleep"`) with a NIC, to the shell.
fn boot(name: &str, design: &str) -> (mkimage::console::TempDir, Console) {
    let (dir, img) = image_with_programs(name, &[]);
    let mut opts = Options::new(kernel(), design);
    opts.disk = Some(img);
    opts.network = Network::user(vec![]);
    let c = ok(Console::spawn_with(opts, Settings::default()));
    ok(c.expect("init: starting sh", BOOT));
    ok(c.expect("$ ", BOOT));
    (dir, c)
}

fn poweroff(c: Console) {
    ok(c.send("poweroff\n"));
    let status = ok(c.wait_exit(STEP));
    assert_eq!(Outcome::from_status(status), Outcome::PowerOff, "{}", c.output());
}

/// Run usertests `cases` on `design`; each must report ok.
fn run_cases(name: &str, design: &str, cases: &[&str]) {
    let (_dir, c) = boot(name, design);
    ok(c.send(format!("usertests {}\n", cases.join(" "))));
    // Each case gives up after 10 s when a reader is never woken.
    let verdict = ok(c.expect("TESTS", Duration::from_secs(300)));
    let out = verdict + &ok(c.expect("\n$ ", STEP));
    for case in cases {
        let line = out.lines().find(|l| l.contains(&format!("usertests: {case} ")));
        assert!(
            line.is_some_and(|l| l.trim_end() == format!("usertests: {case} ok")),
            "{design}: {case}: {line:?}\n{out}"
        );
    }
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    poweroff(c);
}

#[test]
fn two_processes_waiting_on_one_socket_are_both_woken() {
    run_cases("sockets", "", CASES);
}

#[test]
fn sleep_design_two_processes_waiting_on_one_socket_are_both_woken() {
    run_cases("sockets-sleep", "net=sleep", &[CASES, SLEEP_CASES].concat());
}

/// The sleep design drives the root's stack only: `spawn --net` is EINVAL, and nothing of
/// the namespace is left behind (a container without `--net` still starts).
#[test]
fn sleep_design_refuses_a_network_namespace() {
    let (_dir, c) = boot("sockets-nonet", "net=sleep");
    ok(c.send("spawn --net echo inside\n"));
    let out = ok(c.expect("\n$ ", STEP));
    assert!(out.contains("spawn: invalid argument"), "{out}");
    let ran = |out: &str| out.lines().any(|l| l.trim() == "inside");
    assert!(!ran(&out), "the program ran: {out}");
    ok(c.send("spawn --pid echo inside\n"));
    let out = ok(c.expect("\n$ ", STEP));
    assert!(ran(&out), "a container without --net: {out}");
    poweroff(c);
}
