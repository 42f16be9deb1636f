//! Host tests for the scheduler's run-state protocol (`kernel/src/proc/runstate.rs`): sleeping
//! and waking by compare-and-swap, and `on_cpu`, between threads on real cores. The kernel
//! runs on one CPU today; these threads are what more CPUs will be: wakers firing on other
//! CPUs while the process decides to sleep, and two schedulers that may both find it queued.
//!
//! The model: a process thread runs only while a scheduler thread (a CPU) has switched to it,
//! and that scheduler waits, as `swtch` does, until the process switches away. The process
//! consumes events that waker threads produce, with the bridge's loop: clear `woken`, poll (an
//! event?), and `sleep()`; it also yields now and then, queueing itself before it switches
//! away, as `preempt` does. A lost wakeup leaves the process asleep with events waiting, and
//! the test fails at its deadline; a process switched to by a second CPU before the first saw
//! it switch away fails an assertion.

extern crate alloc;

#[allow(dead_code)]
#[path = "../../kernel/src/proc/runstate.rs"]
mod runstate;

/// The two-level run queue; its own tests (fair turns between groups, racing pushes and
/// pops on real cores) run from here.
#[allow(dead_code)]
#[path = "../../kernel/src/proc/runq.rs"]
mod runq;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use abi::syscall::state::{RUNNABLE, RUNNING, SLEEPING};
use runstate::RunState;

const PID: u32 = 7;

struct Shared {
    run: RunState,
    runq: Mutex<VecDeque<u32>>,
    /// Events produced by the wakers, and taken by the process.
    produced: AtomicU64,
    taken: AtomicU64,
    /// The model's own record: a scheduler has switched to the process and it has not
    /// switched away yet.
    running: AtomicBool,
    done: AtomicBool,
}

impl Shared {
    fn push(&self, pid: u32) {
        self.runq.lock().unwrap().push_back(pid);
    }
}

/// A CPU: pop, claim, wait for `on_cpu`, switch to the process (and wait until it switches
/// away), note that it did.
fn scheduler(s: Arc<Shared>, to_process: Sender<Sender<()>>) {
    while !s.done.load(SeqCst) {
        let Some(pid) = s.runq.lock().unwrap().pop_front() else {
            std::thread::yield_now();
            continue;
        };
        assert_eq!(pid, PID);
        if !s.run.claim() {
            continue;
        }
        s.run.switching_to();
        assert!(!s.running.swap(true, SeqCst), "switched to a process still on another CPU");
        let (back, switched_away) = channel();
        if to_process.send(back).is_err() {
            return; // the process finished
        }
        let _ = switched_away.recv();
        s.run.switched_away();
    }
}

/// The process: the bridge's loop over the events, until it has taken `total`.
fn process(s: Arc<Shared>, total: u64, from_scheduler: Receiver<Sender<()>>) -> u64 {
    let mut cpu = from_scheduler.recv().expect("first switch to the process");
    let (mut taken, mut sleeps, mut polls) = (0, 0u64, 0u64);
    let switch_away = |cpu: Sender<()>| -> Sender<()> {
        // A switch takes a while (interrupts off, registers saved): long enough for a waker on
        // another CPU to queue the process and a second scheduler to claim it meanwhile.
        std::thread::yield_now();
        s.running.store(false, SeqCst);
        cpu.send(()).unwrap();
        from_scheduler.recv().expect("switched to again")
    };
    while taken < total {
        s.run.clear_woken();
        polls += 1;
        if taken < s.produced.load(SeqCst) {
            taken += 1;
            s.taken.store(taken, SeqCst);
            if polls.is_multiple_of(97) {
                // The time slice is over: `preempt`.
                s.run.set(RUNNABLE);
                if s.run.mark_queued() {
                    s.push(PID);
                }
                cpu = switch_away(cpu);
            }
            continue;
        }
        if s.run.sleep() {
            sleeps += 1;
            cpu = switch_away(cpu);
        }
    }
    s.done.store(true, SeqCst);
    s.running.store(false, SeqCst);
    let _ = cpu.send(());
    sleeps
}

/// A device: produce an event, then wake the process. It paces itself on the process (at most
/// one event waiting), so that the process keeps finding nothing and going to sleep, and the
/// wakes land in every part of its way there. Gives up at `deadline` (a lost wakeup).
fn waker(s: Arc<Shared>, events: u64, deadline: Instant) {
    for _ in 0..events {
        while s.produced.load(SeqCst) > s.taken.load(SeqCst) + 1 {
            if Instant::now() > deadline {
                return;
            }
            std::hint::spin_loop();
        }
        s.produced.fetch_add(1, SeqCst);
        if s.run.wake() {
            s.push(PID);
        }
    }
}

#[test]
fn no_wakeup_is_lost_and_no_process_runs_on_two_cpus() {
    const WAKERS: u64 = 2;
    const EVENTS: u64 = 5_000;
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = Arc::new(Shared {
        run: RunState::new(PID, 1),
        runq: Mutex::new(VecDeque::new()),
        produced: AtomicU64::new(0),
        taken: AtomicU64::new(0),
        running: AtomicBool::new(false),
        done: AtomicBool::new(false),
    });
    assert!(s.run.mark_queued());
    s.push(PID);
    let (to_process, from_scheduler) = channel();
    let cpus: Vec<_> = (0..2)
        .map(|_| {
            let (s, tx) = (s.clone(), to_process.clone());
            std::thread::spawn(move || scheduler(s, tx))
        })
        .collect();
    drop(to_process);
    let p = {
        let s = s.clone();
        std::thread::spawn(move || process(s, WAKERS * EVENTS, from_scheduler))
    };
    let wakers: Vec<_> = (0..WAKERS)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || waker(s, EVENTS, deadline))
        })
        .collect();
    for w in wakers {
        w.join().unwrap();
    }
    // Every event is produced and every wake delivered: the process must take them all.
    while !p.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the process sleeps with events waiting: a lost wakeup (state {}, queue {:?})",
            s.run.state(),
            s.runq.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let sleeps = p.join().unwrap();
    for c in cpus {
        c.join().unwrap();
    }
    // About a quarter of the events find the process on its way to sleep or asleep.
    assert!(
        sleeps > WAKERS * EVENTS / 50,
        "the process slept {sleeps} times: the test raced little"
    );
}

/// The three ways the race between `sleep` and `wake` can go, one at a time.
#[test]
fn sleep_and_wake_in_each_order() {
    let r = RunState::new(PID, 1);
    assert!(r.mark_queued() && r.claim() && r.state() == RUNNING);

    // A wake before the sleep (it found the process running): the sleep is taken back.
    r.clear_woken();
    assert!(!r.wake(), "a running process is not queued");
    assert!(!r.sleep(), "woken since the poll: poll again");
    assert_eq!(r.state(), RUNNING);

    // A wake after the sleep: runnable, queued once.
    r.clear_woken();
    assert!(r.sleep());
    assert_eq!(r.state(), SLEEPING);
    assert!(r.wake(), "asleep: the waker queues it");
    assert!(!r.wake(), "queued once");
    assert_eq!(r.state(), RUNNABLE);
    assert!(r.claim());

    // A stale entry: a scheduler that pops a process that is not runnable does not run it.
    r.set(abi::syscall::state::ZOMBIE);
    assert!(!r.claim());
    assert!(!r.wake(), "a zombie is never woken");
}
