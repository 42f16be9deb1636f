//! Namespace system calls: `spawn`, `spawn2`, `getns`, `nspcopy`, `publish`, `nsenter`,
//! `attach` (`crate::ns` and `crate::net::netns` hold the mechanism, `crate::file::console` the
//! consoles).

use super::proc::{fork_into, ok_or_errno};
use crate::arch::trap::TrapFrame;
use crate::file::{console, FdTable, File};
use crate::net::nat::Published;
use crate::net::netns;
use crate::ns::{self, copy, fsroot, rules, NsSet};
use crate::proc::{self, bridge, uaccess, Spec};
use crate::rootfs::Ino;
use abi::syscall::ns::{SpawnArgs, COPY_RECURSIVE, ROOT};
use abi::syscall::Errno;
use alloc::sync::Arc;
use core::sync::atomic::Ordering::SeqCst;

const MAX_PATH: usize = 1024;

/// Kinds this kernel cannot isolate yet: none.
const UNSUPPORTED: usize = 0;

/// `spawn(flags)`: `spawn2(flags, null)`.
pub fn sys_spawn(frame: &TrapFrame, a: &[u64; 6]) -> isize {
    sys_spawn2(frame, &[a[0], 0, 0, 0, 0, 0])
}

/// `spawn2(flags, args)`: `fork` with the child in a new namespace isolating `flags`' kinds,
/// with the limits and the name of `args` (`abi::syscall::ns::SpawnArgs`; null: none). For a
/// new file-system namespace, its root (`/ns/<id>` in the caller's root) is made first; the
/// child's root and working directory are both that directory. The child is the first
/// process counted against the new namespace's limits (and its ancestors').
pub fn sys_spawn2(frame: &TrapFrame, a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let flags = usize::try_from(a[0]).map_err(|_| Errno::EINVAL)?;
        let kinds = rules::spawn_kinds(flags, UNSUPPORTED)?;
        let args = match a[1] {
            0 => SpawnArgs::default(),
            va => {
                let mut raw = [0u8; SpawnArgs::SIZE];
                uaccess::copy_in(va, &mut raw)?;
                SpawnArgs::decode(&raw).map_err(|_| Errno::EINVAL)?
            }
        };
        let limits = ns::Limits {
            pids_max: args.pids_max,
            mem_max: args.mem_max,
            name: args.name().map_err(|_| Errno::EINVAL)?,
        };
        // The sleep design drives the root's stack only (docs/06-async-vs-sleep.md).
        if kinds.net() && crate::net::drive::design() == crate::net::drive::Design::Sleep {
            return Err(Errno::EINVAL);
        }
        let p = proc::current();
        // Held until the child joined it; dropped on failure, which retires it at once.
        let spawning = ns::create(&p.ns, kinds, &limits)?;
        if kinds.net() {
            netns::create(spawning.ns.id, &spawning.ns.account)?;
        }
        let dirs = if kinds.fs() {
            let parent_root = p.root.lock().clone().ok_or(Errno::ENOENT)?;
            let root = bridge::block_on(fsroot::make(&parent_root, spawning.ns.id))?;
            spawning.set_root(root.clone());
            Some((root.clone(), root))
        } else {
            None
        };
        fork_into(frame, spawning.set.clone(), dirs)
    })())
}

/// Where a process started in the held namespace `target` begins: the namespaces its members
/// have, its reaper (the init of its pid namespace) and its root directory. `ESRCH` while
/// that pid namespace has no init yet (its `spawn` is still making it: a process started
/// now would become its init) or the root is gone.
fn entry(target: &ns::Held) -> Result<(NsSet, u32, Ino), Errno> {
    let set = target.members_set();
    let reaper = set.pid.init();
    if reaper == 0 {
        return Err(Errno::ESRCH);
    }
    let root = set.fs.root_or_disk().ok_or(Errno::ESRCH)?;
    Ok((set, reaper, root))
}

/// `nsenter(nsid)`: `fork` with the child in the existing namespace `nsid`, a strict
/// descendant of the caller's home (`EPERM` otherwise; `ESRCH` for none or one retiring). Its
/// root and working directory are the namespace's root; `ENOMEM` when its pid namespace is
/// dying (`proc::create` checks).
pub fn sys_nsenter(frame: &TrapFrame, a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let nsid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
        let home = proc::current().ns.home.clone();
        // Held until the child joined it.
        let target = ns::hold(nsid).ok_or(Errno::ESRCH)?;
        rules::may_enter(target.is_below(&home))?;
        let (set, _, root) = entry(&target)?;
        fork_into(frame, set, Some((root.clone(), root)))
    })())
}

/// `attach(nsid)`: bring namespace `nsid`'s console to the front (see `file::console`),
/// starting a shell on it first if nothing has it open; returns once the input task has
/// switched (interruptible: a kill ends the wait, not the switch).
pub fn sys_attach(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let nsid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
        let home = proc::current().ns.home.clone();
        let target = ns::hold(nsid).ok_or(Errno::ESRCH)?;
        rules::may_attach(home.id, nsid, target.is_below(&home))?;
        let vt = console::for_namespace(nsid)?;
        if vt.claim_start() {
            let started = start_shell(&target, &vt);
            vt.end_start();
            started?;
        }
        drop(target);
        let seq = console::request_front(vt)?;
        bridge::block_on_interruptible(console::switched(seq))?;
        Ok(0)
    })())
}

/// `/bin/sh` in `target` on console `vt` (descriptors 0, 1 and 2), a child of the namespace's
/// init (which reaps it), in a process group of its own.
fn start_shell(target: &ns::Held, vt: &Arc<console::Vt>) -> Result<(), Errno> {
    let (set, reaper, root) = entry(target)?;
    let fs = crate::rootfs::get().ok_or(Errno::ENOENT)?;
    let mut files = FdTable::new();
    let f = File::console(vt.clone(), None, true, true);
    for _ in 0..3 {
        files.alloc(f.clone())?;
    }
    let spec = Spec {
        ppid: reaper,
        name: b"sh",
        files,
        cwd: Some(root.clone()),
        root: Some(root),
        ns: set,
        pgrp: None,
    };
    bridge::block_on(proc::start_program(fs, b"/bin/sh", spec))?;
    Ok(())
}

/// `getns()`: the caller's namespace (its home).
pub fn sys_getns() -> isize {
    proc::current().ns.home.id as isize
}

/// `nspcopy(src, nsid, dst, flags)` (see `ns::copy`).
pub fn sys_nspcopy(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let src = uaccess::copy_in_str(a[0], MAX_PATH)?;
        let nsid = u32::try_from(a[1]).map_err(|_| Errno::ESRCH)?;
        let dst = match a[2] {
            0 => None,
            va => Some(uaccess::copy_in_str(va, MAX_PATH)?),
        };
        if a[3] & !(COPY_RECURSIVE as u64) != 0 {
            return Err(Errno::EINVAL);
        }
        let p = proc::current();
        // Held for the whole copy: a namespace dying meanwhile keeps its root until we are done.
        let target = ns::hold(nsid).ok_or(Errno::ESRCH)?;
        if !target.is_below(&p.ns.home) {
            return Err(Errno::EPERM);
        }
        if !target.kinds.fs() {
            return Err(Errno::EINVAL);
        }
        let target_root = target.root().ok_or(Errno::ESRCH)?;
        let root = p.root.lock().clone().ok_or(Errno::ENOENT)?;
        let cwd = p.cwd.lock().clone().ok_or(Errno::ENOENT)?;
        let default_dst;
        let dst: &[u8] = match &dst {
            Some(d) => d,
            None => {
                default_dst = [b"/", rules::last_name(&src)].concat();
                &default_dst
            }
        };
        let c = copy::CopyJob {
            root,
            cwd,
            src: &src,
            target: target_root,
            dst,
            recursive: a[3] & COPY_RECURSIVE as u64 != 0,
        };
        // Not interruptible as a whole (a transaction must finish), but it stops between
        // chunks once the caller is killed, removing what it made.
        let killed = || p.killed.load(SeqCst);
        bridge::block_on(copy::run(c, &killed))?;
        Ok(0)
    })())
}

/// A port number argument: 1 to 65535.
fn port_arg(v: u64) -> Result<u16, Errno> {
    u16::try_from(v).ok().filter(|&p| p != 0).ok_or(Errno::EINVAL)
}

/// `publish(nsid, proto, hostport, port)`: connections (datagrams) to the wire address's
/// `hostport` reach namespace `nsid`'s `port` (see `abi::syscall::nr::PUBLISH` and
/// `crate::net::nat`), until that namespace dies.
pub fn sys_publish(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let p = proc::current();
        // The host ports are the wire's, which only the root's network namespace has.
        if p.ns.net.id != ROOT {
            return Err(Errno::EPERM);
        }
        let proto = netns::proto_of(a[1]).ok_or(Errno::EINVAL)?;
        let (host_port, port) = (port_arg(a[2])?, port_arg(a[3])?);
        let nsid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
        // Held until the port is published: the namespace cannot retire (and unpublish its
        // ports) before it is, so nothing outlives it.
        let target = ns::hold(nsid).ok_or(Errno::ESRCH)?;
        if !target.is_below(&p.ns.home) {
            return Err(Errno::EPERM);
        }
        if !target.kinds.net() {
            return Err(Errno::EINVAL);
        }
        netns::publish(Published { proto, host_port, ns: nsid, port })?;
        Ok(0)
    })())
}
