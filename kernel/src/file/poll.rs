//! `poll`'s registration on a wait queue: [`PollWait`].
//!
//! The `poll` system call (`syscall::net::sys_poll`) looks at every descriptor it was given
//! and, when none is ready, must sleep until any of them changes. Files whose readiness
//! changes under a [`WaitQueue`] register the process's waker through a [`PollWait`], one per
//! descriptor: pipe ends (`super::pipe`), the console's input (`super::console`) and sockets
//! (`crate::net::socket`: a socket's readable and writable queues, which smoltcp's one waker
//! per direction notifies).
//!
//! Invariants:
//! - the ticket given to [`PollWait::arm`] (or [`PollWait::arm_also`]) is taken under the lock that protects the
//!   condition, in the same critical section as the check that found it false (see
//!   [`PollWait`]); that is what makes a change between the check and the sleep impossible
//!   to miss;
//! - a registration borrows its queue (`'a`): `sys_poll` holds the files (and so their
//!   queues) for longer than the registrations, and clears every one of them when the wait is
//!   over, whatever its outcome (`EINTR` included);
//! - task context only (a process in a system call), like the wait queues themselves.
//!
//! No kernel dependencies beyond the async runtime: `mkimage/tests/kernel_file.rs` compiles
//! this file on the host and runs its tests.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};
use runtime::sync::{Ticket, Wait, WaitQueue};

/// One descriptor's `poll` registration: a waker waiting on up to two [`WaitQueue`]s (a
/// socket's readable and writable ones; pipes and the console use one) for the next
/// notification after a ticket. Dropping it (or arming it again) deregisters the waker.
///
/// The ticket must be taken under the lock that protects the condition, in the same critical
/// section as the check that found the condition false. That is what "register, then check
/// again, then sleep" amounts to here, without a second check: every change of the condition
/// happens under that lock and is followed by a `notify_all`, so a change after the check
/// advances the queue's generation past the ticket. Then either the registration below sees
/// the new generation already (and wakes the waker at once, so the caller looks again), or
/// the waker is registered in time for the notification. Between the check and the sleep no
/// wakeup can be lost, and the process's bridge sleeps only if nothing woke it meanwhile.
#[derive(Debug, Default)]
pub struct PollWait<'a>([Option<Wait<'a>>; 2]);

impl<'a> PollWait<'a> {
    pub const fn new() -> Self {
        PollWait([None, None])
    }

    /// Wake `w` once `q` is notified after `ticket` (at once if it already was), instead of
    /// whatever was registered before.
    pub fn arm(&mut self, q: &'a WaitQueue, ticket: Ticket, w: &Waker) {
        self.clear();
        self.arm_also(q, ticket, w);
    }

    /// Like [`PollWait::arm`], keeping the registration armed before: wake `w` at the first
    /// notification of either queue. Two queues at most: a third wakes `w` at once (a
    /// spurious wakeup, never a lost one).
    pub fn arm_also(&mut self, q: &'a WaitQueue, ticket: Ticket, w: &Waker) {
        let mut wait = q.wait(ticket);
        if Pin::new(&mut wait).poll(&mut Context::from_waker(w)).is_ready() {
            w.wake_by_ref();
            return;
        }
        match self.0.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(wait),
            None => w.wake_by_ref(),
        }
    }

    /// Deregister.
    pub fn clear(&mut self) {
        self.0 = [None, None];
    }

    /// How many queues a waker is registered on.
    #[cfg(test)]
    pub fn armed(&self) -> usize {
        self.0.iter().flatten().count()
    }

    /// A waker is registered.
    #[cfg(test)]
    pub fn is_armed(&self) -> bool {
        self.armed() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::counting_waker;

    #[test]
    fn a_notification_after_the_ticket_wakes_once() {
        let q = WaitQueue::new();
        let (n, w) = counting_waker();
        let mut reg = PollWait::new();
        reg.arm(&q, q.ticket(), &w);
        assert!(reg.is_armed());
        assert_eq!(n.get(), 0);
        q.notify_all();
        q.notify_all();
        assert_eq!(n.get(), 1, "woken by the first notification only");
    }

    #[test]
    fn a_notification_before_arming_wakes_at_once() {
        let q = WaitQueue::new();
        let (n, w) = counting_waker();
        let ticket = q.ticket();
        q.notify_all();
        let mut reg = PollWait::new();
        reg.arm(&q, ticket, &w);
        assert_eq!(n.get(), 1);
        assert!(!reg.is_armed(), "nothing left registered");
    }

    #[test]
    fn clearing_or_dropping_deregisters() {
        let q = WaitQueue::new();
        let (n, w) = counting_waker();
        let mut reg = PollWait::new();
        reg.arm(&q, q.ticket(), &w);
        reg.clear();
        q.notify_all();
        {
            let mut reg = PollWait::new();
            reg.arm(&q, q.ticket(), &w);
        }
        q.notify_all();
        assert_eq!(n.get(), 0);
    }

    /// A registration on two queues (a socket's readable and writable ones) wakes at a
    /// notification of either; arming again replaces both; a ticket already overtaken wakes
    /// at once; a third queue is a spurious wakeup, not a lost one.
    #[test]
    fn poll_wait_on_two_queues() {
        let (a, b, c) = (WaitQueue::new(), WaitQueue::new(), WaitQueue::new());
        let (n, waker) = counting_waker();
        let mut reg = PollWait::new();
        reg.arm(&a, a.ticket(), &waker);
        reg.arm_also(&b, b.ticket(), &waker);
        assert_eq!(reg.armed(), 2);
        b.notify_all();
        assert_eq!(n.get(), 1, "the second queue wakes");
        a.notify_all();
        assert_eq!(n.get(), 2, "so does the first");
        reg.arm(&a, a.ticket(), &waker);
        assert_eq!(reg.armed(), 1, "arm replaces both");
        b.notify_all();
        assert_eq!(n.get(), 2, "no longer registered on the second");
        let t = b.ticket();
        b.notify_all();
        reg.arm_also(&b, t, &waker);
        assert_eq!((n.get(), reg.armed()), (3, 1), "overtaken: woken at once, not kept");
        reg.arm_also(&b, b.ticket(), &waker);
        reg.arm_also(&c, c.ticket(), &waker);
        assert_eq!((n.get(), reg.armed()), (4, 2), "a third queue wakes at once");
        reg.clear();
        a.notify_all();
        b.notify_all();
        assert_eq!(n.get(), 4, "cleared: nothing is woken");
    }
}
