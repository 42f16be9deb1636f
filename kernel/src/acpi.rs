//! Just enough ACPI: find the RSDP, walk the RSDT/XSDT, and read
//! - the FADT: the PM1a control port and the `\_S5` sleep type, for power-off;
//! - the MADT: the I/O APIC and the ISA interrupt overrides, for interrupt routing.
//!
//! Tables come from firmware, so every length, checksum and offset is checked before use; a
//! missing or bad table gives an error or a documented default, never a fault.

use crate::mm::{paging, phys_to_virt};

#[derive(Clone, Copy, Default, Debug)]
pub struct IrqFlags {
    pub active_low: bool,
    pub level: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Madt {
    pub ioapic_addr: u64,
    pub ioapic_gsi_base: u32,
    overrides: [Option<(u32, IrqFlags)>; 16],
}

impl Madt {
    /// The GSI and polarity/trigger of ISA `irq`: identity, edge, active high unless overridden.
    pub fn isa_irq(&self, irq: u8) -> (u32, IrqFlags) {
        self.overrides
            .get(irq as usize)
            .copied()
            .flatten()
            .unwrap_or((irq as u32, IrqFlags::default()))
    }
}

impl Default for Madt {
    /// The PC defaults, used when there is no MADT.
    fn default() -> Self {
        Madt { ioapic_addr: 0xfec0_0000, ioapic_gsi_base: 0, overrides: [None; 16] }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Acpi {
    pub pm1a_control: Option<u16>,
    pub s5_sleep_type: u16,
    pub madt: Madt,
}

const MAX_TABLE: usize = 1 << 20;

/// A byte slice of physical memory, mapped on demand.
fn phys(pa: u64, len: usize) -> Option<&'static [u8]> {
    if pa == 0 || len > MAX_TABLE || pa.checked_add(len as u64)? >= 1 << 40 {
        return None;
    }
    paging::map_mmio(pa, len as u64);
    // SAFETY: the range was just made reachable through the direct map; firmware tables are
    // never written by the kernel.
    Some(unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, len) })
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
}

/// A whole table with a valid header, length and checksum.
fn table(pa: u64) -> Option<&'static [u8]> {
    let header = phys(pa, 36)?;
    let len = u32_at(header, 4)? as usize;
    if len < 36 {
        return None;
    }
    let t = phys(pa, len)?;
    checksum_ok(t).then_some(t)
}

/// The physical address of a valid RSDP: the PVH hint, else the BIOS areas' scan.
fn find_rsdp(hint: u64) -> Option<u64> {
    let valid = |pa: u64| {
        let r = phys(pa, 20)?;
        (&r[..8] == b"RSD PTR " && checksum_ok(r)).then_some(pa)
    };
    if let Some(pa) = (hint != 0).then(|| valid(hint)).flatten() {
        return Some(pa);
    }
    let ebda = (u16_at(phys(0x40e, 2)?, 0)? as u64) << 4;
    let areas = [(ebda, 1024u64), (0xe0000, 0x20000)];
    areas
        .iter()
        .filter(|(start, _)| *start != 0)
        .flat_map(|&(start, len)| (start..start + len).step_by(16))
        .find_map(valid)
}

/// The SLP_TYPa value of the `\_S5_` package in the DSDT's AML.
fn s5_sleep_type(dsdt: &[u8]) -> Option<u16> {
    let at = dsdt.windows(4).position(|w| w == b"_S5_")?;
    let aml = dsdt.get(at + 4..)?;
    if *aml.first()? != 0x12 {
        return None; // not PackageOp
    }
    let pkg_len_bytes = (*aml.get(1)? >> 6) as usize + 1;
    let first = at_elem(aml.get(1 + pkg_len_bytes + 1..)?)?;
    Some(first as u16)
}

fn at_elem(b: &[u8]) -> Option<u8> {
    match *b.first()? {
        0x0a => b.get(1).copied(),    // BytePrefix
        v @ (0x00 | 0x01) => Some(v), // ZeroOp, OneOp
        _ => None,
    }
}

fn parse_madt(t: &[u8]) -> Option<Madt> {
    let mut madt = Madt::default();
    let mut off = 44;
    while off + 2 <= t.len() {
        let (kind, len) = (t[off], t[off + 1] as usize);
        if len < 2 || off + len > t.len() {
            break;
        }
        let e = &t[off..off + len];
        match kind {
            1 if len >= 12 => {
                madt.ioapic_addr = u32_at(e, 4)? as u64;
                madt.ioapic_gsi_base = u32_at(e, 8)?;
            }
            2 if len >= 10 => {
                let (source, gsi, flags) = (e[3], u32_at(e, 4)?, u16_at(e, 8)?);
                let f = IrqFlags { active_low: flags & 3 == 3, level: (flags >> 2) & 3 == 3 };
                if let Some(slot) = madt.overrides.get_mut(source as usize) {
                    *slot = Some((gsi, f));
                }
            }
            _ => {}
        }
        off += len;
    }
    Some(madt)
}

pub fn init(rsdp_hint: u64) -> Result<Acpi, &'static str> {
    let rsdp_pa = find_rsdp(rsdp_hint).ok_or("no ACPI RSDP found")?;
    let rsdp = phys(rsdp_pa, 20).ok_or("bad RSDP")?;
    let mut acpi = Acpi::default();
    // ACPI 2+ has a 64-bit XSDT address at offset 24; prefer it when present.
    let xsdt = (rsdp[15] >= 2).then(|| phys(rsdp_pa, 36).and_then(|r| u64_at(r, 24))).flatten();
    let (root, entry_size) = match xsdt {
        Some(x) if x != 0 => (x, 8),
        _ => (u32_at(rsdp, 16).ok_or("bad RSDP")? as u64, 4),
    };
    let root = table(root).ok_or("bad RSDT/XSDT")?;
    for off in (36..root.len()).step_by(entry_size) {
        let pa = if entry_size == 8 { u64_at(root, off) } else { u32_at(root, off).map(u64::from) };
        let Some(t) = pa.and_then(table) else { continue };
        match &t[..4] {
            b"FACP" => {
                acpi.pm1a_control =
                    u32_at(t, 64).filter(|p| *p != 0 && *p <= 0xffff).map(|p| p as u16);
                let dsdt = u32_at(t, 40).map(u64::from).filter(|p| *p != 0);
                let dsdt = dsdt.or_else(|| u64_at(t, 140)).and_then(table);
                acpi.s5_sleep_type = dsdt.and_then(s5_sleep_type).unwrap_or(0);
            }
            b"APIC" => acpi.madt = parse_madt(t).unwrap_or_default(),
            _ => {}
        }
    }
    Ok(acpi)
}
