//! `mkimage fsck`: checks an image against every rule of the on-disk format
//! (docs/02-storage.md, "Layout on disk") and reports each violation on its own line.
//!
//! The checks, in order: the superblock and the image's length (nothing else is checked when
//! they are bad); the log header (a committed transaction means "needs recovery"); every inode
//! (kind, size, block pointers in the data area, no block used twice, no pointer beyond the
//! size); the bitmap against the blocks in use; the directory tree from the root (`.` and `..`,
//! names, entries pointing at allocated inodes, directories with one parent); reachability of
//! every allocated inode; link counts.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;

use abi::fs::{
    bitmap_bit, crc32, indirect_get, Dinode, Dirent, FormatError, Kind, LogHeader, Superblock, BPB,
    BSIZE, DIRENT_SIZE, DOUBLE_INDIRECT, DPB, INDIRECT, IPB, MAX_FILE_SIZE, NDIRECT, NINDIRECT,
    ROOT_INO, SUPERBLOCK_BLOCK,
};

use crate::imgread::{Disk, ReadError, ReadResult, MAX_IMAGE_BLOCKS};

/// The kinds of problem fsck finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The superblock is invalid (magic, version, regions).
    Superblock,
    /// The image file is shorter than the file system (or too short for a superblock), or
    /// larger than these tools handle.
    ImageSize,
    /// The log header's magic is wrong.
    LogHeader,
    /// The log holds a committed transaction that was not installed.
    LogNeedsRecovery,
    /// Inode 0 is in use.
    InodeZero,
    /// An inode kind that is none of free, directory, file, device.
    InodeKind,
    /// A size larger than a file can be.
    InodeSize,
    /// A block pointer outside the data area.
    BlockOutOfRange,
    /// A block referenced twice.
    BlockDuplicate,
    /// A block pointer beyond the inode's size.
    BlockBeyondSize,
    /// A block in use that the bitmap marks free.
    BitmapUnmarked,
    /// A block the bitmap marks in use that nothing uses.
    BitmapLeaked,
    /// The root inode is not an allocated directory.
    RootInode,
    /// A directory size that is not a multiple of the entry size.
    DirSize,
    /// The first entry is not `.` naming the directory itself.
    BadDot,
    /// The second entry is not `..`.
    MissingDotDot,
    /// `..` does not name the parent.
    BadDotDot,
    /// An invalid name (empty, `/`, NUL, garbage after the padding).
    BadName,
    /// A `.` or `..` entry after the first two.
    MisplacedDot,
    /// Two entries of one directory with the same name.
    DuplicateName,
    /// An entry whose inode number is out of range.
    EntryBadInum,
    /// An entry naming a free inode (or one of an invalid kind).
    EntryFreeInode,
    /// A directory named by entries in more than one place.
    DirMultipleParents,
    /// An allocated inode no path from the root reaches.
    Unreachable,
    /// `nlink` differs from the number of entries naming the inode.
    LinkCount,
}

/// One violation of the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// One line, for people.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of a check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Violations, in the order found.
    pub problems: Vec<Problem>,
    /// Things worth saying that are not inconsistencies (e.g. an uncommitted log header,
    /// which the kernel ignores).
    pub warnings: Vec<String>,
    /// Allocated inodes.
    pub inodes: u32,
    /// Data blocks in use (contents and indirect blocks).
    pub data_blocks: u32,
}

/// Problem lines [`Report::render`] prints before summarising the rest.
pub const MAX_PRINTED_PROBLEMS: usize = 1000;

impl Report {
    /// No problems (warnings allowed).
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// Whether a problem of `kind` was found.
    pub fn has(&self, kind: ProblemKind) -> bool {
        self.problems.iter().any(|p| p.kind == kind)
    }

    /// The problems of one kind.
    pub fn of_kind(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }

    /// The last line: `fsck: clean (N inodes, M data blocks in use)` or `fsck: K problems`.
    pub fn summary(&self) -> String {
        match self.problems.len() {
            0 => format!(
                "fsck: clean ({} inodes, {} data blocks in use)",
                self.inodes, self.data_blocks
            ),
            1 => "fsck: 1 problem".to_string(),
            k => format!("fsck: {k} problems"),
        }
    }

    /// The report as printed: one line per problem (at most `max_problems`, then a line
    /// counting the rest), the warnings, then the summary.
    pub fn render(&self, max_problems: usize) -> String {
        let mut out = String::new();
        for p in self.problems.iter().take(max_problems) {
            out.push_str(&p.message);
            out.push('\n');
        }
        if self.problems.len() > max_problems {
            out.push_str(&format!(
                "... and {} more problems not shown\n",
                self.problems.len() - max_problems
            ));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn problem(&mut self, kind: ProblemKind, message: String) {
        self.problems.push(Problem { kind, message });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(usize::MAX))
    }
}

/// Checks the image at `path`. `Err` only when the file cannot be read (it does not exist,
/// an I/O error); everything wrong with its contents is in the report.
pub fn check(path: impl AsRef<Path>) -> crate::Result<Report> {
    let disk = Disk::open(path)?;
    Ok(check_disk(&disk)?)
}

/// Checks an image held in memory (`name` only appears in messages).
pub fn check_bytes(name: &str, bytes: Vec<u8>) -> ReadResult<Report> {
    check_disk(&Disk::from_bytes(name, bytes))
}

/// Checks an open image.
pub fn check_disk(disk: &Disk) -> ReadResult<Report> {
    let mut report = Report::default();
    let Some(sb) = superblock(disk, &mut report)? else {
        return Ok(report);
    };
    let mut c = Checker {
        disk,
        sb,
        report,
        owner: vec![0; sb.nblocks as usize],
        allocated: BTreeMap::new(),
        dir_blocks: HashMap::new(),
    };
    c.log()?;
    c.inodes()?;
    c.bitmap()?;
    c.tree()?;
    c.report.inodes = c.allocated.len() as u32;
    c.report.data_blocks = c.owner.iter().filter(|&&o| o != 0).count() as u32;
    Ok(c.report)
}

/// The superblock, when it and the image's length are valid.
fn superblock(disk: &Disk, report: &mut Report) -> ReadResult<Option<Superblock>> {
    if disk.blocks() <= u64::from(SUPERBLOCK_BLOCK) {
        report.problem(
            ProblemKind::ImageSize,
            format!("image: {} bytes is too short to hold a superblock", disk.len_bytes()),
        );
        return Ok(None);
    }
    let sb = disk.superblock()?;
    if let Err(e) = sb.validate() {
        report.problem(ProblemKind::Superblock, format!("superblock: {e}"));
        return Ok(None);
    }
    if u64::from(sb.size) > disk.blocks() {
        report.problem(
            ProblemKind::ImageSize,
            format!(
                "image: the superblock says {} blocks ({} bytes), the image has {} bytes \
                 (truncated)",
                sb.size,
                u64::from(sb.size) * BSIZE as u64,
                disk.len_bytes()
            ),
        );
        return Ok(None);
    }
    if sb.size > MAX_IMAGE_BLOCKS {
        report.problem(
            ProblemKind::ImageSize,
            format!(
                "image: {} blocks is more than fsck handles ({MAX_IMAGE_BLOCKS}); not checked",
                sb.size
            ),
        );
        return Ok(None);
    }
    Ok(Some(sb))
}

/// Where a block pointer of an inode is, for messages.
#[derive(Clone, Copy)]
enum Loc {
    Direct(usize),
    Indirect,
    IndirectEntry(usize),
    Double,
    DoubleEntry(usize),
    Level2Entry(usize, usize),
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Loc::Direct(k) => write!(f, "addrs[{k}]"),
            Loc::Indirect => write!(f, "its indirect block"),
            Loc::IndirectEntry(j) => write!(f, "indirect entry {j}"),
            Loc::Double => write!(f, "its double indirect block"),
            Loc::DoubleEntry(i) => write!(f, "double indirect entry {i}"),
            Loc::Level2Entry(i, j) => write!(f, "double indirect entry {i}/{j}"),
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Free => "free",
        Kind::Dir => "directory",
        Kind::File => "file",
        Kind::Device => "device",
    }
}

fn show(name: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(name))
}

struct Checker<'d> {
    disk: &'d Disk,
    sb: Superblock,
    report: Report,
    /// The inode using each data block (`owner[b - datastart]`), 0 = none.
    owner: Vec<u32>,
    /// Allocated inodes (a valid kind other than free).
    allocated: BTreeMap<u32, (Kind, Dinode)>,
    /// For each directory: its data blocks inside its size, as (file block, disk block).
    dir_blocks: HashMap<u32, Vec<(u64, u32)>>,
}

impl Checker<'_> {
    fn problem(&mut self, kind: ProblemKind, message: String) {
        self.report.problem(kind, message);
    }

    fn log(&mut self) -> ReadResult<()> {
        let block = self.disk.read_block(self.sb.logstart)?;
        let header = LogHeader::decode(&block[..])
            .map_err(|error| ReadError::Format { context: "log header".into(), error })?;
        match header.validate(&self.sb) {
            Err(e @ FormatError::LogBadMagic(_)) => {
                self.problem(ProblemKind::LogHeader, format!("log: {e}"));
            }
            Err(e) => self.report.warnings.push(format!(
                "log: {e}; the kernel treats this header as an empty (uncommitted) log"
            )),
            Ok(()) if header.n == 0 => {}
            Ok(()) => {
                let targets = header.targets();
                let mut crc = LogHeader::checksum_begin(targets);
                for i in 0..targets.len() as u32 {
                    crc = crc32(crc, &self.disk.read_block(self.sb.logstart + 1 + i)?[..]);
                }
                if crc == header.checksum {
                    self.problem(
                        ProblemKind::LogNeedsRecovery,
                        format!(
                            "log: a committed transaction of {} blocks is not installed \
                             (needs recovery; the kernel replays it at mount)",
                            header.n
                        ),
                    );
                } else {
                    self.report.warnings.push(format!(
                        "log: the header counts {} blocks but its checksum does not match \
                         (an uncommitted transaction, which the kernel ignores)",
                        header.n
                    ));
                }
            }
        }
        Ok(())
    }

    fn inodes(&mut self) -> ReadResult<()> {
        let ninodes = self.sb.ninodes;
        for ib in 0..self.sb.inode_blocks() as u32 {
            let block = self.disk.read_block(self.sb.inodestart + ib)?;
            for slot in 0..IPB {
                let inum = ib * IPB as u32 + slot as u32;
                if inum >= ninodes {
                    break;
                }
                let raw = &block[slot * Dinode::SIZE..];
                let d = Dinode::decode(raw).map_err(|error| ReadError::Format {
                    context: format!("inode {inum}"),
                    error,
                })?;
                if inum == 0 {
                    if raw[..Dinode::SIZE].iter().any(|&b| b != 0) {
                        self.problem(
                            ProblemKind::InodeZero,
                            format!(
                                "inode 0: not zero (kind {}), but inode 0 is never used",
                                d.kind
                            ),
                        );
                    }
                    continue;
                }
                match d.kind() {
                    Err(_) => self.problem(
                        ProblemKind::InodeKind,
                        format!("inode {inum}: unknown kind {}", d.kind),
                    ),
                    Ok(Kind::Free) => {}
                    Ok(kind) => {
                        self.allocated.insert(inum, (kind, d));
                        self.blocks_of(inum, kind, &d)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Claims data block `b` for `inum`; false when it cannot be used (out of range or already
    /// taken), so that it is not followed.
    fn claim(&mut self, inum: u32, b: u32, loc: Loc, beyond_size: Option<u64>) -> bool {
        if !self.sb.is_data(b) {
            self.problem(
                ProblemKind::BlockOutOfRange,
                format!(
                    "inode {inum}: {loc} is block {b}, outside the data area ({}..{})",
                    self.sb.datastart, self.sb.size
                ),
            );
            return false;
        }
        if let Some(size) = beyond_size {
            self.problem(
                ProblemKind::BlockBeyondSize,
                format!("inode {inum}: {loc} is block {b}, beyond its size of {size} bytes"),
            );
        }
        let owner = &mut self.owner[(b - self.sb.datastart) as usize];
        if *owner != 0 {
            let first = *owner;
            self.problem(
                ProblemKind::BlockDuplicate,
                format!("block {b}: used by inode {first} and again by inode {inum} ({loc})"),
            );
            return false;
        }
        *owner = inum;
        true
    }

    /// Claims every block of an inode; remembers a directory's content blocks.
    fn blocks_of(&mut self, inum: u32, kind: Kind, d: &Dinode) -> ReadResult<()> {
        let mut size = d.size;
        if size > MAX_FILE_SIZE {
            self.problem(
                ProblemKind::InodeSize,
                format!("inode {inum}: size {size} is larger than the largest file"),
            );
            size = MAX_FILE_SIZE;
        }
        if kind == Kind::Dir && !size.is_multiple_of(DIRENT_SIZE as u64) {
            self.problem(
                ProblemKind::DirSize,
                format!("directory inode {inum}: size {size} is not a multiple of {DIRENT_SIZE}"),
            );
        }
        let needed = size.div_ceil(BSIZE as u64);
        // `Some(size)` when a block mapping file block `n` (or an indirect block whose first
        // file block is `n`) lies beyond the size.
        let beyond = |n: u64| (n >= needed).then_some(d.size);
        let mut contents: Vec<(u64, u32)> = Vec::new();
        for (k, &b) in d.addrs[..NDIRECT].iter().enumerate() {
            if b != 0 && self.claim(inum, b, Loc::Direct(k), beyond(k as u64)) {
                contents.push((k as u64, b));
            }
        }
        let ib = d.addrs[INDIRECT];
        if ib != 0 && self.claim(inum, ib, Loc::Indirect, beyond(NDIRECT as u64)) {
            let blk = self.disk.read_block(ib)?;
            for j in 0..NINDIRECT {
                let b = indirect_get(&blk, j);
                let n = (NDIRECT + j) as u64;
                if b != 0 && self.claim(inum, b, Loc::IndirectEntry(j), beyond(n)) {
                    contents.push((n, b));
                }
            }
        }
        let db = d.addrs[DOUBLE_INDIRECT];
        let first_double = (NDIRECT + NINDIRECT) as u64;
        if db != 0 && self.claim(inum, db, Loc::Double, beyond(first_double)) {
            let dbl = self.disk.read_block(db)?;
            for i in 0..NINDIRECT {
                let l2 = indirect_get(&dbl, i);
                let first = first_double + (i * NINDIRECT) as u64;
                if l2 == 0 || !self.claim(inum, l2, Loc::DoubleEntry(i), beyond(first)) {
                    continue;
                }
                let blk = self.disk.read_block(l2)?;
                for j in 0..NINDIRECT {
                    let b = indirect_get(&blk, j);
                    let n = first + j as u64;
                    if b != 0 && self.claim(inum, b, Loc::Level2Entry(i, j), beyond(n)) {
                        contents.push((n, b));
                    }
                }
            }
        }
        if kind == Kind::Dir {
            contents.retain(|&(n, _)| n < needed);
            self.dir_blocks.insert(inum, contents);
        }
        Ok(())
    }

    fn bitmap(&mut self) -> ReadResult<()> {
        let sb = self.sb;
        for i in 0..sb.bitmap_blocks() as u32 {
            let blk = self.disk.read_block(sb.bmapstart + i)?;
            let first = u64::from(i) * BPB as u64;
            let last = (first + BPB as u64).min(u64::from(sb.size));
            for b in first..last {
                let b = b as u32;
                let (byte, mask) = bitmap_bit(b);
                let marked = blk[byte] & mask != 0;
                let user = if b < sb.datastart {
                    Some("metadata".to_string())
                } else {
                    match self.owner[(b - sb.datastart) as usize] {
                        0 => None,
                        inum => Some(format!("inode {inum}")),
                    }
                };
                match (user, marked) {
                    (Some(user), false) => self.problem(
                        ProblemKind::BitmapUnmarked,
                        format!("block {b}: in use ({user}) but free in the bitmap"),
                    ),
                    (None, true) => self.problem(
                        ProblemKind::BitmapLeaked,
                        format!("block {b}: marked in use in the bitmap but not used"),
                    ),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The used entries of a directory with their slot numbers (slots 0 and 1 always
    /// included, free or not, for the `.`/`..` checks).
    fn entries(&mut self, dir: u32) -> ReadResult<Vec<(u64, Dirent)>> {
        let size = self.allocated.get(&dir).map_or(0, |(_, d)| d.size);
        let nslots = size / DIRENT_SIZE as u64;
        let blocks = self.dir_blocks.get(&dir).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for (n, b) in blocks {
            let blk = self.disk.read_block(b)?;
            for (k, raw) in blk.chunks_exact(DIRENT_SIZE).enumerate() {
                let slot = n * DPB as u64 + k as u64;
                if slot >= nslots {
                    break;
                }
                let e = Dirent::decode(raw).map_err(|error| ReadError::Format {
                    context: format!("directory {dir}"),
                    error,
                })?;
                if !e.is_free() || slot < 2 {
                    out.push((slot, e));
                }
            }
        }
        Ok(out)
    }

    /// Walks the tree from the root; checks directories, reachability and link counts.
    fn tree(&mut self) -> ReadResult<()> {
        match self.allocated.get(&ROOT_INO) {
            Some((Kind::Dir, _)) => {}
            other => {
                let what = match other {
                    Some((k, _)) => format!("a {}", kind_name(*k)),
                    None => "not allocated".to_string(),
                };
                self.problem(
                    ProblemKind::RootInode,
                    format!(
                        "root inode {ROOT_INO}: {what}, not a directory; the tree, reachability \
                         and link counts are not checked"
                    ),
                );
                return Ok(());
            }
        }
        let mut paths: HashMap<u32, String> = HashMap::new();
        let mut links: HashMap<u32, u32> = HashMap::new();
        let mut dirs_seen: HashSet<u32> = HashSet::from([ROOT_INO]);
        paths.insert(ROOT_INO, "/".to_string());
        let mut queue = VecDeque::from([(ROOT_INO, ROOT_INO)]);
        while let Some((dir, parent)) = queue.pop_front() {
            let dpath = paths.get(&dir).cloned().unwrap_or_default();
            let here = format!("directory {dpath} (inode {dir})");
            let entries = self.entries(dir)?;
            let mut names: HashSet<Vec<u8>> = HashSet::new();
            let has_slot = |s: u64| entries.iter().any(|(slot, e)| *slot == s && !e.is_free());
            if !has_slot(0) {
                self.problem(ProblemKind::BadDot, format!("{here}: missing '.' entry"));
            }
            if !has_slot(1) {
                self.problem(ProblemKind::MissingDotDot, format!("{here}: missing '..' entry"));
            }
            for (slot, e) in entries.iter().filter(|(_, e)| !e.is_free()) {
                let name = e.name();
                match (*slot, name) {
                    (0, b".") => {
                        if e.inum != dir {
                            self.problem(
                                ProblemKind::BadDot,
                                format!("{here}: '.' names inode {}, not itself", e.inum),
                            );
                        }
                        // `.` entries do not count as links.
                        continue;
                    }
                    (1, b"..") => {
                        if e.inum != parent {
                            self.problem(
                                ProblemKind::BadDotDot,
                                format!(
                                    "{here}: '..' names inode {}, not its parent {parent}",
                                    e.inum
                                ),
                            );
                        }
                        if self.allocated.contains_key(&e.inum) {
                            *links.entry(e.inum).or_default() += 1;
                        } else {
                            self.problem(
                                ProblemKind::EntryFreeInode,
                                format!("{here}: '..' names inode {}, which is free", e.inum),
                            );
                        }
                        continue;
                    }
                    (0, _) => self.problem(
                        ProblemKind::BadDot,
                        format!("{here}: the first entry is {}, not '.'", show(name)),
                    ),
                    (1, _) => self.problem(
                        ProblemKind::MissingDotDot,
                        format!("{here}: the second entry is {}, not '..'", show(name)),
                    ),
                    (_, b"." | b"..") => {
                        self.problem(
                            ProblemKind::MisplacedDot,
                            format!("{here}: entry {slot} is named {}", show(name)),
                        );
                        continue;
                    }
                    _ => {}
                }
                if let Err(err) = e.check() {
                    self.problem(
                        ProblemKind::BadName,
                        format!("{here}: entry {slot} has a bad name {}: {err}", show(&e.name)),
                    );
                }
                if !names.insert(name.to_vec()) {
                    self.problem(
                        ProblemKind::DuplicateName,
                        format!("{here}: two entries are named {}", show(name)),
                    );
                }
                let path =
                    format!("{}/{}", dpath.trim_end_matches('/'), String::from_utf8_lossy(name));
                if e.inum >= self.sb.ninodes {
                    self.problem(
                        ProblemKind::EntryBadInum,
                        format!(
                            "{path}: names inode {}, out of range (1..{})",
                            e.inum, self.sb.ninodes
                        ),
                    );
                    continue;
                }
                let Some(&(kind, _)) = self.allocated.get(&e.inum) else {
                    self.problem(
                        ProblemKind::EntryFreeInode,
                        format!("{path}: names inode {}, which is not allocated", e.inum),
                    );
                    continue;
                };
                *links.entry(e.inum).or_default() += 1;
                if kind == Kind::Dir {
                    if dirs_seen.insert(e.inum) {
                        paths.insert(e.inum, path);
                        queue.push_back((e.inum, dir));
                    } else {
                        let first = paths.get(&e.inum).cloned().unwrap_or_default();
                        self.problem(
                            ProblemKind::DirMultipleParents,
                            format!(
                                "{path}: names directory inode {}, already reached as {first}",
                                e.inum
                            ),
                        );
                    }
                } else {
                    paths.entry(e.inum).or_insert(path);
                }
            }
        }
        let inodes: Vec<(u32, Kind, Dinode)> =
            self.allocated.iter().map(|(&i, &(k, d))| (i, k, d)).collect();
        for (inum, kind, d) in inodes {
            match paths.get(&inum) {
                None => self.problem(
                    ProblemKind::Unreachable,
                    format!(
                        "inode {inum}: a {} (nlink {}, size {}) that no path from / reaches",
                        kind_name(kind),
                        d.nlink,
                        d.size
                    ),
                ),
                Some(path) => {
                    let found = links.get(&inum).copied().unwrap_or(0);
                    if u32::from(d.nlink) != found {
                        let message = format!(
                            "{path} (inode {inum}): nlink is {}, but entries naming it: {found}",
                            d.nlink
                        );
                        self.problem(ProblemKind::LinkCount, message);
                    }
                }
            }
        }
        Ok(())
    }
}
