//! A process's file descriptors: slots `0..NOFILE`, each empty or holding a shared open file
//! (`Arc<T>`; the kernel uses `T = File`). Generic and free of kernel dependencies so it is
//! unit-tested on the host (`mkimage/tests/kernel_file.rs`).
//!
//! Dropping the last `Arc` of a file releases it (a pipe end wakes the other side, an inode
//! handle is put back). Those drops can wake tasks, so the methods that remove files *return*
//! them, letting the caller drop them after releasing the lock around the table.

use abi::syscall::Errno;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Descriptors per process.
pub const NOFILE: usize = 64;

pub struct Table<T> {
    slots: [Option<Arc<T>>; NOFILE],
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Table<T> {
    pub const fn new() -> Self {
        Table { slots: [const { None }; NOFILE] }
    }

    fn slot(fd: usize) -> Result<usize, Errno> {
        if fd < NOFILE {
            Ok(fd)
        } else {
            Err(Errno::EBADF)
        }
    }

    /// Install `file` at the lowest free descriptor.
    pub fn alloc(&mut self, file: Arc<T>) -> Result<usize, Errno> {
        let fd = self.slots.iter().position(Option::is_none).ok_or(Errno::EMFILE)?;
        self.slots[fd] = Some(file);
        Ok(fd)
    }

    /// The file at `fd` (another reference to it).
    pub fn get(&self, fd: usize) -> Result<Arc<T>, Errno> {
        self.slots[Self::slot(fd)?].clone().ok_or(Errno::EBADF)
    }

    /// Empty `fd`, returning its file (drop it after unlocking the table).
    #[must_use = "drop the file after releasing the table's lock"]
    pub fn close(&mut self, fd: usize) -> Result<Arc<T>, Errno> {
        self.slots[Self::slot(fd)?].take().ok_or(Errno::EBADF)
    }

    /// A second descriptor (the lowest free one) for the file at `fd`.
    pub fn dup(&mut self, fd: usize) -> Result<usize, Errno> {
        let f = self.get(fd)?;
        self.alloc(f)
    }

    /// The child's table after `fork`: the same open files, shared (offsets included).
    pub fn clone_for_fork(&self) -> Table<T> {
        Table { slots: self.slots.clone() }
    }

    /// Empty every slot (at exit). The files are dropped here; to drop them outside a lock,
    /// use [`Table::take_all`] instead.
    pub fn close_all(&mut self) {
        drop(self.take_all());
    }

    /// Empty every slot, returning the files.
    #[must_use = "drop the files after releasing the table's lock"]
    pub fn take_all(&mut self) -> Vec<Arc<T>> {
        self.slots.iter_mut().filter_map(Option::take).collect()
    }

    /// Descriptors in use.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_descriptor_first() {
        let mut t = Table::new();
        for i in 0..3 {
            assert_eq!(t.alloc(Arc::new(i)), Ok(i));
        }
        drop(t.close(1).unwrap());
        assert_eq!(t.alloc(Arc::new(10)), Ok(1));
        assert_eq!(*t.get(1).unwrap(), 10);
        assert_eq!(t.alloc(Arc::new(11)), Ok(3));
        assert_eq!(t.count(), 4);
    }

    #[test]
    fn bad_descriptors() {
        let mut t: Table<u8> = Table::new();
        assert_eq!(t.get(0).err(), Some(Errno::EBADF));
        assert_eq!(t.get(NOFILE).err(), Some(Errno::EBADF));
        assert_eq!(t.get(usize::MAX).err(), Some(Errno::EBADF));
        assert_eq!(t.close(5).err(), Some(Errno::EBADF));
        assert_eq!(t.dup(2).err(), Some(Errno::EBADF));
    }

    #[test]
    fn full_table_is_emfile() {
        let mut t = Table::new();
        for i in 0..NOFILE {
            assert_eq!(t.alloc(Arc::new(i)), Ok(i));
        }
        assert_eq!(t.alloc(Arc::new(0)).err(), Some(Errno::EMFILE));
        assert_eq!(t.dup(0).err(), Some(Errno::EMFILE));
    }

    #[test]
    fn dup_and_fork_share_the_file_and_the_last_close_drops_it() {
        let file = Arc::new(7);
        let mut t = Table::new();
        assert_eq!(t.alloc(file.clone()), Ok(0));
        assert_eq!(t.dup(0), Ok(1));
        assert!(Arc::ptr_eq(&t.get(0).unwrap(), &t.get(1).unwrap()));
        let mut child = t.clone_for_fork();
        assert_eq!(Arc::strong_count(&file), 5);
        t.close_all();
        assert_eq!(t.count(), 0);
        assert_eq!(Arc::strong_count(&file), 3);
        let files = child.take_all();
        assert_eq!(files.len(), 2);
        drop(files);
        assert_eq!(Arc::strong_count(&file), 1);
    }
}
