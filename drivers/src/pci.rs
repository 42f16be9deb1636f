//! PCI: find devices through configuration mechanism #1 (I/O ports 0xCF8/0xCFC), decode their
//! base address registers (BARs), and switch on what a driver needs (I/O or memory decoding,
//! bus mastering for DMA).
//!
//! Configuration space is reached through the [`ConfigAccess`] trait: [`PortConfig`] is the
//! real mechanism, and the unit tests below use an in-memory bus, so enumeration and BAR
//! sizing are tested on the host.
//!
//! Context: task context only. A configuration access is two port operations (address, then
//! data) that must not interleave with another access; [`PortConfig`] serialises them with a
//! lock (rank `PciConfig` in `docs/locks.md`: nothing is taken under it), so interrupt handlers must never touch configuration space (none needs to: a driver's
//! handler talks to the device's own registers).
//!
//! Enumeration starts at bus 0 and follows PCI-to-PCI bridges to their secondary buses (and,
//! when the host bridge at 00:00.0 is multi-function, scans one bus per host-bridge function),
//! so only buses that exist are scanned.

use alloc::vec::Vec;
use core::fmt;
use runtime::lockorder::{Mutex, Rank};
use x86_64::instructions::port::Port;

/// Bus, device (slot) and function of one PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    pub bus: u8,
    /// 0..32
    pub device: u8,
    /// 0..8
    pub function: u8,
}

impl Address {
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Address { bus, device, function }
    }

    /// The value mechanism #1 writes to 0xCF8 for the dword at `offset`.
    pub const fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (self.bus as u32) << 16
            | ((self.device & 0x1f) as u32) << 11
            | ((self.function & 0x7) as u32) << 8
            | (offset & 0xfc) as u32
    }
}

impl fmt::Display for Address {
    /// `bb:dd.f`, as `lspci` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Dword access to configuration space. `offset` is a byte offset, rounded down to a multiple
/// of 4. A function that does not exist reads as all ones.
pub trait ConfigAccess {
    fn read32(&self, addr: Address, offset: u8) -> u32;
    fn write32(&self, addr: Address, offset: u8, value: u32);

    fn read16(&self, addr: Address, offset: u8) -> u16 {
        (self.read32(addr, offset) >> ((offset & 2) * 8)) as u16
    }

    fn read8(&self, addr: Address, offset: u8) -> u8 {
        (self.read32(addr, offset) >> ((offset & 3) * 8)) as u8
    }
}

/// Configuration mechanism #1: write the address to port 0xCF8, then move the data through
/// port 0xCFC.
pub struct PortConfig {
    lock: Mutex<()>,
}

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

impl PortConfig {
    /// # Safety
    /// The caller owns ports 0xCF8..0xD00: every configuration access goes through this one
    /// value (keep it in a `static`).
    pub const unsafe fn new() -> Self {
        PortConfig { lock: Mutex::new(Rank::PciConfig, ()) }
    }
}

impl ConfigAccess for PortConfig {
    fn read32(&self, addr: Address, offset: u8) -> u32 {
        let _g = self.lock.lock();
        // SAFETY: `new`'s caller gave us the two ports; the lock keeps the address/data pair
        // together, and reading configuration space has no side effects.
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(addr.config_address(offset));
            Port::<u32>::new(CONFIG_DATA).read()
        }
    }

    fn write32(&self, addr: Address, offset: u8, value: u32) {
        let _g = self.lock.lock();
        // SAFETY: as in read32; what the write does to the device is the caller's business
        // (the writers in this module change only the command register and BARs).
        unsafe {
            Port::<u32>::new(CONFIG_ADDRESS).write(addr.config_address(offset));
            Port::<u32>::new(CONFIG_DATA).write(value);
        }
    }
}

// Configuration-space offsets (type 0 and type 1 headers share the first 16 bytes).
pub const REG_VENDOR_ID: u8 = 0x00;
pub const REG_COMMAND: u8 = 0x04;
pub const REG_CLASS: u8 = 0x08; // revision, prog-if, subclass, class
pub const REG_HEADER_TYPE: u8 = 0x0e;
pub const REG_BAR0: u8 = 0x10;
pub const REG_SUBSYSTEM: u8 = 0x2c; // type 0: subsystem vendor, subsystem id
pub const REG_CAPABILITIES: u8 = 0x34;
pub const REG_INTERRUPT: u8 = 0x3c; // line, pin
pub const REG_BRIDGE_BUSES: u8 = 0x18; // type 1: primary, secondary, subordinate bus

/// Bits of the command register.
pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;

const CLASS_BRIDGE: u8 = 0x06;
const SUBCLASS_PCI_BRIDGE: u8 = 0x04;

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// A range of I/O ports.
    Io { port: u32, size: u32 },
    /// A range of physical addresses. A 64-bit BAR also occupies the next BAR slot (which is
    /// then `None` in [`Device::bars`]).
    Memory { addr: u64, size: u64, bits64: bool, prefetchable: bool },
}

impl Bar {
    /// The I/O port base, for an I/O BAR inside the 16-bit port space.
    pub fn io_port(&self) -> Option<u16> {
        match *self {
            Bar::Io { port, .. } => u16::try_from(port).ok(),
            Bar::Memory { .. } => None,
        }
    }

    /// (physical address, size) of a memory BAR.
    pub fn memory(&self) -> Option<(u64, u64)> {
        match *self {
            Bar::Memory { addr, size, .. } => Some((addr, size)),
            Bar::Io { .. } => None,
        }
    }
}

/// Whether a BAR's original value (bit 0 and bits 2:1) says it is a 64-bit memory BAR, which
/// takes the next slot as its upper half.
pub const fn is_64bit_memory_bar(low: u32) -> bool {
    low & 1 == 0 && (low >> 1) & 3 == 2
}

/// Decode one BAR from its original value and the value read back after writing all ones
/// (the "size probe"). For a 64-bit memory BAR pass both halves as `Some((low, high))`-style
/// pairs: `original_high` and `probe_high` are the next slot's values; for other BARs `None`.
/// Returns `None` for an unimplemented BAR (all address bits read back as zero).
pub fn decode_bar(
    original: u32,
    probe: u32,
    original_high: Option<u32>,
    probe_high: Option<u32>,
) -> Option<Bar> {
    if original & 1 == 1 {
        // I/O: bits 1:0 are flags. Devices decoding only 16 bits read zeros above bit 15;
        // the lowest writable bit is the size either way.
        let mask = probe & !0x3;
        if mask == 0 {
            return None;
        }
        let size = 1u32 << mask.trailing_zeros();
        return Some(Bar::Io { port: original & !0x3, size });
    }
    let prefetchable = original & (1 << 3) != 0;
    let bits64 = is_64bit_memory_bar(original);
    let (addr, mask) = if bits64 {
        let hi = original_high.unwrap_or(0) as u64;
        let probe_hi = probe_high.unwrap_or(0) as u64;
        ((hi << 32) | (original & !0xf) as u64, (probe_hi << 32) | (probe & !0xf) as u64)
    } else {
        ((original & !0xf) as u64, (probe & !0xf) as u64)
    };
    if mask == 0 {
        return None;
    }
    let size = 1u64 << mask.trailing_zeros();
    Some(Bar::Memory { addr, size, bits64, prefetchable })
}

/// One PCI function, as found by [`enumerate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub address: Address,
    pub vendor_id: u16,
    pub device_id: u16,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub revision: u8,
    /// Header layout (bit 7, multi-function, removed): 0 device, 1 PCI bridge, 2 CardBus.
    pub header_type: u8,
    /// Subsystem vendor and id (type 0 headers; zero otherwise). Virtio puts its device type
    /// in the subsystem id of legacy devices.
    pub subsystem_vendor_id: u16,
    pub subsystem_id: u16,
    /// BAR slots 0..6 (a type 1 header has only two). `None` for an unimplemented slot and for
    /// the upper half of a 64-bit BAR.
    pub bars: [Option<Bar>; 6],
    /// The interrupt line the firmware assigned (the ISA IRQ the INTx pin is routed to on a
    /// PC); 0xff = none.
    pub interrupt_line: u8,
    /// 0 = no INTx pin, 1..=4 = INTA#..INTD#.
    pub interrupt_pin: u8,
}

impl Device {
    /// Whether this is `vendor:device`.
    pub fn is(&self, vendor_id: u16, device_id: u16) -> bool {
        self.vendor_id == vendor_id && self.device_id == device_id
    }

    /// The legacy interrupt line, if the device has an INTx pin routed to an ISA IRQ.
    pub fn irq_line(&self) -> Option<u8> {
        (self.interrupt_pin != 0 && self.interrupt_line < 16).then_some(self.interrupt_line)
    }

    /// Set `bits` (the `COMMAND_*` constants) in the command register; returns the new value.
    pub fn enable(&self, cfg: &impl ConfigAccess, bits: u16) -> u16 {
        self.update_command(cfg, bits, 0)
    }

    /// Set the bits `set` and clear the bits `clear` of the command register; returns the new
    /// value.
    pub fn update_command(&self, cfg: &impl ConfigAccess, set: u16, clear: u16) -> u16 {
        let cmd = (cfg.read16(self.address, REG_COMMAND) | set) & !clear;
        set_command(cfg, self.address, cmd);
        cmd
    }

    /// Let the device be a bus master (needed for DMA) and decode its I/O and memory BARs.
    pub fn enable_all(&self, cfg: &impl ConfigAccess) -> u16 {
        self.enable(cfg, COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER)
    }

    /// The capability list: (offset, capability id) pairs, bounded against loops.
    pub fn capabilities(&self, cfg: &impl ConfigAccess) -> Vec<(u8, u8)> {
        let mut caps = Vec::new();
        let status = cfg.read16(self.address, REG_COMMAND + 2);
        if status & (1 << 4) == 0 {
            return caps;
        }
        let mut ptr = cfg.read8(self.address, REG_CAPABILITIES) & 0xfc;
        while ptr >= 0x40 && caps.len() < 48 {
            let id = cfg.read8(self.address, ptr);
            caps.push((ptr, id));
            ptr = cfg.read8(self.address, ptr + 1) & 0xfc;
        }
        caps
    }
}

impl fmt::Display for Device {
    /// `00:03.0 1af4:1001 class 01.00.00 irq 11`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x}",
            self.address, self.vendor_id, self.device_id, self.class, self.subclass, self.prog_if
        )?;
        if let Some(line) = self.irq_line() {
            write!(f, " irq {line}")?;
        }
        Ok(())
    }
}

/// Write the command register. The status register shares the dword; writing zeros there
/// leaves it alone (its writable bits are write-one-to-clear).
fn set_command(cfg: &impl ConfigAccess, addr: Address, cmd: u16) {
    cfg.write32(addr, REG_COMMAND, cmd as u32);
}

/// Read and size the BARs of the function at `addr` (`count` slots). Decoding is switched off
/// while the all-ones probe sits in a BAR, then the command register is restored.
///
/// A function whose BAR registers all read zero has no BAR the firmware assigned (this kernel
/// assigns none itself), and is not probed: each change of the command register makes QEMU
/// rebuild its memory map, which costs hundreds of microseconds.
pub fn read_bars(cfg: &impl ConfigAccess, addr: Address, count: usize) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    let count = count.min(6);
    if (0..count).all(|slot| cfg.read32(addr, REG_BAR0 + 4 * slot as u8) == 0) {
        return bars;
    }
    let cmd = cfg.read16(addr, REG_COMMAND);
    set_command(cfg, addr, cmd & !(COMMAND_IO | COMMAND_MEMORY));
    let probe = |slot: usize| {
        let reg = REG_BAR0 + 4 * slot as u8;
        let original = cfg.read32(addr, reg);
        cfg.write32(addr, reg, u32::MAX);
        let probed = cfg.read32(addr, reg);
        cfg.write32(addr, reg, original);
        (original, probed)
    };
    let mut slot = 0;
    while slot < count {
        let (original, probed) = probe(slot);
        if is_64bit_memory_bar(original) && slot + 1 < count {
            let (high, probed_high) = probe(slot + 1);
            bars[slot] = decode_bar(original, probed, Some(high), Some(probed_high));
            slot += 2;
        } else {
            bars[slot] = decode_bar(original, probed, None, None);
            slot += 1;
        }
    }
    set_command(cfg, addr, cmd);
    bars
}

fn read_device(cfg: &impl ConfigAccess, addr: Address) -> Option<Device> {
    let id = cfg.read32(addr, REG_VENDOR_ID);
    let vendor_id = id as u16;
    if vendor_id == 0xffff || vendor_id == 0 {
        return None;
    }
    let class = cfg.read32(addr, REG_CLASS);
    let header_type = cfg.read8(addr, REG_HEADER_TYPE) & 0x7f;
    let bar_count = match header_type {
        0 => 6,
        1 => 2,
        _ => 0,
    };
    let (subsystem_vendor_id, subsystem_id) = if header_type == 0 {
        let s = cfg.read32(addr, REG_SUBSYSTEM);
        (s as u16, (s >> 16) as u16)
    } else {
        (0, 0)
    };
    let interrupt = if header_type <= 1 { cfg.read16(addr, REG_INTERRUPT) } else { 0xff };
    Some(Device {
        address: addr,
        vendor_id,
        device_id: (id >> 16) as u16,
        class: (class >> 24) as u8,
        subclass: (class >> 16) as u8,
        prog_if: (class >> 8) as u8,
        revision: class as u8,
        header_type,
        subsystem_vendor_id,
        subsystem_id,
        bars: read_bars(cfg, addr, bar_count),
        interrupt_line: interrupt as u8,
        interrupt_pin: (interrupt >> 8) as u8,
    })
}

struct Scan<'a, C: ConfigAccess> {
    cfg: &'a C,
    seen_buses: [u64; 4],
    found: Vec<Device>,
}

impl<C: ConfigAccess> Scan<'_, C> {
    fn bus(&mut self, bus: u8) {
        let (w, b) = (bus as usize / 64, bus as usize % 64);
        if self.seen_buses[w] & (1 << b) != 0 {
            return; // a bridge loop or a bus reached twice
        }
        self.seen_buses[w] |= 1 << b;
        for device in 0..32 {
            self.slot(bus, device);
        }
    }

    fn slot(&mut self, bus: u8, device: u8) {
        let first = Address::new(bus, device, 0);
        if cfg_absent(self.cfg, first) {
            return;
        }
        let multi = self.cfg.read8(first, REG_HEADER_TYPE) & 0x80 != 0;
        for function in 0..if multi { 8 } else { 1 } {
            self.function(Address::new(bus, device, function));
        }
    }

    fn function(&mut self, addr: Address) {
        let Some(dev) = read_device(self.cfg, addr) else { return };
        let bridge_to = (dev.header_type == 1
            && dev.class == CLASS_BRIDGE
            && dev.subclass == SUBCLASS_PCI_BRIDGE)
            .then(|| self.cfg.read8(addr, REG_BRIDGE_BUSES + 1));
        self.found.push(dev);
        if let Some(secondary) = bridge_to.filter(|&s| s != 0) {
            self.bus(secondary);
        }
    }
}

fn cfg_absent(cfg: &impl ConfigAccess, addr: Address) -> bool {
    matches!(cfg.read16(addr, REG_VENDOR_ID), 0xffff | 0)
}

/// Every PCI function reachable from bus 0, in scan order (bus, then device, then function,
/// with a bridge's buses right after the bridge).
pub fn enumerate(cfg: &impl ConfigAccess) -> Vec<Device> {
    let mut scan = Scan { cfg, seen_buses: [0; 4], found: Vec::new() };
    let host = Address::new(0, 0, 0);
    if !cfg_absent(cfg, host) && cfg.read8(host, REG_HEADER_TYPE) & 0x80 != 0 {
        // Several host bridges: function f of 00:00 is the host bridge of bus f.
        for f in 0..8 {
            if !cfg_absent(cfg, Address::new(0, 0, f)) {
                scan.bus(f);
            }
        }
    } else {
        scan.bus(0);
    }
    scan.found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec;

    /// An in-memory configuration space. Each BAR has a size mask so that writing all ones
    /// reads back like real hardware; writes to other registers are stored as given.
    #[derive(Default)]
    struct FakeBus {
        regs: RefCell<BTreeMap<(Address, u8), u32>>,
        /// (address, BAR register) -> writable address bits of that BAR register.
        bar_masks: BTreeMap<(Address, u8), u32>,
        /// Config writes seen, in order.
        log: RefCell<Vec<(Address, u8, u32)>>,
    }

    impl FakeBus {
        fn function(&mut self, addr: Address, vendor: u16, device: u16, class: u32, header: u8) {
            let mut r = self.regs.borrow_mut();
            r.insert((addr, 0), (device as u32) << 16 | vendor as u32);
            r.insert((addr, 4), (COMMAND_IO | COMMAND_MEMORY) as u32);
            r.insert((addr, 8), class);
            r.insert((addr, 0xc), (header as u32) << 16);
        }

        /// A BAR: `value` its current contents, `flags` its low read-only bits, `size` its size.
        fn bar(&mut self, addr: Address, slot: u8, value: u32, size_mask: u32) {
            let reg = REG_BAR0 + 4 * slot;
            self.regs.borrow_mut().insert((addr, reg), value);
            self.bar_masks.insert((addr, reg), size_mask);
        }
    }

    impl ConfigAccess for FakeBus {
        fn read32(&self, addr: Address, offset: u8) -> u32 {
            *self.regs.borrow().get(&(addr, offset & 0xfc)).unwrap_or(&if offset == 0 {
                u32::MAX
            } else {
                0
            })
        }

        fn write32(&self, addr: Address, offset: u8, value: u32) {
            let off = offset & 0xfc;
            self.log.borrow_mut().push((addr, off, value));
            let mut regs = self.regs.borrow_mut();
            let is_bar = (REG_BAR0..REG_BAR0 + 24).contains(&off);
            // An unimplemented BAR is hardwired to zero.
            let mask = self.bar_masks.get(&(addr, off)).copied().or(is_bar.then_some(0));
            let stored = match mask {
                // Read-only flag bits keep their value; address bits take the write, masked.
                Some(mask) => {
                    let old = regs.get(&(addr, off)).copied().unwrap_or(0);
                    (old & !mask) | (value & mask)
                }
                // Status (upper half) is read-only or write-one-to-clear.
                None if off == REG_COMMAND => {
                    let old = regs.get(&(addr, off)).copied().unwrap_or(0);
                    (old & 0xffff_0000 & !(value & 0xffff_0000)) | (value & 0xffff)
                }
                None => value,
            };
            regs.insert((addr, off), stored);
        }
    }

    #[test]
    fn config_address_layout() {
        assert_eq!(Address::new(0, 3, 0).config_address(0x10), 0x8000_1810);
        assert_eq!(Address::new(0xff, 31, 7).config_address(0x3f), 0x80ff_ff3c);
        assert_eq!(std::format!("{}", Address::new(1, 2, 3)), "01:02.3");
    }

    #[test]
    fn decode_io_bar() {
        // e1000's I/O BAR: 64 ports at 0xc000; the probe reads back 0xffffffc1.
        assert_eq!(
            decode_bar(0xc001, 0xffff_ffc1, None, None),
            Some(Bar::Io { port: 0xc000, size: 64 })
        );
        // A device decoding only 16 bits reads zeros above bit 15.
        assert_eq!(
            decode_bar(0xc041, 0x0000_ffe1, None, None),
            Some(Bar::Io { port: 0xc040, size: 32 })
        );
        assert_eq!(Bar::Io { port: 0xc040, size: 32 }.io_port(), Some(0xc040));
        assert_eq!(Bar::Io { port: 0x1_0000, size: 4 }.io_port(), None);
    }

    #[test]
    fn decode_memory_bars() {
        // e1000 BAR0: 128 KiB of 32-bit, non-prefetchable memory at 0xfebc0000.
        assert_eq!(
            decode_bar(0xfebc_0000, 0xfffe_0000, None, None),
            Some(Bar::Memory {
                addr: 0xfebc_0000,
                size: 0x2_0000,
                bits64: false,
                prefetchable: false
            })
        );
        // A 64-bit prefetchable BAR: 16 KiB at 0x8_0000_0000.
        let low = 0x0000_000c; // type 64-bit (0b10 << 1) | prefetchable
        assert!(is_64bit_memory_bar(low));
        assert_eq!(
            decode_bar(low, 0xffff_c00c, Some(0x8), Some(0xffff_ffff)),
            Some(Bar::Memory {
                addr: 0x8_0000_0000,
                size: 0x4000,
                bits64: true,
                prefetchable: true
            })
        );
        // A 64-bit BAR larger than 4 GiB: the size bit is in the upper half.
        assert_eq!(
            decode_bar(0x4, 0x0000_0004, Some(0), Some(0xffff_fffe)),
            Some(Bar::Memory { addr: 0, size: 1 << 33, bits64: true, prefetchable: false })
        );
        assert_eq!(
            Bar::Memory { addr: 5, size: 6, bits64: false, prefetchable: false }.memory(),
            Some((5, 6))
        );
    }

    #[test]
    fn decode_unimplemented_bar() {
        assert_eq!(decode_bar(0, 0, None, None), None);
        assert_eq!(decode_bar(0x1, 0x1, None, None), None);
        assert_eq!(decode_bar(0x4, 0x4, Some(0), Some(0)), None);
    }

    fn device_with_bars() -> (FakeBus, Address) {
        let mut bus = FakeBus::default();
        let a = Address::new(0, 3, 0);
        bus.function(a, 0x8086, 0x100e, 0x0200_0003, 0);
        bus.bar(a, 0, 0xfebc_0000, 0xfffe_0000); // 128 KiB memory
        bus.bar(a, 1, 0xc001, 0xffff_ffc0); // 64 I/O ports
        bus.bar(a, 2, 0x0000_000c, 0xffff_c000); // 64-bit prefetchable, 16 KiB ...
        bus.bar(a, 3, 0x0000_0008, 0xffff_ffff); // ... at 0x8_0000_0000
        bus.regs.borrow_mut().insert((a, REG_INTERRUPT), 0x0000_010b); // pin A, line 11
        bus.regs.borrow_mut().insert((a, REG_SUBSYSTEM), 0x1234_5678);
        (bus, a)
    }

    #[test]
    fn bars_are_sized_and_restored() {
        let (bus, a) = device_with_bars();
        let bars = read_bars(&bus, a, 6);
        assert_eq!(
            bars[0],
            Some(Bar::Memory {
                addr: 0xfebc_0000,
                size: 0x2_0000,
                bits64: false,
                prefetchable: false
            })
        );
        assert_eq!(bars[1], Some(Bar::Io { port: 0xc000, size: 64 }));
        assert_eq!(
            bars[2],
            Some(Bar::Memory {
                addr: 0x8_0000_0000,
                size: 0x4000,
                bits64: true,
                prefetchable: true
            })
        );
        assert_eq!(bars[3], None, "upper half of the 64-bit BAR");
        assert_eq!(bars[4], None);
        // Every BAR holds its original value again, and decoding is back on.
        assert_eq!(bus.read32(a, REG_BAR0), 0xfebc_0000);
        assert_eq!(bus.read32(a, REG_BAR0 + 4), 0xc001);
        assert_eq!(bus.read32(a, REG_BAR0 + 12), 0x8);
        assert_eq!(bus.read16(a, REG_COMMAND), COMMAND_IO | COMMAND_MEMORY);
        // Decoding was off while the probes were in the BARs.
        let log = bus.log.borrow();
        let first_probe =
            log.iter().position(|&(_, off, v)| off == REG_BAR0 && v == u32::MAX).unwrap();
        assert_eq!(log[first_probe - 1], (a, REG_COMMAND, 0), "decoding off before probing");
        assert_eq!(log.last(), Some(&(a, REG_COMMAND, (COMMAND_IO | COMMAND_MEMORY) as u32)));
    }

    #[test]
    fn function_without_bars_is_not_probed() {
        let mut bus = FakeBus::default();
        let a = Address::new(0, 1, 0);
        bus.function(a, 0x8086, 0x7000, 0x0601_0000, 0);
        assert_eq!(read_bars(&bus, a, 6), [None; 6]);
        assert!(bus.log.borrow().is_empty(), "no configuration writes");
    }

    #[test]
    fn enumerate_finds_functions_and_follows_bridges() {
        let (mut bus, nic) = device_with_bars();
        let host = Address::new(0, 0, 0);
        bus.function(host, 0x8086, 0x1237, 0x0600_0002, 0);
        // A multi-function device at slot 1: functions 0 and 3 exist.
        let isa = Address::new(0, 1, 0);
        bus.function(isa, 0x8086, 0x7000, 0x0601_0000, 0x80);
        let acpi = Address::new(0, 1, 3);
        bus.function(acpi, 0x8086, 0x7113, 0x0680_0003, 0);
        // A PCI bridge at 00:05.0 to bus 2, with one device behind it.
        let bridge = Address::new(0, 5, 0);
        bus.function(bridge, 0x1b36, 0x0001, 0x0604_0000, 1);
        bus.regs.borrow_mut().insert((bridge, REG_BRIDGE_BUSES), 0x0002_0200);
        let behind = Address::new(2, 0, 0);
        bus.function(behind, 0x1af4, 0x1001, 0x0100_0000, 0);
        bus.bar(behind, 0, 0xc081, 0xffff_ffc0);
        // A bridge pointing back at bus 0 must not loop.
        let looping = Address::new(2, 1, 0);
        bus.function(looping, 0x1b36, 0x0001, 0x0604_0000, 1);
        bus.regs.borrow_mut().insert((looping, REG_BRIDGE_BUSES), 0x0000_0002);

        let found = enumerate(&bus);
        let addrs: Vec<Address> = found.iter().map(|d| d.address).collect();
        assert_eq!(addrs, vec![host, isa, acpi, nic, bridge, behind, looping]);
        let e1000 = &found[3];
        assert!(e1000.is(0x8086, 0x100e));
        assert_eq!((e1000.class, e1000.subclass, e1000.prog_if, e1000.revision), (2, 0, 0, 3));
        assert_eq!(
            (e1000.interrupt_line, e1000.interrupt_pin, e1000.irq_line()),
            (11, 1, Some(11))
        );
        assert_eq!((e1000.subsystem_vendor_id, e1000.subsystem_id), (0x5678, 0x1234));
        assert_eq!(e1000.bars[1], Some(Bar::Io { port: 0xc000, size: 64 }));
        assert_eq!(found[5].bars[0], Some(Bar::Io { port: 0xc080, size: 64 }));
        assert_eq!(found[4].header_type, 1);
        assert_eq!(found[0].irq_line(), None, "no interrupt pin");
        assert_eq!(std::format!("{e1000}"), "00:03.0 8086:100e class 02.00.00 irq 11");
    }

    #[test]
    fn enable_sets_command_bits() {
        let (bus, a) = device_with_bars();
        let dev = read_device(&bus, a).unwrap();
        assert_eq!(
            dev.enable(&bus, COMMAND_BUS_MASTER),
            COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER
        );
        assert_eq!(bus.read16(a, REG_COMMAND), COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER);
        assert!(dev.capabilities(&bus).is_empty());
        assert_eq!(
            dev.update_command(&bus, COMMAND_INTX_DISABLE, COMMAND_MEMORY),
            COMMAND_IO | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE
        );
        assert_eq!(
            bus.read16(a, REG_COMMAND),
            COMMAND_IO | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE
        );
    }

    #[test]
    fn capability_list() {
        let (bus, a) = device_with_bars();
        {
            let mut r = bus.regs.borrow_mut();
            r.insert((a, REG_COMMAND), 1 << 20); // status: capability list present
            r.insert((a, REG_CAPABILITIES), 0x40);
            r.insert((a, 0x40), 0x0000_5005); // MSI at 0x40, next 0x50
            r.insert((a, 0x50), 0x0000_5011); // MSI-X at 0x50, next 0x50: a loop
        }
        let dev = read_device(&bus, a).unwrap();
        let caps = dev.capabilities(&bus);
        assert_eq!(caps[..2], [(0x40, 0x05), (0x50, 0x11)]);
        assert_eq!(caps.len(), 48, "a looping list is cut off");
    }
}
