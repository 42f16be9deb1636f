//! The Intel 82540EM gigabit Ethernet controller ("E1000", PCI 8086:100e) that QEMU emulates,
//! driven by interrupts.
//!
//! # The device in brief
//!
//! The controller is programmed through 128 KiB of memory-mapped registers (BAR 0,
//! [`MmioRegs`]). Frames move by DMA through two rings of 16-byte descriptors in ordinary
//! RAM, each described to the device by a base address, a length, a head and a tail register:
//!
//! - **receive**: each descriptor points at a 2048-byte buffer. The device owns the
//!   descriptors from `RDH` up to (not including) `RDT`; it fills the one at `RDH`, writes its
//!   length and status (`DD`: done, `EOP`: end of frame), and advances `RDH`. We read
//!   completed descriptors in order from our own index, and give them back by moving `RDT`
//!   onto the last one consumed. One descriptor always stays ours (`RDT` never catches up
//!   with `RDH`), which is how the device tells a full ring from an empty one.
//!
//!   Descriptors go back in batches, once we have caught up with the device (the next one is
//!   not done yet), not one per frame. QEMU queues the frames that find the ring full, and on
//!   each `RDT` write it delivers that queue at once, dropping (RXO) whatever does not fit in
//!   the descriptors it has then: handed back one at a time, every frame queued but one
//!   would be lost. Returned together, all the descriptors we drained take the queue. The
//!   ring is also large ([`RX_RING`], Linux's default) so that a burst (a backlog of
//!   connections opening at once: SYN, ACK and data each) fits while the network task is
//!   busy.
//! - **transmit**: each descriptor points at one 2048-byte bounce buffer of ours. We copy a
//!   frame in, set `EOP | IFCS | RS` (end of frame, insert the CRC, report status) and advance
//!   `TDT`; the device sends the descriptors from `TDH` to `TDT` and sets `DD` on each. A slot
//!   is reused once its `DD` is back. At most `TX_RING - 1` are in flight (`TDT == TDH` means
//!   "empty" to the device).
//!
//!   `TDT` moves once per batch: [`E1000::queue`] fills descriptors, [`E1000::flush_tx`] hands
//!   all of them over with one register write (under QEMU each `TDT` write runs the device's
//!   transmit loop and raises a `TXDW` interrupt). [`E1000::transmit`] is both at once.
//!
//! # Checksum offload
//!
//! - **transmit** ([`TxOffload`]): the device fills the IPv4 header checksum and the TCP/UDP
//!   checksum as it sends. The offsets travel in a *context descriptor* (a descriptor slot of
//!   its own, which the device remembers), the frame in an *extended data descriptor* whose
//!   `POPTS` says which sums to insert (`IXSM`, `TXSM`). A context is written only when it
//!   changes (TCP and UDP differ), so a frame usually takes one slot, at most two. The device
//!   sums from the start offset to the end and stores the complement: the caller zeroes the
//!   IPv4 checksum and seeds the TCP/UDP one with the pseudo-header's sum (the device knows no
//!   protocol). QEMU emulates this (`TXSUM`), not the legacy descriptor's `CSO`/`CSS`.
//! - **receive** ([`RxCsum`]): with `RXCSUM.IPOFL | TUOFL` the device verifies the IPv4 and
//!   TCP/UDP checksums and reports `IPCS`/`TCPCS` (checked) with `IPE`/`TCPE` (bad). A frame
//!   it found bad is dropped here and counted; a frame it did not check (`IXSM`: "ignore the
//!   checksum indication", which QEMU sets on every frame, or the bits clear) comes with no
//!   verdict, and the caller verifies it.
//!
//! # Interrupts and wakers
//!
//! [`E1000::handle_irq`] reads `ICR`, which returns the pending causes and acknowledges them
//! (lowering the level-triggered, possibly shared line). A zero `ICR` means the interrupt was
//! another device's. Otherwise it counts the interrupt and wakes the receive [`IrqWaker`]
//! (`RXT0`, `RXO`, `RXDMT0`, `LSC`) and/or the transmit one (`TXDW`, `LSC`). That is all: no
//! allocation, no lock, no look at the rings. `TXDW` is unmasked only while a sender waits
//! for a slot ([`E1000::arm_tx_interrupt`]), and masked again by the interrupt it raises. A waiting future registers its waker *before* it
//! checks the ring, and the device raises the interrupt only after writing the descriptor
//! back, so a wake is never lost (the pattern of `IrqQueue::pop`).
//!
//! # Context rules
//!
//! Task context: [`E1000::new`], [`E1000::enable_interrupts`], transmit and receive (each ring
//! has a spin lock, never held across an `await`: ranks `NicRx` and `NicTx` of the lock order,
//! `docs/locks.md`, taken under the network stack's). Interrupt context: [`E1000::handle_irq`]
//! only. One task at a time should wait for received frames (the receive waker has one slot).

use alloc::vec::Vec;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use core::task::{Context, Poll};
use runtime::irq::IrqWaker;
use runtime::lockorder::{IrqMutex as Mutex, Rank};

use crate::dma::{DmaRegion, PAGE};

/// PCI vendor id of Intel.
pub const VENDOR_ID: u16 = 0x8086;
/// PCI device id of the 82540EM (QEMU's `-device e1000`).
pub const DEVICE_ID_82540EM: u16 = 0x100e;
/// Size of the register window (BAR 0).
pub const MMIO_SIZE: u64 = 128 * 1024;

/// Receive descriptors (the ring holds one fewer frame: see the module docs).
pub const RX_RING: usize = 256;
/// Transmit descriptors.
pub const TX_RING: usize = 32;
/// Bytes per receive and transmit buffer (RCTL.BSIZE = 2048).
pub const BUF_SIZE: usize = 2048;
/// The largest Ethernet frame without its CRC (the device strips it: RCTL.SECRC, and adds it
/// on transmit: IFCS): 14-byte header + 1500-byte payload.
pub const MAX_FRAME: usize = 1514;
const DESC_SIZE: usize = 16;

// Registers (byte offsets in BAR 0).
const CTRL: u32 = 0x0000;
const STATUS: u32 = 0x0008;
const EERD: u32 = 0x0014;
const ICR: u32 = 0x00c0;
const IMS: u32 = 0x00d0;
const IMC: u32 = 0x00d8;
const RCTL: u32 = 0x0100;
const TCTL: u32 = 0x0400;
const TIPG: u32 = 0x0410;
const RDBAL: u32 = 0x2800;
const RDBAH: u32 = 0x2804;
const RDLEN: u32 = 0x2808;
const RDH: u32 = 0x2810;
const RDT: u32 = 0x2818;
const TDBAL: u32 = 0x3800;
const TDBAH: u32 = 0x3804;
const TDLEN: u32 = 0x3808;
const TDH: u32 = 0x3810;
const TDT: u32 = 0x3818;
const ITR: u32 = 0x00c4;
const RXCSUM: u32 = 0x5000;
const MTA: u32 = 0x5200;
const MTA_ENTRIES: u32 = 128;
const RAL0: u32 = 0x5400;
const RAH0: u32 = 0x5404;

const CTRL_ASDE: u32 = 1 << 5;
const CTRL_SLU: u32 = 1 << 6;
const CTRL_RST: u32 = 1 << 26;
const CTRL_PHY_RST: u32 = 1 << 31;
const CTRL_LRST: u32 = 1 << 3;
const STATUS_LU: u32 = 1 << 1;
const RAH_AV: u32 = 1 << 31;
const EERD_START: u32 = 1 << 0;
const EERD_DONE: u32 = 1 << 4;

/// Interrupt causes (ICR, IMS, IMC).
pub const INT_TXDW: u32 = 1 << 0;
pub const INT_LSC: u32 = 1 << 2;
pub const INT_RXDMT0: u32 = 1 << 4;
pub const INT_RXO: u32 = 1 << 6;
pub const INT_RXT0: u32 = 1 << 7;
const INT_RX: u32 = INT_RXT0 | INT_RXO | INT_RXDMT0 | INT_LSC;
const INT_TX: u32 = INT_TXDW | INT_LSC;
/// What [`E1000::enable_interrupts`] unmasks. Not `TXDW`: a sent frame interests no one
/// unless a sender waits for a slot, which unmasks it ([`E1000::arm_tx_interrupt`]); otherwise
/// every reply would cost a second interrupt, waking a halted CPU for nothing.
pub const INT_ENABLED: u32 = INT_RXT0 | INT_RXO | INT_RXDMT0 | INT_LSC;

const RCTL_EN: u32 = 1 << 1;
const RCTL_BAM: u32 = 1 << 15;
const RCTL_BSIZE_2048: u32 = 0; // BSIZE 00 with BSEX 0
const RCTL_SECRC: u32 = 1 << 26;
const TCTL_EN: u32 = 1 << 1;
const TCTL_PSP: u32 = 1 << 3;
const TCTL_CT: u32 = 0x10 << 4;
const TCTL_COLD: u32 = 0x40 << 12; // full duplex
/// IPGT 10, IPGR1 8, IPGR2 6: the 82540EM's values for IEEE 802.3.
const TIPG_VALUE: u32 = 10 | 8 << 10 | 6 << 20;

/// RXCSUM: verify IPv4 header checksums (IPOFL) and TCP/UDP checksums (TUOFL) on receive.
const RXCSUM_IPOFL: u32 = 1 << 8;
const RXCSUM_TUOFL: u32 = 1 << 9;

// Descriptor fields.
const RX_STATUS_DD: u8 = 1 << 0;
const RX_STATUS_EOP: u8 = 1 << 1;
/// Ignore the checksum indication: the device did not check this frame's checksums.
const RX_STATUS_IXSM: u8 = 1 << 2;
/// The device checked the TCP/UDP checksum (TCPCS), the IPv4 header checksum (IPCS).
const RX_STATUS_TCPCS: u8 = 1 << 5;
const RX_STATUS_IPCS: u8 = 1 << 6;
/// Receive errors that make a frame bad: CRC/alignment (CE), symbol (SE), sequence (SEQ),
/// carrier extension (CXE), data (RXE). The checksum-offload bits (IPE, TCPE) are not frame
/// errors: they count only with IPCS/TCPCS and without IXSM ([`RxCsum`]).
const RX_ERRORS_FATAL: u8 = 0x97;
const RX_ERROR_TCPE: u8 = 1 << 5;
const RX_ERROR_IPE: u8 = 1 << 6;
const TX_CMD_EOP: u8 = 1 << 0;
const TX_CMD_IFCS: u8 = 1 << 1;
const TX_CMD_RS: u8 = 1 << 3;
/// Extended descriptor (a context or a data descriptor, not the legacy layout).
const TX_CMD_DEXT: u8 = 1 << 5;
/// DTYP in the byte before the command: 0 context, 1 data (extended descriptors only).
const TX_DTYP_DATA: u8 = 1 << 4;
const TX_STATUS_DD: u8 = 1 << 0;
/// POPTS of a data descriptor: insert the IPv4 checksum (IXSM), the TCP/UDP one (TXSM).
const TX_POPTS_IXSM: u8 = 1 << 0;
const TX_POPTS_TXSM: u8 = 1 << 1;

/// Interrupt throttling (ITR, in 256 ns units; 0: off). QEMU holds any interrupt raised
/// less than 128 us (its floor) after the last anyway, so a larger value only adds latency
/// to a lone request (measured in docs/04-network.md).
const ITR_VALUE: u32 = 0;

/// Bounded wait for the reset and EEPROM reads to finish (QEMU: at once).
const SPIN_LIMIT: u32 = 1_000_000;

/// Why a frame was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxError {
    /// Every transmit slot is in flight: wait for one ([`E1000::poll_tx_ready`],
    /// [`E1000::tx_ready`]) and try again, or use [`E1000::send`], which does.
    Full,
    /// Empty, or longer than [`MAX_FRAME`].
    BadLength,
    /// A [`TxOffload`] offset outside the frame.
    BadOffload,
}

/// One checksum the device inserts as it sends: the ones' complement sum of the frame's bytes
/// from `start` to `end` (inclusive; 0: to the end of the frame), complemented, stored
/// big-endian at `at`. The bytes at `at` are part of the sum: the caller puts there what the
/// sum must include besides (zero for IPv4, the pseudo-header's sum for TCP and UDP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Csum {
    pub start: u8,
    pub at: u8,
    pub end: u16,
}

impl Csum {
    /// Whether the sum and its place lie inside a frame of `len` bytes.
    fn fits(&self, len: usize) -> bool {
        let (start, at, end) = (self.start as usize, self.at as usize, self.end as usize);
        let last = if end == 0 { len - 1 } else { end };
        start <= at && at < last && last < len
    }
}

/// The checksums the device fills in for one frame (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxOffload {
    /// The IPv4 header checksum.
    pub ip: Option<Csum>,
    /// The TCP or UDP checksum.
    pub l4: Option<Csum>,
}

/// What the device found of a received frame's checksums: only what it checked and found
/// good (a frame it found bad never reaches the caller). Both `false` when it checked nothing
/// (QEMU's e1000 never checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCsum {
    /// The IPv4 header checksum is right.
    pub ip: bool,
    /// The TCP or UDP checksum is right.
    pub l4: bool,
}

impl RxCsum {
    /// The device's verdict from a descriptor's status and errors: `None` for a frame it
    /// found bad.
    fn from_desc(status: u8, errors: u8) -> Option<RxCsum> {
        if status & RX_STATUS_IXSM != 0 {
            return Some(RxCsum::default());
        }
        let ip = status & RX_STATUS_IPCS != 0;
        let l4 = status & RX_STATUS_TCPCS != 0;
        if (ip && errors & RX_ERROR_IPE != 0) || (l4 && errors & RX_ERROR_TCPE != 0) {
            return None;
        }
        Some(RxCsum { ip, l4 })
    }
}

/// Why the device could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The reset bit never cleared.
    ResetTimeout,
    /// DMA memory could not be allocated, or is not usable.
    NoMemory,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            InitError::ResetTimeout => "the device did not come out of reset",
            InitError::NoMemory => "no DMA memory for the rings",
        })
    }
}

/// 32-bit register access to the controller: BAR 0 on a PC ([`MmioRegs`]), a fake device in
/// the host tests. Every method may be called from interrupt context.
pub trait Regs: Send + Sync {
    fn read(&self, reg: u32) -> u32;
    fn write(&self, reg: u32, value: u32);
}

/// The registers, memory-mapped (uncached).
pub struct MmioRegs {
    base: *mut u8,
}

// SAFETY: the pointer names device registers, which any CPU context may access; the driver
// decides who writes which register.
unsafe impl Send for MmioRegs {}
// SAFETY: as above.
unsafe impl Sync for MmioRegs {}

impl MmioRegs {
    /// # Safety
    /// `base` must map (uncached) the [`MMIO_SIZE`]-byte BAR 0 of an E1000 used by no one else.
    pub unsafe fn new(base: *mut u8) -> Self {
        MmioRegs { base }
    }
}

impl Regs for MmioRegs {
    fn read(&self, reg: u32) -> u32 {
        debug_assert!((reg as u64) < MMIO_SIZE && reg.is_multiple_of(4));
        // SAFETY: an aligned register inside the window `new` was given. Only ICR's read has
        // a side effect (acknowledging the interrupt), which is what its reader wants.
        unsafe { ptr::read_volatile(self.base.add(reg as usize) as *const u32) }
    }
    fn write(&self, reg: u32, value: u32) {
        debug_assert!((reg as u64) < MMIO_SIZE && reg.is_multiple_of(4));
        // SAFETY: as in read; the driver writes only what the 82540EM manual allows.
        unsafe { ptr::write_volatile(self.base.add(reg as usize) as *mut u32, value) }
    }
}

/// One descriptor ring in DMA memory, with its buffers (`BUF_SIZE` bytes each).
struct Ring {
    descs: *mut u8,
    bufs: DmaRegion,
    len: usize,
}

impl Ring {
    fn desc(&self, i: usize) -> *mut u8 {
        assert!(i < self.len);
        // SAFETY: inside the descriptor array (checked above).
        unsafe { self.descs.add(DESC_SIZE * i) }
    }

    fn buf(&self, i: usize) -> *mut u8 {
        assert!(i < self.len);
        // SAFETY: buffer i lies inside `bufs` (allocated with len * BUF_SIZE bytes).
        unsafe { self.bufs.virt.add(BUF_SIZE * i) }
    }

    fn buf_phys(&self, i: usize) -> u64 {
        self.bufs.phys + (BUF_SIZE * i) as u64
    }

    /// Byte `off` of descriptor `i` (the device writes status bytes by DMA: volatile).
    fn read8(&self, i: usize, off: usize) -> u8 {
        // SAFETY: off < 16, inside descriptor i.
        unsafe { ptr::read_volatile(self.desc(i).add(off)) }
    }
    fn write8(&self, i: usize, off: usize, v: u8) {
        // SAFETY: as in read8.
        unsafe { ptr::write_volatile(self.desc(i).add(off), v) }
    }
    fn read16(&self, i: usize, off: usize) -> u16 {
        // SAFETY: as in read8; descriptors are 16-byte aligned and off is even.
        unsafe { ptr::read_volatile(self.desc(i).add(off) as *const u16) }
    }
    fn write16(&self, i: usize, off: usize, v: u16) {
        // SAFETY: as in read16.
        unsafe { ptr::write_volatile(self.desc(i).add(off) as *mut u16, v) }
    }
    fn write64(&self, i: usize, off: usize, v: u64) {
        // SAFETY: as in read16; off is 0 (the 8-byte aligned address field).
        unsafe { ptr::write_volatile(self.desc(i).add(off) as *mut u64, v) }
    }
}

// Descriptor field offsets (legacy receive and transmit layouts). Byte 10 of a transmit
// descriptor is CSO in the legacy layout, DTYP (high nibble) in an extended one; byte 13 is
// CSS in the legacy layout, POPTS in a data descriptor.
const D_ADDR: usize = 0;
const D_LEN: usize = 8;
const TX_DTYP: usize = 10;
const TX_CMD: usize = 11;
const D_STATUS: usize = 12;
const RX_ERRORS: usize = 13;
const TX_POPTS: usize = 13;

struct RxState {
    ring: Ring,
    /// The next descriptor the device will complete (ours to check). The ones before it, up
    /// to `RDT`, are consumed and not yet given back (see the module docs).
    next: usize,
    /// Inside a frame that spans several descriptors (too long): drop until its EOP.
    discarding: bool,
}

struct TxState {
    ring: Ring,
    /// The next descriptor to fill.
    tail: usize,
    /// What we last wrote to TDT: the descriptors from it to `tail` are filled and not yet
    /// the device's (the batch [`E1000::flush_tx`] hands over).
    pushed: usize,
    /// Descriptors filled whose DD we have not yet seen (handed over or not); the oldest is
    /// `tail - in_flight`.
    in_flight: usize,
    /// The offload context the device holds (the last context descriptor queued).
    ctx: Option<TxOffload>,
}

// SAFETY: the raw pointers point at DMA memory this driver owns for good; each state is only
// reached through its mutex.
unsafe impl Send for RxState {}
// SAFETY: as above.
unsafe impl Send for TxState {}

/// Counters, readable any time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received and handed to a consumer.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames given to the device to send.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Received frames dropped: reported erroneous by the device, empty, or longer than
    /// [`MAX_FRAME`] (spanning several descriptors).
    pub rx_dropped: u64,
    /// Transmit attempts that found the ring full.
    pub tx_full: u64,
    /// Received frames the device found with a bad IPv4 or TCP/UDP checksum (dropped; also
    /// in `rx_dropped`).
    pub rx_bad_csum: u64,
    /// Transmit context descriptors written (a change of offload offsets).
    pub tx_contexts: u64,
    /// TDT writes (batches of descriptors handed over).
    pub tx_batches: u64,
    /// Interrupts that were ours (ICR not zero).
    pub irqs: u64,
}

/// An E1000. See the module documentation.
pub struct E1000<R: Regs> {
    regs: R,
    mac: [u8; 6],
    rx: Mutex<RxState>,
    tx: Mutex<TxState>,
    rx_waker: IrqWaker,
    tx_waker: IrqWaker,
    /// Every cause seen by `handle_irq` (or-ed; for diagnostics).
    causes: AtomicU32,
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    rx_dropped: AtomicU64,
    tx_full: AtomicU64,
    rx_bad_csum: AtomicU64,
    tx_contexts: AtomicU64,
    tx_batches: AtomicU64,
    irqs: AtomicU64,
}

impl<R: Regs> E1000<R> {
    /// Reset and set up the device: read its MAC address, give it both rings, turn on the
    /// receiver and transmitter and force the link up. Interrupts stay masked until
    /// [`E1000::enable_interrupts`] (call it once `handle_irq` is wired to the line: an
    /// unacknowledged level-triggered line would storm). `alloc_dma(pages)` returns
    /// page-aligned, physically contiguous memory; it is called here only (task context).
    pub fn new(
        regs: R,
        mut alloc_dma: impl FnMut(usize) -> Option<DmaRegion>,
    ) -> Result<Self, InitError> {
        regs.write(IMC, u32::MAX);
        regs.write(CTRL, regs.read(CTRL) | CTRL_RST);
        if !spin_until(|| regs.read(CTRL) & CTRL_RST == 0) {
            return Err(InitError::ResetTimeout);
        }
        // The reset unmasks nothing, but be sure; then drop anything pending.
        regs.write(IMC, u32::MAX);
        regs.read(ICR);

        let mac = read_mac(&regs);
        let ral = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
        let rah = u16::from_le_bytes([mac[4], mac[5]]) as u32 | RAH_AV;
        regs.write(RAL0, ral);
        regs.write(RAH0, rah);
        for i in 0..MTA_ENTRIES {
            regs.write(MTA + 4 * i, 0);
        }

        let mut alloc = |bytes: usize| {
            let pages = bytes.div_ceil(PAGE);
            alloc_dma(pages).filter(|r| r.holds(bytes))
        };
        let descs = alloc(DESC_SIZE * (RX_RING + TX_RING)).ok_or(InitError::NoMemory)?;
        let rx_bufs = alloc(BUF_SIZE * RX_RING).ok_or(InitError::NoMemory)?;
        let tx_bufs = alloc(BUF_SIZE * TX_RING).ok_or(InitError::NoMemory)?;
        // SAFETY: the descriptor memory is ours and at least this long.
        unsafe { ptr::write_bytes(descs.virt, 0, DESC_SIZE * (RX_RING + TX_RING)) };
        let rx_phys = descs.phys;
        let tx_phys = descs.phys + (DESC_SIZE * RX_RING) as u64;
        let rx = Ring { descs: descs.virt, bufs: rx_bufs, len: RX_RING };
        // SAFETY: the transmit descriptors follow the receive ones in the same region.
        let tx_descs = unsafe { descs.virt.add(DESC_SIZE * RX_RING) };
        let tx = Ring { descs: tx_descs, bufs: tx_bufs, len: TX_RING };
        for i in 0..RX_RING {
            rx.write64(i, D_ADDR, rx.buf_phys(i));
        }
        for i in 0..TX_RING {
            tx.write64(i, D_ADDR, tx.buf_phys(i));
            tx.write8(i, D_STATUS, TX_STATUS_DD); // free
        }
        fence(Ordering::SeqCst);

        regs.write(RXCSUM, RXCSUM_IPOFL | RXCSUM_TUOFL);
        regs.write(ITR, ITR_VALUE);
        regs.write(RDBAL, rx_phys as u32);
        regs.write(RDBAH, (rx_phys >> 32) as u32);
        regs.write(RDLEN, (DESC_SIZE * RX_RING) as u32);
        regs.write(RDH, 0);
        regs.write(RDT, (RX_RING - 1) as u32);
        regs.write(TDBAL, tx_phys as u32);
        regs.write(TDBAH, (tx_phys >> 32) as u32);
        regs.write(TDLEN, (DESC_SIZE * TX_RING) as u32);
        regs.write(TDH, 0);
        regs.write(TDT, 0);
        regs.write(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC | RCTL_BSIZE_2048);
        regs.write(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
        regs.write(TIPG, TIPG_VALUE);
        let ctrl = regs.read(CTRL);
        regs.write(CTRL, (ctrl | CTRL_SLU | CTRL_ASDE) & !(CTRL_LRST | CTRL_PHY_RST));

        Ok(E1000 {
            regs,
            mac,
            rx: Mutex::new(Rank::NicRx, RxState { ring: rx, next: 0, discarding: false }),
            tx: Mutex::new(
                Rank::NicTx,
                TxState { ring: tx, tail: 0, pushed: 0, in_flight: 0, ctx: None },
            ),
            rx_waker: IrqWaker::new(),
            tx_waker: IrqWaker::new(),
            causes: AtomicU32::new(0),
            rx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            rx_dropped: AtomicU64::new(0),
            tx_full: AtomicU64::new(0),
            rx_bad_csum: AtomicU64::new(0),
            tx_contexts: AtomicU64::new(0),
            tx_batches: AtomicU64::new(0),
            irqs: AtomicU64::new(0),
        })
    }

    /// Unmask the receive and link interrupts ([`INT_ENABLED`]).
    pub fn enable_interrupts(&self) {
        self.regs.write(IMS, INT_ENABLED);
    }

    /// Unmask `TXDW` until the next interrupt: a sender that found the ring full calls this
    /// after registering its waker and checks the ring again afterwards (a descriptor done
    /// before the unmask may have had its cause read away by an earlier interrupt; one done
    /// after raises the interrupt). [`E1000::handle_irq`] masks it again when it fires.
    pub fn arm_tx_interrupt(&self) {
        self.regs.write(IMS, INT_TXDW);
    }

    /// The station address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the device reports the link up (STATUS.LU).
    pub fn link_up(&self) -> bool {
        self.regs.read(STATUS) & STATUS_LU != 0
    }

    pub fn stats(&self) -> Stats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            rx_packets: r(&self.rx_packets),
            rx_bytes: r(&self.rx_bytes),
            tx_packets: r(&self.tx_packets),
            tx_bytes: r(&self.tx_bytes),
            rx_dropped: r(&self.rx_dropped),
            tx_full: r(&self.tx_full),
            rx_bad_csum: r(&self.rx_bad_csum),
            tx_contexts: r(&self.tx_contexts),
            tx_batches: r(&self.tx_batches),
            irqs: r(&self.irqs),
        }
    }

    /// Every interrupt cause seen so far (or-ed ICR values).
    pub fn causes_seen(&self) -> u32 {
        self.causes.load(Ordering::Relaxed)
    }

    /// Interrupt context: acknowledge (read ICR) and wake. Returns whether the interrupt was
    /// this device's (a zero ICR: another device on a shared line).
    pub fn handle_irq(&self) -> bool {
        let icr = self.regs.read(ICR);
        if icr == 0 {
            return false;
        }
        self.irqs.fetch_add(1, Ordering::Relaxed);
        self.causes.fetch_or(icr, Ordering::Relaxed);
        if icr & INT_RX != 0 {
            self.rx_waker.wake();
        }
        if icr & INT_TX != 0 {
            if icr & INT_TXDW != 0 {
                // Armed for one wait only (see `arm_tx_interrupt`); the woken sender re-arms.
                self.regs.write(IMC, INT_TXDW);
            }
            self.tx_waker.wake();
        }
        true
    }

    // ---- transmit ----

    /// Queue `frame` (destination MAC first, no CRC) for sending, and hand it to the device
    /// at once. Returns at once: `Err(Full)` when every slot is in flight (wait with
    /// [`E1000::tx_ready`]).
    pub fn transmit(&self, frame: &[u8]) -> Result<(), TxError> {
        let r = self.queue(frame, None);
        self.flush_tx();
        r
    }

    /// Fill descriptors for `frame`, with the checksums `offload` asks the device to insert,
    /// without handing them to the device yet: [`E1000::flush_tx`] does, for the whole batch.
    /// `Err(Full)` when the frame's one or two slots are not free (flush, then wait with
    /// [`E1000::tx_ready`]).
    pub fn queue(&self, frame: &[u8], offload: Option<TxOffload>) -> Result<(), TxError> {
        if frame.is_empty() || frame.len() > MAX_FRAME {
            return Err(TxError::BadLength);
        }
        let offload = offload.filter(|o| o.ip.is_some() || o.l4.is_some());
        if let Some(o) = offload {
            if !o.ip.iter().chain(&o.l4).all(|c| c.fits(frame.len())) {
                return Err(TxError::BadOffload);
            }
        }
        let mut tx = self.tx.lock();
        reclaim(&mut tx);
        let new_ctx = offload.is_some_and(|o| tx.ctx != Some(o));
        if tx.in_flight + 1 + new_ctx as usize > TX_RING - 1 {
            self.tx_full.fetch_add(1, Ordering::Relaxed);
            return Err(TxError::Full);
        }
        if let (true, Some(o)) = (new_ctx, offload) {
            let i = tx.tail;
            write_context(&tx.ring, i, &o);
            tx.tail = (i + 1) % TX_RING;
            tx.in_flight += 1;
            tx.ctx = Some(o);
            self.tx_contexts.fetch_add(1, Ordering::Relaxed);
        }
        let i = tx.tail;
        let ring = &tx.ring;
        // SAFETY: buffer i is ours (its DD was set: reclaimed), BUF_SIZE >= MAX_FRAME.
        unsafe { ptr::copy_nonoverlapping(frame.as_ptr(), ring.buf(i), frame.len()) };
        // The slot may have held a context descriptor, which has no address.
        ring.write64(i, D_ADDR, ring.buf_phys(i));
        ring.write16(i, D_LEN, frame.len() as u16);
        ring.write8(i, D_STATUS, 0);
        match offload {
            None => {
                ring.write8(i, TX_DTYP, 0);
                ring.write8(i, TX_CMD, TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS);
                ring.write8(i, TX_POPTS, 0);
            }
            Some(o) => {
                // An extended data descriptor: length in bits 0..20, DTYP above it.
                ring.write8(i, TX_DTYP, TX_DTYP_DATA);
                ring.write8(i, TX_CMD, TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS | TX_CMD_DEXT);
                let popts = match (o.ip, o.l4) {
                    (Some(_), Some(_)) => TX_POPTS_IXSM | TX_POPTS_TXSM,
                    (Some(_), None) => TX_POPTS_IXSM,
                    _ => TX_POPTS_TXSM,
                };
                ring.write8(i, TX_POPTS, popts);
            }
        }
        tx.tail = (i + 1) % TX_RING;
        tx.in_flight += 1;
        self.tx_packets.fetch_add(1, Ordering::Relaxed);
        self.tx_bytes.fetch_add(frame.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Hand every queued descriptor to the device: one TDT write for the batch (none if
    /// nothing was queued since the last).
    pub fn flush_tx(&self) {
        let mut tx = self.tx.lock();
        if tx.pushed == tx.tail {
            return;
        }
        // Descriptors and data visible before the tail moves over them.
        fence(Ordering::SeqCst);
        tx.pushed = tx.tail;
        self.regs.write(TDT, tx.tail as u32);
        self.tx_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// Transmit descriptors free now (a frame takes one, or two with a new offload context).
    pub fn tx_room(&self) -> usize {
        let mut tx = self.tx.lock();
        reclaim(&mut tx);
        TX_RING - 1 - tx.in_flight
    }

    /// Frames handed to the device and not yet reported sent.
    pub fn tx_in_flight(&self) -> usize {
        let mut tx = self.tx.lock();
        reclaim(&mut tx);
        tx.in_flight
    }

    /// Ready when a transmit slot is free; otherwise the transmit waker is registered (the
    /// next TXDW interrupt wakes it). Deregisters when ready.
    pub fn poll_tx_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.tx_slot_free() {
            self.tx_waker.clear();
            return Poll::Ready(());
        }
        self.tx_waker.register(cx.waker());
        self.arm_tx_interrupt();
        // The device may have finished between the check and the registration.
        if self.tx_slot_free() {
            self.tx_waker.clear();
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Completes when a transmit slot is free.
    pub fn tx_ready(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.poll_tx_ready(cx))
    }

    /// [`E1000::transmit`], waiting for a free slot while the ring is full.
    pub async fn send(&self, frame: &[u8]) -> Result<(), TxError> {
        loop {
            match self.transmit(frame) {
                Err(TxError::Full) => self.tx_ready().await,
                r => return r,
            }
        }
    }

    /// Room for a frame with a new offload context (two slots): what a sender that waited
    /// may need.
    fn tx_slot_free(&self) -> bool {
        self.tx_room() >= 2
    }

    // ---- receive ----

    /// Hand the next good received frame to `f` (a slice of the DMA buffer, valid during the
    /// call; `f` must not call back into this driver's receive side). Bad descriptors on the
    /// way are dropped, counted and given back. Returns whether a frame was delivered.
    pub fn receive_one<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        self.receive_one_csum(|d, _| f(d))
    }

    /// [`E1000::receive_one`], with what the device found of the frame's checksums. A frame
    /// whose checksum the device found bad is dropped and counted (`rx_bad_csum`).
    pub fn receive_one_csum<T>(&self, f: impl FnOnce(&[u8], RxCsum) -> T) -> Option<T> {
        let mut rx = self.rx.lock();
        let mut f = Some(f);
        loop {
            let i = rx.next;
            let ring = &rx.ring;
            let status = ring.read8(i, D_STATUS);
            if status & RX_STATUS_DD == 0 {
                return None;
            }
            // Length and data are read after DD (the device writes them first).
            fence(Ordering::SeqCst);
            let len = ring.read16(i, D_LEN) as usize;
            let errors = ring.read8(i, RX_ERRORS);
            let eop = status & RX_STATUS_EOP != 0;
            let was_discarding = rx.discarding;
            let mut out = None;
            if !eop {
                // A frame longer than one buffer: never expected (no LPE); drop all of it.
                if !was_discarding {
                    self.rx_dropped.fetch_add(1, Ordering::Relaxed);
                }
                rx.discarding = true;
            } else if was_discarding {
                rx.discarding = false; // its last piece; already counted
            } else if errors & RX_ERRORS_FATAL != 0 || len == 0 || len > MAX_FRAME {
                self.rx_dropped.fetch_add(1, Ordering::Relaxed);
            } else if let Some(csum) = RxCsum::from_desc(status, errors) {
                if let Some(f) = f.take() {
                    // SAFETY: the device has finished with buffer i (DD), and will not touch
                    // it until RDT moves onto it below; len <= MAX_FRAME <= BUF_SIZE.
                    let data = unsafe { core::slice::from_raw_parts(rx.ring.buf(i), len) };
                    self.rx_packets.fetch_add(1, Ordering::Relaxed);
                    self.rx_bytes.fetch_add(len as u64, Ordering::Relaxed);
                    out = Some(f(data, csum));
                }
            } else {
                self.rx_bad_csum.fetch_add(1, Ordering::Relaxed);
                self.rx_dropped.fetch_add(1, Ordering::Relaxed);
            }
            // Done with its buffer: cleared for the device, which gets it back with the others
            // once we have caught up (the next one not done), all at once (module docs).
            rx.ring.write8(i, D_STATUS, 0);
            rx.next = (i + 1) % RX_RING;
            if rx.ring.read8(rx.next, D_STATUS) & RX_STATUS_DD == 0 {
                fence(Ordering::SeqCst);
                self.regs.write(RDT, i as u32);
            }
            if out.is_some() {
                return out;
            }
        }
    }

    /// Hand every received frame to `f`, in order; returns how many.
    pub fn receive(&self, f: &mut impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while self.receive_one(&mut *f).is_some() {
            n += 1;
        }
        n
    }

    /// The next received frame, copied out, if there is one.
    pub fn try_receive(&self) -> Option<Vec<u8>> {
        self.receive_one(|d| d.to_vec())
    }

    /// [`E1000::try_receive`], with the device's checksum verdict.
    pub fn try_receive_csum(&self) -> Option<(Vec<u8>, RxCsum)> {
        self.receive_one_csum(|d, c| (d.to_vec(), c))
    }

    /// Whether a completed receive descriptor (good or bad) is waiting.
    pub fn rx_pending(&self) -> bool {
        let rx = self.rx.lock();
        rx.ring.read8(rx.next, D_STATUS) & RX_STATUS_DD != 0
    }

    /// Ready when a received descriptor is waiting; otherwise the receive waker is registered.
    /// Deregisters when ready. For a task that then drains with [`E1000::receive`].
    pub fn poll_rx_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.rx_pending() {
            self.rx_waker.clear();
            return Poll::Ready(());
        }
        self.rx_waker.register(cx.waker());
        if self.rx_pending() {
            self.rx_waker.clear();
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// The next received frame, waiting for the receive interrupt when there is none.
    pub fn recv(&self) -> Recv<'_, R> {
        Recv { dev: self, registered: false }
    }
}

/// Future returned by [`E1000::recv`]. Deregisters its waker when done or dropped.
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, R: Regs> {
    dev: &'a E1000<R>,
    registered: bool,
}

impl<R: Regs> Future for Recv<'_, R> {
    type Output = Vec<u8>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        let dev = self.dev;
        if let Some(p) = dev.try_receive() {
            return Poll::Ready(p);
        }
        dev.rx_waker.register(cx.waker());
        self.registered = true;
        // A frame that arrived between the check and the registration woke the old waker (or
        // none): look again now that ours is in place.
        match dev.try_receive() {
            Some(p) => Poll::Ready(p),
            None => Poll::Pending,
        }
    }
}

impl<R: Regs> Drop for Recv<'_, R> {
    fn drop(&mut self) {
        if self.registered {
            self.dev.rx_waker.clear();
        }
    }
}

/// Write a transmit context descriptor (offsets of the checksums to insert) in slot `i`:
/// IPCSS, IPCSO, IPCSE, TUCSS, TUCSO, TUCSE, then the command (DEXT, RS: its DD comes back
/// like a frame's, which is how the slot is reclaimed) with DTYP 0 (context).
fn write_context(ring: &Ring, i: usize, o: &TxOffload) {
    let none = Csum { start: 0, at: 0, end: 0 };
    let (ip, l4) = (o.ip.unwrap_or(none), o.l4.unwrap_or(none));
    ring.write8(i, 0, ip.start);
    ring.write8(i, 1, ip.at);
    ring.write16(i, 2, ip.end);
    ring.write8(i, 4, l4.start);
    ring.write8(i, 5, l4.at);
    ring.write16(i, 6, l4.end);
    ring.write16(i, D_LEN, 0);
    ring.write8(i, TX_DTYP, 0);
    ring.write8(i, TX_CMD, TX_CMD_DEXT | TX_CMD_RS);
    ring.write8(i, D_STATUS, 0);
    ring.write8(i, 13, 0);
    ring.write16(i, 14, 0);
}

/// Count transmit descriptors the device has finished with (DD set), oldest first.
fn reclaim(tx: &mut TxState) {
    while tx.in_flight > 0 {
        let oldest = (tx.tail + TX_RING - tx.in_flight) % TX_RING;
        if tx.ring.read8(oldest, D_STATUS) & TX_STATUS_DD == 0 {
            break;
        }
        tx.in_flight -= 1;
    }
}

fn spin_until(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..SPIN_LIMIT {
        if cond() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

/// The MAC address: from receive-address register 0 if valid (QEMU loads it from the EEPROM
/// at reset), else from EEPROM words 0..3.
fn read_mac(regs: &impl Regs) -> [u8; 6] {
    let (ral, rah) = (regs.read(RAL0), regs.read(RAH0));
    if rah & RAH_AV != 0 && (ral != 0 || rah & 0xffff != 0) {
        let l = ral.to_le_bytes();
        let h = (rah as u16).to_le_bytes();
        return [l[0], l[1], l[2], l[3], h[0], h[1]];
    }
    let mut mac = [0u8; 6];
    for w in 0..3u32 {
        regs.write(EERD, EERD_START | w << 8);
        let mut v = 0;
        spin_until(|| {
            v = regs.read(EERD);
            v & EERD_DONE != 0
        });
        let word = ((v >> 16) as u16).to_le_bytes();
        mac[2 * w as usize] = word[0];
        mac[2 * w as usize + 1] = word[1];
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dma::fake::Memory;
    use alloc::sync::Arc;
    use std::collections::BTreeMap;
    use std::sync::Mutex as StdMutex;
    use std::vec;
    use testkit::Task;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[derive(Default)]
    struct FakeState {
        regs: BTreeMap<u32, u32>,
        /// Pending interrupt causes (read and cleared through ICR).
        icr: u32,
        /// RAL/RAH valid after reset (as QEMU does); else only the EEPROM has the MAC.
        mac_in_ral: bool,
        resets: u32,
        /// Every value written to RDT and TDT, in order.
        rdt_writes: Vec<u32>,
        tdt_writes: Vec<u32>,
        /// Frames the device sent.
        sent: Vec<Vec<u8>>,
        /// QEMU's queue in front of the device: frames that found no descriptor free, in
        /// order ([`Fake::offer`]); delivered at the next RDT write, as far as they fit.
        queue: std::collections::VecDeque<Vec<u8>>,
        /// Queued frames dropped at an RDT write for want of a descriptor (RXO).
        dropped: usize,
        /// The transmit context (IPCSS, IPCSO, IPCSE, TUCSS, TUCSO, TUCSE) the device holds,
        /// and how many context descriptors it read.
        ctx: [u16; 6],
        contexts: usize,
    }

    /// An 82540EM in memory: frames arrive and transmit descriptors are processed only when
    /// the test says so.
    struct Fake {
        mem: Arc<Memory>,
        st: StdMutex<FakeState>,
    }

    impl Fake {
        fn new(mac_in_ral: bool) -> Arc<Self> {
            Arc::new(Fake {
                mem: Arc::new(Memory::new(0x20_0000)),
                st: StdMutex::new(FakeState { mac_in_ral, ..Default::default() }),
            })
        }

        fn reg(&self, r: u32) -> u32 {
            self.st.lock().unwrap().regs.get(&r).copied().unwrap_or(0)
        }

        fn desc(&self, base_lo: u32, base_hi: u32, i: u32) -> *mut u8 {
            let base = self.reg(base_lo) as u64 | (self.reg(base_hi) as u64) << 32;
            self.mem.at(base + 16 * i as u64, 16)
        }

        /// The device receives one descriptor's worth: `data` with this status and errors.
        /// False (and RXO) when the driver has given it no descriptor.
        fn deliver_raw(&self, data: &[u8], status: u8, errors: u8) -> bool {
            let n = self.reg(RDLEN) / 16;
            let (head, tail) = (self.reg(RDH), self.reg(RDT));
            if head == tail {
                self.st.lock().unwrap().icr |= INT_RXO;
                return false;
            }
            let d = self.desc(RDBAL, RDBAH, head);
            // SAFETY: a descriptor in the driver's ring, then its buffer.
            unsafe {
                assert_eq!(*d.add(12) & RX_STATUS_DD, 0, "device given a descriptor not cleared");
                let addr = ptr::read(d as *const u64);
                let len = data.len().min(BUF_SIZE);
                ptr::copy_nonoverlapping(data.as_ptr(), self.mem.at(addr, BUF_SIZE), len);
                ptr::write(d.add(8) as *mut u16, data.len() as u16);
                *d.add(13) = errors;
                *d.add(12) = status;
            }
            let mut st = self.st.lock().unwrap();
            st.regs.insert(RDH, (head + 1) % n);
            st.icr |= INT_RXT0;
            true
        }

        fn deliver(&self, data: &[u8]) -> bool {
            self.deliver_raw(data, RX_STATUS_DD | RX_STATUS_EOP, 0)
        }

        /// A frame from QEMU's network: delivered if a descriptor is free and nothing is
        /// queued before it, else queued.
        fn offer(&self, data: &[u8]) {
            let queued = !self.st.lock().unwrap().queue.is_empty();
            if queued || !self.deliver(data) {
                let mut st = self.st.lock().unwrap();
                st.icr &= !INT_RXO; // only waiting, not lost
                st.queue.push_back(data.to_vec());
            }
        }

        /// What QEMU's e1000 does after an RDT write: deliver the whole queue, dropping the
        /// frames that find no descriptor (its receive returns -1 on overrun, and the queue
        /// discards them).
        fn flush(&self) {
            let queue = core::mem::take(&mut self.st.lock().unwrap().queue);
            for f in queue {
                if !self.deliver(&f) {
                    self.st.lock().unwrap().dropped += 1;
                }
            }
        }

        /// The device sends every descriptor from TDH to TDT, as QEMU's e1000 does: a
        /// context descriptor sets the offsets, a data descriptor's POPTS inserts the TCP/UDP
        /// then the IPv4 checksum. Returns how many frames.
        fn send_all(&self) -> usize {
            let n = self.reg(TDLEN) / 16;
            let mut count = 0;
            while self.reg(TDH) != self.reg(TDT) {
                let head = self.reg(TDH);
                let d = self.desc(TDBAL, TDBAH, head);
                // SAFETY: a descriptor in the driver's ring, then its buffer.
                let (cmd, dtyp, popts, addr, len) = unsafe {
                    let cmd = *d.add(11);
                    assert_ne!(cmd & TX_CMD_RS, 0, "every descriptor reports its DD");
                    let w = |o: usize| ptr::read(d.add(o) as *const u16);
                    let len = w(8) as usize | (*d.add(10) as usize & 0xf) << 16;
                    (cmd, *d.add(10) >> 4, *d.add(13), ptr::read(d as *const u64), len)
                };
                let mut st = self.st.lock().unwrap();
                if cmd & TX_CMD_DEXT != 0 && dtyp == 0 {
                    // SAFETY: as above.
                    let b = |o: usize| unsafe { *d.add(o) } as u16;
                    // SAFETY: as above.
                    let w = |o: usize| unsafe { ptr::read(d.add(o) as *const u16) };
                    st.ctx = [b(0), b(1), w(2), b(4), b(5), w(6)];
                    st.contexts += 1;
                } else {
                    // SAFETY: the data descriptor's buffer.
                    let mut frame =
                        unsafe { std::slice::from_raw_parts(self.mem.at(addr, len), len) }.to_vec();
                    if cmd & TX_CMD_DEXT != 0 {
                        assert_eq!(dtyp, 1, "a data descriptor");
                        assert_eq!(cmd, TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS | TX_CMD_DEXT);
                        let c = st.ctx;
                        if popts & TX_POPTS_TXSM != 0 {
                            putsum(&mut frame, c[4], c[3], c[5]);
                        }
                        if popts & TX_POPTS_IXSM != 0 {
                            putsum(&mut frame, c[1], c[0], c[2]);
                        }
                    } else {
                        assert_eq!(cmd, TX_CMD_EOP | TX_CMD_IFCS | TX_CMD_RS);
                        assert_eq!((dtyp, popts), (0, 0), "legacy CSO and CSS unused");
                    }
                    st.sent.push(frame);
                    count += 1;
                }
                // SAFETY: the descriptor's status byte.
                unsafe { *d.add(12) |= TX_STATUS_DD };
                st.regs.insert(TDH, (head + 1) % n);
                st.icr |= INT_TXDW;
            }
            count
        }
    }

    /// Ones' complement sum of `data` (big-endian 16-bit words), not folded.
    fn sum(data: &[u8]) -> u32 {
        data.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum()
    }

    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// QEMU's `putsum`: the complemented sum of bytes `css..=cse` (0: to the end), stored at
    /// `cso` (0xffff for a zero).
    fn putsum(f: &mut [u8], cso: u16, css: u16, cse: u16) {
        let end = if cse == 0 { f.len() } else { cse as usize + 1 };
        let c = match !fold(sum(&f[css as usize..end])) {
            0 => 0xffff,
            c => c,
        };
        f[cso as usize..cso as usize + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// An Ethernet frame with an IPv4 header (checksum zero) and a TCP (6) or UDP (17)
    /// segment carrying `payload`, its checksum seeded with the pseudo-header's sum, as a
    /// caller that offloads prepares it; with the offsets to ask for.
    fn ip_frame(proto: u8, payload: &[u8]) -> (Vec<u8>, TxOffload) {
        let l4_hdr = if proto == 6 { 20 } else { 8 };
        let l4_len = l4_hdr + payload.len();
        let mut f = vec![0u8; 14 + 20];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[10, 0, 2, 15]);
        f[30..34].copy_from_slice(&[10, 0, 2, 2]);
        let mut l4 = vec![0u8; l4_hdr];
        l4[0..4].copy_from_slice(&[0x1f, 0x90, 0xc3, 0x50]);
        if proto == 6 {
            l4[12] = 5 << 4;
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        l4.extend_from_slice(payload);
        let at = if proto == 6 { 16 } else { 6 };
        let pseudo = fold(sum(&f[26..34]) + proto as u32 + l4_len as u32);
        l4[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
        f.extend_from_slice(&l4);
        let ip = Csum { start: 14, at: 24, end: 33 };
        let l4 = Csum { start: 34, at: 34 + at as u8, end: 0 };
        (f, TxOffload { ip: Some(ip), l4: Some(l4) })
    }

    /// Whether the IPv4 header and TCP/UDP checksums of `f` verify (as a receiver checks).
    fn checksums_verify(f: &[u8]) -> bool {
        let l4 = &f[34..];
        let pseudo = sum(&f[26..34]) + f[23] as u32 + l4.len() as u32;
        fold(sum(&f[14..34])) == 0xffff && fold(pseudo + sum(l4)) == 0xffff
    }

    struct FakeRegs(Arc<Fake>);

    impl Regs for FakeRegs {
        fn read(&self, reg: u32) -> u32 {
            let mut st = self.0.st.lock().unwrap();
            match reg {
                ICR => core::mem::take(&mut st.icr),
                STATUS => STATUS_LU,
                EERD => {
                    let v = st.regs.get(&EERD).copied().unwrap_or(0);
                    let word = match (v >> 8) & 0xff {
                        w @ 0..=2 => {
                            u16::from_le_bytes([MAC[2 * w as usize], MAC[2 * w as usize + 1]])
                        }
                        _ => 0xffff,
                    };
                    EERD_DONE | (word as u32) << 16 | (v & 0xff00)
                }
                _ => st.regs.get(&reg).copied().unwrap_or(0),
            }
        }
        fn write(&self, reg: u32, value: u32) {
            let mut st = self.0.st.lock().unwrap();
            match reg {
                CTRL if value & CTRL_RST != 0 => {
                    st.resets += 1;
                    st.regs.clear();
                    st.icr = 0;
                    if st.mac_in_ral {
                        st.regs.insert(RAL0, u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]));
                        st.regs.insert(RAH0, u16::from_le_bytes([MAC[4], MAC[5]]) as u32 | RAH_AV);
                    }
                }
                IMS => *st.regs.entry(IMS).or_default() |= value,
                IMC => *st.regs.entry(IMS).or_default() &= !value,
                RDT => {
                    st.rdt_writes.push(value);
                    st.regs.insert(RDT, value);
                    drop(st);
                    self.0.flush();
                }
                TDT => {
                    st.tdt_writes.push(value);
                    st.regs.insert(TDT, value);
                }
                _ => {
                    st.regs.insert(reg, value);
                }
            }
        }
    }

    fn device() -> (Arc<Fake>, E1000<FakeRegs>) {
        device_with(true)
    }

    fn device_with(mac_in_ral: bool) -> (Arc<Fake>, E1000<FakeRegs>) {
        let fake = Fake::new(mac_in_ral);
        let mem = fake.mem.clone();
        let dev = E1000::new(FakeRegs(fake.clone()), |pages| mem.alloc(pages)).unwrap();
        dev.enable_interrupts();
        (fake, dev)
    }

    /// A frame of `len` bytes whose content depends on `seed`.
    fn frame(seed: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u32).wrapping_mul(7).wrapping_add(seed) as u8).collect()
    }

    #[test]
    fn setup_programs_the_device() {
        let fake = Fake::new(true);
        let mem = fake.mem.clone();
        let dev = E1000::new(FakeRegs(fake.clone()), |pages| mem.alloc(pages)).unwrap();
        assert_eq!(fake.st.lock().unwrap().resets, 1);
        assert_eq!(dev.mac(), MAC);
        assert_eq!(fake.reg(IMS), 0, "interrupts masked until enable_interrupts");
        assert_eq!(fake.reg(RCTL), RCTL_EN | RCTL_BAM | RCTL_SECRC | RCTL_BSIZE_2048);
        assert_eq!(fake.reg(TCTL), TCTL_EN | TCTL_PSP | 0x10 << 4 | 0x40 << 12);
        assert_eq!(fake.reg(TIPG), 10 | 8 << 10 | 6 << 20);
        assert_ne!(fake.reg(CTRL) & CTRL_SLU, 0, "link forced up");
        assert_eq!((fake.reg(RDLEN), fake.reg(TDLEN)), (16 * RX_RING as u32, 16 * 32));
        assert_eq!((fake.reg(RDH), fake.reg(RDT)), (0, RX_RING as u32 - 1));
        assert_eq!((fake.reg(TDH), fake.reg(TDT)), (0, 0));
        assert_eq!(fake.reg(RDBAL) % 16, 0);
        assert_eq!(fake.reg(RDBAL) as u64, fake.mem.regions()[0].phys);
        assert_eq!(fake.reg(TDBAL), fake.reg(RDBAL) + 16 * RX_RING as u32);
        assert_eq!(fake.reg(RAH0) & RAH_AV, RAH_AV);
        assert_eq!(fake.reg(RXCSUM), RXCSUM_IPOFL | RXCSUM_TUOFL, "receive checksums checked");
        dev.enable_interrupts();
        assert_eq!(fake.reg(IMS), INT_RXT0 | INT_RXO | INT_RXDMT0 | INT_LSC, "not TXDW");
        assert!(dev.link_up());
    }

    #[test]
    fn mac_from_the_eeprom_when_ral_is_empty() {
        let (fake, dev) = device_with(false);
        assert_eq!(dev.mac(), MAC);
        // And programmed into RAL/RAH so that the device accepts frames for it.
        assert_eq!(fake.reg(RAL0), u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]]));
        assert_eq!(fake.reg(RAH0), 0x5634 | RAH_AV);
    }

    #[test]
    fn handle_irq_is_false_when_icr_is_zero() {
        let (fake, dev) = device();
        let mut t = Task::new(dev.recv());
        assert!(!t.poll());
        assert!(!dev.handle_irq(), "nothing pending: another device's interrupt");
        assert!(!t.woken());
        assert_eq!(dev.stats().irqs, 0);
        fake.st.lock().unwrap().icr = INT_LSC;
        assert!(dev.handle_irq());
        assert!(t.woken(), "a link change wakes the receiver");
        assert!(!dev.handle_irq(), "reading ICR acknowledged it");
        assert_eq!(dev.stats().irqs, 1);
    }

    #[test]
    fn receive_hands_frames_back_in_order_and_moves_rdt() {
        let (fake, dev) = device();
        for s in 0..3 {
            assert!(fake.deliver(&frame(s, 60 + s as usize)));
        }
        let mut got = Vec::new();
        assert_eq!(dev.receive(&mut |f: &[u8]| got.push(f.to_vec())), 3);
        assert_eq!(got, (0..3).map(|s| frame(s, 60 + s as usize)).collect::<Vec<_>>());
        let rdt = RX_RING as u32 - 1;
        assert_eq!(fake.st.lock().unwrap().rdt_writes, [rdt, 2], "set up, then once caught up");
        assert!(dev.try_receive().is_none());
        let s = dev.stats();
        assert_eq!((s.rx_packets, s.rx_bytes, s.rx_dropped), (3, 60 + 61 + 62, 0));
    }

    #[test]
    fn receive_ring_wraps_around_and_overflows_without_loss_of_order() {
        let (fake, dev) = device();
        // One at a time, around the ring three times.
        for s in 0..100 {
            assert!(fake.deliver(&frame(s, 100)));
            assert_eq!(dev.try_receive(), Some(frame(s, 100)), "frame {s}");
            assert_eq!(fake.reg(RDT), s % RX_RING as u32);
        }
        // The device owns all descriptors but one: the next frame finds none (RXO), lost.
        let owned = RX_RING as u32 - 1;
        for s in 0..owned {
            assert!(fake.deliver(&frame(1000 + s, 64)), "frame {s}");
        }
        assert!(!fake.deliver(&frame(9999, 64)));
        assert!(dev.handle_irq());
        assert_ne!(dev.causes_seen() & INT_RXO, 0);
        let mut got = Vec::new();
        assert_eq!(dev.receive(&mut |f: &[u8]| got.push(f.to_vec())), owned as usize);
        assert_eq!(got, (0..owned).map(|s| frame(1000 + s, 64)).collect::<Vec<_>>());
        // Every descriptor is back with the device.
        for s in 0..owned {
            assert!(fake.deliver(&frame(s, 64)));
        }
        assert_eq!(dev.receive(&mut |_: &[u8]| {}), owned as usize);
        assert_eq!(dev.stats().rx_packets, 100 + 2 * owned as u64);
    }

    #[test]
    fn bad_frames_are_dropped_counted_and_given_back() {
        let (fake, dev) = device();
        let dd_eop = RX_STATUS_DD | RX_STATUS_EOP;
        fake.deliver(&frame(1, 60));
        fake.deliver_raw(&frame(2, 60), dd_eop, 0x01); // CRC error
        fake.deliver_raw(&frame(3, 1600), dd_eop, 0); // longer than MAX_FRAME
        fake.deliver_raw(&[], dd_eop, 0); // empty
        fake.deliver_raw(&frame(4, 2048), RX_STATUS_DD, 0); // one frame over two buffers
        fake.deliver_raw(&frame(5, 100), dd_eop, 0);
        fake.deliver_raw(&frame(6, 60), dd_eop, 0x20); // TCPE without TCPCS: not a verdict
        fake.deliver(&frame(7, MAX_FRAME));
        let mut got = Vec::new();
        assert_eq!(dev.receive(&mut |f: &[u8]| got.push(f.to_vec())), 3);
        assert_eq!(got, [frame(1, 60), frame(6, 60), frame(7, MAX_FRAME)]);
        let s = dev.stats();
        assert_eq!((s.rx_packets, s.rx_dropped), (3, 4), "the two-buffer frame counts once");
        assert_eq!(fake.st.lock().unwrap().rdt_writes[1..], [7], "all given back at once");
    }

    /// A burst larger than the ring while the driver is busy: QEMU queues what finds no
    /// descriptor and delivers its whole queue at the next RDT write, dropping what does not
    /// fit then. The descriptors drained go back together, so the queue fits and no frame is
    /// lost. (Given back one per frame, all queued frames but one were dropped.)
    #[test]
    fn a_burst_beyond_the_ring_waits_in_the_device_queue_and_none_is_lost() {
        let (fake, dev) = device();
        let burst = RX_RING as u32 - 1 + 100;
        for s in 0..burst {
            fake.offer(&frame(s, 64));
        }
        assert_eq!(fake.st.lock().unwrap().queue.len(), 100, "the ring is full");
        let mut got = Vec::new();
        // The network task takes one frame at a time, doing other work in between.
        while let Some(f) = dev.try_receive() {
            got.push(f);
        }
        assert_eq!(fake.st.lock().unwrap().dropped, 0, "frames dropped at an RDT write");
        assert_eq!(got.len(), burst as usize);
        assert!(got.iter().zip(0..).all(|(f, s)| *f == frame(s, 64)), "in order");
        assert!(fake.st.lock().unwrap().queue.is_empty());
        // A frame that comes later finds a descriptor at once.
        fake.offer(&frame(7, 64));
        assert_eq!(dev.try_receive(), Some(frame(7, 64)));
    }

    #[test]
    fn transmit_moves_tdt_and_wraps_around() {
        let (fake, dev) = device();
        for s in 0..100u32 {
            dev.transmit(&frame(s, 60 + (s as usize % 50))).unwrap();
            assert_eq!(fake.reg(TDT), (s + 1) % TX_RING as u32);
            assert_eq!(fake.send_all(), 1);
        }
        let st = fake.st.lock().unwrap();
        assert_eq!(st.sent.len(), 100);
        for (s, f) in st.sent.iter().enumerate() {
            assert_eq!(*f, frame(s as u32, 60 + s % 50));
        }
        drop(st);
        assert_eq!(dev.tx_in_flight(), 0);
        assert_eq!(dev.stats().tx_packets, 100);
        assert_eq!(dev.transmit(&[]), Err(TxError::BadLength));
        assert_eq!(dev.transmit(&frame(0, MAX_FRAME + 1)), Err(TxError::BadLength));
        dev.transmit(&frame(0, MAX_FRAME)).unwrap();
    }

    #[test]
    fn full_transmit_ring_is_an_error_until_the_device_sends() {
        let (fake, dev) = device();
        for s in 0..TX_RING as u32 - 1 {
            dev.transmit(&frame(s, 64)).unwrap();
        }
        assert_eq!(dev.transmit(&frame(99, 64)), Err(TxError::Full));
        assert_eq!(dev.stats().tx_full, 1);
        assert_eq!(fake.reg(TDT), TX_RING as u32 - 1, "TDT never catches up with TDH");
        dev.enable_interrupts();
        assert_eq!(fake.reg(IMS) & INT_TXDW, 0, "no one waits: sent frames raise nothing");
        // A sender waits for a slot: woken by the TXDW interrupt, not before.
        let mut t = Task::new(dev.send(&[0xaa; 64]));
        assert!(!t.poll());
        assert_eq!(fake.reg(IMS) & INT_TXDW, INT_TXDW, "armed while a sender waits");
        assert_eq!(dev.stats().tx_full, 2);
        assert_eq!(fake.send_all(), 31);
        assert!(!t.woken(), "the device alone does not wake: the interrupt does");
        assert!(dev.handle_irq());
        assert_eq!(fake.reg(IMS) & INT_TXDW, 0, "masked again by the interrupt it raised");
        assert!(t.woken());
        assert!(t.poll());
        assert_eq!(t.result, Some(Ok(())));
        assert_eq!(fake.send_all(), 1);
        assert_eq!(fake.st.lock().unwrap().sent.last().unwrap(), &vec![0xaa; 64]);
        let flag = t.wakes.clone();
        drop(t);
        assert_eq!(Arc::strong_count(&flag), 1, "no waker kept after the wait");
    }

    #[test]
    fn offloaded_checksums_are_inserted_and_a_context_is_written_only_when_it_changes() {
        let (fake, dev) = device();
        let (tcp, tcp_off) = ip_frame(6, b"GET / HTTP/1.0\r\n\r\n");
        let (tcp2, _) = ip_frame(6, &[0x55; 1000]);
        let (udp, udp_off) = ip_frame(17, b"odd"); // an odd length: the last byte padded
        for (f, o) in [(&tcp, tcp_off), (&tcp2, tcp_off), (&udp, udp_off), (&tcp, tcp_off)] {
            assert!(!checksums_verify(f), "the caller leaves the sums to the device");
            dev.queue(f, Some(o)).unwrap();
        }
        dev.queue(&frame(1, 60), None).unwrap(); // ARP, say: a legacy descriptor
        assert_eq!(fake.st.lock().unwrap().tdt_writes, [0], "nothing handed over (set up: 0)");
        dev.flush_tx();
        // TCP context, 2 frames, UDP context, 1 frame, TCP context, 1 frame, 1 plain frame.
        assert_eq!(fake.st.lock().unwrap().tdt_writes, [0, 8], "one TDT write for the batch");
        assert_eq!(fake.send_all(), 5);
        let st = fake.st.lock().unwrap();
        assert_eq!(st.contexts, 3);
        assert!(st.sent[..4].iter().all(|f| checksums_verify(f)), "every sum right");
        assert_eq!(st.sent[4], frame(1, 60));
        drop(st);
        assert_eq!(dev.tx_in_flight(), 0);
        let s = dev.stats();
        assert_eq!((s.tx_packets, s.tx_contexts, s.tx_batches), (5, 3, 1));
        // The same context again: no context descriptor; only the IPv4 sum: another.
        dev.transmit(&tcp).unwrap_or_else(|e| panic!("{e:?}"));
        dev.queue(&tcp, Some(tcp_off)).unwrap();
        dev.queue(&tcp, Some(TxOffload { ip: tcp_off.ip, l4: None })).unwrap();
        dev.flush_tx();
        dev.flush_tx(); // nothing new: no write
        assert_eq!(fake.send_all(), 3);
        let st = fake.st.lock().unwrap();
        assert_eq!((st.contexts, &st.tdt_writes[2..]), (4, &[9, 12][..]));
        assert!(checksums_verify(&st.sent[6]));
        assert_eq!(fold(sum(&st.sent[7][14..34])), 0xffff, "the IPv4 sum alone");
        assert!(!checksums_verify(&st.sent[7]), "TCP's left as it was");
    }

    #[test]
    fn offsets_outside_the_frame_are_refused() {
        let (fake, dev) = device();
        let (f, o) = ip_frame(6, b"x");
        let bad = |c: Csum| TxOffload { ip: None, l4: Some(c) };
        let len = f.len() as u16;
        for c in [
            Csum { start: 34, at: len as u8 - 1, end: 0 }, // the sum's 2 bytes past the end
            Csum { start: 34, at: 50, end: len },          // the end past the frame
            Csum { start: 51, at: 50, end: 0 },            // stored before its start
        ] {
            assert_eq!(dev.queue(&f, Some(bad(c))), Err(TxError::BadOffload), "{c:?}");
        }
        dev.queue(&f, Some(o)).unwrap();
        // Nothing offloaded is nothing to offload: a legacy descriptor.
        dev.queue(&f, Some(TxOffload::default())).unwrap();
        dev.flush_tx();
        assert_eq!(fake.send_all(), 2);
        assert_eq!(fake.st.lock().unwrap().contexts, 1);
    }

    #[test]
    fn a_new_context_needs_its_own_slot() {
        let (fake, dev) = device();
        let (tcp, tcp_off) = ip_frame(6, b"x");
        let (udp, udp_off) = ip_frame(17, b"y");
        // TCP's context and 29 frames: one slot left of the 31 the device may hold.
        for _ in 0..TX_RING - 3 {
            dev.queue(&tcp, Some(tcp_off)).unwrap();
        }
        assert_eq!(dev.tx_room(), 1);
        assert_eq!(dev.queue(&udp, Some(udp_off)), Err(TxError::Full), "UDP's context and it");
        dev.queue(&tcp, Some(tcp_off)).unwrap();
        assert_eq!(dev.queue(&tcp, Some(tcp_off)), Err(TxError::Full));
        dev.flush_tx();
        assert_eq!(fake.send_all(), TX_RING - 2);
        assert_eq!(dev.tx_room(), TX_RING - 1);
        dev.queue(&udp, Some(udp_off)).unwrap();
        dev.flush_tx();
        assert_eq!(fake.send_all(), 1);
        assert!(fake.st.lock().unwrap().sent.iter().all(|f| checksums_verify(f)));
        // A slot that held a context descriptor carries a frame again, to the right buffer.
        for s in 0..TX_RING as u32 {
            dev.transmit(&frame(s, 64)).unwrap();
            assert_eq!(fake.send_all(), 1);
            assert_eq!(fake.st.lock().unwrap().sent.last(), Some(&frame(s, 64)));
        }
    }

    #[test]
    fn the_devices_receive_checksum_verdict_is_honoured() {
        let (fake, dev) = device();
        let dd_eop = RX_STATUS_DD | RX_STATUS_EOP;
        let (ixsm, ipcs, tcpcs) = (RX_STATUS_IXSM, RX_STATUS_IPCS, RX_STATUS_TCPCS);
        let cases: [(u8, u8, Option<RxCsum>); 7] = [
            (ixsm, 0, Some(RxCsum::default())), // not checked (QEMU)
            (ipcs | tcpcs, 0, Some(RxCsum { ip: true, l4: true })),
            (ipcs, 0, Some(RxCsum { ip: true, l4: false })), // not TCP or UDP
            (ipcs | tcpcs, RX_ERROR_IPE, None),
            (ipcs | tcpcs, RX_ERROR_TCPE, None),
            (ipcs, RX_ERROR_TCPE, Some(RxCsum { ip: true, l4: false })), // TCPE not checked
            (ixsm | ipcs | tcpcs, RX_ERROR_IPE | RX_ERROR_TCPE, Some(RxCsum::default())),
        ];
        for (s, (status, errors, _)) in cases.iter().enumerate() {
            fake.deliver_raw(&frame(s as u32, 60), dd_eop | status, *errors);
        }
        let mut got = Vec::new();
        while let Some((f, c)) = dev.try_receive_csum() {
            got.push((f, c));
        }
        let want: Vec<(Vec<u8>, RxCsum)> = (cases.iter().enumerate())
            .filter_map(|(s, (_, _, c))| Some((frame(s as u32, 60), (*c)?)))
            .collect();
        assert_eq!(got, want);
        let s = dev.stats();
        assert_eq!((s.rx_packets, s.rx_dropped, s.rx_bad_csum), (5, 2, 2));
        assert_eq!(fake.st.lock().unwrap().rdt_writes[1..], [6], "the bad ones given back too");
    }

    #[test]
    fn recv_waits_for_the_interrupt_and_keeps_no_waker() {
        let (fake, dev) = device();
        let mut t = Task::new(dev.recv());
        assert!(!t.poll());
        fake.deliver(&frame(5, 80));
        assert!(!t.woken());
        assert!(dev.handle_irq());
        assert!(t.woken());
        assert!(t.poll());
        assert_eq!(t.result, Some(frame(5, 80)));
        let flag = t.wakes.clone();
        drop(t);
        assert_eq!(Arc::strong_count(&flag), 1, "the driver holds no waker after Ready");
        // A frame already there: ready at once, nothing registered.
        fake.deliver(&frame(6, 80));
        let mut t = Task::new(dev.recv());
        assert!(t.poll());
        assert_eq!(t.result, Some(frame(6, 80)));
        // A wait abandoned (a timeout): the waker goes with the future.
        let mut t = Task::new(dev.recv());
        assert!(!t.poll());
        let flag = t.wakes.clone();
        drop(t);
        assert_eq!(Arc::strong_count(&flag), 1, "a dropped recv deregisters");
        fake.deliver(&frame(7, 80));
        assert!(dev.handle_irq());
        assert_eq!(dev.try_receive(), Some(frame(7, 80)));
    }

    #[test]
    fn poll_rx_ready_then_drain() {
        let (fake, dev) = device();
        let mut t = Task::new(poll_fn(|cx| dev.poll_rx_ready(cx)));
        assert!(!t.poll());
        fake.deliver(&frame(1, 60));
        fake.deliver_raw(&frame(2, 60), RX_STATUS_DD | RX_STATUS_EOP, 0x80);
        assert!(dev.handle_irq() && t.woken() && t.poll());
        assert_eq!(dev.receive(&mut |_: &[u8]| {}), 1);
        assert!(!dev.rx_pending());
        assert_eq!(dev.stats().rx_dropped, 1);
    }

    #[test]
    fn futures_are_send_and_the_device_is_sync() {
        fn send<T: Send>(_: &T) {}
        fn sync<T: Sync>(_: &T) {}
        let (_fake, dev) = device();
        send(&dev.recv());
        send(&dev.send(&[1, 2, 3]));
        send(&dev.tx_ready());
        sync(&dev);
    }
}
