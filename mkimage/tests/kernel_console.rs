//! Host unit tests for the kernel's pure console and process-group modules: the scrollback
//! ring a console in the background prints into (`file/console/scrollback.rs`: keeps the last
//! bytes in order, counts what it overwrote), the input router's decisions
//! (`file/console/fronts.rs`: the detach keys `^P ^Q` and the stack of consoles in front
//! before), and `setpgid`'s rules (`proc/pgrp.rs`). The kernel is a `no_std` binary, so the
//! modules are compiled here as they are and their `#[cfg(test)]` tests run on the host.

extern crate alloc;

#[allow(dead_code)]
#[path = "../../kernel/src/file/console/scrollback.rs"]
mod scrollback;

#[allow(dead_code)]
#[path = "../../kernel/src/file/console/fronts.rs"]
mod fronts;

#[allow(dead_code)]
#[path = "../../kernel/src/proc/pgrp.rs"]
mod pgrp;
