//! Memory management: physical frames, page tables, the kernel heap, kernel stacks, DMA memory
//! for the drivers ([`dma`]), and the budget for kernel memory that user programs cause
//! ([`budget`]).
//!
//! Virtual layout of the kernel half (each region has its own PML4 slot, whose PDPT is
//! created at boot and never freed, so every address space can share the kernel half by
//! copying PML4 entries 256..512):
//!
//! | PML4 slot | start                   | what                                        |
//! |-----------|-------------------------|---------------------------------------------|
//! | 256       | 0xffff_8000_0000_0000   | direct map of physical memory               |
//! | 384       | 0xffff_c000_0000_0000   | kernel heap (grows on demand)               |
//! | 448       | 0xffff_e000_0000_0000   | kernel stacks, each with unmapped guard     |
//! | 511       | 0xffff_ffff_8000_0000   | kernel image (text RX, rodata R, data RW)   |

pub mod budget;
pub mod dma;
pub mod frame;
pub mod heap;
pub mod kstack;
pub mod paging;

pub const PAGE_SIZE: u64 = 4096;
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
pub const HEAP_START: u64 = 0xffff_c000_0000_0000;
pub const KSTACK_START: u64 = 0xffff_e000_0000_0000;
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// The direct-map address of physical address `pa`.
pub const fn phys_to_virt(pa: u64) -> u64 {
    PHYS_OFFSET + pa
}

/// Bring up memory management from the boot memory map: frames, page tables, heap.
pub fn init(info: &crate::pvh::BootInfo) {
    frame::init(info.regions());
    paging::init(info.regions());
    heap::init();
}
