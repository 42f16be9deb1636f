//! The listen backlog, from the host: a guest program (`listenwait`) listens and does not
//! accept until told; connections from the host through QEMU's forwarded port must complete
//! their handshake in the guest and wait there, up to the backlog, and all be served once it
//! accepts. Beyond the backlog (the accept queue), nobody is reset, as on Linux: SYNs are
//! dropped, and a handshake already under way waits in SYN-RECEIVED (its final ACK held back);
//! those clients get in by retransmitting once room is made.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;

use common::{free_port, image_with_programs, kernel, ok, STEP};
use mkimage::console::{Console, TempDir};
use mkimage::qemu::{HostForward, Network, Options};

// ---- the guest ----

const GUEST_PORT: u16 = 80;

struct Guest {
    console: Console,
    port: u16,
}

fn boot(name: &str, design: &str) -> (TempDir, Guest) {
    let (dir, img) = image_with_programs(name, &[]);
    let port = free_port();
    let mut opts = Options::new(kernel(), design);
    opts.disk = Some(img);
    opts.network = Network::user(vec![HostForward::tcp(port, GUEST_PORT)]);
    let console = common::boot_to_shell(opts);
    (dir, Guest { console, port })
}

/// `listenwait`'s count of the TCP sockets on its port: (LISTEN, SYN_RECV, past the handshake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Count {
    listen: usize,
    syn_recv: usize,
    established: usize,
}

impl Guest {
    fn listenwait(&self, backlog: usize) {
        ok(self.console.send(format!("listenwait {GUEST_PORT} {backlog}\n")));
        ok(self
            .console
            .expect(&format!("listenwait: listening on {GUEST_PORT} backlog {backlog}"), STEP));
    }

    fn count(&self) -> Count {
        ok(self.console.send("count\n"));
        ok(self.console.expect("listenwait: listen=", STEP));
        let rest = ok(self.console.expect("\n", STEP));
        let field = |name: &str| -> usize {
            let at =
                rest.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name} in {rest}"));
            rest[at + name.len() + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap()
        };
        Count {
            listen: rest.split_whitespace().next().unwrap().parse().unwrap(),
            syn_recv: field("syn_recv"),
            established: field("established"),
        }
    }

    /// Asks for counts until `done` holds (checking `each` on every one), by `deadline`.
    fn count_until(
        &self,
        deadline: Duration,
        mut each: impl FnMut(Count),
        done: impl Fn(Count) -> bool,
    ) -> Count {
        let end = Instant::now() + deadline;
        loop {
            let c = self.count();
            each(c);
            if done(c) {
                return c;
            }
            assert!(Instant::now() < end, "still {c:?} after {deadline:?}:\n{}", self.output());
        }
    }

    /// `serve n`, then the end of `listenwait` and the shell's prompt.
    fn serve_and_quit(&self, n: usize, deadline: Duration) {
        ok(self.console.send(format!("serve {n}\n")));
        ok(self.console.expect(&format!("listenwait: served {n}"), deadline));
        ok(self.console.send("quit\n"));
        ok(self.console.expect("$ ", STEP));
    }

    fn output(&self) -> String {
        self.console.output()
    }

    fn poweroff(self) {
        common::poweroff(self.console);
    }
}

/// `n` connections to the forwarded port, each having sent its line `hello I`.
fn connect_all(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
            s.write_all(format!("hello {i}\n").as_bytes()).expect("send");
            s
        })
        .collect()
}

/// Each connection's answer: `served K: hello I` with its own I, every K different.
fn check_answers(conns: Vec<TcpStream>) {
    let mut ks = Vec::new();
    for (i, s) in conns.into_iter().enumerate() {
        let mut line = String::new();
        let r = BufReader::new(s).read_line(&mut line);
        assert!(matches!(r, Ok(n) if n > 0), "connection {i} got no answer ({r:?})");
        let (k, rest) = line
            .trim_end()
            .strip_prefix("served ")
            .and_then(|l| l.split_once(": "))
            .unwrap_or_else(|| panic!("connection {i}: answer {line:?}"));
        assert_eq!(rest, format!("hello {i}"), "connection {i} got another's answer");
        ks.push(k.parse::<usize>().unwrap());
    }
    ks.sort_unstable();
    ks.dedup();
    assert_eq!(ks.len(), ks.iter().max().copied().unwrap_or(0), "answers {ks:?}");
}

common::both_designs!(
    forty_connections_wait_in_a_backlog_of_64,
    sleep_design_forty_connections_wait_in_a_backlog_of_64,
    forty_connections_wait_in_a_backlog_of_64_on
);

/// Backlog 64, 40 connections at once: all complete the handshake while nobody accepts (one
/// LISTEN socket stays armed for more), then all are served.
fn forty_connections_wait_in_a_backlog_of_64_on(design: &str) {
    let (_dir, g) = boot(&format!("backlog64{design}"), design);
    g.listenwait(64);
    let conns = connect_all(g.port, 40);
    let c = g.count_until(
        STEP,
        |c| assert!(c.established <= 40, "{c:?}"),
        |c| c.established == 40 && c.syn_recv == 0,
    );
    assert_eq!(c.listen, 1, "one LISTEN socket for the next SYN: {c:?}");
    g.serve_and_quit(40, STEP);
    check_answers(conns);
    g.poweroff();
}

common::both_designs!(
    beyond_the_backlog_syns_wait_for_room,
    sleep_design_beyond_the_backlog_syns_wait_for_room,
    beyond_the_backlog_syns_wait_for_room_on
);

/// Backlog 4, 10 connections: 4 complete their handshake and wait in the accept queue, and
/// then no LISTEN socket is left: the other SYNs are dropped, not reset. (Handshakes already
/// under way when the queue filled still complete into it, within the SYN queue's bound.) Once
/// `listenwait` accepts, the other clients' retransmitted SYNs get in and all 10 are served.
fn beyond_the_backlog_syns_wait_for_room_on(design: &str) {
    let (_dir, g) = boot(&format!("backlog4{design}"), design);
    g.listenwait(4);
    let conns = connect_all(g.port, 10);
    // The SYN queue of a listener with backlog 4 (`kernel/src/net/listen.rs`, SYN_QUEUE_MIN).
    let syn_queue = 16;
    let within = |c: Count| {
        assert!(c.established + c.syn_recv <= 4 + syn_queue, "beyond both queues: {c:?}");
        assert!(c.established < 4 || c.listen == 0, "a full backlog takes SYNs: {c:?}");
    };
    let c = g.count_until(STEP, within, |c| c.established >= 4);
    assert_eq!(c.listen, 0, "a full backlog keeps no LISTEN socket: {c:?}");
    // Still full a moment later (clients retransmit meanwhile), and nobody was reset.
    let c = g.count();
    within(c);
    assert!(c.established >= 4 && c.listen == 0, "{c:?}");
    // QEMU's user network retransmits a SYN after a few seconds, then backs off.
    g.serve_and_quit(10, Duration::from_secs(120));
    check_answers(conns);
    g.poweroff();
}

common::both_designs!(
    usertests_accept_emfile_and_poll_pipe_with_a_network,
    sleep_design_usertests_accept_emfile_and_poll_pipe_with_a_network,
    usertests_accept_emfile_and_poll_pipe_with_a_network_on
);

/// The usertests cases about `accept` and `poll`, on a guest with a NIC (the shell test boots
/// without one, where `accept-emfile` has nothing to test): a full descriptor table makes
/// `accept` fail with EMFILE without losing the connection.
fn usertests_accept_emfile_and_poll_pipe_with_a_network_on(design: &str) {
    let (_dir, g) = boot(&format!("usertests-net{design}"), design);
    ok(g.console.send("usertests accept-emfile poll-pipe kernel-memory\n"));
    let verdict = ok(g.console.expect("TESTS", Duration::from_secs(300)));
    let out = verdict + &ok(g.console.expect("\n$ ", STEP));
    assert!(
        out.contains("usertests: accept-emfile ok\r\n")
            || out.contains("usertests: accept-emfile ok\n"),
        "{out}"
    );
    assert!(out.contains("usertests: poll-pipe ok"), "{out}");
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    g.poweroff();
}
