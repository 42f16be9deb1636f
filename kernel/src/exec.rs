//! The kernel's one executor (from `runtime/`). The scheduler (`proc::sched::run`) polls it
//! between processes and halts the CPU only when neither it nor any process is ready.
//!
//! Everything cooperative in the kernel is a task here: the console's input, the network
//! stack, the boot-time work of the chosen mode (starting `/bin/init`, the kernel console, the
//! self and file-system tests), and the freeing of inodes whose last handle was dropped
//! outside a system call. `spawn` is for task context only; interrupt handlers wake tasks
//! through `runtime::irq` instead.

use core::future::Future;
use runtime::executor::{Executor, JoinHandle};
use runtime::timer::{Elapsed, Sleep};

pub static EXECUTOR: Executor = Executor::new();

pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    EXECUTOR.spawn(f)
}

const NS_PER_MS: u64 = 1_000_000;

/// `ms` in nanoseconds, saturating: `ms` often comes from a user (`sleep`, `poll`), and a
/// wrapped product would turn "for ever" into a short wait (and panic a debug kernel). The
/// timers saturate `now + duration` too, so `u64::MAX` is a deadline never reached.
fn ms_to_ns(ms: u64) -> u64 {
    ms.saturating_mul(NS_PER_MS)
}

/// Completes `ms` milliseconds from now (at the first tick after that).
pub fn sleep_ms(ms: u64) -> Sleep<'static> {
    EXECUTOR.timers().sleep(ms_to_ns(ms))
}

/// `fut`'s output, or `Elapsed` if `ms` milliseconds pass first (then `fut` is dropped).
pub async fn timeout_ms<F: Future>(ms: u64, fut: F) -> Result<F::Output, Elapsed> {
    EXECUTOR.timers().timeout_after(ms_to_ns(ms), fut).await
}
