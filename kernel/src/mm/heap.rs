//! The kernel heap behind `#[global_allocator]`: a linked-list allocator over a virtual region
//! that grows on demand, page by page, from the frame allocator.
//!
//! Allocation is for task context only: interrupt handlers never allocate (their queues are
//! fixed-size), so the heap lock is never contended by an interrupt on this single CPU.

use super::{frame, paging, HEAP_START, PAGE_SIZE};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags as F;

const INITIAL: u64 = 4 << 20;
const GROW_MIN: u64 = 1 << 20;
/// The region's size; growth past it fails the allocation (OOM) instead of mapping over stacks.
const LIMIT: u64 = 1 << 30;

pub struct KernelHeap {
    heap: Mutex<Heap>,
    mapped: AtomicUsize,
}

#[global_allocator]
static HEAP: KernelHeap =
    KernelHeap { heap: Mutex::new(Heap::empty()), mapped: AtomicUsize::new(0) };

/// Map `len` more bytes at the end of the heap region. Returns false when out of frames/room.
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
}

// SAFETY: delegates to linked_list_allocator, which returns blocks satisfying `layout`.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
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

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.heap.lock().deallocate(p, layout) };
        }
    }
}

/// (bytes in use, bytes mapped for the heap).
pub fn stats() -> (usize, usize) {
    let heap = HEAP.heap.lock();
    (heap.used(), HEAP.mapped.load(Ordering::Relaxed))
}
