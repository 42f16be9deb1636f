//! Kernel text output: every line goes to COM1 and to the VGA text screen.
//!
//! One lock guards both devices; it is taken with interrupts disabled so an interrupt can
//! never find it held by the code it interrupted. It is the last lock of the lock order and
//! the only interrupt-safe one (rank `Log` in `docs/locks.md`): anything may print, under any
//! lock, from any context. The emergency path (exceptions, panics)
//! breaks the lock instead of waiting: on this single CPU, a holder interrupted by a fault
//! will never run again.

use core::fmt::Write;
use drivers::serial::Serial;
use drivers::vga::TextScreen;
use runtime::lockorder::{Mutex, Rank};

pub struct Output {
    pub serial: Option<Serial>,
    screen: Option<TextScreen>,
}

static OUT: Mutex<Output> = Mutex::new(Rank::Log, Output { serial: None, screen: None });

/// Bring up COM1 and the VGA text screen (reached through the direct map, which both the boot
/// page tables and the final ones provide for low memory).
pub fn init() {
    let mut out = OUT.lock();
    // SAFETY: called once at boot; this module is the only owner of COM1 and the text buffer.
    unsafe {
        out.serial = Serial::init();
        let cells = crate::mm::phys_to_virt(drivers::vga::PHYS_ADDR) as *mut u16;
        out.screen = Some(TextScreen::new(cells));
    }
}

impl Write for Output {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(serial) = self.serial.as_mut() {
            serial.write_str(s)?;
        }
        if let Some(screen) = self.screen.as_mut() {
            screen.write_str(s)?;
        }
        Ok(())
    }
}

/// Run `f` with the output devices locked (interrupts disabled meanwhile).
pub fn with<R>(f: impl FnOnce(&mut Output) -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(|| f(&mut OUT.lock()))
}

pub fn print(args: core::fmt::Arguments) {
    with(|out| {
        let _ = out.write_fmt(args);
    });
}

pub fn print_emergency(args: core::fmt::Arguments) {
    if OUT.is_locked() {
        // SAFETY: single CPU and we are on the way to stopping: the holder never resumes.
        unsafe { OUT.force_unlock() };
    }
    print(args);
}

#[macro_export]
macro_rules! kprint {
    ($($arg:tt)*) => { $crate::log::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! kprintln {
    () => { $crate::kprint!("\n") };
    ($($arg:tt)*) => { $crate::log::print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[macro_export]
macro_rules! kprintln_emergency {
    ($($arg:tt)*) => { $crate::log::print_emergency(format_args!("{}\n", format_args!($($arg)*))) };
}
