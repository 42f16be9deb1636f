//! Processes: each has its own address space, kernel stack (with a guard page), open files,
//! working directory and root directory (path lookup starts from it: containers will give
//! each namespace its own).
//!
//! A process runs user code preemptively; in the kernel it runs system calls on its own
//! kernel stack. A system call that must wait builds a future and hands it to
//! [`bridge::block_on`]: the process sleeps until the future's waker fires (from a disk
//! interrupt, a pipe writer, a timer...) and the scheduler picks it again.
//!
//! Lifecycle: `fork` copies the caller; `exit` releases memory and files at once and leaves a
//! zombie; the parent's `wait` reaps it (freeing its kernel stack). Orphans go to init (pid 1).
//!
//! Locks (`docs/locks.md`): a process's `files`, `cwd` and `root` come first in the lock order
//! (closing a file or dropping a directory under them takes the locks of what is dropped);
//! `vm`, `name` and `waker` come late, and the table (`TABLE`) before the heap, since it is
//! held while allocating and freeing. No interrupt handler takes any of them: a process's
//! waker only touches its `sched::RunState`.

pub mod bridge;
pub mod elf;
pub mod load;
mod runstate;
pub mod sched;
pub mod uaccess;
pub mod vm;

use crate::arch::trap::TrapFrame;
use crate::file::FdTable;
use crate::mm::kstack::KernelStack;
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
    pub pid: Pid,
    pub ppid: AtomicU32,
    pub name: Mutex<[u8; PROC_NAME_LEN]>,
    /// State, `woken`, `queued`, `on_cpu`: shared with the process's waker (`sched::RunState`).
    pub(crate) run: Arc<sched::RunState>,
    pub killed: AtomicBool,
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

static TABLE: Mutex<BTreeMap<Pid, Arc<Process>>> = Mutex::new(Rank::ProcTable, BTreeMap::new());
static NEXT_PID: AtomicU32 = AtomicU32::new(1);
/// Notified whenever a process becomes a zombie (parents in `wait` re-check).
pub static CHILD_EXITED: WaitQueue = WaitQueue::new();

/// Task and process context only: no interrupt handler takes the table (process wakers take
/// no lock), and it is held for lookups, inserts and the reaping of a zombie, which allocate
/// and free (docs/locks.md).
fn with_table<R>(f: impl FnOnce(&mut BTreeMap<Pid, Arc<Process>>) -> R) -> R {
    f(&mut TABLE.lock())
}

pub fn get(pid: Pid) -> Option<Arc<Process>> {
    with_table(|t| t.get(&pid).cloned())
}

pub fn all() -> Vec<Arc<Process>> {
    with_table(|t| t.values().cloned().collect())
}

pub fn try_current() -> Option<Arc<Process>> {
    sched::CURRENT.lock().clone()
}

/// The process whose system call is running. Panics in kernel-task context (a kernel bug).
pub fn current() -> Arc<Process> {
    try_current().expect("no current process")
}

pub fn record(p: &Process) -> ProcRecord {
    let mut r = ProcRecord {
        pid: p.pid,
        ppid: p.ppid.load(SeqCst),
        state: p.state() as u32,
        ns: 0,
        ns_pid: p.pid,
        size: p.vm.lock().size(),
        name: [0; PROC_NAME_LEN],
    };
    r.name = *p.name.lock();
    r
}

/// A new process with `vm`, whose first switch lands on `frame` (returned to with `iretq`).
pub(crate) fn create(
    ppid: Pid,
    name: &[u8],
    vm: vm::AddressSpace,
    files: FdTable,
    cwd: Option<Ino>,
    root: Option<Ino>,
    frame: &TrapFrame,
) -> Result<Arc<Process>, Errno> {
    if with_table(|t| t.len()) >= sched::NPROC {
        return Err(Errno::EAGAIN);
    }
    let kstack = KernelStack::new().ok_or(Errno::ENOMEM)?;
    let ctx = crate::arch::trap::prepare_kernel_stack(kstack.top(), frame);
    let pid = NEXT_PID.fetch_add(1, SeqCst);
    let run = Arc::new(sched::RunState::new(pid));
    let p = Arc::new(Process {
        pid,
        ppid: AtomicU32::new(ppid),
        name: Mutex::new(Rank::ProcName, [0; PROC_NAME_LEN]),
        run: run.clone(),
        killed: AtomicBool::new(false),
        exit_status: AtomicI32::new(0),
        vm: Mutex::new(Rank::ProcVm, vm),
        files: Mutex::new(Rank::ProcFiles, files),
        cwd: Mutex::new(Rank::ProcCwd, cwd),
        root: Mutex::new(Rank::ProcRoot, root),
        kstack,
        ctx: UnsafeCell::new(ctx),
        waker: Mutex::new(Rank::ProcWaker, Some(Waker::from(Arc::new(ProcWaker(run))))),
    });
    p.set_name(name);
    with_table(|t| t.insert(pid, p.clone()));
    sched::enqueue(&p);
    Ok(p)
}

/// Mark `pid` killed and wake it: it dies at its next return to user mode, and interruptible
/// waits return EINTR at once.
pub fn kill(pid: Pid) -> Result<(), Errno> {
    let p = get(pid).ok_or(Errno::ESRCH)?;
    if p.state() == State::Zombie {
        return Err(Errno::ESRCH);
    }
    p.killed.store(true, SeqCst);
    p.waker().wake_by_ref();
    Ok(())
}

/// End the current process: free its memory and files now, become a zombie for the parent,
/// hand children to init, and never run again.
pub fn exit(status: i32) -> ! {
    let p = current();
    p.files.lock().close_all();
    *p.cwd.lock() = None;
    *p.root.lock() = None;
    {
        // Replace the address space with an empty one: the old one is freed now, not at reap.
        let mut vm = p.vm.lock();
        if let Ok(empty) = vm::AddressSpace::new() {
            let old = core::mem::replace(&mut *vm, empty);
            drop(old);
        }
    }
    for child in all().into_iter().filter(|c| c.ppid.load(SeqCst) == p.pid) {
        child.ppid.store(1, SeqCst);
    }
    p.exit_status.store(status, SeqCst);
    x86_64::instructions::interrupts::disable();
    p.set_state(State::Zombie);
    drop(p);
    CHILD_EXITED.notify_all();
    sched::exit_switch()
}

/// Reap one zombie child of `parent`: Ok(Some((pid, status))), Ok(None) if children live on,
/// Err(ECHILD) if there are none.
pub fn reap_child(parent: Pid) -> Result<Option<(Pid, i32)>, Errno> {
    with_table(|t| {
        let mut any = false;
        let mut zombie = None;
        for (pid, p) in t.iter() {
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
                let p = t.remove(&pid).expect("zombie in table");
                Ok(Some((pid, p.exit_status.load(SeqCst))))
            }
            (None, true) => Ok(None),
            (None, false) => Err(Errno::ECHILD),
        }
    })
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
    let ip = fs.namei(&root, &root, b"/bin/init").await.map_err(|_| Errno::ENOENT)?;
    let elf = load::read_program(fs, &ip).await?;
    let l = load::load(&elf, &[b"init".to_vec()])?;
    let frame = user_frame(l.entry, l.rsp, l.argc, l.argv);
    let p = create(0, b"init", l.vm, FdTable::new(), Some(root.clone()), Some(root), &frame)?;
    Ok(p.pid)
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
