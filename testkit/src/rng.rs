//! A seeded pseudo-random generator for tests: xorshift64* (Vigna), seeded through splitmix64
//! so that any seed, 0 included, starts a good sequence. Not for anything but tests.

/// A deterministic generator: the same seed gives the same sequence on every machine.
#[derive(Clone, Debug)]
pub struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed: never 0 for the seeds tests use, and 0 is mapped away.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng { seed, state: if z == 0 { 0x2545_f491_4f6c_dd1d } else { z } }
    }

    /// The generator for the seed in environment variable `var` (decimal), or `default`; prints
    /// the seed and how to replay it, so that a failing run can be repeated.
    pub fn from_env(var: &str, default: u64) -> Rng {
        let seed = match std::env::var(var) {
            Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("{var}={s:?} is not a number")),
            Err(_) => default,
        };
        println!("seed {seed} (replay with {var}={seed})");
        Rng::new(seed)
    }

    /// The seed this generator started from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0; the tiny modulo bias does not matter to a test).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0)");
        self.next_u64() % n
    }

    /// A number in `range` (not empty).
    pub fn range(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.below(range.end - range.start)
    }

    /// True `p` times in a hundred.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_seeds_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = Rng::new(7);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = Rng::new(7);
        assert_eq!(a, (0..4).map(|_| r.next_u64()).collect::<Vec<_>>());
        assert_ne!(Rng::new(0).next_u64(), Rng::new(1).next_u64());
        assert_eq!(Rng::new(3).seed(), 3);
    }

    #[test]
    fn ranges_and_bytes() {
        let mut r = Rng::new(0);
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            assert!((5..9).contains(&r.range(5..9)));
        }
        let b = r.bytes(1001);
        assert_eq!(b.len(), 1001);
        // Not constant: every byte value shows up in a few thousand draws.
        let mut seen = [false; 256];
        r.bytes(8192).iter().for_each(|&x| seen[x as usize] = true);
        assert!(seen.iter().all(|&s| s));
    }
}
