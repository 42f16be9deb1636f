//! Containers end to end: namespaces for processes and files, typed at the shell as a user
//! would (`spawn`, `ps`, `kill`, `nspcopy`, `ls`), through the serial console.

mod common;

use common::{ok, run, STEP};
use mkimage::console::Console;

/// Type `line` in a container's shell and return what it printed up to its next prompt.
fn run_in(c: &Console, ns: u32, line: &str) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect(&format!("\nns{ns}$ "), STEP)).replace('\r', "")
}

#[test]
fn smoke() {
    let (_dir, img) = common::image_with_programs("ns-smoke", &[]);
    let c = common::shell(&img);
    ok(c.send("spawn sh\n"));
    ok(c.expect("ns2$ ", STEP));
    let out = run_in(&c, 2, "ps");
    println!("{out}");
    let out = run_in(&c, 2, "ls /");
    println!("{out}");
    let out = run_in(&c, 2, "cat /etc/motd");
    println!("{out}");
    ok(c.send("exit\n"));
    let out = ok(c.expect("\n$ ", STEP));
    println!("{out}");
    let out = run(&c, "ps");
    println!("{out}");
    let out = run(&c, "cat /proc/ns");
    println!("{out}");
    let out = run(&c, "ls /ns");
    println!("{out}");
    common::poweroff(c);
}
