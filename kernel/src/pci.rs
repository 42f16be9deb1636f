//! The PCI bus as the kernel sees it: one configuration-space accessor, the list of functions
//! found at boot, and interrupt lines shared between PCI devices.
//!
//! A PCI device's legacy interrupt (INTx) reaches the CPU through the ISA IRQ line the
//! firmware wrote into its configuration space (10 or 11 on QEMU's `pc`). Such lines are
//! level-triggered (the MADT says so) and may be shared by several devices, so every handler
//! registered on a line runs on each of its interrupts, and each handler acknowledges its own
//! device (which lowers the line) before the EOI. Line `n` arrives as vector
//! `idt::pci_line_vector(n)`; `arch::trap` calls [`dispatch_irq`].

use crate::acpi::Madt;
use crate::arch::{apic, idt};
use alloc::vec::Vec;
use conquer_once::noblock::OnceCell;
use drivers::pci::{self, Device, PortConfig};
use spin::Once;

// SAFETY: this is the only user of the configuration ports 0xCF8/0xCFC in the kernel.
static CONFIG: PortConfig = unsafe { PortConfig::new() };
static DEVICES: Once<Vec<Device>> = Once::new();

/// Handlers per interrupt line: enough for the devices QEMU gives us (disk, NIC).
const HANDLERS_PER_LINE: usize = 4;
const LINES: usize = 16;
/// Each slot is set once (task context) and read on every interrupt of its line: `noblock`
/// cells, so the interrupt path never waits on a slot being set (it skips it).
type LineHandlers = [OnceCell<fn()>; HANDLERS_PER_LINE];
static HANDLERS: [LineHandlers; LINES] =
    [const { [const { OnceCell::uninit() }; HANDLERS_PER_LINE] }; LINES];

/// Configuration space (task context only).
pub fn config() -> &'static PortConfig {
    &CONFIG
}

/// Scan the bus (once); every function found, in bus order.
pub fn devices() -> &'static [Device] {
    DEVICES.call_once(|| {
        let t0 = crate::time::now_ns();
        let found = pci::enumerate(&CONFIG);
        let us = (crate::time::now_ns() - t0) / 1000;
        crate::kprintln!("pci: {} functions ({} us)", found.len(), us);
        found
    })
}

/// Run `handler` on every interrupt of PCI interrupt line `line`, and route the line (as the
/// MADT describes it: level-triggered on a PC) to its vector. Register only once the device's
/// driver can take the interrupt. Task context.
pub fn register_irq(madt: &Madt, line: u8, handler: fn()) -> Result<u8, &'static str> {
    let slots = HANDLERS.get(line as usize).ok_or("interrupt line out of range")?;
    if !slots.iter().any(|s| s.try_init_once(|| handler).is_ok()) {
        return Err("too many handlers on the line");
    }
    let vector = idt::pci_line_vector(line);
    apic::route_isa_irq(madt, line, vector);
    Ok(vector)
}

/// Interrupt context: run every handler of `line`.
pub fn dispatch_irq(line: u8) {
    if let Some(slots) = HANDLERS.get(line as usize) {
        for handler in slots.iter().filter_map(|s| s.try_get().ok()) {
            handler();
        }
    }
}
