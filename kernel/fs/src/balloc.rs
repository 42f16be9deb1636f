//! The free-block bitmap: allocation (next fit from a hint) and freeing, inside a transaction.

use crate::{BlockDevice, Fs, FsError};
use abi::fs::BSIZE;
use core::sync::atomic::Ordering::Relaxed;

const BITS_PER_BLOCK: u32 = (BSIZE * 8) as u32;

impl<D: BlockDevice> Fs<D> {
    fn bitmap_location(&self, b: u32) -> (u32, usize, u8) {
        let bit = b % BITS_PER_BLOCK;
        (self.sb.bmapstart + b / BITS_PER_BLOCK, (bit / 8) as usize, 1 << (bit % 8))
    }

    /// Allocate a zeroed data block. Must run inside a transaction.
    pub(crate) async fn balloc(&self) -> Result<u32, FsError> {
        let (start, end) = (self.sb.datastart, self.sb.size);
        let hint = self.alloc_hint.load(Relaxed).clamp(start, end);
        // Next fit: from the hint to the end, then from the start up to the hint.
        for (lo, hi) in [(hint, end), (start, hint)] {
            let mut b = lo;
            while b < hi {
                let (bblock, _, _) = self.bitmap_location(b);
                let block_end = ((b / BITS_PER_BLOCK + 1) * BITS_PER_BLOCK).min(hi);
                let mut buf = self.cache.read(bblock).await?;
                let free = (b..block_end).find(|&c| {
                    let (_, byte, mask) = self.bitmap_location(c);
                    buf.data()[byte] & mask == 0
                });
                if let Some(found) = free {
                    let (_, byte, mask) = self.bitmap_location(found);
                    buf.data_mut()[byte] |= mask;
                    self.log.record(&self.cache, bblock)?;
                    drop(buf);
                    let _zero = self.cache.zeroed(found).await?;
                    self.log.record(&self.cache, found)?;
                    self.alloc_hint.store(found + 1, Relaxed);
                    return Ok(found);
                }
                b = block_end;
            }
        }
        Err(FsError::NoSpace)
    }

    /// Free a data block. Freeing a block that is already free means the disk is corrupt.
    pub(crate) async fn bfree(&self, b: u32) -> Result<(), FsError> {
        if b < self.sb.datastart || b >= self.sb.size {
            return Err(FsError::Corrupt("block pointer outside the data area"));
        }
        let (bblock, byte, mask) = self.bitmap_location(b);
        let mut buf = self.cache.read(bblock).await?;
        if buf.data()[byte] & mask == 0 {
            return Err(FsError::Corrupt("freeing a free block"));
        }
        buf.data_mut()[byte] &= !mask;
        self.log.record(&self.cache, bblock)?;
        Ok(())
    }
}
