//! A sampling profiler. With `prof=HZ` on the kernel command line, the PIT's channel 0
//! interrupts HZ times a second (its own line, apart from the tickless LAPIC timer) and each
//! interrupt notes where the CPU was: the interrupted instruction's address, kernel or user.
//! The interrupt is delivered as an NMI, so it lands inside the kernel's interrupts-off
//! sections too (the NIC rings, the heap: `IrqMutex`); an ordinary interrupt would wait for
//! their end and blame the instruction that enables interrupts again. The NMI handler only
//! counts (`sample`: atomics, no lock, nothing else) and returns: it may interrupt anything. `/proc/prof` lists `address count` lines, most frequent first; `make profile`
//! boots the kernel so, puts httpd under load and names the addresses from the ELF files.
//!
//! Under emulation this is the profiler that works: QEMU's own (gdb stops, host `perf`) either
//! perturbs the guest or sees only translated code. The idle loop's address is idle time.
//! While profiling, any other NMI would be counted as a sample too (QEMU raises none). Under
//! TCG an interrupt is taken between translated blocks, so a sample names the start of the
//! next block: right to the function, not to the instruction. Sampling costs the guest about
//! a tenth of its speed at 4 kHz (each sample is a trip through the trap path).
//!
//! The table is fixed (no allocation in the interrupt handler): open addressing over
//! [`SLOTS`] slots, a slot claimed by compare-and-swap of its address, then counted with an
//! atomic add, so any CPU may sample at once. A sample that finds the table full is counted
//! in `lost`. Reading (task context) takes a snapshot; samples keep landing meanwhile.

use alloc::format;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Distinct addresses kept.
pub const SLOTS: usize = 8192;
/// Lines `/proc/prof` gives at most (the most frequent).
pub const TOP: usize = 1000;
/// Highest sampling rate taken (the PIT divides 1.19 MHz; a much faster rate would be the
/// whole of the load).
pub const MAX_HZ: u32 = 10_000;

static ADDR: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static COUNT: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static LOST: AtomicU64 = AtomicU64::new(0);
/// The rate, 0 while off.
static HZ: AtomicU32 = AtomicU32::new(0);

/// Start sampling at `hz` (clamped to 1..=[`MAX_HZ`]) on `madt`'s routing. Boot, once.
pub fn start(madt: &crate::acpi::Madt, hz: u32) {
    let hz = hz.clamp(1, MAX_HZ);
    HZ.store(hz, Relaxed); // before the first NMI: the trap path asks `on`
    crate::arch::pit::start_periodic(hz);
    crate::arch::apic::route_isa_irq_as_nmi(madt, 0);
    crate::kprintln!("prof: sampling at {hz} Hz (/proc/prof)");
}

/// Is the profiler sampling (an NMI is then its sample)?
pub fn on() -> bool {
    HZ.load(Relaxed) != 0
}

/// NMI context: one sample at `rip`.
pub fn sample(rip: u64) {
    let key = rip.max(1); // 0 marks a free slot
    let mut i = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 51) as usize % SLOTS;
    for _ in 0..SLOTS {
        match ADDR[i].compare_exchange(0, key, Relaxed, Relaxed) {
            Err(k) if k != key => i = (i + 1) % SLOTS,
            _ => {
                COUNT[i].fetch_add(1, Relaxed);
                return;
            }
        }
    }
    LOST.fetch_add(1, Relaxed);
}

/// The text of `/proc/prof`: a header (`hz`, `samples`, `lost`), then `address count` lines
/// in hex and decimal, most frequent first, at most [`TOP`].
pub fn text() -> Vec<u8> {
    let mut seen: Vec<(u64, u64)> = ADDR
        .iter()
        .zip(&COUNT)
        .map(|(a, c)| (a.load(Relaxed), c.load(Relaxed)))
        .filter(|&(a, c)| a != 0 && c != 0)
        .collect();
    let samples: u64 = seen.iter().map(|&(_, c)| c).sum();
    seen.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut out =
        format!("hz {}\nsamples {samples}\nlost {}\n", HZ.load(Relaxed), LOST.load(Relaxed))
            .into_bytes();
    for (a, c) in seen.into_iter().take(TOP) {
        out.extend_from_slice(format!("{a:#x} {c}\n").as_bytes());
    }
    out
}
