//! The interrupt-to-waker bridge.
//!
//! This module owns the two primitives an interrupt handler uses to reach a task:
//!
//! - [`IrqWaker`]: one registered [`Waker`]. A task registers it before returning `Pending`;
//!   the handler calls [`IrqWaker::wake`], which wakes that waker *by reference* and leaves it
//!   in place. Nothing in interrupt context clones, drops or allocates a waker: replacing and
//!   dropping happen in task context, at the next `register` or at `take`/`clear`.
//! - [`IrqQueue`]: a fixed-size ring of `Copy` values (scancodes, received bytes) pushed by one
//!   handler and popped by one task, with its own `IrqWaker` and a count of values dropped
//!   because the ring was full. Its consumer takes the values one future at a time
//!   ([`IrqQueue::pop`]) or as a [`Stream`] ([`IrqQueue::stream`]) that composes with
//!   `futures_util::StreamExt` (decode, filter, merge two devices into one input).
//!
//! # Why not `futures_util::task::AtomicWaker`
//!
//! `AtomicWaker` does the same job for threads, but its `wake` takes the waker out of the slot
//! and wakes it by value: the waker is dropped in the waking context, and dropping the last
//! reference to a task's waker frees the task (an `Arc`), so an interrupt handler could end up
//! in the allocator, whose lock the interrupted code may hold. [`IrqWaker::wake`] wakes by
//! reference and leaves the waker registered; only task context replaces or drops it.
//!
//! # Who may call what
//!
//! | call                                   | context                          |
//! |----------------------------------------|----------------------------------|
//! | `IrqWaker::wake`, `IrqQueue::push_from_irq` | interrupt handler (or anywhere) |
//! | `IrqWaker::register/take/clear`        | task context, one consumer       |
//! | `IrqQueue::try_pop/pop/stream`         | task context, one consumer       |
//! | `len`, `dropped`, `capacity`           | anywhere                         |
//!
//! Nothing here blocks or spins in interrupt context. The code is written for real concurrency
//! (host tests use threads), not only for a single CPU where a handler runs to completion.

use futures_util::Stream;

use core::{
    cell::UnsafeCell,
    future::Future,
    mem::MaybeUninit,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    task::{Context, Poll, Waker},
};

/// Nobody is using the cell.
const IDLE: u8 = 0;
/// Task context is writing the cell (`register`, `take`).
const REGISTERING: u8 = 0b01;
/// An interrupt is reading the cell to wake it.
const WAKING: u8 = 0b10;

/// A single waker slot that interrupt handlers can wake without allocating or dropping.
///
/// State machine (`state`): `register`/`take` move `IDLE -> REGISTERING` to own the cell for
/// writing; `wake` moves `IDLE -> WAKING` to read it. Each side only touches the cell after its
/// own transition from `IDLE`. A `wake` that finds `REGISTERING` just sets `WAKING` and leaves;
/// `register` sees that bit when it finishes and wakes the new waker itself, so the wake is not
/// lost. A `register` that finds `WAKING` cannot store its waker, so it wakes it instead: the
/// task polls again and registers again.
pub struct IrqWaker {
    state: AtomicU8,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the cell is only written by the holder of REGISTERING and only read by the holder of
// WAKING, each acquired by a compare-exchange (or fetch_or) from IDLE, so accesses never
// overlap. `Waker` is Send + Sync.
unsafe impl Sync for IrqWaker {}

impl Default for IrqWaker {
    fn default() -> Self {
        Self::new()
    }
}

impl IrqWaker {
    /// An empty slot.
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(IDLE), waker: UnsafeCell::new(None) }
    }

    /// Store `waker` to be woken by the next [`IrqWaker::wake`]. Task context only. Clones only
    /// if the stored waker would wake a different task; the replaced waker is dropped here.
    pub fn register(&self, waker: &Waker) {
        #[cfg(test)]
        tests::hook(tests::Hook::BeforeRegister);
        if self
            .state
            .compare_exchange(IDLE, REGISTERING, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            // A wake is reading the cell (it wakes the old waker). We can't store ours now:
            // wake it so its task polls again, re-checks and re-registers.
            waker.wake_by_ref();
            return;
        }
        // SAFETY: we moved IDLE -> REGISTERING, so we own the cell until we leave that state.
        let slot = unsafe { &mut *self.waker.get() };
        let old = match slot {
            Some(current) if current.will_wake(waker) => None,
            _ => slot.replace(waker.clone()),
        };
        #[cfg(test)]
        tests::hook(tests::Hook::MidRegister);
        if self
            .state
            .compare_exchange(REGISTERING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // A wake arrived while we held the cell and could not read it: deliver it to the
            // waker just stored. We still own the cell (REGISTERING is still set).
            if let Some(w) = slot.as_ref() {
                w.wake_by_ref();
            }
            self.state.swap(IDLE, Ordering::AcqRel);
        }
        drop(old);
    }

    /// Wake the registered waker, if any, leaving it registered. Callable from interrupt
    /// context: no allocation, no drop, no lock, no spinning.
    pub fn wake(&self) {
        if self.state.fetch_or(WAKING, Ordering::AcqRel) == IDLE {
            // SAFETY: we moved IDLE -> WAKING, so no register/take writes the cell until we
            // clear WAKING, and any other wake saw WAKING set and does not read it.
            if let Some(w) = unsafe { &*self.waker.get() } {
                w.wake_by_ref();
            }
            self.state.fetch_and(!WAKING, Ordering::Release);
        }
        // Otherwise a register/take owns the cell and will act on the WAKING bit, or another
        // wake is already waking the same waker.
    }

    /// Remove and return the registered waker (deregister when the wait is over). Task context
    /// only. If a wake lands meanwhile, the taken waker is woken too (spurious but harmless).
    pub fn take(&self) -> Option<Waker> {
        loop {
            if self
                .state
                .compare_exchange(IDLE, REGISTERING, Ordering::Acquire, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: we own the cell while REGISTERING is ours.
                let taken = unsafe { (*self.waker.get()).take() };
                if self.state.swap(IDLE, Ordering::AcqRel) & WAKING != 0 {
                    if let Some(w) = &taken {
                        w.wake_by_ref();
                    }
                }
                return taken;
            }
            // A wake is in progress (only possible with real parallelism): it is short.
            core::hint::spin_loop();
        }
    }

    /// Deregister and drop the stored waker. Task context only.
    pub fn clear(&self) {
        drop(self.take());
    }
}

/// A bounded single-producer (interrupt handler) single-consumer (task) ring of `Copy` values.
///
/// `head` and `tail` count pops and pushes (wrapping); the slot of index `i` is `i % N`. The
/// producer owns slots in `tail..head + N`, the consumer owns slots in `head..tail`; each
/// publishes a slot to the other with a Release store of its index.
///
/// One producer and one consumer at a time is a rule of use, but breaking it is not undefined
/// behaviour: a second concurrent producer has its value dropped (and counted), and a second
/// concurrent consumer sees an empty ring.
pub struct IrqQueue<T: Copy, const N: usize> {
    buf: [UnsafeCell<MaybeUninit<T>>; N],
    /// Number of pops so far (written by the consumer only).
    head: AtomicUsize,
    /// Number of pushes so far (written by the producer only).
    tail: AtomicUsize,
    producing: AtomicBool,
    consuming: AtomicBool,
    dropped: AtomicU64,
    waker: IrqWaker,
}

// SAFETY: a slot is written only by the producer (holding `producing`) while it is outside
// `head..tail`, and read only by the consumer (holding `consuming`) while it is inside; the
// Release/Acquire pairs on `tail` and `head` order the slot accesses. T is Copy (no drop) and
// Send, so handing values across threads is fine.
unsafe impl<T: Copy + Send, const N: usize> Sync for IrqQueue<T, N> {}

impl<T: Copy, const N: usize> Default for IrqQueue<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> IrqQueue<T, N> {
    /// An empty ring. `N` must be non-zero (a compile error in a `static`).
    pub const fn new() -> Self {
        assert!(N > 0, "IrqQueue capacity must be non-zero");
        Self {
            buf: [const { UnsafeCell::new(MaybeUninit::uninit()) }; N],
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            producing: AtomicBool::new(false),
            consuming: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            waker: IrqWaker::new(),
        }
    }

    /// Push from the interrupt handler. If the ring is full the value is dropped and counted
    /// and `false` returned. Either way the consumer is woken. Never blocks, allocates or
    /// panics.
    pub fn push_from_irq(&self, value: T) -> bool {
        let pushed = self.push_inner(value);
        if !pushed {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // Wake even when full: the consumer should drain what is there.
        self.waker.wake();
        pushed
    }

    fn push_inner(&self, value: T) -> bool {
        if self.producing.swap(true, Ordering::Acquire) {
            return false; // another producer is mid-push (misuse): drop rather than race
        }
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        let pushed = if tail.wrapping_sub(head) >= N {
            false
        } else {
            // SAFETY: `tail` is outside `head..tail`, so the consumer does not read this slot
            // (its last read of it happened before the `head` store we acquired), and we are
            // the only producer (`producing`).
            unsafe { (*self.buf[tail % N].get()).write(value) };
            self.tail.store(tail.wrapping_add(1), Ordering::Release);
            true
        };
        self.producing.store(false, Ordering::Release);
        pushed
    }

    /// Pop the oldest value, if any. Consumer (task context) only.
    pub fn try_pop(&self) -> Option<T> {
        if self.consuming.swap(true, Ordering::Acquire) {
            return None; // another consumer is mid-pop (misuse)
        }
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        let value = if head == tail {
            None
        } else {
            // SAFETY: `head` is inside `head..tail`, so the producer wrote this slot and
            // published it with the `tail` store we acquired, and will not touch it until we
            // advance `head`; we are the only consumer (`consuming`).
            let v = unsafe { (*self.buf[head % N].get()).assume_init_read() };
            self.head.store(head.wrapping_add(1), Ordering::Release);
            Some(v)
        };
        self.consuming.store(false, Ordering::Release);
        value
    }

    /// A future of the next value. It registers the task's waker and checks the ring again
    /// before returning `Pending`, so a push racing with the registration is not missed. The
    /// waker stays registered after a value is returned (the next `pop` usually reuses it; a
    /// stray wake of an idle consumer only costs a poll).
    pub fn pop(&self) -> Pop<'_, T, N> {
        Pop { queue: self }
    }

    /// The values as a never-ending [`Stream`] (each item is a [`IrqQueue::pop`]), for
    /// composing with `StreamExt`. Consumer (task context) only, like `pop`.
    pub fn stream(&self) -> IrqStream<'_, T, N> {
        IrqStream { queue: self }
    }

    /// Values dropped because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Values waiting (a snapshot).
    pub fn len(&self) -> usize {
        // Head first: it never passes the tail read after it, so the difference can't wrap.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(N)
    }

    /// Whether no value is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ring's size, `N`.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Drop the consumer's registered waker (when it stops waiting for good). Task context.
    pub fn clear_waker(&self) {
        self.waker.clear();
    }
}

/// Future returned by [`IrqQueue::pop`].
#[must_use = "futures do nothing unless polled"]
pub struct Pop<'a, T: Copy, const N: usize> {
    queue: &'a IrqQueue<T, N>,
}

impl<T: Copy, const N: usize> Future for Pop<'_, T, N> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let q = self.queue;
        if let Some(v) = q.try_pop() {
            return Poll::Ready(v);
        }
        q.waker.register(cx.waker());
        // A push between the first check and the registration woke the old waker (or none):
        // look again now that ours is in place.
        match q.try_pop() {
            Some(v) => Poll::Ready(v),
            None => Poll::Pending,
        }
    }
}

/// Stream returned by [`IrqQueue::stream`]: never ends (`None` is never returned).
#[must_use = "streams do nothing unless polled"]
pub struct IrqStream<'a, T: Copy, const N: usize> {
    queue: &'a IrqQueue<T, N>,
}

impl<T: Copy, const N: usize> Stream for IrqStream<'_, T, N> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        // `Pop` holds no state beyond the queue, so a fresh one per poll is the same future.
        Pin::new(&mut self.queue.pop()).poll(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{boxed::Box, sync::Arc, vec::Vec};
    use core::cell::RefCell;
    use std::thread;
    use testkit::*;

    /// Points in `register` where a test can play an interrupt arriving.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Hook {
        /// Before `register` touches the state (for `pop`: after its first ring check).
        BeforeRegister,
        /// While `register` owns the cell.
        MidRegister,
    }

    type HookFn = Box<dyn Fn()>;

    std::thread_local! {
        static HOOK: RefCell<Option<(Hook, HookFn)>> = const { RefCell::new(None) };
    }

    pub(super) fn hook(at: Hook) {
        HOOK.with(|h| {
            if let Some((point, f)) = &*h.borrow() {
                if *point == at {
                    f();
                }
            }
        });
    }

    /// Run `f` with `irq` played at `at` (on this thread only).
    fn with_hook<R>(at: Hook, irq: impl Fn() + 'static, f: impl FnOnce() -> R) -> R {
        HOOK.with(|h| *h.borrow_mut() = Some((at, Box::new(irq))));
        let r = f();
        HOOK.with(|h| *h.borrow_mut() = None);
        r
    }

    /// A push landing between `pop`'s first ring check and its registration wakes the *old*
    /// waker; `pop` must find the value by checking again after registering.
    #[test]
    fn push_just_before_register_is_not_missed() {
        let q: &'static IrqQueue<u8, 4> = leak(IrqQueue::new());
        let (old_count, old) = counting_waker();
        let (_, new) = counting_waker();
        let mut pop = q.pop();
        assert!(Pin::new(&mut pop).poll(&mut Context::from_waker(&old)).is_pending());
        let r = with_hook(
            Hook::BeforeRegister,
            || {
                q.push_from_irq(7);
            },
            || Pin::new(&mut pop).poll(&mut Context::from_waker(&new)),
        );
        assert_eq!(old_count.get(), 1, "the push woke the waker registered at the time");
        assert_eq!(r, Poll::Ready(7));
    }

    /// An interrupt that lands while `register` owns the cell cannot read it; `register` must
    /// deliver that wake to the waker it just stored (even if the caller does not re-check).
    #[test]
    fn wake_landing_mid_register_wakes_new_waker() {
        let iw: &'static IrqWaker = leak(IrqWaker::new());
        let (old_count, old) = counting_waker();
        let (new_count, new) = counting_waker();
        iw.register(&old);
        with_hook(Hook::MidRegister, || iw.wake(), || iw.register(&new));
        assert_eq!((old_count.get(), new_count.get()), (0, 1));
        // Back to normal: the new waker stays registered.
        iw.wake();
        assert_eq!(new_count.get(), 2);
    }

    #[test]
    fn irq_waker_wakes_by_ref_and_keeps_waker() {
        let iw = IrqWaker::new();
        iw.wake(); // nothing registered: no-op
        let (count, waker) = counting_waker();
        iw.register(&waker);
        let refs = Arc::strong_count(&count);
        iw.wake();
        iw.wake();
        assert_eq!(count.get(), 2);
        assert_eq!(Arc::strong_count(&count), refs, "wake neither cloned nor dropped");
        iw.register(&waker);
        assert_eq!(Arc::strong_count(&count), refs, "same waker: no clone");
        let taken = iw.take().expect("registered");
        assert!(taken.will_wake(&waker));
        iw.wake();
        assert_eq!(count.get(), 2, "deregistered");
        assert!(iw.take().is_none());
    }

    #[test]
    fn irq_waker_register_replaces() {
        let iw = IrqWaker::new();
        let (c1, w1) = counting_waker();
        let (c2, w2) = counting_waker();
        iw.register(&w1);
        iw.register(&w2);
        assert_eq!(Arc::strong_count(&c1), 2, "old waker dropped on replace");
        iw.wake();
        assert_eq!((c1.get(), c2.get()), (0, 1));
        iw.clear();
        assert_eq!(Arc::strong_count(&c2), 2);
    }

    /// A thread hammers "publish event; wake()" while this thread keeps registering fresh
    /// wakers. Any event published after a register returned must wake that waker.
    #[test]
    fn irq_waker_register_wake_race_loses_nothing() {
        let _serial = spinning_test();
        let iw: &'static IrqWaker = leak(IrqWaker::new());
        let events: &'static AtomicU64 = leak(AtomicU64::new(0));
        let stop: &'static AtomicBool = leak(AtomicBool::new(false));
        let producer = thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                events.fetch_add(1, Ordering::SeqCst);
                iw.wake();
            }
        });
        let mut fresh = 0;
        for round in 0..10_000u32 {
            // Mostly new wakers (replace path), sometimes the same one again (no-clone path).
            let (count, waker) = counting_waker();
            iw.register(&waker);
            if round % 4 == 0 {
                iw.register(&waker);
            }
            let seen = events.load(Ordering::SeqCst);
            // The wake() for event seen+1 started after register returned, and finished
            // before the producer published seen+2.
            while events.load(Ordering::SeqCst) < seen + 2 {
                thread::yield_now();
            }
            assert!(count.get() >= 1, "lost wakeup in round {round}");
            fresh += 1;
        }
        stop.store(true, Ordering::SeqCst);
        producer.join().unwrap();
        assert_eq!(fresh, 10_000);
    }

    #[test]
    fn irq_queue_fifo_and_len() {
        let q: IrqQueue<u8, 4> = IrqQueue::new();
        assert!(q.is_empty());
        assert_eq!(q.capacity(), 4);
        for round in 0..3u8 {
            // Several laps around the ring.
            for i in 0..3 {
                assert!(q.push_from_irq(round * 10 + i));
            }
            assert_eq!(q.len(), 3);
            for i in 0..3 {
                assert_eq!(q.try_pop(), Some(round * 10 + i));
            }
            assert_eq!(q.try_pop(), None);
        }
    }

    #[test]
    fn irq_queue_full_drops_and_counts_and_still_wakes() {
        static Q: IrqQueue<u32, 2> = IrqQueue::new();
        let (count, waker) = counting_waker();
        let mut pop = Q.pop();
        assert!(Pin::new(&mut pop).poll(&mut Context::from_waker(&waker)).is_pending());
        assert!(Q.push_from_irq(1));
        assert!(Q.push_from_irq(2));
        assert!(!Q.push_from_irq(3));
        assert!(!Q.push_from_irq(4));
        assert_eq!(Q.dropped(), 2);
        assert_eq!(Q.len(), 2);
        assert_eq!(count.get(), 4, "every push wakes, full or not");
        assert_eq!(Pin::new(&mut pop).poll(&mut Context::from_waker(&waker)), Poll::Ready(1));
        assert_eq!(Q.try_pop(), Some(2));
        assert_eq!(Q.try_pop(), None);
        Q.clear_waker();
        assert!(Q.push_from_irq(5));
        assert_eq!(count.get(), 4, "waker cleared");
    }

    #[test]
    fn irq_queue_pop_wakes_on_push_from_thread() {
        let _serial = spinning_test();
        let q: &'static IrqQueue<u32, 8> = leak(IrqQueue::new());
        const M: u32 = 20_000;
        let producer = thread::spawn(move || {
            for v in 1..=M {
                // Retry while full: each refusal is counted as a drop.
                while !q.push_from_irq(v) {
                    thread::yield_now();
                }
            }
        });
        let mut got = Vec::with_capacity(M as usize);
        for _ in 0..M {
            got.push(block_on(q.pop())); // parks when empty: a lost wakeup would hang
        }
        producer.join().unwrap();
        assert!(got.iter().copied().eq(1..=M));
        assert!(q.is_empty());
    }

    /// Each round the consumer polls `pop` with a fresh waker while a producer thread pushes one
    /// value at the same moment. If the poll returned `Pending` and the value is in the ring
    /// once the producer's push (and wake) finished, the fresh waker must have been woken:
    /// this catches a push landing between the first ring check and the registration.
    #[test]
    fn irq_queue_pop_register_push_race() {
        let _serial = spinning_test();
        let q: &'static IrqQueue<u32, 4> = leak(IrqQueue::new());
        let go: &'static AtomicU64 = leak(AtomicU64::new(0));
        let pushed: &'static AtomicU64 = leak(AtomicU64::new(0));
        const ROUNDS: u64 = 10_000;
        let producer = thread::spawn(move || {
            for round in 1..=ROUNDS {
                while go.load(Ordering::SeqCst) != round {
                    thread::yield_now();
                }
                assert!(q.push_from_irq(round as u32));
                pushed.store(round, Ordering::SeqCst);
            }
        });
        let mut pendings = 0;
        for round in 1..=ROUNDS {
            let (count, waker) = counting_waker();
            let mut pop = q.pop();
            go.store(round, Ordering::SeqCst);
            let first = Pin::new(&mut pop).poll(&mut Context::from_waker(&waker));
            while pushed.load(Ordering::SeqCst) != round {
                thread::yield_now();
            }
            let value = match first {
                Poll::Ready(v) => v,
                Poll::Pending => {
                    pendings += 1;
                    assert!(count.get() >= 1, "lost wakeup in round {round}");
                    q.try_pop().expect("value pushed")
                }
            };
            assert_eq!(u64::from(value), round);
        }
        producer.join().unwrap();
        assert!(pendings > 0, "the race was never exercised");
    }

    /// Two queues, each fed by its own "interrupt" thread, merged into one stream with
    /// `StreamExt` combinators, as the console merges the serial port and the keyboard: every
    /// value of each source arrives once and in its source's order, and no wakeup is lost (a
    /// lost one fails `block_on`).
    #[test]
    fn irq_streams_compose_with_stream_ext() {
        use futures_util::{stream, StreamExt};
        let _serial = spinning_test();
        let a: &'static IrqQueue<u32, 8> = leak(IrqQueue::new());
        let b: &'static IrqQueue<u32, 8> = leak(IrqQueue::new());
        const M: u32 = 5_000;
        let feed = |q: &'static IrqQueue<u32, 8>| {
            thread::spawn(move || {
                for v in 0..M {
                    while !q.push_from_irq(v) {
                        thread::yield_now();
                    }
                }
            })
        };
        let producers = [feed(a), feed(b)];
        // Tag each source, drop nothing, take exactly what was sent.
        let merged = stream::select(a.stream().map(|v| (0, v)), b.stream().map(|v| (1, v)));
        let got: Vec<(u32, u32)> = block_on(merged.take(2 * M as usize).collect());
        producers.into_iter().for_each(|p| p.join().unwrap());
        for src in 0..2 {
            let vals: Vec<u32> = got.iter().filter(|(s, _)| *s == src).map(|&(_, v)| v).collect();
            assert!(vals.iter().copied().eq(0..M), "source {src} out of order or incomplete");
        }
    }

    #[test]
    fn irq_queue_second_producer_is_refused_not_racy() {
        let q: IrqQueue<u8, 4> = IrqQueue::new();
        // Simulate a producer interrupted mid-push.
        q.producing.store(true, Ordering::SeqCst);
        assert!(!q.push_from_irq(1));
        assert_eq!(q.dropped(), 1);
        q.producing.store(false, Ordering::SeqCst);
        assert!(q.push_from_irq(2));
        assert_eq!(q.try_pop(), Some(2));
    }
}
