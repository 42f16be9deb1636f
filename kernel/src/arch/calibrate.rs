//! Which of several calibration samples to believe. A sample is what the TSC and the LAPIC
//! timer counted over one PIT interval. The interval itself is exact: the PIT counts the
//! host's time even while QEMU's virtual CPU is not running. But the counters are read just
//! before the interval starts and just after its end is noticed, and on a loaded host the
//! virtual CPU may stall there for a quarter of a second (seen under the fuzzer: a TSC of
//! 70 GHz, every sleep 27 times too long for the rest of the boot's life). A stall only adds
//! to a count, so the smallest count is the truest, and two counts that agree are both
//! undisturbed.
//!
//! No kernel dependencies: unit-tested on the host (`mkimage/tests/kernel_arch.rs`).

/// Most samples taken before giving up on agreement (then the smallest is used).
pub const MAX_SAMPLES: usize = 8;

/// Two TSC counts agree when they differ by at most 1 part in this.
const AGREE: u64 = 200;

/// The sample to use among `tsc_counts` (one per sample, in order), once two of them agree:
/// the smaller of the first pair found. `None`: keep sampling.
pub fn settled(tsc_counts: &[u64]) -> Option<usize> {
    for (i, &a) in tsc_counts.iter().enumerate() {
        for (j, &b) in tsc_counts.iter().enumerate().skip(i + 1) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if hi - lo <= lo / AGREE {
                return Some(if a <= b { i } else { j });
            }
        }
    }
    None
}

/// The sample to use when none agreed: the smallest count (the least disturbed).
pub fn smallest(tsc_counts: &[u64]) -> usize {
    (0..tsc_counts.len()).min_by_key(|&i| tsc_counts[i]).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_agreeing_samples_settle_on_the_smaller() {
        assert_eq!(settled(&[]), None);
        assert_eq!(settled(&[26_250_000]), None);
        assert_eq!(settled(&[26_250_000, 26_260_000]), Some(0));
        assert_eq!(settled(&[26_260_000, 26_250_000]), Some(1));
    }

    #[test]
    fn a_stalled_sample_is_passed_over() {
        // The first sample saw a 258 ms stall: 27 times the count of the 10 ms interval.
        let samples = [704_300_000, 26_250_000];
        assert_eq!(settled(&samples), None);
        let samples = [704_300_000, 26_250_000, 26_251_000];
        assert_eq!(settled(&samples), Some(1));
        // Disagreement to the end: the smallest.
        assert_eq!(smallest(&[704_300_000, 30_000_000, 26_250_000, 40_000_000]), 2);
    }
}
