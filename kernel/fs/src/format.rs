//! `format`: write an empty file system (superblock, empty log, root directory) to a device.
//! The kernel can format a blank scratch disk; tests start from one.

use crate::dev::{Block, BlockDevice};
use crate::inode::T_DIR;
use crate::FsError;
use abi::fs::{
    bitmap_bit, Dinode, Dirent, LogHeader, Superblock, BSIZE, DINODE_SIZE, IPB, ROOT_INO,
};
use alloc::boxed::Box;

pub async fn format<D: BlockDevice>(dev: &D, ninodes: u32) -> Result<Superblock, FsError> {
    let sb =
        Superblock::layout(dev.block_count(), ninodes).map_err(|_| FsError::InvalidArgument)?;
    let io = |_| FsError::Io;
    let mut blk: Box<Block> = Box::new([0; BSIZE]);
    // Zero everything but the data area (the log header, inodes and bitmap must start clean).
    for b in 0..sb.datastart {
        dev.write(b, &blk).await.map_err(io)?;
    }
    sb.encode(&mut blk[..]);
    dev.write(1, &blk).await.map_err(io)?;
    blk.fill(0);
    LogHeader::empty().encode(&mut blk[..]);
    dev.write(sb.logstart, &blk).await.map_err(io)?;

    // The root directory: one data block (the first) holding "." and "..".
    let root_block = sb.datastart;
    blk.fill(0);
    for (i, name) in [&b"."[..], &b".."[..]].into_iter().enumerate() {
        let e = Dirent::new(ROOT_INO, name).map_err(|_| FsError::InvalidName)?;
        e.encode(&mut blk[i * Dirent::SIZE..(i + 1) * Dirent::SIZE]);
    }
    dev.write(root_block, &blk).await.map_err(io)?;

    let mut root =
        Dinode { kind: T_DIR, nlink: 1, size: 2 * Dirent::SIZE as u64, ..Dinode::default() };
    root.addrs[0] = root_block;
    blk.fill(0);
    let off = (ROOT_INO as usize % IPB) * DINODE_SIZE;
    root.encode(&mut blk[off..off + DINODE_SIZE]);
    dev.write(sb.inodestart + ROOT_INO / IPB as u32, &blk).await.map_err(io)?;

    // Bitmap: every block before the data area, and the root's block, are in use.
    let per_block = (BSIZE * 8) as u32;
    for bm in 0..sb.bitmap_blocks() as u32 {
        blk.fill(0);
        let first = bm * per_block;
        for b in first..(first + per_block).min(root_block + 1) {
            let (byte, mask) = bitmap_bit(b);
            blk[byte] |= mask;
        }
        dev.write(sb.bmapstart + bm, &blk).await.map_err(io)?;
    }
    Ok(sb)
}
