//! The program's arguments: the `argv` the kernel put on the new stack.

/// An iterator over the arguments, `argv[0]` (the program's name) first.
///
/// The strings live on the initial stack for the whole life of the program, hence
/// `&'static`. An argument that is not UTF-8 stops at its first invalid byte.
#[derive(Clone, Debug)]
pub struct Args {
    argv: *const *const u8,
    pos: usize,
    len: usize,
}

impl Args {
    /// No arguments.
    pub const fn empty() -> Args {
        Args { argv: core::ptr::null(), pos: 0, len: 0 }
    }

    /// The arguments `_start` received: at most `argc` of them, fewer if the array's NULL
    /// comes first.
    ///
    /// # Safety
    /// `argv` is null or a NULL-terminated array of NUL-terminated strings that stay in place.
    pub unsafe fn from_raw(argc: usize, argv: *const *const u8) -> Args {
        if argv.is_null() {
            return Args::empty();
        }
        let mut len = 0;
        while len < argc && !(*argv.add(len)).is_null() {
            len += 1;
        }
        Args { argv, pos: 0, len }
    }

    /// Argument `i` (0 is the program's name), whatever has been iterated.
    pub fn get(&self, i: usize) -> Option<&'static str> {
        if i >= self.len {
            return None;
        }
        // SAFETY: `from_raw`'s contract; `i` is below the counted length.
        unsafe { Some(c_str(*self.argv.add(i))) }
    }

    /// All the arguments left, collected.
    pub fn to_vec(&self) -> alloc::vec::Vec<&'static str> {
        self.clone().collect()
    }
}

impl Iterator for Args {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        let a = self.get(self.pos)?;
        self.pos += 1;
        Some(a)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.pos;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Args {}

/// A NUL-terminated string as `&str` (up to its first invalid UTF-8 byte).
///
/// # Safety
/// `p` points to a NUL-terminated string that is never freed.
pub unsafe fn c_str(p: *const u8) -> &'static str {
    let mut n = 0;
    while *p.add(n) != 0 {
        n += 1;
    }
    let bytes = core::slice::from_raw_parts(p, n);
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8_unchecked(&bytes[..e.valid_up_to()]),
    }
}
