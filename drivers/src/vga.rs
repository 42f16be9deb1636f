//! VGA text mode: 80x25 cells of (character, attribute) at physical 0xb8000.
//!
//! The writer owns the buffer through a pointer the kernel derives from its direct map; it
//! scrolls when the cursor passes the last line. No hardware cursor, no colours beyond one.

pub const WIDTH: usize = 80;
pub const HEIGHT: usize = 25;
pub const PHYS_ADDR: u64 = 0xb8000;
const ATTR: u8 = 0x07; // light grey on black

pub struct TextScreen {
    cells: *mut u16,
    col: usize,
}

// SAFETY: the buffer is device memory owned exclusively by this writer (see `new`).
unsafe impl Send for TextScreen {}

impl TextScreen {
    /// # Safety
    /// `cells` must point to the mapped 80x25 text buffer, used by no one else.
    pub unsafe fn new(cells: *mut u16) -> Self {
        let mut s = TextScreen { cells, col: 0 };
        s.clear();
        s
    }

    fn put(&mut self, row: usize, col: usize, ch: u8) {
        let cell = (ATTR as u16) << 8 | ch as u16;
        // SAFETY: row < HEIGHT and col < WIDTH keep the write inside the buffer; volatile
        // because this is device memory.
        unsafe { self.cells.add(row * WIDTH + col).write_volatile(cell) };
    }

    fn get(&self, row: usize, col: usize) -> u16 {
        // SAFETY: as in `put`.
        unsafe { self.cells.add(row * WIDTH + col).read_volatile() }
    }

    pub fn clear(&mut self) {
        for row in 0..HEIGHT {
            for col in 0..WIDTH {
                self.put(row, col, b' ');
            }
        }
        self.col = 0;
    }

    fn newline(&mut self) {
        for row in 1..HEIGHT {
            for col in 0..WIDTH {
                let cell = self.get(row, col);
                // SAFETY: as in `put`.
                unsafe { self.cells.add((row - 1) * WIDTH + col).write_volatile(cell) };
            }
        }
        for col in 0..WIDTH {
            self.put(HEIGHT - 1, col, b' ');
        }
        self.col = 0;
    }

    pub fn write_byte(&mut self, b: u8) {
        match b {
            b'\n' => self.newline(),
            b'\r' => self.col = 0,
            0x08 => self.col = self.col.saturating_sub(1),
            _ => {
                if self.col == WIDTH {
                    self.newline();
                }
                let printable = if (0x20..0x7f).contains(&b) { b } else { b'?' };
                self.put(HEIGHT - 1, self.col, printable);
                self.col += 1;
            }
        }
    }
}

impl core::fmt::Write for TextScreen {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        s.bytes().for_each(|b| self.write_byte(b));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn text_of_row(buf: &[u16], row: usize) -> std::string::String {
        buf[row * WIDTH..(row + 1) * WIDTH]
            .iter()
            .map(|c| (*c & 0xff) as u8 as char)
            .collect::<std::string::String>()
            .trim_end()
            .into()
    }

    #[test]
    fn writes_on_last_line_and_scrolls() {
        let mut buf = vec![0u16; WIDTH * HEIGHT];
        // SAFETY: buf is a private buffer of the right size.
        let mut s = unsafe { TextScreen::new(buf.as_mut_ptr()) };
        for b in b"first\nsecond\nthird" {
            s.write_byte(*b);
        }
        assert_eq!(text_of_row(&buf, HEIGHT - 3), "first");
        assert_eq!(text_of_row(&buf, HEIGHT - 2), "second");
        assert_eq!(text_of_row(&buf, HEIGHT - 1), "third");
    }

    #[test]
    fn long_lines_wrap_and_unprintable_bytes_show_as_question_marks() {
        let mut buf = vec![0u16; WIDTH * HEIGHT];
        // SAFETY: as above.
        let mut s = unsafe { TextScreen::new(buf.as_mut_ptr()) };
        for _ in 0..WIDTH + 2 {
            s.write_byte(b'x');
        }
        s.write_byte(0x01);
        assert_eq!(text_of_row(&buf, HEIGHT - 2).len(), WIDTH);
        assert_eq!(text_of_row(&buf, HEIGHT - 1), "xx?");
    }
}
