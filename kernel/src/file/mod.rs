//! Open files: what a file descriptor refers to, and each process's descriptor table.
//!
//! A [`File`] is shared (`Arc`) by every descriptor that `dup` or `fork` made from one
//! `open`/`pipe`, so they share its offset. When the last reference goes, the file releases
//! what it holds: a pipe end wakes the other side (end of file, or `EPIPE`), an inode handle
//! is put back (and an unlinked file whose last handle that was is freed by `Fs::reap`).
//!
//! Kinds of file:
//! - an inode of the disk (regular file, or a directory opened for reading, whose `read`
//!   returns its 64-byte entries), with an offset and the append flag;
//! - a pipe end ([`pipe`]);
//! - a console ([`console`]: a virtual console with its line discipline), reached by opening
//!   a device inode whose major number is `abi::syscall::dev::CONSOLE` (the console of the
//!   caller's namespace, or of the nearest one above with one: the root's at the latest), or
//!   made by `attach` for the shell it starts;
//! - a `/proc` file ([`procfs`]), a snapshot taken at open.
//!
//! Modules with no kernel dependencies (`ldisc`, `pipe`, `poll`, `procfs`, `fdtable`, `cwd`,
//! `convert`) are compiled and unit-tested on the host by `mkimage/tests/kernel_file.rs`.

pub mod console;
pub mod convert;
pub mod cwd;
pub mod fdtable;
pub mod ldisc;
pub mod pipe;
pub mod poll;
pub mod procfs;

use crate::net::drive::How;
use crate::rootfs::{Ino, RootFs};
use abi::syscall::{dev, kind, Errno, Stat};
use alloc::sync::Arc;
use alloc::vec::Vec;
use convert::errno;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Waker;
pub use poll::PollWait;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::Mutex as AsyncMutex;

/// A process's file descriptors.
pub type FdTable = fdtable::Table<File>;

pub struct File {
    kind: Kind,
    readable: bool,
    writable: bool,
    /// `open::NONBLOCK` (set by `fcntl`): a read or write that would wait gives `EAGAIN`.
    nonblock: AtomicBool,
}

enum Kind {
    /// The offset's lock is held across the read or write, so descriptors sharing the file
    /// (after `dup` or `fork`) never use the same offset twice.
    Inode {
        ip: Handle,
        off: AsyncMutex<u64>,
        append: bool,
    },
    PipeRead(pipe::ReadEnd),
    PipeWrite(pipe::WriteEnd),
    /// A console, and the device inode it was opened through, if any (for `fstat`).
    Console(console::Open, Option<Handle>),
    Proc {
        node: procfs::Node,
        data: Vec<u8>,
        off: Mutex<usize>,
    },
    /// A network socket (`net::socket`).
    Socket(crate::net::socket::Socket),
}

impl File {
    fn new(kind: Kind, readable: bool, writable: bool) -> Arc<File> {
        Arc::new(File { kind, readable, writable, nonblock: AtomicBool::new(false) })
    }

    /// An open disk inode (a file, or a directory for reading).
    pub fn inode(ip: Ino, readable: bool, writable: bool, append: bool) -> Arc<File> {
        let kind = Kind::Inode { ip: Handle(Some(ip)), off: AsyncMutex::new(0), append };
        File::new(kind, readable, writable)
    }

    /// Console `vt`, opened through the device inode `ip` (`None`: made by the kernel).
    pub fn console(
        vt: Arc<console::Vt>,
        ip: Option<Ino>,
        readable: bool,
        writable: bool,
    ) -> Arc<File> {
        let kind = Kind::Console(console::Open::new(vt), ip.map(|ip| Handle(Some(ip))));
        File::new(kind, readable, writable)
    }

    /// The console this file is open on, if it is one.
    pub fn console_vt(&self) -> Option<&Arc<console::Vt>> {
        match &self.kind {
            Kind::Console(c, _) => Some(c.vt()),
            _ => None,
        }
    }

    /// A new pipe: `(read end, write end)`, its ring paid for by `charge` (`pipe::PIPE_SIZE`
    /// bytes).
    pub fn pipe(charge: crate::mm::budget::Charge) -> (Arc<File>, Arc<File>) {
        let (r, w) = pipe::Pipe::new_pair(charge);
        (File::new(Kind::PipeRead(r), true, false), File::new(Kind::PipeWrite(w), false, true))
    }

    /// Open a `/proc` file for reading: its contents are taken now.
    pub async fn open_proc(node: procfs::Node) -> Result<Arc<File>, Errno> {
        let data = match node {
            // Pids as the reader's pid namespace numbers them; others' processes are absent.
            procfs::Node::Root => {
                let view = crate::proc::Viewer::current();
                let pids: Vec<u32> = view.visible().iter().map(|(pid, _)| *pid).collect();
                procfs::listing(&pids)
            }
            procfs::Node::Pid(pid) => {
                let view = crate::proc::Viewer::current();
                let p = view.find(pid).ok_or(Errno::ENOENT)?;
                crate::proc::record(&p, view).encode().to_vec()
            }
            procfs::Node::Ns => {
                let me = crate::proc::current();
                let view = crate::proc::Viewer::of(&me);
                let published = crate::net::netns::published();
                crate::ns::listing(
                    &me.ns,
                    |global| view.show(global),
                    |ns| crate::net::netns::ns_columns(ns, &me.ns, &published),
                )
            }
            procfs::Node::Net => crate::net::netns::proc_net(&crate::proc::current().ns),
            procfs::Node::NetAll => crate::net::netns::proc_netall(&crate::proc::current().ns),
            procfs::Node::Ifaces => crate::net::netns::proc_ifaces(&crate::proc::current().ns),
            procfs::Node::Stat => crate::stats::text(),
            procfs::Node::Prof => crate::prof::text(),
            procfs::Node::Meminfo => {
                let (free, total) = crate::mm::frame::stats();
                let inodes = match crate::rootfs::get() {
                    Some(fs) => fs.count_free_inodes().await.map_err(errno)?,
                    None => 0,
                };
                procfs::meminfo(free, total, inodes)
            }
        };
        Ok(File::new(
            Kind::Proc { node, data, off: Mutex::new(Rank::ProcFileOffset, 0) },
            true,
            false,
        ))
    }

    /// A socket, as a file.
    pub fn socket(s: crate::net::socket::Socket) -> Arc<File> {
        File::new(Kind::Socket(s), true, true)
    }

    /// The socket of a socket file (`None`: another kind, which is dropped).
    pub fn into_socket(self) -> Option<crate::net::socket::Socket> {
        match self.kind {
            Kind::Socket(s) => Some(s),
            _ => None,
        }
    }

    /// The socket, if this file is one.
    pub fn as_socket(&self) -> Option<&crate::net::socket::Socket> {
        match &self.kind {
            Kind::Socket(s) => Some(s),
            _ => None,
        }
    }

    pub fn nonblock(&self) -> bool {
        self.nonblock.load(Ordering::SeqCst)
    }

    pub fn set_nonblock(&self, on: bool) {
        self.nonblock.store(on, Ordering::SeqCst);
    }

    /// `poll` readiness for `events` (`POLLHUP` whether asked or not). With a waker `w`,
    /// also register it for a change of readiness, in the same critical section as the
    /// check so that no change between the two is missed: on the file's wait queues (a
    /// socket's, a pipe's, the console's) through `reg`, until it is cleared or dropped. Disk
    /// and `/proc` files are always ready.
    pub fn poll_events<'a>(
        &'a self,
        events: i16,
        w: Option<&Waker>,
        reg: &mut PollWait<'a>,
    ) -> i16 {
        use abi::syscall::net::{POLLHUP, POLLIN, POLLOUT};
        let flags = |ready: bool, mask: i16, hup: bool| {
            (if ready { mask & events } else { 0 }) | if hup { POLLHUP } else { 0 }
        };
        match &self.kind {
            Kind::Socket(s) => s.poll_events(events, w, reg),
            Kind::PipeRead(r) => {
                let (ready, hup) = r.pipe().poll_read(w.map(|w| (w, reg)));
                flags(ready, POLLIN, hup)
            }
            Kind::PipeWrite(wr) => {
                let (ready, hup) = wr.pipe().poll_write(w.map(|w| (w, reg)));
                flags(ready, POLLOUT, hup)
            }
            // Output to the console never waits.
            Kind::Console(c, _) => {
                let readable = events & POLLIN != 0 && c.vt().poll_read(w.map(|w| (w, reg)));
                flags(readable, POLLIN, false) | POLLOUT & events
            }
            Kind::Inode { .. } | Kind::Proc { .. } => events & (POLLIN | POLLOUT),
        }
    }

    pub fn readable(&self) -> bool {
        self.readable
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Pipes and the console: reads (and pipe writes) may wait for another party for ever,
    /// so they are interruptible, and a read returns what is available instead of filling
    /// the whole buffer.
    pub fn is_stream(&self) -> bool {
        matches!(
            self.kind,
            Kind::PipeRead(_) | Kind::PipeWrite(_) | Kind::Console(..) | Kind::Socket(_)
        )
    }

    /// Read at the file's offset (or from the stream); 0 at end of file.
    pub async fn read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        if !self.readable {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            Kind::Inode { ip, off, .. } => {
                let mut off = off.lock().await;
                let ip = ip.get();
                let n = ip
                    .fs()
                    .read_spawning(ip, *off, buf, crate::rootfs::spawn_read_ahead)
                    .await
                    .map_err(errno)?;
                *off += n as u64;
                Ok(n)
            }
            Kind::PipeRead(r) => Ok(r.read(buf).await),
            Kind::Console(c, _) => Ok(c.vt().read(buf).await),
            Kind::Proc { data, off, .. } => {
                let mut off = off.lock();
                let n = buf.len().min(data.len() - *off);
                buf[..n].copy_from_slice(&data[*off..*off + n]);
                *off += n;
                Ok(n)
            }
            // Waits as its design waits (`net::drive`), blocking the calling process here.
            Kind::Socket(s) => s.recv(buf, How::of(self.nonblock())).map(|(n, _)| n),
            Kind::PipeWrite(_) => Err(Errno::EBADF),
        }
    }

    /// `sendfile`'s source: the offset of a regular file open for reading, locked (held while
    /// its bytes are read and sent, as `read` holds it). EBADF: not open for reading; EINVAL:
    /// not a regular file (a directory, a pipe, a socket, a console, a `/proc` file).
    pub async fn file_offset(&self) -> Result<runtime::sync::MutexGuard<'_, u64>, Errno> {
        if !self.readable {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            Kind::Inode { ip, off, .. } => {
                if ip.get().lock().await.map_err(errno)?.stat().kind != kind::FILE {
                    return Err(Errno::EINVAL);
                }
                Ok(off.lock().await)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Reads a regular file at `at` without moving its offset (after [`File::file_offset`]
    /// said it is one); 0 at or past the end.
    pub async fn read_at(&self, at: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        match &self.kind {
            Kind::Inode { ip, .. } if self.readable => {
                let ip = ip.get();
                ip.fs()
                    .read_spawning(ip, at, buf, crate::rootfs::spawn_read_ahead)
                    .await
                    .map_err(errno)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// Write at the file's offset (at its end with append), or into the stream.
    pub async fn write(&self, buf: &[u8]) -> Result<usize, Errno> {
        if !self.writable {
            return Err(Errno::EBADF);
        }
        match &self.kind {
            Kind::Inode { ip, off, append } => {
                let mut off = off.lock().await;
                let ip = ip.get();
                if *append {
                    *off = ip.lock().await.map_err(errno)?.size();
                }
                let n = ip.fs().write(ip, *off, buf).await.map_err(errno)?;
                *off += n as u64;
                Ok(n)
            }
            Kind::PipeWrite(w) => w.write(buf).await,
            Kind::Console(c, _) => {
                c.vt().write(buf);
                Ok(buf.len())
            }
            Kind::Socket(s) => s.send(buf, None, How::of(self.nonblock())),
            Kind::PipeRead(_) | Kind::Proc { .. } => Err(Errno::EBADF),
        }
    }

    /// A write on a non-blocking descriptor that must not be made by polling [`File::write`]
    /// once: a pipe's, which may put part of `buf` in and then wait (its count would be lost
    /// with the future). `None`: polling `write` once is right (it changes nothing before it
    /// is ready, or it never waits).
    pub fn write_nonblocking(&self, buf: &[u8]) -> Option<Result<usize, Errno>> {
        match &self.kind {
            Kind::PipeWrite(w) if self.nonblock() && self.writable => Some(w.try_write(buf)),
            _ => None,
        }
    }

    /// What `fstat` reports. Disk inodes are device 1; `/proc` is device 2; pipes and a
    /// console opened without an inode report device 0 and inode 0.
    pub async fn stat(&self) -> Result<Stat, Errno> {
        Ok(match &self.kind {
            Kind::Inode { ip, .. } | Kind::Console(_, Some(ip)) => {
                convert::stat_of_inode(&ip.get().lock().await.map_err(errno)?.stat())
            }
            Kind::Console(_, None) => {
                Stat { kind: kind::DEVICE, nlink: 1, major: dev::CONSOLE, ..Stat::default() }
            }
            Kind::Socket(_) => Stat { kind: kind::PIPE, nlink: 1, ..Stat::default() },
            Kind::PipeRead(r) => pipe_stat(r.pipe()),
            Kind::PipeWrite(w) => pipe_stat(w.pipe()),
            Kind::Proc { node, data, .. } => Stat {
                dev: procfs::PROC_DEV,
                ino: node.ino(),
                kind: if *node == procfs::Node::Root { kind::DIR } else { kind::FILE },
                nlink: 1,
                size: data.len() as u64,
                ..Stat::default()
            },
        })
    }
}

fn pipe_stat(p: &pipe::Pipe) -> Stat {
    Stat { kind: kind::PIPE, nlink: 1, size: p.buffered() as u64, ..Stat::default() }
}

/// An inode handle held by an open file. Dropping the last handle of an unlinked inode
/// queues it for freeing (`fs::Fs::reap`); `Drop` cannot do disk I/O, so a kernel task does.
struct Handle(Option<Ino>);

impl Handle {
    fn get(&self) -> &Ino {
        self.0.as_ref().expect("inode handle")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let Some(ip) = self.0.take() else { return };
        let fs = ip.fs();
        drop(ip);
        if fs.orphans_pending() {
            schedule_reap(fs);
        }
    }
}

/// A reaper task is spawned and has not started yet.
static REAP_SCHEDULED: AtomicBool = AtomicBool::new(false);

/// Free unlinked inodes whose last handle is gone, from a kernel task (one at a time).
fn schedule_reap(fs: &'static RootFs) {
    if !REAP_SCHEDULED.swap(true, Ordering::SeqCst) {
        crate::exec::spawn(async move {
            // Cleared before reaping: an orphan added from now on schedules another run.
            REAP_SCHEDULED.store(false, Ordering::SeqCst);
            if let Err(e) = fs.reap().await {
                crate::kprintln!("fs: freeing unlinked inodes: {e}");
            }
        });
    }
}
