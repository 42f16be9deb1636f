//! Wrong use of the mkimage command line gives a usage message and a non-zero exit; these
//! tests need neither the kernel nor QEMU.

mod common;

use common::mkimage_cli;

fn assert_usage_error(args: &[&str], message: &str) {
    let out = mkimage_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(stderr.contains("usage: mkimage"), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
}

#[test]
fn wrong_use_is_a_usage_error() {
    assert_usage_error(&[], "no command given");
    assert_usage_error(&["frobnicate"], "unknown command \"frobnicate\"");
    assert_usage_error(&["run", "--bogus"], "unknown option --bogus");
    assert_usage_error(&["run", "--cmdline"], "--cmdline needs a value");
    assert_usage_error(&["run", "stray"], "unexpected argument \"stray\"");
    assert_usage_error(&["bench-boot", "--runs", "zero"], "--runs wants a number");
    assert_usage_error(&["build", "--gdb"], "unknown option --gdb");
}

#[test]
fn help_goes_to_stdout() {
    for args in [&["help"][..], &["--help"], &["run", "-h"]] {
        let out = mkimage_cli(args);
        assert!(out.status.success(), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("usage: mkimage"), "{stdout}");
        for command in ["build", "run", "qemu-cmd", "bench-boot", "help"] {
            assert!(stdout.contains(command), "{command} missing from help");
        }
    }
}

#[test]
fn qemu_cmd_prints_the_command() {
    let out = mkimage_cli(&["qemu-cmd", "--cmdline", "fault=pagefault hz=50", "--gdb"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("qemu-system-x86_64 -machine pc "), "{line}");
    for part in [
        " -netdev user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:",
        "-:80,hostfwd=tcp:127.0.0.1:",
        " -device e1000,netdev=net0",
        " -serial stdio -display none -monitor none -no-reboot",
        " -device isa-debug-exit,iobase=0xf4,iosize=0x04",
        " -gdb tcp:127.0.0.1:1234 -S",
        "/target/kernel/x86_64-unknown-none/release/kernel",
        " -append 'fault=pagefault hz=50'",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line}");
    }
    assert!(!line.contains("-nic "), "run has a network, so no -nic none: {line}");
}

#[test]
fn qemu_cmd_disk_flags() {
    let out = mkimage_cli(&["qemu-cmd", "--disk", "/tmp/some disk.img"]);
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(
        line.contains(
            " -drive 'file=/tmp/some disk.img,format=raw,if=none,id=disk0,cache=writeback' \
             -device virtio-blk-pci,drive=disk0,disable-legacy=off "
        ),
        "{line}"
    );
    let out = mkimage_cli(&["qemu-cmd", "--no-disk"]);
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(!line.contains("-drive") && !line.contains("virtio"), "{line}");
}
