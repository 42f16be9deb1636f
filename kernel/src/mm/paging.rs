//! 4-level paging for the kernel half: builds the final kernel page table at boot (replacing
//! the PVH stub's coarse one), then maps and unmaps pages on request.
//!
//! Locking: one `KERNEL` mutex guards the kernel page table (rank `KernelPageTable` in
//! `docs/locks.md`: taken under the heap's, only the frame allocator's under it); task context
//! only. The raw
//! [`is_mapped`] walk takes no lock so the exception reporter can use it in any state.

use super::{frame, phys_to_virt, HEAP_START, KERNEL_VMA, KSTACK_START, PAGE_SIZE, PHYS_OFFSET};
use crate::pvh::Region;
use runtime::lockorder::{IrqMutex as Mutex, Rank};
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::mapper::{MapToError, TranslateResult, UnmapError};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags as F, PhysFrame,
    Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

static KERNEL: Mutex<Option<OffsetPageTable<'static>>> = Mutex::new(Rank::KernelPageTable, None);
static KERNEL_ROOT: spin::Once<PhysFrame> = spin::Once::new();

/// The kernel's own PML4 (its entries 256..512 are shared by every address space).
pub fn kernel_root() -> PhysFrame {
    *KERNEL_ROOT.get().expect("paging not initialised")
}

/// Lets the `x86_64` mapper take page-table frames from our allocator.
struct Frames;

// SAFETY: `frame::alloc` returns unused, zeroed frames.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        frame::alloc()
    }
}

extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __data_end: u8;
}

fn addr(sym: &u8) -> u64 {
    sym as *const u8 as u64
}

fn map_range_4k(pt: &mut OffsetPageTable, virt: u64, phys: u64, len: u64, flags: F) {
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt + off));
        let frame = PhysFrame::containing_address(PhysAddr::new(phys + off));
        // SAFETY: boot-time construction of a fresh table; the frames are the kernel image,
        // RAM or device memory that these mappings describe exactly.
        unsafe { pt.map_to(page, frame, flags, &mut Frames) }.expect("boot mapping").ignore();
    }
}

/// Map physical `[start, end)` at the direct map, with 2 MiB pages where alignment allows.
fn map_direct(pt: &mut OffsetPageTable, start: u64, end: u64, flags: F) {
    let mut pa = start & !(PAGE_SIZE - 1);
    while pa < end {
        let huge = Size2MiB::SIZE;
        if pa.is_multiple_of(huge) && pa + huge <= end {
            let page = Page::<Size2MiB>::containing_address(VirtAddr::new(phys_to_virt(pa)));
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: as in map_range_4k.
            match unsafe { pt.map_to(page, frame, flags, &mut Frames) } {
                Ok(f) => f.ignore(),
                Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {}
                Err(e) => panic!("direct map: {e:?}"),
            }
            pa += huge;
        } else {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys_to_virt(pa)));
            let frame = PhysFrame::containing_address(PhysAddr::new(pa));
            // SAFETY: as in map_range_4k.
            match unsafe { pt.map_to(page, frame, flags, &mut Frames) } {
                Ok(f) => f.ignore(),
                Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {}
                Err(e) => panic!("direct map: {e:?}"),
            }
            pa += PAGE_SIZE;
        }
    }
}

use x86_64::structures::paging::PageSize;

pub fn init(regions: &[Region]) {
    let root = frame::alloc().expect("no frame for the kernel PML4");
    // SAFETY: a fresh zeroed frame reached through the boot direct map.
    let table = unsafe { &mut *(phys_to_virt(root.start_address().as_u64()) as *mut PageTable) };
    // SAFETY: PHYS_OFFSET maps all physical memory we will touch through this mapper.
    let mut pt = unsafe { OffsetPageTable::new(table, VirtAddr::new(PHYS_OFFSET)) };

    // Create the PDPTs of the kernel-half slots now, so later address spaces can share them.
    for slot_base in [PHYS_OFFSET, HEAP_START, KSTACK_START, KERNEL_VMA] {
        let idx = VirtAddr::new(slot_base).p4_index();
        let pdpt = frame::alloc().expect("no frame for a kernel PDPT");
        pt.level_4_table_mut()[idx].set_frame(pdpt, F::PRESENT | F::WRITABLE);
    }

    // SAFETY: linker symbols, addresses only.
    let (ts, te, rs, re, ds, de) = unsafe {
        (
            addr(&__text_start),
            addr(&__text_end),
            addr(&__rodata_start),
            addr(&__rodata_end),
            addr(&__data_start),
            addr(&__data_end),
        )
    };
    let kernel = |pt: &mut OffsetPageTable, s: u64, e: u64, f: F| {
        map_range_4k(pt, s, s - KERNEL_VMA, e - s, f | F::PRESENT | F::GLOBAL)
    };
    kernel(&mut pt, ts, te, F::empty());
    kernel(&mut pt, rs, re, F::NO_EXECUTE);
    kernel(&mut pt, ds, de, F::WRITABLE | F::NO_EXECUTE);

    let data = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;
    // Low memory: BIOS data and ACPI tables (read by `acpi`), the VGA text buffer (uncached).
    map_direct(&mut pt, 0, 0xa0000, data);
    map_direct(&mut pt, 0xa0000, 0xc0000, data | F::NO_CACHE | F::WRITE_THROUGH);
    map_direct(&mut pt, 0xc0000, 0x100000, data);
    for r in regions {
        map_direct(&mut pt, r.start, r.end(), data);
    }

    // SAFETY: the new table maps the running code, stack (.bss) and all data we use.
    unsafe { Cr3::write(root, Cr3Flags::empty()) };
    KERNEL_ROOT.call_once(|| root);
    *KERNEL.lock() = Some(pt);
}

fn with<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    f(KERNEL.lock().as_mut().expect("paging not initialised"))
}

/// Map one page of the kernel half to `frame`.
pub fn map(virt: u64, frame: PhysFrame, flags: F) -> Result<(), MapToError<Size4KiB>> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    // SAFETY: callers map fresh frames at addresses of the heap and stack regions, which no
    // Rust reference points into before the mapping exists.
    with(|pt| unsafe { pt.map_to(page, frame, flags | F::PRESENT, &mut Frames) }.map(|f| f.flush()))
}

/// Unmap one page; returns the frame it mapped (the caller frees it if it owned it).
pub fn unmap(virt: u64) -> Result<PhysFrame, UnmapError> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(virt));
    with(|pt| {
        pt.unmap(page).map(|(frame, flush)| {
            flush.flush();
            frame
        })
    })
}

/// Physical address `virt` maps to in the kernel page table.
pub fn translate(virt: u64) -> Option<PhysAddr> {
    with(|pt| match pt.translate(VirtAddr::new(virt)) {
        TranslateResult::Mapped { frame, offset, .. } => Some(frame.start_address() + offset),
        _ => None,
    })
}

/// Map device registers at physical `pa` (uncached) into the direct map; returns the address.
pub fn map_mmio(pa: u64, len: u64) -> u64 {
    let flags = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
    with(|pt| {
        let start = pa & !(PAGE_SIZE - 1);
        for p in (start..pa + len).step_by(PAGE_SIZE as usize) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(phys_to_virt(p)));
            let frame = PhysFrame::containing_address(PhysAddr::new(p));
            // SAFETY: device memory outside RAM, mapped only here.
            match unsafe { pt.map_to(page, frame, flags, &mut Frames) } {
                Ok(f) => f.flush(),
                // Already reachable (RAM-backed tables, or inside a 2 MiB direct-map page).
                Err(MapToError::PageAlreadyMapped(_)) | Err(MapToError::ParentEntryHugePage) => {}
                Err(e) => panic!("map_mmio {pa:#x}: {e:?}"),
            }
        }
    });
    phys_to_virt(pa)
}

/// Lock-free walk of the live page table: is `virt` mapped? Safe to call from the exception
/// reporter whatever locks are held.
pub fn is_mapped(virt: u64) -> bool {
    if VirtAddr::try_new(virt).is_err() {
        return false;
    }
    let (root, _) = Cr3::read();
    let mut table = root.start_address().as_u64();
    let indices = [(virt >> 39) & 511, (virt >> 30) & 511, (virt >> 21) & 511, (virt >> 12) & 511];
    for (level, idx) in indices.iter().enumerate() {
        // SAFETY: page-table frames are RAM, covered by the direct map in every table we load.
        let entry = unsafe { *((phys_to_virt(table) as *const u64).add(*idx as usize)) };
        if entry & 1 == 0 {
            return false;
        }
        if level > 0 && level < 3 && entry & (1 << 7) != 0 {
            return true; // 1 GiB or 2 MiB page
        }
        table = entry & 0x000f_ffff_ffff_f000;
    }
    true
}
