//! The network card: the first Intel E1000 (PCI 8086:100e) on the bus, as one global [`Nic`].
//!
//! [`init`] finds the device, maps its register window (BAR 0, uncached), turns on memory
//! decoding and bus mastering, gives the driver DMA memory (`mm::dma`), routes its interrupt
//! line to [`handle_irq`] and only then unmasks the device's interrupts. [`nic`] returns the
//! card, or `None` when the machine has none (`-nic none`); the kernel boots either way.
//!
//! The driver proper is `drivers::e1000`: the interrupt handler only acknowledges the device
//! (reads ICR) and wakes the receive/transmit wakers.

use crate::acpi::Madt;
use crate::kprintln;
use crate::mm::paging;
use conquer_once::noblock::OnceCell;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::e1000::{self, MmioRegs, E1000};
use drivers::pci::{self, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, COMMAND_MEMORY};

/// The network card: the driver (through `Deref`: `transmit`, `send`, `recv`, `receive`,
/// `mac`, `stats`...) and where it sits.
pub struct Nic {
    dev: E1000<MmioRegs>,
    pub pci: pci::Address,
    pub irq: u8,
}

impl Deref for Nic {
    type Target = E1000<MmioRegs>;
    fn deref(&self) -> &Self::Target {
        &self.dev
    }
}

/// Set once by [`init`] (task context), read by the interrupt handler: a `noblock` cell, whose
/// reads never wait (a handler that finds it still being set treats the interrupt as not
/// its device's).
static NIC: OnceCell<Nic> = OnceCell::uninit();
static ROUTED: AtomicBool = AtomicBool::new(false);

/// The network card, if the machine has one (after [`init`]).
pub fn nic() -> Option<&'static Nic> {
    NIC.try_get().ok().filter(|_| ROUTED.load(Ordering::Acquire))
}

/// Interrupt context (registered on the device's line): acknowledge and wake; in the sleep
/// design (`net=sleep`) also run the root stack (`net::drive::sleep::on_nic_irq`).
fn handle_irq() {
    if let Ok(n) = NIC.try_get() {
        if n.dev.handle_irq() && super::drive::design() == super::drive::Design::Sleep {
            super::drive::sleep::on_nic_irq();
        }
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub struct MacFmt(pub [u8; 6]);

impl core::fmt::Display for MacFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Find and start the network card, if there is one. Task context, after the APIC is up.
pub fn init(madt: &Madt) {
    let cfg = crate::pci::config();
    let Some(dev) =
        crate::pci::devices().iter().find(|d| d.is(e1000::VENDOR_ID, e1000::DEVICE_ID_82540EM))
    else {
        return;
    };
    let bar = dev.bars[0].and_then(|b| b.memory());
    let (Some((phys, size)), Some(line)) = (bar, dev.irq_line()) else {
        kprintln!("net: {dev}: no memory BAR 0 or no interrupt line; not used");
        return;
    };
    if size < e1000::MMIO_SIZE {
        kprintln!("net: {dev}: BAR 0 is {size} bytes, too small; not used");
        return;
    }
    // Memory decoding for the registers, bus mastering for DMA, INTx on.
    dev.update_command(cfg, COMMAND_MEMORY | COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE);
    let base = paging::map_mmio(phys, e1000::MMIO_SIZE);
    // SAFETY: BAR 0 of this E1000, just mapped uncached, which nothing else in the kernel drives.
    let regs = unsafe { MmioRegs::new(base as *mut u8) };
    let drv = match E1000::new(regs, crate::mm::dma::alloc) {
        Ok(d) => d,
        Err(e) => {
            kprintln!("net: {dev}: {e}");
            return;
        }
    };
    // The handler finds the device through NIC, so NIC is set before the line is routed, and
    // the device's interrupts are unmasked only once the handler is in place.
    if NIC.try_init_once(|| Nic { dev: drv, pci: dev.address, irq: line }).is_err() {
        kprintln!("net: {dev}: a card was started already; not used");
        return;
    }
    let Ok(nic) = NIC.try_get() else { return };
    if let Err(e) = crate::pci::register_irq(madt, line, handle_irq) {
        kprintln!("net: {dev}: irq {line}: {e}; not used");
        return;
    }
    nic.enable_interrupts();
    ROUTED.store(true, Ordering::Release);
    kprintln!("net: e1000 at {}, mac {}, irq {}", nic.pci, MacFmt(nic.mac()), line);
}
