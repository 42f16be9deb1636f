//! Deterministic workloads run by the kernel and verified by host tests. Both sides call these
//! functions, so the expected contents never drift from what the kernel wrote.
//!
//! The crash workload: step `i` writes a new version of file `crash_step(seed, i).file` by
//! writing the whole content to `/crash/tmp` and renaming it over `/crash/f<file>` (the rename
//! is one transaction, so each file always holds exactly one version's content).

/// Number of files the crash workload rotates over.
pub const CRASH_FILES: u32 = 8;
/// Largest file version, in bytes (several transactions' worth of writes).
pub const CRASH_MAX_LEN: u32 = 300_000;

fn mix(mut x: u64) -> u64 {
    // splitmix64: a good 64-bit mixer, trivially reproducible.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashStep {
    pub file: u32,
    pub len: u32,
}

/// What step `i` of the crash workload with `seed` writes.
pub fn crash_step(seed: u64, i: u64) -> CrashStep {
    let r = mix(seed ^ mix(i));
    CrashStep {
        file: (r % CRASH_FILES as u64) as u32,
        len: 1 + ((r >> 32) % CRASH_MAX_LEN as u64) as u32,
    }
}

/// Fill `buf` with the bytes at `offset..` of the content identified by `(seed, version)`.
/// Byte `pos` is byte `pos % 8` (little-endian) of `mix(key ^ (pos / 8))`; one `mix` serves
/// eight bytes (the benchmarks time writing this content, so it should cost little).
pub fn fill(seed: u64, version: u64, offset: u64, buf: &mut [u8]) {
    let key = mix(seed ^ mix(version ^ 0x5555));
    let (mut pos, mut i) = (offset, 0);
    while i < buf.len() {
        let word = mix(key ^ (pos / 8)).to_le_bytes();
        let from = (pos % 8) as usize;
        let n = (8 - from).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[from..from + n]);
        i += n;
        pos += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        for i in 0..1000 {
            let s = crash_step(42, i);
            assert_eq!(s, crash_step(42, i));
            assert!(s.file < CRASH_FILES && s.len >= 1 && s.len <= CRASH_MAX_LEN);
        }
        assert_ne!(crash_step(1, 0), crash_step(2, 0));
    }

    /// The content is defined byte by byte; `fill` computes it eight bytes at a time.
    #[test]
    fn fill_matches_the_byte_definition() {
        let key = mix(9 ^ mix(2 ^ 0x5555));
        for (offset, len) in [(0u64, 64usize), (3, 1), (5, 30), (7, 9), (8, 8), (1 << 40, 17)] {
            let mut buf = [0u8; 64];
            fill(9, 2, offset, &mut buf[..len]);
            for (i, &b) in buf[..len].iter().enumerate() {
                let pos = offset + i as u64;
                assert_eq!(b, (mix(key ^ (pos / 8)) >> ((pos % 8) * 8)) as u8, "{offset}+{i}");
            }
        }
    }

    #[test]
    fn fill_is_position_addressable() {
        let mut whole = [0u8; 100];
        fill(7, 3, 0, &mut whole);
        let mut tail = [0u8; 37];
        fill(7, 3, 63, &mut tail);
        assert_eq!(&whole[63..], &tail[..]);
        let mut other = [0u8; 100];
        fill(7, 4, 0, &mut other);
        assert_ne!(whole, other);
    }
}
