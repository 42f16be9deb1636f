//! Time: a monotonic nanosecond clock from the TSC (calibrated against the PIT at boot) and a
//! periodic local-APIC tick that wakes the CPU so the executor can expire its timers.
//!
//! Interrupt context: `on_tick` only bumps a counter; timers are expired by the executor
//! loop after the interrupt has woken it from `hlt`.

use crate::arch::{apic, cpu, idt};
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

static TSC_AT_ENTRY: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static UNEXPECTED_INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// Called first thing at kernel entry: the clock's zero.
pub fn mark_entry() {
    TSC_AT_ENTRY.store(cpu::rdtsc(), Relaxed);
}

/// Calibrate and start the periodic tick at `hz`. Interrupts must still be disabled.
pub fn init(hz: u32) -> apic::Calibration {
    let cal = apic::start_timer(hz, idt::VECTOR_TIMER);
    TSC_HZ.store(cal.tsc_hz.max(1), Relaxed);
    cal
}

/// Nanoseconds since kernel entry (0 until `init`).
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Relaxed);
    if hz == 0 {
        return 0;
    }
    let cycles = cpu::rdtsc().saturating_sub(TSC_AT_ENTRY.load(Relaxed));
    (cycles as u128 * 1_000_000_000 / hz as u128) as u64
}

pub fn on_tick() {
    TICKS.fetch_add(1, Relaxed);
}

pub fn ticks() -> u64 {
    TICKS.load(Relaxed)
}

pub fn count_unexpected_interrupt() {
    UNEXPECTED_INTERRUPTS.fetch_add(1, Relaxed);
}
