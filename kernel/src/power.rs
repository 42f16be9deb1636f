//! Leaving the machine: ACPI power-off (QEMU exits with status 0) and, for failures, QEMU's
//! isa-debug-exit device (status `(code << 1) | 1`; docs/01-foundation.md, "What the host
//! relies on").

use crate::acpi::Acpi;
use spin::Once;
use x86_64::instructions::port::Port;

pub const EXIT_CRASH: u32 = 1;
pub const EXIT_SELFTEST_FAILED: u32 = 2;
const DEBUG_EXIT_PORT: u16 = 0xf4;
const SLP_EN: u16 = 1 << 13;

static ACPI: Once<Acpi> = Once::new();

pub fn init(acpi: Acpi) {
    ACPI.call_once(|| acpi);
}

fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// ACPI soft-off (S5). If the machine has no usable ACPI, says so and halts.
pub fn poweroff() -> ! {
    match ACPI.get().and_then(|a| a.pm1a_control.map(|p| (p, a.s5_sleep_type))) {
        Some((port, slp_typ)) => {
            // SAFETY: writing SLP_TYP|SLP_EN to PM1a_CNT is the ACPI-defined S5 request.
            unsafe { Port::<u16>::new(port).write((slp_typ << 10) | SLP_EN) };
        }
        None => crate::kprintln!("poweroff: no ACPI PM1a control port; halting"),
    }
    halt_forever()
}

/// Stop QEMU with a failure status (needs `-device isa-debug-exit,iobase=0xf4`).
pub fn exit_failure(code: u32) -> ! {
    // SAFETY: port 0xf4 is QEMU's debug-exit device; on real hardware the write is ignored.
    unsafe { Port::<u32>::new(DEBUG_EXIT_PORT).write(code) };
    halt_forever()
}
