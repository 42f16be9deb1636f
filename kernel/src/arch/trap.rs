//! The trap path: one frame layout for every interrupt, exception and system call (the
//! `syscall` entry, `arch::syscall`, builds the same frame), one common entry, one dispatcher.
//!
//! Entry stubs (in `idt`) push an error code (a zero where the CPU pushes none) and the vector
//! number, then jump to [`trap_common`], which saves the general registers so the stack holds a
//! complete [`TrapFrame`], and calls [`trap_dispatch`] with it. The dispatcher returns the frame
//! to resume, always the one it was given: a switch to another process happens inside it, by
//! `swtch` between kernel stacks (`proc::sched`), and returns here when this one runs again.
//!
//! Interrupt context: handlers run with interrupts disabled (interrupt gates), allocate nothing
//! and take interrupt-safe locks only (the log's: `docs/locks.md`, checked in debug builds).

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
        "jmp {ret}",
        dispatch = sym trap_dispatch,
        ret = sym trap_return,
    );
}

/// Resume the context whose `TrapFrame` is at `rsp`: the common exit of interrupts, system
/// calls, and a new process's first switch.
#[unsafe(naked)]
pub extern "C" fn trap_return() {
    // SAFETY: rsp points at a complete TrapFrame (built by trap_common, the syscall entry, or
    // prepare_kernel_stack).
    naked_asm!(
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rbp",
        "pop rdi",
        "pop rsi",
        "pop rdx",
        "pop rcx",
        "pop rbx",
        "pop rax",
        "add rsp, 16",
        "iretq",
    );
}

/// Lay out a new kernel stack so that the scheduler's first `swtch` to it "returns" into
/// `trap_return` with `frame` (copied to the top of the stack). Returns the saved stack pointer.
pub fn prepare_kernel_stack(top: u64, frame: &TrapFrame) -> u64 {
    let frame_at = top - core::mem::size_of::<TrapFrame>() as u64;
    // Six callee-saved registers popped by swtch, then its return address.
    let sp = frame_at - 7 * 8;
    // SAFETY: `top` is the top of a freshly mapped kernel stack that nothing runs on yet.
    unsafe {
        (frame_at as *mut TrapFrame).write(*frame);
        core::ptr::write_bytes(sp as *mut u64, 0, 6);
        ((sp + 6 * 8) as *mut u64).write(trap_return as *const () as u64);
    }
    sp
}

/// Did the trap interrupt user mode?
pub fn from_user(frame: &TrapFrame) -> bool {
    frame.cs & 3 == 3
}

/// Route one trap. Returns the frame to resume.
extern "C" fn trap_dispatch(frame: &mut TrapFrame) -> &mut TrapFrame {
    if frame.vector == u64::from(idt::VECTOR_NMI) && crate::prof::on() {
        // The profiler's sample (`crate::prof`): it may have interrupted anything, even this
        // path with interrupts off, so it counts and returns at once, touching nothing else
        // (no lock bookkeeping, no EOI: an NMI has none, no switch: it runs on its own stack).
        crate::prof::sample(frame.rip);
        return frame;
    }
    // A trap from kernel mode is an interrupt handler nested in the kernel code it interrupted:
    // it is checked against a held-lock set of its own (`runtime::lockorder`, "Interrupts").
    // A trap from user mode interrupts no kernel code: it is the process's own kernel entry,
    // which holds nothing yet (and may switch to another process, as a system call may).
    let _irq = (!from_user(frame)).then(runtime::lockorder::enter_interrupt);
    if frame.vector >= 32 {
        crate::stats::count(crate::stats::Counter::Interrupts);
    }
    match frame.vector as u8 {
        v @ 0..=31 if from_user(frame) => crate::proc::user_fault(v, frame),
        v @ 0..=31 => super::fault::report_and_stop(v, frame),
        idt::VECTOR_TIMER => {
            crate::time::on_tick();
            apic::eoi();
            crate::proc::sched::on_timer(from_user(frame)); // tickless: see time.rs
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
    if from_user(frame) {
        runtime::lockorder::assert_none_held("a return to user mode");
        crate::proc::exit_if_killed();
    }
    frame
}
