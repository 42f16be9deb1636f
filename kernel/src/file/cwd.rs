//! `getcwd`: the working directory's path, found by walking `..` up to the process's root
//! and looking each directory up by inode number in its parent (directories do not store
//! their own names). Generic over the block device, so it is tested on the host over an
//! in-memory disk (`mkimage/tests/kernel_file.rs`).
//!
//! The walk stops at the process's *own* root, so a process confined to a subtree sees paths
//! relative to it ("/" is its root), never the disk's real root.

use alloc::vec::Vec;
use fs::{BlockDevice, FsError, Inode};

/// Deepest directory nesting walked (a cycle in a corrupt disk ends here).
pub const MAX_DEPTH: usize = 1024;

/// Join names collected from the leaf upward into an absolute path: `[b, a]` -> `/a/b`;
/// none -> `/`.
pub fn assemble(names_leaf_first: &[Vec<u8>]) -> Vec<u8> {
    if names_leaf_first.is_empty() {
        return b"/".to_vec();
    }
    let mut path = Vec::new();
    for name in names_leaf_first.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(name);
    }
    path
}

/// The path of `cwd` as seen from `root`. If the walk reaches the disk's root without
/// meeting `root` (the cwd is outside the process's root), the path is from the disk's root.
pub async fn getcwd<'a, D: BlockDevice>(
    root: &Inode<'a, D>,
    cwd: &Inode<'a, D>,
) -> Result<Vec<u8>, FsError> {
    let fs = cwd.fs();
    let mut names = Vec::new();
    let mut dir = cwd.clone();
    for _ in 0..MAX_DEPTH {
        if dir.inum() == root.inum() {
            return Ok(assemble(&names));
        }
        // `dir` is not `root`, so this `..` is the real parent.
        let parent = fs.namei(root, &dir, b"..").await?;
        if parent.inum() == dir.inum() {
            return Ok(assemble(&names)); // the disk's root: its `..` is itself
        }
        let name = {
            let mut p = parent.lock().await?;
            p.dir_entries()
                .await?
                .into_iter()
                .find(|(n, inum)| *inum == dir.inum() && n != "." && n != "..")
                .ok_or(FsError::NotFound)? // removed meanwhile
                .0
        };
        names.push(name.into_bytes());
        dir = parent;
    }
    Err(FsError::Corrupt("directory nesting too deep"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fs::{format::format, Fs, MemDisk};
    use testkit::block_on;

    #[test]
    fn assemble_paths() {
        assert_eq!(assemble(&[]), b"/");
        assert_eq!(assemble(&[b"a".to_vec()]), b"/a");
        assert_eq!(assemble(&[b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]), b"/a/b/c");
    }

    #[test]
    fn walks_up_to_the_process_root() {
        let disk = MemDisk::new(2048);
        block_on(format(&disk, 128)).unwrap();
        let fs = block_on(Fs::mount(disk)).unwrap().0;
        block_on(async {
            let top = fs.root().unwrap();
            for d in ["/usr", "/usr/share", "/usr/share/doc", "/home", "/home/ann"] {
                fs.mkdir(&top, &top, d.as_bytes()).await.unwrap();
            }
            let at = |p: &'static str| {
                let top = top.clone();
                let fs = &fs;
                async move { fs.namei(&top, &top, p.as_bytes()).await.unwrap() }
            };
            let doc = at("/usr/share/doc").await;
            assert_eq!(getcwd(&top, &top).await.unwrap(), b"/");
            assert_eq!(getcwd(&top, &doc).await.unwrap(), b"/usr/share/doc");
            assert_eq!(getcwd(&top, &at("/home/ann").await).await.unwrap(), b"/home/ann");
            // A process whose root is /usr sees /share/doc.
            let usr = at("/usr").await;
            assert_eq!(getcwd(&usr, &doc).await.unwrap(), b"/share/doc");
            assert_eq!(getcwd(&usr, &usr).await.unwrap(), b"/");
            // After a rename the new name shows.
            fs.rename(&top, &top, b"/usr/share", b"/usr/lib").await.unwrap();
            assert_eq!(getcwd(&top, &doc).await.unwrap(), b"/usr/lib/doc");
            // A removed working directory has no name any more.
            let ann = at("/home/ann").await;
            fs.unlink(&top, &top, b"/home/ann").await.unwrap();
            assert!(getcwd(&top, &ann).await.is_err());
        });
    }
}
