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
use crate::udprelay::{UdpForward, UdpRelay};

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
/// guest port 80 (TCP), `ECHO_PORT` (default 8007) to guest port 7 (TCP and UDP), and each port
/// of `PUBLISH_PORTS` (default `8081-8089`) to the same guest port (TCP and UDP): the ports
/// containers publish with `spawn -p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ports {
    pub http: u16,
    pub echo: u16,
    /// Sorted, no duplicates, none equal to `http` or `echo`.
    pub publish: Vec<u16>,
}

/// The guest port of the echo services (`tcpecho`, `udpecho`).
pub const ECHO_GUEST_PORT: u16 = 7;

/// `PUBLISH_PORTS` when it is not set.
pub const DEFAULT_PUBLISH: &str = "8081-8089";

/// The most ports `PUBLISH_PORTS` may name: each is a listening TCP socket in QEMU and a UDP
/// socket in the relay.
pub const MAX_PUBLISH: usize = 100;

/// A set of ports as `PUBLISH_PORTS` gives it: ports (`8081`) and ranges (`8081-8089`) joined by
/// commas; empty or `none` for no port. Sorted, without duplicates; port 0, a reversed range
/// and more than [`MAX_PUBLISH`] ports are errors.
pub fn parse_port_set(s: &str) -> std::result::Result<Vec<u16>, String> {
    let s = s.trim();
    if s.is_empty() || s == "none" {
        return Ok(Vec::new());
    }
    let port = |p: &str| match p.trim().parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("{p:?} is not a port from 1 to 65535")),
        Ok(p) => Ok(p),
    };
    let mut out = Vec::new();
    for item in s.split(',') {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(item)?, port(item)?),
        };
        if first > last {
            return Err(format!("{item:?}: the range is reversed"));
        }
        if usize::from(last - first) >= MAX_PUBLISH || out.len() > MAX_PUBLISH {
            return Err(format!("more than {MAX_PUBLISH} ports"));
        }
        out.extend(first..=last);
    }
    out.sort_unstable();
    out.dedup();
    if out.len() > MAX_PUBLISH {
        return Err(format!("more than {MAX_PUBLISH} ports"));
    }
    Ok(out)
}

/// `ports` (sorted) as [`parse_port_set`] reads them, runs of consecutive ports as ranges.
pub fn show_port_set(ports: &[u16]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let mut j = i;
        while j + 1 < ports.len() && ports[j + 1] == ports[j].wrapping_add(1) {
            j += 1;
        }
        items.push(if i == j {
            ports[i].to_string()
        } else {
            format!("{}-{}", ports[i], ports[j])
        });
        i = j + 1;
    }
    if items.is_empty() {
        "none".into()
    } else {
        items.join(",")
    }
}

impl Ports {
    pub fn from_env() -> Result<Ports> {
        let publish = std::env::var("PUBLISH_PORTS").unwrap_or_else(|_| DEFAULT_PUBLISH.into());
        Ports::new(port_from_env("HTTP_PORT", 8080)?, port_from_env("ECHO_PORT", 8007)?, &publish)
    }

    /// From `HTTP_PORT`, `ECHO_PORT` and `PUBLISH_PORTS`' values: a host port forwarded twice is
    /// an error (QEMU would refuse it less clearly).
    pub fn new(http: u16, echo: u16, publish: &str) -> Result<Ports> {
        let publish = parse_port_set(publish)
            .map_err(|e| Error::Other(format!("PUBLISH_PORTS={publish:?}: {e}")))?;
        if http == echo {
            return Err(Error::Other(format!("HTTP_PORT and ECHO_PORT are both {http}")));
        }
        for (var, port) in [("HTTP_PORT", http), ("ECHO_PORT", echo)] {
            if publish.contains(&port) {
                return Err(Error::Other(format!("PUBLISH_PORTS includes {var}'s port {port}")));
            }
        }
        Ok(Ports { http, echo, publish })
    }

    /// The TCP forwards, which slirp carries; UDP goes through [`UdpRelay`].
    pub fn tcp_forwards(&self) -> Vec<qemu::HostForward> {
        let mut f = vec![
            qemu::HostForward::tcp(self.http, 80),
            qemu::HostForward::tcp(self.echo, ECHO_GUEST_PORT),
        ];
        f.extend(self.publish.iter().map(|&p| qemu::HostForward::tcp(p, p)));
        f
    }

    /// The UDP forwards, which the relay carries: the echo port and the published ones.
    pub fn udp_forwards(&self) -> Vec<UdpForward> {
        let mut f = vec![UdpForward::new(self.echo, ECHO_GUEST_PORT)];
        f.extend(self.publish.iter().map(|&p| UdpForward::new(p, p)));
        f
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
    let relay = UdpRelay::start_many(&ports.udp_forwards())
        .map_err(|e| Error::io("the UDP relay (ECHO_PORT, PUBLISH_PORTS)", e))?;
    if !ports.publish.is_empty() {
        eprintln!(
            "mkimage: 127.0.0.1 ports {} forwarded to the same guest ports, TCP and UDP \
             (PUBLISH_PORTS; for spawn -p)",
            show_port_set(&ports.publish)
        );
    }
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
    fn port_sets() {
        let p = |s: &str| parse_port_set(s);
        assert_eq!(p(DEFAULT_PUBLISH), Ok((8081..=8089).collect::<Vec<u16>>()));
        assert_eq!(p(""), Ok(vec![]));
        assert_eq!(p("none"), Ok(vec![]));
        assert_eq!(p(" 9000 "), Ok(vec![9000]));
        assert_eq!(p("9003,9001-9002,9001"), Ok(vec![9001, 9002, 9003]));
        assert_eq!(p("1,65535"), Ok(vec![1, 65535]));
        assert_eq!(p("65500-65535").map(|v| v.len()), Ok(36));
        for bad in [
            "0",
            "x",
            "8081-",
            "-8081",
            "8089-8081",
            "8081,",
            "65536",
            "1-200",
            "1-50,60-110",
            "8081:80",
            "8081-8082-8083",
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        for set in ["none", "8081", "8081-8089", "1,3-4,6,65534-65535"] {
            assert_eq!(show_port_set(&p(set).unwrap()), set);
        }
    }

    #[test]
    fn forwards_for_the_ports() {
        let ports = Ports::new(8080, 8007, "8081-8083").unwrap();
        let tcp: Vec<(u16, u16)> =
            ports.tcp_forwards().iter().map(|f| (f.host_port, f.guest_port)).collect();
        assert_eq!(tcp, [(8080, 80), (8007, 7), (8081, 8081), (8082, 8082), (8083, 8083)]);
        let udp: Vec<(u16, u16)> =
            ports.udp_forwards().iter().map(|f| (f.host_port, f.guest_port)).collect();
        assert_eq!(udp, [(8007, 7), (8081, 8081), (8082, 8082), (8083, 8083)]);
        let none = Ports::new(8080, 8007, "none").unwrap();
        assert_eq!(none.tcp_forwards().len(), 2);
        assert_eq!(none.udp_forwards().len(), 1);
        // A host port forwarded twice, or a bad set, is refused with the variable's name.
        for (http, echo, publish, var) in [
            (8081, 8007, "8081-8089", "HTTP_PORT"),
            (8080, 8085, "8081-8089", "ECHO_PORT"),
            (8080, 8080, "none", "ECHO_PORT"),
            (8080, 8007, "8089-8081", "PUBLISH_PORTS"),
        ] {
            let e = Ports::new(http, echo, publish).unwrap_err().to_string();
            assert!(e.contains(var), "{e}");
        }
    }

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
