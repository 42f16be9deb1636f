//! The kernel's program-file check (`kernel/src/proc/elf.rs`, compiled here as it is) on the
//! real user programs and on 100,000 seeded mutations of `/bin/echo`: header fields,
//! program-header fields, byte flips and truncations. It must never panic, and on every file
//! its verdict must agree with [`spec`], the same rules written again here from the raw bytes:
//! what it accepts holds what `load` relies on (segments equal to the file's own PT_LOADs), and
//! what breaks a rule is refused. The user programs are also read by the `object` crate.
//!
//! `ELF_FUZZ_SEED=N` replays or varies the random part, `ELF_FUZZ_CASES=N` and
//! `ELF_FUZZ_SECS=N` (the time bound, 10 s by default) run more of it.

extern crate alloc;

mod common;

#[allow(dead_code)]
#[path = "../../kernel/src/proc/elf.rs"]
mod exe;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use abi::syscall::{Errno, USER_BASE, USER_END, USER_STACK_SIZE, USER_STACK_TOP};
use exe::{Image, MAX_IMAGE, MAX_PHNUM, PAGE_SIZE};
use object::{Object, ObjectSegment};
use testkit::Rng;

const SEGMENTS_END: u64 = USER_STACK_TOP - USER_STACK_SIZE;
const PT_LOAD: u32 = 1;
const PHDR_SIZE: usize = 56;

// ELF64 header fields: (offset, size).
const CLASS: (usize, usize) = (4, 1);
const DATA: (usize, usize) = (5, 1);
const IDENT_VERSION: (usize, usize) = (6, 1);
const E_TYPE: (usize, usize) = (16, 2);
const E_MACHINE: (usize, usize) = (18, 2);
const E_VERSION: (usize, usize) = (20, 4);
const E_ENTRY: (usize, usize) = (24, 8);
const E_PHOFF: (usize, usize) = (32, 8);
const E_SHOFF: (usize, usize) = (40, 8);
const E_FLAGS: (usize, usize) = (48, 4);
const E_EHSIZE: (usize, usize) = (52, 2);
const E_PHENTSIZE: (usize, usize) = (54, 2);
const E_PHNUM: (usize, usize) = (56, 2);
const E_SHENTSIZE: (usize, usize) = (58, 2);
const E_SHNUM: (usize, usize) = (60, 2);
const E_SHSTRNDX: (usize, usize) = (62, 2);
const HEADER_FIELDS: [(usize, usize); 16] = [
    CLASS,
    DATA,
    IDENT_VERSION,
    E_TYPE,
    E_MACHINE,
    E_VERSION,
    E_ENTRY,
    E_PHOFF,
    E_SHOFF,
    E_FLAGS,
    E_EHSIZE,
    E_PHENTSIZE,
    E_PHNUM,
    E_SHENTSIZE,
    E_SHNUM,
    E_SHSTRNDX,
];

// ELF64 program-header fields, relative to the entry: (offset, size).
const P_TYPE: (usize, usize) = (0, 4);
const P_FLAGS: (usize, usize) = (4, 4);
const P_OFFSET: (usize, usize) = (8, 8);
const P_VADDR: (usize, usize) = (16, 8);
const P_PADDR: (usize, usize) = (24, 8);
const P_FILESZ: (usize, usize) = (32, 8);
const P_MEMSZ: (usize, usize) = (40, 8);
const P_ALIGN: (usize, usize) = (48, 8);
const PHDR_FIELDS: [(usize, usize); 8] =
    [P_TYPE, P_FLAGS, P_OFFSET, P_VADDR, P_PADDR, P_FILESZ, P_MEMSZ, P_ALIGN];

fn get(file: &[u8], (at, size): (usize, usize)) -> u64 {
    let mut b = [0u8; 8];
    b[..size].copy_from_slice(&file[at..at + size]);
    u64::from_le_bytes(b)
}

fn set(file: &mut [u8], (at, size): (usize, usize), value: u64) {
    file[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
}

/// A field of program header `i` (of the unmutated layout).
fn ph(file: &[u8], i: usize, (at, size): (usize, usize)) -> (usize, usize) {
    (get(file, E_PHOFF) as usize + i * PHDR_SIZE + at, size)
}

/// The parser, with a panic turned into a test failure that names the case.
fn parse(file: &[u8], case: &dyn Fn() -> String) -> Result<Image, Errno> {
    match catch_unwind(AssertUnwindSafe(|| exe::parse(file))) {
        Ok(r) => r,
        Err(_) => panic!("the parser panicked on {}", case()),
    }
}

/// A PT_LOAD as this test reads it: (vaddr, memsz, offset, filesz, flags).
type RawLoad = (u64, u64, u64, u64, u32);

/// The rules of `kernel/src/proc/elf.rs`, written again here without the `elf` crate and in
/// 128-bit arithmetic (nothing can overflow): the non-empty PT_LOADs, sorted by address, of a
/// program the kernel must accept, or why it must refuse it.
fn spec(file: &[u8]) -> Result<Vec<RawLoad>, String> {
    if file.len() < 64 {
        return Err("shorter than the header".into());
    }
    let field = |f, want: u64, what: &str| match get(file, f) {
        v if v == want => Ok(()),
        v => Err(format!("{what} {v:#x}")),
    };
    field((0, 4), u64::from(u32::from_le_bytes(*b"\x7fELF")), "magic")?;
    field(CLASS, 2, "class")?;
    field(DATA, 1, "data encoding")?;
    field(IDENT_VERSION, 1, "ident version")?;
    field(E_TYPE, 2, "e_type")?;
    field(E_MACHINE, 62, "e_machine")?;
    field(E_VERSION, 1, "e_version")?;
    field(E_PHENTSIZE, PHDR_SIZE as u64, "e_phentsize")?;
    let (phoff, phnum) = (get(file, E_PHOFF) as u128, get(file, E_PHNUM) as usize);
    if phnum == 0 || phnum > MAX_PHNUM {
        return Err(format!("e_phnum {phnum}"));
    }
    let table_end = phoff + (phnum * PHDR_SIZE) as u128;
    if table_end > file.len() as u128 {
        return Err(format!("table ends at {table_end:#x}"));
    }
    let mut loads = Vec::new();
    let mut pages = 0u128;
    for p in file[phoff as usize..table_end as usize].chunks(PHDR_SIZE) {
        let p_type = get(p, P_TYPE) as u32;
        if p_type == 3 {
            return Err("PT_INTERP".into());
        }
        if p_type != PT_LOAD {
            continue;
        }
        let load: RawLoad = (
            get(p, P_VADDR),
            get(p, P_MEMSZ),
            get(p, P_OFFSET),
            get(p, P_FILESZ),
            get(p, P_FLAGS) as u32,
        );
        let (vaddr, memsz, offset, filesz, _) = load;
        let align = get(p, P_ALIGN);
        if filesz > memsz {
            return Err(format!("{load:x?}: filesz > memsz"));
        }
        if memsz == 0 {
            continue;
        }
        if offset as u128 + filesz as u128 > file.len() as u128 {
            return Err(format!("{load:x?}: file bytes past the end"));
        }
        if vaddr < USER_BASE || vaddr as u128 + memsz as u128 > SEGMENTS_END as u128 {
            return Err(format!("{load:x?}: outside the user range"));
        }
        if align > 1 && (align.count_ones() != 1 || vaddr % align != offset % align) {
            return Err(format!("{load:x?}: p_align {align:#x}"));
        }
        let page = PAGE_SIZE as u128;
        pages +=
            (vaddr as u128 + memsz as u128).div_ceil(page) * page - vaddr as u128 / page * page;
        loads.push(load);
    }
    if pages > MAX_IMAGE as u128 {
        return Err(format!("{pages:#x} bytes of pages"));
    }
    loads.sort();
    let page_of = |a: u64| a / PAGE_SIZE;
    for w in loads.windows(2) {
        if page_of(w[0].0 + w[0].1 - 1) >= page_of(w[1].0) {
            return Err(format!("{:x?} and {:x?} share a page", w[0], w[1]));
        }
    }
    let entry = get(file, E_ENTRY);
    if !loads.iter().any(|l| l.4 & 1 != 0 && entry >= l.0 && entry - l.0 < l.1) {
        return Err(format!("entry {entry:#x} outside every executable segment"));
    }
    Ok(loads)
}

/// The parser and the rules agree on `file`: both accept it, with the same entry and
/// segments, and the segments hold what `load` relies on; or both refuse it.
fn agree(file: &[u8], r: &Result<Image, Errno>) -> Result<(), String> {
    let image = match (r, spec(file)) {
        (Err(Errno::ENOEXEC | Errno::ENOMEM), Err(_)) => return Ok(()),
        (Err(e), Err(why)) => return Err(format!("refused ({why}) with {e:?}")),
        (Err(e), Ok(_)) => return Err(format!("refused with {e:?}, but the rules accept it")),
        (Ok(_), Err(why)) => return Err(format!("accepted, but {why}")),
        (Ok(image), Ok(loads)) => {
            let got: Vec<RawLoad> = image
                .segments
                .iter()
                .map(|s| {
                    let flags = u32::from(s.writable) << 1 | u32::from(s.exec);
                    (s.vaddr, s.memsz, s.file.start as u64, s.file.len() as u64, flags)
                })
                .collect();
            let want: Vec<RawLoad> = loads.iter().map(|l| (l.0, l.1, l.2, l.3, l.4 & 3)).collect();
            if got != want {
                return Err(format!("segments {got:x?}, the file's PT_LOADs {want:x?}"));
            }
            image
        }
    };
    if image.entry != get(file, E_ENTRY) {
        return Err(format!("entry {:#x} is not e_entry", image.entry));
    }
    for s in &image.segments {
        let r = s.pages();
        if !r.start.is_multiple_of(PAGE_SIZE)
            || !r.end.is_multiple_of(PAGE_SIZE)
            || r.end > SEGMENTS_END.next_multiple_of(PAGE_SIZE)
        {
            return Err(format!("segment {s:?}: pages {r:x?}"));
        }
        if s.file.end > file.len() {
            return Err(format!("segment {s:?}: file bytes outside the file"));
        }
    }
    if !image.end().is_multiple_of(PAGE_SIZE)
        || image.segments.iter().any(|s| s.pages().end > image.end())
    {
        return Err(format!("end {:#x} below a segment", image.end()));
    }
    Ok(())
}

/// `echo` with `f` applied.
fn mutated(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut file = common::program("echo").to_vec();
    f(&mut file);
    file
}

/// The shortest prefix of `file` that still holds its header, its table and every segment's
/// file bytes: cut shorter, it must be refused; not shorter, accepted.
fn needed_len(file: &[u8]) -> usize {
    let table_end = get(file, E_PHOFF) as usize + get(file, E_PHNUM) as usize * PHDR_SIZE;
    let data_end = spec(file).unwrap().iter().map(|l| (l.2 + l.3) as usize).max().unwrap();
    table_end.max(data_end).max(64)
}

#[test]
fn every_user_program_is_accepted_as_built() {
    for (name, file) in common::programs() {
        let r = exe::parse(file);
        agree(file, &r).unwrap_or_else(|e| panic!("{name}: {e}"));
        let image = r.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // A third reading, by the `object` crate: the same segments.
        let obj = object::File::parse(file.as_slice()).unwrap();
        let theirs: Vec<(u64, u64, (u64, u64))> = obj
            .segments()
            .filter(|s| s.size() != 0)
            .map(|s| (s.address(), s.size(), s.file_range()))
            .collect();
        let ours: Vec<(u64, u64, (u64, u64))> = image
            .segments
            .iter()
            .map(|s| (s.vaddr, s.memsz, (s.file.start as u64, s.file.len() as u64)))
            .collect();
        assert_eq!(ours, theirs, "{name}");
        assert_eq!(image.entry, obj.entry(), "{name}");
        assert!(image.end() > image.entry && image.end().is_multiple_of(PAGE_SIZE), "{name}");
    }
}

/// The files of issue 9 that panicked the kernel's old loader.
#[test]
fn the_crafted_files_of_issue_9_are_refused() {
    for (name, file) in common::crafted_echo() {
        assert_eq!(exe::parse(&file), Err(Errno::ENOEXEC), "{name}");
    }
}

/// Cut at every length up to the end of the last segment's bytes, and at a few past it.
#[test]
fn truncations() {
    let echo = common::program("echo");
    let need = needed_len(echo);
    for n in (0..need.min(echo.len())).chain([need, need + 1, echo.len()]) {
        let Some(file) = echo.get(..n) else { continue };
        let r = parse(file, &|| format!("echo cut to {n} bytes"));
        agree(file, &r).unwrap_or_else(|e| panic!("echo cut to {n} bytes: {e}"));
        match r {
            Ok(_) if n >= need => {}
            Err(Errno::ENOEXEC) if n < need => {}
            r => panic!("echo cut to {n} bytes (needs {need}): {r:?}"),
        }
    }
}

/// Each mutation breaks one rule: refused (`ENOEXEC`, or `ENOMEM` where only the size is
/// wrong). Then mutations that break none: still accepted.
#[test]
fn each_rule_is_enforced() {
    let echo = common::program("echo");
    let loads = spec(echo).unwrap();
    assert!(loads.len() >= 3, "echo has text, rodata and data segments: {loads:x?}");
    let (text, rodata, data) = (0, 1, 2); // echo's program headers, in this order
    let text_end = loads[0].0 + loads[0].1;
    let p = |i, field| ph(echo, i, field);
    let len = echo.len() as u64;
    let refused: Vec<(&str, Vec<u8>, Errno)> = vec![
        ("not ELF", mutated(|f| f[1] = b'X'), Errno::ENOEXEC),
        ("32-bit class", mutated(|f| set(f, CLASS, 1)), Errno::ENOEXEC),
        ("unknown class", mutated(|f| set(f, CLASS, 9)), Errno::ENOEXEC),
        ("big-endian", mutated(|f| set(f, DATA, 2)), Errno::ENOEXEC),
        ("ident version 0", mutated(|f| set(f, IDENT_VERSION, 0)), Errno::ENOEXEC),
        ("e_version 2", mutated(|f| set(f, E_VERSION, 2)), Errno::ENOEXEC),
        ("ET_DYN", mutated(|f| set(f, E_TYPE, 3)), Errno::ENOEXEC),
        ("ET_REL", mutated(|f| set(f, E_TYPE, 1)), Errno::ENOEXEC),
        ("i386", mutated(|f| set(f, E_MACHINE, 3)), Errno::ENOEXEC),
        ("e_phoff 0", mutated(|f| set(f, E_PHOFF, 0)), Errno::ENOEXEC),
        ("e_phoff past the end", mutated(|f| set(f, E_PHOFF, len)), Errno::ENOEXEC),
        ("table across the end", mutated(|f| set(f, E_PHOFF, len - 100)), Errno::ENOEXEC),
        ("e_phoff 0xab00000040", mutated(|f| set(f, E_PHOFF, 0xab_0000_0040)), Errno::ENOEXEC),
        ("e_phoff near 2^64", mutated(|f| set(f, E_PHOFF, u64::MAX - 8)), Errno::ENOEXEC),
        ("e_phoff 0x41", mutated(|f| set(f, E_PHOFF, 0x41)), Errno::ENOEXEC),
        ("e_phentsize 8", mutated(|f| set(f, E_PHENTSIZE, 8)), Errno::ENOEXEC),
        ("e_phentsize 64", mutated(|f| set(f, E_PHENTSIZE, 64)), Errno::ENOEXEC),
        ("e_phentsize 0", mutated(|f| set(f, E_PHENTSIZE, 0)), Errno::ENOEXEC),
        ("e_phnum 0", mutated(|f| set(f, E_PHNUM, 0)), Errno::ENOEXEC),
        ("e_phnum too many", mutated(|f| set(f, E_PHNUM, MAX_PHNUM as u64 + 1)), Errno::ENOEXEC),
        ("e_phnum 0xffff (PN_XNUM)", mutated(|f| set(f, E_PHNUM, 0xffff)), Errno::ENOEXEC),
        ("entry 0", mutated(|f| set(f, E_ENTRY, 0)), Errno::ENOEXEC),
        ("entry in rodata", mutated(|f| set(f, E_ENTRY, loads[1].0)), Errno::ENOEXEC),
        ("entry past text", mutated(|f| set(f, E_ENTRY, text_end)), Errno::ENOEXEC),
        (
            "entry in the kernel",
            mutated(|f| set(f, E_ENTRY, 0xffff_8000_0000_0000)),
            Errno::ENOEXEC,
        ),
        ("text not executable", mutated(|f| set(f, p(text, P_FLAGS), 4)), Errno::ENOEXEC),
        ("text not loaded", mutated(|f| set(f, p(text, P_TYPE), 0)), Errno::ENOEXEC),
        ("PT_INTERP", mutated(|f| set(f, p(rodata, P_TYPE), 3)), Errno::ENOEXEC),
        ("filesz > memsz", mutated(|f| set(f, p(data, P_MEMSZ), 1)), Errno::ENOEXEC),
        ("text memsz 0", mutated(|f| set(f, p(text, P_MEMSZ), 0)), Errno::ENOEXEC),
        ("p_offset past the end", mutated(|f| set(f, p(rodata, P_OFFSET), len)), Errno::ENOEXEC),
        ("p_offset 2^64-1", mutated(|f| set(f, p(rodata, P_OFFSET), u64::MAX)), Errno::ENOEXEC),
        ("file bytes across the end", mutated(|f| set(f, p(data, P_FILESZ), len)), Errno::ENOEXEC),
        ("p_filesz 2^64-1", mutated(|f| set(f, p(data, P_FILESZ), u64::MAX)), Errno::ENOEXEC),
        ("p_vaddr 0", mutated(|f| set(f, p(data, P_VADDR), 0)), Errno::ENOEXEC),
        (
            "p_vaddr below USER_BASE",
            mutated(|f| set(f, p(data, P_VADDR), USER_BASE - 0x1000)),
            Errno::ENOEXEC,
        ),
        (
            "p_vaddr in the stack",
            mutated(|f| set(f, p(data, P_VADDR), SEGMENTS_END)),
            Errno::ENOEXEC,
        ),
        (
            "p_vaddr in the kernel",
            mutated(|f| set(f, p(data, P_VADDR), 0xffff_8000_0000_0000)),
            Errno::ENOEXEC,
        ),
        (
            "p_vaddr + p_memsz wraps",
            mutated(|f| set(f, p(data, P_VADDR), u64::MAX - 0xfff)),
            Errno::ENOEXEC,
        ),
        ("p_memsz 2^64-1", mutated(|f| set(f, p(data, P_MEMSZ), u64::MAX)), Errno::ENOEXEC),
        (
            "p_memsz into the stack",
            mutated(|f| set(f, p(data, P_MEMSZ), SEGMENTS_END)),
            Errno::ENOEXEC,
        ),
        ("segments too large", mutated(|f| set(f, p(data, P_MEMSZ), MAX_IMAGE)), Errno::ENOMEM),
        ("p_align 3", mutated(|f| set(f, p(rodata, P_ALIGN), 3)), Errno::ENOEXEC),
        ("p_align 2^64-1", mutated(|f| set(f, p(rodata, P_ALIGN), u64::MAX)), Errno::ENOEXEC),
        (
            "p_vaddr, p_offset not congruent",
            mutated(|f| set(f, p(rodata, P_ALIGN), 0x2000)),
            Errno::ENOEXEC,
        ),
        ("p_align 2^63", mutated(|f| set(f, p(rodata, P_ALIGN), 1 << 63)), Errno::ENOEXEC),
        (
            "segments overlap",
            mutated(|f| set(f, p(rodata, P_VADDR), loads[0].0 + 0x1000)),
            Errno::ENOEXEC,
        ),
        (
            "segments share a page",
            mutated(|f| set(f, p(rodata, P_VADDR), text_end.next_multiple_of(0x1000) - 0x1000)),
            Errno::ENOEXEC,
        ),
        (
            "the same segment twice",
            mutated(|f| set(f, p(data, P_VADDR), loads[1].0)),
            Errno::ENOEXEC,
        ),
    ];
    for (what, file, want) in &refused {
        let r = parse(file, &|| what.to_string());
        assert_eq!(r, Err(*want), "{what}");
        agree(file, &r).unwrap_or_else(|e| panic!("{what}: {e}"));
    }

    let accepted: Vec<(&str, Vec<u8>)> = vec![
        ("section headers anywhere", mutated(|f| set(f, E_SHOFF, u64::MAX))),
        (
            "no section headers",
            mutated(|f| {
                set(f, E_SHOFF, 0);
                set(f, E_SHNUM, 0);
            }),
        ),
        (
            "other e_flags, e_ehsize, e_shentsize",
            mutated(|f| {
                set(f, E_FLAGS, 0xdead_beef);
                set(f, E_EHSIZE, 7);
                set(f, E_SHENTSIZE, 9);
                set(f, E_SHSTRNDX, 0xffff);
            }),
        ),
        // The bytes between the table and the first segment are zero: PT_NULL entries.
        ("e_phnum at the limit", mutated(|f| set(f, E_PHNUM, MAX_PHNUM as u64))),
        ("entry at the last byte of text", mutated(|f| set(f, E_ENTRY, text_end - 1))),
        ("p_paddr anything", mutated(|f| set(f, p(text, P_PADDR), u64::MAX))),
        ("p_align 0", mutated(|f| set(f, p(rodata, P_ALIGN), 0))),
        ("p_align 1", mutated(|f| set(f, p(rodata, P_ALIGN), 1))),
        ("rodata moved up", mutated(|f| set(f, p(rodata, P_VADDR), 0x1000_0000))),
        ("data bss of 64 MiB", mutated(|f| set(f, p(data, P_MEMSZ), 64 << 20))),
        (
            "rodata empty",
            mutated(|f| {
                set(f, p(rodata, P_FILESZ), 0);
                set(f, p(rodata, P_MEMSZ), 0);
            }),
        ),
        ("unknown flag bits", mutated(|f| set(f, p(data, P_FLAGS), 0xff00_0006))),
        ("an unknown segment type", mutated(|f| set(f, p(rodata, P_TYPE), 0x6474_e551))),
        ("cut after the last segment's bytes", echo[..needed_len(echo)].to_vec()),
    ];
    for (what, file) in &accepted {
        let r = parse(file, &|| what.to_string());
        assert!(r.is_ok(), "{what}: {r:?}");
        agree(file, &r).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// Values that sit on a boundary somewhere, for a field of `size` bytes whose value is `was`.
fn interesting(rng: &mut Rng, size: usize, was: u64, len: u64) -> u64 {
    let values = [
        0,
        1,
        2,
        3,
        7,
        8,
        56,
        64,
        0x41,
        0xfff,
        0x1000,
        0x1001,
        len - 1,
        len,
        len + 1,
        USER_BASE - 1,
        USER_BASE,
        SEGMENTS_END - 1,
        SEGMENTS_END,
        USER_END,
        MAX_IMAGE,
        MAX_IMAGE + 1,
        0xab_0000_0040,
        0xffff,
        1 << 63,
        i64::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
        0xffff_8000_0000_0000,
        was.wrapping_add(1),
        was.wrapping_sub(1),
        was.wrapping_add(0x1000),
        was.wrapping_sub(0x1000),
        was ^ (1 << rng.below(size as u64 * 8)),
        rng.next_u64(),
    ];
    let v = values[rng.below(values.len() as u64) as usize];
    if size == 8 {
        v
    } else {
        v & ((1 << (size * 8)) - 1)
    }
}

/// One random mutation of `file` (echo): a header field, a program-header field, a few byte
/// flips, or a cut; sometimes several. Returns what it did.
fn mutate(rng: &mut Rng, file: &mut Vec<u8>) -> String {
    let rounds = 1 + rng.below(3);
    let mut did = Vec::new();
    for _ in 0..rounds {
        let len = file.len() as u64;
        match rng.below(10) {
            0..=2 => {
                let field = HEADER_FIELDS[rng.below(HEADER_FIELDS.len() as u64) as usize];
                if field.0 + field.1 > file.len() {
                    continue;
                }
                let v = interesting(rng, field.1, get(file, field), len);
                set(file, field, v);
                did.push(format!("header@{} = {v:#x}", field.0));
            }
            3..=6 => {
                // A field of one of the original program headers (where they were).
                let echo = common::program("echo");
                let i = rng.below(get(echo, E_PHNUM)) as usize;
                let field = ph(echo, i, PHDR_FIELDS[rng.below(PHDR_FIELDS.len() as u64) as usize]);
                if field.0 + field.1 > file.len() {
                    continue;
                }
                let v = interesting(rng, field.1, get(file, field), len);
                set(file, field, v);
                did.push(format!("phdr {i} @{} = {v:#x}", field.0));
            }
            7..=8 => {
                // Byte flips, mostly where the headers are.
                for _ in 0..1 + rng.below(8) {
                    let limit = if rng.below(4) == 0 { len } else { len.min(512) };
                    let at = rng.below(limit.max(1)) as usize;
                    if let Some(b) = file.get_mut(at) {
                        let x = 1 + rng.below(255) as u8;
                        *b ^= x;
                        did.push(format!("byte {at} ^= {x:#x}"));
                    }
                }
            }
            _ => {
                let n = rng.below(len + 1) as usize;
                file.truncate(n);
                did.push(format!("cut to {n}"));
            }
        }
    }
    did.join(", ")
}

/// Thousands of random mutations: the parser never panics and agrees with the rules on each.
/// Bounded by a count and, on a slow machine, by time (the cases run in order, so a shorter
/// run checks a prefix of the same sequence).
#[test]
fn random_mutations_agree_with_the_rules() {
    let env = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    let seed = env("ELF_FUZZ_SEED").unwrap_or(20_261_209);
    let cases = env("ELF_FUZZ_CASES").unwrap_or(100_000);
    let budget = Duration::from_secs(env("ELF_FUZZ_SECS").unwrap_or(10));
    println!("elf fuzz: seed {seed} (replay with ELF_FUZZ_SEED={seed}), up to {cases} cases");
    let echo = common::program("echo");
    let mut rng = Rng::new(seed);
    let (mut accepted, mut refused) = (0u64, 0u64);
    let start = Instant::now();
    for case in 0..cases {
        if start.elapsed() > budget {
            break;
        }
        let mut file = echo.to_vec();
        let did = mutate(&mut rng, &mut file);
        let describe = || format!("case {case} (ELF_FUZZ_SEED={seed}): {did}");
        let r = parse(&file, &describe);
        if let Err(e) = agree(&file, &r) {
            panic!("{}: {e}", describe());
        }
        match r {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
    }
    println!(
        "elf fuzz: {accepted} accepted, {refused} refused in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(accepted + refused >= 1000.min(cases), "only {} cases ran", accepted + refused);
    assert!(accepted > 0 && refused > 0, "the mutations should both keep and break programs");
}
