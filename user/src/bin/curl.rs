//! curl [-v] [-m SECONDS] URL [PATH]: fetch a page over HTTP/1.0 and write its body to standard
//! output (`curl 10.0.2.2:8000/x > x` saves it).
//!
//! URL is `http://a.b.c.d[:PORT][/PATH]` or `a.b.c.d[:PORT][/PATH]`; PATH may instead be the
//! second argument (port 80 and path `/` by default; no DNS, so the host is an address). The
//! request is `GET PATH HTTP/1.0` with `Host:`; the path is sent as given (`..` included).
//! `-v` shows the connection, the request and the response's status line and headers on
//! standard error; `-m` gives up after SECONDS (`2`, `0.5`, `300ms`) of waiting for the answer.
//!
//! Exit status, as curl's: 0 for a 2xx answer; 22 for any other status (after the body, like
//! `curl -f` but still printing it); 2 usage; 3 a bad URL; 7 no connection (refused,
//! unreachable...); 8 an answer that is not HTTP; 18 a body shorter than its Content-Length;
//! 23 standard output failed; 28 timed out; 52 no answer at all; 55 sending failed; 56
//! receiving failed.

#![no_std]
#![no_main]

use ulib::io::{write_all, STDOUT};
use ulib::net::{self, Ipv4, PollFd, SockAddrIn, POLLIN, SOCK_STREAM};
use ulib::prelude::*;
use ulib::uparse::duration::parse_ms;
use ulib::uparse::http::{self, Scan, Target, MAX_RESPONSE_HEAD};

ulib::entry!(main);

const USAGE: &str =
    "usage: curl [-v] [-m SECONDS] http://a.b.c.d[:PORT][/PATH] | a.b.c.d[:PORT] [PATH]";
const USER_AGENT: &str = "rustix-curl/1.0";

/// Prints `curl: (code) message` and exits with `code`.
macro_rules! fail {
    ($code:expr, $($arg:tt)*) => {{
        eprintln!("curl: ({}) {}", $code, format_args!($($arg)*));
        sys::exit($code)
    }};
}

struct Options {
    verbose: bool,
    /// When to give up (ms since boot).
    deadline: Option<u64>,
    timeout_ms: u64,
}

fn main(args: Args) -> i32 {
    let mut opts = Options { verbose: false, deadline: None, timeout_ms: 0 };
    let mut positional = Vec::new();
    let mut rest = args.skip(1);
    let mut options_done = false;
    while let Some(a) = rest.next() {
        match a {
            "-v" | "--verbose" if !options_done => opts.verbose = true,
            "-m" | "--max-time" if !options_done => {
                let Some(ms) = rest.next().and_then(parse_ms) else {
                    eprintln!("curl: -m needs a duration (seconds, or NNNms)");
                    return 2;
                };
                opts.timeout_ms = ms;
            }
            "-h" | "--help" if !options_done => {
                println!("{USAGE}");
                return 0;
            }
            "--" if !options_done => options_done = true,
            s if s.starts_with('-') && s.len() > 1 && !options_done => {
                eprintln!("curl: unknown option {s}\n{USAGE}");
                return 2;
            }
            s => positional.push(s),
        }
    }
    let (url, path) = match positional.as_slice() {
        [url] => (*url, None),
        [url, path] => (*url, Some(*path)),
        _ => {
            eprintln!("{USAGE}");
            return 2;
        }
    };
    let target = match http::parse_url(url, path) {
        Ok(t) => t,
        Err(e) => fail!(3, "{url}: {}", e.message()),
    };
    if opts.timeout_ms > 0 {
        opts.deadline = Some(sys::uptime() + opts.timeout_ms);
    }
    fetch(&target, &opts)
}

fn fetch(target: &Target, opts: &Options) -> i32 {
    let server = target.server;
    let fd = match net::socket(SOCK_STREAM) {
        Ok(fd) => fd,
        Err(e) => fail!(7, "cannot make a socket: {}", e.message()),
    };
    let _owner = File::from_fd(fd); // closed on every way out
    let host = Ipv4(server.addr);
    if opts.verbose {
        eprintln!("*   Trying {server}...");
    }
    if let Err(e) = net::connect(fd, &SockAddrIn::new(server.addr, server.port)) {
        fail!(7, "Failed to connect to {host} port {}: {}", server.port, e.message());
    }
    let request = http::request("GET", target, USER_AGENT);
    if opts.verbose {
        eprintln!("* Connected to {host} port {}", server.port);
        for line in request.split("\r\n").filter(|l| !l.is_empty()) {
            eprintln!("> {line}");
        }
        eprintln!(">");
    }
    if let Err(e) = net::send_all(fd, request.as_bytes()) {
        fail!(55, "Failed sending the request: {}", e.message());
    }

    // The head, then the body as it comes.
    let mut buf = vec![0u8; 16 * 1024];
    let mut head: Vec<u8> = Vec::new();
    let head_len = loop {
        match http::scan_head(&head, MAX_RESPONSE_HEAD) {
            Scan::Complete(n) => break n,
            Scan::TooLarge => {
                fail!(8, "Weird server reply: no end of the head in {MAX_RESPONSE_HEAD} bytes")
            }
            Scan::Incomplete => {}
        }
        match receive(fd, &mut buf, opts) {
            0 if head.is_empty() => fail!(52, "Empty reply from server"),
            0 => fail!(8, "Weird server reply: the connection closed inside the head"),
            n => head.extend_from_slice(&buf[..n]),
        }
    };
    let response = match http::parse_response(&head[..head_len]) {
        Ok(r) => r,
        Err(e) => fail!(8, "Weird server reply: {}", e.message()),
    };
    let status = response.status;
    if opts.verbose {
        let text = core::str::from_utf8(&head[..head_len]).unwrap_or("");
        for line in text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
            eprintln!("< {line}");
        }
        eprintln!("<");
    }
    let length = response.headers.content_length().ok().flatten();
    let (code, reason) = (status.code, String::from(status.reason));
    let location = response.headers.get("location").map(String::from);
    let ok = status.is_success();
    drop(response);

    let mut got: u64 = 0;
    let mut body = head.split_off(head_len);
    loop {
        if let Some(len) = length {
            body.truncate(usize::try_from(len - got).unwrap_or(usize::MAX).min(body.len()));
        }
        if let Err(e) = write_all(STDOUT, &body) {
            fail!(23, "Failed writing the body: {}", e.message());
        }
        got += body.len() as u64;
        if length.is_some_and(|len| got >= len) {
            break;
        }
        match receive(fd, &mut buf, opts) {
            0 => break,
            n => {
                body.clear();
                body.extend_from_slice(&buf[..n]);
            }
        }
    }
    if opts.verbose {
        eprintln!("* Closing the connection ({got} bytes of body)");
    }
    if let Some(len) = length.filter(|&len| got < len) {
        fail!(18, "transfer closed with {} bytes remaining to read", len - got);
    }
    if !ok {
        match location {
            Some(to) => fail!(22, "The requested URL returned {code} {reason} (Location: {to})"),
            None => fail!(22, "The requested URL returned error: {code} {reason}"),
        }
    }
    0
}

/// One `recv`, waiting no later than the deadline; 0 at the end of the stream.
fn receive(fd: Fd, buf: &mut [u8], opts: &Options) -> usize {
    if let Some(deadline) = opts.deadline {
        loop {
            let left = deadline.saturating_sub(sys::uptime());
            let mut p = [PollFd { fd, events: POLLIN, revents: 0 }];
            match net::poll(&mut p, left as isize) {
                Ok(0) => fail!(28, "Operation timed out after {} milliseconds", opts.timeout_ms),
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => fail!(56, "Failure when receiving data: poll: {}", e.message()),
            }
        }
    }
    loop {
        match net::recv(fd, buf) {
            Ok(n) => return n,
            Err(Errno::EINTR) => continue,
            Err(e) => fail!(56, "Failure when receiving data from the peer: {}", e.message()),
        }
    }
}
