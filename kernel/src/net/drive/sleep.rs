//! The sleep design's driver (`net=sleep`): the classic one, xv6's and the lwIP ports'. The
//! root's stack is polled wherever something happened, in that context:
//!
//! - the E1000's interrupt handler polls it ([`on_nic_irq`], interrupt context): the frames
//!   go through the device layers into smoltcp, and the answers out, before the handler
//!   returns;
//! - the timer interrupt polls it once its deadline (smoltcp's `poll_delay`) has passed
//!   ([`on_timer`]); the scheduler arms the (tickless) timer for that deadline
//!   ([`next_deadline`]), so an idle stack costs no interrupt;
//! - the scheduler loop polls it between processes when it has frames looped back to itself
//!   or its deadline has passed ([`on_idle`], the report's periodic `netif_poll`);
//! - a system call that changed a socket polls it at once, in its own context ([`Sleep::kick`],
//!   lwIP's `tcp_output` from the system call).
//!
//! Each poll ends with `wakeup(chan)` on the stack's channel ([`chan`]); a system call that
//! must wait does `sleep(chan, stack lock)` (`proc::sleep`) after its check found nothing.
//! There is no executor task, no `Waker` and no wait queue on this path.
//!
//! # Locks and contexts
//! The stack's lock is an `IrqMutex` of rank `StackIrq`: interrupts are off while it is held,
//! on this CPU, so an interrupt handler never finds it held by the code it interrupted; under
//! it only interrupt-safe locks are taken (the bridge, the ARP notes, the NIC's rings, the
//! sleep table, the heap, the log). So no wait queue may be notified under it:
//! [`Sleep::notify`] does nothing, and the `wakeup` after the poll stands for it. Only the
//! root's stack is driven this way (containers are refused at `spawn`); its bridge port is
//! plugged (the router expects it) but no other port exists to send it frames.

use super::{Drive, How, StackLock};
use crate::net::bridge::BRIDGE;
use crate::net::device;
use crate::net::stack::{NetStack, Stack};
use abi::syscall::Errno;
use alloc::sync::Arc;
use conquer_once::noblock::OnceCell;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};
use runtime::lockorder::{IrqMutex, Rank};
use runtime::sync::WaitQueue;

pub struct Sleep;

/// The stack this design drives (the root's), set by [`Sleep::start`]. A `noblock` cell:
/// interrupt handlers read it.
static ROOT: OnceCell<Arc<NetStack>> = OnceCell::uninit();
/// When the stack must be polled next (`time::now_ns`), `u64::MAX`: not before something
/// happens. Written after each poll, under the stack lock.
static DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

/// The stack's channel for `sleep`/`wakeup`: its address.
fn chan(net: &NetStack) -> usize {
    net as *const NetStack as usize
}

/// Poll `net` now, in whatever context this is, then wake its sleepers.
fn poll(net: &NetStack) {
    let polled = {
        let mut g = net.lock();
        g.as_mut().map(|s| {
            let delay = s.poll();
            let now = crate::time::now_ns();
            let at = match (device::Link::pending(&s.dev), delay) {
                // Frames looped back to itself: the scheduler loop polls again.
                (true, _) => now,
                (false, Some(d)) => now.saturating_add(d.total_micros() * 1000),
                (false, None) => u64::MAX,
            };
            DEADLINE.store(at, SeqCst);
        })
    };
    if polled.is_some() {
        Sleep::after_poll(net);
    }
}

fn root() -> Option<&'static Arc<NetStack>> {
    ROOT.try_get().ok()
}

/// The E1000's interrupt handler, after the driver acknowledged an interrupt of its own.
pub fn on_nic_irq() {
    if let Some(net) = root() {
        poll(net);
    }
}

/// Poll if the deadline has passed.
fn poll_if_due() {
    if DEADLINE.load(SeqCst) <= crate::time::now_ns() {
        if let Some(net) = root() {
            poll(net);
        }
    }
}

/// The timer interrupt.
pub fn on_timer() {
    poll_if_due();
}

/// The scheduler loop.
pub fn on_idle() {
    poll_if_due();
}

/// When the stack wants its next poll (`None`: not before an interrupt or a system call).
pub fn next_deadline() -> Option<u64> {
    root()?;
    Some(DEADLINE.load(SeqCst)).filter(|&d| d != u64::MAX)
}

impl Drive for Sleep {
    fn lock(stack: Stack) -> StackLock {
        StackLock::Sleep(IrqMutex::new(Rank::StackIrq, Some(stack)))
    }

    /// Plug its port (the router's), make it the stack the interrupts poll, and poll once
    /// (its first deadline).
    fn start(net: &Arc<NetStack>) {
        BRIDGE.plug(net.id, net.port_ready.clone());
        if ROOT.try_init_once(|| net.clone()).is_err() {
            crate::kprintln!("net: net=sleep drives one stack only; stack {} not driven", net.id);
            return;
        }
        poll(net);
    }

    /// Poll now, in the caller's context.
    fn kick(net: &NetStack) {
        if root().is_some_and(|r| core::ptr::eq(Arc::as_ptr(r), net)) {
            poll(net);
        }
    }

    /// xv6's loop: under the stack lock, check; nothing yet: `sleep(chan, lock)`, which
    /// enters the sleep table before it releases the lock, so a poll's `wakeup` after a
    /// change that the check did not see finds the process there.
    fn wait<T>(
        net: &NetStack,
        _q: &WaitQueue,
        _arm: impl FnMut(&mut Stack),
        how: How,
        mut check: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>, Errno> {
        let deadline = match how {
            How::Within(ms) => {
                Some(crate::time::now_ns().saturating_add(ms.saturating_mul(1_000_000)))
            }
            _ => None,
        };
        // Before the stack lock: finding the running process takes a lock of lower rank. (A
        // kernel task may only ask without waiting: it has no process.)
        let p = (how != How::NoWait).then(crate::proc::current);
        let account = crate::mm::budget::current_account();
        loop {
            let mut g = net.lock();
            let s = g.as_mut().ok_or(Errno::ENETUNREACH)?;
            // Buffers the check makes (a listener's next socket) are the caller's.
            s.sockets.account = account.clone();
            let found = check(s);
            s.sockets.account = None;
            if let Some(v) = found {
                return Ok(Some(v));
            }
            let Some(p) = &p else { return Err(Errno::EAGAIN) };
            if deadline.is_some_and(|d| d <= crate::time::now_ns()) {
                return Ok(None);
            }
            crate::proc::sleep::sleep(p, chan(net), g, deadline)?;
        }
    }

    /// Nothing under the stack lock: the `wakeup` after the poll wakes every waiter.
    fn notify(_q: &WaitQueue) {}

    fn after_poll(net: &NetStack) {
        crate::proc::sleep::wakeup(chan(net));
    }
}

/// Register `p` (the calling process) on the root stack's channel until the returned
/// registration is dropped: `poll`'s wait over several sockets registers before its scan
/// (see `syscall::net::sys_poll`). Without a network, on a channel nobody wakes (the
/// registration still carries the deadline).
pub fn register(
    p: &crate::proc::Process,
    deadline: Option<u64>,
) -> crate::proc::sleep::Registration {
    crate::proc::sleep::register(p, root().map_or(0, |r| chan(r)), deadline)
}
