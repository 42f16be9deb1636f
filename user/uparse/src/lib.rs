//! Parsers for the user programs, kept apart from the system calls so that they build and run
//! their unit tests on the host (`cargo test -p uparse`); the programs in `user/` use them on
//! the kernel.
//!
//! - [`shell`]: the shell's command language: words and quotes, `|`, `<`, `>`, `>>`, `&`, `;`.
//! - [`pattern`]: grep's patterns: literal characters, `.`, `*`, `^`, `$`.
//! - [`meminfo`]: the text of `/proc/meminfo`.
//! - [`duration`]: `sleep`'s argument.
//! - [`inet`]: IPv4 addresses, ports and `address:port` as text (and MAC addresses).
//! - [`http`]: HTTP/1.x for `curl` and `httpd`: URLs, request and status lines, headers,
//!   request paths, MIME types, response heads, error pages, directory listings.
//! - [`procnet`]: the text of `/proc/net` and `/proc/netall` (`netstat`).
//! - [`procns`]: the text of `/proc/ns`, with each namespace's address and published ports
//!   (`ps`).
//! - [`ifaces`]: the text of `/proc/ifaces` (`ifconfig`).
//! - [`publish`]: published ports: `spawn -p`'s `HOSTPORT:PORT[/udp]` and `/proc/ns`'s list.
//! - [`size`]: sizes and counts on command lines (`spawn --mem 16M --pids 8`), sizes for people.

#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod duration;
pub mod http;
pub mod ifaces;
pub mod inet;
pub mod meminfo;
pub mod pattern;
pub mod procnet;
pub mod procns;
pub mod publish;
pub mod shell;
pub mod size;
