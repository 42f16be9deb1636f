//! Host unit tests for the kernel's pure file-layer modules (`kernel/src/file/`): the line
//! discipline, pipes, procfs contents, the file-descriptor table, `getcwd` and the ABI
//! conversions. The kernel itself is a `no_std` binary that cannot run `cargo test`, so the
//! modules that depend only on `abi`, `fs`, `runtime`, `spin` and `alloc` are compiled here
//! as they are, and their `#[cfg(test)]` tests run on the host. Among them, `poll` readiness:
//! a registration (`poll::PollWait`) on a pipe end is woken by the change it waits for and by
//! nothing after it is dropped, a change between the check and the registration is not lost
//! (also under two threads), and the console's input queue is readable only with a complete
//! line.

extern crate alloc;

#[allow(dead_code)]
#[path = "../../kernel/src/file/ldisc.rs"]
mod ldisc;

#[allow(dead_code)]
#[path = "../../kernel/src/file/pipe.rs"]
mod pipe;

#[allow(dead_code)]
#[path = "../../kernel/src/file/poll.rs"]
mod poll;

#[allow(dead_code)]
#[path = "../../kernel/src/file/procfs.rs"]
mod procfs;

#[allow(dead_code)]
#[path = "../../kernel/src/file/fdtable.rs"]
mod fdtable;

#[allow(dead_code)]
#[path = "../../kernel/src/file/cwd.rs"]
mod cwd;

#[allow(dead_code)]
#[path = "../../kernel/src/file/convert.rs"]
mod convert;
