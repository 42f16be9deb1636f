//! Small CPU primitives not covered by the `x86_64` crate.

/// Cycle counter. Monotonic on the CPUs QEMU emulates.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enable interrupts and halt until the next one, atomically: `sti` takes effect only after
/// the following instruction, so an interrupt pending at `sti` is taken once `hlt` has begun
/// and wakes it. This closes the window between "nothing to do" and halting.
pub fn enable_interrupts_and_halt() {
    // SAFETY: sti;hlt only changes the interrupt flag and waits.
    unsafe { core::arch::asm!("sti; hlt", options(nomem, nostack)) }
}

/// Switch to `stack_top` and call `f` there; never returns.
pub fn run_on_stack(stack_top: u64, f: extern "C" fn() -> !) -> ! {
    // SAFETY: the new stack is mapped and unused; `f` never returns, so nothing relies on the
    // old stack afterwards. rbp = 0 ends the frame-pointer chain for backtraces.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) stack_top,
            f = in(reg) f,
            options(noreturn)
        )
    }
}
