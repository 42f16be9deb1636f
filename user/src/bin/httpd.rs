//! httpd [PORT] [BIND_ADDR] [ROOT]: a static-file web server (defaults: 80, 0.0.0.0, /www).
//!
//! - `GET` and `HEAD` (HEAD: the same head, no body); other methods are 405 (with `Allow`).
//! - A file is sent with `Content-Type` by its extension and `Content-Length`. A directory is
//!   its `index.html` if it has one, else an HTML listing (`Index of /path`, one link per
//!   entry, sorted); a directory named without its final `/` is a 301 to the name with it.
//! - A malformed request, a head over 8 KiB, or a path whose `..` would leave ROOT is 400; a
//!   missing file is 404; an HTTP major version other than 1 is 505. Each error has a small
//!   HTML page.
//! - Persistent connections (RFC 9112 9.3): an HTTP/1.1 request keeps its connection open
//!   unless it says `Connection: close`; an HTTP/1.0 one only when it says `Connection:
//!   keep-alive`. The reply's status line has the request's version and says which it is
//!   (`Connection: keep-alive` or `close`). Pipelined requests are answered in order, one at a
//!   time (the next is not read while a reply is being written, so a client that sends and
//!   never reads holds at most one reply and 8 KiB of requests). The connection is closed
//!   after [`MAX_REQUESTS`] replies, after a request with a body (bodies are not read, so the
//!   next request cannot be found), after a 400 or 505, when no complete request comes within
//!   [`IDLE_MS`] (the first one too), and when a reply makes no progress for [`STALL_MS`].
//!
//! One process serves up to 64 connections at once with non-blocking sockets and `poll`: the
//! listener and every client are polled together, and each client is a small state machine —
//! reading a request (at most 8 KiB of head, with a deadline), writing the reply a piece at a
//! time as the socket takes it, then either reading the next request or closing gently
//! (shutting down its sending side and discarding what the client still sends, for at most two
//! seconds). Files up to 64 KiB are read whole when answered; larger ones go from the open
//! file to the socket with `sendfile` (never through this process's memory). A client gets at most [`ROUND_REQUESTS`] replies and a few chunks
//! per round of `poll`, so that one pipelining or fast client cannot hold up the others.
//!
//! A client that never sends keeps its slot until [`IDLE_MS`] without holding up the others;
//! when all slots are taken the listener is left alone (connections wait in the kernel's
//! backlog) until one frees. The slots are fewer than 64 when the process has fewer free
//! descriptors: each connection takes one and a few stay free for the files being answered; a
//! request that finds none free waits for one. A failing client is closed; nothing a client
//! does stops the server. Each reply is logged on standard output: `httpd: PEER "REQUEST LINE"
//! STATUS BYTES`.

#![no_std]
#![no_main]

use ulib::abi::syscall::kind;
use ulib::dir::ReadDir;
use ulib::net::{
    self, endpoint, Endpoint, PollFd, SockAddrIn, POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT,
    SHUT_WR,
};
use ulib::prelude::*;
use ulib::uparse::http::{self, ListEntry, Method, PathError, Scan, MAX_REQUEST_HEAD};
use ulib::uparse::inet::{parse_ipv4, parse_port};

ulib::entry!(main);

const USAGE: &str = "usage: httpd [-q] [PORT] [BIND_ADDR] [ROOT]   (-q: no line per request)";

/// `-q`: no log line per request (benchmarks; the console is slow).
static QUIET: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Connections served at once, at most (fewer when the process has fewer descriptors).
const MAX_CLIENTS: usize = 64;
/// Descriptors kept free for the files being answered (beyond one per connection).
const FD_RESERVE: usize = 6;
/// Files up to this size are read whole when answered, so they hold no descriptor while sent.
const SMALL_FILE: u64 = 64 * 1024;
/// Connections the kernel completes and queues for us beyond those being served: as many as
/// are served at once, so a burst of that size is not kept waiting for SYN retransmissions.
const BACKLOG: usize = MAX_CLIENTS;
/// Bytes of a file sent by one `sendfile` at most (the kernel's most).
const CHUNK: usize = 64 * 1024;
/// The most one client may send in one round of `poll`, so that a fast client on a big file
/// cannot hold up the others however much the socket takes.
const ROUND_BYTES: usize = 64 * 1024;
/// After the last response: how long, and how much, the client's leftovers are read and
/// dropped.
const LINGER_MS: u64 = 2000;
const LINGER_BYTES: usize = 64 * 1024;
/// After `accept` fails for lack of descriptors (or an unknown reason): when to try again,
/// unless a client closes first.
const ACCEPT_RETRY_MS: u64 = 100;
/// Replies on one connection at most; the last says `Connection: close` (a client cannot keep
/// a slot forever by staying busy, and the backlog gets its turn).
const MAX_REQUESTS: u32 = 100;
/// How long a connection may wait for its next complete request head, the first one included:
/// the idle timeout of a kept-alive connection, and the deadline of a slow client.
const IDLE_MS: u64 = 5000;
/// How long a reply may wait for the client to take any of it (a client that never reads).
const STALL_MS: u64 = 10_000;
/// Replies one client gets per round of `poll` (pipelined requests beyond wait a round).
const ROUND_REQUESTS: u32 = 4;

enum State {
    /// Waiting for a complete request head in `Client::input`, until `until`.
    Reading { until: u64 },
    /// The head is in, but the answer needs a descriptor and none is free: tried again every
    /// round (descriptors free as other clients finish).
    Waiting { head: Vec<u8> },
    /// Sending `out[pos..]`, then `left` more bytes of `file` from `off` (by `sendfile`: they
    /// never pass through this process); then the next request if `keep`, else closing.
    /// Closed when nothing was sent for [`STALL_MS`] (by `until`).
    Writing {
        out: Vec<u8>,
        pos: usize,
        file: Option<File>,
        off: u64,
        left: u64,
        keep: bool,
        until: u64,
    },
    /// Last response sent and our side shut: dropping what still comes until EOF or `until`.
    Lingering { until: u64, budget: usize },
}

struct Client {
    /// The connection (closed when the client is dropped).
    sock: File,
    peer: Endpoint,
    /// What the client sent that is not answered yet: the start of its next request (more
    /// than one when it pipelines). At most [`MAX_REQUEST_HEAD`] bytes.
    input: Vec<u8>,
    /// Replies begun on this connection.
    served: u32,
    /// A complete head may be in `input` already: step without waiting for `poll` to report.
    pending: bool,
    state: State,
}

/// What to do with a client after it was served.
enum Next {
    Keep,
    Close,
}

/// What a request gets.
struct Reply {
    code: u16,
    content_type: &'static str,
    /// `Content-Length`: the body's, or for HEAD the one GET would have.
    length: u64,
    /// Headers after the usual ones (`Location`, `Allow`).
    extra: Vec<(&'static str, String)>,
    body: Body,
    /// The status line's version and whether the client asked to keep the connection.
    framing: http::Framing,
}

enum Body {
    Empty,
    Bytes(Vec<u8>),
    File(File, u64),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File(_, n) => *n,
        }
    }
}

fn main(args: Args) -> i32 {
    let mut argv = args.to_vec();
    if argv.get(1) == Some(&"-q") {
        QUIET.store(true, core::sync::atomic::Ordering::Relaxed);
        argv.remove(1);
    }
    if argv.len() > 4 || argv.iter().skip(1).any(|a| a.starts_with('-')) {
        die!("{USAGE}");
    }
    let port = match argv.get(1) {
        Some(p) => parse_port(p).unwrap_or_else(|| die!("{p}: not a port number\n{USAGE}")),
        None => 80,
    };
    let bind_addr = match argv.get(2) {
        Some(a) => parse_ipv4(a).unwrap_or_else(|| die!("{a}: not an IPv4 address\n{USAGE}")),
        None => [0; 4],
    };
    let root = argv.get(3).copied().unwrap_or("/www");
    match File::open(root, sys::RDONLY).and_then(|f| f.stat()) {
        Ok(st) if st.kind == kind::DIR => {}
        Ok(_) => die!("{root}: not a directory"),
        Err(e) => die!("{root}: {}", e.message()),
    }
    let root = root.trim_end_matches('/');

    let want = SockAddrIn::new(bind_addr, port);
    let listener = match net::tcp_listener(&want, BACKLOG) {
        Ok(fd) => File::from_fd(fd),
        Err(e) => die!("listen on {}: {}", endpoint(&want), e.message()),
    };
    if let Err(e) = net::set_nonblocking(listener.fd(), true) {
        die!("non-blocking listener: {}", e.message());
    }
    let local = net::getsockname(listener.fd()).map(|a| endpoint(&a)).unwrap_or(endpoint(&want));
    // One descriptor per connection, and a few for the files being answered.
    let free = sys::free_descriptors(listener.fd(), MAX_CLIENTS + FD_RESERVE);
    let max_clients = free.saturating_sub(FD_RESERVE).clamp(1, MAX_CLIENTS);
    let shown = if root.is_empty() { "/" } else { root };
    println!("httpd: serving {shown} on {local} ({max_clients} connections at once)");
    serve(listener.fd(), root, max_clients)
}

fn serve(listener: Fd, root: &str, max_clients: usize) -> ! {
    let mut clients: Vec<Client> = Vec::new();
    let mut fds: Vec<PollFd> = Vec::new();
    let mut accept_retry_at: Option<u64> = None;
    loop {
        let now = sys::uptime();
        if accept_retry_at.is_some_and(|t| now >= t) {
            accept_retry_at = None;
        }
        // What to wait for: the listener while there is room, each client by its state.
        fds.clear();
        let listening = clients.len() < max_clients && accept_retry_at.is_none();
        if listening {
            fds.push(PollFd { fd: listener, events: POLLIN, revents: 0 });
        }
        let mut wake_at = accept_retry_at;
        let mut at_once = false;
        for c in &clients {
            let (events, until) = match c.state {
                State::Reading { until } => (POLLIN, Some(until)),
                State::Waiting { .. } => (0, None), // only a hang-up or an error
                State::Writing { until, .. } => (POLLOUT, Some(until)),
                State::Lingering { until, .. } => (POLLIN, Some(until)),
            };
            if let Some(t) = until {
                wake_at = Some(wake_at.map_or(t, |w| w.min(t)));
            }
            at_once |= c.pending;
            fds.push(PollFd { fd: c.sock.fd(), events, revents: 0 });
        }
        let timeout = match wake_at {
            _ if at_once => 0,
            Some(t) => t.saturating_sub(now) as isize,
            None => -1,
        };
        if fds.is_empty() {
            let _ = sys::sleep(timeout.max(1) as u64);
            continue;
        }
        match net::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(e) => die!("poll: {}", e.message()),
        }

        let base = usize::from(listening);
        let before = clients.len();
        let mut i = 0;
        clients.retain_mut(|c| {
            let revents = fds[base + i].revents;
            i += 1;
            let next = if revents != 0 || c.pending || matches!(c.state, State::Waiting { .. }) {
                step(c, revents, root)
            } else {
                Next::Keep
            };
            if matches!(next, Next::Close) {
                return false;
            }
            // Past its deadline (checked after the step: what just came in counts).
            let now = sys::uptime();
            let expired = match c.state {
                State::Reading { until } | State::Lingering { until, .. } => {
                    now >= until && !c.pending
                }
                State::Writing { until, .. } if now >= until => {
                    // Not an idle client but a stuck one: worth a line.
                    if !QUIET.load(core::sync::atomic::Ordering::Relaxed) {
                        println!("httpd: {} closed: the reply stalled for {STALL_MS} ms", c.peer);
                    }
                    true
                }
                State::Writing { .. } | State::Waiting { .. } => false,
            };
            !expired
        });
        if clients.len() < before {
            accept_retry_at = None; // a descriptor may have freed
        }
        if listening && fds[0].revents != 0 {
            accept_retry_at = accept_all(listener, &mut clients, max_clients);
        }
    }
}

/// Accepts every waiting connection while there is room; when to retry if accepting failed.
fn accept_all(listener: Fd, clients: &mut Vec<Client>, max_clients: usize) -> Option<u64> {
    while clients.len() < max_clients {
        match net::accept(listener) {
            Ok((fd, addr)) => {
                let sock = File::from_fd(fd);
                if let Err(e) = net::set_nonblocking(fd, true) {
                    eprintln!("httpd: {}: non-blocking: {}", endpoint(&addr), e.message());
                    continue; // dropping `sock` closes it
                }
                clients.push(Client {
                    sock,
                    peer: endpoint(&addr),
                    input: Vec::with_capacity(1024),
                    served: 0,
                    pending: false,
                    state: State::Reading { until: sys::uptime() + IDLE_MS },
                });
            }
            Err(Errno::EAGAIN) => return None,
            // The connection went away before it was accepted.
            Err(Errno::EINTR | Errno::ECONNABORTED | Errno::ECONNRESET) => {}
            Err(e) => {
                if !no_descriptor(e) {
                    eprintln!("httpd: accept: {}", e.message());
                }
                return Some(sys::uptime() + ACCEPT_RETRY_MS);
            }
        }
    }
    None
}

/// Moves a client on after `poll` reported `revents` for it (or it had work pending): reads,
/// answers and writes as far as it can without blocking, for at most [`ROUND_REQUESTS`]
/// replies.
fn step(c: &mut Client, revents: i16, root: &str) -> Next {
    if revents & (POLLERR | POLLNVAL) != 0 {
        return Next::Close;
    }
    let hung_up = revents & POLLHUP != 0;
    let fd = c.sock.fd();
    c.pending = false;
    let mut replies = 0;
    loop {
        let (head, bad) = match &mut c.state {
            State::Reading { .. } => {
                if replies == ROUND_REQUESTS {
                    // The rest waits a round; what is already in `input` must not wait for
                    // `poll`, which reports only new bytes.
                    c.pending = !c.input.is_empty();
                    return Next::Keep;
                }
                match read_request(fd, &mut c.input) {
                    Read::Gone => return Next::Close,
                    Read::More if hung_up => return Next::Close,
                    Read::More => return Next::Keep,
                    Read::Bad(reply) => (Vec::new(), Some(reply)),
                    Read::Head(n) => (c.input.drain(..n).collect(), None),
                }
            }
            State::Waiting { .. } if hung_up => return Next::Close,
            State::Waiting { head } => (core::mem::take(head), None),
            State::Writing { .. } => match write_response(c) {
                Wrote::Partly => return Next::Keep,
                Wrote::Failed => return Next::Close,
                Wrote::All { keep: true } => {
                    c.state = State::Reading { until: sys::uptime() + IDLE_MS };
                    continue;
                }
                Wrote::All { keep: false } => {
                    // Shut our side (the client sees the end) and read until the client
                    // closes too, so that the kernel never resets a connection whose reply is
                    // still on its way.
                    if net::shutdown(fd, SHUT_WR).is_err() {
                        return Next::Close;
                    }
                    c.input = Vec::new();
                    let until = sys::uptime() + LINGER_MS;
                    c.state = State::Lingering { until, budget: LINGER_BYTES };
                    return linger(c, hung_up);
                }
            },
            State::Lingering { .. } => return linger(c, hung_up),
        };
        // A complete head (or a bad request): answer it.
        let reply = match bad.map_or_else(|| answer(&head, root), Ok) {
            Ok(r) => r,
            Err(NoDescriptor) => {
                c.state = State::Waiting { head };
                return Next::Keep;
            }
        };
        replies += 1;
        c.served += 1;
        log(c.peer, &head, &reply);
        let keep = reply.framing.keep_alive && c.served < MAX_REQUESTS;
        let framing = http::Framing { keep_alive: keep, ..reply.framing };
        let extra: Vec<(&str, &str)> = reply.extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut out =
            http::response_head(reply.code, reply.content_type, reply.length, framing, &extra)
                .into_bytes();
        let (file, left) = match reply.body {
            Body::Empty => (None, 0),
            Body::Bytes(b) => {
                out.extend_from_slice(&b);
                (None, 0)
            }
            Body::File(f, n) => (Some(f), n),
        };
        // The socket is most likely writable now: the loop writes without waiting for poll.
        let until = sys::uptime() + STALL_MS;
        c.state = State::Writing { out, pos: 0, file, off: 0, left, keep, until };
    }
}

/// Reads and drops what the client still sends after our last reply, within the budget.
fn linger(c: &mut Client, hung_up: bool) -> Next {
    let State::Lingering { budget, .. } = &mut c.state else { return Next::Close };
    let mut scratch = [0u8; 2048];
    loop {
        match net::recv(c.sock.fd(), &mut scratch) {
            Ok(0) => return Next::Close,
            Ok(n) if n >= *budget => return Next::Close,
            Ok(n) => *budget -= n,
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) if !hung_up => return Next::Keep,
            Err(_) => return Next::Close,
        }
    }
}

/// What reading a request came to.
enum Read {
    /// A complete head: the first `n` bytes of the buffer (what follows is the next request).
    Head(usize),
    /// The request is bad and gets this reply.
    Bad(Reply),
    /// Nothing more for now.
    More,
    /// The client is gone.
    Gone,
}

/// Reads what the client sent into `buf` until it holds a head, keeping `buf` within
/// [`MAX_REQUEST_HEAD`] bytes.
fn read_request(fd: Fd, buf: &mut Vec<u8>) -> Read {
    loop {
        match http::scan_head(buf, MAX_REQUEST_HEAD) {
            Scan::Complete(n) => return Read::Head(n),
            Scan::TooLarge => return Read::Bad(error_reply(400, "request head over 8 KiB", false)),
            Scan::Incomplete => {}
        }
        let have = buf.len();
        let room = (MAX_REQUEST_HEAD - have).min(2048);
        buf.resize(have + room, 0);
        let got = net::recv(fd, &mut buf[have..]);
        buf.truncate(have + got.unwrap_or(0));
        match got {
            Ok(0) if have == 0 => return Read::Gone,
            Ok(0) => {
                let why = "the connection closed inside the request head";
                return Read::Bad(error_reply(400, why, false));
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Read::More,
            Err(_) => return Read::Gone,
        }
    }
}

/// How far writing a reply got.
enum Wrote {
    /// Not all yet: more when the socket takes it (or next round).
    Partly,
    /// All of it; the connection goes on if `keep`.
    All { keep: bool },
    /// The client is gone, or the file broke (the client sees a short body and a close).
    Failed,
}

/// Sends what the socket takes, at most [`ROUND_BYTES`] this round: the head (and a small
/// body) from `out`, then a file's bytes with `sendfile`.
///
/// A hang-up does not end this early: a peer that shut only its sending side still reads,
/// and one that is really gone makes `send` fail.
fn write_response(c: &mut Client) -> Wrote {
    let fd = c.sock.fd();
    let State::Writing { out, pos, file, off, left, keep, until } = &mut c.state else {
        return Wrote::Failed;
    };
    let mut sent = 0;
    loop {
        let r = if *pos < out.len() {
            net::send(fd, &out[*pos..])
        } else if let Some(f) = file.as_ref().filter(|_| *left > 0) {
            let want = (*left).min(CHUNK as u64) as usize;
            match net::sendfile(fd, f.fd(), Some(off), want) {
                // The file shrank: the client sees a short body, and the connection closes
                // (its framing is lost).
                Ok(0) => return Wrote::Failed,
                Ok(n) => {
                    *left -= n as u64;
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            break;
        };
        match r {
            Ok(0) => return Wrote::Failed,
            Ok(n) => {
                if *pos < out.len() {
                    *pos += n;
                }
                sent += n;
                *until = sys::uptime() + STALL_MS;
                if sent >= ROUND_BYTES && (*pos < out.len() || *left > 0) {
                    return Wrote::Partly; // more next round
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Wrote::Partly,
            Err(_) => return Wrote::Failed,
        }
    }
    Wrote::All { keep: *keep }
}

fn html_reply(
    code: u16,
    page: String,
    head_only: bool,
    extra: Vec<(&'static str, String)>,
) -> Reply {
    let length = page.len() as u64;
    let body = if head_only { Body::Empty } else { Body::Bytes(page.into_bytes()) };
    // Framing for a request that could not be read; `answer` sets the request's own.
    let framing = http::Framing { minor: 1, keep_alive: false };
    Reply { code, content_type: "text/html", length, extra, body, framing }
}

fn error_reply(code: u16, detail: &str, head_only: bool) -> Reply {
    let extra = if code == 405 { vec![("Allow", "GET, HEAD".to_string())] } else { Vec::new() };
    html_reply(code, http::error_page(code, detail), head_only, extra)
}

/// Out of descriptors: the request must wait (see [`State::Waiting`]).
struct NoDescriptor;

fn no_descriptor(e: Errno) -> bool {
    matches!(e, Errno::EMFILE | Errno::ENFILE)
}

/// The reply to a complete request head, framed for the request: its version, and kept alive
/// when the client asks and the request has no body.
fn answer(head: &[u8], root: &str) -> Result<Reply, NoDescriptor> {
    let req = match http::parse_request(head) {
        Ok(r) => r,
        Err(e) => return Ok(error_reply(e.status(), e.message(), false)),
    };
    let keep_alive = match req.has_body() {
        Ok(body) => req.keep_alive() && !body,
        Err(e) => return Ok(error_reply(e.status(), e.message(), false)),
    };
    let mut reply = answer_request(&req, root)?;
    reply.framing = http::Framing { minor: req.version.1, keep_alive };
    Ok(reply)
}

fn answer_request(req: &http::Request, root: &str) -> Result<Reply, NoDescriptor> {
    let Some(method) = Method::parse(req.method) else {
        return Ok(error_reply(405, "only GET and HEAD", false));
    };
    let head_only = method == Method::Head;
    let path = match http::request_path(req.target) {
        Ok(p) => p,
        Err(e) => {
            let why = match e {
                PathError::Escapes => "the path leaves the root",
                PathError::NotAPath => "not a path",
                PathError::BadEncoding => "bad %-encoding",
            };
            return Ok(error_reply(400, why, head_only));
        }
    };
    let fs_path = format!("{root}{}", path.trim_end_matches('/'));
    let fs_path = if fs_path.is_empty() { "/".to_string() } else { fs_path };
    let failed = |e: Errno| match e {
        e if no_descriptor(e) => Err(NoDescriptor),
        Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG | Errno::EINVAL => {
            Ok(error_reply(404, "", head_only))
        }
        e => Ok(error_reply(500, e.message(), head_only)),
    };
    let (file, st) = match File::open(&fs_path, sys::RDONLY).and_then(|f| Ok((f.stat()?, f))) {
        Ok((st, f)) => (f, st),
        Err(e) => return failed(e),
    };
    match st.kind {
        kind::FILE if path.ends_with('/') => failed(Errno::ENOENT),
        kind::FILE => file_reply(file, st.size, &path, head_only).or_else(failed),
        kind::DIR if !path.ends_with('/') => {
            let location = http::percent_encode_path(&format!("{path}/"));
            let page = http::error_page(301, &format!("See {path}/"));
            Ok(html_reply(301, page, head_only, vec![("Location", location)]))
        }
        kind::DIR => {
            let index = ulib::dir::join(&fs_path, "index.html");
            match File::open(&index, sys::RDONLY).and_then(|f| Ok((f.stat()?, f))) {
                Ok((st, f)) if st.kind == kind::FILE => {
                    return file_reply(f, st.size, &index, head_only).or_else(failed)
                }
                Err(e) if no_descriptor(e) => return Err(NoDescriptor),
                _ => {}
            }
            match listing(file, &fs_path) {
                Ok(entries) => {
                    Ok(html_reply(200, http::listing_html(&path, &entries), head_only, Vec::new()))
                }
                Err(e) => failed(e),
            }
        }
        _ => failed(Errno::ENOENT), // devices are not web pages
    }
}

/// A file's reply: small files are read now (their descriptor closed at once), larger ones
/// are sent from the open file a piece at a time.
fn file_reply(file: File, size: u64, name: &str, head_only: bool) -> sys::Result<Reply> {
    let (length, body) = if head_only || size == 0 {
        (size, Body::Empty)
    } else if size <= SMALL_FILE {
        let mut bytes = vec![0u8; size as usize];
        let n = ulib::io::read_full(file.fd(), &mut bytes)?;
        // A file that shrank meanwhile: the length says what is sent, or the next reply on
        // the connection would be read as the rest of this one.
        bytes.truncate(n);
        (n as u64, Body::Bytes(bytes))
    } else {
        (size, Body::File(file, size))
    };
    let framing = http::Framing { minor: 1, keep_alive: false };
    let content_type = http::mime_type(name);
    Ok(Reply { code: 200, content_type, length, extra: Vec::new(), body, framing })
}

/// The entries of the open directory `dir` (named `fs_path`), without `.` and `..`.
fn listing(dir: File, fs_path: &str) -> sys::Result<Vec<ListEntry>> {
    let mut entries = Vec::new();
    for entry in ReadDir::new(dir) {
        let entry = entry?;
        if entry.is_dot() || entry.name().is_empty() {
            continue;
        }
        let name = entry.name();
        let is_dir = match File::open(&ulib::dir::join(fs_path, name), sys::RDONLY) {
            Ok(f) => f.stat().is_ok_and(|st| st.kind == kind::DIR),
            Err(e) if no_descriptor(e) => return Err(e),
            Err(_) => false,
        };
        entries.push(ListEntry { name: name.to_string(), is_dir });
    }
    Ok(entries)
}

/// `httpd: PEER "REQUEST LINE" STATUS BYTES` (the line cut at 100 characters).
fn log(peer: Endpoint, head: &[u8], reply: &Reply) {
    if QUIET.load(core::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let line = head.split(|&b| b == b'\n').find(|l| !l.is_empty() && *l != b"\r").unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut shown = String::new();
    for &b in line.iter().take(100) {
        shown.push(if (0x20..0x7f).contains(&b) && b != b'"' { b as char } else { '?' });
    }
    println!("httpd: {peer} \"{shown}\" {} {}", reply.code, reply.body.len());
}
