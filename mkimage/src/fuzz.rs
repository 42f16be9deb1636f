//! `mkimage fuzz` (and `make fuzz`): the guest's system-call fuzzer (`user/src/bin/fuzz`) in a
//! booted kernel, judged from the outside.
//!
//! The guest gets the user programs on a fresh disk and a NIC on QEMU's restricted user
//! network (no host forwards: the fuzzer's sockets talk to the guest itself). `fuzz SEED CALLS`
//! runs at the shell; the pass is judged on the serial output: the kernel printed no panic
//! and no exception report of its own (a user program's fault is reported as `pid N (name):
//! exception ...` and is fine), the fuzzer printed its end line with `PASSED` (no hang, no
//! crashed batch, no result outside the ABI), and the shell still answers. Everything has a
//! deadline, so a pass always ends, with a verdict.

use std::path::Path;
use std::time::Duration;

use crate::console::{Console, Settings, TempDir};
use crate::error::Result;
use crate::qemu;

/// Booting to the shell's prompt under TCG on a loaded machine.
pub const BOOT: Duration = Duration::from_secs(60);
/// One command at the shell after the pass.
pub const STEP: Duration = Duration::from_secs(30);

/// One pass of the fuzzer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pass {
    pub seed: u64,
    pub calls: usize,
    /// Batches at once (the fuzzer's `-j`).
    pub jobs: usize,
    /// Groups the fuzzer leaves out (its `-x`: `exec`, `elf`, `rename`, `net`, `cpu`),
    /// comma-separated; empty: none.
    pub left_out: String,
}

impl Pass {
    /// The command line typed at the guest's shell.
    pub fn command(&self) -> String {
        let mut c = format!("fuzz {} {}", self.seed, self.calls);
        if self.jobs > 1 {
            c.push_str(&format!(" -j {}", self.jobs));
        }
        if !self.left_out.is_empty() {
            c.push_str(" -x ");
            c.push_str(&self.left_out);
        }
        c
    }

    /// How long the pass may take: the guest makes a few hundred calls a second; the rest
    /// is room for a loaded machine and for one batch that hangs (the fuzzer gives a batch a
    /// minute).
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(180) + Duration::from_millis(20) * self.calls as u32
    }
}

/// How a pass went.
#[derive(Debug)]
pub struct Verdict {
    /// The serial output of the pass (from the command to the next prompt, or to where it
    /// stopped).
    pub output: String,
    /// What went wrong; empty when the pass passed.
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The kernel's own reports of trouble in `output`: panics and CPU exceptions in the kernel.
pub fn kernel_trouble(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|l| l.contains("PANIC") || l.trim_start().starts_with("EXCEPTION"))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// The fuzzer's reports of trouble in `output`: its hang, crash and odd-result lines, also
/// those of the grandchildren its batches kill at random moments (which the runner's count
/// does not include), and also where other output ran into them on the console.
pub fn fuzzer_trouble(output: &str) -> Vec<String> {
    const MARKS: [&str; 4] = ["fuzz: HANG", "fuzz: CRASH", "fuzz: ODD", "fuzz: fuzzer error"];
    output
        .lines()
        .filter(|l| MARKS.iter().any(|m| l.contains(m)))
        .map(|l| l.trim_end().to_string())
        .collect()
}

/// A fresh disk with the user programs (in a temporary directory that lives as long as the
/// returned guard), booted with a NIC to the shell's first prompt. `echo` copies the guest's
/// output to this process's stdout as it comes.
pub fn boot(kernel: &Path, echo: bool) -> Result<(TempDir, Console)> {
    let dir = TempDir::new("fuzz")?;
    let img = dir.path().join("fs.img");
    crate::programs::image_with(&img, 64 << 20, &crate::programs::build_and_read()?, &[])?;
    let mut opts = qemu::Options::new(kernel, "");
    opts.disk = Some(img);
    opts.network = qemu::Network::user(Vec::new());
    let c = Console::spawn_with(opts, Settings { qmp: false, echo })?;
    c.expect("init: starting sh", BOOT)?;
    c.expect("$ ", BOOT)?;
    Ok((dir, c))
}

/// Run `pass` at the shell of `c` and judge it (see the module doc). An error is a failure
/// of the harness itself (QEMU would not take input); a kernel that crashed or hung is a
/// verdict with problems.
pub fn run(c: &Console, pass: &Pass) -> Result<Verdict> {
    c.send(format!("{}\n", pass.command()))?;
    let mut problems = Vec::new();
    let output = match c.expect("fuzz: end:", pass.deadline()) {
        Ok(mut out) => {
            match c.expect("\n$ ", STEP) {
                Ok(rest) => out.push_str(&rest),
                Err(e) => problems.push(format!("no prompt after the fuzzer's end line: {e}")),
            }
            out
        }
        Err(e) => {
            problems.push(format!("the fuzzer did not reach its end line: {}", headline(&e)));
            c.output()
        }
    };
    problems.extend(kernel_trouble(&output));
    problems.extend(fuzzer_trouble(&output));
    let end = output.lines().find(|l| l.contains("fuzz: end:")).unwrap_or("");
    if !end.is_empty() && !end.contains("PASSED") {
        problems.push(format!("the fuzzer's verdict: {}", end.trim()));
    }
    if problems.is_empty() {
        // The shell still works.
        c.send("echo still here\n")?;
        match c.expect_line("still here", STEP) {
            Ok(_) => {
                let _ = c.expect("$ ", STEP);
            }
            Err(e) => {
                problems.push(format!("the shell did not answer after the pass: {}", headline(&e)))
            }
        }
    }
    problems.dedup();
    Ok(Verdict { output, problems })
}

/// The first line of an error (the rest is the whole serial output, shown elsewhere).
fn headline(e: &crate::Error) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_deadline() {
        let p = Pass { seed: 7, calls: 1000, jobs: 1, left_out: String::new() };
        assert_eq!(p.command(), "fuzz 7 1000");
        let p = Pass { left_out: "elf,rename".into(), jobs: 3, ..p };
        assert_eq!(p.command(), "fuzz 7 1000 -j 3 -x elf,rename");
        assert_eq!(p.deadline(), Duration::from_secs(200));
    }

    #[test]
    fn trouble_lines() {
        let out = "fuzz: seed 1\r\npid 9 (fuzz): exception 13 at rip=0x4002: killed\r\n\
                   PANIC: panicked at x.rs:1:2:\r\nEXCEPTION page fault vector=14\r\n\
                   $ fuzz: HANG: batch 3 did not end\r\n[fuzz consolfuzz: ODD: batch 1 call #2: x\r\n\
                   fuzz: end: seed 1 calls 10 batches 1 hangs 1 crashes 0 odd 1 in 5 ms: FAILED\r\n";
        assert_eq!(
            kernel_trouble(out),
            ["PANIC: panicked at x.rs:1:2:", "EXCEPTION page fault vector=14"]
        );
        assert_eq!(
            fuzzer_trouble(out),
            ["$ fuzz: HANG: batch 3 did not end", "[fuzz consolfuzz: ODD: batch 1 call #2: x"]
        );
    }
}
