//! The `mkimage` command line: parsed by hand into a [`Command`].
//!
//! Each subcommand has its own parse function; a new one is a variant of [`Command`], a line in
//! [`USAGE`] and an arm in [`parse`].

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::image::{DEFAULT_INODES, DEFAULT_SIZE_MB};

/// The help text.
pub const USAGE: &str = "\
usage: mkimage <command> [options]

commands:
  build       [--release|--debug]              build the kernel; print the ELF's path
  run         [--cmdline STR] [--gdb] [--release|--debug] [--disk PATH|--no-disk]
                                               build the kernel and boot it under QEMU, the
                                               serial console on this terminal; forwards
                                               127.0.0.1:$HTTP_PORT (8080) to guest port 80,
                                               $ECHO_PORT (8007) to 7, and $PUBLISH_PORTS
                                               (8081-8089; `none`, or ports and ranges
                                               joined by commas) to the same guest ports
  qemu-cmd    [--cmdline STR] [--gdb] [--release|--debug] [--disk PATH|--no-disk]
                                               print the QEMU command `run` would use
  bench-boot  [--runs N] [--release|--debug]   boot N times (default 5); print a table of the
                                               time from starting QEMU to the line `ready`
  bench-net   [--release|--debug]              httpd under wrk, network designs compared:
                                               ours async and sleep (net=sleep), the xv6+lwIP
                                               peer, Linux busybox and nginx (small file at 1
                                               to 128 connections, latency, 1 MiB file, idle
                                               CPU, our counters per request), ours wired as
                                               `make run` wires it; then what its UDP relay
                                               costs TCP; tables, and SVG charts in
                                               target/bench/ (SHARED_BENCH=DIR: the peer
                                               scripts' folder)
  profile     [--release|--debug]              the kernel's sampling profiler (prof=HZ) while
                                               httpd serves the small file at 1 and 32
                                               connections and the 1 MiB file: where the
                                               guest's CPU goes, by function
  bench-ns    [--release|--debug]              httpd under wrk (small file at 1 and 32
                                               connections, 1 MiB file) against the Linux peer;
                                               three containers' httpd (published ports) at
                                               once against one root httpd and three peers
  bench-sys   [--release|--debug]              system-call costs in cycles (getpid,
                                               fork+exec+wait, pipe ping-pong, a container's
                                               spawn+exit+wait) against Linux
  bench-fs    [--release|--debug]              time the kernel's file system (64 MiB write and
                                               read, 1000 creates) against Linux's ext2 on
                                               the same QEMU machine and virtio disk
  fuzz        [--seed N] [--calls N] [--jobs N] [--skip GROUPS] [--release|--debug]
                                               boot with the programs and a NIC, run the
                                               system-call fuzzer `fuzz N CALLS` at the shell
                                               (default seed 1, 20000 calls); fail on a
                                               kernel panic or exception, a hang, a crashed or
                                               odd batch, or a shell that no longer answers
  image       [--out PATH] [--size-mb N] [--inodes N] [--add HOSTFILE:/PATH]...
              [--no-programs] [--demo]         build a file system image with the built-in
                                               files (README, /etc, /www), the user programs
                                               in /bin (built first) and the --add'ed ones
  fsck        IMAGE                            check a file system image
  ls          IMAGE [PATH]                     list a directory of an image (default /), or
                                               show one file: kind, inode, links, size, name
  cat         IMAGE PATH                       write a file of an image to stdout
  help                                         print this help

options:
  --cmdline STR   kernel command line, e.g. \"selftest\" or \"fault=pagefault\" (default empty)
  --gdb           start QEMU stopped, waiting for gdb on 127.0.0.1:1234
  --release       release build of the kernel (the default)
  --debug         debug (dev profile) build of the kernel
  --runs N        number of boots for bench-boot (1 to 1000)
  --disk PATH     attach the raw image PATH as the guest's virtio-blk disk (default: the
                  workspace's target/fs.img when it exists)
  --no-disk       boot without a disk, even if target/fs.img exists
  --out PATH      where image writes (default target/fs.img in the workspace)
  --size-mb N     image size in MiB (default 128)
  --inodes N      number of inodes, inode 0 included (default 4096)
  --add H:/P      copy host file H into the image as /P (repeatable; replaces a built-in file)
  --no-programs   leave /bin empty (no build of the user programs)
  --demo          add `make demo`'s files: the boot script /etc/rc starting three web
                  containers (web1..web3, on ports 8081..8083) and their pages in /www
  --seed N        the fuzzer's seed (replays a pass)
  --calls N       system calls the fuzzer makes (1 to 10000000)
  --jobs N        batches of calls the fuzzer runs at once (1 to 16; default 1)
  --skip GROUPS   fuzzer groups left out, comma-separated: exec, elf (exec of mutated
                  programs), rename, net, cpu

exit status of run: 0 powered off, 101 kernel crashed, 102 self-test failed,
1 any other error; of fuzz: 0 passed, 1 failed; of fsck: 0 clean, 1 problems found, 2 cannot read the image;
2 for wrong usage of mkimage.
";

/// Options shared by `run` and `qemu-cmd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    pub cmdline: String,
    pub gdb: bool,
    pub release: bool,
    pub disk: DiskChoice,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs { cmdline: String::new(), gdb: false, release: true, disk: DiskChoice::Default }
    }
}

/// Which disk `run` and `qemu-cmd` attach (the last of `--disk`/`--no-disk` wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DiskChoice {
    /// No flag: the workspace's `target/fs.img` if it exists, else no disk.
    #[default]
    Default,
    /// `--disk PATH`.
    Path(PathBuf),
    /// `--no-disk`.
    None,
}

/// One invocation of mkimage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Build { release: bool },
    Run(RunArgs),
    QemuCmd(RunArgs),
    BenchBoot { runs: usize, release: bool },
    BenchFs { release: bool },
    BenchSys { release: bool },
    BenchNet { release: bool },
    BenchNs { release: bool },
    Profile { release: bool },
    Fuzz(FuzzArgs),
    Image(ImageArgs),
    Fsck { image: PathBuf },
    Ls { image: PathBuf, path: String },
    Cat { image: PathBuf, path: String },
}

/// Options of `image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageArgs {
    /// `None`: the default path (`target/fs.img` in the workspace).
    pub out: Option<PathBuf>,
    pub size_mb: u64,
    pub inodes: u32,
    /// (host file, absolute path in the image), in order.
    pub add: Vec<(PathBuf, String)>,
    /// Build the user programs and put them in `/bin` (not with `--no-programs`).
    pub programs: bool,
    /// Add the demo's boot script and pages (`--demo`, `image::DEMO_FILES`).
    pub demo: bool,
}

impl Default for ImageArgs {
    fn default() -> Self {
        ImageArgs {
            out: None,
            size_mb: DEFAULT_SIZE_MB,
            inodes: DEFAULT_INODES,
            add: Vec::new(),
            programs: true,
            demo: false,
        }
    }
}

/// Options of `fuzz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuzzArgs {
    pub seed: u64,
    pub calls: usize,
    pub jobs: usize,
    /// The fuzzer's groups to leave out, comma-separated (empty: none).
    pub skip: String,
    pub release: bool,
}

impl Default for FuzzArgs {
    fn default() -> Self {
        FuzzArgs { seed: 1, calls: DEFAULT_FUZZ_CALLS, jobs: 1, skip: String::new(), release: true }
    }
}

/// The default number of calls of `fuzz`.
pub const DEFAULT_FUZZ_CALLS: usize = 20_000;
const MAX_FUZZ_CALLS: usize = 10_000_000;
/// The fuzzer's groups (`fuzz -x`).
const FUZZ_GROUPS: [&str; 5] = ["exec", "elf", "rename", "net", "cpu"];

/// The default number of boots of `bench-boot`.
pub const DEFAULT_BENCH_RUNS: usize = 5;
const MAX_BENCH_RUNS: usize = 1000;
const MAX_SIZE_MB: u64 = 65536;
const MAX_INODES: u32 = 1 << 24;

/// Wrong use of the command line; the message says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage_error(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// One command-line token after the subcommand.
enum Arg {
    /// `--name` or `--name=value` (`-h` is taken as `--help`).
    Option {
        name: String,
        value: Option<String>,
    },
    Positional(String),
}

/// Walks the arguments of one subcommand.
struct Args {
    command: &'static str,
    rest: std::vec::IntoIter<String>,
}

impl Args {
    fn next(&mut self) -> Option<Arg> {
        let arg = self.rest.next()?;
        if arg == "-h" {
            return Some(Arg::Option { name: "help".into(), value: None });
        }
        match arg.strip_prefix("--") {
            Some(body) if !body.is_empty() => {
                let (name, value) = match body.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (body.to_string(), None),
                };
                Some(Arg::Option { name, value })
            }
            _ => Some(Arg::Positional(arg)),
        }
    }

    /// The value of `--name`: inline (`--name=v`) or the next argument.
    fn value(&mut self, name: &str, inline: Option<String>) -> Result<String, UsageError> {
        match inline {
            Some(v) => Ok(v),
            None => self
                .rest
                .next()
                .ok_or_else(|| usage_error(format!("{}: --{name} needs a value", self.command))),
        }
    }

    fn no_value(&self, name: &str, inline: Option<String>) -> Result<(), UsageError> {
        match inline {
            Some(_) => Err(usage_error(format!("{}: --{name} takes no value", self.command))),
            None => Ok(()),
        }
    }

    fn unknown(&self, arg: Arg) -> UsageError {
        match arg {
            Arg::Option { name, .. } => {
                usage_error(format!("{}: unknown option --{name}", self.command))
            }
            Arg::Positional(p) => {
                usage_error(format!("{}: unexpected argument {p:?}", self.command))
            }
        }
    }
}

/// The parser of one subcommand's arguments.
type ParseFn = fn(&mut Args) -> Result<Command, UsageError>;

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| {
            a.into_string().map_err(|a| usage_error(format!("argument {a:?} is not valid UTF-8")))
        })
        .collect::<Result<_, _>>()?;
    let mut iter = args.into_iter();
    let Some(sub) = iter.next() else {
        return Err(usage_error("no command given"));
    };
    let (command, parse_sub): (&'static str, ParseFn) = match sub.as_str() {
        "help" | "-h" | "--help" => ("help", parse_help),
        "build" => ("build", parse_build),
        "run" => ("run", |a| parse_run(a).map(|r| r.map_or(Command::Help, Command::Run))),
        "qemu-cmd" => {
            ("qemu-cmd", |a| parse_run(a).map(|r| r.map_or(Command::Help, Command::QemuCmd)))
        }
        "bench-boot" => ("bench-boot", parse_bench_boot),
        "bench-fs" => ("bench-fs", parse_bench_fs),
        "bench-net" => ("bench-net", |a| {
            parse_bench_fs(a).map(|c| match c {
                Command::BenchFs { release } => Command::BenchNet { release },
                other => other,
            })
        }),
        "profile" => ("profile", |a| {
            parse_bench_fs(a).map(|c| match c {
                Command::BenchFs { release } => Command::Profile { release },
                other => other,
            })
        }),
        "bench-ns" => ("bench-ns", |a| {
            parse_bench_fs(a).map(|c| match c {
                Command::BenchFs { release } => Command::BenchNs { release },
                other => other,
            })
        }),
        "bench-sys" => ("bench-sys", |a| {
            parse_bench_fs(a).map(|c| match c {
                Command::BenchFs { release } => Command::BenchSys { release },
                other => other,
            })
        }),
        "fuzz" => ("fuzz", parse_fuzz),
        "image" => ("image", parse_image),
        "fsck" => ("fsck", parse_fsck),
        "ls" => ("ls", parse_ls),
        "cat" => ("cat", parse_cat),
        other => return Err(usage_error(format!("unknown command {other:?}"))),
    };
    parse_sub(&mut Args { command, rest: iter })
}

fn parse_help(a: &mut Args) -> Result<Command, UsageError> {
    match a.next() {
        None => Ok(Command::Help),
        Some(arg) => Err(a.unknown(arg)),
    }
}

fn parse_build(a: &mut Args) -> Result<Command, UsageError> {
    let mut release = true;
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } => match name.as_str() {
                "help" => return Ok(Command::Help),
                "release" | "debug" => {
                    a.no_value(&name, value)?;
                    release = name == "release";
                }
                _ => return Err(a.unknown(Arg::Option { name, value })),
            },
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Command::Build { release })
}

/// `None` when help was asked for.
fn parse_run(a: &mut Args) -> Result<Option<RunArgs>, UsageError> {
    let mut run = RunArgs::default();
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } => match name.as_str() {
                "help" => return Ok(None),
                "cmdline" => run.cmdline = a.value(&name, value)?,
                "gdb" => {
                    a.no_value(&name, value)?;
                    run.gdb = true;
                }
                "disk" => run.disk = DiskChoice::Path(PathBuf::from(a.value(&name, value)?)),
                "no-disk" => {
                    a.no_value(&name, value)?;
                    run.disk = DiskChoice::None;
                }
                "release" | "debug" => {
                    a.no_value(&name, value)?;
                    run.release = name == "release";
                }
                _ => return Err(a.unknown(Arg::Option { name, value })),
            },
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Some(run))
}

fn parse_bench_fs(a: &mut Args) -> Result<Command, UsageError> {
    let mut release = true;
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } if name == "help" => {
                a.no_value(&name, value)?;
                return Ok(Command::Help);
            }
            Arg::Option { name, value } if name == "release" || name == "debug" => {
                a.no_value(&name, value)?;
                release = name == "release";
            }
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Command::BenchFs { release })
}

fn parse_bench_boot(a: &mut Args) -> Result<Command, UsageError> {
    let mut runs = DEFAULT_BENCH_RUNS;
    let mut release = true;
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } => match name.as_str() {
                "help" => return Ok(Command::Help),
                "runs" => {
                    let v = a.value(&name, value)?;
                    runs = match v.parse::<usize>() {
                        Ok(n) if (1..=MAX_BENCH_RUNS).contains(&n) => n,
                        _ => {
                            return Err(usage_error(format!(
                                "bench-boot: --runs wants a number from 1 to {MAX_BENCH_RUNS}, not {v:?}"
                            )))
                        }
                    };
                }
                "release" | "debug" => {
                    a.no_value(&name, value)?;
                    release = name == "release";
                }
                _ => return Err(a.unknown(Arg::Option { name, value })),
            },
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Command::BenchBoot { runs, release })
}

fn number<T: std::str::FromStr + PartialOrd + fmt::Display>(
    command: &str,
    name: &str,
    v: &str,
    min: T,
    max: T,
) -> Result<T, UsageError> {
    match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(usage_error(format!(
            "{command}: --{name} wants a number from {min} to {max}, not {v:?}"
        ))),
    }
}

fn parse_fuzz(a: &mut Args) -> Result<Command, UsageError> {
    let mut args = FuzzArgs::default();
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } => match name.as_str() {
                "help" => return Ok(Command::Help),
                "seed" => {
                    let v = a.value(&name, value)?;
                    args.seed = number("fuzz", &name, &v, 0, u64::MAX)?;
                }
                "calls" => {
                    let v = a.value(&name, value)?;
                    args.calls = number("fuzz", &name, &v, 1, MAX_FUZZ_CALLS)?;
                }
                "jobs" => {
                    let v = a.value(&name, value)?;
                    args.jobs = number("fuzz", &name, &v, 1, 16)?;
                }
                "skip" => {
                    let v = a.value(&name, value)?;
                    if let Some(bad) = v.split(',').find(|g| !FUZZ_GROUPS.contains(g)) {
                        return Err(usage_error(format!(
                            "fuzz: --skip takes groups among {}, not {bad:?}",
                            FUZZ_GROUPS.join(",")
                        )));
                    }
                    args.skip = v;
                }
                "release" | "debug" => {
                    a.no_value(&name, value)?;
                    args.release = name == "release";
                }
                _ => return Err(a.unknown(Arg::Option { name, value })),
            },
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Command::Fuzz(args))
}

fn parse_image(a: &mut Args) -> Result<Command, UsageError> {
    let mut args = ImageArgs::default();
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, value } => match name.as_str() {
                "help" => return Ok(Command::Help),
                "out" => args.out = Some(PathBuf::from(a.value(&name, value)?)),
                "size-mb" => {
                    let v = a.value(&name, value)?;
                    args.size_mb = number("image", &name, &v, 1, MAX_SIZE_MB)?;
                }
                "inodes" => {
                    let v = a.value(&name, value)?;
                    args.inodes = number("image", &name, &v, 2, MAX_INODES)?;
                }
                "no-programs" => {
                    a.no_value(&name, value)?;
                    args.programs = false;
                }
                "demo" => {
                    a.no_value(&name, value)?;
                    args.demo = true;
                }
                "add" => {
                    let v = a.value(&name, value)?;
                    match v.split_once(":/") {
                        Some((host, path)) if !host.is_empty() && !path.is_empty() => {
                            args.add.push((PathBuf::from(host), format!("/{path}")))
                        }
                        _ => {
                            return Err(usage_error(format!(
                                "image: --add wants HOSTFILE:/path/in/image, not {v:?}"
                            )))
                        }
                    }
                }
                _ => return Err(a.unknown(Arg::Option { name, value })),
            },
            other => return Err(a.unknown(other)),
        }
    }
    Ok(Command::Image(args))
}

/// The positional arguments of a command taking `min..=max` of them (`None`: help).
fn positionals(
    a: &mut Args,
    min: usize,
    max: usize,
    what: &str,
) -> Result<Option<Vec<String>>, UsageError> {
    let mut out = Vec::new();
    while let Some(arg) = a.next() {
        match arg {
            Arg::Option { name, .. } if name == "help" => return Ok(None),
            Arg::Positional(p) if out.len() < max => out.push(p),
            other => return Err(a.unknown(other)),
        }
    }
    if out.len() < min {
        return Err(usage_error(format!("{}: wants {what}", a.command)));
    }
    Ok(Some(out))
}

fn parse_fsck(a: &mut Args) -> Result<Command, UsageError> {
    Ok(match positionals(a, 1, 1, "an IMAGE")? {
        None => Command::Help,
        Some(mut p) => Command::Fsck { image: PathBuf::from(p.remove(0)) },
    })
}

fn parse_ls(a: &mut Args) -> Result<Command, UsageError> {
    Ok(match positionals(a, 1, 2, "an IMAGE and optionally a PATH")? {
        None => Command::Help,
        Some(mut p) => {
            let path = if p.len() == 2 { p.remove(1) } else { "/".to_string() };
            Command::Ls { image: PathBuf::from(p.remove(0)), path }
        }
    })
}

fn parse_cat(a: &mut Args) -> Result<Command, UsageError> {
    Ok(match positionals(a, 2, 2, "an IMAGE and a PATH")? {
        None => Command::Help,
        Some(mut p) => {
            let path = p.remove(1);
            Command::Cat { image: PathBuf::from(p.remove(0)), path }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from))
    }

    fn err(args: &[&str]) -> String {
        p(args).expect_err("should be a usage error").0
    }

    #[test]
    fn help() {
        for args in [&["help"][..], &["-h"], &["--help"], &["run", "--help"], &["build", "-h"]] {
            assert_eq!(p(args), Ok(Command::Help), "{args:?}");
        }
        for command in ["bench-boot", "image", "fsck", "ls", "cat"] {
            assert!(USAGE.contains(command), "{command}");
        }
    }

    #[test]
    fn build() {
        assert_eq!(p(&["build"]), Ok(Command::Build { release: true }));
        assert_eq!(p(&["build", "--debug"]), Ok(Command::Build { release: false }));
        assert_eq!(p(&["build", "--debug", "--release"]), Ok(Command::Build { release: true }));
    }

    #[test]
    fn run() {
        assert_eq!(p(&["run"]), Ok(Command::Run(RunArgs::default())));
        assert_eq!(
            p(&["run", "--cmdline", "fault=pagefault hz=50", "--gdb", "--release"]),
            Ok(Command::Run(RunArgs {
                cmdline: "fault=pagefault hz=50".into(),
                gdb: true,
                release: true,
                disk: DiskChoice::Default,
            }))
        );
        assert_eq!(
            p(&["run", "--cmdline=selftest", "--debug"]),
            Ok(Command::Run(RunArgs {
                cmdline: "selftest".into(),
                gdb: false,
                release: false,
                disk: DiskChoice::Default
            }))
        );
        // A value may itself look like an option.
        assert_eq!(
            p(&["qemu-cmd", "--cmdline", "--gdb"]),
            Ok(Command::QemuCmd(RunArgs { cmdline: "--gdb".into(), ..RunArgs::default() }))
        );
        assert_eq!(p(&["run", "--cmdline="]), Ok(Command::Run(RunArgs::default())));
    }

    #[test]
    fn disk_flags() {
        let disk = |args: &[&str]| match p(args) {
            Ok(Command::Run(r) | Command::QemuCmd(r)) => r.disk,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(disk(&["run"]), DiskChoice::Default);
        assert_eq!(disk(&["run", "--disk", "/tmp/a.img"]), DiskChoice::Path("/tmp/a.img".into()));
        assert_eq!(disk(&["qemu-cmd", "--disk=b.img"]), DiskChoice::Path("b.img".into()));
        assert_eq!(disk(&["run", "--no-disk"]), DiskChoice::None);
        // The last one wins.
        assert_eq!(disk(&["run", "--disk", "a.img", "--no-disk"]), DiskChoice::None);
        assert_eq!(
            disk(&["run", "--no-disk", "--disk", "a.img"]),
            DiskChoice::Path("a.img".into())
        );
        assert!(err(&["run", "--disk"]).contains("--disk needs a value"));
        assert!(err(&["run", "--no-disk=yes"]).contains("--no-disk takes no value"));
        assert!(err(&["build", "--disk", "a"]).contains("unknown option --disk"));
        assert!(err(&["bench-boot", "--no-disk"]).contains("unknown option --no-disk"));
        assert!(USAGE.contains("--disk PATH") && USAGE.contains("--no-disk"));
    }

    #[test]
    fn bench_net_and_ns() {
        assert_eq!(p(&["bench-net"]), Ok(Command::BenchNet { release: true }));
        assert_eq!(p(&["profile"]), Ok(Command::Profile { release: true }));
        assert_eq!(p(&["bench-ns", "--debug"]), Ok(Command::BenchNs { release: false }));
        assert!(err(&["bench-ns", "--runs", "3"]).contains("unknown option --runs"));
    }

    #[test]
    fn bench_boot() {
        assert_eq!(p(&["bench-boot"]), Ok(Command::BenchBoot { runs: 5, release: true }));
        assert_eq!(
            p(&["bench-boot", "--runs", "3"]),
            Ok(Command::BenchBoot { runs: 3, release: true })
        );
        assert_eq!(
            p(&["bench-boot", "--runs=12", "--debug"]),
            Ok(Command::BenchBoot { runs: 12, release: false })
        );
    }

    #[test]
    fn wrong_use() {
        assert!(err(&[]).contains("no command"));
        assert!(err(&["frobnicate"]).contains("unknown command \"frobnicate\""));
        assert!(err(&["run", "--bogus"]).contains("run: unknown option --bogus"));
        assert!(err(&["run", "extra"]).contains("unexpected argument \"extra\""));
        assert!(err(&["run", "--cmdline"]).contains("--cmdline needs a value"));
        assert!(err(&["run", "--gdb=yes"]).contains("--gdb takes no value"));
        assert!(err(&["build", "--cmdline", "x"]).contains("unknown option --cmdline"));
        assert!(err(&["bench-boot", "--runs", "0"]).contains("--runs wants a number"));
        assert!(err(&["bench-boot", "--runs", "many"]).contains("--runs wants a number"));
        assert!(err(&["bench-boot", "--runs", "-3"]).contains("--runs wants a number"));
        assert!(err(&["bench-boot", "--runs"]).contains("--runs needs a value"));
        assert!(err(&["help", "me"]).contains("unexpected argument"));
        assert!(err(&["run", "-"]).contains("unexpected argument"));
        assert!(err(&["run", "--"]).contains("unexpected argument"));
    }

    #[test]
    fn image() {
        assert_eq!(p(&["image"]), Ok(Command::Image(ImageArgs::default())));
        assert_eq!(
            p(&[
                "image",
                "--out",
                "/tmp/x.img",
                "--size-mb=16",
                "--inodes",
                "256",
                "--add",
                "a.txt:/docs/a.txt",
                "--add=/host/dir/b:/b"
            ]),
            Ok(Command::Image(ImageArgs {
                out: Some(PathBuf::from("/tmp/x.img")),
                size_mb: 16,
                inodes: 256,
                add: vec![
                    (PathBuf::from("a.txt"), "/docs/a.txt".into()),
                    (PathBuf::from("/host/dir/b"), "/b".into())
                ],
                programs: true,
                demo: false,
            }))
        );
        assert_eq!(
            p(&["image", "--no-programs"]),
            Ok(Command::Image(ImageArgs { programs: false, ..ImageArgs::default() }))
        );
        assert!(err(&["image", "--no-programs=1"]).contains("--no-programs takes no value"));
        assert!(USAGE.contains("--no-programs"));
        assert_eq!(
            p(&["image", "--demo", "--out", "d.img"]),
            Ok(Command::Image(ImageArgs {
                demo: true,
                out: Some(PathBuf::from("d.img")),
                ..ImageArgs::default()
            }))
        );
        assert!(err(&["image", "--demo=yes"]).contains("--demo takes no value"));
        assert!(err(&["image", "--size-mb", "0"]).contains("--size-mb wants a number"));
        assert!(err(&["image", "--inodes", "1"]).contains("--inodes wants a number"));
        assert!(err(&["image", "--add", "nocolon"]).contains("HOSTFILE:/path"));
        assert!(err(&["image", "--add", "a:b"]).contains("HOSTFILE:/path"));
        assert!(err(&["image", "--add", ":/b"]).contains("HOSTFILE:/path"));
        assert!(err(&["image", "stray"]).contains("unexpected argument"));
    }

    #[test]
    fn fuzz() {
        assert_eq!(p(&["fuzz"]), Ok(Command::Fuzz(FuzzArgs::default())));
        assert_eq!(
            p(&[
                "fuzz",
                "--seed",
                "42",
                "--calls=500",
                "--jobs",
                "3",
                "--skip",
                "elf,rename",
                "--debug"
            ]),
            Ok(Command::Fuzz(FuzzArgs {
                seed: 42,
                calls: 500,
                jobs: 3,
                skip: "elf,rename".into(),
                release: false
            }))
        );
        assert!(err(&["fuzz", "--calls", "0"]).contains("--calls wants a number"));
        assert!(err(&["fuzz", "--seed", "x"]).contains("--seed wants a number"));
        assert!(err(&["fuzz", "--skip", "elf,disk"]).contains("not \"disk\""));
        assert!(err(&["fuzz", "7"]).contains("unexpected argument"));
        assert!(USAGE.contains("--skip GROUPS"));
    }

    #[test]
    fn fsck_ls_cat() {
        assert_eq!(p(&["fsck", "x.img"]), Ok(Command::Fsck { image: "x.img".into() }));
        assert_eq!(p(&["fsck", "-h"]), Ok(Command::Help));
        assert!(err(&["fsck"]).contains("fsck: wants an IMAGE"));
        assert!(err(&["fsck", "a", "b"]).contains("unexpected argument \"b\""));
        assert!(err(&["fsck", "--deep", "a"]).contains("unknown option --deep"));
        assert_eq!(
            p(&["ls", "x.img"]),
            Ok(Command::Ls { image: "x.img".into(), path: "/".into() })
        );
        assert_eq!(
            p(&["ls", "x.img", "/www"]),
            Ok(Command::Ls { image: "x.img".into(), path: "/www".into() })
        );
        assert!(err(&["ls"]).contains("ls: wants an IMAGE"));
        assert_eq!(
            p(&["cat", "x.img", "/README"]),
            Ok(Command::Cat { image: "x.img".into(), path: "/README".into() })
        );
        assert!(err(&["cat", "x.img"]).contains("cat: wants an IMAGE and a PATH"));
        assert!(err(&["cat", "x.img", "/a", "/b"]).contains("unexpected argument"));
    }

    #[test]
    fn non_utf8_argument() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'r', 0xff]);
        assert!(parse([bad]).unwrap_err().0.contains("not valid UTF-8"));
    }
}
