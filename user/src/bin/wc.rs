//! wc [FILE...]: count lines, words and bytes of each FILE (standard input when none), with a
//! total line for several files. Output: `LINES WORDS BYTES NAME`.

#![no_std]
#![no_main]

use ulib::io::STDIN;
use ulib::prelude::*;

ulib::entry!(main);

#[derive(Default, Clone, Copy)]
struct Counts {
    lines: u64,
    words: u64,
    bytes: u64,
}

fn main(args: Args) -> i32 {
    let files: Vec<&str> = args.skip(1).collect();
    if files.is_empty() {
        return match count(STDIN) {
            Ok(c) => {
                println!("{} {} {}", c.lines, c.words, c.bytes);
                0
            }
            Err(e) => die!("{}", e.message()),
        };
    }
    let mut total = Counts::default();
    let mut status = 0;
    for path in &files {
        match File::open(path, sys::RDONLY).and_then(|f| count(f.fd())) {
            Ok(c) => {
                println!("{} {} {} {path}", c.lines, c.words, c.bytes);
                total.lines += c.lines;
                total.words += c.words;
                total.bytes += c.bytes;
            }
            Err(e) => {
                eprintln!("wc: {path}: {}", e.message());
                status = 1;
            }
        }
    }
    if files.len() > 1 {
        println!("{} {} {} total", total.lines, total.words, total.bytes);
    }
    status
}

fn count(fd: Fd) -> sys::Result<Counts> {
    let mut c = Counts::default();
    let mut in_word = false;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sys::read(fd, &mut buf)?;
        if n == 0 {
            return Ok(c);
        }
        c.bytes += n as u64;
        for &b in &buf[..n] {
            if b == b'\n' {
                c.lines += 1;
            }
            if b.is_ascii_whitespace() {
                in_word = false;
            } else if !in_word {
                in_word = true;
                c.words += 1;
            }
        }
    }
}
