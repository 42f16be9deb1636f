//! Files and pipes: megabytes through a pipe, pipe errors, file semantics, concurrent create
//! and unlink in one directory, a file past the single-indirect blocks, running out of
//! descriptors.

use ulib::abi::syscall::kind;
use ulib::dir::read_dir;
use ulib::io::write_all;
use ulib::prelude::*;

use crate::{
    ctx, ensure, expect_err, fork_child, pattern, read_file, wait_all, wait_pid, write_file,
    Outcome,
};

const MIB: usize = 1 << 20;

/// 4 MiB from a child to its parent in writes of varying sizes, checked byte by byte.
pub fn pipe_megabytes() -> Outcome {
    const TOTAL: usize = 4 * MIB;
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let pid = fork_child(move || {
        let _ = sys::close(r);
        let mut buf = vec![0u8; 8192];
        let mut sent = 0usize;
        let mut size = 1usize;
        while sent < TOTAL {
            let n = size.min(TOTAL - sent);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = pattern(1, (sent + i) as u64);
            }
            if write_all(w, &buf[..n]).is_err() {
                return 1;
            }
            sent += n;
            size = size * 7 % 8191 + 1;
        }
        0
    })?;
    let _ = sys::close(w);
    let mut buf = vec![0u8; 5000];
    let mut got = 0usize;
    let mut result = Ok(());
    loop {
        let n = match sys::read(r, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                result = Err(format!("read at {got}: {}", e.message()));
                break;
            }
        };
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(1, (got + i) as u64)) {
            result = Err(format!("byte {} differs", got + i));
            break;
        }
        got += n;
    }
    let _ = sys::close(r);
    let status = wait_pid(pid)?;
    result?;
    ensure!(status == 0, "the writer failed");
    ensure!(got == TOTAL, "read {got} bytes of {TOTAL}");
    Ok(String::new())
}

/// Writing with no reader is EPIPE; reading with no writer is end of file; a pipe's fstat
/// says so; closed descriptors are EBADF.
pub fn pipe_errors() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let st = ctx(sys::fstat(r), "fstat(pipe)")?;
    ensure!(st.kind == kind::PIPE, "fstat of a pipe: kind {}", st.kind);
    ctx(sys::close(r), "close")?;
    expect_err(sys::write(w, b"x"), Errno::EPIPE, "write without a reader")?;
    ctx(sys::close(w), "close")?;
    expect_err(sys::close(w), Errno::EBADF, "close twice")?;
    expect_err(sys::read(w, &mut [0u8; 1]), Errno::EBADF, "read of a closed fd")?;
    expect_err(sys::dup(1000), Errno::EBADF, "dup(1000)")?;
    expect_err(sys::fstat(-1), Errno::EBADF, "fstat(-1)")?;

    let (r, w) = ctx(sys::pipe(), "pipe")?;
    ctx(write_all(w, b"tail"), "write")?;
    ctx(sys::close(w), "close")?;
    let mut buf = [0u8; 16];
    let n = ctx(sys::read(r, &mut buf), "read")?;
    ensure!(&buf[..n] == b"tail", "read {:?}", &buf[..n]);
    let n = ctx(sys::read(r, &mut buf), "read at end")?;
    ensure!(n == 0, "read {n} bytes after the writer closed");
    ctx(sys::close(r), "close")?;
    Ok(String::new())
}

/// The names a directory holds (without `.` and `..`).
fn names(dir: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for e in ctx(read_dir(dir), dir)? {
        let e = ctx(e, dir)?;
        if !e.is_dot() {
            out.push(e.name().to_string());
        }
    }
    Ok(out)
}

/// Plain file-system semantics through the system calls.
pub fn files() -> Outcome {
    let dir = "/ut-files";
    let _ = sys::unlink("/ut-files/a");
    let _ = sys::unlink("/ut-files/b");
    let _ = sys::unlink("/ut-files/sub");
    let _ = sys::unlink(dir);
    ctx(sys::mkdir(dir), "mkdir")?;
    expect_err(sys::mkdir(dir), Errno::EEXIST, "mkdir twice")?;
    expect_err(sys::open("/ut-files/none", sys::RDONLY), Errno::ENOENT, "open of a missing file")?;
    expect_err(
        sys::open("/ut-files/none/x", sys::RDONLY | sys::CREATE),
        Errno::ENOENT,
        "create in a missing directory",
    )?;
    expect_err(sys::open(dir, sys::WRONLY), Errno::EISDIR, "open a directory for writing")?;

    // Write, append, read back; the offset is shared with a dup.
    write_file("/ut-files/a", b"hello")?;
    let f = ctx(File::open("/ut-files/a", sys::WRONLY | sys::APPEND), "open append")?;
    ctx(f.write_all(b", world"), "append")?;
    drop(f);
    ensure!(read_file("/ut-files/a")? == b"hello, world", "append");
    let fd = ctx(sys::open("/ut-files/a", sys::RDONLY), "open")?;
    let fd2 = ctx(sys::dup(fd), "dup")?;
    let mut buf = [0u8; 5];
    ctx(sys::read(fd, &mut buf), "read")?;
    let n = ctx(sys::read(fd2, &mut buf), "read through the dup")?;
    ensure!(&buf[..n] == b", wor", "the dup does not share the offset: {:?}", &buf[..n]);
    expect_err(sys::write(fd, b"x"), Errno::EBADF, "write to a read-only fd")?;
    let _ = sys::close(fd);
    let _ = sys::close(fd2);
    ensure!(read_file("/ut-files/a")?.len() == 12, "length");
    write_file("/ut-files/a", b"new")?;
    ensure!(read_file("/ut-files/a")? == b"new", "truncate on create");

    // Links, rename, unlink.
    ctx(sys::link("/ut-files/a", "/ut-files/b"), "link")?;
    let st = ctx(File::open("/ut-files/b", sys::RDONLY).and_then(|f| f.stat()), "stat b")?;
    ensure!(st.nlink == 2 && st.kind == kind::FILE && st.size == 3, "after link: {st:?}");
    expect_err(sys::link("/ut-files/a", "/ut-files/b"), Errno::EEXIST, "link onto a name")?;
    ctx(sys::unlink("/ut-files/a"), "unlink a")?;
    ensure!(read_file("/ut-files/b")? == b"new", "the second name lost the data");
    ctx(sys::rename("/ut-files/b", "/ut-files/a"), "rename")?;
    expect_err(sys::open("/ut-files/b", sys::RDONLY), Errno::ENOENT, "the old name after rename")?;
    ensure!(names(dir)? == ["a"], "the directory holds {:?}", names(dir)?);

    // Directories: cwd, getcwd, not-empty.
    ctx(sys::mkdir("/ut-files/sub"), "mkdir sub")?;
    expect_err(sys::unlink(dir), Errno::ENOTEMPTY, "unlink a non-empty directory")?;
    ctx(sys::chdir("/ut-files/sub"), "chdir")?;
    let mut buf = [0u8; 128];
    let cwd = ctx(sys::getcwd(&mut buf), "getcwd")?.to_string();
    ensure!(cwd == "/ut-files/sub", "getcwd says {cwd:?}");
    write_file("../rel", b"r")?;
    ensure!(read_file("/ut-files/rel")? == b"r", "relative path");
    ctx(sys::unlink("../rel"), "unlink relative")?;
    ctx(sys::chdir("/"), "chdir /")?;
    expect_err(sys::chdir("/ut-files/a"), Errno::ENOTDIR, "chdir to a file")?;
    let st = ctx(File::open(dir, sys::RDONLY).and_then(|f| f.stat()), "stat dir")?;
    ensure!(st.kind == kind::DIR, "a directory's kind is {}", st.kind);
    ctx(sys::unlink("/ut-files/sub"), "unlink sub")?;
    ctx(sys::unlink("/ut-files/a"), "unlink a")?;
    ctx(sys::unlink(dir), "unlink the directory")?;
    Ok(String::new())
}

/// rename, link and unlink at the edges, with Linux's answers. The first one used to lock the
/// source's parent twice and hang for ever (unkillable, and the file system with it).
pub fn rename_errors() -> Outcome {
    const DIR: &str = "/ut-rename";
    let _ = sys::chdir("/");
    for p in ["/ut-rename/d/e", "/ut-rename/d", "/ut-rename/f", "/ut-rename/g", DIR] {
        let _ = sys::unlink(p);
    }
    ctx(sys::mkdir(DIR), "mkdir")?;
    ctx(sys::mkdir("/ut-rename/d"), "mkdir d")?;
    expect_err(sys::rename("/ut-rename/d", "/ut-rename/"), Errno::ENOTEMPTY, "onto its parent")?;
    expect_err(sys::rename("/ut-rename/d", DIR), Errno::ENOTEMPTY, "onto its parent")?;
    expect_err(sys::rename(DIR, "/ut-rename/d/e"), Errno::EINVAL, "into itself")?;
    expect_err(sys::rename(DIR, "/ut-rename/d"), Errno::EINVAL, "onto its child")?;
    expect_err(sys::rename("/ut-rename/d", "/ut-rename/."), Errno::EBUSY, "onto `.`")?;
    expect_err(sys::rename("/", "/ut-rename/x"), Errno::EBUSY, "the root")?;
    ctx(sys::rename("/ut-rename/d", "/ut-rename/d/"), "rename onto itself")?;
    write_file("/ut-rename/f", b"f")?;
    expect_err(sys::rename("/ut-rename/f/", "/ut-rename/g"), Errno::ENOTDIR, "file with a slash")?;
    expect_err(sys::rename("/ut-rename/f", "/ut-rename/d"), Errno::EISDIR, "file onto a dir")?;
    expect_err(sys::rename("/ut-rename/d", "/ut-rename/f"), Errno::ENOTDIR, "dir onto a file")?;
    ctx(sys::link("/ut-rename/f", "/ut-rename/g"), "link")?;
    ctx(sys::rename("/ut-rename/f", "/ut-rename/g"), "rename between two names of a file")?;
    ensure!(read_file("/ut-rename/f")? == b"f", "rename between links removed a name");
    expect_err(sys::link("/ut-rename/d", "/ut-rename/h"), Errno::EPERM, "link to a directory")?;
    expect_err(sys::unlink("/ut-rename/f/"), Errno::ENOTDIR, "unlink of a file with a slash")?;
    expect_err(
        sys::open("/ut-rename/h/", sys::WRONLY | sys::CREATE),
        Errno::EISDIR,
        "create with a slash",
    )?;
    // A removed working directory takes no new names, and `..` leads nowhere from it.
    ctx(sys::chdir("/ut-rename/d"), "chdir")?;
    ctx(sys::unlink("/ut-rename/d"), "remove the working directory")?;
    expect_err(sys::open("x", sys::WRONLY | sys::CREATE), Errno::ENOENT, "create in it")?;
    expect_err(sys::mkdir("y"), Errno::ENOENT, "mkdir in it")?;
    expect_err(sys::getcwd(&mut [0u8; 128]), Errno::ENOENT, "getcwd")?;
    ctx(sys::chdir("/"), "chdir /")?;
    for p in ["/ut-rename/f", "/ut-rename/g", DIR] {
        ctx(sys::unlink(p), p)?;
    }
    Ok(String::new())
}

/// Four processes create and unlink the same ten names in one directory at once.
pub fn concurrent_create() -> Outcome {
    const DIR: &str = "/ut-conc";
    const WORKERS: usize = 4;
    const ROUNDS: usize = 40;
    if let Ok(old) = names(DIR) {
        for n in old {
            let _ = sys::unlink(&format!("{DIR}/{n}"));
        }
        let _ = sys::unlink(DIR);
    }
    ctx(sys::mkdir(DIR), "mkdir")?;
    let mut pids = Vec::new();
    for k in 0..WORKERS {
        pids.push(fork_child(move || {
            for i in 0..ROUNDS {
                let path = format!("{DIR}/f{}", (i * 3 + k) % 10);
                if (i + k) % 3 == 0 {
                    match sys::unlink(&path) {
                        Ok(()) | Err(Errno::ENOENT) => {}
                        Err(_) => return 1,
                    }
                } else {
                    match File::open(&path, sys::WRONLY | sys::CREATE) {
                        Ok(f) => {
                            if f.write_all(path.as_bytes()).is_err() {
                                return 2;
                            }
                        }
                        // Another worker unlinked it between the lookup and the create.
                        Err(Errno::ENOENT) => {}
                        Err(_) => return 3,
                    }
                }
            }
            0
        })?);
    }
    let bad: Vec<i32> = wait_all(&pids)?.into_iter().filter(|&s| s != 0).collect();
    let left = names(DIR)?;
    for n in &left {
        let _ = sys::unlink(&format!("{DIR}/{n}"));
    }
    let rmdir = sys::unlink(DIR);
    ensure!(bad.is_empty(), "workers failed with {bad:?} (1 unlink, 2 write, 3 create)");
    let odd: Vec<&String> = left.iter().filter(|n| !(n.len() == 2 && n.starts_with('f'))).collect();
    ensure!(odd.is_empty(), "unexpected names {odd:?}");
    let mut sorted = left.clone();
    sorted.sort();
    sorted.dedup();
    ensure!(sorted.len() == left.len(), "a name is listed twice: {left:?}");
    ctx(rmdir, "unlink the emptied directory")?;
    Ok(format!("{} files were left", left.len()))
}

/// 5 MiB (past the 12 direct and 1024 single-indirect blocks), written, checked, removed.
pub fn large_file() -> Outcome {
    const PATH: &str = "/ut-large";
    const SIZE: usize = 5 * MIB;
    let f = ctx(File::create(PATH), PATH)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < SIZE {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = pattern(2, (off + i) as u64);
        }
        ctx(f.write_all(&buf), "write")?;
        off += buf.len();
    }
    let st = ctx(f.stat(), "fstat")?;
    drop(f);
    ensure!(st.size == SIZE as u64, "size {} after writing {SIZE}", st.size);
    let f = ctx(File::open(PATH, sys::RDONLY), PATH)?;
    let mut off = 0;
    loop {
        let n = ctx(ulib::io::read_full(f.fd(), &mut buf), "read")?;
        if n == 0 {
            break;
        }
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(2, (off + i) as u64)) {
            return Err(format!("byte {} differs", off + i));
        }
        off += n;
    }
    drop(f);
    ctx(sys::unlink(PATH), "unlink")?;
    ensure!(off == SIZE, "read back {off} of {SIZE} bytes");
    expect_err(sys::open(PATH, sys::RDONLY), Errno::ENOENT, "open after unlink")?;
    Ok(String::new())
}

/// dup until the table is full (EMFILE), then close everything and check dup works again.
pub fn fd_limit() -> Outcome {
    const CAP: usize = 100_000;
    let mut fds = Vec::new();
    let err = loop {
        match sys::dup(0) {
            Ok(fd) => fds.push(fd),
            Err(e) => break Some(e),
        }
        if fds.len() >= CAP {
            break None;
        }
    };
    let count = fds.len();
    let mut close_failed = None;
    for fd in fds {
        if let Err(e) = sys::close(fd) {
            close_failed = Some((fd, e));
        }
    }
    ensure!(close_failed.is_none(), "close: {close_failed:?}");
    let Some(e) = err else {
        return Err(format!("{CAP} descriptors without a refusal"));
    };
    ensure!(e == Errno::EMFILE || e == Errno::ENFILE, "out of descriptors: {e:?}, expected EMFILE");
    // Opening works again, and more than once.
    let again: Result<Vec<Fd>, Errno> = (0..3).map(|_| sys::dup(0)).collect();
    let again = ctx(again, "dup after closing")?;
    for fd in again {
        let _ = sys::close(fd);
    }
    Ok(format!("{e:?} after {count} more descriptors"))
}

/// `NONBLOCK` on a regular file or a directory changes nothing (as on Linux): each read and
/// write runs to completion, never `EAGAIN`. A kernel that gave up on the file system's
/// future half-way (to answer `EAGAIN`) would also drop a transaction it had begun, and the
/// next file-system call anywhere would wait for ever.
pub fn nonblocking_file() -> Outcome {
    const PATH: &str = "/ut-nonblock";
    const SIZE: usize = 256 * 1024;
    let fd = ctx(sys::open(PATH, sys::RDWR | sys::CREATE | sys::TRUNC), PATH)?;
    ctx(ulib::net::set_nonblocking(fd, true), "fcntl")?;
    let data: Vec<u8> = (0..SIZE as u64).map(|i| pattern(9, i)).collect();
    let mut done = 0;
    while done < SIZE {
        match sys::write(fd, &data[done..(done + 64 * 1024).min(SIZE)]) {
            Ok(n) if n > 0 => done += n,
            other => {
                let _ = sys::close(fd);
                return Err(format!("write at {done} of a non-blocking file: {other:?}"));
            }
        }
    }
    let _ = sys::close(fd);
    let fd = ctx(sys::open(PATH, sys::RDONLY), PATH)?;
    ctx(ulib::net::set_nonblocking(fd, true), "fcntl")?;
    let mut back = vec![0u8; SIZE];
    let mut got = 0;
    while got < SIZE {
        match sys::read(fd, &mut back[got..]) {
            Ok(n) if n > 0 => got += n,
            other => {
                let _ = sys::close(fd);
                return Err(format!("read at {got} of a non-blocking file: {other:?}"));
            }
        }
    }
    let _ = sys::close(fd);
    ensure!(back == data, "the file read back differs");
    // The file system still answers (a dropped transaction would stop it here).
    ctx(sys::unlink(PATH), "unlink")?;
    Ok(String::new())
}

/// A non-blocking write to a pipe returns what went in: all of a write the pipe had room
/// for, a short count when it filled up part way, `EAGAIN` only when nothing went in; the
/// bytes a reader then finds are exactly those counted (none counted twice, none unreported).
pub fn pipe_nonblocking_write() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    ctx(ulib::net::set_nonblocking(w, true), "fcntl")?;
    ctx(ulib::net::set_nonblocking(r, true), "fcntl")?;
    // A little, then more than the pipe has room for, in one write: a short count, never
    // EAGAIN (the room is less than one piece of the kernel's copy).
    let data: Vec<u8> = (0..100_000u64).map(|i| pattern(5, i)).collect();
    let mut counted = ctx(sys::write(w, &data[..1000]), "write")?;
    let mut first = None;
    loop {
        match sys::write(w, &data[counted..]) {
            Ok(n) => {
                first.get_or_insert(n);
                counted += n;
                if counted == data.len() {
                    break;
                }
            }
            Err(Errno::EAGAIN) => break,
            Err(e) => return Err(format!("write: {}", e.message())),
        }
    }
    let mut got = vec![0u8; data.len() + 1];
    let mut n = 0;
    while let Ok(k) = sys::read(r, &mut got[n..]) {
        if k == 0 {
            break;
        }
        n += k;
    }
    let _ = (sys::close(r), sys::close(w));
    ensure!(matches!(first, Some(k) if k > 0), "the write after 1000 bytes: {first:?}");
    ensure!(n == counted, "writes counted {counted} bytes, the reader found {n}");
    ensure!(got[..n] == data[..n], "the bytes read differ from those written");
    Ok(format!("{counted} bytes before EAGAIN"))
}
