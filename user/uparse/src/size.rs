//! Sizes and counts on command lines: `spawn --mem 16M`, `--pids 8`, `hog mem 512K`; and
//! sizes for people (`stats`).
//!
//! A size is a whole number of bytes, or of KiB, MiB or GiB with the suffix `K`, `M` or `G`
//! (either case; `16M` is 16 MiB). A limit of 0 would mean "none" to the kernel, so a limit
//! given on a command line is at least 1 ([`parse_limit`], [`parse_count`]).

use alloc::format;
use alloc::string::String;

/// Why a size or a count was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    Empty,
    /// Not digits (with an optional suffix, for a size).
    NotANumber,
    /// A suffix other than `K`, `M` or `G`.
    Suffix,
    TooLarge,
    /// 0, where a limit is meant.
    Zero,
}

impl Error {
    pub fn message(self) -> &'static str {
        match self {
            Error::Empty => "empty",
            Error::NotANumber => "not a number",
            Error::Suffix => "the unit is K, M or G (or none, for bytes)",
            Error::TooLarge => "too large",
            Error::Zero => "must be at least 1",
        }
    }
}

fn digits(s: &str) -> Result<u64, Error> {
    if s.is_empty() {
        return Err(Error::Empty);
    }
    if !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Error::NotANumber);
    }
    s.parse().map_err(|_| Error::TooLarge)
}

/// A size in bytes: `4096`, `512K`, `16M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, Error> {
    let Some(last) = s.chars().last() else { return Err(Error::Empty) };
    if last.is_ascii_digit() {
        return digits(s);
    }
    let shift = match last.to_ascii_uppercase() {
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ if last.is_ascii_alphabetic() => return Err(Error::Suffix),
        _ => return Err(Error::NotANumber),
    };
    let n = digits(&s[..s.len() - 1])?;
    n.checked_mul(1 << shift).ok_or(Error::TooLarge)
}

/// A memory limit: a size of at least 1 byte.
pub fn parse_limit(s: &str) -> Result<u64, Error> {
    match parse_size(s)? {
        0 => Err(Error::Zero),
        n => Ok(n),
    }
}

/// A count limit (processes): 1 to `u32::MAX`.
pub fn parse_count(s: &str) -> Result<u32, Error> {
    match digits(s)? {
        0 => Err(Error::Zero),
        n => u32::try_from(n).map_err(|_| Error::TooLarge),
    }
}

/// `bytes` for people: `512B`, `12K`, `3.5M`, `1.2G` (KiB and up, rounded down to a tenth).
pub fn human(bytes: u64) -> String {
    const K: u64 = 1 << 10;
    let (unit, name) = match bytes {
        b if b < K => return format!("{b}B"),
        b if b < K << 10 => return format!("{}K", b / K),
        b if b < K << 20 => (K << 10, 'M'),
        _ => (K << 20, 'G'),
    };
    // In u128: bytes * 10 does not fit a u64 near its top, and unit / 10 is not exact.
    let tenths = (u128::from(bytes) * 10 / u128::from(unit)) as u64;
    format!("{}.{}{name}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("17179869183G"), Ok(17_179_869_183 << 30));
        assert_eq!(parse_size(&u64::MAX.to_string()), Ok(u64::MAX));
    }

    #[test]
    fn bad_sizes() {
        for (bad, why) in [
            ("", Error::Empty),
            ("M", Error::Empty),
            ("16MB", Error::Suffix),
            ("16T", Error::Suffix),
            ("1.5M", Error::NotANumber),
            ("-1", Error::NotANumber),
            ("+1K", Error::NotANumber),
            ("16 M", Error::NotANumber),
            ("x", Error::Suffix),
            ("16%", Error::NotANumber),
            ("17179869184G", Error::TooLarge),
            ("18446744073709551616", Error::TooLarge),
            ("\u{e9}", Error::NotANumber),
        ] {
            assert_eq!(parse_size(bad), Err(why), "{bad:?}");
        }
        assert_eq!(parse_limit("0K"), Err(Error::Zero));
        assert_eq!(parse_limit("1"), Ok(1));
        assert!(!Error::Suffix.message().is_empty());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("1"), Ok(1));
        assert_eq!(parse_count("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_count("4294967296"), Err(Error::TooLarge));
        assert_eq!(parse_count("0"), Err(Error::Zero));
        assert_eq!(parse_count("8K"), Err(Error::NotANumber));
        assert_eq!(parse_count(""), Err(Error::Empty));
        assert_eq!(parse_count("-3"), Err(Error::NotANumber));
    }

    #[test]
    fn for_people() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1K");
        assert_eq!(human(2_125_824), "2.0M");
        assert_eq!(human(16 << 20), "16.0M");
        assert_eq!(human((3 << 20) + (1 << 19)), "3.5M");
        assert_eq!(human((1 << 30) + (1 << 29)), "1.5G");
        assert_eq!(human(u64::MAX), "17179869183.9G");
    }
}
