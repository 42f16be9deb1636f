//! From the file system's types to the system-call ABI's: errors ([`errno`]) and `fstat`
//! records ([`stat_of_inode`], [`stat_bytes`]). No kernel dependencies (host-tested by
//! `mkimage/tests/kernel_file.rs`).

use abi::syscall::{Errno, Stat};
use fs::FsError;

/// The device number `fstat` reports for files on the disk.
pub const DISK_DEV: u32 = 1;

/// The one mapping of file-system errors to error numbers.
pub fn errno(e: FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::NoSpace | FsError::NoInodes => Errno::ENOSPC,
        // Path lookup reports a component longer than a directory entry can hold.
        FsError::InvalidName => Errno::ENAMETOOLONG,
        FsError::FileTooBig => Errno::EFBIG,
        FsError::InvalidArgument => Errno::EINVAL,
        FsError::Busy => Errno::EBUSY,
        FsError::NotPermitted => Errno::EPERM,
        FsError::TooManyLinks => Errno::EMLINK,
        // Out of in-memory inodes or buffers: a system-wide table is full.
        FsError::TooManyOpen => Errno::ENFILE,
        FsError::NoBuffers => Errno::ENOMEM,
        FsError::TransactionTooBig => Errno::EFBIG,
        FsError::Io | FsError::Corrupt(_) => Errno::EIO,
    }
}

/// `fstat` of a disk inode (kinds are the same numbers in the fs and the ABI).
pub fn stat_of_inode(st: &fs::Stat) -> Stat {
    Stat {
        dev: DISK_DEV,
        ino: st.inum,
        kind: st.kind,
        nlink: st.nlink,
        major: st.major,
        minor: st.minor,
        size: st.size,
    }
}

/// Size of [`Stat`] in user memory (`#[repr(C)]`, no padding).
pub const STAT_SIZE: usize = 24;

/// `Stat` as it lies in user memory (`#[repr(C)]` on x86_64: little-endian, fields in order).
pub fn stat_bytes(st: &Stat) -> [u8; STAT_SIZE] {
    let mut b = [0u8; STAT_SIZE];
    b[0..4].copy_from_slice(&st.dev.to_le_bytes());
    b[4..8].copy_from_slice(&st.ino.to_le_bytes());
    b[8..10].copy_from_slice(&st.kind.to_le_bytes());
    b[10..12].copy_from_slice(&st.nlink.to_le_bytes());
    b[12..14].copy_from_slice(&st.major.to_le_bytes());
    b[14..16].copy_from_slice(&st.minor.to_le_bytes());
    b[16..24].copy_from_slice(&st.size.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn every_fs_error_has_its_errno() {
        let cases = [
            (FsError::NotFound, Errno::ENOENT),
            (FsError::Exists, Errno::EEXIST),
            (FsError::NotDir, Errno::ENOTDIR),
            (FsError::IsDir, Errno::EISDIR),
            (FsError::NotEmpty, Errno::ENOTEMPTY),
            (FsError::NoSpace, Errno::ENOSPC),
            (FsError::NoInodes, Errno::ENOSPC),
            (FsError::InvalidName, Errno::ENAMETOOLONG),
            (FsError::FileTooBig, Errno::EFBIG),
            (FsError::InvalidArgument, Errno::EINVAL),
            (FsError::Busy, Errno::EBUSY),
            (FsError::NotPermitted, Errno::EPERM),
            (FsError::TooManyLinks, Errno::EMLINK),
            (FsError::TooManyOpen, Errno::ENFILE),
            (FsError::NoBuffers, Errno::ENOMEM),
            (FsError::TransactionTooBig, Errno::EFBIG),
            (FsError::Io, Errno::EIO),
            (FsError::Corrupt("x"), Errno::EIO),
        ];
        for (e, want) in cases {
            assert_eq!(errno(e), want, "{e:?}");
        }
    }

    #[test]
    fn stat_bytes_match_the_repr_c_layout() {
        assert_eq!(size_of::<Stat>(), STAT_SIZE);
        let st = Stat {
            dev: 0x0102_0304,
            ino: 0x0506_0708,
            kind: 0x090a,
            nlink: 0x0b0c,
            major: 0x0d0e,
            minor: 0x0f10,
            size: 0x1112_1314_1516_1718,
        };
        let b = stat_bytes(&st);
        // Compare with the struct's own bytes, field by field.
        let at = |off: usize, len: usize| &b[off..off + len];
        assert_eq!(at(offset_of!(Stat, dev), 4), &st.dev.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, ino), 4), &st.ino.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, kind), 2), &st.kind.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, nlink), 2), &st.nlink.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, major), 2), &st.major.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, minor), 2), &st.minor.to_le_bytes());
        assert_eq!(at(offset_of!(Stat, size), 8), &st.size.to_le_bytes());
        // SAFETY: Stat is repr(C) plain integers without padding (size checked above).
        let raw: [u8; STAT_SIZE] = unsafe { core::mem::transmute(st) };
        assert_eq!(raw, b);
    }

    #[test]
    fn inode_stat_keeps_kind_and_numbers() {
        let st = fs::Stat { inum: 9, kind: 3, nlink: 1, size: 0, major: 1, minor: 0 };
        let s = stat_of_inode(&st);
        assert_eq!((s.dev, s.ino, s.kind, s.major), (DISK_DEV, 9, abi::syscall::kind::DEVICE, 1));
        assert_eq!(fs::inode::T_DIR, abi::syscall::kind::DIR);
        assert_eq!(fs::inode::T_FILE, abi::syscall::kind::FILE);
        assert_eq!(fs::inode::T_DEV, abi::syscall::kind::DEVICE);
    }
}
