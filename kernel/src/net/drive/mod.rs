//! How a network stack is driven: the one place where the kernel's two network designs
//! differ (docs/06-async-vs-sleep.md). [`Drive`] is what a stack needs from its driver; it
//! has two implementations, side by side:
//!
//! - [`event::Event`] (the default, `net=event`): each stack has an executor task that polls
//!   it when a waker fires (the E1000's interrupt, a kick, a bridge frame, a timer); a system
//!   call waits on a socket's wait queue, whose notifier smoltcp wakes;
//! - [`sleep::Sleep`] (`net=sleep` on the command line): the E1000's interrupt handler polls
//!   the root stack itself, the timer interrupt polls it when its deadline has passed, the
//!   scheduler loop polls its loopback frames, a system call that changed a socket polls it
//!   at once; a system call that must wait does xv6's `sleep(chan, lock)` on the stack's
//!   channel (`proc::sleep`), and every poll ends with `wakeup(chan)`. No task, no `Waker`.
//!
//! The design is chosen once at boot ([`set`], before any stack exists) and never changes:
//! every function here reads it with one relaxed load and calls the chosen implementation.
//! Under `net=sleep` only the root's stack exists (`spawn` with a network namespace is
//! `EINVAL`: a container's stack is only driven the event way).

pub mod event;
pub mod sleep;

use super::stack::{NetStack, Stack};
use abi::syscall::Errno;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
use runtime::lockorder::{IrqMutex, IrqMutexGuard, Mutex, MutexGuard};
use runtime::sync::WaitQueue;

/// The two designs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// Executor tasks and wakers (chapter 4).
    Event,
    /// Interrupt-driven polls, `sleep`/`wakeup` (chapter 6).
    Sleep,
}

static DESIGN: AtomicU8 = AtomicU8::new(0);

/// Choose the design (at boot, before the first stack is made). The sleep design's interrupt
/// handlers take interrupt-safe locks, which from now on mask interrupts.
pub fn set(d: Design) {
    DESIGN.store(d as u8, Relaxed);
    if d == Design::Sleep {
        crate::arch::cpu::let_handlers_take_irq_safe_locks();
    }
}

/// The design chosen at boot.
pub fn design() -> Design {
    match DESIGN.load(Relaxed) {
        0 => Design::Event,
        _ => Design::Sleep,
    }
}

/// How long a waiting operation may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// Not at all: `EAGAIN` instead (a non-blocking descriptor).
    NoWait,
    /// Until done, or the process is killed (`EINTR`).
    Block,
    /// As `Block`, but at most this many milliseconds (then `Ok(None)`).
    Within(u64),
}

impl How {
    /// `NoWait` for a non-blocking descriptor, else `Block`.
    pub fn of(nonblock: bool) -> How {
        if nonblock {
            How::NoWait
        } else {
            How::Block
        }
    }
}

/// A stack's lock, of the design's kind: a plain spin lock (rank `Stack`) when only tasks and
/// system calls take it, an interrupt-safe one (rank `StackIrq`) when interrupt handlers poll
/// the stack.
pub enum StackLock {
    Event(Mutex<Option<Stack>>),
    Sleep(IrqMutex<Option<Stack>>),
}

/// A held [`StackLock`].
pub enum StackGuard<'a> {
    Event(MutexGuard<'a, Option<Stack>>),
    Sleep(IrqMutexGuard<'a, Option<Stack>>),
}

impl StackLock {
    pub fn lock(&self) -> StackGuard<'_> {
        match self {
            StackLock::Event(m) => StackGuard::Event(m.lock()),
            StackLock::Sleep(m) => StackGuard::Sleep(m.lock()),
        }
    }
}

impl core::ops::Deref for StackGuard<'_> {
    type Target = Option<Stack>;
    fn deref(&self) -> &Option<Stack> {
        match self {
            StackGuard::Event(g) => g,
            StackGuard::Sleep(g) => g,
        }
    }
}

impl core::ops::DerefMut for StackGuard<'_> {
    fn deref_mut(&mut self) -> &mut Option<Stack> {
        match self {
            StackGuard::Event(g) => g,
            StackGuard::Sleep(g) => g,
        }
    }
}

/// What a stack needs from its driver (module docs). `Event` and `Sleep` implement it.
pub trait Drive {
    /// The stack's lock.
    fn lock(stack: Stack) -> StackLock;
    /// The stack was made: start driving it.
    fn start(net: &Arc<NetStack>);
    /// A system call changed a socket (data queued, a connection started or closed): the
    /// stack must poll soon.
    fn kick(net: &NetStack);
    /// A system call queued data to send: [`Drive::kick`], and the data may leave at once.
    fn kick_sent(net: &NetStack) {
        Self::kick(net);
    }
    /// Wait until `check`, run under the stack's lock, gives a value; `Ok(None)` once a
    /// `How::Within` wait timed out, `EAGAIN` for `How::NoWait`, `EINTR` once killed,
    /// `ENETUNREACH` once the stack is gone. The event design waits on `q`, after `arm`
    /// (under the lock, in the section that found nothing) made the stack notify it; the sleep
    /// design sleeps on the stack's channel.
    fn wait<T>(
        net: &NetStack,
        q: &WaitQueue,
        arm: impl FnMut(&mut Stack),
        how: How,
        check: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>, Errno>;
    /// Under the stack's lock, something a waiter on `q` waits for happened (a listener has a
    /// connection to accept, an ARP reply was seen).
    fn notify(q: &WaitQueue);
    /// A poll of the stack is over (the lock released): wake who may wait for it.
    fn after_poll(net: &NetStack);
}

/// [`Drive::lock`] of the chosen design.
pub fn lock(stack: Stack) -> StackLock {
    match design() {
        Design::Event => event::Event::lock(stack),
        Design::Sleep => sleep::Sleep::lock(stack),
    }
}

/// [`Drive::start`] of the chosen design.
pub fn start(net: &Arc<NetStack>) {
    match design() {
        Design::Event => event::Event::start(net),
        Design::Sleep => sleep::Sleep::start(net),
    }
}

/// [`Drive::kick`] of the chosen design.
pub fn kick(net: &NetStack) {
    match design() {
        Design::Event => event::Event::kick(net),
        Design::Sleep => sleep::Sleep::kick(net),
    }
}

/// [`Drive::kick_sent`] of the chosen design.
pub fn kick_sent(net: &NetStack) {
    match design() {
        Design::Event => event::Event::kick_sent(net),
        Design::Sleep => sleep::Sleep::kick_sent(net),
    }
}

/// [`Drive::wait`] of the chosen design.
pub fn wait<T>(
    net: &NetStack,
    q: &WaitQueue,
    arm: impl FnMut(&mut Stack),
    how: How,
    check: impl FnMut(&mut Stack) -> Option<T>,
) -> Result<Option<T>, Errno> {
    match design() {
        Design::Event => event::Event::wait(net, q, arm, how, check),
        Design::Sleep => sleep::Sleep::wait(net, q, arm, how, check),
    }
}

/// [`Drive::notify`] of the chosen design.
pub fn notify(q: &WaitQueue) {
    match design() {
        Design::Event => event::Event::notify(q),
        Design::Sleep => sleep::Sleep::notify(q),
    }
}

/// The timer interrupt (before it may preempt): the sleep design polls a stack whose
/// deadline has passed.
pub fn on_timer() {
    if design() == Design::Sleep {
        sleep::on_timer();
    }
}

/// The scheduler loop, between processes (interrupts on): the sleep design polls the
/// stack's loopback frames and a passed deadline.
pub fn on_idle() {
    if design() == Design::Sleep {
        sleep::on_idle();
    }
}

/// When the sleep design's stack must be polled next (ns on `time::now_ns`'s clock): the
/// scheduler arms the timer for it.
pub fn next_deadline() -> Option<u64> {
    match design() {
        Design::Event => None,
        Design::Sleep => sleep::next_deadline(),
    }
}
