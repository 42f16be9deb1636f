//! exec: arguments arrive; missing, truncated, malformed and non-ELF files fail cleanly.

use ulib::io::{read_to_end, STDOUT};
use ulib::prelude::*;

use crate::{
    ctx, describe_status, ensure, fork_child, in_child, read_file, wait_pid, write_file, Outcome,
};

/// An exit status meaning "exec returned": 100 + the error number.
const EXEC_FAILED: i32 = 100;

/// A program exec'd with arguments gets them: `echo` prints them to a pipe.
pub fn exec_args() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let words = ["hello", "", "two words", "x".repeat(300).leak()];
    let pid = fork_child(move || {
        let _ = sys::close(r);
        let _ = sys::close(STDOUT);
        if sys::dup(w) != Ok(STDOUT) {
            return 2;
        }
        let mut argv = vec!["echo"];
        argv.extend_from_slice(&words);
        let e = sys::exec("echo", &argv);
        EXEC_FAILED + e as i32
    })?;
    let _ = sys::close(w);
    let mut out = Vec::new();
    let read = read_to_end(r, &mut out);
    let _ = sys::close(r);
    let status = wait_pid(pid)?;
    ctx(read, "read")?;
    ensure!(status == 0, "echo: {}", exec_status(status));
    let want = format!("{}\n", words.join(" "));
    ensure!(out == want.as_bytes(), "echo printed {:?}", String::from_utf8_lossy(&out));
    Ok(String::new())
}

fn exec_status(status: i32) -> String {
    if status > EXEC_FAILED {
        format!("exec failed: {}", describe_status(status - EXEC_FAILED))
    } else {
        format!("exit status {status}")
    }
}

/// Runs `exec(path)` in a child: the error it returned, or what happened instead.
fn exec_error(path: &str) -> Result<Errno, String> {
    let status = in_child(|| EXEC_FAILED + sys::exec(path, &[path]) as i32)?;
    match Errno::from_ret(-(status - EXEC_FAILED) as isize) {
        Some(e) if status > EXEC_FAILED => Ok(e),
        _ => Err(format!("exec {path}: did not fail as expected ({})", exec_status(status))),
    }
}

pub fn exec_missing() -> Outcome {
    for path in ["/ut-no-such-program", "no-such-program", "/no/such/dir/prog"] {
        let e = exec_error(path)?;
        ensure!(e == Errno::ENOENT, "exec {path}: {e:?}, expected ENOENT");
    }
    // In this process too: a failed exec returns and leaves the process as it was.
    let e = sys::exec("/ut-no-such-program", &["x"]);
    ensure!(e == Errno::ENOENT, "exec here: {e:?}");
    Ok(String::new())
}

/// Files that are not runnable programs: each exec must fail with an error (ENOEXEC where the
/// file is not a valid x86-64 ELF executable: every offset, size and count in it is checked)
/// and leave the process alive. Among them the crafted copies of echo that once panicked the
/// kernel (issue 9).
pub fn exec_bad_files() -> Outcome {
    let elf = read_file("/bin/echo").or_else(|_| read_file("/bin/usertests"))?;
    ensure!(elf.len() > 1024 && elf.starts_with(b"\x7fELF"), "/bin/echo is not an ELF file");
    let with = |at: usize, field: &[u8]| {
        let mut bytes = elf.clone();
        bytes[at..at + field.len()].copy_from_slice(field);
        bytes
    };
    let wrong_machine = with(18, &3u16.to_le_bytes()); // e_machine = EM_386
    let wrong_class = with(4, &[1]); // ELFCLASS32
    let phoff_huge = with(32, &0xab_0000_0040u64.to_le_bytes()); // e_phoff
    let phoff_odd = with(32, &0x41u64.to_le_bytes());
    let phentsize = with(54, &8u16.to_le_bytes()); // e_phentsize
    let no_phdrs = with(56, &0u16.to_le_bytes()); // e_phnum
    let many_phdrs = with(56, &0xffffu16.to_le_bytes());
    let mut kernel_segment = elf.clone();
    set_first_load_vaddr(&mut kernel_segment, 0xffff_8000_0000_0000)?;
    let mut huge_segment = elf.clone();
    set_first_load_memsz(&mut huge_segment, 1 << 46)?;
    let mut overlapping = elf.clone();
    overlap_second_load(&mut overlapping)?;
    // (file, contents, ENOEXEC required?)
    let files: Vec<(&str, Vec<u8>, bool)> = vec![
        ("/ut-exec-text", b"#!/bin/sh\necho not a program\n".to_vec(), true),
        ("/ut-exec-empty", Vec::new(), true),
        ("/ut-exec-header", elf[..40].to_vec(), true),
        ("/ut-exec-phdrs-cut", elf[..100].to_vec(), true),
        ("/ut-exec-machine", wrong_machine, true),
        ("/ut-exec-class", wrong_class, true),
        ("/ut-exec-phoff-huge", phoff_huge, true),
        ("/ut-exec-phoff-odd", phoff_odd, true),
        ("/ut-exec-phentsize", phentsize, true),
        ("/ut-exec-phnum-0", no_phdrs, true),
        ("/ut-exec-phnum-max", many_phdrs, true),
        ("/ut-exec-half", elf[..elf.len() / 2].to_vec(), true),
        ("/ut-exec-kernel", kernel_segment, true),
        ("/ut-exec-overlap", overlapping, true),
        // In the user range, but more memory than a program may have: ENOMEM.
        ("/ut-exec-huge", huge_segment, false),
    ];
    let mut result = Ok(String::new());
    for (path, bytes, strict) in &files {
        if let Err(e) = write_file(path, bytes) {
            result = Err(e);
            break;
        }
        match exec_error(path) {
            Ok(e) if *strict && e != Errno::ENOEXEC => {
                result = Err(format!("exec {path}: {e:?}, expected ENOEXEC"));
                break;
            }
            Ok(_) => {}
            Err(why) => {
                result = Err(why);
                break;
            }
        }
    }
    for (path, _, _) in &files {
        let _ = sys::unlink(path);
    }
    result?;
    // A directory is not a program either.
    exec_error("/")?;
    Ok(String::new())
}

/// The program headers of an ELF64 file: (offset of each header in the file).
fn phdrs(elf: &[u8]) -> Result<Vec<usize>, String> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[32..40].try_into().map_err(|_| "short header")?) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    let out: Vec<usize> = (0..phnum).map(|i| phoff + i * phentsize).collect();
    ensure!(out.iter().all(|&o| o + 56 <= elf.len()), "program headers past the end");
    Ok(out)
}

/// The first PT_LOAD header's offset in the file.
fn first_load(elf: &[u8]) -> Result<usize, String> {
    phdrs(elf)?
        .into_iter()
        .find(|&o| elf[o..o + 4] == 1u32.to_le_bytes())
        .ok_or_else(|| "no PT_LOAD".to_string())
}

fn set_first_load_vaddr(elf: &mut [u8], vaddr: u64) -> Result<(), String> {
    let o = first_load(elf)?;
    elf[o + 16..o + 24].copy_from_slice(&vaddr.to_le_bytes());
    elf[o + 24..o + 32].copy_from_slice(&vaddr.to_le_bytes());
    Ok(())
}

/// Moves the second PT_LOAD onto the first one's first page.
fn overlap_second_load(elf: &mut [u8]) -> Result<(), String> {
    let loads: Vec<usize> =
        phdrs(elf)?.into_iter().filter(|&o| elf[o..o + 4] == 1u32.to_le_bytes()).collect();
    ensure!(loads.len() >= 2, "fewer than two PT_LOADs");
    elf.copy_within(loads[0] + 16..loads[0] + 24, loads[1] + 16); // p_vaddr
    Ok(())
}

fn set_first_load_memsz(elf: &mut [u8], memsz: u64) -> Result<(), String> {
    let o = first_load(elf)?;
    elf[o + 40..o + 48].copy_from_slice(&memsz.to_le_bytes());
    Ok(())
}
