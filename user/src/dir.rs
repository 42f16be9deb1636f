//! Reading directories: a directory's `read` returns the file system's 64-byte entries
//! (`abi::fs::Dirent`: a little-endian inode number and a NUL-padded name).

use abi::fs::{Dirent, DIRENT_SIZE, DIRSIZ};
use alloc::string::String;
use alloc::vec::Vec;

use crate::io::File;
use crate::sys::{self, Result};

/// One used entry of a directory.
#[derive(Clone, Copy, Debug)]
pub struct DirEntry {
    pub inum: u32,
    name: [u8; DIRSIZ],
}

impl DirEntry {
    /// The name (up to its first NUL; a name that is not UTF-8 ends at its first bad byte).
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(DIRSIZ);
        let bytes = &self.name[..len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// `.` or `..`.
    pub fn is_dot(&self) -> bool {
        matches!(self.name(), "." | "..")
    }
}

/// The used entries of an open directory, in order (free slots skipped).
pub struct ReadDir {
    file: File,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    done: bool,
}

impl ReadDir {
    /// Reads the directory open as `file` from its current offset.
    pub fn new(file: File) -> ReadDir {
        ReadDir { file, buf: alloc::vec![0; DIRENT_SIZE * 64], start: 0, end: 0, done: false }
    }

    fn fill(&mut self) -> Result<()> {
        // Keep a partial entry, then read behind it.
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let n = sys::read(self.file.fd(), &mut self.buf[self.end..])?;
        if n == 0 {
            self.done = true;
        }
        self.end += n;
        Ok(())
    }
}

impl Iterator for ReadDir {
    type Item = Result<DirEntry>;

    fn next(&mut self) -> Option<Result<DirEntry>> {
        loop {
            if self.end - self.start >= DIRENT_SIZE {
                let raw = &self.buf[self.start..self.start + DIRENT_SIZE];
                self.start += DIRENT_SIZE;
                let Ok(d) = Dirent::decode(raw) else { continue };
                if d.is_free() {
                    continue;
                }
                return Some(Ok(DirEntry { inum: d.inum, name: d.name }));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// Opens the directory `path` for reading its entries.
pub fn read_dir(path: &str) -> Result<ReadDir> {
    Ok(ReadDir::new(File::open(path, sys::RDONLY)?))
}

/// `dir/name`, without doubling a `/`.
pub fn join(dir: &str, name: &str) -> String {
    let mut s = String::with_capacity(dir.len() + 1 + name.len());
    s.push_str(dir);
    if !dir.ends_with('/') {
        s.push('/');
    }
    s.push_str(name);
    s
}
