//! Host tooling of the rustix teaching kernel: build the kernel, run it under QEMU, and drive
//! it from tests.
//!
//! - [`build`]: the nested `cargo build` of the kernel for `x86_64-unknown-none`.
//! - [`qemu`]: every QEMU flag, and what QEMU's exit status means.
//! - [`console`]: a running QEMU driven through its serial port and QMP socket (the test harness).
//! - [`run`] and [`bench`]: the `run` and `bench-boot` commands.
//! - [`cli`]: the command line of the `mkimage` binary.

pub mod bench;
pub mod build;
pub mod cli;
pub mod console;
mod error;
pub mod qemu;
pub mod run;
pub mod shell;

pub use error::{Error, Result};
