//! In-kernel self tests (`selftest` on the command line) and deliberate faults
//! (`fault=pagefault|stackoverflow`) that check the exception reporter.
//!
//! Each check prints `selftest: <name> ok` or fails with a reason; the result leaves through
//! the exit status (power-off = pass, debug-exit 2 = fail), so the host test needs no parsing
//! beyond it. The input checks drive the real interrupt paths: the i8042 "inject" command
//! raises IRQ 1 with a chosen scancode, and UART loopback raises IRQ 4 with a chosen byte.
//! The disk check (only with a disk) writes and reads blocks through the virtio-blk driver with
//! several requests in flight; see [`disk`] for what it leaves on the disk. The network check
//! (only with a NIC) sends a hand-made ARP request to QEMU's user-net gateway and waits, on the
//! E1000's receive interrupt, for its reply.

use crate::blk::{Disk, IoError};
use crate::exec::{sleep_ms, spawn, timeout_ms};
use crate::mm::{frame, heap, kstack::KernelStack, paging, phys_to_virt, HEAP_START};
use crate::net::drive::How;
use crate::net::{e1000::MacFmt, Nic};
use crate::{kprintln, log, power};
use abi::syscall::Errno;
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use drivers::{ps2, serial};
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

    let order = Arc::new(runtime::sync::Mutex::new(Vec::new()));
    let handles: Vec<_> = [30u64, 10, 20]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            spawn(async move {
                sleep_ms(ms).await;
                order.lock().await.push(ms);
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|_| "sleeper task aborted")?;
    }
    ensure(*order.lock().await == [10, 20, 30], "sleeps finished out of deadline order")?;
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

/// The blocks the disk check writes: a few at each end and in the middle (the host test in
/// `mkimage/tests/boot.rs` computes the same list).
fn disk_test_blocks(n: u32) -> Vec<u32> {
    let mut v: Vec<u32> =
        [1, 2, 3, 64, n / 2, n.wrapping_sub(3), n.wrapping_sub(2), n.wrapping_sub(1)]
            .into_iter()
            .filter(|&b| b < n)
            .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// What the disk check writes into `block`: the tag `RXBLKTST`, the block number
/// (little-endian u32), then byte `i` = `i ^ (block * 97)` (low 8 bits). The host test checks
/// for exactly this.
fn disk_pattern(block: u32) -> [u8; crate::blk::BLOCK_SIZE] {
    let mut b: [u8; crate::blk::BLOCK_SIZE] =
        core::array::from_fn(|i| (i as u32 ^ block.wrapping_mul(97)) as u8);
    b[..8].copy_from_slice(b"RXBLKTST");
    b[8..12].copy_from_slice(&block.to_le_bytes());
    b
}

/// The file system's superblock magic ("RXFX"), at the start of block 1.
const FS_MAGIC: u32 = 0x5846_5852;

type BlockBuf = Box<[u8; crate::blk::BLOCK_SIZE]>;

fn zeroed_block() -> BlockBuf {
    Box::new([0; crate::blk::BLOCK_SIZE])
}

/// Read `blocks`, one task each, all at once.
async fn read_concurrently(
    d: &'static Disk,
    blocks: &[u32],
) -> Result<Vec<BlockBuf>, &'static str> {
    let handles: Vec<_> = blocks
        .iter()
        .map(|&b| {
            spawn(async move {
                let mut buf = zeroed_block();
                d.read(b, &mut buf).await.map(|()| buf)
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.map_err(|_| "reader task aborted")?.map_err(|_| "read failed")?);
    }
    Ok(out)
}

/// Write `blocks[i]` from `bufs[i]`, one task each, all at once.
async fn write_concurrently(d: &'static Disk, blocks: &[u32], bufs: Vec<BlockBuf>) -> Check {
    let handles: Vec<_> = blocks
        .iter()
        .zip(bufs)
        .map(|(&b, buf)| spawn(async move { d.write(b, &buf).await }))
        .collect();
    for h in handles {
        h.await.map_err(|_| "writer task aborted")?.map_err(|_| "write failed")?;
    }
    Ok(())
}

/// Patterns written to several blocks at once by separate tasks (so several requests are in
/// flight), read back at once, compared; out-of-range blocks and a sector past the end fail.
///
/// What stays on the disk: on a scratch disk (the tested blocks all zero, no file-system
/// superblock in block 1) the patterns stay, for the host to check. Any other disk gets its
/// original blocks back.
async fn disk(d: &'static Disk) -> Check {
    let n = d.block_count();
    ensure(n >= 8, "disk smaller than 8 blocks")?;
    let blocks = disk_test_blocks(n);
    let originals = read_concurrently(d, &blocks).await?;
    let mut sb = zeroed_block();
    d.read(1, &mut sb).await.map_err(|_| "reading block 1 failed")?;
    let has_fs = u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]) == FS_MAGIC;
    let scratch = !has_fs && originals.iter().all(|b| b.iter().all(|&x| x == 0));
    if d.driver().read_only() {
        ensure(d.write(1, &sb).await == Err(IoError::Device), "write to a read-only disk")?;
        kprintln!("selftest: disk is read-only: write checks skipped");
        return Ok(());
    }
    let result = disk_writes(d, &blocks).await;
    if !scratch {
        // Put the blocks back whatever happened (a failure may have left patterns there).
        write_concurrently(d, &blocks, originals).await?;
        kprintln!("selftest: disk has data: original blocks restored");
    }
    result?;
    let s = d.driver().stats();
    kprintln!(
        "selftest: disk {} requests ({} blocks), {} interrupts, {} errors (expected: 1), at most \
         {} of {} in flight, {} waits for a slot",
        s.requests,
        s.blocks,
        s.irqs,
        s.errors,
        s.max_in_flight,
        d.driver().slots(),
        s.slot_waits
    );
    ensure(s.irqs > 0, "no disk interrupt")?;
    // Almost surely more (the speed test alone keeps 8 requests going): at least two.
    ensure(s.max_in_flight >= 2, "never more than one request in flight")
}

/// The writing part of [`disk`]: patterns to `blocks` (from one task per block), then every
/// other check.
async fn disk_writes(d: &'static Disk, blocks: &[u32]) -> Check {
    let n = d.block_count();
    let patterns = blocks.iter().map(|&b| Box::new(disk_pattern(b))).collect();
    write_concurrently(d, blocks, patterns).await?;
    let back = read_concurrently(d, blocks).await?;
    for (&b, got) in blocks.iter().zip(&back) {
        ensure(**got == disk_pattern(b), "a block read back differs from what was written")?;
    }
    // More readers than the queue has slots: some wait for a slot, all finish, and each gets
    // its own block.
    let many: Vec<u32> =
        (0..3 * d.driver().slots() as u32).map(|i| blocks[i as usize % blocks.len()]).collect();
    let got = read_concurrently(d, &many).await?;
    for (&b, buf) in many.iter().zip(&got) {
        ensure(**buf == disk_pattern(b), "a concurrent read returned the wrong block")?;
    }

    let requests = d.driver().stats().requests;
    let mut buf = zeroed_block();
    for bad in [n, n + 1, u32::MAX] {
        ensure(d.read(bad, &mut buf).await == Err(IoError::OutOfRange), "read past the end")?;
        ensure(d.write(bad, &buf).await == Err(IoError::OutOfRange), "write past the end")?;
    }
    ensure(d.driver().stats().requests == requests, "out-of-range request reached the device")?;
    disk_runs(d).await?;
    // The device's own error path: a sector past its end, asked without our range check.
    let past = d.driver().read_sectors_unchecked(d.driver().capacity_sectors(), &mut buf).await;
    ensure(past == Err(IoError::Device), "device accepted a sector past its end")?;
    d.flush().await.map_err(|_| "flush failed")?;
    disk_speed(d, blocks).await
}

/// Blocks 1 to 3 (test blocks on every disk) written and read back as one run each way: one
/// request per direction (unless DMA memory for the run buffers was short), the patterns
/// intact; a run reaching past the end fails with no request.
async fn disk_runs(d: &'static Disk) -> Check {
    let before = d.driver().stats().requests;
    let pats: Vec<BlockBuf> = (1..=3).map(|b| Box::new(disk_pattern(b))).collect();
    let refs: Vec<&[u8; crate::blk::BLOCK_SIZE]> = pats.iter().map(|b| &**b).collect();
    d.write_run(1, &refs).await.map_err(|_| "writing a run failed")?;
    let mut back: Vec<BlockBuf> = (0..3).map(|_| zeroed_block()).collect();
    let mut brefs: Vec<&mut [u8; crate::blk::BLOCK_SIZE]> =
        back.iter_mut().map(|b| &mut **b).collect();
    d.read_run(1, &mut brefs).await.map_err(|_| "reading a run failed")?;
    let per_run = 3usize.div_ceil(d.driver().max_run()) as u64;
    ensure(
        d.driver().stats().requests == before + 2 * per_run,
        "a run of three blocks was not one request each way",
    )?;
    ensure(
        back.iter().zip(1..).all(|(b, i)| **b == disk_pattern(i)),
        "a run read back differs from what was written",
    )?;
    let end = d.block_count() - 2;
    let mut brefs: Vec<&mut [u8; crate::blk::BLOCK_SIZE]> =
        back.iter_mut().map(|b| &mut **b).collect();
    ensure(d.read_run(end, &mut brefs).await == Err(IoError::OutOfRange), "run past the end")?;
    ensure(d.write_run(end, &refs).await == Err(IoError::OutOfRange), "run past the end")?;
    ensure(
        d.driver().stats().requests == before + 2 * per_run,
        "an out-of-range run reached the device",
    )
}

/// 1000 requests of 4 KiB (reads of any block, or writes of the test pattern to the test
/// blocks), one at a time then from 8 tasks at once: how long each took, in microseconds.
async fn disk_timed(
    d: &'static Disk,
    write: bool,
    blocks: &'static [u32],
) -> Result<(u64, u64), &'static str> {
    const N: usize = 1000;
    const TASKS: usize = 8;
    async fn one(
        d: &'static Disk,
        write: bool,
        block: u32,
        buf: &mut BlockBuf,
    ) -> Result<(), IoError> {
        if write {
            **buf = disk_pattern(block);
            d.write(block, buf).await
        } else {
            d.read(block, buf).await
        }
    }
    let t0 = crate::time::now_ns();
    let mut buf = zeroed_block();
    for i in 0..N {
        one(d, write, blocks[i % blocks.len()], &mut buf).await.map_err(|_| "request failed")?;
    }
    let t1 = crate::time::now_ns();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            spawn(async move {
                let mut buf = zeroed_block();
                for i in (t..N).step_by(TASKS) {
                    one(d, write, blocks[i % blocks.len()], &mut buf).await?;
                }
                Ok::<(), IoError>(())
            })
        })
        .collect();
    for h in handles {
        h.await.map_err(|_| "task aborted")?.map_err(|_| "request failed")?;
    }
    let t2 = crate::time::now_ns();
    Ok(((t1 - t0) / 1000, (t2 - t1) / 1000))
}

/// Print the request rate: 1000 reads and 1000 writes (to the test blocks only), one at a time
/// and from 8 tasks.
async fn disk_speed(d: &'static Disk, blocks: &[u32]) -> Check {
    let all: &'static [u32] = Vec::leak((0..d.block_count().min(1000)).collect());
    let test: &'static [u32] = Vec::leak(blocks.to_vec());
    let (r1, r8) = disk_timed(d, false, all).await?;
    let (w1, w8) = disk_timed(d, true, test).await?;
    kprintln!(
        "selftest: disk 1000 x 4 KiB, ms (1 task / 8 tasks): reads {}.{:03} / {}.{:03}, writes {}.{:03} / {}.{:03}",
        r1 / 1000, r1 % 1000, r8 / 1000, r8 % 1000, w1 / 1000, w1 % 1000, w8 / 1000, w8 % 1000
    );
    Ok(())
}

const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];

/// An Ethernet broadcast frame carrying an ARP request: who has `target`? tell `ip` (at `mac`).
fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&ETHERTYPE_ARP);
    // Ethernet (1), IPv4 (0x0800), address lengths 6 and 4, operation 1 (request).
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    // Target hardware address unknown (zero).
    f[38..42].copy_from_slice(&target);
    f
}

/// The sender's MAC if `frame` is an ARP reply from `from` to `to`.
fn arp_reply_from(frame: &[u8], from: [u8; 4], to: [u8; 4]) -> Option<[u8; 6]> {
    let ok = frame.len() >= 42
        && frame[12..14] == ETHERTYPE_ARP
        && frame[14..22] == [0, 1, 0x08, 0x00, 6, 4, 0, 2]
        && frame[28..32] == from
        && frame[38..42] == to;
    ok.then(|| frame[22..28].try_into().expect("6 bytes"))
}

/// ARP for the gateway: transmit, then wait (on the receive interrupt) for the reply, asking
/// again each second in case a request was lost.
async fn net_arp(nic: &'static Nic) -> Check {
    let request = arp_request(nic.mac(), GUEST_IP, GATEWAY_IP);
    let before = nic.stats();
    for _ in 0..5 {
        // With the network stack running, its task owns the receive ring: ask through it.
        let reply = if let Some(root) = crate::net::netns::root() {
            // A kernel task cannot block as a process does: it looks every few ms.
            match root.arp_request(GATEWAY_IP) {
                true => retry(1000, || root.arp_reply(GATEWAY_IP).ok_or(Errno::EAGAIN))
                    .await
                    .map_err(drop),
                false => Err(()),
            }
        } else {
            nic.send(&request).await.map_err(|_| "transmit failed")?;
            timeout_ms(1000, async {
                loop {
                    let frame = nic.recv().await;
                    if let Some(mac) = arp_reply_from(&frame, GATEWAY_IP, GUEST_IP) {
                        return mac;
                    }
                }
            })
            .await
            .map_err(drop)
        };
        if let Ok(mac) = reply {
            let s = nic.stats();
            kprintln!(
                "selftest: net tx {} rx {} dropped {} irqs {} (irq line {})",
                s.tx_packets - before.tx_packets,
                s.rx_packets - before.rx_packets,
                s.rx_dropped,
                s.irqs - before.irqs,
                nic.irq
            );
            ensure(s.irqs > before.irqs, "no NIC interrupt")?;
            kprintln!(
                "selftest: net_arp ok (gateway {}.{}.{}.{} is at {})",
                GATEWAY_IP[0],
                GATEWAY_IP[1],
                GATEWAY_IP[2],
                GATEWAY_IP[3],
                MacFmt(mac)
            );
            return Ok(());
        }
    }
    Err("no ARP reply from the gateway in 5 s")
}

/// Call `f` until it gives something other than `EAGAIN`, every few milliseconds, for at
/// most `ms` (then `ETIMEDOUT`): a kernel task has no process to block, so it polls the
/// sockets' non-blocking operations (in either network design).
async fn retry<T>(ms: u64, mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    let end = crate::time::now_ns() + ms * 1_000_000;
    loop {
        match f() {
            Err(Errno::EAGAIN) if crate::time::now_ns() < end => {
                crate::exec::EXECUTOR.timers().sleep(2_000_000).await
            }
            Err(Errno::EAGAIN) => return Err(Errno::ETIMEDOUT),
            r => return r,
        }
    }
}

/// TCP over the stack's loopback: a listener on 127.0.0.1:7, a client connecting to it (and
/// one to 10.0.2.15), bytes both ways, graceful close.
async fn net_loopback() -> Check {
    use crate::net::socket::Socket;
    use abi::syscall::net::SockAddrIn;
    let root = crate::net::netns::root().ok_or("no stack")?;
    let new = |stream| Socket::new(root.clone(), stream).map_err(|_| "socket");
    let server = new(true)?;
    server.bind(&SockAddrIn::new([0; 4], 7)).map_err(|_| "bind")?;
    let dup = new(true)?;
    ensure(dup.bind(&SockAddrIn::new([0; 4], 7)).is_err(), "second bind to port 7 accepted")?;
    server.listen(4).map_err(|_| "listen")?;
    for target in [[127, 0, 0, 1], GUEST_IP] {
        let client = new(true)?;
        client.connect_start(&SockAddrIn::new(target, 7)).map_err(|_| "connect")?;
        retry(5000, || client.connect_result().unwrap_or(Err(Errno::EAGAIN)))
            .await
            .map_err(|_| "connect timed out or refused")?;
        let (conn, _peer) =
            retry(5000, || server.accept(How::NoWait)).await.map_err(|_| "accept")?;
        client.send(b"ping", None, How::NoWait).map_err(|_| "send")?;
        let mut buf = [0u8; 16];
        let (n, _) = retry(5000, || conn.recv(&mut buf, How::NoWait)).await.map_err(|_| "recv")?;
        ensure(&buf[..n] == b"ping", "wrong bytes")?;
        conn.send(b"pong", None, How::NoWait).map_err(|_| "send back")?;
        let (n, _) =
            retry(5000, || client.recv(&mut buf, How::NoWait)).await.map_err(|_| "recv")?;
        ensure(&buf[..n] == b"pong", "wrong reply")?;
        drop(client);
        let (n, _) =
            retry(5000, || conn.recv(&mut buf, How::NoWait)).await.map_err(|_| "no FIN")?;
        ensure(n == 0, "data after close")?;
    }
    let refused = new(true)?;
    refused.connect_start(&SockAddrIn::new([127, 0, 0, 1], 9)).map_err(|_| "connect")?;
    let r = retry(5000, || match refused.connect_result() {
        None => Err(Errno::EAGAIN),
        Some(r) => Ok(r),
    })
    .await
    .map_err(|_| "refusal timed out")?;
    ensure(r == Err(Errno::ECONNREFUSED), "closed port not refused")?;
    Ok(())
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
    match crate::blk::disk() {
        Some(d) => check!(
            "disk",
            timeout_ms(30_000, disk(d)).await.unwrap_or(Err("timed out (a lost interrupt?)"))
        ),
        None => kprintln!("selftest: disk skipped (no disk)"),
    }
    match crate::net::nic() {
        Some(n) => match net_arp(n).await {
            // net_arp prints its own `ok` line (with the gateway's address).
            Ok(()) => {}
            Err(why) => {
                kprintln!("selftest: FAIL net_arp: {}", why);
                failed.get_or_insert("net_arp");
            }
        },
        None => kprintln!("selftest: net_arp skipped (no nic)"),
    }
    if crate::net::netns::root().is_some() {
        check!("net_loopback", net_loopback().await);
    }
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

/// Take two locks against the order (`fault=lockorder`): the checker of a debug kernel panics,
/// naming both; a release kernel checks nothing, says so and goes on.
pub fn trigger_lock_order_violation() {
    use runtime::lockorder::{Mutex, Rank};
    let (socket, stack) = (Mutex::new(Rank::Socket, ()), Mutex::new(Rank::Stack, ()));
    let _stack = stack.lock();
    let _socket = socket.lock();
    kprintln!("fault=lockorder: the lock order is not checked in a release build");
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
