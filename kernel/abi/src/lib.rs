//! The binary interfaces of the rustix kernel, shared by the kernel and the host tools.
//!
//! - [`fs`]: the on-disk format of the file system (described in docs/02-storage.md): the
//!   superblock, inodes, directory entries, the log header, and the CRC-32 that seals a
//!   committed log.
//! - [`syscall`]: system-call numbers, error numbers, flags, `Stat`, the `/proc` record.
//! - [`workload`]: the deterministic file-system workloads that the kernel runs and the host
//!   checks (the crash test): both sides must compute the same bytes.
//!
//! Everything here is plain data with explicit little-endian encoding; nothing depends on the
//! layout of a Rust struct in memory, and nothing panics on bytes read from a disk.

#![no_std]

#[cfg(test)]
extern crate std;

pub mod fs;
pub mod syscall;
pub mod workload;
