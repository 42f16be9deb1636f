//! In-kernel self tests (`selftest` on the command line) and deliberate faults
//! (`fault=pagefault|stackoverflow`) that check the exception reporter.
//!
//! Each check prints `selftest: <name> ok` or fails with a reason; the result leaves through
//! the exit status (power-off = pass, debug-exit 2 = fail), so the host test needs no parsing
//! beyond it. The input checks drive the real interrupt paths: the i8042 "inject" command
//! raises IRQ 1 with a chosen scancode, and UART loopback raises IRQ 4 with a chosen byte.

use crate::exec::{sleep_ms, spawn, timeout_ms};
use crate::mm::{frame, heap, kstack::KernelStack, paging, phys_to_virt, HEAP_START};
use crate::{kprintln, log, power};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use drivers::{ps2, serial};
use spin::Mutex;
use x86_64::structures::paging::PageTableFlags as F;

type Check = Result<(), &'static str>;

fn ensure(cond: bool, what: &'static str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what)
    }
}

fn frames() -> Check {
    let (before, total) = frame::stats();
    ensure(before > 1000 && before <= total, "frame counts implausible")?;
    let mut got: Vec<_> = (0..1000).filter_map(|_| frame::alloc()).collect();
    ensure(got.len() == 1000, "could not allocate 1000 frames")?;
    ensure(frame::stats().0 == before - 1000, "free count did not drop by 1000")?;
    for (i, f) in got.iter().enumerate() {
        let p = phys_to_virt(f.start_address().as_u64()) as *mut u64;
        // SAFETY: the frame is ours and reachable through the direct map.
        unsafe {
            ensure(*p == 0, "allocated frame not zeroed")?;
            *p = i as u64;
        }
    }
    for (i, f) in got.iter().enumerate() {
        // SAFETY: as above.
        let v = unsafe { *(phys_to_virt(f.start_address().as_u64()) as *const u64) };
        ensure(v == i as u64, "frames alias each other")?;
    }
    got.sort_by_key(|f| f.start_address());
    got.dedup();
    ensure(got.len() == 1000, "a frame was handed out twice")?;
    got.into_iter().for_each(frame::free);
    let run = frame::alloc_contiguous(8).ok_or("no 8 contiguous frames")?;
    for i in 0..8 {
        frame::free(run + i);
    }
    ensure(frame::stats().0 == before, "frames lost after free")
}

fn map_unmap() -> Check {
    let va = HEAP_START + (256 << 30); // far above the heap's current end
    let cycle = || -> Check {
        let f = frame::alloc().ok_or("out of frames")?;
        paging::map(va, f, F::WRITABLE | F::NO_EXECUTE).map_err(|_| "map failed")?;
        // SAFETY: va was just mapped to a frame we own.
        unsafe { (va as *mut u64).write_volatile(0x1234_5678) };
        let pa = paging::translate(va).ok_or("translate after map")?;
        ensure(pa == f.start_address(), "translate gave the wrong frame")?;
        // SAFETY: the same frame through the direct map.
        let v = unsafe { *(phys_to_virt(pa.as_u64()) as *const u64) };
        ensure(v == 0x1234_5678, "write through the mapping not seen in the frame")?;
        let back = paging::unmap(va).map_err(|_| "unmap failed")?;
        ensure(back == f && paging::translate(va).is_none(), "still mapped after unmap")?;
        ensure(!paging::is_mapped(va), "raw walk still sees the page")?;
        frame::free(back);
        Ok(())
    };
    cycle()?; // may allocate intermediate tables once
    let before = frame::stats().0;
    cycle()?;
    ensure(frame::stats().0 == before, "map/unmap leaked frames")
}

fn stack_guard() -> Check {
    let before = frame::stats().0;
    let s = KernelStack::new().ok_or("no kernel stack")?;
    ensure(paging::is_mapped(s.top() - 8), "stack top not mapped")?;
    ensure(!paging::is_mapped(s.guard_page()), "guard page is mapped")?;
    let top = s.top();
    drop(s);
    ensure(!paging::is_mapped(top - 8), "stack still mapped after drop")?;
    ensure(frame::stats().0 == before, "stack frames not returned")
}

fn heap() -> Check {
    let (used, _) = heap::stats();
    let mut big = alloc::vec![0u8; 8 << 20]; // bigger than the initial heap: forces growth
    big.iter_mut().enumerate().step_by(4096).for_each(|(i, b)| *b = i as u8);
    ensure(
        big.iter().enumerate().step_by(4096).all(|(i, b)| *b == i as u8),
        "heap data corrupted",
    )?;
    let boxes: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
    ensure(boxes.iter().enumerate().all(|(i, b)| **b == i as u64), "boxes corrupted")?;
    drop((big, boxes));
    ensure(heap::stats().0 == used, "heap bytes in use did not return to the baseline")
}

async fn timers() -> Check {
    let (t0, ticks0) = (crate::time::now_ns(), crate::time::ticks());
    sleep_ms(50).await;
    let dt = crate::time::now_ns() - t0;
    ensure(dt >= 50_000_000, "sleep(50ms) returned early")?;
    ensure(dt < 5_000_000_000, "sleep(50ms) took over 5 s")?;
    ensure(crate::time::ticks() > ticks0, "timer interrupt did not tick")?;

    let order = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            spawn(async move {
                sleep_ms(ms).await;
                order.lock().push(ms);
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|_| "sleeper task aborted")?;
    }
    ensure(*order.lock() == [10, 20, 30], "sleeps finished out of deadline order")?;
    ensure(timeout_ms(10, sleep_ms(10_000)).await.is_err(), "timeout did not fire")
}

async fn keyboard_stream() -> Check {
    while ps2::SCANCODES.try_pop().is_some() {}
    for sc in [0x1e, 0x9e] {
        ps2::inject(sc); // 'a' make, then break: each raises IRQ 1
        let got = timeout_ms(1000, ps2::SCANCODES.pop()).await.map_err(|_| "no keyboard IRQ")?;
        ensure(got == sc, "keyboard delivered the wrong scancode")?;
    }
    Ok(())
}

async fn serial_stream() -> Check {
    while serial::RX.try_pop().is_some() {}
    // While in loopback nothing reaches the host, so print nothing until it is off again.
    log::with(|out| out.serial.as_mut().map(|s| s.set_loopback(true)));
    log::with(|out| out.serial.as_mut().map(|s| s.write_bytes(b"Z")));
    let got = timeout_ms(1000, serial::RX.pop()).await;
    log::with(|out| out.serial.as_mut().map(|s| s.set_loopback(false)));
    ensure(got == Ok(b'Z'), "no looped-back byte from the COM1 receive interrupt")
}

pub async fn main() {
    let mut failed = None;
    macro_rules! check {
        ($name:literal, $e:expr) => {
            match $e {
                Ok(()) => kprintln!("selftest: {} ok", $name),
                Err(why) => {
                    kprintln!("selftest: FAIL {}: {}", $name, why);
                    failed.get_or_insert($name);
                }
            }
        };
    }
    check!("frames", frames());
    check!("map_unmap", map_unmap());
    check!("stack_guard", stack_guard());
    check!("heap", heap());
    check!("timers", timers().await);
    check!("keyboard_stream", keyboard_stream().await);
    check!("serial_stream", serial_stream().await);
    match failed {
        None => {
            kprintln!("selftest: PASS");
            power::poweroff()
        }
        Some(name) => {
            kprintln!("selftest: FAIL {}", name);
            power::exit_failure(power::EXIT_SELFTEST_FAILED)
        }
    }
}

/// Read an unmapped address: the page-fault report must name this function's code.
#[inline(never)]
pub fn trigger_page_fault() {
    // SAFETY: deliberately unsound: this read must fault (the address is never mapped).
    let v = unsafe { core::ptr::read_volatile(0x0dea_dbee_f000 as *const u64) };
    core::hint::black_box(v);
}

/// Recurse with big frames until the stack's guard page is hit.
#[inline(never)]
pub fn trigger_stack_overflow(depth: u64) -> u64 {
    let mut buf = [0u8; 1024];
    core::hint::black_box(&mut buf);
    if depth == u64::MAX {
        return 0;
    }
    trigger_stack_overflow(depth + 1) + buf[depth as usize % 1024] as u64
}
