//! PS/2 keyboard behind the i8042 controller (IRQ 1).
//!
//! The interrupt handler reads one scancode byte from port 0x60 into [`SCANCODES`]; a task
//! decodes them with `pc-keyboard` ([`Decoder`]) outside interrupt context, usually as the
//! stream of typed characters [`chars`].

use core::future::ready;
use futures_util::{Stream, StreamExt};
use pc_keyboard::{layouts::Us104Key, DecodedKey, HandleControl, PS2Keyboard, ScancodeSet1};
use runtime::irq::IrqQueue;
use x86_64::instructions::port::Port;

const DATA: u16 = 0x60;
const STATUS_CMD: u16 = 0x64;
const STATUS_OUTPUT_FULL: u8 = 1;
const STATUS_INPUT_FULL: u8 = 2;
const CMD_READ_CONFIG: u8 = 0x20;
const CMD_WRITE_CONFIG: u8 = 0x60;
/// "Write keyboard output buffer": the controller presents the next data byte as if the
/// keyboard had sent it, interrupt included. Used by the self test.
const CMD_INJECT: u8 = 0xd2;
const CONFIG_IRQ1: u8 = 1;
const CONFIG_TRANSLATE: u8 = 1 << 6;

/// Raw scancodes, filled by [`handle_irq`], drained by one task.
pub static SCANCODES: IrqQueue<u8, 128> = IrqQueue::new();

fn wait_input_empty() {
    let mut status = Port::<u8>::new(STATUS_CMD);
    // Bounded spin: the controller accepts a byte within microseconds or is absent.
    for _ in 0..100_000 {
        // SAFETY: reading the i8042 status register has no side effects.
        if unsafe { status.read() } & STATUS_INPUT_FULL == 0 {
            return;
        }
    }
}

fn command(cmd: u8) {
    wait_input_empty();
    // SAFETY: writing a controller command; callers only send the documented ones above.
    unsafe { Port::<u8>::new(STATUS_CMD).write(cmd) };
}

fn write_data(byte: u8) {
    wait_input_empty();
    // SAFETY: the data port takes the argument of the preceding command.
    unsafe { Port::<u8>::new(DATA).write(byte) };
}

/// Flush stale bytes and make sure the controller raises IRQ 1 and translates to set 1.
pub fn init() {
    let mut status = Port::<u8>::new(STATUS_CMD);
    let mut data = Port::<u8>::new(DATA);
    // SAFETY: draining the output buffer only discards bytes nobody has read.
    unsafe {
        for _ in 0..32 {
            if status.read() & STATUS_OUTPUT_FULL == 0 {
                break;
            }
            data.read();
        }
    }
    command(CMD_READ_CONFIG);
    let mut config = 0;
    for _ in 0..100_000 {
        // SAFETY: as above; the controller answers the read-config command on the data port.
        unsafe {
            if status.read() & STATUS_OUTPUT_FULL != 0 {
                config = data.read();
                break;
            }
        }
    }
    command(CMD_WRITE_CONFIG);
    write_data(config | CONFIG_IRQ1 | CONFIG_TRANSLATE);
}

/// Make the controller deliver `scancode` as if typed (raises IRQ 1).
pub fn inject(scancode: u8) {
    command(CMD_INJECT);
    write_data(scancode);
}

/// The characters typed on the keyboard: [`SCANCODES`] through a [`Decoder`] of its own (key
/// releases and modifiers yield nothing). One consumer at a time (task context).
pub fn chars() -> impl Stream<Item = char> + Unpin {
    let mut decoder = Decoder::new();
    SCANCODES.stream().filter_map(move |sc| ready(decoder.feed(sc)))
}

/// Keyboard interrupt handler body. Interrupt context: no allocation, no locks.
pub fn handle_irq() {
    // SAFETY: reading the data port acknowledges the byte the controller interrupted for.
    let scancode = unsafe { Port::<u8>::new(DATA).read() };
    SCANCODES.push_from_irq(scancode);
}

/// Turns scancodes into characters (US layout); Ctrl+letter becomes the ASCII control code.
pub struct Decoder {
    kbd: PS2Keyboard<Us104Key, ScancodeSet1>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub const fn new() -> Self {
        Decoder {
            kbd: PS2Keyboard::new(
                ScancodeSet1::new(),
                Us104Key,
                HandleControl::MapLettersToUnicode,
            ),
        }
    }

    /// Feed one scancode byte; returns a character once a key press completes one.
    pub fn feed(&mut self, scancode: u8) -> Option<char> {
        let event = self.kbd.add_byte(scancode).ok()??;
        match self.kbd.process_keyevent(event)? {
            DecodedKey::Unicode(c) => Some(c),
            DecodedKey::RawKey(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_letters_enter_and_shift() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0x1e), Some('a')); // 'a' make
        assert_eq!(d.feed(0x9e), None); // 'a' break
        assert_eq!(d.feed(0x2a), None); // left shift make
        assert_eq!(d.feed(0x1e), Some('A'));
        assert_eq!(d.feed(0xaa), None); // left shift break
        assert_eq!(d.feed(0x1c), Some('\n')); // enter
    }

    /// What the interrupt handler pushes comes out of `chars` decoded: releases and shifts
    /// yield nothing, and the stream waits (is woken) for a key typed later.
    #[test]
    fn chars_decodes_the_interrupt_queue() {
        use testkit::{block_on, counting_waker};
        let mut keys = chars();
        for sc in [0x1e, 0x9e, 0x2a, 0x1e, 0xaa] {
            assert!(SCANCODES.push_from_irq(sc));
        }
        assert_eq!(block_on(keys.next()), Some('a'));
        assert_eq!(block_on(keys.next()), Some('A'));
        let (woken, waker) = counting_waker();
        let mut cx = core::task::Context::from_waker(&waker);
        assert!(keys.poll_next_unpin(&mut cx).is_pending(), "shift released: nothing typed");
        SCANCODES.push_from_irq(0x1c); // enter
        assert_eq!(woken.get(), 1);
        assert_eq!(block_on(keys.next()), Some('\n'));
    }

    #[test]
    fn ctrl_c_maps_to_etx() {
        let mut d = Decoder::new();
        assert_eq!(d.feed(0x1d), None); // left ctrl make
        assert_eq!(d.feed(0x2e), Some('\u{3}')); // 'c'
    }
}
