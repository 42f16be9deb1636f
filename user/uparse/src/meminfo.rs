//! `/proc/meminfo`: lines `key value` (`frames_free N`, `frames_total N`, `inodes_free N`, see
//! `abi::syscall::MEMINFO_PATH`). Unknown keys are skipped, so the kernel may add lines.

/// The figures `free` shows; `None` when the file lacks (or garbles) a line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub frames_free: Option<u64>,
    pub frames_total: Option<u64>,
    pub inodes_free: Option<u64>,
}

/// Bytes in a frame of physical memory.
pub const FRAME_SIZE: u64 = 4096;

impl MemInfo {
    /// Frames in use, when both figures are known.
    pub fn frames_used(&self) -> Option<u64> {
        Some(self.frames_total?.saturating_sub(self.frames_free?))
    }
}

/// Reads the text of `/proc/meminfo`.
pub fn parse(text: &str) -> MemInfo {
    let mut info = MemInfo::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value)) = (fields.next(), fields.next()) else { continue };
        let Ok(value) = value.parse::<u64>() else { continue };
        match key.trim_end_matches(':') {
            "frames_free" => info.frames_free = Some(value),
            "frames_total" => info.frames_total = Some(value),
            "inodes_free" => info.inodes_free = Some(value),
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abi_format() {
        let info = parse("frames_free 1000\nframes_total 32768\ninodes_free 4000\n");
        assert_eq!(
            info,
            MemInfo { frames_free: Some(1000), frames_total: Some(32768), inodes_free: Some(4000) }
        );
        assert_eq!(info.frames_used(), Some(31768));
    }

    #[test]
    fn tolerant() {
        let info =
            parse("bogus\nframes_total: 10\nnew_key 5\nframes_free x\n\n  inodes_free   7  \n");
        assert_eq!(
            info,
            MemInfo { frames_free: None, frames_total: Some(10), inodes_free: Some(7) }
        );
        assert_eq!(info.frames_used(), None);
        assert_eq!(parse(""), MemInfo::default());
    }
}
