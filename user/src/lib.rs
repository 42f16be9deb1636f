//! ulib: the user library of rustix.
//!
//! - [`sys`]: one wrapper per system call, errors as `Result<_, Errno>`; [`sys::raw`] for the
//!   bare instruction.
//! - [`io`]: `print!`/`println!`/`eprint!`/`eprintln!`, whole writes and reads, an owned
//!   [`io::File`], a [`io::LineReader`].
//! - [`heap`]: the global allocator, growing with `sbrk`.
//! - [`args`]: the program's arguments; [`rt`]: `entry!`, `die!`, the panic handler.
//! - [`dir`]: directory entries; [`time`]: the cycle counter.
//! - [`net`]: sockets (TCP and UDP over IPv4), `poll`, non-blocking descriptors, ARP, and
//!   address helpers.
//! - [`nslist`]: the namespaces in `/proc/ns`; a namespace given by id or by name.
//!
//! The system-call ABI (numbers, errors, `Stat`, `/proc` records) is `abi::syscall`, re-exported
//! here as [`abi`].

#![no_std]

extern crate alloc;

pub mod args;
pub mod dir;
pub mod heap;
pub mod io;
pub mod net;
pub mod nslist;
pub mod rt;
pub mod sys;
pub mod time;

pub use abi;
pub use abi::syscall::{Errno, Stat};
pub use args::Args;
pub use uparse;

/// What most programs use.
pub mod prelude {
    pub use crate::args::Args;
    pub use crate::io::File;
    pub use crate::sys::{self, Fd, Pid};
    pub use crate::{die, eprint, eprintln, print, println, Errno, Stat};
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec::Vec;
    pub use alloc::{format, vec};
}
