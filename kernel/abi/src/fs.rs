//! The on-disk format of the file system: the one definition shared by the kernel's `fs` crate
//! and by `mkimage` (which builds, checks and reads images on the host).
//!
//! ```text
//! block:  0      1       2 ..                 inodestart ..  bmapstart ..  datastart .. size
//!         [boot] [super] [log header][log data] [inodes]      [bitmap]      [data]
//! ```
//!
//! All integers are little-endian. Each structure has `encode(&self, out)`, which writes exactly
//! its `SIZE` bytes at the start of `out`, and `decode(bytes)`, which reads them back. `decode`
//! only checks that enough bytes are there: a decoded value is *untrusted* until checked
//! ([`Superblock::validate`], [`Dinode::kind`], [`Dirent::check`], [`LogHeader::validate`]).

use core::fmt;

/// Size of a disk block in bytes.
pub const BSIZE: usize = 4096;
/// The block holding the superblock (block 0 is left for a boot sector).
pub const SUPERBLOCK_BLOCK: u32 = 1;
/// Where [`Superblock::layout`] puts the log.
pub const LOG_START: u32 = 2;
/// Magic number of the superblock: the bytes `"RXFX"` on disk.
pub const FS_MAGIC: u32 = 0x5846_5852;
/// The format version this crate reads and writes.
pub const FS_VERSION: u32 = 1;
/// Magic number of the log header: the bytes `"RLOG"` on disk.
pub const LOG_MAGIC: u32 = 0x474f_4c52;

/// Data blocks in the log (after its one header block).
pub const LOG_DATA: usize = 128;
/// Blocks of the whole log region: the header and [`LOG_DATA`] data blocks (`Superblock::nlog`).
pub const LOG_BLOCKS: u32 = 1 + LOG_DATA as u32;
/// The most blocks one file system operation may write (so that a transaction fits the log).
pub const MAX_OP_BLOCKS: usize = 32;

/// The inode number of the root directory. Inode 0 is never used.
pub const ROOT_INO: u32 = 1;
/// Direct block pointers in an inode.
pub const NDIRECT: usize = 12;
/// Block numbers in an indirect block.
pub const NINDIRECT: usize = BSIZE / 4;
/// Block pointers in an inode: the direct ones, then the single and the double indirect block.
pub const NADDRS: usize = NDIRECT + 2;
/// Index in [`Dinode::addrs`] of the single indirect block.
pub const INDIRECT: usize = NDIRECT;
/// Index in [`Dinode::addrs`] of the double indirect block.
pub const DOUBLE_INDIRECT: usize = NDIRECT + 1;
/// The most blocks a file can have.
pub const MAX_FILE_BLOCKS: usize = NDIRECT + NINDIRECT + NINDIRECT * NINDIRECT;
/// The largest file size in bytes.
pub const MAX_FILE_SIZE: u64 = MAX_FILE_BLOCKS as u64 * BSIZE as u64;

/// Bytes of an on-disk inode.
pub const DINODE_SIZE: usize = 128;
/// Inodes per block.
pub const IPB: usize = BSIZE / DINODE_SIZE;
/// Bitmap bits per block.
pub const BPB: usize = BSIZE * 8;

/// Longest file name in bytes.
pub const DIRSIZ: usize = 60;
/// Bytes of a directory entry.
pub const DIRENT_SIZE: usize = 64;
/// Directory entries per block.
pub const DPB: usize = BSIZE / DIRENT_SIZE;

// The structures fit their blocks, and one operation fits the log.
const _: () = assert!(Superblock::SIZE <= BSIZE && LogHeader::SIZE <= BSIZE);
const _: () = assert!(MAX_OP_BLOCKS <= LOG_DATA && BSIZE.is_multiple_of(DINODE_SIZE));

/// Why bytes are not a valid piece of the file system, or why a layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer bytes than the structure needs.
    Short { what: &'static str, need: usize, got: usize },
    /// The superblock's magic number is wrong (not a file system of this format).
    BadMagic(u32),
    /// The superblock's version is not [`FS_VERSION`].
    BadVersion(u32),
    /// Region `first` (ending before block `first_end`) runs into region `second`, which
    /// starts at block `second_start`; `first_end` may exceed `u32` on a corrupt superblock.
    Overlap { first: &'static str, first_end: u64, second: &'static str, second_start: u32 },
    /// The log region has fewer blocks than [`LOG_BLOCKS`].
    LogTooSmall(u32),
    /// Fewer than two inodes (inode 0 is unused, inode 1 is the root).
    TooFewInodes(u32),
    /// `datastart + nblocks != size`.
    SizeMismatch { datastart: u32, nblocks: u32, size: u32 },
    /// No data blocks at all; or, from [`Superblock::layout`], a disk of `size` blocks is too
    /// small: it needs at least `need`.
    TooSmall { size: u32, need: u64 },
    /// An inode kind that is not one of [`Kind`].
    BadKind(u16),
    /// An empty file name.
    EmptyName,
    /// A name longer than [`DIRSIZ`] bytes.
    NameTooLong(usize),
    /// A name containing `/`.
    NameHasSlash,
    /// A name containing NUL (or, on disk, a non-NUL byte in the padding after it).
    NameHasNul,
    /// The log header's magic number is wrong.
    LogBadMagic(u32),
    /// The log header counts more blocks than the log holds.
    LogTooLong(u32),
    /// Entry `index` of the log header targets a block that is not in the inode, bitmap or
    /// data area.
    LogBadTarget { index: usize, block: u32 },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::Short { what, need, got } => {
                write!(f, "{what} needs {need} bytes, got {got}")
            }
            FormatError::BadMagic(m) => {
                write!(f, "bad superblock magic {m:#010x} (want {FS_MAGIC:#010x}, \"RXFX\")")
            }
            FormatError::BadVersion(v) => {
                write!(f, "unsupported format version {v} (want {FS_VERSION})")
            }
            FormatError::Overlap { first, first_end, second, second_start } => write!(
                f,
                "{first} region (ending before block {first_end}) overlaps the {second} region \
                 (starting at block {second_start})"
            ),
            FormatError::LogTooSmall(n) => {
                write!(f, "log region has {n} blocks, needs {LOG_BLOCKS}")
            }
            FormatError::TooFewInodes(n) => write!(f, "{n} inodes: need at least 2"),
            FormatError::SizeMismatch { datastart, nblocks, size } => write!(
                f,
                "data region (start {datastart} + {nblocks} blocks) does not end at the disk size \
                 {size}"
            ),
            FormatError::TooSmall { size, need } => {
                write!(f, "{size} blocks is too small: the layout needs at least {need}")
            }
            FormatError::BadKind(k) => write!(f, "unknown inode kind {k}"),
            FormatError::EmptyName => f.write_str("empty file name"),
            FormatError::NameTooLong(n) => {
                write!(f, "file name of {n} bytes is longer than {DIRSIZ}")
            }
            FormatError::NameHasSlash => f.write_str("file name contains '/'"),
            FormatError::NameHasNul => f.write_str("file name contains NUL"),
            FormatError::LogBadMagic(m) => {
                write!(f, "bad log header magic {m:#010x} (want {LOG_MAGIC:#010x}, \"RLOG\")")
            }
            FormatError::LogTooLong(n) => {
                write!(f, "log header counts {n} blocks, the log holds {LOG_DATA}")
            }
            FormatError::LogBadTarget { index, block } => {
                write!(f, "log entry {index} targets block {block}, outside the file system")
            }
        }
    }
}

fn need(what: &'static str, bytes: &[u8], size: usize) -> Result<(), FormatError> {
    if bytes.len() < size {
        Err(FormatError::Short { what, need: size, got: bytes.len() })
    } else {
        Ok(())
    }
}

/// Reads the little-endian `u32` at byte `off`; the caller has checked the length.
fn get_u32(bytes: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]])
}

fn get_u16(bytes: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([bytes[off], bytes[off + 1]])
}

fn get_u64(bytes: &[u8], off: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[off..off + 8]);
    u64::from_le_bytes(b)
}

fn put(out: &mut [u8], off: usize, bytes: &[u8]) {
    out[off..off + bytes.len()].copy_from_slice(bytes);
}

/// Panics with a clear message when a caller hands `encode` too small a buffer (a bug in the
/// caller, never a property of disk contents).
fn check_out(what: &str, out: &[u8], size: usize) {
    assert!(out.len() >= size, "{what}::encode needs {size} bytes, the buffer has {}", out.len());
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

/// Block 1: the shape of the file system. All fields are block numbers or counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Superblock {
    /// [`FS_MAGIC`].
    pub magic: u32,
    /// [`FS_VERSION`].
    pub version: u32,
    /// Total blocks of the file system.
    pub size: u32,
    /// Data blocks (`size - datastart`).
    pub nblocks: u32,
    /// Inodes, counting the unused inode 0.
    pub ninodes: u32,
    /// Blocks of the log: its header and [`LOG_DATA`] data blocks.
    pub nlog: u32,
    /// First block of the log (its header).
    pub logstart: u32,
    /// First inode block.
    pub inodestart: u32,
    /// First bitmap block.
    pub bmapstart: u32,
    /// First data block.
    pub datastart: u32,
}

impl Superblock {
    /// Bytes of the superblock at the start of block 1 (the rest of the block is zero).
    pub const SIZE: usize = 64;

    /// The superblock of a new file system of `size` blocks with `ninodes` inodes (inode 0
    /// included): the log at block 2, then the inode blocks, the bitmap blocks, and the data.
    pub fn layout(size: u32, ninodes: u32) -> Result<Superblock, FormatError> {
        if ninodes < 2 {
            return Err(FormatError::TooFewInodes(ninodes));
        }
        let logstart = u64::from(LOG_START);
        let inodestart = logstart + u64::from(LOG_BLOCKS);
        let bmapstart = inodestart + div_ceil(u64::from(ninodes), IPB as u64);
        let datastart = bmapstart + div_ceil(u64::from(size), BPB as u64);
        // At least one data block, for the root directory.
        if datastart >= u64::from(size) {
            return Err(FormatError::TooSmall { size, need: datastart + 1 });
        }
        // All of these are below `size`, so they fit in a u32.
        let sb = Superblock {
            magic: FS_MAGIC,
            version: FS_VERSION,
            size,
            nblocks: size - datastart as u32,
            ninodes,
            nlog: LOG_BLOCKS,
            logstart: LOG_START,
            inodestart: inodestart as u32,
            bmapstart: bmapstart as u32,
            datastart: datastart as u32,
        };
        debug_assert_eq!(sb.validate(), Ok(()));
        Ok(sb)
    }

    /// Writes the superblock into the first [`Self::SIZE`] bytes of `out` (padding zeroed).
    ///
    /// Panics if `out` is shorter than [`Self::SIZE`].
    pub fn encode(&self, out: &mut [u8]) {
        check_out("Superblock", out, Self::SIZE);
        let fields = [
            self.magic,
            self.version,
            self.size,
            self.nblocks,
            self.ninodes,
            self.nlog,
            self.logstart,
            self.inodestart,
            self.bmapstart,
            self.datastart,
        ];
        out[..Self::SIZE].fill(0);
        for (i, v) in fields.iter().enumerate() {
            put(out, 4 * i, &v.to_le_bytes());
        }
    }

    /// Reads a superblock from the first [`Self::SIZE`] bytes. Does not validate it.
    pub fn decode(bytes: &[u8]) -> Result<Superblock, FormatError> {
        need("superblock", bytes, Self::SIZE)?;
        let f = |i: usize| get_u32(bytes, 4 * i);
        Ok(Superblock {
            magic: f(0),
            version: f(1),
            size: f(2),
            nblocks: f(3),
            ninodes: f(4),
            nlog: f(5),
            logstart: f(6),
            inodestart: f(7),
            bmapstart: f(8),
            datastart: f(9),
        })
    }

    /// Blocks of the inode region that `ninodes` needs.
    pub fn inode_blocks(&self) -> u64 {
        div_ceil(u64::from(self.ninodes), IPB as u64)
    }

    /// Blocks of the bitmap that `size` needs.
    pub fn bitmap_blocks(&self) -> u64 {
        div_ceil(u64::from(self.size), BPB as u64)
    }

    /// Checks the magic, the version, and that the regions are in order, do not overlap, fit
    /// in `size` and are big enough. Once this returns `Ok`, every block number computed by
    /// the helpers of this module for an in-range inode or block is below `size`.
    ///
    /// It does not know the size of the device: the caller checks `size` against that.
    pub fn validate(&self) -> Result<(), FormatError> {
        if self.magic != FS_MAGIC {
            return Err(FormatError::BadMagic(self.magic));
        }
        if self.version != FS_VERSION {
            return Err(FormatError::BadVersion(self.version));
        }
        let overlap = |first, first_end, second, second_start| FormatError::Overlap {
            first,
            first_end,
            second,
            second_start,
        };
        if self.logstart <= SUPERBLOCK_BLOCK {
            return Err(overlap(
                "superblock",
                u64::from(SUPERBLOCK_BLOCK) + 1,
                "log",
                self.logstart,
            ));
        }
        if self.nlog < LOG_BLOCKS {
            return Err(FormatError::LogTooSmall(self.nlog));
        }
        let log_end = u64::from(self.logstart) + u64::from(self.nlog);
        if log_end > u64::from(self.inodestart) {
            return Err(overlap("log", log_end, "inode", self.inodestart));
        }
        if self.ninodes < 2 {
            return Err(FormatError::TooFewInodes(self.ninodes));
        }
        let inode_end = u64::from(self.inodestart) + self.inode_blocks();
        if inode_end > u64::from(self.bmapstart) {
            return Err(overlap("inode", inode_end, "bitmap", self.bmapstart));
        }
        let bmap_end = u64::from(self.bmapstart) + self.bitmap_blocks();
        if bmap_end > u64::from(self.datastart) {
            return Err(overlap("bitmap", bmap_end, "data", self.datastart));
        }
        if u64::from(self.datastart) + u64::from(self.nblocks) != u64::from(self.size) {
            return Err(FormatError::SizeMismatch {
                datastart: self.datastart,
                nblocks: self.nblocks,
                size: self.size,
            });
        }
        if self.nblocks == 0 {
            return Err(FormatError::TooSmall {
                size: self.size,
                need: u64::from(self.datastart) + 1,
            });
        }
        Ok(())
    }

    /// Whether `block` is in the data region.
    pub fn is_data(&self, block: u32) -> bool {
        block >= self.datastart && block < self.size
    }

    /// Whether the log may target `block`: an inode, bitmap or data block.
    pub fn is_loggable(&self, block: u32) -> bool {
        block >= self.inodestart && block < self.size
    }
}

/// What an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Not allocated.
    Free = 0,
    /// A directory.
    Dir = 1,
    /// A regular file.
    File = 2,
    /// A device (`major`, `minor`).
    Device = 3,
}

impl TryFrom<u16> for Kind {
    type Error = FormatError;

    fn try_from(v: u16) -> Result<Kind, FormatError> {
        match v {
            0 => Ok(Kind::Free),
            1 => Ok(Kind::Dir),
            2 => Ok(Kind::File),
            3 => Ok(Kind::Device),
            other => Err(FormatError::BadKind(other)),
        }
    }
}

impl From<Kind> for u16 {
    fn from(k: Kind) -> u16 {
        k as u16
    }
}

/// An on-disk inode ([`DINODE_SIZE`] bytes, [`IPB`] to a block).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dinode {
    /// A [`Kind`] as stored on disk; read it through [`Dinode::kind`].
    pub kind: u16,
    /// Device numbers (devices only).
    pub major: u16,
    pub minor: u16,
    /// Directory entries naming this inode, not counting `.` entries.
    pub nlink: u16,
    /// Size in bytes.
    pub size: u64,
    /// [`NDIRECT`] direct block numbers, then the single ([`INDIRECT`]) and the double
    /// ([`DOUBLE_INDIRECT`]) indirect block. 0 = no block.
    pub addrs: [u32; NADDRS],
}

impl Dinode {
    /// Bytes of an inode on disk.
    pub const SIZE: usize = DINODE_SIZE;

    /// A new inode of `kind`, no links, empty.
    pub fn new(kind: Kind) -> Dinode {
        Dinode { kind: kind.into(), ..Dinode::default() }
    }

    /// The kind, or [`FormatError::BadKind`] for a corrupt inode.
    pub fn kind(&self) -> Result<Kind, FormatError> {
        Kind::try_from(self.kind)
    }

    /// Writes the inode into the first [`Self::SIZE`] bytes of `out` (padding zeroed).
    ///
    /// Panics if `out` is shorter than [`Self::SIZE`].
    pub fn encode(&self, out: &mut [u8]) {
        check_out("Dinode", out, Self::SIZE);
        out[..Self::SIZE].fill(0);
        put(out, 0, &self.kind.to_le_bytes());
        put(out, 2, &self.major.to_le_bytes());
        put(out, 4, &self.minor.to_le_bytes());
        put(out, 6, &self.nlink.to_le_bytes());
        put(out, 8, &self.size.to_le_bytes());
        for (i, a) in self.addrs.iter().enumerate() {
            put(out, 16 + 4 * i, &a.to_le_bytes());
        }
    }

    /// Reads an inode from the first [`Self::SIZE`] bytes. Does not check the kind.
    pub fn decode(bytes: &[u8]) -> Result<Dinode, FormatError> {
        need("inode", bytes, Self::SIZE)?;
        let mut addrs = [0u32; NADDRS];
        for (i, a) in addrs.iter_mut().enumerate() {
            *a = get_u32(bytes, 16 + 4 * i);
        }
        Ok(Dinode {
            kind: get_u16(bytes, 0),
            major: get_u16(bytes, 2),
            minor: get_u16(bytes, 4),
            nlink: get_u16(bytes, 6),
            size: get_u64(bytes, 8),
            addrs,
        })
    }
}

/// The block holding inode `inum`, or `None` when `inum` is 0 (never used) or not below
/// `sb.ninodes`. For a validated superblock the block is below `sb.size`.
pub fn inode_block(sb: &Superblock, inum: u32) -> Option<u32> {
    if inum == 0 || inum >= sb.ninodes {
        return None;
    }
    let block = u64::from(sb.inodestart) + u64::from(inum) / IPB as u64;
    u32::try_from(block).ok()
}

/// Byte offset of inode `inum` inside its block.
pub fn inode_offset(inum: u32) -> usize {
    (inum as usize % IPB) * DINODE_SIZE
}

/// The bitmap block holding the bit of block `b`, or `None` when `b` is not below `sb.size`.
pub fn bitmap_block(sb: &Superblock, b: u32) -> Option<u32> {
    if b >= sb.size {
        return None;
    }
    let block = u64::from(sb.bmapstart) + u64::from(b) / BPB as u64;
    u32::try_from(block).ok()
}

/// Where the bit of block `b` is inside its bitmap block: (byte index, bit mask).
pub fn bitmap_bit(b: u32) -> (usize, u8) {
    let bit = b as usize % BPB;
    (bit / 8, 1 << (bit % 8))
}

/// Where the block number of file block `n` (block `n` of the file's contents) is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockPath {
    /// `addrs[i]`.
    Direct(usize),
    /// Entry `i` of the single indirect block `addrs[INDIRECT]`.
    Indirect(usize),
    /// Entry `j` of the block named by entry `i` of the double indirect block
    /// `addrs[DOUBLE_INDIRECT]`.
    Double(usize, usize),
}

/// Where file block `n` is mapped, or `None` when `n >= MAX_FILE_BLOCKS`.
pub fn block_path(n: u64) -> Option<BlockPath> {
    let n = usize::try_from(n).ok()?;
    if n < NDIRECT {
        Some(BlockPath::Direct(n))
    } else if n < NDIRECT + NINDIRECT {
        Some(BlockPath::Indirect(n - NDIRECT))
    } else if n < MAX_FILE_BLOCKS {
        let k = n - NDIRECT - NINDIRECT;
        Some(BlockPath::Double(k / NINDIRECT, k % NINDIRECT))
    } else {
        None
    }
}

/// Entry `i` of an indirect block. Panics if `i >= NINDIRECT`.
pub fn indirect_get(block: &[u8; BSIZE], i: usize) -> u32 {
    assert!(i < NINDIRECT, "indirect index {i} out of range");
    get_u32(block, 4 * i)
}

/// Sets entry `i` of an indirect block. Panics if `i >= NINDIRECT`.
pub fn indirect_set(block: &mut [u8; BSIZE], i: usize, value: u32) {
    assert!(i < NINDIRECT, "indirect index {i} out of range");
    put(block, 4 * i, &value.to_le_bytes());
}

/// Checks a file name: not empty, at most [`DIRSIZ`] bytes, no `/`, no NUL. (`.` and `..` pass:
/// whether they may be created is up to the caller.)
pub fn validate_name(name: &[u8]) -> Result<(), FormatError> {
    if name.is_empty() {
        Err(FormatError::EmptyName)
    } else if name.len() > DIRSIZ {
        Err(FormatError::NameTooLong(name.len()))
    } else if name.contains(&b'/') {
        Err(FormatError::NameHasSlash)
    } else if name.contains(&0) {
        Err(FormatError::NameHasNul)
    } else {
        Ok(())
    }
}

/// A directory entry ([`DIRENT_SIZE`] bytes). `inum == 0` marks a free slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dirent {
    pub inum: u32,
    /// The name, NUL-padded (no NUL when it is [`DIRSIZ`] bytes long).
    pub name: [u8; DIRSIZ],
}

impl Default for Dirent {
    fn default() -> Self {
        Dirent::EMPTY
    }
}

impl Dirent {
    /// Bytes of a directory entry on disk.
    pub const SIZE: usize = DIRENT_SIZE;
    /// A free slot.
    pub const EMPTY: Dirent = Dirent { inum: 0, name: [0; DIRSIZ] };

    /// An entry naming inode `inum`; fails when the name is not valid ([`validate_name`]).
    pub fn new(inum: u32, name: &[u8]) -> Result<Dirent, FormatError> {
        validate_name(name)?;
        let mut padded = [0u8; DIRSIZ];
        padded[..name.len()].copy_from_slice(name);
        Ok(Dirent { inum, name: padded })
    }

    /// Whether this slot is free.
    pub fn is_free(&self) -> bool {
        self.inum == 0
    }

    /// The name: the bytes before the first NUL.
    pub fn name(&self) -> &[u8] {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(DIRSIZ);
        &self.name[..len]
    }

    /// Checks the name of a used entry as read from disk: valid, and only NULs after it.
    pub fn check(&self) -> Result<(), FormatError> {
        let name = self.name();
        validate_name(name)?;
        if self.name[name.len()..].iter().any(|&b| b != 0) {
            return Err(FormatError::NameHasNul);
        }
        Ok(())
    }

    /// Writes the entry into the first [`Self::SIZE`] bytes of `out`.
    ///
    /// Panics if `out` is shorter than [`Self::SIZE`].
    pub fn encode(&self, out: &mut [u8]) {
        check_out("Dirent", out, Self::SIZE);
        put(out, 0, &self.inum.to_le_bytes());
        put(out, 4, &self.name);
    }

    /// Reads an entry from the first [`Self::SIZE`] bytes. Does not check the name.
    pub fn decode(bytes: &[u8]) -> Result<Dirent, FormatError> {
        need("directory entry", bytes, Self::SIZE)?;
        let mut name = [0u8; DIRSIZ];
        name.copy_from_slice(&bytes[4..4 + DIRSIZ]);
        Ok(Dirent { inum: get_u32(bytes, 0), name })
    }
}

/// The log header (block `logstart`). `n > 0` with a matching checksum means a committed
/// transaction: log data block `i` (block `logstart + 1 + i`) belongs at `blocks[i]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogHeader {
    /// [`LOG_MAGIC`].
    pub magic: u32,
    /// Committed blocks; 0 = empty log.
    pub n: u32,
    /// [`LogHeader::checksum_of`] the first `n` targets and log data blocks.
    pub checksum: u32,
    /// Zero.
    pub reserved: u32,
    /// Target block numbers; only the first `n` mean anything.
    pub blocks: [u32; LOG_DATA],
}

impl Default for LogHeader {
    fn default() -> Self {
        LogHeader::empty()
    }
}

impl LogHeader {
    /// Bytes of the header at the start of its block (the rest of the block is zero).
    pub const SIZE: usize = 16 + 4 * LOG_DATA;

    /// An empty log: magic set, `n = 0`, checksum of nothing (0).
    pub const fn empty() -> LogHeader {
        LogHeader { magic: LOG_MAGIC, n: 0, checksum: 0, reserved: 0, blocks: [0; LOG_DATA] }
    }

    /// The first `n` targets (at most [`LOG_DATA`], whatever `n` says).
    pub fn targets(&self) -> &[u32] {
        let n = (self.n as usize).min(LOG_DATA);
        &self.blocks[..n]
    }

    /// Checks everything but the checksum: the magic, `n <= LOG_DATA`, and every target is an
    /// inode, bitmap or data block of `sb` (which must be valid). A header that fails is an
    /// uncommitted (empty) log. When it passes and `n > 0`, read the `n` log data blocks and
    /// compare [`LogHeader::checksum_of`] them with `checksum`.
    pub fn validate(&self, sb: &Superblock) -> Result<(), FormatError> {
        if self.magic != LOG_MAGIC {
            return Err(FormatError::LogBadMagic(self.magic));
        }
        if self.n as usize > LOG_DATA {
            return Err(FormatError::LogTooLong(self.n));
        }
        for (index, &block) in self.targets().iter().enumerate() {
            if !sb.is_loggable(block) {
                return Err(FormatError::LogBadTarget { index, block });
            }
        }
        Ok(())
    }

    /// The CRC-32 of the targets alone: the start of an incremental checksum, to be continued
    /// with `crc32(c, block)` for each logged data block in order. The result equals
    /// [`LogHeader::checksum_of`].
    pub fn checksum_begin(targets: &[u32]) -> u32 {
        targets.iter().fold(0, |c, t| crc32(c, &t.to_le_bytes()))
    }

    /// The log checksum: CRC-32/ISO-HDLC over the targets as little-endian `u32`s, then the
    /// logged data blocks in order.
    pub fn checksum_of<I>(targets: &[u32], data_blocks: I) -> u32
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        data_blocks.into_iter().fold(Self::checksum_begin(targets), |c, b| crc32(c, b.as_ref()))
    }

    /// Writes the header into the first [`Self::SIZE`] bytes of `out`.
    ///
    /// Panics if `out` is shorter than [`Self::SIZE`].
    pub fn encode(&self, out: &mut [u8]) {
        check_out("LogHeader", out, Self::SIZE);
        put(out, 0, &self.magic.to_le_bytes());
        put(out, 4, &self.n.to_le_bytes());
        put(out, 8, &self.checksum.to_le_bytes());
        put(out, 12, &self.reserved.to_le_bytes());
        for (i, b) in self.blocks.iter().enumerate() {
            put(out, 16 + 4 * i, &b.to_le_bytes());
        }
    }

    /// Reads a header from the first [`Self::SIZE`] bytes. Does not validate it.
    pub fn decode(bytes: &[u8]) -> Result<LogHeader, FormatError> {
        need("log header", bytes, Self::SIZE)?;
        let mut blocks = [0u32; LOG_DATA];
        for (i, b) in blocks.iter_mut().enumerate() {
            *b = get_u32(bytes, 16 + 4 * i);
        }
        Ok(LogHeader {
            magic: get_u32(bytes, 0),
            n: get_u32(bytes, 4),
            checksum: get_u32(bytes, 8),
            reserved: get_u32(bytes, 12),
            blocks,
        })
    }
}

/// CRC-32/ISO-HDLC (the CRC of zlib, PNG and Ethernet), continued from `crc`: start with 0,
/// and `crc32(crc32(0, a), b) == crc32(0, ab)`. Eight bytes per step ("slicing by 8"): the
/// log checksums every block it commits, and a byte at a time cost a tenth of the
/// sequential write's time in bench-fs.
pub fn crc32(crc: u32, bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !crc;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        let hi = u32::from_le_bytes([w[4], w[5], w[6], w[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][(lo >> 8 & 0xff) as usize]
            ^ t[5][(lo >> 16 & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][(hi >> 8 & 0xff) as usize]
            ^ t[1][(hi >> 16 & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in words.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The reflected polynomial 0x04C11DB7.
const CRC_POLY: u32 = 0xedb8_8320;

/// `CRC_TABLES[0][b]`: the CRC step of byte value `b`; `CRC_TABLES[k][b]`: of `b` followed by
/// `k` zero bytes. Computed at compile time.
static CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ CRC_POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    fn sb() -> Superblock {
        Superblock::layout(32768, 4096).unwrap()
    }

    #[test]
    fn constants() {
        assert_eq!(IPB, 32);
        assert_eq!(NINDIRECT, 1024);
        assert_eq!(MAX_FILE_BLOCKS, 12 + 1024 + 1024 * 1024);
        assert_eq!(DPB, 64);
        assert_eq!(&FS_MAGIC.to_le_bytes(), b"RXFX");
        assert_eq!(&LOG_MAGIC.to_le_bytes(), b"RLOG");
    }

    #[test]
    fn layout_of_the_default_image() {
        let sb = sb();
        assert_eq!(sb.logstart, 2);
        assert_eq!(sb.nlog, 129);
        assert_eq!(sb.inodestart, 131);
        assert_eq!(sb.bmapstart, 131 + 128);
        assert_eq!(sb.datastart, 260);
        assert_eq!(sb.nblocks, 32768 - 260);
        assert_eq!(sb.validate(), Ok(()));
        // A bitmap of more than one block, and an inode count that is not a multiple of IPB.
        let big = Superblock::layout(100_000, 33).unwrap();
        assert_eq!(big.bmapstart, 131 + 2);
        assert_eq!(big.datastart, 133 + 4);
        assert_eq!(big.validate(), Ok(()));
    }

    #[test]
    fn layout_rejects_impossible_shapes() {
        assert_eq!(Superblock::layout(1000, 1), Err(FormatError::TooFewInodes(1)));
        assert_eq!(
            Superblock::layout(133, 32),
            Err(FormatError::TooSmall { size: 133, need: 134 })
        );
        assert!(Superblock::layout(134, 32).is_ok());
        assert!(matches!(Superblock::layout(0, 2), Err(FormatError::TooSmall { .. })));
        assert!(matches!(Superblock::layout(1000, u32::MAX), Err(FormatError::TooSmall { .. })));
    }

    #[test]
    fn superblock_round_trip() {
        let sb = sb();
        let mut block = [0xaau8; BSIZE];
        sb.encode(&mut block);
        assert!(block[40..Superblock::SIZE].iter().all(|&b| b == 0));
        assert_eq!(block[Superblock::SIZE], 0xaa, "encode wrote past its size");
        assert_eq!(&block[..4], b"RXFX");
        assert_eq!(Superblock::decode(&block), Ok(sb));
        assert_eq!(
            Superblock::decode(&block[..63]),
            Err(FormatError::Short { what: "superblock", need: 64, got: 63 })
        );
    }

    #[test]
    fn validate_rejects_each_corruption() {
        let good = sb();
        let bad = |f: fn(&mut Superblock)| {
            let mut s = good;
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert_eq!(bad(|s| s.magic = 0x1234_5678), FormatError::BadMagic(0x1234_5678));
        assert_eq!(bad(|s| s.version = 2), FormatError::BadVersion(2));
        assert!(matches!(bad(|s| s.logstart = 1), FormatError::Overlap { second: "log", .. }));
        assert_eq!(bad(|s| s.nlog = 10), FormatError::LogTooSmall(10));
        assert!(matches!(
            bad(|s| s.inodestart = 100),
            FormatError::Overlap { first: "log", second: "inode", .. }
        ));
        assert!(matches!(
            bad(|s| s.ninodes = 5000),
            FormatError::Overlap { first: "inode", second: "bitmap", .. }
        ));
        assert!(matches!(
            bad(|s| s.bmapstart = s.datastart),
            FormatError::Overlap { first: "inode", .. }
                | FormatError::Overlap { first: "bitmap", .. }
        ));
        assert!(matches!(
            bad(|s| s.datastart = s.bmapstart),
            FormatError::Overlap { first: "bitmap", second: "data", .. }
        ));
        // The bitmap must cover the whole disk: a larger size needs a second bitmap block.
        assert!(matches!(
            bad(|s| {
                s.size = 40000;
                s.nblocks = 40000 - s.datastart;
            }),
            FormatError::Overlap { first: "bitmap", .. }
        ));
        assert!(matches!(bad(|s| s.nblocks += 1), FormatError::SizeMismatch { .. }));
        assert!(matches!(bad(|s| s.size -= 1), FormatError::SizeMismatch { .. }));
        assert_eq!(bad(|s| s.ninodes = 1), FormatError::TooFewInodes(1));
        assert!(matches!(
            bad(|s| {
                s.size = s.datastart;
                s.nblocks = 0;
            }),
            FormatError::TooSmall { .. }
        ));
        // Huge values overflow nothing.
        assert!(bad(|s| {
            s.logstart = u32::MAX;
            s.nlog = u32::MAX;
        })
        .to_string()
        .contains("overlaps"));
        assert!(matches!(
            bad(|s| {
                s.datastart = u32::MAX;
                s.nblocks = u32::MAX;
            }),
            FormatError::SizeMismatch { .. }
        ));
        assert!(bad(|s| s.ninodes = u32::MAX).to_string().contains("inode region"));
    }

    #[test]
    fn helpers() {
        let sb = sb();
        assert_eq!(inode_block(&sb, 0), None);
        assert_eq!(inode_block(&sb, 1), Some(131));
        assert_eq!(inode_block(&sb, 32), Some(132));
        assert_eq!(inode_block(&sb, 4095), Some(131 + 127));
        assert_eq!(inode_block(&sb, 4096), None);
        assert_eq!(inode_offset(33), 128);
        assert_eq!(bitmap_block(&sb, 0), Some(259));
        assert_eq!(bitmap_block(&sb, 32767), Some(259));
        assert_eq!(bitmap_block(&sb, 32768), None);
        assert_eq!(bitmap_bit(9), (1, 0b10));
        assert_eq!(bitmap_bit(BPB as u32 + 7), (0, 0x80));
        assert!(sb.is_data(260) && !sb.is_data(259) && !sb.is_data(32768));
        assert!(sb.is_loggable(131) && !sb.is_loggable(130));
    }

    #[test]
    fn block_paths() {
        assert_eq!(block_path(0), Some(BlockPath::Direct(0)));
        assert_eq!(block_path(11), Some(BlockPath::Direct(11)));
        assert_eq!(block_path(12), Some(BlockPath::Indirect(0)));
        assert_eq!(block_path(1035), Some(BlockPath::Indirect(1023)));
        assert_eq!(block_path(1036), Some(BlockPath::Double(0, 0)));
        assert_eq!(block_path(1036 + 1025), Some(BlockPath::Double(1, 1)));
        assert_eq!(block_path(MAX_FILE_BLOCKS as u64 - 1), Some(BlockPath::Double(1023, 1023)));
        assert_eq!(block_path(MAX_FILE_BLOCKS as u64), None);
        assert_eq!(block_path(u64::MAX), None);
        let mut block = [0u8; BSIZE];
        indirect_set(&mut block, 1023, 0xdead_beef);
        assert_eq!(indirect_get(&block, 1023), 0xdead_beef);
        assert_eq!(&block[4092..], &[0xef, 0xbe, 0xad, 0xde]);
    }

    #[test]
    fn kinds() {
        for k in [Kind::Free, Kind::Dir, Kind::File, Kind::Device] {
            assert_eq!(Kind::try_from(u16::from(k)), Ok(k));
        }
        assert_eq!(u16::from(Kind::Dir), 1);
        assert_eq!(u16::from(Kind::File), 2);
        assert_eq!(u16::from(Kind::Device), 3);
        assert_eq!(Kind::try_from(4), Err(FormatError::BadKind(4)));
        assert_eq!(Dinode { kind: 9, ..Dinode::default() }.kind(), Err(FormatError::BadKind(9)));
    }

    #[test]
    fn dinode_round_trip() {
        let mut d = Dinode::new(Kind::File);
        d.major = 3;
        d.minor = 0xfffe;
        d.nlink = 2;
        d.size = 0x1_2345_6789;
        for (i, a) in d.addrs.iter_mut().enumerate() {
            *a = 1000 + i as u32 * 0x0101_0101;
        }
        let mut buf = [0x55u8; 2 * DINODE_SIZE];
        d.encode(&mut buf);
        assert_eq!(buf[DINODE_SIZE], 0x55);
        assert!(buf[72..DINODE_SIZE].iter().all(|&b| b == 0));
        assert_eq!(&buf[..2], &[2, 0]);
        assert_eq!(&buf[8..16], &0x1_2345_6789u64.to_le_bytes());
        assert_eq!(Dinode::decode(&buf), Ok(d));
        assert!(Dinode::decode(&buf[..127]).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(validate_name(b""), Err(FormatError::EmptyName));
        assert_eq!(validate_name(&[b'a'; 61]), Err(FormatError::NameTooLong(61)));
        assert_eq!(validate_name(&[b'a'; 60]), Ok(()));
        assert_eq!(validate_name(b"a/b"), Err(FormatError::NameHasSlash));
        assert_eq!(validate_name(b"a\0b"), Err(FormatError::NameHasNul));
        assert_eq!(validate_name(b"."), Ok(()));
        assert_eq!(validate_name("héllo".as_bytes()), Ok(()));
        assert!(Dirent::new(5, b"/").is_err());
        assert!(Dirent::new(5, b"").is_err());
    }

    #[test]
    fn dirent_round_trip() {
        for name in [&b"."[..], b"..", b"README", &[b'x'; DIRSIZ]] {
            let d = Dirent::new(0x0102_0304, name).unwrap();
            assert_eq!(d.name(), name);
            assert_eq!(d.check(), Ok(()));
            let mut buf = [0xffu8; 70];
            d.encode(&mut buf);
            assert_eq!(buf[64], 0xff);
            assert_eq!(&buf[..4], &[4, 3, 2, 1]);
            assert_eq!(Dirent::decode(&buf), Ok(d));
        }
        let mut raw = [0u8; 64];
        raw[0] = 7;
        raw[4..7].copy_from_slice(b"abc");
        raw[9] = b'z'; // garbage after the NUL padding starts
        let d = Dirent::decode(&raw).unwrap();
        assert_eq!(d.name(), b"abc");
        assert_eq!(d.check(), Err(FormatError::NameHasNul));
        assert_eq!(Dirent::decode(&[0u8; 64]).unwrap().check(), Err(FormatError::EmptyName));
        assert!(Dirent::decode(&[0u8; 63]).is_err());
        assert!(Dirent::EMPTY.is_free());
    }

    #[test]
    fn log_header_round_trip() {
        let mut h = LogHeader::empty();
        let mut buf = [0u8; BSIZE];
        h.encode(&mut buf);
        assert_eq!(&buf[..4], b"RLOG");
        assert_eq!(LogHeader::decode(&buf), Ok(h));
        h.n = 3;
        h.blocks[..3].copy_from_slice(&[300, 131, 259]);
        h.blocks[LOG_DATA - 1] = 42;
        h.checksum = 0xfeed_f00d;
        h.encode(&mut buf);
        assert_eq!(LogHeader::decode(&buf), Ok(h));
        assert_eq!(h.targets(), &[300, 131, 259]);
        assert!(LogHeader::decode(&buf[..LogHeader::SIZE - 1]).is_err());
    }

    #[test]
    fn log_header_validation() {
        let sb = sb();
        assert_eq!(LogHeader::empty().validate(&sb), Ok(()));
        let mut h = LogHeader::empty();
        h.magic = 0;
        assert_eq!(h.validate(&sb), Err(FormatError::LogBadMagic(0)));
        let mut h = LogHeader::empty();
        h.n = LOG_DATA as u32 + 1;
        assert_eq!(h.validate(&sb), Err(FormatError::LogTooLong(129)));
        assert_eq!(h.targets().len(), LOG_DATA);
        h.n = 2;
        h.blocks[0] = sb.inodestart;
        h.blocks[1] = sb.inodestart - 1; // a log block
        assert_eq!(h.validate(&sb), Err(FormatError::LogBadTarget { index: 1, block: 130 }));
        h.blocks[1] = sb.size;
        assert!(h.validate(&sb).is_err());
        h.blocks[1] = sb.size - 1;
        assert_eq!(h.validate(&sb), Ok(()));
    }

    #[test]
    fn crc32_known_vectors() {
        assert_eq!(crc32(0, b""), 0);
        assert_eq!(crc32(0, b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(0, b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
        assert_eq!(crc32(0, &[0u8; 32]), 0x190a_55ad);
        // Incremental use gives the same result.
        assert_eq!(crc32(crc32(0, b"1234"), b"56789"), 0xcbf4_3926);
    }

    /// The eight-byte steps agree with the definition, one byte at a time, at every length
    /// and split point.
    #[test]
    fn crc32_matches_the_bytewise_definition() {
        fn bytewise(crc: u32, bytes: &[u8]) -> u32 {
            let mut c = !crc;
            for &b in bytes {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 != 0 { (c >> 1) ^ CRC_POLY } else { c >> 1 };
                }
            }
            !c
        }
        let data: Vec<u8> =
            (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(crc32(0, &data[..len]), bytewise(0, &data[..len]), "length {len}");
        }
        for split in 0..40 {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32(crc32(7, a), b), bytewise(bytewise(7, a), b), "split {split}");
        }
    }

    #[test]
    fn log_checksum() {
        let targets = [300u32, 301];
        let a = [1u8; BSIZE];
        let b = [2u8; BSIZE];
        let whole = LogHeader::checksum_of(&targets, [&a, &b]);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&300u32.to_le_bytes());
        bytes.extend_from_slice(&301u32.to_le_bytes());
        bytes.extend_from_slice(&a);
        bytes.extend_from_slice(&b);
        assert_eq!(whole, crc32(0, &bytes));
        let inc = crc32(crc32(LogHeader::checksum_begin(&targets), &a), &b);
        assert_eq!(inc, whole);
        assert_ne!(LogHeader::checksum_of(&targets, [&b, &a]), whole);
        let vecs: Vec<Vec<u8>> = std::vec![a.to_vec(), b.to_vec()];
        assert_eq!(LogHeader::checksum_of(&targets, &vecs), whole);
        assert_eq!(LogHeader::checksum_of(&[], core::iter::empty::<&[u8]>()), 0);
    }
}
