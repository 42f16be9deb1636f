//! Networking: the network card ([`e1000`]), smoltcp over it ([`device`]), the stack and its
//! task ([`stack`]), listening ports and their backlogs ([`listen`]), and sockets as files
//! ([`socket`]).

pub mod device;
pub mod e1000;
pub mod listen;
pub mod socket;
pub mod stack;

pub use e1000::{nic, Nic};
