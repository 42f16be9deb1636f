//! `mkimage run`: boot the kernel with the serial console on this process's stdin and stdout.
//!
//! QEMU's stdio is not handed over directly: its output is copied to our stdout as it comes, and
//! our stdin is copied to the guest only once the kernel has printed `ready`. Input that
//! arrives earlier (`printf 'poweroff\n' | mkimage run`) would otherwise reach the UART before
//! the kernel initialises it, and the kernel's FIFO reset would drop it. The terminal stays in
//! its normal line mode, so a line is sent when Enter is pressed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::build;
use crate::cli::{DiskChoice, RunArgs};
use crate::console::{Console, Settings};
use crate::error::{Error, Result};
use crate::qemu::{self, Outcome};
use crate::udprelay::UdpRelay;

/// The disk `run` attaches when neither `--disk` nor `--no-disk` is given, if it exists: the
/// image `mkimage image` writes by default.
pub fn default_disk() -> PathBuf {
    crate::image::default_path()
}

/// The disk image for `choice`: the given path, none, or `default` when that file exists.
pub fn disk_for(choice: &DiskChoice, default: &Path) -> Option<PathBuf> {
    match choice {
        DiskChoice::Path(p) => Some(p.clone()),
        DiskChoice::None => None,
        DiskChoice::Default => default.is_file().then(|| default.to_path_buf()),
    }
}

/// A port from the environment variable `var`, or `default`.
fn port_from_env(var: &str, default: u16) -> Result<u16> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) => v.parse().map_err(|_| Error::Other(format!("{var}={v:?} is not a port number"))),
    }
}

/// The host ports `run` forwards from (always on 127.0.0.1): `HTTP_PORT` (default 8080) to
/// guest port 80, and `ECHO_PORT` (default 8007) to guest port 7, TCP and UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub echo: u16,
}

/// The guest port of the echo services (`tcpecho`, `udpecho`).
pub const ECHO_GUEST_PORT: u16 = 7;

impl Ports {
    pub fn from_env() -> Result<Ports> {
        Ok(Ports {
            http: port_from_env("HTTP_PORT", 8080)?,
            echo: port_from_env("ECHO_PORT", 8007)?,
        })
    }

    /// The TCP forwards, which slirp carries; UDP goes through [`UdpRelay`].
    pub fn tcp_forwards(self) -> Vec<qemu::HostForward> {
        vec![
            qemu::HostForward::tcp(self.http, 80),
            qemu::HostForward::tcp(self.echo, ECHO_GUEST_PORT),
        ]
    }
}

/// The QEMU options for these arguments and kernel ELF.
pub fn options(args: &RunArgs, kernel: PathBuf) -> qemu::Options {
    let mut opts = qemu::Options::new(kernel, args.cmdline.clone());
    opts.gdb = args.gdb;
    opts.disk = disk_for(&args.disk, &default_disk());
    opts
}

/// Builds the kernel, boots it and returns how QEMU ended.
pub fn run(args: &RunArgs) -> Result<Outcome> {
    let kernel = build::kernel(args.release)?;
    let mut opts = options(args, kernel.clone());
    let ports = Ports::from_env()?;
    // Lives until QEMU has exited.
    let relay = UdpRelay::start(ports.echo, ECHO_GUEST_PORT).map_err(|e| {
        Error::io(format!("UDP 127.0.0.1:{} (ECHO_PORT) for the echo relay", ports.echo), e)
    })?;
    opts.network =
        qemu::Network::User { forwards: ports.tcp_forwards(), frames: Some(relay.frame_port()) };
    if let Some(disk) = &opts.disk {
        if !disk.is_file() {
            return Err(Error::Other(format!("disk image {} does not exist", disk.display())));
        }
        if args.disk == DiskChoice::Default {
            eprintln!("mkimage: disk {} (--no-disk boots without it)", disk.display());
        }
    }
    if args.gdb {
        eprintln!(
            "mkimage: QEMU waits for gdb: gdb {} -ex 'target remote 127.0.0.1:{}'",
            kernel.display(),
            qemu::GDB_PORT
        );
    }
    let console = Arc::new(Console::spawn_with(opts, Settings { qmp: false, echo: true })?);
    let forward = Arc::clone(&console);
    // This thread may stay blocked reading stdin after QEMU exits; the process ends anyway.
    thread::spawn(move || {
        if forward.expect_line("ready", Duration::MAX).is_ok() {
            forward_stdin(&forward);
        }
    });
    let status = console.wait_exit(Duration::MAX)?;
    drop(relay);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_choice() {
        let dir = crate::console::TempDir::new("mkimage-run-test").unwrap();
        let present = dir.path().join("fs.img");
        std::fs::write(&present, b"").unwrap();
        let absent = dir.path().join("none.img");
        assert_eq!(disk_for(&DiskChoice::Default, &present), Some(present.clone()));
        assert_eq!(disk_for(&DiskChoice::Default, &absent), None);
        assert_eq!(disk_for(&DiskChoice::None, &present), None);
        assert_eq!(disk_for(&DiskChoice::Path(absent.clone()), &present), Some(absent.clone()));

        let args = RunArgs { disk: DiskChoice::Path(present.clone()), ..RunArgs::default() };
        assert_eq!(options(&args, "k".into()).disk, Some(present));
        let args = RunArgs { disk: DiskChoice::None, ..RunArgs::default() };
        assert_eq!(options(&args, "k".into()).disk, None);
        assert_eq!(default_disk(), crate::build::workspace_root().join("target/fs.img"));
    }
}
