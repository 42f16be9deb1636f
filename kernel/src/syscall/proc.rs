//! Process system calls: fork, exit, wait, kill, exec, getpid, sbrk, sleep, uptime, poweroff,
//! setpgid, getpgid. Every pid they take or give is in the caller's pid namespace
//! (`proc::Viewer`).

use crate::arch::trap::TrapFrame;
use crate::mm::budget::{self, Charge};
use crate::mm::PAGE_SIZE;
use crate::ns::rules::{exec_lookup, ExecLookup};
use crate::ns::NsSet;
use crate::proc::{self, bridge, load, uaccess, Spec, Viewer};
use crate::rootfs::Ino;
use abi::syscall::{wait, Errno, USER_STACK_SIZE, USER_STACK_TOP};
use alloc::vec::Vec;

/// Largest heap (program break minus its start).
const MAX_HEAP: u64 = 256 << 20;
/// Most arguments to exec.
const MAX_ARGV: usize = 64;
const MAX_PATH: usize = 1024;

pub(super) fn ok_or_errno(r: Result<isize, Errno>) -> isize {
    r.unwrap_or_else(Errno::ret)
}

/// A copy of the caller in namespaces `ns`, with root and working directory `dirs` (`None`:
/// the caller's). Returns the child's pid as the caller sees it; the child returns 0.
pub(super) fn fork_into(
    frame: &TrapFrame,
    ns: NsSet,
    dirs: Option<(Ino, Ino)>,
) -> Result<isize, Errno> {
    let p = proc::current();
    // A fork bomb at its process limit is refused before its address space is copied.
    if !ns.home.account.proc_room() {
        return Err(Errno::EAGAIN);
    }
    // Charged to the child's namespace (a new one for `spawn`), against its limits.
    let vm = p.vm.lock().fork(Some(ns.home.account.clone()))?;
    let mut child_frame = *frame;
    child_frame.rax = 0; // fork returns 0 in the child
    let (root, cwd) = match dirs {
        Some((root, cwd)) => (Some(root), Some(cwd)),
        // One lock at a time (a tuple of both would hold the first guard under the second).
        None => {
            let cwd = p.cwd.lock().clone();
            let root = p.root.lock().clone();
            (root, cwd)
        }
    };
    let name = p.name_bytes();
    let files = p.files.lock().clone_for_fork();
    let pgrp = Some(proc::jobs::inherited(&p));
    let spec = Spec { ppid: p.pid, name: &name, files, cwd, root, ns, pgrp };
    let child = proc::create(spec, vm, &child_frame)?;
    // The child is in the caller's pid namespace or just below it: always visible.
    Ok(Viewer::of(&p).pid_of(&child).unwrap_or(0) as isize)
}

pub fn sys_fork(frame: &TrapFrame) -> isize {
    let ns = proc::current().ns.clone();
    ok_or_errno(fork_into(frame, ns, None))
}

pub fn sys_exit(a: &[u64; 6]) -> isize {
    proc::exit(a[0] as i32)
}

pub fn sys_wait(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        if a[1] & !(wait::FOREVER as u64) != 0 {
            return Err(Errno::EINVAL);
        }
        let forever = a[1] & wait::FOREVER as u64 != 0;
        // The status pointer is checked before a child is reaped: a bad one must not cost
        // the parent its child's exit status (nothing else could collect it afterwards).
        if a[0] != 0 {
            uaccess::check(a[0], 4, true)?;
        }
        let (me, view) = {
            let p = proc::current();
            (p.pid, Viewer::of(&p))
        };
        let (pid, status) = bridge::block_on_interruptible(async {
            loop {
                // Taken before looking: a child exiting (or an orphan handed over) after the
                // look moves the ticket on.
                let ticket = proc::CHILD_EXITED.ticket();
                match proc::reap_child(me, view) {
                    Ok(Some(found)) => return Ok(found),
                    Ok(None) => proc::CHILD_EXITED.wait(ticket).await,
                    Err(Errno::ECHILD) if forever => proc::CHILD_EXITED.wait(ticket).await,
                    Err(e) => return Err(e),
                }
            }
        })??;
        if a[0] != 0 {
            uaccess::copy_out(a[0], &status.to_le_bytes())?;
        }
        Ok(pid as isize)
    })())
}

/// `kill(pid)`: `pid` as the caller sees it (`ESRCH` for one it cannot see). A pid is a
/// `u32`: a larger value names no process; truncating it would let `kill(2^32 + 1)` end init.
pub fn sys_kill(a: &[u64; 6]) -> isize {
    let Ok(pid) = u32::try_from(a[0]) else {
        return Errno::ESRCH.ret();
    };
    ok_or_errno(proc::kill_in(Viewer::current(), pid).map(|()| 0))
}

/// `setpgid(pid, pgid)`: see `proc::pgrp` for the rules, `proc::jobs` for the lookups.
pub fn sys_setpgid(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let (pid, pgid) = proc::pgrp::args(a[0], a[1])?;
        proc::jobs::setpgid(&proc::current(), pid, pgid)?;
        Ok(0)
    })())
}

/// `getpgid(pid)`: `pid`'s process group as the caller numbers it (0: the caller's).
pub fn sys_getpgid(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let pid = u32::try_from(a[0]).map_err(|_| Errno::ESRCH)?;
        let p = proc::current();
        let view = Viewer::of(&p);
        let target = match pid {
            0 => p,
            pid => view.find(pid).ok_or(Errno::ESRCH)?,
        };
        Ok(proc::jobs::pgid_in(&target, view) as isize)
    })())
}

/// `getpid()`: the caller's number in its own pid namespace (1 for a container's init).
pub fn sys_getpid() -> isize {
    proc::current().pids.first().map_or(0, |&(_, pid)| pid) as isize
}

pub fn sys_sbrk(a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let p = proc::current();
        let mut vm = p.vm.lock();
        let delta = a[0] as i64;
        let old = vm.brk;
        let new = match old.checked_add_signed(delta) {
            Some(new) if new >= vm.brk_base => new,
            // Below the initial break (or below zero): not a valid break.
            _ if delta < 0 => return Err(Errno::EINVAL),
            _ => return Err(Errno::ENOMEM),
        };
        if new - vm.brk_base > MAX_HEAP || new > USER_STACK_TOP - USER_STACK_SIZE {
            return Err(Errno::ENOMEM);
        }
        let page_up = |x: u64| x.next_multiple_of(PAGE_SIZE);
        if new > old {
            for page in (page_up(old)..page_up(new)).step_by(PAGE_SIZE as usize) {
                if let Err(e) = vm.map_zeroed(page, true, false) {
                    for undo in (page_up(old)..page).step_by(PAGE_SIZE as usize) {
                        vm.unmap(undo);
                    }
                    return Err(e);
                }
            }
        } else {
            for page in (page_up(new)..page_up(old)).step_by(PAGE_SIZE as usize) {
                vm.unmap(page);
            }
        }
        vm.brk = new;
        Ok(old as isize)
    })())
}

pub fn sys_sleep(a: &[u64; 6]) -> isize {
    ok_or_errno(bridge::block_on_interruptible(crate::exec::sleep_ms(a[0])).map(|()| 0))
}

pub fn sys_uptime() -> isize {
    (crate::time::now_ns() / 1_000_000) as isize
}

/// Only a process of the root namespace may turn the machine off: a container is a guest of
/// the machine, as a Docker container may not reboot its host (`EPERM`).
pub fn sys_poweroff() -> isize {
    if proc::current().ns.home.id != abi::syscall::ns::ROOT {
        return Errno::EPERM.ret();
    }
    crate::power::poweroff()
}

/// `exec(path, argv)`: `/bin/<path>` first (the report's design), then the path as given.
pub fn sys_exec(frame: &mut TrapFrame, a: &[u64; 6]) -> isize {
    ok_or_errno((|| {
        let path = uaccess::copy_in_str(a[0], MAX_PATH)?;
        let mut args: Vec<Vec<u8>> = Vec::new();
        // The strings' bytes (with their NULs) are bounded as they are copied, not after:
        // otherwise 64 strings of `MAX_ARGS` each would be 4 MiB of kernel heap per process.
        let mut arg_bytes = 0usize;
        if a[1] != 0 {
            for i in 0..=MAX_ARGV as u64 {
                let ptr = uaccess::read_u64(a[1].checked_add(i * 8).ok_or(Errno::EFAULT)?)?;
                if ptr == 0 {
                    break;
                }
                if args.len() == MAX_ARGV {
                    return Err(Errno::E2BIG);
                }
                let room = load::MAX_ARGS.saturating_sub(arg_bytes + 1);
                let s = uaccess::copy_in_str(ptr, room).map_err(|e| match e {
                    Errno::ENAMETOOLONG => Errno::E2BIG,
                    e => e,
                })?;
                arg_bytes += s.len() + 1;
                args.push(s);
            }
        }
        // Held across the wait for the disk below: charged (no `await` since the copies),
        // unless small enough to go uncharged (as `mm::budget::IoBuf`'s small buffers).
        let _args_charge = match arg_bytes > budget::SMALL {
            true => Some(Charge::new(arg_bytes).ok_or(Errno::ENOMEM)?),
            false => None,
        };
        let fs = crate::rootfs::get().ok_or(Errno::ENOENT)?;
        let p = proc::current();
        let root = p.root.lock().clone().ok_or(Errno::ENOENT)?;
        let cwd = p.cwd.lock().clone().ok_or(Errno::ENOENT)?;
        let elf = bridge::block_on(async {
            let ip = match exec_lookup(&path) {
                // The global /bin is the disk's, whatever the caller's root.
                ExecLookup::BinThenCwd(name) => {
                    let disk = fs.root().map_err(|_| Errno::EIO)?;
                    let bin = [b"/bin/", name].concat();
                    match fs.namei(&disk, &disk, &bin).await {
                        Ok(ip) => ip,
                        Err(_) => fs.namei(&root, &cwd, name).await.map_err(|_| Errno::ENOENT)?,
                    }
                }
                ExecLookup::CallerOnly(path) => {
                    fs.namei(&root, &cwd, path).await.map_err(|_| Errno::ENOENT)?
                }
            };
            if ip.lock().await.map_err(|_| Errno::EIO)?.kind() != fs::inode::T_FILE {
                return Err(Errno::ENOEXEC); // a directory or a device is not a program
            }
            load::read_program(fs, &ip).await
        })?;
        // Charged to the caller's namespace while the old address space still is: exec
        // needs room for both under its limit for a moment.
        let l = load::load(&elf, &args, Some(p.ns.home.account.clone()))?;
        {
            let mut vm = p.vm.lock();
            l.vm.activate();
            *vm = l.vm; // the old address space is freed here
        }
        let name = path.rsplit(|&c| c == b'/').next().unwrap_or(&path);
        p.set_name(name);
        *frame = proc::user_frame(l.entry, l.rsp, l.argc, l.argv);
        Ok(0)
    })())
}
