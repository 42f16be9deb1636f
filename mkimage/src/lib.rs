//! Host tooling of the rustix teaching kernel: build the kernel, run it under QEMU, and drive
//! it from tests.
//!
//! - [`build`]: the nested `cargo build` of the kernel for `x86_64-unknown-none`.
//! - [`qemu`]: every QEMU flag, and what QEMU's exit status means.
//! - [`console`]: a running QEMU driven through its serial port and QMP socket (the test harness).
//! - [`run`] and [`bench`]: the `run` and `bench-boot` commands.
//! - [`image`], [`fsck`], [`imgread`]: file system images (format in the `abi` crate): build
//!   one, check one, read files and directories out of one.
//! - [`programs`]: the nested `cargo build` of the user programs, which `image` puts in `/bin`.
//! - [`udprelay`]: UDP port forwards, which restricted user networking cannot carry.
//! - [`fuzz`]: the guest's system-call fuzzer, run and judged (`mkimage fuzz`, `make fuzz`).
//! - [`cli`]: the command line of the `mkimage` binary.

pub mod bench;
pub mod bench_chart;
pub mod bench_fs;
pub mod bench_net;
pub mod bench_ns;
pub mod bench_sys;
pub mod build;
pub mod cli;
pub mod console;
mod error;
pub mod fsck;
pub mod fuzz;
pub mod image;
pub mod imgread;
pub mod profile;
pub mod programs;
pub mod qemu;
pub mod run;
pub mod shell;
pub mod udprelay;

pub use error::{Error, Result};
