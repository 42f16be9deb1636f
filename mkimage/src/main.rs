//! `mkimage`: build the kernel, run it under QEMU, benchmark its boot; build, check and read
//! file system images. See `mkimage help`.

use std::io::Write;
use std::process::ExitCode;

use mkimage::cli::{self, Command, ImageArgs, USAGE};
use mkimage::image::{self, Builder};
use mkimage::imgread::{self, Image};
use mkimage::qemu::Outcome;
use mkimage::{
    bench, bench_fs, bench_net, bench_ns, bench_sys, build, fsck, fuzz, profile, programs, qemu,
    run, shell, Error,
};

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
            let mut opts = run::options(&args, build::kernel_path(args.release));
            // The UDP echo forward needs the relay that `mkimage run` starts; this command line
            // carries the TCP forwards only.
            opts.network = qemu::Network::user(run::Ports::from_env()?.tcp_forwards());
            println!("{}", shell::render(&qemu::command(&opts)));
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchBoot { runs, release } => {
            let elf = build::kernel(release)?;
            let summary = bench::bench_boot(&elf, runs)?;
            print!("{}", bench::markdown_table(&summary));
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchFs { release } => {
            let elf = build::kernel(release)?;
            let ours = bench_fs::guest(&elf)?;
            // Our figures stand without Linux's: a Linux side that fails is reported, not fatal.
            let linux = bench_fs::linux()
                .unwrap_or_else(|e| bench_fs::Peer::Skipped(format!("it failed: {e}")));
            print!("{}", bench_fs::markdown_table(&ours, &linux));
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchNs { release } => {
            let elf = build::kernel(release)?;
            let ours = bench_ns::ours(&elf)?;
            // Our figures stand without the peer's: a peer that fails is reported, not fatal.
            let linux = bench_ns::linux_peer()
                .unwrap_or_else(|e| bench_ns::Peer::Skipped(format!("it failed: {e}")));
            if let bench_ns::Peer::Skipped(why) = &linux {
                eprintln!("mkimage: bench-ns: the Linux peer is skipped: {why}");
            }
            print!("{}", bench_ns::markdown_table(&ours, &linux));
            println!();
            print!("{}", bench_ns::markdown_table_many(&ours, &linux));
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchNet { release } => {
            let elf = build::kernel(release)?;
            // Every system is measured or skipped with its reason: none is fatal to the others.
            let columns = bench_net::measure_all(&elf);
            let wirings = bench_net::measure_wirings(&elf);
            print!("{}", bench_net::markdown(&columns));
            println!(
                "\nWhat `make run`'s UDP relay costs TCP (ratios to plain user networking):\n"
            );
            print!("{}", bench_net::wirings_markdown(&wirings));
            let [rps, p99] = bench_net::write_charts(&columns)?;
            println!("\nCharts: {} and {}", rps.display(), p99.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Profile { release } => {
            let elf = build::kernel(release)?;
            print!("{}", profile::profile(&elf)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchSys { release } => {
            let elf = build::kernel(release)?;
            let ours = bench_sys::guest(&elf)?;
            let linux = bench_sys::linux()?;
            if let bench_sys::Peer::Skipped(why) = &linux {
                eprintln!("mkimage: bench-sys: the Linux peer is skipped: {why}");
            }
            print!("{}", bench_sys::markdown_table(&ours, &linux));
            Ok(ExitCode::SUCCESS)
        }
        Command::Fuzz(args) => {
            let elf = build::kernel(args.release)?;
            let pass = fuzz::Pass {
                seed: args.seed,
                calls: args.calls,
                jobs: args.jobs,
                left_out: args.skip,
            };
            eprintln!("mkimage: fuzz: booting, then `{}`", pass.command());
            let (_dir, console) = fuzz::boot(&elf, true)?;
            let verdict = fuzz::run(&console, &pass)?;
            if verdict.passed() {
                let _ = console.send("poweroff\n");
                let _ = console.wait_exit(fuzz::STEP);
                eprintln!("mkimage: fuzz: `{}` passed", pass.command());
                Ok(ExitCode::SUCCESS)
            } else {
                console.kill();
                eprintln!("mkimage: fuzz: `{}` FAILED:", pass.command());
                for p in &verdict.problems {
                    eprintln!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Image(args) => make_image(&args),
        Command::Fsck { image } => Ok(match fsck::check(&image) {
            Ok(report) => {
                print!("{}", report.render(fsck::MAX_PRINTED_PROBLEMS));
                if report.is_clean() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            // The image could not be read at all: not the same as an inconsistent one.
            Err(e) => {
                eprintln!("mkimage: fsck: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        }),
        Command::Ls { image, path } => {
            let image = Image::open(&image)?;
            for line in imgread::ls(&image, &path)? {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Cat { image, path } => {
            let bytes = Image::open(&image)?.read_file(&path)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| Error::io("writing to stdout", e))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn make_image(args: &ImageArgs) -> mkimage::Result<ExitCode> {
    let mut builder = Builder::standard(args.size_mb << 20, args.inodes)?;
    let programs = if args.programs { programs::build_and_read()? } else { Vec::new() };
    programs::add_to(&mut builder, &programs)?;
    if args.demo {
        for (path, contents) in image::DEMO_FILES {
            builder.add_file(path, contents.as_bytes())?;
        }
    }
    for (host, path) in &args.add {
        let bytes =
            std::fs::read(host).map_err(|e| Error::io(format!("reading {}", host.display()), e))?;
        builder.add_file(path, bytes)?;
    }
    let out = args.out.clone().unwrap_or_else(image::default_path);
    let summary = builder.write(&out)?;
    let sb = summary.superblock;
    println!(
        "{}: {} MiB, {} blocks of which {} data, {} inodes; {} inodes and {} data blocks in use; \
         {} programs in /bin",
        out.display(),
        args.size_mb,
        sb.size,
        sb.nblocks,
        sb.ninodes,
        summary.inodes,
        summary.data_blocks,
        programs.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
