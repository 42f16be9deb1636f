//! xv6's `sleep(chan, lock)` and `wakeup(chan)`, for the sleep design of the network
//! (`net::drive::sleep`, `net=sleep`). A channel is a number (an address) that a waiter and
//! the code changing its condition agree on.
//!
//! The table ([`TABLE`], rank `SleepChans`, an `IrqMutex`: `wakeup` runs in interrupt
//! handlers) holds one entry per registration: the channel, the process's run state and an
//! optional deadline. [`wakeup`] makes every process registered on the channel runnable
//! through `sched::wake` (which counts `wakeups`); the entry stays until its owner removes it
//! (the [`Registration`] is dropped), so a wakeup while the process is still on its way to
//! sleep sets its `woken` flag and the sleep is taken back (`sched::block`).
//!
//! No lost wakeup ([`sleep`]): the caller checked its condition under `lock`, the lock that
//! whoever changes the condition holds; the process clears `woken` and enters the table
//! BEFORE `lock` is released. A change made after the release is followed by a `wakeup`,
//! which finds the entry. A kill sets `killed` before it wakes the process, and `sleep` looks
//! at `killed` after registering: an interruptible sleep, `EINTR`.
//!
//! Deadlines (a `connect`'s, a `poll`'s timeout): the scheduler arms the timer for the
//! earliest ([`next_deadline`]) and [`expire`] (from the timer interrupt and the scheduler
//! loop) wakes the processes whose deadline has passed; they look at the time themselves.

use super::sched::{self, RunState, NPROC};
use super::Process;
use abi::syscall::Errno;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use runtime::lockorder::{IrqMutex, Rank};

struct Sleeper {
    chan: usize,
    run: Arc<RunState>,
    deadline: Option<u64>,
}

/// At most one registration per process at a time (`poll` registers once per stack, and only
/// the root's stack is driven this way), so `NPROC` entries are enough.
static TABLE: IrqMutex<[Option<Sleeper>; NPROC]> =
    IrqMutex::new(Rank::SleepChans, [const { None }; NPROC]);
/// Entries in use: `wakeup` skips the table when it is empty.
static USED: AtomicUsize = AtomicUsize::new(0);

/// The calling process's entry in the table, removed when this is dropped.
pub struct Registration {
    slot: Option<usize>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(i) = self.slot else { return };
        let gone = TABLE.lock()[i].take();
        if gone.is_some() {
            USED.fetch_sub(1, SeqCst);
        }
        drop(gone); // the run state's reference, after the lock
    }
}

/// Enter `p` (the calling process) in the table on `chan` (with `deadline`, ns), after
/// clearing its `woken` flag: any wakeup from now on makes its next `sched::block` return (or
/// not sleep). Takes only the table's lock, so a caller may hold its stack's.
pub fn register(p: &Process, chan: usize, deadline: Option<u64>) -> Registration {
    p.run.clear_woken();
    let mut t = TABLE.lock();
    let slot = t.iter().position(Option::is_none);
    if let Some(i) = slot {
        t[i] = Some(Sleeper { chan, run: p.run.clone(), deadline });
        USED.fetch_add(1, SeqCst);
    }
    drop(t);
    if slot.is_none() {
        // Cannot happen (one entry per process at most): sleep nothing, loop at once.
        sched::wake(&p.run);
    }
    Registration { slot }
}

/// xv6's `sleep(chan, lock)` for `p`, the calling process: `guard` holds the lock under
/// which the caller found its condition false. Registers on `chan` before releasing it, then
/// blocks until a `wakeup` on `chan`, the `deadline` (ns), or a kill (`EINTR`). The caller
/// checks again.
pub fn sleep<G>(p: &Process, chan: usize, guard: G, deadline: Option<u64>) -> Result<(), Errno> {
    let reg = register(p, chan, deadline);
    drop(guard);
    if p.killed.load(SeqCst) {
        return Err(Errno::EINTR);
    }
    sched::block(p);
    drop(reg);
    if p.killed.load(SeqCst) {
        return Err(Errno::EINTR);
    }
    Ok(())
}

/// xv6's `wakeup(chan)`: every process registered on `chan` becomes runnable. Any context.
pub fn wakeup(chan: usize) {
    if USED.load(SeqCst) == 0 {
        return;
    }
    let t = TABLE.lock();
    for s in t.iter().flatten().filter(|s| s.chan == chan) {
        sched::wake(&s.run);
    }
}

/// Wake the processes whose deadline has passed (their deadline is cleared: woken once).
pub fn expire() {
    if USED.load(SeqCst) == 0 {
        return;
    }
    let now = crate::time::now_ns();
    let mut t = TABLE.lock();
    for s in t.iter_mut().flatten() {
        if s.deadline.is_some_and(|d| d <= now) {
            s.deadline = None;
            sched::wake(&s.run);
        }
    }
}

/// The earliest deadline in the table.
pub fn next_deadline() -> Option<u64> {
    if USED.load(SeqCst) == 0 {
        return None;
    }
    TABLE.lock().iter().flatten().filter_map(|s| s.deadline).min()
}
