//! Device drivers, each a small module owning one device.
//!
//! Interrupt-context rules shared by every driver here: an interrupt handler only reads the
//! device, pushes into a fixed-size lock-free [`runtime::irq::IrqQueue`] or wakes a
//! [`runtime::irq::IrqWaker`]. It never allocates, never takes a lock that task code can hold,
//! and never blocks.
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod dma;
pub mod e1000;
pub mod pci;
pub mod ps2;
pub mod serial;
pub mod vga;
pub mod virtio_blk;
