//! attach ID|NAME: bring a container's console to the front (`sys::attach`), starting a shell
//! on it if none runs there; `attach 1` goes back to the root's. The keys `^P ^Q` typed at the
//! console go back to the console the user came from. While a console is behind, what its
//! programs print is kept and shown when it comes to the front again.
//!
//! The container is named by its id or by its name (`spawn --name`), looked up in `/proc/ns`'s
//! `name` column (the eighth of the full line `id parent kinds init members addr ports name
//! procs mem_used mem_max pids_max front`); a kernel whose lines are shorter has no names.
//!
//! From the root any container may be attached to; from a container only those below it and
//! the root (`attach: 3: operation not permitted` for a sibling).

#![no_std]
#![no_main]

use ulib::prelude::*;
use ulib::sys::ns;

ulib::entry!(main);

/// The columns of a `/proc/ns` line that has names, and where the name is.
const FULL_COLUMNS: usize = 13;
const NAME_COLUMN: usize = 7;

fn main(args: Args) -> i32 {
    let argv = args.to_vec();
    let [_, target] = argv.as_slice() else { die!("usage: attach ID|NAME") };
    let id = match target.parse::<u32>() {
        Ok(id) => id,
        Err(_) => match by_name(target) {
            Ok(Some(id)) => id,
            Ok(None) => die!("{target}: no such container"),
            Err(e) => die!("{}: {}", ns::PROC_PATH, e.message()),
        },
    };
    match sys::attach(id) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("attach: {target}: {}", e.message());
            1
        }
    }
}

/// The id of the namespace named `name` in `/proc/ns`, if one is.
fn by_name(name: &str) -> sys::Result<Option<u32>> {
    let mut text = Vec::new();
    File::open(ns::PROC_PATH, sys::RDONLY)?.read_to_end(&mut text)?;
    let text = String::from_utf8_lossy(&text);
    Ok(text.lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        (w.len() >= FULL_COLUMNS && w[NAME_COLUMN] == name).then(|| w[0].parse().ok())?
    }))
}
