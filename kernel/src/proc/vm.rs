//! User address spaces. Each process has its own PML4: the lower half maps the process (code,
//! data, heap, stack; every page `USER`), the upper half is the kernel's, shared by copying
//! the kernel PML4's entries 256..512 (their tables never change, see `mm`).
//!
//! Page tables are reached through the direct map. Teardown walks the lower half and frees
//! every user page and every table page, so a process leaves no frame behind.
//!
//! Every frame of an address space (its pages, its lower half's page tables, its PML4) is
//! charged to the account it was made for (`ns::limits`: its process's home namespace, and
//! those above): past a namespace's memory limit, `sbrk`, `fork` and `exec` get ENOMEM. The
//! address space keeps the account and what it charged there, and gives it all back when it
//! is dropped, whoever drops it (`exit`, or the `exec` that replaces it).

use crate::mm::{budget, frame, paging, phys_to_virt, PAGE_SIZE, PHYS_OFFSET};
use crate::ns::Account;
use abi::syscall::{Errno, USER_END};
use alloc::sync::Arc;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

/// What an address space's frames are charged to.
struct Charged {
    account: Option<Arc<Account>>,
    /// Bytes charged to `account` so far.
    bytes: u64,
}

impl Charged {
    /// Charge one frame (`false`: past a memory limit).
    fn frame(&mut self) -> bool {
        let ok = self.account.as_ref().is_none_or(|a| a.charge_mem(PAGE_SIZE));
        if ok {
            self.bytes += PAGE_SIZE;
        }
        ok
    }

    fn release_frame(&mut self) {
        if let Some(a) = &self.account {
            a.uncharge_mem(PAGE_SIZE);
        }
        self.bytes -= PAGE_SIZE;
    }
}

/// Page-table frames for the mapper, each charged.
struct Frames<'a>(&'a mut Charged);

// SAFETY: `frame::alloc` returns unused, zeroed frames.
unsafe impl FrameAllocator<Size4KiB> for Frames<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        if !self.0.frame() {
            return None;
        }
        let f = frame::alloc();
        if f.is_none() {
            self.0.release_frame();
        }
        f
    }
}

pub struct AddressSpace {
    root: PhysFrame,
    /// First byte above the loaded image: the heap starts here.
    pub brk_base: u64,
    /// Current program break (end of the heap).
    pub brk: u64,
    charged: Charged,
}

fn table(frame: u64) -> &'static mut PageTable {
    // SAFETY: page-table frames are RAM reached through the direct map and owned by exactly
    // one address space; callers hold that address space mutably (or are tearing it down).
    unsafe { &mut *(phys_to_virt(frame) as *mut PageTable) }
}

impl AddressSpace {
    /// An empty user half over the shared kernel half, its frames charged to `account`
    /// (`None`: to none).
    pub fn new(account: Option<Arc<Account>>) -> Result<AddressSpace, Errno> {
        let mut charged = Charged { account, bytes: 0 };
        if !charged.frame() {
            return Err(Errno::ENOMEM);
        }
        let Some(root) = frame::alloc() else {
            charged.release_frame();
            return Err(Errno::ENOMEM);
        };
        let kernel = table(paging::kernel_root().start_address().as_u64());
        let new = table(root.start_address().as_u64());
        for i in 256..512 {
            new[i] = kernel[i].clone();
        }
        Ok(AddressSpace { root, brk_base: 0, brk: 0, charged })
    }

    /// The page table at `root` (this address space's, which the caller holds mutably).
    fn mapper(root: PhysFrame) -> OffsetPageTable<'static> {
        // SAFETY: the root is ours and PHYS_OFFSET maps all page-table frames.
        unsafe {
            OffsetPageTable::new(table(root.start_address().as_u64()), VirtAddr::new(PHYS_OFFSET))
        }
    }

    /// Map a fresh zeroed page at `va` (page-aligned, user half). An existing mapping is kept.
    pub fn map_zeroed(&mut self, va: u64, writable: bool, exec: bool) -> Result<PhysFrame, Errno> {
        if va >= USER_END || !va.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EFAULT);
        }
        if let Some((pa, _)) = self.translate(va) {
            return Ok(PhysFrame::containing_address(pa));
        }
        // User memory may not take the last frames (16 MiB): the kernel heap, kernel stacks and
        // the charged kernel memory of `mm::budget` come from them.
        if !budget::user_page_ok() || !self.charged.frame() {
            return Err(Errno::ENOMEM);
        }
        let Some(f) = frame::alloc() else {
            self.charged.release_frame();
            return Err(Errno::ENOMEM);
        };
        let mut flags = F::PRESENT | F::USER_ACCESSIBLE;
        if writable {
            flags |= F::WRITABLE;
        }
        if !exec {
            flags |= F::NO_EXECUTE;
        }
        let parent = F::PRESENT | F::WRITABLE | F::USER_ACCESSIBLE;
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        let mut tables = Frames(&mut self.charged);
        // SAFETY: a fresh frame at an unmapped user address of this (inactive or current)
        // address space; no Rust reference points into user memory.
        let mapped = unsafe {
            Self::mapper(self.root).map_to_with_table_flags(page, f, flags, parent, &mut tables)
        };
        match mapped {
            Ok(flush) => flush.flush(),
            Err(e) => {
                frame::free(f);
                self.charged.release_frame();
                return Err(match e {
                    MapToError::FrameAllocationFailed => Errno::ENOMEM,
                    _ => Errno::EFAULT,
                });
            }
        }
        Ok(f)
    }

    /// Unmap and free the page at `va`, if mapped.
    pub fn unmap(&mut self, va: u64) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
        if let Ok((f, flush)) = Self::mapper(self.root).unmap(page) {
            flush.flush();
            frame::free(f);
            self.charged.release_frame();
        }
    }

    /// The physical address and flags of a user page mapping `va`.
    pub fn translate(&self, va: u64) -> Option<(PhysAddr, F)> {
        if va >= USER_END {
            return None;
        }
        // SAFETY: as in `mapper`, read-only use.
        let pt = unsafe {
            OffsetPageTable::new(
                table(self.root.start_address().as_u64()),
                VirtAddr::new(PHYS_OFFSET),
            )
        };
        match pt.translate(VirtAddr::new(va)) {
            TranslateResult::Mapped { frame, offset, flags }
                if flags.contains(F::USER_ACCESSIBLE) =>
            {
                Some((frame.start_address() + offset, flags))
            }
            _ => None,
        }
    }

    /// Call `f(address, frame, flags)` for every mapped user page (no allocation: teardown
    /// must work when memory is exhausted).
    fn for_each_page(&self, mut f: impl FnMut(u64, PhysFrame, F)) {
        let l4 = table(self.root.start_address().as_u64());
        for i4 in 0..256usize {
            if !l4[i4].flags().contains(F::PRESENT) {
                continue;
            }
            let l3 = table(l4[i4].addr().as_u64());
            for i3 in 0..512usize {
                if !l3[i3].flags().contains(F::PRESENT) {
                    continue;
                }
                let l2 = table(l3[i3].addr().as_u64());
                for i2 in 0..512usize {
                    if !l2[i2].flags().contains(F::PRESENT) {
                        continue;
                    }
                    let l1 = table(l2[i2].addr().as_u64());
                    for i1 in 0..512usize {
                        let e = &l1[i1];
                        if e.flags().contains(F::PRESENT) {
                            let va = (i4 << 39 | i3 << 30 | i2 << 21 | i1 << 12) as u64;
                            f(va, PhysFrame::containing_address(e.addr()), e.flags());
                        }
                    }
                }
            }
        }
    }

    /// Bytes of user memory mapped.
    pub fn size(&self) -> u64 {
        let mut pages = 0;
        self.for_each_page(|_, _, _| pages += 1);
        pages * PAGE_SIZE
    }

    /// A copy for `fork`: every user page duplicated, charged to `account` (the child's).
    pub fn fork(&self, account: Option<Arc<Account>>) -> Result<AddressSpace, Errno> {
        let mut child = AddressSpace::new(account)?;
        child.brk_base = self.brk_base;
        child.brk = self.brk;
        let mut result = Ok(());
        self.for_each_page(|va, f, flags| {
            if result.is_err() {
                return;
            }
            let writable = flags.contains(F::WRITABLE);
            match child.map_zeroed(va, writable, !flags.contains(F::NO_EXECUTE)) {
                // SAFETY: two distinct frames, both reached through the direct map.
                Ok(to) => unsafe {
                    core::ptr::copy_nonoverlapping(
                        phys_to_virt(f.start_address().as_u64()) as *const u8,
                        phys_to_virt(to.start_address().as_u64()) as *mut u8,
                        PAGE_SIZE as usize,
                    )
                },
                Err(e) => result = Err(e),
            }
        });
        result.map(|()| child)
    }

    /// Make this the active address space.
    pub fn activate(&self) {
        if Cr3::read().0 != self.root {
            // SAFETY: the kernel half is shared, so the running kernel code stays mapped.
            unsafe { Cr3::write(self.root, Cr3Flags::empty()) };
        }
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        if Cr3::read().0 == self.root {
            // SAFETY: switching to the kernel's own table, which maps all kernel code and data.
            unsafe { Cr3::write(paging::kernel_root(), Cr3Flags::empty()) };
        }
        self.for_each_page(|_, f, _| frame::free(f));
        // Then the lower half's table pages, bottom up.
        let l4 = table(self.root.start_address().as_u64());
        for i4 in 0..256usize {
            if !l4[i4].flags().contains(F::PRESENT) {
                continue;
            }
            let l3f = l4[i4].addr().as_u64();
            let l3 = table(l3f);
            for i3 in 0..512usize {
                if !l3[i3].flags().contains(F::PRESENT) {
                    continue;
                }
                let l2f = l3[i3].addr().as_u64();
                let l2 = table(l2f);
                for i2 in 0..512usize {
                    if l2[i2].flags().contains(F::PRESENT) {
                        frame::free(PhysFrame::containing_address(l2[i2].addr()));
                    }
                }
                frame::free(PhysFrame::containing_address(PhysAddr::new(l2f)));
            }
            frame::free(PhysFrame::containing_address(PhysAddr::new(l3f)));
        }
        frame::free(self.root);
        // Every frame it had was charged: all of it goes back to the same account.
        if let Some(a) = &self.charged.account {
            a.uncharge_mem(self.charged.bytes);
        }
    }
}
