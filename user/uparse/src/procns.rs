//! `/proc/ns`: the namespaces the reader can see (its own and those below it), one per line:
//! `id parent kinds init members addr ports name procs mem_used mem_max pids_max front`, e.g.
//!
//! ```text
//! 1 0 pid,fs,net 1 3 192.168.1.1 8081:80/tcp,8082:80/tcp - 9 2297856 0 0 1
//! 2 1 pid,fs,net 4 2 192.168.1.2 - web 2 1077248 16777216 8 0
//! ```
//!
//! `addr` is the namespace's address on the container network, `-` for a namespace without a
//! network of its own; `ports` its published ports (`-` for none): `HOSTPORT:PORT/tcp` in the
//! root's view, `PORT/tcp` in a container's view of itself (see [`crate::publish`]). A line
//! with only the first five columns (a kernel without network namespaces) has no address and
//! no ports. The limits' columns (`spawn --name --pids --mem`): `name` (`-` for none), `procs`
//! (processes in it and below), `mem_used` and `mem_max` (bytes; a limit of 0 is none) and
//! `pids_max` (0: none); a line without them (an older kernel) has no [`Limits`]. Then the
//! consoles' `front`: 1 when the namespace's console is the one in front (`None` without the
//! column). Columns after `front` are ignored, so the kernel may add some; a header (first
//! field `id`, any case) and blank lines are skipped.
//!
//! [`find`] looks a namespace up by id or name; [`table`] is the `ns` program's listing, which
//! shows `-` for every column an older kernel does not give.

use alloc::format;
use alloc::string::{String, ToString};
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
    /// Its name, limits and what it uses; `None` from an older kernel.
    pub limits: Option<Limits>,
    /// Whether its console is the one in front; `None` from a kernel without consoles.
    pub front: Option<bool>,
}

/// A namespace's name, limits and use (`/proc/ns`'s columns after `ports`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `None`: no name.
    pub name: Option<String>,
    /// Processes in it and below.
    pub procs: u32,
    /// Bytes charged to it and below.
    pub mem_used: u64,
    /// Its memory limit in bytes (0: none).
    pub mem_max: u64,
    /// Its process limit (0: none).
    pub pids_max: u32,
}

impl Namespace {
    /// Whether `word` names it: its id in decimal, or its name.
    pub fn is(&self, word: &str) -> bool {
        word.parse::<u32>().ok() == Some(self.id)
            || self.limits.as_ref().and_then(|l| l.name.as_deref()) == Some(word)
    }
}

/// The namespace `word` names (an id or a name) among `spaces`.
pub fn find<'a>(spaces: &'a [Namespace], word: &str) -> Option<&'a Namespace> {
    spaces.iter().find(|n| n.is(word))
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
    let w: Vec<&str> = line.split_whitespace().take(13).collect();
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
    let limits = match w.get(7..12) {
        None if w.len() <= 7 => None,
        None => return Line::Bad, // some of the limits' columns, not all
        Some(l) => match parse_limits(l) {
            Some(l) => Some(l),
            None => return Line::Bad,
        },
    };
    let front = match w.get(12) {
        None => None,
        Some(&"0") => Some(false),
        Some(&"1") => Some(true),
        Some(_) => return Line::Bad,
    };
    Line::Namespace(Namespace {
        id,
        parent,
        kinds: w[2].into(),
        init,
        members,
        addr,
        ports,
        limits,
        front,
    })
}

/// `name procs mem_used mem_max pids_max`.
fn parse_limits(w: &[&str]) -> Option<Limits> {
    let name = match w[0] {
        "-" => None,
        n if word_ok(n) => Some(n.into()),
        _ => return None,
    };
    Some(Limits {
        name,
        procs: w[1].parse().ok()?,
        mem_used: w[2].parse().ok()?,
        mem_max: w[3].parse().ok()?,
        pids_max: w[4].parse().ok()?,
    })
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

/// The `ns` program's table: a header and one line per namespace, `ID NAME PARENT KINDS INIT
/// PROCS MEM LIMIT ADDR PORTS FRONT`, each column as wide as its widest cell. `-` stands for
/// nothing (no name, no init, no limit, no address, no port, not in front) and for what the
/// kernel does not say. PROCS is `N/MAX` under a process limit; MEM and LIMIT are in bytes,
/// KiB or MiB ([`size`]); FRONT is `*` for the console in front.
pub fn table(spaces: &[Namespace]) -> String {
    const HEAD: [&str; 11] = [
        "ID", "NAME", "PARENT", "KINDS", "INIT", "PROCS", "MEM", "LIMIT", "ADDR", "PORTS", "FRONT",
    ];
    let dash = || String::from("-");
    let mut rows: Vec<[String; 11]> = Vec::with_capacity(spaces.len() + 1);
    rows.push(HEAD.map(String::from));
    for n in spaces {
        let l = n.limits.as_ref();
        let procs = match l {
            None => dash(),
            Some(l) if l.pids_max == 0 => l.procs.to_string(),
            Some(l) => format!("{}/{}", l.procs, l.pids_max),
        };
        let addr = n.addr.map_or_else(dash, |a| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]));
        let ports = if n.ports.is_empty() {
            dash()
        } else {
            n.ports.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
        };
        rows.push([
            n.id.to_string(),
            l.and_then(|l| l.name.clone()).unwrap_or_else(dash),
            if n.parent == 0 { dash() } else { n.parent.to_string() },
            n.kinds.clone(),
            if n.init == 0 { dash() } else { n.init.to_string() },
            procs,
            l.map_or_else(dash, |l| size(l.mem_used)),
            l.filter(|l| l.mem_max != 0).map_or_else(dash, |l| size(l.mem_max)),
            addr,
            ports,
            if n.front == Some(true) { String::from("*") } else { dash() },
        ]);
    }
    let mut widths = [0usize; 11];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(cell);
            line.extend(core::iter::repeat_n(' ', w - cell.len()));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A byte count as `512`, `64K`, `1.5M` or `160M`: in the largest unit it reaches, with one
/// decimal (rounded down) below 100 of it unless that decimal is 0.
pub fn size(bytes: u64) -> String {
    const K: u64 = 1024;
    const M: u64 = K * K;
    let (unit, suffix) = match bytes {
        b if b >= M => (M, 'M'),
        b if b >= K => (K, 'K'),
        b => return b.to_string(),
    };
    let whole = bytes / unit;
    let tenth = (bytes % unit) * 10 / unit;
    if tenth == 0 || whole >= 100 {
        format!("{whole}{suffix}")
    } else {
        format!("{whole}.{tenth}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::Proto;
    use std::vec;

    fn ns(id: u32, kinds: &str, addr: Option<[u8; 4]>, ports: Vec<PortMap>) -> Namespace {
        Namespace {
            id,
            parent: 1,
            kinds: kinds.into(),
            init: 4,
            members: 2,
            addr,
            ports,
            limits: None,
            front: None,
        }
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
            limits: None,
            front: None,
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
        // More columns than thirteen, a header, blanks, tabs and carriage returns.
        let text = "ID PARENT KINDS INIT MEMBERS ADDR PORTS\n\n\
                    2\t1 pid,fs,net 4 2  192.168.1.2 80/tcp - 0 0 0 0 1 future 1 2\r\n";
        assert_eq!(
            parse(text),
            (
                vec![Namespace {
                    limits: Some(Limits::default()),
                    front: Some(true),
                    ..ns(2, "pid,fs,net", Some([192, 168, 1, 2]), vec![tcp(None, 80)])
                }],
                0
            )
        );
        assert_eq!(parse(""), (vec![], 0));
    }

    #[test]
    fn names_and_limits() {
        let text = "1 0 pid,fs,net 1 5 192.168.1.1 - - 9 2297856 0 0\n\
                    2 1 pid,fs,net 4 2 192.168.1.2 - web 2 1077248 16777216 8 1\n";
        let (n, bad) = parse(text);
        assert_eq!(bad, 0);
        let root = n[0].limits.clone().unwrap();
        assert_eq!(root, Limits { name: None, procs: 9, mem_used: 2_297_856, ..Limits::default() });
        let web = n[1].limits.clone().unwrap();
        assert_eq!(
            web,
            Limits {
                name: Some("web".into()),
                procs: 2,
                mem_used: 1_077_248,
                mem_max: 16 << 20,
                pids_max: 8
            }
        );
        assert_eq!((n[0].front, n[1].front), (None, Some(true)));
        assert_eq!(find(&n, "web").map(|n| n.id), Some(2));
        assert_eq!(find(&n, "2").map(|n| n.id), Some(2));
        assert_eq!(find(&n, "1").map(|n| n.id), Some(1));
        assert!(find(&n, "db").is_none() && find(&n, "-").is_none() && find(&n, "3").is_none());
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
            // The limits' columns: all five or none, numbers where numbers go.
            "2 1 pid 4 2 - - web",
            "2 1 pid 4 2 - - web 1 2 3",
            "2 1 pid 4 2 - - web x 2 3 4",
            "2 1 pid 4 2 - - web 1 -2 3 4",
            "2 1 pid 4 2 - - web 1 2 3 4294967296",
            "2 1 pid 4 2 - - web 1 2 18446744073709551616 4",
            // `front` is 0 or 1.
            "2 1 pid 4 2 - - web 1 2 3 4 2",
            "2 1 pid 4 2 - - web 1 2 3 4 yes",
        ] {
            assert_eq!(parse_line(bad), Line::Bad, "{bad:?}");
        }
        let (n, bad) = parse("2 1 pid,fs 4 2\ngarbage\n3 1 pid 5 1 - 0:0/tcp\n");
        assert_eq!((n.len(), bad), (1, 2));
    }

    #[test]
    fn sizes() {
        for (bytes, text) in [
            (0, "0"),
            (1023, "1023"),
            (1024, "1K"),
            (1536, "1.5K"),
            (65536, "64K"),
            (1 << 20, "1M"),
            ((1 << 20) + (1 << 19), "1.5M"),
            ((1 << 20) + 1000, "1M"),
            (160 << 20, "160M"),
            ((100 << 20) + (1 << 19), "100M"),
            (u64::MAX, "17592186044415M"),
        ] {
            assert_eq!(size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn the_table() {
        // Today's kernel (seven columns): `-` for what it does not say.
        let (old, _) = parse("1 0 pid,fs,net 1 3 192.168.1.1 -\n2 1 pid,fs 4 2 - -\n");
        assert_eq!(
            table(&old),
            "ID NAME PARENT KINDS      INIT PROCS MEM LIMIT ADDR        PORTS FRONT\n\
             1  -    -      pid,fs,net 1    -     -   -     192.168.1.1 -     -\n\
             2  -    1      pid,fs     4    -     -   -     -           -     -\n"
        );
        // Issue 12's: names, processes under a limit, memory, the console in front.
        let text = "1 0 pid,fs,net 1 9 192.168.1.1 - - 12 3145728 0 0 0\n\
                    2 1 pid,fs,net 0 2 192.168.1.2 8081:80/tcp,8082:53/udp web1 2 1572864 \
                    16777216 8 1\n";
        let (new, _) = parse(text);
        assert_eq!(
            table(&new),
            "ID NAME PARENT KINDS      INIT PROCS MEM  LIMIT ADDR        PORTS                   FRONT\n\
             1  -    -      pid,fs,net 1    12    3M   -     192.168.1.1 -                       -\n\
             2  web1 1      pid,fs,net -    2/8   1.5M 16M   192.168.1.2 8081:80/tcp,8082:53/udp *\n"
        );
        assert_eq!(table(&[]), "ID NAME PARENT KINDS INIT PROCS MEM LIMIT ADDR PORTS FRONT\n");
    }
}
