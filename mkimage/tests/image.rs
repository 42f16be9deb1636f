//! File system images on the host: build one, check it clean, read every file back (library
//! and command line), then corrupt copies one way at a time and check that fsck names each
//! corruption. No kernel and no QEMU needed.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use abi::fs::{
    bitmap_bit, bitmap_block, inode_block, inode_offset, Dinode, Dirent, Kind, LogHeader,
    Superblock, BSIZE, DIRENT_SIZE, DOUBLE_INDIRECT, INDIRECT, LOG_MAGIC, NDIRECT, NINDIRECT,
};
use common::mkimage_cli;
use mkimage::console::TempDir;
use mkimage::fsck::{self, ProblemKind, Report};
use mkimage::image::{Builder, STANDARD_FILES};
use mkimage::imgread::{Image, ReadError};
use testkit::Rng;

/// A scratch directory (removed when dropped) with named files in it.
struct Scratch(TempDir);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(TempDir::new(&format!("mkimage-test-{name}")).unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Deterministic pseudo-random bytes.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// Bigger than the direct and single indirect blocks together: needs the double indirect.
const BIG_LEN: usize = 5 << 20;
const _: () = assert!(BIG_LEN / BSIZE > NDIRECT + NINDIRECT);

/// The extra files the test images carry besides the built-in ones.
fn extra_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("/data/big.bin", pseudo_random(BIG_LEN, 7)),
        // Exactly the direct blocks plus one indirect one, and a partial last block.
        ("/data/mid.bin", pseudo_random((NDIRECT + 1) * BSIZE + 100, 8)),
        ("/data/empty", Vec::new()),
        ("/data/deep/er/file.txt", b"deep\n".to_vec()),
        ("/etc/motd", b"replaced motd\n".to_vec()),
    ]
}

/// Every file the test image holds, with its contents.
fn all_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = STANDARD_FILES
        .iter()
        .map(|(p, c)| (p.to_string(), c.as_bytes().to_vec()))
        .filter(|(p, _)| p != "/etc/motd")
        .collect();
    files.extend(extra_files().into_iter().map(|(p, c)| (p.to_string(), c)));
    files
}

/// Builds the standard image plus the extra files (16 MiB, 256 inodes).
fn build(path: &Path) {
    let mut b = Builder::standard(16 << 20, 256).unwrap();
    for (p, c) in extra_files() {
        b.add_file(p, c).unwrap();
    }
    let summary = b.write(path).unwrap();
    assert_eq!(summary.superblock.size, 4096);
}

fn check(path: &Path) -> Report {
    fsck::check(path).unwrap()
}

fn assert_clean(path: &Path) {
    let r = check(path);
    assert!(r.is_clean(), "{r}");
}

/// `report` has a problem of `kind` (and the message names what it is about).
fn assert_found(report: &Report, kind: ProblemKind, mentions: &str) {
    let found: Vec<_> = report.of_kind(kind).collect();
    assert!(!found.is_empty(), "no {kind:?} problem in:\n{report}");
    assert!(
        found.iter().any(|p| p.message.contains(mentions)),
        "no {kind:?} problem mentions {mentions:?}:\n{report}"
    );
    assert!(!report.is_clean());
    let summary = report.summary();
    assert!(summary.starts_with("fsck: ") && summary.contains(" problem"), "{summary}");
}

/// Raw block access for corrupting an image.
struct Raw {
    file: fs::File,
    sb: Superblock,
}

impl Raw {
    fn open(path: &Path) -> Raw {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut r = Raw { file, sb: Superblock::default() };
        r.sb = Superblock::decode(&r.read(1)).unwrap();
        r
    }

    fn read(&self, b: u32) -> Vec<u8> {
        let mut buf = vec![0u8; BSIZE];
        self.file.read_exact_at(&mut buf, u64::from(b) * BSIZE as u64).unwrap();
        buf
    }

    fn write(&self, b: u32, data: &[u8]) {
        assert_eq!(data.len(), BSIZE);
        self.file.write_all_at(data, u64::from(b) * BSIZE as u64).unwrap();
    }

    fn inode(&self, inum: u32) -> Dinode {
        let blk = self.read(inode_block(&self.sb, inum).unwrap());
        Dinode::decode(&blk[inode_offset(inum)..]).unwrap()
    }

    fn set_inode(&self, inum: u32, d: &Dinode) {
        let b = inode_block(&self.sb, inum).unwrap();
        let mut blk = self.read(b);
        d.encode(&mut blk[inode_offset(inum)..]);
        self.write(b, &blk);
    }

    fn set_bit(&self, block: u32, on: bool) {
        let b = bitmap_block(&self.sb, block).unwrap();
        let mut blk = self.read(b);
        let (byte, mask) = bitmap_bit(block);
        if on {
            blk[byte] |= mask;
        } else {
            blk[byte] &= !mask;
        }
        self.write(b, &blk);
    }

    fn bit(&self, block: u32) -> bool {
        let (byte, mask) = bitmap_bit(block);
        self.read(bitmap_block(&self.sb, block).unwrap())[byte] & mask != 0
    }

    /// Rewrites directory entry `slot` (in the directory's first block).
    fn set_dirent(&self, dir: u32, slot: usize, e: &Dirent) {
        let b = self.inode(dir).addrs[0];
        let mut blk = self.read(b);
        e.encode(&mut blk[slot * DIRENT_SIZE..]);
        self.write(b, &blk);
    }

    fn dirent(&self, dir: u32, slot: usize) -> Dirent {
        let b = self.inode(dir).addrs[0];
        Dirent::decode(&self.read(b)[slot * DIRENT_SIZE..]).unwrap()
    }

    /// A free inode number.
    fn free_inode(&self) -> u32 {
        (2..self.sb.ninodes).rev().find(|&i| self.inode(i).kind == 0).unwrap()
    }

    /// A data block nothing uses.
    fn free_block(&self) -> u32 {
        (self.sb.datastart..self.sb.size).rev().find(|&b| !self.bit(b)).unwrap()
    }
}

fn lookup(path: &Path, name: &str) -> u32 {
    Image::open(path).unwrap().lookup(name).unwrap()
}

/// A fresh copy of the test image, ready to corrupt.
fn fresh(s: &Scratch, name: &str) -> (PathBuf, Raw) {
    let path = s.path(name);
    build(&path);
    assert_clean(&path);
    let raw = Raw::open(&path);
    (path, raw)
}

#[test]
fn built_image_is_clean_and_every_file_reads_back() {
    let s = Scratch::new("clean");
    let path = s.path("fs.img");
    build(&path);
    let report = check(&path);
    assert!(report.is_clean(), "{report}");
    assert!(report.warnings.is_empty(), "{report}");
    // 1 root + README + bin + etc(+2) + www(+3, docs(+1)) + data(+3, deep, er, file) = 19
    assert_eq!(report.inodes, 19, "{report}");
    assert_eq!(
        report.summary(),
        format!("fsck: clean (19 inodes, {} data blocks in use)", report.data_blocks)
    );

    let img = Image::open(&path).unwrap();
    for (p, contents) in all_files() {
        assert!(img.read_file(&p).unwrap() == contents, "{p} differs");
    }
    // The big file really uses the double indirect block.
    let big = img.lookup("/data/big.bin").unwrap();
    let (_, d) = img.inode(big).unwrap();
    assert_ne!(d.addrs[INDIRECT], 0);
    assert_ne!(d.addrs[DOUBLE_INDIRECT], 0);
    let (_, empty) = img.inode(img.lookup("/data/empty").unwrap()).unwrap();
    assert_eq!(empty.addrs, [0; NDIRECT + 2]);

    let names = |dir: &str| -> Vec<String> {
        img.list_dir(dir).unwrap().into_iter().map(|e| e.name).collect()
    };
    assert_eq!(names("/"), [".", "..", "README", "bin", "data", "etc", "www"]);
    assert_eq!(names("/bin"), [".", ".."]);
    assert_eq!(names("/etc"), [".", "..", "hostname", "motd"]);
    assert_eq!(names("/www"), [".", "..", "about.html", "docs", "index.html", "style.css"]);
    assert_eq!(names("/www/docs"), [".", "..", "filesystem.html"]);
    let root = img.list_dir("/").unwrap();
    assert_eq!(root[0].inum, 1);
    assert_eq!(root[1].inum, 1, "the root's '..' is itself");
    assert_eq!(root[0].nlink, 5, "its own '..' and four subdirectories' '..'");
    let www = img.stat("/www").unwrap();
    assert_eq!((www.kind, www.nlink), (Kind::Dir, 2));
    let docs = img.list_dir("/www/docs").unwrap();
    assert_eq!(docs[1].inum, www.inum);
    assert_eq!(img.stat("/README").unwrap().kind, Kind::File);
    assert_eq!(img.read_file("/www/../README").unwrap(), img.read_file("/README").unwrap());

    assert!(matches!(img.read_file("/nope"), Err(ReadError::NotFound(p)) if p == "/nope"));
    assert!(matches!(img.read_file("/www"), Err(ReadError::IsADirectory(_))));
    assert!(matches!(img.list_dir("/README"), Err(ReadError::NotADirectory(_))));
    assert!(matches!(img.read_file("/README/x"), Err(ReadError::NotADirectory(_))));

    let index = String::from_utf8(img.read_file("/www/index.html").unwrap()).unwrap();
    assert!(index.contains("<title>") && index.contains("<a href="), "{index}");
}

#[test]
fn command_line_image_fsck_ls_cat() {
    let s = Scratch::new("cli");
    let big = pseudo_random(BIG_LEN + 123, 99);
    fs::write(s.path("big"), &big).unwrap();
    fs::write(s.path("note.txt"), "a note\n").unwrap();
    let img = s.path("fs.img");
    let img_s = img.to_str().unwrap();
    let add_big = format!("{}:/home/big.bin", s.path("big").display());
    let add_note = format!("{}:/note.txt", s.path("note.txt").display());
    let out = mkimage_cli(&[
        "image",
        "--out",
        img_s,
        "--size-mb",
        "32",
        "--inodes",
        "512",
        "--add",
        &add_big,
        "--add",
        &add_note,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(fs::metadata(&img).unwrap().len(), 32 << 20);
    // Written sparse: far fewer bytes allocated than the size (when the file system can).
    use std::os::unix::fs::MetadataExt;
    let allocated = fs::metadata(&img).unwrap().blocks() * 512;
    assert!(allocated < 16 << 20, "{allocated} bytes allocated");

    let out = mkimage_cli(&["fsck", img_s]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("fsck: clean ("), "{stdout}");
    assert!(stdout.trim_end().ends_with("data blocks in use)"), "{stdout}");

    let out = mkimage_cli(&["cat", img_s, "/home/big.bin"]);
    assert!(out.status.success());
    assert!(out.stdout == big, "cat of the big file differs");
    for (p, contents) in STANDARD_FILES {
        let out = mkimage_cli(&["cat", img_s, p]);
        assert!(out.status.success(), "{p}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), *contents, "{p}");
    }
    assert_eq!(mkimage_cli(&["cat", img_s, "/note.txt"]).stdout, b"a note\n");

    let out = mkimage_cli(&["ls", img_s]);
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 8, "{listing}");
    assert!(lines[0].starts_with("dir ") && lines[0].ends_with(" ."), "{listing}");
    for name in ["README", "bin", "etc", "home", "note.txt", "www"] {
        assert!(lines.iter().any(|l| l.ends_with(&format!(" {name}"))), "{name}: {listing}");
    }
    let readme = lines.iter().find(|l| l.ends_with(" README")).unwrap();
    let fields: Vec<&str> = readme.split_whitespace().collect();
    assert_eq!(fields[0], "file");
    assert_eq!(fields[2], "1", "nlink");
    assert_eq!(fields[3], STANDARD_FILES[0].1.len().to_string(), "size");

    let out = mkimage_cli(&["ls", img_s, "/home/big.bin"]);
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("file "), "{line}");
    assert!(line.trim_end().ends_with(&format!("{} /home/big.bin", big.len())), "{line}");

    let out = mkimage_cli(&["ls", img_s, "/www/docs"]);
    assert!(String::from_utf8(out.stdout).unwrap().contains(" filesystem.html\n"));

    for (args, message) in [
        (&["cat", img_s, "/missing"][..], "/missing: no such file or directory"),
        (&["cat", img_s, "/www"], "/www: is a directory"),
        (&["ls", img_s, "/etc/nothing/here"], "/etc/nothing: no such file or directory"),
        (&["ls", img_s, "/README/x"], "/README: not a directory"),
    ] {
        let out = mkimage_cli(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }

    let out = mkimage_cli(&["image", "--out", img_s, "--add", "/no/such/host/file:/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/host/file"));
    let out = mkimage_cli(&["image", "--out", img_s, "--size-mb", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too small"));
    // The failed runs left the good image alone.
    assert_clean(&img);
}

#[test]
fn fsck_finds_a_used_block_marked_free() {
    let s = Scratch::new("bitfree");
    let (path, raw) = fresh(&s, "a.img");
    let b = raw.inode(lookup(&path, "/README")).addrs[0];
    raw.set_bit(b, false);
    assert_found(&check(&path), ProblemKind::BitmapUnmarked, &format!("block {b}:"));
    // Metadata must be marked too.
    let (path, raw) = fresh(&s, "b.img");
    raw.set_bit(raw.sb.inodestart, false);
    assert_found(&check(&path), ProblemKind::BitmapUnmarked, "metadata");
}

#[test]
fn fsck_finds_a_free_block_marked_used() {
    let s = Scratch::new("bitused");
    let (path, raw) = fresh(&s, "a.img");
    let b = raw.free_block();
    raw.set_bit(b, true);
    let r = check(&path);
    assert_found(&r, ProblemKind::BitmapLeaked, &format!("block {b}:"));
    assert_eq!(r.problems.len(), 1, "{r}");
}

#[test]
fn fsck_finds_a_wrong_link_count() {
    let s = Scratch::new("nlink");
    let (path, raw) = fresh(&s, "a.img");
    let inum = lookup(&path, "/etc/hostname");
    let mut d = raw.inode(inum);
    d.nlink = 2;
    raw.set_inode(inum, &d);
    let r = check(&path);
    assert_found(&r, ProblemKind::LinkCount, "/etc/hostname");
    assert_eq!(r.problems.len(), 1, "{r}");
    // A directory's count includes its subdirectories' "..".
    let (path, raw) = fresh(&s, "b.img");
    let www = lookup(&path, "/www");
    let mut d = raw.inode(www);
    d.nlink = 1;
    raw.set_inode(www, &d);
    assert_found(&check(&path), ProblemKind::LinkCount, "nlink is 1, but entries naming it: 2");
}

#[test]
fn fsck_finds_an_entry_naming_a_free_inode() {
    let s = Scratch::new("freeinode");
    let (path, raw) = fresh(&s, "a.img");
    let etc = lookup(&path, "/etc");
    let free = raw.free_inode();
    // Slot 2 of /etc is "hostname"; point it at a free inode.
    let e = raw.dirent(etc, 2);
    assert_eq!(e.name(), b"hostname");
    raw.set_dirent(etc, 2, &Dirent::new(free, b"hostname").unwrap());
    let r = check(&path);
    assert_found(&r, ProblemKind::EntryFreeInode, &format!("/etc/hostname: names inode {free}"));
    // The real hostname inode is now unreachable.
    assert_found(&r, ProblemKind::Unreachable, &format!("inode {}", e.inum));
    // And an inode number past the end.
    let (path, raw) = fresh(&s, "b.img");
    raw.set_dirent(etc, 2, &Dirent::new(raw.sb.ninodes + 5, b"hostname").unwrap());
    assert_found(&check(&path), ProblemKind::EntryBadInum, "out of range");
}

#[test]
fn fsck_finds_a_block_used_twice() {
    let s = Scratch::new("dup");
    let (path, raw) = fresh(&s, "a.img");
    let readme = lookup(&path, "/README");
    let motd = lookup(&path, "/etc/motd");
    let shared = raw.inode(readme).addrs[0];
    let mut d = raw.inode(motd);
    let orphaned = d.addrs[0];
    d.addrs[0] = shared;
    raw.set_inode(motd, &d);
    let r = check(&path);
    assert_found(&r, ProblemKind::BlockDuplicate, &format!("block {shared}: used by inode"));
    // motd's old block is no longer used but still marked.
    assert_found(&r, ProblemKind::BitmapLeaked, &format!("block {orphaned}:"));
}

#[test]
fn fsck_finds_out_of_range_block_pointers() {
    let s = Scratch::new("range");
    for (i, target) in ["metadata", "past the end", "indirect entry"].into_iter().enumerate() {
        let (path, raw) = fresh(&s, &format!("{i}.img"));
        let big = lookup(&path, "/data/big.bin");
        let mut d = raw.inode(big);
        match target {
            "metadata" => d.addrs[3] = raw.sb.inodestart,
            "past the end" => d.addrs[3] = raw.sb.size + 1000,
            _ => {
                let ib = d.addrs[INDIRECT];
                let mut blk = raw.read(ib);
                blk[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
                raw.write(ib, &blk);
            }
        }
        raw.set_inode(big, &d);
        let r = check(&path);
        assert_found(&r, ProblemKind::BlockOutOfRange, "outside the data area");
        // Reading the file fails cleanly.
        let err = Image::open(&path).unwrap().read_file("/data/big.bin").unwrap_err();
        assert!(err.to_string().contains("outside the data area"), "{err}");
    }
}

#[test]
fn fsck_finds_block_pointers_beyond_the_size() {
    let s = Scratch::new("beyond");
    let (path, raw) = fresh(&s, "a.img");
    let inum = lookup(&path, "/etc/hostname");
    let mut d = raw.inode(inum);
    let b = raw.free_block();
    d.addrs[5] = b;
    raw.set_inode(inum, &d);
    raw.set_bit(b, true);
    let r = check(&path);
    assert_found(&r, ProblemKind::BlockBeyondSize, &format!("addrs[5] is block {b}"));
    assert_eq!(r.problems.len(), 1, "{r}");
}

#[test]
fn fsck_finds_a_bad_superblock() {
    let s = Scratch::new("super");
    let (path, raw) = fresh(&s, "a.img");
    let mut blk = raw.read(1);
    blk[0] ^= 0xff;
    raw.write(1, &blk);
    let r = check(&path);
    assert_found(&r, ProblemKind::Superblock, "magic");
    assert_eq!(r.problems.len(), 1, "nothing else is checked: {r}");
    let out = mkimage_cli(&["fsck", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("superblock: bad superblock magic"), "{stdout}");
    assert!(stdout.trim_end().ends_with("fsck: 1 problem"), "{stdout}");
    // ls and cat refuse it with a clear message.
    let out = mkimage_cli(&["ls", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("superblock: bad superblock magic"));

    // Overlapping regions.
    let (path, raw) = fresh(&s, "b.img");
    let mut sb = raw.sb;
    sb.bmapstart -= 1;
    let mut blk = raw.read(1);
    sb.encode(&mut blk);
    raw.write(1, &blk);
    assert_found(&check(&path), ProblemKind::Superblock, "overlaps");
}

/// Writes a log with `n` blocks of data; a valid checksum when `valid`.
fn write_log(raw: &Raw, n: usize, valid: bool) {
    let targets: Vec<u32> = (0..n as u32).map(|i| raw.sb.datastart + 100 + i).collect();
    let data: Vec<Vec<u8>> = (0..n).map(|i| pseudo_random(BSIZE, i as u64 + 1)).collect();
    for (i, d) in data.iter().enumerate() {
        raw.write(raw.sb.logstart + 1 + i as u32, d);
    }
    let mut h = LogHeader::empty();
    h.n = n as u32;
    h.blocks[..n].copy_from_slice(&targets);
    h.checksum = LogHeader::checksum_of(&targets, &data) ^ u32::from(!valid);
    let mut blk = vec![0u8; BSIZE];
    h.encode(&mut blk);
    raw.write(raw.sb.logstart, &blk);
}

#[test]
fn fsck_finds_a_committed_log() {
    let s = Scratch::new("log");
    let (path, raw) = fresh(&s, "a.img");
    write_log(&raw, 3, true);
    let r = check(&path);
    assert_found(&r, ProblemKind::LogNeedsRecovery, "needs recovery");
    assert_eq!(r.problems.len(), 1, "{r}");
    let out = mkimage_cli(&["fsck", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("needs recovery"));

    // A checksum that does not match is an uncommitted transaction: clean, with a warning.
    let (path, raw) = fresh(&s, "b.img");
    write_log(&raw, 3, false);
    let r = check(&path);
    assert!(r.is_clean(), "{r}");
    assert!(r.warnings.iter().any(|w| w.contains("checksum does not match")), "{r}");

    // A wrong magic is a problem (mkimage and the kernel always write it).
    let (path, raw) = fresh(&s, "c.img");
    raw.write(raw.sb.logstart, &vec![0u8; BSIZE]);
    assert_found(&check(&path), ProblemKind::LogHeader, "magic");
    assert_ne!(LOG_MAGIC, 0);
}

#[test]
fn fsck_finds_an_unreachable_inode() {
    let s = Scratch::new("orphan");
    let (path, raw) = fresh(&s, "a.img");
    let inum = raw.free_inode();
    let mut d = Dinode::new(Kind::File);
    d.nlink = 1;
    raw.set_inode(inum, &d);
    let r = check(&path);
    assert_found(&r, ProblemKind::Unreachable, &format!("inode {inum}: a file"));
    assert_eq!(r.problems.len(), 1, "{r}");
    assert_eq!(r.inodes, 20);
}

#[test]
fn fsck_finds_a_missing_dotdot() {
    let s = Scratch::new("dotdot");
    let (path, raw) = fresh(&s, "a.img");
    let docs = lookup(&path, "/www/docs");
    assert_eq!(raw.dirent(docs, 1).name(), b"..");
    raw.set_dirent(docs, 1, &Dirent::EMPTY);
    let r = check(&path);
    assert_found(&r, ProblemKind::MissingDotDot, "/www/docs");
    // /www lost the link that ".." gave it.
    assert_found(&r, ProblemKind::LinkCount, "/www");

    // ".." naming the wrong directory.
    let (path, raw) = fresh(&s, "b.img");
    raw.set_dirent(docs, 1, &Dirent::new(1, b"..").unwrap());
    assert_found(&check(&path), ProblemKind::BadDotDot, "not its parent");

    // A broken ".".
    let (path, raw) = fresh(&s, "c.img");
    raw.set_dirent(docs, 0, &Dirent::new(1, b".").unwrap());
    assert_found(&check(&path), ProblemKind::BadDot, "not itself");
}

#[test]
fn fsck_finds_bad_names_and_directory_links() {
    let s = Scratch::new("names");
    let (path, raw) = fresh(&s, "a.img");
    let etc = lookup(&path, "/etc");
    let mut e = raw.dirent(etc, 2);
    e.name[3] = b'/';
    raw.set_dirent(etc, 2, &e);
    assert_found(&check(&path), ProblemKind::BadName, "'/'");

    let (path, raw) = fresh(&s, "b.img");
    let motd = raw.dirent(etc, 3);
    raw.set_dirent(etc, 2, &Dirent::new(motd.inum, b"motd").unwrap());
    let r = check(&path);
    assert_found(&r, ProblemKind::DuplicateName, "\"motd\"");

    // A second entry naming a directory (a directory hard link).
    let (path, raw) = fresh(&s, "c.img");
    let www = lookup(&path, "/www");
    raw.set_dirent(etc, 2, &Dirent::new(www, b"www2").unwrap());
    assert_found(&check(&path), ProblemKind::DirMultipleParents, "already reached as /www");

    // An inode of no known kind.
    let (path, raw) = fresh(&s, "d.img");
    let mut d = raw.inode(lookup(&path, "/README"));
    d.kind = 77;
    raw.set_inode(lookup(&path, "/README"), &d);
    let r = check(&path);
    assert_found(&r, ProblemKind::InodeKind, "unknown kind 77");
    assert_found(&r, ProblemKind::EntryFreeInode, "/README");
}

#[test]
fn fsck_survives_garbage_and_truncation() {
    let s = Scratch::new("garbage");
    // Random bytes.
    let junk = s.path("junk.img");
    fs::write(&junk, pseudo_random(1 << 20, 1234)).unwrap();
    let r = check(&junk);
    assert_found(&r, ProblemKind::Superblock, "magic");
    let out = mkimage_cli(&["fsck", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fsck: 1 problem"));
    assert!(String::from_utf8_lossy(&out.stderr).is_empty());

    // Empty and tiny files.
    for len in [0, 100, BSIZE + 5] {
        let tiny = s.path("tiny.img");
        fs::write(&tiny, vec![0u8; len]).unwrap();
        assert!(!check(&tiny).is_clean(), "{len}");
        let out = mkimage_cli(&["fsck", tiny.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{len}");
    }

    // A truncated image.
    let path = s.path("trunc.img");
    build(&path);
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(3 << 20).unwrap();
    drop(f);
    assert_found(&check(&path), ProblemKind::ImageSize, "truncated");
    let out = mkimage_cli(&["fsck", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let out = mkimage_cli(&["cat", path.to_str().unwrap(), "/README"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));

    // Not there at all, or a directory: an I/O error, exit 2.
    let out = mkimage_cli(&["fsck", s.path("absent.img").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.img"));
    let out = mkimage_cli(&["fsck", s.0.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

/// Overwrites random bytes of the metadata and directory blocks of a valid image, many times
/// over; fsck and the reader must report, never panic.
#[test]
fn fsck_and_reader_never_panic_on_random_corruption() {
    let s = Scratch::new("fuzz");
    let base = s.path("base.img");
    let mut b = Builder::standard(2 << 20, 64).unwrap();
    b.add_file("/data/mid.bin", pseudo_random((NDIRECT + 3) * BSIZE, 3)).unwrap();
    b.write(&base).unwrap();
    assert_clean(&base);
    let pristine = fs::read(&base).unwrap();
    let sb = Superblock::decode(&pristine[BSIZE..]).unwrap();
    let hot_blocks = 30;
    let mut seen_problems = 0;
    let mut rng = Rng::from_env("FSCK_FUZZ_SEED", 1);
    for round in 0..300u64 {
        let mut img = pristine.clone();
        let flips = rng.range(1..9);
        // The bytes that matter, one kind per round: the superblock, the used inodes, the used
        // part of the bitmap, the first data blocks (directories, the indirect block).
        let (start, len) = match round % 4 {
            0 => (BSIZE, Superblock::SIZE),
            1 => (sb.inodestart as usize * BSIZE, 20 * Dinode::SIZE),
            2 => (sb.bmapstart as usize * BSIZE, sb.size as usize / 8),
            _ => (sb.datastart as usize * BSIZE, hot_blocks * BSIZE),
        };
        for _ in 0..flips {
            img[start + rng.below(len as u64) as usize] = rng.next_u64() as u8;
        }
        let path = s.path("fuzz.img");
        fs::write(&path, &img).unwrap();
        let r = check(&path);
        if !r.is_clean() {
            seen_problems += 1;
        }
        let _ = r.render(10);
        if let Ok(image) = Image::open(&path) {
            for p in ["/", "/www", "/www/docs", "/etc", "/data"] {
                let _ = image.list_dir(p);
            }
            for (p, _) in STANDARD_FILES {
                let _ = image.read_file(p);
            }
            let _ = image.read_file("/data/mid.bin");
        }
    }
    assert!(seen_problems > 100, "only {seen_problems} corrupt rounds detected");
}
