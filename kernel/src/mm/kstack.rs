//! Kernel stacks with guard pages. Each stack owns a `SLOT_SIZE` slot of the stack region
//! (128 KiB); only its top `STACK_SIZE` bytes (64 KiB) are mapped, so running off the bottom
//! hits unmapped memory (a page fault, reported as a double fault because the CPU cannot push
//! the frame). Debug builds get four times as much: see [`STACK_SIZE`].
//!
//! Dropping a [`KernelStack`] unmaps its pages and frees their frames; its slot is reused. The
//! free slots are behind a spin lock (rank `KernelStacks` in `docs/locks.md`), released before
//! pages are mapped or unmapped.

use super::{frame, paging, KSTACK_START, PAGE_SIZE};
use alloc::vec::Vec;
use runtime::lockorder::{Mutex, Rank};
use x86_64::structures::paging::PageTableFlags as F;

/// Mapped bytes per stack. Deepest use measured with a release kernel (boot, `ls /bin`,
/// `usertests`, `poweroff`): 12 KiB on the scheduler's stack (mounting the disk at boot) and
/// 18 KiB on a process's (a system call deep in the file system), so 64 KiB leaves 3.5 times
/// that.
///
/// A debug kernel (no optimisation) needs several times more: unoptimised code gives every
/// local and every temporary its own stack slot, and an async fn builds and moves each child
/// future through such temporaries, so a file-system operation's poll frame is 10-25 KiB
/// there against a few hundred bytes in release. Measured in the same run of a debug kernel:
/// 113 KiB on a process's stack (`open(O_CREAT)`: `fs::create` down to `bmap`, eight nested
/// poll frames of 5-25 KiB each) and 51 KiB on the scheduler's (mounting: `Fs::mount` and
/// the log and orphan scans). 256 KiB leaves 2.2 times the deepest; it costs 192 KiB more
/// per process, in debug builds only.
#[cfg(not(debug_assertions))]
pub const STACK_SIZE: u64 = 64 * 1024;
#[cfg(debug_assertions)]
pub const STACK_SIZE: u64 = 256 * 1024;
/// Address space per stack: the stack and an unmapped guard region of the same size below it.
const SLOT_SIZE: u64 = 2 * STACK_SIZE;

struct Slots {
    next: u64,
    free: Vec<u64>,
}

static SLOTS: Mutex<Slots> = Mutex::new(Rank::KernelStacks, Slots { next: 0, free: Vec::new() });

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
