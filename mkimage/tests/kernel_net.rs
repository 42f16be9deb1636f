//! Host unit tests for the kernel's pure network modules, compiled here as they are: the
//! wire's receive filter (`kernel/src/net/filter.rs`: martians and IP fragments from the wire,
//! and the container network the wire must not reach), the root router's published ports
//! (`nat.rs`: the rewrite from the wire to a container and back, checksums included), and the
//! bridge between the namespaces' stacks (`bridge.rs`: learning, flooding, bounded queues,
//! notifications), and the checksums filled, offloaded and verified around the NIC
//! (`csum.rs`).

extern crate alloc;

#[allow(dead_code)]
#[path = "../../kernel/src/net/filter.rs"]
mod filter;

#[allow(dead_code)]
#[path = "../../kernel/src/net/nat.rs"]
mod nat;

#[allow(dead_code)]
#[path = "../../kernel/src/net/bridge.rs"]
mod bridge;

#[allow(dead_code)]
#[path = "../../kernel/src/net/csum.rs"]
mod csum;
