//! Small CPU primitives not covered by the `x86_64` crate, and this CPU's held-lock set for
//! the lock-order checker (`runtime::lockorder`, debug builds).

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
use runtime::lockorder::{self, HeldLocks};
use x86_64::instructions::interrupts;

/// The spin locks held on this CPU. One CPU today, so one set; with more, each CPU will find
/// its own through its per-CPU data (the GS base), as the scheduler's stack pointer will.
static HELD: HeldLocks = HeldLocks::new();

struct LockContext;

impl lockorder::Context for LockContext {
    fn held(&self) -> &HeldLocks {
        &HELD
    }

    fn interrupts_enabled(&self) -> bool {
        x86_64::instructions::interrupts::are_enabled()
    }
}

/// Interrupts turned off by interrupt-safe locks (`runtime::lockorder::IrqMutex`), nested:
/// how many are held, and whether interrupts were enabled before the first (xv6's `ncli` and
/// `intena`). One CPU today, so one of each; with more, per-CPU data as [`HELD`].
static NOFF: AtomicU32 = AtomicU32::new(0);
static INTENA: AtomicBool = AtomicBool::new(false);

struct IrqControl;

impl lockorder::Interrupts for IrqControl {
    fn push_off(&self) {
        let was = interrupts::are_enabled();
        interrupts::disable();
        if NOFF.fetch_add(1, Relaxed) == 0 {
            INTENA.store(was, Relaxed);
        }
    }

    fn pop_off(&self) {
        debug_assert!(!interrupts::are_enabled(), "pop_off with interrupts enabled");
        if NOFF.fetch_sub(1, Relaxed) == 1 && INTENA.load(Relaxed) {
            interrupts::enable();
        }
    }
}

/// Start checking the lock order (debug builds; nothing in release builds). Boot calls it
/// once the log is up, so that a violation can be reported.
pub fn check_lock_order() {
    lockorder::install(&LockContext);
}

/// Let interrupt handlers take interrupt-safe locks (`IrqMutex`), which from now on turn
/// interrupts off while held: the sleep design's handlers run a network stack, which
/// allocates and takes the NIC's rings. Boot, before those handlers run, holding no such lock.
/// (The event design never calls it: its handlers take none, and its locks mask nothing,
/// which under emulation saves a tenth of the CPU a bulk transfer takes.)
pub fn let_handlers_take_irq_safe_locks() {
    lockorder::install_interrupts(&IrqControl);
}

/// Cycle counter. Monotonic on the CPUs QEMU emulates.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Enable interrupts and halt until the next one, atomically: `sti` takes effect only after
/// the following instruction, so an interrupt pending at `sti` is taken once `hlt` has begun
/// and wakes it. This closes the window between "nothing to do" and halting.
pub fn enable_interrupts_and_halt() {
    // SAFETY: sti;hlt only changes the interrupt flag and waits.
    unsafe { core::arch::asm!("sti; hlt", options(nomem, nostack)) }
}

/// Switch to `stack_top` and call `f` there; never returns.
pub fn run_on_stack(stack_top: u64, f: extern "C" fn() -> !) -> ! {
    // SAFETY: the new stack is mapped and unused; `f` never returns, so nothing relies on the
    // old stack afterwards. rbp = 0 ends the frame-pointer chain for backtraces.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {f}",
            "ud2",
            top = in(reg) stack_top,
            f = in(reg) f,
            options(noreturn)
        )
    }
}
