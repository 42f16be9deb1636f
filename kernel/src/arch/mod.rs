//! Architecture code: everything that touches x86_64 privileged state lives here.
//!
//! Read in this order: `boot` (PVH entry to long mode), `gdt`, `idt` and `trap` (the one
//! trap-frame layout and dispatcher), `fault` (exception reports), `apic`, `pit` and
//! `calibrate` (interrupt controllers and timer calibration), `cpu` (sti;hlt and friends).
pub mod apic;
pub mod boot;
pub mod calibrate;
pub mod cpu;
pub mod fault;
pub mod gdt;
pub mod idt;
pub mod pit;
pub mod syscall;
pub mod trap;
