//! Driving futures by hand on the test's thread.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long [`block_on`] waits for a wake before it calls the wait lost and fails the test.
pub const BLOCK_ON_LIMIT: Duration = Duration::from_secs(60);

/// Unparks the thread that waits in `block_on`, and says it did (`park` may also return
/// spuriously, which must not count as a wake).
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Drive `f` to completion on this thread, parking between polls. A future that stays pending
/// with nobody waking it for [`BLOCK_ON_LIMIT`] (a lost wakeup, a deadlock) panics the test
/// rather than hanging it.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let tw = Arc::new(ThreadWaker { thread: thread::current(), woken: AtomicBool::new(false) });
    let waker = Waker::from(tw.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        tw.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        let deadline = Instant::now() + BLOCK_ON_LIMIT;
        while !tw.woken.load(Ordering::SeqCst) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "block_on: not woken for {BLOCK_ON_LIMIT:?} (a lost wakeup?)");
            thread::park_timeout(left);
        }
    }
}

/// Poll once with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// A waker that counts its wakes.
#[derive(Default)]
pub struct Counter(AtomicUsize);

impl Counter {
    /// Wakes so far.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker and its count of wakes.
pub fn counting_waker() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    (c.clone(), Waker::from(c))
}

/// A future polled by hand (for tests that play the device or the interrupt between polls),
/// remembering whether it was woken since its last poll.
pub struct Task<'a, T> {
    fut: Option<Pin<Box<dyn Future<Output = T> + 'a>>>,
    /// The waker given to every poll counts here; its strong count beyond the task's own
    /// says whether anyone (a driver, a queue) still holds a clone of the waker.
    pub wakes: Arc<Counter>,
    seen: usize,
    /// The output, once the future is done.
    pub result: Option<T>,
}

impl<'a, T> Task<'a, T> {
    pub fn new(f: impl Future<Output = T> + 'a) -> Self {
        Task { fut: Some(Box::pin(f)), wakes: Arc::default(), seen: 0, result: None }
    }

    /// Poll once more (unless already done); whether it is done.
    pub fn poll(&mut self) -> bool {
        self.seen = self.wakes.get();
        let waker = Waker::from(self.wakes.clone());
        if let Some(f) = self.fut.as_mut() {
            if let Poll::Ready(r) = f.as_mut().poll(&mut Context::from_waker(&waker)) {
                self.result = Some(r);
                self.fut = None;
            }
        }
        self.result.is_some()
    }

    /// Woken since the last poll.
    pub fn woken(&self) -> bool {
        self.wakes.get() != self.seen
    }
}

/// Set when the paired guard is dropped.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    /// The guard was dropped.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Sets its [`Flag`] when dropped.
pub struct DropGuard(Flag);

impl Drop for DropGuard {
    fn drop(&mut self) {
        (self.0).0.store(true, Ordering::SeqCst);
    }
}

/// A flag and the guard that sets it when dropped (move the guard into a future to see when
/// the future is dropped).
pub fn drop_flag() -> (Flag, DropGuard) {
    let f = Flag::default();
    (f.clone(), DropGuard(f))
}

/// Leak a value to get the `'static` reference tasks need (the kernel's executor is a static).
pub fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

/// Where [`park_once`]'s future leaves its waker (shared: clones are the same slot).
#[derive(Clone, Default)]
pub struct WakerSlot(Arc<Mutex<Option<Waker>>>);

impl WakerSlot {
    /// The slot's content (a panic in another test thread does not poison it for this one).
    pub fn lock(&self) -> MutexGuard<'_, Option<Waker>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A future that parks once: its first poll stores the waker in the slot and returns
/// `Pending`, the next poll completes.
pub fn park_once() -> (WakerSlot, impl Future<Output = ()> + Send + 'static) {
    let slot = WakerSlot::default();
    let s = slot.clone();
    let mut parked = false;
    let fut = std::future::poll_fn(move |cx| {
        if parked {
            return Poll::Ready(());
        }
        parked = true;
        *s.lock() = Some(cx.waker().clone());
        Poll::Pending
    });
    (slot, fut)
}

/// Held by the tests whose threads spin in lockstep: run alongside each other on a small
/// machine they starve each other's partner threads and take seconds instead of milliseconds.
pub fn spinning_test() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (slot, fut) = park_once();
        let t = thread::spawn(move || loop {
            if let Some(w) = slot.lock().take() {
                thread::sleep(Duration::from_millis(20));
                w.wake();
                return;
            }
            thread::yield_now();
        });
        block_on(fut);
        t.join().unwrap();
    }

    #[test]
    fn a_task_remembers_its_wakes() {
        let (slot, fut) = park_once();
        let mut t = Task::new(fut);
        assert!(!t.poll());
        assert!(!t.woken());
        slot.lock().take().unwrap().wake();
        assert!(t.woken());
        assert!(t.poll());
        assert_eq!(t.result, Some(()));
    }

    #[test]
    fn counting_and_drop_flags() {
        let (n, w) = counting_waker();
        w.wake_by_ref();
        w.wake();
        assert_eq!(n.get(), 2);
        let (flag, guard) = drop_flag();
        assert!(!flag.get());
        drop(guard);
        assert!(flag.get());
        assert!(poll_once(pin!(async { 7 })).is_ready());
    }
}
