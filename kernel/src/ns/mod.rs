//! Namespaces: what a process can see. Each process belongs to one namespace of each kind
//! (pid, file system, network) through its [`NsSet`]; `spawn(flags)` starts a child in a new
//! [`Namespace`] that isolates the kinds in `flags`, and shares the rest with its parent.
//! docs/05-containers.md tells the story with pictures; this is the mechanism.
//!
//! - **The tree.** A new namespace's parent is the caller's *home* (the namespace its own
//!   last `spawn` made), so namespaces nest: a container can start containers, down to
//!   `abi::syscall::ns::MAX_DEPTH` levels (`ENOSPC` below). Ids: the root is 1; a new one
//!   takes the lowest free id from 2 ([`rules::lowest_free_id`]), at most `MAX_LIVE` alive
//!   (`EAGAIN`); an id is reused once its namespace is gone.
//! - **An `NsSet`** holds a process's `home` and, per kind, the namespace that isolates it for
//!   the process: `home` if `home` has that kind, else the nearest ancestor that has it (the
//!   root has every kind). Made at `spawn`, copied by `fork`, never changed.
//! - **Pids** ([`pidmap`]) are in the process table; a pid namespace here only knows its init
//!   and whether it is dying (its init exited: every process in it and below is killed, and
//!   nothing may join it any more). See `proc/mod.rs` for reparenting and the kill-all.
//! - **File systems** ([`fsroot`]): a file-system namespace's root is a directory
//!   `/ns/<id>` inside its parent's root; the namespace holds its inode.
//! - **Limits** ([`limits`]): each namespace has an account of its processes and memory, and
//!   of those below it, against the limits `spawn2` gave it (cut to its parent's). Every
//!   process is admitted through [`NsSet::admit`] (`proc::create`), every memory charge goes
//!   to the home namespace's account (`mm::budget`, `proc::vm`).
//! - **Names**: `spawn2` may name a namespace; a name is unique among the live namespaces
//!   (`EEXIST`), checked and taken under [`TABLE`] with the id.
//! - **Networks** (`crate::net::netns`): a network namespace has its own TCP/IP stack,
//!   `192.168.1.<id>` on the bridge, made at `spawn` and torn down when it retires.
//!
//! # Lifetime
//! A namespace lives while anything holds it: each member process (zombies included, until
//! reaped) and each live child namespace holds one reference ([`Namespace::refs`]), and so
//! does `spawn` while it builds the child. When the count reaches zero it retires
//! ([`retire`]): a kernel task moves its root directory aside, forgets its pid numbering,
//! frees its id, removes the old root and then lets go of its parent (which may retire in
//! turn). Joining a namespace is only possible through a reference already held (a fork by a
//! member, `spawn`'s own, or [`hold`], which takes one only from a count above zero), so a
//! count that reached zero never rises again.
//!
//! # Locking
//! [`TABLE`] (the id slots) is a spin lock under which only the heap is taken (a new
//! namespace's `Arc`, a listing's vector); an `Arc` dropped under it is never the last one.
//! It is never taken in interrupt context. Counts and flags are atomics; a reference is taken
//! from a count above zero only ([`hold`]), so a retiring namespace never comes back. A
//! namespace's root inode sits behind its own leaf spin lock. Everything here may be called
//! from any CPU.

pub mod copy;
pub mod fsroot;
pub mod limits;
pub mod pidmap;
pub mod rules;

use crate::rootfs::Ino;
use abi::syscall::ns::{MAX_LIVE, ROOT};
use abi::syscall::Errno;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
pub use limits::Account;
pub use rules::Kinds;
use runtime::lockorder::{Mutex, Rank};

pub struct Namespace {
    pub id: u32,
    pub parent: Option<Arc<Namespace>>,
    /// 0 for the root.
    pub depth: u32,
    pub kinds: Kinds,
    /// Member processes (zombies included): what `/proc/ns` shows.
    members: AtomicU32,
    /// Members, live children, and `spawn`'s hold while it builds the child (see the
    /// module docs): the namespace retires when this reaches zero.
    refs: AtomicU32,
    /// Pid kind: the global pid of its init (pid 1 inside), 0 until it exists.
    init: AtomicU32,
    /// Pid kind: the init exited; the namespace and those below it are being emptied.
    dying: AtomicBool,
    /// File-system kind: its root directory (`None` before `spawn` made it and once retired).
    root: Mutex<Option<Ino>>,
    /// Its processes and memory, and those of the namespaces below, against its limits.
    pub account: Arc<Account>,
    /// Given by `spawn2` (`abi::syscall::ns::name_ok`), unique among live namespaces.
    name: Option<Box<[u8]>>,
}

/// What `spawn2` asks of a new namespace: limits (0: none; cut to the parent's) and a name.
#[derive(Clone, Copy, Default)]
pub struct Limits<'a> {
    pub pids_max: u32,
    pub mem_max: u64,
    pub name: Option<&'a [u8]>,
}

/// The live namespaces by id (slot 0 unused). Leaf lock.
static TABLE: Mutex<[Option<Arc<Namespace>>; MAX_LIVE + 1]> =
    Mutex::new(Rank::NsTable, [const { None }; MAX_LIVE + 1]);

impl Namespace {
    fn new(
        id: u32,
        parent: Option<Arc<Namespace>>,
        depth: u32,
        kinds: Kinds,
        limits: &Limits<'_>,
    ) -> Namespace {
        let account = match &parent {
            Some(p) => Account::child(&p.account, limits.pids_max, limits.mem_max),
            None => Account::root(),
        };
        Namespace {
            id,
            parent,
            depth,
            kinds,
            members: AtomicU32::new(0),
            refs: AtomicU32::new(1),
            init: AtomicU32::new(0),
            dying: AtomicBool::new(false),
            root: Mutex::new(Rank::NsRoot, None),
            account,
            name: limits.name.map(Box::from),
        }
    }

    /// Its name (`spawn2`), if it has one.
    pub fn name(&self) -> Option<&[u8]> {
        self.name.as_deref()
    }

    pub fn members(&self) -> u32 {
        self.members.load(SeqCst)
    }

    /// The global pid of this pid namespace's init (0: none).
    pub fn init(&self) -> u32 {
        self.init.load(SeqCst)
    }

    /// This pid namespace's first process is `pid` (global).
    pub fn set_init(&self, pid: u32) {
        self.init.store(pid, SeqCst);
    }

    pub fn is_dying(&self) -> bool {
        self.dying.load(SeqCst)
    }

    /// The init exited: no process may join, and the members are being killed.
    pub fn set_dying(&self) {
        self.dying.store(true, SeqCst);
    }

    /// The root directory of a file-system namespace (`None` for another kind).
    pub fn root(&self) -> Option<Ino> {
        self.root.lock().clone()
    }

    /// Whether `self` is a strict descendant of `ancestor`.
    pub fn is_below(&self, ancestor: &Namespace) -> bool {
        let mut at = self.parent.as_ref();
        while let Some(p) = at {
            if p.id == ancestor.id {
                return true;
            }
            at = p.parent.as_ref();
        }
        false
    }

    /// The nearest namespace from `self` up (itself included) that isolates `kind`.
    fn nearest(self: &Arc<Self>, kind: impl Fn(Kinds) -> bool) -> Arc<Namespace> {
        let mut at = self.clone();
        while !kind(at.kinds) {
            match at.parent.clone() {
                Some(p) => at = p,
                None => break, // the root has every kind
            }
        }
        at
    }

    /// The pid namespace above this one (the nearest strict ancestor with the pid kind).
    pub fn pid_parent(&self) -> Option<Arc<Namespace>> {
        self.parent.as_ref().map(|p| p.nearest(Kinds::pid))
    }

    /// The file-system namespace whose root holds this one's (`/ns/<id>` there).
    pub fn fs_parent(&self) -> Option<Arc<Namespace>> {
        self.parent.as_ref().map(|p| p.nearest(Kinds::fs))
    }

    fn hold(&self) {
        self.refs.fetch_add(1, SeqCst);
    }

    /// Drop a reference; the last one retires the namespace.
    fn release(self: &Arc<Self>) {
        if self.refs.fetch_sub(1, SeqCst) == 1 {
            retire(self.clone());
        }
    }
}

/// A process's namespaces (see the module docs).
#[derive(Clone)]
pub struct NsSet {
    pub home: Arc<Namespace>,
    pub pid: Arc<Namespace>,
    pub fs: Arc<Namespace>,
    pub net: Arc<Namespace>,
}

impl NsSet {
    /// The root namespace in every role (for init and kernel-started processes).
    pub fn root() -> NsSet {
        let root = root_ns();
        NsSet { home: root.clone(), pid: root.clone(), fs: root.clone(), net: root }
    }

    /// Each namespace of the set once.
    fn distinct(&self) -> Vec<&Arc<Namespace>> {
        let mut v: Vec<&Arc<Namespace>> = Vec::with_capacity(4);
        for ns in [&self.home, &self.pid, &self.fs, &self.net] {
            if !v.iter().any(|n| n.id == ns.id) {
                v.push(ns);
            }
        }
        v
    }

    /// Admit one more process with this set: counted in its home namespace's account and
    /// every ancestor's, `EAGAIN` past one of their process limits (in that container only:
    /// the namespaces above it have room). Every way of making a process (`fork`, `spawn`,
    /// `nsenter`) goes through `proc::create`, which calls this first; [`NsSet::leave`] (at
    /// the reap) gives the place back, or `Account::remove_proc` when the creation failed.
    pub fn admit(&self) -> Result<(), Errno> {
        if self.home.account.add_proc() {
            Ok(())
        } else {
            Err(Errno::EAGAIN)
        }
    }

    /// A new process is a member (called by `proc::create`, through a reference already
    /// held: its parent's membership or `spawn`'s hold).
    pub fn join(&self) {
        for ns in self.distinct() {
            ns.members.fetch_add(1, SeqCst);
            ns.hold();
        }
    }

    /// A member was reaped: it leaves, and its place in the process limits goes back.
    pub fn leave(&self) {
        self.home.account.remove_proc();
        for ns in self.distinct() {
            ns.members.fetch_sub(1, SeqCst);
            ns.release();
        }
    }

    /// The pid namespaces a process of this set has a pid in: its own first, the root last.
    pub fn pid_namespaces(&self) -> Vec<Arc<Namespace>> {
        let mut v = Vec::new();
        let mut at = Some(self.pid.clone());
        while let Some(ns) = at {
            at = ns.pid_parent();
            v.push(ns);
        }
        v
    }
}

/// The root namespace (made at first use).
pub fn root_ns() -> Arc<Namespace> {
    let mut t = TABLE.lock();
    t[ROOT as usize]
        .get_or_insert_with(|| {
            Arc::new(Namespace::new(ROOT, None, 0, Kinds::ALL, &Limits::default()))
        })
        .clone()
}

/// The live namespace `id`, kept alive (not retired) while the returned [`Held`] lives: for
/// work inside it, such as `nspcopy` into its root. `None` if it is gone or already retiring.
pub fn hold(id: u32) -> Option<Held> {
    let ns = TABLE.lock().get(id as usize)?.clone()?;
    // Only from a count above zero: a namespace that reached zero is retiring for good.
    ns.refs.fetch_update(SeqCst, SeqCst, |n| (n > 0).then_some(n + 1)).ok()?;
    Some(Held(ns))
}

/// A reference on a namespace ([`hold`]), released when dropped.
pub struct Held(Arc<Namespace>);

impl core::ops::Deref for Held {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.0
    }
}

impl Held {
    /// The namespaces a process started in this namespace gets (those its members have):
    /// this one as its home and, per kind, the nearest namespace from here up that isolates
    /// it. For `nsenter` and the shell `attach` starts.
    pub fn members_set(&self) -> NsSet {
        let ns = &self.0;
        NsSet {
            home: ns.clone(),
            pid: ns.nearest(Kinds::pid),
            fs: ns.nearest(Kinds::fs),
            net: ns.nearest(Kinds::net),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Every live namespace, by id.
pub fn all() -> Vec<Arc<Namespace>> {
    TABLE.lock().iter().flatten().filter(|ns| ns.refs.load(SeqCst) > 0).cloned().collect()
}

/// A new namespace below `parent.home` isolating `kinds`, with `limits` and a name, and the
/// set a child process in it gets. The caller holds a reference to it until the child exists
/// ([`Spawning`]). `EEXIST`: a live namespace has that name.
pub fn create(parent: &NsSet, kinds: Kinds, limits: &Limits<'_>) -> Result<Spawning, Errno> {
    let depth = rules::child_depth(parent.home.depth)?;
    let ns = {
        let mut t = TABLE.lock();
        // Checked and taken in one section: two `spawn2`s of one name cannot both win. A
        // retiring namespace (count 0) no longer has its name.
        if let Some(name) = limits.name {
            let mut live = t.iter().flatten().filter(|n| n.refs.load(SeqCst) > 0);
            if live.any(|n| n.name() == Some(name)) {
                return Err(Errno::EEXIST);
            }
        }
        let id = rules::lowest_free_id(|id| t[id as usize].is_some())?;
        // The parent is alive (the caller is its member), so holding it here cannot revive a
        // namespace that already retired.
        parent.home.hold();
        let ns = Arc::new(Namespace::new(id, Some(parent.home.clone()), depth, kinds, limits));
        t[id as usize] = Some(ns.clone());
        ns
    };
    let pick = |k: bool, inherited: &Arc<Namespace>| if k { ns.clone() } else { inherited.clone() };
    let set = NsSet {
        home: ns.clone(),
        pid: pick(kinds.pid(), &parent.pid),
        fs: pick(kinds.fs(), &parent.fs),
        net: pick(kinds.net(), &parent.net),
    };
    Ok(Spawning { ns, set })
}

/// A namespace `spawn` is building: it holds the namespace until dropped (after the child
/// joined it, or on failure, when the namespace retires at once).
pub struct Spawning {
    pub ns: Arc<Namespace>,
    pub set: NsSet,
}

impl Spawning {
    /// The file-system namespace's root, made by `spawn` before the child exists.
    pub fn set_root(&self, root: Ino) {
        *self.ns.root.lock() = Some(root);
    }
}

impl Drop for Spawning {
    fn drop(&mut self) {
        self.ns.release();
    }
}

/// `ns` has no member and no child left: tear its network down at once (connections reset,
/// published ports freed: a new container may publish them right away), then the rest from a
/// kernel task (the root directory goes through the disk), then free its id and let go of its
/// parent. Called with no spin lock held (from the reaping `wait`, a task, or a system call
/// dropping its hold).
///
/// Order: the root directory is renamed out of the way first (one transaction), then the id
/// is freed (a new namespace may take it and make `/ns/<id>` again at once), then the old
/// tree is removed, and only then is the parent released: the dead tree lies in the parent's
/// root, which must outlive the removal.
fn retire(ns: Arc<Namespace>) {
    if ns.kinds.net() {
        crate::net::netns::destroy(ns.id);
    }
    crate::exec::spawn(async move {
        let root = ns.root.lock().take();
        let parent_root = ns.fs_parent().and_then(|p| p.root_or_disk());
        let dead = match (root, &parent_root) {
            (Some(root), Some(parent_root)) => {
                drop(root);
                fsroot::move_aside(parent_root, ns.id).await
            }
            _ => None,
        };
        if ns.kinds.pid() {
            crate::proc::forget_pid_ns(ns.id);
        }
        // Its console goes before its id can be taken again (a new one gets a fresh console).
        crate::file::console::forget(ns.id);
        TABLE.lock()[ns.id as usize] = None;
        if let (Some(dead), Some(parent_root)) = (dead, &parent_root) {
            fsroot::remove_tree(parent_root, dead.as_bytes()).await;
        }
        if let Some(parent) = &ns.parent {
            parent.release();
        }
    });
}

impl Namespace {
    /// This file-system namespace's root; the disk's root for the root namespace.
    pub fn root_or_disk(&self) -> Option<Ino> {
        if self.id == ROOT {
            crate::rootfs::get()?.root().ok()
        } else {
            self.root()
        }
    }
}

/// The text of `/proc/ns` for a process whose set is `viewer`: its home namespace and every
/// descendant, one line each (`abi::syscall::ns::PROC_PATH`: `id parent kinds init members`,
/// the network's columns `net_columns` gives (`addr ports`), then `name procs mem_used
/// mem_max pids_max`, and last `front`: 1 when its console is the one in front), the init's
/// pid as `view_pid` gives it.
pub fn listing(
    viewer: &NsSet,
    view_pid: impl Fn(u32) -> u32,
    net_columns: impl Fn(&Namespace) -> alloc::string::String,
) -> Vec<u8> {
    use core::fmt::Write;
    let mut out = alloc::string::String::new();
    let front = crate::file::console::front_ns();
    for ns in all() {
        if ns.id != viewer.home.id && !ns.is_below(&viewer.home) {
            continue;
        }
        let parent = ns.parent.as_ref().map_or(0, |p| p.id);
        let init = if ns.kinds.pid() { view_pid(ns.init()) } else { 0 };
        let a = &ns.account;
        let name = ns.name().and_then(|n| core::str::from_utf8(n).ok()).unwrap_or("-");
        let _ = writeln!(
            out,
            "{} {} {} {} {} {} {name} {} {} {} {} {}",
            ns.id,
            parent,
            ns.kinds.names(),
            init,
            ns.members(),
            net_columns(&ns),
            a.procs(),
            a.mem_used(),
            a.mem_max(),
            a.pids_max(),
            u8::from(ns.id == front)
        );
    }
    out.into_bytes()
}
