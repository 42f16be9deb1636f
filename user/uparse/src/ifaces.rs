//! `/proc/ifaces`: the interfaces of the reader's network namespace, one per line:
//! `name mac addr/prefix`, e.g.
//!
//! ```text
//! eth0 02:00:00:00:01:02 192.168.1.2/24
//! lo 00:00:00:00:00:00 127.0.0.1/8
//! ```
//!
//! Further columns that are `addr/prefix` are more addresses of the same interface; other
//! columns are ignored, so the kernel may add some. A header (first field `name`, any case)
//! and blank lines are skipped.

use alloc::string::String;
use alloc::vec::Vec;

use crate::inet::{parse_cidr, parse_mac};
use crate::procnet::word_ok;

/// One interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub mac: [u8; 6],
    /// Its addresses with their prefix lengths, at least one.
    pub addrs: Vec<([u8; 4], u8)>,
}

/// What one line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Iface(Iface),
    /// Blank, or a header.
    Skip,
    /// Not in the format.
    Bad,
}

/// Addresses read per interface, at most (a garbled line does not grow without bound).
const MAX_ADDRS: usize = 16;

/// Reads one line.
pub fn parse_line(line: &str) -> Line {
    let mut fields = line.split_whitespace();
    let Some(name) = fields.next() else { return Line::Skip };
    if name.eq_ignore_ascii_case("name") {
        return Line::Skip;
    }
    let (Some(mac), Some(first)) = (fields.next(), fields.next()) else { return Line::Bad };
    let (true, Some(mac), Some(first)) = (word_ok(name), parse_mac(mac), parse_cidr(first)) else {
        return Line::Bad;
    };
    let mut addrs = Vec::from([first]);
    addrs.extend(fields.filter_map(parse_cidr).take(MAX_ADDRS - 1));
    Line::Iface(Iface { name: name.into(), mac, addrs })
}

/// Every interface in `text`, and how many lines were not in the format.
pub fn parse(text: &str) -> (Vec<Iface>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match parse_line(line) {
            Line::Iface(i) => out.push(i),
            Line::Skip => {}
            Line::Bad => bad += 1,
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;
    use std::vec;

    fn iface(name: &str, mac: [u8; 6], addrs: &[([u8; 4], u8)]) -> Iface {
        Iface { name: name.into(), mac, addrs: addrs.to_vec() }
    }

    #[test]
    fn the_kernel_format() {
        let root = "eth0 52:54:00:12:34:56 10.0.2.15/24\n\
                    br0 52:54:00:12:34:56 192.168.1.1/24\n\
                    lo 00:00:00:00:00:00 127.0.0.1/8\n";
        let nic = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        assert_eq!(
            parse(root),
            (
                vec![
                    iface("eth0", nic, &[([10, 0, 2, 15], 24)]),
                    iface("br0", nic, &[([192, 168, 1, 1], 24)]),
                    iface("lo", [0; 6], &[([127, 0, 0, 1], 8)]),
                ],
                0
            )
        );
        let container = "eth0 02:00:00:00:01:0a 192.168.1.10/24\n";
        assert_eq!(
            parse(container),
            (vec![iface("eth0", [2, 0, 0, 0, 1, 10], &[([192, 168, 1, 10], 24)])], 0)
        );
    }

    #[test]
    fn tolerant_of_headers_blanks_and_extra_columns() {
        let text = "NAME MAC ADDR\n\n  eth0\t02:00:00:00:01:02  192.168.1.2/24 mtu 1500 \
                    10.1.1.1/8\r\n";
        assert_eq!(
            parse(text),
            (
                vec![iface(
                    "eth0",
                    [2, 0, 0, 0, 1, 2],
                    &[([192, 168, 1, 2], 24), ([10, 1, 1, 1], 8)]
                )],
                0
            )
        );
        let many = "eth0 02:00:00:00:01:02 1.1.1.1/8".to_string() + &" 2.2.2.2/8".repeat(100);
        let Line::Iface(i) = parse_line(&many) else { panic!("{many}") };
        assert_eq!(i.addrs.len(), MAX_ADDRS);
        assert_eq!(parse(""), (vec![], 0));
    }

    #[test]
    fn bad_lines_are_counted() {
        for bad in [
            "eth0",
            "eth0 02:00:00:00:01:02",
            "eth0 02:00:00:00:01 192.168.1.2/24",
            "eth0 02:00:00:00:01:02 192.168.1.2",
            "eth0 02:00:00:00:01:02 192.168.1.2/33",
            "eth0 192.168.1.2/24 02:00:00:00:01:02",
            "AVERYVERYLONGINTERFACENAME 02:00:00:00:01:02 192.168.1.2/24",
        ] {
            assert_eq!(parse_line(bad), Line::Bad, "{bad:?}");
        }
        let (i, bad) = parse("lo 00:00:00:00:00:00 127.0.0.1/8\ngarbage\neth0 x y\n");
        assert_eq!((i.len(), bad), (1, 2));
    }
}
