//! Sockets shared between processes, in a guest with a NIC (loopback needs the stack, which
//! only starts with one): the usertests cases `shared-*` make two processes wait on one socket
//! (`recv` on UDP and TCP, `poll`, `accept`) and check that every datagram, byte and
//! connection wakes one of them.

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

#[test]
fn two_processes_waiting_on_one_socket_are_both_woken() {
    let (_dir, img) = image_with_programs("sockets", &[]);
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(img);
    opts.network = Network::user(vec![]);
    let c = ok(Console::spawn_with(opts, Settings::default()));
    ok(c.expect("init: starting sh", BOOT));
    ok(c.expect("$ ", BOOT));
    ok(c.send(format!("usertests {}\n", CASES.join(" "))));
    // Each case gives up after 10 s when a reader is never woken.
    let verdict = ok(c.expect("TESTS", Duration::from_secs(300)));
    let out = verdict + &ok(c.expect("\n$ ", STEP));
    for case in CASES {
        let line = out.lines().find(|l| l.contains(&format!("usertests: {case} ")));
        assert!(
            line.is_some_and(|l| l.trim_end() == format!("usertests: {case} ok")),
            "{case}: {line:?}\n{out}"
        );
    }
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    ok(c.send("poweroff\n"));
    let status = ok(c.wait_exit(STEP));
    assert_eq!(Outcome::from_status(status), Outcome::PowerOff, "{}", c.output());
}
