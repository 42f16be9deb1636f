//! The `mkimage` command line: parsed by hand into a [`Command`].
//!
//! Each subcommand has its own parse function; a new one (`image`, `fsck`, `ls`, `cat`...) is a
//! variant of [`Command`], a line in [`USAGE`] and an arm in [`parse`].

use std::ffi::OsString;
use std::fmt;

/// The help text.
pub const USAGE: &str = "\
usage: mkimage <command> [options]

commands:
  build       [--release|--debug]              build the kernel; print the ELF's path
  run         [--cmdline STR] [--gdb] [--release|--debug]
                                               build the kernel and boot it under QEMU, the
                                               serial console on this terminal
  qemu-cmd    [--cmdline STR] [--gdb] [--release|--debug]
                                               print the QEMU command `run` would use
  bench-boot  [--runs N] [--release|--debug]   boot N times (default 5); print a table of the
                                               time from starting QEMU to the line `ready`
  help                                         print this help

options:
  --cmdline STR   kernel command line, e.g. \"selftest\" or \"fault=pagefault\" (default empty)
  --gdb           start QEMU stopped, waiting for gdb on 127.0.0.1:1234
  --release       release build of the kernel (the default)
  --debug         debug (dev profile) build of the kernel
  --runs N        number of boots for bench-boot (1 to 1000)

exit status of run: 0 powered off, 101 kernel crashed, 102 self-test failed,
1 any other error; 2 for wrong usage of mkimage.
";

/// Options shared by `run` and `qemu-cmd`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    pub cmdline: String,
    pub gdb: bool,
    pub release: bool,
}

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs { cmdline: String::new(), gdb: false, release: true }
    }
}

/// One invocation of mkimage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Build { release: bool },
    Run(RunArgs),
    QemuCmd(RunArgs),
    BenchBoot { runs: usize, release: bool },
}

/// The default number of boots of `bench-boot`.
pub const DEFAULT_BENCH_RUNS: usize = 5;
const MAX_BENCH_RUNS: usize = 1000;

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
        assert!(USAGE.contains("bench-boot"));
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
                release: true
            }))
        );
        assert_eq!(
            p(&["run", "--cmdline=selftest", "--debug"]),
            Ok(Command::Run(RunArgs { cmdline: "selftest".into(), gdb: false, release: false }))
        );
        // A value may itself look like an option.
        assert_eq!(
            p(&["qemu-cmd", "--cmdline", "--gdb"]),
            Ok(Command::QemuCmd(RunArgs { cmdline: "--gdb".into(), ..RunArgs::default() }))
        );
        assert_eq!(p(&["run", "--cmdline="]), Ok(Command::Run(RunArgs::default())));
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
    fn non_utf8_argument() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'r', 0xff]);
        assert!(parse([bad]).unwrap_err().0.contains("not valid UTF-8"));
    }
}
