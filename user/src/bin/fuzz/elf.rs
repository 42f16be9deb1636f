//! Mutated programs: a copy of a real executable (`/bin/echo`) with one to three of its ELF
//! header or program-header fields set to hostile values, cut short, or with bytes flipped.
//! The kernel's loader must answer each with an error (`ENOEXEC`, `ENOMEM`, `E2BIG`...) or
//! run a program that at worst faults; never fault or panic itself.

use alloc::vec::Vec;

use crate::rng::Rng;

/// ELF64 header fields: (offset, size in bytes).
const HEADER_FIELDS: [(usize, usize); 12] = [
    (4, 1),  // e_ident[EI_CLASS]
    (5, 1),  // e_ident[EI_DATA]
    (16, 2), // e_type
    (18, 2), // e_machine
    (24, 8), // e_entry
    (32, 8), // e_phoff
    (40, 8), // e_shoff
    (52, 2), // e_ehsize
    (54, 2), // e_phentsize
    (56, 2), // e_phnum
    (58, 2), // e_shentsize
    (60, 2), // e_shnum
];

/// Program-header fields, from the start of one entry: (offset, size).
const PHDR_FIELDS: [(usize, usize); 8] = [
    (0, 4),  // p_type
    (4, 4),  // p_flags
    (8, 8),  // p_offset
    (16, 8), // p_vaddr
    (24, 8), // p_paddr
    (32, 8), // p_filesz
    (40, 8), // p_memsz
    (48, 8), // p_align
];

/// Values that break loaders: zero, ones, sign bits, page and size edges, the addresses of
/// the kernel and of the stack, and the ones of the issue that first found the loader's
/// panics (`e_phoff = 0xab00000040`, `0x41`, `e_phentsize = 8`).
const NASTY: [u64; 26] = [
    0,
    1,
    8,
    0x38,
    0x40,
    0x41,
    0xfff,
    0x1000,
    0x7fff,
    0xffff,
    0x10000,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0xab_0000_0040,
    0x40_0000,
    0x3f_ffff,
    0x7fff_fffb_0000,
    0x7fff_ffff_0000,
    0x8000_0000_0000,
    0xffff_8000_0000_0000,
    0xffff_ffff_8000_0000,
    1 << 63,
    u64::MAX - 0xfff,
    u64::MAX - 7,
    u64::MAX,
];

fn get(b: &[u8], at: usize, size: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(size)?)?;
    let mut v = [0u8; 8];
    v[..size].copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

fn put(b: &mut [u8], at: usize, size: usize, v: u64) {
    if let Some(dst) = at.checked_add(size).and_then(|end| b.get_mut(at..end)) {
        dst.copy_from_slice(&v.to_le_bytes()[..size]);
    }
}

/// A value for a field that held `old`: a nasty one, or `old` nudged.
fn value(rng: &mut Rng, old: u64) -> u64 {
    match rng.below(4) {
        0 => old.wrapping_add(rng.below(16)).wrapping_sub(8),
        1 => old ^ (1 << rng.below(64)),
        _ => *rng.pick(&NASTY),
    }
}

/// Put a mutated copy of `orig` into `b` (reused: no allocation once it has the room); a word
/// on what was done (for replay messages).
pub fn mutate(orig: &[u8], rng: &mut Rng, b: &mut Vec<u8>) -> &'static str {
    b.clear();
    b.extend_from_slice(orig);
    let mut what = "";
    for _ in 0..1 + rng.below(3) {
        what = match rng.below(10) {
            0..=3 => {
                let &(at, size) = rng.pick(&HEADER_FIELDS);
                let old = get(b, at, size).unwrap_or(0);
                put(b, at, size, value(rng, old));
                "header field"
            }
            4..=6 => {
                let phoff = get(orig, 32, 8).unwrap_or(64) as usize;
                let phnum = get(orig, 56, 2).unwrap_or(1).max(1);
                let entry = phoff.saturating_add(56 * rng.below(phnum) as usize);
                let &(at, size) = rng.pick(&PHDR_FIELDS);
                let old = get(b, entry.saturating_add(at), size).unwrap_or(0);
                put(b, entry.saturating_add(at), size, value(rng, old));
                "program header field"
            }
            7 => {
                b.truncate(rng.index(b.len().max(1)));
                "truncated"
            }
            _ => {
                let span = b.len().min(512);
                for _ in 0..1 + rng.below(8) {
                    let i = rng.index(span);
                    if let Some(x) = b.get_mut(i) {
                        *x ^= 1 << rng.below(8);
                    }
                }
                "bits flipped"
            }
        };
    }
    what
}
