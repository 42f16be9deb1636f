//! A small `no_std` async runtime for the kernel, with no dependency on the kernel itself.
//!
//! The kernel runs its work (the console, the network stack, the file system's background
//! work) as `async` tasks on one [`Executor`], a `static` that polls tasks when they are ready
//! and halts the CPU when none is. Hardware stays behind the [`Platform`] trait (clock, interrupt flag, `sti; hlt`), so the
//! whole crate is unit-tested on the host with threads standing in for interrupts.
//!
//! # From an interrupt to a poll
//!
//! 1. A task awaits, say, [`IrqQueue::pop`]. Finding the ring empty, the future registers the
//!    task's [`Waker`](core::task::Waker) in the queue's [`IrqWaker`], checks the ring once
//!    more, and returns `Pending`; the executor parks the task.
//! 2. The keyboard interrupt handler calls [`IrqQueue::push_from_irq`]: it stores the scancode
//!    and calls [`IrqWaker::wake`], which wakes the registered waker by reference (no clone,
//!    no drop, no allocation, no lock).
//! 3. The task's waker sets the task's `queued` flag and, if it was clear, pushes the task id
//!    onto the executor's lock-free ready queue.
//! 4. The `hlt` in [`Platform::enable_interrupts_and_wait`] returns after the handler, and
//!    [`Executor::run`] pops the id and polls the task, which now finds the scancode.
//!
//! Timers ([`Timers`], [`Sleep`]) are fired by the executor loop itself: the periodic timer
//! interrupt only has to end the `hlt`.
//!
//! # Modules
//!
//! - [`executor`]: tasks, the ready queue, join handles, the run loop.
//! - [`timer`]: sleeps and timeouts (task context only).
//! - [`irq`]: the interrupt-safe waker slot and SPSC ring.
//! - [`sync`]: an async [`Mutex`](sync::Mutex) (FIFO hand-off, cancel safe) and the
//!   [`WaitQueue`] event count for waiting on a condition (task context only).
//! - [`platform`]: the hardware trait.
//! - [`lockorder`]: the lock order of every spin lock in the kernel, checked in debug builds
//!   (`docs/locks.md`).

#![no_std]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod executor;
pub mod irq;
pub mod lockorder;
pub mod platform;
pub mod sync;
pub mod timer;

pub use executor::{
    yield_now, Executor, JoinError, JoinHandle, Stats, TaskId, DEFAULT_QUEUE_CAPACITY,
};
pub use irq::{IrqQueue, IrqStream, IrqWaker, Pop};
pub use platform::Platform;
pub use sync::{Mutex as AsyncMutex, MutexGuard, Ticket, WaitQueue};
pub use timer::{Elapsed, Sleep, Timers};
