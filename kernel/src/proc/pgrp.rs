//! Process groups: the rules of `setpgid`, with no kernel dependencies (unit-tested on the
//! host: `mkimage/tests/kernel_console.rs`). `proc::jobs` looks the processes up and applies
//! them under the process table's lock.
//!
//! A group is named by its leader's pid (the process that made it with `setpgid(p, p)`); it
//! lives while any process is in it, the leader gone or not. The rules are POSIX's, with a
//! pid namespace where POSIX has a session: a process may move itself or one of its children,
//! of its own pid namespace, into a new group of its own or into a group that already has a
//! process of that pid namespace. (No `EACCES` for a child that has called `exec`: this ABI
//! has no such error, and nothing here depends on it.)

use abi::syscall::Errno;

/// The process `setpgid` would move, as the caller sees it.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Its pid in the caller's view.
    pub pid: u32,
    /// It is the caller.
    pub is_caller: bool,
    /// Its parent is the caller.
    pub is_child: bool,
    /// It is in the caller's pid namespace.
    pub same_ns: bool,
}

/// The group the target would join, as the caller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// No process is in a group of that number.
    None,
    /// Processes of the caller's pid namespace are in it.
    Here,
    /// A group of that number exists that the target may not join: the target's own number,
    /// but another (older) group whose leader is gone and whose number was given again; or a
    /// group of another pid namespace.
    Elsewhere,
}

/// `setpgid`'s arguments as numbers: `(pid, pgid)`. A pid that is no `u32` names no process
/// (`ESRCH`, as for `kill`); a negative or too large group is `EINVAL`.
pub fn args(pid: u64, pgid: u64) -> Result<(u32, u32), Errno> {
    let pid = u32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    let pgid = u32::try_from(pgid).map_err(|_| Errno::EINVAL)?;
    Ok((pid, pgid))
}

/// The group `setpgid(_, pgid)` names for `target` (0: the target's own number).
pub fn resolve(target: &Target, pgid: u32) -> u32 {
    if pgid == 0 {
        target.pid
    } else {
        pgid
    }
}

/// Whether `target` may join group `pgid` (already [`resolve`]d), which is in state `group`.
pub fn check(target: &Target, pgid: u32, group: Group) -> Result<(), Errno> {
    if !target.is_caller && !target.is_child {
        return Err(Errno::ESRCH);
    }
    if !target.same_ns {
        return Err(Errno::EPERM);
    }
    match (pgid == target.pid, group) {
        // A new group led by the target, or the one it leads already.
        (true, Group::None | Group::Here) => Ok(()),
        (false, Group::Here) => Ok(()),
        _ => Err(Errno::EPERM),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Target = Target { pid: 5, is_caller: true, is_child: false, same_ns: true };
    const CHILD: Target = Target { pid: 9, is_caller: false, is_child: true, same_ns: true };

    #[test]
    fn a_new_group_of_ones_own_or_a_childs() {
        assert_eq!(resolve(&ME, 0), 5);
        assert_eq!(check(&ME, resolve(&ME, 0), Group::None), Ok(()));
        assert_eq!(check(&CHILD, resolve(&CHILD, 0), Group::None), Ok(()));
        // Again: the group it leads already (the shell calls it in parent and child).
        assert_eq!(check(&CHILD, 9, Group::Here), Ok(()));
    }

    #[test]
    fn joining_an_existing_group_of_the_namespace() {
        // The shell's second command joins the first command's group.
        assert_eq!(check(&CHILD, 7, Group::Here), Ok(()));
        assert_eq!(check(&CHILD, 7, Group::None), Err(Errno::EPERM), "no such group");
        assert_eq!(check(&CHILD, 7, Group::Elsewhere), Err(Errno::EPERM), "another namespace's");
    }

    #[test]
    fn only_the_caller_and_its_children() {
        let stranger = Target { pid: 3, is_caller: false, is_child: false, same_ns: true };
        assert_eq!(check(&stranger, 3, Group::None), Err(Errno::ESRCH));
        let grandchild = Target { is_child: false, ..stranger };
        assert_eq!(check(&grandchild, 0, Group::Here), Err(Errno::ESRCH));
    }

    #[test]
    fn not_across_pid_namespaces() {
        // A child in a container (`spawn`'s): not in the caller's pid namespace.
        let inside = Target { same_ns: false, ..CHILD };
        assert_eq!(check(&inside, 9, Group::None), Err(Errno::EPERM));
        assert_eq!(check(&inside, 7, Group::Here), Err(Errno::EPERM));
    }

    #[test]
    fn a_number_given_again_does_not_join_the_old_group() {
        // Group 9's leader is gone and 9 is the child's pid now: not the same group.
        assert_eq!(check(&CHILD, 9, Group::Elsewhere), Err(Errno::EPERM));
    }

    #[test]
    fn arguments_out_of_range() {
        assert_eq!(args(3, 0), Ok((3, 0)));
        assert_eq!(args(1 << 32, 0), Err(Errno::ESRCH));
        assert_eq!(args(0, u64::MAX), Err(Errno::EINVAL), "-1");
        assert_eq!(args(0, 1 << 32 | 3), Err(Errno::EINVAL));
    }
}
