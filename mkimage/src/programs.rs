//! The user programs (`user/`): built with a nested `cargo build` like the kernel, and put into
//! an image's `/bin`.
//!
//! The build runs with `user/` as its current directory, so that `user/.cargo/config.toml`
//! supplies the programs' rustflags (small code model, static, no PIE) and `user/build.rs`
//! their linker script, into its own target directory (`target/user`). cargo reports each
//! program it linked as a JSON message (`--message-format=json-render-diagnostics`: the
//! compiler's diagnostics still go to stderr as text), so the list of programs is whatever
//! `user/src/bin/` holds.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::build::{self, KERNEL_TARGET};
use crate::error::{Error, Result};
use crate::image::Builder;
use crate::shell;

/// The directory in an image that holds the programs (`exec` looks there first).
pub const BIN_DIR: &str = "/bin";

/// One built program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Its name: the file name in `/bin`.
    pub name: String,
    /// The ELF file on the host.
    pub path: PathBuf,
}

/// The target directory of the nested build.
pub fn target_dir() -> PathBuf {
    build::workspace_root().join("target").join("user")
}

/// The nested `cargo build` command for the user programs (not yet run). Always a release
/// build: the programs' size matters on the disk, and their speed under TCG.
pub fn command() -> Command {
    let root = build::workspace_root();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root.join("user"));
    cmd.stdin(Stdio::null());
    cmd.args(["build", "--release", "-p", "user", "--bins", "--target", KERNEL_TARGET]);
    cmd.arg("--message-format=json-render-diagnostics");
    cmd.arg("--target-dir").arg(target_dir());
    build::remove_outer_cargo_env(&mut cmd);
    cmd
}

/// The executables that cargo's JSON messages (one per line) report.
pub fn executables_from_messages(messages: impl BufRead) -> Result<Vec<Program>> {
    let mut out = Vec::new();
    for line in messages.lines() {
        let line = line.map_err(|e| Error::io("reading cargo's messages", e))?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue; // not a message (cargo prints only messages here, but be lenient)
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(exe), Some(name)) = (msg["executable"].as_str(), msg["target"]["name"].as_str())
        else {
            continue;
        };
        out.push(Program { name: name.to_string(), path: PathBuf::from(exe) });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// Builds the programs (cargo's progress and diagnostics go to this process's stderr) and
/// returns them by name.
pub fn build() -> Result<Vec<Program>> {
    let mut cmd = command();
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::io("cannot start cargo (is it on PATH?)", e))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let programs = executables_from_messages(BufReader::new(stdout));
    let status = child.wait().map_err(|e| Error::io("waiting for cargo", e))?;
    if !status.success() {
        return Err(Error::Other(format!(
            "building the user programs failed: `{}` exited with {status}",
            shell::render(&cmd)
        )));
    }
    let programs = programs?;
    if programs.is_empty() {
        return Err(Error::Other("cargo built no user programs".into()));
    }
    Ok(programs)
}

/// Builds the programs and reads them: `(name, ELF bytes)`, by name.
pub fn build_and_read() -> Result<Vec<(String, Vec<u8>)>> {
    build()?
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p.path)
                .map_err(|e| Error::io(format!("reading {}", p.path.display()), e))?;
            Ok((p.name, bytes))
        })
        .collect()
}

/// Puts each program into the image as `/bin/<name>`.
pub fn add_to(builder: &mut Builder, programs: &[(String, Vec<u8>)]) -> Result<()> {
    for (name, bytes) in programs {
        builder.add_file(&format!("{BIN_DIR}/{name}"), bytes.clone())?;
    }
    Ok(())
}

/// Write a standard image of `size_bytes` at `path` with `programs` in /bin and the `extra`
/// files (tests and benchmarks that boot to the shell).
pub fn image_with(
    path: &std::path::Path,
    size_bytes: u64,
    programs: &[(String, Vec<u8>)],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    let mut b = Builder::standard(size_bytes, 4096)?;
    add_to(&mut b, programs)?;
    for (p, bytes) in extra {
        b.add_file(p, bytes.clone())?;
    }
    b.write(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_cargo_command() {
        let cmd = command();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(
            args,
            [
                "build",
                "--release",
                "-p",
                "user",
                "--bins",
                "--target",
                "x86_64-unknown-none",
                "--message-format=json-render-diagnostics",
                "--target-dir",
                target_dir().to_str().unwrap(),
            ]
        );
        assert_eq!(cmd.get_current_dir(), Some(build::workspace_root().join("user").as_path()));
        assert_eq!(target_dir(), build::workspace_root().join("target/user"));
    }

    #[test]
    fn messages_name_the_executables() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"ulib","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"sh","kind":["bin"]},"executable":"/t/release/sh"}
not json
{"reason":"compiler-message","message":{}}
{"reason":"compiler-artifact","target":{"name":"cat","kind":["bin"]},"executable":"/t/release/cat"}
{"reason":"build-finished","success":true}
"#;
        let got = executables_from_messages(messages.as_bytes()).unwrap();
        assert_eq!(
            got,
            [
                Program { name: "cat".into(), path: "/t/release/cat".into() },
                Program { name: "sh".into(), path: "/t/release/sh".into() },
            ]
        );
    }
}
