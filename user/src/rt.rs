//! The start and end of a program: the entry point, `exit`, and the panic handler.
//!
//! A program is `#![no_std] #![no_main]` with `ulib::entry!(main)` and
//! `fn main(args: Args) -> i32`; the macro defines `_start`, which the kernel enters with
//! `argc` in `rdi` and `argv` in `rsi` (the ABI's `_start(argc, argv)`). `_start` clears the
//! frame pointer (the end of backtraces), aligns the stack the way a call expects, and calls
//! [`run`], which calls `main` and exits with what it returns.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::args::Args;
use crate::sys;

/// `argv[0]`, for messages from the panic handler.
static PROGRAM: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Defines the program's entry point `_start`, which runs `$main(args)` and exits with the
/// `i32` it returns.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The entry point: `_start(argc, argv)`.
        ///
        /// # Safety
        /// Entered only by the kernel, once, with the ABI's registers.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "xor ebp, ebp",
                "and rsp, -16",
                "call {start}",
                "ud2",
                start = sym __ulib_start,
            )
        }

        extern "C" fn __ulib_start(argc: usize, argv: *const *const u8) -> ! {
            // SAFETY: the kernel's argv: NULL-terminated strings on the initial stack.
            let args = unsafe { $crate::args::Args::from_raw(argc, argv) };
            $crate::rt::run(args, $main)
        }
    };
}

/// Runs `main` and exits with its status.
pub fn run(args: Args, main: fn(Args) -> i32) -> ! {
    if let Some(name) = args.get(0) {
        PROGRAM.store(name.as_ptr() as *mut u8, Ordering::Relaxed);
    }
    let status = main(args);
    sys::exit(status)
}

/// The program's name (`argv[0]`), or `"?"`.
pub fn program_name() -> &'static str {
    let p = PROGRAM.load(Ordering::Relaxed);
    if p.is_null() {
        return "?";
    }
    // SAFETY: it came from argv[0], a NUL-terminated string on the initial stack.
    unsafe { crate::args::c_str(p) }
}

/// Prints `<program>: <message>` to standard error and exits with status 1.
#[macro_export]
macro_rules! die {
    ($($arg:tt)*) => {{
        $crate::eprintln!("{}: {}", $crate::rt::program_name(), format_args!($($arg)*));
        $crate::sys::exit(1)
    }};
}

/// The exit status of a program that panicked.
pub const PANIC_STATUS: i32 = 101;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::eprintln!("{}: panic: {}", program_name(), info);
    sys::exit(PANIC_STATUS)
}
