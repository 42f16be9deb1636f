//! Helpers shared by the host tests.

use alloc::{boxed::Box, sync::Arc, task::Wake};
use core::{
    future::Future,
    pin::pin,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    task::{Context, Poll, Waker},
};
use spin::Mutex;
use std::{
    sync::{Mutex as StdMutex, MutexGuard},
    thread::{self, Thread},
};

/// Held by the tests whose threads spin in lockstep: run alongside each other on a small
/// machine they starve each other's partner threads and take seconds instead of milliseconds.
pub fn spinning_test() -> MutexGuard<'static, ()> {
    static LOCK: StdMutex<()> = StdMutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Leak a value to get the `'static` reference tasks need (the kernel's executor is a static).
pub fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drive a future on the current thread, parking between polls. A lost wakeup hangs the test.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

/// A waker that counts its wakes.
#[derive(Default)]
pub struct Counter(AtomicUsize);

impl Counter {
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

pub fn counting_waker() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    (c.clone(), Waker::from(c))
}

/// Set when the paired guard is dropped.
#[derive(Clone, Default)]
pub struct Flag(Arc<AtomicBool>);

impl Flag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct DropGuard(Flag);

impl Drop for DropGuard {
    fn drop(&mut self) {
        (self.0).0.store(true, Ordering::SeqCst);
    }
}

pub fn drop_flag() -> (Flag, DropGuard) {
    let f = Flag::default();
    (f.clone(), DropGuard(f))
}

pub type WakerSlot = Arc<Mutex<Option<Waker>>>;

/// A future that parks once: its first poll stores the waker in the slot and returns
/// `Pending`, the next poll completes.
pub fn park_once() -> (WakerSlot, impl Future<Output = ()> + Send + 'static) {
    let slot: WakerSlot = Arc::default();
    let s = slot.clone();
    let mut parked = false;
    let fut = core::future::poll_fn(move |cx| {
        if parked {
            return Poll::Ready(());
        }
        parked = true;
        *s.lock() = Some(cx.waker().clone());
        Poll::Pending
    });
    (slot, fut)
}
