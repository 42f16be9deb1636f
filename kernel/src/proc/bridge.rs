//! The bridge between system calls and futures: a system call that must wait builds a future
//! and blocks the calling process on it. This is where "blocking" happens in this kernel.
//!
//! ```text
//! loop {
//!     woken = false
//!     poll(future)        -> Ready: return
//!     sched::block()      -> sleeps only if woken is still false (checked after the sleep
//! }                          is announced, by compare-and-swap: a wake between the poll and
//!                            the sleep is never lost, on any number of CPUs; see `sched`)
//! ```
//!
//! The waker is the process's own (`Process::waker`): it sets `woken` and, if the process is
//! asleep, makes it runnable. It may fire from an interrupt handler (a disk completion).
//!
//! Three ways to wait, chosen by the system call:
//! - [`block_on`]: to completion, not interruptible (file-system transactions);
//! - [`block_on_interruptible`]: until done or the process is killed (`EINTR`): pipes, the
//!   console, sockets, sleep, wait;
//! - [`poll_once`]: not at all, for a non-blocking descriptor (`EAGAIN` instead of a wait).
//!
//! [`run`] picks between the last two for an operation on a descriptor.

use super::current;
use abi::syscall::Errno;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::Ordering::SeqCst;
use core::task::{Context, Poll, Waker};

/// Run `f` to completion, sleeping while it is pending. Not interruptible: for operations
/// that must finish (file-system transactions).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let p = current();
    let waker = p.waker();
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        p.run.clear_woken();
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
        p.run.clear_woken();
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return Ok(v);
        }
        if p.killed.load(SeqCst) {
            return Err(Errno::EINTR);
        }
        super::sched::block(&p);
    }
}

/// Poll `f` once with a no-op waker: its value, or `EAGAIN` (nothing is registered, so
/// dropping the future leaves no trace).
pub fn poll_once<F: Future>(f: F) -> Result<F::Output, Errno> {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(Errno::EAGAIN),
    }
}

/// Run an operation on a descriptor: polled once if `nonblock` (`EAGAIN` if it would wait),
/// else until done or the process is killed (`EINTR`).
pub fn run<T>(nonblock: bool, f: impl Future<Output = Result<T, Errno>>) -> Result<T, Errno> {
    if nonblock {
        poll_once(f)?
    } else {
        block_on_interruptible(f)?
    }
}
