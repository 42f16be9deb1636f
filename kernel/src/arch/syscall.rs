//! The `syscall` instruction's entry: switch to the process's kernel stack, build the same
//! `TrapFrame` an interrupt from user mode would (vector 256 marks a system call), dispatch,
//! and return with `sysretq` (or through `trap::trap_return`'s `iretq` when the frame does
//! not return to plain user code).
//!
//! `syscall` leaves the user stack pointer in place and masks interrupts (SFMASK), so the
//! entry saves `rsp` in a scratch word and loads the kernel stack top (one CPU, so statics
//! suffice where a multi-core kernel would use per-CPU data through `swapgs`).

use super::trap::{trap_return, TrapFrame};
use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::VirtAddr;

/// The vector number recorded in a system call's frame.
pub const SYSCALL_VECTOR: u64 = 256;
pub const USER_CS: u64 = 0x23;
pub const USER_SS: u64 = 0x1b;

static KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
static USER_RSP: AtomicU64 = AtomicU64::new(0);

pub fn set_kernel_stack(top: u64) {
    KERNEL_RSP.store(top, Ordering::Relaxed);
}

pub fn init() {
    let s = super::gdt::selectors();
    // SAFETY: enabling syscall/sysret with the GDT's selectors, and pointing LSTAR at `entry`.
    unsafe {
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        Star::write(s.user_code, s.user_data, s.kernel_code, s.kernel_data)
            .expect("GDT order does not suit syscall/sysret");
        LStar::write(VirtAddr::new(entry as *const () as u64));
    }
    SFMask::write(RFlags::INTERRUPT_FLAG | RFlags::DIRECTION_FLAG | RFlags::TRAP_FLAG);
}

#[unsafe(naked)]
extern "C" fn entry() {
    // SAFETY: entered by `syscall` from ring 3 with interrupts masked; builds a TrapFrame on
    // the kernel stack of the current process exactly as trap_common's layout.
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",
        "mov rsp, [rip + {kernel_rsp}]",
        "push {ss}",
        "push qword ptr [rip + {user_rsp}]",
        "push r11",
        "push {cs}",
        "push rcx",
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "cld",
        "mov rdi, rsp",
        "call {dispatch}",
        "mov rsp, rax",
        // Return with sysretq: restore every register, then rcx = rip and r11 = rflags (the
        // ABI lets syscall clobber both). sysretq to a non-canonical rip would fault in ring
        // 0, so anything but a plain user return (bit 47 set) takes the iretq path instead.
        "mov rcx, [rsp + {rip}]",
        "bt rcx, 47",
        "jc {ret}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "mov rcx, [rsp]",
        "mov r11, [rsp + 16]",
        "mov rsp, [rsp + 24]",
        "sysretq",
        user_rsp = sym USER_RSP,
        kernel_rsp = sym KERNEL_RSP,
        ss = const USER_SS,
        cs = const USER_CS,
        vector = const SYSCALL_VECTOR,
        dispatch = sym dispatch,
        ret = sym trap_return,
        rip = const RIP_OFFSET,
    );
}

/// Where `rip` sits in a `TrapFrame` (15 registers, vector, error code, then the CPU's part).
const RIP_OFFSET: usize = core::mem::offset_of!(TrapFrame, rip);

extern "C" fn dispatch(frame: &mut TrapFrame) -> &mut TrapFrame {
    crate::syscall::dispatch(frame);
    runtime::lockorder::assert_none_held("a return to user mode");
    frame
}
