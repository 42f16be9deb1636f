//! The input router's decisions, as pure state machines with no kernel dependencies
//! (unit-tested on the host: `mkimage/tests/kernel_console.rs`); the input task in
//! [`super`] owns one of each.
//!
//! - [`DetachKeys`] spots Docker's detach keys, `^P ^Q`, in the input bytes. A `^P` is held
//!   back until the next byte: with `^Q` the two are the detach keys and the console gets
//!   neither; with anything else the `^P` goes on, then that byte.
//! - [`Fronts`] is which console is in front and where the user came from: a stack of the
//!   consoles in front before, so `^P ^Q` goes back the way the user came (and to the home
//!   console, the root's, when the stack is empty). A console is at most once in it, never
//!   the one in front, and consoles that went away are taken out ([`Fronts::retain`]): the
//!   stack is never longer than the number of consoles.

use alloc::vec::Vec;

pub const CTRL_P: u8 = 0x10;
pub const CTRL_Q: u8 = 0x11;

/// Spots `^P ^Q` (see the module docs).
#[derive(Debug, Default)]
pub struct DetachKeys {
    /// A `^P` was the last byte and has not been passed on.
    held: bool,
}

impl DetachKeys {
    pub const fn new() -> Self {
        DetachKeys { held: false }
    }

    /// One input byte: the bytes for the console go to `pass` (none, one or two); returns
    /// true for the detach keys.
    pub fn feed(&mut self, b: u8, mut pass: impl FnMut(u8)) -> bool {
        let held = core::mem::replace(&mut self.held, b == CTRL_P);
        match (held, b) {
            (true, CTRL_Q) => {
                self.held = false;
                return true;
            }
            (true, _) => pass(CTRL_P),
            (false, _) => {}
        }
        if b != CTRL_P {
            pass(b);
        }
        false
    }
}

/// The console in front and the stack of those before it (see the module docs). `T` is a
/// console handle compared by identity.
#[derive(Debug)]
pub struct Fronts<T> {
    home: T,
    front: T,
    /// The consoles in front before, the most recent last.
    back: Vec<T>,
}

impl<T: Clone + PartialEq> Fronts<T> {
    pub fn new(home: T) -> Self {
        Fronts { front: home.clone(), home, back: Vec::new() }
    }

    pub fn front(&self) -> &T {
        &self.front
    }

    /// The stack, the most recent last (for the tests of the invariants).
    #[cfg(test)]
    pub fn back(&self) -> &[T] {
        &self.back
    }

    /// `to` comes to the front; the console in front goes on the stack. False when `to` is
    /// in front already (nothing changes).
    pub fn switch(&mut self, to: T) -> bool {
        if to == self.front {
            return false;
        }
        self.back.retain(|t| *t != to);
        let was = core::mem::replace(&mut self.front, to);
        self.back.push(was);
        true
    }

    /// `^P ^Q`: back to the console in front before (the home console when there is none).
    /// False when nothing changes (the home console is in front with an empty stack).
    pub fn go_back(&mut self) -> bool {
        match self.back.pop() {
            Some(t) => {
                self.front = t;
                true
            }
            None if self.front != self.home => {
                self.front = self.home.clone();
                true
            }
            None => false,
        }
    }

    /// Keep only the consoles for which `usable` holds (the home console always stays);
    /// when the one in front is not, go back. True when the front changed.
    pub fn retain(&mut self, usable: impl Fn(&T) -> bool) -> bool {
        let home = self.home.clone();
        self.back.retain(|t| *t == home || usable(t));
        if self.front == self.home || usable(&self.front) {
            return false;
        }
        self.go_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(input: &[u8]) -> (Vec<u8>, usize) {
        let mut k = DetachKeys::new();
        let mut out = Vec::new();
        let mut detaches = 0;
        for &b in input {
            if k.feed(b, |b| out.push(b)) {
                detaches += 1;
            }
        }
        (out, detaches)
    }

    #[test]
    fn ctrl_p_ctrl_q_detaches_and_is_not_passed_on() {
        assert_eq!(keys(b"ab\x10\x11cd"), (b"abcd".to_vec(), 1));
        assert_eq!(keys(b"\x10\x11\x10\x11"), (Vec::new(), 2));
    }

    #[test]
    fn ctrl_p_before_anything_else_is_passed_on_with_it() {
        assert_eq!(keys(b"\x10x"), (b"\x10x".to_vec(), 0));
        assert_eq!(keys(b"\x11"), (b"\x11".to_vec(), 0), "^Q alone is a byte");
        // ^P ^P ^Q: the first ^P goes on, the second and ^Q detach.
        assert_eq!(keys(b"\x10\x10\x11"), (b"\x10".to_vec(), 1));
        // ^P ^C: the console gets both (^C interrupts as ever).
        assert_eq!(keys(b"\x10\x03"), (b"\x10\x03".to_vec(), 0));
    }

    #[test]
    fn a_held_ctrl_p_waits_for_the_next_byte() {
        let mut k = DetachKeys::new();
        let mut out = Vec::new();
        assert!(!k.feed(CTRL_P, |b| out.push(b)));
        assert!(out.is_empty(), "held back");
        assert!(k.feed(CTRL_Q, |b| out.push(b)));
        assert!(out.is_empty());
        assert!(!k.feed(CTRL_Q, |b| out.push(b)), "the detach keys are used up");
        assert_eq!(out, [CTRL_Q]);
    }

    #[test]
    fn switching_and_going_back_the_way_the_user_came() {
        let mut f = Fronts::new(1u32);
        assert!(!f.switch(1), "already in front");
        assert!(f.switch(2));
        assert!(f.switch(3));
        assert_eq!((*f.front(), f.back()), (3, &[1, 2][..]));
        assert!(f.go_back());
        assert_eq!(*f.front(), 2);
        assert!(f.go_back());
        assert_eq!(*f.front(), 1);
        assert!(!f.go_back(), "home, nowhere further back");
        assert_eq!(*f.front(), 1);
    }

    #[test]
    fn a_console_is_once_on_the_stack() {
        let mut f = Fronts::new(1u32);
        // 1 -> 2 -> 1 (`attach 1` in the container) -> 2 -> 1 ...: the stack stays short.
        for _ in 0..10 {
            f.switch(2);
            f.switch(1);
        }
        assert_eq!((*f.front(), f.back()), (1, &[2][..]));
        assert!(f.go_back());
        assert_eq!((*f.front(), f.back()), (2, &[][..]));
        assert!(f.go_back(), "an empty stack goes home");
        assert_eq!(*f.front(), 1);
    }

    #[test]
    fn consoles_that_went_away_are_skipped() {
        let mut f = Fronts::new(1u32);
        f.switch(2);
        f.switch(3);
        f.switch(4);
        // 3 went away while 4 is in front: ^P ^Q goes to 2.
        assert!(!f.retain(|&t| t != 3));
        assert_eq!(f.back(), &[1, 2]);
        assert!(f.go_back());
        assert_eq!(*f.front(), 2);
        // The one in front goes away: back to the previous one.
        assert!(f.retain(|&t| t != 2));
        assert_eq!(*f.front(), 1);
        // The home console is never taken out, even when the test says so.
        f.switch(5);
        assert!(f.retain(|&t| t != 5 && t != 1));
        assert_eq!((*f.front(), f.back()), (1, &[][..]));
        assert!(!f.retain(|_| false));
    }
}
