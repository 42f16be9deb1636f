//! `/proc`: the process table and memory figures as files, produced by the kernel (nothing
//! is on the disk). The pure part (which paths are procfs, what the files contain) lives
//! here with no kernel dependencies, unit-tested on the host by `mkimage/tests/kernel_file.rs`;
//! `file/mod.rs` takes the snapshots.
//!
//! Contents:
//! - `/proc`: a directory. Reading it gives 64-byte `abi::fs::Dirent` records, like a disk
//!   directory: `meminfo`, `net`, `ns`, `netall`, `ifaces`, `stat`, and one entry per process the
//!   reader can see (zombies
//!   included), named by its pid as the reader sees it, in decimal, inode [`pid_ino`]`(pid)`;
//! - `/proc/<pid>`: the process's `abi::syscall::ProcRecord::encode()` bytes, its pids in the
//!   reader's view;
//! - `/proc/meminfo`: `frames_free N\nframes_total N\ninodes_free N\n`;
//! - `/proc/net`: the sockets of the reader's network namespace;
//! - `/proc/ns`: the namespaces the reader can see (`abi::syscall::ns::PROC_PATH`);
//! - `/proc/netall`: the sockets of the reader's network namespace and of those below its
//!   own, each line after the namespace's id (`abi::syscall::ns::NETALL_PATH`);
//! - `/proc/ifaces`: the interfaces of the reader's network namespace
//!   (`abi::syscall::ns::IFACES_PATH`);
//! - `/proc/stat`: the kernel's event counters (interrupts, context switches, wakeups, stack
//!   polls), a `name value` line each, the machine's whatever the reader's namespace.
//!
//! Pids are in the reader's pid namespace: a container's `/proc` lists its own processes, by
//! its own numbers (`proc::Viewer`).
//!
//! Each file is a snapshot taken when it is opened.
//!
//! Which paths are procfs ([`classify`]): a path whose first component is `proc` and that
//! starts at the process's root directory, i.e. an absolute path (`/proc`, `/proc/7`), or a
//! relative one (`proc/7`) when the process's working directory *is* its root. Slashes may
//! repeat and `.` components are ignored; `..` is not followed inside `/proc` (`ENOENT`).
//! A procfs path hides whatever the disk has at `/proc`.

use abi::fs::{Dirent, DIRENT_SIZE};
use abi::syscall::Errno;
use alloc::format;
use alloc::vec::Vec;

/// The device number `fstat` reports for procfs files (the disk is 1).
pub const PROC_DEV: u32 = 2;
pub const ROOT_INO: u32 = 1;
pub const MEMINFO_INO: u32 = 2;
/// `/proc/net`: the sockets, one text line each (`proto local:port remote:port STATE`).
pub const NET_INO: u32 = 3;
/// `/proc/ns`: the namespaces, one text line each.
pub const NS_INO: u32 = 4;
/// `/proc/netall`: the sockets of the reader's and the descendant network namespaces.
pub const NETALL_INO: u32 = 5;
/// `/proc/ifaces`: the reader's network interfaces.
pub const IFACES_INO: u32 = 6;
/// `/proc/stat`: the kernel's event counters (`stats`), a `name value` line each.
pub const STAT_INO: u32 = 7;
/// `/proc/prof`: the sampling profiler's counts (`crate::prof`).
pub const PROF_INO: u32 = 8;
const PID_INO_BASE: u32 = 16;

/// The inode number `/proc/<pid>` reports (never 0, never the root's or meminfo's).
pub const fn pid_ino(pid: u32) -> u32 {
    pid.wrapping_add(PID_INO_BASE)
}

/// A procfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Root,
    Meminfo,
    Net,
    Ns,
    NetAll,
    Ifaces,
    Stat,
    Prof,
    Pid(u32),
}

impl Node {
    pub fn ino(self) -> u32 {
        match self {
            Node::Root => ROOT_INO,
            Node::Meminfo => MEMINFO_INO,
            Node::Net => NET_INO,
            Node::Ns => NS_INO,
            Node::NetAll => NETALL_INO,
            Node::Ifaces => IFACES_INO,
            Node::Stat => STAT_INO,
            Node::Prof => PROF_INO,
            Node::Pid(pid) => pid_ino(pid),
        }
    }
}

/// Is `path` a procfs path (see the module docs)? `None`: no, resolve it on the disk.
/// `Some(Err(ENOENT))`: under `/proc` but names nothing procfs has. Whether `Pid` names a
/// live process is for the caller to check.
pub fn classify(path: &[u8], cwd_is_root: bool) -> Option<Result<Node, Errno>> {
    let absolute = path.first() == Some(&b'/');
    if !absolute && !cwd_is_root {
        return None;
    }
    let mut parts = path.split(|&c| c == b'/').filter(|c| !c.is_empty() && *c != b".");
    if parts.next()? != b"proc" {
        return None;
    }
    let node = match (parts.next(), parts.next()) {
        (None, _) => Node::Root,
        (Some(b"meminfo"), None) => Node::Meminfo,
        (Some(b"net"), None) => Node::Net,
        (Some(b"ns"), None) => Node::Ns,
        (Some(b"netall"), None) => Node::NetAll,
        (Some(b"ifaces"), None) => Node::Ifaces,
        (Some(b"stat"), None) => Node::Stat,
        (Some(b"prof"), None) => Node::Prof,
        (Some(name), None) => match parse_pid(name) {
            Some(pid) => Node::Pid(pid),
            None => return Some(Err(Errno::ENOENT)),
        },
        (Some(name), Some(_)) => {
            // Below a file: not a directory; below anything else: nothing there.
            let is_file = FILES.iter().any(|(_, n)| *n == name) || parse_pid(name).is_some();
            return Some(Err(if is_file { Errno::ENOTDIR } else { Errno::ENOENT }));
        }
    };
    Some(Ok(node))
}

/// A pid as `/proc` names it: decimal, no sign, no leading zero, nonzero.
pub fn parse_pid(name: &[u8]) -> Option<u32> {
    if name.is_empty() || name.len() > 10 || name[0] == b'0' {
        return None;
    }
    if !name.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(name).ok()?.parse().ok()
}

/// The files of `/proc` besides the processes', as its listing gives them.
const FILES: [(u32, &[u8]); 7] = [
    (MEMINFO_INO, b"meminfo"),
    (NET_INO, b"net"),
    (NS_INO, b"ns"),
    (NETALL_INO, b"netall"),
    (IFACES_INO, b"ifaces"),
    (STAT_INO, b"stat"),
    (PROF_INO, b"prof"),
];

/// The bytes of the `/proc` directory for these live pids.
pub fn listing(pids: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity((pids.len() + 1) * DIRENT_SIZE);
    let mut put = |ino: u32, name: &[u8]| {
        let mut raw = [0u8; DIRENT_SIZE];
        Dirent::new(ino, name).expect("procfs names are valid").encode(&mut raw);
        out.extend_from_slice(&raw);
    };
    for (ino, name) in FILES {
        put(ino, name);
    }
    for &pid in pids {
        put(pid_ino(pid), format!("{pid}").as_bytes());
    }
    out
}

/// The text of `/proc/meminfo`.
pub fn meminfo(frames_free: usize, frames_total: usize, inodes_free: u32) -> Vec<u8> {
    format!("frames_free {frames_free}\nframes_total {frames_total}\ninodes_free {inodes_free}\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::syscall::{state, ProcRecord};
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn which_paths_are_procfs() {
        use Node::*;
        let yes = |p: &[u8], root: bool| classify(p, root).unwrap();
        assert_eq!(yes(b"/proc", false), Ok(Root));
        assert_eq!(yes(b"//proc/", false), Ok(Root));
        assert_eq!(yes(b"/./proc/.", false), Ok(Root));
        assert_eq!(yes(b"/proc/meminfo", false), Ok(Meminfo));
        assert_eq!(yes(b"/proc/net", false), Ok(Net));
        assert_eq!(yes(b"/proc/netall", false), Ok(NetAll));
        assert_eq!(yes(b"/proc/ifaces/", false), Ok(Ifaces));
        assert_eq!(yes(b"/proc/ifaces/x", false), Err(Errno::ENOTDIR));
        assert_eq!(yes(b"/proc/stat", false), Ok(Stat));
        assert_eq!(yes(b"/proc//42/", false), Ok(Pid(42)));
        assert_eq!(yes(b"proc/7", true), Ok(Pid(7)));
        assert_eq!(yes(b"./proc", true), Ok(Root));
        assert_eq!(yes(b"/proc/nope", false), Err(Errno::ENOENT));
        assert_eq!(yes(b"/proc/007", false), Err(Errno::ENOENT));
        assert_eq!(yes(b"/proc/0", false), Err(Errno::ENOENT));
        assert_eq!(yes(b"/proc/99999999999", false), Err(Errno::ENOENT));
        assert_eq!(yes(b"/proc/..", false), Err(Errno::ENOENT));
        assert_eq!(yes(b"/proc/1/x", false), Err(Errno::ENOTDIR));
        assert_eq!(yes(b"/proc/meminfo/x", false), Err(Errno::ENOTDIR));
        assert_eq!(yes(b"/proc/a/b", false), Err(Errno::ENOENT));
        // Relative paths only from the root; other names are the disk's.
        assert_eq!(classify(b"proc/7", false), None);
        assert_eq!(classify(b"/procfs", false), None);
        assert_eq!(classify(b"/etc/proc", false), None);
        assert_eq!(classify(b"/", false), None);
        assert_eq!(classify(b"", true), None);
        assert_eq!(classify(b"../proc", true), None);
    }

    #[test]
    fn inode_numbers_are_distinct_and_nonzero() {
        let mut inos = vec![
            ROOT_INO,
            MEMINFO_INO,
            NET_INO,
            NS_INO,
            NETALL_INO,
            IFACES_INO,
            STAT_INO,
            PROF_INO,
        ];
        inos.extend((1..100).map(pid_ino));
        assert!(!inos.contains(&0));
        let n = inos.len();
        inos.sort();
        inos.dedup();
        assert_eq!(inos.len(), n);
        assert_eq!(Node::Pid(5).ino(), pid_ino(5));
    }

    #[test]
    fn listing_is_dirent_records() {
        let bytes = listing(&[1, 2, 10]);
        assert_eq!(bytes.len(), 10 * DIRENT_SIZE);
        let entries: Vec<(u32, String)> = bytes
            .chunks_exact(DIRENT_SIZE)
            .map(|raw| {
                let d = Dirent::decode(raw).unwrap();
                (d.inum, String::from_utf8(d.name().to_vec()).unwrap())
            })
            .collect();
        assert_eq!(
            entries,
            vec![
                (MEMINFO_INO, "meminfo".into()),
                (NET_INO, "net".into()),
                (NS_INO, "ns".into()),
                (NETALL_INO, "netall".into()),
                (IFACES_INO, "ifaces".into()),
                (STAT_INO, "stat".into()),
                (PROF_INO, "prof".into()),
                (pid_ino(1), "1".into()),
                (pid_ino(2), "2".into()),
                (pid_ino(10), "10".into()),
            ]
        );
        // The raw layout: u32 LE inode number, then the NUL-padded name.
        let first_pid = FILES.len() * DIRENT_SIZE;
        assert_eq!(&bytes[first_pid..first_pid + 4], &pid_ino(1).to_le_bytes());
        assert_eq!(bytes[first_pid + 4], b'1');
        assert!(bytes[first_pid + 5..first_pid + DIRENT_SIZE].iter().all(|&b| b == 0));
        assert_eq!(listing(&[]).len(), FILES.len() * DIRENT_SIZE);
    }

    #[test]
    fn meminfo_text() {
        assert_eq!(meminfo(10, 20, 3), b"frames_free 10\nframes_total 20\ninodes_free 3\n");
    }

    #[test]
    fn pid_file_is_the_encoded_record() {
        // What `/proc/<pid>` holds is `encode()` verbatim: check it decodes as the ABI says.
        let mut r =
            ProcRecord { pid: 3, ppid: 1, state: state::ZOMBIE, ns_pid: 3, ..Default::default() };
        r.size = 1 << 20;
        r.name[..4].copy_from_slice(b"init");
        let bytes = r.encode();
        assert_eq!(bytes.len(), ProcRecord::SIZE);
        assert_eq!(&bytes[..4], &3u32.to_le_bytes());
        assert_eq!(&bytes[20..28], &(1u64 << 20).to_le_bytes());
        assert_eq!(ProcRecord::decode(&bytes), Some(r));
    }
}
