//! The trap path: one frame layout for every interrupt, exception (and later system call and
//! context switch), one common entry, one dispatcher.
//!
//! Entry stubs (in `idt`) push an error code (a zero where the CPU pushes none) and the vector
//! number, then jump to [`trap_common`], which saves the general registers so the stack holds a
//! complete [`TrapFrame`], and calls [`trap_dispatch`] with it. The dispatcher returns the frame
//! to resume: the same one, or later another thread's (that is how a context switch will work).
//!
//! Interrupt context: handlers run with interrupts disabled (interrupt gates) and must not
//! allocate or take locks that task code holds with interrupts enabled.

use super::{apic, idt};
use core::arch::naked_asm;

/// Saved state of an interrupted context. Field order = stack order (lowest address first).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    // Pushed by the CPU.
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Common tail of every entry stub.
#[unsafe(naked)]
pub extern "C" fn trap_common() {
    // SAFETY: entered only from the idt stubs with vector and error code pushed; restores every
    // register from the (possibly different) frame returned by trap_dispatch before iretq.
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "cld",
        "mov rdi, rsp",
        // 22 quadwords are on the stack and the CPU aligned rsp to 16 before pushing its frame,
        // so rsp is 16-byte aligned here as the ABI wants at the call.
        "call {dispatch}",
        "mov rsp, rax",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym trap_dispatch,
    );
}

/// Route one trap. Returns the frame to resume.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) -> &mut TrapFrame {
    match frame.vector as u8 {
        v @ 0..=31 => super::fault::report_and_stop(v, frame),
        idt::VECTOR_TIMER => {
            crate::time::on_tick();
            apic::eoi();
        }
        idt::VECTOR_KEYBOARD => {
            drivers::ps2::handle_irq();
            apic::eoi();
        }
        idt::VECTOR_COM1 => {
            drivers::serial::handle_irq();
            apic::eoi();
        }
        v @ idt::VECTOR_PCI_LINE_BASE..=idt::VECTOR_PCI_LINE_LAST => {
            // Level-triggered: each handler acknowledges its device (lowering the line)
            // before the EOI, or the interrupt would come straight back.
            crate::pci::dispatch_irq(v - idt::VECTOR_PCI_LINE_BASE);
            apic::eoi();
        }
        idt::VECTOR_SPURIOUS => {} // no EOI for spurious interrupts
        _ => {
            crate::time::count_unexpected_interrupt();
            apic::eoi();
        }
    }
    frame
}
