//! CPU exception reports: vector, error code, RIP, CR2 and the chain of return addresses,
//! then stop QEMU with a failure status. Never a silent triple fault.
//!
//! Runs in whatever state the fault left: it only reads registers and memory it has checked
//! is mapped, and prints through the emergency path of `log`.

use super::trap::TrapFrame;
use crate::{kprintln_emergency, mm, power};
use x86_64::registers::control::Cr2;

const NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// Most return addresses printed; a stack overflow would otherwise print thousands.
const MAX_FRAMES: usize = 16;

pub fn report_and_stop(vector: u8, frame: &TrapFrame) -> ! {
    let cr2 = Cr2::read_raw();
    kprintln_emergency!(
        "EXCEPTION {} vector={} error={:#x} rip={:#x} cr2={:#x}",
        NAMES[vector as usize & 31],
        vector,
        frame.error,
        frame.rip,
        cr2
    );
    kprintln_emergency!(
        "  rsp={:#x} rbp={:#x} rflags={:#x} cs={:#x}",
        frame.rsp,
        frame.rbp,
        frame.rflags,
        frame.cs
    );
    print_backtrace(Some(frame.rip), frame.rbp);
    power::exit_failure(power::EXIT_CRASH)
}

/// Walk the frame-pointer chain (the kernel is built with frame pointers): at each `rbp`,
/// `[rbp]` is the caller's rbp and `[rbp + 8]` the return address.
pub fn print_backtrace(rip: Option<u64>, mut rbp: u64) {
    kprintln_emergency!("backtrace:");
    if let Some(rip) = rip {
        kprintln_emergency!("  {:#x}", rip);
    }
    for _ in 0..MAX_FRAMES {
        if rbp == 0
            || !rbp.is_multiple_of(8)
            || !mm::paging::is_mapped(rbp)
            || !mm::paging::is_mapped(rbp + 8)
        {
            break;
        }
        // SAFETY: both words were just checked to be mapped and aligned.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        kprintln_emergency!("  {:#x}", ret);
        rbp = next;
    }
}
