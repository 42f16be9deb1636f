//! `mkimage run`: boot the kernel with the serial console on this process's stdin and stdout.
//!
//! QEMU's stdio is not handed over directly: its output is copied to our stdout as it comes, and
//! our stdin is copied to the guest only once the kernel has printed `ready`. Input that
//! arrives earlier (`printf 'poweroff\n' | mkimage run`) would otherwise reach the UART before
//! the kernel initialises it, and the kernel's FIFO reset would drop it. The terminal stays in
//! its normal line mode, so a line is sent when Enter is pressed.

use std::io::Read;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::build;
use crate::cli::RunArgs;
use crate::console::{Console, Settings};
use crate::error::Result;
use crate::qemu::{self, Outcome};

/// The QEMU options for these arguments and kernel ELF.
pub fn options(args: &RunArgs, kernel: std::path::PathBuf) -> qemu::Options {
    let mut opts = qemu::Options::new(kernel, args.cmdline.clone());
    opts.gdb = args.gdb;
    opts
}

/// Builds the kernel, boots it and returns how QEMU ended.
pub fn run(args: &RunArgs) -> Result<Outcome> {
    let kernel = build::kernel(args.release)?;
    if args.gdb {
        eprintln!(
            "mkimage: QEMU waits for gdb: gdb {} -ex 'target remote 127.0.0.1:{}'",
            kernel.display(),
            qemu::GDB_PORT
        );
    }
    let console =
        Arc::new(Console::spawn_with(options(args, kernel), Settings { qmp: false, echo: true })?);
    let forward = Arc::clone(&console);
    // This thread may stay blocked reading stdin after QEMU exits; the process ends anyway.
    thread::spawn(move || {
        if forward.expect_line("ready", Duration::MAX).is_ok() {
            forward_stdin(&forward);
        }
    });
    let status = console.wait_exit(Duration::MAX)?;
    Ok(Outcome::from_status(status))
}

/// Copies this process's stdin to the guest's serial port until end of file.
fn forward_stdin(console: &Console) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 1024];
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if console.send(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}
