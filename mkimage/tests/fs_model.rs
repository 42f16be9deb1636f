//! A model-based test of the kernel's file system (crate `fs`, run on the host over an
//! in-memory disk). Seeded random sequences of create (`open(O_CREAT)`), mkdir, mknod, link,
//! unlink, rename, truncate, write and chdir over a small tree of names (with `.`, `..`,
//! trailing and doubled slashes, over-long names, one inode under several names, directories
//! renamed onto their ancestors, their descendants and themselves, a working directory that
//! was removed) are applied both to the file system and to a model written here with Linux's
//! semantics; every other seed runs with a process root below the disk's (`/jail`). After
//! every step the results (success, or the errno the system call returns through the kernel's
//! own `FsError` mapping) and the whole trees (names, kinds, link counts, sizes, contents,
//! which names share an inode, `.` and `..`, inodes in use) are compared. Every call is polled
//! a bounded number of times: over the in-memory disk nothing ever waits for the device, so a
//! call still pending waits on a lock nobody will release, and the test fails instead of
//! hanging. `fsck` checks the disk along the way and at the end, and the disk is mounted again
//! and compared with the model.
//!
//! A second test runs several such sequences at once on the runtime's executor, over a disk
//! that makes the tasks wait inside their operations while they hold locks: every task must
//! finish (a cycle in the lock order would leave some waiting) and fsck must be clean.
//!
//! Replay: a failure prints its seed and the shortest failing sequence it finds (steps are
//! removed while the run still fails the same way).
//! `FS_MODEL_SEED=<n>` runs that seed, `FS_MODEL_STEPS=<n>` sets the steps of a run and
//! `FS_MODEL_RUNS=<n>` runs `n` seeds from the first (`cargo test -p mkimage --test fs_model`).
//!
//! Where the model departs from Linux, on purpose (the file system's own rules):
//! - `unlink` also removes empty directories (there is no `rmdir`), and then follows rmdir(2):
//!   `.` is EINVAL, `..` ENOTEMPTY, `/` EBUSY;
//! - `..` in a removed directory is ENOENT (Linux keeps the old parent in memory; here its
//!   inode may be freed and reused, even outside a process's root);
//! - link counts follow this file system: a directory counts its name and its subdirectories'
//!   `..` (not its own `.`), the root counts its own `..`;
//! - write and truncate on a device inode change it as a file (the file system is below the
//!   device layer, which the system calls route devices to).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::{Arc, Once};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use testkit::Rng;

use abi::fs::DIRSIZ;
use abi::syscall::Errno;
use fs::dev::Block;
use fs::inode::{T_DEV, T_DIR, T_FILE};
use fs::{BlockDevice, Fs, FsError, Inode, IoError, MemDisk};
use mkimage::fsck;

#[allow(dead_code)]
#[path = "../../kernel/src/file/convert.rs"]
mod convert;

/// The disk: 8 MiB and 200 inodes, far more than the tree of names below can use, so that
/// running out of space is never the answer.
const BLOCKS: u32 = 2048;
const NINODES: u32 = 200;
/// Polls one call may take. Over `MemDisk` an operation completes in one poll unless it
/// waits on a lock; a lock held by the same (only) task is never released.
const POLLS: usize = 10_000;
/// Steps between two fsck runs (each copies the disk).
const FSCK_EVERY: usize = 100;
const DEFAULT_SEEDS: [u64; 4] = [1, 2, 3, 4];
const DEFAULT_STEPS: usize = 1500;
/// How long the search for a shorter failing sequence may take.
const SHRINK_TIME: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Randomness and the operations

/// One step. Every argument is concrete, so a sequence replays (and shrinks) on its own.
#[derive(Clone, Debug)]
enum Op {
    /// `open(path, O_CREAT)`: creates a file or opens the one there.
    Create(String),
    Mkdir(String),
    Mknod(String),
    Link(String, String),
    Unlink(String),
    Rename(String, String),
    Truncate(String, u64),
    /// Write `len` bytes of a pattern starting at `byte`, at `offset`.
    Write(String, u64, u16, u8),
    Chdir(String),
}

fn pattern(len: u16, byte: u8) -> Vec<u8> {
    (0..len).map(|i| byte.wrapping_add(i as u8).wrapping_mul(31)).collect()
}

/// The names paths are made of (besides `.`, `..` and one too long).
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn random_name(rng: &mut Rng) -> &'static str {
    NAMES[rng.below(NAMES.len() as u64) as usize]
}

/// A random path over [`NAMES`], `.`, `..` and an over-long name: absolute or relative,
/// doubled slashes, a trailing slash now and then; sometimes `/` or empty.
fn random_path(rng: &mut Rng) -> String {
    match rng.below(100) {
        0..=2 => return "/".into(),
        3 => return String::new(),
        _ => {}
    }
    let mut s = String::new();
    if rng.percent(70) {
        s.push('/');
        if rng.percent(5) {
            s.push('/');
        }
    }
    let n = match rng.below(10) {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    for i in 0..n {
        if i > 0 {
            s.push_str(if rng.percent(8) { "//" } else { "/" });
        }
        match rng.below(100) {
            0..=6 => s.push('.'),
            7..=14 => s.push_str(".."),
            15 => s.push_str(&"x".repeat(DIRSIZ + 1)),
            _ => s.push_str(random_name(rng)),
        }
    }
    if rng.percent(12) {
        s.push('/');
    }
    s
}

/// Mostly the path of something that exists (of `kind` if given), sometimes dressed up
/// (`/./`, `//`, a trailing slash); else a random path.
fn some_path(rng: &mut Rng, model: &Model, kind: Option<Kind>) -> String {
    let mut found = Vec::new();
    model.paths(ROOT, "", &mut found);
    found.retain(|(_, k)| kind.is_none_or(|want| *k == want));
    if found.is_empty() || rng.percent(40) {
        return random_path(rng);
    }
    let path = found.swap_remove(rng.below(found.len() as u64) as usize).0;
    match rng.below(10) {
        0 => format!("{path}/"),
        1 => path.replacen('/', "//", 1),
        2 => format!("/.{path}"),
        _ => path,
    }
}

/// A second path for link and rename: often related to the first (its parent, a child of it,
/// itself with or without a trailing slash), so that renames onto ancestors and descendants
/// come up often.
fn related_path(rng: &mut Rng, model: &Model, first: &str) -> String {
    if rng.percent(55) {
        return some_path(rng, model, None);
    }
    let trimmed = first.trim_end_matches('/');
    match rng.below(5) {
        0 => match trimmed.rfind('/') {
            Some(0) => "/".into(),
            Some(i) => trimmed[..i].into(),
            None => ".".into(),
        },
        1 => format!("{trimmed}/{}", random_name(rng)),
        2 => format!("{trimmed}/"),
        3 => trimmed.into(),
        _ => format!("{first}/.."),
    }
}

/// Another name in the directory of `path`.
fn sibling(rng: &mut Rng, path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let dir = trimmed.rfind('/').map_or("", |i| &trimmed[..i]);
    format!("{dir}/{}", random_name(rng))
}

/// A step chosen for the state `model` is in (the sequence is made before it runs, with a
/// model of its own, so it is a fixed list that replays and shrinks).
fn random_op(rng: &mut Rng, model: &Model) -> Op {
    let file = Some(Kind::File);
    match rng.below(100) {
        0..=11 => Op::Mkdir(random_path(rng)),
        12..=29 => Op::Create(random_path(rng)),
        30..=31 => Op::Mknod(random_path(rng)),
        32..=41 => {
            let p = some_path(rng, model, file);
            let q = match rng.below(4) {
                0 => related_path(rng, model, &p),
                1 => random_path(rng),
                _ => sibling(rng, &p),
            };
            Op::Link(p, q)
        }
        42..=57 => Op::Unlink(some_path(rng, model, None)),
        58..=79 => {
            let p = some_path(rng, model, None);
            let q = match rng.below(4) {
                0 => sibling(rng, &p),
                _ => related_path(rng, model, &p),
            };
            Op::Rename(p, q)
        }
        80..=84 => {
            let len = match rng.below(10) {
                0..=2 => 0,
                3..=7 => rng.below(5000),
                _ => rng.below(60_000),
            };
            Op::Truncate(some_path(rng, model, file), len)
        }
        85..=93 => {
            let off = match rng.below(10) {
                0..=6 => rng.below(5000),
                7..=8 => rng.below(20_000),
                _ => rng.below(60_000),
            };
            let p = some_path(rng, model, file);
            Op::Write(p, off, 1 + rng.below(300) as u16, rng.next_u64() as u8)
        }
        _ => Op::Chdir(if rng.percent(30) {
            "/".into()
        } else {
            some_path(rng, model, Some(Kind::Dir))
        }),
    }
}

/// `steps` steps from `seed`.
fn generate(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut model = Model::new();
    (0..steps)
        .map(|_| {
            let op = random_op(&mut rng, &model);
            let _ = model.apply(&op);
            op
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model: a tree of inodes with Linux's semantics

type Id = usize;
const ROOT: Id = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Dev,
}

#[derive(Clone, Debug)]
struct Node {
    kind: Kind,
    data: Vec<u8>,
    /// A directory's entries, without `.` and `..`.
    entries: BTreeMap<String, Id>,
    /// A directory's parent (the root's is itself).
    parent: Id,
    /// A directory that was removed (it stays while it is the working directory).
    removed: bool,
}

/// What the last component of a path is (Linux's LAST_NORM, LAST_DOT, LAST_DOTDOT, LAST_ROOT).
enum Last {
    Name(String),
    Dot,
    DotDot,
    Root,
}

struct Parent {
    dir: Id,
    last: Last,
    /// The path ends with a slash.
    slash: bool,
}

type R<T> = Result<T, Errno>;

struct Model {
    nodes: HashMap<Id, Node>,
    next: Id,
    cwd: Id,
}

impl Model {
    fn new() -> Model {
        let root = Node {
            kind: Kind::Dir,
            data: Vec::new(),
            entries: BTreeMap::new(),
            parent: ROOT,
            removed: false,
        };
        Model { nodes: HashMap::from([(ROOT, root)]), next: 1, cwd: ROOT }
    }

    fn node(&self, id: Id) -> &Node {
        &self.nodes[&id]
    }

    fn node_mut(&mut self, id: Id) -> &mut Node {
        self.nodes.get_mut(&id).unwrap()
    }

    fn is_dir(&self, id: Id) -> bool {
        self.node(id).kind == Kind::Dir
    }

    /// One step of path lookup from directory `dir`.
    fn step(&self, dir: Id, name: &str) -> R<Id> {
        let d = self.node(dir);
        match name {
            "." => Ok(dir),
            ".." if dir == ROOT => Ok(ROOT),
            _ if d.removed => Err(Errno::ENOENT),
            ".." => Ok(d.parent),
            _ if name.len() > DIRSIZ => Err(Errno::ENAMETOOLONG),
            _ => d.entries.get(name).copied().ok_or(Errno::ENOENT),
        }
    }

    /// The entry `name` of `dir` for an operation that creates or removes it: ENOENT in a
    /// removed directory, ENAMETOOLONG for a name too long.
    fn child(&self, dir: Id, name: &str) -> R<Option<Id>> {
        let d = self.node(dir);
        if d.removed {
            return Err(Errno::ENOENT);
        }
        if name.len() > DIRSIZ {
            return Err(Errno::ENAMETOOLONG);
        }
        Ok(d.entries.get(name).copied())
    }

    /// Every component but the last: each must be a directory.
    fn parentat(&self, path: &str) -> R<Parent> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        let mut dir = if path.starts_with('/') { ROOT } else { self.cwd };
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        let Some((last, inner)) = comps.split_last() else {
            return Ok(Parent { dir: ROOT, last: Last::Root, slash: false });
        };
        for c in inner {
            dir = self.step(dir, c)?;
            if !self.is_dir(dir) {
                return Err(Errno::ENOTDIR);
            }
        }
        let last = match *last {
            "." => Last::Dot,
            ".." => Last::DotDot,
            n => Last::Name(n.to_string()),
        };
        Ok(Parent { dir, last, slash: path.ends_with('/') })
    }

    fn namei(&self, path: &str) -> R<Id> {
        let p = self.parentat(path)?;
        let id = match &p.last {
            Last::Root => p.dir,
            Last::Dot => self.step(p.dir, ".")?,
            Last::DotDot => self.step(p.dir, "..")?,
            Last::Name(n) => self.step(p.dir, n)?,
        };
        if p.slash && !self.is_dir(id) {
            return Err(Errno::ENOTDIR);
        }
        Ok(id)
    }

    fn alloc(&mut self, kind: Kind, parent: Id) -> Id {
        let id = self.next;
        self.next += 1;
        let node =
            Node { kind, data: Vec::new(), entries: BTreeMap::new(), parent, removed: false };
        self.nodes.insert(id, node);
        id
    }

    /// The child of `top` on the way down to `below`, when `top` is a proper ancestor of it.
    fn child_toward(&self, top: Id, below: Id) -> Option<Id> {
        let mut cur = below;
        while cur != ROOT {
            let up = self.node(cur).parent;
            if up == top {
                return Some(cur);
            }
            cur = up;
        }
        None
    }

    fn apply(&mut self, op: &Op) -> R<()> {
        let r = match op {
            Op::Create(p) => self.create(p, Kind::File),
            Op::Mkdir(p) => self.create(p, Kind::Dir),
            Op::Mknod(p) => self.create(p, Kind::Dev),
            Op::Link(a, b) => self.link(a, b),
            Op::Unlink(p) => self.unlink(p),
            Op::Rename(a, b) => self.rename(a, b),
            Op::Truncate(p, len) => self.file(p).map(|id| {
                self.node_mut(id).data.resize(*len as usize, 0);
            }),
            Op::Write(p, off, len, byte) => self.file(p).map(|id| {
                let data = &mut self.node_mut(id).data;
                let (off, bytes) = (*off as usize, pattern(*len, *byte));
                if data.len() < off + bytes.len() {
                    data.resize(off + bytes.len(), 0);
                }
                data[off..off + bytes.len()].copy_from_slice(&bytes);
            }),
            Op::Chdir(p) => self.namei(p).and_then(|id| {
                if !self.is_dir(id) {
                    return Err(Errno::ENOTDIR);
                }
                self.cwd = id;
                Ok(())
            }),
        };
        self.collect();
        r
    }

    /// The file (or device) `path` names, for write and truncate.
    fn file(&self, path: &str) -> R<Id> {
        let id = self.namei(path)?;
        if self.is_dir(id) {
            return Err(Errno::EISDIR);
        }
        Ok(id)
    }

    /// open(O_CREAT), mkdir, mknod.
    fn create(&mut self, path: &str, kind: Kind) -> R<()> {
        let p = self.parentat(path)?;
        let Last::Name(name) = p.last else {
            // "/", "." or "..": a directory is there.
            return Err(if kind == Kind::File { Errno::EISDIR } else { Errno::EEXIST });
        };
        if kind == Kind::File && p.slash {
            return Err(Errno::EISDIR);
        }
        if let Some(id) = self.child(p.dir, &name)? {
            return match kind {
                Kind::File if self.is_dir(id) => Err(Errno::EISDIR),
                Kind::File => Ok(()),
                _ => Err(Errno::EEXIST),
            };
        }
        if p.slash && kind != Kind::Dir {
            return Err(Errno::ENOENT); // "you asked for a directory"
        }
        let id = self.alloc(kind, p.dir);
        self.node_mut(p.dir).entries.insert(name, id);
        Ok(())
    }

    fn link(&mut self, old: &str, new: &str) -> R<()> {
        let src = self.namei(old)?;
        let p = self.parentat(new)?;
        let Last::Name(name) = p.last else { return Err(Errno::EEXIST) };
        if self.child(p.dir, &name)?.is_some() {
            return Err(Errno::EEXIST);
        }
        if p.slash {
            return Err(Errno::ENOENT);
        }
        if self.is_dir(src) {
            return Err(Errno::EPERM);
        }
        self.node_mut(p.dir).entries.insert(name, src);
        Ok(())
    }

    /// unlink(2) for files, rmdir(2) for directories.
    fn unlink(&mut self, path: &str) -> R<()> {
        let p = self.parentat(path)?;
        let name = match p.last {
            Last::Name(n) => n,
            Last::Root => return Err(Errno::EBUSY),
            Last::Dot => return Err(Errno::EINVAL),
            Last::DotDot => return Err(Errno::ENOTEMPTY),
        };
        let id = self.child(p.dir, &name)?.ok_or(Errno::ENOENT)?;
        let node = self.node(id);
        if node.kind != Kind::Dir && p.slash {
            return Err(Errno::ENOTDIR);
        }
        if node.kind == Kind::Dir && !node.entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.node_mut(p.dir).entries.remove(&name);
        if self.is_dir(id) {
            self.node_mut(id).removed = true;
        }
        Ok(())
    }

    /// rename(2), in the order Linux checks (do_renameat2, then vfs_rename).
    fn rename(&mut self, old: &str, new: &str) -> R<()> {
        let op = self.parentat(old)?;
        let np = self.parentat(new)?;
        let Last::Name(oname) = op.last else { return Err(Errno::EBUSY) };
        let Last::Name(nname) = np.last else { return Err(Errno::EBUSY) };
        let (od, nd) = (op.dir, np.dir);
        let src = self.child(od, &oname)?.ok_or(Errno::ENOENT)?;
        let tgt = self.child(nd, &nname)?;
        let src_dir = self.is_dir(src);
        if !src_dir && (op.slash || np.slash) {
            return Err(Errno::ENOTDIR);
        }
        // lock_rename's "trap": the child of the upper directory on the way to the other one.
        if od != nd {
            if let Some(trap) = self.child_toward(od, nd) {
                if src == trap {
                    return Err(Errno::EINVAL); // a directory into its own subtree
                }
            } else if let Some(trap) = self.child_toward(nd, od) {
                if tgt == Some(trap) {
                    return Err(Errno::ENOTEMPTY); // onto an ancestor of the source
                }
            }
        }
        if tgt == Some(src) {
            return Ok(()); // two names of one inode: nothing happens
        }
        if let Some(t) = tgt {
            match (src_dir, self.is_dir(t)) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.node(t).entries.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
            if self.is_dir(t) {
                self.node_mut(t).removed = true;
            }
        }
        self.node_mut(od).entries.remove(&oname);
        self.node_mut(nd).entries.insert(nname, src);
        if src_dir {
            self.node_mut(src).parent = nd;
        }
        Ok(())
    }

    /// The absolute path and kind of everything below directory `dir` (at `prefix`).
    fn paths(&self, dir: Id, prefix: &str, out: &mut Vec<(String, Kind)>) {
        for (name, &id) in &self.node(dir).entries {
            let path = format!("{prefix}/{name}");
            out.push((path.clone(), self.node(id).kind));
            if self.is_dir(id) {
                self.paths(id, &path, out);
            }
        }
    }

    /// Forget inodes no name reaches (and that are not the working directory).
    fn collect(&mut self) {
        let mut live = HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(d) = todo.pop() {
            for &c in self.node(d).entries.values() {
                if live.insert(c) && self.is_dir(c) {
                    todo.push(c);
                }
            }
        }
        live.insert(self.cwd); // a removed directory, empty
        self.nodes.retain(|id, _| live.contains(id));
    }

    /// The link count this file system keeps for each inode.
    fn nlinks(&self) -> HashMap<Id, u16> {
        let mut n: HashMap<Id, u16> = HashMap::from([(ROOT, 1)]);
        for (&id, node) in &self.nodes {
            if node.kind != Kind::Dir || node.removed {
                continue;
            }
            for &c in node.entries.values() {
                *n.entry(c).or_default() += 1;
                if self.is_dir(c) {
                    *n.entry(id).or_default() += 1;
                }
            }
        }
        n
    }
}

// ---------------------------------------------------------------------------------------------
// The file system under test

/// A `MemDisk` the test keeps a handle on while the file system owns the device.
#[derive(Clone)]
struct Shared(Arc<MemDisk>);

impl BlockDevice for Shared {
    fn read(
        &self,
        block: u32,
        buf: &mut Block,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        self.0.read(block, buf)
    }

    fn write(&self, block: u32, buf: &Block) -> impl Future<Output = Result<(), IoError>> + Send {
        self.0.write(block, buf)
    }

    fn block_count(&self) -> u32 {
        self.0.block_count()
    }
}

type Ino<'a> = Inode<'a, Shared>;

/// Polls `f` at most [`POLLS`] times; `None` if it is still pending.
fn bounded<F: Future>(f: F) -> Option<F::Output> {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    (0..POLLS).find_map(|_| match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    })
}

/// Runs a check (itself bounded in polls) or fails as a hang.
fn settle<T>(what: &str, f: impl Future<Output = Result<T, String>>) -> Result<T, Failure> {
    match bounded(f) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(Failure::new("tree", e)),
        None => Err(Failure::new("hang", format!("{what} did not complete"))),
    }
}

async fn apply_fs<'a, D: BlockDevice>(
    fs: &'a Fs<D>,
    root: &Inode<'a, D>,
    cwd: &mut Inode<'a, D>,
    op: &Op,
) -> Result<(), FsError> {
    let b = |s: &String| s.as_bytes().to_vec();
    match op {
        Op::Create(p) => fs.create(root, cwd, &b(p), T_FILE, 0, 0).await.map(drop),
        Op::Mkdir(p) => fs.mkdir(root, cwd, &b(p)).await.map(drop),
        Op::Mknod(p) => fs.create(root, cwd, &b(p), T_DEV, 1, 0).await.map(drop),
        Op::Link(a, c) => fs.link(root, cwd, &b(a), &b(c)).await,
        Op::Unlink(p) => fs.unlink(root, cwd, &b(p)).await,
        Op::Rename(a, c) => fs.rename(root, cwd, &b(a), &b(c)).await,
        Op::Truncate(p, len) => {
            let ip = fs.namei(root, cwd, &b(p)).await?;
            fs.truncate(&ip, *len).await
        }
        Op::Write(p, off, len, byte) => {
            let ip = fs.namei(root, cwd, &b(p)).await?;
            let n = fs.write(&ip, *off, &pattern(*len, *byte)).await?;
            if n != *len as usize {
                return Err(FsError::Corrupt("short write"));
            }
            Ok(())
        }
        Op::Chdir(p) => {
            let ip = fs.namei(root, cwd, &b(p)).await?;
            if ip.lock().await?.kind() != T_DIR {
                return Err(FsError::NotDir);
            }
            *cwd = ip;
            Ok(())
        }
    }
}

fn show_kind(k: u16) -> Kind {
    match k {
        T_DIR => Kind::Dir,
        T_FILE => Kind::File,
        _ => Kind::Dev,
    }
}

/// Where the operations run: the process's root, which is the disk's root or, "jailed", a
/// directory `/jail` below it (then `..` must stop there, and a rename's look up the tree
/// goes past it).
struct Roots<'a> {
    root: Ino<'a>,
    /// What the root's `..` names.
    above: u32,
    /// Inodes in use that the model does not see (`/jail`).
    hidden: usize,
}

impl<'a> Roots<'a> {
    async fn new(fs: &'a Fs<Shared>, jailed: bool) -> Result<Roots<'a>, FsError> {
        let top = fs.root()?;
        if !jailed {
            return Ok(Roots { root: top.clone(), above: top.inum(), hidden: 0 });
        }
        let root = match fs.mkdir(&top, &top, b"/jail").await {
            Err(FsError::Exists) => fs.namei(&top, &top, b"/jail").await?,
            r => r?,
        };
        Ok(Roots { root, above: top.inum(), hidden: 1 })
    }
}

/// Compares the whole tree reachable from the root with the model: names, inode identity
/// (which names share an inode), kinds, link counts, sizes, contents, `.` and `..`; then the
/// working directory.
async fn compare(
    model: &Model,
    fs: &Fs<Shared>,
    roots: &Roots<'_>,
    cwd: &Ino<'_>,
) -> Result<(), String> {
    let e = |e: FsError| e.to_string();
    let root = &roots.root;
    let nlinks = model.nlinks();
    let mut m2f: HashMap<Id, u32> = HashMap::from([(ROOT, root.inum())]);
    let mut f2m: HashMap<u32, Id> = HashMap::from([(root.inum(), ROOT)]);
    let mut todo = vec![(ROOT, root.clone(), roots.above, "/".to_string())];
    let root_nlink = root.lock().await.map_err(e)?.nlink();
    if root_nlink != nlinks[&ROOT] {
        return Err(format!("/: nlink {root_nlink}, the model {}", nlinks[&ROOT]));
    }
    while let Some((mid, dir, parent, path)) = todo.pop() {
        let mut entries = dir.lock().await.map_err(e)?.dir_entries().await.map_err(e)?;
        let dots: Vec<_> = entries.iter().filter(|(n, _)| n == "." || n == "..").collect();
        let want = [(".".to_string(), dir.inum()), ("..".to_string(), parent)];
        if dots.len() != 2 || !want.iter().all(|w| dots.contains(&w)) {
            return Err(format!("{path}: `.` and `..` are {dots:?}, want {want:?}"));
        }
        entries.retain(|(n, _)| n != "." && n != "..");
        entries.sort();
        let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
        let model_names: Vec<&String> = model.node(mid).entries.keys().collect();
        if names != model_names {
            return Err(format!("{path}: holds {names:?}, the model {model_names:?}"));
        }
        for (name, inum) in &entries {
            let cpath = format!("{}/{name}", path.trim_end_matches('/'));
            let cid = model.node(mid).entries[name];
            match (m2f.get(&cid), f2m.get(inum)) {
                (None, None) => {
                    m2f.insert(cid, *inum);
                    f2m.insert(*inum, cid);
                }
                (Some(&f), Some(&m)) if f == *inum && m == cid => {
                    if model.is_dir(cid) {
                        return Err(format!("{cpath}: a directory reached twice"));
                    }
                    continue; // another name of an inode already compared
                }
                (f, m) => {
                    return Err(format!(
                        "{cpath}: inode {inum} (known as model inode {m:?}) is model inode \
                         {cid} (known as inode {f:?}): the names sharing inodes differ"
                    ))
                }
            }
            let ip = fs.namei(root, &dir, name.as_bytes()).await.map_err(e)?;
            if ip.inum() != *inum {
                return Err(format!("{cpath}: lookup gives inode {}, the entry {inum}", ip.inum()));
            }
            let node = model.node(cid);
            let mut l = ip.lock().await.map_err(e)?;
            let st = l.stat();
            let want_nlink = nlinks.get(&cid).copied().unwrap_or(0);
            if show_kind(st.kind) != node.kind || st.nlink != want_nlink {
                return Err(format!(
                    "{cpath}: {:?} with nlink {}, the model {:?} with nlink {want_nlink}",
                    show_kind(st.kind),
                    st.nlink,
                    node.kind
                ));
            }
            if node.kind == Kind::Dir {
                drop(l);
                todo.push((cid, ip, dir.inum(), cpath));
                continue;
            }
            let mut data = vec![0u8; st.size as usize];
            let n = l.read_at(0, &mut data).await.map_err(e)?;
            if st.size != node.data.len() as u64 || n != data.len() || data != node.data {
                let first = data.iter().zip(&node.data).position(|(a, b)| a != b);
                return Err(format!(
                    "{cpath}: {} bytes, the model {}; first difference at {first:?}",
                    st.size,
                    node.data.len()
                ));
            }
        }
    }
    let cwd_node = model.node(model.cwd);
    if cwd_node.removed {
        let mut l = cwd.lock().await.map_err(e)?;
        let left = l.dir_entries().await.map_err(e)?;
        if l.kind() != T_DIR || l.nlink() != 0 || left.len() != 2 {
            return Err(format!(
                "the removed working directory: kind {}, nlink {}, entries {left:?}",
                l.kind(),
                l.nlink()
            ));
        }
    } else if m2f.get(&model.cwd) != Some(&cwd.inum()) {
        return Err(format!(
            "the working directory is inode {}, the model's is inode {:?}",
            cwd.inum(),
            m2f.get(&model.cwd)
        ));
    }
    Ok(())
}

/// After freeing what was unlinked: the inodes in use are the model's.
async fn compare_inodes(model: &Model, fs: &Fs<Shared>, roots: &Roots<'_>) -> Result<(), String> {
    fs.reap().await.map_err(|e| format!("reap: {e}"))?;
    let free = fs.count_free_inodes().await.map_err(|e| e.to_string())?;
    let used = (fs.sb.ninodes - 1 - free) as usize - roots.hidden;
    if used != model.nodes.len() {
        return Err(format!("{used} inodes in use, the model has {}", model.nodes.len()));
    }
    Ok(())
}

fn fsck_disk(disk: &MemDisk, what: &str) -> Result<(), Failure> {
    let bytes: Vec<u8> = disk.snapshot().concat();
    let report =
        fsck::check_bytes("model", bytes).map_err(|e| Failure::new("fsck", e.to_string()))?;
    if !report.is_clean() {
        return Err(Failure::new("fsck", format!("{what}:\n{}", report.render(20))));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running, shrinking, reporting

#[derive(Debug)]
struct Failure {
    /// The step that failed (`None`: the checks after the last step).
    step: Option<usize>,
    /// hang, panic, result, tree, fsck, remount: a shorter sequence must fail the same way.
    class: &'static str,
    message: String,
}

impl Failure {
    fn new(class: &'static str, message: String) -> Failure {
        Failure { step: None, class, message }
    }

    fn at(mut self, step: usize) -> Failure {
        self.step.get_or_insert(step);
        self
    }
}

/// Applies `ops` to a fresh file system and to the model, checking after each step.
fn run(ops: &[Op], jailed: bool) -> Result<(), Failure> {
    let disk = Arc::new(MemDisk::new(BLOCKS));
    bounded(fs::format::format(&*disk, NINODES)).unwrap().unwrap();
    let fs = bounded(Fs::mount(Shared(disk.clone()))).unwrap().unwrap().0;
    let roots = bounded(Roots::new(&fs, jailed)).unwrap().unwrap();
    let root = roots.root.clone();
    let mut cwd = root.clone();
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        let got = bounded(apply_fs(&fs, &root, &mut cwd, op))
            .ok_or_else(|| Failure::new("hang", format!("{op:?} did not complete")).at(i))?
            .map_err(convert::errno);
        let want = model.apply(op);
        if got != want {
            let msg = format!("{op:?}: the file system says {got:?}, the model {want:?}");
            return Err(Failure::new("result", msg).at(i));
        }
        settle("the comparison", compare(&model, &fs, &roots, &cwd)).map_err(|f| f.at(i))?;
        settle("reap", compare_inodes(&model, &fs, &roots)).map_err(|f| f.at(i))?;
        if (i + 1) % FSCK_EVERY == 0 && !model.node(model.cwd).removed {
            fsck_disk(&disk, "along the way").map_err(|f| f.at(i))?;
        }
    }
    // Back to the root, so that a removed working directory is freed, then fsck and mount
    // the disk again.
    cwd = root.clone();
    model.cwd = ROOT;
    model.collect();
    settle("the comparison", compare(&model, &fs, &roots, &cwd))?;
    settle("reap", compare_inodes(&model, &fs, &roots))?;
    drop((cwd, root, roots));
    fsck_disk(&disk, "at the end")?;
    let again = MemDisk::from_blocks(disk.snapshot());
    let fs2 = bounded(Fs::mount(Shared(Arc::new(again))))
        .ok_or_else(|| Failure::new("remount", "mount did not complete".into()))?
        .map_err(|e| Failure::new("remount", e.to_string()))?
        .0;
    let roots2 = bounded(Roots::new(&fs2, jailed)).unwrap().unwrap();
    settle("the comparison after mounting again", compare(&model, &fs2, &roots2, &roots2.root))
        .map_err(|f| Failure { class: "remount", ..f })?;
    Ok(())
}

thread_local! {
    /// While set, a panic on this thread is recorded in [`PANIC`] instead of printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// [`run`], with a panic turned into a failure (its message and place kept).
fn run_caught(ops: &[Op], jailed: bool) -> Result<(), Failure> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.get() {
                PANIC.set(Some(info.to_string()));
            } else {
                prev(info)
            }
        }))
    });
    QUIET.set(true);
    let r = panic::catch_unwind(AssertUnwindSafe(|| run(ops, jailed)));
    QUIET.set(false);
    r.unwrap_or_else(|_| {
        let message = PANIC.take().unwrap_or_else(|| "a panic".into());
        Err(Failure::new("panic", message))
    })
}

/// The steps of a failing run up to the failure, with as many steps removed as still fail
/// the same way (chunks of halving size, for at most [`SHRINK_TIME`]).
fn shrink(ops: &[Op], jailed: bool, first: &Failure) -> (Vec<Op>, Option<Failure>) {
    let end = first.step.map_or(ops.len(), |s| s + 1);
    let mut ops = ops[..end].to_vec();
    let mut last = None;
    let start = Instant::now();
    let mut chunk = ops.len().div_ceil(2);
    while chunk > 0 && start.elapsed() < SHRINK_TIME {
        let mut i = 0;
        while i < ops.len() && start.elapsed() < SHRINK_TIME {
            let mut cand = ops[..i].to_vec();
            cand.extend_from_slice(&ops[(i + chunk).min(ops.len())..]);
            match run_caught(&cand, jailed) {
                Err(f) if f.class == first.class => {
                    let end = f.step.map_or(cand.len(), |s| s + 1);
                    cand.truncate(end);
                    ops = cand;
                    last = Some(f);
                }
                _ => i += chunk,
            }
        }
        chunk /= 2;
    }
    (ops, last)
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

#[test]
fn file_system_matches_the_model() {
    let steps = env_u64("FS_MODEL_STEPS").map_or(DEFAULT_STEPS, |n| n as usize);
    let seeds: Vec<u64> = match (env_u64("FS_MODEL_SEED"), env_u64("FS_MODEL_RUNS")) {
        (Some(s), runs) => (s..s + runs.unwrap_or(1)).collect(),
        (None, Some(runs)) => (1..=runs).collect(),
        (None, None) => DEFAULT_SEEDS.to_vec(),
    };
    for seed in seeds {
        let ops = generate(seed, steps);
        // Even seeds run with a process root below the disk's.
        let jailed = seed % 2 == 0;
        let place = if jailed { "with /jail as the root" } else { "at the disk's root" };
        let started = Instant::now();
        let Err(failure) = run_caught(&ops, jailed) else {
            println!(
                "fs_model: seed {seed}: {steps} steps agree, {place} ({:?})",
                started.elapsed()
            );
            continue;
        };
        let (short, short_failure) = shrink(&ops, jailed, &failure);
        let shown = short_failure.as_ref().unwrap_or(&failure);
        let listing: Vec<String> =
            short.iter().enumerate().map(|(i, op)| format!("  {i:4}: {op:?}")).collect();
        panic!(
            "fs_model: seed {seed} ({place}) failed at step {:?} of {steps} ({}): {}\n\
             a shorter sequence that fails the same way ({} steps), failing at its step {:?}: \
             {}\n{}\nreplay: FS_MODEL_SEED={seed} FS_MODEL_STEPS={steps} cargo test -p mkimage \
             --test fs_model",
            failure.step,
            failure.class,
            failure.message,
            short.len(),
            shown.step,
            shown.message,
            listing.join("\n"),
        );
    }
}

/// A disk that makes the caller wait (yields to the executor) before some reads and writes,
/// chosen by a seeded generator, so that operations of several tasks interleave while they
/// hold locks.
struct YieldingDisk {
    disk: Arc<MemDisk>,
    rng: std::sync::Mutex<Rng>,
}

impl YieldingDisk {
    async fn maybe_yield(&self) {
        if self.rng.lock().unwrap().percent(50) {
            runtime::yield_now().await;
        }
    }
}

impl BlockDevice for YieldingDisk {
    async fn read(&self, block: u32, buf: &mut Block) -> Result<(), IoError> {
        self.maybe_yield().await;
        self.disk.read(block, buf).await
    }

    async fn write(&self, block: u32, buf: &Block) -> Result<(), IoError> {
        self.maybe_yield().await;
        self.disk.write(block, buf).await
    }

    fn block_count(&self) -> u32 {
        self.disk.block_count()
    }
}

/// Several tasks run random sequences over the same names at once, over a disk that makes
/// them interleave at every I/O while they hold locks: every task must finish (a lock-order
/// cycle would leave some waiting forever), and fsck must find the disk clean afterwards.
/// The results cannot be predicted, so only these are checked.
#[test]
fn concurrent_operations_never_deadlock() {
    const TASKS: usize = 4;
    let steps = env_u64("FS_MODEL_STEPS").map_or(DEFAULT_STEPS / 3, |n| n as usize);
    let seeds: Vec<u64> = match (env_u64("FS_MODEL_SEED"), env_u64("FS_MODEL_RUNS")) {
        (Some(s), runs) => (s..s + runs.unwrap_or(1)).collect(),
        (None, Some(runs)) => (1..=runs).collect(),
        (None, None) => DEFAULT_SEEDS.to_vec(),
    };
    for seed in seeds {
        let disk = Arc::new(MemDisk::new(BLOCKS));
        bounded(fs::format::format(&*disk, NINODES)).unwrap().unwrap();
        let dev = YieldingDisk { disk: disk.clone(), rng: std::sync::Mutex::new(Rng::new(seed)) };
        let fs: &'static Fs<YieldingDisk> =
            Box::leak(Box::new(runtime_block_on(Fs::mount(dev)).unwrap().0));
        let exec = runtime::Executor::new();
        let at: Arc<Vec<std::sync::atomic::AtomicUsize>> =
            Arc::new((0..TASKS).map(|_| Default::default()).collect());
        let sequences: Vec<Vec<Op>> =
            (0..TASKS).map(|t| generate(seed * 1000 + t as u64, steps)).collect();
        let handles: Vec<_> = sequences
            .iter()
            .cloned()
            .enumerate()
            .map(|(t, ops)| {
                let at = at.clone();
                exec.spawn(async move {
                    let root = fs.root().unwrap();
                    let mut cwd = root.clone();
                    for (i, op) in ops.iter().enumerate() {
                        at[t].store(i, std::sync::atomic::Ordering::Relaxed);
                        // Every block read from here waits for the "disk" now and then, the
                        // other tasks' included: they interleave inside their operations.
                        fs.drop_cached_blocks();
                        let _ = apply_fs(fs, &root, &mut cwd, op).await;
                    }
                })
            })
            .collect();
        exec.run_until_idle();
        let stuck: Vec<String> = handles
            .iter()
            .enumerate()
            .filter(|(_, h)| !h.is_finished())
            .map(|(t, _)| {
                let i = at[t].load(std::sync::atomic::Ordering::Relaxed);
                format!("task {t} at its step {i}: {:?}", sequences[t][i])
            })
            .collect();
        assert!(
            stuck.is_empty(),
            "fs_model: seed {seed}: tasks wait forever (a deadlock):\n{}\nreplay: \
             FS_MODEL_SEED={seed} FS_MODEL_STEPS={steps} cargo test -p mkimage --test fs_model \
             concurrent",
            stuck.join("\n")
        );
        drop(handles);
        drop(exec);
        runtime_block_on(fs.reap()).unwrap();
        fsck_disk(&disk, "after the concurrent run")
            .unwrap_or_else(|f| panic!("fs_model: seed {seed}: {}", f.message));
        println!("fs_model: seed {seed}: {TASKS} tasks of {steps} steps finished, fsck clean");
    }
}

/// Polls to completion, yielding included (a `yield_now` wakes itself).
fn runtime_block_on<F: Future>(f: F) -> F::Output {
    bounded(f).expect("did not complete")
}

#[test]
fn the_model_follows_linux_on_known_cases() {
    // A few answers checked against Linux by hand, so that the model itself is tested.
    let mut m = Model::new();
    let ok = |m: &mut Model, op: Op| assert_eq!(m.apply(&op), Ok(()), "{op:?}");
    let err = |m: &mut Model, op: Op, e: Errno| assert_eq!(m.apply(&op), Err(e), "{op:?}");
    ok(&mut m, Op::Mkdir("/fz".into()));
    ok(&mut m, Op::Mkdir("/fz/d/".into()));
    err(&mut m, Op::Rename("/fz/d".into(), "/fz/".into()), Errno::ENOTEMPTY);
    err(&mut m, Op::Rename("/fz".into(), "/fz/d/e".into()), Errno::EINVAL);
    err(&mut m, Op::Rename("/fz".into(), "/fz/d".into()), Errno::EINVAL);
    ok(&mut m, Op::Rename("/fz".into(), "/fz".into()));
    err(&mut m, Op::Rename("/fz/d".into(), "/fz/.".into()), Errno::EBUSY);
    err(&mut m, Op::Rename("/".into(), "/x".into()), Errno::EBUSY);
    ok(&mut m, Op::Create("/f".into()));
    err(&mut m, Op::Rename("/f/".into(), "/g".into()), Errno::ENOTDIR);
    err(&mut m, Op::Rename("/f".into(), "/g/".into()), Errno::ENOTDIR);
    err(&mut m, Op::Rename("/f".into(), "/fz".into()), Errno::EISDIR);
    err(&mut m, Op::Rename("/fz".into(), "/f".into()), Errno::ENOTDIR);
    ok(&mut m, Op::Link("/f".into(), "/fz/g".into()));
    ok(&mut m, Op::Rename("/f".into(), "/fz/g".into())); // same inode: both names stay
    assert_eq!(m.namei("/f"), m.namei("/fz/g"));
    err(&mut m, Op::Rename("/fz/g".into(), "/fz".into()), Errno::ENOTEMPTY); // the trap first
    err(&mut m, Op::Rename("/f".into(), "/fz".into()), Errno::EISDIR);
    err(&mut m, Op::Link("/fz".into(), "/h".into()), Errno::EPERM);
    err(&mut m, Op::Link("/f".into(), "/h/".into()), Errno::ENOENT);
    err(&mut m, Op::Create("/h/".into()), Errno::EISDIR);
    err(&mut m, Op::Mkdir("/fz/..".into()), Errno::EEXIST);
    err(&mut m, Op::Unlink("/fz/d/.".into()), Errno::EINVAL);
    err(&mut m, Op::Unlink("/fz/d/..".into()), Errno::ENOTEMPTY);
    err(&mut m, Op::Unlink("/f/".into()), Errno::ENOTDIR);
    ok(&mut m, Op::Chdir("/fz/d".into()));
    ok(&mut m, Op::Unlink("/fz/d".into()));
    err(&mut m, Op::Create("x".into()), Errno::ENOENT); // in a removed directory
    err(&mut m, Op::Rename("/f".into(), "y".into()), Errno::ENOENT);
}
