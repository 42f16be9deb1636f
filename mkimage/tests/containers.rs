//! Containers end to end (issue 10): namespaces for processes and files, typed at the shell as
//! a user would (`spawn`, `ps`, `kill`, `nspcopy`, `ls`, `cat /proc/ns`), through the serial
//! console. A container's shell prompts `ns<ID>$ `; `spawn` prints `spawn: ns ID init PID`.
//!
//! - [`a_container_sees_its_own_tree_and_ends_with_its_init`]: `ps` inside and outside,
//!   orphans, three levels of nesting, killing a container from the root.
//! - [`a_container_is_isolated`]: other processes, files outside its root, `/bin`, `nspcopy`.
//! - [`nspcopy_copies_whole_or_not_at_all`]: files, several MiB, trees, no such namespace,
//!   running out of space, checked in the guest and on the image from the host.
//! - [`bad_input_leaks_and_a_crash`]: the usertests cases on namespaces (bad input), 50
//!   containers started and killed with nothing left behind, then the power pulled with
//!   containers alive: the next boot removes their roots and fsck is clean.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{
    ok, parse_spawned, poweroff, programs, prompt, run, run_in, shell, spawn_detached, BOOT, STEP,
};
use mkimage::console::{Console, TempDir};
use mkimage::image::Builder;
use mkimage::imgread::Image;

/// How long an asynchronous effect (a container's root removed, its processes reaped) may
/// take to show.
const SETTLE: Duration = Duration::from_secs(30);

/// Types `spawn ARGS` at the shell of namespace `ns`, whose program is an interactive `sh`:
/// returns the new namespace's id and its init's pid as `ns` sees it, once the new shell
/// prompts.
fn enter(c: &Console, ns: u32, args: &str) -> (u32, u32) {
    ok(c.send(format!("spawn {args}\n")));
    ok(c.expect("spawn: ns ", STEP));
    let line = ok(c.expect("\n", STEP));
    let (id, init) = parse_spawned(&line);
    // (The line's newline is taken: the prompt starts here.)
    ok(c.expect(prompt(id).trim_start(), STEP));
    assert!(id != ns, "spawn from ns {ns} made ns {id}");
    (id, init)
}

/// One line of `ps`: `PID NS NSPID PPID STATE NAME`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ns: u32,
    nspid: u32,
    ppid: u32,
    name: String,
}

fn ps_rows(out: &str) -> Vec<Proc> {
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let num = |i: usize| w[i].parse::<u32>().ok();
            if w.len() != 6 {
                return None;
            }
            Some(Proc {
                pid: num(0)?,
                ns: num(1)?,
                nspid: num(2)?,
                ppid: num(3)?,
                name: w[5].to_string(),
            })
        })
        .collect()
}

/// `ps` at the shell of `ns`.
fn ps(c: &Console, ns: u32) -> Vec<Proc> {
    let out = run_in(c, ns, "ps");
    let rows = ps_rows(&out);
    assert!(!rows.is_empty(), "no ps output:\n{out}");
    rows
}

/// Runs `ps` in `ns` until `done` holds for its rows (a process forked to run a program is
/// listed under its parent's name until its exec is done); the rows.
fn ps_until(c: &Console, ns: u32, what: &str, done: impl Fn(&[Proc]) -> bool) -> Vec<Proc> {
    let end = Instant::now() + SETTLE;
    loop {
        let rows = ps(c, ns);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < end, "{what}: not after {SETTLE:?}: {rows:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Types `sh -c 'sleep 100000 &'` in `ns`: a `sleep` whose parent exits at once, an orphan.
/// Returns `ps` there once it runs.
fn orphan_sleep(c: &Console, ns: u32) -> Vec<Proc> {
    run_in(c, ns, "sh -c 'sleep 100000 &'");
    ps_until(c, ns, "the orphan sleep", |rows| {
        rows.iter().any(|r| r.name == "sleep") && !rows.iter().any(|r| r.name == "sh" && r.pid > 2)
    })
}

/// `(pid, ppid, name)` of each row, by pid.
fn pid_ppid_name(rows: &[Proc]) -> Vec<(u32, u32, &str)> {
    rows.iter().map(|r| (r.pid, r.ppid, r.name.as_str())).collect()
}

fn find<'a>(rows: &'a [Proc], ns: u32, name: &str) -> &'a Proc {
    rows.iter()
        .find(|r| r.ns == ns && r.name == name)
        .unwrap_or_else(|| panic!("no {name} of ns {ns} in {rows:#?}"))
}

/// One line of `/proc/ns`: `ID PARENT KINDS INIT MEMBERS ADDR PORTS`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ns {
    id: u32,
    parent: u32,
    kinds: String,
    init: u32,
    members: u32,
    /// Its address on the container network (`-` without the network kind).
    addr: String,
}

/// `cat /proc/ns` at the shell of `ns`.
fn proc_ns(c: &Console, ns: u32) -> Vec<Ns> {
    run_in(c, ns, "cat /proc/ns")
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() < 7 {
                return None;
            }
            Some(Ns {
                id: w[0].parse().ok()?,
                parent: w[1].parse().ok()?,
                kinds: w[2].to_string(),
                init: w[3].parse().ok()?,
                members: w[4].parse().ok()?,
                addr: w[5].to_string(),
            })
        })
        .collect()
}

fn ids(lines: &[Ns]) -> Vec<u32> {
    lines.iter().map(|l| l.id).collect()
}

/// The names `ls PATH` lists (without `.` and `..`), sorted, or `Err` with its message.
fn ls(c: &Console, ns: u32, path: &str) -> Result<Vec<String>, String> {
    let out = run_in(c, ns, &format!("ls {path}"));
    if let Some(err) = out.lines().find(|l| l.starts_with("ls: ")) {
        return Err(err.to_string());
    }
    // `NAME KIND INODE SIZE`, in the directory's order: sorted here.
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let numeric = w.len() == 4 && w[1..].iter().all(|x| x.parse::<u64>().is_ok());
            (numeric && w[0] != "." && w[0] != "..").then(|| w[0].to_string())
        })
        .collect();
    names.sort_unstable();
    Ok(names)
}

/// Types `line` at the root's shell until `done` accepts what it printed; fails with the last
/// output after [`SETTLE`]. For what the kernel does in the background (a container's root
/// is removed by a kernel task, killed processes are reaped by init).
fn poll_until(c: &Console, line: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + SETTLE;
    loop {
        let out = run(c, line);
        if done(&out) {
            return out;
        }
        assert!(Instant::now() < end, "{what}: not after {SETTLE:?}; `{line}` says:\n{out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The pid of the `sleep` of namespace `ns` (its container's program starts in the
/// background of `spawn -d`: wait for it).
fn sleep_of(c: &Console, ns: u32) -> u32 {
    let out = poll_until(c, "ps", "the container's sleep", |out| {
        ps_rows(out).iter().any(|r| r.ns == ns && r.name == "sleep")
    });
    find(&ps_rows(&out), ns, "sleep").pid
}

/// `(frames_free, inodes_free)` from `/proc/meminfo`.
fn meminfo(c: &Console) -> (u64, u64) {
    let out = run(c, "cat /proc/meminfo");
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/meminfo:\n{out}"))
    };
    (field("frames_free "), field("inodes_free "))
}

/// An error line of a command: it contains `message`.
fn says(out: &str, message: &str) -> bool {
    out.lines().any(|l| l.contains(message))
}

#[test]
fn a_container_sees_its_own_tree_and_ends_with_its_init() {
    let (_dir, img) = common::image_with_programs("ns-tree", &[]);
    let c = shell(&img);

    // `spawn sh`: a container whose ps shows its init (pid 1, parent 0), its shell and ps.
    let (n2, init2) = enter(&c, 1, "sh");
    assert_eq!(n2, 2, "the first container's id");
    let rows = ps(&c, n2);
    assert_eq!(
        pid_ppid_name(&rows),
        [(1, 0, "nsinit"), (2, 1, "sh"), (3, 2, "ps")],
        "ps in a new container: {rows:#?}"
    );
    assert!(rows.iter().all(|r| r.ns == n2 && r.nspid == r.pid), "{rows:#?}");
    assert_eq!(ids(&proc_ns(&c, n2)), [n2], "/proc/ns in a container");

    // Orphans go to the container's init: `sh -c` exits and leaves its `sleep`.
    let rows = orphan_sleep(&c, n2);
    assert_eq!(find(&rows, n2, "sleep").ppid, 1, "an orphan in ns {n2}: {rows:#?}");

    // Three levels: ns3 in ns2, ns4 in ns3, each with an orphaned sleep.
    let (n3, init3) = enter(&c, n2, "sh");
    orphan_sleep(&c, n3);
    let (n4, init4) = enter(&c, n3, "sh");
    orphan_sleep(&c, n4);
    let at4 = ps(&c, n4);
    let mut names: Vec<&str> = at4.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["nsinit", "ps", "sh", "sleep"], "ns {n4} sees only itself: {at4:#?}");
    assert!(at4.iter().all(|r| r.ns == n4 && r.nspid == r.pid), "{at4:#?}");
    assert_eq!((find(&at4, n4, "nsinit").pid, find(&at4, n4, "sleep").ppid), (1, 1), "{at4:#?}");
    let lines = proc_ns(&c, n4);
    assert_eq!(ids(&lines), [n4], "/proc/ns in ns {n4}: {lines:#?}");
    assert_eq!((lines[0].parent, lines[0].init), (n3, 1), "{lines:#?}");

    // Back up one level at a time (each `spawn sh` ends with its shell; the container and its
    // orphan live on): each level sees its own processes and those below, by its own numbers.
    ok(c.send("exit\n"));
    ok(c.expect(&prompt(n3), STEP));
    let at3 = ps(&c, n3);
    let mut nss: Vec<u32> = at3.iter().map(|r| r.ns).collect();
    nss.sort_unstable();
    assert_eq!(nss, [n3, n3, n3, n3, n4, n4], "ns {n3} sees itself and ns {n4}: {at3:#?}");
    assert_eq!(find(&at3, n3, "nsinit").pid, 1, "{at3:#?}");
    let nsinit4 = find(&at3, n4, "nsinit");
    assert_eq!((nsinit4.pid, nsinit4.nspid), (init4, 1), "ns {n4}'s init from ns {n3}");
    // ns4's orphan belongs to ns4's init, whatever number ns3 gives it.
    let sleep4 = find(&at3, n4, "sleep");
    assert_eq!(sleep4.ppid, init4, "{at3:#?}");
    assert_eq!(sleep4.nspid, find(&at4, n4, "sleep").pid, "{at3:#?}");
    let lines = proc_ns(&c, n3);
    assert_eq!(ids(&lines), [n3, n4], "/proc/ns in ns {n3}: {lines:#?}");
    assert_eq!(lines[1].init, init4, "ns {n4}'s init as ns {n3} numbers it");

    ok(c.send("exit\n"));
    ok(c.expect(&prompt(n2), STEP));
    let at2 = ps(&c, n2);
    let mut nss: Vec<u32> = at2.iter().map(|r| r.ns).collect();
    nss.sort_unstable();
    assert_eq!(nss, [n2, n2, n2, n2, n3, n3, n4, n4], "ns {n2}'s subtree: {at2:#?}");
    assert_eq!(find(&at2, n3, "nsinit").pid, init3, "{at2:#?}");
    assert!(at2.iter().all(|r| r.name != "init"), "the root's init seen from ns {n2}");
    assert_eq!(ids(&proc_ns(&c, n2)), [n2, n3, n4]);

    ok(c.send("exit\n"));
    ok(c.expect(&prompt(1), STEP));
    // The root sees everyone, with both pids: its own (PID) and the namespace's (NSPID).
    let root = ps(&c, 1);
    assert_eq!(find(&root, 1, "init").pid, 1);
    let nsinit2 = find(&root, n2, "nsinit");
    assert_eq!((nsinit2.pid, nsinit2.nspid), (init2, 1), "ns {n2}'s init in the root: {root:#?}");
    // What lives on of each level (its init and its orphan; its shell and ps have exited).
    for (ns, view) in [(n2, &at2), (n3, &at3), (n4, &at4)] {
        let theirs: Vec<(u32, &str)> = view
            .iter()
            .filter(|r| r.ns == ns && r.name != "ps" && r.name != "sh")
            .map(|r| (r.nspid, r.name.as_str()))
            .collect();
        for (nspid, name) in theirs {
            assert!(
                root.iter().any(|r| r.ns == ns && r.nspid == nspid && r.name == name),
                "{name} (nspid {nspid}) of ns {ns} not in the root's ps: {root:#?}"
            );
        }
    }
    assert_eq!(root.iter().filter(|r| r.ns != 1).count(), 6, "{root:#?}");
    let lines = proc_ns(&c, 1);
    assert_eq!(ids(&lines), [1, n2, n3, n4], "/proc/ns in the root: {lines:#?}");
    // spawn's default is every kind: each container has its address on the container network,
    // the root 192.168.1.1.
    assert_eq!((lines[1].parent, lines[1].kinds.as_str(), lines[1].init), (1, "pid,fs,net", init2));
    assert_eq!(
        (lines[0].addr.as_str(), lines[1].addr.clone()),
        ("192.168.1.1", format!("192.168.1.{n2}"))
    );
    // Each root inside its parent's: /ns/2, /ns/2/ns/3, /ns/2/ns/3/ns/4.
    assert_eq!(ls(&c, 1, "/ns").unwrap(), [n2.to_string()]);
    assert_eq!(ls(&c, 1, &format!("/ns/{n2}/ns")).unwrap(), [n3.to_string()]);
    assert_eq!(ls(&c, 1, &format!("/ns/{n2}/ns/{n3}/ns")).unwrap(), [n4.to_string()]);

    // Killing ns2's init from the root ends everything in it and below, and removes the roots.
    run(&c, &format!("kill {init2}"));
    poll_until(&c, "ps", "the containers' processes gone", |out| {
        ps_rows(out).iter().all(|r| r.ns == 1)
    });
    poll_until(&c, "ls /ns", "the containers' roots removed", |out| {
        !out.lines().any(|l| {
            let name = l.split_whitespace().next().unwrap_or("");
            name == n2.to_string() || name.starts_with(".dead-")
        })
    });
    assert_eq!(ids(&proc_ns(&c, 1)), [1], "/proc/ns after the kill");
    assert_eq!(ls(&c, 1, "/ns").unwrap(), Vec::<String>::new());
    poweroff(c);
}

#[test]
fn a_container_is_isolated() {
    let (_dir, img) = common::image_with_programs("ns-isolated", &[]);
    let c = shell(&img);
    let echo_before = ls_line(&c, "/bin/echo");
    // The network kind alone: a namespace with an address of its own (this machine has no
    // NIC, so no stack to reach anything with: tests/netns.rs has one), killed again.
    let (net, _) = spawn_detached(&c, "--net sleep 100000");
    let line = proc_ns(&c, 1).into_iter().find(|l| l.id == net).expect("the network namespace");
    assert_eq!((line.kinds.as_str(), line.addr), ("net", format!("192.168.1.{net}")));
    // Without a pid namespace of its own there is no init whose death ends the others: its
    // nsinit and sleep are ordinary processes of the root's view, killed one by one.
    let members: Vec<u32> = ps(&c, 1).iter().filter(|r| r.ns == net).map(|r| r.pid).collect();
    assert!(!members.is_empty(), "no process in ns {net}");
    for pid in members {
        run(&c, &format!("kill {pid}"));
    }
    // A namespace with only pids and files has no address on the container network.
    let (plain, plain_init) = spawn_detached(&c, "--pid --fs sleep 100000");
    let line = proc_ns(&c, 1).into_iter().find(|l| l.id == plain).expect("the pid,fs namespace");
    assert_eq!((line.kinds.as_str(), line.addr.as_str()), ("pid,fs", "-"));
    run(&c, &format!("kill {plain_init}"));
    poll_until(&c, "cat /proc/ns", "both namespaces gone", |out| {
        let gone =
            |id: u32| !out.lines().any(|l| l.split_whitespace().next() == Some(&id.to_string()));
        gone(net) && gone(plain)
    });
    let out = run(&c, "spawn --bogus");
    assert!(says(&out, "usage: spawn"), "spawn --bogus: {out}");
    // `-p` is checked before anything is made: its syntax, a host port given twice, and the
    // network kind it needs when kinds are named.
    for (args, message) in [
        ("-p", "usage: spawn"),
        ("-p 8081 sh", "spawn: -p 8081: not HOSTPORT:PORT[/udp]"),
        ("-p 8081:0 sh", "spawn: -p 8081:0: a port is a number from 1 to 65535"),
        ("-p 8081:80/sctp sh", "spawn: -p 8081:80/sctp: the protocol is tcp or udp"),
        ("-p 8081:80 -p 8081:81/tcp sh", "8081:80/tcp and -p 8081:81/tcp: the same host port"),
        ("--pid --fs -p 8081:80 sh", "spawn: -p needs a network namespace"),
    ] {
        let out = run(&c, &format!("spawn {args}"));
        assert!(says(&out, message), "spawn {args}: {out}");
    }
    assert_eq!(ids(&proc_ns(&c, 1)), [1], "a refused spawn made a namespace");
    // A container may not turn the machine off: the shell answers the next command.
    let out = run(&c, "spawn poweroff");
    assert!(says(&out, "poweroff: operation not permitted"), "spawn poweroff: {out}");
    let spawned = out.lines().find_map(|l| l.strip_prefix("spawn: ns ")).expect("spawn's line");
    run(&c, &format!("kill {}", parse_spawned(spawned).1));
    poll_until(&c, "cat /proc/ns", "the poweroff container gone", |out| {
        let ids = out.lines().filter_map(|l| l.split_whitespace().next()?.parse::<u32>().ok());
        ids.count() == 1
    });
    // No namespace publishes a port: ps shows the table alone.
    let out = run(&c, "ps");
    assert!(!says(&out, " ports "), "ps: {out}");
    // Pid numbers overlap between views: give the root's processes numbers above any the
    // container will reach in this test, so that killing one by its root number inside can
    // only mean a process the container cannot see (30 pids: one `sh -c` with 29 commands).
    run(&c, &format!("sh -c '{}'", vec!["echo"; 29].join("; ")));
    // A sibling container, a root process, and the container under test, started from /www
    // (its working directory must not stay there).
    let (sibling, sibling_init) = spawn_detached(&c, "sleep 100000");
    run(&c, "sleep 100000 &");
    run(&c, "cd /www");
    let before = ps_until(&c, 1, "the two sleeps", |rows| {
        rows.iter().filter(|r| r.name == "sleep").count() == 2
    });
    let targets: Vec<u32> =
        before.iter().filter(|r| r.name == "sleep" || r.name == "nsinit").map(|r| r.pid).collect();
    assert_eq!(targets.len(), 3, "the sibling's init and sleep, the root's sleep: {before:#?}");
    assert!(targets.iter().all(|&p| p > 30), "pids meant to be above 30: {before:#?}");
    let (id, _) = enter(&c, 1, "sh");

    // Processes: it sees only its own.
    let rows = ps(&c, id);
    assert!(rows.iter().all(|r| r.ns == id), "{rows:#?}");
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let lines = proc_ns(&c, id);
    assert_eq!(ids(&lines), [id], "{lines:#?}");
    // Its init cannot be killed from inside; the sibling's and the root's processes cannot be
    // named at all (their root numbers are above 30; the container's are below 10 here).
    let out = run_in(&c, id, "kill 1");
    assert!(says(&out, "kill: 1: operation not permitted"), "{out}");
    for &pid in &targets {
        let out = run_in(&c, id, &format!("kill {pid}"));
        assert!(says(&out, &format!("kill: {pid}: no such process")), "{out}");
        let out = run_in(&c, id, &format!("cat /proc/{pid}"));
        assert!(says(&out, "no such file or directory"), "{out}");
    }

    // Files: its own root, whatever the route.
    let out = run_in(&c, id, "pwd");
    assert!(
        out.lines().any(|l| l == "/"),
        "the working directory did not start at the root: {out}"
    );
    assert_eq!(ls(&c, id, ".").unwrap(), ["etc", "tmp"], "the new root");
    for path in ["/README", "../../README", "/../README", "/www/index.html", "../www/index.html"] {
        let out = run_in(&c, id, &format!("cat {path}"));
        assert!(says(&out, &format!("cat: {path}: no such file or directory")), "{out}");
    }
    run_in(&c, id, "cd ..");
    assert!(run_in(&c, id, "pwd").lines().any(|l| l == "/"), "cd .. left the root");
    run_in(&c, id, "cd /tmp");
    let out = run_in(&c, id, "cat ../../../README");
    assert!(says(&out, "no such file or directory"), "{out}");
    run_in(&c, id, "cd ../../../..");
    assert!(run_in(&c, id, "pwd").lines().any(|l| l == "/"));
    assert_eq!(ls(&c, id, ".").unwrap(), ["etc", "tmp"], "cd ../../../.. from /tmp");

    // /bin: not there to list or write; programs with a slash in their name are looked up in
    // this root only; plain names still run the global /bin's programs.
    let err = ls(&c, id, "/bin").unwrap_err();
    assert!(err.contains("no such file or directory"), "{err}");
    for prog in ["../../bin/echo", "/bin/echo", "./../bin/echo"] {
        let out = run_in(&c, id, &format!("{prog} escaped"));
        assert!(says(&out, &format!("sh: {prog}: no such file or directory")), "{out}");
        assert!(!out.lines().any(|l| l == "escaped"), "{prog} ran: {out}");
    }
    let out = run_in(&c, id, "echo evil > /bin/echo");
    assert!(says(&out, "/bin/echo: no such file or directory"), "{out}");
    // Its own /bin is its own: writing there changes nothing of the global one, which `echo`
    // still runs.
    run_in(&c, id, "mkdir /bin");
    run_in(&c, id, "echo junk > /bin/echo");
    let out = run_in(&c, id, "echo still the real echo");
    assert!(out.lines().any(|l| l == "still the real echo"), "{out}");
    let out = run_in(&c, id, "cat /bin/echo");
    assert!(out.lines().any(|l| l == "junk"), "{out}");
    run_in(&c, id, "rm /bin/echo");

    // nspcopy: only into its own descendants.
    for (target, why) in [(1, "operation not permitted"), (sibling, "operation not permitted")] {
        let out = run_in(&c, id, &format!("nspcopy /etc/motd {target}"));
        assert!(says(&out, why), "nspcopy into {target}: {out}");
    }
    let out = run_in(&c, id, &format!("nspcopy /etc/motd {id}"));
    assert!(says(&out, "operation not permitted"), "nspcopy into itself: {out}");
    let out = run_in(&c, id, "nspcopy /etc/motd 9");
    assert!(says(&out, "no such process"), "nspcopy into no namespace: {out}");

    ok(c.send("exit\n"));
    ok(c.expect(&prompt(1), STEP));
    // Nothing outside was touched: the sibling and the root's sleep live, /bin/echo is the
    // same file, the container's /bin is in its root.
    let rows = ps(&c, 1);
    for pid in targets {
        assert!(rows.iter().any(|r| r.pid == pid), "{pid} is gone: {rows:#?}");
    }
    assert_eq!(find(&rows, sibling, "nsinit").pid, sibling_init);
    assert_eq!(ls_line(&c, "/bin/echo"), echo_before, "/bin/echo changed");
    assert_eq!(ls(&c, 1, &format!("/ns/{id}")).unwrap(), ["bin", "etc", "tmp"]);
    poweroff(c);
}

/// `ls PATH`'s line for a file: `NAME KIND INODE SIZE`.
fn ls_line(c: &Console, path: &str) -> String {
    let out = run(c, &format!("ls {path}"));
    out.lines()
        .find(|l| l.starts_with(path) && l.split_whitespace().count() == 4)
        .unwrap_or_else(|| panic!("no ls line for {path}:\n{out}"))
        .to_string()
}

/// Deterministic bytes for file `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = testkit::Rng::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

const MIB: usize = 1 << 20;
/// The several-MiB file copied into a container (not a whole number of blocks).
const BIG: usize = 3 * MIB + 12_345;
/// Bigger than the space left once `BIG` is copied: its copy runs out of space.
const HUGE: usize = 6 * MIB;
/// Free space on the image as built: room for one copy of `BIG` and a bit, then for a second
/// one once a failed copy has given its blocks back, never for `HUGE`.
const FREE: u64 = 8 << 20;

/// A standard image with the programs and `extra`, just large enough to leave about `free`
/// bytes of data blocks free.
fn image_with_free(name: &str, extra: &[(&str, Vec<u8>)], free: u64) -> (TempDir, PathBuf) {
    let dir = ok(TempDir::new(name));
    let path = dir.path().join("fs.img");
    // What the contents take does not depend on the image's size: measure it on a big one.
    let probe = 64 << 20;
    mkimage::programs::image_with(&path, probe, programs(), extra).expect("write image");
    let used = u64::from(mkimage::fsck::check(&path).expect("fsck").data_blocks);
    let block = 4096u64;
    let data_blocks = |size: u64| u64::from(Builder::new(size, 4096).unwrap().superblock().nblocks);
    let mut size = probe;
    while size > block && data_blocks(size - block) >= used + free / block {
        size -= block;
    }
    mkimage::programs::image_with(&path, size, programs(), extra).expect("write image");
    let report = mkimage::fsck::check(&path).expect("fsck");
    assert!(report.is_clean(), "{report}");
    let left = (data_blocks(size) - u64::from(report.data_blocks)) * block;
    assert!(left.abs_diff(free) < 64 << 10, "{left} bytes free, not about {free}");
    (dir, path)
}

#[test]
fn nspcopy_copies_whole_or_not_at_all() {
    let big = bytes(1, BIG);
    let extra = [
        ("/big", big.clone()),
        ("/tree/a", b"alpha\n".to_vec()),
        ("/tree/sub/b", b"beta\n".to_vec()),
        ("/tree/sub/deeper/c", b"gamma in the tree\n".to_vec()),
        ("/huge/a", b"first\n".to_vec()),
        ("/huge/sub/z", bytes(2, HUGE)),
    ];
    let (_dir, img) = image_with_free("ns-copy", &extra, FREE);
    let c = shell(&img);
    run(&c, "echo hello from the root > /note");
    // A container whose shell reads what was copied in once its `sleep` is killed.
    let (id, _) = spawn_detached(
        &c,
        "sh -c 'sleep 100000; cat /note; cat /tree/sub/deeper/c; wc /big /big2'",
    );
    let sleep = sleep_of(&c, id);
    let root = format!("/ns/{id}");

    for line in [
        format!("nspcopy /note {id}"),
        format!("nspcopy /big {id}"),
        format!("nspcopy -r /tree {id}"),
    ] {
        let out = run(&c, &line);
        assert!(!out.contains("nspcopy:"), "{line}: {out}");
    }
    let out = run(&c, "nspcopy /note 9");
    assert!(says(&out, "nspcopy: /note -> ns 9: no such process"), "{out}");
    let out = run(&c, &format!("nspcopy /note {id} /nowhere/note"));
    assert!(says(&out, "no such file or directory"), "{out}");
    let copied = ["big", "etc", "note", "tmp", "tree"];
    assert_eq!(ls(&c, 1, &root).unwrap(), copied);

    // Out of space, a tree and a file: nothing of either stays, not even a temporary, and
    // the inodes and blocks come back (a second copy of BIG fits again).
    let (_, inodes) = meminfo(&c);
    for line in [format!("nspcopy -r /huge {id}"), format!("nspcopy /huge/sub/z {id}")] {
        let out = run(&c, &line);
        assert!(says(&out, "no space left on device"), "{line}: {out}");
        assert_eq!(ls(&c, 1, &root).unwrap(), copied, "after {line}");
        assert_eq!(meminfo(&c).1, inodes, "free inodes after {line}");
    }
    let out = run(&c, &format!("nspcopy /big {id} /big2"));
    assert!(!out.contains("nspcopy:"), "a copy after the failed ones: {out}");

    // A copy killed half-way leaves nothing either (or, had it been done before the kill,
    // the whole file).
    let out = run(&c, &format!("nspcopy /big {id} /big3 &"));
    let job = out
        .lines()
        .find_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']')?.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no job pid: {out}"));
    run(&c, &format!("kill {job}"));
    ps_until(&c, 1, "the killed nspcopy gone", |rows| !rows.iter().any(|r| r.name == "nspcopy"));
    let names = ls(&c, 1, &root).unwrap();
    let mut with_big2 = copied.to_vec();
    with_big2.insert(1, "big2");
    if names.iter().any(|n| n == "big3") {
        let out = run(&c, &format!("ls {root}/big3"));
        assert!(says(&out, &format!(" {BIG}")), "a partial big3 after the kill: {out}");
    } else {
        assert_eq!(names, with_big2, "after the killed copy");
    }

    // A full disk: spawn cannot make a root and says so, leaving nothing.
    let out = run(&c, "cat /huge/sub/z > /fill");
    assert!(says(&out, "no space left on device"), "filling the disk: {out}");
    let before = meminfo(&c).1;
    let out = run(&c, "spawn -d");
    assert!(says(&out, "spawn: no space left on device"), "spawn on a full disk: {out}");
    assert_eq!(ids(&proc_ns(&c, 1)), [1, id], "namespaces after the failed spawn");
    assert_eq!(ls(&c, 1, "/ns").unwrap(), [id.to_string()], "/ns after the failed spawn");
    assert_eq!(meminfo(&c).1, before, "free inodes after the failed spawn");
    run(&c, "rm /fill");

    // Inside, the copies are there and whole.
    run(&c, &format!("kill {sleep}"));
    ok(c.expect("hello from the root", STEP));
    ok(c.expect("gamma in the tree", STEP));
    let wc = ok(c.expect(" /big2", STEP));
    for name in ["/big", "/big2"] {
        assert!(
            wc.lines().any(|l| l.split_whitespace().nth(2) == Some(&BIG.to_string())
                && l.trim_end().ends_with(name)),
            "wc inside: {wc}"
        );
    }
    poweroff(c);

    // And on the disk, byte for byte, with nothing leaked.
    let report = mkimage::fsck::check(&img).expect("fsck");
    assert!(report.is_clean(), "{report}");
    let image = Image::open(&img).unwrap();
    assert!(image.read_file(&format!("{root}/big")).unwrap() == big, "{root}/big differs");
    assert!(image.read_file(&format!("{root}/big2")).unwrap() == big, "{root}/big2 differs");
    assert_eq!(image.read_file(&format!("{root}/tree/sub/b")).unwrap(), b"beta\n");
    let mut names: Vec<String> =
        image.list_dir(&root).unwrap().into_iter().map(|e| e.name).collect();
    names.sort_unstable();
    names.retain(|n| n != "big3"); // (whole, if the killed copy was done before the kill)
    assert_eq!(names, [".", "..", "big", "big2", "etc", "note", "tmp", "tree"]);
}

/// What is left over after containers come and go: `(frames_free, inodes_free)`, the
/// processes, the namespaces and the container roots.
#[derive(Debug, PartialEq, Eq)]
struct Leftovers {
    meminfo: (u64, u64),
    processes: usize,
    namespaces: Vec<u32>,
    roots: Vec<String>,
}

fn leftovers(c: &Console) -> Leftovers {
    Leftovers {
        meminfo: meminfo(c),
        processes: ps(c, 1).len(),
        namespaces: ids(&proc_ns(c, 1)),
        roots: ls(c, 1, "/ns").unwrap_or_default(),
    }
}

/// Waits until what is left over is `want` (containers retire in the background).
fn settles_to(c: &Console, want: &Leftovers, after: &str) {
    let end = Instant::now() + SETTLE;
    loop {
        let now = leftovers(c);
        if now == *want {
            return;
        }
        assert!(Instant::now() < end, "after {after}: {now:#?}\nnot back to {want:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What is left over once no container is left: only the root namespace and the shell's
/// processes, nothing under /ns, and memory and inodes that stay put between two looks.
fn quiet(c: &Console) -> Leftovers {
    let end = Instant::now() + SETTLE;
    loop {
        let now = leftovers(c);
        let alone = now.namespaces == [1] && now.roots.is_empty() && now.processes == 3;
        if alone && meminfo(c) == now.meminfo {
            return now;
        }
        assert!(Instant::now() < end, "not quiet after {SETTLE:?}: {now:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The usertests cases on namespaces, as `usertests` names them.
const NS_CASES: &str =
    "ns-flags ns-views ns-depth ns-limit ns-no-procs nspcopy-errors wait-forever";

/// Runs `usertests CASES` at the root's shell; its output, once all passed.
fn usertests(c: &Console, cases: &str) -> String {
    ok(c.send(format!("usertests {cases}\n")));
    let out = ok(c.expect("\n$ ", BOOT)).replace('\r', "");
    assert!(out.contains("ALL TESTS PASSED"), "usertests {cases}:\n{out}");
    out
}

/// A shell script that makes a directory tree `DEEP` levels deep where it runs: deeper than
/// any fixed bound a recursive walk might keep (the kernel once kept 256).
const DEEP: usize = 300;

fn deep_script() -> Vec<u8> {
    "mkdir d\ncd d\n".repeat(DEEP).into_bytes()
}

/// Starts a container whose shell runs `/deep.sh` (copied in from the root), and waits until
/// it is done: its tree is then `DEEP` levels deep. Returns the namespace and its init's pid.
fn deep_container(c: &Console) -> (u32, u32) {
    let (_, inodes) = meminfo(c);
    let (id, init) = spawn_detached(c, "sh -c 'sleep 100000; sh /deep.sh'");
    run(c, &format!("nspcopy /deep.sh {id}"));
    let sleep = sleep_of(c, id);
    run(c, &format!("kill {sleep}"));
    poll_until(c, "ps", "the deep tree made", |out| {
        !ps_rows(out).iter().any(|r| r.ns == id && r.name != "nsinit")
    });
    // (Too long a path to type: count the directories by the inodes they took.)
    let (_, left) = meminfo(c);
    assert!(inodes - left > DEEP as u64, "{} inodes for {DEEP} directories", inodes - left);
    (id, init)
}

#[test]
fn bad_input_leaks_and_a_crash() {
    let (_dir, img) = common::image_with_programs("ns-leaks", &[("/deep.sh", deep_script())]);
    let c = shell(&img);
    // Bad input (the cases in user/src/bin/usertests/ns.rs), once to warm the kernel's caches
    // and heap up, then with 50 containers started and killed.
    let out = usertests(&c, NS_CASES);
    println!("{out}");
    let start = quiet(&c);
    let out = usertests(&c, &format!("ns-cycles {NS_CASES}"));
    println!("{out}");
    settles_to(&c, &start, "50 containers and the bad input");
    // A container's root is removed however deep the container made it.
    let (_, init) = deep_container(&c);
    run(&c, &format!("kill {init}"));
    settles_to(&c, &start, "a container with a deep tree");

    // The power is pulled with a container alive (with a deep tree) and another one just
    // killed (its root perhaps half removed): the next boot removes what is under /ns.
    deep_container(&c);
    let (killed, killed_init) = spawn_detached(&c, "sleep 100000");
    run(&c, &format!("nspcopy -r /www {killed}"));
    ok(c.send(format!("kill {killed_init}\n")));
    c.kill();
    drop(c);
    let c = shell(&img);
    assert!(
        c.output().contains("ns: removing"),
        "no container root removed at boot:\n{}",
        c.output()
    );
    assert_eq!(ls(&c, 1, "/ns").unwrap(), Vec::<String>::new(), "/ns after the crash");
    poweroff(c);
    let report = mkimage::fsck::check(&img).expect("fsck");
    assert!(report.is_clean(), "{report}");
}
