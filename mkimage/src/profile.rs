//! `mkimage profile`: where the guest's CPU goes while httpd serves, from the kernel's own
//! sampling profiler (`prof=HZ`, kernel/src/prof.rs). For each workload (the small file at 1
//! and at 32 connections, the 1 MiB file at one), `/proc/prof` is read before and after wrk,
//! the difference is the workload's samples, and each address is named from the ELF file it
//! belongs to: the kernel's (upper half) or httpd's (lower half). `halt` is idle time.
//!
//! Under QEMU's TCG this is the profile that is worth having: host `perf` sees translated code
//! only, and stopping the guest through the gdb stub changes what it does.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use object::{Object, ObjectSymbol, SymbolKind};

use crate::bench_net::{self, SECONDS};
use crate::bench_ns::{free_port, run, wait_for_body, SMALL};
use crate::console::{Console, Settings, TempDir};
use crate::error::{Error, Result};
use crate::qemu::{self, HostForward, Network};

/// The sampling rate asked of the kernel.
pub const HZ: u32 = 4000;
/// Lines of each table.
const TOP: usize = 25;

/// Function symbols of one ELF file, sorted by address: `(start, size, demangled name)`.
pub struct Symbols(Vec<(u64, u64, String)>);

impl Symbols {
    pub fn from_elf(bytes: &[u8]) -> Result<Symbols> {
        let file = object::File::parse(bytes)
            .map_err(|e| Error::Other(format!("not an ELF file: {e}")))?;
        let mut v: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((s.address(), s.size(), format!("{:#}", rustc_demangle::demangle(name))))
            })
            .collect();
        v.sort_by_key(|s| s.0);
        Ok(Symbols(v))
    }

    /// The function holding `addr` (the last one starting at or below it, if `addr` is within
    /// its size, or its size is unknown).
    pub fn name(&self, addr: u64) -> Option<&str> {
        let i = self.0.partition_point(|s| s.0 <= addr).checked_sub(1)?;
        let (start, size, name) = &self.0[i];
        (*size == 0 || addr < start + size).then_some(name.as_str())
    }
}

/// `/proc/prof` as `(address, count)` pairs, and its `samples` line.
pub fn parse(text: &str) -> (HashMap<u64, u64>, u64) {
    let mut counts = HashMap::new();
    let mut samples = 0;
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next()) {
            (Some("samples"), Some(n)) => samples = n.parse().unwrap_or(0),
            (Some(a), Some(n)) if a.starts_with("0x") => {
                if let (Ok(a), Ok(n)) = (u64::from_str_radix(&a[2..], 16), n.parse::<u64>()) {
                    counts.insert(a, n);
                }
            }
            _ => {}
        }
    }
    (counts, samples)
}

/// Is `addr` the kernel's (the upper half)?
fn is_kernel(addr: u64) -> bool {
    addr >= 0xffff_8000_0000_0000
}

/// The samples between two readings, by function, most first: `(share, "k|u name")`, and
/// the number of samples.
pub fn by_function(
    before: &str,
    after: &str,
    kernel: &Symbols,
    user: &Symbols,
) -> (Vec<(f64, String)>, u64) {
    let (b, _) = parse(before);
    let (a, _) = parse(after);
    let mut funcs: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    for (addr, n) in a {
        let n = n.saturating_sub(b.get(&addr).copied().unwrap_or(0));
        if n == 0 {
            continue;
        }
        total += n;
        let (side, syms) = if is_kernel(addr) { ("k", kernel) } else { ("u", user) };
        let name = syms.name(addr).map_or_else(|| format!("{addr:#x}"), str::to_string);
        *funcs.entry(format!("{side} {name}")).or_default() += n;
    }
    let mut v: Vec<(f64, String)> =
        funcs.into_iter().map(|(f, n)| (n as f64 / total.max(1) as f64, f)).collect();
    v.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    (v, total)
}

/// `/proc/prof` before and after `workload` (whose result comes back too): saved to files in
/// the guest and printed only afterwards, so that printing the counts is not counted.
pub fn around<T>(c: &Console, workload: impl FnOnce() -> Result<T>) -> Result<(String, String, T)> {
    run(c, "cat /proc/prof > /prof.before")?;
    let t = workload()?;
    run(c, "cat /proc/prof > /prof.after")?;
    Ok((run(c, "cat /prof.before")?, run(c, "cat /prof.after")?, t))
}

/// Boot `kernel` with the profiler on, serve under wrk, and print a table per workload.
pub fn profile(kernel: &Path) -> Result<String> {
    let programs = crate::programs::build()?;
    let httpd = programs
        .iter()
        .find(|p| p.name == "httpd")
        .ok_or_else(|| Error::Other("no httpd among the user programs".into()))?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(format!("{}", p.display()), e));
    let ksyms = Symbols::from_elf(&read(kernel)?)?;
    let usyms = Symbols::from_elf(&read(&httpd.path)?)?;
    let dir = TempDir::new("profile")?;
    let img = dir.path().join("fs.img");
    let extra = [("/www/small.html", SMALL.to_vec()), ("/www/1m.bin", vec![0u8; 1 << 20])];
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &extra)?;
    let port = free_port();
    let mut opts = qemu::Options::new(kernel, format!("prof={HZ}"));
    opts.disk = Some(img);
    opts.network = Network::user(vec![HostForward::tcp(port, 80)]);
    let c = Console::spawn_with(opts, Settings { qmp: false, echo: false })?;
    c.expect("$ ", Duration::from_secs(60))?;
    run(&c, "httpd -q &")?;
    wait_for_body(port, "/small.html", SMALL)?;
    let mut out = String::new();
    for (what, path, conns) in [
        ("small file, 1 connection", "/small.html", 1),
        ("small file, 32 connections", "/small.html", 32),
        ("1 MiB file, 1 connection", "/1m.bin", 1),
    ] {
        let (before, after, w) = around(&c, || bench_net::wrk(port, path, conns))?;
        let (funcs, samples) = by_function(&before, &after, &ksyms, &usyms);
        out.push_str(&format!(
            "\n{what}: {:.0} req/s, {:.1} MB/s; {samples} samples in {SECONDS} s at {HZ} Hz \
             (k: kernel, u: httpd)\n\n| share | function |\n|---:|---|\n",
            w.requests_per_sec,
            w.bytes_per_sec / 1e6
        ));
        for (share, f) in funcs.iter().take(TOP) {
            out.push_str(&format!("| {:.1}% | `{}` |\n", share * 100.0, f.replace('|', "\\|")));
        }
    }
    c.send("poweroff\n")?;
    c.wait_exit(Duration::from_secs(60))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_prof_and_subtracts_readings() {
        let before = "hz 4000\nsamples 5\nlost 0\n0xffffffff80001000 3\n0x401000 2\n";
        let after = "hz 4000\nsamples 12\nlost 0\n0xffffffff80001000 4\n0x401000 8\n0x401010 1\n";
        let (a, samples) = parse(after);
        assert_eq!((a.len(), samples), (3, 12));
        let k = Symbols(vec![(0xffffffff80001000, 16, "kernel::halt".into())]);
        let u = Symbols(vec![(0x401000, 0x20, "httpd::serve".into())]);
        let (v, total) = by_function(before, after, &k, &u);
        assert_eq!(total, 8);
        assert_eq!(v[0], (7.0 / 8.0, "u httpd::serve".to_string()));
        assert_eq!(v[1], (1.0 / 8.0, "k kernel::halt".to_string()));
    }

    #[test]
    fn an_address_past_a_sized_symbol_has_no_name() {
        let s = Symbols(vec![(0x1000, 0x10, "a".into()), (0x2000, 0, "b".into())]);
        assert_eq!(s.name(0x1008), Some("a"));
        assert_eq!(s.name(0x1010), None);
        assert_eq!(s.name(0x2345), Some("b"));
        assert_eq!(s.name(0xfff), None);
    }
}
