//! GDT and TSS. Segment order is fixed by `syscall`/`sysret` (`arch::syscall`): kernel code,
//! kernel data, user data, user code, then the TSS.
//!
//! The TSS carries the interrupt stacks (IST) for double faults and NMIs, so that a kernel
//! stack overflow (which faults again when the CPU pushes the exception frame) still lands on
//! a good stack and gets reported instead of triple-faulting.

use core::cell::UnsafeCell;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;

pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub user_data: SegmentSelector,
    pub user_code: SegmentSelector,
    pub tss: SegmentSelector,
}

/// The TSS is written after loading: `rsp0` changes at every process switch.
struct Tss(UnsafeCell<TaskStateSegment>);
// SAFETY: one CPU; written only by `init` and `set_kernel_stack` with interrupts disabled.
unsafe impl Sync for Tss {}

static TSS: Tss = Tss(UnsafeCell::new(TaskStateSegment::new()));
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// The stack the CPU switches to when an interrupt or exception arrives from user mode: the
/// running process's kernel stack. Call with interrupts disabled.
pub fn set_kernel_stack(top: u64) {
    // SAFETY: see `Tss`; the CPU reads rsp0 only when entering the kernel from ring 3.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}

/// Load the GDT and TSS. `ist_tops` are the tops of the double-fault and NMI stacks.
pub fn init(double_fault_stack_top: VirtAddr, nmi_stack_top: VirtAddr) {
    // SAFETY: before the TSS is loaded nobody else reads or writes it.
    let tss: &'static TaskStateSegment = unsafe {
        let t = &mut *TSS.0.get();
        t.interrupt_stack_table[(IST_DOUBLE_FAULT - 1) as usize] = double_fault_stack_top;
        t.interrupt_stack_table[(IST_NMI - 1) as usize] = nmi_stack_top;
        &*TSS.0.get()
    };
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        let sel = Selectors { kernel_code, kernel_data, user_data, user_code, tss };
        (gdt, sel)
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives forever.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
}

pub fn selectors() -> &'static Selectors {
    &GDT.get().expect("gdt::init not called").1
}
