//! Host unit tests for the kernel's pure architecture helpers: which timer-calibration sample
//! to believe when the host stalls QEMU (`kernel/src/arch/calibrate.rs`).

#[allow(dead_code)]
#[path = "../../kernel/src/arch/calibrate.rs"]
mod calibrate;
