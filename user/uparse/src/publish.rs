//! Published ports, as text: `spawn -p`'s argument (Docker's syntax, `HOSTPORT:PORT` for TCP,
//! `HOSTPORT:PORT/udp` for UDP) and the entries of `/proc/ns`'s ports column
//! (`HOSTPORT:PORT/tcp` in the root's view, `PORT/tcp` in a container's view of itself).
//!
//! Port 0 is refused everywhere (the kernel refuses it too: it would mean "any port").

use alloc::vec::Vec;
use core::fmt;

use crate::inet::parse_port;

/// The transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// `tcp` or `udp`, in any case.
    pub fn parse(s: &str) -> Option<Proto> {
        if s.eq_ignore_ascii_case("tcp") {
            Some(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Some(Proto::Udp)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One published port: the host side (the E1000's port; `None` in a container's own view)
/// and the container's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortMap {
    pub proto: Proto,
    pub host: Option<u16>,
    pub port: u16,
}

impl fmt::Display for PortMap {
    /// `8081:80/tcp`, or `80/tcp` without a host port: the kernel's own spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(h) => write!(f, "{h}:{}/{}", self.port, self.proto.name()),
            None => write!(f, "{}/{}", self.port, self.proto.name()),
        }
    }
}

/// Why a `-p` argument was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Not `HOSTPORT:PORT[/tcp|/udp]`.
    Syntax,
    /// A port that is not a number from 1 to 65535.
    BadPort,
    /// A protocol other than `tcp` or `udp`.
    BadProto,
}

impl SpecError {
    pub fn message(self) -> &'static str {
        match self {
            SpecError::Syntax => "not HOSTPORT:PORT[/udp]",
            SpecError::BadPort => "a port is a number from 1 to 65535",
            SpecError::BadProto => "the protocol is tcp or udp",
        }
    }
}

/// A port from 1 to 65535.
fn nonzero_port(s: &str) -> Result<u16, SpecError> {
    match parse_port(s) {
        Some(0) | None => Err(SpecError::BadPort),
        Some(p) => Ok(p),
    }
}

/// `spawn -p`'s argument: `HOSTPORT:PORT`, `HOSTPORT:PORT/tcp` or `HOSTPORT:PORT/udp` (TCP
/// when no protocol is given, as Docker's `-p`).
pub fn parse_spec(s: &str) -> Result<PortMap, SpecError> {
    let (ports, proto) = match s.split_once('/') {
        Some((ports, proto)) => (ports, Proto::parse(proto).ok_or(SpecError::BadProto)?),
        None => (s, Proto::Tcp),
    };
    let (host, port) = ports.split_once(':').ok_or(SpecError::Syntax)?;
    if host.is_empty() || port.is_empty() || port.contains(':') {
        return Err(SpecError::Syntax);
    }
    Ok(PortMap { proto, host: Some(nonzero_port(host)?), port: nonzero_port(port)? })
}

/// One entry of `/proc/ns`'s ports column: `HOSTPORT:PORT/PROTO` or `PORT/PROTO` (the
/// protocol required).
pub fn parse_listed(s: &str) -> Option<PortMap> {
    let (ports, proto) = s.split_once('/')?;
    let proto = Proto::parse(proto)?;
    let (host, port) = match ports.split_once(':') {
        Some((h, p)) => (Some(nonzero_port(h).ok()?), p),
        None => (None, ports),
    };
    Some(PortMap { proto, host, port: nonzero_port(port).ok()? })
}

/// `/proc/ns`'s ports column: `-` (none) or entries joined by commas.
pub fn parse_list(s: &str) -> Option<Vec<PortMap>> {
    if s == "-" {
        return Some(Vec::new());
    }
    s.split(',').map(parse_listed).collect()
}

/// The first two maps that claim the same host port for the same protocol (the kernel would
/// refuse the second with `EADDRINUSE`).
pub fn first_clash(maps: &[PortMap]) -> Option<(PortMap, PortMap)> {
    for (i, a) in maps.iter().enumerate() {
        if let Some(b) = maps[i + 1..].iter().find(|b| b.proto == a.proto && b.host == a.host) {
            return Some((*a, *b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::ToString;
    use std::vec;

    fn map(proto: Proto, host: Option<u16>, port: u16) -> PortMap {
        PortMap { proto, host, port }
    }

    #[test]
    fn dockers_syntax() {
        assert_eq!(parse_spec("8081:80"), Ok(map(Proto::Tcp, Some(8081), 80)));
        assert_eq!(parse_spec("8081:80/tcp"), Ok(map(Proto::Tcp, Some(8081), 80)));
        assert_eq!(parse_spec("53:5353/udp"), Ok(map(Proto::Udp, Some(53), 5353)));
        assert_eq!(parse_spec("1:65535/UDP"), Ok(map(Proto::Udp, Some(1), 65535)));
        assert_eq!(parse_spec("65535:1"), Ok(map(Proto::Tcp, Some(65535), 1)));
    }

    #[test]
    fn bad_specs_say_why() {
        for (bad, why) in [
            ("", SpecError::Syntax),
            ("80", SpecError::Syntax),
            ("80/udp", SpecError::Syntax),
            (":80", SpecError::Syntax),
            ("8081:", SpecError::Syntax),
            ("1.2.3.4:8081:80", SpecError::Syntax),
            ("8081:80:90", SpecError::Syntax),
            ("0:80", SpecError::BadPort),
            ("8081:0", SpecError::BadPort),
            ("65536:80", SpecError::BadPort),
            ("8081:99999999999999999999", SpecError::BadPort),
            ("-1:80", SpecError::BadPort),
            ("x:80", SpecError::BadPort),
            (" 8081:80", SpecError::BadPort),
            ("8081:80/sctp", SpecError::BadProto),
            ("8081:80/", SpecError::BadProto),
            ("8081:80/udp/tcp", SpecError::BadProto),
            ("8081:80/tcp ", SpecError::BadProto),
        ] {
            assert_eq!(parse_spec(bad), Err(why), "{bad:?}");
        }
        for e in [SpecError::Syntax, SpecError::BadPort, SpecError::BadProto] {
            assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn display_is_the_kernels_spelling_and_round_trips() {
        for (m, text) in [
            (map(Proto::Tcp, Some(8081), 80), "8081:80/tcp"),
            (map(Proto::Udp, Some(5353), 53), "5353:53/udp"),
            (map(Proto::Tcp, None, 80), "80/tcp"),
            (map(Proto::Udp, None, 7), "7/udp"),
        ] {
            assert_eq!(m.to_string(), text);
            assert_eq!(parse_listed(text), Some(m));
        }
        assert_eq!(format!("{}", map(Proto::Tcp, Some(1), 2)), "1:2/tcp");
    }

    #[test]
    fn lists_from_proc_ns() {
        assert_eq!(parse_list("-"), Some(vec![]));
        assert_eq!(parse_list("80/tcp"), Some(vec![map(Proto::Tcp, None, 80)]));
        assert_eq!(
            parse_list("8081:80/tcp,8082:53/udp"),
            Some(vec![map(Proto::Tcp, Some(8081), 80), map(Proto::Udp, Some(8082), 53)])
        );
        for bad in ["", ",", "80", "80/tcp,", ",80/tcp", "8081:80", "0/tcp", "a:80/tcp", "--"] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn clashes_are_per_protocol_and_host_port() {
        let a = map(Proto::Tcp, Some(8081), 80);
        let b = map(Proto::Udp, Some(8081), 80);
        let c = map(Proto::Tcp, Some(8081), 81);
        let d = map(Proto::Tcp, Some(8082), 80);
        assert_eq!(first_clash(&[]), None);
        assert_eq!(first_clash(&[a, b, d]), None, "TCP and UDP 8081 are different ports");
        assert_eq!(first_clash(&[a, b, d, c]), Some((a, c)));
        assert_eq!(first_clash(&[b, b]), Some((b, b)));
    }
}
