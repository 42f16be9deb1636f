//! `/proc/net`: the kernel's sockets as text, one per line:
//! `proto local_addr:port remote_addr:port [state]`, e.g. `tcp 0.0.0.0:80 0.0.0.0:0 LISTEN`
//! (a UDP socket may have no state). Fields are separated by any run of blanks; a header line
//! (first field `proto`, any case) and blank lines are skipped; fields after the state are
//! ignored, so the kernel may add columns.
//!
//! `/proc/netall` (the root's view of every network namespace it can see) has the same lines
//! with the namespace's id first: `ns proto local_addr:port remote_addr:port [state]`
//! ([`parse_all`]); its header's first field is `ns`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::inet::{parse_endpoint, Endpoint};

/// One socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Socket {
    pub proto: String,
    pub local: Endpoint,
    pub remote: Endpoint,
    /// Empty when the line has none.
    pub state: String,
}

/// What one line holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Socket(Socket),
    /// Blank, or a header.
    Skip,
    /// Not in the format.
    Bad,
}

/// Longest protocol or state name accepted (a garbled line is not shown as one).
const MAX_WORD: usize = 16;

pub(crate) fn word_ok(w: &str) -> bool {
    !w.is_empty() && w.len() <= MAX_WORD && w.bytes().all(|c| c.is_ascii_graphic())
}

/// Reads one line.
pub fn parse_line(line: &str) -> Line {
    let mut fields = line.split_whitespace();
    let Some(proto) = fields.next() else { return Line::Skip };
    if proto.eq_ignore_ascii_case("proto") {
        return Line::Skip;
    }
    let (Some(local), Some(remote)) = (fields.next(), fields.next()) else { return Line::Bad };
    let state = fields.next().unwrap_or("");
    if !word_ok(proto) || !(state.is_empty() || word_ok(state)) {
        return Line::Bad;
    }
    match (parse_endpoint(local), parse_endpoint(remote)) {
        (Some(local), Some(remote)) => {
            Line::Socket(Socket { proto: proto.into(), local, remote, state: state.into() })
        }
        _ => Line::Bad,
    }
}

/// Every socket in `text`, and how many lines were not in the format.
pub fn parse(text: &str) -> (Vec<Socket>, usize) {
    let mut sockets = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match parse_line(line) {
            Line::Socket(s) => sockets.push(s),
            Line::Skip => {}
            Line::Bad => bad += 1,
        }
    }
    (sockets, bad)
}

/// One socket of `/proc/netall`: the namespace it lives in, and the socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsSocket {
    pub ns: u32,
    pub socket: Socket,
}

/// What one line of `/proc/netall` holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllLine {
    Socket(NsSocket),
    /// Blank, or a header.
    Skip,
    /// Not in the format.
    Bad,
}

/// Reads one line of `/proc/netall`.
pub fn parse_all_line(line: &str) -> AllLine {
    let line = line.trim_start();
    let (first, rest) = line.split_once(|c: char| c.is_whitespace()).unwrap_or((line, ""));
    if first.is_empty() {
        return AllLine::Skip;
    }
    if first.eq_ignore_ascii_case("ns") {
        return AllLine::Skip;
    }
    let Ok(ns) = first.parse::<u32>() else { return AllLine::Bad };
    match parse_line(rest) {
        Line::Socket(socket) => AllLine::Socket(NsSocket { ns, socket }),
        Line::Skip | Line::Bad => AllLine::Bad,
    }
}

/// Every socket in the text of `/proc/netall`, and how many lines were not in the format.
pub fn parse_all(text: &str) -> (Vec<NsSocket>, usize) {
    let mut sockets = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        match parse_all_line(line) {
            AllLine::Socket(s) => sockets.push(s),
            AllLine::Skip => {}
            AllLine::Bad => bad += 1,
        }
    }
    (sockets, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(proto: &str, l: ([u8; 4], u16), r: ([u8; 4], u16), state: &str) -> Socket {
        Socket {
            proto: proto.into(),
            local: Endpoint::new(l.0, l.1),
            remote: Endpoint::new(r.0, r.1),
            state: state.into(),
        }
    }

    #[test]
    fn the_kernel_format() {
        let text = "tcp 0.0.0.0:80 0.0.0.0:0 LISTEN\n\
                    tcp 10.0.2.15:80 10.0.2.2:40000 ESTABLISHED\n\
                    udp 0.0.0.0:7 0.0.0.0:0\n";
        let (s, bad) = parse(text);
        assert_eq!(bad, 0);
        assert_eq!(
            s,
            [
                sock("tcp", ([0; 4], 80), ([0; 4], 0), "LISTEN"),
                sock("tcp", ([10, 0, 2, 15], 80), ([10, 0, 2, 2], 40000), "ESTABLISHED"),
                sock("udp", ([0; 4], 7), ([0; 4], 0), ""),
            ]
        );
    }

    #[test]
    fn tolerant_of_headers_blanks_and_extra_columns() {
        let text =
            "Proto Local Remote State\n\n  tcp\t1.2.3.4:5   6.7.8.9:10  CLOSE_WAIT  extra 1\r\n";
        let (s, bad) = parse(text);
        assert_eq!(bad, 0);
        assert_eq!(s, [sock("tcp", ([1, 2, 3, 4], 5), ([6, 7, 8, 9], 10), "CLOSE_WAIT")]);
        assert_eq!(parse(""), (Vec::new(), 0));
    }

    #[test]
    fn bad_lines_are_counted() {
        for bad in [
            "tcp",
            "tcp 0.0.0.0:80",
            "tcp 0.0.0.0 0.0.0.0:0 LISTEN",
            "tcp 0.0.0.0:80 0.0.0.0:99999 LISTEN",
            "tcp 300.0.0.0:80 0.0.0.0:0 LISTEN",
            "tcp 0.0.0.0:80 0.0.0.0:0 AVERYVERYLONGSTATENAMEINDEED",
            "tcp 0.0.0.0:x 0.0.0.0:0",
        ] {
            assert_eq!(parse_line(bad), Line::Bad, "{bad:?}");
        }
        let (s, bad) = parse("tcp 0.0.0.0:80 0.0.0.0:0 LISTEN\ngarbage here\nudp\n");
        assert_eq!((s.len(), bad), (1, 2));
    }

    #[test]
    fn every_namespace() {
        let text = "ns proto local remote state\n\
                    1 tcp 0.0.0.0:80 0.0.0.0:0 LISTEN\n\
                    2\ttcp 192.168.1.2:80 192.168.1.1:40000 ESTABLISHED extra\r\n\
                    \n\
                    3 udp 0.0.0.0:53 0.0.0.0:0\n";
        let (s, bad) = parse_all(text);
        assert_eq!(bad, 0);
        let at = |ns, socket| NsSocket { ns, socket };
        assert_eq!(
            s,
            [
                at(1, sock("tcp", ([0; 4], 80), ([0; 4], 0), "LISTEN")),
                at(
                    2,
                    sock("tcp", ([192, 168, 1, 2], 80), ([192, 168, 1, 1], 40000), "ESTABLISHED")
                ),
                at(3, sock("udp", ([0; 4], 53), ([0; 4], 0), "")),
            ]
        );
        assert_eq!(parse_all(""), (Vec::new(), 0));
    }

    #[test]
    fn bad_netall_lines_are_counted() {
        for bad in [
            "1",
            "x tcp 0.0.0.0:80 0.0.0.0:0 LISTEN",
            "-1 tcp 0.0.0.0:80 0.0.0.0:0 LISTEN",
            "99999999999 tcp 0.0.0.0:80 0.0.0.0:0 LISTEN",
            "tcp 0.0.0.0:80 0.0.0.0:0 LISTEN",
            "1 tcp 0.0.0.0:80",
            "1 proto local remote",
            "1 tcp 0.0.0.0:80 0.0.0.0:99999 LISTEN",
        ] {
            assert_eq!(parse_all_line(bad), AllLine::Bad, "{bad:?}");
        }
        // A /proc/net line (no namespace column) is not a /proc/netall one.
        let (s, bad) = parse_all("tcp 0.0.0.0:80 0.0.0.0:0 LISTEN\n2 udp 0.0.0.0:7 0.0.0.0:0\n");
        assert_eq!((s.len(), bad), (1, 1));
    }
}
