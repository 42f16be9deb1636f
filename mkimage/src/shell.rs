//! Rendering commands the way a POSIX shell would read them back (for `qemu-cmd` and messages).

use std::ffi::OsStr;
use std::process::Command;

/// Quotes one argument for a POSIX shell when it needs it.
pub fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain =
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The program and its arguments on one line, quoted where needed. Environment changes and the
/// current directory are not shown.
pub fn render(cmd: &Command) -> String {
    let mut s = quote(cmd.get_program());
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(arg));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(OsStr::new("-m")), "-m");
        assert_eq!(quote(OsStr::new("iobase=0xf4,iosize=0x04")), "iobase=0xf4,iosize=0x04");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("it's")), r"'it'\''s'");
    }

    #[test]
    fn rendering() {
        let mut cmd = Command::new("qemu");
        cmd.args(["-append", "fault=pagefault hz=100"]);
        assert_eq!(render(&cmd), "qemu -append 'fault=pagefault hz=100'");
    }
}
