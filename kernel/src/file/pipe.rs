//! Pipes: a bounded ring buffer shared by one read end and one write end. The kernel's pipes
//! ([`Pipe::new_pair`]) charge their ring to the kernel-memory budget (`mm::budget`) and so to
//! the namespace of the process that made them.
//!
//! No kernel dependencies beyond the async runtime (it is unit-tested on the host:
//! `mkimage/tests/kernel_file.rs` compiles this file there).
//!
//! - A read waits until there are bytes or no writer is left; it returns what is there (up
//!   to the buffer's size), and 0 once the buffer is empty and every write end is gone.
//! - A write waits for room and copies as much as fits, as many times as it takes: a write
//!   larger than the buffer proceeds in pieces as the reader drains it. Writes of at most
//!   [`PIPE_BUF`] bytes wait until they fit whole, so they never interleave with others.
//!   With no read end left a write fails with `EPIPE` (or returns what it wrote so far).
//!
//! Waiting uses [`WaitQueue`] tickets taken under the state lock (rank `Pipe`, before the wait
//! queues' `WaitQueue` in `docs/locks.md`), so a wake between the check and the wait is never
//! lost. A waiting read or write is cancel-safe: dropping it
//! (a killed process) leaves the pipe consistent. The end counts live in the state; the
//! ends ([`ReadEnd`], [`WriteEnd`]) give up their count when dropped and wake the other side.
//!
//! `poll` waits on the same queues: [`Pipe::poll_read`] and [`Pipe::poll_write`] report
//! readiness and, given a waker, register it through a [`PollWait`] (`super::poll`, which the
//! console and sockets use too) for the next change.

use super::poll::PollWait;
use abi::syscall::Errno;
use alloc::boxed::Box;
use alloc::sync::Arc;
use core::task::Waker;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;

/// Bytes a pipe buffers.
pub const PIPE_SIZE: usize = 64 * 1024;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;

// What a pipe's ring is charged to: the kernel-memory budget (`mm::budget`) in the kernel,
// nothing in the host's unit tests.
#[cfg(not(test))]
use crate::mm::budget::Charge;
#[cfg(test)]
pub struct Charge;

/// A fixed-capacity byte ring.
pub struct Ring {
    buf: Box<[u8]>,
    /// Index of the oldest byte.
    head: usize,
    len: usize,
}

impl Ring {
    pub fn new(capacity: usize) -> Ring {
        Ring { buf: alloc::vec![0; capacity].into_boxed_slice(), head: 0, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.capacity() - self.len
    }

    /// Append as much of `src` as fits; returns how much.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.free());
        let cap = self.capacity();
        let tail = (self.head + self.len) % cap.max(1);
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&src[..first]);
        self.buf[..n - first].copy_from_slice(&src[first..n]);
        self.len += n;
        n
    }

    /// Take up to `dst.len()` of the oldest bytes; returns how many.
    pub fn pop(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len);
        let cap = self.capacity();
        let first = n.min(cap - self.head);
        dst[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        dst[first..n].copy_from_slice(&self.buf[..n - first]);
        self.head = (self.head + n) % cap.max(1);
        self.len -= n;
        n
    }
}

struct State {
    ring: Ring,
    readers: u32,
    writers: u32,
}

pub struct Pipe {
    state: Mutex<State>,
    /// The ring's charge, released with the pipe.
    _charge: Option<Charge>,
    /// Notified when bytes arrive or the last writer leaves.
    readable: WaitQueue,
    /// Notified when room appears or the last reader leaves.
    writable: WaitQueue,
}

impl Pipe {
    /// A new pipe holding `capacity` bytes, as its two ends (its ring charged to nothing).
    #[cfg(test)]
    pub fn with_capacity(capacity: usize) -> (ReadEnd, WriteEnd) {
        Pipe::make(capacity, None)
    }

    fn make(capacity: usize, charge: Option<Charge>) -> (ReadEnd, WriteEnd) {
        assert!(capacity > 0);
        let pipe = Arc::new(Pipe {
            state: Mutex::new(
                Rank::Pipe,
                State { ring: Ring::new(capacity), readers: 1, writers: 1 },
            ),
            _charge: charge,
            readable: WaitQueue::new(),
            writable: WaitQueue::new(),
        });
        (ReadEnd(pipe.clone()), WriteEnd(pipe))
    }

    /// A new pipe of [`PIPE_SIZE`] bytes, its ring paid for by `charge` (of [`PIPE_SIZE`]
    /// bytes, made by `sys_pipe`), released with the pipe.
    pub fn new_pair(charge: Charge) -> (ReadEnd, WriteEnd) {
        Pipe::make(PIPE_SIZE, Some(charge))
    }

    /// Bytes buffered now.
    pub fn buffered(&self) -> usize {
        self.state.lock().ring.len()
    }

    /// For `poll` on the read end: (bytes or end of file waiting, no writer left). With a
    /// waker and not readable, the waker is registered in `reg` for the next change (bytes
    /// written, the last writer gone): the ticket is taken under the state lock with the
    /// check (see [`PollWait`]).
    pub fn poll_read<'a>(&'a self, w: Option<(&Waker, &mut PollWait<'a>)>) -> (bool, bool) {
        let st = self.state.lock();
        let (ready, hup) = (!st.ring.is_empty() || st.writers == 0, st.writers == 0);
        if let (false, Some((w, reg))) = (ready, w) {
            reg.arm(&self.readable, self.readable.ticket(), w);
        }
        (ready, hup)
    }

    /// For `poll` on the write end: (room, no reader left). With a waker and no room, the
    /// waker is registered in `reg` for the next change (bytes read, the last reader gone).
    pub fn poll_write<'a>(&'a self, w: Option<(&Waker, &mut PollWait<'a>)>) -> (bool, bool) {
        let st = self.state.lock();
        let (ready, hup) = (st.ring.free() > 0 || st.readers == 0, st.readers == 0);
        if let (false, Some((w, reg))) = (ready, w) {
            reg.arm(&self.writable, self.writable.ticket(), w);
        }
        (ready, hup)
    }

    async fn read(&self, dst: &mut [u8]) -> usize {
        if dst.is_empty() {
            return 0;
        }
        loop {
            let ticket = {
                let mut st = self.state.lock();
                if !st.ring.is_empty() {
                    let n = st.ring.pop(dst);
                    drop(st);
                    self.writable.notify_all();
                    return n;
                }
                if st.writers == 0 {
                    return 0;
                }
                self.readable.ticket()
            };
            self.readable.wait(ticket).await;
        }
    }

    /// A write that never waits (a non-blocking descriptor): what fits now, placed as
    /// [`Pipe::write`] would place it (a write of at most [`PIPE_BUF`] bytes whole or not at
    /// all); `EAGAIN` when nothing fits. Polling `write` once would not do: when it fills
    /// the ring part way and then waits, dropping it loses the count of what went in.
    fn try_write(&self, src: &[u8]) -> Result<usize, Errno> {
        let mut st = self.state.lock();
        if st.readers == 0 {
            return Err(Errno::EPIPE);
        }
        if src.is_empty() {
            return Ok(0);
        }
        let whole = src.len() <= PIPE_BUF.min(st.ring.capacity());
        if st.ring.free() == 0 || (whole && st.ring.free() < src.len()) {
            return Err(Errno::EAGAIN);
        }
        let n = st.ring.push(src);
        drop(st);
        self.readable.notify_all();
        Ok(n)
    }

    async fn write(&self, src: &[u8]) -> Result<usize, Errno> {
        let mut done = 0;
        while done < src.len() {
            let ticket = {
                let mut st = self.state.lock();
                if st.readers == 0 {
                    return if done == 0 { Err(Errno::EPIPE) } else { Ok(done) };
                }
                let rest = &src[done..];
                let whole = src.len() <= PIPE_BUF.min(st.ring.capacity());
                if st.ring.free() > 0 && (!whole || st.ring.free() >= rest.len()) {
                    done += st.ring.push(rest);
                    drop(st);
                    self.readable.notify_all();
                    continue;
                }
                self.writable.ticket()
            };
            self.writable.wait(ticket).await;
        }
        Ok(done)
    }
}

/// The read end. Dropping it (the last file holding it) makes writes fail with `EPIPE`.
pub struct ReadEnd(Arc<Pipe>);

/// The write end. Dropping it lets readers see end of file once the buffer is drained.
pub struct WriteEnd(Arc<Pipe>);

impl ReadEnd {
    /// Wait for bytes; 0 means end of file (or an empty `dst`).
    pub async fn read(&self, dst: &mut [u8]) -> usize {
        self.0.read(dst).await
    }

    pub fn pipe(&self) -> &Pipe {
        &self.0
    }
}

impl WriteEnd {
    /// Write all of `src`, waiting for room as often as needed. `EPIPE` when no reader is
    /// left before anything was written; a short count when the last reader left later.
    pub async fn write(&self, src: &[u8]) -> Result<usize, Errno> {
        self.0.write(src).await
    }

    /// Write what fits now, without waiting (see [`Pipe::try_write`]).
    pub fn try_write(&self, src: &[u8]) -> Result<usize, Errno> {
        self.0.try_write(src)
    }

    pub fn pipe(&self) -> &Pipe {
        &self.0
    }
}

impl Drop for ReadEnd {
    fn drop(&mut self) {
        self.0.state.lock().readers -= 1;
        self.0.writable.notify_all();
    }
}

impl Drop for WriteEnd {
    fn drop(&mut self) {
        self.0.state.lock().writers -= 1;
        self.0.readable.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::pin::pin;
    use core::task::Poll;
    use testkit::{block_on, counting_waker, poll_once};

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn try_write_reports_what_went_in() {
        let (r, w) = Pipe::with_capacity(16);
        assert_eq!(w.try_write(&[1; 10]), Ok(10));
        // 6 bytes of room: a small write that does not fit whole waits (EAGAIN)...
        assert_eq!(w.try_write(&[2; 8]), Err(Errno::EAGAIN));
        // ...one that fits goes in whole, and a large one in part, counted.
        assert_eq!(w.try_write(&[3; 2]), Ok(2));
        let big = pattern(PIPE_BUF + 1);
        assert_eq!(w.try_write(&big), Ok(4));
        assert_eq!(w.try_write(&big), Err(Errno::EAGAIN));
        let mut buf = [0u8; 32];
        assert_eq!(block_on(r.read(&mut buf)), 16);
        assert_eq!(&buf[10..16], &[3, 3, big[0], big[1], big[2], big[3]]);
        drop(r);
        assert_eq!(w.try_write(&[1]), Err(Errno::EPIPE));
    }

    #[test]
    fn poll_read_registers_and_a_write_wakes_once() {
        let (r, w) = Pipe::with_capacity(16);
        let (n, waker) = counting_waker();
        let mut reg = PollWait::new();
        assert_eq!(r.pipe().poll_read(None), (false, false));
        assert!(!reg.is_armed(), "no waker given, nothing registered");
        assert_eq!(r.pipe().poll_read(Some((&waker, &mut reg))), (false, false));
        assert!(reg.is_armed());
        assert_eq!(n.get(), 0);
        assert_eq!(block_on(w.write(b"hi")), Ok(2));
        assert_eq!(n.get(), 1);
        // Readable now: looking again registers nothing (the stale registration is kept
        // until the caller clears it, and is harmless).
        let mut reg2 = PollWait::new();
        assert_eq!(r.pipe().poll_read(Some((&waker, &mut reg2))), (true, false));
        assert!(!reg2.is_armed());
        reg.clear();
        assert_eq!(block_on(w.write(b"!")), Ok(1));
        assert_eq!(n.get(), 1, "a cleared registration is not woken");
    }

    #[test]
    fn poll_write_waits_for_room_and_reports_a_gone_reader() {
        let (r, w) = Pipe::with_capacity(4);
        assert_eq!(w.pipe().poll_write(None), (true, false));
        assert_eq!(block_on(w.write(b"full")), Ok(4));
        let (n, waker) = counting_waker();
        let mut reg = PollWait::new();
        assert_eq!(w.pipe().poll_write(Some((&waker, &mut reg))), (false, false));
        let mut buf = [0u8; 1];
        assert_eq!(block_on(r.read(&mut buf)), 1);
        assert_eq!(n.get(), 1, "a read makes room and wakes the poller");
        assert_eq!(w.pipe().poll_write(Some((&waker, &mut reg))), (true, false));
        assert_eq!(block_on(w.write(b"x")), Ok(1));
        assert_eq!(w.pipe().poll_write(Some((&waker, &mut reg))), (false, false));
        drop(r);
        assert_eq!(n.get(), 2, "the last reader leaving wakes the poller");
        assert_eq!(w.pipe().poll_write(None), (true, true));
    }

    #[test]
    fn poll_read_reports_end_of_file_when_the_writer_goes() {
        let (r, w) = Pipe::with_capacity(4);
        let (n, waker) = counting_waker();
        let mut reg = PollWait::new();
        assert_eq!(r.pipe().poll_read(Some((&waker, &mut reg))), (false, false));
        drop(w);
        assert_eq!(n.get(), 1);
        assert_eq!(r.pipe().poll_read(None), (true, true), "readable (end of file) and hung up");
    }

    /// A change between the check and the registration is not lost: a registration with a
    /// ticket taken before a notification wakes at once.
    #[test]
    fn a_change_before_the_registration_wakes_at_once() {
        let (r, w) = Pipe::with_capacity(8);
        let p = r.pipe();
        let (n, waker) = counting_waker();
        // The check (empty), with its ticket...
        let ticket = {
            let st = p.state.lock();
            assert!(st.ring.is_empty());
            p.readable.ticket()
        };
        // ...then a write slips in before the waker is registered.
        assert_eq!(block_on(w.write(b"x")), Ok(1));
        let mut reg = PollWait::new();
        reg.arm(&p.readable, ticket, &waker);
        assert_eq!(n.get(), 1, "woken at once, so the poller looks again");
        assert!(!reg.is_armed());
    }

    #[test]
    fn dropping_a_registration_deregisters() {
        let (r, w) = Pipe::with_capacity(8);
        let (n, waker) = counting_waker();
        {
            let mut reg = PollWait::new();
            assert_eq!(r.pipe().poll_read(Some((&waker, &mut reg))), (false, false));
        }
        assert_eq!(block_on(w.write(b"x")), Ok(1));
        assert_eq!(n.get(), 0);
    }

    /// A poller thread (poll, sleep until woken, read) against a writer thread, many rounds
    /// over a tiny pipe in both directions of readiness: a lost wakeup hangs the test.
    #[test]
    fn poll_between_threads_loses_no_wakeup() {
        const ROUNDS: usize = 20_000;
        let (r, w) = Pipe::with_capacity(3);
        let writer = std::thread::spawn(move || {
            let mut reg = PollWait::new();
            for i in 0..ROUNDS {
                // Wait for room through poll_write, then write without waiting.
                block_on(core::future::poll_fn(|cx| {
                    match w.pipe().poll_write(Some((cx.waker(), &mut reg))) {
                        (true, _) => Poll::Ready(()),
                        (false, _) => Poll::Pending,
                    }
                }));
                let byte = [i as u8];
                let wrote = poll_once(pin!(w.write(&byte)));
                assert_eq!(wrote, Poll::Ready(Ok(1)), "writable but a write waits");
            }
        });
        let mut got = 0usize;
        let mut reg = PollWait::new();
        let mut buf = [0u8; 3];
        loop {
            let (ready, hup) = block_on(core::future::poll_fn(|cx| {
                match r.pipe().poll_read(Some((cx.waker(), &mut reg))) {
                    (true, hup) => Poll::Ready((true, hup)),
                    _ => Poll::Pending,
                }
            }));
            assert!(ready);
            let Poll::Ready(n) = poll_once(pin!(r.read(&mut buf))) else {
                panic!("readable but a read waits")
            };
            if n == 0 {
                assert!(hup);
                break;
            }
            for &b in &buf[..n] {
                assert_eq!(b, got as u8);
                got += 1;
            }
        }
        writer.join().unwrap();
        assert_eq!(got, ROUNDS);
    }

    #[test]
    fn ring_wraps_around() {
        let mut r = Ring::new(8);
        let mut out = [0u8; 8];
        assert_eq!(r.push(b"abcdef"), 6);
        assert_eq!(r.pop(&mut out[..4]), 4);
        assert_eq!(&out[..4], b"abcd");
        // Tail at 6, head at 4: "ghijkl" wraps; only 6 bytes of room.
        assert_eq!(r.push(b"ghijklmn"), 6);
        assert_eq!(r.free(), 0);
        assert_eq!(r.push(b"z"), 0);
        assert_eq!(r.pop(&mut out), 8);
        assert_eq!(&out, b"efghijkl");
        assert!(r.is_empty());
        assert_eq!(r.pop(&mut out), 0);
        // Many small rounds with a backlog of 5 keep the indices consistent.
        let data = pattern(1000);
        assert_eq!(r.push(&data[..5]), 5);
        let mut back = Vec::new();
        for c in data[5..].chunks(3) {
            assert_eq!(r.push(c), c.len());
            let mut b = [0u8; 3];
            let n = r.pop(&mut b[..c.len()]);
            back.extend_from_slice(&b[..n]);
        }
        let n = r.pop(&mut out);
        back.extend_from_slice(&out[..n]);
        assert_eq!(back, data);
    }

    #[test]
    fn read_returns_what_is_there_then_eof_after_writer_closes() {
        let (r, w) = Pipe::with_capacity(16);
        assert_eq!(block_on(w.write(b"hello")), Ok(5));
        let mut buf = [0u8; 64];
        assert_eq!(block_on(r.read(&mut buf)), 5);
        assert_eq!(&buf[..5], b"hello");
        // Empty with a writer: the read waits.
        let mut read = pin!(r.read(&mut buf));
        assert!(poll_once(read.as_mut()).is_pending());
        drop(w);
        assert_eq!(poll_once(read.as_mut()), Poll::Ready(0));
    }

    #[test]
    fn write_fails_with_epipe_without_readers() {
        let (r, w) = Pipe::with_capacity(16);
        drop(r);
        assert_eq!(block_on(w.write(b"x")), Err(Errno::EPIPE));
    }

    #[test]
    fn blocked_writer_gets_partial_count_when_reader_leaves() {
        let (r, w) = Pipe::with_capacity(8);
        let data = pattern(20);
        let mut write = pin!(w.write(&data));
        assert!(poll_once(write.as_mut()).is_pending()); // 8 bytes in, waiting for room
        drop(r);
        assert_eq!(poll_once(write.as_mut()), Poll::Ready(Ok(8)));
    }

    #[test]
    fn small_writes_are_atomic() {
        let (r, w) = Pipe::with_capacity(PIPE_BUF * 2);
        let mut buf = alloc::vec![0u8; PIPE_BUF * 2];
        assert_eq!(block_on(w.write(&[1; PIPE_BUF + 100])), Ok(PIPE_BUF + 100));
        // Room for PIPE_BUF - 100 bytes: a PIPE_BUF write waits rather than splitting.
        let small = [2u8; PIPE_BUF];
        let mut write = pin!(w.write(&small));
        assert!(poll_once(write.as_mut()).is_pending());
        assert_eq!(w.pipe().buffered(), PIPE_BUF + 100);
        assert_eq!(block_on(r.read(&mut buf[..200])), 200);
        assert_eq!(poll_once(write.as_mut()), Poll::Ready(Ok(PIPE_BUF)));
    }

    #[test]
    fn a_cancelled_read_leaves_the_pipe_working() {
        let (r, w) = Pipe::with_capacity(8);
        let mut buf = [0u8; 8];
        {
            let mut read = pin!(r.read(&mut buf));
            assert!(poll_once(read.as_mut()).is_pending());
        } // dropped while waiting, as when its process is killed
        assert_eq!(block_on(w.write(b"ok")), Ok(2));
        assert_eq!(block_on(r.read(&mut buf)), 2);
    }

    /// Megabytes through a small pipe between two threads, both sides waiting for each
    /// other over and over: every byte arrives in order, and no wakeup is lost (a lost one
    /// would hang the test).
    #[test]
    fn megabytes_between_threads() {
        let (r, w) = Pipe::with_capacity(4096);
        let data = pattern(3 << 20);
        let expect = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in data.chunks(10_000) {
                assert_eq!(block_on(w.write(chunk)), Ok(chunk.len()));
            }
        });
        let mut got = Vec::new();
        let mut buf = alloc::vec![0u8; 3000];
        loop {
            let n = block_on(r.read(&mut buf));
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        writer.join().unwrap();
        assert!(got == expect, "{} bytes arrived of {}", got.len(), expect.len());
    }

    #[test]
    fn reader_gone_mid_stream_stops_a_writer_thread() {
        let (r, w) = Pipe::with_capacity(1024);
        let writer = std::thread::spawn(move || {
            let chunk = [7u8; 1000];
            loop {
                match block_on(w.write(&chunk)) {
                    Ok(_) => {}
                    Err(e) => return e,
                }
            }
        });
        let mut buf = [0u8; 500];
        for _ in 0..50 {
            assert!(block_on(r.read(&mut buf)) > 0);
        }
        drop(r);
        assert_eq!(writer.join().unwrap(), Errno::EPIPE);
    }
}
