//! Pid numbers in nested pid namespaces: allocation and translation. Pure data, no kernel
//! dependencies, unit-tested on the host (`mkimage/tests/kernel_ns.rs`).
//!
//! A process has one pid in its own pid namespace and one in each ancestor pid namespace up to
//! the root (pid_namespaces(7)): its *pid list* `[(namespace id, pid)]`, its own namespace
//! first and the root last. The root's number is the *global* pid, the process table's key.
//! The first process of a new pid namespace gets pid 1 there: it is that namespace's init.
//!
//! A process is visible from namespace `v` exactly when its pid list has an entry for `v`
//! (its pid namespace is `v` or a descendant of `v`); [`pid_in`] gives the number `v` sees, and
//! [`PidMap::lookup`] goes back from `v`'s number to the global pid. So one pid list answers
//! "can the caller see it?" and "what does the caller call it?" together, and a caller can
//! never name a process it cannot see.
//!
//! Numbers are allocated per namespace, counting up from the last one given and wrapping at
//! [`PID_MAX`] (to 2: pid 1 belongs to the init), skipping numbers in use. A namespace id is
//! reused after the namespace dies ([`PidMap::forget_ns`]), and its numbering starts again at 1.
//!
//! Locking: the kernel keeps the map inside the process table, under the table's lock (one
//! lock for the processes and every translation), so a pid list and the map always agree.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// The largest pid (in any namespace).
pub const PID_MAX: u32 = 1 << 22;

/// `(namespace id, pid in it)` entries of one process, its own namespace first.
pub type PidList = Vec<(u32, u32)>;

/// The number namespace `ns` gives the process with pid list `pids` (`None`: it cannot see
/// that process).
pub fn pid_in(pids: &[(u32, u32)], ns: u32) -> Option<u32> {
    pids.iter().find(|&&(n, _)| n == ns).map(|&(_, pid)| pid)
}

#[derive(Default)]
pub struct PidMap {
    /// `(namespace, pid there)` -> global pid, for every live process.
    by_ns: BTreeMap<(u32, u32), u32>,
    /// The last pid given in each namespace.
    last: BTreeMap<u32, u32>,
}

impl PidMap {
    pub const fn new() -> Self {
        PidMap { by_ns: BTreeMap::new(), last: BTreeMap::new() }
    }

    /// The next free pid of namespace `ns` (`None`: every number is taken).
    fn next_free(&self, ns: u32) -> Option<u32> {
        let mut pid = self.last.get(&ns).copied().unwrap_or(0);
        for _ in 0..PID_MAX {
            pid = if pid >= PID_MAX { 2 } else { pid + 1 };
            if !self.by_ns.contains_key(&(ns, pid)) {
                return Some(pid);
            }
        }
        None
    }

    /// Give a new process a pid in each namespace of `chain` (its own pid namespace first, the
    /// root last) and record them. Returns its pid list; the global pid is the last entry.
    pub fn alloc(&mut self, chain: &[u32]) -> Option<PidList> {
        let mut pids = Vec::with_capacity(chain.len());
        for &ns in chain {
            pids.push((ns, self.next_free(ns)?));
        }
        let global = pids.last()?.1;
        for &(ns, pid) in &pids {
            self.by_ns.insert((ns, pid), global);
            self.last.insert(ns, pid);
        }
        Some(pids)
    }

    /// The process is gone: its numbers are free again.
    pub fn remove(&mut self, pids: &[(u32, u32)]) {
        for key in pids {
            self.by_ns.remove(key);
        }
    }

    /// The global pid of the process namespace `ns` calls `pid`.
    pub fn lookup(&self, ns: u32, pid: u32) -> Option<u32> {
        self.by_ns.get(&(ns, pid)).copied()
    }

    /// Namespace `ns` is gone (no process has a number in it): a namespace that reuses its id
    /// starts again at pid 1.
    pub fn forget_ns(&mut self, ns: u32) {
        self.last.remove(&ns);
    }

    /// Live numbers in namespace `ns`, in order.
    #[cfg(test)]
    pub fn pids_of(&self, ns: u32) -> impl Iterator<Item = u32> + '_ {
        self.by_ns.range((ns, 0)..=(ns, u32::MAX)).map(|(&(_, pid), _)| pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn a_nested_process_has_a_pid_at_every_level() {
        let mut m = PidMap::new();
        let init = m.alloc(&[1]).unwrap();
        assert_eq!(init, vec![(1, 1)]);
        let sh = m.alloc(&[1]).unwrap();
        assert_eq!(sh, vec![(1, 2)]);
        // A container (namespace 2) inside the root: its first process is its pid 1.
        let nsinit = m.alloc(&[2, 1]).unwrap();
        assert_eq!(nsinit, vec![(2, 1), (1, 3)]);
        // Three deep: 3 inside 2 inside 1.
        let deep = m.alloc(&[3, 2, 1]).unwrap();
        assert_eq!(deep, vec![(3, 1), (2, 2), (1, 4)]);
        assert_eq!(m.lookup(2, 2), Some(4));
        assert_eq!(m.lookup(3, 1), Some(4));
        assert_eq!(m.lookup(1, 4), Some(4));
    }

    #[test]
    fn visibility_is_having_a_number_there() {
        let mut m = PidMap::new();
        let root_sh = m.alloc(&[1]).unwrap();
        let a = m.alloc(&[2, 1]).unwrap();
        let b = m.alloc(&[3, 1]).unwrap();
        let nested = m.alloc(&[4, 2, 1]).unwrap();
        // The root sees everyone.
        for p in [&root_sh, &a, &b, &nested] {
            assert!(pid_in(p, 1).is_some());
        }
        // A container sees its own and its descendants', not the root's nor a sibling's.
        assert_eq!(pid_in(&a, 2), Some(1));
        assert_eq!(pid_in(&nested, 2), Some(2));
        assert_eq!(pid_in(&root_sh, 2), None);
        assert_eq!(pid_in(&b, 2), None);
        // A sibling's number means something else (or nothing) in another namespace.
        assert_eq!(m.lookup(3, 1), Some(pid_in(&b, 1).unwrap()));
        assert_eq!(m.lookup(2, 3), None);
        // The nested one sees only itself.
        assert_eq!(pid_in(&a, 4), None);
        assert_eq!(pid_in(&nested, 4), Some(1));
    }

    #[test]
    fn numbers_are_freed_and_a_reused_namespace_starts_at_one() {
        let mut m = PidMap::new();
        m.alloc(&[1]).unwrap();
        let c1 = m.alloc(&[2, 1]).unwrap();
        let c2 = m.alloc(&[2, 1]).unwrap();
        assert_eq!((c1[0], c2[0]), ((2, 1), (2, 2)));
        m.remove(&c1);
        m.remove(&c2);
        assert_eq!(m.lookup(2, 1), None);
        assert_eq!(m.pids_of(2).count(), 0);
        m.forget_ns(2);
        let again = m.alloc(&[2, 1]).unwrap();
        assert_eq!(again[0], (2, 1));
        // The root keeps counting up (no early reuse of a global pid).
        assert_eq!(again[1].1, 4);
    }

    #[test]
    fn a_reaped_nested_process_frees_its_number_at_every_level() {
        let mut m = PidMap::new();
        m.alloc(&[1]).unwrap();
        let init2 = m.alloc(&[2, 1]).unwrap();
        let deep = m.alloc(&[3, 2, 1]).unwrap();
        let other = m.alloc(&[3, 2, 1]).unwrap();
        assert_eq!(other, vec![(3, 2), (2, 3), (1, 4)]);
        m.remove(&deep);
        for &(ns, pid) in &deep {
            assert_eq!(m.lookup(ns, pid), None, "ns {ns} still calls someone {pid}");
        }
        // The others keep their numbers everywhere.
        assert_eq!(m.lookup(3, 2), Some(4));
        assert_eq!(m.lookup(2, 3), Some(4));
        assert_eq!(m.lookup(2, 1), Some(init2[1].1));
        // A freed number is not given again before the counter wraps.
        let next = m.alloc(&[3, 2, 1]).unwrap();
        assert_eq!(next, vec![(3, 3), (2, 4), (1, 5)]);
    }

    #[test]
    fn allocation_wraps_and_skips_numbers_in_use() {
        let mut m = PidMap::new();
        m.alloc(&[1]).unwrap(); // init, pid 1
        m.last.insert(1, PID_MAX - 1);
        let a = m.alloc(&[1]).unwrap();
        assert_eq!(a, vec![(1, PID_MAX)]);
        let b = m.alloc(&[1]).unwrap();
        assert_eq!(b, vec![(1, 2)]); // wrapped, and 1 is the init's
        m.last.insert(1, 1);
        let c = m.alloc(&[1]).unwrap();
        assert_eq!(c, vec![(1, 3)]); // 2 is taken
    }
}
