//! Host unit tests for the kernel's pure namespace modules (`kernel/src/ns/`): pid allocation
//! and translation across nested pid namespaces (`pidmap`), the rules (`rules`): `spawn`'s
//! flags, depth and id limits, who is a descendant of whom, where `exec` looks for a program,
//! and `nspcopy`'s destination names; and the limits' hierarchical accounts (`limits`), with
//! threads racing for a limit. The kernel is a `no_std` binary, so the modules are
//! compiled here as they are and their `#[cfg(test)]` tests run on the host.

extern crate alloc;

#[allow(dead_code)]
#[path = "../../kernel/src/ns/pidmap.rs"]
mod pidmap;

#[allow(dead_code)]
#[path = "../../kernel/src/ns/rules.rs"]
mod rules;

#[allow(dead_code)]
#[path = "../../kernel/src/ns/limits.rs"]
mod limits;
