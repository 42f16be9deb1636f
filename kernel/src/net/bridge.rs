//! The in-kernel bridge: a learning Ethernet switch between the network namespaces' stacks,
//! one port each (its id is the namespace's id; the root's port carries `192.168.1.1`).
//!
//! [`Bridge::forward`] takes a frame a port sent: it learns the source MAC's port, then queues
//! the frame on the ports it is for: every other port for a broadcast or multicast, the
//! learnt port for a known unicast (nothing if that is the sender's own), every other port
//! for an unknown one (flooding, as a switch does). Frames cross as memory: the frame moves
//! into the queue of its one destination, or is copied into each; the NIC never sees them.
//! Each port's queue is bounded ([`QUEUE_MAX`]): a frame for a full queue is dropped and
//! counted, as a switch drops what a port cannot take (TCP retransmits).
//!
//! [`Bridge::take`] gives a port's next frame to its stack's device (`device::Port`). After
//! queuing, the bridge notifies the port's wait queue, which wakes that stack's task: it never
//! calls into a stack, and never takes a stack's lock.
//!
//! # Locks
//! One spin lock (rank `Bridge`), taken by a stack's device under that stack's lock (and by
//! `arping` with none held), for a few map operations; under it only the heap is used. It is
//! interrupt-safe (an `IrqMutex`: the sleep design's interrupt handlers run the root's stack,
//! whose router looks at its port), so the ports' wait queues are notified after it is
//! released (a wait queue's lock is not interrupt-safe). This
//! module depends on nothing of the kernel's, so it is unit-tested on the host
//! (`mkimage/tests/kernel_net.rs`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use runtime::lockorder::{IrqMutex as Mutex, Rank};
use runtime::sync::WaitQueue;

/// Frames a port's queue holds at most (a TCP window of 64 KiB is 45 full frames).
pub const QUEUE_MAX: usize = 128;
/// MACs the switch remembers at most (one per namespace is all the kernel's stacks use).
const FDB_MAX: usize = 256;

/// A port's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames the port sent into the bridge.
    pub sent: u64,
    /// Frames queued for the port.
    pub queued: u64,
    /// Frames for the port dropped because its queue was full.
    pub dropped: u64,
}

struct PortState {
    queue: VecDeque<Vec<u8>>,
    /// Notified when a frame is queued: the stack's task waits on it.
    ready: Arc<WaitQueue>,
    stats: PortStats,
}

struct Switch {
    ports: BTreeMap<u32, PortState>,
    /// Which port each MAC was last seen on.
    fdb: BTreeMap<[u8; 6], u32>,
}

pub struct Bridge {
    sw: Mutex<Switch>,
}

/// The one bridge of the machine.
pub static BRIDGE: Bridge = Bridge::new();

impl Default for Bridge {
    fn default() -> Self {
        Self::new()
    }
}

impl Bridge {
    pub const fn new() -> Bridge {
        Bridge {
            sw: Mutex::new(Rank::Bridge, Switch { ports: BTreeMap::new(), fdb: BTreeMap::new() }),
        }
    }

    /// Plug in port `id`; `ready` is notified whenever a frame is queued for it.
    pub fn plug(&self, id: u32, ready: Arc<WaitQueue>) {
        let port = PortState { queue: VecDeque::new(), ready, stats: PortStats::default() };
        self.sw.lock().ports.insert(id, port);
    }

    /// Unplug port `id`: its queued frames and the MACs learnt on it are forgotten.
    pub fn unplug(&self, id: u32) {
        let gone = {
            let mut sw = self.sw.lock();
            sw.fdb.retain(|_, p| *p != id);
            sw.ports.remove(&id)
        };
        drop(gone); // the frames are freed outside the lock
    }

    /// Port `from` sends `frame` (see the module docs).
    pub fn forward(&self, from: u32, frame: Vec<u8>) {
        if frame.len() < 14 {
            return;
        }
        let dst: [u8; 6] = frame[0..6].try_into().expect("6 bytes");
        let src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        let mut sw = self.sw.lock();
        let Switch { ports, fdb } = &mut *sw;
        let Some(p) = ports.get_mut(&from) else { return };
        p.stats.sent += 1;
        if src[0] & 1 == 0 {
            if fdb.len() >= FDB_MAX && !fdb.contains_key(&src) {
                fdb.clear();
            }
            fdb.insert(src, from);
        }
        let known = match dst[0] & 1 {
            0 => fdb.get(&dst).copied(),
            _ => None,
        };
        let targets: Vec<u32> = match known {
            Some(to) if to == from => return,
            Some(to) => alloc::vec![to],
            None => ports.keys().copied().filter(|&id| id != from).collect(),
        };
        let mut frame = Some(frame);
        // Notified once the bridge's lock is released: it is interrupt-safe, a wait queue's
        // is not (docs/locks.md).
        let mut notify: Vec<Arc<WaitQueue>> = Vec::new();
        for (i, to) in targets.iter().enumerate() {
            let Some(port) = ports.get_mut(to) else { continue };
            if port.queue.len() >= QUEUE_MAX {
                port.stats.dropped += 1;
                continue;
            }
            // The last destination takes the frame itself; the others a copy.
            let f = match i + 1 == targets.len() {
                true => frame.take(),
                false => frame.clone(),
            };
            let Some(f) = f else { continue };
            port.queue.push_back(f);
            port.stats.queued += 1;
            notify.push(port.ready.clone());
        }
        drop(sw);
        for q in notify {
            q.notify_all();
        }
    }

    /// Port `id`'s next frame.
    pub fn take(&self, id: u32) -> Option<Vec<u8>> {
        self.sw.lock().ports.get_mut(&id)?.queue.pop_front()
    }

    /// Port `id`'s counters (`None`: not plugged in).
    pub fn stats(&self, id: u32) -> Option<PortStats> {
        self.sw.lock().ports.get(&id).map(|p| p.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn mac(n: u8) -> [u8; 6] {
        [2, 0, 0, 0, 1, n]
    }

    fn frame(src: [u8; 6], dst: [u8; 6], tag: u8) -> Vec<u8> {
        let mut f = vec![tag; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f
    }

    fn drain(b: &Bridge, id: u32) -> Vec<u8> {
        core::iter::from_fn(|| b.take(id)).map(|f| f[14]).collect()
    }

    fn bridge(ports: &[u32]) -> (Bridge, Vec<Arc<WaitQueue>>) {
        let b = Bridge::new();
        let qs: Vec<Arc<WaitQueue>> = ports.iter().map(|_| Arc::new(WaitQueue::new())).collect();
        for (&id, q) in ports.iter().zip(&qs) {
            b.plug(id, q.clone());
        }
        (b, qs)
    }

    #[test]
    fn broadcasts_flood_and_unicast_follows_what_was_learnt() {
        let (b, _) = bridge(&[1, 2, 3]);
        // A broadcast from 2 reaches 1 and 3, and teaches the bridge where 2 is.
        b.forward(2, frame(mac(2), [0xff; 6], 10));
        assert_eq!((drain(&b, 1), drain(&b, 2), drain(&b, 3)), (vec![10], vec![], vec![10]));
        // An answer from 1 to 2 goes to 2 only; a frame from 3 to an unknown MAC floods.
        b.forward(1, frame(mac(1), mac(2), 11));
        b.forward(3, frame(mac(3), mac(9), 12));
        assert_eq!((drain(&b, 1), drain(&b, 2), drain(&b, 3)), (vec![12], vec![11, 12], vec![]));
        // 1 was learnt meanwhile.
        b.forward(3, frame(mac(3), mac(1), 13));
        assert_eq!((drain(&b, 1), drain(&b, 2)), (vec![13], vec![]));
        // A frame for the sender's own port goes nowhere; a runt neither.
        b.forward(3, frame(mac(3), mac(3), 14));
        b.forward(3, vec![0; 13]);
        assert_eq!((drain(&b, 1), drain(&b, 2), drain(&b, 3)), (vec![], vec![], vec![]));
        assert_eq!(b.stats(3).map(|s| s.sent), Some(3));
    }

    #[test]
    fn queues_are_bounded_and_unplugging_forgets() {
        let (b, _) = bridge(&[1, 2]);
        b.forward(2, frame(mac(2), [0xff; 6], 0));
        assert_eq!(drain(&b, 1), vec![0]);
        for i in 0..QUEUE_MAX + 5 {
            b.forward(1, frame(mac(1), mac(2), i as u8));
        }
        let s = b.stats(2).unwrap();
        assert_eq!((s.queued, s.dropped), (QUEUE_MAX as u64, 5));
        assert_eq!(drain(&b, 2).len(), QUEUE_MAX);
        b.unplug(2);
        assert_eq!(b.take(2), None);
        assert_eq!(b.stats(2), None);
        // 2's MAC is forgotten: a frame to it floods (to nobody but 3, plugged in now).
        let q = Arc::new(WaitQueue::new());
        b.plug(3, q);
        b.forward(1, frame(mac(1), mac(2), 7));
        assert_eq!(drain(&b, 3), vec![7]);
        // An unplugged port sends nothing.
        b.forward(2, frame(mac(2), [0xff; 6], 8));
        assert_eq!((drain(&b, 1), drain(&b, 3)), (vec![], vec![]));
    }

    #[test]
    fn a_queued_frame_notifies_its_port() {
        let (b, qs) = bridge(&[1, 2]);
        let (t1, t2) = (qs[0].ticket(), qs[1].ticket());
        b.forward(1, frame(mac(1), [0xff; 6], 1));
        let ready = |q: &WaitQueue, t| {
            let mut w = core::pin::pin!(q.wait(t));
            testkit::poll_once(w.as_mut()).is_ready()
        };
        assert!(ready(&qs[1], t2), "port 2 not notified");
        assert!(!ready(&qs[0], t1), "the sender was notified");
    }
}
