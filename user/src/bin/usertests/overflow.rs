//! System-call arguments at the edges of their types, each of which a kernel that wraps or
//! truncates gets wrong:
//!
//! - `sleep` and `poll` with huge timeouts wait (they do not wrap around to a short wait).

use abi::syscall::{nr, state};
use ulib::abi;
use ulib::net::{PollFd, POLLIN};
use ulib::prelude::*;
use ulib::sys::raw::{syscall1, syscall3};

use crate::proc::proc_record;
use crate::{ctx, ensure, fork_child, wait_pid, Outcome};

/// How long a waiting child is watched before it is killed.
const WATCH_MS: u64 = 300;

/// `f` runs in a child that must still be waiting after [`WATCH_MS`] (then it is killed): a
/// child whose wait returns exits with 0 at once and is caught as a zombie.
fn still_waiting(what: &str, f: impl FnOnce() -> isize) -> Result<(), String> {
    let pid = fork_child(move || {
        let ret = f();
        // Returned: report how (the parent sees a zombie either way).
        (ret.unsigned_abs() as i32).clamp(0, 200) + 1
    })?;
    let _ = sys::sleep(WATCH_MS);
    let st = proc_record(pid).map(|r| r.state);
    let _ = sys::kill(pid);
    let status = wait_pid(pid)?;
    ensure!(
        st != Ok(state::ZOMBIE) && status == -1,
        "{what} returned within {WATCH_MS} ms (exit status {status}; 1 = success, 1 + errno otherwise)"
    );
    Ok(())
}

/// `sleep` and `poll` with timeouts that overflow a nanosecond count or an `int` wait.
pub fn huge_timeouts() -> Outcome {
    for ms in [1u64 << 63, u64::MAX, u64::MAX / 1_000_000 + 1] {
        still_waiting(&format!("sleep({ms:#x})"), || {
            // SAFETY: `sleep` takes no pointer.
            unsafe { syscall1(nr::SLEEP, ms as usize) }
        })?;
    }
    let (r, w) = ctx(sys::pipe(), "pipe")?;
    // 2^32 + 1 ms: cut to an int it is 1 ms; 2^32 is 0 ("just look").
    for timeout in [(1usize << 32) + 1, 1 << 32, isize::MAX as usize] {
        still_waiting(&format!("poll of an empty pipe for {timeout:#x} ms"), move || {
            let mut fds = [PollFd { fd: r, events: POLLIN, revents: 0 }];
            // SAFETY: `fds` is a live array of `fds.len()` entries the kernel may write.
            unsafe { syscall3(nr::POLL, fds.as_mut_ptr() as usize, 1, timeout) }
        })?;
    }
    let _ = (sys::close(r), sys::close(w));
    Ok(String::new())
}
