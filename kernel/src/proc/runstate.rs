//! A process's run state: what the process, its waker and the schedulers share. Atomics only,
//! so that a wake takes no lock and allocates nothing, from any context (an interrupt handler)
//! on any CPU. The protocol, and why it loses no wakeup on any number of CPUs, is in `sched`'s
//! module docs and docs/03-processes.md; `sched` adds the run queue and the switches.
//!
//! No kernel dependencies: `mkimage/tests/kernel_sched.rs` compiles this file on the host and
//! runs the protocol between threads (a process, wakers and two schedulers, on real cores).

use abi::syscall::state::{RUNNABLE, RUNNING, SLEEPING};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};

pub struct RunState {
    pid: u32,
    /// Its group in the run queue (`runq`): its home namespace's id.
    group: u32,
    /// CPU time it has had, in nanoseconds (added by the scheduler as it switches away).
    cpu_ns: AtomicU64,
    /// `abi::syscall::state`: only the process itself leaves `RUNNING`.
    state: AtomicU32,
    /// Set by every wake; cleared before each poll.
    woken: AtomicBool,
    /// On the run queue (at most once).
    queued: AtomicBool,
    /// Switched to by a scheduler that has not yet seen it switch away.
    on_cpu: AtomicBool,
}

impl RunState {
    /// A new process's: runnable, not yet queued; scheduled in `group`.
    pub const fn new(pid: u32, group: u32) -> RunState {
        RunState {
            pid,
            group,
            cpu_ns: AtomicU64::new(0),
            state: AtomicU32::new(RUNNABLE),
            woken: AtomicBool::new(false),
            queued: AtomicBool::new(false),
            on_cpu: AtomicBool::new(false),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn group(&self) -> u32 {
        self.group
    }

    /// CPU time so far (ns).
    pub fn cpu_ns(&self) -> u64 {
        self.cpu_ns.load(SeqCst)
    }

    /// The scheduler ran the process for `ns` nanoseconds.
    pub fn add_cpu(&self, ns: u64) {
        self.cpu_ns.fetch_add(ns, SeqCst);
    }

    /// The state (`abi::syscall::state`).
    pub fn state(&self) -> u32 {
        self.state.load(SeqCst)
    }

    /// The running process leaves `RUNNING`: to yield (`RUNNABLE`) or to die (`ZOMBIE`).
    pub fn set(&self, state: u32) {
        self.state.store(state, SeqCst);
    }

    /// Before each poll of what the process waits for: a wake from now on is seen by
    /// [`RunState::sleep`].
    pub fn clear_woken(&self) {
        self.woken.store(false, SeqCst);
    }

    /// The waker: `woken`, then, if the process is asleep, runnable. Returns whether the caller
    /// must put the pid on the run queue (it was asleep, and not queued already).
    #[must_use]
    pub fn wake(&self) -> bool {
        self.woken.store(true, SeqCst);
        self.cas(SLEEPING, RUNNABLE) && self.mark_queued()
    }

    /// Mark the process queued. Returns whether it was not (then the caller pushes its pid).
    #[must_use]
    pub fn mark_queued(&self) -> bool {
        !self.queued.swap(true, SeqCst)
    }

    /// The running process found nothing to do: announce the sleep, then look for a wake since
    /// [`RunState::clear_woken`]. Returns whether to switch away: `false` when a wake came
    /// (the sleep is taken back; poll again), `true` when asleep or when a waker already made
    /// it runnable and queued it (a detour through the scheduler, not a lost wakeup).
    #[must_use]
    pub fn sleep(&self) -> bool {
        let announced = self.cas(RUNNING, SLEEPING);
        debug_assert!(announced, "process {} sleeps but is not running", self.pid);
        announced && !(self.woken.load(SeqCst) && self.cas(SLEEPING, RUNNING))
    }

    /// A scheduler popped the pid: whether to run it (it was runnable and is running now; a
    /// stale entry, a zombie's, is not).
    #[must_use]
    pub fn claim(&self) -> bool {
        self.queued.store(false, SeqCst);
        self.cas(RUNNABLE, RUNNING)
    }

    /// A scheduler is about to switch to the claimed process: wait until the CPU that last ran
    /// it has finished switching it away (its registers saved), then mark it on this CPU. On
    /// one CPU it is always off by now.
    pub fn switching_to(&self) {
        while self.on_cpu.load(SeqCst) {
            core::hint::spin_loop();
        }
        self.on_cpu.store(true, SeqCst);
    }

    /// The process has switched away (its registers saved): another CPU may switch to it.
    pub fn switched_away(&self) {
        self.on_cpu.store(false, SeqCst);
    }

    fn cas(&self, from: u32, to: u32) -> bool {
        self.state.compare_exchange(from, to, SeqCst, SeqCst).is_ok()
    }
}
