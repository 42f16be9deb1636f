//! The kernel command line (`-append`): space-separated `word` or `key=value` options.
//! Unknown or malformed options are reported and ignored, never fatal.

use crate::kprintln;

/// `fault=...`: a deliberate fault, named as on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `pagefault` is a page fault
pub enum Fault {
    PageFault,
    StackOverflow,
    /// Two locks taken against the lock order (a debug kernel panics, naming both).
    LockOrder,
}

/// What the kernel does once it is up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The interactive console (default).
    Console,
    /// In-kernel self tests, then power off (`selftest`).
    SelfTest,
    /// File-system tests on the mounted disk (`fstest`).
    FsTest,
    /// File-system benchmark (`fsbench`).
    FsBench,
    /// The crash workload with this seed, until killed (`crashwork=SEED`).
    CrashWork(u64),
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub mode: Mode,
    pub fault: Option<Fault>,
    pub hz: u32,
    /// `ip=A.B.C.D/N`: the network interface's address (default 10.0.2.15/24).
    pub ip: Option<([u8; 4], u8)>,
    /// `gw=A.B.C.D`: the default gateway (default 10.0.2.2).
    pub gw: Option<[u8; 4]>,
    /// `net=event|sleep`: how the network is driven (`net::drive`; default `event`).
    pub net: crate::net::drive::Design,
    /// `prof=HZ`: sample where the CPU is HZ times a second (`crate::prof`; default off).
    pub prof: Option<u32>,
}

fn parse_ipv4(v: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = v.split('.');
    for b in out.iter_mut() {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

pub const DEFAULT_HZ: u32 = 100;

pub fn parse(line: &str) -> Options {
    let mut o = Options {
        mode: Mode::Console,
        fault: None,
        hz: DEFAULT_HZ,
        ip: None,
        gw: None,
        net: crate::net::drive::Design::Event,
        prof: None,
    };
    for word in line.split_ascii_whitespace() {
        match word.split_once('=') {
            None if word == "selftest" => o.mode = Mode::SelfTest,
            None if word == "fstest" => o.mode = Mode::FsTest,
            None if word == "fsbench" => o.mode = Mode::FsBench,
            Some(("crashwork", v)) => match v.parse::<u64>() {
                Ok(seed) => o.mode = Mode::CrashWork(seed),
                Err(_) => kprintln!("cmdline: crashwork={v} is not a number; ignoring"),
            },
            Some(("fault", "pagefault")) => o.fault = Some(Fault::PageFault),
            Some(("fault", "stackoverflow")) => o.fault = Some(Fault::StackOverflow),
            Some(("fault", "lockorder")) => o.fault = Some(Fault::LockOrder),
            Some(("hz", v)) => match v.parse::<u32>() {
                Ok(hz) if (10..=10_000).contains(&hz) => o.hz = hz,
                _ => kprintln!("cmdline: hz={v} is not in 10..=10000; using {DEFAULT_HZ}"),
            },
            Some(("ip", v)) => {
                let parsed = v.split_once('/').and_then(|(a, n)| {
                    Some((parse_ipv4(a)?, n.parse::<u8>().ok().filter(|n| (1..=32).contains(n))?))
                });
                match parsed {
                    Some(ip) => o.ip = Some(ip),
                    None => kprintln!("cmdline: ip={v} is not A.B.C.D/N; ignoring"),
                }
            }
            Some(("gw", v)) => match parse_ipv4(v) {
                Some(gw) => o.gw = Some(gw),
                None => kprintln!("cmdline: gw={v} is not A.B.C.D; ignoring"),
            },
            Some(("net", "event")) => o.net = crate::net::drive::Design::Event,
            Some(("net", "sleep")) => o.net = crate::net::drive::Design::Sleep,
            Some(("net", v)) => kprintln!("cmdline: net={v} is not event or sleep; using event"),
            Some(("prof", v)) => match v.parse::<u32>() {
                Ok(hz) if hz > 0 => o.prof = Some(hz),
                _ => kprintln!("cmdline: prof={v} is not a rate in Hz; not profiling"),
            },
            _ => kprintln!("cmdline: ignoring unknown option '{word}'"),
        }
    }
    o
}
