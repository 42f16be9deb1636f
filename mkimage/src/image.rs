//! Building a fresh file system image on the host (`mkimage image`).
//!
//! A [`Builder`] collects a tree of directories and files in memory; [`Builder::write`] lays
//! it out (inode numbers in depth-first order from the root, data blocks allocated in order from
//! `datastart`) and writes a sparse image file: only blocks that are not all zero are written.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use abi::fs::{
    block_path, indirect_set, inode_offset, validate_name, BlockPath, Dinode, Dirent, Kind,
    LogHeader, Superblock, BSIZE, DIRENT_SIZE, DOUBLE_INDIRECT, INDIRECT, IPB, MAX_FILE_BLOCKS,
    NDIRECT, ROOT_INO, SUPERBLOCK_BLOCK,
};

use crate::error::{Error, Result};

/// Default size of `mkimage image`: 128 MiB.
pub const DEFAULT_SIZE_MB: u64 = 128;
/// Default number of inodes of `mkimage image` (inode 0 included).
pub const DEFAULT_INODES: u32 = 4096;

/// The default image path: `target/fs.img` in the workspace.
pub fn default_path() -> PathBuf {
    crate::build::workspace_root().join("target").join("fs.img")
}

#[derive(Clone, Debug)]
enum Node {
    Dir(BTreeMap<Vec<u8>, Node>),
    File(Vec<u8>),
}

/// A file system image being put together.
#[derive(Clone, Debug)]
pub struct Builder {
    sb: Superblock,
    root: BTreeMap<Vec<u8>, Node>,
}

/// What [`Builder::write`] made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The superblock written.
    pub superblock: Superblock,
    /// Inodes in use (directories and files).
    pub inodes: u32,
    /// Data blocks in use (contents and indirect blocks).
    pub data_blocks: u32,
}

fn other(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

/// Splits an image path into validated names: absolute or relative to the root, no `.` or
/// `..`, each name valid for the file system.
fn split(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for c in path.split('/').filter(|c| !c.is_empty()) {
        if c == "." || c == ".." {
            return Err(other(format!("{path:?}: '.' and '..' are not allowed in image paths")));
        }
        validate_name(c.as_bytes()).map_err(|e| other(format!("{path:?}: {c:?}: {e}")))?;
        names.push(c.as_bytes().to_vec());
    }
    Ok(names)
}

impl Builder {
    /// An empty file system (just the root directory) of `size_bytes` (a multiple of the block
    /// size) with `ninodes` inodes, inode 0 included.
    pub fn new(size_bytes: u64, ninodes: u32) -> Result<Builder> {
        if !size_bytes.is_multiple_of(BSIZE as u64) {
            return Err(other(format!(
                "image size {size_bytes} is not a multiple of the block size {BSIZE}"
            )));
        }
        let blocks = u32::try_from(size_bytes / BSIZE as u64)
            .map_err(|_| other(format!("image size {size_bytes} bytes is too large")))?;
        let sb = Superblock::layout(blocks, ninodes)
            .map_err(|e| other(format!("cannot lay out the file system: {e}")))?;
        Ok(Builder { sb, root: BTreeMap::new() })
    }

    /// The file system of `mkimage image`: a README, `/bin`, `/etc` and a small web site in
    /// `/www`.
    pub fn standard(size_bytes: u64, ninodes: u32) -> Result<Builder> {
        let mut b = Builder::new(size_bytes, ninodes)?;
        for (path, contents) in STANDARD_FILES {
            b.add_file(path, contents.as_bytes())?;
        }
        b.add_dir("/bin")?;
        Ok(b)
    }

    /// The superblock the image will have.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Walks to the directory holding the last name of `names`, creating directories on the
    /// way.
    fn parent_mut<'a>(
        &'a mut self,
        path: &str,
        names: &[Vec<u8>],
    ) -> Result<&'a mut BTreeMap<Vec<u8>, Node>> {
        let mut dir = &mut self.root;
        for name in &names[..names.len().saturating_sub(1)] {
            let node = dir.entry(name.clone()).or_insert_with(|| Node::Dir(BTreeMap::new()));
            match node {
                Node::Dir(children) => dir = children,
                Node::File(_) => {
                    return Err(other(format!(
                        "{path:?}: {:?} is a file, not a directory",
                        String::from_utf8_lossy(name)
                    )))
                }
            }
        }
        Ok(dir)
    }

    /// Adds a directory, and its parents where missing (an existing directory is fine).
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        let names = split(path)?;
        let Some(last) = names.last().cloned() else {
            return Ok(()); // the root
        };
        let parent = self.parent_mut(path, &names)?;
        match parent.entry(last).or_insert_with(|| Node::Dir(BTreeMap::new())) {
            Node::Dir(_) => Ok(()),
            Node::File(_) => Err(other(format!("{path:?} is already a file"))),
        }
    }

    /// Adds a file with the given contents, creating missing parent directories; replaces a
    /// file already there.
    pub fn add_file(&mut self, path: &str, contents: impl Into<Vec<u8>>) -> Result<()> {
        let names = split(path)?;
        let Some(last) = names.last().cloned() else {
            return Err(other(format!("{path:?}: the root is a directory")));
        };
        let contents = contents.into();
        if contents.len().div_ceil(BSIZE) > MAX_FILE_BLOCKS {
            return Err(other(format!("{path:?}: {} bytes is too large a file", contents.len())));
        }
        let parent = self.parent_mut(path, &names)?;
        if let Some(Node::Dir(_)) = parent.get(&last) {
            return Err(other(format!("{path:?} is already a directory")));
        }
        parent.insert(last, Node::File(contents));
        Ok(())
    }

    /// Lays out the file system and writes the image to `path` (through a temporary file
    /// renamed into place, so that a failed write leaves no half image behind).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<Summary> {
        let path = path.as_ref();
        let layout = self.lay_out()?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let result = layout.write_to(&tmp).and_then(|()| {
            fs::rename(&tmp, path).map_err(|e| {
                Error::io(format!("renaming {} to {}", tmp.display(), path.display()), e)
            })
        });
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|()| layout.summary)
    }

    /// Assigns inodes and blocks; everything but the writing.
    fn lay_out(&self) -> Result<Layout<'_>> {
        let sb = self.sb;
        // Inodes in depth-first order: (contents, kind, nlink). Directory contents are built
        // once every child has its number.
        let mut inodes: Vec<(Contents<'_>, Kind, u16)> = Vec::new();
        number(&self.root, ROOT_INO, ROOT_INO, &mut inodes)?;
        let used_inodes = inodes.len() as u32;
        if u64::from(used_inodes) + 1 > u64::from(sb.ninodes) {
            return Err(other(format!(
                "the tree needs {} inodes, the image has {} (use a larger --inodes)",
                used_inodes + 1,
                sb.ninodes
            )));
        }
        let mut next = sb.datastart;
        let mut alloc = |what: &str| -> Result<u32> {
            if next >= sb.size {
                return Err(other(format!(
                    "the image is full while placing {what}: {} data blocks are not enough \
                     (use a larger --size-mb)",
                    sb.nblocks
                )));
            }
            next += 1;
            Ok(next - 1)
        };
        let mut dinodes = Vec::with_capacity(inodes.len());
        let mut meta: Vec<(u32, Box<[u8; BSIZE]>)> = Vec::new();
        let mut data: Vec<(u32, &[u8])> = Vec::new();
        for (i, (contents, kind, nlink)) in inodes.iter().enumerate() {
            let inum = ROOT_INO + i as u32;
            let what = format!("inode {inum}");
            let bytes: &[u8] = match contents {
                Contents::Borrowed(b) => b,
                Contents::Owned(v) => v,
            };
            let mut d = Dinode::new(*kind);
            d.nlink = *nlink;
            d.size = bytes.len() as u64;
            let mut indirect: Option<(u32, Box<[u8; BSIZE]>)> = None;
            let mut double: Option<(u32, Box<[u8; BSIZE]>)> = None;
            let mut level2: Option<(u32, Box<[u8; BSIZE]>)> = None;
            for (n, chunk) in bytes.chunks(BSIZE).enumerate() {
                let path = block_path(n as u64).ok_or_else(|| other(format!("{what} too big")))?;
                let b = alloc(&what)?;
                match path {
                    BlockPath::Direct(k) => d.addrs[k] = b,
                    BlockPath::Indirect(k) => {
                        let (_, blk) = indirect.get_or_insert_with(|| (0, Box::new([0; BSIZE])));
                        indirect_set(blk, k, b);
                    }
                    BlockPath::Double(k, j) => {
                        if j == 0 {
                            if let Some(done) = level2.take() {
                                meta.push(done);
                            }
                            let l2 = alloc(&what)?;
                            let (_, dbl) = double.get_or_insert_with(|| (0, Box::new([0; BSIZE])));
                            indirect_set(dbl, k, l2);
                            level2 = Some((l2, Box::new([0; BSIZE])));
                        }
                        if let Some((_, blk)) = level2.as_mut() {
                            indirect_set(blk, j, b);
                        }
                    }
                }
                match contents {
                    // File contents are written straight from the builder's buffers.
                    Contents::Borrowed(all) => {
                        let start = n * BSIZE;
                        data.push((b, &all[start..start + chunk.len()]));
                    }
                    Contents::Owned(_) => {
                        let mut blk = Box::new([0u8; BSIZE]);
                        blk[..chunk.len()].copy_from_slice(chunk);
                        meta.push((b, blk));
                    }
                }
            }
            if let Some(done) = level2.take() {
                meta.push(done);
            }
            // The indirect blocks come after the data they map.
            if let Some((_, blk)) = indirect {
                let b = alloc(&what)?;
                d.addrs[INDIRECT] = b;
                meta.push((b, blk));
            }
            if let Some((_, blk)) = double {
                let b = alloc(&what)?;
                d.addrs[DOUBLE_INDIRECT] = b;
                meta.push((b, blk));
            }
            debug_assert!(d.addrs[..NDIRECT].iter().all(|&a| a == 0 || a >= sb.datastart));
            dinodes.push(d);
        }
        let data_blocks = next - sb.datastart;
        Ok(Layout {
            sb,
            dinodes,
            meta,
            data,
            used_blocks: next,
            summary: Summary { superblock: sb, inodes: used_inodes, data_blocks },
        })
    }
}

/// The contents of an inode: a file's bytes (borrowed from the builder) or a directory's
/// entries (made by the layout).
enum Contents<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

/// Numbers the directory `children` (inode `inum`, parent `parent`) and everything below it in
/// depth-first order, appending to `inodes`; `inodes[inum - 1]` is the directory itself.
fn number<'a>(
    children: &'a BTreeMap<Vec<u8>, Node>,
    inum: u32,
    parent: u32,
    inodes: &mut Vec<(Contents<'a>, Kind, u16)>,
) -> Result<()> {
    debug_assert_eq!(inodes.len() as u32 + ROOT_INO, inum);
    let subdirs = children.values().filter(|n| matches!(n, Node::Dir(_))).count();
    // Its entry in the parent (or, for the root, its own `..`) and each subdirectory's `..`.
    let nlink = u16::try_from(1 + subdirs)
        .map_err(|_| other(format!("directory inode {inum}: too many subdirectories")))?;
    inodes.push((Contents::Owned(Vec::new()), Kind::Dir, nlink));
    let mut entries = vec![(b".".to_vec(), inum), (b"..".to_vec(), parent)];
    for (name, node) in children {
        let child = ROOT_INO + inodes.len() as u32;
        entries.push((name.clone(), child));
        match node {
            Node::Dir(grandchildren) => number(grandchildren, child, inum, inodes)?,
            Node::File(bytes) => inodes.push((Contents::Borrowed(bytes), Kind::File, 1)),
        }
    }
    let mut bytes = vec![0u8; entries.len() * DIRENT_SIZE];
    for ((name, child), out) in entries.iter().zip(bytes.chunks_exact_mut(DIRENT_SIZE)) {
        let e = Dirent::new(*child, name).map_err(|e| other(format!("{name:?}: {e}")))?;
        e.encode(out);
    }
    inodes[(inum - ROOT_INO) as usize].0 = Contents::Owned(bytes);
    Ok(())
}

/// A laid-out file system, ready to write.
struct Layout<'a> {
    sb: Superblock,
    /// Inode `ROOT_INO + i` is `dinodes[i]`.
    dinodes: Vec<Dinode>,
    /// Indirect blocks and directory contents.
    meta: Vec<(u32, Box<[u8; BSIZE]>)>,
    /// File and directory contents, a block (the last one possibly short) at a time.
    data: Vec<(u32, &'a [u8])>,
    /// Blocks `0 .. used_blocks` are in use.
    used_blocks: u32,
    summary: Summary,
}

impl Layout<'_> {
    fn write_to(&self, path: &Path) -> Result<()> {
        let io = |what: &str, e: io::Error| Error::io(format!("{}: {what}", path.display()), e);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| io("creating", e))?;
        // A sparse file of the full size: the blocks never written read as zeros.
        file.set_len(u64::from(self.sb.size) * BSIZE as u64).map_err(|e| io("set_len", e))?;
        let put = |file: &File, b: u32, bytes: &[u8]| -> Result<()> {
            if bytes.iter().all(|&x| x == 0) {
                return Ok(());
            }
            file.write_all_at(bytes, u64::from(b) * BSIZE as u64)
                .map_err(|e| io(&format!("writing block {b}"), e))
        };

        let mut block = [0u8; BSIZE];
        self.sb.encode(&mut block);
        put(&file, SUPERBLOCK_BLOCK, &block)?;

        let mut block = [0u8; BSIZE];
        LogHeader::empty().encode(&mut block);
        put(&file, self.sb.logstart, &block)?;

        // Inode blocks: only those holding used inodes are not zero.
        let last_inum = ROOT_INO + self.dinodes.len() as u32 - 1;
        for ib in 0..=(last_inum as usize / IPB) {
            let mut block = [0u8; BSIZE];
            for slot in 0..IPB {
                let inum = (ib * IPB + slot) as u32;
                if let Some(d) =
                    inum.checked_sub(ROOT_INO).and_then(|i| self.dinodes.get(i as usize))
                {
                    d.encode(&mut block[inode_offset(inum)..]);
                }
            }
            put(&file, self.sb.inodestart + ib as u32, &block)?;
        }

        // Bitmap: blocks 0 .. used_blocks (metadata, then the data allocated in order).
        let mut bitmap = vec![0u8; self.sb.bitmap_blocks() as usize * BSIZE];
        let used = self.used_blocks as usize;
        bitmap[..used / 8].fill(0xff);
        if !used.is_multiple_of(8) {
            bitmap[used / 8] = (1u8 << (used % 8)) - 1;
        }
        for (i, chunk) in bitmap.chunks(BSIZE).enumerate() {
            put(&file, self.sb.bmapstart + i as u32, chunk)?;
        }

        for (b, blk) in &self.meta {
            put(&file, *b, &blk[..])?;
        }
        for (b, bytes) in &self.data {
            put(&file, *b, bytes)?;
        }
        file.sync_all().map_err(|e| io("sync", e))
    }
}

/// The page of the demo's container `$name`, published on `$port`.
macro_rules! demo_page {
    ($name:literal, $port:literal) => {
        concat!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>"#,
            $name,
            r#" on rustix</title>
</head>
<body>
  <h1>"#,
            $name,
            r#"</h1>
  <p>This page comes from the container <code>"#,
            $name,
            r#"</code>: its own httpd, in its own pid, file and network namespaces, its port 80
  published on the machine's port "#,
            $port,
            r#".</p>
</body>
</html>
"#
        )
    };
}

/// The built-in files of `mkimage image` (path, contents); `/bin` is created empty besides.
pub const STANDARD_FILES: &[(&str, &str)] = &[
    ("/README", README),
    ("/etc/motd", "Welcome to rustix, an xv6-style kernel in Rust driven by an async executor.\n"),
    ("/etc/hostname", "rustix\n"),
    ("/www/index.html", INDEX_HTML),
    ("/www/about.html", ABOUT_HTML),
    ("/www/style.css", STYLE_CSS),
    ("/www/docs/filesystem.html", FS_HTML),
];

/// What `mkimage image --demo` adds for `make demo`: the boot script `/etc/rc`, which init
/// runs before the shell, and a page for each of its three web containers.
pub const DEMO_FILES: &[(&str, &str)] = &[
    ("/etc/rc", DEMO_RC),
    ("/www/web1/index.html", demo_page!("web1", "8081")),
    ("/www/web2/index.html", demo_page!("web2", "8082")),
    ("/www/web3/index.html", demo_page!("web3", "8083")),
];

/// Each container gets its own pid, file and network namespaces (`spawn`'s default), a name,
/// its port 80 published on the machine's 8081 to 8083 (which `make demo` forwards from the
/// host), its page directory copied into its root as `/www`, and then its httpd, started
/// inside with `ns exec -d` (httpd wants its directory there when it starts).
const DEMO_RC: &str = "\
# /etc/rc: init runs this script with sh at boot, before the shell on the console.
# Edit it to change what starts; a line that fails does not stop the boot.
#
# Three containers, web1 to web3, each with its own processes, files and network, its port
# 80 published on the machine's ports 8081 to 8083. Each gets its own /www (a copy of
# /www/webN), then httpd runs inside it (quiet: no line per request on the console).
spawn --name web1 -d -p 8081:80
nspcopy -r /www/web1 web1 /www
ns exec -d web1 httpd -q 80 0.0.0.0 /www
spawn --name web2 -d -p 8082:80
nspcopy -r /www/web2 web2 /www
ns exec -d web2 httpd -q 80 0.0.0.0 /www
spawn --name web3 -d -p 8083:80
nspcopy -r /www/web3 web3 /www
ns exec -d web3 httpd -q 80 0.0.0.0 /www
echo 'demo: three containers serve their own page (ns lists them):'
echo '  http://127.0.0.1:8081/'
echo '  http://127.0.0.1:8082/'
echo '  http://127.0.0.1:8083/'
";

const README: &str = "\
rustix
======

A small Unix-like teaching kernel for x86_64, written in Rust and driven by an async/await
executor: interrupt handlers only wake tasks, and the CPU halts whenever nothing is ready.

This disk holds its file system:

  /README        this file
  /bin           the programs: init, sh, ls, cat, grep, ps, ... (usertests checks the kernel)
  /etc/motd      the message of the day
  /etc/hostname  the machine's name
  /www           a small web site, for the network issue to serve

The on-disk format is defined once, in the crate `abi` (module abi::fs), and checked on the host
with `mkimage fsck`.
";

const INDEX_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>rustix</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <h1>rustix</h1>
  <p>A teaching kernel in Rust, served from its own file system.</p>
  <ul>
    <li><a href="/about.html">About this kernel</a></li>
    <li><a href="/docs/filesystem.html">How the file system is laid out</a></li>
  </ul>
</body>
</html>
"#;

const ABOUT_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>About rustix</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <h1>About</h1>
  <p>rustix is an xv6-style kernel for x86_64. Its kernel tasks are Rust futures polled by a
  cooperative executor; interrupts only wake them.</p>
  <p><a href="/index.html">Home</a></p>
</body>
</html>
"#;

const STYLE_CSS: &str = "\
body { font-family: sans-serif; max-width: 40em; margin: 2em auto; color: #222; }
h1 { border-bottom: 1px solid #ccc; }
a { color: #a33; }
code { background: #eee; padding: 0 0.2em; }
";

const FS_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>The rustix file system</title>
  <link rel="stylesheet" href="/style.css">
</head>
<body>
  <h1>The file system</h1>
  <p>Blocks of 4096 bytes: a boot block, the superblock, a write-ahead log, the inodes, the
  free-block bitmap, then data. Every change goes through the log, so a crash leaves either
  the old or the new state.</p>
  <p><a href="/index.html">Home</a></p>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        let mut b = Builder::new(1 << 20, 64).unwrap();
        assert!(b.add_file("/", "x").is_err());
        assert!(b.add_file("/a/../b", "x").is_err());
        assert!(b.add_file(&format!("/{}", "n".repeat(61)), "x").is_err());
        b.add_file("/a/b", "x").unwrap();
        assert!(b.add_file("/a/b/c", "x").unwrap_err().to_string().contains("is a file"));
        assert!(b.add_dir("/a/b").is_err());
        assert!(b.add_file("/a", "x").unwrap_err().to_string().contains("already a directory"));
        b.add_file("a/b", "replaced").unwrap();
        b.add_dir("/a").unwrap();
        b.add_dir("/").unwrap();
    }

    #[test]
    fn sizes_are_checked() {
        assert!(Builder::new(1000, 64).is_err());
        assert!(Builder::new(4096 * 10, 64).unwrap_err().to_string().contains("too small"));
        assert!(Builder::new(1 << 20, 1).is_err());
        let mut b = Builder::new(4096 * 140, 64).unwrap(); // 140 - 134 = 6 data blocks
        b.add_file("/big", vec![1u8; 6 * BSIZE]).unwrap();
        let dir = std::env::temp_dir().join(format!("mkimage-full-{}", std::process::id()));
        let err = b.write(&dir).unwrap_err().to_string();
        assert!(err.contains("full"), "{err}");
        assert!(!dir.exists());
        let mut b = Builder::new(1 << 20, 3).unwrap();
        b.add_file("/a", "").unwrap();
        b.add_file("/b", "").unwrap();
        assert!(b.lay_out().err().unwrap().to_string().contains("inodes"));
    }

    #[test]
    fn layout_numbers_depth_first() {
        let mut b = Builder::new(8 << 20, 64).unwrap();
        b.add_file("/z", "zz").unwrap();
        b.add_file("/d/f", vec![7u8; BSIZE * 13 + 1]).unwrap();
        let l = b.lay_out().unwrap();
        // 1 = /, 2 = /d, 3 = /d/f, 4 = /z
        assert_eq!(l.dinodes.len(), 4);
        assert_eq!(l.dinodes[0].nlink, 2);
        assert_eq!(l.dinodes[1].nlink, 1);
        assert_eq!(l.dinodes[2].size, BSIZE as u64 * 13 + 1);
        assert_ne!(l.dinodes[2].addrs[INDIRECT], 0);
        assert_eq!(l.dinodes[2].addrs[DOUBLE_INDIRECT], 0);
        assert_eq!(l.dinodes[3].kind, Kind::File as u16);
        // root dir block, /d dir block, 14 data + 1 indirect, /z
        assert_eq!(l.summary.data_blocks, 1 + 1 + 15 + 1);
    }
}
