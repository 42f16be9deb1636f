//! The event design's driver (`net=event`, the default): each stack has an executor task,
//! [`run`], which polls it whenever a waker fires; a system call waits on a socket's wait
//! queue, which smoltcp's wakes notify (`net::socket`'s module docs). Interrupt handlers only
//! wake wakers, so the stack's lock (rank `Stack`) is taken in task and process context only,
//! with interrupts on.
//!
//! Compare with `sleep.rs` beside it: the same five operations of [`Drive`].

use super::{Drive, How, StackLock};
use crate::exec::{timeout_ms, EXECUTOR};
use crate::net::bridge::BRIDGE;
use crate::net::device;
use crate::net::stack::{NetStack, Stack};
use crate::proc::bridge;
use abi::syscall::Errno;
use alloc::sync::Arc;
use core::future::poll_fn;
use core::pin::pin;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;
use smoltcp::time::Duration;

pub struct Event;

/// Up to this many sockets, a send's frames leave in the system call itself ([`Event`]'s
/// `kick_sent`): a listener, a few connections and their closing ones.
const INLINE_SEND_SOCKETS: usize = 8;

impl Drive for Event {
    fn lock(stack: Stack) -> StackLock {
        StackLock::Event(Mutex::new(Rank::Stack, Some(stack)))
    }

    /// Plug its port into the bridge and spawn its task.
    fn start(net: &Arc<NetStack>) {
        BRIDGE.plug(net.id, net.port_ready.clone());
        crate::exec::spawn(run(net.clone()));
    }

    /// Notify the task's kick queue: it polls from its own context.
    fn kick(net: &NetStack) {
        net.kick_queue.notify_all();
    }

    /// A send on a stack of a few sockets goes out now, in the caller's context (as a Unix
    /// kernel sends from `send` itself): a lone reply leaves before its process blocks for
    /// the next request, not after the task's next turn. On a stack of more, the frames are
    /// left to the task's next poll, in one batch: an egress pass looks at every socket, and a
    /// server answering 32 connections in a row would pay one per reply. (Measured: sending
    /// inline always, +23% requests/s at one connection and -37% at 32.) Then the task is
    /// kicked: it recomputes its timer (what was sent may have armed a retransmission).
    fn kick_sent(net: &NetStack) {
        net.with(|s| {
            if s.sockets.len() <= INLINE_SEND_SOCKETS {
                s.flush();
            }
        });
        net.kick_queue.notify_all();
    }

    /// In one section under the stack lock: the check, and when it finds nothing, `arm` and a
    /// ticket on `q`; then a wait on `q` for a notification after the ticket (no change after
    /// the check is missed). The wait is a future, blocked on by the process's bridge.
    fn wait<T>(
        net: &NetStack,
        q: &WaitQueue,
        mut arm: impl FnMut(&mut Stack),
        how: How,
        mut check: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>, Errno> {
        let f = async {
            loop {
                let r = net
                    .with_caller(|s| match check(s) {
                        Some(v) => Ok(v),
                        None => {
                            arm(s);
                            Err(q.ticket())
                        }
                    })
                    .ok_or(Errno::ENETUNREACH)?;
                match r {
                    Ok(v) => return Ok(v),
                    Err(ticket) => q.wait(ticket).await,
                }
            }
        };
        match how {
            How::NoWait => bridge::poll_once(f)?.map(Some),
            How::Block => bridge::block_on_interruptible(f)?.map(Some),
            How::Within(ms) => match bridge::block_on_interruptible(timeout_ms(ms, f))? {
                Ok(r) => r.map(Some),
                Err(_elapsed) => Ok(None),
            },
        }
    }

    fn notify(q: &WaitQueue) {
        q.notify_all();
    }

    /// Nothing: smoltcp's wakes (in the poll) notified the sockets' queues.
    fn after_poll(_net: &NetStack) {}
}

/// A stack's task (see `net::stack`'s module docs); it ends once the stack is torn down.
async fn run(net: Arc<NetStack>) {
    use futures_util::future::{pending, select, Either};
    loop {
        let kick = net.kick_queue.ticket();
        let port = net.port_ready.ticket();
        let Some((delay, tx_full, pending_frames)) = net.with(|s| {
            let d = s.poll();
            (d, device::Link::tx_full(&s.dev), device::Link::pending(&s.dev))
        }) else {
            return;
        };
        if pending_frames || delay == Some(Duration::ZERO) {
            // More to do at once (frames looped back to ourselves): but let others run first.
            runtime::yield_now().await;
            continue;
        }
        // The first of: a kick, a frame on the bridge port, a received frame, a free transmit
        // slot (only waited for when the ring was full), smoltcp's timer (only when it has
        // one). The others are dropped, which deregisters them.
        let kicked = net.kick_queue.wait(kick);
        let bridged = net.port_ready.wait(port);
        let rx = match net.cards {
            Some(cards) => Either::Left(poll_fn(move |cx| cards.poll_rx_ready(cx))),
            None => Either::Right(pending()),
        };
        let tx = match (net.cards, tx_full) {
            (Some(cards), true) => Either::Left(poll_fn(move |cx| cards.poll_tx_ready(cx))),
            _ => Either::Right(pending()),
        };
        let timer = match delay {
            Some(d) => Either::Left(EXECUTOR.timers().sleep(d.total_micros() * 1000)),
            None => Either::Right(pending()),
        };
        select(
            select(pin!(kicked), pin!(bridged)),
            select(pin!(rx), select(pin!(tx), pin!(timer))),
        )
        .await;
    }
}
