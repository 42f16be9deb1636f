//! The console device (the tty): one kernel task owns the keyboard and serial input queues,
//! runs every byte through the line discipline ([`super::ldisc`]), echoes, and queues
//! complete lines for readers. Output goes to the kernel log (serial port and VGA screen).
//!
//! Both the kernel's own console (`crate::console`, when there is no `/bin/init`) and user
//! programs (a descriptor open on a console device inode) read lines from here, so there is
//! exactly one line discipline.
//!
//! `^C`: the line being typed is discarded and `^C` echoed; then the foreground process
//! (set with `setfg`) is killed, and the input already queued for it is discarded. With no
//! foreground process (or one that is gone), `^C` delivers an empty line instead, so a
//! shell waiting at its prompt simply prompts again.
//!
//! A key press, end to end: IRQ 1 -> `ps2::handle_irq` pushes the scancode and wakes the
//! input task -> the keyboard's stream (`ps2::chars`, merged with the serial port's bytes by
//! `futures_util::stream::select`) decodes a character -> `LineDiscipline::feed` -> echo; on
//! Enter the line goes into the input queue and `notify_all` wakes a process blocked in
//! `read` (its process waker makes it runnable).
//!
//! `poll` on the console ([`poll_read`]) reports it readable only when a complete record is
//! queued (canonical mode; there is no raw mode), and waits on the same queue as `read`.
//!
//! Locks (`docs/locks.md`): the input queue (`ConsoleInput`), then the readability queue's
//! (`WaitQueue`), taken under it for tickets and `poll` registrations.

use super::ldisc::{Action, InputQueue, LineDiscipline};
use super::poll::PollWait;
use crate::proc::{self, Pid};
use alloc::vec::Vec;
use core::future::ready;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::Waker;
use drivers::{ps2, serial};
use futures_util::{stream, Stream, StreamExt};
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;

/// Completed input, waiting for `read`.
static INPUT: Mutex<InputQueue> = Mutex::new(Rank::ConsoleInput, InputQueue::new());
/// Notified whenever a record is queued.
static READABLE: WaitQueue = WaitQueue::new();
/// The process `^C` kills (0: none).
static FOREGROUND: AtomicU32 = AtomicU32::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);

/// Start the input task (once; later calls do nothing). It takes over the serial and
/// keyboard input queues, so it is not started in modes that read them directly (`selftest`).
pub fn start() {
    if !STARTED.swap(true, Ordering::SeqCst) {
        crate::exec::spawn(input_task());
    }
}

/// Set the process `^C` interrupts (0: none).
pub fn set_foreground(pid: Pid) {
    FOREGROUND.store(pid, Ordering::SeqCst);
}

/// Wait for input; returns bytes of one line at most (the rest stays for the next read),
/// or 0 for an end of file (`^D` at an empty line).
pub async fn read(buf: &mut [u8]) -> usize {
    loop {
        let ticket = {
            let mut q = INPUT.lock();
            if let Some(n) = q.read(buf) {
                return n;
            }
            READABLE.ticket()
        };
        READABLE.wait(ticket).await;
    }
}

/// For `poll`: whether a read would return at once (a complete line, or an end of file, is
/// queued). With a waker and nothing queued, the waker is registered in `reg` for the next
/// record: the ticket is taken under the queue's lock with the check, and `deliver` queues
/// under that lock and notifies after (see [`PollWait`]).
pub fn poll_read<'a>(w: Option<(&Waker, &mut PollWait<'a>)>) -> bool {
    let q = INPUT.lock();
    let ready = q.readable();
    if let (false, Some((w, reg))) = (ready, w) {
        reg.arm(&READABLE, READABLE.ticket(), w);
    }
    ready
}

/// Show `bytes` (serial and screen). Bytes that are not UTF-8 show as U+FFFD.
pub fn write(bytes: &[u8]) {
    // A bounded piece at a time: the log lock keeps interrupts off while it is held.
    for piece in bytes.chunks(256) {
        crate::log::with(|out| {
            use core::fmt::Write;
            for chunk in piece.utf8_chunks() {
                let _ = out.write_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    let _ = out.write_char(char::REPLACEMENT_CHARACTER);
                }
            }
        });
    }
}

fn deliver(record: Vec<u8>) {
    if INPUT.lock().push(record) {
        READABLE.notify_all();
    }
}

fn interrupt() {
    let fg = FOREGROUND.load(Ordering::SeqCst);
    if fg != 0 && proc::get(fg).is_some_and(|p| proc::kill(&p).is_ok()) {
        INPUT.lock().clear(); // typed ahead for the job that was just killed
    } else {
        deliver(b"\n".to_vec());
    }
}

/// Every input byte from both devices, in arrival order per device: the serial port's bytes
/// and the keyboard's ASCII characters (the line discipline is byte-oriented). The task waits
/// on both at once, with one waker registered in both interrupt queues.
fn input() -> impl Stream<Item = u8> + Unpin {
    let keys = ps2::chars().filter(|c| ready(c.is_ascii())).map(|c| c as u8);
    stream::select(serial::input(), keys)
}

async fn input_task() {
    let mut ld = LineDiscipline::new();
    let mut input = input();
    while let Some(byte) = input.next().await {
        let action = ld.feed(byte);
        action.echo(write);
        match action {
            Action::Line(record) | Action::Eof(record) => deliver(record),
            Action::Interrupt => interrupt(),
            Action::None | Action::Echo(_) | Action::Erase(_) => {}
        }
    }
}
