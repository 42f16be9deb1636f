//! COM1, the 16550 UART at I/O port 0x3f8: polled transmit, interrupt-driven receive.
//!
//! Transmit goes through the `uart_16550` crate under a lock held by the printing code.
//! Receive happens in the IRQ 4 handler, which reads the RX registers directly (no lock:
//! reading RBR/LSR does not disturb a transmit in progress) and pushes bytes into [`RX`];
//! one task reads them, as a stream ([`input`]) or one at a time.

use runtime::irq::{IrqQueue, IrqStream};
use uart_16550::spec::registers::IER;
use uart_16550::{backend::PioBackend, Config, Uart16550};
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const REG_DATA: u16 = 0;
const REG_MCR: u16 = 4;
const REG_LSR: u16 = 5;
const LSR_DATA_READY: u8 = 1;
const MCR_LOOPBACK: u8 = 1 << 4;

/// Bytes received on COM1, filled by [`handle_irq`], drained by one console task.
pub static RX: IrqQueue<u8, 512> = IrqQueue::new();

/// The bytes received on COM1, as a stream. One consumer at a time (task context).
pub fn input() -> IrqStream<'static, u8, 512> {
    RX.stream()
}

pub struct Serial {
    uart: Uart16550<PioBackend>,
}

impl Serial {
    /// Initialise COM1 (115200 8N1, FIFO on, receive interrupt enabled).
    ///
    /// # Safety
    /// The caller must own COM1: only one `Serial` may exist.
    pub unsafe fn init() -> Option<Self> {
        // SAFETY: the caller guarantees exclusive ownership of the port range.
        let mut uart = unsafe { Uart16550::new_port(COM1) }.ok()?;
        let config = Config { interrupts: IER::DATA_READY, ..Config::default() };
        uart.init(config).ok()?;
        Some(Serial { uart })
    }

    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.uart.send_bytes_exact(b"\r");
            }
            self.uart.send_bytes_exact(&[b]);
        }
    }

    /// Loopback mode routes transmitted bytes straight back into the receiver (and raises the
    /// receive interrupt), which lets the self test exercise the real interrupt path.
    pub fn set_loopback(&mut self, on: bool) {
        let mut mcr = Port::<u8>::new(COM1 + REG_MCR);
        // SAFETY: we own COM1 (see `init`); MCR bit 4 only changes where bytes are routed.
        unsafe {
            let v = mcr.read();
            mcr.write(if on { v | MCR_LOOPBACK } else { v & !MCR_LOOPBACK });
        }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// COM1 interrupt handler body: move every received byte into [`RX`] and wake its reader.
/// Interrupt context: no allocation, no locks.
pub fn handle_irq() {
    let mut lsr = Port::<u8>::new(COM1 + REG_LSR);
    let mut data = Port::<u8>::new(COM1 + REG_DATA);
    // Bounded: the FIFO holds at most 16 bytes; the bound guards against a stuck device.
    for _ in 0..64 {
        // SAFETY: reading LSR and RBR of COM1 has no side effect beyond consuming input.
        let ready = unsafe { lsr.read() } & LSR_DATA_READY != 0;
        if !ready {
            break;
        }
        // SAFETY: as above.
        let byte = unsafe { data.read() };
        RX.push_from_irq(byte);
    }
}
