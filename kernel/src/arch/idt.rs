//! The interrupt descriptor table: 256 gates, each pointing at a naked entry stub generated
//! below. Every stub pushes the same two words (error code, vector) so `trap::trap_common`
//! always sees one frame layout.

use super::gdt;
use super::trap::trap_common;
use core::arch::naked_asm;
use runtime::lockorder::{Mutex, Rank};
use seq_macro::seq;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

pub const VECTOR_DOUBLE_FAULT: u8 = 8;
pub const VECTOR_NMI: u8 = 2;
/// Device interrupts start at 32, above the CPU exceptions.
pub const VECTOR_TIMER: u8 = 32;
pub const VECTOR_KEYBOARD: u8 = 33;
pub const VECTOR_COM1: u8 = 36;
/// PCI interrupt lines (ISA IRQs 0..16 that PCI INTx pins are routed to, level-triggered and
/// possibly shared): line `n` arrives as vector `VECTOR_PCI_LINE_BASE + n`.
pub const VECTOR_PCI_LINE_BASE: u8 = 48;
pub const VECTOR_PCI_LINE_LAST: u8 = VECTOR_PCI_LINE_BASE + 15;
pub const VECTOR_SPURIOUS: u8 = 0xff;

/// The vector of PCI interrupt line `line` (0..16).
pub const fn pci_line_vector(line: u8) -> u8 {
    VECTOR_PCI_LINE_BASE + (line & 15)
}

/// Exceptions for which the CPU pushes an error code itself.
const fn has_error_code(v: u8) -> bool {
    matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17 | 21 | 29 | 30)
}

seq!(N in 0..256 {
    #[unsafe(naked)]
    extern "C" fn stub~N() {
        // SAFETY: an interrupt gate entry; pushes a uniform frame and jumps to the common path.
        naked_asm!(
            ".if {has_err} == 0",
            "push 0",
            ".endif",
            "push {vector}",
            "jmp {common}",
            has_err = const has_error_code(N) as u8,
            vector = const N,
            common = sym trap_common,
        );
    }
});

seq!(N in 0..256 {
    static STUBS: [extern "C" fn(); 256] = [ #( stub~N, )* ];
});

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt_gate(handler: u64, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: 0x08, // kernel code: the same in the boot GDT and in gdt::init's
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Mutex<Idt> = Mutex::new(Rank::Idt, Idt([Gate::MISSING; 256]));

fn load(idt: &Idt) {
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the table lives in a static and every present gate points at a valid stub.
    unsafe { lidt(&ptr) };
}

/// Install all 256 gates, without IST stacks (no TSS exists yet this early).
pub fn init() {
    let mut idt = IDT.lock();
    for (v, stub) in STUBS.iter().enumerate() {
        idt.0[v] = Gate::interrupt_gate(*stub as usize as u64, 0);
    }
    load(&idt);
}

/// Once the TSS is loaded: run double faults and NMIs on their own stacks.
pub fn use_ist_stacks() {
    let mut idt = IDT.lock();
    for (v, ist) in [(VECTOR_DOUBLE_FAULT, gdt::IST_DOUBLE_FAULT), (VECTOR_NMI, gdt::IST_NMI)] {
        idt.0[v as usize] = Gate::interrupt_gate(STUBS[v as usize] as usize as u64, ist);
    }
    load(&idt);
}
