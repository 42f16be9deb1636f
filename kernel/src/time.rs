//! Time: a monotonic nanosecond clock from the TSC (calibrated against the PIT at boot), and
//! the local-APIC timer in one-shot mode. The timer is tickless: the scheduler arms it for
//! the executor's next timer deadline before halting, and for the end of the time slice
//! (`hz=` on the command line; 100 per second by default) when it runs a process. An idle
//! machine with no timer pending takes no interrupt at all.
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

static LAPIC_HZ: AtomicU64 = AtomicU64::new(0);
static SLICE_NS: AtomicU64 = AtomicU64::new(10_000_000);

/// Calibrate the clock and the timer; `hz` sets the time slice. Interrupts must be disabled.
pub fn init(hz: u32) -> apic::Calibration {
    let cal = apic::calibrate_timer(idt::VECTOR_TIMER);
    TSC_HZ.store(cal.tsc_hz.max(1), Relaxed);
    LAPIC_HZ.store(cal.lapic_hz.max(1), Relaxed);
    SLICE_NS.store(1_000_000_000 / hz.max(1) as u64, Relaxed);
    cal
}

/// A time slice from now, for the process about to run.
pub fn slice_end() -> u64 {
    now_ns().saturating_add(SLICE_NS.load(Relaxed))
}

/// Interrupt at `deadline_ns` (on the clock of [`now_ns`]), or never (`None`). A deadline
/// already past fires at once; one beyond the counter's range fires at its limit (the
/// scheduler simply re-arms).
pub fn arm(deadline_ns: Option<u64>) {
    let Some(deadline) = deadline_ns else {
        apic::timer_oneshot(0);
        return;
    };
    let delta = deadline.saturating_sub(now_ns());
    let ticks = delta as u128 * LAPIC_HZ.load(Relaxed) as u128 / 1_000_000_000;
    apic::timer_oneshot(ticks.clamp(1, u32::MAX as u128) as u32);
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
