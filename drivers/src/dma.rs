//! Memory a device reaches by DMA, as every driver here takes it: [`DmaRegion`].
//!
//! A driver gets its DMA memory once, in its constructor, from an allocator callback
//! (`alloc_dma(pages) -> Option<DmaRegion>`): the kernel's is `mm::dma::alloc` (frames from
//! the frame allocator, reached through the direct map), the host tests' is
//! [`fake::Memory`](self::fake) (host pages under made-up physical addresses). The driver owns
//! the region from then on; it is never freed, since the device lives as long as the kernel.
//!
//! x86 DMA is cache-coherent, so the memory is ordinary cached RAM; what orders the driver's
//! writes before the device's reads is the driver's fences and MMIO/port writes.

/// Bytes per page: allocators hand out whole, page-aligned pages.
pub const PAGE: usize = 4096;

/// Physically contiguous memory the device may reach by DMA: `len` bytes at physical `phys`,
/// which the CPU reaches at `virt`.
#[derive(Clone, Copy, Debug)]
pub struct DmaRegion {
    pub virt: *mut u8,
    pub phys: u64,
    pub len: usize,
}

// SAFETY: a DmaRegion is an address pair; who may touch the memory is decided by the driver
// that owns it (its descriptor and slot states), not by which thread holds the value.
unsafe impl Send for DmaRegion {}
// SAFETY: as above.
unsafe impl Sync for DmaRegion {}

impl DmaRegion {
    /// Page-aligned and at least `bytes` long: what a driver checks of what its allocator
    /// gave before handing `phys` to the device.
    pub fn holds(&self, bytes: usize) -> bool {
        self.len >= bytes && self.phys.is_multiple_of(PAGE as u64)
    }
}

/// DMA memory for the drivers' host tests.
#[cfg(test)]
pub(crate) mod fake {
    use super::{DmaRegion, PAGE};
    use alloc::vec::Vec;
    use std::sync::Mutex as StdMutex;

    /// Real host pages, handed out under made-up physical addresses (low ones, like a small
    /// machine's, starting at `base`) so that a driver mixing up the two is caught: a fake
    /// device reaches the memory only through [`Memory::at`], which panics on an address it
    /// did not hand out.
    pub struct Memory {
        base: u64,
        regions: StdMutex<Vec<DmaRegion>>,
    }

    impl Memory {
        /// Regions from physical `base` on, a page apart.
        pub fn new(base: u64) -> Memory {
            Memory { base, regions: StdMutex::new(Vec::new()) }
        }

        /// The allocator callback: `pages` zeroed pages.
        pub fn alloc(&self, pages: usize) -> Option<DmaRegion> {
            let layout = std::alloc::Layout::from_size_align(pages * PAGE, PAGE).unwrap();
            // SAFETY: a non-zero size; the pages are leaked (the device lives for the test).
            let virt = unsafe { std::alloc::alloc_zeroed(layout) };
            let mut regions = self.regions.lock().unwrap();
            let phys = regions.last().map_or(self.base, |r| r.phys + r.len as u64 + PAGE as u64);
            let r = DmaRegion { virt, phys, len: pages * PAGE };
            regions.push(r);
            Some(r)
        }

        /// The host pointer of fake physical range `phys..phys+len` (inside one region).
        pub fn at(&self, phys: u64, len: usize) -> *mut u8 {
            let regions = self.regions.lock().unwrap();
            let r = regions
                .iter()
                .find(|r| phys >= r.phys && phys + len as u64 <= r.phys + r.len as u64)
                .unwrap_or_else(|| panic!("DMA to {phys:#x}+{len} outside the driver's memory"));
            // SAFETY: inside the region, by the check above.
            unsafe { r.virt.add((phys - r.phys) as usize) }
        }

        /// The regions handed out so far, in order.
        pub fn regions(&self) -> Vec<DmaRegion> {
            self.regions.lock().unwrap().clone()
        }
    }
}
