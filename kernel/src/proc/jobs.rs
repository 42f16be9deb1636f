//! Process groups in the kernel: `setpgid` and `getpgid` in the caller's view, the group a
//! console's `setfg` names, and the kill of a whole group by `^C`. The rules are
//! [`super::pgrp`]'s; this module looks the processes up and applies them.
//!
//! A group is its leader's pid list (`Process::pgrp`, shared by its members): its number in a
//! view is the leader's number there, which stays right after the leader is reaped, and its
//! global number (the list's last entry) is what a console keeps. Every lookup and change is
//! made under the process table's lock, each process's group lock (`ProcGroup`) under it, so a
//! `setpgid` decides and applies in one section. Processes are killed after the table's lock
//! is released (a kill takes the process's waker lock, which comes before it).

use super::pgrp::{self, Group, Target};
use super::{with_table, Pid, Process, State, Viewer};
use crate::ns::pidmap::{pid_in, PidList};
use abi::syscall::Errno;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::SeqCst;

/// The global number of a group (its leader's global pid).
fn global(g: &PidList) -> Pid {
    g.last().map_or(0, |&(_, pid)| pid)
}

/// The group of `p` as `v` numbers it (0 when its leader is in a pid namespace above `v`'s).
pub fn pgid_in(p: &Process, v: Viewer) -> u32 {
    pid_in(&p.pgrp.lock(), v.0).unwrap_or(0)
}

/// `setpgid(pid, pgid)` from `caller`, both numbers in its view (0: itself; 0: `pid`'s own).
pub fn setpgid(caller: &Process, pid: u32, pgid: u32) -> Result<(), Errno> {
    let view = Viewer::of(caller);
    let here = caller.ns.pid.id;
    let old = with_table(|t| {
        let global_pid = match pid {
            0 => caller.pid,
            pid => t.pids.lookup(view.0, pid).ok_or(Errno::ESRCH)?,
        };
        let target = t.procs.get(&global_pid).ok_or(Errno::ESRCH)?.clone();
        let who = Target {
            pid: pid_in(&target.pids, view.0).ok_or(Errno::ESRCH)?,
            is_caller: target.pid == caller.pid,
            is_child: target.ppid.load(SeqCst) == caller.pid,
            same_ns: target.ns.pid.id == here,
        };
        let pgid = pgrp::resolve(&who, pgid);
        // The group of that number: one with a process of the caller's pid namespace to
        // join, or one that may not be joined.
        let mut group = Group::None;
        let mut join: Option<Arc<PidList>> = None;
        for q in t.procs.values() {
            let g = q.pgrp.lock().clone();
            if pid_in(&g, view.0) != Some(pgid) {
                continue;
            }
            if pgid == who.pid && global(&g) != target.pid {
                // The target's own number, but an older group whose leader is gone.
                group = Group::Elsewhere;
                break;
            }
            if q.ns.pid.id == here {
                group = Group::Here;
                join = Some(g);
            } else if group == Group::None {
                group = Group::Elsewhere;
            }
        }
        pgrp::check(&who, pgid, group)?;
        let new = match join {
            Some(g) => g,
            None => Arc::new(target.pids.clone()), // a new group the target leads
        };
        let old = core::mem::replace(&mut *target.pgrp.lock(), new);
        Ok(old)
    })?;
    drop(old); // the last reference to a group frees its list: outside the table's lock
    Ok(())
}

/// The group `v` calls `pgid`, by its global number, if a live process is in it.
pub fn find_group(v: Viewer, pgid: u32) -> Option<Pid> {
    with_table(|t| {
        t.procs.values().filter(|q| q.state() != State::Zombie).find_map(|q| {
            let g = q.pgrp.lock();
            (pid_in(&g, v.0) == Some(pgid)).then(|| global(&g))
        })
    })
}

/// Kill every live process of the group whose global number is `pgid` (`^C`); how many.
pub fn kill_group(pgid: Pid) -> usize {
    let members: Vec<Arc<Process>> = with_table(|t| {
        t.procs
            .values()
            .filter(|q| q.state() != State::Zombie && global(&q.pgrp.lock()) == pgid)
            .cloned()
            .collect()
    });
    members.iter().filter(|q| super::kill(q).is_ok()).count()
}

/// The group a child of `p` starts in (`fork`, `spawn`, `nsenter`): `p`'s.
pub fn inherited(p: &Process) -> Arc<PidList> {
    p.pgrp.lock().clone()
}
