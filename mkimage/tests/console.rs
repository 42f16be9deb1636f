//! The console's line discipline in the real kernel (kernel/src/file/console.rs and ldisc.rs),
//! driven over the serial port with the kernel console reading the tty (no disk, so no init):
//! backspace and DEL, ^U, ^W, ^C, ^D, and CR LF as one Enter.

mod common;

use common::{boot, expect_poweroff, ok, STEP};

#[test]
fn line_editing_over_serial() {
    let c = boot("");
    // Each step waits for its echo before the next is typed, so the output is in order.
    ok(c.send("abc\x7fd\x08e\n"));
    ok(c.expect("echo: abe", STEP));
    ok(c.send("zzz\x15hello\n")); // ^U kills the line
    ok(c.expect("echo: hello", STEP));
    ok(c.send("one two  \x17three\n")); // ^W erases "two  "
    ok(c.expect("echo: one three", STEP));
    // ^C discards the line; with no foreground process it only gives a fresh prompt.
    ok(c.send("junk\x03"));
    ok(c.expect("junk^C", STEP));
    ok(c.send("after\n"));
    ok(c.expect("echo: after", STEP));
    // ^D delivers a partial line without its newline; at an empty line it is end of file.
    ok(c.send("part\x04"));
    ok(c.expect("echo: part", STEP));
    ok(c.send("\x04"));
    ok(c.send("x\r\ny\r\n"));
    ok(c.expect("echo: x", STEP));
    ok(c.expect("echo: y", STEP));
    ok(c.send("poweroff\n"));
    expect_poweroff(&c);
    let out = c.output();
    for never in ["echo: junk", "echo: zzz", "echo: abc", "echo: one two"] {
        assert!(!out.contains(never), "{never:?} in:\n{out}");
    }
    // CR LF is one Enter: no empty line (a bare prompt followed by another) between x and y.
    let between = &out[out.find("echo: x").unwrap()..out.find("echo: y").unwrap()];
    assert_eq!(between.matches("> ").count(), 1, "{between:?}");
}
