//! Networking: one TCP/IP stack per network namespace, joined by an in-kernel bridge.
//!
//! Files in reading order: the network card ([`e1000`]); a stack's device in layers, each a
//! smoltcp `phy::Device` owning the one below ([`device`]: the wire, the receive filter
//! ([`filter`]), the bridge port, ARP snooping, loopback); the bridge between the stacks
//! ([`bridge`]); the root's router between the wire and the bridge ([`router`]) with the
//! published ports' translation ([`nat`]); a stack and its task ([`stack`]); listening ports
//! with their SYN and accept queues and the SYN gate ([`listen`]); the stacks by namespace,
//! their birth and death, `publish` and the `/proc` files ([`netns`]); sockets as files
//! ([`socket`]); the checksums the NIC computes for the wire and software for every other
//! path ([`csum`]). docs/04-network.md follows a frame through them.

pub mod bridge;
pub mod csum;
pub mod device;
pub mod drive;
pub mod e1000;
pub mod filter;
pub mod listen;
pub mod nat;
pub mod netns;
pub mod router;
pub mod socket;
pub mod stack;

pub use e1000::{nic, Nic};
