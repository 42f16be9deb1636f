//! Time: the cycle counter, and milliseconds since boot.

/// The CPU's time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads a register (user mode may: the kernel leaves CR4.TSD clear).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Milliseconds since boot.
pub fn uptime_ms() -> u64 {
    crate::sys::uptime()
}
