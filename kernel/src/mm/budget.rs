//! The kernel-memory budget: what user programs may make the kernel allocate.
//!
//! A program can make the kernel allocate far more than its own pages: every socket has buffers
//! (128 KiB for TCP), every pipe a 64 KiB ring, every blocked `read` or `recv` a bounce buffer,
//! `poll` its arrays, `exec` the program's file and its arguments. Multiplied by 256 processes of
//! 64 descriptors each that is gigabytes, and the kernel heap, which grows from the frame
//! allocator, would run dry; an allocation failure in the kernel is a panic. So every big,
//! user-caused kernel allocation takes a [`Charge`] first, and is refused (a clean error for the
//! program: ENOMEM, ENFILE for `pipe`) when the charge is not granted. A charge is released when it
//! is dropped, with the memory it stands for (it lives next to it: in the stack's table beside a
//! socket's buffers, in a pipe, in a bounce buffer, beside a program's bytes). Where a charge
//! cannot follow the memory, the caller only asks [`admits`] first: a `/proc` snapshot (kept by the
//! open file, which `file` makes).
//!
//! A charge of `n` bytes is granted when both hold:
//!
//! 1. **The floor.** Free memory (free frames, plus the free bytes of the heap's small-object
//!    part, which the kernel's own small allocations use first) stays at or above
//!    [`RESERVE`] (8 MiB) after the `n` bytes are taken. Below it, only the kernel's own
//!    allocations go on.
//! 2. **The cap.** The bytes charged altogether stay within a quarter of the memory the frame
//!    allocator manages ([`CAP_SHARE`]): 127 MiB on the 512 MiB test machine, about 1000
//!    sockets or 2000 pipes held at once. A flood of sockets then still leaves most of memory
//!    to processes, as Linux's `tcp_mem`/`udp_mem` limits and its per-user pipe limits do.
//!
//! Three reserves, in order: user pages stop first, when fewer than [`USER_RESERVE_FRAMES`]
//! (16 MiB) frames are free (`proc::vm`: `sbrk`, `fork`, `exec` get ENOMEM); charged kernel memory
//! stops at [`RESERVE`] (8 MiB); the rest is for the kernel alone. What the kernel may still
//! allocate there, uncharged, is bounded by the process and descriptor tables, not by what a
//! program asks for: open-file objects and table slots (at most 256 x 64 descriptors of a few
//! hundred bytes, about 3 MiB), the uncharged small buffers below (4 KiB bounces, `exec` arguments
//! up to 4 KiB and `poll` arrays of up to 64 entries per process, about 3 MiB for 256 processes),
//! the heap's 1 MiB growth steps, page tables of the heap's large-block region (at most one 4 KiB
//! table per 2 MiB of blocks), `/proc` snapshots up to the one that crosses the floor, and the
//! network stack's own tables (its socket table, about 1% of the buffers it describes). Kernel
//! stacks (64 KiB per process) come with `fork`, which needs user pages first, so they are taken
//! above the user reserve. 8 MiB covers that sum with room to spare, and 16 MiB of user reserve
//! keeps user pages from eating into it.
//!
//! **Namespaces.** A charge made in a process's context is also charged to its home
//! namespace's account (`ns::limits`) and every ancestor's, each against its memory limit:
//! beyond one of them the charge is refused, in that container only ([`Refused::Limit`]; the
//! callers answer ENOMEM, `pipe` too). The charge keeps the account it was made on and gives
//! the bytes back to it when dropped, whoever drops it (the network task freeing a socket's
//! buffers after the process exited). A charge made outside any process (a kernel task) goes
//! to no namespace, unless its maker names one ([`Charge::new_in`]). User pages are charged to
//! the same accounts by `proc::vm`, but not to this budget: they have their own reserve.
//!
//! The charge is decided on the memory actually free, so it holds whoever took the memory
//! (user pages, uncharged kernel objects): the rule is "charge, then allocate at once" (no
//! `await` between), and the charge lives as long as the memory. The heap gives large
//! allocations (socket buffers, pipe rings) frames of their own and returns them to the frame
//! allocator when freed (`mm::heap`), so memory a program made the kernel take comes back
//! when the program lets go of it.

use super::{frame, heap, PAGE_SIZE};
use crate::ns::Account;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicUsize, Ordering};

/// Free memory (bytes) below which charges are refused: the kernel's own reserve.
pub const RESERVE: usize = 8 << 20;
/// Frames (16 MiB) below which user pages are refused (`proc::vm`).
pub const USER_RESERVE_FRAMES: usize = 4096;
/// The share of managed memory charges may hold at once: `1 / CAP_SHARE`.
pub const CAP_SHARE: usize = 4;
/// Buffers up to this size are small enough to go uncharged ([`IoBuf`]).
pub const SMALL: usize = 4096;

/// Bytes charged now.
static CHARGED: AtomicUsize = AtomicUsize::new(0);

/// Bytes free for the kernel now: free frames and the small-object heap's free bytes.
pub fn available() -> usize {
    frame::stats().0 * PAGE_SIZE as usize + heap::small_free()
}

/// The most that may be charged at once.
pub fn cap() -> usize {
    frame::stats().1 * PAGE_SIZE as usize / CAP_SHARE
}

/// Whether the machine's budget would grant `bytes` more now (nothing is charged).
fn machine_admits(bytes: usize) -> bool {
    CHARGED.load(Ordering::Relaxed).saturating_add(bytes) <= cap()
        && available().saturating_sub(bytes) >= RESERVE
}

/// Whether `bytes` more would be granted now to the current process (nothing is charged):
/// by the machine's budget and by its namespaces' limits.
pub fn admits(bytes: usize) -> bool {
    machine_admits(bytes) && current_account().is_none_or(|a| a.mem_room(bytes as u64))
}

/// The account the current process's charges go to: its home namespace's. `None` outside a
/// process (a kernel task).
pub fn current_account() -> Option<Arc<Account>> {
    crate::proc::try_current().map(|p| p.ns.home.account.clone())
}

/// Why a charge was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The machine's budget: the floor or the cap.
    Machine,
    /// The memory limit of the namespace charged, or of one above it.
    Limit,
}

/// Whether a user page may be taken now (see [`USER_RESERVE_FRAMES`]).
pub fn user_page_ok() -> bool {
    frame::stats().0 >= USER_RESERVE_FRAMES
}

/// `bytes` of kernel memory charged to the budget, and to a namespace's account; released on
/// drop, to the same account.
#[derive(Debug)]
#[must_use = "a charge is released when dropped: keep it as long as the memory"]
pub struct Charge {
    bytes: usize,
    account: Option<Arc<Account>>,
}

impl Charge {
    /// Charge `bytes` for the current process, or `None` (refused) when the floor or the cap
    /// would be crossed, or a memory limit of its namespaces.
    pub fn new(bytes: usize) -> Option<Charge> {
        Self::try_new(bytes).ok()
    }

    /// As [`Charge::new`], saying why it was refused.
    pub fn try_new(bytes: usize) -> Result<Charge, Refused> {
        Self::new_in(current_account(), bytes)
    }

    /// Charge `bytes` to `account` (and its ancestors; `None`: to no namespace): for memory a
    /// kernel task makes for a namespace.
    ///
    /// The machine's check and the charge are two steps: on one CPU nothing runs between them
    /// (kernel code is not preempted, interrupt handlers never allocate); with several, two
    /// charges may both pass the floor's check (by at most a charge each; the floor is a
    /// reserve, not a wall). The accounts' limits are exact on any number of CPUs.
    pub fn new_in(account: Option<Arc<Account>>, bytes: usize) -> Result<Charge, Refused> {
        if !machine_admits(bytes) {
            return Err(Refused::Machine);
        }
        if let Some(a) = &account {
            if !a.charge_mem(bytes as u64) {
                return Err(Refused::Limit);
            }
        }
        CHARGED.fetch_add(bytes, Ordering::Relaxed);
        Ok(Charge { bytes, account })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        CHARGED.fetch_sub(self.bytes, Ordering::Relaxed);
        if let Some(a) = &self.account {
            a.uncharge_mem(self.bytes as u64);
        }
    }
}

/// A zeroed kernel buffer for a system call's data, with its charge if it needed one.
pub struct IoBuf {
    buf: Vec<u8>,
    _charge: Option<Charge>,
}

impl IoBuf {
    /// Up to `len` bytes: all of them when the budget grants them, otherwise [`SMALL`] (a
    /// program can always do I/O, a page at a time when memory is short). Never empty unless
    /// `len` is 0.
    pub fn up_to(len: usize) -> IoBuf {
        Self::exactly(len).unwrap_or_else(|| IoBuf { buf: alloc::vec![0; SMALL], _charge: None })
    }

    /// Exactly `len` bytes, or `None` when they are large and the budget refuses them (a
    /// datagram, which must not be cut).
    pub fn exactly(len: usize) -> Option<IoBuf> {
        let charge = if len > SMALL { Some(Charge::new(len)?) } else { None };
        Some(IoBuf { buf: alloc::vec![0; len], _charge: charge })
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}
