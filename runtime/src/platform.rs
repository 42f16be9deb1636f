//! The executor's view of the machine.
//!
//! This module owns the [`Platform`] trait, the only way the runtime touches hardware: the clock
//! and the interrupt flag. The kernel implements it (x86: TSC/PIT clock, `cli`, `sti`,
//! `sti; hlt`); host tests implement it with mocks. Keeping the hardware behind a trait is what
//! lets this crate have no dependency on the kernel.
//!
//! Invariant: every method is called from task context (the executor loop), never from an
//! interrupt handler.

/// Clock and interrupt control used by [`Executor::run`](crate::Executor::run).
pub trait Platform: Sync {
    /// Monotonic time in nanoseconds (the kernel's calibrated clock).
    fn now_ns(&self) -> u64;

    /// Mask interrupts on this CPU (x86: `cli`).
    fn disable_interrupts(&self);

    /// Unmask interrupts on this CPU (x86: `sti`).
    fn enable_interrupts(&self);

    /// Called with interrupts disabled when nothing is ready. Must re-enable interrupts and wait
    /// for the next one atomically (x86: `sti; hlt`, the sti shadow means an interrupt that is
    /// already pending is taken only after hlt starts, so no wakeup is lost). Returns with
    /// interrupts enabled.
    fn enable_interrupts_and_wait(&self);
}
