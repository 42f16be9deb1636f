//! The namespaces this process can see, read from `/proc/ns` (parsed by `uparse::procns`),
//! and the namespace argument of the programs (`ns`, `nspcopy`): an id or a name.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use abi::syscall::ns::PROC_PATH;
use uparse::procns::{self, Namespace};

use crate::io::File;
use crate::sys;

/// Every namespace `/proc/ns` lists, and how many of its lines were not understood.
pub fn read() -> sys::Result<(Vec<Namespace>, usize)> {
    let mut text = Vec::new();
    File::open(PROC_PATH, sys::RDONLY)?.read_to_end(&mut text)?;
    Ok(procns::parse(&String::from_utf8_lossy(&text)))
}

/// The id `arg` names: a number as it is, a name looked up in `/proc/ns` (among the
/// namespaces this process can see). The error is a message for the user.
pub fn resolve(arg: &str) -> Result<u32, String> {
    // An id needs no look-up: whether this process may use it is the kernel's to say.
    if !arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()) {
        return arg.parse().map_err(|_| format!("{arg}: not a namespace id"));
    }
    let (spaces, _) = read().map_err(|e| format!("{PROC_PATH}: {}", e.message()))?;
    procns::find(&spaces, arg)
        .map(|n| n.id)
        .ok_or_else(|| format!("{arg}: no such namespace (none this one can see has that name)"))
}

/// `arg` for messages: `ns 2`, or `web1 (ns 2)` when given by name.
pub fn describe(arg: &str, id: u32) -> String {
    if arg == id.to_string() {
        format!("ns {id}")
    } else {
        format!("{arg} (ns {id})")
    }
}
