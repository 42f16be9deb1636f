//! Durations on command lines (`sleep`): seconds with an optional fraction (`2`, `0.25`), or
//! milliseconds with the suffix `ms` (`150ms`).

/// The duration in milliseconds, or `None` when `s` is not one.
pub fn parse_ms(s: &str) -> Option<u64> {
    if let Some(ms) = s.strip_suffix("ms") {
        return digits(ms);
    }
    let s = s.strip_suffix('s').unwrap_or(s);
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let secs = if whole.is_empty() { 0 } else { digits(whole)? };
    let mut ms = 0;
    let mut scale = 100;
    for c in frac.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        ms += u64::from(c - b'0') * scale;
        scale /= 10;
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_ms("2"), Some(2000));
        assert_eq!(parse_ms("2s"), Some(2000));
        assert_eq!(parse_ms("0.25"), Some(250));
        assert_eq!(parse_ms(".5"), Some(500));
        assert_eq!(parse_ms("1."), Some(1000));
        assert_eq!(parse_ms("1.2345"), Some(1234));
        assert_eq!(parse_ms("150ms"), Some(150));
        assert_eq!(parse_ms("0"), Some(0));
    }

    #[test]
    fn rejects() {
        for bad in ["", ".", "ms", "-1", "1.x", "x", "1 2", "+3", "1.5ms", "99999999999999999999"] {
            assert_eq!(parse_ms(bad), None, "{bad:?}");
        }
    }
}
