//! Processes: each has its own address space, kernel stack (with a guard page), open files,
//! working directory, root directory (path lookup starts from it: a file-system namespace
//! gives its members their own) and namespaces (`crate::ns`).
//!
//! A process runs user code preemptively; in the kernel it runs system calls on its own
//! kernel stack. A system call that must wait builds a future and hands it to
//! [`bridge::block_on`]: the process sleeps until the future's waker fires (from a disk
//! interrupt, a pipe writer, a timer...) and the scheduler picks it again.
//!
//! Lifecycle: `fork` copies the caller (`spawn` too, into new namespaces); `exit` releases
//! memory and files at once and leaves a zombie; the parent's `wait` reaps it (freeing its
//! kernel stack, and its hold on its namespaces).
//!
//! # Pids and namespaces
//! [`Process::pid`] is the global pid (the root namespace's number), the table's key. A process
//! also has a number in its own pid namespace and in each one above it ([`Process::pids`],
//! `ns::pidmap`); every pid a program passes or sees is in its own pid namespace's numbers
//! ([`Viewer`]), so a container sees only its own processes and those of the containers below.
//! - Orphans go to the init of the exiting process's pid namespace (pid 1 there), or, when the
//!   exiting process is that init (or the namespace is dying), to the nearest pid namespace
//!   above whose init lives ([`reaper_for`]); the global init never exits.
//! - When a pid namespace's init exits, the namespace is dying: every other process in it and
//!   below is killed, and `fork` into it fails with `ENOMEM` ([`create`] checks under the table
//!   lock, and [`exit`] marks the namespace before it takes its snapshot to kill, so no new
//!   process slips between the two).
//!
//! # Locking
//! `docs/locks.md`: a process's `files`, `cwd` and `root` come first in the lock order
//! (closing a file or dropping a directory under them takes the locks of what is dropped);
//! `vm`, `name` and `waker` come late, and the table ([`TABLE`]) before the heap, since it is
//! held while allocating and freeing. The table holds the processes and the pid map together
//! (one lock: a lookup and its translation always agree). No interrupt handler takes any of
//! these: a process's waker only touches its `sched::RunState`. Namespace counts are released
//! after the table is dropped (`ns::NsSet::leave` may spawn a task). A process's group
//! (`pgrp`) is read and changed under the table's lock ([`jobs`]), its own lock under it.
//!
//! # Process groups
//! Every process is in one group (`pgrp`, its leader's pid list): a process made by the
//! kernel (init, `attach`'s shell) leads a group of its own, a child is in its parent's, and
//! `setpgid` moves it ([`pgrp`]'s rules, [`jobs`]). A console's `^C` kills a whole group.

pub mod bridge;
pub mod elf;
pub mod jobs;
pub mod load;
pub mod pgrp;
mod runq;
mod runstate;
pub mod sched;
pub mod sleep;
pub mod uaccess;
pub mod vm;

use crate::arch::trap::TrapFrame;
use crate::file::FdTable;
use crate::mm::kstack::KernelStack;
use crate::ns::pidmap::{self, PidList, PidMap};
use crate::ns::NsSet;
use crate::rootfs::Ino;
use abi::syscall::{state, Errno, ProcRecord, PROC_NAME_LEN};
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::SeqCst};
use core::task::Waker;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;

pub type Pid = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    Runnable = state::RUNNABLE,
    Running = state::RUNNING,
    Sleeping = state::SLEEPING,
    Zombie = state::ZOMBIE,
}

pub struct Process {
    /// The global pid (the root namespace's number for it).
    pub pid: Pid,
    /// The parent's global pid.
    pub ppid: AtomicU32,
    /// Its number in each pid namespace that can see it: its own first, the root last.
    pub pids: PidList,
    /// Its namespaces.
    pub ns: NsSet,
    /// Its process group: the leader's pid list (the leader may be gone). See [`jobs`].
    pgrp: Mutex<Arc<PidList>>,
    pub name: Mutex<[u8; PROC_NAME_LEN]>,
    /// State, `woken`, `queued`, `on_cpu`: shared with the process's waker (`sched::RunState`).
    pub(crate) run: Arc<sched::RunState>,
    pub killed: AtomicBool,
    /// In `exit`, past handing its children over: no longer a reaper for anyone.
    exiting: AtomicBool,
    pub exit_status: AtomicI32,
    pub vm: Mutex<vm::AddressSpace>,
    pub files: Mutex<FdTable>,
    pub cwd: Mutex<Option<Ino>>,
    pub root: Mutex<Option<Ino>>,
    pub(crate) kstack: KernelStack,
    /// Saved kernel stack pointer while switched out (used only by `sched`).
    pub(crate) ctx: UnsafeCell<u64>,
    waker: Mutex<Option<Waker>>,
}

// SAFETY: `ctx` is written by the `swtch` that switches the process away and read by the one
// that switches to it, never both at once (`sched::run_one` waits for `on_cpu`); every other
// field is atomic or behind a lock.
unsafe impl Sync for Process {}
// SAFETY: as above.
unsafe impl Send for Process {}

impl Process {
    pub fn state(&self) -> State {
        match self.run.state() {
            state::RUNNABLE => State::Runnable,
            state::RUNNING => State::Running,
            state::SLEEPING => State::Sleeping,
            _ => State::Zombie,
        }
    }

    pub(crate) fn set_state(&self, s: State) {
        self.run.set(s as u32);
    }

    pub fn name_bytes(&self) -> Vec<u8> {
        let n = self.name.lock();
        let end = n.iter().position(|&b| b == 0).unwrap_or(PROC_NAME_LEN);
        n[..end].to_vec()
    }

    pub fn set_name(&self, name: &[u8]) {
        let mut n = self.name.lock();
        *n = [0; PROC_NAME_LEN];
        let len = name.len().min(PROC_NAME_LEN);
        n[..len].copy_from_slice(&name[..len]);
    }

    /// The process's waker: marks it woken and, if asleep, runnable. Interrupt safe, lock-free.
    pub fn waker(&self) -> Waker {
        self.waker.lock().clone().expect("process waker")
    }
}

/// What wakes a process: its scheduling state, atomics only, so that a wake (possibly in an
/// interrupt handler, on any CPU) takes no lock. A stale waker of a reaped process finds it
/// a zombie and does nothing.
struct ProcWaker(Arc<sched::RunState>);

impl Wake for ProcWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        sched::wake(&self.0);
    }
}

/// The processes by global pid, and every pid namespace's numbers for them.
struct Table {
    procs: BTreeMap<Pid, Arc<Process>>,
    pids: PidMap,
}

static TABLE: Mutex<Table> =
    Mutex::new(Rank::ProcTable, Table { procs: BTreeMap::new(), pids: PidMap::new() });
/// Notified whenever a process becomes a zombie (parents in `wait` re-check).
pub static CHILD_EXITED: WaitQueue = WaitQueue::new();

/// Task and process context only: no interrupt handler takes the table (process wakers take
/// no lock), and it is held for lookups, inserts and the reaping of a zombie, which allocate
/// and free (docs/locks.md).
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    f(&mut TABLE.lock())
}

/// The process with global pid `pid`.
pub fn get(pid: Pid) -> Option<Arc<Process>> {
    with_table(|t| t.procs.get(&pid).cloned())
}

/// Every process, zombies included.
pub fn all() -> Vec<Arc<Process>> {
    with_table(|t| t.procs.values().cloned().collect())
}

/// Pids as one process sees them: the numbers of its pid namespace.
#[derive(Clone, Copy)]
pub struct Viewer(u32);

impl Viewer {
    /// How `p` sees the others.
    pub fn of(p: &Process) -> Viewer {
        Viewer(p.ns.pid.id)
    }

    /// The current process's view.
    pub fn current() -> Viewer {
        Viewer::of(&current())
    }

    /// The number this view gives `p` (`None`: it cannot see `p`).
    pub fn pid_of(self, p: &Process) -> Option<u32> {
        pidmap::pid_in(&p.pids, self.0)
    }

    /// The number this view gives the process with global pid `global` (0: none, or not
    /// visible, as a parent outside a container is shown).
    pub fn show(self, global: Pid) -> u32 {
        get(global).and_then(|p| self.pid_of(&p)).unwrap_or(0)
    }

    /// The process this view calls `pid`.
    pub fn find(self, pid: u32) -> Option<Arc<Process>> {
        with_table(|t| t.pids.lookup(self.0, pid).and_then(|g| t.procs.get(&g).cloned()))
    }

    /// Every process this view can see, with its number here, by number.
    pub fn visible(self) -> Vec<(u32, Arc<Process>)> {
        let mut v: Vec<(u32, Arc<Process>)> =
            all().into_iter().filter_map(|p| Some((self.pid_of(&p)?, p))).collect();
        v.sort_by_key(|(pid, _)| *pid);
        v
    }
}

/// Pid namespace `ns` is gone: its numbering starts again if the id is reused.
pub fn forget_pid_ns(ns: u32) {
    with_table(|t| t.pids.forget_ns(ns));
}

pub fn try_current() -> Option<Arc<Process>> {
    sched::CURRENT.lock().clone()
}

/// The process whose system call is running. Panics in kernel-task context (a kernel bug).
pub fn current() -> Arc<Process> {
    try_current().expect("no current process")
}

/// `/proc/<pid>` of `p` for a reader whose view is `v` (which can see `p`).
pub fn record(p: &Process, v: Viewer) -> ProcRecord {
    let mut r = ProcRecord {
        pid: v.pid_of(p).unwrap_or(0),
        ppid: v.show(p.ppid.load(SeqCst)),
        state: p.state() as u32,
        ns: p.ns.home.id,
        ns_pid: p.pids.first().map_or(0, |&(_, pid)| pid),
        size: p.vm.lock().size(),
        name: [0; PROC_NAME_LEN],
        cpu_ms: p.run.cpu_ns() / 1_000_000,
    };
    r.name = *p.name.lock();
    r
}

/// What a new process starts with besides its address space: its parent (global pid), name,
/// descriptors, directories, namespaces and process group (`None`: a new one it leads).
pub(crate) struct Spec<'a> {
    pub ppid: Pid,
    pub name: &'a [u8],
    pub files: FdTable,
    pub cwd: Option<Ino>,
    pub root: Option<Ino>,
    pub ns: NsSet,
    pub pgrp: Option<Arc<PidList>>,
}

/// A new process with `vm`, whose first switch lands on `frame` (returned to with `iretq`).
/// `EAGAIN` when the table is full or past a process limit of its namespace or one above it
/// (`ns::NsSet::admit`: every way of making a process comes here); `ENOMEM` without memory
/// for its kernel stack, or when one of its pid namespaces is dying (its init exited).
pub(crate) fn create(
    spec: Spec<'_>,
    vm: vm::AddressSpace,
    frame: &TrapFrame,
) -> Result<Arc<Process>, Errno> {
    if with_table(|t| t.procs.len()) >= sched::NPROC {
        return Err(Errno::EAGAIN);
    }
    let kstack = KernelStack::new().ok_or(Errno::ENOMEM)?;
    let ctx = crate::arch::trap::prepare_kernel_stack(kstack.top(), frame);
    let Spec { ppid, name, files, cwd, root, ns, pgrp } = spec;
    let pid_namespaces = ns.pid_namespaces();
    let chain: Vec<u32> = pid_namespaces.iter().map(|n| n.id).collect();
    let mut name_buf = [0u8; PROC_NAME_LEN];
    let len = name.len().min(PROC_NAME_LEN);
    name_buf[..len].copy_from_slice(&name[..len]);
    ns.admit()?;
    let account = ns.home.account.clone();
    // Numbers, the dying check and the insertion in one section: a namespace marked dying
    // after this section finds the process in its kill-all snapshot.
    let made = with_table(|t| {
        if t.procs.len() >= sched::NPROC {
            return Err(Errno::EAGAIN);
        }
        if pid_namespaces.iter().any(|n| n.is_dying()) {
            return Err(Errno::ENOMEM);
        }
        let pids = t.pids.alloc(&chain).ok_or(Errno::EAGAIN)?;
        let pid = pids.last().expect("the root is in every chain").1;
        let pgrp = pgrp.unwrap_or_else(|| Arc::new(pids.clone()));
        ns.join();
        let run = Arc::new(sched::RunState::new(pid, ns.home.id));
        let p = Arc::new(Process {
            pid,
            ppid: AtomicU32::new(ppid),
            pids,
            ns,
            pgrp: Mutex::new(Rank::ProcGroup, pgrp),
            name: Mutex::new(Rank::ProcName, name_buf),
            run: run.clone(),
            killed: AtomicBool::new(false),
            exiting: AtomicBool::new(false),
            exit_status: AtomicI32::new(0),
            vm: Mutex::new(Rank::ProcVm, vm),
            files: Mutex::new(Rank::ProcFiles, files),
            cwd: Mutex::new(Rank::ProcCwd, cwd),
            root: Mutex::new(Rank::ProcRoot, root),
            kstack,
            ctx: UnsafeCell::new(ctx),
            waker: Mutex::new(Rank::ProcWaker, Some(Waker::from(Arc::new(ProcWaker(run))))),
        });
        t.procs.insert(pid, p.clone());
        Ok(p)
    })
    .inspect_err(|_| account.remove_proc())?;
    // The first process of a new pid namespace is its init.
    if made.pids[0].1 == 1 {
        made.ns.pid.set_init(made.pid);
    }
    sched::enqueue(&made);
    Ok(made)
}

/// Mark `p` killed and wake it: it dies at its next return to user mode, and interruptible
/// waits return EINTR at once. `ESRCH` for a zombie.
pub fn kill(p: &Process) -> Result<(), Errno> {
    if p.state() == State::Zombie {
        return Err(Errno::ESRCH);
    }
    p.killed.store(true, SeqCst);
    p.waker().wake_by_ref();
    Ok(())
}

/// `kill(pid)` from a process whose view is `v`: `ESRCH` for a pid it cannot see, `EPERM` for
/// its own namespace's init (pid 1 cannot be killed from inside, as on Linux; an ancestor
/// kills a container's init by its own number for it).
pub fn kill_in(v: Viewer, pid: u32) -> Result<(), Errno> {
    let p = v.find(pid).ok_or(Errno::ESRCH)?;
    if pid == 1 {
        return Err(Errno::EPERM);
    }
    kill(&p)
}

/// Who takes the children of `p` when it exits: the init of its pid namespace, unless `p` is
/// that init or the namespace is dying; then the nearest pid namespace above with an init
/// that is not exiting. The global init (pid 1) never exits, so there is always one. Called
/// under the table's lock (`t`), in the same section that hands the children over.
fn reaper_for(t: &Table, p: &Process, namespaces: &[Arc<crate::ns::Namespace>]) -> Pid {
    for ns in namespaces {
        let init = ns.init();
        if ns.is_dying() || init == 0 || init == p.pid {
            continue;
        }
        if t.procs.get(&init).is_some_and(|i| !i.exiting.load(SeqCst)) {
            return init;
        }
    }
    1
}

/// End the current process: free its memory and files now, become a zombie for the parent,
/// hand children to init, and never run again.
pub fn exit(status: i32) -> ! {
    let p = current();
    p.files.lock().close_all();
    *p.cwd.lock() = None;
    *p.root.lock() = None;
    {
        // Replace the address space with an empty one: the old one is freed now, not at reap,
        // and its memory goes back to its namespaces' accounts. (The empty one, a frame, is
        // charged to none: a zombie must not fail for a limit.)
        let mut vm = p.vm.lock();
        if let Ok(empty) = vm::AddressSpace::new(None) {
            let old = core::mem::replace(&mut *vm, empty);
            drop(old);
        }
    }
    // A container's init: its namespace dies with it (see the module docs for the order).
    let ns = &p.ns.pid;
    if ns.init() == p.pid && ns.id != abi::syscall::ns::ROOT {
        ns.set_dying();
        for q in all() {
            if q.pid != p.pid && pidmap::pid_in(&q.pids, ns.id).is_some() {
                let _ = kill(&q);
            }
        }
    }
    // Choosing the reaper and handing the children over is one section of the table's lock,
    // which also marks `p` as exiting: an init exiting at the same time on another CPU either
    // gets these children before it hands its own over, or is passed over as a reaper here.
    let namespaces = p.ns.pid_namespaces();
    with_table(|t| {
        p.exiting.store(true, SeqCst);
        let reaper = reaper_for(t, &p, &namespaces);
        for child in t.procs.values().filter(|c| c.ppid.load(SeqCst) == p.pid) {
            child.ppid.store(reaper, SeqCst);
        }
    });
    p.exit_status.store(status, SeqCst);
    x86_64::instructions::interrupts::disable();
    p.set_state(State::Zombie);
    drop(p);
    CHILD_EXITED.notify_all();
    sched::exit_switch()
}

/// Reap one zombie child of `parent` (global pid): Ok(Some((its pid as `v` sees it,
/// status))), Ok(None) if children live on, Err(ECHILD) if there are none.
pub fn reap_child(parent: Pid, v: Viewer) -> Result<Option<(u32, i32)>, Errno> {
    let reaped = with_table(|t| {
        let mut any = false;
        let mut zombie = None;
        for (pid, p) in t.procs.iter() {
            if p.ppid.load(SeqCst) == parent && *pid != parent {
                any = true;
                if p.state() == State::Zombie {
                    zombie = Some(*pid);
                    break;
                }
            }
        }
        match (zombie, any) {
            (Some(pid), _) => {
                let p = t.procs.remove(&pid).expect("zombie in table");
                t.pids.remove(&p.pids);
                Ok(Some(p))
            }
            (None, true) => Ok(None),
            (None, false) => Err(Errno::ECHILD),
        }
    })?;
    Ok(reaped.map(|p| {
        // A child is always in the parent's pid namespace or below: visible.
        let pid = v.pid_of(&p).unwrap_or(0);
        let status = p.exit_status.load(SeqCst);
        p.ns.leave(); // outside the table's lock: the last member retires its namespaces
        (pid, status)
    }))
}

/// On the way back to user mode: a killed process exits instead.
pub fn exit_if_killed() {
    if let Some(p) = try_current() {
        if p.killed.load(SeqCst) {
            drop(p);
            x86_64::instructions::interrupts::enable();
            exit(-1);
        }
    }
}

/// A CPU exception in user mode kills the process (the kernel reports it and goes on).
pub fn user_fault(vector: u8, frame: &TrapFrame) {
    let p = current();
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    crate::kprintln!(
        "pid {} ({}): exception {} at rip={:#x} cr2={:#x}: killed",
        p.pid,
        core::str::from_utf8(&p.name_bytes()).unwrap_or("?"),
        vector,
        frame.rip,
        cr2
    );
    p.killed.store(true, SeqCst);
}

/// Start `/bin/init` as pid 1 (from a kernel task, after the disk is mounted).
pub async fn spawn_init(fs: &'static crate::rootfs::RootFs) -> Result<Pid, Errno> {
    let root = fs.root().map_err(|_| Errno::EIO)?;
    let spec = Spec {
        ppid: 0,
        name: b"init",
        files: FdTable::new(),
        cwd: Some(root.clone()),
        root: Some(root),
        ns: NsSet::root(),
        pgrp: None,
    };
    let p = start_program(fs, b"/bin/init", spec).await?;
    Ok(p.pid)
}

/// A new process as `spec` says, running program `path` of the disk's (global) `/bin` with
/// one argument, its name: init, and the shell `attach` starts in a namespace.
pub(crate) async fn start_program(
    fs: &'static crate::rootfs::RootFs,
    path: &[u8],
    spec: Spec<'_>,
) -> Result<Arc<Process>, Errno> {
    let disk = fs.root().map_err(|_| Errno::EIO)?;
    let ip = fs.namei(&disk, &disk, path).await.map_err(|_| Errno::ENOENT)?;
    let elf = load::read_program(fs, &ip).await?;
    // Its pages are charged to the namespace it starts in (ENOMEM past its memory limit).
    let l = load::load(&elf, &[spec.name.to_vec()], Some(spec.ns.home.account.clone()))?;
    let frame = user_frame(l.entry, l.rsp, l.argc, l.argv);
    create(spec, l.vm, &frame)
}

/// The frame that enters user code at `entry` with `_start(argc, argv)`.
pub fn user_frame(entry: u64, rsp: u64, argc: u64, argv: u64) -> TrapFrame {
    use crate::arch::syscall::{USER_CS, USER_SS};
    TrapFrame {
        rip: entry,
        cs: USER_CS,
        rflags: 0x202, // interrupts on
        rsp,
        ss: USER_SS,
        rdi: argc,
        rsi: argv,
        ..TrapFrame::default()
    }
}
