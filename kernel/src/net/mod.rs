//! Networking. For now the network card alone ([`e1000`]); the TCP/IP stack comes later.

pub mod e1000;

pub use e1000::{nic, Nic};
