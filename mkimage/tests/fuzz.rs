//! The system-call fuzzer (`user/src/bin/fuzz`) in the real kernel: a bounded pass with a
//! fixed seed (what `make fuzz` runs longer), judged by `mkimage::fuzz` (no kernel panic or
//! exception report, the fuzzer's end line with no hang, crash or odd result, a shell that
//! still answers), then the memory and inodes it used must come back. Also the usertests
//! cases about argument edges, on a guest with a network (the shell test has none).

mod common;

use std::time::{Duration, Instant};

use common::{kernel, ok, STEP};
use mkimage::console::Console;
use mkimage::fuzz::{self, Pass};

/// The seed and length of the pass: about 20 s of fuzzing under TCG, two batches at a time.
const SEED: u64 = 1;
const CALLS: usize = 12000;
/// Batches at once: two processes fuzzing side by side also meet each other's races.
const JOBS: usize = 2;
/// Nothing is left out of this pass (the `-x` list): every kind of call, mutated programs
/// for `exec` and renames onto ancestors included.
const LEFT_OUT: &str = "";
/// How long the memory the pass used may take to come back: closed TCP connections linger
/// for 30 s (`net::stack`'s CLOSE_LINGER_MS).
const SETTLE: Duration = Duration::from_secs(90);
/// Frames the kernel may keep after the pass: its heap grows in 1 MiB steps and keeps them.
const FRAME_SLACK: u64 = 1024;

/// Type `line` at the shell; everything printed up to the next prompt.
fn run(c: &Console, line: &str) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect("\n$ ", STEP)).replace('\r', "")
}

/// `/proc/meminfo` as the guest reads it: (frames free, inodes free).
fn meminfo(c: &Console) -> (u64, u64) {
    let out = run(c, "cat /proc/meminfo");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/meminfo:\n{out}"))
    };
    (field("frames_free"), field("inodes_free"))
}

#[test]
fn a_fuzz_pass_leaves_the_kernel_standing_and_leaks_nothing() {
    let (_dir, c) = ok(fuzz::boot(&kernel(), false));
    // Warm up the kernel's heap and caches the way the pass will (a short pass of its own),
    // so that what stays allocated afterwards is a leak, not the heap's working size.
    let warm = Pass { seed: SEED + 1000, calls: 300, jobs: 1, left_out: LEFT_OUT.into() };
    let v = ok(fuzz::run(&c, &warm));
    assert!(v.passed(), "warm-up pass: {:?}\n{}", v.problems, c.output());
    let (frames0, inodes0) = meminfo(&c);
    let free_before = run(&c, "free");

    let pass = Pass { seed: SEED, calls: CALLS, jobs: JOBS, left_out: LEFT_OUT.into() };
    let started = Instant::now();
    let v = ok(fuzz::run(&c, &pass));
    let took = started.elapsed();
    assert!(v.passed(), "`{}`: {:?}\n{}", pass.command(), v.problems, c.output());
    assert!(v.output.contains(&format!("fuzz: end: seed {SEED} calls {CALLS} ")), "{}", v.output);
    eprintln!("`{}` took {took:?}", pass.command());

    // The memory comes back once lingering connections are gone, every inode once the
    // kernel's task has freed the files the run unlinked while they were open.
    let deadline = Instant::now() + SETTLE;
    let (frames, inodes) = loop {
        let (frames, inodes) = meminfo(&c);
        let back = frames + FRAME_SLACK >= frames0 && inodes == inodes0;
        if back || Instant::now() >= deadline {
            break (frames, inodes);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let free_after = run(&c, "free");
    assert!(
        frames + FRAME_SLACK >= frames0,
        "frames free: {frames0} before the pass, {frames} after\n{free_before}\n{free_after}"
    );
    assert_eq!(inodes, inodes0, "inodes free before and after the pass\n{free_after}");
    ok(c.send("poweroff\n"));
    ok(c.wait_exit(STEP));
    let trouble = fuzz::kernel_trouble(&c.output());
    assert!(trouble.is_empty(), "{trouble:?}");
}

/// The usertests cases of `overflow.rs` (and `nonblocking-file`) where a network exists:
/// without one their datagram and socket parts are skipped.
#[test]
fn usertests_argument_edges_with_a_network() {
    let (_dir, c) = ok(fuzz::boot(&kernel(), false));
    let cases = "huge-timeouts kill-pid-range bad-buffer-keeps-data exec-arg-bytes socket-args \
                 nonblocking-file";
    ok(c.send(format!("usertests {cases}\n")));
    let out = ok(c.expect("TESTS", Duration::from_secs(300))) + &ok(c.expect("\n$ ", STEP));
    assert!(out.contains("ALL TESTS PASSED"), "{out}");
    assert!(!out.contains("skipped"), "a case found no network:\n{out}");
    ok(c.send("poweroff\n"));
    ok(c.wait_exit(STEP));
}
