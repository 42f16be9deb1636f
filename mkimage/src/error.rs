//! The one error type of the library.

use std::fmt;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while building or running the kernel.
#[derive(Debug)]
pub enum Error {
    /// An operating-system call failed; `context` says what we were doing.
    Io { context: String, source: io::Error },
    /// The nested `cargo build` of the kernel failed.
    Build(String),
    /// A wait on the serial console ran past its deadline.
    Timeout { waiting_for: String, after: Duration, serial: String, stderr: String },
    /// QEMU exited (its serial output ended) before the awaited text appeared.
    Exited { waiting_for: String, status: Option<ExitStatus>, serial: String, stderr: String },
    /// A QMP exchange failed or QEMU answered with an error.
    Qmp(String),
    /// Anything else, said in words.
    Other(String),
}

impl Error {
    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}

fn write_output(f: &mut fmt::Formatter<'_>, serial: &str, stderr: &str) -> fmt::Result {
    writeln!(f, "--- serial output so far ({} bytes) ---", serial.len())?;
    f.write_str(serial)?;
    if !serial.ends_with('\n') {
        writeln!(f)?;
    }
    if !stderr.is_empty() {
        writeln!(f, "--- qemu stderr ---")?;
        f.write_str(stderr)?;
        if !stderr.ends_with('\n') {
            writeln!(f)?;
        }
    }
    write!(f, "--- end of output ---")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Build(msg) => write!(f, "kernel build failed: {msg}"),
            Error::Timeout { waiting_for, after, serial, stderr } => {
                writeln!(
                    f,
                    "timed out after {:.1} s waiting for {waiting_for}",
                    after.as_secs_f64()
                )?;
                write_output(f, serial, stderr)
            }
            Error::Exited { waiting_for, status, serial, stderr } => {
                match status {
                    Some(s) => writeln!(f, "QEMU exited ({s}) while waiting for {waiting_for}")?,
                    None => writeln!(f, "QEMU closed its output while waiting for {waiting_for}")?,
                }
                write_output(f, serial, stderr)
            }
            Error::Qmp(msg) => write!(f, "QMP: {msg}"),
            Error::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
