//! What a program can do to the kernel without a system call: privileged instructions, the
//! kernel's interrupt vectors, jumps and stacks into the kernel's half or off the canonical
//! addresses, `syscall` with a hostile stack pointer or the trap flag set, `iretq` to ring 0.
//! Each must fault in user mode and end the process (a grandchild, see `batch`); the kernel
//! reports it and goes on. A trick that returns is reported as odd: an instruction that should
//! have faulted did not.

use core::arch::asm;

use ulib::abi::syscall::nr;

const NAMES: [&str; 24] = [
    "hlt",
    "cli",
    "in",
    "out",
    "int3",
    "int 0x20 (timer vector)",
    "int 0x80",
    "ud2",
    "read kernel text",
    "write own text",
    "mov cr3",
    "wrmsr LSTAR",
    "rdmsr",
    "syscall with the trap flag",
    "int1 (icebp)",
    "syscall with a kernel rsp",
    "syscall with a non-canonical rsp",
    "jump into the kernel",
    "jump to a non-canonical address",
    "execute the stack",
    "iretq to ring 0",
    "lgdt",
    "swapgs",
    "popf IOPL=3 then cli",
];

pub const TRICKS: usize = NAMES.len();

pub fn name(i: usize) -> &'static str {
    NAMES.get(i).copied().unwrap_or("?")
}

/// Do trick `i`. Returns only if the CPU let it through.
pub fn trick(i: usize) {
    let getpid = nr::GETPID;
    // SAFETY (every block below): each instruction is meant to fault in user mode, which ends
    // this process, a grandchild made for it; none writes memory the program uses (the one
    // write targets the read-only text, the stack and register tricks leave the process with
    // nothing to return to but a fault).
    match i {
        // SAFETY: see above.
        0 => unsafe { asm!("hlt") },
        // SAFETY: see above.
        1 => unsafe { asm!("cli") },
        // SAFETY: see above.
        2 => unsafe { asm!("in al, dx", in("dx") 0x60u16, out("al") _) },
        // SAFETY: see above.
        3 => unsafe { asm!("out dx, al", in("dx") 0x80u16, in("al") 0u8) },
        // SAFETY: see above.
        4 => unsafe { asm!("int3") },
        // SAFETY: see above.
        5 => unsafe { asm!("int 0x20") },
        // SAFETY: see above.
        6 => unsafe { asm!("int 0x80") },
        // SAFETY: see above.
        7 => unsafe { asm!("ud2") },
        8 => {
            // SAFETY: see above (a kernel address: the read faults).
            let v = unsafe { core::ptr::read_volatile(0xffff_ffff_8000_0000 as *const u64) };
            core::hint::black_box(v);
        }
        // SAFETY: see above (the text is mapped read-only: the write faults).
        9 => unsafe { core::ptr::write_volatile(trick as *const () as *mut u8, 0xc3) },
        // SAFETY: see above.
        10 => unsafe { asm!("mov cr3, {}", in(reg) 0u64) },
        // SAFETY: see above.
        11 => unsafe { asm!("wrmsr", in("ecx") 0xc000_0082u32, in("eax") 0u32, in("edx") 0u32) },
        // SAFETY: see above.
        12 => unsafe { asm!("rdmsr", in("ecx") 0xc000_0082u32, out("eax") _, out("edx") _) },
        // SAFETY: see above: the single-step trap after the call's return ends the process.
        13 => unsafe {
            asm!(
                "pushfq",
                "or qword ptr [rsp], 0x100",
                "popfq",
                "syscall",
                "nop",
                "nop",
                inlateout("rax") getpid => _,
                out("rcx") _,
                out("r11") _,
            )
        },
        // SAFETY: see above.
        14 => unsafe { asm!(".byte 0xf1") },
        // SAFETY: see above: with that stack nothing can follow but a fault.
        15 => unsafe {
            asm!(
                "mov rsp, {k}",
                "syscall",
                "ud2",
                k = in(reg) 0xffff_8000_0000_0000u64,
                in("rax") getpid,
                options(noreturn)
            )
        },
        // SAFETY: see above.
        16 => unsafe {
            asm!(
                "mov rsp, {k}",
                "syscall",
                "push rax",
                "ud2",
                k = in(reg) 0x8000_0000_0000_0000u64,
                in("rax") getpid,
                options(noreturn)
            )
        },
        // SAFETY: see above.
        17 => unsafe { asm!("jmp {}", in(reg) 0xffff_ffff_8000_0000u64, options(noreturn)) },
        // SAFETY: see above.
        18 => unsafe { asm!("jmp {}", in(reg) 0x8000_0000_0000u64, options(noreturn)) },
        19 => {
            // `ret`, on the (non-executable) stack.
            let code = [0xc3u8; 16];
            // SAFETY: see above: the stack is mapped without execute permission.
            unsafe { asm!("call {}", in(reg) code.as_ptr(), clobber_abi("C")) };
        }
        // SAFETY: see above: iretq may not raise the privilege level.
        20 => unsafe {
            asm!(
                "push 0x10",
                "push rsp",
                "pushfq",
                "push 0x08",
                "lea rax, [rip]",
                "push rax",
                "iretq",
                out("rax") _,
            )
        },
        21 => {
            let table = [0u64; 2];
            // SAFETY: see above.
            unsafe { asm!("lgdt [{}]", in(reg) table.as_ptr()) };
        }
        // SAFETY: see above.
        22 => unsafe { asm!("swapgs") },
        // SAFETY: see above: popf cannot raise IOPL in user mode, so the cli must fault.
        23 => unsafe { asm!("pushfq", "or qword ptr [rsp], 0x3000", "popfq", "cli") },
        _ => {}
    }
}
