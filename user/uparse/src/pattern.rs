//! grep's patterns: a small regular-expression language over bytes.
//!
//! - `c` matches the byte `c`; `\c` matches `c` even when it is special;
//! - `.` matches any byte;
//! - `x*` matches zero or more of `x` (a `*` with nothing before it is a literal `*`);
//! - `^` at the start anchors the match at the start of the line;
//! - `$` at the end anchors it at the end of the line.
//!
//! Matching backtracks; patterns are short and lines are too.

use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Byte(u8),
    Any,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Atom {
    class: Class,
    star: bool,
}

impl Atom {
    fn matches(&self, b: u8) -> bool {
        match self.class {
            Class::Byte(c) => c == b,
            Class::Any => true,
        }
    }
}

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    atoms: Vec<Atom>,
    start: bool,
    end: bool,
}

impl Pattern {
    /// Compiles `pattern`; every string is a valid pattern.
    pub fn new(pattern: &str) -> Pattern {
        let mut bytes = pattern.as_bytes();
        let start = bytes.first() == Some(&b'^');
        if start {
            bytes = &bytes[1..];
        }
        // A final `$` anchors unless escaped (an odd number of backslashes before it).
        let mut end = false;
        if bytes.last() == Some(&b'$') {
            let slashes =
                bytes[..bytes.len() - 1].iter().rev().take_while(|&&b| b == b'\\').count();
            if slashes % 2 == 0 {
                end = true;
                bytes = &bytes[..bytes.len() - 1];
            }
        }
        let mut atoms: Vec<Atom> = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let class = match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    i += 1;
                    Class::Byte(bytes[i])
                }
                b'.' => Class::Any,
                b'*' if atoms.last().is_some_and(|a| !a.star) => {
                    if let Some(last) = atoms.last_mut() {
                        last.star = true;
                    }
                    i += 1;
                    continue;
                }
                b => Class::Byte(b),
            };
            atoms.push(Atom { class, star: false });
            i += 1;
        }
        Pattern { atoms, start, end }
    }

    /// Whether the pattern matches somewhere in `line` (which should not hold its `\n`).
    pub fn is_match(&self, line: &[u8]) -> bool {
        if self.start {
            return self.match_here(&self.atoms, line);
        }
        (0..=line.len()).any(|i| self.match_here(&self.atoms, &line[i..]))
    }

    fn match_here(&self, atoms: &[Atom], text: &[u8]) -> bool {
        let Some((atom, rest)) = atoms.split_first() else {
            return !self.end || text.is_empty();
        };
        if atom.star {
            // Shortest first: zero repetitions, then one more at a time.
            let mut i = 0;
            loop {
                if self.match_here(rest, &text[i..]) {
                    return true;
                }
                if i < text.len() && atom.matches(text[i]) {
                    i += 1;
                } else {
                    return false;
                }
            }
        }
        match text.split_first() {
            Some((&b, tail)) if atom.matches(b) => self.match_here(rest, tail),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, text: &str) -> bool {
        Pattern::new(p).is_match(text.as_bytes())
    }

    #[test]
    fn literals() {
        assert!(m("rust", "rustix kernel"));
        assert!(m("kernel", "rustix kernel"));
        assert!(!m("linux", "rustix kernel"));
        assert!(m("", "anything"));
        assert!(m("", ""));
        assert!(!m("a", ""));
    }

    #[test]
    fn dot_and_star() {
        assert!(m("r.st", "rust"));
        assert!(!m("r.st", "rst"));
        assert!(m("ab*c", "ac"));
        assert!(m("ab*c", "abbbc"));
        assert!(!m("ab*c", "abxc"));
        assert!(m("a.*z", "a to z"));
        assert!(!m("a.*z", "z to a"));
        assert!(m("*x", "a*x"));
        assert!(!m("*x", "ax"));
        assert!(m("a**", "a*"));
    }

    #[test]
    fn anchors() {
        assert!(m("^rust", "rustix"));
        assert!(!m("^ix", "rustix"));
        assert!(m("ix$", "rustix"));
        assert!(!m("rust$", "rustix"));
        assert!(m("^rustix$", "rustix"));
        assert!(!m("^rustix$", "rustix!"));
        assert!(m("^$", ""));
        assert!(!m("^$", "x"));
        assert!(m("^.*$", "whatever"));
        assert!(m("a^b", "xa^by"));
        assert!(m("a$b", "a$b"));
    }

    #[test]
    fn escapes() {
        assert!(m(r"a\.b", "a.b"));
        assert!(!m(r"a\.b", "axb"));
        assert!(m(r"\*", "2*3"));
        assert!(m(r"cost\$", "cost$"));
        assert!(!m(r"cost\$", "cost"));
        assert!(m(r"\\$", r"end\"));
        assert!(m(r"\^x", "a^x"));
    }
}
