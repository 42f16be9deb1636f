//! A namespace's limits (`spawn2`): the process limit (`fork`, `spawn` past it: `EAGAIN` in
//! that container only), the memory limit (`sbrk`, `pipe`, `fork`, `exec` past it: `ENOMEM` in
//! that container only, while the root goes on), a nested namespace's limits cut to its
//! parent's, and names (unique among the live namespaces: `EEXIST`; `[a-z0-9_-]`, 1 to 15
//! bytes, zero padding: `EINVAL`; a bad pointer: `EFAULT`).
//!
//! The containers here isolate pids only (no file-system root to make, no network stack to
//! charge): what they are charged for is their processes' pages and the kernel memory those
//! make. Each case's container reports through a pipe ([`send_report`]) and, where the root
//! must act while the container sits at its limit, waits on a second pipe for it.

use ulib::abi::syscall::nr;
use ulib::abi::syscall::ns::{self, SpawnArgs, NEWPID};
use ulib::io::write_all;
use ulib::prelude::*;
use ulib::sys::raw::syscall2;
use ulib::uparse::procns;

use crate::mem::{move_break, settle_allocator};
use crate::ns::{poll, recv_report, send_report};
use crate::proc::proc_record;
use crate::{ctx, ensure, expect_err, fork_child, start_child, wait_all, wait_pid, Outcome};

const PAGE: usize = 4096;
const MIB: u64 = 1 << 20;
/// `limits-mem`'s container's memory limit.
const MEM_LIMIT: u64 = 4 * MIB;
/// `limits-pids`'s container's process limit, and the memory limit a nested one inherits.
const PIDS_LIMIT: u32 = 4;
const OUTER_MEM: u64 = 64 * MIB;
const NAME: &str = "ut-web";

/// The namespaces `/proc/ns` shows this process.
fn namespaces() -> Result<Vec<procns::Namespace>, String> {
    let text = crate::read_file(ns::PROC_PATH)?;
    let (spaces, bad) = procns::parse(&String::from_utf8_lossy(&text));
    ensure!(bad == 0, "{}: {bad} lines not in the format", ns::PROC_PATH);
    Ok(spaces)
}

/// Namespace `id`'s name, limits and use, as this process sees them.
fn limits_of(id: u32) -> Result<procns::Limits, String> {
    let spaces = namespaces()?;
    let n = procns::find(&spaces, &format!("{id}")).ok_or(format!("no namespace {id}"))?;
    n.limits.clone().ok_or(format!("namespace {id}: no limits' columns"))
}

/// `spawn2(NEWPID, args)`; in the child (pid 1 of the new namespace) runs `f` and sends its
/// outcome on `report`, then exits.
fn contained(args: &SpawnArgs, report: Fd, f: impl FnOnce() -> Outcome) -> sys::Result<Pid> {
    start_child(sys::spawn2(NEWPID, Some(args)), move || {
        send_report(report, f());
        0
    })
}

/// Blocks until a byte arrives on `fd` or its write end is closed everywhere.
fn wait_for(fd: Fd) {
    let mut b = [0u8; 1];
    let _ = sys::read(fd, &mut b);
}

/// The process limit: the container's init and three children fill it; a fourth `fork` and a
/// nested `spawn2` get `EAGAIN` there while the root forks on; the places come back when the
/// children are reaped; a nested namespace asking for more gets its parent's limits.
pub fn pids() -> Outcome {
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let (full_r, full_w) = ctx(sys::pipe(), "pipe")?;
    let (go_r, go_w) = ctx(sys::pipe(), "pipe")?;
    let args = SpawnArgs::new(PIDS_LIMIT, OUTER_MEM, "").expect("no name");
    let pid = ctx(
        contained(&args, rep_w, move || {
            let me = sys::getns();
            let (hold_r, hold_w) = ctx(sys::pipe(), "pipe")?;
            let mut kids = Vec::new();
            for _ in 1..PIDS_LIMIT {
                kids.push(fork_child(move || {
                    let _ = sys::close(hold_w);
                    wait_for(hold_r);
                    0
                })?);
            }
            expect_err(sys::fork(), Errno::EAGAIN, "fork past the limit")?;
            expect_err(
                start_child(sys::spawn2(NEWPID, None), || 0),
                Errno::EAGAIN,
                "spawn past the limit",
            )?;
            let l = limits_of(me)?;
            ensure!(
                (l.procs, l.pids_max) == (PIDS_LIMIT, PIDS_LIMIT),
                "at the limit, /proc/ns shows procs {} pids_max {}",
                l.procs,
                l.pids_max
            );
            // The root forks meanwhile.
            ctx(write_all(full_w, b"f"), "write")?;
            wait_for(go_r);
            let _ = sys::close(hold_w);
            wait_all(&kids)?;
            // Reaped: their places are free again.
            let kid = ctx(start_child(sys::fork(), || 0), "fork after the reap")?;
            wait_pid(kid)?;
            // A nested namespace asking for more than its parent has gets the parent's limits.
            let nested_args = SpawnArgs::new(100, 1 << 30, "").expect("no name");
            let (n_r, n_w) = ctx(sys::pipe(), "pipe")?;
            let nested = ctx(
                start_child(sys::spawn2(NEWPID, Some(&nested_args)), move || {
                    let _ = sys::close(n_w);
                    wait_for(n_r);
                    0
                }),
                "nested spawn2",
            )?;
            let _ = sys::close(n_r);
            let spaces = namespaces()?;
            let inner = spaces.iter().find(|n| n.parent == me).ok_or("no nested namespace")?;
            let l = inner.limits.clone().ok_or("no limits' columns")?;
            let _ = sys::close(n_w);
            wait_pid(nested)?;
            ensure!(
                (l.pids_max, l.mem_max) == (PIDS_LIMIT, OUTER_MEM),
                "a nested namespace asking for 100 processes and 1 GiB got {} and {}",
                l.pids_max,
                l.mem_max
            );
            Ok(String::new())
        }),
        "spawn2",
    )?;
    let _ = sys::close(rep_w);
    let _ = sys::close(full_w);
    let _ = sys::close(go_r);
    wait_for(full_r);
    // The container is at its limit: the root is not.
    let root_kid = fork_child(|| 0);
    let _ = write_all(go_w, b"g");
    let report = recv_report(rep_r, "the container");
    let _ = sys::close(rep_r);
    let status = wait_pid(pid)?;
    report?;
    ensure!(status == 0, "the container's init ended with status {status}");
    wait_pid(root_kid.map_err(|e| format!("the root's fork while a container is full: {e}"))?)?;
    Ok(format!("{PIDS_LIMIT} processes, then EAGAIN"))
}

/// The memory limit: a container grows its heap until `sbrk` says `ENOMEM`, near its limit;
/// there `pipe`, `fork` and `exec` say `ENOMEM` too, while the root makes pipes, forks and
/// grows; once the heap is given back, the container makes a pipe and forks again. A limit
/// its first process does not fit in refuses the `spawn2` itself.
pub fn mem() -> Outcome {
    settle_allocator();
    let small = SpawnArgs::new(0, 64 * 1024, "").expect("no name");
    expect_err(
        start_child(sys::spawn2(NEWPID, Some(&small)), || 0),
        Errno::ENOMEM,
        "spawn2 with 64 KiB for a copy of usertests",
    )?;
    let (rep_r, rep_w) = ctx(sys::pipe(), "pipe")?;
    let (full_r, full_w) = ctx(sys::pipe(), "pipe")?;
    let (go_r, go_w) = ctx(sys::pipe(), "pipe")?;
    let args = SpawnArgs::new(0, MEM_LIMIT, "").expect("no name");
    let pid = ctx(
        contained(&args, rep_w, move || {
            // Grow by 64 KiB, then by pages, until refused: what is left is under a page
            // (and its page table).
            let mut grown = 0usize;
            for step in [16 * PAGE, PAGE] {
                loop {
                    match move_break(step as isize) {
                        Ok(_) => grown += step,
                        Err(Errno::ENOMEM) => break,
                        Err(e) => return Err(format!("sbrk: {e:?}, expected ENOMEM")),
                    }
                    ensure!(grown as u64 <= MEM_LIMIT, "grew {grown} bytes past the limit");
                }
            }
            expect_err(sys::pipe(), Errno::ENOMEM, "pipe at the limit")?;
            expect_err(start_child(sys::fork(), || 0), Errno::ENOMEM, "fork at the limit")?;
            let e = sys::exec("/bin/spin", &["spin"]);
            ensure!(e == Errno::ENOMEM, "exec at the limit: {e:?}, expected ENOMEM");
            ctx(write_all(full_w, b"f"), "write")?;
            wait_for(go_r);
            ctx(move_break(-(grown as isize)), "sbrk back")?;
            let (a, b) = ctx(sys::pipe(), "pipe after giving the heap back")?;
            let _ = (sys::close(a), sys::close(b));
            let kid = ctx(start_child(sys::fork(), || 0), "fork after giving the heap back")?;
            wait_pid(kid)?;
            Ok(format!("{} KiB of heap", grown / 1024))
        }),
        "spawn2",
    )?;
    let _ = sys::close(rep_w);
    let _ = sys::close(full_w);
    let _ = sys::close(go_r);
    wait_for(full_r);
    // The container is at its limit (as the root sees it in /proc/ns; the container itself
    // could not open it now: a /proc snapshot is kernel memory charged to its reader), and
    // the root is not.
    let root = (|| -> Outcome {
        let id = ctx(proc_record(pid), "/proc/PID")?.ns;
        let l = limits_of(id)?;
        ensure!(
            l.mem_max == MEM_LIMIT
                && l.mem_used <= MEM_LIMIT
                && l.mem_used + 2 * PAGE as u64 > MEM_LIMIT,
            "after sbrk's ENOMEM: mem_used {} of mem_max {} (limit {MEM_LIMIT})",
            l.mem_used,
            l.mem_max
        );
        let (a, b) = ctx(sys::pipe(), "the root's pipe")?;
        let _ = (sys::close(a), sys::close(b));
        let kid = ctx(start_child(sys::fork(), || 0), "the root's fork")?;
        wait_pid(kid)?;
        ctx(move_break(MIB as isize), "the root's sbrk(+1 MiB)")?;
        ctx(move_break(-(MIB as isize)), "the root's sbrk(-1 MiB)")?;
        Ok(String::new())
    })();
    let _ = write_all(go_w, b"g");
    let report = recv_report(rep_r, "the container");
    let _ = sys::close(rep_r);
    let status = wait_pid(pid)?;
    root?;
    let note = report?;
    ensure!(status == 0, "the container's init ended with status {status}");
    Ok(note)
}

/// `spawn2(NEWPID, ptr)` by hand; a child that starts anyway exits at once.
fn spawn2_raw(ptr: usize) -> sys::Result<Pid> {
    // SAFETY: spawn2 only reads `SpawnArgs::SIZE` bytes at `ptr`; the child gets a copy of
    // this address space, as with fork.
    let ret = unsafe { syscall2(nr::SPAWN2, NEWPID, ptr) };
    start_child(if ret < 0 { Err(sys::errno_from_ret(ret)) } else { Ok(ret as Pid) }, || 0)
}

/// Names: one that a live namespace has gives `EEXIST`, and is free again once it is gone;
/// bad names, nonzero padding and bad pointers are refused, and refused ones leave nothing.
pub fn names() -> Outcome {
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    let named = SpawnArgs::new(0, 0, NAME).expect("a good name");
    let first = ctx(
        start_child(sys::spawn2(NEWPID, Some(&named)), move || {
            let _ = sys::close(w);
            wait_for(r);
            0
        }),
        "spawn2 with a name",
    )?;
    let _ = sys::close(r);
    let checks = (|| -> Outcome {
        expect_err(spawn2_raw(named.encode().as_ptr() as usize), Errno::EEXIST, "the name again")?;
        let spaces = namespaces()?;
        let n = procns::find(&spaces, NAME).ok_or(format!("/proc/ns has no {NAME}"))?;
        ensure!(n.parent == sys::getns(), "{NAME}'s parent is {}", n.parent);
        let base = SpawnArgs::default().encode();
        let mut cases: Vec<(&str, [u8; SpawnArgs::SIZE])> = Vec::new();
        for bad in ["Web", "12", "a.b", "a b", "\u{e9}t\u{e9}"] {
            let mut b = base;
            b[16..16 + bad.len()].copy_from_slice(bad.as_bytes());
            cases.push((bad, b));
        }
        let mut long = base;
        long[16..32].copy_from_slice(b"abcdefghijklmnop");
        cases.push(("16 bytes without a NUL", long));
        let mut junk = base;
        junk[16] = b'a';
        junk[20] = b'b';
        cases.push(("bytes after the name's NUL", junk));
        let mut pad = base;
        pad[6] = 1;
        cases.push(("nonzero padding", pad));
        for (what, b) in &cases {
            expect_err(spawn2_raw(b.as_ptr() as usize), Errno::EINVAL, what)?;
        }
        for (what, p) in [("the kernel's half", 0xffff_8000_0010_0000), ("unmapped", 1 << 46)] {
            expect_err(spawn2_raw(p), Errno::EFAULT, what)?;
        }
        Ok(String::new())
    })();
    let _ = sys::close(w);
    wait_pid(first)?;
    checks?;
    // Gone: its name is free again (at once; polled in case of a slow retire).
    poll("the name after its namespace ended", || {
        match start_child(sys::spawn2(NEWPID, Some(&named)), || 0) {
            Ok(pid) => wait_pid(pid).map(|_| None),
            Err(Errno::EEXIST) => Ok(Some("EEXIST".into())),
            Err(e) => Err(format!("spawn2 {NAME} again: {e:?}")),
        }
    })?;
    // A null pointer is plain spawn.
    let pid = ctx(spawn2_raw(0), "spawn2(NEWPID, null)")?;
    wait_pid(pid)?;
    Ok(String::new())
}

/// Busy processes in each container of `cpu-share`.
const BUSY: [usize; 2] = [8, 1];
/// How long the shares are measured.
const MEASURE_MS: u64 = 3000;
/// The band each container's share must fall in, in percent of the two's sum.
const SHARE_BAND: (u64, u64) = (30, 70);

/// A container whose init starts `n` busy loops and waits for them (for ever: they end with
/// the container, when its init is killed).
fn busy_container(n: usize) -> Result<Pid, String> {
    let init = start_child(sys::spawn2(NEWPID, None), move || {
        for _ in 0..n {
            let _ = start_child(sys::fork(), || loop {
                core::hint::spin_loop();
            });
        }
        loop {
            if sys::wait().is_err() {
                let _ = sys::sleep(1000);
            }
        }
    });
    ctx(init, "spawn")
}

/// CPU time (ms) of the processes of each namespace in `ids`, from `/proc`.
fn cpu_ms_of(ids: &[u32]) -> Result<Vec<u64>, String> {
    let mut out = vec![0u64; ids.len()];
    for e in ctx(ulib::dir::read_dir("/proc"), "/proc")? {
        let Ok(pid) = ctx(e, "/proc")?.name().parse::<u32>() else { continue };
        // A process may end between the listing and the read.
        let Ok(r) = proc_record(pid) else { continue };
        if let Some(i) = ids.iter().position(|&id| id == r.ns) {
            out[i] += r.cpu_ms;
        }
    }
    Ok(out)
}

/// The fair scheduler: a container running eight busy loops and one running one get about
/// the same CPU time (the scheduler takes namespaces in turn, then their processes).
/// Measured over [`MEASURE_MS`] of the processes' own CPU time (`ProcRecord::cpu_ms`).
pub fn cpu_share() -> Outcome {
    let inits = [busy_container(BUSY[0])?, busy_container(BUSY[1])?];
    let result = (|| -> Outcome {
        let ids =
            [ctx(proc_record(inits[0]), "/proc")?.ns, ctx(proc_record(inits[1]), "/proc")?.ns];
        // Every busy loop started (a container's processes: its init and its loops).
        poll("the busy loops started", || {
            let counts: Vec<u32> =
                ids.iter().map(|&id| limits_of(id).map_or(0, |l| l.procs)).collect();
            let want = [BUSY[0] as u32 + 1, BUSY[1] as u32 + 1];
            Ok((counts != want).then(|| format!("processes {counts:?}, want {want:?}")))
        })?;
        let t0 = sys::uptime();
        let before = cpu_ms_of(&ids)?;
        ctx(sys::sleep(MEASURE_MS), "sleep")?;
        let after = cpu_ms_of(&ids)?;
        let elapsed = sys::uptime() - t0;
        let used: Vec<u64> = before.iter().zip(&after).map(|(b, a)| a.saturating_sub(*b)).collect();
        let sum = used[0] + used[1];
        ensure!(sum * 10 >= elapsed * 3, "the busy loops had {sum} ms of {elapsed} ms");
        let shares: Vec<u64> = used.iter().map(|u| u * 100 / sum).collect();
        let note = format!(
            "{} busy: {} ms ({}%), {} busy: {} ms ({}%), over {elapsed} ms",
            BUSY[0], used[0], shares[0], BUSY[1], used[1], shares[1]
        );
        ensure!(shares.iter().all(|s| (SHARE_BAND.0..=SHARE_BAND.1).contains(s)), "unfair: {note}");
        Ok(note)
    })();
    for &init in &inits {
        let _ = sys::kill(init);
    }
    wait_all(&inits)?;
    result
}
