//! The scheduler: round-robin over namespaces with runnable processes, then over each
//! namespace's processes, with the kernel executor run between them. It runs on the boot
//! kernel stack (the "scheduler context"); every process switch goes through it, so kernel
//! tasks (disk completions, timers, the console) get the CPU at every switch and whenever no
//! process is runnable. The CPU halts only when neither a task nor a process is ready
//! (`sti; hlt`, see docs/01-foundation.md for why no wakeup is lost).
//!
//! The run queue (`runq.rs`) has two levels of bounded lock-free queues: per namespace (its
//! home namespace's id is a process's group) the pids of its runnable processes, and the line
//! of namespaces that have some. Each pick takes the namespace whose turn it is and its first
//! process, which runs for one time slice (or until it blocks): namespaces share the CPU
//! equally, whatever their number of processes, and a process shares its namespace's turns
//! with its siblings. A `queued` flag per process (the same scheme as the executor's wake
//! queue) keeps each pid queued at most once. Lock-free because process wakers run in
//! interrupt handlers: a disk completion wakes the process whose system call waits for it.
//!
//! CPU time: each process's is added up as the scheduler switches away from it
//! (`RunState::cpu_ns`, shown in `/proc/<pid>`).
//!
//! Preemption: only user mode is preempted (the timer interrupt, when it arrives from ring 3,
//! calls [`preempt`]). Kernel code runs until it blocks, and holds no spin lock when it does
//! (checked in debug builds at every switch: `runtime::lockorder`).
//!
//! # Sleeping without losing a wakeup, on any number of CPUs
//!
//! A process's [`RunState`] (`runstate.rs`, tested on the host with threads) is what it shares
//! with its waker: the state, the `woken` flag, the `queued` flag and `on_cpu`, all atomics, so
//! a wake takes no lock, from any context on any CPU. The waker does `woken = true`, then
//! `CAS(Sleeping -> Runnable)` and, if that succeeds, queues the process. The bridge clears
//! `woken` before each poll; when the poll is pending, [`block`] does
//! `CAS(Running -> Sleeping)`, then, if `woken` is set, tries `CAS(Sleeping -> Running)` and
//! returns (the bridge polls again); otherwise, or if that CAS fails, it switches away. All of these are `SeqCst`, so they fall in one order:
//!
//! - the waker's CAS comes after the sleep was announced: it finds `Sleeping` (or `Runnable`,
//!   if another waker won) and the process is queued, by it or by the other;
//! - the waker's CAS comes before: it found `Running` and queued nothing, but its
//!   `woken = true` came earlier still, so [`block`]'s load of `woken`, later than its own CAS,
//!   sees it, and the process takes the sleep back;
//! - the two race for `Sleeping`: if `block` wins, it runs on; if the waker wins, the process
//!   is `Runnable` and queued, so `block` switches away anyway and the scheduler brings it back
//!   at once (a detour, not a lost wakeup).
//!
//! With more than one CPU, a process queued while it is still switching away (woken after it
//! announced the sleep, or preempted: `preempt` queues itself before it switches) could be
//! picked by another CPU before its registers are saved. `on_cpu` (Linux's `p->on_cpu`) is set
//! by the scheduler that switches to the process and cleared by that scheduler once the
//! switch away is complete; another CPU's [`run_one`] waits for it to clear before switching to
//! the process. On one CPU it is always clear by then, and the wait never spins.
//!
//! Interrupts are still disabled around each `swtch`, for two reasons that are not about
//! wakeups: `swtch` does not save RFLAGS, so the side that resumes inherits the interrupt flag
//! of the side that switched, and every switch is made with interrupts off so that each side
//! restores its own (`block` enables them again, the scheduler loop enables them, a new or
//! preempted process returns through `iretq`); and the scheduler's stack pointer
//! (`SCHED_RSP`, one per CPU once there are several) must be read on the CPU that then
//! switches, with nothing run in between on that CPU.

use super::runq::RunQueue;
pub(crate) use super::runstate::RunState;
use super::{Process, State};
use crate::arch::{cpu, gdt};
use crate::exec::EXECUTOR;
use abi::syscall::ns::MAX_LIVE;
use alloc::sync::Arc;
use conquer_once::noblock::OnceCell;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use runtime::lockorder::{self, Mutex, Rank};
use x86_64::instructions::interrupts;

/// Most processes at once (bounds the run queue, so a push never fails).
pub const NPROC: usize = 256;

/// Made by [`run`] before any process exists; pushed to by process wakers, which may run in
/// interrupt context: a `noblock` cell, so that path never allocates and never waits. A group
/// per namespace id (`1..=MAX_LIVE`; a process's namespace lives as long as it does, so its
/// group is never another namespace's meanwhile).
static RUNQ: OnceCell<RunQueue> = OnceCell::uninit();
/// The scheduler context's saved stack pointer while a process runs. (One CPU: per-CPU data
/// with more.)
static SCHED_RSP: AtomicU64 = AtomicU64::new(0);
/// The running process. Task and process context only: never taken in an interrupt handler
/// that can interrupt kernel code (the holder would be the interrupted code itself). (One CPU:
/// per-CPU data with more.)
pub(super) static CURRENT: Mutex<Option<Arc<Process>>> = Mutex::new(Rank::Current, None);

fn runq() -> &'static RunQueue {
    RUNQ.try_get().expect("the run queue is made by sched::run, before any process")
}

/// Put the process on the run queue unless it is already there. Interrupt safe.
pub(super) fn enqueue(p: &Process) {
    if p.run.mark_queued() {
        push(&p.run);
    }
}

/// The process's waker (`RunState::wake`, then the run queue): lock-free and allocation-free,
/// for any context (an interrupt handler) on any CPU.
pub(super) fn wake(run: &RunState) {
    if run.wake() {
        crate::stats::count(crate::stats::Counter::Wakeups);
        push(run);
    }
}

fn push(run: &RunState) {
    runq().push(run.group(), run.pid()); // cannot fail: each pid is queued at most once
}

/// Save callee-saved registers and the stack pointer into `*old`, load `new`, restore.
#[unsafe(naked)]
unsafe extern "C" fn swtch(old: *mut u64, new: u64) {
    // SAFETY: called with interrupts disabled; `new` is a stack pointer saved by swtch itself
    // or prepared by `super::new_kernel_stack` in the same layout.
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    );
}

/// Switch from the current process to the scheduler context. Interrupts must be disabled.
fn to_scheduler(p: &Process) {
    lockorder::assert_none_held("a switch of process");
    // SAFETY: `ctx` is written here, by this process's own switch away, and read by a
    // scheduler's switch to it only once `on_cpu` is clear again, after this switch is done
    // (`run_one`); SCHED_RSP was saved by the swtch that started this process.
    unsafe { swtch(p.ctx.get(), SCHED_RSP.load(SeqCst)) };
}

/// The scheduler loop, forever, on the boot stack.
pub fn run() -> ! {
    // Allocate the queue now: interrupt handlers push to it and must not allocate.
    RUNQ.try_init_once(|| RunQueue::new(MAX_LIVE + 1, NPROC)).expect("sched::run runs once");
    loop {
        EXECUTOR.run_until_idle();
        lockorder::assert_none_held("the end of a kernel task's poll");
        // The sleep design's network (`net=sleep`): its loopback frames and its timers, and
        // the sleepers whose deadline passed.
        crate::net::drive::on_idle();
        super::sleep::expire();
        interrupts::disable();
        if let Some((_, pid)) = runq().pop() {
            if let Some(p) = super::get(pid) {
                run_one(p);
            }
            interrupts::enable();
            continue;
        }
        let next = next_deadline();
        let due = next.is_some_and(|d| d <= crate::time::now_ns());
        if EXECUTOR.has_ready_tasks() || due || !runq().is_empty() {
            interrupts::enable();
        } else {
            crate::time::arm(next); // tickless: wake for the next timer, or not at all
            cpu::enable_interrupts_and_halt();
        }
    }
}

/// The earliest of the executor's next timer, the sleep design's stack deadline and its
/// sleepers' deadlines (`net::drive`, `proc::sleep`): what the timer is armed for. (One CPU:
/// with more, a deadline set on another CPU after this look needs an IPI or a tick.)
fn next_deadline() -> Option<u64> {
    [
        EXECUTOR.timers().next_deadline(),
        crate::net::drive::next_deadline(),
        super::sleep::next_deadline(),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Run `p` until it blocks, yields or exits. The scheduler's own stack pointer is saved in
/// `SCHED_RSP`, where the process switches back to.
fn run_one(p: Arc<Process>) {
    NEED_RESCHED.store(false, SeqCst); // a new slice begins
    if !p.run.claim() {
        return; // not runnable (a zombie whose pid was still queued)
    }
    // Queued while still switching away on another CPU: wait until its registers are all
    // saved in `ctx`. On one CPU it has always switched away by now.
    p.run.switching_to();
    p.vm.lock().activate();
    let top = p.kstack.top();
    gdt::set_kernel_stack(top);
    crate::arch::syscall::set_kernel_stack(top);
    let ctx = p.ctx.get();
    let run = p.run.clone();
    crate::stats::count(crate::stats::Counter::ContextSwitches);
    *CURRENT.lock() = Some(p);
    // The end of the time slice, or an earlier kernel timer, interrupts the process.
    let start = crate::time::now_ns();
    let slice = crate::time::slice_end();
    crate::time::arm(Some(next_deadline().map_or(slice, |d| d.min(slice))));
    lockorder::assert_none_held("a switch of process");
    // SAFETY: interrupts are disabled; SCHED_RSP receives this context, ctx the process's,
    // which nothing else reads or writes while it is on this CPU (`switching_to`).
    unsafe { swtch(SCHED_RSP.as_ptr(), *ctx) };
    run.add_cpu(crate::time::now_ns().saturating_sub(start));
    // The process switched away: its registers are in `ctx`, another CPU may run it now.
    run.switched_away();
    *CURRENT.lock() = None;
}

/// The time slice ended while the process was in the kernel (which is not preempted): it
/// yields on its way back to user mode instead (`preempt_if_requested`).
static NEED_RESCHED: AtomicBool = AtomicBool::new(false);

/// The timer interrupt: preempt user mode now, or ask kernel mode to yield when it leaves.
/// Interrupt context: no lock here (kernel code may hold `CURRENT` when the timer fires);
/// in the scheduler's own context the flag is harmless, as `run_one` clears it.
pub fn on_timer(from_user: bool) {
    // The sleep design's timers run here, in interrupt context (interrupt-safe locks only).
    crate::net::drive::on_timer();
    super::sleep::expire();
    if from_user {
        preempt();
    } else {
        NEED_RESCHED.store(true, SeqCst);
    }
}

/// On the way back to user mode: yield if the time slice ended meanwhile.
pub fn preempt_if_requested() {
    if NEED_RESCHED.swap(false, SeqCst) {
        preempt();
    }
}

/// Give up the CPU (time slice over): runnable again at the back of the queue.
pub fn preempt() {
    let Some(p) = super::try_current() else { return };
    interrupts::disable();
    p.set_state(State::Runnable);
    enqueue(&p);
    to_scheduler(&p);
}

/// Sleep until the process's waker fires, unless it already fired since `woken` was last
/// cleared (the bridge clears it before each poll): no wakeup is lost between poll and sleep,
/// on any number of CPUs (module docs).
pub fn block(p: &Process) {
    if !p.run.sleep() {
        return; // woken since the poll: poll again
    }
    // Asleep, or made runnable and queued by a waker that won the race for `Sleeping`: the
    // scheduler runs it again once it is woken, or at once.
    interrupts::disable();
    to_scheduler(p);
    interrupts::enable();
}

/// Leave the CPU for good (the current process is a zombie now). Interrupts must be
/// disabled, and the caller must hold no `Arc` of the process: the scheduler drops the last
/// running reference (`CURRENT`) after this switch, and the parent's `wait` frees the rest.
pub fn exit_switch() -> ! {
    let ctx = CURRENT.lock().as_ref().expect("exit without a process").ctx.get();
    lockorder::assert_none_held("a switch of process");
    // SAFETY: as in `to_scheduler`; CURRENT keeps the process (and `ctx`) alive until the
    // scheduler, now running, clears it.
    unsafe { swtch(ctx, SCHED_RSP.load(SeqCst)) };
    unreachable!("a zombie was scheduled");
}
