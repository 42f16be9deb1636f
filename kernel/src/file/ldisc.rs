//! The console's line discipline, as pure state machines with no kernel dependencies (they
//! are unit-tested on the host: `mkimage/tests/kernel_file.rs` compiles this file there).
//!
//! [`LineDiscipline`] is fed one input byte at a time and answers with an [`Action`]: what
//! to echo, and whether a line (or an end of file, or an interrupt) is complete. Completed
//! input goes into an [`InputQueue`] of records, which `read` drains.
//!
//! The console is always in canonical (line) mode: there is no raw mode. So the console is
//! readable ([`InputQueue::readable`], what `poll` reports) exactly when a record is complete
//! (a line, what `^D` delivered, or an end of file); a line still being typed is not input
//! yet.
//!
//! Keys:
//! - printable ASCII: appended to the line and echoed;
//! - Enter (`\r` or `\n`; a `\n` right after a `\r` is the same Enter): the line plus `\n`
//!   is complete; the echo is a newline;
//! - Backspace / DEL (`0x08`, `0x7f`): erase the last character; `^W`: the last word;
//!   `^U`: the whole line (each erased on the screen with `\b \b`);
//! - `^D`: end of file. The bytes typed so far are delivered *without* a newline; at an
//!   empty line that is an empty record, which a `read` returns as 0 (end of file);
//! - `^C`: the line is discarded and `^C` echoed; the caller interrupts the foreground job.
//!
//! Everything else (other control characters, bytes beyond [`MAX_LINE`]) is ignored.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The longest line (without its newline).
pub const MAX_LINE: usize = 1024;
/// The most bytes of completed input kept for readers; lines beyond it are dropped.
pub const MAX_QUEUED: usize = 16 * 1024;

pub const CTRL_C: u8 = 0x03;
pub const CTRL_D: u8 = 0x04;
pub const BACKSPACE: u8 = 0x08;
pub const CTRL_U: u8 = 0x15;
pub const CTRL_W: u8 = 0x17;
pub const DEL: u8 = 0x7f;

/// What one input byte did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing visible happened.
    None,
    /// The character was added to the line.
    Echo(u8),
    /// This many characters were erased from the end of the line.
    Erase(usize),
    /// Enter: the line, ending in `\n`.
    Line(Vec<u8>),
    /// `^D`: the bytes typed so far, no newline (empty = end of file).
    Eof(Vec<u8>),
    /// `^C`: the line was discarded.
    Interrupt,
}

impl Action {
    /// The bytes to show for this action, handed to `out` (nothing for `None` and `Eof`).
    pub fn echo(&self, mut out: impl FnMut(&[u8])) {
        match self {
            Action::None | Action::Eof(_) => {}
            Action::Echo(c) => out(&[*c]),
            Action::Erase(n) => (0..*n).for_each(|_| out(b"\x08 \x08")),
            Action::Line(_) => out(b"\n"),
            Action::Interrupt => out(b"^C\n"),
        }
    }
}

/// The line being edited.
#[derive(Debug, Default)]
pub struct LineDiscipline {
    line: Vec<u8>,
    /// The previous byte was `\r` (so a `\n` now is the second half of one Enter).
    after_cr: bool,
}

impl LineDiscipline {
    pub const fn new() -> Self {
        LineDiscipline { line: Vec::new(), after_cr: false }
    }

    /// The line typed so far (not yet complete).
    #[cfg(test)]
    pub fn pending(&self) -> &[u8] {
        &self.line
    }

    pub fn feed(&mut self, b: u8) -> Action {
        let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
        match b {
            b'\n' if after_cr => Action::None,
            b'\r' | b'\n' => {
                let mut line = core::mem::take(&mut self.line);
                line.push(b'\n');
                Action::Line(line)
            }
            BACKSPACE | DEL => self.erase(usize::from(!self.line.is_empty())),
            CTRL_U => self.erase(self.line.len()),
            CTRL_W => {
                let trailing = self.line.iter().rev().take_while(|&&c| c == b' ').count();
                let word = self.line[..self.line.len() - trailing]
                    .iter()
                    .rev()
                    .take_while(|&&c| c != b' ')
                    .count();
                self.erase(trailing + word)
            }
            CTRL_D => Action::Eof(core::mem::take(&mut self.line)),
            CTRL_C => {
                self.line.clear();
                Action::Interrupt
            }
            b' '..=b'~' if self.line.len() < MAX_LINE => {
                self.line.push(b);
                Action::Echo(b)
            }
            _ => Action::None,
        }
    }

    fn erase(&mut self, n: usize) -> Action {
        if n == 0 {
            return Action::None;
        }
        self.line.truncate(self.line.len() - n);
        Action::Erase(n)
    }
}

/// Completed input waiting for readers: a queue of records (lines, or what `^D` delivered).
/// A read returns bytes of one record at most, so a program reading the console gets one
/// line per read; an empty record is an end of file, returned as a read of 0.
#[derive(Debug, Default)]
pub struct InputQueue {
    records: VecDeque<Vec<u8>>,
    /// Bytes of the front record already read.
    front_read: usize,
    bytes: usize,
}

impl InputQueue {
    pub const fn new() -> Self {
        InputQueue { records: VecDeque::new(), front_read: 0, bytes: 0 }
    }

    /// Queue a record. Returns false (and drops it) when [`MAX_QUEUED`] bytes are waiting
    /// already; an end-of-file record is always kept.
    pub fn push(&mut self, record: Vec<u8>) -> bool {
        if !record.is_empty() && self.bytes + record.len() > MAX_QUEUED {
            return false;
        }
        self.bytes += record.len();
        self.records.push_back(record);
        true
    }

    /// Nothing to read (a reader would wait).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A read would not wait: a complete record (or an end of file) is queued.
    pub fn readable(&self) -> bool {
        !self.is_empty()
    }

    /// Bytes waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes - self.front_read
    }

    /// Discard everything queued.
    pub fn clear(&mut self) {
        *self = InputQueue::new();
    }

    /// Copy bytes of the front record into `dst`: `None` when nothing is queued, `Some(0)`
    /// for an end-of-file record (consumed) or an empty `dst`.
    pub fn read(&mut self, dst: &mut [u8]) -> Option<usize> {
        let front = self.records.front()?;
        if front.is_empty() {
            self.records.pop_front();
            return Some(0);
        }
        let rest = &front[self.front_read..];
        let n = rest.len().min(dst.len());
        dst[..n].copy_from_slice(&rest[..n]);
        self.front_read += n;
        if self.front_read == front.len() {
            self.bytes -= front.len();
            self.front_read = 0;
            self.records.pop_front();
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Feed `input`; return the actions that were not `None`, and the echoed bytes.
    fn run(ld: &mut LineDiscipline, input: &[u8]) -> (Vec<Action>, Vec<u8>) {
        let mut echo = Vec::new();
        let mut actions = Vec::new();
        for &b in input {
            let a = ld.feed(b);
            a.echo(|s| echo.extend_from_slice(s));
            if a != Action::None {
                actions.push(a);
            }
        }
        (actions, echo)
    }

    fn lines(actions: &[Action]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Line(l) | Action::Eof(l) => Some(l.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn typing_and_enter_make_a_line_with_its_echo() {
        let mut ld = LineDiscipline::new();
        let (actions, echo) = run(&mut ld, b"ls -l\n");
        assert_eq!(lines(&actions), vec![b"ls -l\n".to_vec()]);
        assert_eq!(echo, b"ls -l\n");
        assert!(ld.pending().is_empty());
    }

    #[test]
    fn cr_lf_and_lone_cr_are_one_enter_each() {
        let mut ld = LineDiscipline::new();
        let (actions, _) = run(&mut ld, b"a\r\nb\rc\n\n");
        assert_eq!(lines(&actions), vec![&b"a\n"[..], b"b\n", b"c\n", b"\n"]);
    }

    #[test]
    fn backspace_del_and_erase_at_empty_line() {
        let mut ld = LineDiscipline::new();
        let (actions, echo) = run(&mut ld, b"ab\x08c\x7f\x7f\x7fd\n");
        assert_eq!(lines(&actions), vec![b"d\n".to_vec()]);
        // Two erases of one character each; the third DEL at an empty line shows nothing.
        assert_eq!(echo, b"ab\x08 \x08c\x08 \x08\x08 \x08d\n");
    }

    #[test]
    fn ctrl_u_kills_the_line_and_ctrl_w_a_word() {
        let mut ld = LineDiscipline::new();
        let (actions, _) = run(&mut ld, b"junk here\x15echo hi  \x17yo\n");
        assert_eq!(lines(&actions), vec![b"echo yo\n".to_vec()]);
        assert!(actions.contains(&Action::Erase(9)));
        assert!(actions.contains(&Action::Erase(4))); // "hi" and two spaces
        assert_eq!(run(&mut ld, b"\x15\x17").0, vec![]); // nothing to erase
    }

    #[test]
    fn ctrl_d_delivers_the_partial_line_or_end_of_file() {
        let mut ld = LineDiscipline::new();
        let (actions, echo) = run(&mut ld, b"abc\x04\x04");
        assert_eq!(
            actions,
            vec![
                Action::Echo(b'a'),
                Action::Echo(b'b'),
                Action::Echo(b'c'),
                Action::Eof(b"abc".to_vec()),
                Action::Eof(vec![])
            ]
        );
        assert_eq!(echo, b"abc"); // ^D echoes nothing
    }

    #[test]
    fn ctrl_c_discards_the_line() {
        let mut ld = LineDiscipline::new();
        let (actions, echo) = run(&mut ld, b"sleep 100\x03ok\n");
        assert!(actions.contains(&Action::Interrupt));
        assert_eq!(lines(&actions), vec![b"ok\n".to_vec()]);
        assert_eq!(echo, b"sleep 100^C\nok\n");
    }

    #[test]
    fn control_bytes_are_ignored_and_lines_are_bounded() {
        let mut ld = LineDiscipline::new();
        assert_eq!(run(&mut ld, b"\x00\x01\x1b\t\xff").0, vec![]);
        let long = vec![b'x'; MAX_LINE + 10];
        let (actions, echo) = run(&mut ld, &long);
        assert_eq!(actions.len(), MAX_LINE);
        assert_eq!(echo.len(), MAX_LINE);
        assert_eq!(ld.pending().len(), MAX_LINE);
    }

    /// What `poll` on the console reports: readable only once a record is complete (a line,
    /// `^D`'s partial line, an end of file), never for a line still being typed; and no
    /// longer once it is read.
    #[test]
    fn readable_only_with_a_complete_record() {
        let mut ld = LineDiscipline::new();
        let mut q = InputQueue::new();
        let mut feed = |q: &mut InputQueue, input: &[u8]| {
            for &b in input {
                if let Action::Line(r) | Action::Eof(r) = ld.feed(b) {
                    q.push(r);
                }
            }
        };
        assert!(!q.readable());
        feed(&mut q, b"ls -l");
        assert!(!q.readable(), "a line being typed is not input yet");
        feed(&mut q, b"\x08\x15x");
        assert!(!q.readable(), "nor is an edited one");
        feed(&mut q, b"\r");
        assert!(q.readable(), "Enter completes the line");
        let mut buf = [0u8; 1];
        assert_eq!(q.read(&mut buf), Some(1));
        assert!(q.readable(), "half a line is still there");
        assert_eq!(q.read(&mut buf), Some(1));
        assert!(!q.readable(), "all read");
        feed(&mut q, b"ab\x04");
        assert!(q.readable(), "^D delivers the partial line");
        assert_eq!(q.read(&mut [0u8; 8]), Some(2));
        feed(&mut q, b"\x04");
        assert!(q.readable(), "^D at an empty line: end of file, a read of 0");
        assert_eq!(q.read(&mut [0u8; 8]), Some(0));
        assert!(!q.readable());
        feed(&mut q, b"zz\x03");
        assert!(!q.readable(), "^C discards the line");
    }

    #[test]
    fn queue_reads_one_record_at_a_time_in_pieces() {
        let mut q = InputQueue::new();
        let mut buf = [0u8; 4];
        assert_eq!(q.read(&mut buf), None);
        assert!(q.push(b"hello\n".to_vec()));
        assert!(q.push(b"ab\n".to_vec()));
        assert_eq!(q.len(), 9);
        assert_eq!(q.read(&mut buf), Some(4));
        assert_eq!(&buf, b"hell");
        assert_eq!(q.len(), 5);
        assert_eq!(q.read(&mut buf), Some(2)); // the rest of the first line only
        assert_eq!(&buf[..2], b"o\n");
        assert_eq!(q.read(&mut buf), Some(3));
        assert_eq!(&buf[..3], b"ab\n");
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn queue_end_of_file_record_reads_as_zero_once() {
        let mut q = InputQueue::new();
        let mut buf = [0u8; 8];
        q.push(b"abc".to_vec()); // ^D after "abc"
        q.push(Vec::new()); // ^D at an empty line
        q.push(b"x\n".to_vec());
        assert_eq!(q.read(&mut buf), Some(3));
        assert_eq!(q.read(&mut buf), Some(0));
        assert_eq!(q.read(&mut buf), Some(2));
        assert_eq!(q.read(&mut buf), None);
    }

    #[test]
    fn queue_is_bounded_but_keeps_end_of_file() {
        let mut q = InputQueue::new();
        let line = vec![b'y'; MAX_LINE];
        let fit = MAX_QUEUED / MAX_LINE;
        for _ in 0..fit {
            assert!(q.push(line.clone()));
        }
        assert!(!q.push(line.clone()));
        assert!(q.push(Vec::new()));
        assert_eq!(q.len(), fit * MAX_LINE);
        q.clear();
        assert!(q.is_empty());
        assert!(q.push(line));
    }
}
