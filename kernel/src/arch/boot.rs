//! PVH entry: from 32-bit protected mode (paging off) to 64-bit Rust in the higher half.
//!
//! QEMU's `-kernel` finds the `XEN_ELFNOTE_PHYS32_ENTRY` note below and jumps to
//! `pvh_start32` with `%ebx` = physical address of the PVH `hvm_start_info`.
//! The stub builds throw-away page tables that map:
//! - the first 4 GiB identically (so the stub keeps running after paging is on),
//! - the same 4 GiB at `PHYS_OFFSET` (0xffff_8000_0000_0000, the direct map),
//! - the first 1 GiB at `KERNEL_VMA` (0xffff_ffff_8000_0000, where the kernel is linked),
//!
//! then enables long mode (with NX and write-protect) and calls `kernel_entry(start_info)`
//! on a boot stack in `.bss`. `mm::paging` replaces these tables with precise ones early.

core::arch::global_asm!(
    r#"
    .section .note.pvh, "a"
    .balign 4
    .long 4                     /* name size: "Xen\0" */
    .long 8                     /* desc size: QEMU reads a 64-bit entry for ELF64 */
    .long 18                    /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32

    .section .boot.bss, "aw", @nobits
    .balign 4096
boot_page_tables:               /* pml4, pdpt_low, pdpt_high, 4 x pd */
    .skip 7 * 4096

    .section .boot.data, "aw"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
boot_stack:
    .skip 64 * 1024
boot_stack_top:

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi              /* keep start_info in esi across the stub */

    /* zero the seven table pages */
    lea boot_page_tables, %edi
    mov $(7 * 1024), %ecx
    xor %eax, %eax
    rep stosl

    /* four page directories of 2 MiB pages: physical 0..4 GiB */
    lea (boot_page_tables + 3 * 4096), %edi
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax              /* present | writable | huge */
    mov %eax, (%edi, %ecx, 8)
    movl $0, 4(%edi, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    /* pdpt_low[0..4] -> the four directories */
    lea (boot_page_tables + 4096), %edi
    lea (boot_page_tables + 3 * 4096 + 3), %eax
    mov %eax, 0(%edi)
    add $4096, %eax
    mov %eax, 8(%edi)
    add $4096, %eax
    mov %eax, 16(%edi)
    add $4096, %eax
    mov %eax, 24(%edi)

    /* pdpt_high[510] -> first directory: KERNEL_VMA maps physical 0..1 GiB */
    lea (boot_page_tables + 2 * 4096), %edi
    lea (boot_page_tables + 3 * 4096 + 3), %eax
    mov %eax, (510 * 8)(%edi)

    /* pml4[0] identity, pml4[256] direct map, pml4[511] kernel */
    lea boot_page_tables, %edi
    lea (boot_page_tables + 4096 + 3), %eax
    mov %eax, 0(%edi)
    mov %eax, (256 * 8)(%edi)
    lea (boot_page_tables + 2 * 4096 + 3), %eax
    mov %eax, (511 * 8)(%edi)

    mov %cr4, %eax
    or $(1 << 5), %eax          /* PAE */
    mov %eax, %cr4
    lea boot_page_tables, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx       /* EFER */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax   /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax  /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov %esi, %edi              /* zero-extends: rdi = start_info physical address */
    movabs $boot_stack_top, %rsp
    xor %ebp, %ebp              /* end of the frame-pointer chain */
    movabs $kernel_entry, %rax
    call *%rax
3:  hlt
    jmp 3b
    "#,
    options(att_syntax)
);
