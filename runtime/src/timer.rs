//! Timers: sleeping until a deadline, and timeouts.
//!
//! This module owns [`Timers`], a registry of `(deadline_ns, seq) -> Waker` kept in a
//! `BTreeMap`, so entries are ordered by deadline and then by registration order (`seq`).
//! The executor owns one (see [`Executor::timers`](crate::Executor::timers)); it also works
//! standalone.
//!
//! # How time reaches the timers
//!
//! Timers never read hardware. Time comes in two ways:
//! - [`Timers::expire`]`(now_ns)` wakes every entry whose deadline is `<= now_ns` (and records
//!   `now_ns` as the latest known time). [`Executor::run`](crate::Executor::run) calls it with
//!   [`Platform::now_ns`](crate::Platform::now_ns) on every pass.
//! - Optionally, [`Timers::set_clock`] installs a clock function; then
//!   [`Timers::now`] reads it, and [`Executor::run_until_idle`](crate::Executor::run_until_idle)
//!   expires timers with it too.
//!
//! A [`Sleep`] completes when `expire` has fired its entry (the entry is gone from the map), or
//! at its first poll if its deadline is already `<= now()`. Relative sleeps
//! ([`Timers::sleep`]) start from [`Timers::now`]: the clock if set, else the time of the last
//! `expire`.
//!
//! Timeouts ([`Timers::timeout`], [`Timers::timeout_after`]) are `async fn`s rather than a
//! named `Timeout<F>` type: that needs no pin projection (no `unsafe`, no boxing), and the inner
//! future is dropped as soon as the deadline wins.
//!
//! # Invariants
//!
//! - Task context only: the map is behind a spin lock (rank `Timers` of the lock order,
//!   `docs/locks.md`), so none of this may be used from an interrupt handler (a handler
//!   spinning on a lock its interrupted task holds would hang).
//! - Wakers are woken with the lock released (a woken waker may re-enter the timers).
//! - A `Sleep` removes its entry when dropped before firing: no stale waker stays registered.

use alloc::collections::BTreeMap;
use core::{
    fmt,
    future::{poll_fn, Future},
    pin::{pin, Pin},
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll, Waker},
};

use crate::lockorder::{Mutex, Rank};
use spin::Once;

/// Registry of pending sleeps, ordered by deadline then registration.
pub struct Timers {
    state: Mutex<TimerState>,
    clock: Once<fn() -> u64>,
    /// Largest `now_ns` passed to `expire`: the time source when no clock is set.
    last_now: AtomicU64,
}

struct TimerState {
    entries: BTreeMap<(u64, u64), Waker>,
    next_seq: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Self::new()
    }
}

impl Timers {
    /// An empty registry with no clock; allocates nothing until the first sleep registers.
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(Rank::Timers, TimerState { entries: BTreeMap::new(), next_seq: 0 }),
            clock: Once::new(),
            last_now: AtomicU64::new(0),
        }
    }

    /// Install the monotonic nanosecond clock (the kernel's calibrated time). Only the first
    /// call has an effect; returns whether this call installed `clock`.
    pub fn set_clock(&self, clock: fn() -> u64) -> bool {
        let mut installed = false;
        self.clock.call_once(|| {
            installed = true;
            clock
        });
        installed
    }

    pub(crate) fn clock_now(&self) -> Option<u64> {
        self.clock.get().map(|c| c())
    }

    /// Current time: the clock if set, else the latest time given to [`Timers::expire`].
    pub fn now(&self) -> u64 {
        self.clock_now().unwrap_or_else(|| self.last_now.load(Ordering::Acquire))
    }

    /// Wake every entry with `deadline <= now_ns`, in deadline then registration order.
    /// Returns how many fired.
    pub fn expire(&self, now_ns: u64) -> usize {
        self.last_now.fetch_max(now_ns, Ordering::AcqRel);
        let due = {
            let mut st = self.state.lock();
            match now_ns.checked_add(1) {
                Some(bound) => {
                    let later = st.entries.split_off(&(bound, 0));
                    core::mem::replace(&mut st.entries, later)
                }
                None => core::mem::take(&mut st.entries),
            }
        };
        let fired = due.len();
        // Lock released: a woken task may register again.
        for (_, waker) in due {
            waker.wake();
        }
        fired
    }

    /// Earliest registered deadline (to program a one-shot timer, or to decide not to halt).
    pub fn next_deadline(&self) -> Option<u64> {
        self.state.lock().entries.first_key_value().map(|(&(deadline, _), _)| deadline)
    }

    /// Number of registered (pending, not yet fired) sleeps.
    pub fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether no sleep is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A future that completes once the time reaches `deadline_ns`.
    pub fn sleep_until(&self, deadline_ns: u64) -> Sleep<'_> {
        Sleep { timers: self, deadline_ns, seq: None, done: false }
    }

    /// A future that completes `dur_ns` after [`Timers::now`].
    pub fn sleep(&self, dur_ns: u64) -> Sleep<'_> {
        self.sleep_until(self.now().saturating_add(dur_ns))
    }

    /// Run `fut` until it completes or the time reaches `deadline_ns` (an absolute deadline,
    /// like [`Timers::sleep_until`]). If both are ready at once, the output wins. On
    /// `Err(Elapsed)` the inner future has already been dropped.
    pub async fn timeout<F: Future>(&self, deadline_ns: u64, fut: F) -> Result<F::Output, Elapsed> {
        // An async fn needs no pin projection (no unsafe) and drops `fut` as soon as it
        // returns, so the inner future is gone by the time the caller sees `Elapsed`.
        let mut fut = pin!(fut);
        let mut sleep = self.sleep_until(deadline_ns);
        poll_fn(|cx| {
            if let Poll::Ready(v) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(v));
            }
            Pin::new(&mut sleep).poll(cx).map(|()| Err(Elapsed))
        })
        .await
    }

    /// [`Timers::timeout`] with a deadline `dur_ns` after [`Timers::now`].
    pub async fn timeout_after<F: Future>(
        &self,
        dur_ns: u64,
        fut: F,
    ) -> Result<F::Output, Elapsed> {
        self.timeout(self.now().saturating_add(dur_ns), fut).await
    }
}

/// The deadline of a [`Timers::timeout`] passed before the future completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline elapsed")
    }
}

impl core::error::Error for Elapsed {}

/// Future returned by [`Timers::sleep_until`] and [`Timers::sleep`].
#[must_use = "futures do nothing unless polled"]
pub struct Sleep<'a> {
    timers: &'a Timers,
    deadline_ns: u64,
    /// `Some` while an entry `(deadline_ns, seq)` is registered.
    seq: Option<u64>,
    done: bool,
}

impl Sleep<'_> {
    /// The absolute deadline in nanoseconds.
    pub fn deadline(&self) -> u64 {
        self.deadline_ns
    }
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let this = &mut *self;
        let mut st = this.timers.state.lock();
        match this.seq {
            Some(seq) => match st.entries.get_mut(&(this.deadline_ns, seq)) {
                Some(registered) => {
                    // Still pending; keep the waker current (the task may have moved).
                    let old = if registered.will_wake(cx.waker()) {
                        None
                    } else {
                        Some(core::mem::replace(registered, cx.waker().clone()))
                    };
                    drop(st);
                    drop(old);
                    Poll::Pending
                }
                None => {
                    // `expire` removed the entry: it fired.
                    drop(st);
                    this.seq = None;
                    this.done = true;
                    Poll::Ready(())
                }
            },
            None => {
                if this.timers.now() >= this.deadline_ns {
                    drop(st);
                    this.done = true;
                    return Poll::Ready(());
                }
                let seq = st.next_seq;
                st.next_seq += 1;
                st.entries.insert((this.deadline_ns, seq), cx.waker().clone());
                this.seq = Some(seq);
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep<'_> {
    fn drop(&mut self) {
        if let Some(seq) = self.seq.take() {
            let waker = self.timers.state.lock().entries.remove(&(self.deadline_ns, seq));
            drop(waker); // after the lock is released
        }
    }
}

impl fmt::Debug for Sleep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ns", &self.deadline_ns)
            .field("registered", &self.seq.is_some())
            .field("done", &self.done)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_types)] // plain spin locks as test scaffolding, not kernel locks
mod tests {
    use super::*;
    use crate::Executor;
    use alloc::{sync::Arc, vec, vec::Vec};
    use spin::Mutex as SpinMutex;
    use testkit::*;

    fn poll_once<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn sleeps_complete_in_deadline_then_insertion_order() {
        let ex: &'static Executor = leak(Executor::new());
        let order: Arc<SpinMutex<Vec<usize>>> = Arc::default();
        let deadlines = [30u64, 10, 20, 10, 30, 5];
        for (i, &d) in deadlines.iter().enumerate() {
            let order = order.clone();
            ex.spawn(async move {
                ex.timers().sleep_until(d).await;
                order.lock().push(i);
            });
        }
        assert_eq!(ex.run_until_idle(), 6); // all registered
        assert_eq!(ex.timers().len(), 6);
        assert_eq!(ex.timers().next_deadline(), Some(5));

        assert_eq!(ex.timers().expire(4), 0);
        ex.run_until_idle();
        assert!(order.lock().is_empty());

        // Step: only the deadline-5 sleep.
        assert_eq!(ex.timers().expire(5), 1);
        ex.run_until_idle();
        assert_eq!(*order.lock(), vec![5]);

        // Jump past everything: the rest in deadline order, ties in insertion order.
        assert_eq!(ex.timers().next_deadline(), Some(10));
        assert_eq!(ex.timers().expire(100), 5);
        ex.run_until_idle();
        assert_eq!(*order.lock(), vec![5, 1, 3, 2, 0, 4]);
        assert!(ex.timers().is_empty());
        assert_eq!(ex.timers().next_deadline(), None);
    }

    #[test]
    fn sleep_deregisters_on_drop_and_on_completion() {
        let timers = Timers::new();
        let (count, waker) = counting_waker();

        let mut s = timers.sleep_until(50);
        assert!(poll_once(&mut s, &waker).is_pending());
        assert_eq!(timers.len(), 1);
        drop(s);
        assert_eq!(timers.len(), 0, "dropped sleep left its waker behind");
        assert_eq!(timers.expire(100), 0);
        assert_eq!(count.get(), 0);

        let mut s = timers.sleep_until(150);
        assert!(poll_once(&mut s, &waker).is_pending());
        assert_eq!(timers.expire(150), 1);
        assert_eq!(count.get(), 1);
        assert_eq!(timers.len(), 0);
        assert!(poll_once(&mut s, &waker).is_ready());
        assert!(poll_once(&mut s, &waker).is_ready(), "fused");
    }

    #[test]
    fn sleep_repoll_replaces_waker() {
        let timers = Timers::new();
        let (c1, w1) = counting_waker();
        let (c2, w2) = counting_waker();
        let mut s = timers.sleep_until(10);
        assert!(poll_once(&mut s, &w1).is_pending());
        assert!(poll_once(&mut s, &w2).is_pending());
        assert_eq!(timers.len(), 1);
        timers.expire(10);
        assert_eq!((c1.get(), c2.get()), (0, 1));
    }

    #[test]
    fn past_deadline_completes_without_registering() {
        let timers = Timers::new();
        let (_, waker) = counting_waker();
        timers.expire(1000);
        assert_eq!(timers.now(), 1000);
        let mut s = timers.sleep_until(999);
        assert!(poll_once(&mut s, &waker).is_ready());
        let mut s = timers.sleep(0);
        assert!(poll_once(&mut s, &waker).is_ready());
        let mut s = timers.sleep(5);
        assert_eq!(s.deadline(), 1005);
        assert!(poll_once(&mut s, &waker).is_pending());
        assert!(timers.next_deadline() == Some(1005));
    }

    #[test]
    fn expire_at_u64_max_takes_everything() {
        let timers = Timers::new();
        let (count, waker) = counting_waker();
        let mut a = timers.sleep_until(u64::MAX);
        let mut b = timers.sleep_until(7);
        assert!(poll_once(&mut a, &waker).is_pending());
        assert!(poll_once(&mut b, &waker).is_pending());
        assert_eq!(timers.expire(u64::MAX), 2);
        assert_eq!(count.get(), 2);
    }

    #[test]
    fn clock_drives_run_until_idle() {
        static NOW: AtomicU64 = AtomicU64::new(0);
        fn clock() -> u64 {
            NOW.load(Ordering::SeqCst)
        }
        let ex: &'static Executor = leak(Executor::new());
        assert!(ex.timers().set_clock(clock));
        assert!(!ex.timers().set_clock(|| 0), "first clock stays");
        let h = ex.spawn(async move {
            ex.timers().sleep(100).await;
            clock()
        });
        ex.run_until_idle();
        NOW.store(99, Ordering::SeqCst);
        ex.run_until_idle();
        assert!(!h.is_finished());
        NOW.store(100, Ordering::SeqCst);
        ex.run_until_idle();
        assert_eq!(block_on(h), Ok(100));
    }

    #[test]
    fn timeout_elapses_and_drops_inner() {
        let timers = Timers::new();
        let (count, waker) = counting_waker();
        let (flag, guard) = drop_flag();
        let inner = async move {
            let _guard = guard;
            core::future::pending::<u32>().await
        };
        let mut t = core::pin::pin!(timers.timeout(20, inner));
        assert!(t.as_mut().poll(&mut Context::from_waker(&waker)).is_pending());
        assert_eq!(timers.len(), 1);
        timers.expire(19);
        assert_eq!(count.get(), 0);
        timers.expire(20);
        assert_eq!(count.get(), 1);
        let r = t.as_mut().poll(&mut Context::from_waker(&waker));
        assert_eq!(r, Poll::Ready(Err(Elapsed)));
        // The Timeout future itself is still alive here: the inner one is already gone.
        assert!(flag.get(), "inner future dropped on Elapsed");
        assert!(timers.is_empty());
    }

    #[test]
    fn timeout_passes_output_and_deregisters() {
        let ex: &'static Executor = leak(Executor::new());
        let (slot, fut) = park_once();
        let h = ex.spawn(async move {
            ex.timers()
                .timeout_after(50, async move {
                    fut.await;
                    9
                })
                .await
        });
        ex.run_until_idle();
        assert_eq!(ex.timers().len(), 1);
        slot.lock().take().unwrap().wake();
        ex.run_until_idle();
        assert_eq!(block_on(h), Ok(Ok(9)));
        assert!(ex.timers().is_empty(), "sleep deregistered when the output won");
    }
}
