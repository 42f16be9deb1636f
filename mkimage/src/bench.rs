//! `mkimage bench-boot`: how long the kernel takes from QEMU's start to the line `ready`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::console::{Console, Settings};
use crate::error::{Error, Result};
use crate::qemu::{self, Outcome};

/// How long one boot may take (TCG on a loaded two-core machine).
pub const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// Boots `kernel` once: the time from spawning QEMU to the serial line `ready`. The machine is
/// then powered off with the console command `poweroff` and must exit with status 0.
pub fn boot_once(kernel: &Path) -> Result<Duration> {
    let start = Instant::now();
    let console =
        Console::spawn_with(qemu::Options::new(kernel, ""), Settings { qmp: false, echo: false })?;
    console.expect_line("ready", BOOT_DEADLINE)?;
    let elapsed = start.elapsed();
    console.send("poweroff\n")?;
    let status = console.wait_exit(BOOT_DEADLINE)?;
    match Outcome::from_status(status) {
        Outcome::PowerOff => Ok(elapsed),
        other => Err(Error::Other(format!(
            "after `poweroff`: {}\n--- serial output ---\n{}",
            other.describe(),
            console.output()
        ))),
    }
}

/// Minimum, median and maximum of some durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub runs: usize,
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

/// `None` for no samples. The median of an even count is the mean of the middle two.
pub fn summarize(samples: &[Duration]) -> Option<Summary> {
    let mut s = samples.to_vec();
    s.sort();
    let n = s.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2,
    };
    Some(Summary { runs: n, min: s[0], median, max: s[n - 1] })
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A markdown table of the summary.
pub fn markdown_table(s: &Summary) -> String {
    format!(
        "| boot to `ready` | runs | min (ms) | median (ms) | max (ms) |\n\
         |---|---:|---:|---:|---:|\n\
         | kernel | {} | {} | {} | {} |\n",
        s.runs,
        ms(s.min),
        ms(s.median),
        ms(s.max)
    )
}

/// Boots `runs` times, reporting each boot on stderr, and returns the summary.
pub fn bench_boot(kernel: &Path, runs: usize) -> Result<Summary> {
    let mut samples = Vec::with_capacity(runs);
    for i in 1..=runs {
        let t = boot_once(kernel)?;
        eprintln!("boot {i}/{runs}: {} ms", ms(t));
        samples.push(t);
    }
    summarize(&samples).ok_or_else(|| Error::Other("no boots to summarize".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn summary_odd_and_even() {
        let s = summarize(&[d(30), d(10), d(20)]).unwrap();
        assert_eq!((s.runs, s.min, s.median, s.max), (3, d(10), d(20), d(30)));
        let s = summarize(&[d(40), d(10), d(20), d(30)]).unwrap();
        assert_eq!((s.min, s.median, s.max), (d(10), d(25), d(40)));
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn table() {
        let s = summarize(&[d(100), Duration::from_micros(123_450), d(150)]).unwrap();
        assert_eq!(
            markdown_table(&s),
            "| boot to `ready` | runs | min (ms) | median (ms) | max (ms) |\n\
             |---|---:|---:|---:|---:|\n\
             | kernel | 3 | 100.0 | 123.5 | 150.0 |\n"
        );
    }
}
