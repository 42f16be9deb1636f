//! Loading a program: read an ELF64 executable from the file system, map its segments into a
//! fresh address space, and build the initial stack (`argc`, `argv`). The file is checked
//! first, wholly, by [`super::elf::parse`] (class, machine, type, every offset, size and count,
//! segment addresses, overlaps): a truncated, crafted or foreign file is `ENOEXEC`, never a
//! fault or a panic. This module only maps what that check returned.

use super::elf;
use super::vm::AddressSpace;
use crate::mm::budget::Charge;
use crate::mm::{phys_to_virt, PAGE_SIZE};
use crate::ns::Account;
use crate::rootfs::{Ino, RootFs};
use abi::syscall::{Errno, USER_END, USER_STACK_SIZE, USER_STACK_TOP};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Deref;

/// Largest program file accepted.
const MAX_PROGRAM: u64 = 16 << 20;
// The check lays segments out in the pages that are mapped here.
const _: () = assert!(elf::PAGE_SIZE == PAGE_SIZE);
/// Most argument bytes (strings and pointers) passed to a program.
pub const MAX_ARGS: usize = 64 * 1024;

pub struct Loaded {
    pub vm: AddressSpace,
    pub entry: u64,
    pub rsp: u64,
    pub argc: u64,
    pub argv: u64,
}

/// A program's file in kernel memory, charged to the kernel-memory budget while it is held
/// (up to [`MAX_PROGRAM`] bytes, for as long as the disk takes to read it: 256 processes
/// calling `exec` at once must not empty the heap). Derefs to the bytes.
pub struct Program {
    bytes: Vec<u8>,
    _charge: Charge,
}

impl Deref for Program {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Read the whole file `ip`. ENOMEM when the kernel-memory budget cannot hold it now.
pub async fn read_program(fs: &'static RootFs, ip: &Ino) -> Result<Program, Errno> {
    let size = ip.lock().await.map_err(|_| Errno::EIO)?.size();
    if size > MAX_PROGRAM {
        return Err(Errno::ENOEXEC);
    }
    let charge = Charge::new(size as usize).ok_or(Errno::ENOMEM)?;
    let mut bytes = vec![0u8; size as usize];
    let n = fs.read(ip, 0, &mut bytes).await.map_err(|_| Errno::EIO)?;
    bytes.truncate(n);
    Ok(Program { bytes, _charge: charge })
}

/// Copy `data` into the address space at `va` (pages already mapped).
fn write_user(vm: &AddressSpace, va: u64, data: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < data.len() {
        let at = va + done as u64;
        let n = ((PAGE_SIZE - at % PAGE_SIZE) as usize).min(data.len() - done);
        let (pa, _) = vm.translate(at).ok_or(Errno::EFAULT)?;
        // SAFETY: a mapped user frame, reached through the direct map.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data[done..].as_ptr(),
                phys_to_virt(pa.as_u64()) as *mut u8,
                n,
            )
        };
        done += n;
    }
    Ok(())
}

/// Build the address space for the program file `elf` with arguments `args`, its memory
/// charged to `account` (ENOMEM past its limit).
pub fn load(elf: &[u8], args: &[Vec<u8>], account: Option<Arc<Account>>) -> Result<Loaded, Errno> {
    let image = elf::parse(elf)?;
    let mut vm = AddressSpace::new(account)?;
    for s in &image.segments {
        for page in s.pages().step_by(PAGE_SIZE as usize) {
            // `parse` lets no two segments share a page; `map_zeroed` would keep the first
            // one's frame and permissions, so say so rather than load a wrong image.
            if vm.translate(page).is_some() {
                return Err(Errno::ENOEXEC);
            }
            vm.map_zeroed(page, s.writable, s.exec)?;
        }
        let bytes = elf.get(s.file.clone()).ok_or(Errno::ENOEXEC)?; // inside: checked by `parse`
        write_user(&vm, s.vaddr, bytes)?;
    }
    let entry = image.entry;
    vm.brk_base = image.end();
    vm.brk = vm.brk_base;

    // The stack: strings at the top, then the NULL-terminated argv array, 16-byte aligned,
    // and a zero "return address" so _start sees the ABI's call-time alignment.
    for page in (USER_STACK_TOP - USER_STACK_SIZE..USER_STACK_TOP).step_by(PAGE_SIZE as usize) {
        vm.map_zeroed(page, true, false)?;
    }
    let total: usize = args.iter().map(|a| a.len() + 1 + 8).sum::<usize>() + 8;
    if total > MAX_ARGS {
        return Err(Errno::E2BIG);
    }
    let mut sp = USER_STACK_TOP;
    let mut ptrs = Vec::with_capacity(args.len() + 1);
    for a in args {
        sp -= a.len() as u64 + 1;
        let mut s = a.clone();
        s.push(0);
        write_user(&vm, sp, &s)?;
        ptrs.push(sp);
    }
    ptrs.push(0);
    sp &= !15;
    sp -= (ptrs.len() as u64 * 8).next_multiple_of(16);
    let argv = sp;
    let bytes: Vec<u8> = ptrs.iter().flat_map(|p| p.to_le_bytes()).collect();
    write_user(&vm, argv, &bytes)?;
    sp -= 8; // fake return address
    write_user(&vm, sp, &0u64.to_le_bytes())?;
    debug_assert!(sp < USER_END);
    Ok(Loaded { vm, entry, rsp: sp, argc: args.len() as u64, argv })
}
