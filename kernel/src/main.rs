//! The kernel. Boot path, in reading order:
//! `arch::boot` (PVH stub) -> [`kernel_entry`] (console, IDT, boot info, memory) ->
//! [`kernel_main`] on a guarded stack (GDT/TSS, ACPI, APIC, timer, devices) -> the executor.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod blk;
mod cmdline;
mod console;
mod exec;
mod file;
mod fstest;
mod log;
mod mm;
mod net;
mod ns;
mod pci;
mod power;
mod proc;
mod prof;
mod pvh;
mod rootfs;
mod selftest;
mod stats;
mod syscall;
mod time;

use alloc::boxed::Box;
use arch::{apic, gdt, idt};
use cmdline::{Fault, Mode};
use core::future::Future;
use core::pin::Pin;
use spin::Once;

static BOOT_INFO: Once<pvh::BootInfo> = Once::new();

/// First Rust code, called by the PVH stub on the boot stack with the start_info address.
#[no_mangle]
extern "C" fn kernel_entry(start_info: u64) -> ! {
    time::mark_entry();
    log::init();
    kprintln!("rustix-kernel {} (x86_64, PVH boot)", env!("CARGO_PKG_VERSION"));
    arch::cpu::check_lock_order();
    if runtime::lockorder::is_checking() {
        kprintln!("lock order: checked (debug build; docs/locks.md)");
    }
    idt::init();
    let info =
        BOOT_INFO.call_once(|| pvh::parse(start_info).unwrap_or_else(|e| panic!("boot info: {e}")));
    mm::init(info);
    // The boot stack has no guard page; continue on one that does, and never come back.
    let stack = mm::kstack::KernelStack::new().expect("no memory for the kernel stack");
    let top = stack.top();
    core::mem::forget(stack);
    arch::cpu::run_on_stack(top, kernel_main)
}

fn leak_stack_top() -> x86_64::VirtAddr {
    let s = mm::kstack::KernelStack::new().expect("no memory for an interrupt stack");
    let top = s.top();
    core::mem::forget(s); // lives as long as the kernel
    x86_64::VirtAddr::new(top)
}

extern "C" fn kernel_main() -> ! {
    let info = BOOT_INFO.get().expect("boot info");
    gdt::init(leak_stack_top(), leak_stack_top());
    idt::use_ist_stacks();
    arch::syscall::init();

    let acpi = acpi::init(info.rsdp).unwrap_or_else(|e| {
        kprintln!("acpi: {e}; using PC defaults (no power-off)");
        acpi::Acpi::default()
    });
    power::init(acpi);
    apic::init(&acpi.madt);
    drivers::ps2::init();
    apic::route_isa_irq(&acpi.madt, 1, idt::VECTOR_KEYBOARD);
    apic::route_isa_irq(&acpi.madt, 4, idt::VECTOR_COM1);

    let opts = cmdline::parse(info.cmdline());
    let cal = time::init(opts.hz);
    if let Some(hz) = opts.prof {
        prof::start(&acpi.madt, hz); // after calibration, which uses the PIT too
    }
    blk::init(&acpi.madt);
    net::e1000::init(&acpi.madt);
    net::drive::set(opts.net);
    net::netns::start(opts.ip, opts.gw);
    let (free, total) = mm::frame::stats();
    kprintln!(
        "memory: {} MiB free of {} MiB; tsc {} MHz; lapic timer {} MHz, tick {} Hz",
        free >> 8,
        total >> 8,
        cal.tsc_hz / 1_000_000,
        cal.lapic_hz / 1_000_000,
        opts.hz
    );

    exec::spawn(start(opts.mode, opts.fault));
    exec::EXECUTOR.timers().set_clock(time::now_ns);
    proc::sched::run()
}

/// A boxed task future: what [`mode_task`] hands to [`start`].
type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The first task: mount the disk (unless self-testing it raw), say `ready`, run the mode.
///
/// Keep this poll frame small: it stays on the executor's stack under every poll of the
/// mode's work. An unoptimised (debug) build gives every temporary of an async fn its own
/// stack slot, so each future awaited inline here would put (two) copies of itself in this
/// frame. With the eight modes' futures awaited inline the frame was 56 KiB, and the debug
/// kernel overflowed its 64 KiB stack while mounting the disk. The mode's future is therefore
/// built and boxed by the plain function [`mode_task`], whose frame is gone before it is
/// polled (and `rootfs::mount` boxes the file system's mount for the same reason).
async fn start(mode: Mode, fault: Option<Fault>) {
    if mode != Mode::SelfTest && blk::disk().is_some() {
        match rootfs::mount().await {
            Ok((fs, r)) => kprintln!(
                "fs: mounted {} blocks, {} inodes; log replayed {} blocks, {} orphans freed",
                fs.sb.size,
                fs.sb.ninodes,
                r.replayed_blocks,
                r.orphans_freed
            ),
            Err(e) => kprintln!("fs: not mounted: {e}"),
        }
    }
    if let (Mode::Console, Some(fs)) = (mode, rootfs::get()) {
        // Container roots a crash left behind (boxed: see above on this frame's size).
        Box::pin(ns::fsroot::clean_at_boot(fs)).await;
    }
    kprintln!("boot: {} us from kernel entry to ready", time::now_ns() / 1000);
    kprintln!("ready");
    match fault {
        Some(Fault::PageFault) => selftest::trigger_page_fault(),
        Some(Fault::StackOverflow) => drop(selftest::trigger_stack_overflow(0)),
        Some(Fault::LockOrder) => selftest::trigger_lock_order_violation(),
        None => {}
    }
    if mode == Mode::Console {
        file::console::start(); // the tty owns keyboard and serial input from here on
    }
    mode_task(mode, rootfs::get()).await
}

/// The work of `mode`, boxed (see [`start`] for why this is a plain function).
fn mode_task(mode: Mode, fs: Option<&'static rootfs::RootFs>) -> Task {
    match (mode, fs) {
        (Mode::Console, Some(fs)) => Box::pin(init_or_console(fs)),
        (Mode::Console, None) => Box::pin(console::run()),
        (Mode::SelfTest, _) => Box::pin(selftest::main()),
        (Mode::FsTest, Some(fs)) => Box::pin(async move {
            match fstest::run(fs).await {
                Ok(()) => {
                    kprintln!("fstest: PASS");
                    power::poweroff()
                }
                Err(e) => {
                    kprintln!("fstest: FAIL {e}");
                    power::exit_failure(power::EXIT_SELFTEST_FAILED)
                }
            }
        }),
        (Mode::FsBench, Some(fs)) => Box::pin(async move {
            match fstest::bench(fs).await {
                Ok(()) => power::poweroff(),
                Err(e) => {
                    kprintln!("fsbench: FAIL {e}");
                    power::exit_failure(power::EXIT_SELFTEST_FAILED)
                }
            }
        }),
        (Mode::CrashWork(seed), Some(fs)) => Box::pin(async move {
            if let Err(e) = fstest::crash_workload(fs, seed).await {
                kprintln!("crash: stopped: {e}");
            }
        }),
        (_, None) => {
            kprintln!("{mode:?} needs a mounted disk");
            power::exit_failure(power::EXIT_SELFTEST_FAILED)
        }
    }
}

/// The console mode with a disk: start `/bin/init`, or serve the kernel console without one.
async fn init_or_console(fs: &'static rootfs::RootFs) {
    if has_init(fs).await {
        match proc::spawn_init(fs).await {
            Ok(pid) => kprintln!("init: started as pid {pid}"),
            Err(e) => {
                kprintln!("init: cannot start /bin/init: {}", e.message());
                console::run().await
            }
        }
    } else {
        console::run().await
    }
}

/// Is there a `/bin/init` to start? Without one the kernel console serves the terminal.
async fn has_init(fs: &'static rootfs::RootFs) -> bool {
    let Ok(root) = fs.root() else { return false };
    fs.namei(&root, &root, b"/bin/init").await.is_ok()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    runtime::lockorder::disable(); // the report may need locks held by the code that panicked
    kprintln_emergency!("PANIC: {}", info);
    let rbp: u64;
    // SAFETY: reads the frame pointer register only.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    arch::fault::print_backtrace(None, rbp);
    power::exit_failure(power::EXIT_CRASH)
}
