//! Host unit tests for the kernel's pure network modules: the NIC device's receive filter
//! (`kernel/src/net/filter.rs`: martians and IP fragments from the wire), which depends only
//! on `smoltcp::wire` and so compiles here as it is.

#[allow(dead_code)]
#[path = "../../kernel/src/net/filter.rs"]
mod filter;
