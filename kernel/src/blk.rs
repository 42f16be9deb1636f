//! The disk: the first virtio block device on the PCI bus, as one global [`Disk`].
//!
//! [`init`] finds the device (PCI 1af4:1001, legacy/transitional virtio-blk), turns on I/O
//! decoding and bus mastering, gives the driver DMA memory (`mm::dma`), and routes the
//! device's interrupt line to [`handle_irq`]. [`disk`] returns the device, or `None` when the
//! machine has no disk; the kernel boots either way.
//!
//! The driver proper is `drivers::virtio_blk`: requests are futures, several may be in flight,
//! a run of contiguous blocks travels as one request, and the interrupt handler only
//! acknowledges the device and wakes the waiting requests.

use crate::acpi::Madt;
use crate::kprintln;
use conquer_once::noblock::OnceCell;
use core::sync::atomic::{AtomicBool, Ordering};
use drivers::pci::{self, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, COMMAND_IO};
use drivers::virtio_blk::{self, PortRegs, VirtioBlk};

pub use drivers::virtio_blk::IoError;

/// Bytes per block: the file system's block, 8 of the device's 512-byte sectors.
pub const BLOCK_SIZE: usize = virtio_blk::BLOCK_SIZE;

/// A virtio block device, in 4096-byte blocks. The shape of the file system's `BlockDevice`.
pub struct Disk {
    dev: VirtioBlk<PortRegs>,
    pub pci: pci::Address,
}

/// Set once by [`init`] (task context), read by the interrupt handler: a `noblock` cell, whose
/// reads never wait (a handler that finds it still being set treats the interrupt as not
/// its device's).
static DISK: OnceCell<Disk> = OnceCell::uninit();
static ROUTED: AtomicBool = AtomicBool::new(false);

/// The disk, if the machine has one (after [`init`]).
pub fn disk() -> Option<&'static Disk> {
    DISK.try_get().ok().filter(|_| ROUTED.load(Ordering::Acquire))
}

impl Disk {
    /// Read block `block`. Completes when the device has answered (woken by its interrupt).
    /// A block past the end is `Err(OutOfRange)` without a device request; a device failure is
    /// `Err(Device)`.
    pub async fn read(&self, block: u32, buf: &mut [u8; BLOCK_SIZE]) -> Result<(), IoError> {
        self.dev.read_block(block, buf).await
    }

    /// Write block `block`. The write has reached the disk when the future completes: the
    /// device reported it done, and QEMU has written it to the image file (see `flush`).
    pub async fn write(&self, block: u32, buf: &[u8; BLOCK_SIZE]) -> Result<(), IoError> {
        self.dev.write_block(block, buf).await
    }

    /// Read the run of blocks `start, start + 1, ...` into `bufs`: one device request per
    /// `max_run` blocks (all of them in flight together) instead of one per block. A run
    /// reaching past the end is `Err(OutOfRange)` with no request made.
    pub async fn read_run(
        &self,
        start: u32,
        bufs: &mut [&mut [u8; BLOCK_SIZE]],
    ) -> Result<(), IoError> {
        self.dev.read_blocks(start, bufs).await
    }

    /// Write `bufs` to the run of blocks `start, start + 1, ...`, as [`Disk::read_run`] reads.
    /// Every block has reached the disk when the future completes; after an error, any part
    /// of the run may have.
    pub async fn write_run(&self, start: u32, bufs: &[&[u8; BLOCK_SIZE]]) -> Result<(), IoError> {
        self.dev.write_blocks(start, bufs).await
    }

    /// Number of blocks.
    pub fn block_count(&self) -> u32 {
        self.dev.block_count()
    }

    /// Ask the device to make completed writes durable on the host's storage (an fsync of the
    /// image file). Completed writes are already in the image file without it; only a host
    /// crash could lose them.
    pub async fn flush(&self) -> Result<(), IoError> {
        self.dev.flush().await
    }

    /// The driver itself (statistics, raw requests for the self test).
    pub fn driver(&self) -> &VirtioBlk<PortRegs> {
        &self.dev
    }
}

/// Interrupt context (registered on the device's line): acknowledge and wake.
fn handle_irq() {
    if let Ok(d) = DISK.try_get() {
        d.dev.handle_irq();
    }
}

/// Find and start the disk, if there is one. Task context, after the APIC is up.
pub fn init(madt: &Madt) {
    let cfg = crate::pci::config();
    let Some(dev) = crate::pci::devices()
        .iter()
        .find(|d| d.is(virtio_blk::VENDOR_ID, virtio_blk::DEVICE_ID_LEGACY_BLOCK))
    else {
        return;
    };
    let (Some(port), Some(line)) = (dev.bars[0].and_then(|b| b.io_port()), dev.irq_line()) else {
        kprintln!("disk: {dev}: no I/O BAR 0 or no interrupt line; not used");
        return;
    };
    // I/O decoding for the registers, bus mastering for DMA, INTx on.
    dev.update_command(cfg, COMMAND_IO | COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE);
    // SAFETY: BAR 0 of this virtio device, which nothing else in the kernel drives.
    let regs = unsafe { PortRegs::new(port) };
    let blk = match VirtioBlk::new(regs, crate::mm::dma::alloc) {
        Ok(b) => b,
        Err(e) => {
            kprintln!("disk: {dev}: {e}");
            return;
        }
    };
    // The handler finds the device through DISK, so DISK is set before the line is routed;
    // `disk()` hands it out only once its interrupts arrive.
    if DISK.try_init_once(|| Disk { dev: blk, pci: dev.address }).is_err() {
        kprintln!("disk: {dev}: a disk was started already; not used");
        return;
    }
    let Ok(disk) = DISK.try_get() else { return };
    if let Err(e) = crate::pci::register_irq(madt, line, handle_irq) {
        kprintln!("disk: {dev}: irq {line}: {e}; not used");
        return;
    }
    ROUTED.store(true, Ordering::Release);
    let d = &disk.dev;
    kprintln!(
        "disk: virtio-blk at {}, {} blocks ({} MiB){}, irq {}, {} requests in flight at most, \
         {} blocks per request",
        disk.pci,
        d.block_count(),
        d.capacity_sectors() / 2048,
        if d.read_only() { ", read-only" } else { "" },
        line,
        d.slots(),
        d.max_run()
    );
}
