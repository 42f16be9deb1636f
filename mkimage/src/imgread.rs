//! Reading a file system image on the host: list directories and read files out of it
//! (`mkimage ls`, `mkimage cat`), and the block access `fsck` builds on.
//!
//! Every value read from the image is untrusted: a corrupt image gives an [`ReadError`], never a
//! panic, and never an allocation larger than the image itself.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use abi::fs::{
    block_path, indirect_get, inode_block, inode_offset, BlockPath, Dinode, Dirent, FormatError,
    Kind, Superblock, BSIZE, DIRENT_SIZE, DOUBLE_INDIRECT, INDIRECT, MAX_FILE_SIZE, ROOT_INO,
    SUPERBLOCK_BLOCK,
};

/// The largest image (in blocks) the host tools handle: 64 GiB. Beyond that a corrupt
/// superblock could make fsck allocate without bound.
pub const MAX_IMAGE_BLOCKS: u32 = 1 << 24;

/// One disk block.
pub type Block = [u8; BSIZE];

/// What went wrong reading an image.
#[derive(Debug)]
pub enum ReadError {
    /// An operating-system call failed; `context` says what we were doing.
    Io { context: String, source: io::Error },
    /// A structure of the image is invalid; `context` says which.
    Format { context: String, error: FormatError },
    /// The image is inconsistent in some other way.
    Corrupt(String),
    /// No such file or directory.
    NotFound(String),
    /// A path component that must be a directory is not one.
    NotADirectory(String),
    /// A file was wanted, the path names a directory.
    IsADirectory(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io { context, source } => write!(f, "{context}: {source}"),
            ReadError::Format { context, error } => write!(f, "{context}: {error}"),
            ReadError::Corrupt(msg) => write!(f, "corrupt image: {msg}"),
            ReadError::NotFound(p) => write!(f, "{p}: no such file or directory"),
            ReadError::NotADirectory(p) => write!(f, "{p}: not a directory"),
            ReadError::IsADirectory(p) => write!(f, "{p}: is a directory"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<ReadError> for crate::Error {
    fn from(e: ReadError) -> crate::Error {
        match e {
            ReadError::Io { context, source } => crate::Error::Io { context, source },
            other => crate::Error::Other(other.to_string()),
        }
    }
}

/// `Result` with [`ReadError`].
pub type ReadResult<T> = Result<T, ReadError>;

fn corrupt<T>(msg: impl Into<String>) -> ReadResult<T> {
    Err(ReadError::Corrupt(msg.into()))
}

/// An image read block by block (no check of its contents): a file, or bytes in memory.
pub struct Disk {
    backing: Backing,
    path: PathBuf,
    len: u64,
}

enum Backing {
    File(File),
    Memory(Vec<u8>),
}

impl fmt::Debug for Disk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.backing {
            Backing::File(_) => "file",
            Backing::Memory(_) => "memory",
        };
        f.debug_struct("Disk")
            .field("path", &self.path)
            .field("backing", &kind)
            .field("len", &self.len)
            .finish()
    }
}

impl Disk {
    /// Opens the image for reading.
    pub fn open(path: impl AsRef<Path>) -> ReadResult<Disk> {
        let path = path.as_ref().to_path_buf();
        let io = |source| ReadError::Io { context: format!("{}", path.display()), source };
        let file = File::open(&path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(ReadError::Io {
                context: format!("{}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            });
        }
        Ok(Disk { backing: Backing::File(file), path, len: meta.len() })
    }

    /// An image held in memory (e.g. a snapshot of the kernel's in-memory disk); `name` is
    /// only used in messages.
    pub fn from_bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Disk {
        Disk { len: bytes.len() as u64, backing: Backing::Memory(bytes), path: name.into() }
    }

    /// The image file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The image file's length in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len
    }

    /// Whole blocks in the image file.
    pub fn blocks(&self) -> u64 {
        self.len / BSIZE as u64
    }

    /// Reads block `b`; an error (not a short read) when it lies past the end of the file.
    pub fn read_block(&self, b: u32) -> ReadResult<Box<Block>> {
        if u64::from(b) >= self.blocks() {
            return corrupt(format!(
                "block {b} is past the end of the image ({} blocks)",
                self.blocks()
            ));
        }
        let mut buf = Box::new([0u8; BSIZE]);
        let off = u64::from(b) * BSIZE as u64;
        match &self.backing {
            Backing::File(file) => file.read_exact_at(&mut buf[..], off).map_err(|source| {
                let context = format!("{}: reading block {b}", self.path.display());
                ReadError::Io { context, source }
            })?,
            // In range: `b` is below `blocks()`.
            Backing::Memory(bytes) => {
                buf.copy_from_slice(&bytes[off as usize..off as usize + BSIZE]);
            }
        }
        Ok(buf)
    }

    /// Reads and decodes the superblock, without validating it.
    pub fn superblock(&self) -> ReadResult<Superblock> {
        let block = self.read_block(SUPERBLOCK_BLOCK)?;
        Superblock::decode(&block[..])
            .map_err(|error| ReadError::Format { context: "superblock".into(), error })
    }

    /// The superblock, validated, and checked against the length of the file.
    pub fn valid_superblock(&self) -> ReadResult<Superblock> {
        if self.blocks() <= u64::from(SUPERBLOCK_BLOCK) {
            return corrupt(format!(
                "the image is {} bytes, too short to hold a superblock",
                self.len
            ));
        }
        let sb = self.superblock()?;
        sb.validate().map_err(|error| ReadError::Format { context: "superblock".into(), error })?;
        if u64::from(sb.size) > self.blocks() {
            return corrupt(format!(
                "the superblock says {} blocks ({} bytes) but the image is {} bytes (truncated?)",
                sb.size,
                u64::from(sb.size) * BSIZE as u64,
                self.len
            ));
        }
        if sb.size > MAX_IMAGE_BLOCKS {
            return corrupt(format!(
                "the superblock says {} blocks, more than the {MAX_IMAGE_BLOCKS} these tools handle",
                sb.size
            ));
        }
        Ok(sb)
    }
}

/// What [`Image::list_dir`] and [`Image::stat`] tell about one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (lossily converted from the bytes on disk); for [`Image::stat`] the last
    /// component of the path (`/` for the root).
    pub name: String,
    pub inum: u32,
    pub kind: Kind,
    pub nlink: u16,
    pub size: u64,
}

impl DirEntry {
    /// One line of `mkimage ls`: kind, inode number, link count, size, name.
    pub fn ls_line(&self) -> String {
        let kind = match self.kind {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Device => "dev",
            Kind::Free => "free",
        };
        format!("{kind:<4} {:>6} {:>3} {:>10} {}", self.inum, self.nlink, self.size, self.name)
    }
}

/// The components of an image path: `/a/b`, `a/b` and `/a//b/` all give `["a", "b"]`.
pub fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// A valid image opened for reading files and directories.
#[derive(Debug)]
pub struct Image {
    disk: Disk,
    sb: Superblock,
}

impl Image {
    /// Opens an image; fails when its superblock is invalid or the file is shorter than the
    /// file system.
    pub fn open(path: impl AsRef<Path>) -> ReadResult<Image> {
        Image::from_disk(Disk::open(path)?)
    }

    /// An image over an already opened disk (a file or bytes in memory).
    pub fn from_disk(disk: Disk) -> ReadResult<Image> {
        let sb = disk.valid_superblock()?;
        Ok(Image { disk, sb })
    }

    /// The (valid) superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The underlying block reader.
    pub fn disk(&self) -> &Disk {
        &self.disk
    }

    /// Reads inode `inum` (whatever its kind).
    pub fn raw_inode(&self, inum: u32) -> ReadResult<Dinode> {
        let Some(block) = inode_block(&self.sb, inum) else {
            return corrupt(format!(
                "inode number {inum} is out of range (1..{})",
                self.sb.ninodes
            ));
        };
        let data = self.disk.read_block(block)?;
        let off = inode_offset(inum);
        Dinode::decode(&data[off..])
            .map_err(|error| ReadError::Format { context: format!("inode {inum}"), error })
    }

    /// Reads an allocated inode and its kind; fails on a free inode or an invalid kind.
    pub fn inode(&self, inum: u32) -> ReadResult<(Kind, Dinode)> {
        let d = self.raw_inode(inum)?;
        match d.kind() {
            Ok(Kind::Free) => corrupt(format!("inode {inum} is free")),
            Ok(kind) => Ok((kind, d)),
            Err(error) => Err(ReadError::Format { context: format!("inode {inum}"), error }),
        }
    }

    fn data_block(&self, inum: u32, b: u32) -> ReadResult<u32> {
        if b != 0 && !self.sb.is_data(b) {
            return corrupt(format!("inode {inum} points at block {b}, outside the data area"));
        }
        Ok(b)
    }

    /// The block numbers holding the contents of an inode, in order (0 = a hole, read as
    /// zeros). Checks every pointer it follows.
    pub fn file_blocks(&self, inum: u32, d: &Dinode) -> ReadResult<Vec<u32>> {
        // The data area bounds a file's size (holes aside, which the kernel never makes), and
        // with it what we allocate.
        let max = (u64::from(self.sb.nblocks) * BSIZE as u64).min(MAX_FILE_SIZE);
        if d.size > max {
            return corrupt(format!("inode {inum} has size {}, larger than the disk", d.size));
        }
        let n = d.size.div_ceil(BSIZE as u64);
        let mut blocks = Vec::with_capacity(n as usize);
        let mut indirect: Option<Box<Block>> = None;
        // The double indirect block, and the second-level block last read (index, block).
        let mut double: Option<Box<Block>> = None;
        let mut level2: Option<(usize, Box<Block>)> = None;
        for i in 0..n {
            let b = match block_path(i) {
                Some(BlockPath::Direct(k)) => d.addrs[k],
                Some(BlockPath::Indirect(k)) => {
                    if indirect.is_none() {
                        let ib = self.data_block(inum, d.addrs[INDIRECT])?;
                        if ib == 0 {
                            // A hole as big as the indirect block's reach.
                            indirect = Some(Box::new([0; BSIZE]));
                        } else {
                            indirect = Some(self.disk.read_block(ib)?);
                        }
                    }
                    indirect.as_deref().map_or(0, |blk| indirect_get(blk, k))
                }
                Some(BlockPath::Double(k, j)) => {
                    if double.is_none() {
                        let db = self.data_block(inum, d.addrs[DOUBLE_INDIRECT])?;
                        double = Some(if db == 0 {
                            Box::new([0; BSIZE])
                        } else {
                            self.disk.read_block(db)?
                        });
                    }
                    if level2.as_ref().is_none_or(|(idx, _)| *idx != k) {
                        let l2 = double.as_deref().map_or(0, |blk| indirect_get(blk, k));
                        let l2 = self.data_block(inum, l2)?;
                        let blk = if l2 == 0 {
                            Box::new([0; BSIZE])
                        } else {
                            self.disk.read_block(l2)?
                        };
                        level2 = Some((k, blk));
                    }
                    level2.as_ref().map_or(0, |(_, blk)| indirect_get(blk, j))
                }
                None => return corrupt(format!("inode {inum} is too large")),
            };
            blocks.push(self.data_block(inum, b)?);
        }
        Ok(blocks)
    }

    /// The contents of inode `inum`.
    pub fn read_inode_data(&self, inum: u32) -> ReadResult<Vec<u8>> {
        let (_, d) = self.inode(inum)?;
        let blocks = self.file_blocks(inum, &d)?;
        let size = d.size as usize;
        // Grown as blocks are read: a corrupt size costs no up-front allocation.
        let mut out = Vec::with_capacity(size.min(64 << 20));
        for b in blocks {
            let want = (size - out.len()).min(BSIZE);
            if b == 0 {
                out.resize(out.len() + want, 0);
            } else {
                let data = self.disk.read_block(b)?;
                out.extend_from_slice(&data[..want]);
            }
        }
        Ok(out)
    }

    /// The used entries of directory `inum`, in order, `.` and `..` included.
    pub fn read_dir(&self, inum: u32) -> ReadResult<Vec<Dirent>> {
        let (kind, _) = self.inode(inum)?;
        if kind != Kind::Dir {
            return Err(ReadError::NotADirectory(format!("inode {inum}")));
        }
        let data = self.read_inode_data(inum)?;
        let mut entries = Vec::new();
        for chunk in data.chunks_exact(DIRENT_SIZE) {
            let e = Dirent::decode(chunk).map_err(|error| ReadError::Format {
                context: format!("directory {inum}"),
                error,
            })?;
            if !e.is_free() {
                entries.push(e);
            }
        }
        Ok(entries)
    }

    /// The inode a path names, starting at the root (`.` and `..` are looked up as the entries
    /// they are).
    pub fn lookup(&self, path: &str) -> ReadResult<u32> {
        let mut inum = ROOT_INO;
        let mut walked = String::new();
        for name in components(path) {
            let (kind, _) = self.inode(inum)?;
            if kind != Kind::Dir {
                return Err(ReadError::NotADirectory(display_path(&walked)));
            }
            walked.push('/');
            walked.push_str(name);
            let found = self.read_dir(inum)?.into_iter().find(|e| e.name() == name.as_bytes());
            match found {
                Some(e) => inum = e.inum,
                None => return Err(ReadError::NotFound(walked)),
            }
        }
        Ok(inum)
    }

    /// Kind, inode number, link count and size of what `path` names.
    pub fn stat(&self, path: &str) -> ReadResult<DirEntry> {
        let inum = self.lookup(path)?;
        let (kind, d) = self.inode(inum)?;
        let name = components(path).last().unwrap_or("/").to_string();
        Ok(DirEntry { name, inum, kind, nlink: d.nlink, size: d.size })
    }

    /// The contents of the file at `path`.
    pub fn read_file(&self, path: &str) -> ReadResult<Vec<u8>> {
        let inum = self.lookup(path)?;
        let (kind, _) = self.inode(inum)?;
        if kind == Kind::Dir {
            return Err(ReadError::IsADirectory(display_path(path)));
        }
        self.read_inode_data(inum)
    }

    /// The entries of the directory at `path`, `.` and `..` included, in on-disk order.
    pub fn list_dir(&self, path: &str) -> ReadResult<Vec<DirEntry>> {
        let inum = self.lookup(path)?;
        let (kind, _) = self.inode(inum)?;
        if kind != Kind::Dir {
            return Err(ReadError::NotADirectory(display_path(path)));
        }
        self.read_dir(inum)?
            .into_iter()
            .map(|e| {
                let (kind, d) = self.inode(e.inum)?;
                Ok(DirEntry {
                    name: String::from_utf8_lossy(e.name()).into_owned(),
                    inum: e.inum,
                    kind,
                    nlink: d.nlink,
                    size: d.size,
                })
            })
            .collect()
    }
}

/// `path` as the user would recognise it: absolute, `/` for the root.
fn display_path(path: &str) -> String {
    let mut out = String::new();
    for c in components(path) {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `mkimage ls`: the listing of a directory, or the one line of a file.
pub fn ls(image: &Image, path: &str) -> ReadResult<Vec<String>> {
    let st = image.stat(path)?;
    if st.kind == Kind::Dir {
        Ok(image.list_dir(path)?.iter().map(DirEntry::ls_line).collect())
    } else {
        Ok(vec![DirEntry { name: display_path(path), ..st }.ls_line()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(components("/a//b/").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(components("/").count(), 0);
        assert_eq!(display_path(""), "/");
        assert_eq!(display_path("www//docs/"), "/www/docs");
    }

    #[test]
    fn ls_line() {
        let e = DirEntry { name: "README".into(), inum: 2, kind: Kind::File, nlink: 1, size: 42 };
        assert_eq!(e.ls_line(), "file      2   1         42 README");
    }
}
