//! `mkimage`: build the kernel, run it under QEMU, benchmark its boot. See `mkimage help`.

use std::process::ExitCode;

use mkimage::cli::{self, Command, USAGE};
use mkimage::qemu::Outcome;
use mkimage::{bench, build, qemu, run, shell};

/// Exit status for wrong use of the command line.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mkimage: {e}\n\n{USAGE}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match execute(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mkimage: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> mkimage::Result<ExitCode> {
    match command {
        Command::Help => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { release } => {
            let elf = build::kernel(release)?;
            println!("{}", elf.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let outcome = run::run(&args)?;
            if outcome != Outcome::PowerOff {
                eprintln!("mkimage: {}", outcome.describe());
            }
            Ok(exit_code(outcome.exit_code()))
        }
        Command::QemuCmd(args) => {
            let opts = run::options(&args, build::kernel_path(args.release));
            println!("{}", shell::render(&qemu::command(&opts)));
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchBoot { runs, release } => {
            let elf = build::kernel(release)?;
            let summary = bench::bench_boot(&elf, runs)?;
            print!("{}", bench::markdown_table(&summary));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
