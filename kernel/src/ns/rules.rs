//! The namespace rules that need no kernel: which ids are free, which `spawn` flags are
//! valid, and where `exec` looks for a program and `nspcopy` puts a copy. Pure
//! functions, unit-tested on the host (`mkimage/tests/kernel_ns.rs`); `ns/mod.rs` and the
//! system calls apply them.

use abi::syscall::ns::{MAX_DEPTH, MAX_LIVE, NEWFS, NEWNET, NEWPID, ROOT};
use abi::syscall::Errno;

/// The kinds a namespace isolates (`spawn`'s flags; the root has every kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(pub usize);

impl Kinds {
    pub const ALL: Kinds = Kinds(NEWPID | NEWFS | NEWNET);

    pub fn pid(self) -> bool {
        self.0 & NEWPID != 0
    }
    pub fn fs(self) -> bool {
        self.0 & NEWFS != 0
    }
    pub fn net(self) -> bool {
        self.0 & NEWNET != 0
    }

    /// `pid,fs,net`, or the subset isolated.
    pub fn names(self) -> &'static str {
        match (self.pid(), self.fs(), self.net()) {
            (true, true, true) => "pid,fs,net",
            (true, true, false) => "pid,fs",
            (true, false, true) => "pid,net",
            (false, true, true) => "fs,net",
            (true, false, false) => "pid",
            (false, true, false) => "fs",
            (false, false, true) => "net",
            (false, false, false) => "-",
        }
    }
}

/// `spawn`'s flags as kinds: `EINVAL` for none, for unknown bits, and for kinds in
/// `unsupported` (kinds a kernel cannot isolate; none today).
pub fn spawn_kinds(flags: usize, unsupported: usize) -> Result<Kinds, Errno> {
    let known = NEWPID | NEWFS | NEWNET;
    if flags == 0 || flags & !known != 0 || flags & unsupported != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Kinds(flags))
}

/// The depth of a child of a namespace at `parent_depth` (the root is 0); `ENOSPC` past
/// [`MAX_DEPTH`].
pub fn child_depth(parent_depth: u32) -> Result<u32, Errno> {
    match parent_depth.checked_add(1) {
        Some(d) if d <= MAX_DEPTH => Ok(d),
        _ => Err(Errno::ENOSPC),
    }
}

/// The lowest free id from 2 (the root is [`ROOT`] = 1), given which ids are taken; `EAGAIN`
/// once [`MAX_LIVE`] namespaces (the root included) exist. `taken(id)` is asked for ids in
/// `2..=MAX_LIVE` only.
pub fn lowest_free_id(taken: impl Fn(u32) -> bool) -> Result<u32, Errno> {
    (ROOT + 1..=MAX_LIVE as u32).find(|&id| !taken(id)).ok_or(Errno::EAGAIN)
}

/// Who may bring namespace `target`'s console to the front (`attach`), from a process whose
/// home is `caller`: from the root, any namespace; from a container, its strict descendants
/// (`below`: `target` is one) and the root, the way back. Never a sibling, an ancestor but
/// the root, or itself (`EPERM`).
pub fn may_attach(caller: u32, target: u32, below: bool) -> Result<(), Errno> {
    if caller == ROOT || target == ROOT || below {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Who may start a process in namespace `target` (`nsenter`): only a strict ancestor
/// (`below`: `target` is a strict descendant of the caller's home), as for `nspcopy`.
pub fn may_enter(below: bool) -> Result<(), Errno> {
    if below {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// Where `exec(path)` looks, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecLookup<'a> {
    /// A plain name: the global `/bin/<name>` (the disk's, whatever the caller's root), then
    /// the name in the caller's working directory.
    BinThenCwd(&'a [u8]),
    /// A name with a `/`: only in the caller's own view (its root and working directory);
    /// never in the global `/bin`, so `../x` or `/bin/../x` cannot reach outside the root.
    CallerOnly(&'a [u8]),
}

pub fn exec_lookup(path: &[u8]) -> ExecLookup<'_> {
    if path.contains(&b'/') {
        ExecLookup::CallerOnly(path)
    } else {
        ExecLookup::BinThenCwd(path)
    }
}

/// Split `path` into its directory part and last name (`"/a/b"` -> `("/a", "b")`; a name
/// without a directory, `"b"`, is in the root: `("/", "b")`). `nspcopy`'s destination.
pub fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&c| c == b'/') {
        Some(0) => (b"/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (b"/", trimmed),
    }
}

/// The last name of `path` (`"/www/index.html"` -> `"index.html"`): where `nspcopy` puts a
/// copy when no destination is given (`/` + this).
pub fn last_name(path: &[u8]) -> &[u8] {
    split_last(path).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_flags() {
        assert_eq!(spawn_kinds(NEWPID, 0), Ok(Kinds(NEWPID)));
        assert_eq!(spawn_kinds(NEWPID | NEWFS, NEWNET), Ok(Kinds(NEWPID | NEWFS)));
        assert_eq!(spawn_kinds(0, 0), Err(Errno::EINVAL));
        assert_eq!(spawn_kinds(8, 0), Err(Errno::EINVAL));
        assert_eq!(spawn_kinds(NEWPID | 0x100, 0), Err(Errno::EINVAL));
        assert_eq!(spawn_kinds(NEWNET | NEWPID, NEWNET), Err(Errno::EINVAL));
        assert_eq!(Kinds::ALL.names(), "pid,fs,net");
        assert_eq!(Kinds(NEWFS).names(), "fs");
    }

    #[test]
    fn depth_is_bounded() {
        assert_eq!(child_depth(0), Ok(1));
        assert_eq!(child_depth(MAX_DEPTH - 1), Ok(MAX_DEPTH));
        assert_eq!(child_depth(MAX_DEPTH), Err(Errno::ENOSPC));
        assert_eq!(child_depth(u32::MAX), Err(Errno::ENOSPC));
    }

    #[test]
    fn ids_are_the_lowest_free_from_two() {
        assert_eq!(lowest_free_id(|_| false), Ok(2));
        assert_eq!(lowest_free_id(|id| id == 2 || id == 3), Ok(4));
        assert_eq!(lowest_free_id(|id| id == 3), Ok(2)); // 2 was freed: reused
        assert_eq!(lowest_free_id(|_| true), Err(Errno::EAGAIN));
        assert_eq!(lowest_free_id(|id| id < MAX_LIVE as u32), Ok(MAX_LIVE as u32));
    }

    #[test]
    fn attach_from_the_root_anywhere_from_a_container_down_and_home() {
        assert_eq!(may_attach(ROOT, 5, true), Ok(()));
        assert_eq!(may_attach(ROOT, ROOT, false), Ok(()), "the root's own console");
        assert_eq!(may_attach(2, 3, true), Ok(()), "a descendant");
        assert_eq!(may_attach(2, ROOT, false), Ok(()), "back to the root");
        assert_eq!(may_attach(2, 3, false), Err(Errno::EPERM), "a sibling");
        assert_eq!(may_attach(3, 2, false), Err(Errno::EPERM), "its parent, not the root");
        assert_eq!(may_attach(2, 2, false), Err(Errno::EPERM), "itself");
        assert_eq!(may_enter(true), Ok(()));
        assert_eq!(may_enter(false), Err(Errno::EPERM));
    }

    #[test]
    fn split_paths() {
        assert_eq!(split_last(b"/a/b"), (&b"/a"[..], &b"b"[..]));
        assert_eq!(split_last(b"/b"), (&b"/"[..], &b"b"[..]));
        assert_eq!(split_last(b"b"), (&b"/"[..], &b"b"[..]));
        assert_eq!(split_last(b"x/y/"), (&b"x"[..], &b"y"[..]));
        assert_eq!(split_last(b"/"), (&b"/"[..], &b""[..]));
        assert_eq!(last_name(b"/www/index.html"), b"index.html");
        assert_eq!(last_name(b"notes"), b"notes");
    }

    #[test]
    fn exec_looks_in_bin_only_for_plain_names() {
        assert_eq!(exec_lookup(b"sh"), ExecLookup::BinThenCwd(b"sh"));
        assert_eq!(exec_lookup(b"../etc/x"), ExecLookup::CallerOnly(b"../etc/x"));
        assert_eq!(exec_lookup(b"/bin/sh"), ExecLookup::CallerOnly(b"/bin/sh"));
        assert_eq!(exec_lookup(b"./prog"), ExecLookup::CallerOnly(b"./prog"));
        assert_eq!(exec_lookup(b"bin/../../x"), ExecLookup::CallerOnly(b"bin/../../x"));
    }
}
