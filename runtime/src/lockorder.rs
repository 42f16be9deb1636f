//! The lock order, written once ([`Rank`]) and checked in debug builds ([`Mutex`]).
//!
//! Every spin lock of the kernel (its own, this crate's, the drivers' and the file system's) is
//! a [`Mutex`] of one [`Rank`], its lock class. The ranks are totally ordered, in the order of
//! the enum, and a context takes a lock only if its rank is greater than the rank of every lock
//! it holds already. Contexts that all follow one total order never wait on each other in a
//! cycle, so spin locks cannot deadlock, on one CPU or on many. `docs/locks.md` is the table:
//! for each rank, what it protects, who takes it, and what may be taken under it.
//!
//! # Interrupts
//!
//! A lock that an interrupt handler may take is *interrupt-safe* ([`Rank::irq_safe`]: only the
//! log's today). Three rules keep interrupts out of deadlocks, on one CPU or many:
//!
//! 1. an interrupt handler takes interrupt-safe locks only;
//! 2. an interrupt-safe lock is taken with interrupts disabled, always (else an interrupt on
//!    the same CPU could spin on it for ever);
//! 3. under an interrupt-safe lock only interrupt-safe locks are taken (else CPU 0 holds `A`
//!    with interrupts on and its interrupt handler spins on `B`, while CPU 1 holds `B`, with
//!    interrupts off, and spins on `A`).
//!
//! Rules 1 and 2 are checked at each lock; rule 3 holds by construction, as the
//! interrupt-safe ranks are the last of the order (a compile-time assertion).
//!
//! With these, the locks of an interrupt handler never wait on those of the code it
//! interrupted, so a handler is checked against a held set of its own: [`enter_interrupt`]
//! saves the interrupted code's set and clears it, and dropping the returned guard restores
//! it. Within the handler the order is checked as anywhere else.
//!
//! # Where the held set lives
//!
//! One [`HeldLocks`] per CPU: the kernel is not preempted while it holds a spin lock, and
//! every switch of process is made holding none ([`assert_none_held`] checks it), so the locks
//! held on a CPU are those of the one context running there. The runtime knows no CPU: the
//! platform [`install`]s a [`Context`] that finds the running CPU's set and says whether its
//! interrupts are enabled. Until then (and on the host, where no test installs one) nothing is
//! checked.
//!
//! # Cost
//!
//! In release builds (`debug_assertions` off) a [`Mutex`] is a `spin::Mutex` and nothing more:
//! no rank is stored, nothing is checked, no hook is called. In debug builds a lock costs a
//! call through the installed context and two atomic operations on the CPU's set.

use core::fmt;
use core::ops::{Deref, DerefMut};
#[cfg(debug_assertions)]
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};

/// Defines [`Rank`] and the list of every rank from one list of lock classes, so that the two
/// cannot disagree.
macro_rules! ranks {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// A lock class. A context takes locks in increasing rank only (see the
        /// [module docs](self)). The order is the one of this enum; `docs/locks.md` explains
        /// each entry.
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rank {
            $($(#[$doc])* $name,)*
        }

        /// Every rank, in order.
        const ALL: &[Rank] = &[$(Rank::$name,)*];
    };
}

ranks! {
    /// A process's descriptor table (`Process::files`): closing files under it drops them.
    ProcFiles,
    /// A process's working directory (`Process::cwd`): replacing it drops an inode handle.
    ProcCwd,
    /// A process's root directory (`Process::root`).
    ProcRoot,
    /// A file-system namespace's root directory handle (`ns::Namespace::root`): cloning or
    /// dropping an inode handle under it takes the inode cache's lock.
    NsRoot,
    /// The read offset of an open `/proc` file.
    ProcFileOffset,
    /// A socket file's state (`net::socket::Socket`): the stack is taken under it.
    Socket,
    /// One network namespace's stack: its smoltcp interface and sockets, the listeners, its
    /// ports (`net::stack`). Two stacks' locks are never held at once (one rank: checked).
    Stack,
    /// A pipe's ring and end counts (`file::pipe`).
    Pipe,
    /// The consoles by namespace (`file::console::VTS`).
    ConsoleVts,
    /// The requests to bring a console to the front, for the input task (`file::console`).
    ConsoleSwitch,
    /// A console's line discipline and queue of completed input lines (`file::console::Vt`).
    ConsoleInput,
    /// A console's output: in front (to the screen) or not (into its scrollback ring).
    ConsoleOutput,
    /// The virtio block device's request slots (`drivers::virtio_blk`).
    VirtioBlk,
    /// The file system's log state (`fs::log`): the buffer cache is pinned under it.
    FsLog,
    /// The buffer cache's map of blocks to buffers (`fs::bcache`).
    FsBufferCache,
    /// The inode cache's slots and reference counts (`fs::inode`).
    FsInodes,
    /// Inodes unlinked while open, freed once their last handle goes (`fs::Fs::orphans`).
    FsOrphans,
    /// The internal state of an async mutex ([`crate::sync::Mutex`]): who holds it, who waits.
    AsyncMutex,
    /// The internal state of a wait queue ([`crate::sync::WaitQueue`]): generation, waiters.
    WaitQueue,
    /// The executor's timers ([`crate::timer::Timers`]).
    Timers,
    /// The executor's task table ([`crate::executor`]).
    ExecutorTasks,
    /// A task's join slot: its result and its joiner's waker ([`crate::executor`]).
    JoinSlot,
    /// A process's address space (`Process::vm`).
    ProcVm,
    /// A process's name.
    ProcName,
    /// A process's waker slot.
    ProcWaker,
    /// The process running on this CPU (`proc::sched::CURRENT`).
    Current,
    /// The namespace table (`ns::TABLE`): the live namespaces by id.
    NsTable,
    /// The network stacks by namespace id (`net::netns`).
    NetStacks,
    /// The process table (`proc::TABLE`).
    ProcTable,
    /// A process's process group (`Process::pgrp`), read and changed under the table's lock.
    ProcGroup,
    /// The kernel stacks' slots (`mm::kstack`).
    KernelStacks,
    /// PCI configuration space (the 0xCF8/0xCFC port pair).
    PciConfig,
    /// The interrupt descriptor table (written at boot).
    Idt,
    /// The network stack's lock in the sleep design (`net=sleep`, `net::drive::sleep`), where
    /// the E1000's and the timer's interrupt handlers run the stack, so it is interrupt-safe
    /// and everything under it is too (the bridge, the NIC's rings, the sleep table, the
    /// heap). The event design's stacks use `Stack`. Never two stacks at once (one rank:
    /// checked).
    StackIrq,
    /// The in-kernel bridge's ports and queues (`net::bridge`): a stack's device hands frames
    /// to it under the stack's lock; the bridge takes no stack lock, and notifies a port's
    /// wait queue after releasing its own lock. Interrupt-safe (the sleep design's handlers).
    Bridge,
    /// ARP replies one stack saw, for `arping` (noted by its device under the stack lock).
    ArpSeen,
    /// The E1000's receive ring (taken by the stack's device under the stack lock).
    NicRx,
    /// The E1000's transmit ring.
    NicTx,
    /// The sleep design's table of processes asleep on a channel (`proc::sleep`): `sleep`
    /// registers under the stack lock, `wakeup` runs in interrupt handlers.
    SleepChans,
    /// The heap's region of large blocks (`mm::heap`).
    HeapLarge,
    /// The heap's small objects (`mm::heap`): taken under almost everything.
    Heap,
    /// The kernel's page table (`mm::paging`): the heap maps pages under its lock.
    KernelPageTable,
    /// The physical frame allocator (`mm::frame`).
    Frames,
    /// The kernel log's output devices (`log`): anything may print, interrupt handlers too.
    Log,
}

/// Every rank, in order (the held set is a bit mask: at most 64).
const RANKS: usize = ALL.len();
const _: () = assert!(RANKS <= 64);

// Rule 3 of the module docs, made static: the interrupt-safe ranks are the last ones, so the
// order itself allows nothing but interrupt-safe locks under an interrupt-safe lock.
#[cfg(debug_assertions)]
const _: () = {
    let mut i = 1;
    while i < RANKS {
        assert!(!ALL[i - 1].irq_safe() || ALL[i].irq_safe(), "interrupt-safe ranks come last");
        i += 1;
    }
};

impl Rank {
    /// May an interrupt handler take it? Then it is taken with interrupts disabled only, and
    /// only interrupt-safe locks are taken under it (module docs, "Interrupts").
    pub const fn irq_safe(self) -> bool {
        matches!(
            self,
            Rank::StackIrq
                | Rank::Bridge
                | Rank::ArpSeen
                | Rank::NicRx
                | Rank::NicTx
                | Rank::SleepChans
                | Rank::HeapLarge
                | Rank::Heap
                | Rank::KernelPageTable
                | Rank::Frames
                | Rank::Log
        )
    }

    #[cfg(debug_assertions)]
    const fn bit(self) -> u64 {
        1 << self as u8
    }

    /// The rank of bit `i` of a held set.
    #[cfg(debug_assertions)]
    fn of_bit(i: u32) -> Rank {
        ALL[i as usize]
    }
}

/// The highest rank in a held set.
#[cfg(debug_assertions)]
fn highest(mask: u64) -> Option<Rank> {
    (mask != 0).then(|| Rank::of_bit(63 - mask.leading_zeros()))
}

/// The spin locks held by the context running on one CPU (the locks of the code an interrupt
/// interrupted are put aside while the handler runs: [`enter_interrupt`]). Empty in release
/// builds.
pub struct HeldLocks {
    /// Bit `r` set: a lock of rank `r` is held (never two of one rank: the order is strict).
    #[cfg(debug_assertions)]
    mask: AtomicU64,
    /// Interrupt handlers running (nested: an exception inside a handler).
    #[cfg(debug_assertions)]
    interrupts: AtomicU32,
}

impl HeldLocks {
    /// An empty set.
    pub const fn new() -> Self {
        HeldLocks {
            #[cfg(debug_assertions)]
            mask: AtomicU64::new(0),
            #[cfg(debug_assertions)]
            interrupts: AtomicU32::new(0),
        }
    }

    /// The highest rank held, if any (always `None` in release builds).
    pub fn highest(&self) -> Option<Rank> {
        #[cfg(debug_assertions)]
        return highest(self.mask.load(Relaxed));
        #[cfg(not(debug_assertions))]
        None
    }

    /// Whether an interrupt handler runs in this context.
    pub fn in_interrupt(&self) -> bool {
        #[cfg(debug_assertions)]
        return self.interrupts.load(Relaxed) > 0;
        #[cfg(not(debug_assertions))]
        false
    }
}

impl Default for HeldLocks {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HeldLocks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        #[cfg(debug_assertions)]
        {
            let m = self.mask.load(Relaxed);
            l.entries(ALL.iter().filter(|r| m & r.bit() != 0));
        }
        l.finish()
    }
}

/// What the platform tells the checker: where the running CPU keeps its held set, and its
/// interrupt flag. Called on every lock and unlock in debug builds: keep it cheap, and take
/// no lock in it.
pub trait Context: Sync {
    /// The held set of the context running on this CPU now.
    fn held(&self) -> &HeldLocks;
    /// Whether interrupts are enabled on this CPU.
    fn interrupts_enabled(&self) -> bool;
}

#[cfg(debug_assertions)]
static CONTEXT: spin::Once<&'static dyn Context> = spin::Once::new();
#[cfg(debug_assertions)]
static DISABLED: AtomicBool = AtomicBool::new(false);

/// Start checking, with `ctx` for the held sets (the first call wins; a no-op in release
/// builds).
pub fn install(ctx: &'static dyn Context) {
    #[cfg(debug_assertions)]
    CONTEXT.call_once(|| ctx);
    #[cfg(not(debug_assertions))]
    let _ = ctx;
}

/// Stop checking for good: the machine is going down (the panic handler calls this, so that
/// reporting a panic, which may happen with any lock held, is not itself reported).
pub fn disable() {
    #[cfg(debug_assertions)]
    DISABLED.store(true, Relaxed);
}

/// Whether locks are being checked (debug build, a context installed, not disabled).
pub fn is_checking() -> bool {
    #[cfg(debug_assertions)]
    return context().is_some();
    #[cfg(not(debug_assertions))]
    false
}

#[cfg(debug_assertions)]
fn context() -> Option<&'static dyn Context> {
    if DISABLED.load(Relaxed) {
        return None;
    }
    CONTEXT.get().copied()
}

/// Panic unless a context holding `held` may take a lock of `rank` now.
#[cfg(debug_assertions)]
#[track_caller]
fn check(held: &HeldLocks, rank: Rank, irq_safe: bool, interrupts_enabled: impl FnOnce() -> bool) {
    let m = held.mask.load(Relaxed);
    // Held ranks at or above `rank`.
    let above = m & !(rank.bit() - 1);
    if let Some(top) = highest(above) {
        panic!("lock order: {rank:?} taken while holding {top:?} (docs/locks.md)");
    }
    if irq_safe {
        if interrupts_enabled() {
            panic!("lock order: {rank:?} (interrupt-safe) taken with interrupts enabled");
        }
    } else if held.in_interrupt() {
        panic!("lock order: {rank:?} taken in an interrupt handler (not interrupt-safe)");
    }
}

/// The interrupted code's held set, put aside while an interrupt handler runs; dropping it
/// (when the handler returns) brings the set back.
#[must_use = "the interrupted code's locks come back when this is dropped"]
pub struct InterruptContext {
    #[cfg(debug_assertions)]
    saved: Option<(&'static dyn Context, u64)>,
}

/// An interrupt handler starts: check it against a held set of its own (module docs,
/// "Interrupts") until the returned guard is dropped. Call it with interrupts disabled.
pub fn enter_interrupt() -> InterruptContext {
    #[cfg(debug_assertions)]
    {
        let saved = context().map(|ctx| {
            let held = ctx.held();
            held.interrupts.fetch_add(1, Relaxed);
            (ctx, held.mask.swap(0, Relaxed))
        });
        InterruptContext { saved }
    }
    #[cfg(not(debug_assertions))]
    InterruptContext {}
}

impl Drop for InterruptContext {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        if let Some((ctx, mask)) = self.saved.take() {
            let held = ctx.held();
            let left = held.mask.swap(mask, Relaxed);
            held.interrupts.fetch_sub(1, Relaxed);
            if let Some(r) = highest(left).filter(|_| !DISABLED.load(Relaxed)) {
                panic!("lock order: an interrupt handler returned holding {r:?}");
            }
        }
    }
}

/// Panic if this context holds any spin lock: before `what`, which must not happen under one
/// (a switch of process, a return to user mode, the end of a task's poll). Debug builds only.
#[cfg_attr(debug_assertions, track_caller)]
pub fn assert_none_held(what: &str) {
    #[cfg(debug_assertions)]
    if let Some(r) = context().and_then(|c| c.held().highest()) {
        panic!("lock order: {r:?} held across {what}");
    }
    #[cfg(not(debug_assertions))]
    let _ = what;
}

/// A spin lock of a [`Rank`]: `spin::Mutex` plus, in debug builds, the order check. See the
/// [module docs](self).
#[allow(clippy::disallowed_types)] // the one place that wraps `spin::Mutex` (clippy.toml)
pub struct Mutex<T: ?Sized> {
    #[cfg(debug_assertions)]
    rank: Rank,
    inner: spin::Mutex<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex of class `rank` holding `value`.
    #[allow(clippy::disallowed_types)] // the one place that wraps `spin::Mutex` (clippy.toml)
    pub const fn new(rank: Rank, value: T) -> Self {
        #[cfg(not(debug_assertions))]
        let _ = rank;
        Mutex {
            #[cfg(debug_assertions)]
            rank,
            inner: spin::Mutex::new(value),
        }
    }

    /// Consume the mutex and return the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Spin until the lock is ours. Debug builds first check the order (and panic, naming
    /// both locks and the caller, if a lock of this rank or a higher one is held).
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.lock_as(
            #[cfg(debug_assertions)]
            self.rank.irq_safe(),
        )
    }

    /// [`Mutex::lock`], checked as an interrupt-safe lock or not (an [`IrqMutex`] that masks
    /// nothing is an ordinary lock).
    #[cfg_attr(debug_assertions, track_caller)]
    fn lock_as(&self, #[cfg(debug_assertions)] irq_safe: bool) -> MutexGuard<'_, T> {
        #[cfg(debug_assertions)]
        let ctx = context();
        #[cfg(debug_assertions)]
        if let Some(c) = ctx {
            check(c.held(), self.rank, irq_safe, || c.interrupts_enabled());
        }
        let inner = self.inner.lock();
        #[cfg(debug_assertions)]
        if let Some(c) = ctx {
            c.held().mask.fetch_or(self.rank.bit(), Relaxed);
        }
        MutexGuard {
            #[cfg(debug_assertions)]
            rank: self.rank,
            inner,
        }
    }

    /// Whether someone holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Free the lock whoever holds it: only for a holder that will never run again (the
    /// emergency path of a dying kernel).
    ///
    /// # Safety
    /// The holder's guard must never be used again.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: passed on to the caller.
        unsafe { self.inner.force_unlock() }
    }

    /// The value, through exclusive access to the mutex (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// The rank (`None` in release builds, which do not keep it).
    pub fn rank(&self) -> Option<Rank> {
        #[cfg(debug_assertions)]
        return Some(self.rank);
        #[cfg(not(debug_assertions))]
        None
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// The lock is held while this lives; dropping it unlocks (and, in debug builds, takes the
/// rank out of the held set).
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct MutexGuard<'a, T: ?Sized> {
    #[cfg(debug_assertions)]
    rank: Rank,
    inner: spin::MutexGuard<'a, T>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The spin lock itself is released right after this, when `inner` is dropped.
        #[cfg(debug_assertions)]
        if let Some(c) = context() {
            c.held().mask.fetch_and(!self.rank.bit(), Relaxed);
        }
    }
}

/// How the platform turns this CPU's interrupts off and back on, nested (xv6's
/// `push_off`/`pop_off`: the first `off` saves the flag, the matching last `on` restores it).
pub trait Interrupts: Sync {
    /// Interrupts off (the first of a nest saves whether they were on).
    fn push_off(&self);
    /// One fewer: the last of a nest turns them back on if they were.
    fn pop_off(&self);
}

static INTERRUPTS: spin::Once<&'static dyn Interrupts> = spin::Once::new();

/// Install the platform's interrupt control for [`IrqMutex`] (the first call wins): from then
/// on interrupt handlers may take them, and they turn interrupts off while held. Until then
/// (and on the host) an [`IrqMutex`] is a plain [`Mutex`], checked as one: no interrupt
/// handler may take it, so it needs no masking. A kernel whose handlers never take them (the
/// event-driven network design) never installs it and pays nothing for them; the sleep
/// design installs it before its handlers first run a network stack, with no such lock held.
pub fn install_interrupts(i: &'static dyn Interrupts) {
    INTERRUPTS.call_once(|| i);
}

/// Interrupts off on this CPU while it lives (nested: see [`Interrupts`]).
struct IrqOff(Option<&'static dyn Interrupts>);

impl IrqOff {
    fn new() -> IrqOff {
        let i = INTERRUPTS.get().copied();
        if let Some(i) = i {
            i.push_off();
        }
        IrqOff(i)
    }
}

impl Drop for IrqOff {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            i.pop_off();
        }
    }
}

/// A spin lock of an interrupt-safe [`Rank`] ([`Rank::irq_safe`]): [`Mutex`] taken with this
/// CPU's interrupts off, which stay off until the guard is dropped (rule 2 of the module docs,
/// enforced rather than only checked). An interrupt handler may take it: it can never find it
/// held by the code it interrupted. That holds once the platform has [`install_interrupts`];
/// before, it is an ordinary lock that no handler may take (checked).
pub struct IrqMutex<T: ?Sized> {
    inner: Mutex<T>,
}

impl<T> IrqMutex<T> {
    /// An unlocked mutex of the interrupt-safe class `rank` holding `value`.
    pub const fn new(rank: Rank, value: T) -> Self {
        IrqMutex { inner: Mutex::new(rank, value) }
    }
}

impl<T: ?Sized> IrqMutex<T> {
    /// Interrupts off, then spin until the lock is ours (checked as [`Mutex::lock`]).
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let off = IrqOff::new();
        let guard = self.inner.lock_as(
            #[cfg(debug_assertions)]
            off.0.is_some(),
        );
        IrqMutexGuard { guard, _off: off }
    }

    /// Whether someone holds the lock now (a snapshot).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The value, through exclusive access to the mutex (no locking).
    pub fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// See [`Mutex::force_unlock`].
    ///
    /// # Safety
    /// As [`Mutex::force_unlock`].
    pub unsafe fn force_unlock(&self) {
        // SAFETY: passed on to the caller.
        unsafe { self.inner.force_unlock() }
    }
}

/// The lock is held, and interrupts are off, while this lives. Fields drop in order: the
/// lock is released before interrupts may come back.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct IrqMutexGuard<'a, T: ?Sized> {
    guard: MutexGuard<'a, T>,
    _off: IrqOff,
}

impl<T: ?Sized> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

// Release builds: the lock and its guard are spin's, not a byte more.
#[cfg(not(debug_assertions))]
#[allow(clippy::disallowed_types)]
const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Mutex<u64>>() == size_of::<spin::Mutex<u64>>());
    assert!(size_of::<MutexGuard<'_, u64>>() == size_of::<spin::MutexGuard<'_, u64>>());
};

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The checker on the host, with threads for CPUs: each thread has its own held set and its
/// own "interrupt flag". Installing the context is global, so once these tests have run, every
/// test of this crate in the same binary is checked too (all of them follow the order).
#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::string::{String, ToString};

    std::thread_local! {
        static HELD: &'static HeldLocks = Box::leak(Box::new(HeldLocks::new()));
        static IRQS_ON: Cell<bool> = const { Cell::new(true) };
    }

    struct Threads;

    impl Context for Threads {
        fn held(&self) -> &HeldLocks {
            HELD.with(|h| *h)
        }
        fn interrupts_enabled(&self) -> bool {
            IRQS_ON.with(Cell::get)
        }
    }

    fn checked() -> &'static HeldLocks {
        install(&Threads);
        assert!(is_checking());
        HELD.with(|h| *h)
    }

    fn held() -> std::vec::Vec<Rank> {
        let h = HELD.with(|h| *h);
        let m = h.mask.load(Relaxed);
        ALL.iter().copied().filter(|r| m & r.bit() != 0).collect()
    }

    /// `f` with this thread's "interrupts" disabled.
    fn irqs_off<R>(f: impl FnOnce() -> R) -> R {
        IRQS_ON.with(|c| c.set(false));
        let r = f();
        IRQS_ON.with(|c| c.set(true));
        r
    }

    /// The message `f` panics with.
    fn panic_of(f: impl FnOnce()) -> String {
        let e = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    }

    #[test]
    fn locks_in_increasing_rank_pass_and_are_recorded() {
        checked();
        let (socket, stack) = (Mutex::new(Rank::Socket, 1), Mutex::new(Rank::Stack, 2));
        let (queue, heap) = (Mutex::new(Rank::WaitQueue, 3), Mutex::new(Rank::Timers, 4));
        {
            let a = socket.lock();
            let b = stack.lock();
            let c = queue.lock();
            let d = heap.lock();
            assert_eq!(*a + *b + *c + *d, 10);
            assert_eq!(held(), [Rank::Socket, Rank::Stack, Rank::WaitQueue, Rank::Timers]);
        }
        assert_eq!(held(), []);
    }

    #[test]
    fn a_lower_rank_under_a_higher_one_panics_naming_both() {
        checked();
        let (socket, stack) = (Mutex::new(Rank::Socket, ()), Mutex::new(Rank::Stack, ()));
        let msg = panic_of(|| {
            let _s = stack.lock();
            let _x = socket.lock();
        });
        assert!(msg.contains("Socket taken while holding Stack"), "{msg}");
        assert_eq!(held(), [], "the guard taken before the panic was released by unwinding");
        assert!(!socket.is_locked(), "the check comes before the lock is taken");
    }

    #[test]
    fn two_locks_of_one_rank_panic() {
        checked();
        let (a, b) = (Mutex::new(Rank::Pipe, ()), Mutex::new(Rank::Pipe, ()));
        let msg = panic_of(|| {
            let _a = a.lock();
            let _b = b.lock();
        });
        assert!(msg.contains("Pipe taken while holding Pipe"), "{msg}");
    }

    #[test]
    fn a_released_guard_no_longer_counts() {
        checked();
        let files = Mutex::new(Rank::ProcFiles, ());
        let stack = Mutex::new(Rank::Stack, ());
        let heap = Mutex::new(Rank::Timers, ());
        drop(heap.lock());
        drop(files.lock()); // the heap was released: a lower rank is fine again
                            // Released out of order: what is still held still counts.
        let s = stack.lock();
        let h = heap.lock();
        drop(s);
        assert_eq!(held(), [Rank::Timers]);
        let msg = panic_of(|| drop(stack.lock()));
        assert!(msg.contains("Stack taken while holding Timers"), "{msg}");
        drop(h);
        drop(files.lock());
        drop(stack.lock());
    }

    #[test]
    fn an_interrupt_handler_has_a_set_of_its_own_restored_when_it_returns() {
        checked();
        let (stack, log) = (Mutex::new(Rank::Stack, ()), Mutex::new(Rank::Log, ()));
        let s = stack.lock();
        irqs_off(|| {
            let irq = enter_interrupt();
            assert_eq!(held(), [], "the interrupted code's locks are put aside");
            assert!(HELD.with(|h| h.in_interrupt()));
            let l = log.lock();
            assert_eq!(held(), [Rank::Log]);
            {
                // An exception inside the handler: nested, with a set of its own again.
                let nested = enter_interrupt();
                assert_eq!(held(), []);
                drop(Mutex::new(Rank::Log, ()).lock()); // another lock of the rank held outside
                drop(nested);
                assert_eq!(held(), [Rank::Log], "the handler's own set is back");
            }
            drop(l);
            drop(irq);
        });
        assert_eq!(held(), [Rank::Stack], "the interrupted code's set is back");
        assert!(!HELD.with(|h| h.in_interrupt()));
        drop(s);
    }

    #[test]
    fn an_interrupt_handler_takes_interrupt_safe_locks_only() {
        checked();
        let heap = Mutex::new(Rank::Timers, ());
        let msg = panic_of(|| {
            irqs_off(|| {
                let _irq = enter_interrupt();
                let _h = heap.lock();
            })
        });
        IRQS_ON.with(|c| c.set(true));
        assert!(msg.contains("Timers taken in an interrupt handler"), "{msg}");
        assert!(!HELD.with(|h| h.in_interrupt()), "unwinding left the handler");
        drop(heap.lock());
    }

    #[test]
    fn an_irq_mutex_turns_interrupts_off_while_held_nested() {
        use core::sync::atomic::AtomicU32;
        struct Flag;
        static OFF: AtomicU32 = AtomicU32::new(0);
        impl Interrupts for Flag {
            fn push_off(&self) {
                OFF.fetch_add(1, Relaxed);
                IRQS_ON.with(|c| c.set(false));
            }
            fn pop_off(&self) {
                if OFF.fetch_sub(1, Relaxed) == 1 {
                    IRQS_ON.with(|c| c.set(true));
                }
            }
        }
        checked();
        install_interrupts(&Flag);
        let (stack, heap) = (IrqMutex::new(Rank::StackIrq, 1), IrqMutex::new(Rank::Heap, 2));
        {
            let s = stack.lock();
            assert!(!IRQS_ON.with(Cell::get), "interrupts off under an interrupt-safe lock");
            let h = heap.lock();
            drop(h);
            assert!(!IRQS_ON.with(Cell::get), "still off: the outer lock is held");
            assert_eq!(*s, 1);
        }
        assert!(IRQS_ON.with(Cell::get), "back on once the last one is released");
        // An interrupt handler may take them.
        irqs_off(|| {
            let _irq = enter_interrupt();
            drop(stack.lock());
        });
        // A plain lock under an interrupt-safe one is against the order (rule 3).
        let pipe = Mutex::new(Rank::Pipe, ());
        let msg = panic_of(|| {
            let _s = stack.lock();
            drop(pipe.lock());
        });
        assert!(msg.contains("Pipe taken while holding StackIrq"), "{msg}");
        assert!(IRQS_ON.with(Cell::get), "unwinding turned them back on");
    }

    #[test]
    fn an_interrupt_safe_lock_needs_interrupts_off() {
        checked();
        let log = Mutex::new(Rank::Log, ());
        let msg = panic_of(|| drop(log.lock()));
        assert!(msg.contains("Log (interrupt-safe) taken with interrupts enabled"), "{msg}");
        irqs_off(|| drop(log.lock()));
    }

    #[test]
    fn a_handler_that_returns_holding_a_lock_panics() {
        checked();
        let log = Mutex::new(Rank::Log, ());
        let msg = panic_of(|| {
            irqs_off(|| {
                let irq = enter_interrupt();
                core::mem::forget(log.lock());
                drop(irq);
            })
        });
        IRQS_ON.with(|c| c.set(true));
        assert!(msg.contains("an interrupt handler returned holding Log"), "{msg}");
        assert_eq!(held(), [], "the interrupted code's (empty) set is back");
    }

    #[test]
    fn nothing_may_be_held_across_a_switch() {
        checked();
        assert_none_held("a switch");
        let vm = Mutex::new(Rank::ProcVm, ());
        let g = vm.lock();
        let msg = panic_of(|| assert_none_held("a switch"));
        assert!(msg.contains("ProcVm held across a switch"), "{msg}");
        drop(g);
        assert_none_held("a switch");
    }

    #[test]
    fn each_cpu_has_its_own_set() {
        let h = checked();
        let heap = std::sync::Arc::new(Mutex::new(Rank::Timers, 0));
        let g = heap.lock();
        let other = std::thread::spawn(|| {
            // Another "CPU" holding nothing may take a low rank while this one holds the heap.
            drop(Mutex::new(Rank::Socket, ()).lock());
            held()
        });
        assert_eq!(other.join().unwrap(), []);
        assert_eq!(h.highest(), Some(Rank::Timers));
        drop(g);
        assert_eq!(h.highest(), None);
    }

    #[test]
    fn the_mutex_is_a_mutex() {
        checked();
        let mut m = Mutex::new(Rank::ExecutorTasks, std::vec![1]);
        m.lock().push(2);
        m.get_mut().push(3);
        assert_eq!(m.rank(), Some(Rank::ExecutorTasks));
        assert_eq!(std::format!("{:?}", m.lock()), "[1, 2, 3]");
        assert_eq!(m.into_inner(), [1, 2, 3]);
    }
}
