//! grep [-v] [-c] [-n] PATTERN [FILE...]: print the lines that match PATTERN (`.`, `*`, `^`,
//! `$`, `\` escapes; see `uparse::pattern`). `-v` selects the lines that do not match, `-c`
//! prints only their count, `-n` numbers them. With several files each line is prefixed with
//! its file's name. Exit status: 0 if a line was selected, 1 if none, 2 on an error.

#![no_std]
#![no_main]

use ulib::io::{LineReader, STDIN};
use ulib::prelude::*;
use ulib::uparse::pattern::Pattern;

ulib::entry!(main);

struct Options {
    invert: bool,
    count: bool,
    number: bool,
}

fn main(args: Args) -> i32 {
    let mut opts = Options { invert: false, count: false, number: false };
    let mut rest = args.skip(1).peekable();
    while let Some(flag) = rest.next_if(|a| a.starts_with('-') && a.len() > 1) {
        for c in flag[1..].chars() {
            match c {
                'v' => opts.invert = true,
                'c' => opts.count = true,
                'n' => opts.number = true,
                _ => {
                    eprintln!("usage: grep [-v] [-c] [-n] PATTERN [FILE...]");
                    return 2;
                }
            }
        }
    }
    let Some(pattern) = rest.next() else {
        eprintln!("usage: grep [-v] [-c] [-n] PATTERN [FILE...]");
        return 2;
    };
    let pattern = Pattern::new(pattern);
    let files: Vec<&str> = rest.collect();
    let mut selected = false;
    let mut error = false;
    if files.is_empty() {
        match grep(&pattern, &opts, STDIN, None) {
            Ok(s) => selected = s,
            Err(e) => {
                eprintln!("grep: standard input: {}", e.message());
                error = true;
            }
        }
    }
    let prefix = files.len() > 1;
    for path in &files {
        let result = File::open(path, sys::RDONLY)
            .and_then(|f| grep(&pattern, &opts, f.fd(), prefix.then_some(path)));
        match result {
            Ok(s) => selected |= s,
            Err(e) => {
                eprintln!("grep: {path}: {}", e.message());
                error = true;
            }
        }
    }
    if error {
        2
    } else if selected {
        0
    } else {
        1
    }
}

/// Whether any line was selected.
fn grep(pattern: &Pattern, opts: &Options, fd: Fd, name: Option<&str>) -> sys::Result<bool> {
    let mut reader = LineReader::new(fd);
    let mut line = Vec::new();
    let mut count = 0u64;
    let mut lineno = 0u64;
    let mut out = Vec::new();
    loop {
        line.clear();
        if !reader.read_line(&mut line)? {
            break;
        }
        lineno += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if pattern.is_match(text) == opts.invert {
            continue;
        }
        count += 1;
        if opts.count {
            continue;
        }
        out.clear();
        if let Some(name) = name {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
        }
        if opts.number {
            out.extend_from_slice(format!("{lineno}:").as_bytes());
        }
        out.extend_from_slice(text);
        out.push(b'\n');
        ulib::io::write_all(ulib::io::STDOUT, &out)?;
    }
    if opts.count {
        match name {
            Some(name) => println!("{name}:{count}"),
            None => println!("{count}"),
        }
    }
    Ok(count > 0)
}
