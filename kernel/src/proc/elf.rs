//! Reading a program file: from the bytes of an ELF file to its entry point and the list of
//! segments to load, each checked. Pure (no kernel state, no `unsafe`): `load` maps what this
//! returns, and `mkimage/tests/elf.rs` runs it on the host over thousands of mutated programs.
//!
//! The file is untrusted input (any user can write one and `exec` it): every offset, size and
//! count is checked against the file or the user address range before use, with overflow
//! checked, and a bad file is `ENOEXEC` (`ENOMEM` when its segments are too large in all).
//! The `elf` crate decodes the header and the program-header table (it returns errors, never
//! panics, on malformed input); this module chooses what the table may hold:
//! - the header: 64-bit little-endian, version 1, `ET_EXEC` for x86-64;
//! - the table: entries of 56 bytes (`e_phentsize`), 1 to [`MAX_PHNUM`] of them, lying
//!   wholly inside the file (no alignment is needed: the crate copies the bytes);
//! - no `PT_INTERP` (there is no dynamic linker); other types but `PT_LOAD` are ignored;
//! - each `PT_LOAD`: `p_filesz <= p_memsz`, its file bytes inside the file, its memory inside
//!   the user range below the stack, `p_align` 0, 1 or a power of two with `p_vaddr` and
//!   `p_offset` congruent modulo it, and no page shared with another segment (each page gets
//!   one segment's permissions; the user linker script starts every segment on a page);
//! - the entry point inside an executable segment; at most [`MAX_IMAGE`] bytes of pages.

use ::elf::abi::{EM_X86_64, ET_EXEC, EV_CURRENT, PF_W, PF_X, PT_INTERP, PT_LOAD};
use ::elf::endian::LittleEndian;
use ::elf::file::{parse_ident, Class, FileHeader};
use ::elf::segment::SegmentTable;
use abi::syscall::{Errno, USER_BASE, USER_STACK_SIZE, USER_STACK_TOP};
use alloc::vec::Vec;
use core::ops::Range;

/// The page size the segments are laid out in (`mm::PAGE_SIZE`; `load` checks they agree).
pub const PAGE_SIZE: u64 = 4096;
/// Most program headers accepted (real static programs have fewer than a dozen).
pub const MAX_PHNUM: usize = 64;
/// Largest total size of a program's segments in memory, in whole pages.
pub const MAX_IMAGE: u64 = 256 << 20;
/// The ELF64 file header's size, and the size of one ELF64 program header.
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// Segments lie in `[USER_BASE, SEGMENTS_END)`: below the stack.
const SEGMENTS_END: u64 = USER_STACK_TOP - USER_STACK_SIZE;

/// One loadable segment, checked: `file` lies inside the file, `file.len() <= memsz`, and
/// `[vaddr, vaddr + memsz)` is non-empty and inside the user range below the stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    /// The bytes of the file copied to `vaddr`; the rest up to `memsz` is zero.
    pub file: Range<usize>,
    pub writable: bool,
    pub exec: bool,
}

impl Segment {
    /// The pages the segment touches: `[first, end)`, page-aligned.
    pub fn pages(&self) -> Range<u64> {
        let end = self.vaddr + self.memsz; // checked in `parse`: at most SEGMENTS_END
        self.vaddr & !(PAGE_SIZE - 1)..end.next_multiple_of(PAGE_SIZE)
    }
}

/// A checked program: the segments are sorted by address and no two touch the same page; the
/// entry point lies in an executable one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

impl Image {
    /// The first page above every segment: where the heap starts.
    pub fn end(&self) -> u64 {
        self.segments.last().map_or(USER_BASE, |s| s.pages().end)
    }
}

fn bad<T>(_: T) -> Errno {
    Errno::ENOEXEC
}

/// Check `file` as a program for this kernel and list what to load.
pub fn parse(file: &[u8]) -> Result<Image, Errno> {
    let ident = file.get(..::elf::abi::EI_NIDENT).ok_or(Errno::ENOEXEC)?;
    let ident = parse_ident::<LittleEndian>(ident).map_err(bad)?;
    if ident.1 != Class::ELF64 {
        return Err(Errno::ENOEXEC);
    }
    let tail = file.get(::elf::abi::EI_NIDENT..EHDR_SIZE).ok_or(Errno::ENOEXEC)?;
    let h = FileHeader::parse_tail(ident, tail).map_err(bad)?;
    if h.e_type != ET_EXEC || h.e_machine != EM_X86_64 || h.version != u32::from(EV_CURRENT) {
        return Err(Errno::ENOEXEC);
    }

    // The program-header table, wholly inside the file.
    let phnum = usize::from(h.e_phnum);
    if usize::from(h.e_phentsize) != PHDR_SIZE || phnum == 0 || phnum > MAX_PHNUM {
        return Err(Errno::ENOEXEC);
    }
    let start = usize::try_from(h.e_phoff).map_err(bad)?;
    let end = start.checked_add(phnum * PHDR_SIZE).ok_or(Errno::ENOEXEC)?;
    let table = file.get(start..end).ok_or(Errno::ENOEXEC)?;
    let table = SegmentTable::new(LittleEndian, Class::ELF64, table);

    let mut segments = Vec::new();
    let mut pages = 0u64;
    for i in 0..phnum {
        let ph = table.get(i).map_err(bad)?;
        match ph.p_type {
            PT_LOAD => {}
            PT_INTERP => return Err(Errno::ENOEXEC),
            _ => continue,
        }
        if ph.p_filesz > ph.p_memsz {
            return Err(Errno::ENOEXEC);
        }
        if ph.p_memsz == 0 {
            continue; // maps nothing
        }
        let file_start = usize::try_from(ph.p_offset).map_err(bad)?;
        let file_end = usize::try_from(ph.p_filesz)
            .ok()
            .and_then(|n| file_start.checked_add(n))
            .filter(|&e| e <= file.len())
            .ok_or(Errno::ENOEXEC)?;
        let mem_end = ph.p_vaddr.checked_add(ph.p_memsz).ok_or(Errno::ENOEXEC)?;
        if ph.p_vaddr < USER_BASE || mem_end > SEGMENTS_END {
            return Err(Errno::ENOEXEC);
        }
        let align = ph.p_align;
        if align > 1 && (!align.is_power_of_two() || ph.p_vaddr % align != ph.p_offset % align) {
            return Err(Errno::ENOEXEC);
        }
        let s = Segment {
            vaddr: ph.p_vaddr,
            memsz: ph.p_memsz,
            file: file_start..file_end,
            writable: ph.p_flags & PF_W != 0,
            exec: ph.p_flags & PF_X != 0,
        };
        // Both ends are below SEGMENTS_END, so neither the span nor the sum (of at most
        // MAX_PHNUM spans) can overflow.
        pages += s.pages().end - s.pages().start;
        if pages > MAX_IMAGE {
            return Err(Errno::ENOMEM);
        }
        segments.push(s);
    }

    segments.sort_unstable_by_key(|s| s.vaddr);
    if segments.windows(2).any(|w| w[0].pages().end > w[1].pages().start) {
        return Err(Errno::ENOEXEC);
    }
    let entry = h.e_entry;
    if !segments.iter().any(|s| s.exec && entry >= s.vaddr && entry - s.vaddr < s.memsz) {
        return Err(Errno::ENOEXEC);
    }
    Ok(Image { entry, segments })
}
