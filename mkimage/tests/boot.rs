//! Boots the real kernel under QEMU and checks what the host relies on (docs/01-foundation.md,
//! "What the host relies on"): the banner and `ready`, the console, the self tests, exception
//! reports, exit statuses, `mkimage run` and `make run`.
//! Each test starts its own QEMU; they may run in parallel.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    backtrace, boot, expect_poweroff, hex_field, kernel, line_with, ok, poweroff,
    run_with_deadline, spawn, with_own_ports, BOOT, STEP,
};
use mkimage::console::TempDir;
use mkimage::qemu::{self, Outcome};
use object::{Object, ObjectSymbol};

#[test]
fn boots_prints_banner_and_powers_off() {
    let c = spawn("");
    ok(c.expect("rustix-kernel", BOOT));
    ok(c.expect_line("ready", BOOT));
    let out = c.output();
    assert!(
        out.lines().any(|l| l.starts_with("rustix-kernel")),
        "no line starts with the banner:\n{out}"
    );
    ok(c.send("poweroff\n"));
    let status = expect_poweroff(&c);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn serial_line_echo() {
    let c = boot("");
    ok(c.send("hello world\n"));
    ok(c.expect("echo: hello world", STEP));
    poweroff(c);
}

#[test]
fn keyboard_line_echo_and_poweroff() {
    let c = boot("");
    ok(c.send_keys("hello kbd\n"));
    ok(c.expect("echo: hello kbd", STEP));
    ok(c.send_keys("poweroff\n"));
    expect_poweroff(&c);
}

#[test]
fn selftest_passes() {
    let c = spawn("selftest");
    ok(c.expect("selftest: disk skipped (no disk)", BOOT));
    ok(c.expect("selftest: PASS", STEP));
    expect_poweroff(&c);
}

const BLOCK: usize = 4096;

/// The blocks the kernel's disk self test writes on a disk of `n` blocks
/// (`disk_test_blocks` in kernel/src/selftest.rs).
fn disk_test_blocks(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> = [1, 2, 3, 64, n / 2, n.wrapping_sub(3), n.wrapping_sub(2), n - 1]
        .into_iter()
        .filter(|&b| b < n)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What the disk self test writes into `block` (`disk_pattern` in kernel/src/selftest.rs).
fn disk_pattern(block: u32) -> Vec<u8> {
    let mut b: Vec<u8> = (0..BLOCK as u32).map(|i| (i ^ block.wrapping_mul(97)) as u8).collect();
    b[..8].copy_from_slice(b"RXBLKTST");
    b[8..12].copy_from_slice(&block.to_le_bytes());
    b
}

/// Boots `selftest` with `image` as the disk; it must pass. Returns the serial output.
fn selftest_with_disk(image: &Path) -> String {
    let mut opts = qemu::Options::new(kernel(), "selftest");
    opts.disk = Some(image.to_path_buf());
    let c = common::spawn_with(opts);
    ok(c.expect("selftest: disk ok", BOOT));
    ok(c.expect("selftest: PASS", STEP));
    expect_poweroff(&c);
    c.output()
}

/// The disk self test on a blank 8 MiB disk: writes from several tasks at once, reads back,
/// out-of-range errors; then the host finds the patterns at the right offsets of the file, and
/// nothing anywhere else.
#[test]
fn selftest_writes_the_disk() {
    let dir = ok(TempDir::new("rustix-disk"));
    let image = dir.path().join("disk.img");
    std::fs::File::create(&image).unwrap().set_len(8 << 20).unwrap();
    let out = selftest_with_disk(&image);
    let line = line_with(&out, "disk: virtio-blk at");
    assert!(line.contains("2048 blocks (8 MiB)"), "{line}");
    assert!(!out.contains("restored"), "a blank disk keeps the patterns:\n{out}");
    let data = std::fs::read(&image).unwrap();
    assert_eq!(data.len(), 8 << 20, "the image changed size");
    let blocks = disk_test_blocks(2048);
    assert_eq!(blocks, [1, 2, 3, 64, 1024, 2045, 2046, 2047]);
    for (i, chunk) in data.chunks(BLOCK).enumerate() {
        let i = i as u32;
        if blocks.contains(&i) {
            assert!(chunk == disk_pattern(i), "block {i} does not hold its pattern");
        } else {
            assert!(chunk.iter().all(|&b| b == 0), "block {i} was written");
        }
    }
}

/// On a disk that holds data, the disk self test puts every block it wrote back as it was.
#[test]
fn selftest_restores_a_disk_with_data() {
    let dir = ok(TempDir::new("rustix-disk"));
    let image = dir.path().join("data.img");
    let size = 3 << 20; // 768 blocks
    let before: Vec<u8> = (0..size).map(|i: usize| (i / BLOCK * 7 + i % 251) as u8).collect();
    std::fs::write(&image, &before).unwrap();
    let out = selftest_with_disk(&image);
    assert!(out.contains("selftest: disk has data: original blocks restored"), "{out}");
    assert!(std::fs::read(&image).unwrap() == before, "the disk's contents changed");
}

#[test]
fn page_fault_is_reported_with_backtrace() {
    let c = boot("fault=pagefault");
    ok(c.expect("EXCEPTION", STEP));
    let status = ok(c.wait_exit(STEP));
    let out = c.output();
    assert_eq!(Outcome::from_status(status), Outcome::KernelCrashed, "{status}\n{out}");

    // Check everything, then report every problem at once.
    let mut problems = Vec::new();
    let line = line_with(&out, "EXCEPTION");
    if !line.contains("vector=14") {
        problems.push("the EXCEPTION line lacks vector=14".to_string());
    }
    match hex_field(line, "cr2") {
        Some(0xdea_dbee_f000) => {}
        Some(other) => problems.push(format!("cr2 is {other:#x}, not 0xdeadbeef000")),
        None => problems.push("the EXCEPTION line has no cr2=".to_string()),
    }
    let frames = backtrace(&out);
    if frames.len() < 2 {
        problems.push(format!("{} backtrace addresses, not at least 2", frames.len()));
    }
    match hex_field(line, "rip") {
        None => problems.push("the EXCEPTION line has no rip=".to_string()),
        Some(rip) => {
            let functions = symbols_named_like(&kernel(), "trigger_page_fault");
            if functions.is_empty() {
                problems.push("no symbol named like trigger_page_fault in the ELF".to_string());
            } else if !functions.iter().any(|(_, a, size)| (*a..a + size).contains(&rip)) {
                problems.push(format!("rip {rip:#x} is not inside {functions:x?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}\n--- serial output ---\n{out}", problems.join("\n"));
}

/// `(name, address, size)` of the ELF's symbols whose (mangled) name contains `part`.
fn symbols_named_like(elf: &std::path::Path, part: &str) -> Vec<(String, u64, u64)> {
    let data = std::fs::read(elf).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .filter_map(|s| {
            let name = s.name().ok()?;
            name.contains(part).then(|| (name.to_string(), s.address(), s.size()))
        })
        .collect()
}

#[test]
fn stack_overflow_is_a_reported_double_fault() {
    let c = spawn("fault=stackoverflow");
    ok(c.expect("EXCEPTION", BOOT));
    // The handler must finish its report (not a silent triple fault: with -no-reboot that
    // would end QEMU with status 0).
    ok(c.expect("backtrace:", STEP));
    let status = ok(c.wait_exit(STEP));
    let out = c.output();
    assert_eq!(Outcome::from_status(status), Outcome::KernelCrashed, "{status}\n{out}");
    let line = line_with(&out, "EXCEPTION");
    assert!(line.contains("vector=8"), "{line}");
    for key in ["error", "rip", "cr2"] {
        assert!(hex_field(line, key).is_some(), "no {key}= in {line}");
    }
}

/// 80x25 text mode: a character byte then an attribute byte per cell.
fn vga_text(mem: &[u8]) -> String {
    mem.iter().step_by(2).map(|&b| b as char).collect()
}

/// The bytes of `xp /Nbx ADDR` output: `00000000000b8000: 0x72 0x0f ...` lines.
fn parse_xp(text: &str) -> Vec<u8> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .flat_map(|(_, bytes)| bytes.split_whitespace())
        .map(|b| u8::from_str_radix(b.trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// The screen as 25 rows of text, for messages.
fn rows(screen: &str) -> String {
    screen
        .as_bytes()
        .chunks(80)
        .map(|r| String::from_utf8_lossy(r).trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn vga_screen_shows_banner() {
    let c = boot("");
    // Read twice, through the human monitor's `xp` and through `pmemsave`. The kernel may still
    // be drawing (a prompt, say) between the reads, so each is checked on its own.
    let from_hmp = parse_xp(&ok(c.hmp("xp /4000bx 0xb8000")));
    assert_eq!(from_hmp.len(), 4000);
    let from_pmemsave = ok(c.read_guest_phys(0xb8000, 4000));
    assert_eq!(from_pmemsave.len(), 4000);
    for (how, mem) in [("xp", &from_hmp), ("pmemsave", &from_pmemsave)] {
        let screen = vga_text(mem);
        assert!(
            screen.contains("rustix-kernel"),
            "banner not on the VGA screen (read with {how}):\n{}",
            rows(&screen)
        );
    }
}

/// Runs the mkimage binary with `stdin` as its input, killing it at the deadline.
fn mkimage(args: &[&str], stdin: &[u8], deadline: Duration) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mkimage"));
    cmd.args(args);
    with_own_ports(&mut cmd);
    run_with_deadline(cmd, stdin, deadline)
}

/// Also the disk flags: `--no-disk` (so this test never touches the workspace's
/// target/fs.img, which `run` would attach by default), `--disk PATH`, and a missing PATH.
#[test]
fn mkimage_run_forwards_stdin_and_maps_status() {
    kernel(); // build first, so the child's nested build is quick
    let (code, out) = mkimage(&["run", "--no-disk"], b"hello run\npoweroff\n", BOOT + STEP);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("echo: hello run"), "{out}");
    assert!(!out.contains("disk: virtio-blk"), "{out}");
    let dir = ok(TempDir::new("rustix-run-disk"));
    let image = dir.path().join("blank.img");
    std::fs::File::create(&image).unwrap().set_len(1 << 20).unwrap();
    let image = image.to_str().unwrap();
    let args = ["run", "--disk", image, "--cmdline", "fault=pagefault"];
    let (code, out) = mkimage(&args, b"", BOOT + STEP);
    assert_eq!(code, Some(101), "{out}");
    assert!(out.contains("EXCEPTION"), "{out}");
    assert!(out.contains("disk: virtio-blk at ") && out.contains(", 256 blocks (1 MiB)"), "{out}");
    let missing = dir.path().join("missing.img");
    let (code, out) = mkimage(&["run", "--disk", missing.to_str().unwrap()], b"", STEP);
    assert_eq!(code, Some(1), "{out}");
}

/// The README's one-liner, literally: `make run` builds the image (programs in /bin) when
/// needed, init starts the shell, and the typed lines run in order: a pipeline, usertests,
/// and `poweroff`, which ends QEMU with status 0.
#[test]
fn make_run_one_liner_runs_the_shell() {
    kernel();
    let mut cmd = Command::new("make");
    cmd.args(["-s", "run"]).current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    with_own_ports(&mut cmd);
    // The first `make run` also builds mkimage, the programs and the image: allow for that.
    let (code, out) = run_with_deadline(cmd, b"echo hi | wc\nusertests\npoweroff\n", BOOT * 10);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.lines().any(|l| l.trim() == "ready"), "no `ready` line:\n{out}");
    // Typed-ahead input is echoed before sh starts, so the count may follow a prompt.
    let counts = out.lines().any(|l| {
        l.trim().trim_start_matches("$ ").split_whitespace().collect::<Vec<_>>() == ["1", "1", "3"]
    });
    assert!(counts, "no `1 1 3` from `echo hi | wc`:\n{out}");
    assert!(out.contains("ALL TESTS PASSED"), "usertests did not pass:\n{out}");
}

/// The debug kernel (unoptimised, as `mkimage build --debug` makes it) boots from a disk to
/// the shell, runs a command that creates a file, and powers off. Unoptimised async code has
/// poll frames many times larger than release's: this kernel once double faulted at boot (the
/// executor's stack overflowed while mounting the disk), and then in `open(O_CREAT)` (a
/// process's kernel stack overflowed in the file system's `create`).
#[test]
fn debug_kernel_boots_to_the_shell_and_creates_a_file() {
    let debug = ok(mkimage::build::kernel(false));
    let (_dir, image) = common::image_with_programs("rustix-debug", &[]);
    let mut opts = qemu::Options::new(debug, "");
    opts.disk = Some(image);
    let c = common::boot_to_shell(opts);
    let out = common::run(&c, "echo made in debug > /debug.txt; cat /debug.txt");
    assert!(out.lines().any(|l| l.trim() == "made in debug"), "{out}");
    poweroff(c);
}
