//! User space end to end: boot an image with the user programs in /bin, let init start the
//! shell, and type at it through the serial console exactly as a user would.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{ok, poweroff, run, shell, STEP};
use mkimage::console::{Console, TempDir};

/// A fresh image with the programs in /bin.
fn image(name: &str) -> (TempDir, PathBuf) {
    common::image_with_programs(name, &[])
}

#[test]
fn pipelines_redirection_ps_pwd() {
    let (_dir, img) = image("shell");
    let c = shell(&img);
    let out = run(&c, "echo hello world | wc");
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "2", "12"]),
        "{out}"
    );
    run(&c, "echo one two > /tmp.txt");
    let out = run(&c, "cat < /tmp.txt");
    assert!(out.contains("one two"), "{out}");
    let out = run(&c, "cat /etc/motd | grep rustix | wc");
    assert!(out.lines().any(|l| l.trim().starts_with('1')), "{out}");
    run(&c, "mkdir /d1; cd /d1; mkdir d2; cd d2");
    let out = run(&c, "pwd");
    assert!(out.lines().any(|l| l.trim() == "/d1/d2"), "{out}");
    let out = run(&c, "ps");
    assert!(out.contains("init") && out.contains("sh") && out.contains("ps"), "{out}");
    poweroff(c);
}

#[test]
fn kill_background_job_and_ctrl_c() {
    let (_dir, img) = image("jobs");
    let c = shell(&img);
    let out = run(&c, "sleep 100000 &");
    let pid: u32 = out
        .split(|ch: char| !ch.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no pid printed for the background job:\n{out}"));
    // `ps` lines are `PID NS NSPID PPID STATE NAME`: find the job by pid and name.
    let listed = |out: &str| {
        out.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 6 && w[0] == pid.to_string() && w[5] == "sleep"
        })
    };
    let out = run(&c, "ps");
    assert!(listed(&out), "background job {pid} not in ps:\n{out}");
    run(&c, &format!("kill {pid}"));
    let out = run(&c, "ps");
    assert!(!listed(&out), "killed job {pid} still in ps:\n{out}");
    // ^C stops a foreground program and the shell prompts again.
    // The job prints once it runs, in its own group, the console's foreground (a child takes
    // it before it runs its program): a ^C typed before that would be the shell's empty line.
    ok(c.send("sh -c 'echo sleeping; sleep 100000'\n"));
    ok(c.expect("\nsleeping", STEP));
    ok(c.send("\x03"));
    ok(c.expect("^C", STEP));
    ok(c.expect("$ ", STEP)); // the shell prompts once its foreground job is gone
    let out = run(&c, "echo after");
    assert!(out.lines().any(|l| l.trim() == "after"), "{out}");
    poweroff(c);
}

/// One CPU: with two busy loops running in the background, the shell still answers, so
/// user mode is preempted (the time slice ends even for a process that never enters the
/// kernel), and killing them gives the CPU back.
#[test]
fn cpu_bound_processes_are_preempted() {
    let (_dir, img) = image("spin");
    let c = shell(&img);
    let mut pids = Vec::new();
    for _ in 0..2 {
        let out = run(&c, "spin &");
        let pid: u32 = out
            .split(|ch: char| !ch.is_ascii_digit())
            .filter_map(|w| w.parse().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no pid for `spin &`:\n{out}"));
        pids.push(pid);
    }
    let out = run(&c, "echo still answering");
    assert!(out.lines().any(|l| l.trim() == "still answering"), "{out}");
    for pid in pids {
        run(&c, &format!("kill {pid}"));
    }
    let out = run(&c, "ps");
    assert!(!out.contains("spin"), "spinners still listed after kill:\n{out}");
    poweroff(c);
}

/// Run usertests to its verdict and the next prompt; the whole output of the run.
fn usertests(c: &Console) -> String {
    ok(c.send("usertests\n"));
    let out = ok(c.expect("TESTS", Duration::from_secs(600)));
    let rest = ok(c.expect("\n$ ", STEP)); // the verdict line is complete once sh prompts
    format!("{out}{rest}")
}

/// `/proc/meminfo` as the guest's own reader sees it: (frames free, inodes free).
fn meminfo(c: &Console) -> (u64, u64) {
    let out = run(c, "cat /proc/meminfo");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/meminfo:\n{out}"))
    };
    (field("frames_free"), field("inodes_free"))
}

/// usertests passes, and (after a first run has grown the kernel heap to its working size)
/// a second run gives back every physical frame and every inode it used.
#[test]
fn usertests_pass_and_leak_nothing() {
    let (_dir, img) = image("usertests");
    let c = shell(&img);
    let first = usertests(&c);
    assert!(first.contains("ALL TESTS PASSED"), "usertests failed:\n{first}");
    let before = meminfo(&c);
    let second = usertests(&c);
    assert!(second.contains("ALL TESTS PASSED"), "usertests failed on the second run:\n{second}");
    let after = meminfo(&c);
    assert_eq!(after, before, "(frames free, inodes free) before and after usertests");
    poweroff(c);
}

/// Crafted program files (issue 9: a copy of `/bin/echo` with a bad program-header offset or
/// entry size, or cut short) are refused with "exec format error" (ENOEXEC): the shell
/// reports it and goes on, and the kernel does not panic.
#[test]
fn crafted_programs_are_exec_format_errors() {
    let crafted = common::crafted_echo();
    let files: Vec<(String, Vec<u8>)> =
        crafted.iter().map(|(name, bytes)| (format!("/bad/{name}"), bytes.clone())).collect();
    let extra: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let (_dir, img) = common::image_with_programs("crafted", &extra);
    let c = shell(&img);
    for (path, _) in &files {
        let out = run(&c, path);
        assert!(
            out.contains(&format!("sh: {path}: exec format error")),
            "{path}: no exec format error:\n{out}\n--- serial output:\n{}",
            c.output()
        );
        let out = run(&c, "echo ok");
        assert!(out.lines().any(|l| l.trim() == "ok"), "after {path}:\n{out}");
    }
    assert!(!c.output().contains("PANIC"), "{}", c.output());
    poweroff(c);
}
