//! Interrupt controllers: the legacy 8259 pair (remapped out of the exception range, then
//! fully masked), the local APIC (timer, EOI) and the I/O APIC (routes ISA IRQs to vectors).
//!
//! Register access is MMIO through uncached direct-map mappings made by `mm::paging::map_mmio`
//! in [`init`], at boot, before any interrupt is enabled. Their addresses are read from
//! interrupt context (every EOI): they live in `noblock` cells, which are set once and never
//! wait, and a use before `init` is a clear panic rather than MMIO at address 0.

use super::calibrate;
use crate::acpi::Madt;
use crate::mm::paging;
use conquer_once::noblock::OnceCell;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

const IA32_APIC_BASE: u32 = 0x1b;
const LAPIC_EOI: u64 = 0xb0;
const LAPIC_SVR: u64 = 0xf0;
const LAPIC_TPR: u64 = 0x80;
const LAPIC_LVT_TIMER: u64 = 0x320;
const LAPIC_TIMER_INIT: u64 = 0x380;
const LAPIC_TIMER_CURRENT: u64 = 0x390;
const LAPIC_TIMER_DIVIDE: u64 = 0x3e0;
const TIMER_MASKED: u32 = 1 << 16;
const DIVIDE_BY_16: u32 = 0b0011;

static LAPIC: OnceCell<u64> = OnceCell::uninit();
static IOAPIC: OnceCell<u64> = OnceCell::uninit();

/// The mapped base of `cell`, set by [`init`].
fn base(cell: &OnceCell<u64>) -> u64 {
    *cell.try_get().expect("APIC used before apic::init")
}

fn lapic_write(reg: u64, v: u32) {
    let base = base(&LAPIC);
    // SAFETY: base maps the local APIC page (set in init); reg is a register offset within it.
    unsafe { ((base + reg) as *mut u32).write_volatile(v) }
}

fn lapic_read(reg: u64) -> u32 {
    let base = base(&LAPIC);
    // SAFETY: as in lapic_write.
    unsafe { ((base + reg) as *const u32).read_volatile() }
}

fn ioapic_write(reg: u32, v: u32) {
    let base = base(&IOAPIC);
    // SAFETY: base maps the I/O APIC window: IOREGSEL at +0, IOWIN at +0x10.
    unsafe {
        (base as *mut u32).write_volatile(reg);
        ((base + 0x10) as *mut u32).write_volatile(v);
    }
}

fn disable_8259() {
    // Remap to 0x20/0x28 first so a stray legacy interrupt cannot look like an exception.
    let cmds: [(u16, u8); 10] = [
        (0x20, 0x11),
        (0xa0, 0x11),
        (0x21, 0x20),
        (0xa1, 0x28),
        (0x21, 4),
        (0xa1, 2),
        (0x21, 1),
        (0xa1, 1),
        (0x21, 0xff),
        (0xa1, 0xff),
    ];
    for (port, v) in cmds {
        // SAFETY: the standard 8259 initialisation sequence, ending with all lines masked.
        unsafe { Port::<u8>::new(port).write(v) };
    }
}

pub fn init(madt: &Madt) {
    disable_8259();
    // SAFETY: reading the APIC base MSR has no side effects.
    let base = unsafe { Msr::new(IA32_APIC_BASE).read() } & 0xffff_f000;
    let mapped = LAPIC
        .try_init_once(|| paging::map_mmio(base, 4096))
        .and_then(|()| IOAPIC.try_init_once(|| paging::map_mmio(madt.ioapic_addr, 4096)));
    mapped.expect("apic::init runs once");
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100 | super::idt::VECTOR_SPURIOUS as u32); // enable
}

/// Route ISA `irq` to `vector` on this CPU (edge/high unless the MADT overrides it).
pub fn route_isa_irq(madt: &Madt, irq: u8, vector: u8) {
    route(madt, irq, vector as u32);
}

/// Route ISA `irq` to this CPU as a non-maskable interrupt (vector 2, delivered even while
/// interrupts are disabled; no EOI): the sampling profiler's, which must see inside the
/// kernel's interrupt-safe locks. The line must be edge-triggered.
pub fn route_isa_irq_as_nmi(madt: &Madt, irq: u8) {
    const DELIVERY_NMI: u32 = 0b100 << 8;
    route(madt, irq, DELIVERY_NMI);
}

/// Program `irq`'s redirection entry with `low` (vector and delivery mode) and the MADT's
/// polarity and trigger mode.
fn route(madt: &Madt, irq: u8, mut low: u32) {
    let (gsi, flags) = madt.isa_irq(irq);
    if flags.active_low {
        low |= 1 << 13;
    }
    if flags.level {
        low |= 1 << 15;
    }
    let reg = 0x10 + 2 * (gsi - madt.ioapic_gsi_base);
    ioapic_write(reg + 1, 0); // destination: APIC id 0 (the boot CPU)
    ioapic_write(reg, low);
}

pub fn eoi() {
    lapic_write(LAPIC_EOI, 0);
}

/// The LAPIC timer's and the TSC's rates, measured against the PIT.
pub struct Calibration {
    pub lapic_hz: u64,
    pub tsc_hz: u64,
}

/// Count LAPIC timer ticks (divide by 16) over PIT-timed intervals, with the TSC measured
/// over the same intervals, until two samples agree (`calibrate` says why one is not enough),
/// and leave the timer in one-shot mode on `vector`, stopped.
pub fn calibrate_timer(vector: u8) -> Calibration {
    lapic_write(LAPIC_TIMER_DIVIDE, DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, TIMER_MASKED);
    let mut ns;
    let mut tsc = [0u64; calibrate::MAX_SAMPLES];
    let mut ticks = [0u64; calibrate::MAX_SAMPLES];
    let mut taken = 0;
    let chosen = loop {
        lapic_write(LAPIC_TIMER_INIT, u32::MAX);
        let tsc0 = super::cpu::rdtsc();
        ns = super::pit::wait_interval();
        ticks[taken] = (u32::MAX - lapic_read(LAPIC_TIMER_CURRENT)) as u64;
        tsc[taken] = super::cpu::rdtsc() - tsc0;
        taken += 1;
        if let Some(i) = calibrate::settled(&tsc[..taken]) {
            break i;
        }
        if taken == calibrate::MAX_SAMPLES {
            break calibrate::smallest(&tsc);
        }
    };
    let per_sec = |n: u64| (n as u128 * 1_000_000_000 / ns.max(1) as u128) as u64;
    lapic_write(LAPIC_TIMER_INIT, 0); // stopped
    lapic_write(LAPIC_LVT_TIMER, vector as u32); // one-shot
    Calibration { lapic_hz: per_sec(ticks[chosen]), tsc_hz: per_sec(tsc[chosen]) }
}

/// Interrupt once after `ticks` timer ticks (0 stops the timer). Replaces any earlier arming.
pub fn timer_oneshot(ticks: u32) {
    lapic_write(LAPIC_TIMER_INIT, ticks);
}
