//! The kernel console (until the shell exists): one task reads characters from the serial
//! port and the keyboard, edits a line (echo, backspace, ^U), and on Enter echoes the line
//! back as `echo: <line>`; `poweroff` powers the machine off, and `ls [path]` / `cat path`
//! read the mounted disk.
//!
//! Both inputs are interrupt-fed queues; the task waits on both at once with one waker, so a
//! key press goes: IRQ 1 -> `ps2::handle_irq` pushes the scancode and wakes -> executor polls
//! this task -> `Decoder` turns scancodes into a character.

use crate::{kprint, kprintln, power};
use alloc::string::String;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::task::{Context, Poll};
use drivers::{ps2, serial};
use runtime::irq::IrqQueue;

const MAX_LINE: usize = 256;

/// Poll a queue once (registering the waker if empty). `Pop` holds no state, so a fresh one
/// per poll is equivalent to keeping one.
fn poll_pop<const N: usize>(q: &IrqQueue<u8, N>, cx: &mut Context) -> Poll<u8> {
    Pin::new(&mut q.pop()).poll(cx)
}

/// The next input byte from either device.
async fn next_byte(decoder: &mut ps2::Decoder) -> u8 {
    poll_fn(|cx| {
        if let Poll::Ready(b) = poll_pop(&serial::RX, cx) {
            return Poll::Ready(b);
        }
        // Several scancodes (break codes, shifts) can arrive before one yields a character.
        while let Poll::Ready(sc) = poll_pop(&ps2::SCANCODES, cx) {
            if let Some(c) = decoder.feed(sc).filter(char::is_ascii) {
                return Poll::Ready(c as u8);
            }
        }
        Poll::Pending
    })
    .await
}

/// `ls [path]` and `cat path` on the mounted disk, until the shell and its programs exist.
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
    let mut decoder = ps2::Decoder::new();
    let mut line = String::new();
    kprint!("> ");
    loop {
        match next_byte(&mut decoder).await {
            b'\r' | b'\n' => {
                kprintln!();
                run_line(&line).await;
                line.clear();
                kprint!("> ");
            }
            0x08 | 0x7f if line.pop().is_some() => kprint!("\x08 \x08"),
            0x15 => {
                // ^U: erase the whole line
                for _ in 0..line.len() {
                    kprint!("\x08 \x08");
                }
                line.clear();
            }
            b if (b == b' ' || b.is_ascii_graphic()) && line.len() < MAX_LINE => {
                line.push(b as char);
                kprint!("{}", b as char);
            }
            _ => {}
        }
    }
}
