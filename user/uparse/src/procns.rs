//! `/proc/ns`: the namespaces the reader can see (its own and those below it), one per line:
//! `id parent kinds init members addr ports`, e.g.
//!
//! ```text
//! 1 0 pid,fs,net 1 3 192.168.1.1 8081:80/tcp,8082:80/tcp
//! 2 1 pid,fs,net 4 2 192.168.1.2 -
//! ```
//!
//! `addr` is the namespace's address on the container network, `-` for a namespace without a
//! network of its own; `ports` its published ports (`-` for none): `HOSTPORT:PORT/tcp` in the
//! root's view, `PORT/tcp` in a container's view of itself (see [`crate::publish`]). A line
//! with only the first five columns (a kernel without network namespaces) has no address and
//! no ports. Columns after `ports` are ignored, so the kernel may add some; a header (first
//! field `id`, any case) and blank lines are skipped.

use alloc::string::String;
use alloc::vec::Vec;

use crate::inet::parse_ipv4;
use crate::procnet::word_ok;
use crate::publish::{parse_list, PortMap};

/// One namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace {
    pub id: u32,
    /// 0 for the root (its parent is nobody).
    pub parent: u32,
    /// `pid,fs,net` or a part of it.
    pub kinds: String,
    /// Its init's pid as the reader sees it, 0 without one.
    pub init: u32,
    pub members: u32,
    /// Its address on the container network; `None` without one (or an older kernel).
    pub addr: Option<[u8; 4]>,
    pub ports: Vec<PortMap>,
}

/// What one line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Namespace(Namespace),
    /// Blank, or a header.
    Skip,
    /// Not in the format.
    Bad,
}

/// Reads one line.
pub fn parse_line(line: &str) -> Line {
    let w: Vec<&str> = line.split_whitespace().take(7).collect();
    let Some(first) = w.first() else { return Line::Skip };
    if first.eq_ignore_ascii_case("id") {
        return Line::Skip;
    }
    if w.len() < 5 || !word_ok(w[2]) {
        return Line::Bad;
    }
    let num = |i: usize| w[i].parse::<u32>().ok();
    let (Some(id), Some(parent), Some(init), Some(members)) = (num(0), num(1), num(3), num(4))
    else {
        return Line::Bad;
    };
    let addr = match w.get(5) {
        None | Some(&"-") => None,
        Some(a) => match parse_ipv4(a) {
            Some(a) => Some(a),
            None => return Line::Bad,
        },
    };
    let ports = match w.get(6) {
        None => Vec::new(),
        Some(p) => match parse_list(p) {
            Some(p) => p,
            None => return Line::Bad,
        },
    };
    Line::Namespace(Namespace { id, parent, kinds: w[2].into(), init, members, addr, ports })
}

/// Every namespace in `text`, and how many lines were not in the format.
pub fn parse(text: &str) -> (Vec<Namespace>, usize) {
    let mut out = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match parse_line(line) {
            Line::Namespace(n) => out.push(n),
            Line::Skip => {}
            Line::Bad => bad += 1,
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Proto;
    use std::vec;

    fn ns(id: u32, kinds: &str, addr: Option<[u8; 4]>, ports: Vec<PortMap>) -> Namespace {
        Namespace { id, parent: 1, kinds: kinds.into(), init: 4, members: 2, addr, ports }
    }

    fn tcp(host: Option<u16>, port: u16) -> PortMap {
        PortMap { proto: Proto::Tcp, host, port }
    }

    #[test]
    fn the_kernel_format() {
        let text = "1 0 pid,fs,net 1 3 192.168.1.1 -\n\
                    2 1 pid,fs,net 4 2 192.168.1.2 8081:80/tcp,8081:53/udp\n\
                    3 1 pid,fs 4 2 - -\n";
        let (n, bad) = parse(text);
        assert_eq!(bad, 0);
        let root = Namespace {
            id: 1,
            parent: 0,
            kinds: "pid,fs,net".into(),
            init: 1,
            members: 3,
            addr: Some([192, 168, 1, 1]),
            ports: vec![],
        };
        let udp = PortMap { proto: Proto::Udp, host: Some(8081), port: 53 };
        assert_eq!(
            n,
            [
                root,
                ns(2, "pid,fs,net", Some([192, 168, 1, 2]), vec![tcp(Some(8081), 80), udp]),
                ns(3, "pid,fs", None, vec![]),
            ]
        );
        // A container's view of itself: its ports without the host's side.
        let mut own = ns(2, "pid,fs,net", Some([192, 168, 1, 2]), vec![tcp(None, 80)]);
        own.init = 1;
        assert_eq!(parse("2 1 pid,fs,net 1 2 192.168.1.2 80/tcp\n"), (vec![own], 0));
    }

    #[test]
    fn older_kernels_and_extra_columns() {
        // Five columns: the format before network namespaces.
        assert_eq!(parse("2 1 pid,fs 4 2\n"), (vec![ns(2, "pid,fs", None, vec![])], 0));
        // Six: an address and no ports column.
        assert_eq!(
            parse("2 1 pid,fs,net 4 2 192.168.1.2"),
            (vec![ns(2, "pid,fs,net", Some([192, 168, 1, 2]), vec![])], 0)
        );
        // More columns than seven, a header, blanks, tabs and carriage returns.
        let text = "ID PARENT KINDS INIT MEMBERS ADDR PORTS\n\n\
                    2\t1 pid,fs,net 4 2  192.168.1.2 80/tcp future 1 2\r\n";
        assert_eq!(
            parse(text),
            (vec![ns(2, "pid,fs,net", Some([192, 168, 1, 2]), vec![tcp(None, 80)])], 0)
        );
        assert_eq!(parse(""), (vec![], 0));
    }

    #[test]
    fn bad_lines_are_counted() {
        for bad in [
            "2",
            "2 1 pid,fs 4",
            "x 1 pid,fs 4 2",
            "2 1 pid,fs 4 -2",
            "2 1 pid,fs 4 2 192.168.1.300 -",
            "2 1 pid,fs 4 2 192.168.1.2 8081:80",
            "2 1 pid,fs 4 2 192.168.1.2 80/tcp,",
            "2 1 pid,fs 4 2 192.168.1.2 0/tcp",
            "2 1 AVERYVERYLONGKINDSLISTINDEED 4 2",
            "99999999999 1 pid 4 2",
        ] {
            assert_eq!(parse_line(bad), Line::Bad, "{bad:?}");
        }
        let (n, bad) = parse("2 1 pid,fs 4 2\ngarbage\n3 1 pid 5 1 - 0:0/tcp\n");
        assert_eq!((n.len(), bad), (1, 2));
    }
}
