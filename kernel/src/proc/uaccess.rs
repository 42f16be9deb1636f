//! Checked access to the current process's memory. Every pointer and length from user space
//! goes through here: each page is looked up in the process's page table (present, user,
//! writable for copy_out) and copied through the direct map, so a bad pointer is `EFAULT`,
//! never a kernel fault.

use super::current;
use crate::mm::{phys_to_virt, PAGE_SIZE};
use abi::syscall::{Errno, USER_END};
use alloc::vec::Vec;
use x86_64::structures::paging::PageTableFlags as F;

/// Copy between user memory at `va` and `len` bytes of kernel memory, page by page.
fn each_chunk(
    va: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(*mut u8, usize, usize),
) -> Result<(), Errno> {
    let end = va.checked_add(len as u64).ok_or(Errno::EFAULT)?;
    if end > USER_END {
        return Err(Errno::EFAULT);
    }
    let p = current();
    let vm = p.vm.lock();
    let mut done = 0;
    while done < len {
        let at = va + done as u64;
        let n = (PAGE_SIZE - at % PAGE_SIZE).min((len - done) as u64) as usize;
        let (pa, flags) = vm.translate(at).ok_or(Errno::EFAULT)?;
        if write && !flags.contains(F::WRITABLE) {
            return Err(Errno::EFAULT);
        }
        f(phys_to_virt(pa.as_u64()) as *mut u8, done, n);
        done += n;
    }
    Ok(())
}

/// Whether `len` bytes at `va` could be copied in (or out, with `write`) now, without
/// copying. For calls that consume something (a pipe's bytes, a datagram, a child's exit
/// status) before they copy it out: they check first, so a bad pointer gets `EFAULT` and
/// loses nothing. The answer holds until the process changes its own mappings, which it
/// cannot do while it is in a system call (a process has one thread).
pub fn check(va: u64, len: usize, write: bool) -> Result<(), Errno> {
    each_chunk(va, len, write, |_, _, _| {})
}

pub fn copy_in(va: u64, dst: &mut [u8]) -> Result<(), Errno> {
    let len = dst.len();
    each_chunk(va, len, false, |src, off, n| {
        // SAFETY: `src..src+n` is a mapped user frame reached through the direct map.
        unsafe { core::ptr::copy_nonoverlapping(src, dst[off..].as_mut_ptr(), n) }
    })
}

pub fn copy_out(va: u64, src: &[u8]) -> Result<(), Errno> {
    each_chunk(va, src.len(), true, |dst, off, n| {
        // SAFETY: as in copy_in, writable checked.
        unsafe { core::ptr::copy_nonoverlapping(src[off..].as_ptr(), dst, n) }
    })
}

/// A NUL-terminated string of at most `max` bytes (without the NUL), read a page at a time: a
/// string that ends before an unmapped page is fine, one that runs into it is `EFAULT`, and
/// one with no NUL in its first `max + 1` bytes is `ENAMETOOLONG`.
pub fn copy_in_str(va: u64, max: usize) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let p = current();
    let vm = p.vm.lock();
    let mut at = va;
    loop {
        if at >= USER_END {
            return Err(Errno::EFAULT);
        }
        let (pa, _) = vm.translate(at).ok_or(Errno::EFAULT)?;
        let n = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(max + 1 - out.len());
        // SAFETY: `pa..pa+n` lies in one mapped user frame (n never crosses the page), read
        // through the direct map; this process cannot change it while it is in the kernel.
        let bytes =
            unsafe { core::slice::from_raw_parts(phys_to_virt(pa.as_u64()) as *const u8, n) };
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            out.extend_from_slice(&bytes[..nul]);
            return Ok(out);
        }
        out.extend_from_slice(bytes);
        if out.len() > max {
            return Err(Errno::ENAMETOOLONG);
        }
        at += n as u64;
    }
}

/// A user `u64` (a pointer in an argv array).
pub fn read_u64(va: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_in(va, &mut b)?;
    Ok(u64::from_le_bytes(b))
}
