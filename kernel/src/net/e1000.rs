//! The network cards: the first Intel E1000 (PCI 8086:100e) on the bus carries the wire; a
//! second one, when the machine has it, carries the wire's UDP datagrams ([`Cards`]).
//!
//! Why two: `make run` reaches the guest's UDP servers through a relay on the host (restricted
//! user networking drops the guest's UDP replies), and a relay sharing the first card's segment
//! would receive a copy of every TCP frame too. On a card of its own it sees UDP only, and the
//! TCP path costs what plain user networking costs. Both cards have the same MAC and address:
//! they are two links of one interface, chosen per frame by protocol, as Linux's policy routing
//! does with `ip rule ... ipproto udp` (the choice is `device::Wire`'s).
//!
//! [`init`] finds the devices, maps their register windows (BAR 0, uncached), turns on memory
//! decoding and bus mastering, gives the drivers DMA memory (`mm::dma`), routes their
//! interrupt lines to [`handle_irq`] and only then unmasks the devices' interrupts. [`cards`]
//! returns them, or `None` when the machine has none (`-nic none`); the kernel boots either way.
//!
//! The driver proper is `drivers::e1000`: the interrupt handler only acknowledges the devices
//! (reads ICR) and wakes the receive/transmit wakers.

use crate::acpi::Madt;
use crate::kprintln;
use crate::mm::paging;
use conquer_once::noblock::OnceCell;
use core::ops::Deref;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};
use drivers::e1000::{self, MmioRegs, E1000};
use drivers::pci::{self, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, COMMAND_MEMORY};

/// A network card: the driver (through `Deref`: `transmit`, `send`, `recv`, `receive`,
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

/// The machine's cards: `main` carries every frame but UDP's when `udp` exists.
pub struct Cards {
    pub main: Nic,
    pub udp: Option<Nic>,
}

impl Cards {
    pub fn iter(&self) -> impl Iterator<Item = &Nic> {
        core::iter::once(&self.main).chain(self.udp.as_ref())
    }

    /// Ready when a received frame waits on either card; otherwise both receive wakers are
    /// registered (each driver registers before its last look, so none is lost).
    pub fn poll_rx_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = false;
        for n in self.iter() {
            ready |= n.poll_rx_ready(cx).is_ready();
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Ready when both cards have a free transmit slot (the stack does not know which card
    /// its next frame needs); otherwise the wakers of the full ones are registered.
    pub fn poll_tx_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = true;
        for n in self.iter() {
            ready &= n.poll_tx_ready(cx).is_ready();
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Set once by [`init`] (task context), read by the interrupt handler: a `noblock` cell, whose
/// reads never wait (a handler that finds it still being set treats the interrupt as not
/// its devices').
static CARDS: OnceCell<Cards> = OnceCell::uninit();
static ROUTED: AtomicBool = AtomicBool::new(false);

/// The network cards, if the machine has one (after [`init`]).
pub fn cards() -> Option<&'static Cards> {
    CARDS.try_get().ok().filter(|_| ROUTED.load(Ordering::Acquire))
}

/// The main network card, if the machine has one (after [`init`]).
pub fn nic() -> Option<&'static Nic> {
    cards().map(|c| &c.main)
}

/// Interrupt context (registered on each card's line, which other devices may share):
/// acknowledge and wake; in the sleep design (`net=sleep`) also run the root stack
/// (`net::drive::sleep::on_nic_irq`).
fn handle_irq() {
    if let Ok(cards) = CARDS.try_get() {
        // Every card is asked: each acknowledges its own cause register.
        let ours = cards.iter().fold(false, |any, n| n.dev.handle_irq() | any);
        if ours && super::drive::design() == super::drive::Design::Sleep {
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

/// Find and start the network cards, if there are any. Task context, after the APIC is up.
pub fn init(madt: &Madt) {
    let mut found = crate::pci::devices()
        .iter()
        .filter(|d| d.is(e1000::VENDOR_ID, e1000::DEVICE_ID_82540EM))
        .filter_map(start);
    let Some(main) = found.next() else { return };
    let udp = found.next();
    // The handler finds the devices through CARDS, so CARDS is set before the lines are
    // routed, and the devices' interrupts are unmasked only once the handler is in place.
    if CARDS.try_init_once(|| Cards { main, udp }).is_err() {
        kprintln!("net: the cards were started already");
        return;
    }
    let Ok(cards) = CARDS.try_get() else { return };
    let mut lines: [Option<u8>; 2] = [None, None];
    for (i, n) in cards.iter().enumerate() {
        if lines.contains(&Some(n.irq)) {
            continue; // one handler per line serves every card on it
        }
        if let Err(e) = crate::pci::register_irq(madt, n.irq, handle_irq) {
            kprintln!("net: {}: irq {}: {e}; no network", n.pci, n.irq);
            return;
        }
        lines[i] = Some(n.irq);
    }
    for n in cards.iter() {
        n.enable_interrupts();
    }
    ROUTED.store(true, Ordering::Release);
    let m = &cards.main;
    kprintln!("net: e1000 at {}, mac {}, irq {}", m.pci, MacFmt(m.mac()), m.irq);
    if let Some(u) = &cards.udp {
        kprintln!("net: e1000 at {}, mac {}, irq {}: carries UDP", u.pci, MacFmt(u.mac()), u.irq);
    }
}

/// Map and reset one card (its interrupts still masked); `None`, said on the console, when it
/// cannot be used.
fn start(dev: &pci::Device) -> Option<Nic> {
    let cfg = crate::pci::config();
    let bar = dev.bars[0].and_then(|b| b.memory());
    let (Some((phys, size)), Some(line)) = (bar, dev.irq_line()) else {
        kprintln!("net: {dev}: no memory BAR 0 or no interrupt line; not used");
        return None;
    };
    if size < e1000::MMIO_SIZE {
        kprintln!("net: {dev}: BAR 0 is {size} bytes, too small; not used");
        return None;
    }
    // Memory decoding for the registers, bus mastering for DMA, INTx on.
    dev.update_command(cfg, COMMAND_MEMORY | COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE);
    let base = paging::map_mmio(phys, e1000::MMIO_SIZE);
    // SAFETY: BAR 0 of this E1000, just mapped uncached, which nothing else in the kernel drives.
    let regs = unsafe { MmioRegs::new(base as *mut u8) };
    match E1000::new(regs, crate::mm::dma::alloc) {
        Ok(d) => Some(Nic { dev: d, pci: dev.address, irq: line }),
        Err(e) => {
            kprintln!("net: {dev}: {e}");
            None
        }
    }
}
