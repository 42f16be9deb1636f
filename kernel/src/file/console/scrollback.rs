//! A console's scrollback ring: what its programs printed while it was not in front, kept to
//! be shown when it comes to the front again. Pure data, no kernel dependencies: unit-tested
//! on the host (`mkimage/tests/kernel_console.rs`).
//!
//! The ring keeps the last [`CAPACITY`] bytes; older ones are overwritten and counted, so the
//! replay can say how much it no longer has. Its buffer is allocated once, by whoever makes
//! the ring (the kernel charges it to the memory budget), and never grows: a console in the
//! background cannot make the kernel allocate by printing.

use alloc::vec::Vec;

/// What a console keeps while in the background (the design's "tens of KiB").
pub const CAPACITY: usize = 64 * 1024;

pub struct Scrollback {
    /// The storage; its length is the capacity (0: a ring that keeps nothing).
    buf: Vec<u8>,
    /// Index of the oldest byte kept.
    start: usize,
    /// Bytes kept.
    len: usize,
    /// Bytes overwritten since the last [`Scrollback::drain`].
    lost: u64,
}

impl Scrollback {
    /// A ring storing into `buf` (its length is the capacity; its contents are ignored).
    pub fn with_buffer(buf: Vec<u8>) -> Scrollback {
        Scrollback { buf, start: 0, len: 0, lost: 0 }
    }

    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes overwritten (or never kept) since the last drain.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Keep `bytes` after what is there, overwriting the oldest when full.
    pub fn push(&mut self, bytes: &[u8]) {
        let cap = self.buf.len();
        // Only the last `cap` bytes of `bytes` can be kept.
        let skip = bytes.len().saturating_sub(cap);
        self.lost += skip as u64;
        let bytes = &bytes[skip..];
        if bytes.is_empty() {
            return;
        }
        let overflow = (self.len + bytes.len()).saturating_sub(cap);
        if overflow > 0 {
            self.start = (self.start + overflow) % cap;
            self.len -= overflow;
            self.lost += overflow as u64;
        }
        // Copy in at the end, in two pieces when it wraps past the buffer's end.
        let at = (self.start + self.len) % cap;
        let first = bytes.len().min(cap - at);
        self.buf[at..at + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.len += bytes.len();
    }

    /// Hand what is kept to `out`, oldest first (in at most two pieces), and empty the ring.
    /// Returns how many bytes were lost before the oldest one kept.
    pub fn drain(&mut self, mut out: impl FnMut(&[u8])) -> u64 {
        let cap = self.buf.len();
        if self.len > 0 {
            let first = self.len.min(cap - self.start);
            out(&self.buf[self.start..self.start + first]);
            if first < self.len {
                out(&self.buf[..self.len - first]);
            }
        }
        self.start = 0;
        self.len = 0;
        core::mem::take(&mut self.lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn contents(r: &mut Scrollback) -> (Vec<u8>, u64) {
        let mut v = Vec::new();
        let lost = r.drain(|s| v.extend_from_slice(s));
        (v, lost)
    }

    #[test]
    fn keeps_what_fits_in_order() {
        let mut r = Scrollback::with_buffer(vec![0; 8]);
        assert!(r.is_empty());
        r.push(b"abc");
        r.push(b"de");
        assert_eq!(r.len(), 5);
        assert_eq!(contents(&mut r), (b"abcde".to_vec(), 0));
        assert!(r.is_empty(), "a drain empties the ring");
        assert_eq!(contents(&mut r), (Vec::new(), 0));
    }

    #[test]
    fn overwrites_the_oldest_and_counts_it() {
        let mut r = Scrollback::with_buffer(vec![0; 8]);
        r.push(b"0123456");
        r.push(b"789"); // two of the oldest go
        assert_eq!(r.len(), 8);
        assert_eq!(r.lost(), 2);
        assert_eq!(contents(&mut r), (b"23456789".to_vec(), 2));
        assert_eq!(r.lost(), 0, "the count starts again after a drain");
    }

    #[test]
    fn wraps_around_many_times() {
        let mut r = Scrollback::with_buffer(vec![0; 5]);
        let mut all = Vec::new();
        for i in 0..100u8 {
            let piece: Vec<u8> = (0..(i % 7)).map(|k| b'a' + (i + k) % 26).collect();
            r.push(&piece);
            all.extend_from_slice(&piece);
            if i % 13 == 0 {
                let (got, lost) = contents(&mut r);
                let keep = all.len().min(5);
                assert_eq!(got, all[all.len() - keep..], "after piece {i}");
                assert_eq!(lost as usize, all.len() - keep);
                all.clear();
            }
        }
    }

    #[test]
    fn a_push_larger_than_the_ring_keeps_its_end() {
        let mut r = Scrollback::with_buffer(vec![0; 4]);
        r.push(b"xy");
        r.push(b"abcdefgh");
        assert_eq!(contents(&mut r), (b"efgh".to_vec(), 6));
    }

    #[test]
    fn a_ring_without_room_keeps_nothing() {
        let mut r = Scrollback::with_buffer(Vec::new());
        r.push(b"lost");
        r.push(b"");
        assert_eq!(r.capacity(), 0);
        assert_eq!(contents(&mut r), (Vec::new(), 4));
    }

    #[test]
    fn the_full_capacity_in_one_push() {
        let mut r = Scrollback::with_buffer(vec![0; CAPACITY]);
        let data: Vec<u8> = (0..CAPACITY + 10).map(|i| (i % 251) as u8).collect();
        r.push(&data[..3]);
        r.push(&data[3..]);
        let (got, lost) = contents(&mut r);
        assert_eq!(lost, 10);
        assert_eq!(got, data[10..]);
    }
}
