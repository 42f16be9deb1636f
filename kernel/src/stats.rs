//! Event counters for the benchmarks: how often the kernel takes a device interrupt, switches
//! to a process, makes a blocked process runnable and polls a network stack. `/proc/stat`
//! shows them, a `name value` line each; `make bench-net` reads it before and after a run and
//! divides the growth by the requests served, which says where a design spends its time.
//!
//! Relaxed atomics: a counter is a statistic, not a synchronisation. Any context (interrupt
//! handlers count), any CPU; a count may be read a moment late, never lost.

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What is counted.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// A device or timer interrupt (not a fault, not a system call).
    Interrupts,
    /// The scheduler switched to a process.
    ContextSwitches,
    /// A blocked process was made runnable (by a waker, or by `wakeup` in the sleep design).
    Wakeups,
    /// A network stack was polled (smoltcp's ingress and egress, one call of `Stack::poll`).
    StackPolls,
}

const NAMES: [&str; 4] = ["interrupts", "context_switches", "wakeups", "stack_polls"];

static COUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// One more of `c`.
pub fn count(c: Counter) {
    COUNTS[c as usize].fetch_add(1, Relaxed);
}

/// The text of `/proc/stat`.
pub fn text() -> Vec<u8> {
    let mut out = Vec::new();
    for (name, n) in NAMES.iter().zip(&COUNTS) {
        out.extend_from_slice(format!("{name} {}\n", n.load(Relaxed)).as_bytes());
    }
    out
}
