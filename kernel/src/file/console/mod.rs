//! The consoles (ttys): one virtual console ([`Vt`]) for the root (made at boot: `/console`
//! opens it) and one for each namespace `attach` was asked to bring to the front. Each has its
//! own line discipline ([`super::ldisc`]), queue of completed input lines, foreground process
//! group (`setfg`; `^C` kills it) and scrollback ring ([`scrollback`]).
//!
//! **Input.** One kernel task, the input task, owns the physical input (the keyboard's and the
//! serial port's interrupt queues) and feeds every byte to the console in front, whose line
//! discipline echoes it and queues complete lines for `read`. The task alone decides which
//! console is in front ([`fronts::Fronts`]): `attach` sends it a request ([`request_front`])
//! and waits for it to be done ([`switched`]); `^P ^Q` typed at the keyboard
//! ([`fronts::DetachKeys`]) goes back to the console the user came from; a console nobody has
//! open any more (its shell exited) or whose namespace retired ([`forget`]) leaves the front
//! the same way. The scheduler knows nothing of this: a shell whose console is behind simply
//! gets no input.
//!
//! **Output.** Writing to a console in front goes to the screen and the serial port (the
//! kernel log's devices); to one behind, into its ring (the last 64 KiB). When a console comes
//! to the front, the task shows a separator line and replays its ring, under the console's
//! output lock, so nothing written meanwhile is lost or shown out of order.
//!
//! A key press, end to end: IRQ 1 -> `ps2::handle_irq` pushes the scancode and wakes the
//! input task -> the keyboard's stream (`ps2::chars`, merged with the serial port's bytes by
//! `futures_util::stream::select`) decodes a character -> [`fronts::DetachKeys::feed`] ->
//! the front console's `LineDiscipline::feed` -> echo; on Enter the line goes into that
//! console's input queue and `notify_all` wakes a process blocked in `read` on it.
//!
//! `^C` ([`Vt::interrupt`]): the line being typed is discarded and `^C` echoed; then every
//! process of the console's foreground group is killed (`proc::jobs::kill_group`), and the
//! input already queued for them is discarded. With no foreground group (or one with no live
//! process), `^C` delivers an empty line instead, so a shell waiting at its prompt simply
//! prompts again.
//!
//! `poll` on a console ([`Vt::poll_read`]) reports it readable only when a complete record is
//! queued (canonical mode; there is no raw mode), and waits on the same queue as `read`.
//!
//! Locks (`docs/locks.md`), none held across an `.await`: the table of consoles (`ConsoleVts`)
//! and the switch requests (`ConsoleSwitch`), leaves; a console's input (`ConsoleInput`), with
//! its readability queue's (`WaitQueue`) under it for tickets and `poll` registrations; a
//! console's output (`ConsoleOutput`), with the log's under it. Any CPU may write to a console
//! while the task moves the front: the output lock orders the two.

pub mod fronts;
pub mod scrollback;

use super::ldisc::{Action, InputQueue, LineDiscipline};
use super::poll::PollWait;
use crate::mm::budget::Charge;
use crate::ns::Namespace;
use crate::proc::{self, Pid};
use abi::syscall::ns::{MAX_LIVE, ROOT};
use abi::syscall::Errno;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::{poll_fn, ready, Future};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use core::task::{Poll, Waker};
use drivers::{ps2, serial};
use fronts::{DetachKeys, Fronts};
use futures_util::{stream, Stream, StreamExt};
use runtime::irq::IrqWaker;
use runtime::lockorder::{Mutex, Rank};
use runtime::sync::WaitQueue;
use scrollback::{Scrollback, CAPACITY};

/// A virtual console (see the module docs).
pub struct Vt {
    /// The namespace whose console this is.
    pub ns: u32,
    input: Mutex<Input>,
    /// Notified whenever a record is queued.
    readable: WaitQueue,
    /// The process group `^C` kills (its leader's global pid; 0: none).
    fg: AtomicU32,
    out: Mutex<Output>,
    /// Open files on it ([`Open`]): 0 means no process has it open.
    opens: AtomicU32,
    /// Its namespace retired ([`forget`]): it never comes to the front again.
    gone: AtomicBool,
    /// An `attach` is starting a shell on it ([`Vt::claim_start`]).
    starting: AtomicBool,
    /// The ring's memory, charged to the kernel-memory budget (none for the root's).
    _charge: Option<Charge>,
}

struct Input {
    ld: LineDiscipline,
    queue: InputQueue,
}

struct Output {
    /// On the screen: written bytes go there, not into the ring.
    front: bool,
    ring: Scrollback,
}

/// The consoles by namespace id (slot 0 unused).
static VTS: Mutex<[Option<Arc<Vt>>; MAX_LIVE + 1]> =
    Mutex::new(Rank::ConsoleVts, [const { None }; MAX_LIVE + 1]);
/// Requests to bring a console to the front, oldest first, with their sequence numbers.
static REQUESTS: Mutex<VecDeque<(u64, Arc<Vt>)>> = Mutex::new(Rank::ConsoleSwitch, VecDeque::new());
/// Most requests waiting (each comes from a process blocked until it is done).
const MAX_REQUESTS: usize = proc::sched::NPROC;
/// The last request number given, and the last one the input task has carried out.
static REQUESTED: AtomicU64 = AtomicU64::new(0);
static DONE: AtomicU64 = AtomicU64::new(0);
/// Notified when a request is done.
static SWITCHED: WaitQueue = WaitQueue::new();
/// The input task's waker for requests and for [`kick`]s (woken from anywhere, lock-free).
static WAKE_TASK: IrqWaker = IrqWaker::new();
/// Something may have made a console unfit for the front (a last close, a namespace gone).
static KICKED: AtomicBool = AtomicBool::new(false);
/// The namespace whose console is in front (for `/proc/ns` and the tests' eyes).
static FRONT_NS: AtomicU32 = AtomicU32::new(ROOT);
static STARTED: AtomicBool = AtomicBool::new(false);

impl Vt {
    fn new(ns: u32, buf: Vec<u8>, charge: Option<Charge>, front: bool) -> Vt {
        Vt {
            ns,
            input: Mutex::new(
                Rank::ConsoleInput,
                Input { ld: LineDiscipline::new(), queue: InputQueue::new() },
            ),
            readable: WaitQueue::new(),
            fg: AtomicU32::new(0),
            out: Mutex::new(
                Rank::ConsoleOutput,
                Output { front, ring: Scrollback::with_buffer(buf) },
            ),
            opens: AtomicU32::new(0),
            gone: AtomicBool::new(false),
            starting: AtomicBool::new(false),
            _charge: charge,
        }
    }

    /// Wait for input; returns bytes of one line at most (the rest stays for the next read),
    /// or 0 for an end of file (`^D` at an empty line).
    pub async fn read(&self, buf: &mut [u8]) -> usize {
        loop {
            let ticket = {
                let mut i = self.input.lock();
                if let Some(n) = i.queue.read(buf) {
                    return n;
                }
                self.readable.ticket()
            };
            self.readable.wait(ticket).await;
        }
    }

    /// For `poll`: whether a read would return at once (a complete line, or an end of file,
    /// is queued). With a waker and nothing queued, the waker is registered in `reg` for the
    /// next record: the ticket is taken under the queue's lock with the check, and
    /// [`Vt::deliver`] queues under that lock and notifies after (see [`PollWait`]).
    pub fn poll_read<'a>(&'a self, w: Option<(&Waker, &mut PollWait<'a>)>) -> bool {
        let i = self.input.lock();
        let ready = i.queue.readable();
        if let (false, Some((w, reg))) = (ready, w) {
            reg.arm(&self.readable, self.readable.ticket(), w);
        }
        ready
    }

    /// Print `bytes`: on the screen when in front, else into the ring. Bytes that are not
    /// UTF-8 show as U+FFFD.
    pub fn write(&self, bytes: &[u8]) {
        // A bounded piece at a time: the log's lock keeps interrupts off while it is held.
        for piece in bytes.chunks(256) {
            let mut out = self.out.lock();
            if out.front {
                show(piece);
            } else {
                out.ring.push(piece);
            }
        }
    }

    /// Make process group `pgid` (global; 0: none) the one `^C` kills.
    pub fn set_foreground(&self, pgid: Pid) {
        self.fg.store(pgid, SeqCst);
    }

    /// Whether it may be in front: the root's always; another while its namespace lives and
    /// some process has it open.
    fn usable(&self) -> bool {
        self.ns == ROOT || (!self.gone.load(SeqCst) && self.opens.load(SeqCst) > 0)
    }

    /// For `attach`: true when nobody has it open and no other `attach` is starting a shell
    /// on it; the caller starts one, then calls [`Vt::end_start`].
    pub fn claim_start(&self) -> bool {
        self.opens.load(SeqCst) == 0 && !self.starting.swap(true, SeqCst)
    }

    pub fn end_start(&self) {
        self.starting.store(false, SeqCst);
    }

    /// One input byte (the input task, for the console in front).
    fn key(&self, b: u8) {
        let action = self.input.lock().ld.feed(b);
        action.echo(|s| self.write(s));
        match action {
            Action::Line(record) | Action::Eof(record) => self.deliver(record),
            Action::Interrupt => self.interrupt(),
            Action::None | Action::Echo(_) | Action::Erase(_) => {}
        }
    }

    fn deliver(&self, record: Vec<u8>) {
        if self.input.lock().queue.push(record) {
            self.readable.notify_all();
        }
    }

    /// `^C`: kill the foreground group, or deliver an empty line without one.
    fn interrupt(&self) {
        let fg = self.fg.load(SeqCst);
        if fg != 0 && proc::jobs::kill_group(fg) > 0 {
            self.input.lock().queue.clear(); // typed ahead for the job that was just killed
        } else {
            self.deliver(b"\n".to_vec());
        }
    }

    /// Off the screen: from now on what is written goes into the ring.
    fn leave_front(&self) {
        self.out.lock().front = false;
    }

    /// On the screen: a separator, then what the ring kept, then what is written. Under the
    /// output lock, so a write meanwhile comes after the replay.
    fn come_front(&self) {
        let mut out = self.out.lock();
        out.front = true;
        let lost = out.ring.lost();
        let ns = self.ns;
        match (ns == ROOT, lost) {
            (true, 0) => crate::kprint!("\n--- ns {ns} console (the root) ---\n"),
            (true, n) => {
                crate::kprint!("\n--- ns {ns} console (the root; {n} bytes not kept) ---\n")
            }
            (false, 0) => crate::kprint!("\n--- ns {ns} console (^P ^Q: back) ---\n"),
            (false, n) => {
                crate::kprint!("\n--- ns {ns} console (^P ^Q: back; {n} bytes not kept) ---\n")
            }
        }
        out.ring.drain(|kept| {
            for piece in kept.chunks(256) {
                show(piece);
            }
        });
    }
}

/// A console open as a file: counts the opens, so that `attach` knows whether a shell must be
/// started and the input task whether the console may stay in front.
pub struct Open(Arc<Vt>);

impl Open {
    pub fn new(vt: Arc<Vt>) -> Open {
        vt.opens.fetch_add(1, SeqCst);
        Open(vt)
    }

    pub fn vt(&self) -> &Arc<Vt> {
        &self.0
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if self.0.opens.fetch_sub(1, SeqCst) == 1 {
            kick(); // the last one: it may have to leave the front
        }
    }
}

/// Wake the input task to look at the consoles again. Lock-free: called where files are
/// dropped, under any lock.
fn kick() {
    KICKED.store(true, SeqCst);
    WAKE_TASK.wake();
}

/// The ring's storage, or `None` when the heap cannot give it.
fn ring_buffer() -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(CAPACITY).ok()?;
    buf.resize(CAPACITY, 0);
    Some(buf)
}

/// The root's console (made at first use, in front).
pub fn root() -> Arc<Vt> {
    if let Some(vt) = &VTS.lock()[ROOT as usize] {
        return vt.clone();
    }
    // Boot-time memory: a ring that keeps nothing rather than a panic when there is none.
    let vt = Arc::new(Vt::new(ROOT, ring_buffer().unwrap_or_default(), None, true));
    VTS.lock()[ROOT as usize].get_or_insert(vt).clone()
}

/// The console of namespace `nsid`, made (behind, with its ring charged to the kernel-memory
/// budget: ENOMEM when refused) if it has none. The caller holds the namespace.
pub fn for_namespace(nsid: u32) -> Result<Arc<Vt>, Errno> {
    if nsid == ROOT {
        return Ok(root());
    }
    if let Some(vt) = VTS.lock().get(nsid as usize).ok_or(Errno::ESRCH)? {
        return Ok(vt.clone());
    }
    let charge = Charge::new(CAPACITY).ok_or(Errno::ENOMEM)?;
    let buf = ring_buffer().ok_or(Errno::ENOMEM)?;
    let vt = Arc::new(Vt::new(nsid, buf, Some(charge), false));
    // Another attach may have made one meanwhile: that one stays (and ours is dropped).
    let kept = VTS.lock()[nsid as usize].get_or_insert(vt).clone();
    Ok(kept)
}

/// What `/console` opens for a process of namespace `ns`: the console of the nearest
/// namespace from `ns` up that has one (the root's, at the latest).
pub fn nearest(ns: &Namespace) -> Arc<Vt> {
    let mut at = Some(ns);
    while let Some(n) = at {
        if let Some(Some(vt)) = VTS.lock().get(n.id as usize) {
            return vt.clone();
        }
        at = n.parent.as_deref();
    }
    root()
}

/// Namespace `nsid` is retiring (`ns::retire`, before its id is freed): its console goes
/// from the table and from the front.
pub fn forget(nsid: u32) {
    if nsid == ROOT {
        return;
    }
    let vt = VTS.lock().get_mut(nsid as usize).and_then(Option::take);
    if let Some(vt) = vt {
        vt.gone.store(true, SeqCst);
        kick();
        drop(vt); // after the table's lock (the input task may hold the last reference)
    }
}

/// The namespace whose console is in front.
pub fn front_ns() -> u32 {
    FRONT_NS.load(SeqCst)
}

/// Ask the input task to bring `vt` to the front; the request's number, for [`switched`].
/// `EAGAIN` when too many requests wait; `ENODEV` when no input task runs (the modes without
/// a console).
pub fn request_front(vt: Arc<Vt>) -> Result<u64, Errno> {
    if !STARTED.load(SeqCst) {
        return Err(Errno::ENODEV);
    }
    let seq = {
        let mut q = REQUESTS.lock();
        if q.len() >= MAX_REQUESTS {
            return Err(Errno::EAGAIN);
        }
        // Numbered under the lock: the queue's order is the numbers' order.
        let seq = REQUESTED.fetch_add(1, SeqCst) + 1;
        q.push_back((seq, vt));
        seq
    };
    WAKE_TASK.wake();
    Ok(seq)
}

/// Completes once the input task has carried out request `seq` (and every one before it).
pub async fn switched(seq: u64) {
    loop {
        // Taken before looking: a request done after the look moves the ticket on.
        let ticket = SWITCHED.ticket();
        if DONE.load(SeqCst) >= seq {
            return;
        }
        SWITCHED.wait(ticket).await;
    }
}

/// Start the input task (once; later calls do nothing). It takes over the serial and
/// keyboard input queues, so it is not started in modes that read them directly (`selftest`).
pub fn start() {
    if !STARTED.swap(true, SeqCst) {
        crate::exec::spawn(input_task());
    }
}

/// Show `bytes` on the screen and the serial port.
fn show(bytes: &[u8]) {
    crate::log::with(|out| {
        use core::fmt::Write;
        for chunk in bytes.utf8_chunks() {
            let _ = out.write_str(chunk.valid());
            if !chunk.invalid().is_empty() {
                let _ = out.write_char(char::REPLACEMENT_CHARACTER);
            }
        }
    });
}

/// Every input byte from both devices, in arrival order per device: the serial port's bytes
/// and the keyboard's ASCII characters (the line discipline is byte-oriented). The task waits
/// on both at once, with one waker registered in both interrupt queues.
fn input() -> impl Stream<Item = u8> + Unpin {
    let keys = ps2::chars().filter(|c| ready(c.is_ascii())).map(|c| c as u8);
    stream::select(serial::input(), keys)
}

/// A console as [`Fronts`] holds it: compared by identity.
#[derive(Clone)]
struct Front(Arc<Vt>);

impl PartialEq for Front {
    fn eq(&self, other: &Front) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

enum Event {
    Byte(u8),
    Switch(u64, Arc<Vt>),
    Kick,
}

/// What woke the task: a request first (`attach` waits for it), then a kick, then input.
fn next_event(
    input: &mut (impl Stream<Item = u8> + Unpin),
) -> impl Future<Output = Option<Event>> + '_ {
    poll_fn(move |cx| {
        // Registered before looking: a request or kick after the look wakes the task again.
        WAKE_TASK.register(cx.waker());
        if let Some((seq, vt)) = REQUESTS.lock().pop_front() {
            return Poll::Ready(Some(Event::Switch(seq, vt)));
        }
        if KICKED.swap(false, SeqCst) {
            return Poll::Ready(Some(Event::Kick));
        }
        input.poll_next_unpin(cx).map(|b| b.map(Event::Byte))
    })
}

async fn input_task() {
    let home = root();
    let mut fronts = Fronts::new(Front(home.clone()));
    let mut shown = home;
    let mut keys = DetachKeys::new();
    let mut input = input();
    while let Some(event) = next_event(&mut input).await {
        let mut done = None;
        match event {
            Event::Byte(b) => {
                let front = fronts.front().0.clone();
                if keys.feed(b, |b| front.key(b)) {
                    fronts.go_back();
                }
            }
            Event::Switch(seq, vt) => {
                fronts.switch(Front(vt));
                done = Some(seq);
            }
            Event::Kick => {}
        }
        // A console that went away, or that nobody has open any more, leaves the stack (the
        // front goes back the way the user came).
        fronts.retain(|f| f.0.usable());
        let front = &fronts.front().0;
        if !Arc::ptr_eq(front, &shown) {
            shown.leave_front();
            front.come_front();
            FRONT_NS.store(front.ns, SeqCst);
            shown = front.clone();
        }
        if let Some(seq) = done {
            DONE.store(seq, SeqCst);
            SWITCHED.notify_all();
        }
    }
}
