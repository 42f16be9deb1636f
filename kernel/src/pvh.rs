//! The PVH `hvm_start_info` QEMU hands us in `%ebx`: memory map, command line, ACPI RSDP.
//!
//! Everything is copied into fixed-size statics before paging is rebuilt (the structures live
//! in low memory that the final page tables reach only through the direct map). Every field
//! is checked: a bad magic, an oversized map or an unterminated command line is reported,
//! not trusted.

use crate::mm::phys_to_virt;

const MAGIC: u32 = 0x336e_c578;
const MAX_REGIONS: usize = 64;
const MAX_CMDLINE: usize = 512;
pub const RAM: u32 = 1;

#[derive(Clone, Copy, Debug, Default)]
pub struct Region {
    pub start: u64,
    pub len: u64,
    pub kind: u32,
}

impl Region {
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

pub struct BootInfo {
    regions: [Region; MAX_REGIONS],
    nregions: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    pub rsdp: u64,
}

impl BootInfo {
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.nregions]
    }

    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }
}

/// Copy what we need out of the start info at physical address `pa`.
/// Runs on the boot page tables, whose direct map covers the first 4 GiB.
pub fn parse(pa: u64) -> Result<BootInfo, &'static str> {
    if pa == 0 || pa >= 1 << 32 {
        return Err("start_info address outside the boot direct map");
    }
    // SAFETY: the boot tables map the first 4 GiB at PHYS_OFFSET; QEMU placed the struct there.
    let si = unsafe { &*(phys_to_virt(pa) as *const StartInfo) };
    if si.magic != MAGIC {
        return Err("bad PVH start_info magic");
    }
    if si.version < 1 || si.memmap_paddr == 0 {
        return Err("PVH start_info has no memory map (version < 1)");
    }
    let mut info = BootInfo {
        regions: [Region::default(); MAX_REGIONS],
        nregions: 0,
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
        rsdp: si.rsdp_paddr,
    };
    let n = si.memmap_entries as usize;
    if n == 0 || n > MAX_REGIONS {
        return Err("PVH memory map empty or too large");
    }
    for i in 0..n {
        // SAFETY: n entries follow memmap_paddr (bounded above), all below 4 GiB.
        let e = unsafe { &*(phys_to_virt(si.memmap_paddr) as *const MemmapEntry).add(i) };
        info.regions[i] = Region { start: e.addr, len: e.size, kind: e.kind };
    }
    info.nregions = n;
    if si.cmdline_paddr != 0 {
        let base = phys_to_virt(si.cmdline_paddr) as *const u8;
        for i in 0..MAX_CMDLINE {
            // SAFETY: reading byte by byte up to the NUL or the bound.
            let b = unsafe { *base.add(i) };
            if b == 0 {
                break;
            }
            info.cmdline[i] = b;
            info.cmdline_len = i + 1;
        }
    }
    Ok(info)
}
