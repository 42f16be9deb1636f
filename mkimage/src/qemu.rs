//! The QEMU command line (every flag lives in [`args`]) and the meaning of QEMU's exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The QEMU binary, found on `PATH`.
pub const QEMU: &str = "qemu-system-x86_64";

/// The TCP port of QEMU's gdb stub (on 127.0.0.1).
pub const GDB_PORT: u16 = 1234;

/// The guest's NIC model when it has a network (the driver in `drivers/` targets it).
pub const NIC_MODEL: &str = "e1000";

/// The guest's disk controller when it has a disk: virtio-blk on PCI. `disable-legacy=off`
/// keeps the legacy (virtio 0.9) register interface, which the kernel's driver speaks; the
/// device then shows up as PCI 1af4:1001.
pub const DISK_DEVICE: &str = "virtio-blk-pci,drive=disk0,disable-legacy=off";

/// How QEMU caches the disk image: `writeback` (QEMU's default, spelled out). Writes go through
/// the host's page cache: a write the guest saw complete is in the image file, even if QEMU is
/// killed right after, and the guest's flush command (the driver negotiates it) fsyncs the file.
/// (`unsafe` would ignore those flushes; `writethrough`/`none` would only be slower here.)
pub const DISK_CACHE: &str = "writeback";

/// A TCP port forward from `127.0.0.1:host_port` on this machine to `guest_port` in the guest.
/// The host address is always loopback: nothing else on this machine is ever exposed. (UDP
/// cannot be forwarded by restricted slirp; [`crate::udprelay`] does it through a [`FramePort`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostForward {
    pub host_port: u16,
    pub guest_port: u16,
}

impl HostForward {
    pub fn tcp(host_port: u16, guest_port: u16) -> Self {
        HostForward { host_port, guest_port }
    }
}

/// A second way into the guest's Ethernet: QEMU's `-netdev dgram` over unix datagram
/// sockets, one raw frame per datagram. QEMU binds `qemu` and sends to `peer`. No IP address
/// is involved, so nothing outside this machine can reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramePort {
    pub qemu: PathBuf,
    pub peer: PathBuf,
    pub attach: Attach,
}

/// Where a [`FramePort`] meets the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// On the NIC's own segment: a QEMU hub shared with slirp. The port sees every frame the
    /// guest sends (QEMU copies each one to it), and may inject any.
    Hub,
    /// On a second NIC of its own (same MAC), which the kernel uses for UDP only: the port
    /// sees the guest's UDP and nothing else, and TCP through slirp pays nothing for it.
    UdpNic,
}

/// The guest's network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Network {
    /// No NIC at all (`-nic none`; without it QEMU would add an unrestricted user-net NIC).
    #[default]
    None,
    /// QEMU user networking, always with `restrict=on` (no packet leaves this machine), and
    /// host forwards on 127.0.0.1; and a frame port, if any, attached as it says.
    User { forwards: Vec<HostForward>, frames: Option<FramePort> },
}

impl Network {
    /// User networking with these TCP forwards and no frame port.
    pub fn user(forwards: Vec<HostForward>) -> Network {
        Network::User { forwards, frames: None }
    }
}

/// Everything that varies between QEMU runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The kernel ELF, booted through its PVH note.
    pub kernel: PathBuf,
    /// The kernel command line (`-append`).
    pub cmdline: String,
    pub network: Network,
    /// A raw disk image, attached as a virtio-blk PCI device (`-drive ...,if=none` plus
    /// `-device virtio-blk-pci`); `None`: no disk.
    pub disk: Option<PathBuf>,
    /// A QMP control socket (`-qmp unix:PATH,server=on,wait=off`), for tests.
    pub qmp_socket: Option<PathBuf>,
    /// Start stopped, waiting for a debugger on 127.0.0.1:1234 (`-gdb tcp:127.0.0.1:1234 -S`:
    /// QEMU's `-s` shorthand would listen on every interface).
    pub gdb: bool,
}

impl Options {
    /// No network, no QMP, no gdb.
    pub fn new(kernel: impl Into<PathBuf>, cmdline: impl Into<String>) -> Self {
        Options {
            kernel: kernel.into(),
            cmdline: cmdline.into(),
            network: Network::None,
            disk: None,
            qmp_socket: None,
            gdb: false,
        }
    }
}

/// QEMU splits option values at commas; a literal comma is written twice.
fn escape_commas(path: &Path) -> OsString {
    path.to_string_lossy().replace(',', ",,").into()
}

/// The machine every guest gets, ours and the Linux peer alike (same CPU, memory, cores).
const MACHINE: [&str; 8] = ["-machine", "pc", "-cpu", "qemu64", "-m", "512M", "-smp", "1"];

/// The Linux peer for `mkimage bench-sys`: Debian's kernel with an initramfs, no network,
/// serial on stdio, on the same machine as our guests.
pub fn linux_peer_command(vmlinuz: &Path, initrd: &Path) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args(MACHINE);
    cmd.arg("-kernel").arg(vmlinuz).arg("-initrd").arg(initrd);
    cmd.args(["-append", "console=ttyS0 quiet panic=-1"]);
    cmd.args(["-serial", "stdio", "-display", "none", "-monitor", "none", "-no-reboot"]);
    cmd.args(["-nic", "none"]);
    cmd
}

/// The arguments attaching `disk` (a raw image) as our guests' disk: virtio-blk on PCI.
pub fn disk_args(disk: &Path) -> Vec<OsString> {
    let mut drive = OsString::from("file=");
    drive.push(escape_commas(disk));
    drive.push(format!(",format=raw,if=none,id=disk0,cache={DISK_CACHE}"));
    vec!["-drive".into(), drive, "-device".into(), DISK_DEVICE.into()]
}

/// The guest's MAC address: QEMU's default, spelled out because the UDP relay addresses
/// frames to it.
pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The NIC and its backends for `net`.
fn network_args(net: &Network) -> Vec<OsString> {
    let (forwards, frames) = match net {
        Network::None => return vec!["-nic".into(), "none".into()],
        Network::User { forwards, frames } => (forwards, frames),
    };
    let mut netdev = String::from("user,id=net0,restrict=on");
    for f in forwards {
        netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host_port, f.guest_port));
    }
    let mut a: Vec<OsString> = vec!["-netdev".into(), netdev.into()];
    let mac = GUEST_MAC.map(|b| format!("{b:02x}")).join(":");
    let device = |netdev: &str| -> [OsString; 2] {
        ["-device".into(), format!("{NIC_MODEL},netdev={netdev},mac={mac}").into()]
    };
    let Some(fp) = frames else {
        a.extend(device("net0"));
        return a;
    };
    let mut dgram = OsString::from("dgram,id=frames0,local.type=unix,local.path=");
    dgram.push(escape_commas(&fp.qemu));
    dgram.push(",remote.type=unix,remote.path=");
    dgram.push(escape_commas(&fp.peer));
    a.extend(["-netdev".into(), dgram]);
    match fp.attach {
        Attach::Hub => {
            for port in [
                "hubport,id=hub0slirp,hubid=0,netdev=net0",
                "hubport,id=hub0frames,hubid=0,netdev=frames0",
                "hubport,id=hub0nic,hubid=0",
            ] {
                a.extend(["-netdev".into(), port.into()]);
            }
            a.extend(device("hub0nic"));
        }
        Attach::UdpNic => {
            // In this order: the kernel takes the first E1000 on the bus for the main card.
            a.extend(device("net0"));
            a.extend(device("frames0"));
        }
    }
    a
}

/// All of QEMU's arguments for these options.
pub fn args(opts: &Options) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&MACHINE);
    // Serial on stdio and no display: a clean serial stream (`-nographic` would mix the monitor
    // and escape codes into it). No reboot: a triple fault ends QEMU instead of looping.
    push(&["-serial", "stdio", "-display", "none", "-monitor", "none", "-no-reboot"]);
    push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    a.extend(network_args(&opts.network));
    if let Some(disk) = &opts.disk {
        a.extend(disk_args(disk));
    }
    if let Some(sock) = &opts.qmp_socket {
        let mut v = OsString::from("unix:");
        v.push(escape_commas(sock));
        v.push(",server=on,wait=off");
        a.push("-qmp".into());
        a.push(v);
    }
    if opts.gdb {
        a.push("-gdb".into());
        a.push(format!("tcp:127.0.0.1:{GDB_PORT}").into());
        a.push("-S".into());
    }
    a.push("-kernel".into());
    a.push(opts.kernel.clone().into_os_string());
    a.push("-append".into());
    a.push(opts.cmdline.clone().into());
    a
}

/// The QEMU command for these options (stdio not yet configured).
pub fn command(opts: &Options) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args(args(opts));
    cmd
}

/// Exit code of `mkimage run` when the kernel crashed (panic or exception).
pub const EXIT_KERNEL_CRASHED: i32 = 101;
/// Exit code of `mkimage run` when the in-kernel self tests failed.
pub const EXIT_SELFTEST_FAILED: i32 = 102;

/// What QEMU's exit status says about the kernel. isa-debug-exit turns a guest write of `v`
/// into status `(v << 1) | 1`; an ACPI power-off gives 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Status 0: ACPI power-off (`poweroff`, or a passing self test).
    PowerOff,
    /// Status 3 (isa-debug-exit 1): kernel panic or CPU exception.
    KernelCrashed,
    /// Status 5 (isa-debug-exit 2): a self test failed.
    SelftestFailed,
    /// Anything else: another status, or `None` when QEMU was killed by a signal.
    Other(Option<i32>),
}

impl Outcome {
    /// From a raw exit code (`None`: killed by a signal).
    pub fn from_code(code: Option<i32>) -> Self {
        match code {
            Some(0) => Outcome::PowerOff,
            Some(3) => Outcome::KernelCrashed,
            Some(5) => Outcome::SelftestFailed,
            other => Outcome::Other(other),
        }
    }

    pub fn from_status(status: ExitStatus) -> Self {
        Self::from_code(status.code())
    }

    /// The exit code `mkimage run` returns: 0, 101, 102 or 1.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::PowerOff => 0,
            Outcome::KernelCrashed => EXIT_KERNEL_CRASHED,
            Outcome::SelftestFailed => EXIT_SELFTEST_FAILED,
            Outcome::Other(_) => 1,
        }
    }

    /// Words for humans.
    pub fn describe(self) -> String {
        match self {
            Outcome::PowerOff => "powered off".into(),
            Outcome::KernelCrashed => "kernel crashed".into(),
            Outcome::SelftestFailed => "self-test failed".into(),
            Outcome::Other(Some(c)) => format!("QEMU exited with unexpected status {c}"),
            Outcome::Other(None) => "QEMU was killed by a signal".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(opts: &Options) -> Vec<String> {
        args(opts).into_iter().map(|a| a.into_string().unwrap()).collect()
    }

    /// The value following each occurrence of `flag`.
    fn values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    /// The networking rule, checked on any argument list: every user-mode netdev has
    /// `restrict=on`, no `-nic` other than `none`, and a list without `-netdev` has `-nic none`.
    fn assert_network_rule(a: &[String]) {
        let netdevs = values(a, "-netdev");
        for n in &netdevs {
            if n.starts_with("user") {
                assert!(
                    n.split(',').any(|kv| kv == "restrict=on"),
                    "-netdev {n} lacks restrict=on"
                );
            }
        }
        for nic in values(a, "-nic") {
            assert_eq!(nic, "none", "only -nic none is allowed");
        }
        if netdevs.is_empty() {
            assert_eq!(values(a, "-nic"), ["none"], "no network needs -nic none");
        }
        for n in &netdevs {
            for kv in n.split(',').filter(|kv| kv.starts_with("hostfwd=")) {
                assert!(kv.starts_with("hostfwd=tcp:127.0.0.1:"), "{kv} not on loopback");
            }
            // The only other backends: hub ports, and frames over unix sockets (no address).
            let kind = n.split(',').next().unwrap();
            assert!(["user", "hubport", "dgram"].contains(&kind), "-netdev {n}");
            if kind == "dgram" {
                for kv in n.split(',').filter(|kv| kv.contains(".type=")) {
                    assert!(kv.ends_with(".type=unix"), "-netdev {n}: {kv}");
                }
            }
        }
    }

    #[test]
    fn base_flags() {
        let a = strings(&Options::new("/k/kernel", "selftest hz=100"));
        let expected = [
            "-machine",
            "pc",
            "-cpu",
            "qemu64",
            "-m",
            "512M",
            "-smp",
            "1",
            "-serial",
            "stdio",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-nic",
            "none",
            "-kernel",
            "/k/kernel",
            "-append",
            "selftest hz=100",
        ];
        assert_eq!(a, expected);
        assert_network_rule(&a);
        assert!(!a.iter().any(|x| x == "-enable-kvm" || x == "-nographic"));
    }

    #[test]
    fn no_network_means_nic_none() {
        let a = strings(&Options::new("k", ""));
        assert_eq!(values(&a, "-nic"), ["none"]);
        assert!(values(&a, "-netdev").is_empty());
        assert_network_rule(&a);
    }

    #[test]
    fn user_network_is_restricted() {
        for forwards in [
            vec![],
            vec![HostForward::tcp(8080, 80)],
            vec![HostForward::tcp(5555, 80), HostForward::tcp(5556, 7)],
        ] {
            let mut opts = Options::new("k", "");
            opts.network = Network::user(forwards.clone());
            let a = strings(&opts);
            assert_network_rule(&a);
            let netdevs = values(&a, "-netdev");
            assert_eq!(netdevs.len(), 1);
            assert!(netdevs[0].starts_with("user,id=net0,restrict=on"));
            assert_eq!(netdevs[0].matches("hostfwd=").count(), forwards.len());
            assert!(values(&a, "-nic").is_empty());
            assert_eq!(
                values(&a, "-device"),
                [
                    "isa-debug-exit,iobase=0xf4,iosize=0x04",
                    "e1000,netdev=net0,mac=52:54:00:12:34:56"
                ]
            );
        }
        let mut opts = Options::new("k", "");
        opts.network = Network::user(vec![HostForward::tcp(8080, 80)]);
        assert!(strings(&opts)
            .contains(&"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80".to_string()));
    }

    #[test]
    fn a_frame_port_puts_the_nic_on_a_hub() {
        let mut opts = Options::new("k", "");
        opts.network = Network::User {
            forwards: vec![HostForward::tcp(8080, 80)],
            frames: Some(FramePort {
                qemu: "/t/a,b/q.sock".into(),
                peer: "/t/r.sock".into(),
                attach: Attach::Hub,
            }),
        };
        let a = strings(&opts);
        assert_network_rule(&a);
        assert_eq!(
            values(&a, "-netdev"),
            [
                "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:8080-:80",
                "dgram,id=frames0,local.type=unix,local.path=/t/a,,b/q.sock,\
                 remote.type=unix,remote.path=/t/r.sock",
                "hubport,id=hub0slirp,hubid=0,netdev=net0",
                "hubport,id=hub0frames,hubid=0,netdev=frames0",
                "hubport,id=hub0nic,hubid=0",
            ]
        );
        assert_eq!(values(&a, "-device")[1], "e1000,netdev=hub0nic,mac=52:54:00:12:34:56");
    }

    /// `make run`'s network: the HTTP and echo forwards and a published range, all on the
    /// one restricted slirp, and the relay's frame port on a second NIC of its own (never on
    /// a hub: QEMU would copy every TCP frame to it).
    #[test]
    fn published_ports_are_forwarded_and_udp_has_its_own_nic() {
        let ports = crate::run::Ports::new(8080, 8007, "8081-8089").unwrap();
        let mut opts = Options::new("k", "");
        opts.network = Network::User {
            forwards: ports.tcp_forwards(),
            frames: Some(FramePort {
                qemu: "/t/q.sock".into(),
                peer: "/t/r.sock".into(),
                attach: Attach::UdpNic,
            }),
        };
        let a = strings(&opts);
        assert_network_rule(&a);
        let netdevs = values(&a, "-netdev");
        let users: Vec<&&str> =
            netdevs.iter().filter(|n| n.split(',').next() == Some("user")).collect();
        assert_eq!(users.len(), 1, "one slirp carries every TCP forward: {netdevs:?}");
        let fwds: Vec<&str> =
            users[0].split(',').filter_map(|kv| kv.strip_prefix("hostfwd=")).collect();
        let mut want = vec!["tcp:127.0.0.1:8080-:80".to_string(), "tcp:127.0.0.1:8007-:7".into()];
        want.extend((8081..=8089).map(|p| format!("tcp:127.0.0.1:{p}-:{p}")));
        assert_eq!(fwds, want);
        assert_eq!(
            netdevs[1..],
            ["dgram,id=frames0,local.type=unix,local.path=/t/q.sock,\
              remote.type=unix,remote.path=/t/r.sock"]
        );
        // The main card first: the kernel takes the first E1000 on the bus for it.
        assert_eq!(
            values(&a, "-device")[1..],
            [
                "e1000,netdev=net0,mac=52:54:00:12:34:56",
                "e1000,netdev=frames0,mac=52:54:00:12:34:56"
            ]
        );
        // Without published ports, only the two fixed forwards.
        opts.network =
            Network::user(crate::run::Ports::new(8080, 8007, "none").unwrap().tcp_forwards());
        let a = strings(&opts);
        assert_network_rule(&a);
        assert_eq!(values(&a, "-netdev")[0].matches("hostfwd=").count(), 2);
    }

    #[test]
    fn qmp_and_gdb() {
        let mut opts = Options::new("k", "");
        opts.qmp_socket = Some("/tmp/a,b/qmp.sock".into());
        opts.gdb = true;
        let a = strings(&opts);
        assert_eq!(values(&a, "-qmp"), ["unix:/tmp/a,,b/qmp.sock,server=on,wait=off"]);
        assert!(a.windows(3).any(|w| w == ["-gdb", "tcp:127.0.0.1:1234", "-S"]));
        assert!(!a.iter().any(|x| x == "-s"), "-s would listen on every interface");
        let plain = strings(&Options::new("k", ""));
        assert!(!plain.iter().any(|x| x == "-gdb" || x == "-S" || x == "-qmp"));
    }

    #[test]
    fn disk_is_a_virtio_blk_drive() {
        let mut opts = Options::new("k", "");
        opts.disk = Some("/tmp/my,disk.img".into());
        let a = strings(&opts);
        assert_eq!(
            values(&a, "-drive"),
            ["file=/tmp/my,,disk.img,format=raw,if=none,id=disk0,cache=writeback"]
        );
        assert_eq!(
            values(&a, "-device"),
            [
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "virtio-blk-pci,drive=disk0,disable-legacy=off"
            ]
        );
        assert_network_rule(&a);
        // The disk comes before -kernel/-append, which stay last.
        assert_eq!(a[a.len() - 4..], ["-kernel", "k", "-append", ""]);
        let plain = strings(&Options::new("k", ""));
        assert!(values(&plain, "-drive").is_empty());
        assert!(!plain.iter().any(|x| x.contains("virtio")));
    }

    #[test]
    fn command_uses_qemu_binary() {
        let cmd = command(&Options::new("k", ""));
        assert_eq!(cmd.get_program(), QEMU);
    }

    #[test]
    fn status_mapping() {
        assert_eq!(Outcome::from_code(Some(0)), Outcome::PowerOff);
        assert_eq!(Outcome::from_code(Some(3)), Outcome::KernelCrashed);
        assert_eq!(Outcome::from_code(Some(5)), Outcome::SelftestFailed);
        assert_eq!(Outcome::from_code(Some(1)), Outcome::Other(Some(1)));
        assert_eq!(Outcome::from_code(None), Outcome::Other(None));
        let codes: Vec<i32> = [Some(0), Some(3), Some(5), Some(1), Some(7), Some(255), None]
            .into_iter()
            .map(|c| Outcome::from_code(c).exit_code())
            .collect();
        assert_eq!(codes, [0, 101, 102, 1, 1, 1, 1]);
    }

    #[test]
    fn status_from_exit_status() {
        use std::os::unix::process::ExitStatusExt;
        // Wait statuses: exit code in the high byte, a signal in the low bits.
        assert_eq!(Outcome::from_status(ExitStatus::from_raw(0)), Outcome::PowerOff);
        assert_eq!(Outcome::from_status(ExitStatus::from_raw(3 << 8)), Outcome::KernelCrashed);
        assert_eq!(Outcome::from_status(ExitStatus::from_raw(5 << 8)), Outcome::SelftestFailed);
        assert_eq!(Outcome::from_status(ExitStatus::from_raw(9)), Outcome::Other(None));
    }
}
