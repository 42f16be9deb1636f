//! Async synchronisation for tasks: a [`Mutex`] that can be held across `.await`, and a
//! [`WaitQueue`] (an event count) to wait for a condition protected by such a mutex.
//!
//! # Mutex
//!
//! [`Mutex::lock`] returns a [`Lock`] future that resolves to a [`MutexGuard`]. The state
//! behind it is a `locked` flag, a FIFO queue of waiting `Lock` futures (each with its task's
//! [`Waker`]), and `handed_to`, the waiter the lock was last passed to.
//!
//! - **Hand-off, no barging.** Dropping a guard while someone waits does not free the lock: it
//!   passes ownership to the oldest waiter (removing it from the queue, recording it in
//!   `handed_to`) and wakes it. `locked` stays set throughout, so neither
//!   [`Mutex::try_lock`] nor a newly created `Lock` can slip in ahead: a woken waiter is
//!   guaranteed the lock at its next poll, and waiters are served in the order they queued.
//! - **Cancel safety.** A `Lock` dropped while queued removes itself from the queue. A `Lock`
//!   dropped after it was handed the lock but before it polled to take it releases the lock
//!   again, which hands it to the next waiter (or frees it). Either way the lock is neither
//!   lost nor held by a future that no longer exists.
//! - **No lost wakeup.** A `Lock` decides "free, take it" or "queue my waker" under the same
//!   spin lock that an unlock takes to pick the next owner, so the two are ordered: if the
//!   unlock came first the `Lock` finds the lock free; if the `Lock` came first the unlock
//!   finds its waker in the queue and wakes it.
//!
//! # WaitQueue: waiting for a condition
//!
//! A [`WaitQueue`] is a generation counter plus a set of registered wakers.
//! [`WaitQueue::ticket`] reads the generation; [`WaitQueue::notify_all`] increments it and
//! wakes every registered waker; [`WaitQueue::wait`]`(ticket)` completes as soon as the
//! generation differs from the ticket. Checking the generation and registering the waker happen
//! under the same spin lock as `notify_all`'s increment and wake, so a `notify_all` is either
//! seen by the check or finds the waker registered: a `Wait` misses nothing that happens after
//! its ticket was taken.
//!
//! The condition itself lives in a `Mutex`:
//!
//! ```
//! use runtime::sync::{Mutex, WaitQueue};
//!
//! static ITEMS: Mutex<usize> = Mutex::new(0);
//! static CHANGED: WaitQueue = WaitQueue::new();
//!
//! async fn wait_for_items(n: usize) {
//!     loop {
//!         let g = ITEMS.lock().await;
//!         if *g >= n {
//!             break;
//!         }
//!         let t = CHANGED.ticket(); // while still holding the guard
//!         drop(g);
//!         CHANGED.wait(t).await;
//!     }
//! }
//!
//! async fn add_item() {
//!     *ITEMS.lock().await += 1; // change the condition under the lock...
//!     CHANGED.notify_all(); // ...then notify (holding the guard or, as here, after)
//! }
//! ```
//!
//! Why no wakeup is lost: the waiter checks the condition and takes its ticket in one critical
//! section of the mutex; the changer changes the condition in another. The mutex orders them.
//! If the change came first, the waiter's check sees it and it does not wait. If the check came
//! first, the change (and so the `notify_all` after it) happens after the ticket was taken,
//! so the generation moves past the ticket and `wait(ticket)` completes, whether it has been
//! polled yet or not. Hence the two rules: take the ticket *before* dropping the guard (taken
//! after, a change and its `notify_all` could slip in between and the wait would sleep on a
//! condition that is already true), and call `notify_all` *after* changing the condition.
//! Wakeups can be spurious (any change notifies every waiter), which is why the waiter loops.
//!
//! ## A source with one waker slot
//!
//! Some event sources keep a single [`Waker`] and forget it once they wake it (smoltcp's
//! sockets): a second waiter registering there overwrites the first, which then sleeps through
//! the event. [`WaitQueue::notifier`] gives the queue's own waker for that slot, so that any
//! number of tasks wait on the queue instead: each, under the source's lock, finds nothing,
//! makes sure the notifier is in the slot, and takes its ticket. The slot empties only by a
//! wake, which is a `notify_all` after every such ticket, so no waiter misses the next event.
//!
//! # Context and cost
//!
//! - **Task context only.** Both types keep their state behind a spin lock (ranks `AsyncMutex`
//!   and `WaitQueue` of the lock order, [`crate::lockorder`] and `docs/locks.md`: after
//!   everything that notifies or `try_lock`s them, before the heap), held only for a few
//!   instructions and never across an `.await` or a wake (wakers are woken, and replaced
//!   wakers dropped, after it is released). An interrupt handler must never lock, unlock or
//!   notify: spinning on a lock held by the task it interrupted would hang the CPU. Interrupt
//!   handlers reach tasks through [`IrqWaker`](crate::IrqWaker) instead.
//! - **Allocation.** Waiters live in a `BTreeMap` keyed by a never-reused `u64` id that grows
//!   with registration order, so the first key is the oldest waiter and a cancelled waiter is
//!   removed in `O(log n)`. Queueing costs one map insert (which may allocate a tree node) and
//!   one waker clone; taking a free lock, [`Mutex::try_lock`], tickets, and a `notify_all`
//!   with no waiters allocate nothing.
//!   Both constructors are `const`, so both types can be `static`.

use crate::lockorder::{Mutex as SpinLock, Rank};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::task::Wake;
use core::{
    cell::UnsafeCell,
    fmt,
    future::Future,
    marker::PhantomData,
    ops::{Deref, DerefMut},
    pin::Pin,
    task::{Context, Poll, Waker},
};

/// Registered wakers in registration order, each under an id that is never reused.
struct Waiters {
    map: BTreeMap<u64, Waker>,
    next_id: u64,
}

impl Waiters {
    const fn new() -> Self {
        Self { map: BTreeMap::new(), next_id: 0 }
    }

    /// Register a clone of `waker`; returns its id.
    fn push(&mut self, waker: &Waker) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.map.insert(id, waker.clone());
        id
    }

    /// Keep the waker of `id` current (the future may have moved to another task). Returns the
    /// replaced waker, for the caller to drop once the spin lock is released. (`id` is always
    /// registered when this is called; `entry` just saves asserting it.)
    fn update(&mut self, id: u64, waker: &Waker) -> Option<Waker> {
        let slot = self.map.entry(id).or_insert_with(|| waker.clone());
        if slot.will_wake(waker) {
            None
        } else {
            Some(core::mem::replace(slot, waker.clone()))
        }
    }

    fn remove(&mut self, id: u64) -> Option<Waker> {
        self.map.remove(&id)
    }

    fn pop_oldest(&mut self) -> Option<(u64, Waker)> {
        self.map.pop_first()
    }

    fn take_all(&mut self) -> BTreeMap<u64, Waker> {
        core::mem::take(&mut self.map)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The lock state of a [`Mutex`]. Invariant: if `!locked`, the queue is empty and `handed_to`
/// is `None` (an unlock only frees the lock when nobody waits).
struct LockState {
    locked: bool,
    /// The waiter that was handed the lock and has not yet polled to take it. Owns the lock.
    handed_to: Option<u64>,
    waiters: Waiters,
}

impl LockState {
    /// Give up the lock held by the caller: hand it to the oldest waiter, returning its waker
    /// (to wake once the spin lock is released), or free it if nobody waits.
    #[must_use]
    fn release(&mut self) -> Option<Waker> {
        debug_assert!(self.locked && self.handed_to.is_none());
        match self.waiters.pop_oldest() {
            Some((id, waker)) => {
                self.handed_to = Some(id);
                Some(waker)
            }
            None => {
                self.locked = false;
                None
            }
        }
    }
}

/// An async mutual-exclusion lock with FIFO hand-off. See the [module docs](self).
///
/// Task context only: never lock or unlock from an interrupt handler.
pub struct Mutex<T: ?Sized> {
    state: SpinLock<LockState>,
    value: UnsafeCell<T>,
}

// SAFETY: the mutex gives `&mut T` to one guard at a time, and guards may live on any thread,
// so sharing the mutex moves access to `T` between threads: `T: Send` is required and enough,
// as for `std::sync::Mutex`. (`Mutex<T>: Send` for `T: Send` is derived automatically.)
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`. Allocates nothing.
    pub const fn new(value: T) -> Self {
        Self {
            state: SpinLock::new(
                Rank::AsyncMutex,
                LockState { locked: false, handed_to: None, waiters: Waiters::new() },
            ),
            value: UnsafeCell::new(value),
        }
    }

    /// Consume the mutex and return the value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// A future that resolves to a guard once the lock is ours, after every `lock` that queued
    /// before it. Dropping the future at any point gives up the claim without losing the lock
    /// or a wakeup.
    pub fn lock(&self) -> Lock<'_, T> {
        Lock { mutex: self, step: Step::Start }
    }

    /// Take the lock if it is free. Fails while it is held or being handed to a waiter.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let mut st = self.state.lock();
        if st.locked {
            return None;
        }
        st.locked = true;
        drop(st);
        Some(MutexGuard::new(self))
    }

    /// The value, through exclusive access to the mutex (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    /// Number of queued `Lock` futures (test back door).
    #[cfg(test)]
    fn waiter_count(&self) -> usize {
        self.state.lock().waiters.len()
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Some(guard) => d.field("value", &&*guard),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish_non_exhaustive()
    }
}

/// Where a [`Lock`] future is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Not polled yet: holds no claim.
    Start,
    /// In the queue under this id, or handed the lock under it (`handed_to`).
    Queued(u64),
    /// Returned the guard.
    Done,
}

/// Future returned by [`Mutex::lock`].
#[must_use = "futures do nothing unless polled"]
pub struct Lock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    step: Step,
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    /// Panics if polled again after returning the guard.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let this = self.get_mut();
        let mut st = this.mutex.state.lock();
        let replaced = match this.step {
            Step::Start if !st.locked => {
                st.locked = true;
                drop(st);
                this.step = Step::Done;
                return Poll::Ready(MutexGuard::new(this.mutex));
            }
            Step::Start => {
                this.step = Step::Queued(st.waiters.push(cx.waker()));
                None
            }
            Step::Queued(id) if st.handed_to == Some(id) => {
                // The previous owner passed the lock to us; `locked` is still set.
                st.handed_to = None;
                drop(st);
                this.step = Step::Done;
                return Poll::Ready(MutexGuard::new(this.mutex));
            }
            Step::Queued(id) => st.waiters.update(id, cx.waker()),
            Step::Done => panic!("Lock polled after it returned the guard"),
        };
        drop(st);
        drop(replaced);
        Poll::Pending
    }
}

impl<T: ?Sized> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        let Step::Queued(id) = self.step else {
            return; // no claim: never queued, or the guard owns the lock now
        };
        let mut st = self.mutex.state.lock();
        let (wake, unused) = if st.handed_to == Some(id) {
            // Handed the lock but never took it: pass it on as its guard would have.
            st.handed_to = None;
            (st.release(), None)
        } else {
            (None, st.waiters.remove(id))
        };
        drop(st);
        drop(unused);
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").field("step", &self.step).finish_non_exhaustive()
    }
}

/// Exclusive access to the value of a locked [`Mutex`]. Dropping it unlocks the mutex, handing
/// the lock to the oldest waiter if there is one.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    /// Makes the guard `Send` iff `T: Send` and `Sync` iff `T: Send + Sync`: a shared guard
    /// gives out `&T`, which the `&Mutex<T>` field alone would let cross threads for any
    /// `T: Send`.
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// Only called by whoever just made `mutex` locked on this guard's behalf.
    fn new(mutex: &'a Mutex<T>) -> Self {
        Self { mutex, _marker: PhantomData }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: a guard is only created by the one who set `locked` (or took the hand-off)
        // for it, and the lock is released only in the guard's `Drop`, so while this guard
        // exists no other guard exists and `get_mut` (which needs `&mut Mutex`) cannot be
        // called: nothing else accesses the value. The borrow is tied to `&self`.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, this guard has exclusive access to the value; the `&mut self`
        // borrow makes the returned reference the only one derived from the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        let wake = self.mutex.state.lock().release();
        if let Some(w) = wake {
            w.wake();
        }
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A snapshot of a [`WaitQueue`]'s generation, taken by [`WaitQueue::ticket`].
///
/// (The generation is a `u64` that wraps; a wait would miss a notification only if exactly
/// 2^64 of them happened between its ticket and its poll.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

struct QueueState {
    generation: u64,
    waiters: Waiters,
}

/// An event count: tasks wait for "something changed since my ticket". See the
/// [module docs](self) for the condition-wait pattern and why it loses no wakeup.
///
/// Task context only: never notify from an interrupt handler.
pub struct WaitQueue {
    state: SpinLock<QueueState>,
}

impl Default for WaitQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl WaitQueue {
    /// An empty queue at generation 0. Allocates nothing.
    pub const fn new() -> Self {
        let state = QueueState { generation: 0, waiters: Waiters::new() };
        Self { state: SpinLock::new(Rank::WaitQueue, state) }
    }

    /// The current generation. Take it while checking the condition, under the lock that
    /// protects the condition.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.state.lock().generation)
    }

    /// A future that completes once some [`WaitQueue::notify_all`] has happened after `ticket`
    /// was taken (at its first poll, if one already has). Dropping it deregisters its waker.
    pub fn wait(&self, ticket: Ticket) -> Wait<'_> {
        Wait { queue: self, ticket, id: None }
    }

    /// Advance the generation and wake every registered waiter. Call it after changing the
    /// condition, with or without its lock held.
    pub fn notify_all(&self) {
        let woken = {
            let mut st = self.state.lock();
            st.generation = st.generation.wrapping_add(1);
            st.waiters.take_all()
        };
        // Lock released: a woken task may register again at once.
        for waker in woken.into_values() {
            waker.wake();
        }
    }

    /// A [`Waker`] whose wake is this queue's [`WaitQueue::notify_all`], for an event source
    /// with a single waker slot (see the [module docs](self)). Its clones wake the same queue
    /// (and `will_wake` each other), so putting it in a slot that already holds it is free.
    /// Task context only, as `notify_all`: never give it to an interrupt handler.
    pub fn notifier(self: &Arc<Self>) -> Waker {
        Waker::from(Arc::new(Notifier(self.clone())))
    }

    /// Number of registered `Wait` futures (test back door).
    #[cfg(test)]
    fn waiter_count(&self) -> usize {
        self.state.lock().waiters.len()
    }
}

/// See [`WaitQueue::notifier`].
struct Notifier(Arc<WaitQueue>);

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.0.notify_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.notify_all();
    }
}

impl fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("WaitQueue")
            .field("generation", &st.generation)
            .field("waiters", &st.waiters.map.len())
            .finish()
    }
}

/// Future returned by [`WaitQueue::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    queue: &'a WaitQueue,
    ticket: Ticket,
    /// `Some` while a waker may be registered under this id (`notify_all` removes it).
    id: Option<u64>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut st = this.queue.state.lock();
        if st.generation != this.ticket.0 {
            // `notify_all` already took our entry, if we had one.
            this.id = None;
            return Poll::Ready(());
        }
        // Same generation, checked under the lock `notify_all` takes: any notification still
        // to come will find the waker registered here.
        let replaced = match this.id {
            Some(id) => st.waiters.update(id, cx.waker()),
            None => {
                this.id = Some(st.waiters.push(cx.waker()));
                None
            }
        };
        drop(st);
        drop(replaced);
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let waker = self.queue.state.lock().waiters.remove(id);
            drop(waker); // after the lock is released
        }
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("ticket", &self.ticket).finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // plain spin locks as test scaffolding, not kernel locks
mod tests {
    use super::*;
    use crate::Executor;
    use alloc::{boxed::Box, sync::Arc, vec, vec::Vec};
    use core::{
        pin::pin,
        sync::atomic::{AtomicUsize, Ordering},
    };
    use spin::Mutex as SpinMutex;
    use std::{sync::Barrier, thread};
    use testkit::*;

    fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(waker))
    }

    use crate::executor::yield_now;

    #[test]
    fn static_mutex_get_mut_into_inner() {
        static M: Mutex<u32> = Mutex::new(1);
        *M.try_lock().unwrap() += 1;
        assert_eq!(*block_on(M.lock()), 2);
        let mut m = Mutex::new(vec![1]);
        m.get_mut().push(2);
        assert_eq!(m.into_inner(), vec![1, 2]);
        let unsized_: &Mutex<[u8]> = &Mutex::new([1u8, 2, 3]);
        unsized_.try_lock().unwrap()[0] = 9;
        assert_eq!(&*block_on(unsized_.lock()), &[9, 2, 3]);
    }

    #[test]
    fn try_lock_fails_while_held() {
        let m = Mutex::new(0);
        let g = m.try_lock().expect("free");
        assert!(m.try_lock().is_none());
        let (woken, waker) = counting_waker();
        let mut lock = pin!(m.lock());
        assert!(poll_once(lock.as_mut(), &waker).is_pending());
        drop(g);
        assert_eq!(woken.get(), 1);
        // Handed to the waiter, not yet taken: still unavailable.
        assert!(m.try_lock().is_none());
        let g = match poll_once(lock.as_mut(), &waker) {
            Poll::Ready(g) => g,
            Poll::Pending => panic!("handed the lock but not ready"),
        };
        assert!(m.try_lock().is_none());
        drop(g);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn mutual_exclusion_across_awaits() {
        const TASKS: usize = 16;
        const ROUNDS: usize = 50;
        let ex: &'static Executor = leak(Executor::new());
        let m: &'static Mutex<usize> = leak(Mutex::new(0));
        let inside: &'static AtomicUsize = leak(AtomicUsize::new(0));
        let handles: Vec<_> = (0..TASKS)
            .map(|_| {
                ex.spawn(async move {
                    for _ in 0..ROUNDS {
                        let mut g = m.lock().await;
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        let v = *g;
                        yield_now().await; // everyone else runs while we hold the lock
                        *g = v + 1;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(g);
                        yield_now().await;
                    }
                })
            })
            .collect();
        ex.run_until_idle();
        for h in handles {
            assert_eq!(block_on(h), Ok(()));
        }
        assert_eq!(*m.try_lock().unwrap(), TASKS * ROUNDS);
        assert_eq!(m.waiter_count(), 0);
    }

    #[test]
    fn acquired_in_fifo_order_without_barging() {
        let ex: &'static Executor = leak(Executor::new());
        let m: &'static Mutex<Vec<usize>> = leak(Mutex::new(Vec::new()));
        let held = m.try_lock().unwrap();
        let spawn = |i: usize| {
            ex.spawn(async move {
                let mut g = m.lock().await;
                g.push(i);
                yield_now().await; // hold it across an await
            })
        };
        let mut handles = vec![];
        for i in 0..5 {
            handles.push(spawn(i));
            ex.run_until_idle(); // queue in spawn order
        }
        assert_eq!(m.waiter_count(), 5);
        drop(held);
        // Handed to waiter 0, which has not run yet: nobody can barge in.
        assert!(m.try_lock().is_none());
        let late = spawn(5);
        ex.run_until_idle();
        assert_eq!(*m.try_lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
        for h in handles.into_iter().chain([late]) {
            assert_eq!(block_on(h), Ok(()));
        }
    }

    #[test]
    fn dropped_waiting_lock_does_not_block_others() {
        let m = Mutex::new(0);
        let g = m.try_lock().unwrap();
        let (a_woken, a_waker) = counting_waker();
        let (b_woken, b_waker) = counting_waker();
        let mut a = Box::pin(m.lock());
        let mut b = pin!(m.lock());
        assert!(poll_once(a.as_mut(), &a_waker).is_pending());
        assert!(poll_once(b.as_mut(), &b_waker).is_pending());
        assert_eq!(m.waiter_count(), 2);
        drop(a); // cancelled while queued
        assert_eq!(m.waiter_count(), 1);
        drop(g);
        assert_eq!((a_woken.get(), b_woken.get()), (0, 1));
        assert!(poll_once(b.as_mut(), &b_waker).is_ready());
    }

    #[test]
    fn handed_lock_dropped_before_poll_passes_on() {
        let m = Mutex::new(0);
        let g = m.try_lock().unwrap();
        let (a_woken, a_waker) = counting_waker();
        let (b_woken, b_waker) = counting_waker();
        let mut a = Box::pin(m.lock());
        let mut b = Box::pin(m.lock());
        assert!(poll_once(a.as_mut(), &a_waker).is_pending());
        assert!(poll_once(b.as_mut(), &b_waker).is_pending());
        drop(g);
        assert_eq!((a_woken.get(), b_woken.get()), (1, 0), "handed to a");
        drop(a); // owns the lock, never took it
        assert_eq!(b_woken.get(), 1, "passed on to b");
        assert!(m.try_lock().is_none());
        let Poll::Ready(g) = poll_once(b.as_mut(), &b_waker) else {
            panic!("b was handed the lock");
        };
        drop(g);
        drop(b); // completed: dropping it must not unlock again

        // With no other waiter, the lock is released.
        let g = m.try_lock().unwrap();
        let mut c = Box::pin(m.lock());
        assert!(poll_once(c.as_mut(), &a_waker).is_pending());
        drop(g);
        drop(c);
        assert_eq!(m.waiter_count(), 0);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn lock_future_keeps_latest_waker() {
        let m = Mutex::new(());
        let g = m.try_lock().unwrap();
        let (first, first_waker) = counting_waker();
        let (second, second_waker) = counting_waker();
        let mut l = pin!(m.lock());
        assert!(poll_once(l.as_mut(), &first_waker).is_pending());
        assert!(poll_once(l.as_mut(), &second_waker).is_pending());
        drop(g);
        assert_eq!((first.get(), second.get()), (0, 1));
    }

    #[test]
    fn mutex_two_threads_stress() {
        const ROUNDS: usize = 5_000;
        let m = Arc::new(Mutex::new(0usize));
        let start = Arc::new(Barrier::new(3));
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (m, start) = (m.clone(), start.clone());
                thread::spawn(move || {
                    start.wait();
                    block_on(async {
                        for _ in 0..ROUNDS {
                            let mut g = m.lock().await;
                            let v = *g;
                            core::hint::spin_loop();
                            *g = v + 1;
                        }
                    })
                })
            })
            .collect();
        // A third thread races cancellations against hand-offs: it polls a lock future once
        // and drops it whether or not it was handed the lock in the meantime.
        let canceller = {
            let m = m.clone();
            thread::spawn(move || {
                let (_, waker) = counting_waker();
                start.wait();
                let mut got = 0;
                for _ in 0..ROUNDS {
                    let mut l = Box::pin(m.lock());
                    if let Poll::Ready(mut g) = poll_once(l.as_mut(), &waker) {
                        *g += 1;
                        got += 1;
                    }
                    thread::yield_now();
                    drop(l);
                }
                got
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        let got = canceller.join().unwrap();
        assert_eq!(*m.try_lock().unwrap(), 2 * ROUNDS + got);
        assert_eq!(m.waiter_count(), 0);
    }

    #[test]
    fn notify_between_ticket_and_wait_is_not_lost() {
        let wq = WaitQueue::new();
        let t = wq.ticket();
        wq.notify_all();
        let (woken, waker) = counting_waker();
        assert!(poll_once(pin!(wq.wait(t)), &waker).is_ready());
        assert_eq!(woken.get(), 0);
        assert_eq!(wq.waiter_count(), 0);
        // A fresh ticket waits for the next notification.
        assert!(poll_once(pin!(wq.wait(wq.ticket())), &waker).is_pending());
    }

    #[test]
    fn wait_is_pending_until_notify() {
        let wq = WaitQueue::new();
        let (woken, waker) = counting_waker();
        let mut w = pin!(wq.wait(wq.ticket()));
        assert!(poll_once(w.as_mut(), &waker).is_pending());
        assert!(poll_once(w.as_mut(), &waker).is_pending());
        assert_eq!(woken.get(), 0);
        assert_eq!(wq.waiter_count(), 1, "re-polling does not register twice");
        wq.notify_all();
        assert_eq!(woken.get(), 1);
        assert!(poll_once(w.as_mut(), &waker).is_ready());
        assert_eq!(wq.waiter_count(), 0);
    }

    #[test]
    fn dropped_wait_deregisters() {
        let wq = WaitQueue::new();
        let (woken, waker) = counting_waker();
        let mut a = Box::pin(wq.wait(wq.ticket()));
        let mut b = Box::pin(wq.wait(wq.ticket()));
        assert!(poll_once(a.as_mut(), &waker).is_pending());
        assert!(poll_once(b.as_mut(), &waker).is_pending());
        assert_eq!(wq.waiter_count(), 2);
        drop(a);
        assert_eq!(wq.waiter_count(), 1);
        drop(b);
        assert_eq!(wq.waiter_count(), 0);
        wq.notify_all();
        assert_eq!(woken.get(), 0);
        // Dropping a woken (already deregistered) wait is harmless too.
        let mut c = Box::pin(wq.wait(wq.ticket()));
        assert!(poll_once(c.as_mut(), &waker).is_pending());
        wq.notify_all();
        drop(c);
        assert_eq!(wq.waiter_count(), 0);
    }

    #[test]
    fn notify_all_wakes_all() {
        let wq = WaitQueue::new();
        let t = wq.ticket();
        let wakers: Vec<_> = (0..4).map(|_| counting_waker()).collect();
        let mut waits: Vec<_> = (0..4).map(|_| Box::pin(wq.wait(t))).collect();
        for (w, (_, waker)) in waits.iter_mut().zip(&wakers) {
            assert!(poll_once(w.as_mut(), waker).is_pending());
        }
        assert_eq!(wq.waiter_count(), 4);
        wq.notify_all();
        assert!(wakers.iter().all(|(count, _)| count.get() == 1));
        assert_eq!(wq.waiter_count(), 0);
        for (w, (_, waker)) in waits.iter_mut().zip(&wakers) {
            assert!(poll_once(w.as_mut(), waker).is_ready());
        }
    }

    /// The documented pattern, under the executor: consumers wait for the counter to reach
    /// their target while a producer increments it.
    #[test]
    fn condition_wait_pattern_under_executor() {
        let ex: &'static Executor = leak(Executor::new());
        let count: &'static Mutex<usize> = leak(Mutex::new(0));
        let changed: &'static WaitQueue = leak(WaitQueue::new());
        let seen: Arc<SpinMutex<Vec<(usize, usize)>>> = Arc::default();
        for target in [3, 1, 5, 5] {
            let seen = seen.clone();
            ex.spawn(async move {
                loop {
                    let g = count.lock().await;
                    if *g >= target {
                        seen.lock().push((target, *g));
                        break;
                    }
                    let t = changed.ticket();
                    drop(g);
                    changed.wait(t).await;
                }
            });
        }
        ex.run_until_idle();
        assert_eq!(changed.waiter_count(), 4);
        let producer = ex.spawn(async move {
            for _ in 0..5 {
                *count.lock().await += 1;
                changed.notify_all();
                yield_now().await;
            }
        });
        ex.run_until_idle();
        assert_eq!(block_on(producer), Ok(()));
        assert_eq!(*seen.lock(), vec![(1, 1), (3, 3), (5, 5), (5, 5)]);
        assert_eq!(changed.waiter_count(), 0);
        assert_eq!(ex.stats().tasks_alive, 0);
    }

    /// Two threads take turns through a mutex-protected turn counter; a lost wakeup hangs.
    #[test]
    fn condition_wait_two_threads_ping_pong() {
        const ROUNDS: usize = 2_000;
        let turn = Arc::new(Mutex::new(0usize));
        let changed = Arc::new(WaitQueue::new());
        let players: Vec<_> = (0..2)
            .map(|me| {
                let (turn, changed) = (turn.clone(), changed.clone());
                thread::spawn(move || {
                    block_on(async {
                        for _ in 0..ROUNDS {
                            loop {
                                let mut g = turn.lock().await;
                                if *g % 2 == me {
                                    *g += 1;
                                    drop(g);
                                    changed.notify_all();
                                    break;
                                }
                                let t = changed.ticket();
                                drop(g);
                                changed.wait(t).await;
                            }
                        }
                    })
                })
            })
            .collect();
        for p in players {
            p.join().unwrap();
        }
        assert_eq!(*turn.try_lock().unwrap(), 2 * ROUNDS);
        assert_eq!(changed.waiter_count(), 0);
    }

    /// A source with one waker slot that a wake empties (as smoltcp's sockets): with the
    /// queue's notifier in the slot, four threads each waiting for their share of the items,
    /// which arrive one at a time, all get it. (Each putting its own waker in the slot, a
    /// thread overwritten by another would sleep for ever once that one had its share.)
    #[test]
    fn one_notifier_in_a_single_slot_serves_many_waiters() {
        const WAITERS: usize = 4;
        const SHARE: usize = 500;
        struct Source {
            items: usize,
            slot: Option<Waker>,
        }
        let src = Arc::new(SpinMutex::new(Source { items: 0, slot: None }));
        let q = Arc::new(WaitQueue::new());
        let notifier = q.notifier();
        assert!(notifier.will_wake(&notifier.clone()));
        let taken = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..WAITERS)
            .map(|_| {
                let (src, q, notifier, taken) =
                    (src.clone(), q.clone(), notifier.clone(), taken.clone());
                thread::spawn(move || {
                    block_on(async {
                        for _ in 0..SHARE {
                            loop {
                                let ticket = {
                                    let mut s = src.lock();
                                    if s.items > 0 {
                                        s.items -= 1;
                                        break;
                                    }
                                    if !s.slot.as_ref().is_some_and(|w| w.will_wake(&notifier)) {
                                        s.slot = Some(notifier.clone());
                                    }
                                    q.ticket()
                                };
                                q.wait(ticket).await;
                            }
                            taken.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
            })
            .collect();
        for i in 0..WAITERS * SHARE {
            // An event: under the source's lock, the slot is emptied and its waker woken.
            let mut s = src.lock();
            s.items += 1;
            if let Some(w) = s.slot.take() {
                w.wake();
            }
            drop(s);
            if i % 8 == 0 {
                thread::yield_now();
            }
        }
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(taken.load(Ordering::SeqCst), WAITERS * SHARE);
        assert_eq!(src.lock().items, 0);
        assert_eq!(q.waiter_count(), 0);
    }

    #[test]
    fn guards_and_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        fn sync<T: Sync>(_: &T) {}
        let m = Mutex::new(0u8);
        let wq = WaitQueue::new();
        sync(&m);
        sync(&wq);
        send(&m.lock());
        send(&wq.wait(wq.ticket()));
        let g = m.try_lock().unwrap();
        send(&g);
        sync(&g);
    }
}
