//! Memory: sbrk grows, shrinks (the memory given back is really gone), and refuses growth
//! beyond what the machine or the address space has.

use ulib::abi::syscall::MEMINFO_PATH;
use ulib::prelude::*;
use ulib::uparse::meminfo;

use crate::{ctx, ensure, expect_err, in_child, Outcome};

const PAGE: usize = 4096;
const MIB: usize = 1 << 20;
/// Growth steps of `sbrk-limit`, and the cap on its total.
const STEP: usize = 4 * MIB;
const CAP: usize = 2048 * MIB;

extern "C" {
    /// The end of the program (user/linker.ld): the initial break.
    static _end: u8;
}

/// `sys::sbrk` for the cases of this file.
pub(crate) fn move_break(delta: isize) -> sys::Result<usize> {
    // SAFETY: these cases move the break by hand only after `settle_allocator`, so the
    // allocator's heap ends below the break they start from and it does not grow meanwhile;
    // what a negative `delta` gives back is memory the case grew itself, which it reaches
    // only through raw pointers and not after giving it back (except in a child that must
    // die for it).
    unsafe { sys::sbrk(delta) }
}

fn initial_break() -> usize {
    core::ptr::addr_of!(_end) as usize
}

/// Reserve heap for the allocator first, so that nothing it does moves the break while a case
/// moves it by hand.
pub(crate) fn settle_allocator() {
    drop(Vec::<u8>::with_capacity(256 * 1024));
}

pub fn sbrk() -> Outcome {
    settle_allocator();
    let start = ctx(move_break(0), "sbrk(0)")?;
    // Grow by 1 MiB (plus the padding to a page) and use all of it.
    let old = ctx(move_break(MIB as isize), "sbrk(+1 MiB)")?;
    ensure!(old == start, "sbrk returned {old:#x}, the break was {start:#x}");
    let now = ctx(move_break(0), "sbrk(0)")?;
    ensure!(now == start + MIB, "break {now:#x} after growing from {start:#x}");
    for off in (0..MIB).step_by(PAGE / 2) {
        // SAFETY: [start, start + 1 MiB) was just given to this process.
        unsafe { ((start + off) as *mut u64).write_volatile(off as u64) };
    }
    for off in (0..MIB).step_by(PAGE / 2) {
        // SAFETY: as above.
        let v = unsafe { ((start + off) as *const u64).read_volatile() };
        ensure!(v == off as u64, "grown memory at +{off:#x} reads {v:#x}");
    }
    // Fresh memory is zero: a second growth, read before writing.
    let fresh = ctx(move_break(PAGE as isize * 4), "sbrk(+4 pages)")?;
    for off in (0..PAGE * 4).step_by(8) {
        // SAFETY: just grown.
        let v = unsafe { ((fresh + off) as *const u64).read_volatile() };
        ensure!(v == 0, "fresh memory at {:#x} is {v:#x}", fresh + off);
    }
    ctx(move_break(-(PAGE as isize) * 4), "sbrk(-4 pages)")?;
    // A child sees a copy of the grown memory.
    let copied = in_child(move || {
        // SAFETY: fork copied the grown heap.
        let v = unsafe { ((start + 4096) as *const u64).read_volatile() };
        if v == 4096 {
            0
        } else {
            1
        }
    })?;
    ensure!(copied == 0, "the child's copy of the grown heap differs");
    // Shrink back: the break returns, and the memory is unmapped (a child touching it dies).
    let top = ctx(move_break(-(MIB as isize)), "sbrk(-1 MiB)")?;
    ensure!(top == start + MIB, "shrinking returned {top:#x}");
    ensure!(ctx(move_break(0), "sbrk(0)")? == start, "the break did not come back");
    let page_after = start.next_multiple_of(PAGE) + PAGE;
    let status = in_child(move || {
        // SAFETY: deliberately not: this page was given back; the kernel must end us.
        unsafe { (page_after as *mut u64).write_volatile(1) };
        0
    })?;
    ensure!(status != 0, "a child wrote to memory given back with sbrk and lived");
    // Below the initial break (the end of the program, where the linker script puts `_end`):
    // refused, by a page or by far more than the break's address.
    let below = (start - initial_break() + PAGE) as isize;
    expect_err(move_break(-below), Errno::EINVAL, "sbrk to a page below the initial break")?;
    expect_err(move_break(-(1 << 40)), Errno::EINVAL, "sbrk(-1 TiB)")?;
    ensure!(ctx(move_break(0), "sbrk(0)")? == start, "a refused sbrk moved the break");
    Ok(String::new())
}

fn frames_free() -> Option<u64> {
    let mut text = Vec::new();
    File::open(MEMINFO_PATH, sys::RDONLY).and_then(|f| f.read_to_end(&mut text)).ok()?;
    meminfo::parse(&String::from_utf8_lossy(&text)).frames_free
}

/// Growth past the address space and past physical memory is ENOMEM; after giving it all back
/// the memory is free again.
pub fn sbrk_limit() -> Outcome {
    settle_allocator();
    let start = ctx(move_break(0), "sbrk(0)")?;
    expect_err(move_break(1 << 46), Errno::ENOMEM, "sbrk(+64 TiB)")?;
    expect_err(move_break(isize::MAX), Errno::ENOMEM, "sbrk(+isize::MAX)")?;
    ensure!(ctx(move_break(0), "sbrk(0)")? == start, "a refused sbrk moved the break");
    let free_before = frames_free();
    // Grow until the kernel says no, touching each MiB.
    let mut grown = 0usize;
    let refusal = loop {
        if grown >= CAP {
            break None;
        }
        match move_break(STEP as isize) {
            Ok(old) => {
                for off in (0..STEP).step_by(MIB) {
                    // SAFETY: just grown.
                    unsafe { ((old + off) as *mut u8).write_volatile(1) };
                }
                grown += STEP;
            }
            Err(e) => break Some(e),
        }
    };
    let shrink = move_break(-(grown as isize));
    ctx(shrink, "giving the memory back")?;
    ensure!(ctx(move_break(0), "sbrk(0)")? == start, "the break did not come back");
    if let Some(e) = refusal {
        ensure!(e == Errno::ENOMEM, "growth failed with {e:?}, expected ENOMEM");
    }
    // The memory came back: fork works and (if /proc/meminfo says) the frames are free.
    let status = in_child(|| 0)?;
    ensure!(status == 0, "fork after the growth");
    let free_after = frames_free();
    // (Within 1%: the kernel's own heap may have grown to track that many frames.)
    if let (Some(before), Some(after)) = (free_before, free_after) {
        ensure!(after + before / 100 >= before, "{before} frames free before, {after} after");
    }
    Ok(match refusal {
        Some(_) => format!("ENOMEM after {} MiB", grown / MIB),
        None => format!("{} MiB without refusal", grown / MIB),
    })
}
