//! httpd's persistent connections (HTTP/1.1 keep-alive), driven from the host through the
//! forwarded port with plain sockets and curl: several requests on one connection, pipelined
//! requests answered in order, `Connection: close` and HTTP/1.0 honoured, the cap on requests
//! per connection, the idle timeout, and a client that pipelines without ever reading.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{ok, Forwards, STEP};
use mkimage::console::{Console, TempDir};
use mkimage::qemu::Options;

/// Files with known bodies, served from /www.
const A: &[u8] = b"alpha: the first page\n";
const B: &[u8] = b"bravo: the second page, a little longer\n";
const C: &[u8] = b"charlie\n";
/// httpd's caps (user/src/bin/httpd.rs): replies per connection, and the idle timeout.
const MAX_REQUESTS: usize = 100;
const IDLE: Duration = Duration::from_secs(5);

fn image(name: &str) -> (TempDir, std::path::PathBuf) {
    let big = testkit::Rng::new(11).bytes(200 * 1024);
    common::image_with_programs(
        name,
        &[
            ("/www/a.txt", A.to_vec()),
            ("/www/b.txt", B.to_vec()),
            ("/www/c.txt", C.to_vec()),
            ("/www/big.bin", big),
        ],
    )
}

struct Guest {
    console: Console,
    http: u16,
    _fw: Forwards,
}

/// Boots with guest port 80 forwarded and starts `httpd` (logging each reply) at the shell.
fn boot_httpd(disk: &Path, design: &str) -> Guest {
    let fw = Forwards::new(&[80]);
    let mut opts = Options::new(common::kernel(), design);
    opts.disk = Some(disk.to_path_buf());
    opts.network = fw.network();
    let console = common::boot_to_shell(opts);
    ok(console.send("httpd &\n"));
    ok(console.expect("httpd: serving", STEP));
    let g = Guest { console, http: fw.host(80), _fw: fw };
    // Serving once the port answers (slirp accepts before the guest listens).
    let deadline = Instant::now() + STEP;
    while get_one(g.http, "/a.txt").is_none() {
        assert!(Instant::now() < deadline, "httpd never answered:\n{}", g.console.output());
    }
    g
}

fn get_one(port: u16, path: &str) -> Option<Response> {
    let mut c = Conn::open(port);
    c.send(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes());
    c.response(false).ok()
}

/// One response: status, headers (names lower-cased) and body.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn code(&self) -> u16 {
        self.status.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }
}

/// A connection to the server, reading responses one after another.
struct Conn {
    s: TcpStream,
    /// Bytes read past the last response.
    buf: Vec<u8>,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send the request");
    }

    /// Reads more; false at the end of the stream.
    fn fill(&mut self) -> std::io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.s.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next response (`head_only`: to a HEAD, so without a body). An error when the
    /// stream ends or fails first.
    fn response(&mut self, head_only: bool) -> std::io::Result<Response> {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if !self.fill()? {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed before a head"));
            }
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).expect("a text head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("a numeric Content-Length"))
            .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
        let len = if head_only { 0 } else { len };
        while self.buf.len() < len {
            if !self.fill()? {
                return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "closed inside a body"));
            }
        }
        let body = self.buf.drain(..len).collect();
        Ok(Response { status, headers, body })
    }

    /// Whether the server closes the connection (end of stream, nothing more) within the
    /// read timeout.
    fn closed(&mut self) -> bool {
        loop {
            match self.fill() {
                Ok(false) => return self.buf.is_empty(),
                Ok(true) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return self.buf.is_empty(),
                Err(_) => return false,
            }
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

common::both_designs!(
    one_connection_serves_many_requests_then_closes_when_asked,
    sleep_design_one_connection_serves_many_requests_then_closes_when_asked,
    one_connection_serves_many_requests_then_closes_when_asked_on
);

/// Several requests on one connection, HTTP/1.1 without any `Connection` header: each
/// answered in full with the right length, the connection kept; then `Connection: close`
/// gets its answer and the end of the stream. A 404 and a HEAD keep the connection too.
fn one_connection_serves_many_requests_then_closes_when_asked_on(design: &str) {
    let (_dir, img) = image("ka-many");
    let g = boot_httpd(&img, design);
    let mut c = Conn::open(g.http);
    for (path, body) in [("/a.txt", A), ("/b.txt", B), ("/c.txt", C), ("/a.txt", A)] {
        c.send(get(path).as_bytes());
        let r = c.response(false).expect("an answer on the kept connection");
        assert_eq!(r.status, "HTTP/1.1 200 OK");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{r:?}");
        assert_eq!(r.body, body, "{path}");
    }
    c.send(get("/no-such-file").as_bytes());
    assert_eq!(c.response(false).unwrap().code(), 404);
    c.send(b"HEAD /b.txt HTTP/1.1\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!((r.code(), r.header("content-length")), (200, Some("40")), "{r:?}");
    // The 200 KiB file, streamed from the open file, then a small one after it.
    c.send(get("/big.bin").as_bytes());
    let r = c.response(false).unwrap();
    assert_eq!(r.body, testkit::Rng::new(11).bytes(200 * 1024), "big.bin");
    c.send(b"GET /c.txt HTTP/1.1\r\nConnection: Close\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.body.as_slice(), r.header("connection")), (C, Some("close")));
    assert!(c.closed(), "the server kept the connection after Connection: close");

    // HTTP/1.0: closed after one answer, unless the client asks for keep-alive.
    let mut c = Conn::open(g.http);
    c.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!((r.status.as_str(), r.header("connection")), ("HTTP/1.0 200 OK", Some("close")));
    assert!(c.closed(), "an HTTP/1.0 connection stayed open");
    let mut c = Conn::open(g.http);
    for body in [A, B] {
        let path = if body == A { "/a.txt" } else { "/b.txt" };
        c.send(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
        let r = c.response(false).expect("HTTP/1.0 keep-alive");
        assert_eq!(
            (r.status.as_str(), r.header("connection")),
            ("HTTP/1.0 200 OK", Some("keep-alive"))
        );
        assert_eq!(r.body, body);
    }

    // A request with a body (which httpd does not read) is answered, then the connection
    // closes: what follows the body could not be told from the next request.
    let mut c = Conn::open(g.http);
    c.send(b"POST /a.txt HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.response(false).unwrap();
    assert_eq!((r.code(), r.header("connection")), (405, Some("close")));
    assert!(c.closed());

    // curl from the host fetches three URLs over one connection.
    let url = |p: &str| format!("http://127.0.0.1:{}{p}", g.http);
    let out = Command::new("curl")
        .args(["-v", "-s", "-m", "30"])
        .args([url("/a.txt"), url("/b.txt"), url("/c.txt")])
        .output()
        .expect("run curl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.stdout, [A, B, C].concat(), "{err}");
    assert_eq!(err.matches("Re-using existing connection").count(), 2, "{err}");
    assert_eq!(err.matches("Connected to").count(), 1, "{err}");
    common::poweroff(g.console);
}

common::both_designs!(
    pipelined_requests_are_answered_in_order_up_to_the_cap,
    sleep_design_pipelined_requests_are_answered_in_order_up_to_the_cap,
    pipelined_requests_are_answered_in_order_up_to_the_cap_on
);

/// Pipelined requests sent at once are answered in order; the last one's `Connection: close`
/// ends the connection after it. Then the cap: of 120 pipelined requests, 100 are answered,
/// the last of them with `Connection: close`, and the connection ends.
fn pipelined_requests_are_answered_in_order_up_to_the_cap_on(design: &str) {
    let (_dir, img) = image("ka-pipe");
    let g = boot_httpd(&img, design);
    let mut c = Conn::open(g.http);
    let three =
        [get("/b.txt"), get("/c.txt"), "GET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n".into()];
    c.send(three.concat().as_bytes());
    for body in [B, C, A] {
        assert_eq!(c.response(false).expect("a pipelined answer").body, body);
    }
    assert!(c.closed(), "closed after the pipelined Connection: close");

    // A request split across many small writes is one request.
    let mut c = Conn::open(g.http);
    for piece in get("/b.txt").as_bytes().chunks(3) {
        c.send(piece);
        c.s.flush().unwrap();
    }
    assert_eq!(c.response(false).unwrap().body, B);

    let mut c = Conn::open(g.http);
    let paths = ["/a.txt", "/b.txt", "/c.txt"];
    let all: String = (0..MAX_REQUESTS + 20).map(|i| get(paths[i % 3])).collect();
    c.send(all.as_bytes());
    for i in 0..MAX_REQUESTS {
        let r = c.response(false).unwrap_or_else(|e| panic!("answer {i}: {e}"));
        assert_eq!(r.body, [A, B, C][i % 3], "answer {i} out of order");
        let last = i == MAX_REQUESTS - 1;
        let want = if last { "close" } else { "keep-alive" };
        assert_eq!(r.header("connection"), Some(want), "answer {i}");
    }
    assert!(c.closed(), "more than {MAX_REQUESTS} answers on one connection");
    common::poweroff(g.console);
}

common::both_designs!(
    idle_connections_are_closed_after_the_timeout,
    sleep_design_idle_connections_are_closed_after_the_timeout,
    idle_connections_are_closed_after_the_timeout_on
);

/// A kept connection with nothing more to ask is closed after the idle timeout (cleanly: the
/// end of the stream), as is one that never sends a whole request. The timing is only bounded
/// from below by half the timeout, so a slow machine cannot make it fail.
fn idle_connections_are_closed_after_the_timeout_on(design: &str) {
    let (_dir, img) = image("ka-idle");
    let g = boot_httpd(&img, design);
    let mut kept = Conn::open(g.http);
    kept.send(get("/a.txt").as_bytes());
    assert_eq!(kept.response(false).unwrap().body, A);
    let mut partial = Conn::open(g.http);
    partial.send(b"GET /a.txt HTTP/1.1\r\nHost:");
    let start = Instant::now();
    assert!(kept.closed(), "the idle connection was not closed");
    assert!(partial.closed(), "the connection with half a request was not closed");
    assert!(start.elapsed() >= IDLE / 2, "closed after {:?}", start.elapsed());
    assert!(get_one(g.http, "/c.txt").is_some_and(|r| r.body == C));
    common::poweroff(g.console);
}

common::both_designs!(
    a_client_that_never_reads_holds_no_one_up,
    sleep_design_a_client_that_never_reads_holds_no_one_up,
    a_client_that_never_reads_holds_no_one_up_on
);

/// A client that pipelines 1000 requests and never reads: httpd stops reading it while its
/// reply waits, serves others meanwhile, and closes it once its reply stalls.
fn a_client_that_never_reads_holds_no_one_up_on(design: &str) {
    let (_dir, img) = image("ka-stuck");
    let g = boot_httpd(&img, design);
    let stuck = TcpStream::connect(("127.0.0.1", g.http)).expect("connect");
    stuck.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let writer = {
        let mut w = stuck.try_clone().unwrap();
        std::thread::spawn(move || {
            let all: String = (0..1000).map(|_| get("/big.bin")).collect();
            // Fails (times out, or is reset) once neither side takes more: expected.
            let _ = w.write_all(all.as_bytes());
        })
    };
    for _ in 0..3 {
        let r = get_one(g.http, "/c.txt").expect("httpd stopped serving");
        assert_eq!(r.body, C);
    }
    ok(g.console.expect("closed: the reply stalled", Duration::from_secs(60)));
    assert!(get_one(g.http, "/a.txt").is_some_and(|r| r.body == A));
    writer.join().unwrap();
    drop(stuck);
    common::poweroff(g.console);
}

common::both_designs!(
    sendfile_cases_and_a_reset_in_the_middle_of_a_file,
    sleep_design_sendfile_cases_and_a_reset_in_the_middle_of_a_file,
    sendfile_cases_and_a_reset_in_the_middle_of_a_file_on
);

/// `sendfile`'s own cases (usertests, over loopback in the guest): bounds, bad descriptors
/// and pointers, a file changing under it, a peer that goes. Then httpd, which sends big files
/// with it: a client that resets in the middle of one on a kept connection, and the file
/// served whole afterwards, twice on one connection.
fn sendfile_cases_and_a_reset_in_the_middle_of_a_file_on(design: &str) {
    let (_dir, img) = image("ka-sendfile");
    let g = boot_httpd(&img, design);
    ok(g.console.send("usertests sendfile\n"));
    let out = ok(g.console.expect("TESTS", STEP * 2));
    assert!(out.contains("usertests: sendfile ok"), "{out}");

    let big = testkit::Rng::new(11).bytes(200 * 1024);
    {
        let mut c = Conn::open(g.http);
        c.send(get("/a.txt").as_bytes());
        assert_eq!(c.response(false).unwrap().body, A);
        c.send(get("/big.bin").as_bytes());
        let mut first = [0u8; 4096];
        let _ = c.s.read(&mut first);
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt reads `size_of::<linger>()` bytes from `linger`, a live local, on
        // a descriptor `c.s` owns. (SO_LINGER 0 makes close send a reset.)
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&c.s),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
    }
    let mut c = Conn::open(g.http);
    for _ in 0..2 {
        c.send(get("/big.bin").as_bytes());
        let r = c.response(false).expect("big.bin after the reset");
        assert!(r.body == big, "big.bin arrived changed ({} bytes)", r.body.len());
    }
    common::poweroff(g.console);
}
