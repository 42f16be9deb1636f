//! Consoles and `attach` end to end (issue 12), typed at the serial console as a user would:
//! each container that `attach` is asked for gets a virtual console with a shell on it; the
//! kernel's input task routes what is typed to the one in front, `^P ^Q` goes back, and what a
//! console's programs print while it is behind is replayed when it comes to the front. Also
//! `^C` on a whole pipeline (process groups).
//!
//! - [`attach_type_detach_and_scrollback`]: attach to a container, type a command there, go
//!   back with `^P ^Q` and with `attach 1`; what a background job in the container printed
//!   while the root was in front is not shown then, and is replayed on the next attach;
//!   `/proc/ns`'s `front` column follows.
//! - [`attach_rules`]: from a container, a sibling is refused (`EPERM`), a namespace that does
//!   not exist is `ESRCH`, a nested container below it may be attached to.
//! - [`ctrl_c_ends_the_whole_pipeline`]: `^C` on `spin | spin | ...` ends every process of it.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{ok, poweroff, run, shell, STEP};
use mkimage::console::{Console, TempDir};

/// How long an asynchronous effect (a process reaped after a kill) may take to show.
const SETTLE: Duration = Duration::from_secs(30);

fn image(name: &str) -> (TempDir, PathBuf) {
    common::image_with_programs(name, &[])
}

/// The prompt of a container's shell.
fn prompt(ns: u32) -> String {
    format!("ns{ns}$ ")
}

/// Types `line` at the shell of container `ns` (in front); its output up to the next prompt.
fn run_in(c: &Console, ns: u32, line: &str) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect(&format!("\n{}", prompt(ns)), STEP)).replace('\r', "")
}

/// `spawn -d` at the root's shell: a container with only its init; its id.
fn container(c: &Console) -> u32 {
    let out = run(c, "spawn -d");
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("spawn: ns "))
        .unwrap_or_else(|| panic!("no `spawn: ns` line:\n{out}"));
    line.split_whitespace().next().and_then(|w| w.parse().ok()).unwrap()
}

/// The separator shown when the console of `ns` comes to the front.
fn separator(ns: u32) -> String {
    format!("--- ns {ns} console")
}

/// Types `attach ID` and waits for that console to be in front with its shell's prompt; what
/// was shown from the separator on.
fn attach(c: &Console, ns: u32) -> String {
    ok(c.send(format!("attach {ns}\n")));
    in_front(c, ns)
}

/// Types `^P ^Q` and waits for the console of `ns` to be in front with its prompt.
fn detach(c: &Console, ns: u32) -> String {
    ok(c.send("\x10\x11"));
    in_front(c, ns)
}

/// Waits for the console of `ns` to come to the front, and for its shell's prompt (that
/// shell printed it into the console's ring after its own `attach` returned, or prints it now:
/// either way after the separator).
fn in_front(c: &Console, ns: u32) -> String {
    ok(c.expect(&separator(ns), STEP));
    let p = if ns == 1 { "$ ".to_string() } else { prompt(ns) };
    ok(c.expect(&p, STEP)).replace('\r', "")
}

/// `ps` rows `(pid, ns, name)` of the processes that are not zombies (a container's shell
/// reaps its background jobs only when it runs a command).
fn ps(c: &Console) -> Vec<(u32, u32, String)> {
    run(c, "ps")
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.len() != 6 || w[4] == "zombie" {
                return None;
            }
            Some((w[0].parse().ok()?, w[1].parse().ok()?, w[5].to_string()))
        })
        .collect()
}

/// `ps` at the root until `done` holds; the rows.
fn ps_until(
    c: &Console,
    what: &str,
    done: impl Fn(&[(u32, u32, String)]) -> bool,
) -> Vec<(u32, u32, String)> {
    let end = Instant::now() + SETTLE;
    loop {
        let rows = ps(c);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < end, "{what}: not after {SETTLE:?}: {rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/proc/ns`'s last column (`front`) by namespace id, as the root reads it.
fn fronts(c: &Console) -> Vec<(u32, String)> {
    run(c, "cat /proc/ns")
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 8).then(|| Some((w[0].parse().ok()?, w.last()?.to_string())))?
        })
        .collect()
}

#[test]
fn attach_type_detach_and_scrollback() {
    let (_dir, img) = image("attach");
    let c = shell(&img);
    let n = container(&c);
    assert_eq!(fronts(&c), [(1, "1".into()), (n, "0".into())], "before attach");

    // Attach: a shell starts in the container, on its console, which comes to the front.
    let shown = attach(&c, n);
    assert!(shown.contains("^P ^Q: back"), "{shown}");
    let out = run_in(&c, n, "echo typed-inside");
    assert!(out.lines().any(|l| l.trim() == "typed-inside"), "{out}");
    let out = run_in(&c, n, "cat /proc/ns");
    let line = out.lines().find(|l| l.starts_with(&format!("{n} "))).unwrap_or("");
    assert!(line.ends_with(" 1"), "the container's own line, in front:\n{out}");
    // Its processes: the container's init (pid 1 there) and the shell attach started.
    let out = run_in(&c, n, "ps");
    assert!(out.contains("nsinit") && out.contains(" sh"), "{out}");

    // A background job that prints once the root kills its sleep (no race with the detach).
    run_in(&c, n, "sh -c 'sleep 100000; echo hello-from-bg' &");
    detach(&c, 1);
    let rows = ps_until(&c, "the background sleep", |r| {
        r.iter().any(|(_, ns, name)| *ns == n && name == "sleep")
    });
    let sleep = rows.iter().find(|(_, ns, name)| *ns == n && name == "sleep").unwrap().0;
    run(&c, &format!("kill {sleep}"));
    // The job's sh echoes and exits: left in the container are its init and the shell.
    ps_until(&c, "the background job's end", |r| {
        r.iter().filter(|(_, ns, _)| *ns == n).count() == 2
    });
    assert_eq!(fronts(&c), [(1, "1".into()), (n, "0".into())], "after ^P ^Q");
    let before = c.output();

    // Attach again: the same shell (no new one, so no new prompt: it waits at the one shown
    // before ^P ^Q), and what the job printed is replayed.
    ok(c.send(format!("attach {n}\n")));
    ok(c.expect(&separator(n), STEP));
    ok(c.expect("hello-from-bg", STEP));
    let out = c.output();
    let behind = &out[before.len()..];
    let from = behind.find(&separator(n)).expect("the separator");
    assert!(
        !behind[..from].contains("hello-from-bg"),
        "printed while behind, shown anyway:\n{behind}"
    );
    let out = run_in(&c, n, "ps");
    assert_eq!(out.matches(" sh").count(), 1, "one shell in the container:\n{out}");

    // `attach 1` typed in the container goes back to the root.
    attach(&c, 1);
    assert_eq!(fronts(&c), [(1, "1".into()), (n, "0".into())], "after attach 1");
    let out = run(&c, "echo root-again");
    assert!(out.lines().any(|l| l.trim() == "root-again"), "{out}");

    // The container's shell exits: its console leaves the front, and the next attach starts
    // a new shell there.
    ok(c.send(format!("attach {n}\n")));
    ok(c.expect(&separator(n), STEP));
    ok(c.send("exit\n"));
    in_front(&c, 1);
    let out = run(&c, "echo after-exit");
    assert!(out.lines().any(|l| l.trim() == "after-exit"), "{out}");
    attach(&c, n);
    let out = run_in(&c, n, "echo new-shell");
    assert!(out.lines().any(|l| l.trim() == "new-shell"), "{out}");
    // Only the root may turn the machine off: back to its console first.
    attach(&c, 1);
    poweroff(c);
}

#[test]
fn attach_rules() {
    let (_dir, img) = image("attachrules");
    let c = shell(&img);
    let a = container(&c);
    let b = container(&c);
    attach(&c, a);
    // A sibling: refused.
    let out = run_in(&c, a, &format!("attach {b}"));
    assert!(out.contains(&format!("attach: {b}: operation not permitted")), "{out}");
    // No such namespace.
    let out = run_in(&c, a, "attach 60");
    assert!(out.contains("attach: 60: no such process"), "{out}");
    let out = run_in(&c, a, "attach 0");
    assert!(out.contains("attach: 0: no such process"), "{out}");
    // A name that no namespace it can see has.
    let out = run_in(&c, a, "attach web");
    assert!(out.contains("web: no such namespace"), "{out}");
    // A container of its own below it: allowed, and ^P ^Q comes back here.
    let out = run_in(&c, a, "spawn -d");
    let inner: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("spawn: ns "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `spawn: ns` line:\n{out}"));
    attach(&c, inner);
    let out = run_in(&c, inner, "echo deep");
    assert!(out.lines().any(|l| l.trim() == "deep"), "{out}");
    detach(&c, a);
    let out = run_in(&c, a, "echo back-in-a");
    assert!(out.lines().any(|l| l.trim() == "back-in-a"), "{out}");
    // And ^P ^Q again: the root, where the user came from first.
    detach(&c, 1);
    let out = run(&c, "echo home");
    assert!(out.lines().any(|l| l.trim() == "home"), "{out}");
    poweroff(c);
}

#[test]
fn ctrl_c_ends_the_whole_pipeline() {
    let (_dir, img) = image("pgrp");
    let c = shell(&img);
    // The last command prints once its process is in the pipeline's group, the console's
    // foreground (each child sets both before it runs its program).
    ok(c.send("spin | spin | sh -c 'echo pipeline-ready; cat'\n"));
    ok(c.expect("\npipeline-ready", STEP));
    ok(c.send("\x03"));
    ok(c.expect("^C", STEP));
    ok(c.expect("\n$ ", STEP)); // every process of the pipeline is gone: the shell prompts
    let rows = ps_until(&c, "the pipeline's end", |r| {
        !r.iter().any(|(_, _, name)| name == "spin" || name == "cat")
    });
    // init, the shell and ps: the inner sh is gone too.
    assert_eq!(rows.iter().filter(|(_, _, name)| name == "sh").count(), 1, "{rows:?}");
    // The shell took the foreground back: ^C at the prompt is only a new prompt.
    ok(c.send("\x03"));
    ok(c.expect("\n$ ", STEP));
    let out = run(&c, "echo still-here");
    assert!(out.lines().any(|l| l.trim() == "still-here"), "{out}");
    poweroff(c);
}
