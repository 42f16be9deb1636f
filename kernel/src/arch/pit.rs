//! The 8254 PIT, used at boot as a reference clock: channel 2 counts down a fixed interval
//! while we count LAPIC timer ticks and TSC cycles against it (twice at least: see
//! `calibrate`). Its output is read on port 0x61, so no interrupt is involved. Channel 0
//! interrupts (ISA IRQ 0) only for the sampling profiler (`crate::prof`).

use x86_64::instructions::port::Port;

const PIT_HZ: u64 = 1_193_182;
const INTERVAL_TICKS: u16 = 5_966; // 5 ms

/// Busy-wait one PIT interval. Returns its length in nanoseconds.
pub fn wait_interval() -> u64 {
    let mut gate = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    // SAFETY: standard channel-2 programming: gate on, speaker off, mode 0 one-shot; port 0x61
    // bit 5 reports the channel's output, which goes high when the count reaches zero.
    unsafe {
        let g = gate.read() & !0x02;
        gate.write(g & !0x01);
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        ch2.write(INTERVAL_TICKS as u8);
        ch2.write((INTERVAL_TICKS >> 8) as u8);
        gate.write(g | 0x01); // rising gate edge starts the count
                              // Bounded: the count ends after 5 ms; the bound covers a missing PIT.
        for _ in 0..100_000_000u64 {
            if gate.read() & 0x20 != 0 {
                break;
            }
        }
    }
    INTERVAL_TICKS as u64 * 1_000_000_000 / PIT_HZ
}

/// Channel 0 as a rate generator at about `hz` (1..): ISA IRQ 0 that often.
pub fn start_periodic(hz: u32) {
    let divisor = (PIT_HZ / u64::from(hz.max(1))).clamp(2, 0xffff) as u16;
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch0 = Port::<u8>::new(0x40);
    // SAFETY: standard channel-0 programming (mode 2, rate generator); nothing else in the
    // kernel uses channel 0.
    unsafe {
        cmd.write(0b0011_0100); // channel 0, lobyte/hibyte, mode 2, binary
        ch0.write(divisor as u8);
        ch0.write((divisor >> 8) as u8);
    }
}
