//! The task executor.
//!
//! This module owns the tasks: their futures (boxed, type-erased), their wake state and their
//! join results. It also owns the [`Timers`] the tasks sleep on, so that the executor loop is
//! the one place that fires them.
//!
//! # Data structures
//!
//! - A slab of task slots behind a spin lock (`tasks`, rank `ExecutorTasks` of the lock order
//!   in `docs/locks.md`; a join handle's slot is `JoinSlot`). A slot holds the task's future and its
//!   cached [`Waker`] while the task is parked; both are moved out while the task is polled, so
//!   the lock is never held across a poll (a task may spawn, wake or abort while being polled).
//! - Per task, an `Arc<TaskHeader>` with the task's [`TaskId`] and an atomic `queued` flag. The
//!   task's `Waker` is built on this `Arc` (via [`Wake`]) once, at spawn.
//! - A bounded lock-free ready queue of `TaskId`s (crossbeam `ArrayQueue`), plus an `overflow`
//!   flag.
//!
//! # Invariants
//!
//! - `queued` is the truth: a task is ready iff its flag is set. A waker pushes the id only on
//!   the `false -> true` transition, so a task woken many times is queued once. When the push
//!   fails (queue full) the waker sets `overflow` instead, and the executor then scans the slab
//!   for set flags: no wake is ever lost and nothing panics. The queue may therefore hold stale
//!   or duplicate ids; a popped id whose flag is already clear, or whose slot has moved on to a
//!   new generation, is skipped.
//! - Tasks are polled in the order they were woken (FIFO), so sleeps fired in deadline order
//!   run in that order; only after an overflow does the fallback scan re-queue in slot order.
//! - `queued` is cleared *before* the poll, so a wake during the poll queues the task again.
//! - A finished task's header keeps `queued == true` forever, so a stale waker is a no-op that
//!   never touches the queue.
//!
//! # Who may call what
//!
//! - Waking a task's `Waker` (`wake`, `wake_by_ref`): anywhere, including interrupt handlers.
//!   It is an atomic swap plus a lock-free push: no allocation, no lock. (Dropping the *last*
//!   clone of a waker frees its header, so interrupt handlers must not drop wakers; use
//!   [`IrqWaker`](crate::IrqWaker), which never does.)
//! - [`Executor::spawn`], [`JoinHandle::abort`], `run*`: task or kernel context only, never in
//!   an interrupt handler (they allocate, free and take the slab lock).

use alloc::{boxed::Box, sync::Arc, task::Wake, vec::Vec};
use core::{
    fmt,
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    task::{Context, Poll, Waker},
};

use crate::lockorder::{Mutex, Rank};
use crossbeam_queue::ArrayQueue;
use spin::Once;

use crate::{platform::Platform, timer::Timers};

/// Ready-queue capacity of [`Executor::new`].
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;

type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Identifies a task: slot index plus the slot's generation, so that an id (and a waker) that
/// outlives its task can never name the next task to use the slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    fn new(index: u32, generation: u32) -> Self {
        Self((u64::from(generation) << 32) | u64::from(index))
    }

    /// Slot index in the executor's task table.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// How many tasks used this slot before this one (wrapping).
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({}.{})", self.index(), self.generation())
    }
}

/// Counters of executor activity (a snapshot; each field is read separately).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tasks spawned and not yet finished or aborted.
    pub tasks_alive: usize,
    /// Polls of task futures.
    pub polls: u64,
    /// Calls to a task waker (`wake` or `wake_by_ref`).
    pub wakes: u64,
    /// Wakes that found the task already queued (or finished) and so queued nothing.
    pub wakes_coalesced: u64,
    /// Pushes that found the ready queue full and fell back to a scan.
    pub queue_overflows: u64,
}

/// Why a [`JoinHandle`] has no output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    /// The task's future was dropped before it completed ([`JoinHandle::abort`], or the
    /// executor itself was dropped).
    Aborted,
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Aborted => f.write_str("task aborted"),
        }
    }
}

impl core::error::Error for JoinError {}

/// State shared by the executor, task wakers and join handles. Created lazily so that
/// [`Executor::new`] can be `const`.
struct Inner {
    /// Allocated with one slot more than `limit`; see [`Inner::enqueue`].
    queue: ArrayQueue<TaskId>,
    limit: usize,
    /// Some wake found the queue full: the queue is not the whole truth, scan the slab.
    overflow: AtomicBool,
    tasks: Mutex<Slab>,
    tasks_alive: AtomicUsize,
    polls: AtomicU64,
    wakes: AtomicU64,
    wakes_coalesced: AtomicU64,
    queue_overflows: AtomicU64,
}

impl Inner {
    fn new(limit: usize) -> Self {
        Self {
            queue: ArrayQueue::new(limit.saturating_add(1)),
            limit,
            overflow: AtomicBool::new(false),
            tasks: Mutex::new(Rank::ExecutorTasks, Slab::new()),
            tasks_alive: AtomicUsize::new(0),
            polls: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            wakes_coalesced: AtomicU64::new(0),
            queue_overflows: AtomicU64::new(0),
        }
    }

    /// Push a ready id, or record an overflow. Lock-free and allocation-free (interrupt safe).
    ///
    /// One slot is kept free: crossbeam's push spins while the slot it needs is half-way through
    /// a pop, so an interrupt handler pushing into a *full* queue whose consumer it interrupted
    /// mid-pop would spin forever on a single CPU. With a spare slot the handler never needs
    /// the slot being popped.
    fn enqueue(&self, id: TaskId) {
        if self.queue.len() >= self.limit || self.queue.push(id).is_err() {
            self.overflow.store(true, Ordering::Release);
            self.queue_overflows.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn has_ready(&self) -> bool {
        !self.queue.is_empty() || self.overflow.load(Ordering::Acquire)
    }

    /// Next id to look at, falling back to a slab scan after an overflow.
    fn next_ready(&self) -> Option<TaskId> {
        loop {
            if let Some(id) = self.queue.pop() {
                return Some(id);
            }
            // Clear before scanning: an overflow that happens during the scan sets it again.
            if !self.overflow.swap(false, Ordering::AcqRel) {
                return None;
            }
            self.rescan();
        }
    }

    /// Re-queue every task whose `queued` flag is set (after an overflow lost their ids).
    /// Pushing an id that is already in the queue is harmless: the second pop is skipped.
    fn rescan(&self) {
        let mut tasks = self.tasks.lock();
        for entry in tasks.slots.iter_mut().filter_map(|s| s.entry.as_mut()) {
            if !entry.header.queued.load(Ordering::Acquire) {
                continue;
            }
            if entry.parked.is_none() {
                // Being polled (nested or on another thread): its poller re-queues it.
                entry.requeue_after_poll = true;
                continue;
            }
            if self.queue.len() >= self.limit || self.queue.push(entry.header.id).is_err() {
                // Still too many: scan again once the queue has drained.
                self.overflow.store(true, Ordering::Release);
                break;
            }
        }
    }

    /// Poll one task if `id` names a live, queued, parked task. Returns whether it polled.
    fn poll_task(&self, id: TaskId) -> bool {
        let mut parked = {
            let mut tasks = self.tasks.lock();
            let Some(entry) = tasks.get_mut(id) else {
                return false; // finished: stale id
            };
            if entry.parked.is_none() {
                // Popped by a nested `run_until_idle` while an outer one polls it. Its
                // `queued` flag may now have no queue entry; the outer poller re-queues it.
                if entry.header.queued.load(Ordering::Acquire) {
                    entry.requeue_after_poll = true;
                }
                return false;
            }
            // Clear before polling, so that a wake during the poll queues the task again.
            if !entry.header.queued.swap(false, Ordering::AcqRel) {
                return false; // duplicate id: already polled since it was queued
            }
            match entry.parked.take() {
                Some(p) => Some(p),
                None => return false,
            }
        };
        let Some(p) = parked.as_mut() else {
            return false;
        };
        self.polls.fetch_add(1, Ordering::Relaxed);
        let poll = p.future.as_mut().poll(&mut Context::from_waker(&p.waker));

        let removed = {
            let mut tasks = self.tasks.lock();
            match tasks.get_mut(id) {
                Some(entry) if poll.is_pending() && !entry.abort_requested => {
                    entry.parked = parked.take();
                    if core::mem::take(&mut entry.requeue_after_poll)
                        && entry.header.queued.load(Ordering::Acquire)
                    {
                        self.enqueue(id);
                    }
                    None
                }
                _ => self.remove_locked(&mut tasks, id),
            }
        };
        // Destructors run outside the lock: they may spawn, wake, or abort other tasks.
        drop(removed);
        drop(parked);
        true
    }

    fn remove_locked(&self, tasks: &mut Slab, id: TaskId) -> Option<Entry> {
        let entry = tasks.remove(id)?;
        self.tasks_alive.fetch_sub(1, Ordering::Relaxed);
        Some(entry)
    }
}

/// Per-task state reachable from wakers (which may outlive the task).
struct TaskHeader {
    id: TaskId,
    /// Set while the task is ready (queued or about to be). Stays set once the task is gone.
    queued: AtomicBool,
    inner: Arc<Inner>,
}

impl Wake for TaskHeader {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let inner = &self.inner;
        inner.wakes.fetch_add(1, Ordering::Relaxed);
        if self.queued.swap(true, Ordering::AcqRel) {
            inner.wakes_coalesced.fetch_add(1, Ordering::Relaxed);
        } else {
            inner.enqueue(self.id);
        }
    }
}

/// What a task slot holds while the task is not being polled.
struct Parked {
    future: TaskFuture,
    /// Built once at spawn and reused for every poll.
    waker: Waker,
}

struct Entry {
    header: Arc<TaskHeader>,
    /// `None` while the future is out being polled.
    parked: Option<Parked>,
    /// `abort` arrived during a poll: drop the future when the poll returns.
    abort_requested: bool,
    /// A scan or a nested pop consumed this task's queue entry during its poll.
    requeue_after_poll: bool,
}

struct Slot {
    generation: u32,
    entry: Option<Entry>,
}

struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slab {
    const fn new() -> Self {
        Self { slots: Vec::new(), free: Vec::new() }
    }

    fn insert_with(&mut self, make: impl FnOnce(TaskId) -> Entry) -> TaskId {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len()).expect("more than u32::MAX tasks");
                self.slots.push(Slot { generation: 0, entry: None });
                i
            }
        };
        let slot = &mut self.slots[index as usize];
        let id = TaskId::new(index, slot.generation);
        slot.entry = Some(make(id));
        id
    }

    fn get_mut(&mut self, id: TaskId) -> Option<&mut Entry> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.entry.as_mut()
    }

    fn remove(&mut self, id: TaskId) -> Option<Entry> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index());
        // Finished for good: later wakes through stale wakers coalesce and queue nothing.
        entry.header.queued.store(true, Ordering::Release);
        Some(entry)
    }
}

/// A cooperative executor for `'static` futures. `Sync`, and `const`-constructible so it can
/// live in a `static`.
pub struct Executor {
    capacity: usize,
    inner: Once<Arc<Inner>>,
    timers: Timers,
}

impl Default for Executor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor {
    /// An executor with a ready queue of [`DEFAULT_QUEUE_CAPACITY`]. Allocates nothing until the
    /// first spawn.
    pub const fn new() -> Self {
        Self::with_queue_capacity(DEFAULT_QUEUE_CAPACITY)
    }

    /// An executor whose ready queue holds `capacity` ids. Overflowing it costs a scan of all
    /// tasks, never a lost wake; small capacities are for tests. Panics if `capacity` is 0.
    pub const fn with_queue_capacity(capacity: usize) -> Self {
        assert!(capacity > 0, "ready queue capacity must be non-zero");
        Self { capacity, inner: Once::new(), timers: Timers::new() }
    }

    fn inner(&self) -> &Arc<Inner> {
        self.inner.call_once(|| Arc::new(Inner::new(self.capacity)))
    }

    /// Start a task. It is ready at once and runs on the next `run_until_idle`/`run` pass.
    ///
    /// Callable before `run`, from inside a running task, and from kernel code; never from an
    /// interrupt handler (it allocates and takes the task lock).
    pub fn spawn<F, T>(&self, future: F) -> JoinHandle<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = self.inner();
        let state = Arc::new(JoinState::new());
        // The guard lives inside the task future, so it is dropped with it: completing the join
        // with `Aborted` however the future goes away without finishing.
        let guard = JoinGuard(state.clone());
        let task: TaskFuture = Box::pin(async move {
            let guard = guard;
            let output = future.await;
            guard.finish(output);
        });
        let id = inner.tasks.lock().insert_with(|id| {
            // Spawned ready: `queued` starts set and the id is pushed below.
            let header =
                Arc::new(TaskHeader { id, queued: AtomicBool::new(true), inner: inner.clone() });
            let waker = Waker::from(header.clone());
            Entry {
                header,
                parked: Some(Parked { future: task, waker }),
                abort_requested: false,
                requeue_after_poll: false,
            }
        });
        inner.tasks_alive.fetch_add(1, Ordering::Relaxed);
        inner.enqueue(id);
        JoinHandle { id, state, inner: inner.clone() }
    }

    /// Expire due timers (when [`Timers::set_clock`] gave a clock), then poll ready tasks until
    /// none is ready. Returns the number of polls.
    ///
    /// A task that wakes itself on every poll keeps this from returning; tasks must make
    /// progress or wait on something external.
    pub fn run_until_idle(&self) -> usize {
        if let Some(now) = self.timers.clock_now() {
            self.timers.expire(now);
        }
        let Some(inner) = self.inner.get() else {
            return 0; // nothing was ever spawned
        };
        let mut polls = 0;
        while let Some(id) = inner.next_ready() {
            if inner.poll_task(id) {
                polls += 1;
            }
        }
        polls
    }

    /// Whether some task is ready (or an overflow scan is pending). Interrupt safe.
    pub fn has_ready_tasks(&self) -> bool {
        self.inner.get().is_some_and(|i| i.has_ready())
    }

    /// Run forever: poll until idle, then halt until an interrupt.
    ///
    /// No lost wakeup: wakes come from task/kernel code (which runs before the check below and
    /// so is seen by it) or from interrupt handlers. With interrupts disabled we check the ready
    /// queue and the earliest timer; an interrupt that fired before `disable_interrupts` has
    /// already queued its task and is seen by the check; one that arrives after it stays
    /// pending until `enable_interrupts_and_wait`, which enables and halts atomically, so that
    /// interrupt ends the halt and the loop goes round again. Sleeps that are not yet due rely
    /// on the periodic timer interrupt to end the halt; the loop then expires them.
    pub fn run(&self, platform: &dyn Platform) -> ! {
        loop {
            self.timers.expire(platform.now_ns());
            self.run_until_idle();
            platform.disable_interrupts();
            let timer_due = self.timers.next_deadline().is_some_and(|d| d <= platform.now_ns());
            if timer_due || self.has_ready_tasks() {
                platform.enable_interrupts();
                continue;
            }
            platform.enable_interrupts_and_wait();
        }
    }

    /// The timers this executor expires.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// Activity counters.
    pub fn stats(&self) -> Stats {
        let Some(inner) = self.inner.get() else {
            return Stats::default();
        };
        Stats {
            tasks_alive: inner.tasks_alive.load(Ordering::Relaxed),
            polls: inner.polls.load(Ordering::Relaxed),
            wakes: inner.wakes.load(Ordering::Relaxed),
            wakes_coalesced: inner.wakes_coalesced.load(Ordering::Relaxed),
            queue_overflows: inner.queue_overflows.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Executor {
    /// Drops every remaining task future (their joiners see [`JoinError::Aborted`]), breaking
    /// the reference cycles between the task table and the task headers.
    fn drop(&mut self) {
        let Some(inner) = self.inner.get() else {
            return;
        };
        let entries: Vec<Entry> = {
            let mut tasks = inner.tasks.lock();
            let ids: Vec<TaskId> =
                tasks.slots.iter().filter_map(|s| s.entry.as_ref().map(|e| e.header.id)).collect();
            ids.into_iter().filter_map(|id| inner.remove_locked(&mut tasks, id)).collect()
        };
        drop(entries);
    }
}

/// Completion slot shared by a task and its [`JoinHandle`].
struct JoinState<T> {
    slot: Mutex<JoinSlot<T>>,
}

struct JoinSlot<T> {
    finished: bool,
    result: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
}

impl<T> JoinState<T> {
    fn new() -> Self {
        let slot = JoinSlot { finished: false, result: None, waker: None };
        Self { slot: Mutex::new(Rank::JoinSlot, slot) }
    }

    /// First completion wins; wakes the joiner with the lock released.
    fn complete(&self, result: Result<T, JoinError>) {
        let waker = {
            let mut slot = self.slot.lock();
            if slot.finished {
                return;
            }
            slot.finished = true;
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Owned by the task future; reports `Aborted` if dropped before [`JoinGuard::finish`].
struct JoinGuard<T>(Arc<JoinState<T>>);

impl<T> JoinGuard<T> {
    fn finish(self, output: T) {
        self.0.complete(Ok(output));
    }
}

impl<T> Drop for JoinGuard<T> {
    fn drop(&mut self) {
        self.0.complete(Err(JoinError::Aborted));
    }
}

/// Handle to a spawned task: a future of its output. Dropping it detaches the task, which
/// keeps running.
pub struct JoinHandle<T> {
    id: TaskId,
    state: Arc<JoinState<T>>,
    inner: Arc<Inner>,
}

impl<T> JoinHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Whether the task has completed or its future has been dropped.
    pub fn is_finished(&self) -> bool {
        self.state.slot.lock().finished
    }

    /// Drop the task's future: now if it is not being polled, else as soon as the current poll
    /// returns. The joiner then gets `Err(JoinError::Aborted)` (unless that last poll completed
    /// the task, which then keeps its output). No effect on a finished task. Task context only.
    pub fn abort(&self) {
        let removed = {
            let mut tasks = self.inner.tasks.lock();
            match tasks.get_mut(self.id) {
                None => None,
                Some(entry) if entry.parked.is_none() => {
                    entry.abort_requested = true;
                    None
                }
                Some(_) => self.inner.remove_locked(&mut tasks, self.id),
            }
        };
        // Outside the lock: the future's destructors may use the executor.
        drop(removed);
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    /// Panics if polled again after returning `Ready`.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.state.slot.lock();
        if let Some(result) = slot.result.take() {
            return Poll::Ready(result);
        }
        assert!(!slot.finished, "JoinHandle polled after it returned");
        match &mut slot.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            w => *w = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Return `Pending` once, waking ourselves: every other ready task runs before this one
/// continues. For a task with more work at once that should not hog the executor.
pub async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            return core::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        core::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IrqQueue;
    use alloc::{string::String, vec};
    use std::{
        panic::{catch_unwind, AssertUnwindSafe},
        sync::{Arc as StdArc, Condvar, Mutex as StdMutex},
        thread,
    };
    use testkit::*;

    /// The cached waker of a live task (test back door).
    fn task_waker(ex: &Executor, id: TaskId) -> Waker {
        let mut tasks = ex.inner().tasks.lock();
        let entry = tasks.get_mut(id).expect("task alive");
        Waker::from(entry.header.clone())
    }

    fn queue_len(ex: &Executor) -> usize {
        ex.inner().queue.len()
    }

    #[test]
    fn const_executor_in_static() {
        static EX: Executor = Executor::new();
        assert_eq!(EX.stats(), Stats::default());
        assert_eq!(EX.run_until_idle(), 0);
        let h = EX.spawn(async { 7 });
        assert_eq!(EX.run_until_idle(), 1);
        assert_eq!(block_on(h), Ok(7));
    }

    #[test]
    fn join_handle_returns_output() {
        let ex = Executor::new();
        let h = ex.spawn(async { 40 + 2 });
        assert!(!h.is_finished());
        assert_eq!(ex.run_until_idle(), 1);
        assert!(h.is_finished());
        assert_eq!(block_on(h), Ok(42));
        assert_eq!(ex.stats().tasks_alive, 0);
    }

    #[test]
    fn wake_before_first_poll_coalesces_with_spawn() {
        let ex = Executor::new();
        let (slot, fut) = park_once();
        let h = ex.spawn(fut);
        let w = task_waker(&ex, h.id());
        // Spawn already queued it; these wakes must not queue it again.
        w.wake_by_ref();
        w.wake_by_ref();
        w.wake_by_ref();
        assert_eq!(queue_len(&ex), 1);
        assert_eq!(ex.stats().wakes_coalesced, 3);
        assert_eq!(ex.run_until_idle(), 1);
        assert!(slot.lock().is_some(), "parked on first poll");
        assert!(!h.is_finished());
    }

    #[test]
    fn wake_during_poll_polls_again() {
        let ex = Executor::new();
        let mut n = 0;
        let h = ex.spawn(core::future::poll_fn(move |cx| {
            n += 1;
            if n < 3 {
                cx.waker().wake_by_ref(); // wake ourselves while being polled
                Poll::Pending
            } else {
                Poll::Ready(n)
            }
        }));
        assert_eq!(ex.run_until_idle(), 3);
        assert_eq!(block_on(h), Ok(3));
    }

    #[test]
    fn duplicate_wakes_coalesce() {
        let ex = Executor::new();
        let (slot, fut) = park_once();
        let h = ex.spawn(fut);
        assert_eq!(ex.run_until_idle(), 1);
        let before = ex.stats();
        let w = slot.lock().take().unwrap();
        for _ in 0..5 {
            w.wake_by_ref();
        }
        let after = ex.stats();
        assert_eq!(after.wakes - before.wakes, 5);
        assert_eq!(after.wakes_coalesced - before.wakes_coalesced, 4);
        assert_eq!(queue_len(&ex), 1);
        assert_eq!(ex.run_until_idle(), 1);
        assert!(h.is_finished());
        assert_eq!(ex.stats().polls, 2);
    }

    #[test]
    fn full_wake_queue_loses_nothing() {
        let ex = Executor::with_queue_capacity(2);
        let mut slots = vec![];
        let mut handles = vec![];
        for _ in 0..10 {
            let (slot, fut) = park_once();
            slots.push(slot);
            handles.push(ex.spawn(fut));
        }
        assert!(ex.stats().queue_overflows > 0, "spawning 10 overflowed");
        assert_eq!(ex.run_until_idle(), 10);
        let wakers: Vec<Waker> = slots.iter().map(|s| s.lock().take().unwrap()).collect();
        let overflows = ex.stats().queue_overflows;
        for w in &wakers {
            w.wake_by_ref();
        }
        assert_eq!(ex.stats().queue_overflows - overflows, 8);
        assert!(ex.has_ready_tasks());
        // Each task polled exactly once more, none lost, none twice.
        assert_eq!(ex.run_until_idle(), 10);
        assert!(handles.iter().all(|h| h.is_finished()));
        assert_eq!(ex.stats().tasks_alive, 0);
        assert!(!ex.has_ready_tasks());
    }

    #[test]
    fn abort_drops_future_and_stale_waker_is_harmless() {
        let ex = Executor::with_queue_capacity(4);
        let (flag, guard) = drop_flag();
        let (slot, fut) = park_once();
        let h = ex.spawn(async move {
            let _guard = guard;
            fut.await;
            core::future::pending::<()>().await;
        });
        assert_eq!(ex.run_until_idle(), 1);
        let stale = slot.lock().take().unwrap();
        assert!(!flag.get());
        h.abort();
        assert!(flag.get(), "future dropped at once");
        assert!(h.is_finished());
        assert_eq!(ex.stats().tasks_alive, 0);

        // The slot is reused by a new task; the old waker must not poll it.
        let (slot2, fut2) = park_once();
        let h2 = ex.spawn(fut2);
        assert_eq!(h2.id().index(), h.id().index());
        assert_ne!(h2.id(), h.id());
        assert_eq!(ex.run_until_idle(), 1);
        for _ in 0..10 {
            stale.wake_by_ref();
        }
        assert_eq!(queue_len(&ex), 0, "stale wakes queue nothing");
        assert_eq!(ex.run_until_idle(), 0);
        assert!(slot2.lock().is_some());
        assert!(!h2.is_finished());
        assert_eq!(block_on(h), Err(JoinError::Aborted));
    }

    /// A second handle to the same task (test back door), so a task can abort itself.
    fn alias<T>(h: &JoinHandle<T>) -> JoinHandle<T> {
        JoinHandle { id: h.id, state: h.state.clone(), inner: h.inner.clone() }
    }

    #[test]
    fn abort_during_poll_drops_after_poll() {
        let ex = Executor::new();
        let (flag, guard) = drop_flag();
        let me: StdArc<StdMutex<Option<JoinHandle<()>>>> = Default::default();
        let me2 = me.clone();
        let flag2 = flag.clone();
        let h = ex.spawn(async move {
            let _guard = guard;
            me2.lock().unwrap().take().unwrap().abort(); // while being polled: deferred
            assert!(!flag2.get(), "not dropped during its own poll");
            core::future::pending::<()>().await;
        });
        *me.lock().unwrap() = Some(alias(&h));
        assert_eq!(ex.run_until_idle(), 1);
        assert!(flag.get(), "dropped right after the poll");
        assert_eq!(ex.stats().tasks_alive, 0);
        assert_eq!(block_on(h), Err(JoinError::Aborted));
    }

    #[test]
    fn dropped_handle_detaches() {
        let ex = Executor::new();
        let (flag, guard) = drop_flag();
        drop(ex.spawn(async move {
            let _g = guard;
        }));
        assert_eq!(ex.run_until_idle(), 1);
        assert!(flag.get(), "task ran to completion");
    }

    #[test]
    fn tasks_spawn_tasks_while_running() {
        let ex: &'static Executor = leak(Executor::new());
        let h = ex.spawn(async move {
            let children: Vec<_> = (1..=3u32).map(|i| ex.spawn(async move { i * 10 })).collect();
            let mut sum = 0;
            for c in children {
                sum += c.await.unwrap();
            }
            // Grandchild spawned from a child.
            let g = ex.spawn(async move { ex.spawn(async { 5u32 }).await.unwrap() });
            sum + g.await.unwrap()
        });
        // Everything finishes within one call: spawned tasks are picked up by the same loop.
        ex.run_until_idle();
        assert_eq!(block_on(h), Ok(65));
        assert_eq!(ex.stats().tasks_alive, 0);
    }

    #[test]
    fn nested_run_until_idle_keeps_wakes() {
        let ex: &'static Executor = leak(Executor::new());
        let mut n = 0;
        let h = ex.spawn(core::future::poll_fn(move |cx| {
            n += 1;
            if n == 1 {
                cx.waker().wake_by_ref();
                // The nested loop pops our own id while we are being polled.
                ex.run_until_idle();
                Poll::Pending
            } else {
                Poll::Ready(n)
            }
        }));
        ex.run_until_idle();
        assert!(h.is_finished(), "wake consumed by the nested loop was lost");
        assert_eq!(block_on(h), Ok(2));
    }

    #[test]
    fn stale_handle_abort_spares_slot_reuser() {
        let ex = Executor::new();
        let old = ex.spawn(async {});
        ex.run_until_idle();
        assert!(old.is_finished());
        let (slot, fut) = park_once();
        let new = ex.spawn(fut);
        assert_eq!(new.id().index(), old.id().index());
        ex.run_until_idle();
        old.abort(); // finished task: must not touch the slot's new tenant
        assert!(!new.is_finished());
        assert_eq!(ex.stats().tasks_alive, 1);
        slot.lock().take().unwrap().wake();
        assert_eq!(ex.run_until_idle(), 1);
        assert_eq!(block_on(new), Ok(()));
        assert_eq!(block_on(old), Ok(()));
    }

    #[test]
    fn dropping_executor_aborts_tasks() {
        let ex = Executor::new();
        let (flag, guard) = drop_flag();
        let h = ex.spawn(async move {
            let _g = guard;
            core::future::pending::<()>().await;
        });
        ex.run_until_idle();
        drop(ex);
        assert!(flag.get());
        assert_eq!(block_on(h), Err(JoinError::Aborted));
    }

    #[test]
    fn wakes_from_other_threads() {
        let ex: &'static Executor = leak(Executor::new());
        let (slot, fut) = park_once();
        let h = ex.spawn(fut);
        ex.run_until_idle();
        let w = slot.lock().take().unwrap();
        let t = thread::spawn(move || {
            for _ in 0..1000 {
                w.wake_by_ref();
            }
        });
        t.join().unwrap();
        assert_eq!(ex.run_until_idle(), 1);
        assert!(h.is_finished());
    }

    /// A CPU model: "interrupts" are closures run by the thread that raises them when the CPU
    /// has interrupts enabled, or left pending and run on enable, like real hardware.
    struct MockCpu {
        state: StdMutex<CpuState>,
        cond: Condvar,
    }

    type Irq = Box<dyn FnOnce() + Send>;

    #[derive(Default)]
    struct CpuState {
        enabled: bool,
        pending: Vec<Irq>,
        delivered: u64,
        halts: u64,
        halted: bool,
        stop: bool,
        /// Run inside the first `disable_interrupts`, just before interrupts go off: an
        /// interrupt landing between `run_until_idle` and the idle check.
        on_first_disable: Option<Irq>,
    }

    const STOP: &str = "mock cpu stop";

    impl MockCpu {
        fn new() -> Self {
            Self {
                state: StdMutex::new(CpuState { enabled: true, ..Default::default() }),
                cond: Condvar::new(),
            }
        }

        /// Raise an interrupt from another thread.
        fn interrupt(&self, irq: Irq) {
            let mut st = self.state.lock().unwrap();
            if st.enabled {
                irq();
                st.delivered += 1;
                self.cond.notify_all();
            } else {
                st.pending.push(irq);
            }
        }

        fn deliver_pending(&self, st: &mut CpuState) {
            for irq in st.pending.drain(..) {
                irq();
                st.delivered += 1;
            }
            self.cond.notify_all();
        }

        fn wait_until_halted(&self, halts: u64) {
            let mut st = self.state.lock().unwrap();
            while !(st.halted && st.halts >= halts) {
                st = self.cond.wait(st).unwrap();
            }
        }
    }

    impl Platform for MockCpu {
        fn now_ns(&self) -> u64 {
            0
        }

        fn disable_interrupts(&self) {
            let irq = self.state.lock().unwrap().on_first_disable.take();
            if let Some(irq) = irq {
                self.interrupt(irq);
            }
            self.state.lock().unwrap().enabled = false;
        }

        fn enable_interrupts(&self) {
            let mut st = self.state.lock().unwrap();
            st.enabled = true;
            self.deliver_pending(&mut st);
        }

        fn enable_interrupts_and_wait(&self) {
            let mut st = self.state.lock().unwrap();
            st.enabled = true;
            if st.stop {
                panic!("{STOP}");
            }
            st.halts += 1;
            if !st.pending.is_empty() {
                // sti; hlt with an interrupt pending: taken right after hlt starts.
                self.deliver_pending(&mut st);
                return;
            }
            st.halted = true;
            self.cond.notify_all();
            let seen = st.delivered;
            while st.delivered == seen {
                st = self.cond.wait(st).unwrap();
            }
            st.halted = false;
        }
    }

    #[test]
    fn run_halts_only_when_idle() {
        static Q: IrqQueue<u32, 8> = IrqQueue::new();
        let ex: &'static Executor = leak(Executor::new());
        let cpu: &'static MockCpu = leak(MockCpu::new());

        let halts_at: StdArc<StdMutex<Vec<u64>>> = Default::default();
        let record = halts_at.clone();
        ex.spawn(async move {
            for expect in 1..=3 {
                assert_eq!(Q.pop().await, expect);
                record.lock().unwrap().push(cpu.state.lock().unwrap().halts);
            }
            cpu.state.lock().unwrap().stop = true;
        });
        // Item 1 arrives between run_until_idle and the idle check: it must be taken without
        // halting.
        cpu.state.lock().unwrap().on_first_disable = Some(Box::new(|| {
            Q.push_from_irq(1);
        }));

        let runner = thread::spawn(move || catch_unwind(AssertUnwindSafe(|| ex.run(cpu))));

        // Item 2: raised while the CPU is halted.
        cpu.wait_until_halted(1);
        cpu.interrupt(Box::new(|| {
            Q.push_from_irq(2);
        }));
        // Item 3: raised while halted again.
        cpu.wait_until_halted(2);
        cpu.interrupt(Box::new(|| {
            Q.push_from_irq(3);
        }));

        let err = runner.join().unwrap().expect_err("run returned only by the stop panic");
        assert_eq!(err.downcast_ref::<String>().map(String::as_str), Some(STOP));
        assert_eq!(*halts_at.lock().unwrap(), vec![0, 1, 2]);
        assert_eq!(Q.dropped(), 0);
    }

    #[test]
    fn run_expires_timers_with_platform_clock() {
        struct Clock {
            now: AtomicU64,
            halts: AtomicU64,
        }
        impl Platform for Clock {
            fn now_ns(&self) -> u64 {
                self.now.load(Ordering::SeqCst)
            }
            fn disable_interrupts(&self) {}
            fn enable_interrupts(&self) {}
            fn enable_interrupts_and_wait(&self) {
                // Each halt ends with a timer tick 10ns later.
                if self.halts.fetch_add(1, Ordering::SeqCst) == 100 {
                    panic!("{STOP}");
                }
                self.now.fetch_add(10, Ordering::SeqCst);
            }
        }
        let ex: &'static Executor = leak(Executor::new());
        let clock: &'static Clock =
            leak(Clock { now: AtomicU64::new(0), halts: AtomicU64::new(0) });
        let woke_at: StdArc<StdMutex<Vec<u64>>> = Default::default();
        let w = woke_at.clone();
        ex.spawn(async move {
            ex.timers().sleep_until(35).await;
            w.lock().unwrap().push(clock.now_ns());
            ex.timers().sleep(20).await;
            w.lock().unwrap().push(clock.now_ns());
        });
        let r = catch_unwind(AssertUnwindSafe(|| ex.run(clock)));
        assert!(r.is_err());
        assert_eq!(*woke_at.lock().unwrap(), vec![40, 60]);
        assert!(ex.timers().is_empty());
    }
}
