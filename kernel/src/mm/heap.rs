//! The kernel heap behind `#[global_allocator]`, in two parts:
//!
//! - **Small objects** (under [`LARGE`]): a linked-list allocator over a virtual region that
//!   grows on demand, page by page, from the frame allocator. It never shrinks: what it frees
//!   it keeps for the next small objects.
//! - **Large blocks** ([`LARGE`] and up: socket buffers, pipe rings, I/O bounce buffers, a
//!   program's file during `exec`): frames of their own, taken from the frame allocator when
//!   allocated and given back to it when freed. Memory a program made the kernel take in bulk
//!   therefore goes back to the frame allocator, and so to processes, as soon as the program
//!   lets go of it; kept in the small-object part it would stay with the kernel for ever.
//!
//!   A block of up to [`CONTIGUOUS_MAX`] pages is a run of physically contiguous frames used
//!   through the direct map: nothing to map or unmap, as cheap as the small-object part. A
//!   longer block, or any block when physical memory has no run that long, is mapped page by
//!   page from fresh (zeroed) frames into a second virtual region, and unmapped when freed.
//!   That region's pages are tracked by a bitmap (one bit a page, made at boot from frames)
//!   searched first-fit, so blocks keep to the bottom of the region and reuse the page tables
//!   already made there (page tables are never freed: a next-fit search would wander over the
//!   whole region and leave tables all along it). It spans four times the machine's memory, so
//!   the fragmentation of its addresses does not stop an allocation that memory could
//!   satisfy; a block it cannot place falls back to the small-object part.
//!
//! What user programs may make the kernel allocate is charged first (`mm::budget`); an
//! allocation failure here is the kernel's own and ends in the alloc error handler (a panic).
//!
//! Almost everything allocates while holding its own lock, so the heap's locks come near the
//! end of the lock order (`HeapLarge`, `Heap`: `docs/locks.md`), followed only by what growing
//! the heap takes, the kernel page table and the frame allocator. All of them are
//! interrupt-safe (`IrqMutex`: in the sleep design, interrupts off while held, as xv6's
//! `kalloc` lock): the sleep design's interrupt handlers run a network stack, which allocates
//! (a received frame is copied out of the ring). Other handlers never allocate (their queues
//! are fixed-size), so the event design masks nothing here.

use super::{frame, paging, phys_to_virt, HEAP_START, PAGE_SIZE, PHYS_OFFSET};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use runtime::lockorder::{IrqMutex as Mutex, Rank};
use x86_64::structures::paging::{PageTableFlags as F, PhysFrame};
use x86_64::PhysAddr;

const INITIAL: u64 = 4 << 20;
const GROW_MIN: u64 = 1 << 20;
/// The small-object region's size; growth past it fails the allocation (OOM) instead of
/// mapping over the large-block region.
const LIMIT: u64 = 1 << 30;
/// Allocations of this size and up get pages of their own (wasting at most a page less one
/// byte each, under 25%).
pub const LARGE: usize = 16 * 1024;
/// The large-block region, right after the small-object one (the heap's PML4 slot spans
/// 512 GiB).
const LARGE_START: u64 = HEAP_START + LIMIT;
/// The large-block region spans this many times the managed memory (and at least 256 MiB).
const LARGE_SPAN_FACTOR: usize = 4;
/// Large blocks of up to this many pages (256 KiB) are physically contiguous frames when the
/// frame allocator has a run that long, reached through the direct map: nothing to map or
/// unmap (a TCP socket's two 64 KiB buffers are made and freed for every connection).
const CONTIGUOUS_MAX: usize = 64;
/// Pages of the large blocks in the direct map.
static DIRECT_PAGES: AtomicUsize = AtomicUsize::new(0);

pub struct KernelHeap {
    heap: Mutex<Heap>,
    mapped: AtomicUsize,
}

#[global_allocator]
static HEAP: KernelHeap =
    KernelHeap { heap: Mutex::new(Rank::Heap, Heap::empty()), mapped: AtomicUsize::new(0) };

/// The large-block region's page bitmap (1 = in use).
struct Large {
    used: &'static mut [u64],
    /// No page below this one is free: where a search starts.
    first_free: usize,
    /// Pages in use.
    pages: usize,
}

static LARGE_PAGES: Mutex<Option<Large>> = Mutex::new(Rank::HeapLarge, None);

impl Large {
    fn is_used(&self, p: usize) -> bool {
        self.used[p / 64] & (1 << (p % 64)) != 0
    }

    fn mark(&mut self, start: usize, n: usize, used: bool) {
        for p in start..start + n {
            if used {
                self.used[p / 64] |= 1 << (p % 64);
            } else {
                self.used[p / 64] &= !(1 << (p % 64));
            }
        }
        if used {
            self.pages += n;
            if start == self.first_free {
                self.first_free = start + n;
            }
        } else {
            self.pages -= n;
            self.first_free = self.first_free.min(start);
        }
    }

    /// The first run of `n` free pages in `[from, to)`.
    fn find_in(&self, from: usize, to: usize, n: usize) -> Option<usize> {
        let mut run = from;
        let mut p = from;
        while p < to {
            if p.is_multiple_of(64) && self.used[p / 64] == u64::MAX {
                p += 64;
                run = p;
            } else if self.is_used(p) {
                p += 1;
                run = p;
            } else {
                p += 1;
                if p - run == n {
                    return Some(run);
                }
            }
        }
        None
    }

    /// Take `n` free pages (first fit); their first page's index.
    fn take(&mut self, n: usize) -> Option<usize> {
        let start = self.find_in(self.first_free, self.used.len() * 64, n)?;
        self.mark(start, n, true);
        Some(start)
    }
}

/// Map `len` more bytes at the end of the small-object region. Returns false when out of
/// frames/room.
fn grow(heap: &mut Heap, mapped: &AtomicUsize, len: u64) -> bool {
    let start = HEAP_START + mapped.load(Ordering::Relaxed) as u64;
    let len = len.next_multiple_of(PAGE_SIZE);
    if start + len > HEAP_START + LIMIT {
        return false;
    }
    for off in (0..len).step_by(PAGE_SIZE as usize) {
        let Some(f) = frame::alloc() else { return false };
        if paging::map(start + off, f, F::WRITABLE | F::NO_EXECUTE).is_err() {
            frame::free(f);
            return false;
        }
        mapped.fetch_add(PAGE_SIZE as usize, Ordering::Relaxed);
        if heap.size() == 0 {
            // SAFETY: the first page just mapped, owned by the heap from now on.
            unsafe { heap.init(start as *mut u8, PAGE_SIZE as usize) };
        } else {
            // SAFETY: the page directly after the heap's end, just mapped.
            unsafe { heap.extend(PAGE_SIZE as usize) };
        }
    }
    true
}

pub fn init() {
    assert!(grow(&mut HEAP.heap.lock(), &HEAP.mapped, INITIAL), "cannot map the initial heap");
    let span_pages = (frame::stats().1 * LARGE_SPAN_FACTOR).max(65536).next_multiple_of(64);
    let words = span_pages / 64;
    let frames = (words * 8).div_ceil(PAGE_SIZE as usize);
    let f = frame::alloc_contiguous(frames).expect("no frames for the large-block bitmap");
    // SAFETY: fresh zeroed frames (all pages free), reached through the direct map, owned by
    // the bitmap for ever.
    let used = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(f.start_address().as_u64()) as *mut u64, words)
    };
    *LARGE_PAGES.lock() = Some(Large { used, first_free: 0, pages: 0 });
}

fn is_large(layout: Layout) -> bool {
    layout.size() >= LARGE && layout.align() <= PAGE_SIZE as usize
}

/// A large block of zeroed pages, or null (no room in the region, or no frames).
fn large_alloc(layout: Layout) -> *mut u8 {
    let n = layout.size().div_ceil(PAGE_SIZE as usize);
    if n <= CONTIGUOUS_MAX {
        if let Some(f) = frame::alloc_contiguous(n) {
            DIRECT_PAGES.fetch_add(n, Ordering::Relaxed);
            return phys_to_virt(f.start_address().as_u64()) as *mut u8;
        }
    }
    let start = {
        let mut l = LARGE_PAGES.lock();
        match l.as_mut().and_then(|l| l.take(n)) {
            Some(s) => s,
            None => return core::ptr::null_mut(),
        }
    };
    let va = LARGE_START + start as u64 * PAGE_SIZE;
    for i in 0..n {
        let ok = match frame::alloc() {
            Some(f) => {
                let mapped = paging::map(va + i as u64 * PAGE_SIZE, f, F::WRITABLE | F::NO_EXECUTE);
                if mapped.is_err() {
                    frame::free(f);
                }
                mapped.is_ok()
            }
            None => false,
        };
        if !ok {
            large_free(va, i, start, n);
            return core::ptr::null_mut();
        }
    }
    va as *mut u8
}

/// Unmap the first `mapped` pages of the block at `va` (page `start` of the region, `n`
/// pages), free their frames, and give its pages back to the region.
fn large_free(va: u64, mapped: usize, start: usize, n: usize) {
    for i in 0..mapped {
        if let Ok(f) = paging::unmap(va + i as u64 * PAGE_SIZE) {
            frame::free(f);
        }
    }
    if let Some(l) = LARGE_PAGES.lock().as_mut() {
        l.mark(start, n, false);
    }
}

impl KernelHeap {
    fn small_alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        if let Ok(p) = heap.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        let need = (layout.size() + layout.align()) as u64 + PAGE_SIZE;
        if grow(&mut heap, &self.mapped, need.max(GROW_MIN)) {
            if let Ok(p) = heap.allocate_first_fit(layout) {
                return p.as_ptr();
            }
        }
        core::ptr::null_mut()
    }
}

// SAFETY: small objects come from linked_list_allocator, which returns blocks satisfying
// `layout`; large blocks are page-aligned (`is_large` admits alignments up to a page), at
// least `layout.size()` long, and mapped writable until deallocated.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            let p = large_alloc(layout);
            if !p.is_null() {
                return p;
            }
        }
        self.small_alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if is_large(layout) {
            let p = large_alloc(layout); // fresh frames are zeroed
            if !p.is_null() {
                return p;
            }
        }
        let p = self.small_alloc(layout);
        if !p.is_null() {
            // SAFETY: `p` points to `layout.size()` bytes just allocated.
            unsafe { core::ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let va = ptr as u64;
        if va < HEAP_START {
            // A large block of contiguous frames, reached through the direct map.
            let n = layout.size().div_ceil(PAGE_SIZE as usize);
            let first = PhysFrame::containing_address(PhysAddr::new(va - PHYS_OFFSET));
            frame::free_contiguous(first, n);
            DIRECT_PAGES.fetch_sub(n, Ordering::Relaxed);
        } else if va >= LARGE_START {
            let n = layout.size().div_ceil(PAGE_SIZE as usize);
            large_free(va, n, ((va - LARGE_START) / PAGE_SIZE) as usize, n);
        } else if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.heap.lock().deallocate(p, layout) };
        }
    }
}

/// (bytes in use, bytes mapped for the heap), both parts together.
pub fn stats() -> (usize, usize) {
    let pages = LARGE_PAGES.lock().as_ref().map_or(0, |l| l.pages);
    let large = (pages + DIRECT_PAGES.load(Ordering::Relaxed)) * PAGE_SIZE as usize;
    let heap = HEAP.heap.lock();
    (heap.used() + large, HEAP.mapped.load(Ordering::Relaxed) + large)
}

/// Free bytes of the small-object part (mapped, not in use).
pub fn small_free() -> usize {
    HEAP.heap.lock().free()
}
