//! Internet addresses as text: dotted quads (`10.0.2.2`), ports, `address:port` pairs, and
//! their display (plus `a.b.c.d/n` prefixes and MAC addresses, `52:54:00:12:34:56`).
//!
//! The dotted-quad grammar is `inet_pton`'s, the strict one: exactly four decimal numbers of
//! one to three digits, each at most 255, no sign, no leading zero (`010` could mean 8 or 10
//! depending on who reads it, so it is refused), no spaces.

use core::fmt;

/// `a.b.c.d` as four bytes (network order: `a` first), or `None`.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for byte in out.iter_mut() {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        *byte = part.parse::<u16>().ok().filter(|&v| v <= 255)? as u8;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// A port number `0..=65535` in decimal (no sign, at most five digits).
pub fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().and_then(|p| u16::try_from(p).ok())
}

/// `a.b.c.d:port` (the port required).
pub fn parse_endpoint(s: &str) -> Option<Endpoint> {
    let (addr, port) = s.rsplit_once(':')?;
    Some(Endpoint { addr: parse_ipv4(addr)?, port: parse_port(port)? })
}

/// `a.b.c.d` or `a.b.c.d:port`; `default_port` when there is none.
pub fn parse_host_port(s: &str, default_port: u16) -> Option<Endpoint> {
    match s.split_once(':') {
        Some(_) => parse_endpoint(s),
        None => Some(Endpoint { addr: parse_ipv4(s)?, port: default_port }),
    }
}

/// `a.b.c.d/n`: an address and a prefix length from 0 to 32 (decimal, no sign, no leading
/// zero).
pub fn parse_cidr(s: &str) -> Option<([u8; 4], u8)> {
    let (addr, len) = s.split_once('/')?;
    if len.is_empty() || len.len() > 2 || !len.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    if len.len() > 1 && len.starts_with('0') {
        return None;
    }
    let len = len.parse::<u8>().ok().filter(|&l| l <= 32)?;
    Some((parse_ipv4(addr)?, len))
}

/// A MAC address as six pairs of hex digits (either case) joined by `:`, as [`Mac`] shows it.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for byte in out.iter_mut() {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(out)
}

/// An IPv4 address shown as a dotted quad.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4(pub [u8; 4]);

impl Ipv4 {
    pub const ANY: Ipv4 = Ipv4([0; 4]);
}

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        // One `pad` so that width and alignment (`{:<15}`) apply to the whole address.
        let mut buf = [0u8; 15];
        let n = write_quad(&mut buf, [a, b, c, d]);
        f.pad(core::str::from_utf8(&buf[..n]).unwrap_or("?"))
    }
}

/// An address and port (host byte order), shown as `a.b.c.d:port`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: [u8; 4],
    pub port: u16,
}

impl Endpoint {
    pub const fn new(addr: [u8; 4], port: u16) -> Endpoint {
        Endpoint { addr, port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 21];
        let mut n = write_quad(&mut buf, self.addr);
        buf[n] = b':';
        n += 1;
        n += write_decimal(&mut buf[n..], self.port as u32);
        f.pad(core::str::from_utf8(&buf[..n]).unwrap_or("?"))
    }
}

/// A hardware (Ethernet) address, shown as six lower-case hex pairs joined by `:`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 17];
        for (i, b) in self.0.iter().enumerate() {
            buf[i * 3] = HEX[(b >> 4) as usize];
            buf[i * 3 + 1] = HEX[(b & 15) as usize];
            if i < 5 {
                buf[i * 3 + 2] = b':';
            }
        }
        f.pad(core::str::from_utf8(&buf).unwrap_or("?"))
    }
}

fn write_decimal(buf: &mut [u8], mut v: u32) -> usize {
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    n
}

fn write_quad(buf: &mut [u8], quad: [u8; 4]) -> usize {
    let mut n = 0;
    for (i, b) in quad.iter().enumerate() {
        if i > 0 {
            buf[n] = b'.';
            n += 1;
        }
        n += write_decimal(&mut buf[n..], *b as u32);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn dotted_quads() {
        assert_eq!(parse_ipv4("10.0.2.2"), Some([10, 0, 2, 2]));
        assert_eq!(parse_ipv4("0.0.0.0"), Some([0; 4]));
        assert_eq!(parse_ipv4("255.255.255.255"), Some([255; 4]));
        assert_eq!(parse_ipv4("192.168.100.1"), Some([192, 168, 100, 1]));
    }

    #[test]
    fn bad_dotted_quads() {
        for bad in [
            "",
            ".",
            "...",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1.2.3.4.5",
            "1..3.4",
            "256.0.0.1",
            "1.2.3.999",
            "1.2.3.1000",
            "01.2.3.4",
            "1.2.3.00",
            "a.b.c.d",
            "1.2.3.x",
            "+1.2.3.4",
            "-1.2.3.4",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.4:80",
            "0x7f.0.0.1",
            "localhost",
            "1.2.3.٣",
            "99999999999999999999.1.1.1",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad:?}");
        }
        let long = "1.".repeat(1000) + "1";
        assert_eq!(parse_ipv4(&long), None);
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("80"), Some(80));
        assert_eq!(parse_port("0"), Some(0));
        assert_eq!(parse_port("65535"), Some(65535));
        assert_eq!(parse_port("08080"), Some(8080));
        for bad in ["", "65536", "-1", "+80", "80a", " 80", "123456", "99999999999999999999"] {
            assert_eq!(parse_port(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(parse_endpoint("10.0.2.15:80"), Some(Endpoint::new([10, 0, 2, 15], 80)));
        assert_eq!(parse_endpoint("0.0.0.0:0"), Some(Endpoint::new([0; 4], 0)));
        for bad in ["10.0.2.15", "10.0.2.15:", ":80", "10.0.2.15:x", "1.2.3.4:80:80", "a:1"] {
            assert_eq!(parse_endpoint(bad), None, "{bad:?}");
        }
        assert_eq!(parse_host_port("10.0.2.2", 80), Some(Endpoint::new([10, 0, 2, 2], 80)));
        assert_eq!(parse_host_port("10.0.2.2:8080", 80), Some(Endpoint::new([10, 0, 2, 2], 8080)));
        for bad in ["", ":", "10.0.2.2:", "host:80", "10.0.2.2:70000"] {
            assert_eq!(parse_host_port(bad, 80), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(parse_cidr("192.168.1.2/24"), Some(([192, 168, 1, 2], 24)));
        assert_eq!(parse_cidr("127.0.0.1/8"), Some(([127, 0, 0, 1], 8)));
        assert_eq!(parse_cidr("0.0.0.0/0"), Some(([0; 4], 0)));
        assert_eq!(parse_cidr("1.2.3.4/32"), Some(([1, 2, 3, 4], 32)));
        for bad in
            ["", "/", "1.2.3.4", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/024", "1.2.3.4/-1", "/24"]
        {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
        for bad in ["1.2.3.4/+8", "1.2.3.4/8/8", "1.2.3/24", "1.2.3.4/100", "1.2.3.4/ 8"] {
            assert_eq!(parse_cidr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("52:54:00:12:34:56"), Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(parse_mac("02:00:00:00:01:0A"), Some([2, 0, 0, 0, 1, 10]));
        assert_eq!(parse_mac("00:00:00:00:00:00"), Some([0; 6]));
        for bad in [
            "",
            "52:54:00:12:34",
            "52:54:00:12:34:56:78",
            "52:54:00:12:34:5",
            "52:54:00:12:34:567",
            "52-54-00-12-34-56",
            "52:54:00:12:34:5g",
            "52:54:00:12:34:+5",
            ":52:54:00:12:34:56",
            "52:54:00:12:34:56:",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
        let m = [0x02, 0, 0, 0, 1, 0xff];
        assert_eq!(parse_mac(&format!("{}", Mac(m))), Some(m));
    }

    #[test]
    fn display() {
        assert_eq!(format!("{}", Ipv4([10, 0, 2, 2])), "10.0.2.2");
        assert_eq!(format!("{}", Ipv4([255; 4])), "255.255.255.255");
        assert_eq!(format!("[{:<9}]", Ipv4([1, 2, 3, 4])), "[1.2.3.4  ]");
        assert_eq!(format!("{}", Endpoint::new([0; 4], 0)), "0.0.0.0:0");
        assert_eq!(format!("{}", Endpoint::new([255; 4], 65535)), "255.255.255.255:65535");
        assert_eq!(format!("{:>12}", Endpoint::new([1, 2, 3, 4], 5)), "   1.2.3.4:5");
        assert_eq!(format!("{}", Mac([0x52, 0x54, 0, 0x12, 0xab, 0xff])), "52:54:00:12:ab:ff");
        for q in [[0u8, 0, 0, 0], [10, 0, 2, 15], [1, 22, 133, 255]] {
            assert_eq!(parse_ipv4(&format!("{}", Ipv4(q))), Some(q));
        }
    }
}
