//! The kernel console (until the shell exists): one task reads characters from the serial
//! port and the keyboard, edits a line (echo, backspace, ^U), and on Enter echoes the line
//! back as `echo: <line>`; the line `poweroff` powers the machine off.
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

fn run_line(line: &str) {
    match line.trim() {
        "" => {}
        "poweroff" => {
            kprintln!("powering off");
            power::poweroff();
        }
        l => kprintln!("echo: {l}"),
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
                run_line(&line);
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
