//! The kernel command line (`-append`): space-separated `word` or `key=value` options.
//! Unknown or malformed options are reported and ignored, never fatal.

use crate::kprintln;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    PageFault,
    StackOverflow,
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
}

pub const DEFAULT_HZ: u32 = 100;

pub fn parse(line: &str) -> Options {
    let mut o = Options { mode: Mode::Console, fault: None, hz: DEFAULT_HZ };
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
            Some(("hz", v)) => match v.parse::<u32>() {
                Ok(hz) if (10..=10_000).contains(&hz) => o.hz = hz,
                _ => kprintln!("cmdline: hz={v} is not in 10..=10000; using {DEFAULT_HZ}"),
            },
            _ => kprintln!("cmdline: ignoring unknown option '{word}'"),
        }
    }
    o
}
