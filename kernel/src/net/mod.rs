//! Networking: the network card ([`e1000`]), smoltcp over it ([`device`]) behind a receive
//! filter ([`filter`]), the stack and its task ([`stack`]), listening ports with their SYN and
//! accept queues ([`listen`]), and sockets as files ([`socket`]).

pub mod device;
pub mod e1000;
pub mod filter;
pub mod listen;
pub mod socket;
pub mod stack;

pub use e1000::{nic, Nic};
