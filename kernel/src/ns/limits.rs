//! A namespace's limits: a hierarchical account, as Linux's cgroups keep one per group.
//!
//! Each namespace has an [`Account`] whose parent is its parent namespace's. It counts two
//! things, each against a limit of its own (0: none):
//!
//! - `procs`: the processes whose home is the namespace or one below it (zombies included,
//!   until reaped), against `pids_max`: `proc::create`, which every way of making a process
//!   goes through (`fork`, `spawn`, `nsenter`), takes one with [`Account::add_proc`];
//! - `mem_used`: bytes of memory charged to it or below, against `mem_max`: the user pages of
//!   its processes (`proc::vm`) and the kernel memory charged for them (`mm::budget::Charge`:
//!   socket buffers, pipe rings, bounce buffers, a program's file during `exec`).
//!
//! A charge is made on the account and on every ancestor, each checking its own limit, all or
//! nothing; it is released the same way. Whoever holds a charge holds the `Arc<Account>` it
//! was made on, so it is always released to the account that paid for it, from whatever
//! context frees the memory (the network task freeing a socket's buffers long after its
//! process exited, a zombie's pages), and even after the namespace itself has retired: the
//! counts of the living ancestors come back down.
//!
//! A child's limit is cut to its parent's when it is higher or none: the parent's is a
//! ceiling. (The charge up the chain would enforce it anyway; the cut makes `/proc/ns` show
//! the limit that applies.)
//!
//! Atomics only, no lock: a charge is a compare-and-swap per level, from any context on any
//! CPU. Two charges racing near a limit may both be refused where one would have fitted (the
//! first rolls back what it took below a level that refused it), never both granted beyond
//! it. No kernel dependencies: `mkimage/tests/kernel_ns.rs` runs this file on the host.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

#[derive(Debug)]
pub struct Account {
    parent: Option<Arc<Account>>,
    /// Most processes in it and below (0: no limit).
    pids_max: u64,
    /// Most bytes charged to it and below (0: no limit).
    mem_max: u64,
    procs: AtomicU64,
    mem_used: AtomicU64,
}

/// The limit of a child asking for `want` under a parent whose limit is `parent` (0: none).
pub fn ceiling(want: u64, parent: u64) -> u64 {
    match (want, parent) {
        (_, 0) => want,
        (0, p) => p,
        (w, p) => w.min(p),
    }
}

impl Account {
    /// The root namespace's: no limits.
    pub fn root() -> Arc<Account> {
        Arc::new(Account {
            parent: None,
            pids_max: 0,
            mem_max: 0,
            procs: AtomicU64::new(0),
            mem_used: AtomicU64::new(0),
        })
    }

    /// A child of `parent` asking for these limits (0: none), each cut to the parent's.
    pub fn child(parent: &Arc<Account>, pids_max: u32, mem_max: u64) -> Arc<Account> {
        Arc::new(Account {
            parent: Some(parent.clone()),
            pids_max: ceiling(u64::from(pids_max), parent.pids_max),
            mem_max: ceiling(mem_max, parent.mem_max),
            procs: AtomicU64::new(0),
            mem_used: AtomicU64::new(0),
        })
    }

    pub fn pids_max(&self) -> u64 {
        self.pids_max
    }

    pub fn mem_max(&self) -> u64 {
        self.mem_max
    }

    pub fn procs(&self) -> u64 {
        self.procs.load(SeqCst)
    }

    pub fn mem_used(&self) -> u64 {
        self.mem_used.load(SeqCst)
    }

    /// One more process here, if this account and every ancestor have room for it.
    #[must_use]
    pub fn add_proc(&self) -> bool {
        self.charge(1, &|a| (&a.procs, a.pids_max))
    }

    /// A process counted by [`Account::add_proc`] is gone (reaped).
    pub fn remove_proc(&self) {
        self.release(1, &|a| &a.procs);
    }

    /// Charge `bytes`, if this account and every ancestor have room for them.
    #[must_use]
    pub fn charge_mem(&self, bytes: u64) -> bool {
        self.charge(bytes, &|a| (&a.mem_used, a.mem_max))
    }

    /// Release `bytes` charged by [`Account::charge_mem`] on this account.
    pub fn uncharge_mem(&self, bytes: u64) {
        self.release(bytes, &|a| &a.mem_used);
    }

    /// Whether one more process would fit now, here and above (nothing is counted): a cheap
    /// early answer for `fork`, which would otherwise copy a whole address space before
    /// [`Account::add_proc`] refused it. Only a hint: `add_proc` decides.
    pub fn proc_room(&self) -> bool {
        self.chain().all(|a| a.pids_max == 0 || a.procs() < a.pids_max)
    }

    /// Whether `bytes` more would fit now, here and above (nothing is charged).
    pub fn mem_room(&self, bytes: u64) -> bool {
        self.chain().all(|a| {
            a.mem_max == 0 || a.mem_used().checked_add(bytes).is_some_and(|v| v <= a.mem_max)
        })
    }

    /// This account, then its ancestors up to the root's.
    fn chain(&self) -> impl Iterator<Item = &Account> {
        core::iter::successors(Some(self), |a| a.parent.as_deref())
    }

    /// Add `n` to the counter `field` gives at each level, each within the level's limit;
    /// on a refusal, take back what was added below it.
    fn charge(&self, n: u64, field: &dyn Fn(&Account) -> (&AtomicU64, u64)) -> bool {
        for (depth, a) in self.chain().enumerate() {
            let (count, max) = field(a);
            let fits = |v: u64| {
                let new = v.checked_add(n)?;
                (max == 0 || new <= max).then_some(new)
            };
            if count.fetch_update(SeqCst, SeqCst, fits).is_err() {
                for below in self.chain().take(depth) {
                    field(below).0.fetch_sub(n, SeqCst);
                }
                return false;
            }
        }
        true
    }

    fn release(&self, n: u64, field: &dyn Fn(&Account) -> &AtomicU64) {
        for a in self.chain() {
            let was = field(a).fetch_sub(n, SeqCst);
            debug_assert!(was >= n, "released more than was charged");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn a_child_limit_is_cut_to_its_parent() {
        assert_eq!(ceiling(5, 0), 5);
        assert_eq!(ceiling(0, 0), 0);
        assert_eq!(ceiling(0, 7), 7);
        assert_eq!(ceiling(9, 7), 7);
        assert_eq!(ceiling(3, 7), 3);
        let root = Account::root();
        let a = Account::child(&root, 10, 1 << 20);
        let b = Account::child(&a, 0, 4 << 20);
        let c = Account::child(&b, 4, 0);
        assert_eq!((a.pids_max(), a.mem_max()), (10, 1 << 20));
        assert_eq!((b.pids_max(), b.mem_max()), (10, 1 << 20));
        assert_eq!((c.pids_max(), c.mem_max()), (4, 1 << 20));
        assert_eq!((root.pids_max(), root.mem_max()), (0, 0));
    }

    #[test]
    fn charges_go_up_the_chain_and_come_back() {
        let root = Account::root();
        let a = Account::child(&root, 3, 100);
        let b = Account::child(&a, 0, 60);
        assert!(b.charge_mem(50));
        assert_eq!((b.mem_used(), a.mem_used(), root.mem_used()), (50, 50, 50));
        // b's own limit refuses, and nothing stays charged anywhere.
        assert!(!b.charge_mem(11));
        assert_eq!((b.mem_used(), a.mem_used(), root.mem_used()), (50, 50, 50));
        // a's limit refuses a charge b alone would take: b's part is taken back.
        assert!(a.charge_mem(45));
        assert!(b.mem_room(5) && !b.mem_room(6));
        assert!(!b.charge_mem(6));
        assert_eq!((b.mem_used(), a.mem_used(), root.mem_used()), (50, 95, 95));
        // The root has no limit.
        assert!(root.charge_mem(u64::MAX - 95));
        assert!(!root.charge_mem(1), "an overflow is refused");
        root.uncharge_mem(u64::MAX - 95);
        b.uncharge_mem(50);
        a.uncharge_mem(45);
        assert_eq!((b.mem_used(), a.mem_used(), root.mem_used()), (0, 0, 0));
        // Processes: a's limit of 3 covers b's.
        assert!(a.add_proc());
        assert!(b.add_proc() && b.add_proc());
        assert!(!b.add_proc() && !a.add_proc());
        assert!(!b.proc_room() && !a.proc_room() && root.proc_room(), "the hint agrees");
        assert_eq!((b.procs(), a.procs(), root.procs()), (2, 3, 3));
        assert!(root.add_proc());
        b.remove_proc();
        assert!(b.add_proc());
        for acct in [&b, &b, &a] {
            acct.remove_proc();
        }
        root.remove_proc();
        assert_eq!((b.procs(), a.procs(), root.procs()), (0, 0, 0));
    }

    /// Threads on real cores charge and release in two sibling accounts under one limited
    /// parent: no level ever holds more than its limit, and all comes back to zero.
    #[test]
    fn racing_charges_never_pass_a_limit() {
        const LIMIT: u64 = 1000;
        let root = Account::root();
        let parent = Account::child(&root, 0, LIMIT);
        let kids = [Account::child(&parent, 0, 0), Account::child(&parent, 0, 600)];
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let kid = kids[t % 2].clone();
                let parent = parent.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    let mut granted = 0u32;
                    for i in 0..20_000u64 {
                        let n = 1 + (i * 7 + t as u64) % 90;
                        if kid.charge_mem(n) {
                            granted += 1;
                            held.push(n);
                        }
                        assert!(parent.mem_used() <= LIMIT, "over the parent's limit");
                        assert!(kid.mem_max() == 0 || kid.mem_used() <= kid.mem_max());
                        if held.len() > 4 || i % 3 == 0 {
                            if let Some(n) = held.pop() {
                                kid.uncharge_mem(n);
                            }
                        }
                    }
                    for n in held {
                        kid.uncharge_mem(n);
                    }
                    granted
                })
            })
            .collect();
        let granted: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(granted > 10_000, "only {granted} charges granted");
        assert_eq!((parent.mem_used(), root.mem_used()), (0, 0));
        assert_eq!((kids[0].mem_used(), kids[1].mem_used()), (0, 0));
    }
}
