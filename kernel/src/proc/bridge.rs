//! The bridge between system calls and futures: a system call that must wait builds a future
//! and blocks the calling process on it. This is where "blocking" happens in this kernel.
//!
//! ```text
//! loop {
//!     woken = false
//!     poll(future)        -> Ready: return
//!     sched::block()      -> sleeps only if woken is still false (checked with interrupts
//! }                          off, so a wake between the poll and the check is never lost)
//! ```
//!
//! The waker is the process's own (`Process::waker`): it sets `woken` and, if the process is
//! asleep, makes it runnable. It may fire from an interrupt handler (a disk completion).

use super::current;
use abi::syscall::Errno;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::Ordering::SeqCst;
use core::task::{Context, Poll};

/// Run `f` to completion, sleeping while it is pending. Not interruptible: for operations
/// that must finish (file-system transactions).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let p = current();
    let waker = p.waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        p.woken.store(false, SeqCst);
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        super::sched::block(&p);
    }
}

/// Like [`block_on`], but gives up with `EINTR` (dropping the future) once the process is
/// killed: for waits that may last forever (pipes, the console, sleep, wait).
pub fn block_on_interruptible<F: Future>(f: F) -> Result<F::Output, Errno> {
    let p = current();
    let waker = p.waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if p.killed.load(SeqCst) {
            return Err(Errno::EINTR);
        }
        p.woken.store(false, SeqCst);
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        if p.killed.load(SeqCst) {
            return Err(Errno::EINTR);
        }
        super::sched::block(&p);
    }
}
