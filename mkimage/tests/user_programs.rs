//! The user programs as files: every one is a static x86-64 executable linked at 0x400000 in
//! page-aligned segments (what the kernel's loader expects), and `mkimage image` puts them all
//! in `/bin`. Builds them with the nested cargo; needs neither the kernel nor QEMU.

mod common;

use std::path::Path;

use abi::syscall::{USER_BASE, USER_STACK_SIZE, USER_STACK_TOP};
use common::{mkimage_cli, programs};
use mkimage::console::TempDir;
use mkimage::image::Builder;
use mkimage::imgread::{self, Image};
use mkimage::{fsck, programs};
use object::elf::{EM_X86_64, ET_EXEC, PF_R, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSection};

const PAGE: u64 = 4096;

/// Every program the issue asks for.
const EXPECTED: &[&str] = &[
    "bench",
    "cat",
    "echo",
    "free",
    "grep",
    "hog",
    "ifconfig",
    "init",
    "kill",
    "ln",
    "ls",
    "mkdir",
    "mv",
    "nsinit",
    "nspcopy",
    "poweroff",
    "ps",
    "pwd",
    "rm",
    "sh",
    "sleep",
    "spawn",
    "usertests",
    "wc",
];

#[test]
fn every_program_is_programs() {
    let names: Vec<&str> = programs().iter().map(|(n, _)| n.as_str()).collect();
    for want in EXPECTED {
        assert!(names.contains(want), "{want} was not built: {names:?}");
    }
}

/// What is wrong with `bytes` as a user program, if anything.
fn check_elf(name: &str, bytes: &[u8]) -> Result<(), String> {
    let elf = ElfFile64::<Endianness>::parse(bytes).map_err(|e| format!("not ELF64: {e}"))?;
    let e = elf.endian();
    let h = elf.elf_header();
    if h.e_machine(e) != EM_X86_64 || h.e_type(e) != ET_EXEC {
        return Err(format!("machine {} type {}", h.e_machine(e), h.e_type(e)));
    }
    let entry = h.e_entry(e);
    let user_top = USER_STACK_TOP - USER_STACK_SIZE;
    let mut entry_ok = false;
    let mut loads = 0;
    for ph in elf.elf_program_headers() {
        let (typ, flags) = (ph.p_type(e), ph.p_flags(e).0);
        let (va, off, filesz, memsz) =
            (ph.p_vaddr(e), ph.p_offset(e), ph.p_filesz(e), ph.p_memsz(e));
        match typ {
            PT_LOAD => {
                loads += 1;
                if va % PAGE != 0 || off % PAGE != 0 {
                    return Err(format!("segment at {va:#x} (offset {off:#x}) not page-aligned"));
                }
                if va < USER_BASE || va + memsz > user_top {
                    return Err(format!("segment {va:#x}+{memsz:#x} outside user memory"));
                }
                if filesz > memsz || off + filesz > bytes.len() as u64 {
                    return Err(format!("segment at {va:#x}: bad sizes"));
                }
                if flags & PF_W.0 != 0 && flags & PF_X.0 != 0 {
                    return Err(format!("segment at {va:#x} is writable and executable"));
                }
                if flags & PF_R.0 == 0 {
                    return Err(format!("segment at {va:#x} is not readable"));
                }
                if flags & PF_X.0 != 0 && (va..va + memsz).contains(&entry) {
                    entry_ok = true;
                }
            }
            PT_DYNAMIC | PT_INTERP => return Err(format!("program header type {typ}")),
            _ => {}
        }
    }
    if loads < 2 {
        return Err(format!("{loads} PT_LOAD segments: text and data should be apart"));
    }
    if !entry_ok {
        return Err(format!("entry {entry:#x} is not in an executable segment"));
    }
    for s in elf.sections() {
        let sname = s.name().unwrap_or("");
        if sname == ".dynamic" || sname == ".interp" || sname.starts_with(".rela") {
            return Err(format!("section {sname}: not a static program without relocations"));
        }
    }
    // The entry point is `_start`.
    let start = elf.symbols().find(|s| object::ObjectSymbol::name(s) == Ok("_start"));
    match start {
        Some(s) if object::ObjectSymbol::address(&s) == entry => Ok(()),
        _ => Err(format!("{name}: the entry {entry:#x} is not _start")),
    }
}

#[test]
fn programs_are_static_elf_at_user_base() {
    let mut bad = Vec::new();
    for (name, bytes) in programs() {
        if let Err(why) = check_elf(name, bytes) {
            bad.push(format!("{name}: {why}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checker itself rejects what the loader would.
#[test]
fn elf_check_rejects_bad_files() {
    let (_, sh) = programs().iter().find(|(n, _)| n == "sh").unwrap();
    assert!(check_elf("sh", sh).is_ok());
    assert!(check_elf("text", b"#!/bin/sh\n").is_err());
    let mut wrong_machine = sh.clone();
    wrong_machine[18] = 3;
    assert!(check_elf("x", &wrong_machine).unwrap_err().contains("machine"));
    // A program header moved off its page boundary.
    let phoff = u64::from_le_bytes(sh[32..40].try_into().unwrap()) as usize;
    let mut misaligned = sh.clone();
    misaligned[phoff + 16] = 0x10; // p_vaddr of the first header
    assert!(check_elf("x", &misaligned).is_err());
}

fn assert_bin_listing(listing: &[String]) {
    for name in EXPECTED {
        assert!(
            listing.iter().any(|l| l.split_whitespace().last() == Some(name)),
            "/bin/{name} missing:\n{}",
            listing.join("\n")
        );
    }
}

#[test]
fn image_with_programs_is_clean() {
    let dir = TempDir::new("user-programs").unwrap();
    let path = dir.path().join("fs.img");
    let mut b = Builder::standard(32 << 20, 256).unwrap();
    programs::add_to(&mut b, programs()).unwrap();
    b.write(&path).unwrap();
    let report = fsck::check(&path).unwrap();
    assert!(report.is_clean(), "{}", report.render(20));
    let image = Image::open(&path).unwrap();
    assert_bin_listing(&imgread::ls(&image, "/bin").unwrap());
    for (name, bytes) in programs() {
        assert!(image.read_file(&format!("/bin/{name}")).unwrap() == *bytes, "/bin/{name}");
    }
}

/// `mkimage image` builds the programs into /bin by default; `--no-programs` leaves it empty.
#[test]
fn image_command_puts_programs_in_bin() {
    programs(); // build first, so that the command's nested build has nothing to do
    let dir = TempDir::new("user-image-cli").unwrap();
    let img = dir.path().join("fs.img");
    let img_s = img.to_str().unwrap();
    let out = mkimage_cli(&["image", "--out", img_s, "--size-mb", "32", "--inodes", "256"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{} programs in /bin", programs().len())), "{stdout}");
    assert_eq!(mkimage_cli(&["fsck", img_s]).status.code(), Some(0));
    let out = mkimage_cli(&["ls", img_s, "/bin"]);
    assert!(out.status.success());
    let listing: Vec<String> =
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    assert_bin_listing(&listing);

    let bare = dir.path().join("bare.img");
    let bare_s = bare.to_str().unwrap();
    let out = mkimage_cli(&["image", "--out", bare_s, "--size-mb", "16", "--no-programs"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = imgread::ls(&Image::open(Path::new(bare_s)).unwrap(), "/bin").unwrap();
    assert_eq!(listing.len(), 2, "only . and ..: {listing:?}");
}
