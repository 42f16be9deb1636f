//! Kernel stacks with guard pages. Each stack owns a 128 KiB slot of the stack region; only
//! its top `STACK_SIZE` bytes are mapped, so running off the bottom hits unmapped memory
//! (a page fault, reported as a double fault because the CPU cannot push the frame).
//!
//! Dropping a [`KernelStack`] unmaps its pages and frees their frames; its slot is reused.

use super::{frame, paging, KSTACK_START, PAGE_SIZE};
use alloc::vec::Vec;
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags as F;

pub const STACK_SIZE: u64 = 64 * 1024;
const SLOT_SIZE: u64 = 128 * 1024;

struct Slots {
    next: u64,
    free: Vec<u64>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Slots { next: 0, free: Vec::new() });

pub struct KernelStack {
    slot: u64,
}

impl KernelStack {
    /// A fresh mapped stack, or None when out of memory.
    pub fn new() -> Option<KernelStack> {
        let slot = {
            let mut s = SLOTS.lock();
            s.free.pop().unwrap_or_else(|| {
                s.next += 1;
                s.next - 1
            })
        };
        let stack = KernelStack { slot };
        for page in stack.pages() {
            let Some(f) = frame::alloc() else {
                return None; // Drop unmaps what was mapped
            };
            if paging::map(page, f, F::WRITABLE | F::NO_EXECUTE).is_err() {
                frame::free(f);
                return None;
            }
        }
        Some(stack)
    }

    fn base(&self) -> u64 {
        KSTACK_START + self.slot * SLOT_SIZE
    }

    fn pages(&self) -> impl Iterator<Item = u64> {
        let bottom = self.base() + SLOT_SIZE - STACK_SIZE;
        (bottom..self.base() + SLOT_SIZE).step_by(PAGE_SIZE as usize)
    }

    /// The initial stack pointer (16-byte aligned, one past the highest byte).
    pub fn top(&self) -> u64 {
        self.base() + SLOT_SIZE
    }

    /// The highest unmapped page below the stack.
    pub fn guard_page(&self) -> u64 {
        self.base() + SLOT_SIZE - STACK_SIZE - PAGE_SIZE
    }
}

impl Drop for KernelStack {
    fn drop(&mut self) {
        for page in self.pages() {
            if let Ok(f) = paging::unmap(page) {
                frame::free(f);
            }
        }
        SLOTS.lock().free.push(self.slot);
    }
}
