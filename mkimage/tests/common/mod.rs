//! Shared by mkimage's integration tests: building the kernel and the user programs once per
//! test binary, booting them in QEMU (to the kernel's `ready`, or to the shell's prompt),
//! typing at the shell, powering off, and running the `mkimage` binary.
//!
//! These helpers stay here rather than in the workspace's test crate (`testkit/`): they are
//! built on the mkimage library and on the `mkimage` binary, which cargo builds for this
//! package's tests only (`CARGO_BIN_EXE_mkimage`). What is not about QEMU or mkimage
//! (`block_on`, the seeded `Rng`) is in `testkit`.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mkimage::console::{Console, Settings};
use mkimage::qemu::{FramePort, HostForward, Network, Options, Outcome};
use mkimage::udprelay::{UdpForward, UdpRelay};

/// Booting under TCG on a loaded two-core machine: generous.
pub const BOOT: Duration = Duration::from_secs(60);
/// One step after boot (an echo, an exception report, the power-off).
pub const STEP: Duration = Duration::from_secs(30);

/// Unwraps with the error's Display, which carries the whole serial output.
pub fn ok<T>(r: mkimage::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The release kernel ELF, built once per test binary.
pub fn kernel() -> PathBuf {
    static KERNEL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    KERNEL
        .get_or_init(|| mkimage::build::kernel(true).map_err(|e| e.to_string()))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Starts QEMU on the kernel with `cmdline` (with a QMP socket).
pub fn spawn(cmdline: &str) -> Console {
    ok(Console::spawn(kernel(), cmdline))
}

/// Starts QEMU with `opts` (a disk, a network...).
pub fn spawn_with(opts: Options) -> Console {
    ok(Console::spawn_with(opts, Settings::default()))
}

/// Starts QEMU on the release kernel with `cmdline` and `disk` attached.
pub fn spawn_with_disk(disk: &Path, cmdline: &str) -> Console {
    let mut opts = Options::new(kernel(), cmdline);
    opts.disk = Some(disk.to_path_buf());
    spawn_with(opts)
}

/// Starts QEMU and waits for the line `ready`.
pub fn boot(cmdline: &str) -> Console {
    let console = spawn(cmdline);
    ok(console.expect_line("ready", BOOT));
    console
}

/// Starts QEMU with `opts` (which name a disk with `/bin/init`) and waits for the shell's
/// first prompt.
pub fn boot_to_shell(opts: Options) -> Console {
    let c = spawn_with(opts);
    ok(c.expect("init: starting sh", BOOT));
    ok(c.expect("$ ", BOOT));
    c
}

/// Boots the release kernel from `disk` to the shell's first prompt.
pub fn shell(disk: &Path) -> Console {
    let mut opts = Options::new(kernel(), "");
    opts.disk = Some(disk.to_path_buf());
    boot_to_shell(opts)
}

/// Types `line` at the shell and returns everything printed up to the next prompt (the
/// shell's prompt is `$ ` at the start of a line; the search position is always just past the
/// previous one), without carriage returns.
pub fn run(c: &Console, line: &str) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect("\n$ ", STEP)).replace('\r', "")
}

/// The network test files' tests on both network designs: the default design's test `$name`
/// and the sleep design's `sleep_design_$name` (kernel command line `net=sleep`,
/// docs/06-async-vs-sleep.md), both running `$body(design)`.
#[allow(unused_macros)] // used by the network test files only
macro_rules! both_designs {
    ($name:ident, $sleep:ident, $body:ident) => {
        #[test]
        fn $name() {
            $body("");
        }
        #[test]
        fn $sleep() {
            $body("net=sleep");
        }
    };
}
#[allow(unused_imports)] // used by the network test files only
pub(crate) use both_designs;

/// The shell prompt of namespace `ns` at the start of a line: the root's `$ `, a container's
/// `ns<ID>$ ` (`sh` shows its namespace when it is not the root).
pub fn prompt(ns: u32) -> String {
    if ns == 1 {
        "\n$ ".into()
    } else {
        format!("\nns{ns}$ ")
    }
}

/// Types `line` at the shell of namespace `ns` (the one reading the console now) and returns
/// what it printed up to its next prompt, without carriage returns.
pub fn run_in(c: &Console, ns: u32, line: &str) -> String {
    ok(c.send(format!("{line}\n")));
    ok(c.expect(&prompt(ns), STEP)).replace('\r', "")
}

/// A GET of `path` on the host's `port` with curl, a real client: (HTTP status, body); status
/// 0 when nothing answered. Bounded in time.
pub fn curl(port: u16, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let out = Command::new("curl")
        .args(["-s", "-m", "20", "-o", "-", "-w", "\n%{http_code}", &url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Types `spawn -d ARGS` at the root's shell: the new namespace's id and its init's pid.
pub fn spawn_detached(c: &Console, args: &str) -> (u32, u32) {
    let out = run(c, &format!("spawn -d {args}"));
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("spawn: ns "))
        .unwrap_or_else(|| panic!("no `spawn: ns` line:\n{out}"));
    parse_spawned(line)
}

/// `ID init PID` (what `spawn` prints after `spawn: ns `): the namespace and its init's pid.
pub fn parse_spawned(line: &str) -> (u32, u32) {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        [id, "init", pid, ..] => (id.parse().unwrap(), pid.parse().unwrap()),
        _ => panic!("not `ID init PID`: {line:?}"),
    }
}

/// Waits for the machine to power off (the kernel's `poweroff`, or the end of a self test)
/// and checks that it did: any other exit fails with the serial output.
pub fn expect_poweroff(c: &Console) -> ExitStatus {
    let status = ok(c.wait_exit(STEP));
    assert_eq!(Outcome::from_status(status), Outcome::PowerOff, "{status}\n{}", c.output());
    status
}

/// Types `poweroff` (at the shell or the kernel's console) and waits for the power-off.
pub fn poweroff(c: Console) {
    ok(c.send("poweroff\n"));
    expect_poweroff(&c);
}

/// Runs the `mkimage` binary with `args` and captures its output.
pub fn mkimage_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkimage")).args(args).output().unwrap()
}

/// The value of `key=0x<hex>` in `line`.
pub fn hex_field(line: &str, key: &str) -> Option<u64> {
    let start = line.find(&format!("{key}=0x"))? + key.len() + 3;
    let digits: String = line[start..].chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// The first line of `output` containing `needle`.
pub fn line_with<'a>(output: &'a str, needle: &str) -> &'a str {
    output
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{output}"))
}

/// The addresses listed after `backtrace:` (one `  0x<hex>` per line).
pub fn backtrace(output: &str) -> Vec<u64> {
    output
        .lines()
        .skip_while(|l| l.trim_end() != "backtrace:")
        .skip(1)
        .map_while(|l| {
            let t = l.trim();
            u64::from_str_radix(t.strip_prefix("0x")?, 16).ok()
        })
        .collect()
}

/// Runs `cmd` with `stdin` as its input and its stdout captured; kills it (by its PID) and
/// panics if it is still running at the deadline. Returns its exit code and output.
pub fn run_with_deadline(
    mut cmd: Command,
    stdin: &[u8],
    deadline: Duration,
) -> (Option<i32>, String) {
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= end {
            // SAFETY: kill(2) on the process group this function created (its id is the child's PID).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            panic!("{cmd:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code(), reader.join().unwrap())
}

/// A TCP and UDP port on 127.0.0.1 that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` different ports on 127.0.0.1, each free for TCP and UDP a moment ago (all are held
/// while they are picked, so none is picked twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut held = Vec::new();
    while held.len() < n {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            held.push((port, tcp, udp));
        }
    }
    held.into_iter().map(|(port, _, _)| port).collect()
}

/// `mkimage run` and `make run` forward host ports into the guest (`HTTP_PORT`, `ECHO_PORT`,
/// `PUBLISH_PORTS`): give each run its own, so tests running at the same time do not collide.
/// Returns the HTTP, echo and published port (the one port of `PUBLISH_PORTS`, forwarded to
/// the same guest port).
pub fn with_own_ports(cmd: &mut Command) -> (u16, u16, u16) {
    let p = free_ports(3);
    let (http, echo, publish) = (p[0], p[1], p[2]);
    cmd.env("HTTP_PORT", http.to_string())
        .env("ECHO_PORT", echo.to_string())
        .env("PUBLISH_PORTS", publish.to_string());
    (http, echo, publish)
}

/// Host ports forwarded to chosen guest ports, TCP through slirp's `hostfwd` and UDP through
/// mkimage's relay (restricted slirp carries no UDP reply): what `make run` does for
/// `PUBLISH_PORTS`, from free host ports, so that tests running at once do not collide. A
/// test that publishes a container's port on guest port G reaches it from the host at
/// `host(G)`. Keep it as long as the guest: dropping it stops the relay.
pub struct Forwards {
    /// (guest port, host port), in the order asked for.
    ports: Vec<(u16, u16)>,
    pub relay: UdpRelay,
}

impl Forwards {
    /// A free host port for each of `guest_ports` (different ones), TCP and UDP.
    pub fn new(guest_ports: &[u16]) -> Forwards {
        // A port picked free may be taken before the relay binds it: pick again then.
        for _ in 0..10 {
            let hosts = free_ports(guest_ports.len());
            let udp: Vec<UdpForward> =
                hosts.iter().zip(guest_ports).map(|(&h, &g)| UdpForward::new(h, g)).collect();
            if let Ok(relay) = UdpRelay::start_many(&udp) {
                let ports = guest_ports.iter().copied().zip(hosts).collect();
                return Forwards { ports, relay };
            }
        }
        panic!("no free host ports for the guest ports {guest_ports:?}");
    }

    /// The host port forwarded to `guest_port`.
    pub fn host(&self, guest_port: u16) -> u16 {
        self.ports
            .iter()
            .find(|&&(g, _)| g == guest_port)
            .map(|&(_, h)| h)
            .unwrap_or_else(|| panic!("guest port {guest_port} is not forwarded: {:?}", self.ports))
    }

    /// The relay's end: a second NIC, for the guest's UDP.
    pub fn frame_port(&self) -> FramePort {
        self.relay.frame_port()
    }

    /// The guest's network: restricted user networking (qemu.rs adds `restrict=on`) with the
    /// TCP forwards, and the relay on a NIC of its own for UDP.
    pub fn network(&self) -> Network {
        let forwards = self.ports.iter().map(|&(g, h)| HostForward::tcp(h, g)).collect();
        Network::User { forwards, frames: Some(self.relay.frame_port()) }
    }
}

/// The user programs, built once per test binary.
pub fn programs() -> &'static [(String, Vec<u8>)] {
    static P: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    P.get_or_init(|| mkimage::programs::build_and_read().expect("build the user programs"))
}

/// A fresh 64 MiB standard image with the programs in /bin (and `extra` files), in a new
/// temporary directory that lives as long as the returned guard.
pub fn image_with_programs(
    name: &str,
    extra: &[(&str, Vec<u8>)],
) -> (mkimage::console::TempDir, PathBuf) {
    let dir = ok(mkimage::console::TempDir::new(name));
    let path = dir.path().join("fs.img");
    mkimage::programs::image_with(&path, 64 << 20, programs(), extra).expect("write image");
    (dir, path)
}

/// A built user program's ELF file, by name (`echo` is `/bin/echo`).
pub fn program(name: &str) -> &'static [u8] {
    programs()
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or_else(|| panic!("no user program {name:?}"))
}

/// Copies of `/bin/echo` crafted as in issue 9 (each once panicked the kernel's loader), by
/// file name: the program-header table far past the end of the file, at an odd offset, with
/// 8-byte entries, and the file cut short inside that table.
pub fn crafted_echo() -> Vec<(&'static str, Vec<u8>)> {
    let echo = program("echo");
    let with = |at: usize, field: &[u8]| {
        let mut bytes = echo.to_vec();
        bytes[at..at + field.len()].copy_from_slice(field);
        bytes
    };
    // ELF64 header offsets: e_phoff at 32 (u64), e_phentsize at 54 (u16).
    vec![
        ("phoff-huge", with(32, &0xab_0000_0040u64.to_le_bytes())),
        ("phoff-odd", with(32, &0x41u64.to_le_bytes())),
        ("phentsize-8", with(54, &8u16.to_le_bytes())),
        ("truncated", echo[..100].to_vec()),
    ]
}

/// Sends `request` raw to the host's `port` and returns the status code of the answer (0:
/// none within 20 s).
pub fn raw_status(port: u16, request: &[u8]) -> u16 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// The hostile clients of httpd (httpd.rs, and netns.rs against one container while the
/// others serve), one after another against the httpd behind the host's `port`, whose root
/// holds `/index.html` and `/big.bin` of `big_len` bytes: garbage, an oversized header, a
/// method it does not serve, a path out of its root, random bytes, a half-open client that
/// never sends, a client that resets in the middle of the big file. Each bad answer is
/// checked, and `still_serving` (which asserts that servers answer) runs after each. Returns
/// the half-open client, still connected: the caller decides when it goes.
pub fn bad_clients(port: u16, big_len: usize, still_serving: &dyn Fn()) -> std::net::TcpStream {
    assert_eq!(raw_status(port, b"GARBAGE\r\n\r\n"), 400);
    still_serving();
    let oversized = format!("GET / HTTP/1.0\r\nX-Big: {}\r\n\r\n", "a".repeat(16 * 1024));
    assert_eq!(raw_status(port, oversized.as_bytes()), 400);
    still_serving();
    assert_eq!(raw_status(port, b"DELETE /index.html HTTP/1.0\r\n\r\n"), 405);
    assert_eq!(raw_status(port, b"GET /../../etc/motd HTTP/1.0\r\n\r\n") / 100, 4);
    still_serving();
    let _ = raw_status(port, &testkit::Rng::new(99).bytes(5000));
    still_serving();

    // A half-open client that never sends keeps its connection but blocks no one.
    let idle = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    still_serving();
    // A client that resets in the middle of the big file.
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.write_all(b"GET /big.bin HTTP/1.0\r\n\r\n").unwrap();
        let mut first = [0u8; 16];
        let _ = s.read(&mut first);
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt reads `size_of::<linger>()` bytes from `linger`, a live local, on
        // a descriptor `s` owns. (SO_LINGER 0 makes close send a reset.)
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    still_serving();
    let out = Command::new("curl")
        .args(["-s", "-m", "60", "-o", "/dev/null", "-w", "%{http_code} %{size_download}"])
        .arg(format!("http://127.0.0.1:{port}/big.bin"))
        .output()
        .expect("run curl");
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(got, format!("200 {big_len}"), "the big file after the reset");
    idle
}
