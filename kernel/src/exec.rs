//! The kernel's one executor (from `runtime/`) and the hooks it needs from this machine:
//! the clock and the interrupt-safe idle (`sti; hlt`).
//!
//! Everything cooperative in the kernel is a task here: the console, the self test, and (in
//! later issues) the network stack. `spawn` is for task context only; interrupt handlers wake
//! tasks through `runtime::irq` instead.

use crate::arch::cpu;
use core::future::Future;
use runtime::executor::{Executor, JoinHandle};
use runtime::timer::{Elapsed, Sleep};
use runtime::Platform;

pub static EXECUTOR: Executor = Executor::new();

pub struct Machine;

impl Platform for Machine {
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }
    fn disable_interrupts(&self) {
        x86_64::instructions::interrupts::disable();
    }
    fn enable_interrupts(&self) {
        x86_64::instructions::interrupts::enable();
    }
    fn enable_interrupts_and_wait(&self) {
        cpu::enable_interrupts_and_halt();
    }
}

pub static MACHINE: Machine = Machine;

pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    EXECUTOR.spawn(f)
}

/// Run the executor forever; the CPU halts whenever no task is ready.
pub fn run() -> ! {
    EXECUTOR.timers().set_clock(crate::time::now_ns);
    EXECUTOR.run(&MACHINE)
}

const NS_PER_MS: u64 = 1_000_000;

/// Completes `ms` milliseconds from now (at the first tick after that).
pub fn sleep_ms(ms: u64) -> Sleep<'static> {
    EXECUTOR.timers().sleep(ms * NS_PER_MS)
}

/// `fut`'s output, or `Elapsed` if `ms` milliseconds pass first (then `fut` is dropped).
pub async fn timeout_ms<F: Future>(ms: u64, fut: F) -> Result<F::Output, Elapsed> {
    EXECUTOR.timers().timeout_after(ms * NS_PER_MS, fut).await
}
