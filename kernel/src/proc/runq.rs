//! The run queue: fair between groups first (namespaces), then between the processes of a
//! group. A container running eight busy loops and one running one get the CPU in turns, one
//! time slice each, instead of eight slices to one.
//!
//! Two levels of bounded lock-free queues (`crossbeam_queue::ArrayQueue`), made once:
//! - per group (a namespace id, `1..=MAX_LIVE`), a slot: the pids of its runnable processes in
//!   the order they became runnable, and a `queued` flag;
//! - the groups that have queued processes, each at most once (its flag), in turn.
//!
//! [`RunQueue::push`] (a waker, possibly in an interrupt handler, on any CPU) puts the pid in
//! its group's slot, then, if the group's flag was clear, sets it and puts the group at the
//! back of the line. [`RunQueue::pop`] (a scheduler) takes the group at the front, clears its
//! flag, takes the group's first pid, and sends the group back to the end of the line if it
//! still has pids (and nobody queued it meanwhile). No lock, no allocation, no wait.
//!
//! No pid is ever stranded in a slot with its group out of the line. All operations are
//! `SeqCst`, so they fall in one order. Take a push of pid `p` into group `g`: its swap of the
//! flag comes after `p` is in the slot. If the swap found the flag clear, the pusher puts `g`
//! in line itself. If it found it set, then either `g` is in line (and whoever pops it finds
//! `p`, or a later pid, in its slot), or a scheduler popped `g` and has not cleared the flag
//! yet: that scheduler's clear comes after the swap, so its look at the slot (the pop and the
//! emptiness check after the clear) sees `p`; it takes `p`, or sees the slot not empty and
//! puts `g` back in line (or finds the flag set again by another pusher, who does).
//!
//! Capacity: a process is queued at most once (`RunState::mark_queued`), so a slot never holds
//! more than the process table (`per_group`); a group is in line at most once, so the line
//! never holds more than the groups. A push therefore never fails.
//!
//! No kernel dependencies: `mkimage/tests/kernel_sched.rs` runs it on the host with threads.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering::SeqCst};
use crossbeam_queue::ArrayQueue;

struct Slot {
    pids: ArrayQueue<u32>,
    /// In `RunQueue::line`, or about to be put back there by a `pop`.
    queued: AtomicBool,
}

pub struct RunQueue {
    /// The groups with queued processes, in turn.
    line: ArrayQueue<u32>,
    /// By group id (`0..groups`).
    slots: Vec<Slot>,
}

impl RunQueue {
    /// Groups `0..groups`, each with room for `per_group` processes.
    pub fn new(groups: usize, per_group: usize) -> RunQueue {
        let slots = (0..groups)
            .map(|_| Slot { pids: ArrayQueue::new(per_group), queued: AtomicBool::new(false) })
            .collect();
        RunQueue { line: ArrayQueue::new(groups), slots }
    }

    /// Queue `pid`, of group `group`, which must not be queued already. Lock-free and
    /// allocation-free: for any context, an interrupt handler included, on any CPU.
    pub fn push(&self, group: u32, pid: u32) {
        let slot = &self.slots[group as usize];
        // Cannot fail (module docs: capacity).
        let _ = slot.pids.push(pid);
        if !slot.queued.swap(true, SeqCst) {
            let _ = self.line.push(group);
        }
    }

    /// The next process to run: the first pid of the group whose turn it is, with its group.
    pub fn pop(&self) -> Option<(u32, u32)> {
        loop {
            let group = self.line.pop()?;
            let slot = &self.slots[group as usize];
            slot.queued.store(false, SeqCst);
            let pid = slot.pids.pop();
            // Its turn is over: to the back of the line if it has more.
            if !slot.pids.is_empty() && !slot.queued.swap(true, SeqCst) {
                let _ = self.line.push(group);
            }
            match pid {
                Some(pid) => return Some((group, pid)),
                // Another CPU took its last pid between a push's flag and ours: next group.
                None => continue,
            }
        }
    }

    /// Whether no group is in line. (A push under way on another CPU may be about to put
    /// one there.)
    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// Every process busy (a time slice each, then back in the queue, as `preempt` does).
    fn run_busy(q: &RunQueue, slices: usize) -> Vec<(u32, u32)> {
        (0..slices)
            .map(|_| {
                let (g, pid) = q.pop().expect("busy processes are always queued");
                q.push(g, pid);
                (g, pid)
            })
            .collect()
    }

    #[test]
    fn groups_share_equally_whatever_their_size() {
        let q = RunQueue::new(4, 16);
        for pid in 10..18 {
            q.push(2, pid); // eight busy loops
        }
        q.push(3, 30); // one
        let ran = run_busy(&q, 1600);
        let share = |g| ran.iter().filter(|r| r.0 == g).count();
        assert_eq!((share(2), share(3)), (800, 800));
        // Within a group, round robin: each of the eight had 100 slices.
        for pid in 10..18 {
            assert_eq!(ran.iter().filter(|r| r.1 == pid).count(), 100, "pid {pid}");
        }
        // Turns alternate: no group runs twice in a row while the other waits.
        assert!(ran.windows(2).all(|w| w[0].0 != w[1].0));
    }

    #[test]
    fn a_woken_group_waits_at_most_one_turn_per_group() {
        let q = RunQueue::new(8, 16);
        for g in 2..6 {
            for pid in 0..4 {
                q.push(g, g * 100 + pid);
            }
        }
        run_busy(&q, 37);
        // The shell wakes (group 1): it runs after at most one turn of each other group.
        q.push(1, 1);
        let waited = (0..5).position(|_| {
            let (g, pid) = q.pop().unwrap();
            if g != 1 {
                q.push(g, pid);
            }
            g == 1
        });
        assert!(waited.is_some_and(|w| w <= 4), "waited {waited:?} turns");
        // Empty groups leave the line; an empty queue pops nothing.
        while let Some((g, pid)) = q.pop() {
            assert_ne!(g, 1, "{pid}");
        }
        assert!(q.is_empty());
    }

    /// Wakers (interrupt handlers on other CPUs) push while schedulers pop, with the
    /// kernel's `queued` flag per process: every wake is popped exactly once, none is
    /// stranded in a slot whose group is out of the line, and every group keeps getting turns.
    #[test]
    fn racing_pushes_and_pops_lose_nothing() {
        const GROUPS: usize = 6;
        const PIDS: usize = 48;
        const WAKES: u64 = 40_000;
        let q = Arc::new(RunQueue::new(GROUPS, PIDS));
        let queued: Arc<Vec<AtomicBool>> =
            Arc::new((0..PIDS).map(|_| AtomicBool::new(false)).collect());
        let pushed = Arc::new(AtomicU64::new(0));
        let popped = Arc::new(AtomicU64::new(0));
        // Set once every waker has returned: before that a waker may still be between counting
        // a push and making it (two wakers can both pass the `WAKES` check at the end).
        let wakers_done = Arc::new(AtomicBool::new(false));
        let per_group: Arc<Vec<AtomicU64>> =
            Arc::new((0..GROUPS).map(|_| AtomicU64::new(0)).collect());
        let group_of = |pid: usize| (pid % GROUPS) as u32;
        let wakers: Vec<_> = (0..2)
            .map(|t| {
                let (q, queued, pushed) = (q.clone(), queued.clone(), pushed.clone());
                std::thread::spawn(move || {
                    let mut i = t;
                    while pushed.load(SeqCst) < WAKES {
                        let pid = (i * 7 + 3) % PIDS;
                        i += 1;
                        if !queued[pid].swap(true, SeqCst) {
                            pushed.fetch_add(1, SeqCst);
                            q.push(group_of(pid), pid as u32);
                        }
                    }
                })
            })
            .collect();
        let schedulers: Vec<_> = (0..2)
            .map(|_| {
                let (q, queued, pushed, popped, per_group) =
                    (q.clone(), queued.clone(), pushed.clone(), popped.clone(), per_group.clone());
                let wakers_done = wakers_done.clone();
                std::thread::spawn(move || loop {
                    match q.pop() {
                        Some((g, pid)) => {
                            assert_eq!(
                                g,
                                group_of(pid as usize),
                                "a pid came out of another group"
                            );
                            assert!(queued[pid as usize].swap(false, SeqCst), "popped twice");
                            popped.fetch_add(1, SeqCst);
                            per_group[g as usize].fetch_add(1, SeqCst);
                        }
                        None if wakers_done.load(SeqCst)
                            && popped.load(SeqCst) == pushed.load(SeqCst) =>
                        {
                            return
                        }
                        None => std::thread::yield_now(),
                    }
                })
            })
            .collect();
        for t in wakers {
            t.join().unwrap();
        }
        wakers_done.store(true, SeqCst);
        // A stranded pid would keep `popped` below `pushed` for ever: the schedulers would
        // not return, and the deadline below catches it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        for t in schedulers {
            while !t.is_finished() {
                assert!(std::time::Instant::now() < deadline, "a pushed pid was never popped");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            t.join().unwrap();
        }
        assert_eq!(popped.load(SeqCst), pushed.load(SeqCst));
        assert!(q.is_empty() && q.pop().is_none());
        assert!(per_group.iter().all(|n| n.load(SeqCst) > 0));
    }
}
