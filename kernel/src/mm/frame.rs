//! Physical frame allocator: one bit per 4 KiB frame of RAM (1 = free).
//!
//! Built from the PVH memory map: only `RAM` regions are free, minus the first MiB (BIOS data,
//! VGA), the kernel image, and the bitmap itself (which lives in the first RAM region large
//! enough). Allocation is next-fit over 64-bit words; a run of contiguous frames (device
//! rings, the heap's large blocks) is first fit from the lowest free frame. Freeing a frame
//! that is already free is a kernel bug and panics, so a lost or double-freed frame cannot go
//! unnoticed. Task context only; never called from interrupt handlers. Its lock is the last but
//! one of the lock order (`Frames`, `docs/locks.md`): nothing is taken under it.

use super::{phys_to_virt, PAGE_SIZE};
use crate::pvh::{Region, RAM};
use runtime::lockorder::{IrqMutex as Mutex, Rank};
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::PhysAddr;

struct Bitmap {
    words: &'static mut [u64],
    next: usize,
    /// No frame below this one is free (where [`Bitmap::alloc_contiguous`] starts looking).
    low: usize,
    free: usize,
    total: usize,
}

static FRAMES: Mutex<Option<Bitmap>> = Mutex::new(Rank::Frames, None);

extern "C" {
    static __kernel_phys_start: u8;
    static __kernel_phys_end: u8;
}

fn kernel_image() -> (u64, u64) {
    // SAFETY: linker-defined symbols (both physical addresses); only their addresses are used.
    unsafe { (&__kernel_phys_start as *const u8 as u64, &__kernel_phys_end as *const u8 as u64) }
}

impl Bitmap {
    fn set_free(&mut self, frame: usize, free: bool) {
        let (w, b) = (frame / 64, frame % 64);
        let was_free = self.words[w] & (1 << b) != 0;
        if free {
            assert!(!was_free, "frame {:#x} freed twice", frame as u64 * PAGE_SIZE);
            self.words[w] |= 1 << b;
            self.free += 1;
            self.low = self.low.min(frame);
        } else if was_free {
            self.words[w] &= !(1 << b);
            self.free -= 1;
        }
    }

    fn alloc(&mut self) -> Option<usize> {
        let n = self.words.len();
        for i in 0..n {
            let w = (self.next + i) % n;
            if self.words[w] != 0 {
                let b = self.words[w].trailing_zeros() as usize;
                self.next = w;
                let frame = w * 64 + b;
                self.set_free(frame, false);
                return Some(frame);
            }
        }
        None
    }

    /// `n` physically contiguous frames (device rings, the heap's large blocks); first fit,
    /// a word at a time over wholly used or wholly free stretches.
    fn alloc_contiguous(&mut self, n: usize) -> Option<usize> {
        let total = self.words.len() * 64;
        let mut f = self.low / 64 * 64;
        let mut run = f; // first frame of the free run that ends at `f`
        let mut seen_free = false;
        while f < total {
            if !seen_free && self.words[f / 64] != 0 {
                // The first word with a free frame (`f` is still word-aligned here): nothing
                // below its first free frame is free.
                seen_free = true;
                self.low = f + self.words[f / 64].trailing_zeros() as usize;
            }
            let w = self.words[f / 64];
            if f.is_multiple_of(64) && w == 0 {
                f += 64;
                run = f;
            } else if f.is_multiple_of(64) && w == u64::MAX {
                f += 64;
            } else if w & (1 << (f % 64)) == 0 {
                f += 1;
                run = f;
            } else {
                f += 1;
            }
            if f - run >= n {
                (run..run + n).for_each(|f| self.set_free(f, false));
                return Some(run);
            }
        }
        None
    }
}

pub fn init(regions: &[Region]) {
    let top = regions.iter().filter(|r| r.kind == RAM).map(|r| r.end()).max().unwrap_or(0);
    let nframes = (top / PAGE_SIZE) as usize;
    let nwords = nframes.div_ceil(64);
    let bytes = (nwords * 8) as u64;
    let (kstart, kend) = kernel_image();
    // Put the bitmap in the first RAM region above 1 MiB and the kernel with room for it.
    let place = regions
        .iter()
        .filter(|r| r.kind == RAM)
        .map(|r| (r.start.max(kend).max(1 << 20).next_multiple_of(PAGE_SIZE), r.end()))
        .find(|(s, e)| s + bytes <= *e)
        .map(|(s, _)| s)
        .expect("no RAM for the frame bitmap");
    // SAFETY: `place..place+bytes` is RAM that nothing else uses (excluded from the free set below).
    let words = unsafe { core::slice::from_raw_parts_mut(phys_to_virt(place) as *mut u64, nwords) };
    words.fill(0);
    let mut bm = Bitmap { words, next: 0, low: 0, free: 0, total: 0 };
    let reserved = |f: u64| {
        let a = f * PAGE_SIZE;
        a < (1 << 20) || (a >= kstart && a < kend) || (a >= place && a < place + bytes)
    };
    for r in regions.iter().filter(|r| r.kind == RAM) {
        let first = r.start.div_ceil(PAGE_SIZE);
        let last = r.end() / PAGE_SIZE; // exclusive; partial frames are skipped
        for f in first..last.min(nframes as u64) {
            if !reserved(f) {
                bm.set_free(f as usize, true);
            }
        }
    }
    bm.total = bm.free;
    *FRAMES.lock() = Some(bm);
}

fn with<R>(f: impl FnOnce(&mut Bitmap) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("frame allocator not initialised"))
}

fn to_frame(index: usize) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(index as u64 * PAGE_SIZE))
}

/// One zeroed frame, or None when physical memory is exhausted.
pub fn alloc() -> Option<PhysFrame> {
    let f = to_frame(with(|b| b.alloc())?);
    // SAFETY: the frame was free, so nothing else references it; the direct map covers RAM.
    unsafe { core::ptr::write_bytes(phys_to_virt(f.start_address().as_u64()) as *mut u8, 0, 4096) };
    Some(f)
}

/// `n` zeroed, physically contiguous frames.
pub fn alloc_contiguous(n: usize) -> Option<PhysFrame> {
    let f = to_frame(with(|b| b.alloc_contiguous(n))?);
    // SAFETY: as in `alloc`, for all n frames.
    unsafe {
        core::ptr::write_bytes(phys_to_virt(f.start_address().as_u64()) as *mut u8, 0, 4096 * n)
    };
    Some(f)
}

pub fn free(frame: PhysFrame<Size4KiB>) {
    let index = (frame.start_address().as_u64() / PAGE_SIZE) as usize;
    with(|b| b.set_free(index, true));
}

/// Free the `n` frames from `first` on (as made by [`alloc_contiguous`]).
pub fn free_contiguous(first: PhysFrame<Size4KiB>, n: usize) {
    let index = (first.start_address().as_u64() / PAGE_SIZE) as usize;
    with(|b| (index..index + n).for_each(|f| b.set_free(f, true)));
}

/// (free frames, frames managed).
pub fn stats() -> (usize, usize) {
    with(|b| (b.free, b.total))
}
