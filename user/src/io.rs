//! Output and input: `print!`-style macros, whole writes, owned files, and a buffered reader.
//!
//! `print!`, `println!`, `eprint!` and `eprintln!` format into a buffer on the stack and write
//! it with as few `write` calls as fit (one for anything under [`FMT_BUF`] bytes), so that the
//! lines of processes sharing a console do not interleave mid-line. The macros ignore write
//! errors (they never panic); [`print_to`] and `fdprint!` return them.

use crate::sys::{self, Fd, Result};
use abi::syscall::{Errno, Stat};
use alloc::vec::Vec;
use core::fmt;

pub const STDIN: Fd = 0;
pub const STDOUT: Fd = 1;
pub const STDERR: Fd = 2;

/// Bytes formatted before a `write`.
pub const FMT_BUF: usize = 512;

/// Writes all of `buf`, retrying short writes. A write that makes no progress is `EIO`.
pub fn write_all(fd: Fd, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match sys::write(fd, buf)? {
            0 => return Err(Errno::EIO),
            n => buf = &buf[n.min(buf.len())..],
        }
    }
    Ok(())
}

/// Reads until end of file.
pub fn read_to_end(fd: Fd, out: &mut Vec<u8>) -> Result<usize> {
    let start = out.len();
    let mut chunk = [0u8; 4096];
    loop {
        match sys::read(fd, &mut chunk)? {
            0 => return Ok(out.len() - start),
            n => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until `buf` is full or end of file; returns the bytes read.
pub fn read_full(fd: Fd, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match sys::read(fd, &mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// A formatter writing to a descriptor through a stack buffer.
pub struct FdWriter {
    fd: Fd,
    buf: [u8; FMT_BUF],
    len: usize,
    error: Option<Errno>,
}

impl FdWriter {
    pub const fn new(fd: Fd) -> FdWriter {
        FdWriter { fd, buf: [0; FMT_BUF], len: 0, error: None }
    }

    /// Writes what is buffered; the first error seen since the last flush.
    pub fn flush(&mut self) -> Result<()> {
        if self.len > 0 {
            if let Err(e) = write_all(self.fd, &self.buf[..self.len]) {
                self.error.get_or_insert(e);
            }
            self.len = 0;
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == FMT_BUF {
                let _ = self.flush();
            }
            let n = bytes.len().min(FMT_BUF - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

/// Formats `args` to `fd` (what the macros call).
pub fn print_to(fd: Fd, args: fmt::Arguments<'_>) -> Result<()> {
    let mut w = FdWriter::new(fd);
    let _ = fmt::Write::write_fmt(&mut w, args);
    w.flush()
}

/// Formats to standard output.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{ let _ = $crate::io::print_to($crate::io::STDOUT, format_args!($($arg)*)); }};
}

/// Formats a line to standard output.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        let _ = $crate::io::print_to($crate::io::STDOUT, format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// Formats to standard error.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => {{ let _ = $crate::io::print_to($crate::io::STDERR, format_args!($($arg)*)); }};
}

/// Formats a line to standard error.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::eprint!("\n") };
    ($($arg:tt)*) => {{
        let _ = $crate::io::print_to($crate::io::STDERR, format_args!("{}\n", format_args!($($arg)*)));
    }};
}

/// Formats to any descriptor; the result of the writes.
#[macro_export]
macro_rules! fdprint {
    ($fd:expr, $($arg:tt)*) => { $crate::io::print_to($fd, format_args!($($arg)*)) };
}

/// An open file, closed when dropped.
#[derive(Debug)]
pub struct File {
    fd: Fd,
}

impl File {
    /// Opens `path` with `flags` (see [`sys::open`]).
    pub fn open(path: &str, flags: usize) -> Result<File> {
        sys::open(path, flags).map(|fd| File { fd })
    }

    /// Creates or truncates `path` for writing.
    pub fn create(path: &str) -> Result<File> {
        File::open(path, sys::WRONLY | sys::CREATE | sys::TRUNC)
    }

    /// Takes ownership of a descriptor.
    pub fn from_fd(fd: Fd) -> File {
        File { fd }
    }

    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// Gives up ownership: the descriptor stays open.
    pub fn into_fd(self) -> Fd {
        let fd = self.fd;
        core::mem::forget(self);
        fd
    }

    pub fn read(&self, buf: &mut [u8]) -> Result<usize> {
        sys::read(self.fd, buf)
    }

    pub fn write(&self, buf: &[u8]) -> Result<usize> {
        sys::write(self.fd, buf)
    }

    pub fn write_all(&self, buf: &[u8]) -> Result<()> {
        write_all(self.fd, buf)
    }

    pub fn read_to_end(&self, out: &mut Vec<u8>) -> Result<usize> {
        read_to_end(self.fd, out)
    }

    pub fn stat(&self) -> Result<Stat> {
        sys::fstat(self.fd)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = sys::close(self.fd);
    }
}

/// Reads a descriptor a line at a time through a buffer.
pub struct LineReader {
    fd: Fd,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

impl LineReader {
    pub fn new(fd: Fd) -> LineReader {
        LineReader { fd, buf: alloc::vec![0; 4096], start: 0, end: 0, eof: false }
    }

    /// Appends the next line (with its `\n`, if it has one) to `line`; `Ok(false)` at end of
    /// file with nothing read.
    pub fn read_line(&mut self, line: &mut Vec<u8>) -> Result<bool> {
        let mut any = false;
        loop {
            if self.start < self.end {
                let avail = &self.buf[self.start..self.end];
                if let Some(i) = avail.iter().position(|&b| b == b'\n') {
                    line.extend_from_slice(&avail[..=i]);
                    self.start += i + 1;
                    return Ok(true);
                }
                line.extend_from_slice(avail);
                self.start = self.end;
                any = true;
            }
            if self.eof {
                return Ok(any);
            }
            let n = sys::read(self.fd, &mut self.buf)?;
            self.start = 0;
            self.end = n;
            if n == 0 {
                self.eof = true;
            }
        }
    }
}
