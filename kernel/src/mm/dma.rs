//! DMA memory for the device drivers: [`alloc`] is the allocator callback every driver's
//! constructor takes (`drivers::dma`).
//!
//! A region is whole frames from the frame allocator, physically contiguous and zeroed,
//! reached through the direct map: x86 DMA is cache-coherent, so ordinary cached RAM is
//! fine. Regions are never freed (a driver keeps its rings for as long as the kernel runs).
//! Task context only (the frame allocator's lock).

use super::{frame, phys_to_virt, PAGE_SIZE};
use drivers::dma::DmaRegion;

/// `pages` zeroed, physically contiguous pages, or `None` when no run that long is free.
pub fn alloc(pages: usize) -> Option<DmaRegion> {
    let first = frame::alloc_contiguous(pages)?;
    let phys = first.start_address().as_u64();
    Some(DmaRegion { virt: phys_to_virt(phys) as *mut u8, phys, len: pages * PAGE_SIZE as usize })
}
