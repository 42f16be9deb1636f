//! The kernel console, for when there is no `/bin/init` (or no disk): it reads lines from
//! the root's console ([`crate::file::console`], whose input task owns the keyboard and serial
//! input; its line discipline does the editing: echo, backspace, ^U, ^W, ^C, ^D) and runs each
//! one: `poweroff` powers the machine off, `ls [path]` / `cat path` read the mounted disk, and
//! anything else is echoed back as `echo: <line>`.

use crate::file::{console as tty, ldisc::MAX_LINE};
use crate::{kprint, kprintln, power};
use alloc::string::String;

/// `ls [path]` and `cat path` on the mounted disk (a disk without `/bin/init` can still be
/// looked at).
async fn file_command(cmd: &str, arg: Option<&str>) {
    let Some(fs) = crate::rootfs::get() else {
        kprintln!("{cmd}: no file system mounted");
        return;
    };
    let result = async {
        let root = fs.root()?;
        let ip = fs.namei(&root, &root, arg.unwrap_or("/").as_bytes()).await?;
        let mut l = ip.lock().await?;
        if cmd == "ls" && l.kind() == fs::inode::T_DIR {
            for (name, inum) in l.dir_entries().await? {
                kprintln!("{inum:>6} {name}");
            }
        } else if cmd == "ls" {
            kprintln!("{:>6} {} ({} bytes)", l.inum(), arg.unwrap_or(""), l.size());
        } else {
            let mut buf = alloc::vec![0u8; 4096];
            let mut off = 0;
            loop {
                let n = l.read_at(off, &mut buf).await?;
                if n == 0 {
                    break;
                }
                kprint!("{}", String::from_utf8_lossy(&buf[..n]));
                off += n as u64;
            }
        }
        Ok::<(), fs::FsError>(())
    }
    .await;
    if let Err(e) = result {
        kprintln!("{cmd}: {}: {e}", arg.unwrap_or("/"));
    }
}

async fn run_line(line: &str) {
    let mut words = line.split_ascii_whitespace();
    match (words.next(), words.next()) {
        (None, _) => {}
        (Some("poweroff"), _) => {
            kprintln!("powering off");
            power::poweroff();
        }
        (Some(cmd @ ("ls" | "cat")), arg) => file_command(cmd, arg).await,
        _ => kprintln!("echo: {}", line.trim()),
    }
}

pub async fn run() {
    tty::start();
    let vt = tty::root();
    let mut buf = alloc::vec![0u8; MAX_LINE + 1];
    loop {
        kprint!("> ");
        // One read is one whole line: a record is at most MAX_LINE bytes and its newline.
        let n = vt.read(&mut buf).await;
        if buf[..n].last() != Some(&b'\n') {
            kprintln!(); // ^D ended the line: nothing was echoed for it
        }
        let line = String::from_utf8_lossy(&buf[..n]);
        run_line(line.trim_end_matches('\n')).await;
    }
}
