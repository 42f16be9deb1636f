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
