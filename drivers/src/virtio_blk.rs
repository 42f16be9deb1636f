//! A virtio block device (legacy virtio-pci interface, PCI 1af4:1001), driven by interrupts,
//! with several requests in flight at once.
//!
//! # The device in brief
//!
//! A legacy virtio-pci device is programmed through its I/O BAR 0 ([`PortRegs`]): feature
//! bits, a device status byte, the selection and physical page number of a virtqueue, a
//! "notify" register, an interrupt status register (ISR), and the block device's own
//! configuration (its capacity in 512-byte sectors). All requests travel through one
//! virtqueue: three rings in physically contiguous memory that the device reads and writes by
//! DMA:
//!
//! - the descriptor table: (physical address, length, flags, next) entries, chained;
//! - the available ring, written by us: heads of descriptor chains the device may process;
//! - the used ring, written by the device: heads of chains it has finished, in completion order.
//!
//! A block request is a chain of three descriptors: a 16-byte header (type, sector), the data
//! (a run of 1 to [`MAX_RUN`] contiguous 4096-byte blocks, in one physically contiguous
//! buffer), and a one-byte status the device writes last. A run of blocks is one request: the
//! device (QEMU) then does one large read or write of the image instead of one per block, and
//! the guest pays one notify and one interrupt for it.
//!
//! # Slots: how several requests are in flight
//!
//! The queue is cut into up to [`MAX_SLOTS`] *slots*. Slot `s` owns descriptors `3s, 3s+1,
//! 3s+2` (chained once at start-up), a 32-byte piece of a shared page for its header and status,
//! and a bounce buffer of its own for the data: one page, or [`MAX_RUN`] pages for the last
//! [`RUN_SLOTS`] slots (bounded DMA memory: 1 MiB for those). A request of `n` blocks:
//!
//! 1. takes a free slot whose bounce buffer holds `n` blocks, the smallest such (waiting, in
//!    task context, while none is free);
//! 2. fills the header (and for a write copies the caller's blocks into the bounce buffer),
//!    sets the data descriptor's length to `n` blocks, puts `3s` into the available ring, and
//!    notifies the device;
//! 3. awaits completion: it registers its waker in the slot's [`IrqWaker`], then, under the
//!    queue lock, moves every new used-ring entry to its slot (`Done(status)`), and checks its
//!    own slot;
//! 4. copies the data out of the bounce buffer (a read that succeeded), frees the slot, returns
//!    the status. A failed request reports an error for the whole run, and a failed read
//!    leaves the caller's buffers untouched (the device may have filled part of the bounce
//!    buffer; a failed write may have written part of the run).
//!
//! A run longer than the largest slot's buffer is cut into requests of at most that many
//! blocks, in flight together. A run that does not lie inside the device is refused before
//! any request is made.
//!
//! Bounce buffers keep DMA away from the caller's buffers: those may live anywhere (a heap
//! page is not physically contiguous with the next), and a request whose future is dropped
//! while the device still owns its slot cannot scribble on freed memory. Such a slot is marked
//! `Abandoned` and freed when its completion shows up in the used ring.
//!
//! # The interrupt handler
//!
//! [`VirtioBlk::handle_irq`] reads the ISR, which acknowledges the interrupt and lowers the
//! (level-triggered, possibly shared) interrupt line, then wakes every slot's [`IrqWaker`].
//! That is all: no allocation, no lock, no look at the rings. Only slots whose request is
//! being awaited have a waker registered; each woken future checks the used ring itself. A
//! wake is never lost: a future registers before it checks, and the device raises the
//! interrupt only after it has published the used entry.
//!
//! # Writes and the device's write cache
//!
//! The driver accepts the `F_FLUSH` feature, which lets the device cache writes: QEMU (with
//! `cache=writeback`) then completes a write once it is in the host's page cache. A write
//! whose future has completed is in the image file as every host process sees it, so it
//! survives QEMU being killed; only [`VirtioBlk::flush`] makes it durable across a crash of
//! the host itself. (Without `F_FLUSH`, QEMU would fsync after every write: measured about
//! twice as slow.)
//!
//! # Context rules
//!
//! Task context: every async method, [`VirtioBlk::new`]. The queue lock (a spin lock, rank
//! `VirtioBlk` of the lock order in `docs/locks.md`: wakers are woken under it) is taken only
//! in task context and never held across an `await`. Interrupt context:
//! [`VirtioBlk::handle_irq`] only.

use crate::dma::{DmaRegion, PAGE};
use alloc::vec::Vec;
use core::future::poll_fn;
use core::ptr;
use core::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};
use core::task::{Poll, Waker};
use runtime::irq::IrqWaker;
use runtime::lockorder::{Mutex, Rank};
use x86_64::instructions::port::Port;

/// PCI vendor id of virtio devices.
pub const VENDOR_ID: u16 = 0x1af4;
/// PCI device id of a legacy (or transitional) virtio block device.
pub const DEVICE_ID_LEGACY_BLOCK: u16 = 0x1001;

/// The device's sector size: request headers count in these.
pub const SECTOR_SIZE: usize = 512;
/// The block size of this driver's API (the file system's block).
pub const BLOCK_SIZE: usize = 4096;
const SECTORS_PER_BLOCK: u64 = (BLOCK_SIZE / SECTOR_SIZE) as u64;

/// Most requests in flight at once (the queue may allow fewer).
pub const MAX_SLOTS: usize = 32;
/// Most blocks one request moves (128 KiB): the bounce buffer of a run slot.
pub const MAX_RUN: usize = 32;
/// Slots with a [`MAX_RUN`]-block bounce buffer (the last ones); the others have one page.
pub const RUN_SLOTS: usize = 8;
/// Per slot in the shared header page: the 16-byte header at +0, the status byte at +16.
const META_STRIDE: usize = 32;
const STATUS_OFFSET: usize = 16;

// Legacy virtio-pci registers (offsets in I/O BAR 0; device config follows at 0x14 when MSI-X
// is off, which it is: this driver uses INTx).
const REG_DEVICE_FEATURES: u16 = 0x00;
const REG_GUEST_FEATURES: u16 = 0x04;
const REG_QUEUE_PFN: u16 = 0x08;
const REG_QUEUE_SIZE: u16 = 0x0c;
const REG_QUEUE_SELECT: u16 = 0x0e;
const REG_QUEUE_NOTIFY: u16 = 0x10;
const REG_STATUS: u16 = 0x12;
const REG_ISR: u16 = 0x13;
const REG_CONFIG: u16 = 0x14;
/// virtio-blk config: capacity in sectors (u64) at +0.
const CONFIG_CAPACITY: u16 = REG_CONFIG;
/// virtio-blk config: the largest data buffer the device takes (u32), with `F_SIZE_MAX`.
const CONFIG_SIZE_MAX: u16 = REG_CONFIG + 8;

const STATUS_ACKNOWLEDGE: u8 = 1;
const STATUS_DRIVER: u8 = 2;
const STATUS_DRIVER_OK: u8 = 4;
const STATUS_FAILED: u8 = 0x80;

/// ISR bit 0: the device used buffers (bit 1 is a configuration change, ignored).
const ISR_QUEUE: u8 = 1;

/// Feature bits. A limit on one buffer's size; read-only disk; flush command (and a write
/// cache: see [`VirtioBlk::flush`]).
pub const F_SIZE_MAX: u32 = 1 << 1;
pub const F_RO: u32 = 1 << 5;
pub const F_FLUSH: u32 = 1 << 9;

const DESC_NEXT: u16 = 1;
const DESC_WRITE: u16 = 2; // the device writes this buffer

const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// The status values the device writes.
pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;
/// Written into the status byte before submitting: a completion that leaves it untouched is
/// an error too.
const S_UNSET: u8 = 0xff;

/// Why a request failed. The same two cases as the file system's `IoError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// A block of the request is past the end of the device (no request was sent).
    OutOfRange,
    /// The device reported a failure (status other than OK), or the disk is read-only.
    Device,
}

/// Why the device could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// Queue 0 does not exist, or is too small for one request.
    NoQueue,
    /// DMA memory could not be allocated, or is not usable (unaligned, above 16 TiB).
    NoMemory,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InitError::NoQueue => "the device has no usable virtqueue 0",
            InitError::NoMemory => "no DMA memory for the virtqueue",
        })
    }
}

/// Register access to a legacy virtio-pci device: I/O BAR 0 on a PC ([`PortRegs`]), a fake
/// device in the host tests. Every method may be called from interrupt context.
pub trait Regs: Send + Sync {
    fn read8(&self, offset: u16) -> u8;
    fn read16(&self, offset: u16) -> u16;
    fn read32(&self, offset: u16) -> u32;
    fn write8(&self, offset: u16, value: u8);
    fn write16(&self, offset: u16, value: u16);
    fn write32(&self, offset: u16, value: u32);
}

/// The device's registers in I/O space.
pub struct PortRegs {
    base: u16,
}

impl PortRegs {
    /// # Safety
    /// `base` must be the I/O BAR 0 of a legacy virtio device, used by no one else.
    pub unsafe fn new(base: u16) -> Self {
        PortRegs { base }
    }
}

impl Regs for PortRegs {
    fn read8(&self, offset: u16) -> u8 {
        // SAFETY: a register of the device `new` was given; reads have no side effects except
        // the ISR's (acknowledging the interrupt), which is what its reader wants.
        unsafe { Port::<u8>::new(self.base + offset).read() }
    }
    fn read16(&self, offset: u16) -> u16 {
        // SAFETY: as in read8.
        unsafe { Port::<u16>::new(self.base + offset).read() }
    }
    fn read32(&self, offset: u16) -> u32 {
        // SAFETY: as in read8.
        unsafe { Port::<u32>::new(self.base + offset).read() }
    }
    fn write8(&self, offset: u16, value: u8) {
        // SAFETY: a register of our device; the driver writes only what the virtio spec allows.
        unsafe { Port::<u8>::new(self.base + offset).write(value) }
    }
    fn write16(&self, offset: u16, value: u16) {
        // SAFETY: as in write8.
        unsafe { Port::<u16>::new(self.base + offset).write(value) }
    }
    fn write32(&self, offset: u16, value: u32) {
        // SAFETY: as in write8.
        unsafe { Port::<u32>::new(self.base + offset).write(value) }
    }
}

/// The legacy split-virtqueue layout for `size` entries: (offset of the available ring,
/// offset of the used ring, total bytes). The used ring starts on a 4096-byte boundary.
pub const fn legacy_ring_layout(size: u16) -> (usize, usize, usize) {
    let q = size as usize;
    let avail = 16 * q;
    let used = (avail + 2 * (3 + q)).next_multiple_of(PAGE);
    let total = used + (2 * 3 + 8 * q).next_multiple_of(PAGE);
    (avail, used, total)
}

/// The three rings, by CPU address. Only accessed under the queue lock (task context).
struct Ring {
    base: *mut u8,
    size: u16,
    avail: usize,
    used: usize,
}

impl Ring {
    fn write_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        // SAFETY: i < size, so the 16-byte entry is inside the descriptor table, which this
        // driver owns (the device only reads it); the table is 16-byte aligned.
        unsafe {
            let d = self.base.add(16 * i as usize);
            ptr::write_volatile(d as *mut u64, addr);
            ptr::write_volatile(d.add(8) as *mut u32, len);
            ptr::write_volatile(d.add(12) as *mut u16, flags);
            ptr::write_volatile(d.add(14) as *mut u16, next);
        }
    }

    fn set_desc_flags_next(&self, i: u16, flags: u16, next: u16) {
        // SAFETY: as in write_desc.
        unsafe {
            let d = self.base.add(16 * i as usize);
            ptr::write_volatile(d.add(12) as *mut u16, flags);
            ptr::write_volatile(d.add(14) as *mut u16, next);
        }
    }

    /// Publish chain `head` at position `idx` of the available ring.
    fn push_avail(&self, idx: u16, head: u16) {
        // SAFETY: the available ring lies at `avail`: flags, idx, then `size` entries; the
        // entry index is reduced modulo size.
        unsafe {
            let a = self.base.add(self.avail);
            ptr::write_volatile(a.add(4 + 2 * (idx % self.size) as usize) as *mut u16, head);
            // The entry must be visible before the index that publishes it.
            fence(Ordering::SeqCst);
            ptr::write_volatile(a.add(2) as *mut u16, idx.wrapping_add(1));
        }
        fence(Ordering::SeqCst); // and the index before the notify that follows
    }

    /// The device's used index (how many chains it has finished, wrapping).
    fn used_idx(&self) -> u16 {
        // SAFETY: the used ring's idx field (offset 2), written by the device by DMA.
        let v = unsafe { ptr::read_volatile(self.base.add(self.used + 2) as *const u16) };
        fence(Ordering::SeqCst); // entries (and the data they describe) are read after idx
        v
    }

    /// (head id, bytes written) of the used entry at position `idx`.
    fn used_elem(&self, idx: u16) -> (u32, u32) {
        let off = self.used + 4 + 8 * (idx % self.size) as usize;
        // SAFETY: an 8-byte entry inside the used ring (reduced modulo size).
        unsafe {
            (
                ptr::read_volatile(self.base.add(off) as *const u32),
                ptr::read_volatile(self.base.add(off + 4) as *const u32),
            )
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Nobody's.
    Free,
    /// Taken by a request future, not yet submitted: the future owns the slot's memory.
    Reserved,
    /// Submitted: the device owns the slot's memory until its used entry appears.
    InFlight,
    /// Completed with this status; the future owns the memory again.
    Done(u8),
    /// Submitted, but its future was dropped: freed when its used entry appears.
    Abandoned,
}

struct State {
    ring: Ring,
    /// Next free position in the available ring (wrapping, like the device's index).
    avail_idx: u16,
    /// Next used-ring position to look at.
    last_used: u16,
    slots: [SlotState; MAX_SLOTS],
    /// Tasks waiting for a free slot: all are woken when one frees (a dropped waiter's waker
    /// is then dropped, so none lingers).
    slot_waiters: Vec<Waker>,
    in_flight: usize,
}

// SAFETY: the raw pointers in `ring` point at DMA memory this driver owns for good; the state
// is only reached through the queue mutex.
unsafe impl Send for State {}

/// Counters, readable any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent to the device.
    pub requests: u64,
    /// Blocks those requests moved (a run of `n` blocks is one request of `n`).
    pub blocks: u64,
    /// Interrupts that reported used buffers.
    pub irqs: u64,
    /// Requests completed with a status other than OK.
    pub errors: u64,
    /// Most requests ever in flight at once (submitted, completion not yet seen).
    pub max_in_flight: u64,
    /// Times a request found every slot busy and had to wait for one.
    pub slot_waits: u64,
    /// Used-ring entries that named no request in flight (a device bug; ignored).
    pub bogus: u64,
}

/// A legacy virtio block device. See the module documentation.
pub struct VirtioBlk<R: Regs> {
    regs: R,
    capacity: u64,
    features: u32,
    nslots: usize,
    /// Most blocks in one request: the largest bounce buffer, within the device's size limit.
    max_run: usize,
    /// Header+status page: slot `s` at `META_STRIDE * s`.
    meta: DmaRegion,
    /// Each slot's bounce buffer: one page, or `MAX_RUN` pages for the last `RUN_SLOTS` slots.
    data: [Option<DmaRegion>; MAX_SLOTS],
    /// One per slot; woken (all of them) by the interrupt handler.
    wakers: [IrqWaker; MAX_SLOTS],
    state: Mutex<State>,
    requests: AtomicU64,
    blocks: AtomicU64,
    irqs: AtomicU64,
    errors: AtomicU64,
    max_in_flight: AtomicU64,
    slot_waits: AtomicU64,
    bogus: AtomicU64,
    last_error: AtomicU8,
}

/// What a request moves: a run of blocks, in the caller's buffers.
enum Data<'a, 'b> {
    Read(&'a mut [&'b mut [u8; BLOCK_SIZE]]),
    Write(&'a [&'b [u8; BLOCK_SIZE]]),
    None,
}

impl Data<'_, '_> {
    fn blocks(&self) -> usize {
        match self {
            Data::Read(b) => b.len(),
            Data::Write(b) => b.len(),
            Data::None => 0,
        }
    }
}

/// A slot taken by one request future. Dropping it frees the slot, unless the device still
/// owns it (then it is freed when its completion arrives).
struct SlotGuard<'a, R: Regs> {
    dev: &'a VirtioBlk<R>,
    index: usize,
}

impl<R: Regs> Drop for SlotGuard<'_, R> {
    fn drop(&mut self) {
        let s = self.index;
        // The wait is over (or abandoned): no waker of ours may stay behind.
        self.dev.wakers[s].clear();
        let mut st = self.dev.state.lock();
        if st.slots[s] == SlotState::InFlight {
            st.slots[s] = SlotState::Abandoned;
        } else {
            st.slots[s] = SlotState::Free;
            wake_all(&mut st.slot_waiters);
        }
    }
}

fn wake_all(waiters: &mut Vec<Waker>) {
    for w in waiters.drain(..) {
        w.wake();
    }
}

impl<R: Regs> VirtioBlk<R> {
    /// Reset and set up the device: negotiate features, give queue 0 its rings, turn the
    /// device on. `alloc_dma(pages)` returns page-aligned, physically contiguous memory of that
    /// many 4096-byte pages below 16 TiB; it is called here only (task context).
    pub fn new(
        regs: R,
        mut alloc_dma: impl FnMut(usize) -> Option<DmaRegion>,
    ) -> Result<Self, InitError> {
        regs.write8(REG_STATUS, 0); // reset
        regs.write8(REG_STATUS, STATUS_ACKNOWLEDGE);
        regs.write8(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        let fail = |e| {
            regs.write8(REG_STATUS, STATUS_FAILED);
            Err(e)
        };
        let features = regs.read32(REG_DEVICE_FEATURES) & (F_SIZE_MAX | F_RO | F_FLUSH);
        regs.write32(REG_GUEST_FEATURES, features);

        regs.write16(REG_QUEUE_SELECT, 0);
        let size = regs.read16(REG_QUEUE_SIZE);
        if size < 3 || !size.is_power_of_two() {
            return fail(InitError::NoQueue);
        }
        let (avail, used, total) = legacy_ring_layout(size);
        let mut alloc = |pages: usize| {
            // The legacy interface takes a 32-bit page number.
            alloc_dma(pages).filter(|r| r.holds(pages * PAGE) && r.phys >> 12 <= u32::MAX as u64)
        };
        let Some(ring_mem) = alloc(total / PAGE) else { return fail(InitError::NoMemory) };
        let Some(meta) = alloc(1) else { return fail(InitError::NoMemory) };
        let nslots = (size as usize / 3).min(MAX_SLOTS);
        let mut data = [None; MAX_SLOTS];
        for (s, d) in data.iter_mut().enumerate().take(nslots) {
            // A run slot whose buffer cannot be had (memory too fragmented) makes do with a
            // page: runs are then cut shorter, nothing fails.
            let run = s + RUN_SLOTS >= nslots;
            *d = run.then(|| alloc(MAX_RUN)).flatten().or_else(|| alloc(1));
            if d.is_none() {
                return fail(InitError::NoMemory);
            }
        }
        let largest = data.iter().flatten().map(|d| d.len / BLOCK_SIZE).max().unwrap_or(1);
        // The device's limit on one buffer, if it has one (hostile like any device byte: a
        // limit below one block still leaves requests of one block, which cannot be cut).
        let size_max = if features & F_SIZE_MAX != 0 {
            regs.read32(CONFIG_SIZE_MAX) as usize / BLOCK_SIZE
        } else {
            MAX_RUN
        };
        let max_run = largest.min(size_max).clamp(1, MAX_RUN);
        // SAFETY: the allocator gave us `total` bytes at ring_mem.virt, used by no one else.
        unsafe { ptr::write_bytes(ring_mem.virt, 0, total) };
        let ring = Ring { base: ring_mem.virt, size, avail, used };
        // Fixed chains, header -> data -> status; requests change only flags and links.
        for (s, d) in data.iter().take(nslots).enumerate() {
            let (head, d) = (3 * s as u16, d.expect("allocated above"));
            let hdr = meta.phys + (META_STRIDE * s) as u64;
            ring.write_desc(head, hdr, 16, DESC_NEXT, head + 1);
            ring.write_desc(head + 1, d.phys, BLOCK_SIZE as u32, DESC_NEXT, head + 2);
            ring.write_desc(head + 2, hdr + STATUS_OFFSET as u64, 1, DESC_WRITE, 0);
        }
        fence(Ordering::SeqCst);
        regs.write32(REG_QUEUE_PFN, (ring_mem.phys >> 12) as u32);
        let capacity =
            regs.read32(CONFIG_CAPACITY) as u64 | (regs.read32(CONFIG_CAPACITY + 4) as u64) << 32;
        regs.write8(REG_STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
        Ok(VirtioBlk {
            capacity,
            features,
            nslots,
            max_run,
            meta,
            data,
            wakers: [const { IrqWaker::new() }; MAX_SLOTS],
            state: Mutex::new(
                Rank::VirtioBlk,
                State {
                    ring,
                    avail_idx: 0,
                    last_used: 0,
                    slots: [SlotState::Free; MAX_SLOTS],
                    slot_waiters: Vec::new(),
                    in_flight: 0,
                },
            ),
            requests: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            irqs: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            slot_waits: AtomicU64::new(0),
            bogus: AtomicU64::new(0),
            last_error: AtomicU8::new(S_OK),
            regs,
        })
    }

    /// The device's size in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    /// The device's size in 4096-byte blocks (a partial last block is not counted).
    pub fn block_count(&self) -> u32 {
        (self.capacity / SECTORS_PER_BLOCK).min(u32::MAX as u64) as u32
    }

    /// Whether the device refuses writes (its `F_RO` feature).
    pub fn read_only(&self) -> bool {
        self.features & F_RO != 0
    }

    /// Whether the device has a write cache that [`VirtioBlk::flush`] empties.
    pub fn has_flush(&self) -> bool {
        self.features & F_FLUSH != 0
    }

    /// How many requests may be in flight at once.
    pub fn slots(&self) -> usize {
        self.nslots
    }

    /// Most blocks one request moves: longer runs are cut into requests of this many.
    pub fn max_run(&self) -> usize {
        self.max_run
    }

    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.requests.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            irqs: self.irqs.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            slot_waits: self.slot_waits.load(Ordering::Relaxed),
            bogus: self.bogus.load(Ordering::Relaxed),
        }
    }

    /// The status byte of the most recent failed request (`S_OK` if none failed).
    pub fn last_error_status(&self) -> u8 {
        self.last_error.load(Ordering::Relaxed)
    }

    /// Read block `block` into `buf`. Completes when the device has answered.
    pub async fn read_block(&self, block: u32, buf: &mut [u8; BLOCK_SIZE]) -> Result<(), IoError> {
        self.read_blocks(block, &mut [buf]).await
    }

    /// Write `buf` to block `block`. Completes when the device reports the write done: the
    /// data is then in the device's storage (with a write cache: in that cache, see
    /// [`VirtioBlk::flush`]).
    pub async fn write_block(&self, block: u32, buf: &[u8; BLOCK_SIZE]) -> Result<(), IoError> {
        self.write_blocks(block, &[buf]).await
    }

    /// Whether blocks `start..start + n` all lie on the device.
    fn check_run(&self, start: u32, n: usize) -> Result<(), IoError> {
        match (start as u64).checked_add(n as u64) {
            Some(end) if end <= self.block_count() as u64 => Ok(()),
            _ => Err(IoError::OutOfRange),
        }
    }

    /// Read blocks `start, start + 1, ...` into `bufs` (one buffer per block): one request
    /// per [`VirtioBlk::max_run`] blocks, in flight together. A run not inside the device is
    /// `Err(OutOfRange)` with no request made; any request failing fails the whole read (the
    /// buffers of the other requests may have been filled).
    pub async fn read_blocks(
        &self,
        start: u32,
        bufs: &mut [&mut [u8; BLOCK_SIZE]],
    ) -> Result<(), IoError> {
        self.check_run(start, bufs.len())?;
        let sector = start as u64 * SECTORS_PER_BLOCK;
        if bufs.len() <= self.max_run {
            return match bufs.len() {
                0 => Ok(()),
                _ => self.request(T_IN, sector, Data::Read(bufs)).await,
            };
        }
        let step = self.max_run as u64 * SECTORS_PER_BLOCK;
        let parts = bufs
            .chunks_mut(self.max_run)
            .zip(0..)
            .map(|(part, i)| self.request(T_IN, sector + i * step, Data::Read(part)));
        futures_util::future::join_all(parts).await.into_iter().collect()
    }

    /// Write `bufs` to blocks `start, start + 1, ...`: one request per
    /// [`VirtioBlk::max_run`] blocks, in flight together. Completes when the device reports
    /// every block written (see [`VirtioBlk::write_block`]). A run not inside the device is
    /// `Err(OutOfRange)` with no request made; on a device error any part of the run may have
    /// been written.
    pub async fn write_blocks(
        &self,
        start: u32,
        bufs: &[&[u8; BLOCK_SIZE]],
    ) -> Result<(), IoError> {
        self.check_run(start, bufs.len())?;
        if self.read_only() {
            return Err(IoError::Device);
        }
        let sector = start as u64 * SECTORS_PER_BLOCK;
        if bufs.len() <= self.max_run {
            return match bufs.len() {
                0 => Ok(()),
                _ => self.request(T_OUT, sector, Data::Write(bufs)).await,
            };
        }
        let step = self.max_run as u64 * SECTORS_PER_BLOCK;
        let parts = bufs
            .chunks(self.max_run)
            .zip(0..)
            .map(|(part, i)| self.request(T_OUT, sector + i * step, Data::Write(part)));
        futures_util::future::join_all(parts).await.into_iter().collect()
    }

    /// Empty the device's write cache (a no-op without `F_FLUSH`, whose absence means every
    /// completed write is already stable).
    pub async fn flush(&self) -> Result<(), IoError> {
        if !self.has_flush() {
            return Ok(());
        }
        self.request(T_FLUSH, 0, Data::None).await
    }

    /// Read 4096 bytes from `sector` with no range check: the device itself judges the sector.
    /// Only for tests of the device's error path; use [`VirtioBlk::read_block`].
    pub async fn read_sectors_unchecked(
        &self,
        sector: u64,
        buf: &mut [u8; BLOCK_SIZE],
    ) -> Result<(), IoError> {
        self.request(T_IN, sector, Data::Read(&mut [buf])).await
    }

    /// Interrupt handler body: acknowledge (reading the ISR lowers the interrupt line) and wake
    /// every waiting request. Returns whether the device had raised the interrupt, for lines
    /// shared with other devices. Interrupt context: no allocation, no lock, no ring access.
    pub fn handle_irq(&self) -> bool {
        let isr = self.regs.read8(REG_ISR);
        if isr & ISR_QUEUE != 0 {
            self.irqs.fetch_add(1, Ordering::Relaxed);
            for w in &self.wakers[..self.nslots] {
                w.wake();
            }
        }
        isr != 0
    }

    /// One request moving `data` (at most `max_run` blocks: the callers cut longer runs).
    async fn request(&self, kind: u32, sector: u64, data: Data<'_, '_>) -> Result<(), IoError> {
        let n = data.blocks();
        debug_assert!(n <= self.max_run);
        let slot = self.acquire(n.max(1)).await;
        let s = slot.index;
        let hdr = self.meta_ptr(s);
        let bounce = self.bounce(s); // a DmaRegion, not its pointer: the future stays Send
                                     // SAFETY: slot `s` is Reserved by us, so its header, status byte and bounce buffer are
                                     // ours until we submit; each lies inside the region the allocator gave us (the buffer
                                     // holds `n` blocks: `acquire` chose it so).
        unsafe {
            ptr::write_volatile(hdr as *mut u32, kind);
            ptr::write_volatile(hdr.add(4) as *mut u32, 0);
            ptr::write_volatile(hdr.add(8) as *mut u64, sector);
            ptr::write_volatile(hdr.add(STATUS_OFFSET), S_UNSET);
            if let Data::Write(bufs) = &data {
                for (i, buf) in bufs.iter().enumerate() {
                    ptr::copy_nonoverlapping(
                        buf.as_ptr(),
                        bounce.virt.add(i * BLOCK_SIZE),
                        BLOCK_SIZE,
                    );
                }
            }
        }
        self.submit(s, kind, n);
        let status = self.completion(s).await;
        if status != S_OK {
            self.errors.fetch_add(1, Ordering::Relaxed);
            self.last_error.store(status, Ordering::Relaxed);
            return Err(IoError::Device);
        }
        if let Data::Read(bufs) = data {
            for (i, buf) in bufs.iter_mut().enumerate() {
                // SAFETY: the slot is Done: the device finished with the bounce buffer (its
                // used entry was seen, and `used_idx` fenced), and it is ours until `slot`
                // drops; block `i < n` lies inside it.
                unsafe {
                    ptr::copy_nonoverlapping(
                        bounce.virt.add(i * BLOCK_SIZE),
                        buf.as_mut_ptr(),
                        BLOCK_SIZE,
                    )
                };
            }
        }
        drop(slot);
        Ok(())
    }

    fn bounce(&self, s: usize) -> DmaRegion {
        self.data[s].expect("every slot has a bounce buffer")
    }

    /// How many blocks slot `s`'s bounce buffer holds.
    fn capacity(&self, s: usize) -> usize {
        self.bounce(s).len / BLOCK_SIZE
    }

    fn meta_ptr(&self, s: usize) -> *mut u8 {
        // SAFETY: s < nslots <= MAX_SLOTS, and MAX_SLOTS * META_STRIDE fits the meta page.
        unsafe { self.meta.virt.add(META_STRIDE * s) }
    }

    /// A free slot whose bounce buffer holds `n` blocks (the smallest such, leaving the large
    /// ones to runs), waiting while there is none. Cancel-safe: dropping the future takes
    /// nothing. `n` is at most `max_run`, which some slot holds.
    async fn acquire(&self, n: usize) -> SlotGuard<'_, R> {
        let mut waited = false;
        let index = poll_fn(|cx| {
            let mut st = self.state.lock();
            let free = |st: &State| {
                (0..self.nslots)
                    .filter(|&s| st.slots[s] == SlotState::Free && self.capacity(s) >= n)
                    .min_by_key(|&s| self.capacity(s))
            };
            let found = free(&st).or_else(|| {
                // A slot whose future was dropped frees only when the device finishes it, and
                // no future waits on that completion: be woken by its interrupt ourselves.
                for s in 0..self.nslots {
                    if st.slots[s] == SlotState::Abandoned {
                        self.wakers[s].register(cx.waker());
                    }
                }
                if !st.slot_waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    st.slot_waiters.push(cx.waker().clone());
                }
                self.reap(&mut st);
                free(&st)
            });
            match found {
                Some(s) => {
                    st.slots[s] = SlotState::Reserved;
                    Poll::Ready(s)
                }
                None => {
                    if !waited {
                        waited = true;
                        self.slot_waits.fetch_add(1, Ordering::Relaxed);
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        SlotGuard { dev: self, index }
    }

    /// Hand slot `s` (Reserved, header filled, `n` blocks of data in its buffer for a write)
    /// to the device.
    fn submit(&self, s: usize, kind: u32, n: usize) {
        let head = 3 * s as u16;
        let bounce = self.bounce(s).phys;
        let mut st = self.state.lock();
        let ring = &st.ring;
        if kind == T_FLUSH {
            ring.set_desc_flags_next(head, DESC_NEXT, head + 2); // no data
        } else {
            ring.set_desc_flags_next(head, DESC_NEXT, head + 1);
            let dir = if kind == T_IN { DESC_WRITE } else { 0 };
            let len = (n * BLOCK_SIZE) as u32;
            ring.write_desc(head + 1, bounce, len, DESC_NEXT | dir, head + 2);
        }
        let idx = st.avail_idx;
        ring.push_avail(idx, head);
        st.avail_idx = idx.wrapping_add(1);
        st.slots[s] = SlotState::InFlight;
        st.in_flight += 1;
        self.max_in_flight.fetch_max(st.in_flight as u64, Ordering::Relaxed);
        drop(st);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.blocks.fetch_add(n as u64, Ordering::Relaxed);
        self.regs.write16(REG_QUEUE_NOTIFY, 0);
    }

    /// The status of slot `s`'s request, once the device has finished it.
    async fn completion(&self, s: usize) -> u8 {
        poll_fn(|cx| {
            // Register first, then look: a completion after the look raises an interrupt,
            // which wakes the waker already in place.
            self.wakers[s].register(cx.waker());
            let mut st = self.state.lock();
            self.reap(&mut st);
            match st.slots[s] {
                SlotState::Done(status) => Poll::Ready(status),
                _ => Poll::Pending,
            }
        })
        .await
    }

    /// Move every new used-ring entry to its slot. Queue lock held (task context).
    fn reap(&self, st: &mut State) {
        let used = st.ring.used_idx();
        let mut freed = false;
        while st.last_used != used {
            let (id, _len) = st.ring.used_elem(st.last_used);
            st.last_used = st.last_used.wrapping_add(1);
            let s = id as usize / 3;
            let state = if id % 3 == 0 && s < self.nslots { st.slots[s] } else { SlotState::Free };
            match state {
                SlotState::InFlight => {
                    // SAFETY: the device wrote the status byte before publishing the entry,
                    // and `used_idx` fenced; the byte is inside our meta page.
                    let status = unsafe { ptr::read_volatile(self.meta_ptr(s).add(STATUS_OFFSET)) };
                    st.slots[s] = SlotState::Done(status);
                    st.in_flight -= 1;
                    self.wakers[s].wake();
                }
                SlotState::Abandoned => {
                    st.slots[s] = SlotState::Free;
                    st.in_flight -= 1;
                    self.wakers[s].clear();
                    freed = true;
                }
                _ => {
                    self.bogus.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if freed {
            wake_all(&mut st.slot_waiters);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::fake::Memory;
    use alloc::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::vec;
    use testkit::Task;

    /// A legacy virtio-blk device in memory. Requests are taken from the available ring on a
    /// notify, and completed only when the test says so ([`Fake::complete`]), in any order.
    struct Fake {
        mem: Arc<Memory>,
        st: StdMutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        features: u32,
        guest_features: u32,
        status: u8,
        queue_size: u16,
        pfn: u32,
        isr: u8,
        disk: Vec<u8>,
        last_avail: u16,
        used_idx: u16,
        notifies: usize,
        pending: Vec<u16>,
        /// Requests touching this sector fail with S_IOERR (after moving the blocks before
        /// it, as a real disk may).
        bad_sector: Option<u64>,
        /// Blocks moved by each completed read or write, in completion order.
        sizes: Vec<usize>,
        /// The device's `size_max` (config +8).
        size_max: u32,
    }

    impl Fake {
        fn new(queue_size: u16, sectors: u64, features: u32) -> Arc<Fake> {
            Arc::new(Fake {
                mem: Arc::new(Memory::new(0x10_0000)),
                st: StdMutex::new(FakeState {
                    features,
                    queue_size,
                    disk: vec![0; sectors as usize * SECTOR_SIZE],
                    ..FakeState::default()
                }),
            })
        }

        fn ring(&self, st: &FakeState) -> (*mut u8, usize, usize) {
            let (avail, used, total) = legacy_ring_layout(st.queue_size);
            (self.mem.at((st.pfn as u64) << 12, total), avail, used)
        }

        fn desc(&self, st: &FakeState, i: u16) -> (u64, u32, u16, u16) {
            assert!(i < st.queue_size);
            let (base, _, _) = self.ring(st);
            // SAFETY: the descriptor table at the start of the ring memory.
            unsafe {
                let d = base.add(16 * i as usize);
                (
                    ptr::read(d as *const u64),
                    ptr::read(d.add(8) as *const u32),
                    ptr::read(d.add(12) as *const u16),
                    ptr::read(d.add(14) as *const u16),
                )
            }
        }

        /// Take the chains the driver made available since the last notify.
        fn notify(&self) {
            let mut st = self.st.lock().unwrap();
            st.notifies += 1;
            let (base, avail, _) = self.ring(&st);
            // SAFETY: the available ring's idx and entries, inside the ring memory.
            let idx = unsafe { ptr::read_volatile(base.add(avail + 2) as *const u16) };
            while st.last_avail != idx {
                let slot = st.last_avail % st.queue_size;
                // SAFETY: as above.
                let head =
                    unsafe { ptr::read(base.add(avail + 4 + 2 * slot as usize) as *const u16) };
                st.pending.push(head);
                st.last_avail = st.last_avail.wrapping_add(1);
            }
        }

        fn pending(&self) -> Vec<u16> {
            self.st.lock().unwrap().pending.clone()
        }

        /// Carry out the pending request with chain head `head`, publish it as used and raise
        /// the interrupt (the test then calls `handle_irq`, as the CPU would).
        fn complete(&self, head: u16) {
            let mut st = self.st.lock().unwrap();
            let at = st.pending.iter().position(|&h| h == head).expect("pending request");
            st.pending.remove(at);
            let (h_addr, h_len, h_flags, next) = self.desc(&st, head);
            assert_eq!((h_len, h_flags & DESC_WRITE), (16, 0), "header: 16 bytes, device-read");
            assert!(h_flags & DESC_NEXT != 0);
            let hdr = self.mem.at(h_addr, 16);
            // SAFETY: the 16-byte header just located.
            let (kind, sector) =
                unsafe { (ptr::read(hdr as *const u32), ptr::read(hdr.add(8) as *const u64)) };
            let (mut status_desc, mut data, mut len) = (next, None, 0);
            if kind != T_FLUSH {
                let (d_addr, d_len, d_flags, d_next) = self.desc(&st, next);
                len = d_len as usize;
                assert!(len > 0 && len.is_multiple_of(BLOCK_SIZE), "whole blocks: {len}");
                assert!(len <= MAX_RUN * BLOCK_SIZE);
                assert!(d_flags & DESC_NEXT != 0);
                assert_eq!(d_flags & DESC_WRITE != 0, kind == T_IN, "data direction");
                data = Some(self.mem.at(d_addr, len));
                status_desc = d_next;
            }
            let (s_addr, s_len, s_flags, _) = self.desc(&st, status_desc);
            assert_eq!((s_len, s_flags), (1, DESC_WRITE), "status: 1 byte, device-written, last");
            let off = sector as usize * SECTOR_SIZE;
            let in_range = off + len <= st.disk.len();
            // A bad sector: the blocks before it move, then the request fails.
            let bad = st
                .bad_sector
                .filter(|&b| b >= sector && b < sector + (len / SECTOR_SIZE) as u64)
                .map(|b| (b - sector) as usize * SECTOR_SIZE / BLOCK_SIZE * BLOCK_SIZE);
            let moved = bad.unwrap_or(len);
            if kind != T_FLUSH {
                st.sizes.push(len / BLOCK_SIZE);
            }
            let status = match (kind, data) {
                (T_FLUSH, None) if bad.is_none() => S_OK,
                (T_IN, Some(d)) if in_range => {
                    // SAFETY: the data buffer located above holds `len >= moved` bytes.
                    unsafe { ptr::copy(st.disk[off..].as_ptr(), d, moved) };
                    if bad.is_some() {
                        S_IOERR
                    } else {
                        S_OK
                    }
                }
                (T_OUT, Some(d)) if in_range => {
                    let dst = st.disk[off..off + moved].as_mut_ptr();
                    // SAFETY: as above.
                    unsafe { ptr::copy(d, dst, moved) };
                    if bad.is_some() {
                        S_IOERR
                    } else {
                        S_OK
                    }
                }
                (T_IN | T_OUT | T_FLUSH, _) => S_IOERR,
                _ => S_UNSUPP,
            };
            // SAFETY: the status byte; then the used ring entry and index.
            unsafe {
                ptr::write_volatile(self.mem.at(s_addr, 1), status);
                let (base, _, used) = self.ring(&st);
                let e = base.add(used + 4 + 8 * (st.used_idx % st.queue_size) as usize);
                ptr::write(e as *mut u32, head as u32);
                ptr::write(e.add(4) as *mut u32, 1);
                st.used_idx = st.used_idx.wrapping_add(1);
                ptr::write_volatile(base.add(used + 2) as *mut u16, st.used_idx);
            }
            st.isr |= ISR_QUEUE;
        }

        fn complete_all_in(&self, order: impl IntoIterator<Item = u16>) {
            for h in order {
                self.complete(h);
            }
        }
    }

    /// The driver's view of the fake: its registers.
    struct FakeRegs(Arc<Fake>);

    impl Regs for FakeRegs {
        fn read8(&self, off: u16) -> u8 {
            let mut st = self.0.st.lock().unwrap();
            match off {
                REG_STATUS => st.status,
                REG_ISR => core::mem::take(&mut st.isr),
                _ => panic!("read8 {off:#x}"),
            }
        }
        fn read16(&self, off: u16) -> u16 {
            match off {
                REG_QUEUE_SIZE => self.0.st.lock().unwrap().queue_size,
                _ => panic!("read16 {off:#x}"),
            }
        }
        fn read32(&self, off: u16) -> u32 {
            let st = self.0.st.lock().unwrap();
            let sectors = (st.disk.len() / SECTOR_SIZE) as u64;
            match off {
                REG_DEVICE_FEATURES => st.features,
                CONFIG_SIZE_MAX => st.size_max,
                CONFIG_CAPACITY => sectors as u32,
                o if o == CONFIG_CAPACITY + 4 => (sectors >> 32) as u32,
                _ => panic!("read32 {off:#x}"),
            }
        }
        fn write8(&self, off: u16, v: u8) {
            assert_eq!(off, REG_STATUS);
            let mut st = self.0.st.lock().unwrap();
            st.status = v;
            if v == 0 {
                st.pfn = 0;
            }
        }
        fn write16(&self, off: u16, v: u16) {
            match off {
                REG_QUEUE_SELECT => assert_eq!(v, 0),
                REG_QUEUE_NOTIFY => {
                    assert_eq!(v, 0);
                    self.0.notify();
                }
                _ => panic!("write16 {off:#x}"),
            }
        }
        fn write32(&self, off: u16, v: u32) {
            let mut st = self.0.st.lock().unwrap();
            match off {
                REG_GUEST_FEATURES => st.guest_features = v,
                REG_QUEUE_PFN => st.pfn = v,
                _ => panic!("write32 {off:#x}"),
            }
        }
    }

    fn device(queue_size: u16, blocks: u64, features: u32) -> (Arc<Fake>, VirtioBlk<FakeRegs>) {
        let fake = Fake::new(queue_size, blocks * SECTORS_PER_BLOCK, features);
        let mem = fake.mem.clone();
        let dev = VirtioBlk::new(FakeRegs(fake.clone()), |pages| mem.alloc(pages)).unwrap();
        (fake, dev)
    }

    fn pattern(block: u32) -> [u8; BLOCK_SIZE] {
        core::array::from_fn(|i| (i as u32 ^ block.wrapping_mul(31)) as u8)
    }

    fn heads(n: usize) -> Vec<u16> {
        (0..n as u16).map(|s| 3 * s).collect()
    }

    #[test]
    fn ring_layout() {
        assert_eq!(legacy_ring_layout(256), (4096, 8192, 12288));
        assert_eq!(legacy_ring_layout(128), (2048, 4096, 8192));
        assert_eq!(legacy_ring_layout(4), (64, 4096, 8192));
        assert_eq!(legacy_ring_layout(1024), (16384, 20480, 32768));
    }

    #[test]
    fn setup_negotiates_and_starts_the_device() {
        let other = 1 << 28 | 1 << 6; // indirect descriptors, blk_size: not taken
        let (fake, dev) = device(256, 2048, F_FLUSH | other);
        let st = fake.st.lock().unwrap();
        assert_eq!(st.guest_features, F_FLUSH);
        assert_eq!(st.status, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_DRIVER_OK);
        assert_eq!(st.pfn, 0x100, "the ring is the first region (fake phys 0x100000)");
        drop(st);
        assert_eq!(dev.capacity_sectors(), 2048 * 8);
        assert_eq!(dev.block_count(), 2048);
        assert_eq!(dev.slots(), MAX_SLOTS);
        assert!(dev.has_flush() && !dev.read_only());
        assert_eq!(device(16, 1, 0).1.slots(), 5);
    }

    #[test]
    fn setup_fails_without_a_queue_or_memory() {
        let fake = Fake::new(0, 8, 0);
        let r = VirtioBlk::new(FakeRegs(fake.clone()), |_| None);
        assert_eq!(r.err(), Some(InitError::NoQueue));
        assert_eq!(fake.st.lock().unwrap().status, STATUS_FAILED);
        let fake = Fake::new(8, 8, 0);
        let r = VirtioBlk::new(FakeRegs(fake.clone()), |_| None);
        assert_eq!(r.err(), Some(InitError::NoMemory));
    }

    #[test]
    fn write_then_read_completes_on_the_interrupt() {
        let (fake, dev) = device(256, 64, 0);
        let data = pattern(7);
        let mut w = Task::new(dev.write_block(7, &data));
        assert!(!w.poll(), "waits for the device");
        assert_eq!(fake.pending(), [0]);
        // An interrupt with nothing used (a shared line, another device): not ours, no wake.
        assert!(!dev.handle_irq());
        assert!(!w.woken());
        fake.complete(0);
        assert!(!w.woken(), "the device alone does not wake: the interrupt does");
        assert!(dev.handle_irq());
        assert!(w.woken());
        assert!(w.poll());
        assert_eq!(w.result, Some(Ok(())));
        assert_eq!(&fake.st.lock().unwrap().disk[7 * BLOCK_SIZE..8 * BLOCK_SIZE], &data[..]);

        let mut buf = [0u8; BLOCK_SIZE];
        let mut r = Task::new(dev.read_block(7, &mut buf));
        assert!(!r.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && r.woken() && r.poll());
        assert_eq!(r.result, Some(Ok(())));
        drop(r);
        assert_eq!(buf, data);
        let s = dev.stats();
        assert_eq!((s.requests, s.irqs, s.errors, s.max_in_flight, s.bogus), (2, 2, 0, 1, 0));
    }

    #[test]
    fn many_requests_in_flight_complete_out_of_order() {
        let (fake, dev) = device(256, 64, 0);
        let blocks: Vec<u32> = (0..8).map(|i| 3 + 5 * i).collect();
        let datas: Vec<_> = blocks.iter().map(|&b| pattern(b)).collect();
        let mut tasks: Vec<Task<_>> =
            blocks.iter().zip(&datas).map(|(&b, d)| Task::new(dev.write_block(b, d))).collect();
        for t in &mut tasks {
            assert!(!t.poll());
        }
        assert_eq!(fake.pending(), heads(8), "all eight submitted before any completes");
        assert_eq!(dev.stats().max_in_flight, 8);
        // The device finishes them in reverse, two per interrupt.
        for pair in heads(8).rchunks(2) {
            fake.complete_all_in(pair.iter().rev().copied());
            assert!(dev.handle_irq());
            for (i, t) in tasks.iter_mut().enumerate() {
                let done_now = pair.contains(&(3 * i as u16));
                if t.result.is_none() {
                    assert!(t.woken(), "the interrupt wakes every waiting request");
                    assert_eq!(t.poll(), done_now, "task {i}");
                }
            }
        }
        assert!(tasks.iter().all(|t| t.result == Some(Ok(()))));
        let disk = fake.st.lock().unwrap().disk.clone();
        for (&b, d) in blocks.iter().zip(&datas) {
            let at = b as usize * BLOCK_SIZE;
            assert_eq!(&disk[at..at + BLOCK_SIZE], &d[..], "block {b}");
        }
        // Read them all back concurrently.
        let mut bufs = vec![[0u8; BLOCK_SIZE]; 8];
        let mut tasks: Vec<Task<_>> = blocks
            .iter()
            .zip(bufs.iter_mut())
            .map(|(&b, buf)| Task::new(dev.read_block(b, buf)))
            .collect();
        tasks.iter_mut().for_each(|t| assert!(!t.poll()));
        fake.complete_all_in([9, 0, 21, 3, 6, 15, 12, 18]);
        assert!(dev.handle_irq());
        assert!(tasks.iter_mut().all(|t| t.woken() && t.poll()));
        drop(tasks);
        assert_eq!(bufs, datas);
    }

    #[test]
    fn more_requests_than_slots_wait_for_one() {
        let (fake, dev) = device(8, 64, 0); // 8 / 3 = 2 slots
        assert_eq!(dev.slots(), 2);
        let data = pattern(1);
        let mut tasks: Vec<Task<_>> =
            (0..5).map(|b| Task::new(dev.write_block(b, &data))).collect();
        for t in &mut tasks {
            assert!(!t.poll());
        }
        assert_eq!(fake.pending(), [0, 3]);
        let mut rounds = 0;
        while tasks.iter().any(|t| t.result.is_none()) {
            rounds += 1;
            assert!(rounds < 20, "no progress");
            let p = fake.pending();
            assert!(!p.is_empty() && p.len() <= 2);
            fake.complete(p[0]);
            assert!(dev.handle_irq());
            // Poll woken tasks until quiet (freeing a slot wakes the waiters, in task context).
            while let Some(t) = tasks.iter_mut().find(|t| t.result.is_none() && t.woken()) {
                t.poll();
            }
        }
        assert!(tasks.iter().all(|t| t.result == Some(Ok(()))));
        assert_eq!(dev.stats().requests, 5);
        assert_eq!(dev.stats().max_in_flight, 2);
        assert_eq!(dev.stats().slot_waits, 3, "three requests found both slots busy");
    }

    #[test]
    fn out_of_range_and_read_only_send_nothing() {
        let (fake, dev) = device(256, 16, F_RO);
        let mut buf = [0u8; BLOCK_SIZE];
        let mut t = Task::new(dev.read_block(16, &mut buf));
        assert!(t.poll());
        assert_eq!(t.result, Some(Err(IoError::OutOfRange)));
        let data = [0u8; BLOCK_SIZE];
        let mut t = Task::new(dev.write_block(u32::MAX, &data));
        assert!(t.poll());
        assert_eq!(t.result, Some(Err(IoError::OutOfRange)));
        let mut t = Task::new(dev.write_block(0, &data));
        assert!(t.poll());
        assert_eq!(t.result, Some(Err(IoError::Device)), "read-only disk");
        assert_eq!(fake.st.lock().unwrap().notifies, 0);
        assert_eq!(dev.stats().requests, 0);
    }

    #[test]
    fn device_errors_are_errors() {
        let (fake, dev) = device(256, 16, 0);
        fake.st.lock().unwrap().bad_sector = Some(8 * 5 + 3);
        let mut buf = [0u8; BLOCK_SIZE];
        let mut t = Task::new(dev.read_block(5, &mut buf));
        assert!(!t.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && t.poll());
        assert_eq!(t.result, Some(Err(IoError::Device)));
        drop(t);
        assert_eq!(dev.last_error_status(), S_IOERR);
        // Past the end, asked of the device itself: the device refuses.
        let mut t = Task::new(dev.read_sectors_unchecked(16 * 8, &mut buf));
        assert!(!t.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && t.poll());
        assert_eq!(t.result, Some(Err(IoError::Device)));
        assert_eq!(dev.stats().errors, 2);
        // The slot is usable again.
        drop(t);
        let mut t = Task::new(dev.read_block(4, &mut buf));
        assert!(!t.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && t.poll());
        assert_eq!(t.result, Some(Ok(())));
    }

    #[test]
    fn flush_uses_a_two_descriptor_chain() {
        let (fake, dev) = device(256, 16, F_FLUSH);
        let mut t = Task::new(dev.flush());
        assert!(!t.poll());
        fake.complete(0); // the fake checks header -> status
        assert!(dev.handle_irq() && t.poll());
        assert_eq!(t.result, Some(Ok(())));
        // A read in the same slot afterwards goes through the data descriptor again.
        let mut buf = [1u8; BLOCK_SIZE];
        let mut t = Task::new(dev.read_block(0, &mut buf));
        assert!(!t.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && t.poll());
        drop(t);
        assert_eq!(buf, [0u8; BLOCK_SIZE]);
        // Without F_FLUSH, flush is a no-op.
        let (fake, dev) = device(256, 16, 0);
        let mut t = Task::new(dev.flush());
        assert!(t.poll());
        assert_eq!(fake.st.lock().unwrap().notifies, 0);
    }

    /// A request dropped while the device owns its slot: the slot stays out of use until the
    /// device finishes with it, and a task waiting for a slot is woken by that completion.
    #[test]
    fn dropped_request_frees_its_slot_when_the_device_is_done() {
        let (fake, dev) = device(8, 64, 0); // 2 slots
        let data = pattern(9);
        let mut a = Task::new(dev.write_block(1, &data));
        let mut b = Task::new(dev.write_block(2, &data));
        assert!(!a.poll() && !b.poll());
        drop(b); // slot 1 abandoned, still in flight
        fake.complete(0);
        assert!(dev.handle_irq() && a.woken() && a.poll());
        assert_eq!(a.result, Some(Ok(())));
        let mut c = Task::new(dev.write_block(3, &data));
        let mut d = Task::new(dev.write_block(4, &data));
        assert!(!c.poll(), "c takes slot 0");
        assert!(!d.poll(), "d must wait: slot 1 still belongs to the device");
        assert_eq!(fake.pending(), [3, 0]);
        // Only the abandoned request completes: d is woken by that interrupt and gets slot 1.
        fake.complete(3);
        assert!(dev.handle_irq());
        assert!(d.woken(), "the waiter is woken by the abandoned slot's completion");
        assert!(!c.woken() || !c.poll());
        assert!(!d.poll());
        assert_eq!(fake.pending(), [0, 3]);
        fake.complete_all_in([0, 3]);
        assert!(dev.handle_irq() && c.poll() && d.poll());
        assert_eq!((c.result, d.result), (Some(Ok(())), Some(Ok(()))));
        let disk = &fake.st.lock().unwrap().disk;
        for b in [1, 2, 3, 4] {
            assert_eq!(&disk[b * BLOCK_SIZE..(b + 1) * BLOCK_SIZE], &data[..], "block {b}");
        }
    }

    /// Wakers registered by finished requests are dropped: an interrupt after all requests are
    /// done wakes nobody, and no waker (so no task) is kept alive by the driver.
    #[test]
    fn no_waker_outlives_its_request() {
        let (fake, dev) = device(256, 16, 0);
        let mut buf = [0u8; BLOCK_SIZE];
        let mut t = Task::new(dev.read_block(1, &mut buf));
        assert!(!t.poll());
        fake.complete(0);
        assert!(dev.handle_irq() && t.poll());
        let flag = t.wakes.clone();
        drop(t);
        assert_eq!(Arc::strong_count(&flag), 1, "the driver holds no waker");
        // Same for a request dropped before the device finished.
        let mut t = Task::new(dev.read_block(1, &mut buf));
        assert!(!t.poll());
        let flag = t.wakes.clone();
        drop(t);
        assert_eq!(Arc::strong_count(&flag), 1);
        fake.complete(0);
        assert!(dev.handle_irq());
    }

    /// The chain head of the first run slot (the last `RUN_SLOTS` slots of 32).
    const FIRST_RUN_HEAD: u16 = 3 * (MAX_SLOTS - RUN_SLOTS) as u16;

    fn patterns(first: u32, n: usize) -> Vec<[u8; BLOCK_SIZE]> {
        (0..n as u32).map(|i| pattern(first + i)).collect()
    }

    fn disk_blocks(fake: &Fake, first: usize, n: usize) -> Vec<u8> {
        fake.st.lock().unwrap().disk[first * BLOCK_SIZE..(first + n) * BLOCK_SIZE].to_vec()
    }

    /// Complete every pending request (in submission order), deliver the interrupt, poll.
    fn finish<T>(fake: &Fake, dev: &VirtioBlk<FakeRegs>, t: &mut Task<'_, T>) {
        fake.complete_all_in(fake.pending());
        assert!(dev.handle_irq());
        assert!(t.poll(), "done once the device answered");
    }

    /// A run of blocks travels as one request (one chain: header, one data buffer of the
    /// whole run, status), in a slot with a large bounce buffer; singles keep to the small
    /// slots.
    #[test]
    fn a_run_is_one_request() {
        let (fake, dev) = device(256, 128, 0);
        assert_eq!(dev.max_run(), MAX_RUN);
        let datas = patterns(10, 20);
        let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
        let mut w = Task::new(dev.write_blocks(10, &refs));
        let one = pattern(99);
        let mut single = Task::new(dev.write_block(99, &one));
        assert!(!w.poll() && !single.poll());
        assert_eq!(fake.pending(), [FIRST_RUN_HEAD, 0], "the run in a run slot, the single not");
        finish(&fake, &dev, &mut w);
        assert!(single.poll());
        assert_eq!((w.result, single.result), (Some(Ok(())), Some(Ok(()))));
        assert_eq!(disk_blocks(&fake, 10, 20), datas.concat());
        assert_eq!(disk_blocks(&fake, 99, 1), one);

        let mut bufs = vec![[0u8; BLOCK_SIZE]; 20];
        let mut refs: Vec<&mut [u8; BLOCK_SIZE]> = bufs.iter_mut().collect();
        let mut r = Task::new(dev.read_blocks(10, &mut refs));
        assert!(!r.poll());
        assert_eq!(fake.pending().len(), 1);
        finish(&fake, &dev, &mut r);
        assert_eq!(r.result, Some(Ok(())));
        drop(r);
        drop(refs);
        assert_eq!(bufs, datas);
        assert_eq!(fake.st.lock().unwrap().sizes, [20, 1, 20]);
        let s = dev.stats();
        assert_eq!((s.requests, s.blocks, s.errors), (3, 41, 0));
    }

    /// `MAX_RUN` blocks still go in one request; one more is cut into two requests, in flight
    /// together; a run of every block of the device works.
    #[test]
    fn runs_at_the_limit_and_beyond() {
        let n = 2 * MAX_RUN + 5;
        let (fake, dev) = device(256, n as u64, 0);
        let datas = patterns(0, n);
        for len in [MAX_RUN, MAX_RUN + 1, n] {
            fake.st.lock().unwrap().sizes.clear();
            let refs: Vec<&[u8; BLOCK_SIZE]> = datas[..len].iter().collect();
            let mut w = Task::new(dev.write_blocks(0, &refs));
            assert!(!w.poll());
            let expect = len.div_ceil(MAX_RUN);
            assert_eq!(fake.pending().len(), expect, "{len} blocks: all requests at once");
            finish(&fake, &dev, &mut w);
            assert_eq!(w.result, Some(Ok(())));
            let mut sizes = fake.st.lock().unwrap().sizes.clone();
            sizes.sort_unstable();
            let mut want: Vec<usize> =
                (0..len).step_by(MAX_RUN).map(|i| MAX_RUN.min(len - i)).collect();
            want.sort_unstable();
            assert_eq!(sizes, want);
            assert_eq!(disk_blocks(&fake, 0, len), datas[..len].concat());
        }
        // Read the whole device back, in three requests.
        let mut bufs = vec![[0u8; BLOCK_SIZE]; n];
        let mut refs: Vec<&mut [u8; BLOCK_SIZE]> = bufs.iter_mut().collect();
        let mut r = Task::new(dev.read_blocks(0, &mut refs));
        assert!(!r.poll());
        assert_eq!(fake.pending().len(), 3);
        finish(&fake, &dev, &mut r);
        assert_eq!(r.result, Some(Ok(())));
        drop(r);
        drop(refs);
        assert_eq!(bufs, datas);
    }

    /// Runs reaching past the end (or wrapping the block number) are refused before any
    /// request; a run ending on the last block is fine; an empty run does nothing.
    #[test]
    fn run_bounds() {
        let (fake, dev) = device(256, 16, 0);
        let datas = patterns(0, 4);
        let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
        for start in [13, 16, 17, u32::MAX - 1, u32::MAX] {
            let mut t = Task::new(dev.write_blocks(start, &refs));
            assert!(t.poll());
            assert_eq!(t.result, Some(Err(IoError::OutOfRange)), "write at {start}");
            let mut bufs = vec![[7u8; BLOCK_SIZE]; 4];
            let mut rrefs: Vec<&mut [u8; BLOCK_SIZE]> = bufs.iter_mut().collect();
            let mut t = Task::new(dev.read_blocks(start, &mut rrefs));
            assert!(t.poll());
            assert_eq!(t.result, Some(Err(IoError::OutOfRange)), "read at {start}");
            drop(t);
            drop(rrefs);
            assert!(bufs.iter().all(|b| b == &[7u8; BLOCK_SIZE]), "untouched");
        }
        let mut t = Task::new(dev.write_blocks(17, &[]));
        assert!(t.poll());
        assert_eq!(t.result, Some(Err(IoError::OutOfRange)), "an empty run past the end");
        let mut t = Task::new(dev.write_blocks(3, &[]));
        assert!(t.poll());
        assert_eq!(t.result, Some(Ok(())));
        assert_eq!(fake.st.lock().unwrap().notifies, 0);
        assert_eq!(dev.stats().requests, 0);
        let mut t = Task::new(dev.write_blocks(12, &refs));
        assert!(!t.poll());
        finish(&fake, &dev, &mut t);
        assert_eq!(t.result, Some(Ok(())));
        assert_eq!(disk_blocks(&fake, 12, 4), datas.concat());
        // A read-only disk refuses a run like a block.
        let (fake, dev) = device(256, 16, F_RO);
        let mut t = Task::new(dev.write_blocks(0, &refs));
        assert!(t.poll());
        assert_eq!(t.result, Some(Err(IoError::Device)));
        assert_eq!(fake.st.lock().unwrap().notifies, 0);
    }

    /// The device fails in the middle of a run: the whole run is an error; a read leaves the
    /// caller's buffers as they were (the device filled part of the bounce buffer); a write
    /// may have written the blocks before the bad one. The slot serves again afterwards.
    #[test]
    fn device_error_in_the_middle_of_a_run() {
        let (fake, dev) = device(256, 64, 0);
        let datas = patterns(8, 8);
        let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
        let mut w = Task::new(dev.write_blocks(8, &refs));
        assert!(!w.poll());
        finish(&fake, &dev, &mut w);
        assert_eq!(w.result, Some(Ok(())));
        fake.st.lock().unwrap().bad_sector = Some(8 * 12 + 5); // inside block 12

        let mut bufs = vec![[7u8; BLOCK_SIZE]; 8];
        let mut rrefs: Vec<&mut [u8; BLOCK_SIZE]> = bufs.iter_mut().collect();
        let mut r = Task::new(dev.read_blocks(8, &mut rrefs));
        assert!(!r.poll());
        finish(&fake, &dev, &mut r);
        assert_eq!(r.result, Some(Err(IoError::Device)));
        drop(r);
        drop(rrefs);
        assert!(bufs.iter().all(|b| b == &[7u8; BLOCK_SIZE]), "a failed read copies nothing");
        assert_eq!(dev.last_error_status(), S_IOERR);

        let news = patterns(100, 8);
        let refs: Vec<&[u8; BLOCK_SIZE]> = news.iter().collect();
        let mut w = Task::new(dev.write_blocks(8, &refs));
        assert!(!w.poll());
        finish(&fake, &dev, &mut w);
        assert_eq!(w.result, Some(Err(IoError::Device)));
        assert_eq!(disk_blocks(&fake, 8, 4), news[..4].concat(), "written up to the bad block");
        assert_eq!(disk_blocks(&fake, 12, 4), datas[4..].concat(), "not past it");
        assert_eq!(dev.stats().errors, 2);

        // One part of a cut run fails: the whole run fails; the other parts completed.
        let (fake, dev) = device(256, 128, 0);
        fake.st.lock().unwrap().bad_sector = Some(8 * (MAX_RUN as u64 + 1));
        let big = patterns(0, MAX_RUN + 4);
        let refs: Vec<&[u8; BLOCK_SIZE]> = big.iter().collect();
        let mut w = Task::new(dev.write_blocks(0, &refs));
        assert!(!w.poll());
        finish(&fake, &dev, &mut w);
        assert_eq!(w.result, Some(Err(IoError::Device)));
        assert_eq!(disk_blocks(&fake, 0, MAX_RUN + 1), big[..MAX_RUN + 1].concat());

        // The run slots work again.
        fake.st.lock().unwrap().bad_sector = None;
        let mut w = Task::new(dev.write_blocks(0, &refs));
        assert!(!w.poll());
        finish(&fake, &dev, &mut w);
        assert_eq!(w.result, Some(Ok(())));
        assert_eq!(disk_blocks(&fake, 0, MAX_RUN + 4), big.concat());
    }

    /// A device that states a buffer size limit gets runs cut to it; a limit below one block
    /// (hostile, or silly) still leaves single-block requests.
    #[test]
    fn the_devices_size_limit_cuts_runs() {
        for (size_max, run) in [(8 * BLOCK_SIZE as u32, 8), (100, 1), (u32::MAX, MAX_RUN)] {
            let fake = Fake::new(256, 64 * 8, F_SIZE_MAX);
            fake.st.lock().unwrap().size_max = size_max;
            let mem = fake.mem.clone();
            let dev = VirtioBlk::new(FakeRegs(fake.clone()), |p| mem.alloc(p)).unwrap();
            assert_eq!(fake.st.lock().unwrap().guest_features, F_SIZE_MAX);
            assert_eq!(dev.max_run(), run, "size_max {size_max}");
            let datas = patterns(0, 20);
            let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
            let mut w = Task::new(dev.write_blocks(0, &refs));
            assert!(!w.poll());
            finish(&fake, &dev, &mut w);
            assert_eq!(w.result, Some(Ok(())));
            let sizes = fake.st.lock().unwrap().sizes.clone();
            assert_eq!(sizes.len(), 20usize.div_ceil(run));
            assert!(sizes.iter().all(|&n| n <= run));
            assert_eq!(disk_blocks(&fake, 0, 20), datas.concat());
        }
    }

    /// DMA memory stays bounded: the rings, one page of headers, a page per small slot and
    /// `MAX_RUN` pages per run slot. Without memory for the run buffers, runs are cut to one
    /// block and still work.
    #[test]
    fn dma_memory_is_bounded_and_runs_survive_without_it() {
        let (fake, _dev) = device(256, 16, 0);
        let pages: usize = fake.mem.regions().iter().map(|r| r.len / PAGE).sum();
        let rings = legacy_ring_layout(256).2 / PAGE;
        assert_eq!(pages, rings + 1 + (MAX_SLOTS - RUN_SLOTS) + RUN_SLOTS * MAX_RUN);

        let fake = Fake::new(256, 16 * 8, 0);
        let mem = fake.mem.clone();
        let dev =
            VirtioBlk::new(FakeRegs(fake.clone()), |p| (p <= 4).then(|| mem.alloc(p))?).unwrap();
        assert_eq!(dev.max_run(), 1);
        let datas = patterns(0, 5);
        let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
        let mut w = Task::new(dev.write_blocks(2, &refs));
        assert!(!w.poll());
        assert_eq!(fake.pending().len(), 5);
        finish(&fake, &dev, &mut w);
        assert_eq!(w.result, Some(Ok(())));
        assert_eq!(disk_blocks(&fake, 2, 5), datas.concat());
    }

    /// A run waits for a run slot while all of them are busy (singles do not take them while
    /// a small slot is free, and a run never takes a small one).
    #[test]
    fn runs_wait_for_a_run_slot() {
        let (fake, dev) = device(256, 4096, 0);
        let datas = patterns(0, 2);
        let refs: Vec<&[u8; BLOCK_SIZE]> = datas.iter().collect();
        let mut runs: Vec<Task<_>> =
            (0..RUN_SLOTS as u32 + 1).map(|i| Task::new(dev.write_blocks(4 * i, &refs))).collect();
        for r in &mut runs {
            assert!(!r.poll());
        }
        let pending = fake.pending();
        assert_eq!(pending.len(), RUN_SLOTS, "the last run waits");
        assert!(pending.iter().all(|&h| h >= FIRST_RUN_HEAD));
        let one = pattern(1);
        let mut single = Task::new(dev.write_block(1000, &one));
        assert!(!single.poll());
        assert_eq!(fake.pending().len(), RUN_SLOTS + 1, "a single still finds a small slot");
        assert_eq!(dev.stats().slot_waits, 1);
        fake.complete(pending[0]);
        assert!(dev.handle_irq());
        assert!(runs[0].poll(), "the first run is done and gives its slot back");
        let last = runs.last_mut().unwrap();
        assert!(last.woken() && !last.poll());
        assert_eq!(*fake.pending().last().unwrap(), pending[0], "the freed run slot");
        fake.complete_all_in(fake.pending());
        assert!(dev.handle_irq());
        for r in &mut runs {
            if r.result.is_none() {
                assert!(r.poll());
            }
            assert_eq!(r.result, Some(Ok(())));
        }
        assert!(single.poll());
    }

    #[test]
    fn futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let (_fake, dev) = device(8, 8, 0);
        let mut buf = [0u8; BLOCK_SIZE];
        send(&dev.read_block(0, &mut buf));
        send(&dev.write_block(0, &[0; BLOCK_SIZE]));
        send(&dev.flush());
        send(&dev.read_blocks(0, &mut [&mut buf]));
        send(&dev.write_blocks(0, &[&[0; BLOCK_SIZE]]));
        fn sync<T: Sync>(_: &T) {}
        sync(&dev);
    }
}
